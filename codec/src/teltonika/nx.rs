//! Variable-length IO elements (the NX group of Codec 8 Extended).
//!
//! The element's own length bounds it, so a malformed inner structure (a
//! beacon list cut short) cannot shift the rest of the record: it is kept as
//! `io<id>` hex instead of failing the whole frame.

use serde_json::{Map, Value};

use crate::read::Reader;
use crate::{ParseError, Position};

/// Sets the attribute(s) of one variable-length IO element.
pub(crate) fn apply(p: &mut Position, id: u16, value: &[u8]) {
    match id {
        256 => p.set("vin", ascii(value)),
        281 => p.set("dtcs", ascii(value).replace(',', " ")),
        385 | 548 | 10828 | 10829 | 10831 | 11317 => {
            let decoded = if id == 385 {
                beacons(value)
            } else {
                tags(value)
            };
            match decoded {
                Ok(attributes) => p.attributes.extend(attributes),
                Err(_) => raw(p, id, value),
            }
        }
        _ => raw(p, id, value),
    }
}

/// An element without a known structure: `io<id>` as lowercase hex.
pub(crate) fn raw(p: &mut Position, id: u16, value: &[u8]) {
    p.set(&format!("io{id}"), hex::encode(value));
}

/// Text the device sends as ASCII; other bytes become U+FFFD.
fn ascii(value: &[u8]) -> String {
    value
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                char::from(b)
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

fn bit(value: u8, n: u32) -> bool {
    value >> n & 1 == 1
}

/// Id 385, Bluetooth beacons: a data-part byte, then per beacon a flags byte,
/// an iBeacon (UUID, major, minor) or Eddystone (namespace, instance) id,
/// the RSSI, and optionally battery voltage and temperature.
fn beacons(value: &[u8]) -> Result<Map<String, Value>, ParseError> {
    let mut r = Reader::new(value);
    let mut out = Map::new();
    r.u8("beacon data part")?;
    let mut index = 1;
    while !r.is_empty() {
        let flags = r.u8("beacon flags")?;
        let key = |name: &str| format!("beacon{index}{name}");
        if flags >> 4 > 0 {
            out.insert(key("Uuid"), hex::encode(r.bytes(16, "beacon UUID")?).into());
            out.insert(key("Major"), r.u16("beacon major")?.into());
            out.insert(key("Minor"), r.u16("beacon minor")?.into());
        } else {
            out.insert(
                key("Namespace"),
                hex::encode(r.bytes(10, "beacon namespace")?).into(),
            );
            out.insert(
                key("Instance"),
                hex::encode(r.bytes(6, "beacon instance")?).into(),
            );
        }
        out.insert(key("Rssi"), r.i8("beacon RSSI")?.into());
        if bit(flags, 1) {
            out.insert(
                key("Battery"),
                (f64::from(r.u16("beacon battery")?) / 100.0).into(),
            );
        }
        if bit(flags, 2) {
            out.insert(key("Temp"), r.u16("beacon temperature")?.into());
        }
        index += 1;
    }
    Ok(out)
}

/// Ids 548, 10828, 10829, 10831 and 11317, BLE tags (EYE sensors and
/// beacons): a header byte, then per tag a length-prefixed list of
/// `id:u8 len:u8 value` parameters. Values are kept in the sensor's units, as
/// Traccar keeps them (temperature in 0.01 °C, voltage and battery in mV).
fn tags(value: &[u8]) -> Result<Map<String, Value>, ParseError> {
    let mut r = Reader::new(value);
    let mut out = Map::new();
    r.u8("tag header")?;
    let mut index = 1;
    while !r.is_empty() {
        let len = usize::from(r.u8("tag length")?);
        let mut tag = Reader::new(r.bytes(len, "tag")?);
        let key = |name: &str| format!("tag{index}{name}");
        while !tag.is_empty() {
            let param = tag.u8("tag parameter id")?;
            let len = usize::from(tag.u8("tag parameter length")?);
            let mut v = Reader::new(tag.bytes(len, "tag parameter")?);
            match param {
                0 => {
                    out.insert(key("Rssi"), v.i8("tag RSSI")?.into());
                }
                1 => {
                    out.insert(key("Id"), hex::encode(v.bytes(len, "tag id")?).into());
                }
                2 => {
                    let flags = v.u8("tag flags")?;
                    if bit(flags, 6) {
                        out.insert(key("LowBattery"), true.into());
                    }
                    if bit(flags, 7) {
                        let voltage = u32::from(v.u8("tag voltage")?) * 10 + 2000;
                        out.insert(key("Voltage"), voltage.into());
                    }
                }
                // Names are padded with NULs to a fixed width.
                5 => {
                    let name = String::from_utf8_lossy(v.bytes(len, "tag name")?);
                    out.insert(key("Name"), name.trim_end_matches('\0').into());
                }
                6 => {
                    out.insert(key("Temp"), v.i16("tag temperature")?.into());
                }
                7 => {
                    out.insert(key("Humidity"), v.u8("tag humidity")?.into());
                }
                8 => {
                    out.insert(key("Magnet"), (v.u8("tag magnet")? > 0).into());
                }
                9 => {
                    out.insert(key("Motion"), (v.u8("tag motion")? > 0).into());
                }
                10 => {
                    out.insert(key("MotionCount"), v.u16("tag motion count")?.into());
                }
                11 => {
                    out.insert(key("Pitch"), v.i8("tag pitch")?.into());
                }
                12 => {
                    out.insert(key("AngleRoll"), v.i16("tag roll")?.into());
                }
                13 => {
                    out.insert(key("LowBattery"), v.u8("tag low battery")?.into());
                }
                14 => {
                    out.insert(key("Battery"), v.u16("tag battery")?.into());
                }
                15 => {
                    out.insert(key("Mac"), hex::encode(v.bytes(6, "tag MAC")?).into());
                }
                _ => {}
            }
        }
        index += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn pos() -> Position {
        Position::new("1", "teltonika", Utc::now())
    }

    #[test]
    fn vin_dtcs_and_unknown() {
        let mut p = pos();
        apply(&mut p, 256, b"WVWZZZ1KZ6W000001");
        apply(&mut p, 281, b"P0299,P0675");
        apply(&mut p, 999, &[0xde, 0xad]);
        assert_eq!(p.attributes["vin"], "WVWZZZ1KZ6W000001");
        assert_eq!(p.attributes["dtcs"], "P0299 P0675");
        assert_eq!(p.attributes["io999"], "dead");
    }

    #[test]
    fn ibeacon_list() {
        let mut v = vec![0x01, 0x22];
        v.extend_from_slice(&[0x11; 16]);
        v.extend_from_slice(&[0x00, 0x01, 0x00, 0x02, 0xc4, 0x0b, 0xb8]);
        let mut p = pos();
        apply(&mut p, 385, &v);
        assert_eq!(p.attributes["beacon1Uuid"], "11".repeat(16));
        assert_eq!(p.attributes["beacon1Major"], 1);
        assert_eq!(p.attributes["beacon1Minor"], 2);
        assert_eq!(p.attributes["beacon1Rssi"], -60);
        assert_eq!(p.attributes["beacon1Battery"], 30.0);
    }

    #[test]
    fn eye_tag_battery() {
        // Header, then one tag: RSSI -60, battery 3030 mV.
        let v = [0x01, 0x07, 0x00, 0x01, 0xc4, 0x0e, 0x02, 0x0b, 0xd6];
        let mut p = pos();
        apply(&mut p, 548, &v);
        assert_eq!(p.attributes["tag1Rssi"], -60);
        assert_eq!(p.attributes["tag1Battery"], 3030);
    }

    #[test]
    fn eye_sensor_list() {
        // First tag of id 11317 in a 2025 FMB capture from Traccar's tests.
        let v = hex::decode(
            "0124050f4e65766572615f33000000000000000f067cd9f4110c4006020c8f0701340e020c1c",
        )
        .unwrap();
        let mut p = pos();
        apply(&mut p, 11317, &v);
        assert_eq!(p.attributes["tag1Name"], "Nevera_3");
        assert_eq!(p.attributes["tag1Mac"], "7cd9f4110c40");
        assert_eq!(p.attributes["tag1Temp"], 3215);
        assert_eq!(p.attributes["tag1Humidity"], 52);
        assert_eq!(p.attributes["tag1Battery"], 3100);
    }

    #[test]
    fn a_cut_short_structure_is_kept_as_hex() {
        let mut p = pos();
        apply(&mut p, 548, &[0x01, 0x09, 0x00]);
        assert_eq!(p.attributes["io548"], "010900");
        apply(&mut p, 385, &[0x01, 0x21, 0x00]);
        assert_eq!(p.attributes["io385"], "012100");
    }
}
