//! An EVENTS message: one device event the monkeys derived.
//!
//! | | |
//! |---|---|
//! | subject | `events.<protocol>.<device>.<type>` |
//! | `Nats-Msg-Id` | `<record id>:<type>` (`:alarm:<alarm>` for alarms) |
//! | payload | JSON [`Event`] (`wire/schema/event.json`) |
//!
//! Written by the monkeys' `devices` processor; read by whoever acts on
//! events (and `fleetbus verify --effects`).

use async_nats::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::headers;
use crate::ids;
use crate::names::event_subject;

/// One device event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `ignitionOn`, `ignitionOff`, `overspeed`, `alarm` or `futureFix`.
    #[serde(rename = "type")]
    pub kind: String,
    pub device_id: String,
    pub protocol: String,
    /// The fix the event belongs to, RFC 3339 UTC with milliseconds.
    pub fix_time: String,
    pub latitude: f64,
    pub longitude: f64,
    /// km/h.
    pub speed: f64,
    /// For `alarm`: the alarm (`sos`, `powerCut`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<String>,
    /// For `overspeed`: the threshold, km/h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The id of the record it was derived from.
    pub source: String,
}

impl Event {
    pub fn msg_id(&self) -> String {
        ids::event_msg_id(&self.source, &self.kind, self.alarm.as_deref())
    }

    pub fn subject(&self) -> String {
        event_subject(&self.protocol, &self.device_id, &self.kind)
    }

    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, self.msg_id().as_str());
        h
    }

    pub fn payload(&self) -> Vec<u8> {
        // Plain data: it serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_known_by_its_record_and_type() {
        let e = Event {
            kind: "alarm".into(),
            device_id: "a.b".into(),
            protocol: "gt06".into(),
            fix_time: "2026-12-01T10:00:00.000Z".into(),
            latitude: 1.0,
            longitude: 2.0,
            speed: 3.0,
            alarm: Some("sos".into()),
            threshold: None,
            source: "gt06:a_b:2026-12-01T10:00:00.000Z:00ff".into(),
        };
        assert_eq!(e.subject(), "events.gt06.a_b.alarm");
        assert_eq!(
            e.msg_id(),
            "gt06:a_b:2026-12-01T10:00:00.000Z:00ff:alarm:sos"
        );
        assert_eq!(
            e.headers().get(headers::MSG_ID).unwrap().as_str(),
            e.msg_id()
        );
        let back: Event = serde_json::from_slice(&e.payload()).unwrap();
        assert_eq!(back, e);
        assert!(!String::from_utf8(e.payload())
            .unwrap()
            .contains("threshold"));
    }
}
