//! Binary @Track messages: `+RSP` location reports (plain and compressed)
//! and `+EVT` event reports. Big-endian. The header is `+RSP`/`+EVT`, type,
//! report mask (4 bytes), length (2), device type, protocol version (2),
//! firmware version (2), IMEI (`u64`), battery level, external power (mV),
//! motion status, satellites. The fields read are those of the default
//! report mask, as Traccar reads them; other masks are not interpreted.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::{Map, Value};

use crate::read::Reader;
use crate::text::{cell, set_cells};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::NAME;

/// `+RSP` types with extra fields.
const RSP_LCB: u8 = 3;
const RSP_GEO: u8 = 8;
const RSP_COMPRESSED: u8 = 100;

/// Where the IMEI is in `+RSP`/`+EVT` messages.
const IMEI_AT: usize = 16;

/// The IMEI of a binary `+RSP`/`+EVT`/`+INF` message.
pub(crate) fn device_id(frame: &[u8]) -> Option<String> {
    let at = match frame.get(..4)? {
        b"+RSP" | b"+BSP" | b"+EVT" | b"+BVT" => IMEI_AT,
        b"+INF" | b"+BNF" => 11,
        _ => return None,
    };
    let bytes: [u8; 8] = frame.get(at..at + 8)?.try_into().ok()?;
    // Printed as Traccar prints it (at least 15 digits), so that a device
    // registered there under this id keeps it.
    let imei = u64::from_be_bytes(bytes);
    (imei != 0).then(|| format!("{imei:015}"))
}

/// Reads `n` bits (at most 32) MSB first from `bytes` at bit `*pos`.
fn bits(bytes: &[u8], pos: &mut usize, n: usize) -> u32 {
    let mut v = 0u32;
    for _ in 0..n {
        let byte = bytes.get(*pos / 8).copied().unwrap_or(0);
        let bit = (byte >> (7 - *pos % 8)) & 1;
        v = (v << 1) | u32::from(bit);
        *pos += 1;
    }
    v
}

/// Two's complement of an `n`-bit field.
fn signed(v: u32, n: usize) -> i32 {
    let sign = 1u32 << (n - 1);
    if v & sign == 0 {
        v as i32
    } else {
        v as i32 - (1i32 << n)
    }
}

/// `year:u16 month day hour minute second`.
fn time(r: &mut Reader) -> Result<DateTime<Utc>, ParseError> {
    let year = r.u16("year")?;
    let (mo, d, h, mi, s) = (
        r.u8("month")?,
        r.u8("day")?,
        r.u8("hour")?,
        r.u8("minute")?,
        r.u8("second")?,
    );
    NaiveDate::from_ymd_opt(i32::from(year), u32::from(mo), u32::from(d))
        .zip(NaiveTime::from_hms_opt(
            u32::from(h),
            u32::from(mi),
            u32::from(s),
        ))
        .map(|(d, t)| crate::text::utc(d, t))
        .ok_or_else(|| ParseError::Invalid(format!("time {year}-{mo}-{d} {h}:{mi}:{s}")))
}

/// The common header up to the satellites; returns (type, battery level,
/// power mV, satellites, firmware).
fn header(r: &mut Reader) -> Result<(u8, u8, u16, u8, u16), ParseError> {
    let tag = r.bytes(4, "header")?;
    let ty = r.u8("type")?;
    r.u32("report mask")?;
    r.u16("length")?;
    r.u8("device type")?;
    r.u16("protocol version")?;
    let firmware = r.u16("firmware version")?;
    r.bytes(8, "IMEI")?;
    let battery = r.u8("battery level")?;
    let power = r.u16("power")?;
    if ty == RSP_GEO && tag == b"+RSP" {
        r.bytes(2, "reserved")?;
    }
    r.u8("motion status")?;
    let satellites = r.u8("satellites")?;
    Ok((ty, battery, power, satellites, firmware))
}

/// One plain location: `hdop speed:u24 course:u16 altitude:i16 lon:i32
/// lat:i32 time mcc mnc lac cell reserved`.
fn location(
    r: &mut Reader,
    ctx: &ParseContext,
    attributes: Map<String, Value>,
) -> Result<Record, ParseError> {
    let hdop = r.u8("hdop")?;
    let speed = f64::from(r.u24("speed")?) * 0.1;
    let course = f64::from(r.u16("course")?);
    let altitude = f64::from(r.i16("altitude")?);
    let lon = r.i32("longitude")?;
    let lat = r.i32("latitude")?;
    let t = time(r)?;
    let (mcc, mnc, lac, cid) = (r.u16("mcc")?, r.u16("mnc")?, r.u16("lac")?, r.u16("cell")?);
    r.u8("reserved")?;
    let mut a = attributes;
    if mcc != 0 {
        set_cells(
            &mut a,
            vec![cell(mcc.into(), mnc.into(), lac.into(), cid.into(), None)],
        );
    }
    if hdop == 0 && lon == 0 && lat == 0 {
        let mut m = DeviceMessage::new(ctx, NAME);
        m.time = t;
        m.attributes = a;
        return Ok(Record::Status(m));
    }
    let mut p = Position::new(&ctx.device_id, NAME, t);
    p.valid = hdop > 0;
    p.speed = speed;
    p.course = course;
    p.altitude = altitude;
    p.longitude = f64::from(lon) * 1e-6;
    p.latitude = f64::from(lat) * 1e-6;
    a.insert("hdop".into(), hdop.into());
    p.attributes = a;
    Ok(Record::Position(p))
}

pub(crate) fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let mut r = Reader::new(frame);
    match frame.get(..4) {
        Some(b"+RSP") | Some(b"+BSP") => rsp(&mut r, ctx),
        Some(b"+EVT") | Some(b"+BVT") => Ok(vec![evt(&mut r, ctx)?]),
        _ => Err(ParseError::Unsupported(format!(
            "binary @Track {:?} message",
            String::from_utf8_lossy(&frame[..frame.len().min(4)])
        ))),
    }
}

fn rsp(r: &mut Reader, ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let (ty, battery, power, satellites, _) = header(r)?;
    if ty != RSP_COMPRESSED {
        r.u8("index")?;
    }
    if ty == RSP_LCB {
        r.u8("phone length")?;
        // BCD phone number, ended by an `F` nibble.
        loop {
            let b = r.u8("phone number")?;
            if b & 0x0f == 0x0f || b & 0xf0 == 0xf0 {
                break;
            }
        }
    }
    let mut out = Vec::new();
    if ty == RSP_COMPRESSED {
        let count = r.u16("point count")?;
        let (mut speed, mut heading, mut lat, mut lon, mut t) = (0i32, 0i32, 0i32, 0i32, 0u32);
        for _ in 0..count {
            if t > 0 {
                t = t.saturating_add(1);
            }
            match r.peek().map(|b| b >> 6) {
                Some(1) => {
                    let b = r.bytes(3, "point")?;
                    let mut pos = 3;
                    speed = bits(b, &mut pos, 12) as i32;
                    heading = bits(b, &mut pos, 9) as i32;
                    lon = r.i32("longitude")?;
                    lat = r.i32("latitude")?;
                    if t == 0 {
                        t = r.u32("time")?;
                    }
                }
                Some(2) => {
                    let b = r.bytes(5, "point")?;
                    let mut pos = 3;
                    speed = speed.wrapping_add(signed(bits(b, &mut pos, 7), 7));
                    heading = heading.wrapping_add(signed(bits(b, &mut pos, 7), 7));
                    lon = lon.wrapping_add(signed(bits(b, &mut pos, 12), 12));
                    lat = lat.wrapping_add(signed(bits(b, &mut pos, 11), 11));
                }
                Some(_) => {
                    r.u8("point")?;
                    continue;
                }
                None => return Err(ParseError::Truncated("compressed point".into())),
            }
            let mut p = Position::new(
                &ctx.device_id,
                NAME,
                DateTime::from_timestamp(i64::from(t), 0).unwrap_or_default(),
            );
            p.valid = true;
            p.speed = f64::from(speed) * 0.1;
            p.course = f64::from(heading);
            p.longitude = f64::from(lon) * 1e-6;
            p.latitude = f64::from(lat) * 1e-6;
            out.push(Record::Position(p));
        }
    } else {
        let count = r.u8("location count")?;
        for _ in 0..count {
            let mut a = Map::new();
            a.insert("batteryLevel".into(), battery.into());
            a.insert("power".into(), power.into());
            let mut record = location(r, ctx, a)?;
            if let Record::Position(p) = &mut record {
                p.satellites = Some(u32::from(satellites));
            }
            out.push(record);
        }
    }
    Ok(out)
}

fn evt(r: &mut Reader, ctx: &ParseContext) -> Result<Record, ParseError> {
    let (ty, battery, power, satellites, firmware) = header(r)?;
    let skip = match ty {
        6 => 2,       // BPL: backup battery voltage
        45 | 46 => 7, // VGN/VGF: reserved, report type, ignition duration
        15 => 3,      // UPD: code, retry
        17 => 4,      // IDF: idling duration
        21 => 5,      // GSS: GPS signal status, reserved
        26 => 12,     // GES: geofence id, enable, mode, radius, interval
        31 => 2,      // GPJ: jamming value and state
        35 | 33 | 23 => 1,
        34 => 3, // UPC: command id, result
        _ => 0,
    };
    r.bytes(skip, "event fields")?;
    r.u8("count")?;
    let mut a = Map::new();
    a.insert("versionFw".into(), firmware.to_string().into());
    a.insert("batteryLevel".into(), battery.into());
    a.insert("power".into(), power.into());
    match ty {
        45 => {
            a.insert("ignition".into(), true.into());
        }
        46 => {
            a.insert("ignition".into(), false.into());
        }
        _ => {}
    }
    let mut record = location(r, ctx, a)?;
    if let Record::Position(p) = &mut record {
        p.satellites = Some(u32::from(satellites));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bit_fields() {
        let b = [0b0110_0000, 0b0000_0001];
        let mut pos = 0;
        assert_eq!(bits(&b, &mut pos, 2), 1);
        assert_eq!(bits(&b, &mut pos, 14), 0b10_0000_0000_0001);
        assert_eq!(signed(0b111_1111, 7), -1);
        assert_eq!(signed(0b011_1111, 7), 63);
    }

    #[test]
    fn binary_ids() {
        let frame = hex::decode("2b4556542d00fc1fbf006345010202095632540300034305").unwrap();
        assert_eq!(device_id(&frame).as_deref(), Some("6211119207959184133"));
        assert_eq!(device_id(b"+RSP"), None);
    }

    #[test]
    fn event_report() {
        let frame =
            hex::decode("2b4556540c00fc1fbf005c4501010108676231303000000000ffff07e1070b03112d")
                .unwrap();
        // Truncated: the header parses, the location does not.
        let ctx = ParseContext::new("1", Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        assert!(matches!(parse(&frame, &ctx), Err(ParseError::Truncated(_))));
    }
}
