//! Codec 7, sent by GH3000 personal trackers: a bit mask says which location
//! fields and IO groups follow, and IO ids have their own meanings.

use chrono::{DateTime, Utc};

use crate::read::Reader;
use crate::{DeviceMessage, ParseError, Position, Record};

use super::io::{add_alarm, unknown};
use super::NAME;

/// GH3000 timestamps count seconds from 2007-01-01T00:00:00Z.
const EPOCH_2007: i64 = 1_167_609_600;

fn bit(mask: u8, n: u32) -> bool {
    mask >> n & 1 == 1
}

pub(crate) fn parse(count: u8, body: &[u8], device_id: &str) -> Result<Vec<Record>, ParseError> {
    let mut r = Reader::new(body);
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        out.push(record(&mut r, device_id)?);
    }
    r.finish("GH3000 data after the last record")?;
    Ok(out)
}

fn record(r: &mut Reader, device_id: &str) -> Result<Record, ParseError> {
    // The two high bits are not part of the time.
    let seconds = i64::from(r.u32("timestamp")? & 0x3fff_ffff) + EPOCH_2007;
    let time = DateTime::<Utc>::from_timestamp(seconds, 0)
        .ok_or_else(|| ParseError::Invalid(format!("timestamp {seconds} s is out of range")))?;
    let global = r.u8("global mask")?;
    let mut p = Position::new(device_id, NAME, time);
    if bit(global, 0) {
        location(r, &mut p)?;
    }
    for (group, width) in [(1, 1), (2, 2), (3, 4)] {
        if bit(global, group) {
            for _ in 0..r.u8("IO count")? {
                let id = r.u8("IO id")?;
                let raw = r.uint(width, "IO value")?;
                apply(&mut p, id, raw, width);
            }
        }
    }
    if bit(global, 0) {
        return Ok(Record::Position(p));
    }
    // Without its location block a record is status only, never a fix.
    let mut m = DeviceMessage::new(&crate::ParseContext::new(device_id, time), NAME);
    m.attributes = p.attributes;
    Ok(Record::Status(m))
}

fn location(r: &mut Reader, p: &mut Position) -> Result<(), ParseError> {
    let mask = r.u8("location mask")?;
    p.valid = true;
    if bit(mask, 0) {
        p.latitude = f64::from(r.f32("latitude")?);
        p.longitude = f64::from(r.f32("longitude")?);
    }
    if bit(mask, 1) {
        p.altitude = f64::from(r.u16("altitude")?);
    }
    if bit(mask, 2) {
        p.course = f64::from(r.u8("angle")?) * 360.0 / 256.0;
    }
    if bit(mask, 3) {
        p.speed = f64::from(r.u8("speed")?);
    }
    if bit(mask, 4) {
        p.satellites = Some(u32::from(r.u8("satellites")?));
    }
    if bit(mask, 5) {
        // Serving cell; kept under the names the FMB ids use.
        p.set("lac", r.u16("LAC")?);
        p.set("cid2g", r.u16("cell id")?);
    }
    if bit(mask, 6) {
        p.set("rssi", r.u8("signal quality")?);
    }
    if bit(mask, 7) {
        p.set("operator", r.u32("operator code")?);
    }
    Ok(())
}

fn apply(p: &mut Position, id: u8, raw: u64, width: usize) {
    match id {
        1 => p.set("batteryLevel", raw),
        2 => p.set("usbConnected", raw == 1),
        5 => p.set("uptime", raw),
        20 => p.set("hdop", raw as f64 / 10.0),
        21 => p.set("vdop", raw as f64 / 10.0),
        22 => p.set("pdop", raw as f64 / 10.0),
        67 => p.set("battery", raw as f64 / 1000.0),
        221 => p.set("button", raw),
        222 => {
            if raw == 1 {
                add_alarm(p, "sos")
            }
        }
        240 => p.set("motion", raw == 1),
        244 => p.set("roaming", raw == 1),
        _ => unknown(p, u16::from(id), raw, width),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use crate::teltonika::parse;
    use crate::{ParseContext, Record};

    fn records(h: &str) -> Vec<Record> {
        let ctx = ParseContext::new("1", Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        parse(&hex::decode(h).unwrap(), &ctx).unwrap()
    }

    #[test]
    fn location_only_records() {
        // Two GH3000 fixes (Traccar's tests): float coordinates, cell, no IO.
        let r = records("000000000000003107024c61410b013f4231c2c141d0beb9003d000005006483ff4c6140eb013f4231c2c141d0beb9003d000005006483ff02000041df");
        assert_eq!(r.len(), 2);
        let p = r[0].as_position().unwrap();
        assert!(
            (p.latitude - 44.44).abs() < 0.01 && (p.longitude - 26.09).abs() < 0.01,
            "{p:?}"
        );
        assert_eq!((p.altitude, p.satellites), (61.0, Some(5)));
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2007, 1, 1, 0, 0, 0).unwrap()
                + chrono::Duration::seconds(0x0c61410b)
        );
        assert_eq!(
            (p.attributes["lac"].as_u64(), p.attributes["cid2g"].as_u64()),
            (Some(100), Some(0x83ff))
        );
    }

    #[test]
    fn records_with_io() {
        let r = records("00000000000000c7070441bf9db00fff425adbd741ca6e1e009e1205070001030b160000601a02015e02000314006615000a160067010500000ce441bf9d920fff425adbb141ca6fc900a2b218070001030b160000601a02015e02000314006615000a160067010500000cc641bf9d740fff425adbee41ca739200b6c91e070001030b1f0000601a02015f02000314006615000a160066010500000ca841bf9cfc0fff425adba041ca70c100b93813070001030b1f0000601a02015f02000314002315000a160025010500000c3004000000");
        assert_eq!(r.len(), 4);
        let p = r[0].as_position().unwrap();
        assert_eq!((p.speed, p.course), (5.0, 0x12 as f64 * 360.0 / 256.0));
        let a = serde_json::to_value(&p.attributes).unwrap();
        assert_eq!(a["batteryLevel"], 94);
        assert_eq!(a["usbConnected"], false);
        assert_eq!(a["hdop"], 10.2);
        assert_eq!(a["uptime"], 3300);
    }
}
