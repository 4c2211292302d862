//! Encoders for both directions: device messages (for the simulator and
//! round-trip tests) and the server's answers (for the session). Every frame
//! carries a valid CRC-ITU.
//!
//! Encoders take trusted input from our own programs, not device input;
//! where a value cannot be represented they say so under "Panics" or clamp
//! (documented per function).

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::Value;

use crate::checksum::crc_itu;
use crate::Position;

use super::frame::{START_EXTENDED, START_STANDARD, STOP};
use super::msg;

/// A standard (`78 78`) frame: protocol number, content, serial, CRC.
///
/// # Panics
/// If the content does not fit a one-byte length (more than 250 bytes); use
/// [`frame_extended`] for long messages.
pub fn frame(protocol: u8, content: &[u8], serial: u16) -> Bytes {
    let length = u8::try_from(content.len() + 5)
        .expect("content too long for a 78 78 frame, use frame_extended");
    let mut out = BytesMut::with_capacity(content.len() + 10);
    out.put_slice(&START_STANDARD);
    out.put_u8(length);
    finish(out, protocol, content, serial)
}

/// An extended (`79 79`) frame with a two-byte length.
///
/// # Panics
/// If the content is longer than 65 530 bytes.
pub fn frame_extended(protocol: u8, content: &[u8], serial: u16) -> Bytes {
    let length = u16::try_from(content.len() + 5).expect("content too long for a 79 79 frame");
    let mut out = BytesMut::with_capacity(content.len() + 11);
    out.put_slice(&START_EXTENDED);
    out.put_u16(length);
    finish(out, protocol, content, serial)
}

fn finish(mut out: BytesMut, protocol: u8, content: &[u8], serial: u16) -> Bytes {
    out.put_u8(protocol);
    out.put_slice(content);
    out.put_u16(serial);
    let crc = crc_itu(&out[2..]);
    out.put_u16(crc);
    out.put_slice(&STOP);
    out.freeze()
}

/// Login (0x01) with the IMEI in BCD, padded with a leading zero to 16 digits.
///
/// # Panics
/// If `imei` is not 1 to 16 decimal digits.
pub fn login(imei: &str, serial: u16) -> Bytes {
    assert!(
        (1..=16).contains(&imei.len()) && imei.bytes().all(|b| b.is_ascii_digit()),
        "an IMEI is 1 to 16 decimal digits, got {imei:?}"
    );
    let digits = format!("{imei:0>16}");
    let bcd: Vec<u8> = digits
        .as_bytes()
        .chunks(2)
        .map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0'))
        .collect();
    frame(msg::LOGIN, &bcd, serial)
}

/// The terminal state a heartbeat or alarm reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalStatus {
    pub ignition: bool,
    pub charging: bool,
    /// GPS tracking on.
    pub gps_on: bool,
    /// Fuel/electricity cut by the relay.
    pub blocked: bool,
    /// Battery level 0 (empty) to 6 (full).
    pub voltage_level: u8,
    /// GSM signal 0 (none) to 4 (strong).
    pub gsm_signal: u8,
    /// Alarm code (0 = none, 1 = SOS, 2 = power cut, 3 = vibration, …).
    pub alarm: u8,
}

impl Default for TerminalStatus {
    fn default() -> Self {
        TerminalStatus {
            ignition: false,
            charging: false,
            gps_on: true,
            blocked: false,
            voltage_level: 6,
            gsm_signal: 4,
            alarm: 0,
        }
    }
}

impl TerminalStatus {
    fn info_byte(&self) -> u8 {
        u8::from(self.ignition) << 1
            | u8::from(self.charging) << 2
            | u8::from(self.gps_on) << 6
            | u8::from(self.blocked) << 7
    }

    /// Terminal info, voltage level, GSM signal, alarm, language (English).
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[
            self.info_byte(),
            self.voltage_level.min(6),
            self.gsm_signal.min(4),
            self.alarm,
            0x02,
        ]);
    }
}

/// Heartbeat / status (0x13).
pub fn heartbeat(status: &TerminalStatus, serial: u16) -> Bytes {
    let mut content = Vec::with_capacity(5);
    status.put(&mut content);
    frame(msg::STATUS, &content, serial)
}

/// Location (0x22, GPS + LBS, as current Concox devices send): time, fix,
/// the first cell of the position's `network` attribute (zeros without one),
/// ignition (`ignition`), upload reason (`event`) and `archive`.
///
/// Wire precision: whole seconds, 1/1 800 000 degree, whole km/h up to 255,
/// whole degrees of course, at most 15 satellites; years 2000-2255 (clamped).
pub fn location(position: &Position, serial: u16) -> Bytes {
    let mut c = Vec::with_capacity(29);
    put_gps(&mut c, position);
    put_cell(&mut c, position);
    let attr = |key: &str| position.attributes.get(key);
    c.push(u8::from(
        attr("ignition").and_then(Value::as_bool).unwrap_or(false),
    ));
    c.push(
        attr("event")
            .and_then(Value::as_u64)
            .and_then(|e| u8::try_from(e).ok())
            .unwrap_or(0),
    );
    c.push(u8::from(
        attr("archive").and_then(Value::as_bool).unwrap_or(false),
    ));
    frame(msg::GPS_LBS_2, &c, serial)
}

/// Alarm (0x16, GPS + LBS + status): the position with `status.alarm` set to
/// the alarm code (1 = SOS, 2 = power cut, 3 = vibration, 6 = overspeed, …).
pub fn alarm(position: &Position, status: &TerminalStatus, serial: u16) -> Bytes {
    let mut c = Vec::with_capacity(33);
    put_gps(&mut c, position);
    c.push(9); // LBS length, counting itself
    put_cell(&mut c, position);
    status.put(&mut c);
    frame(msg::GPS_LBS_STATUS_1, &c, serial)
}

fn put_gps(c: &mut Vec<u8>, p: &Position) {
    put_time(c, p.fix_time);
    c.push(0xc0 | p.satellites.unwrap_or(0).min(15) as u8);
    c.extend_from_slice(&degrees(p.latitude, 90.0).to_be_bytes());
    c.extend_from_slice(&degrees(p.longitude, 180.0).to_be_bytes());
    c.push(finite(p.speed).round().clamp(0.0, 255.0) as u8);
    let course = (finite(p.course).rem_euclid(360.0).round() as u16) % 360;
    let ignition = p.attributes.get("ignition").and_then(Value::as_bool);
    let mut flags = course;
    flags |= u16::from(p.valid) << 12;
    flags |= u16::from(p.latitude >= 0.0) << 10;
    flags |= u16::from(p.longitude < 0.0) << 11;
    if let Some(on) = ignition {
        flags |= 0x4000 | u16::from(on) << 15;
    }
    c.extend_from_slice(&flags.to_be_bytes());
}

/// MCC, MNC, LAC and a 3-byte cell id.
fn put_cell(c: &mut Vec<u8>, p: &Position) {
    let cell = p
        .attributes
        .get("network")
        .and_then(|n| n.get("cellTowers"))
        .and_then(|t| t.get(0));
    let field = |key: &str| {
        cell.and_then(|c| c.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    c.extend_from_slice(&(field("mobileCountryCode").min(0x7fff) as u16).to_be_bytes());
    c.push(field("mobileNetworkCode").min(0xff) as u8);
    c.extend_from_slice(&(field("locationAreaCode").min(0xffff) as u16).to_be_bytes());
    c.extend_from_slice(&(field("cellId").min(0xff_ffff) as u32).to_be_bytes()[1..]);
}

fn put_time(c: &mut Vec<u8>, t: DateTime<Utc>) {
    c.extend_from_slice(&time_bytes(t));
}

fn time_bytes(t: DateTime<Utc>) -> [u8; 6] {
    let year = (t.year() - 2000).clamp(0, 255) as u8;
    [
        year,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    ]
}

/// |value| in units of 1/1 800 000 degree (the sign travels in the flags).
fn degrees(value: f64, max: f64) -> u32 {
    (finite(value).abs().min(max) * 1_800_000.0).round() as u32
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// The server's acknowledgement of a standard message: it echoes the
/// protocol number and the serial (`78 78 05 01 00 01 d9 dc 0d 0a` answers a
/// login with serial 1).
pub fn ack(protocol: u8, serial: u16) -> Bytes {
    frame(protocol, &[], serial)
}

/// The answer to a login.
pub fn login_ack(serial: u16) -> Bytes {
    ack(msg::LOGIN, serial)
}

/// The acknowledgement in an extended frame (AZ735 and multimedia messages).
pub fn ack_extended(protocol: u8, serial: u16) -> Bytes {
    frame_extended(protocol, &[], serial)
}

/// The answer to a time request (0x8A): the current UTC time, serial 0.
pub fn time_response(now: DateTime<Utc>) -> Bytes {
    frame(msg::TIME_REQUEST, &time_bytes(now), 0)
}

/// The answer to an address request (0x2A): no address known.
pub fn address_response() -> Bytes {
    const NO_ADDRESS: &[u8] = b"NA&&NA&&0##";
    let mut content = Vec::with_capacity(NO_ADDRESS.len() + 5);
    content.push(NO_ADDRESS.len() as u8);
    content.extend_from_slice(&[0; 4]); // server flag
    content.extend_from_slice(NO_ADDRESS);
    frame_extended(msg::ADDRESS_RESPONSE, &content, 0)
}

/// The answer to a WiFi scan (0x17, 0x69): its own BCD time back, with a
/// zero length byte and neither serial nor CRC, as those devices expect.
pub fn wifi_ack(protocol: u8, bcd_time: [u8; 6]) -> Bytes {
    let mut out = BytesMut::with_capacity(12);
    out.put_slice(&START_STANDARD);
    out.put_u8(0);
    out.put_u8(protocol);
    out.put_slice(&bcd_time);
    out.put_slice(&STOP);
    out.freeze()
}

/// A text command to the device (0x80), e.g. `"WHERE#"` or `"RELAY,1#"`;
/// the device answers with 0x15 or 0x21 carrying the same `server_flag`.
///
/// # Panics
/// If the command is longer than 240 bytes.
pub fn command(server_flag: u32, text: &str, serial: u16) -> Bytes {
    let len = u8::try_from(text.len() + 4)
        .ok()
        .filter(|&l| l <= 244)
        .expect("command longer than 240 bytes");
    let mut content = Vec::with_capacity(text.len() + 7);
    content.push(len);
    content.extend_from_slice(&server_flag.to_be_bytes());
    content.extend_from_slice(text.as_bytes());
    content.extend_from_slice(&[0x00, 0x02]); // language: English
    frame(msg::COMMAND_0, &content, serial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn login_frame_matches_a_real_device() {
        assert_eq!(
            hex::encode(login("352887071911998", 4)),
            "78780d010352887071911998000479d00d0a"
        );
    }

    #[test]
    fn login_ack_bytes() {
        // The answer in Concox's GT06 protocol document.
        assert_eq!(hex::encode(login_ack(1)), "787805010001d9dc0d0a");
    }

    #[test]
    fn heartbeat_frame() {
        let hb = heartbeat(
            &TerminalStatus {
                ignition: true,
                ..TerminalStatus::default()
            },
            7,
        );
        assert_eq!(hex::encode(&hb[..9]), "78780a134206040002");
    }

    #[test]
    fn time_and_address_answers() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 5).unwrap();
        let bytes = time_response(t);
        assert_eq!(hex::encode(&bytes[..10]), "78780b8a1805010c1e05");
        assert_eq!(&bytes[10..12], &[0, 0]);
        let bytes = address_response();
        assert_eq!(&bytes[..5], &[0x79, 0x79, 0x00, 0x15, 0x97]);
        assert_eq!(
            hex::encode(wifi_ack(0x17, [0x19, 1, 0x19, 0x10, 0x54, 0x36])),
            "78780017190119105436 0d0a".replace(' ', "")
        );
    }

    #[test]
    #[should_panic(expected = "IMEI")]
    fn login_refuses_non_digits() {
        login("12345abc", 1);
    }
}
