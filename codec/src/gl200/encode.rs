//! Encoders for both directions: device messages (for the simulator and the
//! round-trip tests) and the server's answers (for the session).

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::Position;

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S").to_string()
}

/// The answer to a heartbeat: `+SACK:GTHBD,<protocol version>,<count>$`.
pub fn heartbeat_ack(version: &str, count: &str) -> Bytes {
    Bytes::from(format!("+SACK:GTHBD,{version},{count}$"))
}

/// A heartbeat: `+ACK:GTHBD,<version>,<imei>,,<send time>,<count>$`.
pub fn heartbeat(version: &str, imei: &str, sent: DateTime<Utc>, count: u16) -> Bytes {
    Bytes::from(format!(
        "+ACK:GTHBD,{version},{imei},,{},{count:04X}$",
        stamp(sent)
    ))
}

/// A fixed report with one location (`+RESP:GTFRI`), GL300-style: power,
/// report type, count, then `hdop,speed,course,altitude,longitude,latitude,
/// fix time,mcc,mnc,lac,cell,reserved`, odometer, battery level, send time,
/// count. Speed carries one decimal (km/h), course and altitude are whole
/// and one-decimal, coordinates six decimals; the `batteryLevel` attribute
/// is sent when set.
pub fn fixed_report(
    version: &str,
    imei: &str,
    p: &Position,
    sent: DateTime<Utc>,
    count: u16,
) -> Bytes {
    let battery = p
        .attributes
        .get("batteryLevel")
        .and_then(|v| v.as_u64())
        .map(|b| b.to_string())
        .unwrap_or_default();
    Bytes::from(format!(
        "+RESP:GTFRI,{version},{imei},,0,0,1,{},{:.1},{},{:.1},{:.6},{:.6},{},0460,0000,18D8,6141,00,,{battery},{},{count:04X}$",
        if p.valid { 1 } else { 0 },
        p.speed.clamp(0.0, 999.9),
        p.course.round().rem_euclid(360.0) as u32,
        p.altitude,
        p.longitude,
        p.latitude,
        stamp(p.fix_time),
        stamp(sent),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sack() {
        assert_eq!(
            &heartbeat_ack("0F0106", "3B7D")[..],
            b"+SACK:GTHBD,0F0106,3B7D$"
        );
        let t = Utc.with_ymd_and_hms(2016, 7, 27, 0, 12, 55).unwrap();
        assert_eq!(
            &heartbeat("0F0106", "862193020451183", t, 0x3b7d)[..],
            b"+ACK:GTHBD,0F0106,862193020451183,,20160727001255,3B7D$"
        );
    }
}
