//! The whole system as separate processes, as it runs in production: a
//! three-node cluster, one gateway per node, hamsters and monkeys, and the
//! simulator and `fleetbus verify` as the device side and the judge. For
//! the fault suite and the pipeline benchmark.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Context};
use tempfile::TempDir;

use crate::{fleetbus_bin, http, wait_for, Cluster, ClusterOptions, Proc, Role, Spec};

/// What to run beside the cluster.
#[derive(Clone, Debug)]
pub struct SystemOptions {
    pub gateways: usize,
    pub hamsters: usize,
    pub monkeys: usize,
    /// Workers per hamster/monkey process (`--concurrency`).
    pub concurrency: usize,
    /// Extra lines for every gateway's `[gateway]` table.
    pub gateway_toml: String,
    pub cluster: ClusterOptions,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            gateways: 3,
            hamsters: 1,
            monkeys: 1,
            concurrency: 2,
            gateway_toml: String::new(),
            cluster: ClusterOptions::default(),
        }
    }
}

/// One gateway process and its ports.
pub struct GatewayProc {
    pub proc: Proc,
    /// Where devices (and the test) reach it: loopback, or its lab host's
    /// device-network address.
    pub host: String,
    pub teltonika: u16,
    pub gt06: u16,
    pub http: u16,
}

/// A running system; everything is stopped when it is dropped.
pub struct System {
    pub gateways: Vec<GatewayProc>,
    pub hamsters: Vec<Proc>,
    pub monkeys: Vec<Proc>,
    // Dropped after the processes above: they die before their cluster.
    pub cluster: Cluster,
    bin: PathBuf,
    dir: TempDir,
}

impl System {
    pub async fn start(opts: SystemOptions) -> anyhow::Result<System> {
        let bin = fleetbus_bin()?;
        let cluster = Cluster::start_with(opts.cluster.clone()).await?;
        let dir = tempfile::Builder::new()
            .prefix("fleetbus-system-")
            .tempdir()?;
        let mut sys = System {
            gateways: Vec::new(),
            hamsters: Vec::new(),
            monkeys: Vec::new(),
            cluster,
            bin,
            dir,
        };
        let out = sys.fleetbus(Role::Admin, &["provision"]).await?;
        if !out.status.success() {
            bail!("provision failed: {}", text(&out));
        }
        let ports = sys.cluster.spare_ports(3 * opts.gateways)?;
        for i in 0..opts.gateways {
            let (teltonika, gt06, http) = (ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]);
            let conf = sys.dir.path().join(format!("gateway-{i}.toml"));
            // In a network lab gateway i runs in host i, like the node.
            let lab = opts.cluster.lab.as_ref().filter(|l| i < l.hosts());
            let (bind, host) = match lab {
                Some(l) => ("0.0.0.0".to_string(), l.device_ip(i)),
                None => ("127.0.0.1".to_string(), "127.0.0.1".to_string()),
            };
            let mut toml = format!(
                "[gateway]\nid = \"gw-{i}\"\nbind = \"{bind}\"\nhttp = \"{bind}:{http}\"\ndrain_delay_secs = 0\n{}\n",
                opts.gateway_toml
            );
            // Teltonika and GT06 (what the simulator speaks) on this
            // gateway's ports; the other protocols off.
            for protocol in fleetbus_codec::Protocol::ALL {
                let name = protocol.name();
                let port = match name {
                    "teltonika" => teltonika,
                    "gt06" => gt06,
                    _ => 0,
                };
                toml.push_str(&format!(
                    "[gateway.protocols.{name}]\nenabled = {}\nport = {port}\n",
                    port != 0
                ));
            }
            std::fs::write(&conf, toml)?;
            let spec = match lab {
                Some(l) => Spec::new(format!("gateway-{i}"), "ip")
                    .args(["netns", "exec", &l.ns(i)])
                    .arg(sys.bin.display().to_string()),
                None => Spec::new(format!("gateway-{i}"), &sys.bin),
            };
            let spec = spec
                .args(["gateway", "--config"])
                .arg(conf.display().to_string())
                .envs(sys.cluster.service_env(Role::Gateway));
            let proc = Proc::start(spec, sys.dir.path())?;
            sys.gateways.push(GatewayProc {
                proc,
                host,
                teltonika,
                gt06,
                http,
            });
        }
        for i in 0..opts.hamsters {
            let p = sys.worker("hamster", i, opts.concurrency)?;
            sys.hamsters.push(p);
        }
        for i in 0..opts.monkeys {
            let p = sys.worker("monkey", i, opts.concurrency)?;
            sys.monkeys.push(p);
        }
        if let Err(e) = sys.wait_ready().await {
            let mut logs = String::new();
            for p in sys
                .gateways
                .iter()
                .map(|g| &g.proc)
                .chain(&sys.hamsters)
                .chain(&sys.monkeys)
            {
                logs.push_str(&format!("--- {} ---\n{}\n", p.name(), p.log_tail(10)));
            }
            bail!("{e:#}\n{logs}");
        }
        Ok(sys)
    }

    fn worker(&self, kind: &str, i: usize, concurrency: usize) -> anyhow::Result<Proc> {
        let role = if kind == "hamster" {
            Role::Hamster
        } else {
            Role::Monkey
        };
        let spec = Spec::new(format!("{kind}-{i}"), &self.bin)
            .args([kind, "--concurrency", &concurrency.to_string()])
            .envs(self.cluster.service_env(role));
        Proc::start(spec, self.dir.path())
    }

    /// Every gateway ready, every worker registered.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        for g in &self.gateways {
            let (host, port) = (g.host.as_str(), g.http);
            wait_for(
                "a gateway is ready",
                Duration::from_secs(60),
                || async move {
                    Ok(
                        matches!(http::get_at(host, port, "/readyz").await, Ok((200, _)))
                            .then_some(()),
                    )
                },
            )
            .await?;
        }
        let want = (self.hamsters.len(), self.monkeys.len());
        wait_for(
            "the workers are registered",
            Duration::from_secs(60),
            || async {
                let (h, m) = self.registered().await?;
                Ok((h >= want.0 && m >= want.1).then_some(()))
            },
        )
        .await
    }

    /// Registered (hamster, monkey) processes, from `fleetbus status`.
    pub async fn registered(&self) -> anyhow::Result<(usize, usize)> {
        let out = self.fleetbus(Role::Admin, &["status", "--json"]).await?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("status output: {}", text(&out)))?;
        let count = |name: &str| {
            status["workers"]
                .as_array()
                .map(|w| w.iter().filter(|w| w["name"] == name).count())
                .unwrap_or(0)
        };
        Ok((count("hamster"), count("monkey")))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `fleetbus <args>` logged in as `role`, to completion.
    pub async fn fleetbus(&self, role: Role, args: &[&str]) -> anyhow::Result<Output> {
        Ok(tokio::process::Command::new(&self.bin)
            .args(args)
            .envs(self.cluster.service_env(role))
            .output()
            .await?)
    }

    /// `--gateway` arguments naming every gateway, in order.
    pub fn gateway_args(&self) -> Vec<String> {
        let list = |f: fn(&GatewayProc) -> u16| {
            self.gateways
                .iter()
                .map(|g| format!("{}:{}", g.host, f(g)))
                .collect::<Vec<_>>()
                .join(",")
        };
        vec![
            "--gateway".into(),
            format!("teltonika={}", list(|g| g.teltonika)),
            "--gateway".into(),
            format!("gt06={}", list(|g| g.gt06)),
        ]
    }

    /// A simulator process spec: `args` plus the gateways, a queue (unless
    /// `args` name one) and a report in the system's directory (`<name>.db`,
    /// `<name>.jsonl`).
    pub fn simulator(&self, name: &str, args: &[&str]) -> Spec {
        let queue = self.dir.path().join(format!("{name}.db"));
        let report = self.dir.path().join(format!("{name}.jsonl"));
        let queue = if args.contains(&"--queue") {
            vec![]
        } else {
            vec!["--queue".to_string(), queue.display().to_string()]
        };
        Spec::new(name, &self.bin)
            .arg("simulate")
            .args(args.iter().copied())
            .args(self.gateway_args())
            .args(queue)
            .args(["--report".to_string(), report.display().to_string()])
            .args(["--progress-secs", "1"])
    }

    /// Lines in a simulator's report so far (acknowledged records).
    pub fn reported(&self, name: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.jsonl")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Creates the verify consumer; call before the run.
    pub async fn prepare_verify(&self, consumer: &str) -> anyhow::Result<()> {
        let out = self
            .fleetbus(
                Role::Admin,
                &["verify", "--prepare", "--consumer", consumer],
            )
            .await?;
        if !out.status.success() {
            bail!("verify --prepare failed: {}", text(&out));
        }
        Ok(())
    }

    /// `fleetbus verify` of simulator `name`'s report; Ok(output) when it
    /// found nothing missing, duplicated or altered.
    pub async fn verify(&self, consumer: &str, name: &str) -> anyhow::Result<String> {
        let report = self.dir.path().join(format!("{name}.jsonl"));
        let report = report.display().to_string();
        let out = self
            .fleetbus(
                Role::Admin,
                &[
                    "verify",
                    "--consumer",
                    consumer,
                    "--report",
                    &report,
                    "--idle-secs",
                    "20",
                ],
            )
            .await?;
        let t = text(&out);
        if !out.status.success() {
            bail!("verify failed:\n{t}");
        }
        Ok(t)
    }
}

/// stdout and stderr of a finished process.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
