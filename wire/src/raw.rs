//! A RAW message: one frame exactly as the device sent it.
//!
//! | | |
//! |---|---|
//! | subject | published on `raw.<protocol>.<device>`, stored as `raw.<partition>.<protocol>.<device>` ([`crate::names::raw_transform`]) |
//! | `Nats-Msg-Id` | [`ids::raw_msg_id`]: protocol, device, xxh3-128 of the bytes |
//! | headers | `Fleetbus-Protocol`, `Fleetbus-Device`, `Fleetbus-Received-At`, `Fleetbus-Gateway`, `Fleetbus-Peer`; `Fleetbus-Model` when configured |
//! | payload | the frame's bytes |
//!
//! Written by the gateways, read by the hamsters (and `fleetbus verify`).

use async_nats::HeaderMap;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::envelope::Envelope;
use crate::headers;
use crate::ids;
use crate::names::{partition_of, raw_subject, RAW};

/// Everything a RAW message says besides the frame.
#[derive(Clone, Debug, PartialEq)]
pub struct RawFrame {
    pub protocol: String,
    pub device: String,
    /// The device model, when configured (model-specific layouts).
    pub model: Option<String>,
    /// When the gateway received it.
    pub received_at: Option<DateTime<Utc>>,
    /// Which gateway stored it.
    pub gateway: Option<String>,
    /// The device's address as the gateway saw it.
    pub peer: Option<String>,
    /// The partition RAW stored it in (from the stored subject; `None` on
    /// a frame not yet stored, or stored before RAW was partitioned).
    pub partition: Option<u32>,
}

/// RFC 3339 UTC with milliseconds, as every time header is written.
pub fn time_header(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A time header read back.
pub fn parse_time_header(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl RawFrame {
    pub fn new(protocol: impl Into<String>, device: impl Into<String>) -> RawFrame {
        RawFrame {
            protocol: protocol.into(),
            device: device.into(),
            model: None,
            received_at: None,
            gateway: None,
            peer: None,
            partition: None,
        }
    }

    pub fn subject(&self) -> String {
        raw_subject(&self.protocol, &self.device)
    }

    pub fn msg_id(&self, frame: &[u8]) -> String {
        ids::raw_msg_id(&self.protocol, &self.device, frame)
    }

    /// The headers of the message that stores `frame`, its id included.
    pub fn headers(&self, frame: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, self.msg_id(frame).as_str());
        h.insert(headers::PROTOCOL, self.protocol.as_str());
        h.insert(headers::DEVICE, self.device.as_str());
        if let Some(model) = &self.model {
            h.insert(headers::MODEL, model.as_str());
        }
        if let Some(t) = self.received_at {
            h.insert(headers::RECEIVED_AT, time_header(t).as_str());
        }
        if let Some(gateway) = &self.gateway {
            h.insert(headers::GATEWAY, gateway.as_str());
        }
        if let Some(peer) = &self.peer {
            h.insert(headers::PEER, peer.as_str());
        }
        h
    }

    /// What a RAW message says about its frame: headers first, else the
    /// subject (for frames a non-fleetbus client published).
    pub fn read(m: &impl Envelope) -> RawFrame {
        let (protocol, device) = m.origin();
        let text = |name| m.header(name).map(str::to_string);
        RawFrame {
            protocol,
            device,
            model: text(headers::MODEL),
            received_at: m.header(headers::RECEIVED_AT).and_then(parse_time_header),
            gateway: text(headers::GATEWAY),
            peer: text(headers::PEER),
            partition: partition_of(m.subject()),
        }
    }
}

/// A RAW message's id: its header, else `RAW:<sequence>`.
pub fn raw_id_of(m: &impl Envelope, sequence: u64) -> String {
    m.header(headers::MSG_ID)
        .map_or_else(|| ids::stored_msg_id(RAW, sequence), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn message(subject: &str, headers: HeaderMap) -> async_nats::Message {
        async_nats::Message {
            subject: subject.into(),
            reply: None,
            payload: bytes::Bytes::from_static(b"\x01"),
            headers: Some(headers),
            status: None,
            description: None,
            length: 0,
        }
    }

    #[test]
    fn what_a_gateway_writes_a_hamster_reads() {
        let frame = RawFrame {
            model: Some("concox".into()),
            received_at: Some(Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()),
            gateway: Some("gw-1".into()),
            peer: Some("10.0.0.1:5000".into()),
            ..RawFrame::new("gt06", "a.b")
        };
        let h = frame.headers(b"\x01");
        assert_eq!(
            h.get(headers::MSG_ID).unwrap().as_str(),
            frame.msg_id(b"\x01")
        );
        assert_eq!(
            h.get(headers::RECEIVED_AT).unwrap().as_str(),
            "2026-12-01T10:00:00.000Z"
        );
        let m = message(&frame.subject(), h);
        assert_eq!(m.subject.as_str(), "raw.gt06.a_b");
        assert_eq!(
            RawFrame::read(&m),
            frame,
            "the device as sent, not its token"
        );
        assert_eq!(raw_id_of(&m, 3), frame.msg_id(b"\x01"));
        let bare = message("raw.gt06.1", HeaderMap::new());
        assert_eq!(RawFrame::read(&bare), RawFrame::new("gt06", "1"));
        assert_eq!(raw_id_of(&bare, 3), "RAW:3");
        let stored = message("raw.6.gt06.1", HeaderMap::new());
        assert_eq!(
            RawFrame::read(&stored),
            RawFrame {
                partition: Some(6),
                ..RawFrame::new("gt06", "1")
            }
        );
    }
}
