//! The normalized output of every parser (documented in `docs/position.md`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a parser knows besides the frame's bytes: who sent it (devices
/// identify themselves once per connection, not in every frame) and when it
/// arrived (for messages that carry no time of their own).
#[derive(Debug, Clone)]
pub struct ParseContext {
    pub device_id: String,
    pub received_at: DateTime<Utc>,
    /// The device model, when the operator configured one. A few protocols
    /// (GT06 clones) give some messages another meaning per model, exactly
    /// as Traccar's per-device `model` setting does; `None` reads the
    /// common layout.
    pub model: Option<String>,
}

impl ParseContext {
    pub fn new(device_id: impl Into<String>, received_at: DateTime<Utc>) -> Self {
        ParseContext {
            device_id: device_id.into(),
            received_at,
            model: None,
        }
    }

    /// The same context for a device of a known model.
    pub fn with_model(mut self, model: Option<String>) -> Self {
        self.model = model;
        self
    }
}

/// One GPS fix of one device, in fixed units whatever the protocol:
/// degrees WGS84, metres, km/h, degrees clockwise from north.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Device identity, usually the IMEI, as text.
    pub device_id: String,
    /// Protocol name as in `fleetbus decode --list` (`teltonika`, `gt06`, …).
    pub protocol: String,
    /// When the fix was taken (device clock), RFC 3339 in UTC.
    #[serde(with = "rfc3339")]
    pub fix_time: DateTime<Utc>,
    /// Whether the device reported the fix as valid.
    pub valid: bool,
    pub latitude: f64,
    pub longitude: f64,
    /// Metres above sea level.
    pub altitude: f64,
    /// km/h.
    pub speed: f64,
    /// Degrees, 0 = north, clockwise.
    pub course: f64,
    /// Satellites used for the fix, when the device says.
    pub satellites: Option<u32>,
    /// Everything else, with Traccar's attribute names and units.
    pub attributes: Map<String, Value>,
}

impl Position {
    /// A position with every measurement zero and no attributes; parsers fill it.
    pub fn new(device_id: &str, protocol: &str, fix_time: DateTime<Utc>) -> Self {
        Position {
            device_id: device_id.to_owned(),
            protocol: protocol.to_owned(),
            fix_time,
            valid: false,
            latitude: 0.0,
            longitude: 0.0,
            altitude: 0.0,
            speed: 0.0,
            course: 0.0,
            satellites: None,
            attributes: Map::new(),
        }
    }

    /// Sets attribute `key` (Traccar's name) to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.attributes.insert(key.to_owned(), value.into());
    }
}

/// A message without a position: login, heartbeat, command reply, device
/// information. Typed, so that nothing downstream mistakes it for a fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceMessage {
    pub device_id: String,
    pub protocol: String,
    /// Time the device gave, or the receive time if it gave none.
    #[serde(with = "rfc3339")]
    pub time: DateTime<Utc>,
    pub attributes: Map<String, Value>,
}

impl DeviceMessage {
    pub fn new(ctx: &ParseContext, protocol: &str) -> Self {
        DeviceMessage {
            device_id: ctx.device_id.clone(),
            protocol: protocol.to_owned(),
            time: ctx.received_at,
            attributes: Map::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.attributes.insert(key.to_owned(), value.into());
    }
}

/// Everything a parser can produce from one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Position(Position),
    Login(DeviceMessage),
    Heartbeat(DeviceMessage),
    /// The device's answer to a command (attribute `result` holds its text).
    CommandReply(DeviceMessage),
    /// Status or information without a fix (LBS cell data, device info, …).
    Status(DeviceMessage),
}

impl Record {
    pub fn as_position(&self) -> Option<&Position> {
        match self {
            Record::Position(p) => Some(p),
            _ => None,
        }
    }

    pub fn device_id(&self) -> &str {
        match self {
            Record::Position(p) => &p.device_id,
            Record::Login(m)
            | Record::Heartbeat(m)
            | Record::CommandReply(m)
            | Record::Status(m) => &m.device_id,
        }
    }

    /// `position`, `login`, `heartbeat`, `command_reply` or `status`.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Position(_) => "position",
            Record::Login(_) => "login",
            Record::Heartbeat(_) => "heartbeat",
            Record::CommandReply(_) => "command_reply",
            Record::Status(_) => "status",
        }
    }

    pub fn attributes(&self) -> &Map<String, Value> {
        match self {
            Record::Position(p) => &p.attributes,
            Record::Login(m)
            | Record::Heartbeat(m)
            | Record::CommandReply(m)
            | Record::Status(m) => &m.attributes,
        }
    }
}

/// RFC 3339 with millisecond precision and a `Z` suffix, e.g.
/// `2024-05-01T12:00:00.000Z`: one fixed width so that text order is time order.
mod rfc3339 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn position_json_has_the_documented_fields() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 5).unwrap();
        let mut p = Position::new("356307042441013", "teltonika", t);
        p.valid = true;
        p.latitude = 54.6872;
        p.longitude = 25.2797;
        p.satellites = Some(9);
        p.set("ignition", true);
        let v: Value = serde_json::to_value(&p).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec![
            "device_id",
            "protocol",
            "fix_time",
            "valid",
            "latitude",
            "longitude",
            "altitude",
            "speed",
            "course",
            "satellites",
            "attributes",
        ];
        let mut got = keys.clone();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        assert_eq!(v["fix_time"], "2024-05-01T12:30:05.000Z");
        assert_eq!(v["attributes"]["ignition"], true);
        let back: Position = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn records_are_tagged_by_type() {
        let ctx = ParseContext::new("123", Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        let r = Record::Heartbeat(DeviceMessage::new(&ctx, "gt06"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["type"], "heartbeat");
        assert_eq!(v["device_id"], "123");
        assert_eq!(serde_json::from_value::<Record>(v).unwrap(), r);
    }
}
