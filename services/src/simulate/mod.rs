//! `fleetbus simulate`: a fleet of virtual trackers that behave like real
//! ones where it matters for reliability — records wait in a persistent
//! queue until the gateway acknowledged them, records whose ack was lost
//! are resent as the protocol's firmware resends them (re-packed,
//! re-encoded or byte for byte, `--resend`), and a device moves to its next
//! server when a connection fails. See docs/simulator.md.

mod config;
mod device;
mod memory;
pub mod protocols;
pub mod queue;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fleetbus_codec::{Position, Protocol};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use config::{gateway_spec, Config, Resolved};
pub use protocols::{Resend, SUPPORTED};
pub use queue::Queue;

/// One acknowledged record, as `--report` writes it (one JSON line each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reported {
    pub device_id: String,
    pub protocol: String,
    pub fix_time: DateTime<Utc>,
    pub latitude: f64,
    pub longitude: f64,
    pub speed: f64,
    pub course: f64,
    /// When the frame carrying it was sent (the attempt that was acked).
    pub sent_at: DateTime<Utc>,
    /// When the gateway acknowledged it.
    pub acked_at: DateTime<Utc>,
}

impl Reported {
    fn new(p: &Position, sent_at: DateTime<Utc>) -> Reported {
        Reported {
            device_id: p.device_id.clone(),
            protocol: p.protocol.clone(),
            fix_time: p.fix_time,
            latitude: p.latitude,
            longitude: p.longitude,
            speed: p.speed,
            course: p.course,
            sent_at,
            acked_at: Utc::now(),
        }
    }
}

/// Fleet-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub generated: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub frames_sent: AtomicU64,
    /// Frames sent again after a lost ack (re-packed, re-encoded or the same).
    pub resends: AtomicU64,
    pub reconnects: AtomicU64,
    pub connected: AtomicU64,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub generated: u64,
    pub acked: u64,
    pub sent: u64,
    /// Frames sent again after a lost ack.
    pub resends: u64,
    /// The `--resend` mode they were sent in.
    pub resend: Resend,
    pub reconnects: u64,
    pub pending: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = self.acked as f64 / self.elapsed.as_secs_f64().max(0.001);
        write!(
            f,
            "simulated fleet: {} records generated, {} acknowledged ({rate:.0}/s), {} sent (resends included), {} frames resent after a lost ack (--resend {}), {} reconnects, {} still pending, in {:.1} s",
            self.generated,
            self.acked,
            self.sent,
            self.resends,
            self.resend,
            self.reconnects,
            self.pending,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Shared by every device of the fleet.
pub(crate) struct Fleet {
    pub config: Config,
    /// The protocols and gateways the config names.
    pub resolved: Resolved,
    pub queue: Queue,
    pub stats: Stats,
    report: Option<Mutex<std::fs::File>>,
    /// Stop generating (duration over, or asked to stop).
    pub stop_generating: CancellationToken,
    /// Stop everything now (second signal).
    pub stop_all: CancellationToken,
}

impl Fleet {
    /// Appends `records` to the report, one line each, written before the
    /// queue forgets them: a crash in between reports a record twice
    /// (`fleetbus verify` counts each record once), never not at all.
    fn report(&self, records: &[Position], sent_at: DateTime<Utc>) -> std::io::Result<()> {
        use std::io::Write;
        let Some(file) = &self.report else {
            return Ok(());
        };
        let mut buf = Vec::new();
        for p in records {
            serde_json::to_writer(&mut buf, &Reported::new(p, sent_at))?;
            buf.push(b'\n');
        }
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(&buf)
    }
}

/// The IMEI of device `index` of fleet `fleet`: 15 digits.
pub fn imei(fleet: u32, index: usize) -> String {
    format!("35{:03}{:010}", fleet % 1000, index)
}

/// The devices of a fleet of `count` devices: device `index` speaks
/// `protocols[index % protocols.len()]` and sends the id
/// [`protocols::device_id`] makes of [`imei`]`(fleet, index)`. Nothing
/// when `protocols` is empty.
pub fn devices(fleet: u32, count: usize, protocols: &[Protocol]) -> Vec<(String, Protocol)> {
    if protocols.is_empty() {
        return Vec::new();
    }
    (0..count)
        .map(|index| {
            let protocol = protocols[index % protocols.len()];
            (
                protocols::device_id(protocol, &imei(fleet, index)),
                protocol,
            )
        })
        .collect()
}

/// Runs the fleet until every device delivered its records (or, without a
/// record limit, until `stop` is cancelled and what was generated is
/// delivered; a second cancel of `stop_now` ends at once). A wrong
/// `config` is a [`crate::config::ConfigError`] with every problem.
pub async fn run(
    config: Config,
    stop: CancellationToken,
    stop_now: CancellationToken,
) -> anyhow::Result<Summary> {
    let resolved = config.check()?;
    let queue = Queue::open(&config.queue)?;
    let report = match &config.report {
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )),
        None => None,
    };
    let started = Instant::now();
    let fleet = Arc::new(Fleet {
        config: config.clone(),
        resolved: resolved.clone(),
        queue,
        stats: Stats::default(),
        report,
        stop_generating: stop.clone(),
        stop_all: stop_now.clone(),
    });
    if let Some(d) = config.duration() {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            stop.cancel();
        });
    }
    let progress = config.progress().map(|every| {
        let fleet = fleet.clone();
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(every).await;
                let acked = fleet.stats.acked.load(Ordering::Relaxed);
                let rate = (acked - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), acked);
                eprintln!(
                    "sent {} acked {} resent frames {} pending {} connected {} reconnects {} rate {rate:.0}/s",
                    fleet.stats.sent.load(Ordering::Relaxed),
                    acked,
                    fleet.stats.resends.load(Ordering::Relaxed),
                    fleet.queue.pending().await.unwrap_or(0),
                    fleet.stats.connected.load(Ordering::Relaxed),
                    fleet.stats.reconnects.load(Ordering::Relaxed),
                );
            }
        })
    });
    let mut tasks = tokio::task::JoinSet::new();
    // The fleet `--print-devices` prints: device `i` is the i-th of
    // `devices` (its id is derived from the index the same way).
    let fleet_devices = devices(config.fleet, config.devices, &resolved.protocols);
    for (i, (_, protocol)) in fleet_devices.into_iter().enumerate() {
        let fleet = fleet.clone();
        tasks.spawn(device::run(fleet, i, protocol));
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "A simulated device failed.");
                first_error.get_or_insert(e);
                fleet.stop_all.cancel();
            }
            Err(e) => {
                first_error.get_or_insert(anyhow::anyhow!("device task: {e}"));
            }
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(Summary {
        generated: fleet.stats.generated.load(Ordering::Relaxed),
        acked: fleet.stats.acked.load(Ordering::Relaxed),
        sent: fleet.stats.sent.load(Ordering::Relaxed),
        resends: fleet.stats.resends.load(Ordering::Relaxed),
        resend: config.resend,
        reconnects: fleet.stats.reconnects.load(Ordering::Relaxed),
        pending: fleet.queue.pending().await?,
        elapsed: started.elapsed(),
    })
}
