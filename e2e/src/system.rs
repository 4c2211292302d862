//! The whole system as separate processes, as it runs in production: a
//! three-node cluster, one gateway per node, hamsters and monkeys, and the
//! simulator and `fleetbus verify` as the device side and the judge. For
//! the fault suite and the pipeline benchmark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Context};
use tempfile::TempDir;

use fleetbus_wire::names;

use crate::{fleetbus_bin, http, wait_for, Cluster, ClusterOptions, Proc, Role, Spec};

/// What to run beside the cluster.
#[derive(Clone, Debug)]
pub struct SystemOptions {
    pub gateways: usize,
    pub hamsters: usize,
    pub monkeys: usize,
    /// Extra lines for every gateway's `[gateway]` table.
    pub gateway_toml: String,
    /// A config file every program of the system reads (`--config`):
    /// `[topology]`, `[hamster]`, `[monkey]` tables, for scenarios that
    /// scale timeouts and sizes down. Must not have a `[gateway]` table.
    pub config_toml: String,
    /// Protocols the gateways listen for (the simulator's `--protocols`).
    pub protocols: Vec<&'static str>,
    /// Of those, the ones also served over UDP, on the same port number.
    pub udp: Vec<&'static str>,
    pub cluster: ClusterOptions,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            gateways: 3,
            hamsters: 1,
            monkeys: 1,
            gateway_toml: String::new(),
            config_toml: String::new(),
            protocols: vec!["teltonika", "gt06"],
            udp: Vec::new(),
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
    /// The TCP port of each protocol it listens for.
    pub ports: BTreeMap<String, u16>,
    pub http: u16,
}

impl GatewayProc {
    /// Its Teltonika port.
    pub fn teltonika(&self) -> u16 {
        self.ports["teltonika"]
    }
}

/// A judging consumer that follows PARSED during the run (`fleetbus verify
/// --tap`), so it never holds what it judges.
struct Tap {
    consumer: String,
    file: PathBuf,
    proc: Proc,
}

/// A running system; everything is stopped when it is dropped.
pub struct System {
    pub gateways: Vec<GatewayProc>,
    pub hamsters: Vec<Proc>,
    pub monkeys: Vec<Proc>,
    /// `fleetbus janitor`, sweeping RAW and PARSED (one: production runs
    /// one per node; a sweep is cheap and several change nothing).
    pub janitors: Vec<Proc>,
    taps: Vec<Tap>,
    // Dropped after the processes above: they die before their cluster.
    pub cluster: Cluster,
    bin: PathBuf,
    /// The shared config file (`SystemOptions::config_toml`), if any.
    config: Option<PathBuf>,
    dir: TempDir,
}

impl System {
    pub async fn start(opts: SystemOptions) -> anyhow::Result<System> {
        let bin = fleetbus_bin()?;
        let cluster = Cluster::start_with(opts.cluster.clone()).await?;
        let dir = tempfile::Builder::new()
            .prefix("fleetbus-system-")
            .tempdir()?;
        let config = (!opts.config_toml.is_empty()).then(|| dir.path().join("fleetbus.toml"));
        if let Some(path) = &config {
            std::fs::write(path, &opts.config_toml)?;
        }
        let mut sys = System {
            gateways: Vec::new(),
            hamsters: Vec::new(),
            monkeys: Vec::new(),
            janitors: Vec::new(),
            taps: Vec::new(),
            cluster,
            bin,
            config,
            dir,
        };
        let out = sys.fleetbus(Role::Admin, &["provision"]).await?;
        if !out.status.success() {
            bail!("provision failed: {}", text(&out));
        }
        let per = opts.protocols.len() + 1;
        let ports = sys.cluster.spare_ports(per * opts.gateways)?;
        for i in 0..opts.gateways {
            let mine = &ports[per * i..per * (i + 1)];
            let http = mine[opts.protocols.len()];
            let listen: BTreeMap<String, u16> = opts
                .protocols
                .iter()
                .zip(mine)
                .map(|(p, port)| (p.to_string(), *port))
                .collect();
            let conf = sys.dir.path().join(format!("gateway-{i}.toml"));
            // In a network lab gateway i runs in host i, like the node.
            let lab = opts.cluster.lab.as_ref().filter(|l| i < l.hosts());
            let (bind, host) = match lab {
                Some(l) => ("0.0.0.0".to_string(), l.device_ip(i)),
                None => ("127.0.0.1".to_string(), "127.0.0.1".to_string()),
            };
            let mut toml = format!(
                "{}\n[gateway]\nid = \"gw-{i}\"\nbind = \"{bind}\"\nhttp = \"{bind}:{http}\"\ndrain_delay_secs = 0\n{}\n",
                opts.config_toml, opts.gateway_toml
            );
            // The protocols the simulator speaks on this gateway's ports
            // (TCP, and UDP where asked); the others off.
            for protocol in fleetbus_codec::Protocol::ALL {
                let name = protocol.name();
                let port = listen.get(name).copied().unwrap_or(0);
                toml.push_str(&format!(
                    "[gateway.protocols.{name}]\nenabled = {}\nport = {port}\nudp = {}\n",
                    port != 0,
                    opts.udp.contains(&name),
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
                ports: listen,
                http,
            });
        }
        for i in 0..opts.hamsters {
            let p = sys.worker("hamster", i)?;
            sys.hamsters.push(p);
        }
        for i in 0..opts.monkeys {
            let p = sys.worker("monkey", i)?;
            sys.monkeys.push(p);
        }
        let janitor = sys.worker("janitor", 0)?;
        sys.janitors.push(janitor);
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

    fn worker(&self, kind: &str, i: usize) -> anyhow::Result<Proc> {
        let role = match kind {
            "hamster" => Role::Hamster,
            "janitor" => Role::Janitor,
            _ => Role::Monkey,
        };
        let spec = Spec::new(format!("{kind}-{i}"), &self.bin)
            .args([kind])
            .args(self.config_args())
            .envs(self.cluster.service_env(role));
        Proc::start(spec, self.dir.path())
    }

    /// `--config <file>` when the system has a shared config file.
    fn config_args(&self) -> Vec<String> {
        match &self.config {
            Some(path) => vec!["--config".into(), path.display().to_string()],
            None => Vec::new(),
        }
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

    /// Runs `fleetbus <args>` logged in as `role`, to completion. The
    /// system's config file goes along to `provision`.
    pub async fn fleetbus(&self, role: Role, args: &[&str]) -> anyhow::Result<Output> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args).envs(self.cluster.service_env(role));
        if let Some(path) = &self.config {
            cmd.env("FLEETBUS_CONFIG", path);
        }
        Ok(cmd.output().await?)
    }

    /// `--gateway` arguments naming every gateway, in order, for every
    /// protocol they listen for.
    pub fn gateway_args(&self) -> Vec<String> {
        let protocols: Vec<String> = self
            .gateways
            .first()
            .map(|g| g.ports.keys().cloned().collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for p in protocols {
            let list: Vec<String> = self
                .gateways
                .iter()
                .map(|g| format!("{}:{}", g.host, g.ports[&p]))
                .collect();
            out.push("--gateway".into());
            out.push(format!("{p}={}", list.join(",")));
        }
        out
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
        // Arguments naming their own gateways (proxies) replace the system's.
        let gateways = if args.contains(&"--gateway") {
            vec![]
        } else {
            self.gateway_args()
        };
        Spec::new(name, &self.bin)
            .arg("simulate")
            .args(args.iter().copied())
            .args(gateways)
            .args(queue)
            .args(["--report".to_string(), report.display().to_string()])
            .args(["--progress-secs", "1"])
    }

    /// Registers the devices of a simulator run with `args` (`fleetbus
    /// simulate --print-devices` into `fleetbus device import`), as an
    /// operator would: the gateways run with the default admission,
    /// `known`, and take registered devices only. Done before the
    /// simulator starts and waited on until every gateway's copy of the
    /// registry holds them, so that no device is refused as unknown.
    pub async fn register_fleet(&self, name: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut list = vec!["simulate", "--print-devices"];
        list.extend_from_slice(args);
        let out = self.fleetbus(Role::Admin, &list).await?;
        if !out.status.success() {
            bail!("simulate --print-devices failed: {}", text(&out));
        }
        let devices = String::from_utf8_lossy(&out.stdout).lines().count();
        let csv = self.dir.path().join(format!("{name}-devices.csv"));
        std::fs::write(&csv, &out.stdout)?;
        let csv = csv.display().to_string();
        let out = self
            .fleetbus(Role::Admin, &["device", "import", csv.as_str()])
            .await?;
        if !out.status.success() {
            bail!("device import failed: {}", text(&out));
        }
        for g in &self.gateways {
            wait_for(
                "the gateway's copy of the registry holds the fleet",
                Duration::from_secs(60),
                || async {
                    let (_, metrics) = http::get_at(&g.host, g.http, "/metrics").await?;
                    let known = metrics
                        .lines()
                        .find_map(|l| l.strip_prefix("fleetbus_gateway_registry_devices "))
                        .and_then(|v| v.trim().parse::<i64>().ok())
                        .unwrap_or(-1);
                    Ok((known >= devices as i64).then_some(()))
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Lines in a simulator's report so far (acknowledged records).
    pub fn reported(&self, name: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.jsonl")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Creates the judging consumer and starts following it (`fleetbus
    /// verify --tap`); call before the run. The tap acknowledges what it
    /// wrote down, so it holds nothing in PARSED: the retention being judged
    /// is the monkeys' alone.
    pub async fn prepare_verify(&mut self, consumer: &str) -> anyhow::Result<()> {
        let out = self
            .fleetbus(
                Role::Admin,
                &["verify", "--prepare", "--consumer", consumer],
            )
            .await?;
        if !out.status.success() {
            bail!("verify --prepare failed: {}", text(&out));
        }
        let file = self.dir.path().join(format!("{consumer}.tap.jsonl"));
        let spec = Spec::new(format!("tap-{consumer}"), &self.bin)
            .args(["verify", "--consumer", consumer, "--tap"])
            .arg(file.display().to_string())
            .envs(self.cluster.service_env(Role::Admin));
        let proc = Proc::start(spec, self.dir.path())?;
        self.taps.push(Tap {
            consumer: consumer.to_string(),
            file,
            proc,
        });
        Ok(())
    }

    /// Waits until the whole pipeline drained: RAW and PARSED hold nothing
    /// and no consumer has anything pending or unacknowledged.
    pub async fn wait_drained(&self, within: Duration) -> anyhow::Result<()> {
        let admin = async_nats::jetstream::new(self.cluster.connect(Role::Admin).await?);
        let last = std::sync::Mutex::new(String::new());
        let drained = wait_for("the pipeline drained", within, || async {
            let mut left = Vec::new();
            for stream in [names::RAW, names::PARSED] {
                let mut s = admin.get_stream(stream).await?;
                let n = s.info().await?.state.messages;
                let mut consumers = s.consumers();
                let mut any = false;
                use futures::StreamExt;
                while let Some(c) = consumers.next().await {
                    let c = c?;
                    any = true;
                    if c.num_pending > 0 || c.num_ack_pending > 0 {
                        left.push(format!(
                            "{stream}/{}: {} pending, {} ack pending, {} redelivered",
                            c.name, c.num_pending, c.num_ack_pending, c.num_redelivered
                        ));
                    }
                }
                // With consumers that have nothing pending, what the stream
                // still holds every one of them acknowledged: the stage's
                // sweep purges it within 10 s (a stage that is not
                // running leaves it). Without consumers, it is simply left.
                if n > 0 && !any {
                    left.push(format!("{stream} holds {n} and has no consumer"));
                }
            }
            let done = left.is_empty();
            *last.lock().unwrap() = left.join("; ");
            Ok(done.then_some(()))
        })
        .await;
        drained.with_context(|| {
            let mut logs = String::new();
            for p in self.hamsters.iter().chain(&self.monkeys) {
                logs.push_str(&format!("--- {} ---\n{}\n", p.name(), p.log_tail(8)));
            }
            format!("left: {}\n{logs}", last.lock().unwrap())
        })
    }

    /// Judges simulator `name`'s report after the pipeline drained: every
    /// acknowledged record in PARSED exactly once and unaltered (what the tap
    /// of `consumer` wrote down), and the monkeys' effects — every device's
    /// latest position, each of its events once (`fleetbus verify
    /// --effects`). Ok(output) when all holds.
    pub async fn verify(&mut self, consumer: &str, name: &str) -> anyhow::Result<String> {
        self.verify_with(consumer, name, &[]).await
    }

    /// [`System::verify`] with more `fleetbus verify` arguments.
    pub async fn verify_with(
        &mut self,
        consumer: &str,
        name: &str,
        more: &[&str],
    ) -> anyhow::Result<String> {
        self.wait_drained(Duration::from_secs(120)).await?;
        let i = self
            .taps
            .iter()
            .position(|t| t.consumer == consumer)
            .context("no tap of that consumer: call prepare_verify first")?;
        let mut tap = self.taps.remove(i);
        let exit = tap.proc.terminate(Duration::from_secs(30)).await;
        if !exit.is_some_and(|e| e.success()) {
            bail!(
                "the tap did not stop cleanly ({exit:?}): {}",
                tap.proc.log_tail(10)
            );
        }
        let report = self.dir.path().join(format!("{name}.jsonl"));
        let tap_file = tap.file.display().to_string();
        let report = report.display().to_string();
        let mut args = vec![
            "verify",
            "--from-tap",
            &tap_file,
            "--report",
            &report,
            "--effects",
        ];
        args.extend_from_slice(more);
        let out = self.fleetbus(Role::Admin, &args).await?;
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

/// Like the cluster's: `FLEETBUS_E2E_KEEP=1` keeps the processes' logs.
impl Drop for System {
    fn drop(&mut self) {
        if std::env::var_os("FLEETBUS_E2E_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("fleetbus-e2e: kept {}", self.dir.path().display());
        }
    }
}
