//! Encoders for both directions: device messages (for the simulator and the
//! round-trip tests) and the server's answers (for the session).

use bytes::Bytes;
use chrono::{Datelike, Timelike};

use crate::text::{nmea, KNOTS_TO_KMH};
use crate::Position;

/// The answer to a login.
pub fn login_ack() -> Bytes {
    Bytes::from_static(b"LOAD")
}

/// The answer to a heartbeat.
pub fn heartbeat_ack() -> Bytes {
    Bytes::from_static(b"ON")
}

/// The answer to an SOS (`help me`) message.
pub fn sos_ack(imei: &str) -> Bytes {
    Bytes::from(format!("**,imei:{imei},E;"))
}

/// A login: `##,imei:<imei>,A;`.
pub fn login(imei: &str) -> Bytes {
    Bytes::from(format!("##,imei:{imei},A;"))
}

/// A heartbeat: `<imei>;`.
pub fn heartbeat(imei: &str) -> Bytes {
    Bytes::from(format!("{imei};"))
}

/// A position with GPS: `imei:<imei>,<keyword>,<yymmddHHMMSS>,,F,<hhmmss>.000,
/// A|V,<lat>,N|S,<lon>,E|W,<knots>,<course>;` with the local time equal to
/// UTC. Speed in knots with two decimals, course with two, coordinates with
/// five decimals of minutes.
pub fn position(imei: &str, keyword: &str, p: &Position) -> Bytes {
    let t = p.fix_time;
    let (lat, ns) = nmea(p.latitude, 2, 5, ['N', 'S']);
    let (lon, ew) = nmea(p.longitude, 3, 5, ['E', 'W']);
    Bytes::from(format!(
        "imei:{imei},{keyword},{:02}{:02}{:02}{:02}{:02}{:02},,F,{:02}{:02}{:02}.000,{},{lat},{ns},{lon},{ew},{:.2},{:.2};",
        t.year().rem_euclid(100),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.hour(),
        t.minute(),
        t.second(),
        if p.valid { 'A' } else { 'V' },
        p.speed / KNOTS_TO_KMH,
        p.course,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn position_text() {
        let t = Utc.with_ymd_and_hms(2008, 9, 23, 6, 29, 47).unwrap();
        let mut p = Position::new("1", "gps103", t);
        p.valid = true;
        p.latitude = 22.0 + 34.4026 / 60.0;
        p.longitude = 113.0 + 54.3277 / 60.0;
        assert_eq!(
            &position("359586015829802", "tracker", &p)[..],
            &b"imei:359586015829802,tracker,080923062947,,F,062947.000,A,2234.40260,N,11354.32770,E,0.00,0.00;"[..]
        );
    }
}
