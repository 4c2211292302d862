//! At most N clusters at once on this machine (default 2, from
//! `FLEETBUS_E2E_MAX_CLUSTERS`), across every test process: each running
//! cluster holds an exclusive lock on one slot file in the temporary
//! directory. Each slot owns a range of 1000 ports below the kernel's
//! ephemeral range, so two harness clusters never pick the same ports and no
//! outgoing connection takes one between the check and nats-server's bind.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const DEFAULT_SLOTS: usize = 2;
const MAX_SLOTS: usize = 12;
const FIRST_PORT: u16 = 20000;
const PORTS_PER_SLOT: u16 = 1000;

/// An exclusive claim on one slot, released on drop (and by the kernel if
/// the process dies).
#[derive(Debug)]
pub struct Slot {
    pub index: usize,
    _file: File,
}

fn slot_count() -> usize {
    std::env::var("FLEETBUS_E2E_MAX_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SLOTS)
        .clamp(1, MAX_SLOTS)
}

fn slot_dir() -> PathBuf {
    std::env::temp_dir().join("fleetbus-e2e-slots")
}

/// Waits (up to `timeout`) for a free slot.
pub async fn acquire(timeout: Duration) -> anyhow::Result<Slot> {
    let dir = slot_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let deadline = Instant::now() + timeout;
    loop {
        for index in 0..slot_count() {
            let path = dir.join(format!("slot-{index}.lock"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            if file.try_lock().is_ok() {
                return Ok(Slot { index, _file: file });
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no free cluster slot after {timeout:?} (FLEETBUS_E2E_MAX_CLUSTERS={})",
                slot_count()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Slot {
    /// `count` consecutive free ports inside this slot's range.
    pub fn ports(&self, count: usize) -> anyhow::Result<Vec<u16>> {
        let count = count as u16;
        let base = FIRST_PORT + self.index as u16 * PORTS_PER_SLOT;
        let blocks = PORTS_PER_SLOT / count;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = (std::process::id() ^ nanos) as u16;
        for attempt in 0..blocks {
            let start = base + ((seed.wrapping_add(attempt)) % blocks) * count;
            let ports: Vec<u16> = (start..start + count).collect();
            if ports
                .iter()
                .all(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
            {
                return Ok(ports);
            }
        }
        bail!("no {count} free ports in {base}..{}", base + PORTS_PER_SLOT)
    }
}
