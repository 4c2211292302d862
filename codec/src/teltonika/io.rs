//! Fixed-size IO elements (1, 2, 4 or 8 bytes): Teltonika AVL id → Traccar
//! attribute name and unit.
//!
//! The names and units are those of Traccar's Teltonika decoder, so that
//! dashboards and rules written for Traccar keep working. Traccar applies some
//! ids to every device and others only to the FMB/FMC/FMM/FMT/FMU families it
//! knows by model; fleetbus has no device model (`ParseContext` carries none)
//! and serves those families, so both sets apply. Traccar's model-specific
//! FMX6xx tachograph ids are not mapped. Unknown ids become `io<id>` with the
//! raw number.
//!
//! Values are converted by dividing (12841 / 1000.0 = 12.841), not by
//! multiplying with 0.001, which would leave binary noise in the last digit.

use serde_json::Value;

use crate::Position;

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The unsigned number as sent.
    Int,
    /// The number as a two's-complement integer of its width.
    Signed,
    /// Unsigned, divided by the factor (mV → V, 0.1 units → units…).
    Div(f64),
    /// Signed, divided by the factor.
    SignedDiv(f64),
    /// `true` when non-zero.
    Flag,
    /// Adds this alarm when non-zero.
    Alarm(&'static str),
}

/// Attribute name and conversion of the ids with a plain mapping.
fn known(id: u16) -> Option<(&'static str, Kind)> {
    use Kind::*;
    Some(match id {
        1 => ("in1", Flag),
        2 => ("in2", Flag),
        3 => ("in3", Flag),
        4 => ("in4", Flag),
        9 => ("adc1", Div(1000.0)),
        10 => ("adc2", Div(1000.0)),
        12 => ("fuelUsed", Div(1000.0)),
        13 => ("fuelConsumption", Div(100.0)),
        16 => ("odometer", Int),
        17 => ("axisX", Signed),
        18 => ("axisY", Signed),
        19 => ("axisZ", Signed),
        21 => ("rssi", Int),
        25 => ("bleTemp1", SignedDiv(100.0)),
        26 => ("bleTemp2", SignedDiv(100.0)),
        27 => ("bleTemp3", SignedDiv(100.0)),
        28 => ("bleTemp4", SignedDiv(100.0)),
        30 => ("faultCount", Int),
        32 => ("coolantTemp", Signed),
        66 => ("power", Div(1000.0)),
        67 => ("battery", Div(1000.0)),
        68 => ("batteryCurrent", Div(1000.0)),
        72 => ("temp1", SignedDiv(10.0)),
        73 => ("temp2", SignedDiv(10.0)),
        74 => ("temp3", SignedDiv(10.0)),
        75 => ("temp4", SignedDiv(10.0)),
        80 => ("dataMode", Int),
        81 => ("obdSpeed", Int),
        82 => ("throttle", Int),
        83 => ("fuelUsed", Div(10.0)),
        84 => ("fuel", Div(10.0)),
        85 => ("rpm", Int),
        87 => ("obdOdometer", Int),
        89 => ("fuelLevelPercentage", Int),
        110 => ("fuelConsumption", Div(10.0)),
        113 => ("batteryLevel", Int),
        115 => ("engineTemp", SignedDiv(10.0)),
        179 => ("out1", Flag),
        180 => ("out2", Flag),
        181 => ("pdop", Div(10.0)),
        182 => ("hdop", Div(10.0)),
        199 => ("tripOdometer", Int),
        200 => ("sleepMode", Int),
        // Cell identity: Traccar moves these into its `network` object;
        // fleetbus has none, so they stay attributes under Traccar's names.
        205 => ("cid2g", Int),
        206 => ("lac", Int),
        232 => ("cngStatus", Flag),
        233 => ("cngUsed", Div(10.0)),
        234 => ("cngLevel", Int),
        235 => ("oilLevel", Int),
        236 => ("alarm", Alarm("general")),
        239 => ("ignition", Flag),
        240 => ("motion", Flag),
        241 => ("operator", Int),
        246 => ("alarm", Alarm("tow")),
        247 => ("alarm", Alarm("accident")),
        249 => ("alarm", Alarm("jamming")),
        251 => ("alarm", Alarm("idle")),
        252 => ("alarm", Alarm("powerCut")),
        636 => ("cid4g", Int),
        662 => ("door", Flag),
        10800 => ("eyeTemp1", SignedDiv(100.0)),
        10801 => ("eyeTemp2", SignedDiv(100.0)),
        10802 => ("eyeTemp3", SignedDiv(100.0)),
        10803 => ("eyeTemp4", SignedDiv(100.0)),
        _ => return None,
    })
}

/// `raw` read as a two's-complement integer of `width` bytes.
pub(crate) fn signed(raw: u64, width: usize) -> i64 {
    let unused = 64 - 8 * width.clamp(1, 8) as u32;
    ((raw << unused) as i64) >> unused
}

/// Adds an alarm the way Traccar does: several alarms of one record are
/// joined with commas.
pub(crate) fn add_alarm(p: &mut Position, alarm: &str) {
    let joined = match p.attributes.get("alarm").and_then(Value::as_str) {
        Some(existing) => format!("{existing},{alarm}"),
        None => alarm.to_owned(),
    };
    p.set("alarm", joined);
}

/// The attribute for an IO element nobody named: the raw number. 8-byte
/// values are signed, as Traccar reads them.
pub(crate) fn unknown(p: &mut Position, id: u16, raw: u64, width: usize) {
    let value = if width == 8 {
        Value::from(raw as i64)
    } else {
        Value::from(raw)
    };
    p.set(&format!("io{id}"), value);
}

/// Sets the attribute(s) of one fixed-size IO element of an AVL record.
pub(crate) fn apply(p: &mut Position, id: u16, raw: u64, width: usize) {
    match id {
        // ICCID digits packed into a signed 64-bit number.
        11 if width == 8 => p.set("iccid", (raw as i64).to_string()),
        // GNSS speed in km/h; Traccar takes it as the position's speed.
        24 => p.speed = raw as f64,
        // iButton / RFID driver key, sent little-endian.
        78 if width == 8 => {
            if raw != 0 {
                p.set("driverUniqueId", format!("{:016X}", raw.swap_bytes()));
            }
        }
        // Green driving event type.
        253 => match raw {
            1 => add_alarm(p, "hardAcceleration"),
            2 => add_alarm(p, "hardBraking"),
            3 => add_alarm(p, "hardCornering"),
            _ => {}
        },
        _ => match known(id) {
            Some((name, kind)) => match kind {
                Kind::Int => p.set(name, raw),
                Kind::Signed => p.set(name, signed(raw, width)),
                Kind::Div(f) => p.set(name, raw as f64 / f),
                Kind::SignedDiv(f) => p.set(name, signed(raw, width) as f64 / f),
                Kind::Flag => p.set(name, raw != 0),
                Kind::Alarm(alarm) => {
                    if raw != 0 {
                        add_alarm(p, alarm)
                    }
                }
            },
            None => unknown(p, id, raw, width),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn pos() -> Position {
        Position::new("1", "teltonika", Utc::now())
    }

    #[test]
    fn well_known_ids_get_traccar_names_and_units() {
        let mut p = pos();
        apply(&mut p, 239, 1, 1);
        apply(&mut p, 240, 0, 1);
        apply(&mut p, 66, 12841, 2);
        apply(&mut p, 67, 4012, 2);
        apply(&mut p, 16, 183_420, 4);
        apply(&mut p, 21, 4, 1);
        apply(&mut p, 181, 12, 2);
        apply(&mut p, 182, 7, 2);
        apply(&mut p, 1, 1, 1);
        apply(&mut p, 179, 0, 1);
        apply(&mut p, 72, 0xffff_ff9c, 4);
        apply(&mut p, 10800, 0xfb5d, 2);
        let a = serde_json::to_value(&p.attributes).unwrap();
        assert_eq!(
            a,
            json!({"ignition": true, "motion": false, "power": 12.841, "battery": 4.012,
                   "odometer": 183420, "rssi": 4, "pdop": 1.2, "hdop": 0.7, "in1": true,
                   "out1": false, "temp1": -10.0, "eyeTemp1": -11.87})
        );
    }

    #[test]
    fn special_ids() {
        let mut p = pos();
        apply(&mut p, 24, 87, 2);
        assert_eq!(p.speed, 87.0);
        apply(&mut p, 78, 0x0102_0304_0506_0708, 8);
        assert_eq!(p.attributes["driverUniqueId"], "0807060504030201");
        apply(&mut p, 11, 8_937_120_000_000_000_000, 8);
        assert_eq!(
            p.attributes["iccid"],
            (8_937_120_000_000_000_000u64 as i64).to_string()
        );
        apply(&mut p, 252, 1, 1);
        apply(&mut p, 253, 2, 1);
        apply(&mut p, 246, 0, 1);
        assert_eq!(p.attributes["alarm"], "powerCut,hardBraking");
    }

    #[test]
    fn unknown_ids_keep_the_raw_value() {
        let mut p = pos();
        apply(&mut p, 1234, 5, 1);
        apply(&mut p, 500, u64::MAX, 8);
        apply(&mut p, 78, 7, 1); // not the 8-byte key: kept raw
        assert_eq!(p.attributes["io1234"], 5);
        assert_eq!(p.attributes["io500"], -1);
        assert_eq!(p.attributes["io78"], 7);
    }

    #[test]
    fn sign_extension() {
        assert_eq!(signed(0xff, 1), -1);
        assert_eq!(signed(0x7f, 1), 127);
        assert_eq!(signed(0x8000, 2), -32768);
        assert_eq!(signed(0xffff_fffe, 4), -2);
        assert_eq!(signed(u64::MAX, 8), -1);
    }
}
