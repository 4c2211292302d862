//! Encoders for both directions: device messages (for the simulator and the
//! round-trip tests) and the server's answers (for the session).

use bytes::Bytes;
use chrono::{Datelike, Timelike};

use crate::Position;

use super::message::ESCAPED;

/// A message with text content: `[<vendor>*<id>*[<index>*]<LLLL>*<content>]`,
/// the length in upper-case hex, as the vendors' documents write it.
pub fn frame(vendor: &str, id: &str, index: Option<&str>, content: &str) -> Bytes {
    let index = index.map(|i| format!("{i}*")).unwrap_or_default();
    Bytes::from(format!(
        "[{vendor}*{id}*{index}{:04X}*{content}]",
        content.len()
    ))
}

/// The server's answer to a message of `vendor`, `id` and `index`.
pub fn answer(vendor: &str, id: &str, index: Option<&str>, content: &str) -> Bytes {
    frame(vendor, id, index, content)
}

/// Binary data as it travels in content: `} [ ] , *` escaped as `}`
/// followed by 0x01…0x05. (The announced length counts the data before
/// escaping.)
pub fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for &b in data {
        match ESCAPED.iter().position(|&e| e == b) {
            Some(code) => out.extend_from_slice(&[b'}', code as u8 + 1]),
            None => out.push(b),
        }
    }
    out
}

/// A link keep with steps, tumbles and battery level (%):
/// `LK,<steps>,<tumbles>,<battery>`; `None` for the bare `LK`.
pub fn link(vendor: &str, id: &str, status: Option<(u32, u32, u8)>) -> Bytes {
    match status {
        Some((steps, tumbles, battery)) => {
            frame(vendor, id, None, &format!("LK,{steps},{tumbles},{battery}"))
        }
        None => frame(vendor, id, None, "LK"),
    }
}

/// What a position report carries besides the fix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// GSM signal, as the watch reports it (0–100).
    pub rssi: u32,
    /// Battery level, %.
    pub battery: u8,
    pub steps: u32,
    /// The 32-bit status word (alarm and state bits).
    pub flags: u32,
}

/// A position report, `kind` `UD`, `UD2`, `AL`, …: `<kind>,ddmmyy,hhmmss,
/// A|V,lat,N|S,lon,E|W,speed,course,altitude,satellites,rssi,battery,steps,
/// tumbles,status,0,0` (no cells, no WiFi). Numbers are written with as
/// many digits as they need to read back exactly; speed is km/h.
pub fn position(
    vendor: &str,
    id: &str,
    index: Option<&str>,
    kind: &str,
    p: &Position,
    status: Status,
) -> Bytes {
    let t = p.fix_time;
    let content = format!(
        "{kind},{:02}{:02}{:02},{:02}{:02}{:02},{},{},{},{},{},{},{},{},{},{},{},{},0,{:08X},0,0",
        t.day(),
        t.month(),
        t.year().rem_euclid(100),
        t.hour(),
        t.minute(),
        t.second(),
        if p.valid { 'A' } else { 'V' },
        p.latitude.abs(),
        if p.latitude < 0.0 { 'S' } else { 'N' },
        p.longitude.abs(),
        if p.longitude < 0.0 { 'W' } else { 'E' },
        p.speed.max(0.0),
        p.course.max(0.0),
        p.altitude,
        p.satellites.unwrap_or(0),
        status.rssi,
        status.battery,
        status.steps,
        status.flags,
    );
    frame(vendor, id, index, &content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn texts() {
        assert_eq!(
            &answer("SG", "8800000015", None, "LK")[..],
            b"[SG*8800000015*0002*LK]"
        );
        assert_eq!(
            &answer("ZJ", "1", Some("0034"), "JXTKR,1")[..],
            b"[ZJ*1*0034*0007*JXTKR,1]"
        );
        assert_eq!(
            &link("3G", "8800000015", Some((50, 100, 100)))[..],
            b"[3G*8800000015*000D*LK,50,100,100]"
        );
        assert_eq!(escape(b"a}[],*b"), b"a}\x01}\x02}\x03}\x04}\x05b".to_vec());
        let t = Utc.with_ymd_and_hms(2016, 7, 21, 23, 16, 1).unwrap();
        let mut p = Position::new("6105117105", "watch", t);
        p.latitude = -33.480366;
        p.longitude = 70.5;
        p.speed = 3.25;
        let status = Status {
            rssi: 100,
            battery: 34,
            steps: 0,
            flags: 0x10000,
        };
        let f = position("3G", "6105117105", None, "UD2", &p, status);
        assert_eq!(
            &f[..],
            &b"[3G*6105117105*0049*UD2,210716,231601,V,33.480366,S,70.5,E,3.25,0,0,0,100,34,0,0,00010000,0,0]"[..]
        );
    }
}
