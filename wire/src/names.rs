//! Every stream, durable consumer and key-value bucket by name, and the
//! subjects messages travel on. Nothing else in fleetbus spells a name.

/// A JetStream stream of fleetbus (a key-value bucket is one too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Raw device frames, one message per frame, published on
    /// `raw.<protocol>.<device>` and stored as
    /// `raw.<partition>.<protocol>.<device>` ([`raw_transform`]).
    Raw,
    /// Normalized records: `parsed.<partition>.<protocol>.<device>`, the
    /// partition of the RAW frame they come from.
    Parsed,
    /// What can never be processed, the reason in headers:
    /// `dead.raw.<protocol>.<device>`, `dead.parsed.<protocol>.<device>`.
    Dead,
    /// Device events derived by the monkeys: `events.<protocol>.<device>.<type>`.
    Events,
    /// The bucket `devices`: the latest position per device (monkeys).
    Devices,
    /// The bucket `seen`: the record identities each device sent recently
    /// (hamsters).
    Seen,
    /// The bucket `registry`: the devices gateways admit (operators).
    Registry,
    /// The bucket `pending`: unknown devices held for an operator
    /// (gateways under `admission = "register"`).
    Pending,
}

pub const RAW: &str = Stream::Raw.name();
pub const PARSED: &str = Stream::Parsed.name();
pub const DEAD: &str = Stream::Dead.name();
pub const EVENTS: &str = Stream::Events.name();
/// The stream behind [`DEVICES_BUCKET`].
pub const DEVICES: &str = Stream::Devices.name();
/// The stream behind [`SEEN_BUCKET`].
pub const SEEN: &str = Stream::Seen.name();
/// The stream behind [`crate::registry::REGISTRY_BUCKET`].
pub const REGISTRY: &str = Stream::Registry.name();
/// The stream behind [`crate::registry::PENDING_BUCKET`].
pub const PENDING: &str = Stream::Pending.name();
/// The key-value bucket of the latest position per device.
pub const DEVICES_BUCKET: &str = "devices";
/// The key-value bucket of the record identities each device sent recently.
pub const SEEN_BUCKET: &str = "seen";

impl Stream {
    pub const ALL: [Stream; 8] = [
        Stream::Raw,
        Stream::Parsed,
        Stream::Dead,
        Stream::Events,
        Stream::Devices,
        Stream::Seen,
        Stream::Registry,
        Stream::Pending,
    ];

    /// Its JetStream name (`KV_<bucket>` for a bucket, as every NATS
    /// client names a bucket's stream).
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Raw => "RAW",
            Stream::Parsed => "PARSED",
            Stream::Dead => "DEAD",
            Stream::Events => "EVENTS",
            Stream::Devices => "KV_devices",
            Stream::Seen => "KV_seen",
            Stream::Registry => "KV_registry",
            Stream::Pending => "KV_pending",
        }
    }

    /// The bucket's name, for the streams that are buckets.
    pub const fn bucket(self) -> Option<&'static str> {
        match self {
            Stream::Devices => Some(DEVICES_BUCKET),
            Stream::Seen => Some(SEEN_BUCKET),
            Stream::Registry => Some(crate::registry::REGISTRY_BUCKET),
            Stream::Pending => Some(crate::registry::PENDING_BUCKET),
            _ => None,
        }
    }

    /// What the stream captures: `raw.>`, …, `$KV.<bucket>.>`.
    pub fn subjects(self) -> String {
        match self.bucket() {
            Some(bucket) => format!("$KV.{bucket}.>"),
            None => format!("{}.>", self.root()),
        }
    }

    /// What a writer publishes to: `raw.*.*` for RAW (the stream adds the
    /// partition; a frame published into a partition directly would skip
    /// the hash that keeps a device in one), what it captures otherwise.
    pub fn publish_subjects(self) -> String {
        match self {
            Stream::Raw => format!("{}.*.*", self.root()),
            other => other.subjects(),
        }
    }

    /// The first token of its subjects (`$KV` for a bucket).
    pub const fn root(self) -> &'static str {
        match self {
            Stream::Raw => "raw",
            Stream::Parsed => "parsed",
            Stream::Dead => "dead",
            Stream::Events => "events",
            Stream::Devices | Stream::Seen | Stream::Registry | Stream::Pending => "$KV",
        }
    }

    /// Whether a stage consumes it (RAW, PARSED): it keeps its messages by
    /// limits, and the stage's workers purge what every reader of the
    /// stream acknowledged (an interest stream would delete each message
    /// at its ack, one replicated delete per message: docs/streams.md).
    pub const fn is_staged(self) -> bool {
        matches!(self, Stream::Raw | Stream::Parsed)
    }

    /// The stream named `name`, if it is one of fleetbus'.
    pub fn named(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The durable pull consumers of one stage: one per partition of its
/// stream, `<stage>-<partition>` (`hamsters-0` reads `raw.0.>`), each
/// owned by one worker at a time (pinned client of [`OWNER_GROUP`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Durable {
    /// On RAW, the hamsters'.
    Hamsters,
    /// On PARSED, the monkeys'.
    Monkeys,
}

/// The prefix of the hamsters' durables, and the name of the one durable
/// every hamster shared before RAW was partitioned (provisioning removes
/// it once it is drained).
pub const HAMSTERS: &str = Durable::Hamsters.name();
/// The same for the monkeys.
pub const MONKEYS: &str = Durable::Monkeys.name();

/// The priority group a partition's workers pull in; the server pins each
/// partition durable to one client of it.
pub const OWNER_GROUP: &str = "owner";

impl Durable {
    pub const ALL: [Durable; 2] = [Durable::Hamsters, Durable::Monkeys];

    /// The stage's name: the prefix of its durables.
    pub const fn name(self) -> &'static str {
        match self {
            Durable::Hamsters => "hamsters",
            Durable::Monkeys => "monkeys",
        }
    }

    /// The durable of partition `p`: `hamsters-3`.
    pub fn partition(self, p: u32) -> String {
        format!("{}-{p}", self.name())
    }

    /// How its durables are named, for people: `hamsters-<partition>`.
    pub fn partition_pattern(self) -> String {
        format!("{}-<partition>", self.name())
    }

    /// What the durable of partition `p` reads: `raw.3.>`.
    pub fn filter(self, p: u32) -> String {
        format!("{}.{p}.>", self.stream().root())
    }

    /// The partition a durable name of this stage is for (`None` for the
    /// old shared durable and anything else).
    pub fn partition_of(self, durable: &str) -> Option<u32> {
        durable
            .strip_prefix(self.name())?
            .strip_prefix('-')?
            .parse()
            .ok()
    }

    /// The stream it reads.
    pub const fn stream(self) -> Stream {
        match self {
            Durable::Hamsters => Stream::Raw,
            Durable::Monkeys => Stream::Parsed,
        }
    }
}

/// One subject token from free text: NATS subjects are split on `.`, and
/// `*`, `>` and white space are not allowed in a token; each such character
/// becomes `_`. An empty value becomes `_`.
pub fn subject_token(value: &str) -> String {
    if value.is_empty() {
        return "_".into();
    }
    value
        .chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// One key-value key token from free text: characters a key may not hold
/// (anything but ASCII letters, digits, `-`, `_`, `=`, `/`) become `_`; an
/// empty value becomes `_`.
pub fn key_token(value: &str) -> String {
    let key: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.is_empty() {
        "_".into()
    } else {
        key
    }
}

/// `<root>.<protocol>.<device>`: where a device's messages travel in a
/// stream of records (RAW, PARSED).
fn device_subject(root: &str, protocol: &str, device: &str) -> String {
    format!(
        "{root}.{}.{}",
        subject_token(protocol),
        subject_token(device)
    )
}

/// `raw.<protocol>.<device>`: where a gateway publishes a frame (RAW
/// stores it under its partition).
pub fn raw_subject(protocol: &str, device: &str) -> String {
    device_subject(Stream::Raw.root(), protocol, device)
}

/// `parsed.<partition>.<protocol>.<device>`.
pub fn parsed_subject(partition: u32, protocol: &str, device: &str) -> String {
    device_subject(
        &format!("{}.{partition}", Stream::Parsed.root()),
        protocol,
        device,
    )
}

/// RAW's subject transform for `partitions` partitions: `raw.*.*` to
/// `raw.{{partition(P,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}`. The server
/// hashes protocol and device into the partition, so every frame of a
/// device lands in one partition whichever gateway took it.
pub fn raw_transform(partitions: u32) -> (String, String) {
    let root = Stream::Raw.root();
    (
        format!("{root}.*.*"),
        format!(
            "{root}.{{{{partition({partitions},1,2)}}}}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}"
        ),
    )
}

/// The partition of a stored RAW or PARSED subject
/// (`raw.<partition>.<protocol>.<device>`); `None` for one without (a
/// subject of the layout before partitions, or anything else).
pub fn partition_of(subject: &str) -> Option<u32> {
    let mut tokens = subject.split('.');
    let root = tokens.next()?;
    if root != Stream::Raw.root() && root != Stream::Parsed.root() {
        return None;
    }
    let partition = tokens.next()?.parse().ok()?;
    (tokens.count() == 2).then_some(partition)
}

/// Where a message was given up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeadStage {
    /// A raw frame the hamsters could not parse: `dead.raw.…`.
    Raw,
    /// A parsed message the monkeys could not process: `dead.parsed.…`.
    Parsed,
}

impl DeadStage {
    pub const ALL: [DeadStage; 2] = [DeadStage::Raw, DeadStage::Parsed];

    /// The second token of its DEAD subjects: `raw`, `parsed`.
    pub const fn token(self) -> &'static str {
        match self {
            DeadStage::Raw => Stream::Raw.root(),
            DeadStage::Parsed => Stream::Parsed.root(),
        }
    }

    /// Who gives up at this stage, the `Fleetbus-Dead-Stage` header:
    /// `hamster`, `monkey`.
    pub const fn worker(self) -> &'static str {
        match self {
            DeadStage::Raw => "hamster",
            DeadStage::Parsed => "monkey",
        }
    }

    /// The stream the message was given up on came from.
    pub const fn stream(self) -> Stream {
        match self {
            DeadStage::Raw => Stream::Raw,
            DeadStage::Parsed => Stream::Parsed,
        }
    }

    /// The stage of a `Fleetbus-Dead-Stage` value or a subject token.
    pub fn from_word(word: &str) -> Option<DeadStage> {
        DeadStage::ALL
            .into_iter()
            .find(|s| s.worker() == word || s.token() == word)
    }

    /// What a worker of this stage may publish into DEAD: `dead.raw.>`.
    pub fn subjects(self) -> String {
        format!("{}.{}.>", Stream::Dead.root(), self.token())
    }
}

/// `dead.raw.<protocol>.<device>` or `dead.parsed.<protocol>.<device>`.
pub fn dead_subject(stage: DeadStage, protocol: &str, device: &str) -> String {
    let root = format!("{}.{}", Stream::Dead.root(), stage.token());
    device_subject(&root, protocol, device)
}

/// `events.<protocol>.<device>.<type>`.
pub fn event_subject(protocol: &str, device: &str, kind: &str) -> String {
    format!(
        "{}.{}",
        device_subject(Stream::Events.root(), protocol, device),
        subject_token(kind)
    )
}

/// The key of a device in the `devices` bucket: its id as a key token.
pub fn device_key(device: &str) -> String {
    key_token(device)
}

/// The key of a device in the `seen` bucket: `<protocol>.<device>`.
pub fn seen_key(protocol: &str, device: &str) -> String {
    format!("{}.{}", key_token(protocol), key_token(device))
}

/// A stored RAW or PARSED subject without its partition (`raw.3.gt06.1`
/// is `raw.gt06.1`, where a gateway publishes that frame); any other
/// subject as it is.
pub fn without_partition(subject: &str) -> String {
    if partition_of(subject).is_none() {
        return subject.to_string();
    }
    let mut tokens = subject.splitn(3, '.');
    let (root, _, rest) = (tokens.next(), tokens.next(), tokens.next());
    format!("{}.{}", root.unwrap_or_default(), rest.unwrap_or_default())
}

/// Where a message comes from: protocol and device from its headers
/// (empty values do not count), else from its subject
/// `<root>.<protocol>.<device>` (`dead.<stage>.` subjects are read past
/// their stage, partitioned ones past their partition; `_` for a missing
/// token).
pub fn origin_of(subject: &str, protocol: Option<&str>, device: Option<&str>) -> (String, String) {
    let tail = match subject.split_once('.') {
        Some((root, rest)) if root == Stream::Dead.root() || partition_of(subject).is_some() => {
            rest.split_once('.').map_or("", |(_, r)| r)
        }
        Some((_, rest)) => rest,
        None => "",
    };
    let mut tokens = tail.splitn(2, '.');
    let sp = tokens.next().filter(|t| !t.is_empty()).unwrap_or("_");
    let sd = tokens.next().unwrap_or("_");
    let pick = |h: Option<&str>, fallback: &str| {
        h.filter(|v| !v.is_empty()).unwrap_or(fallback).to_string()
    };
    (pick(protocol, sp), pick(device, sd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_change() {
        // Streams, durables and buckets outlive versions: a rename strands
        // every message stored under the old name.
        let names: Vec<&str> = Stream::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "RAW",
                "PARSED",
                "DEAD",
                "EVENTS",
                "KV_devices",
                "KV_seen",
                "KV_registry",
                "KV_pending"
            ]
        );
        let subjects: Vec<String> = Stream::ALL.iter().map(|s| s.subjects()).collect();
        assert_eq!(
            subjects,
            [
                "raw.>",
                "parsed.>",
                "dead.>",
                "events.>",
                "$KV.devices.>",
                "$KV.seen.>",
                "$KV.registry.>",
                "$KV.pending.>"
            ]
        );
        assert_eq!((HAMSTERS, MONKEYS), ("hamsters", "monkeys"));
        assert_eq!(Durable::Hamsters.partition(3), "hamsters-3");
        assert_eq!(Durable::Monkeys.filter(0), "parsed.0.>");
        assert_eq!(Durable::Monkeys.partition_of("monkeys-12"), Some(12));
        assert_eq!(Durable::Monkeys.partition_of("monkeys"), None);
        assert_eq!(Durable::Hamsters.partition_of("monkeys-1"), None);
        assert_eq!(OWNER_GROUP, "owner");
        assert_eq!(
            raw_transform(8),
            (
                "raw.*.*".to_string(),
                "raw.{{partition(8,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}".to_string()
            )
        );
        assert_eq!(Stream::Raw.publish_subjects(), "raw.*.*");
        assert_eq!(Stream::Parsed.publish_subjects(), "parsed.>");
        assert_eq!(Durable::Hamsters.stream(), Stream::Raw);
        assert_eq!(Stream::named("KV_seen"), Some(Stream::Seen));
        assert_eq!(Stream::named("nope"), None);
    }

    #[test]
    fn subjects_are_single_tokens() {
        assert_eq!(raw_subject("gt06", "3528870"), "raw.gt06.3528870");
        assert_eq!(
            parsed_subject(5, "teltonika", "a.b c>*"),
            "parsed.5.teltonika.a_b_c__"
        );
        assert_eq!(partition_of("raw.5.gt06.1"), Some(5));
        assert_eq!(partition_of("parsed.12.gt06.1"), Some(12));
        assert_eq!(partition_of("raw.gt06.1"), None);
        assert_eq!(partition_of("raw.5.gt06"), None);
        assert_eq!(partition_of("dead.raw.gt06.1"), None);
        assert_eq!(without_partition("raw.5.gt06.1"), "raw.gt06.1");
        assert_eq!(without_partition("parsed.12.gt06.1"), "parsed.gt06.1");
        assert_eq!(without_partition("raw.gt06.1"), "raw.gt06.1");
        assert_eq!(without_partition("dead.raw.gt06.1"), "dead.raw.gt06.1");
        assert_eq!(dead_subject(DeadStage::Raw, "gt06", ""), "dead.raw.gt06._");
        assert_eq!(
            dead_subject(DeadStage::Parsed, "gt06", "1"),
            "dead.parsed.gt06.1"
        );
        assert_eq!(
            event_subject("gt06", "1", "ignitionOn"),
            "events.gt06.1.ignitionOn"
        );
        assert_eq!(DeadStage::Raw.subjects(), "dead.raw.>");
        assert_eq!(DeadStage::from_word("monkey"), Some(DeadStage::Parsed));
        assert_eq!(DeadStage::from_word("raw"), Some(DeadStage::Raw));
    }

    #[test]
    fn keys_are_valid() {
        assert_eq!(key_token("356307042441013"), "356307042441013");
        assert_eq!(key_token("a.b c*"), "a_b_c_");
        assert_eq!(key_token(""), "_");
        assert_eq!(seen_key("gt06", "a.b"), "gt06.a_b");
        assert_eq!(device_key("a.b"), "a_b");
    }

    #[test]
    fn origin_is_the_headers_else_the_subject() {
        let o = origin_of;
        assert_eq!(o("raw.gt06.1", None, None), ("gt06".into(), "1".into()));
        assert_eq!(
            o("raw.gt06.1", Some("teltonika"), Some("a.b")),
            ("teltonika".into(), "a.b".into())
        );
        assert_eq!(
            o("raw.gt06.1", Some(""), Some("")),
            ("gt06".into(), "1".into())
        );
        assert_eq!(
            o("dead.parsed.gt06.1", None, None),
            ("gt06".into(), "1".into())
        );
        assert_eq!(o("raw", None, None), ("_".into(), "_".into()));
        assert_eq!(o("raw.3.gt06.1", None, None), ("gt06".into(), "1".into()));
        assert_eq!(
            o("parsed.0.teltonika.2", None, None),
            ("teltonika".into(), "2".into())
        );
    }
}
