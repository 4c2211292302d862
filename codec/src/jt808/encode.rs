//! Encoders for both directions: server answers (for the session) and
//! device messages (for the simulator and the round-trip tests). Every
//! message carries its XOR checksum and is escaped.

use bytes::Bytes;
use chrono::{DateTime, Datelike, Duration, Timelike, Utc};

use crate::Position;

use super::frame::{xor, DELIMITER, DELIMITER_ALT};
use super::location::TIME_ZONE_HOURS;
use super::msg;

/// Escapes the bytes between the delimiters.
fn escape(delimiter: u8, inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len() + 8);
    out.push(delimiter);
    for &b in inner {
        match (delimiter, b) {
            (DELIMITER, 0x7e) => out.extend([0x7d, 0x02]),
            (DELIMITER, 0x7d) => out.extend([0x7d, 0x01]),
            (DELIMITER_ALT, 0xe7) => out.extend([0xe6, 0x02]),
            (DELIMITER_ALT, 0xe6) => out.extend([0xe6, 0x01]),
            (DELIMITER_ALT, 0x3d) => out.extend([0x3e, 0x02]),
            (DELIMITER_ALT, 0x3e) => out.extend([0x3e, 0x01]),
            _ => out.push(b),
        }
    }
    out.push(delimiter);
    out
}

/// Who a message is addressed to or comes from: the terminal id as it
/// appears in the header, the 2019 version byte if the device uses it, and
/// the delimiter it frames with.
#[derive(Debug, Clone)]
pub struct Terminal {
    pub id: Vec<u8>,
    pub version: Option<u8>,
    pub delimiter: u8,
}

impl Terminal {
    /// A 2013-version terminal with the given phone number (up to 12 digits,
    /// BCD, left-padded with zeros).
    ///
    /// # Panics
    /// If `phone` is not 1 to 12 decimal digits.
    pub fn phone(phone: &str) -> Terminal {
        assert!(
            !phone.is_empty() && phone.len() <= 12 && phone.bytes().all(|b| b.is_ascii_digit()),
            "a JT808 terminal phone is up to 12 digits"
        );
        Terminal {
            id: hex::decode(format!("{phone:0>12}")).expect("digits are hex"),
            version: None,
            delimiter: DELIMITER,
        }
    }
}

/// A whole message: header, body, checksum, escaped and delimited. The
/// serial is one byte for 0x5501/0x5502, two otherwise.
pub fn message(id: u16, terminal: &Terminal, serial: u16, body: &[u8]) -> Bytes {
    let mut inner = Vec::with_capacity(body.len() + 20);
    inner.extend(id.to_be_bytes());
    let mut attributes = (body.len() as u16) & 0x03ff;
    if terminal.version.is_some() {
        attributes |= 0x4000;
    }
    inner.extend(attributes.to_be_bytes());
    inner.extend(terminal.version);
    inner.extend(&terminal.id);
    if super::frame::short_serial(id) {
        inner.push(serial as u8);
    } else {
        inner.extend(serial.to_be_bytes());
    }
    inner.extend(body);
    inner.push(xor(&inner));
    Bytes::from(escape(terminal.delimiter, &inner))
}

/// The platform's general response (0x8001): success for message `id` of serial `serial`.
pub fn general_response(terminal: &Terminal, own_serial: u16, serial: u16, id: u16) -> Bytes {
    let mut body = Vec::with_capacity(5);
    body.extend(serial.to_be_bytes());
    body.extend(id.to_be_bytes());
    body.push(0);
    message(msg::GENERAL_RESPONSE, terminal, own_serial, &body)
}

/// The short general response (0x4401) to 0x5501/0x5502 messages that ask for one.
pub fn general_response_2(terminal: &Terminal, id: u16) -> Bytes {
    let mut body = Vec::with_capacity(3);
    body.extend(id.to_be_bytes());
    body.push(0);
    let mut inner = Vec::new();
    inner.extend(msg::GENERAL_RESPONSE_2.to_be_bytes());
    inner.extend(
        (body.len() as u16
            | if terminal.version.is_some() {
                0x4000
            } else {
                0
            })
        .to_be_bytes(),
    );
    inner.extend(terminal.version);
    inner.extend(&terminal.id);
    inner.push(1);
    inner.extend(&body);
    inner.push(xor(&inner));
    Bytes::from(escape(terminal.delimiter, &inner))
}

/// The register response (0x8100): success and the authentication code the
/// device then logs in with (its own id, as Traccar answers).
pub fn register_response(
    terminal: &Terminal,
    own_serial: u16,
    serial: u16,
    auth_code: &str,
) -> Bytes {
    let mut body = Vec::with_capacity(3 + auth_code.len());
    body.extend(serial.to_be_bytes());
    body.push(0);
    body.extend(auth_code.as_bytes());
    message(msg::REGISTER_RESPONSE, terminal, own_serial, &body)
}

/// The time synchronisation response (0x8109): the current UTC time.
pub fn time_sync_response(terminal: &Terminal, own_serial: u16, now: DateTime<Utc>) -> Bytes {
    let mut body = Vec::with_capacity(8);
    body.extend((now.year() as u16).to_be_bytes());
    body.extend([
        now.month() as u8,
        now.day() as u8,
        now.hour() as u8,
        now.minute() as u8,
        now.second() as u8,
        0,
    ]);
    message(msg::TIME_SYNC_RESPONSE, terminal, own_serial, &body)
}

/// A terminal registration (0x0100) with empty province, city, maker,
/// model, terminal id and plate.
pub fn register(terminal: &Terminal, serial: u16) -> Bytes {
    let mut body = vec![0u8; 2 + 2 + 5 + 20 + 7 + 1];
    body.extend(b"TEST");
    message(msg::REGISTER, terminal, serial, &body)
}

/// An authentication (0x0102) with `code`.
pub fn auth(terminal: &Terminal, serial: u16, code: &str) -> Bytes {
    message(msg::AUTH, terminal, serial, code.as_bytes())
}

/// A heartbeat (0x0002) without body.
pub fn heartbeat(terminal: &Terminal, serial: u16) -> Bytes {
    message(msg::HEARTBEAT, terminal, serial, &[])
}

fn bcd(v: u32) -> u8 {
    (((v / 10 % 10) << 4) | (v % 10)) as u8
}

/// The basic location block: alarm word, status word (validity, hemispheres
/// and `ignition` from the attributes), coordinates to 1e-6°, altitude,
/// speed to 0.1 km/h (at most 6553.5), course, China-time BCD date.
pub fn location_block(p: &Position, alarm: u32) -> Vec<u8> {
    let mut status = 0u32;
    if p.attributes.get("ignition").and_then(|v| v.as_bool()) == Some(true) {
        status |= 1;
    }
    if p.valid {
        status |= 2;
    }
    if p.latitude < 0.0 {
        status |= 4;
    }
    if p.longitude < 0.0 {
        status |= 8;
    }
    let mut b = Vec::with_capacity(28);
    b.extend(alarm.to_be_bytes());
    b.extend(status.to_be_bytes());
    b.extend(((p.latitude.abs() * 1e6).round() as u32).to_be_bytes());
    b.extend(((p.longitude.abs() * 1e6).round() as u32).to_be_bytes());
    b.extend((p.altitude.round() as i16).to_be_bytes());
    b.extend(((p.speed * 10.0).round().clamp(0.0, 65535.0) as u16).to_be_bytes());
    b.extend((p.course.round() as u16 % 360).to_be_bytes());
    let t = p.fix_time + Duration::hours(TIME_ZONE_HOURS);
    b.extend([
        bcd(t.year().rem_euclid(100) as u32),
        bcd(t.month()),
        bcd(t.day()),
        bcd(t.hour()),
        bcd(t.minute()),
        bcd(t.second()),
    ]);
    b
}

/// A location report (0x0200) with signal (0x30) and, when known, satellite
/// (0x31) extensions. The fix time goes on the wire as BCD with a two-digit
/// year in GMT+8, so only 2000–2099 Beijing time comes back as sent.
pub fn location(terminal: &Terminal, serial: u16, p: &Position, alarm: u32, rssi: u8) -> Bytes {
    let mut body = location_block(p, alarm);
    body.extend([0x30, 1, rssi]);
    if let Some(sat) = p.satellites {
        body.extend([0x31, 1, sat.min(255) as u8]);
    }
    message(msg::LOCATION, terminal, serial, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_bytes() {
        let t = Terminal::phone("043048325465");
        assert_eq!(
            hex::encode(heartbeat(&t, 0xb7)),
            "7e0002000004304832546500b7ca7e"
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape(0x7e, &[0x30, 0x7e, 0x08, 0x7d, 0x55]),
            hex::decode("7e307d02087d01557e").unwrap()
        );
        assert_eq!(
            escape(0xe7, &[0xe7, 0xe6, 0x3d, 0x3e]),
            hex::decode("e7e602e6013e023e01e7").unwrap()
        );
    }

    #[test]
    fn general_response_bytes() {
        let t = Terminal::phone("013511221122");
        let r = general_response(&t, 0, 7, 0x0200);
        assert_eq!(
            hex::encode(&r),
            "7e8001000501351122112200000007020000d37e".replace(
                "d3",
                &format!(
                    "{:02x}",
                    xor(&hex::decode("8001000501351122112200000007020000").unwrap())
                )
            )
        );
    }
}
