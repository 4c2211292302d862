//! The contract between the programs that pass frames and records along:
//! subject names, header names and message ids. Pure functions, shared by
//! the gateway (writes RAW), the hamsters (read RAW, write PARSED and DEAD)
//! and the monkeys (read PARSED), so that each side agrees by construction.
//!
//! Message ids are what makes retries safe. JetStream drops a message whose
//! `Nats-Msg-Id` it saw within the stream's duplicate window, so:
//! * a RAW id is derived from the protocol, the device and the frame's bytes
//!   ([`raw_msg_id`]): a device that resends a frame whose ack it never got,
//!   to any gateway, or a gateway retrying a publish, stores it once;
//! * a PARSED id is the RAW id plus the record's index ([`parsed_msg_id`]),
//!   or plus the range of indexes for the one message that carries a
//!   frame's records ([`parsed_frame_msg_id`]): a redelivered frame, parsed
//!   again by any hamster, stores nothing new.
//!
//! Identical bytes from one device within the window are one message. For
//! frames that carry a fix time that is exactly right; a frame without one
//! (a heartbeat) repeated byte for byte says nothing new either.

use xxhash_rust::xxh3::xxh3_128;

/// Header names used on fleetbus messages.
pub mod headers {
    /// JetStream's deduplication id (within the stream's duplicate window).
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// Protocol name of the frame (`teltonika`, `gt06`, …), on RAW.
    pub const PROTOCOL: &str = "Fleetbus-Protocol";
    /// Device identity as the session established it, on RAW.
    pub const DEVICE: &str = "Fleetbus-Device";
    /// Device model when configured (selects model-specific layouts), on RAW.
    pub const MODEL: &str = "Fleetbus-Model";
    /// When the gateway received the frame, RFC 3339 UTC with milliseconds.
    pub const RECEIVED_AT: &str = "Fleetbus-Received-At";
    /// Which gateway stored it (its configured id).
    pub const GATEWAY: &str = "Fleetbus-Gateway";
    /// The device's address as the gateway saw it (`ip:port`).
    pub const PEER: &str = "Fleetbus-Peer";
    /// On PARSED: the record's type (`position`, `login`, …).
    pub const RECORD_TYPE: &str = "Fleetbus-Record-Type";
    /// On PARSED: the `Nats-Msg-Id` of the RAW frame it came from.
    pub const RAW_ID: &str = "Fleetbus-Raw-Id";
    /// On PARSED: how many records the message carries, when it carries a
    /// whole frame's records as a JSON array (see [`super::ParsedBody`]).
    pub const RECORDS: &str = "Fleetbus-Records";
    /// On DEAD: which record of a PARSED message given up on this one is
    /// (its index in the frame), when the others were processed.
    pub const DEAD_RECORD: &str = "Fleetbus-Dead-Record";
    /// Why a message was dead-lettered (free text, one line).
    pub const DEAD_REASON: &str = "Fleetbus-Dead-Reason";
    /// The kind of reason, a stable word (`parse_error`, `invalid`,
    /// `crashed`, …): what `fleetbus dead ls --kind` filters on.
    pub const DEAD_KIND: &str = "Fleetbus-Dead-Kind";
    /// The `Nats-Msg-Id` the message had in its own stream, so that a
    /// replay puts it back under its original id.
    pub const DEAD_MSG_ID: &str = "Fleetbus-Dead-Msg-Id";
    /// Which stage gave up on it: `hamster` or `monkey`.
    pub const DEAD_STAGE: &str = "Fleetbus-Dead-Stage";
    /// Stream, sequence and subject of the message that was given up on.
    pub const DEAD_STREAM: &str = "Fleetbus-Dead-Stream";
    pub const DEAD_SEQUENCE: &str = "Fleetbus-Dead-Sequence";
    pub const DEAD_SUBJECT: &str = "Fleetbus-Dead-Subject";
    /// How many times it had been delivered.
    pub const DEAD_DELIVERIES: &str = "Fleetbus-Dead-Deliveries";
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

/// Where a message comes from: protocol and device from its headers
/// (`Fleetbus-Protocol`, `Fleetbus-Device`; empty values do not count),
/// else from its subject `<stream>.<protocol>.<device>` (RAW, PARSED;
/// `_` when the subject has fewer tokens).
pub fn origin(subject: &str, protocol: Option<&str>, device: Option<&str>) -> (String, String) {
    let mut tokens = subject.splitn(3, '.').skip(1);
    let (sp, sd) = (tokens.next().unwrap_or("_"), tokens.next().unwrap_or("_"));
    let pick = |h: Option<&str>, fallback: &str| {
        h.filter(|v| !v.is_empty()).unwrap_or(fallback).to_string()
    };
    (pick(protocol, sp), pick(device, sd))
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

/// The key of a device in the `seen` bucket (the identities of its recent
/// records, kept by the hamsters): `<protocol>.<device>`.
pub fn seen_key(protocol: &str, device_id: &str) -> String {
    format!("{}.{}", key_token(protocol), key_token(device_id))
}

/// `raw.<protocol>.<device_id>`.
pub fn raw_subject(protocol: &str, device_id: &str) -> String {
    format!(
        "raw.{}.{}",
        subject_token(protocol),
        subject_token(device_id)
    )
}

/// `parsed.<protocol>.<device_id>`.
pub fn parsed_subject(protocol: &str, device_id: &str) -> String {
    format!(
        "parsed.{}.{}",
        subject_token(protocol),
        subject_token(device_id)
    )
}

/// Where a message was given up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadStage {
    /// A raw frame the hamsters could not parse: `dead.raw.…`.
    Raw,
    /// A parsed message the monkeys could not process: `dead.parsed.…`.
    Parsed,
}

/// `dead.raw.<protocol>.<device_id>` or `dead.parsed.<protocol>.<device_id>`.
pub fn dead_subject(stage: DeadStage, protocol: &str, device_id: &str) -> String {
    let stage = match stage {
        DeadStage::Raw => "raw",
        DeadStage::Parsed => "parsed",
    };
    format!(
        "dead.{stage}.{}.{}",
        subject_token(protocol),
        subject_token(device_id)
    )
}

/// The RAW `Nats-Msg-Id` of one frame: `<protocol>:<device>:<xxh3-128 of the
/// frame bytes, hex>`. Stable across processes, hosts and versions (XXH3 is
/// a fixed specification; std's hasher is not), and unique per device and
/// content, so a resend to any gateway deduplicates.
pub fn raw_msg_id(protocol: &str, device_id: &str, frame: &[u8]) -> String {
    format!(
        "{}:{}:{:032x}",
        subject_token(protocol),
        subject_token(device_id),
        xxh3_128(frame)
    )
}

/// The PARSED `Nats-Msg-Id` of the `index`-th record parsed from the RAW
/// message `raw_id`.
pub fn parsed_msg_id(raw_id: &str, index: usize) -> String {
    format!("{raw_id}#{index}")
}

/// The PARSED `Nats-Msg-Id` of the message that carries all `count`
/// records parsed from the RAW message `raw_id`, in one JSON array.
pub fn parsed_frame_msg_id(raw_id: &str, count: usize) -> String {
    format!("{raw_id}#0..{count}")
}

/// The body of a PARSED message: one record (a JSON object), or every
/// record of one frame, in frame order (a JSON array; the message then has
/// the [`headers::RECORDS`] header). Record `i` of a frame is known by
/// [`parsed_msg_id`]`(raw id, i)` either way.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedBody {
    One(crate::Record),
    Frame(Vec<crate::Record>),
}

impl ParsedBody {
    /// Reads a PARSED payload.
    pub fn from_json(payload: &[u8]) -> Result<ParsedBody, serde_json::Error> {
        let first = payload.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            serde_json::from_slice(payload).map(ParsedBody::Frame)
        } else {
            serde_json::from_slice(payload).map(ParsedBody::One)
        }
    }

    /// The records, in frame order.
    pub fn into_records(self) -> Vec<crate::Record> {
        match self {
            ParsedBody::One(r) => vec![r],
            ParsedBody::Frame(rs) => rs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_single_tokens() {
        assert_eq!(raw_subject("gt06", "3528870"), "raw.gt06.3528870");
        assert_eq!(
            parsed_subject("teltonika", "a.b c>*"),
            "parsed.teltonika.a_b_c__"
        );
        assert_eq!(dead_subject(DeadStage::Raw, "gt06", ""), "dead.raw.gt06._");
        assert_eq!(
            dead_subject(DeadStage::Parsed, "gt06", "1"),
            "dead.parsed.gt06.1"
        );
    }

    #[test]
    fn keys_are_valid() {
        assert_eq!(key_token("356307042441013"), "356307042441013");
        assert_eq!(key_token("a.b c*"), "a_b_c_");
        assert_eq!(key_token(""), "_");
        assert_eq!(seen_key("gt06", "a.b"), "gt06.a_b");
    }

    #[test]
    fn origin_is_the_headers_else_the_subject() {
        let o = |s, p, d| origin(s, p, d);
        assert_eq!(o("raw.gt06.1", None, None), ("gt06".into(), "1".into()));
        assert_eq!(
            o("raw.gt06.1", Some("teltonika"), Some("a.b")),
            ("teltonika".into(), "a.b".into())
        );
        assert_eq!(
            o("raw.gt06.1", Some(""), Some("")),
            ("gt06".into(), "1".into())
        );
        assert_eq!(o("raw", None, None), ("_".into(), "_".into()));
    }

    #[test]
    fn ids_keep_their_exact_values_across_versions() {
        // Stored ids deduplicate against ids a newer version computes: a
        // change here stores every in-flight resend twice after an upgrade.
        let raw = raw_msg_id(
            "gt06",
            "3528870",
            b"\x78\x78\x05\x01\x00\x01\xd9\xdc\x0d\x0a",
        );
        assert_eq!(raw, "gt06:3528870:baa918b78f0d7171becbab2c3e24c866");
        assert_eq!(
            parsed_msg_id(&raw, 1),
            "gt06:3528870:baa918b78f0d7171becbab2c3e24c866#1"
        );
        assert_eq!(
            parsed_frame_msg_id(&raw, 7),
            "gt06:3528870:baa918b78f0d7171becbab2c3e24c866#0..7"
        );
        // XXH3-128 of no bytes is the specification's published value.
        assert_eq!(
            raw_msg_id("gt06", "a.b c", b""),
            "gt06:a_b_c:99aa06d3014798d86001c324468d497f"
        );
    }

    #[test]
    fn raw_ids_depend_on_device_and_every_byte() {
        let a = raw_msg_id("gt06", "1", b"frame");
        assert_eq!(a, raw_msg_id("gt06", "1", b"frame"), "same frame, same id");
        assert_ne!(a, raw_msg_id("gt06", "2", b"frame"), "other device");
        assert_ne!(a, raw_msg_id("gt06", "1", b"framf"), "one byte differs");
        assert_ne!(a, raw_msg_id("teltonika", "1", b"frame"), "other protocol");
        // Pinned: ids must not change between versions, or a resend across
        // an upgrade would be stored twice.
        assert_eq!(a.len(), "gt06:1:".len() + 32);
        assert_eq!(parsed_msg_id(&a, 3), format!("{a}#3"));
        assert_eq!(parsed_frame_msg_id(&a, 3), format!("{a}#0..3"));
    }

    #[test]
    fn a_parsed_body_is_one_record_or_a_frame_of_them() {
        use crate::{Position, Record};
        use chrono::{TimeZone, Utc};
        let fix = |s| {
            Record::Position(Position::new(
                "d",
                "teltonika",
                Utc.timestamp_opt(s, 0).unwrap(),
            ))
        };
        let one = serde_json::to_vec(&fix(1)).unwrap();
        assert_eq!(
            ParsedBody::from_json(&one).unwrap(),
            ParsedBody::One(fix(1))
        );
        let frame = serde_json::to_vec(&vec![fix(1), fix(2)]).unwrap();
        let body = ParsedBody::from_json(&frame).unwrap();
        assert_eq!(body.clone().into_records(), vec![fix(1), fix(2)]);
        assert!(matches!(body, ParsedBody::Frame(_)));
        assert!(ParsedBody::from_json(b" [1]").is_err(), "not records");
        assert!(ParsedBody::from_json(b"junk").is_err());
    }
}
