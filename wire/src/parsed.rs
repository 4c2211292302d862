//! A PARSED message: records parsed from one RAW frame, always a JSON
//! array of records (docs/position.md, `wire/schema/parsed.json`).
//!
//! | | |
//! |---|---|
//! | subject | `parsed.<partition>.<protocol>.<device>`, the partition of the RAW frame |
//! | `Nats-Msg-Id` | the RAW id + which records: `#0..<n>` (all of a frame of n > 1), `#<i>` (record i alone) — [`crate::ids`] |
//! | headers | `Fleetbus-Records` (how many the array holds), `Fleetbus-Raw-Id`, `Fleetbus-Protocol`, `Fleetbus-Device`; `Fleetbus-Received-At`, `Fleetbus-Gateway`, `Fleetbus-Model` as the frame had them |
//! | payload | `[record, …]` in frame order |
//!
//! A frame's records travel in one message (one replicated write, one
//! delivery and one ack for the frame); a frame whose JSON would pass
//! [`FRAME_MESSAGE_MAX_BYTES`] goes record by record. Records another frame
//! of the device already carried are left out of the array.
//!
//! Written by the hamsters, read by the monkeys (and `fleetbus verify`).
//! Messages written before the array became the only shape hold one record
//! as a bare JSON object; [`ParsedMessage::read`] still reads them.

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use fleetbus_codec::Record;

use crate::envelope::Envelope;
use crate::headers;
use crate::ids::{parsed_first_record, parsed_frame_msg_id, parsed_msg_id, record_msg_id};
use crate::names::{parsed_subject, partition_of};
use crate::raw::{parse_time_header, time_header, RawFrame};

/// A frame's records go in one PARSED message up to this size of JSON;
/// a larger frame (rare: 255 Teltonika records with many IO elements) goes
/// record by record, well under any NATS payload limit.
pub const FRAME_MESSAGE_MAX_BYTES: usize = 256 * 1024;

/// Everything a PARSED message says besides its records.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedMeta {
    /// The RAW frame's id (absent only on messages fleetbus did not write).
    pub raw_id: Option<String>,
    pub protocol: String,
    pub device: String,
    pub model: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
    pub gateway: Option<String>,
    /// The partition: the RAW frame's, which the PARSED message keeps so
    /// that a device's records stay with one monkey too.
    pub partition: u32,
}

/// One message to publish.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
    /// How many records it carries.
    pub records: usize,
}

impl Outgoing {
    pub fn msg_id(&self) -> &str {
        self.headers.get(headers::MSG_ID).map_or("", |v| v.as_str())
    }
}

impl ParsedMeta {
    /// The records of the frame `raw_id` that `raw` describes.
    pub fn of_frame(raw: &RawFrame, raw_id: &str) -> ParsedMeta {
        ParsedMeta {
            raw_id: Some(raw_id.to_string()),
            protocol: raw.protocol.clone(),
            device: raw.device.clone(),
            model: raw.model.clone(),
            received_at: raw.received_at,
            gateway: raw.gateway.clone(),
            partition: raw.partition.unwrap_or(0),
        }
    }

    pub fn subject(&self) -> String {
        parsed_subject(self.partition, &self.protocol, &self.device)
    }

    fn headers(&self, msg_id: &str, records: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, msg_id);
        h.insert(headers::RECORDS, records.to_string().as_str());
        if let Some(raw_id) = &self.raw_id {
            h.insert(headers::RAW_ID, raw_id.as_str());
        }
        h.insert(headers::PROTOCOL, self.protocol.as_str());
        h.insert(headers::DEVICE, self.device.as_str());
        if let Some(t) = self.received_at {
            h.insert(headers::RECEIVED_AT, time_header(t).as_str());
        }
        if let Some(gateway) = &self.gateway {
            h.insert(headers::GATEWAY, gateway.as_str());
        }
        if let Some(model) = &self.model {
            h.insert(headers::MODEL, model.as_str());
        }
        h
    }

    /// The messages that carry `carried` — (index in the frame, record),
    /// in frame order — of a frame of `total` records: one for all of
    /// them, or one per record when together they pass `max_bytes`. The
    /// id names the frame's records whichever of them the array holds: the
    /// hamsters' claims make that the same set every time.
    pub fn messages(
        &self,
        total: usize,
        carried: &[(usize, &Record)],
        max_bytes: usize,
    ) -> Vec<Outgoing> {
        let raw_id = self.raw_id.as_deref().unwrap_or_default();
        let subject = self.subject();
        let message = |id: String, records: Vec<&Record>| {
            let payload = records_payload(&records);
            Outgoing {
                subject: subject.clone(),
                headers: self.headers(&id, records.len()),
                payload: payload.into(),
                records: records.len(),
            }
        };
        if carried.is_empty() {
            return Vec::new();
        }
        if total > 1 {
            let all = message(
                parsed_frame_msg_id(raw_id, total),
                carried.iter().map(|(_, r)| *r).collect(),
            );
            if all.payload.len() <= max_bytes {
                return vec![all];
            }
        }
        carried
            .iter()
            .map(|(i, r)| message(parsed_msg_id(raw_id, *i), vec![*r]))
            .collect()
    }

    /// What a PARSED message says: headers first, else the subject.
    pub fn read(m: &impl Envelope) -> ParsedMeta {
        let (protocol, device) = m.origin();
        let text = |name| m.header(name).map(str::to_string);
        ParsedMeta {
            raw_id: text(headers::RAW_ID),
            protocol,
            device,
            model: text(headers::MODEL),
            received_at: m.header(headers::RECEIVED_AT).and_then(parse_time_header),
            gateway: text(headers::GATEWAY),
            partition: partition_of(m.subject()).unwrap_or(0),
        }
    }
}

/// The payload of a PARSED message that carries `records`: the JSON array
/// of them in the order given. The hamsters' messages ([`ParsedMeta::messages`])
/// and `fleetbus decode --records` both write it with this, so what decode
/// shows is what travels on PARSED by construction, not by a second
/// serialisation kept in step.
pub fn records_payload(records: &[&Record]) -> Vec<u8> {
    // Records that were parsed serialize: their maps have string keys and
    // serde_json writes a non-finite number as null rather than failing.
    serde_json::to_vec(records).unwrap_or_default()
}

/// Why a PARSED payload holds no records.
#[derive(Debug, thiserror::Error)]
pub enum ParsedError {
    #[error("not a fleetbus record: {0}")]
    NotRecords(#[from] serde_json::Error),
    #[error("a frame of no records")]
    Empty,
}

/// A PARSED message read back.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedMessage {
    pub meta: ParsedMeta,
    /// Its `Nats-Msg-Id` (or `stored_id` when it has none).
    pub msg_id: String,
    /// Its records in frame order, each with its id: the record's identity
    /// ([`record_msg_id`]), else `<raw id>#<index in the frame>`.
    pub records: Vec<(Record, String)>,
}

impl ParsedMessage {
    /// Reads `m`; `stored_id` is what a message without an id is known by
    /// ([`crate::ids::stored_msg_id`]).
    pub fn read(m: &impl Envelope, stored_id: &str) -> Result<ParsedMessage, ParsedError> {
        let meta = ParsedMeta::read(m);
        let msg_id = m.header(headers::MSG_ID).unwrap_or(stored_id).to_string();
        let (records, array) = read_records(m.payload())?;
        if records.is_empty() {
            return Err(ParsedError::Empty);
        }
        let single = !array || records.len() == 1;
        // Where record k of the array is in its frame.
        let fallback = |k: usize| match parsed_first_record(&msg_id) {
            Some((raw, first)) => parsed_msg_id(raw, first + k),
            None if single => msg_id.clone(),
            None => parsed_msg_id(meta.raw_id.as_deref().unwrap_or(&msg_id), k),
        };
        let records = records
            .into_iter()
            .enumerate()
            .map(|(k, r)| {
                let id = record_msg_id(&r).unwrap_or_else(|| fallback(k));
                (r, id)
            })
            .collect();
        Ok(ParsedMessage {
            meta,
            msg_id,
            records,
        })
    }
}

/// The records of a PARSED payload, and whether it was an array.
pub fn read_records(payload: &[u8]) -> Result<(Vec<Record>, bool), serde_json::Error> {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        serde_json::from_slice(payload).map(|r| (r, true))
    } else {
        serde_json::from_slice(payload).map(|r| (vec![r], false))
    }
}

/// The records of a PARSED payload as JSON, untouched (for judges that
/// compare what was stored with what was sent, such as `fleetbus verify`).
pub fn records_json(payload: &[u8]) -> Result<Vec<serde_json::Value>, serde_json::Error> {
    Ok(match serde_json::from_slice(payload)? {
        serde_json::Value::Array(records) => records,
        record => vec![record],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use fleetbus_codec::{DeviceMessage, Position};

    fn fix(s: i64) -> Record {
        Record::Position(Position::new(
            "d",
            "teltonika",
            Utc.timestamp_opt(s, 0).unwrap(),
        ))
    }

    fn heartbeat() -> Record {
        Record::Heartbeat(DeviceMessage {
            device_id: "d".into(),
            protocol: "teltonika".into(),
            time: Utc.timestamp_opt(0, 0).unwrap(),
            attributes: Default::default(),
        })
    }

    fn meta() -> ParsedMeta {
        ParsedMeta::of_frame(&RawFrame::new("teltonika", "d"), "teltonika:d:ab")
    }

    fn delivered(out: &Outgoing) -> async_nats::Message {
        async_nats::Message {
            subject: out.subject.as_str().into(),
            reply: None,
            payload: out.payload.clone(),
            headers: Some(out.headers.clone()),
            status: None,
            description: None,
            length: 0,
        }
    }

    #[test]
    fn a_frame_is_one_array_and_each_record_keeps_its_id() {
        let (a, hb, b) = (fix(1), heartbeat(), fix(2));
        // Record 0 was carried by another frame: left out, the id still
        // names the frame's three.
        let out = meta().messages(3, &[(1, &hb), (2, &b)], FRAME_MESSAGE_MAX_BYTES);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].msg_id(), "teltonika:d:ab#0..3");
        assert_eq!(out[0].headers.get(headers::RECORDS).unwrap().as_str(), "2");
        assert_eq!(out[0].subject, "parsed.0.teltonika.d");
        let read = ParsedMessage::read(&delivered(&out[0]), "PARSED:1").unwrap();
        assert_eq!(read.meta, meta());
        let ids: Vec<&str> = read.records.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "teltonika:d:ab#0".to_string(), // the heartbeat: its index in the array
                record_msg_id(&b).unwrap(),
            ]
        );
        let _ = a;
    }

    #[test]
    fn one_record_is_an_array_of_one_and_big_frames_go_record_by_record() {
        let hb = heartbeat();
        let out = meta().messages(1, &[(0, &hb)], FRAME_MESSAGE_MAX_BYTES);
        assert_eq!(out[0].msg_id(), "teltonika:d:ab#0");
        assert!(out[0].payload.starts_with(b"["));
        let read = ParsedMessage::read(&delivered(&out[0]), "PARSED:1").unwrap();
        assert_eq!(
            read.records,
            vec![(hb.clone(), "teltonika:d:ab#0".to_string())]
        );
        let (a, b) = (fix(1), fix(2));
        let split = meta().messages(2, &[(0, &a), (1, &b)], 10);
        let ids: Vec<&str> = split.iter().map(Outgoing::msg_id).collect();
        assert_eq!(ids, ["teltonika:d:ab#0", "teltonika:d:ab#1"]);
        let read = ParsedMessage::read(&delivered(&split[1]), "PARSED:1").unwrap();
        assert_eq!(read.records, vec![(b.clone(), record_msg_id(&b).unwrap())]);
        assert!(meta().messages(2, &[], 10).is_empty());
    }

    #[test]
    fn every_message_carries_what_records_payload_writes() {
        let (a, hb) = (fix(1), heartbeat());
        let together = meta().messages(2, &[(0, &a), (1, &hb)], FRAME_MESSAGE_MAX_BYTES);
        assert_eq!(&together[0].payload[..], &records_payload(&[&a, &hb])[..]);
        let split = meta().messages(2, &[(0, &a), (1, &hb)], 10);
        assert_eq!(&split[1].payload[..], &records_payload(&[&hb])[..]);
        let (back, array) = read_records(&records_payload(&[&a, &hb])).unwrap();
        assert!(array);
        assert_eq!(back, vec![a, hb]);
        assert_eq!(records_payload(&[]), b"[]");
    }

    #[test]
    fn older_and_foreign_messages_read_too() {
        let hb = heartbeat();
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, "teltonika:d:ab#4");
        let object = async_nats::Message {
            subject: "parsed.teltonika.d".into(),
            reply: None,
            payload: serde_json::to_vec(&hb).unwrap().into(),
            headers: Some(h),
            status: None,
            description: None,
            length: 0,
        };
        let read = ParsedMessage::read(&object, "PARSED:1").unwrap();
        assert_eq!(
            read.records,
            vec![(hb.clone(), "teltonika:d:ab#4".to_string())]
        );
        let foreign = async_nats::Message {
            headers: None,
            payload: serde_json::to_vec(&vec![&hb, &hb]).unwrap().into(),
            ..object.clone()
        };
        let read = ParsedMessage::read(&foreign, "PARSED:9").unwrap();
        let ids: Vec<&str> = read.records.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids, ["PARSED:9#0", "PARSED:9#1"]);
        assert_eq!(read.meta.protocol, "teltonika");
        let junk = async_nats::Message {
            payload: Bytes::from_static(b"junk"),
            ..object.clone()
        };
        assert!(matches!(
            ParsedMessage::read(&junk, "x"),
            Err(ParsedError::NotRecords(_))
        ));
        let empty = async_nats::Message {
            payload: Bytes::from_static(b"[]"),
            ..object
        };
        assert!(matches!(
            ParsedMessage::read(&empty, "x"),
            Err(ParsedError::Empty)
        ));
        assert_eq!(records_json(b"[1,2]").unwrap().len(), 2);
        assert_eq!(records_json(b"{}").unwrap().len(), 1);
        assert!(records_json(b"junk").is_err());
    }
}
