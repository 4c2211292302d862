//! `fleetbus simulate`: a fleet of virtual trackers (see docs/simulator.md).
//!
//! Settings: the `[simulate]` table of `--config`, `FLEETBUS_SIMULATE__…`
//! variables, flags (`crate::config`). Exit status (`crate::exit`): 0 when
//! everything generated was acknowledged, 1 when records are still pending
//! in the queue (stopped early), 78 on a bad configuration.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use figment::providers::Serialized;
use figment::Figment;
use fleetbus_codec::Protocol;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigArgs, ConfigError, Effective};
use crate::exit::Exit;
use crate::simulate::{self, protocols, Config, Resend, SUPPORTED};

/// The flags: each sets one field of the `[simulate]` table ([`Settings`]),
/// over the config file and `FLEETBUS_SIMULATE__…` variables.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Virtual devices (default 10).
    #[arg(long)]
    pub devices: Option<usize>,
    /// Protocols, assigned to devices in turn: teltonika, gt06, h02, gps103,
    /// tk103, jt808, ruptela, meitrack, gl200 (not suntech: it has no
    /// acknowledgement). Default: teltonika,gt06.
    #[arg(long, value_delimiter = ',')]
    pub protocols: Option<Vec<Protocol>>,
    /// Fleet number (0-999), part of every IMEI: 35, the fleet, the
    /// device's index (default 1).
    #[arg(long)]
    pub fleet: Option<u32>,
    /// Milliseconds between two records of one device (default 1000).
    #[arg(long)]
    pub interval_ms: Option<u64>,
    /// Records per device, then stop once all are acknowledged (0, the
    /// default: run until stopped).
    #[arg(long)]
    pub records: Option<u64>,
    /// Stop generating after this many seconds, deliver what is queued, exit.
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Records per frame where the protocol allows several (Teltonika up to
    /// 255, Ruptela up to 40, Meitrack up to 64; others always 1; default 1).
    #[arg(long)]
    pub per_frame: Option<usize>,
    /// How a device resends records whose ack it did not get (a lost
    /// answer, a cut connection; default firmware).
    #[arg(long, value_enum)]
    pub resend: Option<Resend>,
    /// Gateways of one protocol, in the order devices try them:
    /// `teltonika=10.0.0.1:5027,10.0.0.2:5027`. Repeatable. Protocols
    /// without one use --hosts and --port-offsets.
    #[arg(long = "gateway", value_name = "PROTOCOL=ADDR[,ADDR…]")]
    pub gateways: Vec<String>,
    /// Gateway hosts for protocols without --gateway (default 127.0.0.1).
    #[arg(long, value_delimiter = ',')]
    pub hosts: Option<Vec<String>>,
    /// Added to each protocol's default port, one gateway per offset (the
    /// default, 0,100,200, matches `just up`: three gateways).
    #[arg(long, value_delimiter = ',')]
    pub port_offsets: Option<Vec<u16>>,
    /// The fleet's outbound queue (SQLite; default fleetbus-simulator.db); a
    /// restarted simulator resumes from it. `:memory:` keeps it in memory
    /// instead: faster, lost when the simulator stops (benchmarks).
    #[arg(long)]
    pub queue: Option<PathBuf>,
    /// Append every acknowledged record to this file (JSON lines), for `fleetbus verify`.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Seconds to wait for an acknowledgement before trying the next
    /// gateway (default 45).
    #[arg(long)]
    pub ack_timeout_secs: Option<u64>,
    /// Seconds between progress lines on stderr (0: none; default 2).
    #[arg(long)]
    pub progress_secs: Option<u64>,
    /// `--config` (its `[simulate]` table), `--print-config`, `--log-json`.
    #[command(flatten)]
    pub cfg: ConfigArgs,
}

/// The `[simulate]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub devices: usize,
    pub protocols: Vec<String>,
    pub fleet: u32,
    pub interval_ms: u64,
    pub records: u64,
    pub duration_secs: Option<u64>,
    pub per_frame: usize,
    pub resend: Resend,
    pub gateways: Vec<String>,
    pub hosts: Vec<String>,
    pub port_offsets: Vec<u16>,
    pub queue: PathBuf,
    pub report: Option<PathBuf>,
    pub ack_timeout_secs: u64,
    pub progress_secs: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            devices: 10,
            protocols: vec!["teltonika".into(), "gt06".into()],
            fleet: 1,
            interval_ms: 1000,
            records: 0,
            duration_secs: None,
            per_frame: 1,
            resend: Resend::Firmware,
            gateways: Vec::new(),
            hosts: vec!["127.0.0.1".into()],
            port_offsets: vec![0, 100, 200],
            queue: "fleetbus-simulator.db".into(),
            report: None,
            ack_timeout_secs: 45,
            progress_secs: 2,
        }
    }
}

impl Args {
    /// The flags that were given, as the last configuration layer.
    fn flags(&self) -> Figment {
        let mut f = Figment::new();
        macro_rules! given {
            ($($key:ident: $value:expr),* $(,)?) => {
                $(if let Some(v) = $value {
                    f = f.merge(Serialized::default(stringify!($key), v));
                })*
            };
        }
        let protocols = self
            .protocols
            .as_ref()
            .map(|p| p.iter().map(|p| p.name()).collect::<Vec<_>>());
        given! {
            devices: self.devices,
            protocols: protocols,
            fleet: self.fleet,
            interval_ms: self.interval_ms,
            records: self.records,
            duration_secs: self.duration_secs,
            per_frame: self.per_frame,
            resend: self.resend,
            gateways: (!self.gateways.is_empty()).then_some(&self.gateways),
            hosts: self.hosts.as_ref(),
            port_offsets: self.port_offsets.as_ref(),
            queue: self.queue.as_ref(),
            report: self.report.as_ref(),
            ack_timeout_secs: self.ack_timeout_secs,
            progress_secs: self.progress_secs,
        }
        f
    }

    /// Defaults → `[simulate]` of `--config` → `FLEETBUS_SIMULATE__…` → flags.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        crate::config::table(self.cfg.config.as_deref(), "simulate", self.flags())
    }
}

impl Settings {
    /// The simulator's configuration; every problem at once.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        if self.devices == 0 {
            problems.push("--devices must be > 0".to_string());
        }
        if self.interval_ms == 0 {
            problems.push("--interval-ms must be > 0".to_string());
        }
        if self.per_frame == 0 || self.per_frame > 255 {
            problems.push("--per-frame must be 1..=255".to_string());
        }
        let mut speak = Vec::new();
        for name in &self.protocols {
            match name.parse::<Protocol>() {
                Ok(p) => speak.push(p),
                Err(e) => problems.push(format!("protocols: {e}")),
            }
        }
        for p in &speak {
            if let Some(why) = protocols::unsupported_reason(*p) {
                problems.push(format!(
                    "the simulator cannot speak {p}: {why} (it speaks {})",
                    SUPPORTED.map(|p| p.name()).join(", ")
                ));
            }
        }
        let mut gateways: Vec<(Protocol, Vec<SocketAddr>)> = Vec::new();
        for spec in &self.gateways {
            match parse_gateway(spec) {
                Ok(g) => gateways.push(g),
                Err(e) => problems.push(format!("--gateway {spec}: {e:#}")),
            }
        }
        for p in &speak {
            if gateways.iter().any(|(q, _)| q == p) {
                continue;
            }
            let mut addrs = Vec::new();
            for host in &self.hosts {
                for off in &self.port_offsets {
                    let port = p.default_port().checked_add(*off);
                    match port.map(|port| resolve(&format!("{host}:{port}"))) {
                        Some(Ok(a)) => addrs.push(a),
                        Some(Err(e)) => problems.push(format!("{host}: {e:#}")),
                        None => problems.push(format!("port offset {off} is too large")),
                    }
                }
            }
            gateways.push((*p, addrs));
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Config {
            devices: self.devices,
            protocols: speak,
            fleet: self.fleet,
            interval: Duration::from_millis(self.interval_ms),
            records: self.records,
            duration: self.duration_secs.map(Duration::from_secs),
            per_frame: self.per_frame,
            resend: self.resend,
            gateways,
            queue: self.queue.clone(),
            report: self.report.clone(),
            ack_timeout: Duration::from_secs(self.ack_timeout_secs.max(1)),
            progress: (self.progress_secs > 0).then(|| Duration::from_secs(self.progress_secs)),
        })
    }
}

fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .with_context(|| format!("{addr} resolves to nothing"))
}

fn parse_gateway(spec: &str) -> anyhow::Result<(Protocol, Vec<SocketAddr>)> {
    let (proto, addrs) = spec
        .split_once('=')
        .context("expected PROTOCOL=ADDR[,ADDR…]")?;
    let protocol: Protocol = proto.parse()?;
    let addrs = addrs
        .split(',')
        .filter(|a| !a.trim().is_empty())
        .map(|a| resolve(a.trim()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if addrs.is_empty() {
        bail!("no address");
    }
    Ok((protocol, addrs))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = args.settings()?;
    if args.cfg.print_config {
        Effective::new().table("simulate", &settings)?.print()?;
        return Ok(Exit::Ok.into());
    }
    let config = settings.config()?;
    crate::ops::logging::init(args.cfg.log_json);
    let runtime = crate::cli::service_runtime()?;
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        let stop_now = CancellationToken::new();
        {
            let (stop, stop_now) = (stop.clone(), stop_now.clone());
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                loop {
                    tokio::select! {
                        // Ctrl-C: stop generating and deliver what is queued;
                        // a second one stops at once (the queue keeps it).
                        _ = int.recv() => {
                            if stop.is_cancelled() {
                                stop_now.cancel();
                            } else {
                                eprintln!("stopping: delivering what is queued (Ctrl-C again to stop now)");
                                stop.cancel();
                            }
                        }
                        _ = term.recv() => {
                            stop.cancel();
                            stop_now.cancel();
                        }
                    }
                }
            });
        }
        let summary = simulate::run(config, stop, stop_now).await?;
        eprintln!("{summary}");
        Ok(Exit::problems_unless(summary.pending == 0).into())
    })
}
