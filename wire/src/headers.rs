//! Header names on fleetbus messages, and the one way to read them.
//!
//! Which message kind carries which header is described by that kind's
//! module ([`crate::raw`], [`crate::parsed`], [`crate::dead`]).

use async_nats::HeaderMap;

/// JetStream's deduplication id (within the stream's duplicate window).
pub const MSG_ID: &str = "Nats-Msg-Id";
/// Protocol name of the frame (`teltonika`, `gt06`, …), on RAW and PARSED.
pub const PROTOCOL: &str = "Fleetbus-Protocol";
/// Device identity as the session established it, on RAW and PARSED.
pub const DEVICE: &str = "Fleetbus-Device";
/// Device model when configured (selects model-specific layouts).
pub const MODEL: &str = "Fleetbus-Model";
/// When the gateway received the frame, RFC 3339 UTC with milliseconds.
pub const RECEIVED_AT: &str = "Fleetbus-Received-At";
/// Which gateway stored it (its configured id).
pub const GATEWAY: &str = "Fleetbus-Gateway";
/// The device's address as the gateway saw it (`ip:port`), on RAW.
pub const PEER: &str = "Fleetbus-Peer";
/// On PARSED: the `Nats-Msg-Id` of the RAW frame it came from.
pub const RAW_ID: &str = "Fleetbus-Raw-Id";
/// On PARSED: how many records the message's JSON array holds.
pub const RECORDS: &str = "Fleetbus-Records";
/// On DEAD: which record of a PARSED message this one is (its index in
/// the frame), when it was given up on alone and the others were processed.
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

/// Every header a dead letter adds to the original's; a replay removes
/// exactly these (they share [`DEAD_PREFIX`]).
pub const DEAD_ALL: [&str; 9] = [
    DEAD_REASON,
    DEAD_KIND,
    DEAD_STAGE,
    DEAD_STREAM,
    DEAD_SEQUENCE,
    DEAD_SUBJECT,
    DEAD_DELIVERIES,
    DEAD_MSG_ID,
    DEAD_RECORD,
];
/// What every header in [`DEAD_ALL`] starts with.
pub const DEAD_PREFIX: &str = "Fleetbus-Dead-";
/// JetStream's own headers (`Nats-Msg-Id`, `Nats-Expected-…`): never
/// copied from one stream into another.
pub const NATS_PREFIX: &str = "Nats-";

/// A header's first value; an empty value counts as none.
pub fn get<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A header's value as a number, `None` when absent or not one.
pub fn number<T: std::str::FromStr>(headers: Option<&HeaderMap>, name: &str) -> Option<T> {
    get(headers, name).and_then(|v| v.parse().ok())
}

/// A copy of `headers` without those for which `drop` says so.
pub fn copy_except(headers: Option<&HeaderMap>, drop: impl Fn(&str) -> bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, values) in headers.iter().flat_map(|h| h.iter()) {
        let n: &str = name.as_ref();
        if drop(n) {
            continue;
        }
        for v in values {
            out.append(n, v.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dead_header_has_the_prefix_a_replay_removes() {
        for name in DEAD_ALL {
            assert!(name.starts_with(DEAD_PREFIX), "{name}");
        }
        assert!(MSG_ID.starts_with(NATS_PREFIX));
        for name in [
            PROTOCOL,
            DEVICE,
            MODEL,
            RECEIVED_AT,
            GATEWAY,
            PEER,
            RAW_ID,
            RECORDS,
        ] {
            assert!(
                !name.starts_with(DEAD_PREFIX) && !name.starts_with(NATS_PREFIX),
                "{name}"
            );
        }
    }

    #[test]
    fn empty_values_are_absent_and_copies_drop_what_they_are_told() {
        let mut h = HeaderMap::new();
        h.insert(PROTOCOL, "");
        h.insert(RECORDS, "7");
        h.insert(MSG_ID, "x");
        assert_eq!(get(Some(&h), PROTOCOL), None);
        assert_eq!(number::<usize>(Some(&h), RECORDS), Some(7));
        assert_eq!(number::<usize>(Some(&h), MSG_ID), None);
        let copy = copy_except(Some(&h), |n| n.starts_with(NATS_PREFIX));
        assert!(copy.get(MSG_ID).is_none());
        assert_eq!(copy.get(RECORDS).map(|v| v.as_str()), Some("7"));
    }
}
