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

pub use provision::{check, provision, Change, Item, Outcome, ProvisionError, Report};

// Names, subjects, headers and ids are the wire contract every program
// shares: they live in fleetbus-wire, and this module only says how each
// stream and consumer is configured.
use fleetbus_wire::names::{
    self as names, Durable, Stream, DEAD, DEVICES, EVENTS, HAMSTERS, MONKEYS, PARSED, PENDING, RAW,
    REGISTRY, SEEN,
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
    /// Messages one subject may hold (-1: no limit). Subjects are per
    /// device, so this bounds what one device occupies: past it, a new
    /// message of that subject replaces the subject's oldest (DEAD: a
    /// device's dead letters of one stage; EVENTS: a device's events of
    /// one type).
    #[serde(default = "unlimited")]
    pub max_msgs_per_subject: i64,
}

fn unlimited() -> i64 {
    -1
}

/// The `seen` bucket: its limits and how many record identities it keeps
/// per device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenSettings {
    pub max_bytes: i64,
    /// A device silent this long forgets its records (0: never).
    pub max_age_secs: u64,
    /// Record identities remembered per device: a resend is recognised if
    /// fewer newer records of the device came in between. At least the
    /// largest frame a device sends (255 Teltonika records).
    pub records_per_device: usize,
}

/// The fleet the cluster is sized for: what steady state writes, so that
/// [`Settings::validate`] can tell that no stream or bucket fills in steady
/// state (docs/streams.md, "Sizes").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSize {
    pub devices: u64,
    /// Device events (ignition, overspeed, alarms) per device and day.
    pub events_per_device_per_day: u64,
    /// Dead letters per device and day to tolerate (a firmware the parsers
    /// do not know yet).
    pub dead_per_device_per_day: u64,
}

impl Default for FleetSize {
    fn default() -> Self {
        FleetSize {
            devices: 5_000,
            events_per_device_per_day: 50,
            dead_per_device_per_day: 10,
        }
    }
}

/// Stored bytes assumed per message when sizing (payload, headers and the
/// store's own overhead, measured on the local cluster with `fleetbus
/// status` after a `just up`; docs/streams.md).
pub mod sizing {
    /// One event on EVENTS.
    pub const EVENT_BYTES: u64 = 640;
    /// One dead letter on DEAD (a frame or record and its headers).
    pub const DEAD_BYTES: u64 = 1024;
    /// One device's entry in the `devices` bucket (position with
    /// attributes, remembered events).
    pub const DEVICE_ENTRY_BYTES: u64 = 4096;
    /// One device's entry in the `registry` bucket (id, protocol, model,
    /// a name).
    pub const REGISTRY_ENTRY_BYTES: u64 = 256;
    /// Per-message overhead of a bucket entry beyond its value.
    pub const KV_OVERHEAD_BYTES: u64 = 128;
}

/// The durables of one stage, one per partition, each owned by one worker
/// at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// Unacknowledged messages the owner of a partition may hold at once
    /// (the durable's `max_ack_pending`).
    pub in_flight_per_partition: u32,
    /// How long an owner may go without pulling before the server gives
    /// its partition to another worker (the durable's pinned TTL), seconds.
    /// An owner pulls at least every `expires_ms` + 5 s, and lets go at once
    /// when it stops gracefully; this is what a killed or paused owner costs.
    pub owner_timeout_secs: u64,
    /// Wait before each redelivery of a message a worker held and never
    /// acknowledged (it died or stalled), seconds; the first is also the
    /// ack wait. The last one repeats. There is no `max_deliver`: the
    /// server never gives up on a message (docs/streams.md).
    pub backoff_secs: Vec<u64>,
}

impl GroupSettings {
    /// `max_ack_pending` of each partition's durable.
    pub fn max_ack_pending(&self) -> i64 {
        i64::from(self.in_flight_per_partition.max(1))
    }

    /// The pinned TTL of each partition's durable.
    pub fn owner_timeout(&self) -> Duration {
        Duration::from_secs(self.owner_timeout_secs)
    }

    /// The ack wait (first backoff step).
    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.backoff_secs.first().copied().unwrap_or(30))
    }

    /// Time from the first delivery until the redelivery waits reach their
    /// last step: the sum of the backoff steps. A frame whose worker died
    /// after publishing is redelivered within it, and its republish is
    /// deduplicated while this is shorter than the duplicate window.
    pub fn redelivery_horizon(&self) -> Duration {
        Duration::from_secs(self.backoff_secs.iter().sum())
    }
}

/// Every tunable of the topology. Defaults suit the local cluster; override
/// in the `[topology]` table of a config file or with
/// `FLEETBUS_TOPOLOGY__<FIELD>[__<FIELD>]` variables, e.g.
/// `FLEETBUS_TOPOLOGY__PARTITIONS=16`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Replicas of every stream and consumer.
    pub replicas: usize,
    /// How many partitions RAW and PARSED are cut into: a device's frames
    /// all land in one, and each partition is owned by one hamster and one
    /// monkey at a time, so this is how many workers a stage can use.
    /// Changing it needs RAW and PARSED drained (docs/workers.md).
    pub partitions: u32,
    /// Deduplication window of RAW, PARSED and DEAD (`Nats-Msg-Id`),
    /// seconds. Must be longer than every consumer's redelivery horizon.
    pub duplicate_window_secs: u64,
    /// Deduplication window of EVENTS, seconds: events are few, so a long
    /// window is cheap, and it makes a replayed event a duplicate for a
    /// day, not for minutes.
    pub events_duplicate_window_secs: u64,
    pub raw: StreamLimits,
    pub parsed: StreamLimits,
    pub dead: StreamLimits,
    /// The EVENTS stream (limits retention: kept for people and
    /// downstream consumers until `max_age`).
    pub events: StreamLimits,
    /// The `devices` key-value bucket; `max_age_secs` 0 keeps an entry
    /// until the device reports again (forever).
    pub devices: StreamLimits,
    /// The `seen` key-value bucket (record identities per device).
    pub seen: SeenSettings,
    /// The `registry` key-value bucket (the devices gateways admit);
    /// `max_age_secs` 0: an entry stays until it is removed.
    pub registry: StreamLimits,
    /// The `pending` key-value bucket (unknown devices held for an
    /// operator): bounded, so that a flood of made-up ids fills it and
    /// nothing else, and aged out.
    pub pending: StreamLimits,
    /// The fleet the limits are checked against.
    pub fleet: FleetSize,
    pub hamsters: GroupSettings,
    pub monkeys: GroupSettings,
}

const GIB: i64 = 1 << 30;
/// Each partition is two R3 consumers (a raft group each): past a few
/// hundred, the cluster spends more on them than they bring.
pub const MAX_PARTITIONS: u32 = 256;
const DAY: u64 = 24 * 3600;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            replicas: 3,
            partitions: 8,
            duplicate_window_secs: 15 * 60,
            events_duplicate_window_secs: DAY,
            raw: StreamLimits {
                max_bytes: GIB,
                max_age_secs: 7 * DAY,
                max_msgs_per_subject: -1,
            },
            parsed: StreamLimits {
                max_bytes: 2 * GIB,
                max_age_secs: 7 * DAY,
                max_msgs_per_subject: -1,
            },
            dead: StreamLimits {
                max_bytes: 2 * GIB,
                max_age_secs: 30 * DAY,
                max_msgs_per_subject: 1_000,
            },
            events: StreamLimits {
                max_bytes: 2 * GIB,
                max_age_secs: 7 * DAY,
                max_msgs_per_subject: 10_000,
            },
            devices: StreamLimits {
                max_bytes: GIB / 4,
                max_age_secs: 0,
                max_msgs_per_subject: 1,
            },
            seen: SeenSettings {
                max_bytes: GIB / 4,
                max_age_secs: 30 * DAY,
                records_per_device: 256,
            },
            registry: StreamLimits {
                max_bytes: GIB / 4,
                max_age_secs: 0,
                max_msgs_per_subject: 1,
            },
            pending: StreamLimits {
                max_bytes: 64 << 20,
                max_age_secs: 7 * DAY,
                max_msgs_per_subject: 1,
            },
            fleet: FleetSize::default(),
            hamsters: GroupSettings {
                in_flight_per_partition: 256,
                owner_timeout_secs: 15,
                backoff_secs: vec![10, 30, 60, 120],
            },
            monkeys: GroupSettings {
                in_flight_per_partition: 256,
                owner_timeout_secs: 15,
                backoff_secs: vec![30, 60, 120, 240],
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read topology settings: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid topology settings:\n{0}")]
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

    /// Checks the rules docs/streams.md gives, and that the fleet of
    /// [`FleetSize`] fills nothing in steady state. Every problem is
    /// reported at once, one per line.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut bad: Vec<String> = Vec::new();
        if !(1..=5).contains(&self.replicas) {
            bad.push(format!("replicas must be 1..=5, not {}", self.replicas));
        }
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            bad.push(format!(
                "partitions must be 1..={MAX_PARTITIONS}, not {}",
                self.partitions
            ));
        }
        for (name, limits) in [
            (RAW, &self.raw),
            (PARSED, &self.parsed),
            (DEAD, &self.dead),
            (EVENTS, &self.events),
        ] {
            if limits.max_bytes <= 0 || limits.max_age_secs == 0 {
                bad.push(format!(
                    "{name}: max_bytes and max_age_secs must be set (> 0)"
                ));
            }
            if limits.max_msgs_per_subject == 0 || limits.max_msgs_per_subject < -1 {
                bad.push(format!(
                    "{name}: max_msgs_per_subject must be -1 (no limit) or at least 1"
                ));
            }
        }
        for name in [RAW, PARSED] {
            let limits = if name == RAW { &self.raw } else { &self.parsed };
            if limits.max_msgs_per_subject != -1 {
                bad.push(format!(
                    "{name}: max_msgs_per_subject must be -1: a per-device limit would drop a device's \
                     oldest unprocessed messages"
                ));
            }
        }
        for (name, limits) in [
            (DEVICES, &self.devices),
            (REGISTRY, &self.registry),
            (PENDING, &self.pending),
        ] {
            if limits.max_bytes <= 0 {
                bad.push(format!("{name}: max_bytes must be set (> 0)"));
            }
        }
        if self.seen.max_bytes <= 0 {
            bad.push(format!("{SEEN}: max_bytes must be set (> 0)"));
        }
        if self.seen.records_per_device < 255 {
            bad.push(format!(
                "{SEEN}: records_per_device must be at least 255 (a full Teltonika frame), not {}",
                self.seen.records_per_device
            ));
        }
        let window = Duration::from_secs(self.duplicate_window_secs);
        for (name, group) in [(HAMSTERS, &self.hamsters), (MONKEYS, &self.monkeys)] {
            if group.backoff_secs.is_empty() || group.backoff_secs.contains(&0) {
                bad.push(format!(
                    "{name}: backoff_secs needs at least one step, none zero"
                ));
            }
            if group.in_flight_per_partition == 0 {
                bad.push(format!("{name}: in_flight_per_partition must be > 0"));
            }
            if group.owner_timeout_secs < 5 {
                bad.push(format!(
                    "{name}: owner_timeout_secs must be at least 5 (an owner pulls every few seconds), not {}",
                    group.owner_timeout_secs
                ));
            }
            if window <= group.redelivery_horizon() {
                bad.push(format!(
                    "duplicate_window_secs ({}) must exceed the {name} redelivery horizon ({} s, \
                     the sum of backoff_secs)",
                    self.duplicate_window_secs,
                    group.redelivery_horizon().as_secs()
                ));
            }
        }
        if self.events_duplicate_window_secs == 0
            || self.events_duplicate_window_secs > self.events.max_age_secs
        {
            bad.push(format!(
                "events_duplicate_window_secs must be > 0 and at most EVENTS max_age_secs ({})",
                self.events.max_age_secs
            ));
        }
        bad.extend(self.steady_state_problems());
        if bad.is_empty() {
            Ok(())
        } else {
            let lines: Vec<String> = bad.iter().map(|b| format!("  - {b}")).collect();
            Err(SettingsError::Invalid(lines.join("\n")))
        }
    }

    /// What the configured fleet needs of each stream that keeps messages
    /// by limits, against what it may hold: `(stream, bytes needed, bytes
    /// allowed, how it was estimated)`. RAW and PARSED hold only a backlog
    /// (their stages sweep what every reader acknowledged) and are not in it.
    pub fn steady_state(&self) -> Vec<(&'static str, u64, u64, String)> {
        use sizing::*;
        let f = &self.fleet;
        let days = |secs: u64| secs as f64 / DAY as f64;
        // A stream that keeps `per_day` messages of `bytes` per device for
        // its max_age.
        let by_age = |name, per_day: u64, what: &str, limits: &StreamLimits, bytes: u64| {
            let need = f.devices as f64 * per_day as f64 * days(limits.max_age_secs) * bytes as f64;
            let how = format!(
                "{} devices x {per_day} {what} a day x {:.1} days (max_age) x {bytes} B",
                f.devices,
                days(limits.max_age_secs)
            );
            (name, need as u64, limits.max_bytes.max(0) as u64, how)
        };
        // A bucket that keeps one entry of `bytes` per device.
        let per_device = |name, bytes: u64, max_bytes: i64, note: String| {
            let entry = bytes + KV_OVERHEAD_BYTES;
            let how = format!("{} devices x {entry} B an entry{note}", f.devices);
            (name, f.devices * entry, max_bytes.max(0) as u64, how)
        };
        let seen_entry =
            fleetbus_codec::identity::Memory::max_encoded_len(self.seen.records_per_device) as u64;
        vec![
            by_age(
                EVENTS,
                f.events_per_device_per_day,
                "events",
                &self.events,
                EVENT_BYTES,
            ),
            by_age(
                DEAD,
                f.dead_per_device_per_day,
                "dead letters",
                &self.dead,
                DEAD_BYTES,
            ),
            per_device(
                DEVICES,
                DEVICE_ENTRY_BYTES,
                self.devices.max_bytes,
                String::new(),
            ),
            per_device(
                SEEN,
                seen_entry,
                self.seen.max_bytes,
                format!(" ({} identities)", self.seen.records_per_device),
            ),
            per_device(
                REGISTRY,
                REGISTRY_ENTRY_BYTES,
                self.registry.max_bytes,
                String::new(),
            ),
        ]
    }

    fn steady_state_problems(&self) -> Vec<String> {
        self.steady_state()
            .into_iter()
            .filter(|(_, need, have, _)| need > have)
            .map(|(name, need, have, how)| {
                format!(
                    "{name}: max_bytes {have} is too small for the fleet in steady state: it needs \
                     about {need} ({how}); raise max_bytes, shorten max_age_secs, or describe the \
                     fleet you run in [topology.fleet]"
                )
            })
            .collect()
    }

    /// A stream's configuration: its name, subjects and retention from
    /// the wire contract, its limits from the settings.
    fn stream(&self, stream: Stream, limits: &StreamLimits, about: &str) -> stream::Config {
        let window = if stream == Stream::Events {
            self.events_duplicate_window_secs
        } else {
            self.duplicate_window_secs
        };
        stream::Config {
            name: stream.name().into(),
            description: Some(about.into()),
            subjects: vec![stream.subjects()],
            // Every stream by limits: RAW and PARSED are swept by their
            // partitions' owners (actors/src/janitor.rs), not deleted
            // message by message as an interest stream does at each ack.
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            num_replicas: self.replicas,
            discard: DiscardPolicy::New,
            max_bytes: limits.max_bytes,
            max_age: Duration::from_secs(limits.max_age_secs),
            max_messages: -1,
            max_messages_per_subject: limits.max_msgs_per_subject,
            max_consumers: -1,
            duplicate_window: Duration::from_secs(window),
            subject_transform: (stream == Stream::Raw).then(|| {
                let (source, destination) = names::raw_transform(self.partitions);
                stream::SubjectTransform {
                    source,
                    destination,
                }
            }),
            ..Default::default()
        }
    }

    /// The desired configuration of every stream, RAW first.
    pub fn streams(&self) -> Vec<stream::Config> {
        vec![
            self.stream(
                Stream::Raw,
                &self.raw,
                "Raw tracker frames: raw.<partition>.<protocol>.<device_id>",
            ),
            self.stream(
                Stream::Parsed,
                &self.parsed,
                "Normalized records: parsed.<partition>.<protocol>.<device_id>",
            ),
            self.stream(
                Stream::Dead,
                &self.dead,
                "Given up on: dead.<raw|parsed>.<protocol>.<device_id>, reason in headers",
            ),
            self.stream(
                Stream::Events,
                &self.events,
                "Device events: events.<protocol>.<device_id>.<type>",
            ),
            self.devices_bucket(),
            self.seen_bucket(),
            self.bucket(
                Stream::Registry,
                &self.registry,
                "The devices gateways admit (key-value bucket registry, operators)",
            ),
            self.bucket(
                Stream::Pending,
                &self.pending,
                "Unknown devices held for an operator (key-value bucket pending, gateways)",
            ),
        ]
    }

    /// A key-value bucket as its stream, as async-nats' `create_key_value`
    /// makes one (history 1, no deletes, direct gets), but without
    /// roll-ups.
    fn bucket(&self, stream: Stream, limits: &StreamLimits, about: &str) -> stream::Config {
        stream::Config {
            max_messages_per_subject: 1,
            // No roll-ups: a `Nats-Rollup: all` header from any writer of
            // the bucket would wipe every key (fleetbus never purges a
            // key, which is what a roll-up is for).
            allow_rollup: false,
            deny_delete: true,
            allow_direct: true,
            ..self.stream(stream, limits, about)
        }
    }

    /// The `seen` key-value bucket as its stream (as [`Self::devices_bucket`]).
    pub fn seen_bucket(&self) -> stream::Config {
        let limits = StreamLimits {
            max_bytes: self.seen.max_bytes,
            max_age_secs: self.seen.max_age_secs,
            max_msgs_per_subject: 1,
        };
        stream::Config {
            // No roll-ups: a `Nats-Rollup: all` header from any writer of
            // the bucket would wipe every key (fleetbus never purges a
            // key, which is what a roll-up is for).
            allow_rollup: false,
            deny_delete: true,
            allow_direct: true,
            ..self.stream(
                Stream::Seen,
                &limits,
                "Record identities each device sent recently (key-value bucket seen, hamsters)",
            )
        }
    }

    /// The `devices` key-value bucket as its stream: what async-nats'
    /// `create_key_value` makes (history 1, no deletes, direct
    /// gets), so any NATS client opens it as a bucket, with fleetbus'
    /// replicas and limits.
    pub fn devices_bucket(&self) -> stream::Config {
        self.bucket(
            Stream::Devices,
            &self.devices,
            "Latest position per device (key-value bucket devices)",
        )
    }

    fn consumer(&self, durable: Durable, p: u32, group: &GroupSettings) -> consumer::Config {
        let name = durable.partition(p);
        let about = match durable {
            Durable::Hamsters => format!("The hamster owning partition {p}: parse RAW into PARSED"),
            Durable::Monkeys => format!("The monkey owning partition {p}: process PARSED"),
        };
        consumer::Config {
            durable_name: Some(name.clone()),
            name: Some(name),
            description: Some(about),
            filter_subject: durable.filter(p),
            // One client at a time gets the partition's messages; the
            // others' pulls wait and one takes over when it goes.
            priority_policy: consumer::PriorityPolicy::PinnedClient,
            priority_groups: vec![names::OWNER_GROUP.to_string()],
            priority_timeout: group.owner_timeout(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: group.ack_wait(),
            backoff: group
                .backoff_secs
                .iter()
                .map(|&s| Duration::from_secs(s))
                .collect(),
            // Never give up on a message: one that ran out of deliveries
            // would stay in its stream with nobody to deliver it.
            // Workers decide what is bad (docs/workers.md).
            max_deliver: -1,
            max_ack_pending: group.max_ack_pending(),
            replay_policy: ReplayPolicy::Instant,
            num_replicas: self.replicas,
            // Shared durables live forever: an inactive threshold would let
            // the server delete them (and their partition's messages would
            // then wait unread until max_age).
            inactive_threshold: Duration::ZERO,
            ..Default::default()
        }
    }

    /// The durables of `stage`, one per partition, in partition order.
    pub fn durables(&self, stage: Durable) -> Vec<consumer::Config> {
        let group = match stage {
            Durable::Hamsters => &self.hamsters,
            Durable::Monkeys => &self.monkeys,
        };
        (0..self.partitions)
            .map(|p| self.consumer(stage, p, group))
            .collect()
    }

    /// The desired durable consumers, as (stage, configuration).
    pub fn consumers(&self) -> Vec<(Durable, consumer::Config)> {
        Durable::ALL
            .into_iter()
            .flat_map(|d| self.durables(d).into_iter().map(move |c| (d, c)))
            .collect()
    }
}

/// Which resources a provisioning run ensures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub streams: Vec<&'static str>,
    /// The stages whose partition durables it ensures.
    pub stages: Vec<Durable>,
    /// Whether it also removes the durables the layout no longer has
    /// (admin only: a service login may not delete).
    pub tidy: bool,
}

impl Scope {
    /// Everything (`fleetbus provision`, `just up`).
    pub fn all() -> Scope {
        Scope::for_role(Role::Admin)
    }

    /// What a service of `role` ensures at start: the streams it reads and
    /// writes, and the durable consumers it needs (`Role::streams`,
    /// `Role::durables`: derived from what the role uses, as its
    /// permissions are).
    pub fn for_role(role: Role) -> Scope {
        Scope {
            streams: role.streams().into_iter().map(Stream::name).collect(),
            stages: role.durables(),
            tidy: role == Role::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits_of(s: &Settings, name: &str) -> stream::Config {
        s.streams().into_iter().find(|c| c.name == name).unwrap()
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
            // Only the latest positions and the registry keep entries
            // until they are replaced or removed.
            assert!(
                stream.max_age > Duration::ZERO
                    || [DEVICES, REGISTRY].contains(&stream.name.as_str())
            );
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
            assert_eq!(c.max_deliver, -1, "the server never gives up on a message");
            assert_eq!(c.max_ack_pending, 256);
            assert_eq!(c.priority_policy, consumer::PriorityPolicy::PinnedClient);
            assert_eq!(c.priority_groups, vec![names::OWNER_GROUP.to_string()]);
            assert_eq!(c.priority_timeout, Duration::from_secs(15));
        }
        assert_eq!(
            s.consumers().len(),
            2 * 8,
            "a durable per partition per stage"
        );
        let raw = limits_of(&s, RAW);
        let transform = raw.subject_transform.unwrap();
        assert_eq!(transform.source, "raw.*.*");
        assert_eq!(
            transform.destination,
            "raw.{{partition(8,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}"
        );
        assert!(limits_of(&s, PARSED).subject_transform.is_none());
        let limits = |name: &str| s.streams().into_iter().find(|c| c.name == name).unwrap();
        assert_eq!(limits(RAW).max_messages_per_subject, -1);
        assert_eq!(limits(PARSED).max_messages_per_subject, -1);
        assert_eq!(
            limits(DEAD).max_messages_per_subject,
            1_000,
            "a device's share of DEAD"
        );
        assert_eq!(limits(EVENTS).max_messages_per_subject, 10_000);
        assert_eq!(limits(EVENTS).duplicate_window, Duration::from_secs(DAY));
        let seen = limits(SEEN);
        assert_eq!(seen.subjects, vec!["$KV.seen.>".to_string()]);
        assert_eq!(seen.max_messages_per_subject, 1);
        assert!(seen.allow_direct && !seen.allow_rollup && seen.deny_delete);
        assert!(Scope::for_role(Role::Hamster).streams.contains(&SEEN));
    }

    #[test]
    fn the_defaults_hold_their_fleet_in_steady_state_and_a_small_stream_is_refused() {
        let s = Settings::default();
        for (name, need, have, how) in s.steady_state() {
            assert!(need <= have, "{name}: {need} > {have} ({how})");
        }
        let big_fleet = Settings {
            fleet: FleetSize {
                devices: 1_000_000,
                ..FleetSize::default()
            },
            ..Settings::default()
        };
        let err = big_fleet.validate().unwrap_err().to_string();
        // Every stream that would fill is named, each on its own line.
        for name in [EVENTS, DEAD, DEVICES, SEEN] {
            assert!(
                err.lines()
                    .any(|l| l.starts_with(&format!("  - {name}: max_bytes"))),
                "{name} in:\n{err}"
            );
        }
    }

    #[test]
    fn horizon_and_ack_pending_arithmetic() {
        let g = GroupSettings {
            in_flight_per_partition: 100,
            owner_timeout_secs: 20,
            backoff_secs: vec![10, 30],
        };
        assert_eq!(g.max_ack_pending(), 100);
        assert_eq!(g.owner_timeout(), Duration::from_secs(20));
        assert_eq!(g.redelivery_horizon(), Duration::from_secs(10 + 30));
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
            duplicate_window_secs: 100,
            hamsters: GroupSettings {
                backoff_secs: vec![],
                ..Settings::default().hamsters
            },
            raw: StreamLimits {
                max_msgs_per_subject: 10,
                ..Settings::default().raw
            },
            ..Settings::default()
        };
        let err = s.validate().unwrap_err().to_string();
        // The heading, then RAW's limit, the hamsters' backoff and the
        // monkeys' horizon (450 s > 100 s).
        assert_eq!(err.lines().count(), 4, "all problems at once:\n{err}");
    }

    #[test]
    fn loads_the_topology_table_of_a_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleetbus.toml");
        std::fs::write(
            &path,
            "[gateway]\nport = 1\n[topology]\nreplicas = 1\npartitions = 4\n[topology.hamsters]\n\
             in_flight_per_partition = 40\nowner_timeout_secs = 30\nbackoff_secs = [5]\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.replicas, 1);
        assert_eq!(s.partitions, 4);
        assert_eq!(s.hamsters.max_ack_pending(), 40);
        assert_eq!(s.hamsters.owner_timeout(), Duration::from_secs(30));
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
        assert!(kv.allow_direct && !kv.allow_rollup && kv.deny_delete);
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
                max_msgs_per_subject: 1,
            },
            ..Settings::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn scopes_cover_the_consumers_of_the_streams_a_role_publishes_into() {
        let hamster = Scope::for_role(Role::Hamster);
        assert!(hamster.stages.contains(&Durable::Monkeys));
        assert!(!hamster.tidy, "a service login may not delete");
        let gateway = Scope::for_role(Role::Gateway);
        assert_eq!(gateway.stages, vec![Durable::Hamsters]);
        assert_eq!(Scope::for_role(Role::Admin), Scope::all());
        assert!(Scope::all().tidy);
    }

    #[test]
    fn partitions_are_bounded() {
        for bad in [0, MAX_PARTITIONS + 1] {
            let s = Settings {
                partitions: bad,
                ..Settings::default()
            };
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains("partitions must be 1..=256"), "{err}");
        }
        let one = Settings {
            partitions: 1,
            ..Settings::default()
        };
        one.validate().unwrap();
        assert_eq!(one.consumers().len(), 2);
    }
}
