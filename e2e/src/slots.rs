//! At most N clusters at once on this machine (default 2, from
//! `FLEETBUS_E2E_MAX_CLUSTERS`), across every test process: each running
//! cluster holds an exclusive lock on one slot file in the temporary
//! directory. Each slot owns a range of 1000 ports below the kernel's
//! ephemeral range, so two harness clusters never pick the same ports and no
//! outgoing connection takes one between the check and nats-server's bind.
//! Within a slot, ports are handed out in order and never twice: a free-port
//! check cannot see a port a node holds inside a network namespace (the
//! netns lab), so the nodes' and the gateways' ports must differ by
//! construction.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
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
    /// The next port to hand out, as an offset in the slot's range.
    next: AtomicU16,
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
                return Ok(Slot::new(index, file));
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
    fn new(index: usize, file: File) -> Slot {
        // Start somewhere else in the range each time, so a run does not
        // meet the previous run's sockets still in TIME_WAIT.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = (std::process::id() ^ nanos) as u16 % PORTS_PER_SLOT;
        Slot {
            index,
            next: AtomicU16::new(seed),
            _file: file,
        }
    }

    /// `count` consecutive free ports inside this slot's range, none of
    /// them handed out before by this slot (until the range wraps).
    pub fn ports(&self, count: usize) -> anyhow::Result<Vec<u16>> {
        let count = count as u16;
        anyhow::ensure!(
            count > 0 && count <= PORTS_PER_SLOT,
            "cannot take {count} ports"
        );
        let base = FIRST_PORT + self.index as u16 * PORTS_PER_SLOT;
        for _ in 0..PORTS_PER_SLOT {
            let at = self.next.fetch_add(count, Ordering::Relaxed) % PORTS_PER_SLOT;
            if at + count > PORTS_PER_SLOT {
                // The block would leave the range: start again at its beginning.
                self.next.store(0, Ordering::Relaxed);
                continue;
            }
            let ports: Vec<u16> = (base + at..base + at + count).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Slot {
        let file = tempfile::tempfile().unwrap();
        // A slot index no harness cluster uses (above MAX_SLOTS).
        Slot::new(MAX_SLOTS + 3, file)
    }

    #[test]
    fn a_slot_never_hands_out_a_port_twice() {
        // Nothing binds these ports, so a free-port check alone would give
        // the same ones again: as it did when the nodes ran in network
        // namespaces and the gateways were given their ports.
        let s = slot();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            for p in s.ports(9).unwrap() {
                assert!(seen.insert(p), "port {p} handed out twice");
            }
        }
    }

    #[test]
    fn blocks_stay_inside_the_range_and_wrap() {
        let s = slot();
        let base = FIRST_PORT + s.index as u16 * PORTS_PER_SLOT;
        for _ in 0..400 {
            let ports = s.ports(7).unwrap();
            assert_eq!(ports.len(), 7);
            assert!(ports[0] >= base && ports[6] < base + PORTS_PER_SLOT);
            assert!(ports.windows(2).all(|w| w[1] == w[0] + 1));
        }
    }
}
