//! Encoders for both directions: device packets (for the simulator and the
//! round-trip tests) and the server's answers (for the session).
//!
//! Device packets are written as 2.0 (with checksums) or 1.1 (without);
//! over UDP they carry the `[2.0;]<imei>` prefix instead of a login.

use bytes::Bytes;
use chrono::{Datelike, Timelike};
use serde_json::Value;

use crate::checksum::crc16_ibm;
use crate::text::nmea;
use crate::Position;

/// The answer to an accepted login.
pub fn login_ack() -> Bytes {
    Bytes::from_static(b"#AL#1\r\n")
}

/// The answer to a ping.
pub fn ping_ack() -> Bytes {
    Bytes::from_static(b"#AP#\r\n")
}

/// The answer to a stored short data packet.
pub fn short_data_ack() -> Bytes {
    Bytes::from_static(b"#ASD#1\r\n")
}

/// The answer to a stored data packet.
pub fn data_ack() -> Bytes {
    Bytes::from_static(b"#AD#1\r\n")
}

/// The answer to a stored black box packet: how many records it held.
pub fn black_box_ack(records: usize) -> Bytes {
    Bytes::from(format!("#AB#{records}\r\n"))
}

/// The answer to a stored message from the driver.
pub fn message_ack() -> Bytes {
    Bytes::from_static(b"#AM#1\r\n")
}

/// Which protocol version a device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 1.1: no checksums, `#L#imei;password`.
    V1,
    /// 2.0: CRC-16 on every packet but the ping, `#L#2.0;imei;password;crc`.
    V2,
}

/// `<message>` with its checksum appended after `separator` in 2.0.
fn sealed(kind: &str, message: &str, separator: char, version: Version) -> String {
    match version {
        Version::V1 => format!("#{kind}#{message}\r\n"),
        Version::V2 => {
            let covered = format!("{message}{separator}");
            let crc = crc16_ibm(covered.as_bytes());
            format!("#{kind}#{covered}{crc:04X}\r\n")
        }
    }
}

/// A login (password `NA` when there is none).
pub fn login(imei: &str, password: Option<&str>, version: Version) -> Bytes {
    let password = password.unwrap_or("NA");
    Bytes::from(match version {
        Version::V1 => sealed("L", &format!("{imei};{password}"), ';', version),
        Version::V2 => sealed("L", &format!("2.0;{imei};{password}"), ';', version),
    })
}

/// A ping.
pub fn ping() -> Bytes {
    Bytes::from_static(b"#P#\r\n")
}

/// `date;time;lat;N;lon;E;speed;course;altitude;satellites` of `p`
/// (satellites `NA` when unknown). Minutes of coordinates with six
/// decimals, km/h, degrees and metres with two.
fn short_fields(p: &Position) -> String {
    let t = p.fix_time;
    let (lat, ns) = nmea(p.latitude, 2, 6, ['N', 'S']);
    let (lon, ew) = nmea(p.longitude, 3, 6, ['E', 'W']);
    let sats = p
        .satellites
        .map_or_else(|| "NA".to_owned(), |s| s.to_string());
    format!(
        "{:02}{:02}{:02};{:02}{:02}{:02};{lat};{ns};{lon};{ew};{:.2};{:.2};{:.2};{sats}",
        t.day(),
        t.month(),
        t.year().rem_euclid(100),
        t.hour(),
        t.minute(),
        t.second(),
        p.speed,
        p.course,
        p.altitude,
    )
}

/// The extended fields after the short ones: `hdop;inputs;outputs;adc;
/// ibutton;params`, from the attributes `hdop`, `input`, `output`,
/// `driverUniqueId`, and every other attribute that is a number, a string
/// or a flag as a parameter (`name:1|2|3:value`).
fn full_fields(p: &Position) -> String {
    let a = &p.attributes;
    let hdop = a
        .get("hdop")
        .and_then(Value::as_f64)
        .map_or_else(|| "NA".to_owned(), |h| format!("{h}"));
    let int = |k: &str| {
        a.get(k)
            .and_then(Value::as_i64)
            .map_or_else(|| "NA".to_owned(), |v| v.to_string())
    };
    let ibutton = a
        .get("driverUniqueId")
        .and_then(Value::as_str)
        .unwrap_or("NA");
    let params: Vec<String> = a
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "hdop" | "input" | "output" | "driverUniqueId"))
        .filter_map(|(k, v)| match v {
            Value::Number(n) if n.is_i64() => Some(format!("{k}:1:{n}")),
            Value::Number(n) => n.as_f64().map(|f| format!("{k}:2:{f:?}")),
            Value::String(s) => Some(format!("{k}:3:{s}")),
            // Text `true`/`false` reads back as a flag, as Traccar reads it.
            Value::Bool(b) => Some(format!("{k}:3:{b}")),
            _ => None,
        })
        .collect();
    let params = if params.is_empty() {
        "NA".to_owned()
    } else {
        params.join(",")
    };
    format!(
        "{};{hdop};{};{};NA;{ibutton};{params}",
        short_fields(p),
        int("input"),
        int("output")
    )
}

/// A short data packet (`#SD#`).
pub fn short_data(p: &Position, version: Version) -> Bytes {
    Bytes::from(sealed("SD", &short_fields(p), ';', version))
}

/// An extended data packet (`#D#`) with `p`'s attributes as parameters.
pub fn data(p: &Position, version: Version) -> Bytes {
    Bytes::from(sealed("D", &full_fields(p), ';', version))
}

/// A black box packet (`#B#`) of extended records.
pub fn black_box(records: &[Position], version: Version) -> Bytes {
    let body: Vec<String> = records.iter().map(full_fields).collect();
    Bytes::from(sealed("B", &body.join("|"), '|', version))
}

/// A message from the driver (`#M#`).
pub fn message(text: &str, version: Version) -> Bytes {
    Bytes::from(sealed("M", text, ';', version))
}

/// `packet` as sent over UDP: prefixed with `<imei>#` (1.1) or
/// `2.0;<imei>#` (2.0) in place of the leading `#`.
pub fn udp(imei: &str, packet: &[u8], version: Version) -> Bytes {
    let prefix = match version {
        Version::V1 => imei.to_owned(),
        Version::V2 => format!("2.0;{imei}"),
    };
    let mut out = prefix.into_bytes();
    out.extend_from_slice(packet);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn packets() {
        assert_eq!(&login("2002", None, Version::V1)[..], b"#L#2002;NA\r\n");
        let l = login("42001300083", Some("pw"), Version::V2);
        let crc = crc16_ibm(b"2.0;42001300083;pw;");
        assert_eq!(
            l,
            Bytes::from(format!("#L#2.0;42001300083;pw;{crc:04X}\r\n"))
        );
        let t = Utc.with_ymd_and_hms(2013, 4, 27, 20, 56, 1).unwrap();
        let mut p = Position::new("1", "wialon", t);
        p.latitude = 55.74338;
        p.longitude = -37.66139;
        p.satellites = Some(4);
        assert_eq!(
            &short_data(&p, Version::V1)[..],
            &b"#SD#270413;205601;5544.602800;N;03739.683400;W;0.00;0.00;0.00;4\r\n"[..]
        );
        assert_eq!(&udp("354", &ping(), Version::V2)[..], b"2.0;354#P#\r\n");
        assert!(black_box(&[p.clone(), p], Version::V2).ends_with(b"\r\n"));
    }
}
