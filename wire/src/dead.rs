//! A DEAD letter: a copy of a message nobody can process, with why.
//!
//! | | |
//! |---|---|
//! | subject | `dead.<raw\|parsed>.<protocol>.<device>` |
//! | `Nats-Msg-Id` | `dead:<stream>:<sequence>` (`#<i>` for record i of a frame alone) |
//! | headers | the original's (but JetStream's own) and `Fleetbus-Dead-Reason`, `-Kind`, `-Stage`, `-Stream`, `-Sequence`, `-Subject`, `-Msg-Id` (the original id), `-Deliveries` (when known), `-Record` (for one record of a frame) |
//! | payload | the original payload: a RAW frame, or a PARSED array (one record's array when given up on alone) |
//!
//! Written by the workers (and `fleetbus dead rescue`), read by
//! `fleetbus dead ls` and `replay`, which puts the payload back where it
//! came from under its original id.

use async_nats::HeaderMap;
use fleetbus_codec::Record;

use crate::envelope::Envelope;
use crate::headers::{self, DEAD_PREFIX, NATS_PREFIX};
use crate::ids;
use crate::names::{dead_subject, without_partition, DeadStage, Stream};
use crate::parsed::read_records;

/// Everything about one message given up on.
#[derive(Clone, Copy, Debug)]
pub struct DeadLetter<'a> {
    pub stage: DeadStage,
    pub protocol: &'a str,
    pub device: &'a str,
    /// The original headers (copied, except JetStream's own `Nats-*`; the
    /// original `Nats-Msg-Id` is kept as `Fleetbus-Dead-Msg-Id`).
    pub original: Option<&'a HeaderMap>,
    /// A stable word (`parse_error`, `invalid`, …) and the detail.
    pub kind: &'a str,
    pub reason: &'a str,
    /// Where it came from.
    pub stream: &'a str,
    pub sequence: u64,
    pub subject: &'a str,
    /// How often it was delivered; 0 or less when nobody knows any more
    /// (the header is then left out).
    pub deliveries: i64,
    /// For one record of a PARSED message that carries a frame: its index
    /// (the payload is then that record alone) and its own id.
    pub record: Option<(usize, &'a str)>,
}

/// One line, as a header value must be (at most 1000 characters).
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1000)
        .collect()
}

impl DeadLetter<'_> {
    pub fn subject(&self) -> String {
        dead_subject(self.stage, self.protocol, self.device)
    }

    /// One per original message, so a redelivery stores it once.
    pub fn msg_id(&self) -> String {
        ids::dead_msg_id(self.stream, self.sequence, self.record.map(|(i, _)| i))
    }

    pub fn headers(&self) -> HeaderMap {
        // A single record of a frame is not the frame: its count goes too.
        let single = self.record.is_some();
        let mut h = headers::copy_except(self.original, |n| {
            n.starts_with(NATS_PREFIX) || (single && n == headers::RECORDS)
        });
        let original_id = match self.record {
            Some((_, id)) => Some(id),
            None => headers::get(self.original, headers::MSG_ID),
        };
        h.insert(headers::MSG_ID, self.msg_id().as_str());
        if let Some(id) = original_id {
            h.insert(headers::DEAD_MSG_ID, id);
        }
        if single {
            h.insert(headers::RECORDS, "1");
        }
        h.insert(headers::DEAD_REASON, one_line(self.reason).as_str());
        h.insert(headers::DEAD_KIND, self.kind);
        h.insert(headers::DEAD_STAGE, self.stage.worker());
        h.insert(headers::DEAD_STREAM, self.stream);
        h.insert(headers::DEAD_SEQUENCE, self.sequence.to_string().as_str());
        h.insert(headers::DEAD_SUBJECT, self.subject);
        if self.deliveries > 0 {
            h.insert(
                headers::DEAD_DELIVERIES,
                self.deliveries.to_string().as_str(),
            );
        }
        if let Some((i, _)) = self.record {
            h.insert(headers::DEAD_RECORD, i.to_string().as_str());
        }
        h
    }
}

/// The payload of a dead letter for one record alone: a PARSED array of it.
pub fn record_payload(record: &Record) -> Vec<u8> {
    // A record that was deserialized serializes.
    serde_json::to_vec(&[record]).unwrap_or_default()
}

/// A dead letter read back.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeadInfo {
    /// `hamster` or `monkey` (the header, else the subject's stage; the
    /// subject's token as it is when it is neither).
    pub stage: String,
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub protocol: String,
    pub device: String,
    /// Where it came from.
    pub stream: Option<String>,
    pub stream_sequence: Option<u64>,
    pub origin_subject: Option<String>,
    pub deliveries: Option<i64>,
    /// Its id in its own stream.
    pub msg_id: Option<String>,
    /// For one record of a frame: its index.
    pub record: Option<usize>,
    pub raw_id: Option<String>,
    /// For a PARSED message: how many records it holds.
    pub records: Option<usize>,
}

impl DeadInfo {
    pub fn read(m: &impl Envelope) -> DeadInfo {
        let text = |name| m.header(name).map(str::to_string);
        let (protocol, device) = m.origin();
        let token = m.subject().split('.').nth(1).unwrap_or("");
        let stage = m
            .header(headers::DEAD_STAGE)
            .map(str::to_string)
            .or_else(|| DeadStage::from_word(token).map(|s| s.worker().to_string()))
            .unwrap_or_else(|| token.to_string());
        DeadInfo {
            stage,
            kind: text(headers::DEAD_KIND),
            reason: text(headers::DEAD_REASON),
            protocol,
            device,
            stream: text(headers::DEAD_STREAM),
            stream_sequence: headers::number::<u64>(m.headers(), headers::DEAD_SEQUENCE),
            origin_subject: text(headers::DEAD_SUBJECT),
            deliveries: headers::number::<i64>(m.headers(), headers::DEAD_DELIVERIES),
            msg_id: text(headers::DEAD_MSG_ID),
            record: headers::number::<usize>(m.headers(), headers::DEAD_RECORD),
            raw_id: text(headers::RAW_ID),
            records: headers::number::<usize>(m.headers(), headers::RECORDS),
        }
    }

    /// The stage as a [`DeadStage`], when it is one.
    pub fn dead_stage(&self) -> Option<DeadStage> {
        DeadStage::from_word(&self.stage)
    }

    /// Where a replay puts it back: the original subject, unless that is
    /// in DEAD itself. A RAW frame goes back where a gateway publishes it
    /// (`raw.<protocol>.<device>`), so that RAW hashes it into the
    /// partition its device has now.
    pub fn replay_subject(&self) -> Result<String, NoReplayTarget> {
        let subject = self
            .origin_subject
            .as_deref()
            .ok_or(NoReplayTarget::NoTarget)?;
        let root = subject.split('.').next();
        if root == Some(Stream::Dead.root()) {
            return Err(NoReplayTarget::IntoDead(subject.to_string()));
        }
        if root == Some(Stream::Raw.root()) {
            return Ok(without_partition(subject));
        }
        Ok(subject.to_string())
    }

    /// The `Nats-Msg-Id` a replay uses: the original one, or the one its
    /// origin would have derived (`dead_sequence`: where the letter is in
    /// DEAD, for a letter whose origin is not known).
    pub fn replay_msg_id(&self, payload: &[u8], dead_sequence: u64) -> String {
        if let Some(id) = &self.msg_id {
            return id.clone();
        }
        let fallback = ids::replay_msg_id(dead_sequence);
        if self.dead_stage() == Some(DeadStage::Raw) {
            // What the gateway derived (raw_msg_id tokenizes as subjects do).
            return ids::raw_msg_id(&self.protocol, &self.device, payload);
        }
        let raw_id = self.raw_id.as_deref();
        if let Some(index) = self.record {
            let record = read_records(payload)
                .ok()
                .and_then(|(r, _)| r.into_iter().next());
            return record
                .as_ref()
                .and_then(ids::record_msg_id)
                .or_else(|| raw_id.map(|raw| ids::parsed_msg_id(raw, index)))
                .unwrap_or(fallback);
        }
        match (raw_id, self.records) {
            // A frame's records in one message: the hamster's id for it.
            (Some(raw), Some(n)) if n > 1 => ids::parsed_frame_msg_id(raw, n),
            // One record of a frame whose index is not known: an id of its
            // own, since one of the frame's would risk a false duplicate.
            (Some(raw), _) => format!("{raw}#{fallback}"),
            _ => fallback,
        }
    }
}

/// The original headers of a dead letter: without the letter's own and
/// JetStream's, `Nats-Msg-Id` set to `msg_id`.
pub fn replay_headers(letter: Option<&HeaderMap>, msg_id: &str) -> HeaderMap {
    let mut out = headers::copy_except(letter, |n| {
        n.starts_with(DEAD_PREFIX) || n.starts_with(NATS_PREFIX)
    });
    out.insert(headers::MSG_ID, msg_id);
    out
}

/// Why a letter cannot be put back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoReplayTarget {
    #[error("no {} header: nowhere to put it back", headers::DEAD_SUBJECT)]
    NoTarget,
    #[error("its origin {0} is in DEAD itself")]
    IntoDead(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stored(subject: &str, h: HeaderMap, payload: &[u8]) -> async_nats::Message {
        async_nats::Message {
            subject: subject.into(),
            reply: None,
            payload: Bytes::copy_from_slice(payload),
            headers: Some(h),
            status: None,
            description: None,
            length: 0,
        }
    }

    fn letter<'a>(original: &'a HeaderMap) -> DeadLetter<'a> {
        DeadLetter {
            stage: DeadStage::Raw,
            protocol: "teltonika",
            device: "1",
            original: Some(original),
            kind: "parse_error",
            reason: "teltonika parse error:\nbad crc",
            stream: "RAW",
            sequence: 42,
            subject: "raw.teltonika.1",
            deliveries: 2,
            record: None,
        }
    }

    #[test]
    fn a_letter_keeps_the_original_headers_and_id_and_says_why() {
        let mut original = HeaderMap::new();
        original.insert(headers::MSG_ID, "teltonika:1:abc");
        original.insert(headers::PROTOCOL, "teltonika");
        original.insert(headers::GATEWAY, "gw-1");
        let l = letter(&original);
        assert_eq!(l.subject(), "dead.raw.teltonika.1");
        let h = l.headers();
        let get = |n: &str| h.get(n).map(|v| v.as_str().to_string());
        assert_eq!(get(headers::MSG_ID).as_deref(), Some("dead:RAW:42"));
        assert_eq!(
            get(headers::DEAD_MSG_ID).as_deref(),
            Some("teltonika:1:abc")
        );
        assert_eq!(get(headers::GATEWAY).as_deref(), Some("gw-1"));
        assert_eq!(
            get(headers::DEAD_REASON).as_deref(),
            Some("teltonika parse error: bad crc"),
            "one line"
        );
        assert_eq!(get(headers::DEAD_STAGE).as_deref(), Some("hamster"));
        let info = DeadInfo::read(&stored(&l.subject(), h.clone(), b"x"));
        assert_eq!(
            info,
            DeadInfo {
                stage: "hamster".into(),
                kind: Some("parse_error".into()),
                reason: Some("teltonika parse error: bad crc".into()),
                protocol: "teltonika".into(),
                device: "1".into(),
                stream: Some("RAW".into()),
                stream_sequence: Some(42),
                origin_subject: Some("raw.teltonika.1".into()),
                deliveries: Some(2),
                msg_id: Some("teltonika:1:abc".into()),
                record: None,
                raw_id: None,
                records: None,
            }
        );
        assert_eq!(info.replay_subject(), Ok("raw.teltonika.1".to_string()));
        let stored = DeadInfo {
            origin_subject: Some("raw.7.teltonika.1".into()),
            ..info.clone()
        };
        assert_eq!(stored.replay_subject(), Ok("raw.teltonika.1".to_string()));
        let parsed = DeadInfo {
            origin_subject: Some("parsed.7.teltonika.1".into()),
            ..info.clone()
        };
        assert_eq!(
            parsed.replay_subject(),
            Ok("parsed.7.teltonika.1".to_string())
        );
        assert_eq!(info.replay_msg_id(b"x", 7), "teltonika:1:abc");
        let back = replay_headers(Some(&h), "teltonika:1:abc");
        assert_eq!(back.get(headers::GATEWAY).unwrap().as_str(), "gw-1");
        assert_eq!(
            back.get(headers::MSG_ID).unwrap().as_str(),
            "teltonika:1:abc"
        );
        for name in headers::DEAD_ALL {
            assert!(back.get(name).is_none(), "{name}");
        }
    }

    #[test]
    fn one_record_of_a_frame_is_a_letter_of_its_own() {
        let mut original = HeaderMap::new();
        original.insert(headers::MSG_ID, "teltonika:1:abc#0..5");
        original.insert(headers::RECORDS, "5");
        let l = DeadLetter {
            stage: DeadStage::Parsed,
            stream: "PARSED",
            record: Some((3, "teltonika:1:2026-11-29T12:00:05.000Z:00ff")),
            ..letter(&original)
        };
        let h = l.headers();
        assert_eq!(l.subject(), "dead.parsed.teltonika.1");
        assert_eq!(h.get(headers::MSG_ID).unwrap().as_str(), "dead:PARSED:42#3");
        assert_eq!(
            h.get(headers::DEAD_MSG_ID).unwrap().as_str(),
            "teltonika:1:2026-11-29T12:00:05.000Z:00ff",
            "a record's own id, not its frame's"
        );
        assert_eq!(h.get(headers::DEAD_RECORD).unwrap().as_str(), "3");
        assert_eq!(h.get(headers::RECORDS).unwrap().as_str(), "1");
        assert_eq!(
            DeadInfo::read(&stored("dead.parsed.teltonika.1", h, b"[]")).stage,
            "monkey"
        );
    }

    #[test]
    fn without_the_original_id_a_replay_derives_it_as_its_origin_would() {
        let read = |subject: &str, pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.insert(*n, *v);
            }
            DeadInfo::read(&stored(subject, h, b""))
        };
        let raw = read("dead.raw.teltonika.1", &[]);
        assert_eq!(
            raw.replay_msg_id(b"frame", 9),
            ids::raw_msg_id("teltonika", "1", b"frame")
        );

        let mut p = fleetbus_codec::Position::new("1", "teltonika", chrono::Utc::now());
        p.valid = true;
        let record = Record::Position(p);
        let one = read(
            "dead.parsed.teltonika.1",
            &[
                (headers::DEAD_RECORD, "2"),
                (headers::RAW_ID, "teltonika:1:ff"),
            ],
        );
        let want = ids::record_msg_id(&record).unwrap();
        assert_eq!(one.replay_msg_id(&record_payload(&record), 9), want);
        assert_eq!(
            one.replay_msg_id(&serde_json::to_vec(&record).unwrap(), 9),
            want,
            "a letter written before records were arrays"
        );
        assert_eq!(one.replay_msg_id(b"{}", 9), "teltonika:1:ff#2");
        let frame = read(
            "dead.parsed.teltonika.1",
            &[(headers::RAW_ID, "teltonika:1:ff"), (headers::RECORDS, "3")],
        );
        assert_eq!(frame.replay_msg_id(b"[]", 9), "teltonika:1:ff#0..3");
        let bare = read("dead.parsed.teltonika.1", &[]);
        assert_eq!(bare.replay_msg_id(b"{}", 9), "replay:DEAD:9");
        assert_eq!(bare.replay_subject(), Err(NoReplayTarget::NoTarget));
        let into_dead = read("dead.raw.t.1", &[(headers::DEAD_SUBJECT, "dead.raw.t.1")]);
        assert!(matches!(
            into_dead.replay_subject(),
            Err(NoReplayTarget::IntoDead(_))
        ));
    }
}
