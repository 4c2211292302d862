//! Every message id fleetbus writes. Ids are what makes retries safe:
//! JetStream drops a message whose `Nats-Msg-Id` it saw within the stream's
//! duplicate window, and the monkeys' side effects are keyed by a record's
//! id. An id that changes between versions stores every in-flight resend
//! twice after an upgrade, so the tests below pin exact values.
//!
//! * RAW: `<protocol>:<device>:<xxh3-128 of the frame, hex>` — a device
//!   that resends a frame whose ack it never got, to any gateway, or a
//!   gateway retrying a publish, stores it once.
//! * PARSED: the RAW id plus which of the frame's records the message
//!   carries: `#0..<n>` for all n of them in one message (n > 1), `#<i>`
//!   for record i alone (a frame of one record; a frame too large for one
//!   message goes record by record) — a redelivered frame, parsed again by
//!   any hamster, stores nothing new.
//! * A record: its identity, `<protocol>:<device>:<fix time>:<identity>`,
//!   the same whichever frame carried it; a record without one (a login, a
//!   heartbeat) is `<raw id>#<index>`.
//! * DEAD: `dead:<stream>:<sequence>` (`#<index>` for one record of a
//!   frame), one per original message.
//! * EVENTS: `<record id>:<type>` (`:alarm:<alarm>` for alarms).
//! * A message stored without an id (by a client that is not fleetbus) is
//!   known by `<stream>:<sequence>`.

use chrono::SecondsFormat;
use fleetbus_codec::identity::position_identity;
use fleetbus_codec::Record;
use xxhash_rust::xxh3::xxh3_128;

use crate::names::subject_token;

/// The RAW id of one frame. Stable across processes, hosts and versions
/// (XXH3 is a fixed specification; std's hasher is not).
pub fn raw_msg_id(protocol: &str, device: &str, frame: &[u8]) -> String {
    format!(
        "{}:{}:{:032x}",
        subject_token(protocol),
        subject_token(device),
        xxh3_128(frame)
    )
}

/// The PARSED id of the message that carries record `index` of the frame
/// `raw_id` alone.
pub fn parsed_msg_id(raw_id: &str, index: usize) -> String {
    format!("{raw_id}#{index}")
}

/// The PARSED id of the message that carries the records of the frame
/// `raw_id`, which has `count` (> 1) of them.
pub fn parsed_frame_msg_id(raw_id: &str, count: usize) -> String {
    format!("{raw_id}#0..{count}")
}

/// A PARSED id read back: the frame's id and the index of the message's
/// first record (`None` for an id that is not a PARSED id).
pub fn parsed_first_record(msg_id: &str) -> Option<(&str, usize)> {
    let (raw, tail) = msg_id.rsplit_once('#')?;
    let first = tail.split_once("..").map_or(tail, |(first, _)| first);
    first.parse().ok().map(|i| (raw, i))
}

/// A record's id for everything downstream (the monkeys' `Meta::msg_id`,
/// event ids): `<protocol>:<device>:<fix time>:<identity, 16 hex digits>`.
/// The same record has the same id however often and in whatever frame it
/// arrives. `None` for records without an identity.
pub fn record_msg_id(record: &Record) -> Option<String> {
    let p = record.as_position()?;
    Some(format!(
        "{}:{}:{}:{:016x}",
        subject_token(&p.protocol),
        subject_token(&p.device_id),
        p.fix_time.to_rfc3339_opts(SecondsFormat::Millis, true),
        position_identity(p)
    ))
}

/// The dead letter of the message `stream`/`sequence` (or of its record
/// `index` alone).
pub fn dead_msg_id(stream: &str, sequence: u64, record: Option<usize>) -> String {
    match record {
        None => format!("dead:{stream}:{sequence}"),
        Some(i) => format!("dead:{stream}:{sequence}#{i}"),
    }
}

/// An event derived from the record `source`.
pub fn event_msg_id(source: &str, kind: &str, alarm: Option<&str>) -> String {
    match alarm {
        Some(a) => format!("{source}:{kind}:{a}"),
        None => format!("{source}:{kind}"),
    }
}

/// A message that was stored without an id.
pub fn stored_msg_id(stream: &str, sequence: u64) -> String {
    format!("{stream}:{sequence}")
}

/// A replayed dead letter whose original id is not known at all.
pub fn replay_msg_id(dead_sequence: u64) -> String {
    format!("replay:{}:{dead_sequence}", crate::names::DEAD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use fleetbus_codec::Position;

    #[test]
    fn ids_keep_their_exact_values_across_versions() {
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
        assert_eq!(dead_msg_id("RAW", 42, None), "dead:RAW:42");
        assert_eq!(dead_msg_id("PARSED", 42, Some(3)), "dead:PARSED:42#3");
        assert_eq!(event_msg_id("s", "alarm", Some("sos")), "s:alarm:sos");
        assert_eq!(event_msg_id("s", "ignitionOn", None), "s:ignitionOn");
        assert_eq!(stored_msg_id("RAW", 9), "RAW:9");
        assert_eq!(replay_msg_id(5), "replay:DEAD:5");
    }

    #[test]
    fn a_record_id_is_its_identity_and_fix_time() {
        let mut p = Position::new(
            "356307042441013",
            "teltonika",
            Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 5).unwrap(),
        );
        p.valid = true;
        p.latitude = 54.68721;
        p.longitude = 25.27972;
        p.speed = 42.0;
        p.set("ignition", true);
        p.set("event", 0);
        let id = record_msg_id(&Record::Position(p.clone())).unwrap();
        assert_eq!(
            id,
            "teltonika:356307042441013:2026-11-29T12:00:05.000Z:02eb78f988952fe0"
        );
        p.set("archive", true);
        assert_eq!(
            record_msg_id(&Record::Position(p)).unwrap(),
            id,
            "archive is volatile"
        );
        let login = Record::Login(fleetbus_codec::DeviceMessage {
            device_id: "1".into(),
            protocol: "gt06".into(),
            time: Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
            attributes: Default::default(),
        });
        assert_eq!(record_msg_id(&login), None);
    }

    #[test]
    fn raw_ids_depend_on_device_and_every_byte() {
        let a = raw_msg_id("gt06", "1", b"frame");
        assert_eq!(a, raw_msg_id("gt06", "1", b"frame"), "same frame, same id");
        assert_ne!(a, raw_msg_id("gt06", "2", b"frame"), "other device");
        assert_ne!(a, raw_msg_id("gt06", "1", b"framf"), "one byte differs");
        assert_ne!(a, raw_msg_id("teltonika", "1", b"frame"), "other protocol");
    }

    #[test]
    fn a_parsed_id_says_its_first_record() {
        assert_eq!(parsed_first_record("t:1:ab#3"), Some(("t:1:ab", 3)));
        assert_eq!(parsed_first_record("t:1:ab#0..7"), Some(("t:1:ab", 0)));
        assert_eq!(parsed_first_record("PARSED:9"), None);
        assert_eq!(parsed_first_record("x#y"), None);
    }
}
