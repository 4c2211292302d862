//! Encoders for both directions: device messages (for the simulator and the
//! round-trip tests) and the server's answers (for the session).

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{Datelike, Timelike};

use crate::Position;

use super::message::sum;

/// `<prefix><flag><len>,<imei>,<command>[,<data>]*XX\r\n`, where `len`
/// counts from the first `,` to the `\r\n` inclusive.
fn build(prefix: &[u8; 2], flag: u8, imei: &str, command: &str, data: &[u8]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u8(b',');
    body.put_slice(imei.as_bytes());
    body.put_u8(b',');
    body.put_slice(command.as_bytes());
    if !data.is_empty() {
        body.put_u8(b',');
        body.put_slice(data);
    }
    body.put_u8(b'*');
    let len = body.len() + 4;
    let mut out = BytesMut::with_capacity(len + 10);
    out.put_slice(prefix);
    out.put_u8(flag);
    out.put_slice(len.to_string().as_bytes());
    out.put_slice(&body);
    let checksum = sum(&out);
    out.put_slice(format!("{checksum:02X}\r\n").as_bytes());
    out.freeze()
}

/// A device message `$$…` with any data (text or binary).
pub fn message(flag: u8, imei: &str, command: &str, data: &[u8]) -> Bytes {
    build(b"$$", flag, imei, command, data)
}

/// The answer to `CCC`: `@@<flag><len>,<imei>,CCC,<records>*XX\r\n` — the
/// device deletes that many records from its cache.
pub fn ccc_ack(flag: u8, imei: &str, records: usize) -> Bytes {
    build(b"@@", flag, imei, "CCC", records.to_string().as_bytes())
}

/// The answer to `AAC`: `@@<flag><len>,<imei>,AAC,1*XX\r\n`.
pub fn aac_ack(flag: u8, imei: &str) -> Bytes {
    build(b"@@", flag, imei, "AAC", b"1")
}

/// An `AAA` position report. Speed and course are whole numbers on the
/// wire (km/h, degrees), coordinates six decimals, altitude whole metres;
/// `battery` and `power` attributes (volts) go into the hex analog field.
pub fn aaa(flag: u8, imei: &str, p: &Position, event: u16) -> Bytes {
    let t = p.fix_time;
    let volts = |key: &str, default: f64| {
        let v = p
            .attributes
            .get(key)
            .and_then(|v| v.as_f64())
            .unwrap_or(default);
        (v * 100.0).round().clamp(0.0, 65535.0) as u32
    };
    let data = format!(
        "{event},{:.6},{:.6},{:02}{:02}{:02}{:02}{:02}{:02},{},{},0,{},{},1.0,{},{},0,0|0||,0000,||||{:04X}|{:04X},",
        p.latitude,
        p.longitude,
        t.year().rem_euclid(100),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        if p.valid { 'A' } else { 'V' },
        p.satellites.unwrap_or(0),
        p.speed.round().max(0.0) as u64,
        p.course.round().rem_euclid(360.0) as u64,
        p.altitude.round() as i64,
        p.attributes.get("odometer").and_then(|v| v.as_u64()).unwrap_or(0),
        volts("battery", 4.0),
        volts("power", 12.0),
    );
    message(flag, imei, "AAA", data.as_bytes())
}

/// A `CCC` message with one 52-byte record per position.
pub fn ccc(flag: u8, imei: &str, positions: &[Position], event: u8) -> Bytes {
    let mut d = BytesMut::new();
    d.put_u16_le(0x0102); // compression protocol version
    d.put_u16_le(52);
    d.put_u32_le(positions.len() as u32);
    for p in positions {
        d.put_u8(event);
        d.put_i32_le((p.latitude * 1e6).round() as i32);
        d.put_i32_le((p.longitude * 1e6).round() as i32);
        let secs = (p.fix_time.timestamp() - 946_684_800).clamp(0, i64::from(u32::MAX));
        d.put_u32_le(secs as u32);
        d.put_u8(u8::from(p.valid));
        d.put_u8(p.satellites.unwrap_or(0).min(255) as u8);
        d.put_u8(0); // GSM signal
        d.put_u16_le(p.speed.round().clamp(0.0, 65535.0) as u16);
        d.put_u16_le(p.course.round().rem_euclid(360.0) as u16);
        d.put_u16_le(10); // HDOP 1.0
        d.put_u16_le(p.altitude.round().clamp(0.0, 65535.0) as u16);
        d.put_u32_le(0); // odometer
        d.put_u32_le(0); // runtime
        d.put_slice(&[0; 8]); // mcc, mnc, lac, cell
        d.put_u16_le(0); // status
        d.put_u16_le(0); // adc1
        d.put_u16_le(400); // battery, 1/100 V
        d.put_u16_le(0); // power
        d.put_u32_le(0); // geofence
    }
    message(flag, imei, "CCC", &d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks() {
        assert_eq!(
            &aac_ack(b'z', "861451040910625")[..],
            b"@@z27,861451040910625,AAC,1*0B\r\n"
        );
        assert_eq!(
            &ccc_ack(b'X', "369800014090021", 12)[..],
            b"@@X28,369800014090021,CCC,12*17\r\n"
        );
        assert_eq!(
            &message(b'u', "864606044993987", "D82", b"0")[..],
            b"$$u27,864606044993987,D82,0*D5\r\n"
        );
    }
}
