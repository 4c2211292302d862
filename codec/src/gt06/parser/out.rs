//! What a message decodes to before it becomes a [`Record`]: a fix if the
//! message has its own, plus attributes with Traccar's names. Messages
//! without a fix become typed records, never positions.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::{DeviceMessage, ParseContext, Position, Record};

use super::super::NAME;

/// A GPS fix as the frame gives it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fix {
    pub time: DateTime<Utc>,
    pub valid: bool,
    pub latitude: f64,
    pub longitude: f64,
    /// km/h.
    pub speed: f64,
    pub course: f64,
    pub altitude: f64,
}

/// The record kind a message without a fix becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Status,
    Heartbeat,
    CommandReply,
}

/// One serving or neighbour cell, in Traccar's `CellTower` field names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cell {
    pub mcc: u16,
    pub mnc: u16,
    pub lac: i64,
    pub cid: i64,
    pub rssi: Option<i32>,
}

#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub kind: Kind,
    pub fix: Option<Fix>,
    /// The device's time for a message without a fix (receive time if `None`).
    pub time: Option<DateTime<Utc>>,
    pub satellites: Option<u32>,
    pub attributes: Map<String, Value>,
    pub cells: Vec<Cell>,
    /// WiFi access points: MAC address and signal strength.
    pub wifi: Vec<(String, Option<i32>)>,
}

impl Decoded {
    pub(crate) fn new(kind: Kind) -> Self {
        Decoded {
            kind,
            fix: None,
            time: None,
            satellites: None,
            attributes: Map::new(),
            cells: Vec::new(),
            wifi: Vec::new(),
        }
    }

    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.attributes.insert(key.to_owned(), value.into());
    }

    /// Adds an alarm; several alarms are joined with commas, as in Traccar
    /// (but each only once: some messages report one alarm in two places).
    pub(crate) fn add_alarm(&mut self, alarm: Option<&str>) {
        let Some(alarm) = alarm else { return };
        let joined = match self.attributes.get("alarm").and_then(Value::as_str) {
            Some(previous) if previous.split(',').any(|a| a == alarm) => return,
            Some(previous) => format!("{previous},{alarm}"),
            None => alarm.to_owned(),
        };
        self.set("alarm", joined);
    }

    pub(crate) fn into_record(mut self, ctx: &ParseContext) -> Record {
        if let Some(network) = self.network() {
            self.attributes.insert("network".to_owned(), network);
        }
        match self.fix {
            Some(fix) => {
                let mut p = Position::new(&ctx.device_id, NAME, fix.time);
                p.valid = fix.valid;
                p.latitude = fix.latitude;
                p.longitude = fix.longitude;
                p.speed = fix.speed;
                p.course = fix.course;
                p.altitude = fix.altitude;
                p.satellites = self.satellites;
                p.attributes = self.attributes;
                Record::Position(p)
            }
            None => {
                let mut m = DeviceMessage::new(ctx, NAME);
                if let Some(time) = self.time {
                    m.time = time;
                }
                if let Some(sat) = self.satellites {
                    self.attributes.insert("sat".to_owned(), sat.into());
                }
                m.attributes = self.attributes;
                match self.kind {
                    Kind::Status => Record::Status(m),
                    Kind::Heartbeat => Record::Heartbeat(m),
                    Kind::CommandReply => Record::CommandReply(m),
                }
            }
        }
    }

    /// Cells and access points as Traccar's `network` object, so geolocation
    /// services that accept Traccar's format take it unchanged.
    fn network(&self) -> Option<Value> {
        if self.cells.is_empty() && self.wifi.is_empty() {
            return None;
        }
        let cells: Vec<Value> = self
            .cells
            .iter()
            .map(|c| {
                let mut v = json!({
                    "mobileCountryCode": c.mcc,
                    "mobileNetworkCode": c.mnc,
                    "locationAreaCode": c.lac,
                    "cellId": c.cid,
                });
                if let Some(rssi) = c.rssi {
                    v["signalStrength"] = rssi.into();
                }
                v
            })
            .collect();
        let wifi: Vec<Value> = self
            .wifi
            .iter()
            .map(|(mac, rssi)| {
                let mut v = json!({ "macAddress": mac });
                if let Some(rssi) = rssi {
                    v["signalStrength"] = (*rssi).into();
                }
                v
            })
            .collect();
        let mut network = Map::new();
        if !cells.is_empty() {
            network.insert("cellTowers".to_owned(), cells.into());
        }
        if !wifi.is_empty() {
            network.insert("wifiAccessPoints".to_owned(), wifi.into());
        }
        Some(Value::Object(network))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx() -> ParseContext {
        ParseContext::new(
            "123456789012345",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    #[test]
    fn alarms_are_joined() {
        let mut d = Decoded::new(Kind::Status);
        d.add_alarm(None);
        assert!(d.attributes.get("alarm").is_none());
        d.add_alarm(Some("sos"));
        d.add_alarm(Some("powerCut"));
        d.add_alarm(Some("sos"));
        assert_eq!(d.attributes["alarm"], "sos,powerCut");
    }

    #[test]
    fn without_a_fix_it_is_not_a_position() {
        let mut d = Decoded::new(Kind::Heartbeat);
        d.satellites = Some(7);
        d.cells.push(Cell {
            mcc: 246,
            mnc: 1,
            lac: 110,
            cid: 21978,
            rssi: None,
        });
        match d.into_record(&ctx()) {
            Record::Heartbeat(m) => {
                assert_eq!(m.attributes["sat"], 7);
                assert_eq!(
                    m.attributes["network"]["cellTowers"][0]["mobileCountryCode"],
                    246
                );
                assert_eq!(m.time, ctx().received_at);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn with_a_fix_it_is_a_position() {
        let mut d = Decoded::new(Kind::Status);
        let t = Utc.with_ymd_and_hms(2015, 10, 20, 14, 21, 11).unwrap();
        d.fix = Some(Fix {
            time: t,
            valid: true,
            latitude: 1.0,
            longitude: 2.0,
            speed: 3.0,
            course: 4.0,
            altitude: 0.0,
        });
        d.satellites = Some(5);
        let p = d.into_record(&ctx());
        let p = p.as_position().unwrap();
        assert_eq!(
            (p.fix_time, p.satellites, p.protocol.as_str()),
            (t, Some(5), "gt06")
        );
    }
}
