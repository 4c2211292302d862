//! `fleetbus simulate`: a fleet of virtual trackers (see docs/simulator.md).
//!
//! Exit status: 0 when everything generated was acknowledged, 1 when
//! records are still pending in the queue (stopped early), 2 on bad
//! arguments.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use fleetbus_codec::Protocol;
use tokio_util::sync::CancellationToken;

use crate::simulate::{self, protocols, Config, Resend, SUPPORTED};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Virtual devices.
    #[arg(long, default_value_t = 10)]
    pub devices: usize,
    /// Protocols, assigned to devices in turn: teltonika, gt06, h02, gps103,
    /// tk103, jt808, ruptela, meitrack, gl200 (not suntech: it has no
    /// acknowledgement).
    #[arg(long, value_delimiter = ',', default_value = "teltonika,gt06")]
    pub protocols: Vec<Protocol>,
    /// Fleet number (0-999), part of every IMEI: 35<fleet><device index>.
    #[arg(long, default_value_t = 1)]
    pub fleet: u32,
    /// Milliseconds between two records of one device.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Records per device, then stop once all are acknowledged (0: run until stopped).
    #[arg(long, default_value_t = 0)]
    pub records: u64,
    /// Stop generating after this many seconds, deliver what is queued, exit.
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Records per frame where the protocol allows several (Teltonika up to
    /// 255, Ruptela up to 40, Meitrack up to 64; others always 1).
    #[arg(long, default_value_t = 1)]
    pub per_frame: usize,
    /// How a device resends records whose ack it did not get (a lost
    /// answer, a cut connection).
    #[arg(long, value_enum, default_value_t = Resend::Firmware)]
    pub resend: Resend,
    /// Gateways of one protocol, in the order devices try them:
    /// `teltonika=10.0.0.1:5027,10.0.0.2:5027`. Repeatable. Protocols
    /// without one use --hosts and --port-offsets.
    #[arg(long = "gateway", value_name = "PROTOCOL=ADDR[,ADDR…]")]
    pub gateways: Vec<String>,
    /// Gateway hosts for protocols without --gateway.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    pub hosts: Vec<String>,
    /// Added to each protocol's default port, one gateway per offset (the
    /// default matches `just up`: three gateways on +0, +100, +200).
    #[arg(long, value_delimiter = ',', default_value = "0,100,200")]
    pub port_offsets: Vec<u16>,
    /// The fleet's outbound queue (SQLite); a restarted simulator resumes from
    /// it. `:memory:` keeps it in memory instead: faster, lost when the
    /// simulator stops (benchmarks).
    #[arg(long, default_value = "fleetbus-simulator.db")]
    pub queue: PathBuf,
    /// Append every acknowledged record to this file (JSON lines), for `fleetbus verify`.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Seconds to wait for an acknowledgement before trying the next gateway.
    #[arg(long, default_value_t = 45)]
    pub ack_timeout_secs: u64,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, default_value_t = 2)]
    pub progress_secs: u64,
}

impl Args {
    fn config(&self) -> anyhow::Result<Config> {
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
        for p in &self.protocols {
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
        for p in &self.protocols {
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
            bail!("invalid arguments:\n  - {}", problems.join("\n  - "));
        }
        Ok(Config {
            devices: self.devices,
            protocols: self.protocols.clone(),
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
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleetbus simulate: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    crate::ops::logging::init(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
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
        Ok(if summary.pending == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}
