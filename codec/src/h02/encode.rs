//! Encoders for both directions: device messages (for the simulator and the
//! round-trip tests) and the server's answers (for the session).
//!
//! Encoders take trusted input from our own programs; values that do not fit
//! the wire format are clamped (documented per function).

use bytes::Bytes;
use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::text::KNOTS_TO_KMH;
use crate::Position;

/// The answer to a `V1` or `NBR` message: `*HQ,<id>,V4,<kind>,<yyyyMMddHHmmss>#`.
pub fn v4_reply(id: &str, kind: &str, now: DateTime<Utc>) -> Bytes {
    Bytes::from(format!(
        "*HQ,{id},V4,{kind},{}#",
        now.format("%Y%m%d%H%M%S")
    ))
}

/// The answer to a heartbeat: the message up to its type, closed with `#`.
pub fn heartbeat_reply(head: &str) -> Bytes {
    Bytes::from(format!("{head}#"))
}

/// `DDMM.MMMMM` (latitude, `width` 2) or `DDDMM.MMMMM` (longitude, 3) and the hemisphere.
fn coordinate(value: f64, width: usize, positive: char, negative: char) -> String {
    let hemisphere = if value < 0.0 { negative } else { positive };
    let value = value.abs();
    // Rounded to the wire's precision first, so 59.999995' does not print as 60'.
    let total = (value * 60.0 * 100_000.0).round() as u64;
    let (degrees, minutes) = (total / 6_000_000, total % 6_000_000);
    format!(
        "{degrees:0width$}{:02}.{:05},{hemisphere}",
        minutes / 100_000,
        minutes % 100_000
    )
}

/// A `V1` position: `*HQ,<id>,V1,hhmmss,A|V,lat,N|S,lon,E|W,speed,course,ddmmyy,<status>#`.
/// Speed goes out in knots with two decimals, the course as an integer,
/// coordinates with five decimals of minutes. `status` is the status word
/// (all bits set: no alarm, ignition on is bit 10).
pub fn position(id: &str, p: &Position, status: u32) -> Bytes {
    let t = p.fix_time;
    Bytes::from(format!(
        "*HQ,{id},V1,{:02}{:02}{:02},{},{},{},{:.2},{},{:02}{:02}{:02},{status:08X}#",
        t.hour(),
        t.minute(),
        t.second(),
        if p.valid { 'A' } else { 'V' },
        coordinate(p.latitude, 2, 'N', 'S'),
        coordinate(p.longitude, 3, 'E', 'W'),
        p.speed / KNOTS_TO_KMH,
        p.course.round() as u32 % 360,
        t.day(),
        t.month(),
        t.year().rem_euclid(100),
    ))
}

/// A heartbeat: `*HQ,<id>,HTBT,<battery level>#`.
pub fn heartbeat(id: &str, battery_level: u8) -> Bytes {
    Bytes::from(format!("*HQ,{id},HTBT,{battery_level}#"))
}

fn bcd(v: u32) -> u8 {
    (((v / 10 % 10) << 4) | (v % 10)) as u8
}

/// A 32-byte binary position. `id` is up to 10 decimal digits (left-padded
/// with zeros); speed in km/h is sent as whole knots (at most 999), the course
/// as a whole number of degrees, coordinates to 1/10 000 of a minute.
///
/// # Panics
/// If `id` is not 1 to 10 decimal digits.
pub fn binary_position(id: &str, p: &Position, battery: u8, status: u32) -> Bytes {
    assert!(
        !id.is_empty() && id.len() <= 10 && id.bytes().all(|b| b.is_ascii_digit()),
        "binary H02 ids are up to 10 digits"
    );
    let mut nibbles: Vec<u8> = format!("{id:0>10}").bytes().map(|b| b - b'0').collect();
    let t = p.fix_time;
    for v in [
        t.hour(),
        t.minute(),
        t.second(),
        t.day(),
        t.month(),
        t.year().rem_euclid(100) as u32,
    ] {
        nibbles.extend([(v / 10) as u8, (v % 10) as u8]);
    }
    let digits = |value: f64, n: usize| -> Vec<u8> {
        let total = (value.abs() * 60.0 * 10_000.0).round() as u64;
        let (deg, min) = (total / 600_000, total % 600_000);
        let s = format!("{deg:0n$}{min:06}");
        s.bytes().map(|b| b - b'0').collect()
    };
    nibbles.extend(digits(p.latitude, 2));
    let mut out = vec![b'$'];
    let pack = |n: &[u8], out: &mut Vec<u8>| {
        for pair in n.chunks(2) {
            out.push((pair[0] << 4) | pair.get(1).copied().unwrap_or(0));
        }
    };
    pack(&nibbles, &mut out);
    out.push(battery);
    let mut lon = digits(p.longitude, 3);
    let flags = (0x02 * u8::from(p.valid))
        | (0x04 * u8::from(p.latitude >= 0.0))
        | (0x08 * u8::from(p.longitude >= 0.0));
    lon.push(flags);
    let knots = ((p.speed / KNOTS_TO_KMH).round() as u32).min(999);
    let course = p.course.round() as u32 % 360;
    lon.extend([
        (knots / 100) as u8,
        (knots / 10 % 10) as u8,
        (knots % 10) as u8,
        (course / 100) as u8,
    ]);
    pack(&lon, &mut out);
    out.push(bcd(course % 100));
    out.extend(status.to_be_bytes());
    out.extend([0, 0, 0]);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn coordinates_round() {
        assert_eq!(coordinate(9.93978, 2, 'N', 'S'), "0956.38680,N");
        assert_eq!(coordinate(-84.11178, 3, 'E', 'W'), "08406.70680,W");
        assert_eq!(coordinate(-0.9999999999, 2, 'N', 'S'), "0100.00000,S");
    }

    #[test]
    fn binary_layout() {
        let t = Utc.with_ymd_and_hms(2016, 11, 13, 12, 45, 43).unwrap();
        let mut p = Position::new("4106011660", "h02", t);
        p.valid = true;
        p.latitude = 50.0 + 35.3130 / 60.0;
        p.longitude = 4.0 + 31.8210 / 60.0;
        let b = binary_position("4106011660", &p, 6, 0xFFFF_FBFF);
        assert_eq!(
            hex::encode(&b),
            "2441060116601245431311165035313006004318210e000000fffffbff000000"
        );
    }
}
