//! The outbound queue kept in the simulator's memory (`--queue :memory:`):
//! the same operations and answers as the SQLite file, but gone when the
//! process stops — a tracker without flash. For benchmarks, where the load
//! generator should cost the machine as little as possible and is never
//! restarted; the file is what the fault tests need.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use fleetbus_codec::{Position, Protocol};

use super::queue::{DeviceState, QueueError, QueuedFrame};

struct Device {
    protocol: Protocol,
    next_seq: u64,
    base_time: i64,
    next_frame: u64,
    /// Records not yet in a frame, by sequence number.
    loose: BTreeMap<u64, Position>,
    /// The formed, unacknowledged frame.
    formed: Option<Formed>,
}

struct Formed {
    frame: u64,
    attempt: u32,
    records: BTreeMap<u64, Position>,
}

#[derive(Default)]
pub(super) struct MemoryQueue {
    devices: Mutex<HashMap<String, Device>>,
}

impl MemoryQueue {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Device>) -> T) -> T {
        // A panic elsewhere cannot leave a half-done operation behind: each
        // one below changes the map only after its checks.
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut devices)
    }

    pub fn device(
        &self,
        id: &str,
        protocol: Protocol,
        base_time: i64,
    ) -> Result<DeviceState, QueueError> {
        self.with(|devices| {
            let d = devices.entry(id.to_string()).or_insert_with(|| Device {
                protocol,
                next_seq: 0,
                base_time,
                next_frame: 1,
                loose: BTreeMap::new(),
                formed: None,
            });
            if d.protocol != protocol {
                return Err(QueueError::ProtocolChanged {
                    device: id.to_string(),
                    stored: d.protocol.name().into(),
                    wanted: protocol.name().into(),
                });
            }
            Ok(DeviceState {
                next_seq: d.next_seq,
                base_time: d.base_time,
            })
        })
    }

    pub fn push(&self, device: &str, seq: u64, position: &Position) -> Result<(), QueueError> {
        self.with(|devices| {
            let d = devices
                .get_mut(device)
                .ok_or_else(|| QueueError::UnknownDevice(device.to_string()))?;
            let in_frame = d
                .formed
                .as_ref()
                .is_some_and(|f| f.records.contains_key(&seq));
            if !in_frame {
                d.loose.entry(seq).or_insert_with(|| position.clone());
            }
            d.next_seq = d.next_seq.max(seq + 1);
            Ok(())
        })
    }

    pub fn next_frame(
        &self,
        device: &str,
        per_frame: usize,
    ) -> Result<Option<QueuedFrame>, QueueError> {
        self.with(|devices| {
            let d = devices
                .get_mut(device)
                .ok_or_else(|| QueueError::UnknownDevice(device.to_string()))?;
            if d.formed.is_none() && !d.loose.is_empty() && per_frame > 0 {
                let first_left = d.loose.keys().nth(per_frame).copied();
                let rest = first_left
                    .map(|seq| d.loose.split_off(&seq))
                    .unwrap_or_default();
                let records = std::mem::replace(&mut d.loose, rest);
                d.formed = Some(Formed {
                    frame: d.next_frame,
                    attempt: 0,
                    records,
                });
                d.next_frame += 1;
            }
            Ok(d.formed.as_ref().map(|f| QueuedFrame {
                frame: f.frame,
                attempt: f.attempt,
                positions: f.records.values().cloned().collect(),
            }))
        })
    }

    pub fn acked(&self, device: &str, frame: u64) -> Result<usize, QueueError> {
        self.with(|devices| {
            let Some(d) = devices.get_mut(device) else {
                return Ok(0);
            };
            match d.formed.take() {
                Some(f) if f.frame == frame => Ok(f.records.len()),
                other => {
                    d.formed = other;
                    Ok(0)
                }
            }
        })
    }

    pub fn retry(&self, device: &str, frame: u64) -> Result<Option<u32>, QueueError> {
        self.with(|devices| {
            let formed = devices
                .get_mut(device)
                .and_then(|d| d.formed.as_mut())
                .filter(|f| f.frame == frame);
            Ok(formed.map(|f| {
                f.attempt += 1;
                f.attempt
            }))
        })
    }

    pub fn regroup(&self, device: &str, frame: u64) -> Result<usize, QueueError> {
        self.with(|devices| {
            let Some(d) = devices.get_mut(device) else {
                return Ok(0);
            };
            match d.formed.take() {
                Some(f) if f.frame == frame => {
                    let n = f.records.len();
                    d.loose.extend(f.records);
                    Ok(n)
                }
                other => {
                    d.formed = other;
                    Ok(0)
                }
            }
        })
    }

    pub fn pending(&self) -> u64 {
        self.with(|devices| {
            devices
                .values()
                .map(|d| d.loose.len() + d.formed.as_ref().map_or(0, |f| f.records.len()))
                .sum::<usize>() as u64
        })
    }
}
