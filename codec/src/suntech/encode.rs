//! Device messages, for the simulator and the round-trip tests. (The server
//! never answers a Suntech device.)

use bytes::Bytes;
use chrono::{Datelike, Timelike};

use crate::Position;

/// An `SA200STT` status report (no model field, cell id `0`):
/// `SA200STT;<id>;<firmware>;yyyymmdd;hh:mm:ss;0;lat;lon;speed;course;
/// satellites;fix;odometer;power;io;mode;index\r`. Coordinates carry six
/// decimals, speed and course three and two; the `ignition` attribute is
/// the first IO digit and `odometer` (m) and `power` (V) are sent when set.
pub fn status(id: &str, p: &Position, index: u32) -> Bytes {
    let t = p.fix_time;
    let odometer = p
        .attributes
        .get("odometer")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let power = p
        .attributes
        .get("power")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let ignition = p.attributes.get("ignition").and_then(|v| v.as_bool()) == Some(true);
    Bytes::from(format!(
        "SA200STT;{id};042;{:04}{:02}{:02};{:02}:{:02}:{:02};0;{:+.6};{:+.6};{:07.3};{:06.2};{};{};{odometer};{power:.2};{}00000;1;{index}\r",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        p.latitude,
        p.longitude,
        p.speed.max(0.0),
        p.course.clamp(0.0, 359.99),
        p.satellites.unwrap_or(0),
        u8::from(p.valid),
        u8::from(ignition),
    ))
}

/// A keep-alive: `SA200ALV;<id>\r`.
pub fn keep_alive(id: &str) -> Bytes {
    Bytes::from(format!("SA200ALV;{id}\r"))
}
