//! Streams and consumers as code: the one description of RAW, PARSED and DEAD
//! and of the shared durable consumers, used by every service (each ensures
//! at start what it uses, see [`provision`]) and by `fleetbus provision`.
//! Why each setting is what it is: docs/streams.md.

pub mod provision;

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::nats::Role;

pub use provision::{ensure, provision, Change, Item, Outcome, ProvisionError, Report};

/// Raw device frames, one message per frame: `raw.<protocol>.<device_id>`.
pub const RAW: &str = "RAW";
/// Normalized records: `parsed.<protocol>.<device_id>`.
pub const PARSED: &str = "PARSED";
/// Frames and messages that can never be processed, the reason in headers:
/// `dead.raw.<protocol>.<device_id>` and `dead.parsed.<protocol>.<device_id>`.
pub const DEAD: &str = "DEAD";

/// Device events derived by the monkeys: `events.<protocol>.<device_id>.<type>`.
pub const EVENTS: &str = "EVENTS";
/// The key-value bucket of the latest position per device (monkeys).
pub const DEVICES_BUCKET: &str = "devices";
/// The stream behind [`DEVICES_BUCKET`].
pub const DEVICES: &str = "KV_devices";

/// The durable pull consumer on RAW shared by every hamster.
pub const HAMSTERS: &str = "hamsters";
/// The durable pull consumer on PARSED shared by every monkey.
pub const MONKEYS: &str = "monkeys";

// Subjects, headers and message ids are the wire contract every program
// shares; they live in the codec crate (pure, no I/O) so that the workers in
// fleetbus-actors use the very same definitions.
pub use fleetbus_codec::wire::{
    dead_subject, headers, parsed_msg_id, parsed_subject, raw_msg_id, raw_subject, subject_token,
    DeadStage,
};

/// Size and age limits of one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamLimits {
    /// Bytes the stream may hold (per replica); at the limit new messages
    /// are refused (`discard: new`), nothing stored is dropped.
    pub max_bytes: i64,
    /// Age after which a message is removed whatever its state: the horizon
    /// within which a stuck stage must be repaired.
    pub max_age_secs: u64,
}

/// A group of workers sharing one durable pull consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// Workers expected in the whole fleet (not per host).
    pub workers: u32,
    /// Unacknowledged messages one worker may hold at once.
    pub in_flight_per_worker: u32,
    /// Wait before each redelivery of an unacknowledged message, seconds;
    /// the first is also the ack wait. The last one repeats.
    pub backoff_secs: Vec<u64>,
    /// Deliveries before the server gives up (then the message stays in the
    /// stream until max age; workers dead-letter before that).
    pub max_deliver: i64,
}

impl GroupSettings {
    /// `max_ack_pending`: workers × in flight per worker.
    pub fn max_ack_pending(&self) -> i64 {
        i64::from(self.workers.max(1)) * i64::from(self.in_flight_per_worker.max(1))
    }

    /// The ack wait (first backoff step).
    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.backoff_secs.first().copied().unwrap_or(30))
    }

    /// Time from the first delivery until the server stops redelivering: the
    /// sum of the waits after each of the `max_deliver` deliveries.
    pub fn redelivery_horizon(&self) -> Duration {
        let last = self.backoff_secs.last().copied().unwrap_or(30);
        let secs: u64 = (0..self.max_deliver.max(1) as usize)
            .map(|i| self.backoff_secs.get(i).copied().unwrap_or(last))
            .sum();
        Duration::from_secs(secs)
    }
}

/// Every tunable of the topology. Defaults suit the local cluster; override
/// in the `[topology]` table of a config file or with
/// `FLEETBUS_TOPOLOGY__<FIELD>[__<FIELD>]` variables, e.g.
/// `FLEETBUS_TOPOLOGY__HAMSTERS__WORKERS=8`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Replicas of every stream and consumer.
    pub replicas: usize,
    /// Deduplication window of every stream (`Nats-Msg-Id`), seconds. Must
    /// be longer than every consumer's redelivery horizon.
    pub duplicate_window_secs: u64,
    pub raw: StreamLimits,
    pub parsed: StreamLimits,
    pub dead: StreamLimits,
    /// The EVENTS stream (limits retention: kept for people and
    /// downstream consumers until `max_age`).
    pub events: StreamLimits,
    /// The `devices` key-value bucket; `max_age_secs` 0 keeps an entry
    /// until the device reports again (forever).
    pub devices: StreamLimits,
    pub hamsters: GroupSettings,
    pub monkeys: GroupSettings,
}

const GIB: i64 = 1 << 30;
const DAY: u64 = 24 * 3600;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            replicas: 3,
            duplicate_window_secs: 15 * 60,
            raw: StreamLimits {
                max_bytes: GIB,
                max_age_secs: 7 * DAY,
            },
            parsed: StreamLimits {
                max_bytes: 2 * GIB,
                max_age_secs: 7 * DAY,
            },
            dead: StreamLimits {
                max_bytes: GIB,
                max_age_secs: 30 * DAY,
            },
            events: StreamLimits {
                max_bytes: GIB,
                max_age_secs: 30 * DAY,
            },
            devices: StreamLimits {
                max_bytes: GIB / 4,
                max_age_secs: 0,
            },
            hamsters: GroupSettings {
                workers: 2,
                in_flight_per_worker: 256,
                backoff_secs: vec![10, 30, 60, 120],
                max_deliver: 5,
            },
            monkeys: GroupSettings {
                workers: 2,
                in_flight_per_worker: 256,
                backoff_secs: vec![30, 60, 120, 240],
                max_deliver: 5,
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read topology settings: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid topology settings: {0}")]
    Invalid(String),
}

impl Settings {
    /// Defaults, then the `[topology]` table of `config` (if given), then
    /// `FLEETBUS_TOPOLOGY__…` variables; validated.
    pub fn load(config: Option<&Path>) -> Result<Settings, SettingsError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config {
            fig = fig.merge(Figment::from(Toml::file_exact(path)).focus("topology"));
        }
        fig = fig.merge(Env::prefixed("FLEETBUS_TOPOLOGY__").split("__"));
        let settings: Settings = fig.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the rules docs/streams.md gives.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: String| Err(SettingsError::Invalid(m));
        if !(1..=5).contains(&self.replicas) {
            return bad(format!("replicas must be 1..=5, not {}", self.replicas));
        }
        for (name, limits) in [
            (RAW, &self.raw),
            (PARSED, &self.parsed),
            (DEAD, &self.dead),
            (EVENTS, &self.events),
        ] {
            if limits.max_bytes <= 0 || limits.max_age_secs == 0 {
                return bad(format!(
                    "{name}: max_bytes and max_age_secs must be set (> 0)"
                ));
            }
        }
        if self.devices.max_bytes <= 0 {
            return bad(format!("{DEVICES}: max_bytes must be set (> 0)"));
        }
        let window = Duration::from_secs(self.duplicate_window_secs);
        for (name, group) in [(HAMSTERS, &self.hamsters), (MONKEYS, &self.monkeys)] {
            if group.backoff_secs.is_empty() || group.backoff_secs.contains(&0) {
                return bad(format!(
                    "{name}: backoff_secs needs at least one step, none zero"
                ));
            }
            if group.max_deliver <= group.backoff_secs.len() as i64 {
                return bad(format!(
                    "{name}: max_deliver must exceed the number of backoff steps"
                ));
            }
            if group.workers == 0 || group.in_flight_per_worker == 0 {
                return bad(format!(
                    "{name}: workers and in_flight_per_worker must be > 0"
                ));
            }
            if window <= group.redelivery_horizon() {
                return bad(format!(
                    "duplicate_window_secs ({}) must exceed the {name} redelivery horizon ({} s)",
                    self.duplicate_window_secs,
                    group.redelivery_horizon().as_secs()
                ));
            }
        }
        Ok(())
    }

    fn stream(
        &self,
        name: &str,
        subjects: &str,
        retention: RetentionPolicy,
        limits: &StreamLimits,
        about: &str,
    ) -> stream::Config {
        stream::Config {
            name: name.into(),
            description: Some(about.into()),
            subjects: vec![subjects.into()],
            retention,
            storage: StorageType::File,
            num_replicas: self.replicas,
            discard: DiscardPolicy::New,
            max_bytes: limits.max_bytes,
            max_age: Duration::from_secs(limits.max_age_secs),
            max_messages: -1,
            max_messages_per_subject: -1,
            max_consumers: -1,
            duplicate_window: Duration::from_secs(self.duplicate_window_secs),
            ..Default::default()
        }
    }

    /// The desired configuration of every stream, RAW first.
    pub fn streams(&self) -> Vec<stream::Config> {
        vec![
            self.stream(
                RAW,
                "raw.>",
                RetentionPolicy::Interest,
                &self.raw,
                "Raw tracker frames: raw.<protocol>.<device_id>",
            ),
            self.stream(
                PARSED,
                "parsed.>",
                RetentionPolicy::Interest,
                &self.parsed,
                "Normalized records: parsed.<protocol>.<device_id>",
            ),
            self.stream(
                DEAD,
                "dead.>",
                RetentionPolicy::Limits,
                &self.dead,
                "Given up on: dead.<raw|parsed>.<protocol>.<device_id>, reason in headers",
            ),
            self.stream(
                EVENTS,
                "events.>",
                RetentionPolicy::Limits,
                &self.events,
                "Device events: events.<protocol>.<device_id>.<type>",
            ),
            self.devices_bucket(),
        ]
    }

    /// The `devices` key-value bucket as its stream: what async-nats'
    /// `create_key_value` makes (history 1, rollups, no deletes, direct
    /// gets), so any NATS client opens it as a bucket, with fleetbus'
    /// replicas and limits.
    pub fn devices_bucket(&self) -> stream::Config {
        stream::Config {
            subjects: vec![format!("$KV.{DEVICES_BUCKET}.>")],
            max_messages_per_subject: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            ..self.stream(
                DEVICES,
                "unused",
                RetentionPolicy::Limits,
                &self.devices,
                "Latest position per device (key-value bucket devices)",
            )
        }
    }

    fn consumer(&self, name: &str, group: &GroupSettings, about: &str) -> consumer::Config {
        consumer::Config {
            durable_name: Some(name.into()),
            name: Some(name.into()),
            description: Some(about.into()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: group.ack_wait(),
            backoff: group
                .backoff_secs
                .iter()
                .map(|&s| Duration::from_secs(s))
                .collect(),
            max_deliver: group.max_deliver,
            max_ack_pending: group.max_ack_pending(),
            replay_policy: ReplayPolicy::Instant,
            num_replicas: self.replicas,
            // Shared durables live forever: an inactive threshold would let
            // the server delete them (and, on an interest stream, its data).
            inactive_threshold: Duration::ZERO,
            ..Default::default()
        }
    }

    /// The desired durable consumers, as (stream, configuration).
    pub fn consumers(&self) -> Vec<(&'static str, consumer::Config)> {
        vec![
            (
                RAW,
                self.consumer(
                    HAMSTERS,
                    &self.hamsters,
                    "All hamsters: parse RAW into PARSED",
                ),
            ),
            (
                PARSED,
                self.consumer(MONKEYS, &self.monkeys, "All monkeys: process PARSED"),
            ),
        ]
    }
}

/// Which resources a provisioning run ensures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub streams: Vec<&'static str>,
    /// (stream, durable)
    pub consumers: Vec<(&'static str, &'static str)>,
}

impl Scope {
    /// Everything (`fleetbus provision`, `just up`).
    pub fn all() -> Scope {
        Scope {
            streams: vec![RAW, PARSED, DEAD, EVENTS, DEVICES],
            consumers: vec![(RAW, HAMSTERS), (PARSED, MONKEYS)],
        }
    }

    /// What a service of `role` ensures at start: the streams it reads and
    /// writes, and the durable consumers of the streams it publishes into -
    /// on an interest stream a message nobody is interested in yet is
    /// dropped, so the consumer must exist before the first publish.
    pub fn for_role(role: Role) -> Scope {
        match role {
            Role::Admin => Scope::all(),
            Role::Gateway => Scope {
                streams: vec![RAW],
                consumers: vec![(RAW, HAMSTERS)],
            },
            Role::Hamster => Scope {
                streams: vec![RAW, PARSED, DEAD],
                consumers: vec![(RAW, HAMSTERS), (PARSED, MONKEYS)],
            },
            Role::Monkey => Scope {
                streams: vec![PARSED, DEAD, EVENTS, DEVICES],
                consumers: vec![(PARSED, MONKEYS)],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_sanitized_tokens() {
        assert_eq!(
            raw_subject("teltonika", "356307042441013"),
            "raw.teltonika.356307042441013"
        );
        assert_eq!(parsed_subject("gt06", "a.b*c>d e"), "parsed.gt06.a_b_c_d_e");
        assert_eq!(dead_subject(DeadStage::Raw, "gt06", ""), "dead.raw.gt06._");
        assert_eq!(dead_subject(DeadStage::Parsed, "x", "1"), "dead.parsed.x.1");
    }

    #[test]
    fn defaults_are_valid_and_follow_the_rules() {
        let s = Settings::default();
        s.validate().unwrap();
        for stream in s.streams() {
            assert_eq!(stream.num_replicas, 3);
            assert_eq!(stream.storage, StorageType::File);
            assert_eq!(stream.discard, DiscardPolicy::New);
            assert!(stream.max_bytes > 0);
            // Only the latest-position bucket keeps entries forever.
            assert!(stream.max_age > Duration::ZERO || stream.name == DEVICES);
            assert!(stream.duplicate_window > s.hamsters.redelivery_horizon());
            assert!(stream.duplicate_window > s.monkeys.redelivery_horizon());
        }
        let parsed = &s.streams()[1];
        assert_ne!(
            parsed.retention,
            RetentionPolicy::WorkQueue,
            "PARSED must allow several groups"
        );
        for (_, c) in s.consumers() {
            assert_eq!(c.inactive_threshold, Duration::ZERO);
            assert_eq!(c.ack_policy, AckPolicy::Explicit);
            assert_eq!(c.ack_wait, c.backoff[0]);
            assert!(c.max_deliver > c.backoff.len() as i64);
            assert_eq!(c.max_ack_pending, 512);
        }
    }

    #[test]
    fn horizon_and_ack_pending_arithmetic() {
        let g = GroupSettings {
            workers: 3,
            in_flight_per_worker: 100,
            backoff_secs: vec![10, 30],
            max_deliver: 4,
        };
        assert_eq!(g.max_ack_pending(), 300);
        assert_eq!(
            g.redelivery_horizon(),
            Duration::from_secs(10 + 30 + 30 + 30)
        );
        assert_eq!(g.ack_wait(), Duration::from_secs(10));
    }

    #[test]
    fn a_short_duplicate_window_is_refused() {
        let s = Settings {
            duplicate_window_secs: 60,
            ..Settings::default()
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("redelivery horizon"), "{err}");
        let s = Settings {
            hamsters: GroupSettings {
                max_deliver: 2,
                ..Settings::default().hamsters
            },
            ..Settings::default()
        };
        assert!(s.validate().is_err());
    }

    #[test]
    fn loads_the_topology_table_of_a_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleetbus.toml");
        std::fs::write(
            &path,
            "[gateway]\nport = 1\n[topology]\nreplicas = 1\n[topology.hamsters]\nworkers = 4\n\
             in_flight_per_worker = 10\nbackoff_secs = [5]\nmax_deliver = 3\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.replicas, 1);
        assert_eq!(s.hamsters.max_ack_pending(), 40);
        assert_eq!(s.monkeys, Settings::default().monkeys);
        assert_eq!(s.raw, Settings::default().raw);
        std::fs::write(&path, "[topology]\nreplica = 1\n").unwrap();
        assert!(
            Settings::load(Some(&path)).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn events_and_the_devices_bucket_are_provisioned_for_the_monkeys() {
        let s = Settings::default();
        let streams = s.streams();
        let events = streams.iter().find(|c| c.name == EVENTS).unwrap();
        assert_eq!(events.subjects, vec!["events.>".to_string()]);
        assert_eq!(events.retention, RetentionPolicy::Limits);
        let kv = streams.iter().find(|c| c.name == DEVICES).unwrap();
        assert_eq!(kv.subjects, vec!["$KV.devices.>".to_string()]);
        assert_eq!(kv.max_messages_per_subject, 1);
        assert!(kv.allow_direct && kv.allow_rollup && kv.deny_delete);
        assert_eq!(kv.num_replicas, s.replicas);
        assert_eq!(kv.max_age, Duration::ZERO, "latest positions are kept");
        let monkey = Scope::for_role(Role::Monkey);
        assert!(monkey.streams.contains(&EVENTS) && monkey.streams.contains(&DEVICES));
        assert!(!Scope::for_role(Role::Hamster).streams.contains(&DEVICES));
        assert!(Scope::all().streams.contains(&DEVICES));
        let bad = Settings {
            devices: StreamLimits {
                max_bytes: 0,
                max_age_secs: 0,
            },
            ..Settings::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn scopes_cover_the_consumers_of_the_streams_a_role_publishes_into() {
        let hamster = Scope::for_role(Role::Hamster);
        assert!(hamster.consumers.contains(&(PARSED, MONKEYS)));
        let gateway = Scope::for_role(Role::Gateway);
        assert_eq!(gateway.consumers, vec![(RAW, HAMSTERS)]);
        assert_eq!(Scope::for_role(Role::Admin), Scope::all());
    }
}
