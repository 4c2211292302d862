//! Universal reports: `<type>;<id>;<mask>;…`, where each set bit of the hex
//! mask says that a field is present: 1 model, 2 firmware, 3 archive flag,
//! 4–5 date and time, 6 cell id, 7 mcc, 8 mnc, 9 lac, 10 RSSI, 11 latitude,
//! 12 longitude, 13 speed, 14 course, 15 satellites, 16 fix, 17 inputs,
//! 18 outputs, 19–21 mode, reason and index (`STT`) or alert id, modifier
//! and data (`ALT`), 22 reserved, 23 a mask of assigned fields. `BLE`
//! reports have no mask (their fields are fixed) and end with Bluetooth
//! tags; `UEX` reports carry serial-port data after the outputs.

use serde_json::{Map, Value};

use crate::text::{cell, int, set_cells};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::parser::{alert, coordinate, decimal, invalid, read_time, serial_data, Fields};
use super::NAME;

/// The fields of a `BLE` report, as a mask.
const BLE_MASK: u32 = 0b1_1000_0011_0110;

pub(crate) fn parse(f: &[String], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let kind = f[0].as_str();
    if !matches!(kind, "STT" | "ALT" | "BLE" | "UEX") {
        let mut m = DeviceMessage::new(ctx, NAME);
        m.set("type", kind);
        return Ok(vec![Record::Status(m)]);
    }
    let mut c = Fields::new(f, 2);
    let mask = if kind == "BLE" {
        BLE_MASK
    } else {
        let m = c.next("mask")?;
        u32::from_str_radix(m, 16).map_err(|_| invalid("mask", m))?
    };
    let bit = |n: u32| mask & (1 << n) != 0;
    let mut a = Map::new();
    a.insert("type".into(), kind.into());
    if bit(1) {
        c.next("model")?;
    }
    if bit(2) {
        a.insert("versionFw".into(), c.next("firmware")?.into());
    }
    if bit(3) && c.next("archive flag")? == "0" {
        a.insert("archive".into(), true.into());
    }
    let time = if bit(4) && bit(5) {
        Some(read_time(&mut c)?)
    } else {
        None
    };
    let cid = if bit(6) {
        Some(c.next("cell id")?)
    } else {
        None
    };
    let mcc = if bit(7) { int(c.next("mcc")?) } else { None };
    let mnc = if bit(8) { int(c.next("mnc")?) } else { None };
    let lac = if bit(9) { Some(c.next("lac")?) } else { None };
    if let Some(cid) = cid.and_then(|s| i64::from_str_radix(s, 16).ok()) {
        let lac = lac
            .and_then(|s| i64::from_str_radix(s, 16).ok())
            .unwrap_or(0);
        set_cells(
            &mut a,
            vec![cell(mcc.unwrap_or(0), mnc.unwrap_or(0), lac, cid, None)],
        );
    }
    if bit(10) {
        if let Some(rssi) = int(c.next("rssi")?) {
            a.insert("rssi".into(), rssi.into());
        }
    }
    let latitude = if bit(11) {
        Some(coordinate(&mut c, "latitude", 90.0)?)
    } else {
        None
    };
    let longitude = if bit(12) {
        Some(coordinate(&mut c, "longitude", 180.0)?)
    } else {
        None
    };
    let (mut speed, mut course, mut satellites, mut valid) = (0.0, 0.0, None, false);
    if kind == "BLE" {
        valid = true;
        let n = c.next("tag count")?;
        let n = int(n)
            .filter(|n| (0..=64).contains(n))
            .ok_or_else(|| invalid("tag count", n))?;
        for i in 1..=n {
            let rssi = c.next("tag rssi")?;
            c.next("tag rssi min")?;
            c.next("tag rssi max")?;
            let id = c.next("tag id")?;
            let samples = c.next("tag samples")?;
            let major = c.next("tag major")?;
            let minor = c.next("tag minor")?;
            for (key, v) in [
                ("Rssi", rssi),
                ("Samples", samples),
                ("Major", major),
                ("Minor", minor),
            ] {
                if let Some(v) = int(v) {
                    a.insert(format!("tag{i}{key}"), v.into());
                }
            }
            a.insert(format!("tag{i}Id"), id.into());
        }
    } else {
        if bit(13) {
            speed = decimal(&mut c, "speed")?;
        }
        if bit(14) {
            course = decimal(&mut c, "course")?;
        }
        if bit(15) {
            satellites = int(c.next("satellites")?).and_then(|s| u32::try_from(s).ok());
        }
        if bit(16) {
            valid = c.next("fix")? == "1";
        }
        for (n, key) in [(17, "input"), (18, "output")] {
            if bit(n) {
                if let Some(v) = int(c.next(key)?) {
                    a.insert(key.into(), v.into());
                }
            }
        }
        match kind {
            "UEX" => {
                let len = c.next("serial data length")?;
                let len = int(len).ok_or_else(|| invalid("serial data length", len))?;
                serial_data(&mut c, len, &mut a);
                c.next("checksum").ok();
            }
            _ => {
                let names: [&str; 3] = if kind == "ALT" {
                    ["alertId", "alertModifier", "alertData"]
                } else {
                    ["mode", "reason", "index"]
                };
                for (n, key) in (19..=21).zip(names) {
                    if bit(n) {
                        let v = c.next(key)?;
                        let value: Value = match int(v) {
                            Some(i) if kind != "ALT" => i.into(),
                            _ => v.into(),
                        };
                        a.insert(key.into(), value);
                    }
                }
                if let Some(alarm) = a
                    .get("alertId")
                    .and_then(Value::as_str)
                    .and_then(int)
                    .and_then(alert)
                {
                    a.insert("alarm".into(), alarm.into());
                }
                if bit(22) {
                    c.next("reserved")?;
                }
                // Assigned fields: by their mask, or all remaining ones.
                let assigned: Vec<(u32, &str)> = if bit(23) {
                    let m = c.next("assign mask")?;
                    let m = u32::from_str_radix(m, 16).map_err(|_| invalid("assign mask", m))?;
                    (0..32)
                        .filter(|i| m & (1 << i) != 0)
                        .filter_map(|i| Some((i + 1, c.next("assigned field").ok()?)))
                        .collect()
                } else {
                    c.rest()
                        .iter()
                        .zip(1..)
                        .map(|(v, i)| (i, v.as_str()))
                        .collect()
                };
                for (i, v) in assigned {
                    a.insert(format!("assign{i}"), v.into());
                }
            }
        }
    }
    let time = time.unwrap_or(ctx.received_at);
    Ok(vec![match (latitude, longitude) {
        (Some(latitude), Some(longitude)) => {
            let mut p = Position::new(&ctx.device_id, NAME, time);
            p.latitude = latitude;
            p.longitude = longitude;
            p.speed = speed;
            p.course = course;
            p.satellites = satellites;
            p.valid = valid;
            p.attributes = a;
            Record::Position(p)
        }
        _ => {
            let mut m = DeviceMessage::new(ctx, NAME);
            m.time = time;
            m.attributes = a;
            Record::Status(m)
        }
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suntech::message::fields;
    use chrono::{TimeZone, Utc};

    fn run(s: &str) -> Record {
        let ctx = ParseContext::new("1", Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        parse(&fields(s.as_bytes()), &ctx).unwrap().remove(0)
    }

    #[test]
    fn status_with_assigned_fields() {
        let r = run("STT;0560001616;BFFFFF;56;1.0.15;1;20200219;20:52:25;00008D6C;334;20;0925;24;+20.741764;-103.430364;0.00;0.00;19;1;00000001;00000000;2;1;1765;00008003;0.0;12.14;136598");
        let Record::Position(p) = r else { panic!() };
        assert_eq!(p.attributes["index"], 1765);
        assert_eq!(p.attributes["input"], 1);
        assert_eq!(p.attributes["assign16"], "136598");
        assert_eq!(p.satellites, Some(19));
        assert_eq!(p.attributes["network"]["cellTowers"][0]["cellId"], 0x8d6c);
    }

    #[test]
    fn ble_tags() {
        let r = run("BLE;0820012345;82;1.0.0;20191203;17:00:51;+32.691615;-117.297160;2;-32;-100;33;AABBCCDDEEFF;12;18;52;1;-44;44;112233445566;32;69;101");
        assert_eq!(r.attributes()["tag2Id"], "112233445566");
        assert_eq!(r.attributes()["tag1Minor"], 52);
    }
}
