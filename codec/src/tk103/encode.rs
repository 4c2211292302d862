//! Encoders for both directions: device messages (for the simulator and the
//! round-trip tests) and the server's answers (for the session).

use bytes::Bytes;
use chrono::{Datelike, Timelike};

use crate::text::nmea;
use crate::Position;

/// The answer to a handshake: `(<id>AP01HSO)`.
pub fn handshake_ack(id: &str) -> Bytes {
    Bytes::from(format!("({id}AP01HSO)"))
}

/// The answer to a login: `(<id>AP05)`.
pub fn login_ack(id: &str) -> Bytes {
    Bytes::from(format!("({id}AP05)"))
}

/// The answer to an alarm: `(<id>AS01<type>)`.
pub fn alarm_ack(id: &str, alarm_type: char) -> Bytes {
    Bytes::from(format!("({id}AS01{alarm_type})"))
}

/// A handshake: `(<id>BP00<imei>HSO)`.
pub fn handshake(id: &str, imei: &str) -> Bytes {
    Bytes::from(format!("({id}BP00{imei}HSO)"))
}

/// The position fields shared by `BR00`, `BP05` and `BO01`: `yymmdd A|V
/// lat N|S lon E|W speed(5, km/h) hhmmss course(6) 00000000 L<odometer>`.
/// Speed is clamped to 999.9 km/h; coordinates carry four decimals of minutes.
fn fields(p: &Position, odometer: u32) -> String {
    let t = p.fix_time;
    let (lat, ns) = nmea(p.latitude, 2, 4, ['N', 'S']);
    let (lon, ew) = nmea(p.longitude, 3, 4, ['E', 'W']);
    let speed = p.speed.clamp(0.0, 999.9);
    format!(
        "{:02}{:02}{:02}{}{lat}{ns}{lon}{ew}{speed:05.1}{:02}{:02}{:02}{:06.2}{}{}000000L{odometer:08X}",
        t.year().rem_euclid(100),
        t.month(),
        t.day(),
        if p.valid { 'A' } else { 'V' },
        t.hour(),
        t.minute(),
        t.second(),
        p.course.clamp(0.0, 359.99),
        0,
        u8::from(p.attributes.get("ignition").and_then(|v| v.as_bool()) == Some(true)),
    )
}

/// A position report: `(<id>BR00…)`.
pub fn position(id: &str, p: &Position, odometer: u32) -> Bytes {
    Bytes::from(format!("({id}BR00{})", fields(p, odometer)))
}

/// A login with a position: `(<id>BP05<imei>…)`.
pub fn login(id: &str, imei: &str, p: &Position) -> Bytes {
    Bytes::from(format!("({id}BP05{imei}{})", fields(p, 0)))
}

/// An alarm with a position: `(<id>BO01<type>…)`, type `1`–`6`.
pub fn alarm(id: &str, alarm_type: char, p: &Position) -> Bytes {
    Bytes::from(format!("({id}BO01{alarm_type}{})", fields(p, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn br00_text() {
        let t = Utc.with_ymd_and_hms(2015, 10, 24, 5, 51, 48).unwrap();
        let mut p = Position::new("088047365460", "tk103", t);
        p.valid = true;
        p.latitude = -(25.0 + 55.3531 / 60.0);
        p.longitude = 28.0 + 55.3329 / 60.0;
        p.speed = 4.7;
        p.course = 276.17;
        p.set("ignition", true);
        assert_eq!(
            &position("088047365460", &p, 0x9AA3)[..],
            &b"(088047365460BR00151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3)"[..]
        );
    }
}
