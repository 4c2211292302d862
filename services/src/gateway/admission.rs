//! Which devices the gateway admits (`admission` in `[gateway]`):
//!
//! - `known` (the default): only devices in the `registry` bucket. An
//!   unknown device is refused before anything of it is stored or answered
//!   (`unknown_device`), so it keeps its data, and a flood of made-up ids
//!   writes nothing anywhere.
//! - `register`: the same, and the unknown device is written to the
//!   `pending` bucket for an operator to accept (`fleetbus device
//!   accept`); once accepted its next connection is admitted and it sends
//!   what it kept.
//! - `open`: every well-framed device id, as before the registry existed
//!   (for trials).
//!
//! The gateway keeps the whole registry in memory, fed by a key-value
//! watch: a lookup is a hash-map read, so admitting costs the cluster
//! nothing per connection or datagram, and a change (`device add`, `rm`)
//! reaches every gateway within the watch's latency (`registry_copy`
//! keeps the copy current, also when the watch itself falls silent). Until the first full
//! copy has arrived the gateway admits nobody (`registry_loading`) and is
//! not ready. A device already connected when it is removed keeps its
//! connection until it next connects.
//!
//! Memory: one entry per registered device, about 150 bytes (a million
//! devices: ~150 MB per gateway).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use chrono::Utc;
use fleetbus_wire::registry::{registry_key, KnownDevice, PendingDevice};
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// The admission policy of a gateway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    Known,
    Register,
    Open,
}

/// The verdict on a device that identified itself.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted, with what the registry holds for it: its model and its
    /// authentication code (JT808), where it names them.
    Admit {
        model: Option<String>,
        auth_code: Option<String>,
    },
    /// Not in the registry (or registered for another protocol).
    Unknown,
    /// The registry has not been read yet.
    Loading,
}

impl Verdict {
    /// The reason a refusal is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            Verdict::Admit { .. } => "admitted",
            Verdict::Unknown => "unknown_device",
            Verdict::Loading => "registry_loading",
        }
    }
}

/// A pending device is written at most once a minute per gateway.
const HOLD_EVERY: Duration = Duration::from_secs(60);
/// Devices whose last pending write is remembered; past it the memory
/// starts over (a flood of ids then costs one write per id, bounded by
/// the rates per source address and the bucket's size).
const HELD_REMEMBERED: usize = 10_000;

/// At most this many pending-bucket writes at once per gateway.
const HOLD_IN_FLIGHT: usize = 64;

/// The gateway's copy of the registry and what it does with unknown devices.
pub struct Admission {
    policy: Policy,
    /// By registry key.
    known: RwLock<HashMap<String, KnownDevice>>,
    loaded: AtomicBool,
    pending: Option<kv::Store>,
    held: Mutex<HashMap<String, Instant>>,
    /// Pending writes in flight: a flood of random IMEIs under `register`
    /// must not pile up tasks faster than the bucket takes them.
    writes: Arc<Semaphore>,
    /// `fleetbus_gateway_registry_devices`.
    devices: Gauge,
}

impl Admission {
    /// Admission under `policy`; `pending` is the bucket unknown devices
    /// are written to under `register`.
    pub fn new(policy: Policy, pending: Option<kv::Store>, devices: Gauge) -> Admission {
        Admission {
            policy,
            known: RwLock::default(),
            loaded: AtomicBool::new(policy == Policy::Open),
            pending,
            held: Mutex::default(),
            writes: Arc::new(Semaphore::new(HOLD_IN_FLIGHT)),
            devices,
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Whether the gateway can judge devices (the registry was read).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// Whether `device`, speaking `protocol`, is admitted.
    pub fn check(&self, device: &str, protocol: &str) -> Verdict {
        if self.policy == Policy::Open {
            return Verdict::Admit {
                model: None,
                auth_code: None,
            };
        }
        if !self.is_loaded() {
            return Verdict::Loading;
        }
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        // Two ids can share a key token ("a.b", "a_b"): the entry's own id
        // must be the device's.
        match known.get(&registry_key(device)) {
            Some(d) if d.id == device && d.admits(protocol) => Verdict::Admit {
                model: d.model.clone(),
                auth_code: d.auth_code.clone(),
            },
            _ => Verdict::Unknown,
        }
    }

    /// Under `register`, writes the unknown `device` to the pending bucket
    /// (in the background, at most once a minute per device).
    pub fn hold(&self, device: &str, protocol: &str, gateway: &str, peer: &str) {
        let (Policy::Register, Some(pending)) = (self.policy, &self.pending) else {
            return;
        };
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            if held.get(device).is_some_and(|at| at.elapsed() < HOLD_EVERY) {
                return;
            }
            if held.len() >= HELD_REMEMBERED {
                held.clear();
            }
            held.insert(device.to_string(), Instant::now());
        }
        // Past the bound the sighting is not written now; the device is
        // still refused, and its next attempt after HOLD_EVERY tries again.
        let Ok(permit) = self.writes.clone().try_acquire_owned() else {
            return;
        };
        let (pending, now) = (pending.clone(), Utc::now());
        let mut entry = PendingDevice {
            id: device.to_string(),
            protocol: protocol.to_string(),
            first_seen: now,
            last_seen: now,
            gateway: gateway.to_string(),
            peer: peer.to_string(),
            attempts: 1,
        };
        tokio::spawn(async move {
            let _permit = permit;
            let key = registry_key(&entry.id);
            // Keep the first sighting and count the attempts; another
            // gateway writing at the same time may win, which loses a count.
            if let Ok(Some(old)) = pending.get(&key).await {
                if let Ok(old) = serde_json::from_slice::<PendingDevice>(&old) {
                    entry.first_seen = old.first_seen;
                    entry.attempts = old.attempts.saturating_add(1);
                }
            }
            let Ok(value) = serde_json::to_vec(&entry) else {
                return;
            };
            if let Err(err) = pending.put(&key, value.into()).await {
                tracing::warn!(device = %entry.id, error = %err,
                    "Could not hold an unknown device in the pending bucket (it may be full).");
            }
        });
    }

    pub(super) fn replace(&self, known: HashMap<String, KnownDevice>) {
        self.devices.set(known.len() as i64);
        *self.known.write().unwrap_or_else(|e| e.into_inner()) = known;
        self.loaded.store(true, Ordering::SeqCst);
    }

    pub(super) fn apply(&self, entry: &kv::Entry) {
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        apply(&mut known, entry);
        self.devices.set(known.len() as i64);
    }

    /// Registered devices in the copy.
    pub fn known_devices(&self) -> usize {
        self.known.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One registry change into `known` (keyed as the bucket is).
pub(super) fn apply(known: &mut HashMap<String, KnownDevice>, entry: &kv::Entry) {
    match entry.operation {
        kv::Operation::Put => match serde_json::from_slice::<KnownDevice>(&entry.value) {
            Ok(device) => {
                known.insert(entry.key.clone(), device);
            }
            Err(err) => {
                tracing::warn!(key = %entry.key, error = %err,
                    "A registry entry is not a device; ignoring it.");
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => {
            known.remove(&entry.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, protocol: Option<&str>, model: Option<&str>) -> KnownDevice {
        KnownDevice {
            id: id.into(),
            protocol: protocol.map(Into::into),
            model: model.map(Into::into),
            name: None,
            auth_code: None,
            added_at: Utc::now(),
        }
    }

    fn admit(model: Option<&str>) -> Verdict {
        Verdict::Admit {
            model: model.map(Into::into),
            auth_code: None,
        }
    }

    #[test]
    fn known_admits_only_the_registry_and_nothing_before_it_is_read() {
        let a = Admission::new(Policy::Known, None, Gauge::default());
        assert_eq!(a.check("1", "gt06"), Verdict::Loading);
        a.replace(HashMap::from([
            ("1".to_string(), device("1", None, Some("TR02"))),
            ("2".to_string(), device("2", Some("teltonika"), None)),
            ("a_b".to_string(), device("a_b", None, None)),
        ]));
        assert_eq!(a.check("a_b", "gt06"), admit(None));
        assert_eq!(
            a.check("a.b", "gt06"),
            Verdict::Unknown,
            "same key, another id"
        );
        assert_eq!(a.check("1", "gt06"), admit(Some("TR02")));
        assert_eq!(a.check("2", "teltonika"), admit(None));
        assert_eq!(
            a.check("2", "gt06"),
            Verdict::Unknown,
            "pinned to teltonika"
        );
        assert_eq!(a.check("3", "gt06"), Verdict::Unknown);
        assert_eq!(Verdict::Unknown.reason(), "unknown_device");
    }

    #[test]
    fn open_admits_everyone_at_once() {
        let a = Admission::new(Policy::Open, None, Gauge::default());
        assert!(a.is_loaded());
        assert_eq!(a.check("anything", "h02"), admit(None));
    }

    #[test]
    fn the_policy_reads_from_its_lowercase_name() {
        #[derive(Deserialize)]
        struct C {
            admission: Policy,
        }
        let c: C = toml::from_str("admission = \"register\"").unwrap();
        assert_eq!(c.admission, Policy::Register);
        assert!(toml::from_str::<C>("admission = \"closed\"").is_err());
    }
}
