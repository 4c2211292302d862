//! `fleetbus simulate`: a fleet of virtual trackers (see docs/simulator.md).
//!
//! Settings: the `[simulate]` table of `--config`, `FLEETBUS_SIMULATE__…`
//! variables, flags (`crate::config`). Exit status (`crate::exit`): 0 when
//! everything generated was acknowledged, 1 when records are still pending
//! in the queue (stopped early), 78 on a bad configuration.
//!
//! `--print-devices` prints the fleet's devices (`id,protocol`, the CSV
//! `fleetbus device import` reads) and exits without connecting.

use std::path::PathBuf;
use std::process::ExitCode;

use figment::providers::Serialized;
use figment::Figment;
use fleetbus_codec::Protocol;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigArgs, ConfigError, Effective};
use crate::exit::Exit;
use crate::simulate::{self, Config, Resend};

/// The flags: each sets one field of the `[simulate]` table ([`Config`]),
/// over the config file and `FLEETBUS_SIMULATE__…` variables.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Virtual devices (default 10).
    #[arg(long)]
    pub devices: Option<usize>,
    /// Protocols, assigned to devices in turn: teltonika, gt06, h02, gps103,
    /// tk103, jt808, ruptela, meitrack, gl200, wialon, watch (not suntech:
    /// it has no acknowledgement). Default: teltonika,gt06.
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
    /// Print the fleet's devices as CSV lines `id,protocol` (the ids its
    /// devices send, no header) and exit, connecting nowhere: `fleetbus
    /// simulate --print-devices … | fleetbus device import -` registers the fleet.
    #[arg(long)]
    pub print_devices: bool,
    /// `--config` (its `[simulate]` table), `--print-config`, `--log-json`.
    #[command(flatten)]
    pub cfg: ConfigArgs,
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
    pub fn config(&self) -> Result<Config, ConfigError> {
        crate::config::table(self.cfg.config.as_deref(), "simulate", self.flags())
    }
}

/// `--print-devices`: one `id,protocol` line per device. A reader that
/// stops early (`| head`) is not an error.
fn print_devices(devices: &[(String, Protocol)]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = devices
        .iter()
        .try_for_each(|(id, protocol)| writeln!(out, "{id},{protocol}"))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    if args.cfg.print_config {
        Effective::new().table("simulate", &config)?.print()?;
        return Ok(Exit::Ok.into());
    }
    if args.print_devices {
        print_devices(&config.fleet_devices()?)?;
        return Ok(Exit::Ok.into());
    }
    // `simulate::run` checks the table (every problem at once; exit 78).
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
