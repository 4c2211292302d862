//! The binary cached-record messages: `CCC` (fixed 52-byte records) and
//! `CCE` (records of typed parameters). All numbers are little-endian;
//! times are seconds since 2000-01-01 UTC; coordinates 1e-6 degrees.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::read::Reader;
use crate::text::{cell, set_cells};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::NAME;

/// Seconds from the Unix epoch to 2000-01-01 00:00:00 UTC.
const EPOCH_2000: i64 = 946_684_800;
/// Size of one `CCC` record in the layout this parser knows.
pub(crate) const CCC_RECORD: usize = 52;

fn time_2000(secs: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(EPOCH_2000 + i64::from(secs), 0).unwrap_or_default()
}

/// How many records a `CCC` message holds (what its answer confirms).
pub(crate) fn ccc_count(data: &[u8]) -> Result<usize, ParseError> {
    let mut r = Reader::new(data);
    let size = ccc_header(&mut r)?;
    Ok(r.remaining() / size)
}

/// The `CCC` header; returns the record size, at least [`CCC_RECORD`] so
/// that every field of the known layout is inside each record.
fn ccc_header(r: &mut Reader) -> Result<usize, ParseError> {
    r.u16_le("protocol version")?;
    let size = usize::from(r.u16_le("record size")?);
    if size < CCC_RECORD {
        return Err(ParseError::Invalid(format!(
            "CCC record size {size}, at least {CCC_RECORD} expected"
        )));
    }
    r.u32_le("remaining cache")?;
    Ok(size)
}

/// `CCC,<version:2><record size:2><remaining:4><records>`.
pub(crate) fn ccc(data: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let mut message = Reader::new(data);
    let size = ccc_header(&mut message)?;
    // A partial record at the end is not counted (nor confirmed).
    let count = message.remaining() / size;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut r = Reader::new(message.bytes(size, "CCC record")?);
        let event = r.u8("event")?;
        let lat = r.u32_le("latitude")? as i32;
        let lon = r.u32_le("longitude")? as i32;
        let time = time_2000(r.u32_le("time")?);
        let mut p = Position::new(&ctx.device_id, NAME, time);
        p.set("event", event);
        if let Some(alarm) = super::parser::alarm(u32::from(event)) {
            p.set("alarm", alarm);
        }
        p.latitude = f64::from(lat) * 1e-6;
        p.longitude = f64::from(lon) * 1e-6;
        p.valid = r.u8("validity")? == 1;
        p.satellites = Some(u32::from(r.u8("satellites")?));
        let rssi = r.u8("rssi")?;
        p.speed = f64::from(r.u16_le("speed")?);
        p.course = f64::from(r.u16_le("course")?);
        p.set("hdop", f64::from(r.u16_le("hdop")?) * 0.1);
        p.altitude = f64::from(r.u16_le("altitude")?);
        p.set("odometer", r.u32_le("odometer")?);
        p.set("runtime", r.u32_le("runtime")?);
        let (mcc, mnc, lac, cid) = (
            r.u16_le("mcc")?,
            r.u16_le("mnc")?,
            r.u16_le("lac")?,
            r.u16_le("cell id")?,
        );
        if mcc != 0 {
            set_cells(
                &mut p.attributes,
                vec![cell(
                    mcc.into(),
                    mnc.into(),
                    lac.into(),
                    cid.into(),
                    Some(rssi.into()),
                )],
            );
        }
        p.set("status", r.u16_le("status")?);
        p.set("adc1", r.u16_le("adc1")?);
        p.set("battery", f64::from(r.u16_le("battery")?) * 0.01);
        p.set("power", r.u16_le("power")?);
        out.push(Record::Position(p));
    }
    Ok(out)
}

/// A parameter id: one byte, or two when the first is `FE`.
fn param_id(r: &mut Reader) -> Result<u16, ParseError> {
    if r.peek() == Some(0xfe) {
        let hi = r.u8("parameter id")?;
        Ok(u16::from_be_bytes([hi, r.u8("parameter id")?]))
    } else {
        Ok(u16::from(r.u8("parameter id")?))
    }
}

/// `CCE,<remaining:4><count:2>` then `count` records of `<length:2>
/// <index:2>` and four groups of parameters (1-, 2-, 4-byte and
/// length-prefixed values), each group a count and `<id><value>` pairs.
pub(crate) fn cce(data: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let mut r = Reader::new(data);
    r.u32_le("remaining cache")?;
    let count = r.u16_le("record count")?;
    let mut out = Vec::new();
    for _ in 0..count {
        let len = usize::from(r.u16_le("record length")?);
        let body = r.bytes(len, "record")?;
        out.push(cce_record(body, ctx)?);
    }
    Ok(out)
}

fn cce_record(body: &[u8], ctx: &ParseContext) -> Result<Record, ParseError> {
    let mut r = Reader::new(body);
    r.u16_le("record index")?;
    let mut a = Map::new();
    let set = |a: &mut Map<String, Value>, k: &str, v: Value| {
        a.insert(k.to_owned(), v);
    };
    let (mut lat, mut lon, mut time) = (None, None, None);
    let (mut valid, mut sats, mut speed, mut course, mut alt) = (false, None, 0.0, 0.0, 0.0);
    for _ in 0..r.u8("1-byte parameter count")? {
        let id = param_id(&mut r)?;
        let v = r.u8("1-byte value")?;
        match id {
            0x01 => set(&mut a, "event", v.into()),
            0x05 => valid = v > 0,
            0x06 => sats = Some(u32::from(v)),
            0x07 => set(&mut a, "rssi", v.into()),
            0x14 => set(&mut a, "output", v.into()),
            0x15 => set(&mut a, "input", v.into()),
            0x47 if v > 0 => set(&mut a, "lock", (v == 2).into()),
            0x97 => set(&mut a, "throttle", v.into()),
            0x9d => set(&mut a, "fuel", v.into()),
            0xfe69 => set(&mut a, "batteryLevel", v.into()),
            _ => {}
        }
    }
    for _ in 0..r.u8("2-byte parameter count")? {
        let id = param_id(&mut r)?;
        let v = r.u16_le("2-byte value")?;
        let f = f64::from(v);
        match id {
            0x08 => speed = f,
            0x09 => course = f,
            0x0a => set(&mut a, "hdop", v.into()),
            0x0b => alt = f64::from(v as i16),
            0x16 => set(&mut a, "adc1", (f * 0.01).into()),
            0x19 => set(&mut a, "battery", (f * 0.01).into()),
            0x1a => set(&mut a, "power", (f * 0.01).into()),
            0x40 => set(&mut a, "event", v.into()),
            0x91 | 0x92 => set(&mut a, "obdSpeed", v.into()),
            0x98 => set(&mut a, "fuelUsed", v.into()),
            0x99 => set(&mut a, "rpm", v.into()),
            0x9c => set(&mut a, "coolantTemp", v.into()),
            0x9f => set(&mut a, "temp1", v.into()),
            0xc9 => set(&mut a, "fuelConsumption", v.into()),
            _ => {}
        }
    }
    for _ in 0..r.u8("4-byte parameter count")? {
        let id = param_id(&mut r)?;
        let v = r.u32_le("4-byte value")?;
        match id {
            0x02 => lat = Some(f64::from(v as i32) * 1e-6),
            0x03 => lon = Some(f64::from(v as i32) * 1e-6),
            0x04 => time = Some(time_2000(v)),
            0x0c | 0x9b => set(&mut a, "odometer", v.into()),
            0x0d => set(&mut a, "runtime", v.into()),
            0x25 => set(&mut a, "driverUniqueId", v.to_string().into()),
            0xa0 => set(&mut a, "fuelUsed", (f64::from(v) * 0.001).into()),
            0xa2 => set(&mut a, "fuelConsumption", (f64::from(v) * 0.01).into()),
            _ => {}
        }
    }
    // Variable-length parameters: the group is absent in some firmwares.
    let n = if r.remaining() > 0 {
        r.u8("variable parameter count")?
    } else {
        0
    };
    for _ in 0..n {
        let id = param_id(&mut r)?;
        let len = usize::from(r.u8("parameter length")?);
        let v = r.bytes(len, "parameter value")?;
        match id {
            // Temperature probes: label, then hundredths of a degree.
            0x2a..=0x31 if len >= 3 => {
                let t = i16::from_le_bytes([v[1], v[2]]);
                set(
                    &mut a,
                    &format!("temp{}", id - 0x2a),
                    (f64::from(t) * 0.01).into(),
                );
            }
            // Battery levels: three (present, level) pairs and an alert byte.
            0xfea8 => {
                for k in 0..3 {
                    if let (Some(&present), Some(&level)) = (v.get(2 * k), v.get(2 * k + 1)) {
                        if present > 0 {
                            let key = if k == 0 {
                                "batteryLevel".to_owned()
                            } else {
                                format!("battery{}Level", k + 1)
                            };
                            set(&mut a, &key, level.into());
                        }
                    }
                }
            }
            // Bluetooth sensor: a byte, then the tag's name (length-prefixed).
            0xfe73 => {
                if let Some(&name_len) = v.get(1) {
                    if let Some(name) = v.get(2..2 + usize::from(name_len)) {
                        set(
                            &mut a,
                            "tagName",
                            String::from_utf8_lossy(name).into_owned().into(),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(event) = a.get("event").and_then(Value::as_u64) {
        if let Some(alarm) = super::parser::alarm(event as u32) {
            a.insert("alarm".into(), alarm.into());
        }
    }
    let time = time.unwrap_or(ctx.received_at);
    Ok(match (lat, lon) {
        (Some(latitude), Some(longitude)) => {
            let mut p = Position::new(&ctx.device_id, NAME, time);
            p.valid = valid;
            p.latitude = latitude;
            p.longitude = longitude;
            p.altitude = alt;
            p.speed = speed;
            p.course = course;
            p.satellites = sats;
            p.attributes = a;
            Record::Position(p)
        }
        _ => {
            let mut m = DeviceMessage::new(ctx, NAME);
            m.time = time;
            m.attributes = a;
            Record::Status(m)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx() -> ParseContext {
        ParseContext::new("1", Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
    }

    #[test]
    fn cce_record_without_coordinates_is_status() {
        // One record: index 0, valid=1, no 2- or 4-byte values, no variable group.
        let data = [0, 0, 0, 0, 1, 0, 7, 0, 0, 0, 1, 0x05, 1, 0, 0];
        let records = cce(&data, &ctx()).unwrap();
        assert!(matches!(&records[0], Record::Status(_)));
        assert!(cce(&data[..9], &ctx()).is_err());
    }

    #[test]
    fn ccc_needs_whole_records() {
        assert!(ccc_count(&[2, 1, 10, 0, 0, 0, 0, 0]).is_err());
        assert_eq!(ccc_count(&[2, 1, 52, 0, 0, 0, 0, 0]).unwrap(), 0);
    }
}
