//! GPS103 messages to records.
//!
//! The regular layout after the IMEI is
//! `keyword, local date-time, rfid/phone, F|L, …`: `F` is followed by the UTC
//! time, validity, coordinates (hemispheres before or after), speed in
//! knots, course, altitude, ignition, door, two fuel levels and a
//! temperature, each optional from the speed on; `L` (no GPS) by the LAC and
//! CID of the serving cell. The device's local date-time gives the date and
//! the UTC time of day the fix time, corrected by the difference between the
//! two times (the device's time zone), as Traccar does.

use chrono::{Duration, NaiveDate};
use serde_json::json;

use crate::text::{self, coordinate, digits, int, number, signed_number, KNOTS_TO_KMH};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::message::{Data, Message};
use super::NAME;

pub(crate) fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let record = match Message::parse(frame).map_err(ParseError::Invalid)? {
        Message::Login { .. } => Record::Login(DeviceMessage::new(ctx, NAME)),
        Message::Heartbeat { .. } => Record::Heartbeat(DeviceMessage::new(ctx, NAME)),
        Message::Data(d) => data(&d, ctx)?,
    };
    Ok(vec![record])
}

fn data(d: &Data, ctx: &ParseContext) -> Result<Record, ParseError> {
    let keyword = d.fields.first().copied().unwrap_or_default();
    if keyword.starts_with("vr") {
        return Err(ParseError::Unsupported("GPS103 photo data".into()));
    }
    if keyword == "OBD" {
        return obd(&d.fields, ctx);
    }
    if d.alternative {
        return alternative(&d.fields, ctx);
    }
    regular(&d.fields, ctx)
}

/// Traccar's alarm for a keyword.
fn alarm(keyword: &str) -> Option<&'static str> {
    if keyword.starts_with("T:") {
        return Some("temperature");
    }
    if keyword.starts_with("oil") {
        return Some("fuelLeak");
    }
    Some(match keyword {
        "help me" => "sos",
        "low battery" => "lowBattery",
        "stockade" => "geofence",
        "move" => "movement",
        "speed" => "overspeed",
        "door alarm" => "door",
        "ac alarm" => "powerCut",
        "accident alarm" => "accident",
        "sensor alarm" => "vibration",
        "bonnet alarm" => "bonnet",
        "footbrake alarm" => "footBrake",
        "DTC" => "fault",
        _ => return None,
    })
}

/// The attributes a keyword gives: alarm, ignition, temperature, fuel, or
/// the keyword itself as `event`.
fn keyword_attributes(keyword: &str, rfid: &str, set: &mut dyn FnMut(&str, serde_json::Value)) {
    let alarm = alarm(keyword);
    if let Some(alarm) = alarm {
        set("alarm", alarm.into());
    }
    if keyword == "help me" || keyword.starts_with("vt") {
    } else if keyword == "acc on" || keyword == "acc off" {
        set("ignition", (keyword == "acc on").into());
    } else if let Some(t) = keyword.strip_prefix("T:").and_then(signed_number) {
        set("temp1", t.into());
    } else if let Some(f) = keyword.strip_prefix("oil ").and_then(number) {
        set("fuel", f.into());
    } else if alarm.is_none() && !keyword.is_empty() && keyword != "tracker" {
        set("event", keyword.into());
    }
    if keyword == "rfid" && !rfid.is_empty() {
        set("driverUniqueId", rfid.into());
    }
}

/// The device's local date and time (`yymmddHHMM[SS]`, possibly written
/// `yy/mm/dd HH:MM`).
fn local_time(s: &str) -> Option<(NaiveDate, u32, u32, u32)> {
    let compact: String = s
        .chars()
        .filter(|c| !matches!(c, '/' | ' ' | ':'))
        .collect();
    if !digits(&compact) || !(compact.len() == 10 || compact.len() == 12) {
        return None;
    }
    let n = |i: usize| compact[i..i + 2].parse::<u32>().ok();
    let date = text::date_yymmdd(&compact[..6])?;
    let seconds = if compact.len() == 12 { n(10)? } else { 0 };
    Some((date, n(6)?, n(8)?, seconds))
}

fn regular(f: &[&str], ctx: &ParseContext) -> Result<Record, ParseError> {
    let get = |i: usize| f.get(i).copied().unwrap_or_default();
    let (keyword, local, rfid) = (get(0), get(1), get(2));
    match get(3) {
        "F" => {}
        "L" => {
            let mut m = DeviceMessage::new(ctx, NAME);
            if let Some((date, h, mi, s)) = local_time(local) {
                let offset = Duration::seconds(i64::from(h * 3600 + mi * 60 + s));
                m.time = text::utc_at(date, offset);
            }
            keyword_attributes(keyword, rfid, &mut |k, v| {
                m.attributes.insert(k.to_owned(), v);
            });
            let hex = |s: &str| i64::from_str_radix(s, 16).ok().filter(|_| !s.is_empty());
            if let (Some(lac), Some(cid)) = (hex(get(6)), hex(get(8))) {
                m.attributes.insert(
                    "network".into(),
                    json!({ "cellTowers": [{ "locationAreaCode": lac, "cellId": cid }] }),
                );
            }
            return Ok(Record::Status(m));
        }
        other => {
            return Err(ParseError::Invalid(format!(
                "expected F (GPS) or L (no GPS), got {other:?}"
            )))
        }
    }
    let (date, local_h, local_m, local_s) = local_time(local)
        .ok_or_else(|| ParseError::Invalid(format!("bad local date-time {local:?}")))?;
    // UTC time of day, when given (`hhmmss[.sss]`; some firmwares send other numbers).
    let utc = get(4)
        .split('.')
        .next()
        .filter(|t| t.len() == 6 && digits(t))
        .and_then(text::time_hhmmss);
    let seconds = |h: u32, m: u32, s: u32| i64::from(h * 3600 + m * 60 + s);
    let fix_time = match utc {
        Some(t) => {
            use chrono::Timelike;
            let mut delta = (i64::from(local_h) - i64::from(t.hour())) * 60 + i64::from(local_m)
                - i64::from(t.minute());
            if delta <= -12 * 60 {
                delta += 24 * 60;
            } else if delta > 12 * 60 {
                delta -= 24 * 60;
            }
            text::utc_at(
                date,
                Duration::seconds(seconds(local_h, local_m, t.second()) - delta * 60),
            )
        }
        None => text::utc_at(date, Duration::seconds(seconds(local_h, local_m, local_s))),
    };
    let valid = match get(5) {
        "A" => true,
        "V" => false,
        other => return Err(ParseError::Invalid(format!("bad validity {other:?}"))),
    };
    // Coordinates, with hemispheres before or after the values.
    let mut i = 6;
    let hemisphere = |i: &mut usize, letters: [&str; 2], empty_ok: bool| -> Option<&str> {
        let h = get(*i);
        if h == letters[0] || h == letters[1] || (empty_ok && h.is_empty() && *i < f.len()) {
            *i += 1;
            Some(h)
        } else {
            None
        }
    };
    let lat_before = hemisphere(&mut i, ["N", "S"], false);
    let lat = get(i);
    i += 1;
    let lat_after = hemisphere(&mut i, ["N", "S"], false);
    let lon_before = hemisphere(&mut i, ["E", "W"], false);
    let lon = get(i);
    i += 1;
    let lon_after = hemisphere(&mut i, ["E", "W"], true);
    let lat_h = lat_after.or(lat_before).unwrap_or("N");
    let lon_h = lon_after
        .or(lon_before)
        .filter(|h| !h.is_empty())
        .unwrap_or("E");
    let latitude = coordinate(lat, lat_h)
        .filter(|_| lat.contains('.'))
        .ok_or_else(|| ParseError::Invalid(format!("bad latitude {lat:?}")))?;
    let longitude = coordinate(lon, lon_h)
        .filter(|_| lon.contains('.'))
        .ok_or_else(|| ParseError::Invalid(format!("bad longitude {lon:?}")))?;

    let mut p = Position::new(&ctx.device_id, NAME, fix_time);
    p.valid = valid;
    p.latitude = latitude;
    p.longitude = longitude;
    p.speed = number(get(i)).unwrap_or(0.0) * KNOTS_TO_KMH;
    p.course = number(get(i + 1)).unwrap_or(0.0);
    p.altitude = signed_number(get(i + 2)).unwrap_or(0.0);
    keyword_attributes(keyword, rfid, &mut |k, v| {
        p.attributes.insert(k.to_owned(), v);
    });
    let flag = |s: &str| match s {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    };
    if let Some(on) = flag(get(i + 3)) {
        p.set("ignition", on);
    }
    if let Some(open) = flag(get(i + 4)) {
        p.set("door", open);
    }
    let percent = |s: &str| s.strip_suffix('%').and_then(number);
    if let Some(v) = percent(get(i + 5)) {
        p.set("fuel1", v);
    }
    if let Some(v) = percent(get(i + 6)) {
        p.set("fuel2", v);
    }
    let temp = get(i + 7);
    if let Some(t) = int(temp.strip_prefix('+').unwrap_or(temp)) {
        p.set("temp1", t);
    }
    Ok(Record::Position(p))
}

/// `OBD,yymmddHHMMSS,odometer,fuel instant,fuel average,hours,speed,load%,
/// coolant,throttle%,rpm,battery,dtc…`: a status record (no fix in it).
fn obd(f: &[&str], ctx: &ParseContext) -> Result<Record, ParseError> {
    let get = |i: usize| f.get(i).copied().unwrap_or_default();
    let stamp = get(1);
    if stamp.len() != 12 || !digits(stamp) {
        return Err(ParseError::Invalid(format!("OBD time {stamp:?}")));
    }
    let date = text::date_yymmdd(&stamp[..6]);
    let time = text::time_hhmmss(&stamp[6..]);
    let (Some(date), Some(time)) = (date, time) else {
        return Err(ParseError::Invalid(format!("OBD time {stamp:?}")));
    };
    let mut m = DeviceMessage::new(ctx, NAME);
    m.time = text::utc(date, time);
    let percent = |s: &str| s.strip_suffix('%').and_then(number);
    if let Some(v) = int(get(2)) {
        m.set("odometer", v);
    }
    if let Some(v) = number(get(4)) {
        m.set("fuelConsumption", v);
    }
    if let Some(v) = int(get(5)).and_then(|h| h.checked_mul(3_600_000)) {
        m.set("hours", v);
    }
    if let Some(v) = int(get(6)) {
        m.set("obdSpeed", v);
    }
    if let Some(v) = percent(get(7)) {
        m.set("engineLoad", v);
    }
    let coolant = get(8);
    if let Some(v) = int(coolant.strip_prefix('+').unwrap_or(coolant)) {
        m.set("coolantTemp", v);
    }
    if let Some(v) = percent(get(9)) {
        m.set("throttle", v);
    }
    if let Some(v) = int(get(10)) {
        m.set("rpm", v);
    }
    if let Some(v) = number(get(11)) {
        m.set("battery", v);
    }
    let dtcs: Vec<&str> = f
        .get(12..)
        .unwrap_or_default()
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if !dtcs.is_empty() {
        m.set("dtcs", dtcs.join(" "));
    }
    Ok(Record::Status(m))
}

/// The alternative layout (ends with `*`): `name,event,sensor id,sensor
/// voltage,hhmmss,ddmmyy,rssi,gps status,lat,lon,speed km/h,course,altitude,
/// hdop,satellites,ignition,charge,error` with `-` for empty values.
fn alternative(f: &[&str], ctx: &ParseContext) -> Result<Record, ParseError> {
    if f.len() < 18 {
        return Err(ParseError::Truncated(format!(
            "alternative layout has {} fields, expected 18",
            f.len()
        )));
    }
    let present = |s: &str| !s.is_empty() && !s.bytes().all(|b| b == b'-');
    let bad = |what: &str, v: &str| ParseError::Invalid(format!("bad {what} {v:?}"));
    let time = text::time_hhmmss(f[4]).ok_or_else(|| bad("time", f[4]))?;
    let date = text::date_ddmmyy(f[5]).ok_or_else(|| bad("date", f[5]))?;
    let latitude = signed_number(f[8])
        .filter(|v| v.abs() <= 90.0)
        .ok_or_else(|| bad("latitude", f[8]))?;
    let longitude = signed_number(f[9])
        .filter(|v| v.abs() <= 180.0)
        .ok_or_else(|| bad("longitude", f[9]))?;
    let mut p = Position::new(&ctx.device_id, NAME, text::utc(date, time));
    p.valid = int(f[7]).is_some_and(|s| s > 0);
    p.latitude = latitude;
    p.longitude = longitude;
    p.speed = number(f[10]).unwrap_or(0.0);
    p.course = number(f[11]).unwrap_or(0.0);
    p.altitude = signed_number(f[12]).unwrap_or(0.0);
    p.satellites = int(f[14]).and_then(|s| u32::try_from(s).ok());
    if present(f[1]) {
        p.set("event", f[1]);
    }
    if present(f[2]) {
        p.set("sensorId", f[2]);
    }
    if let Some(v) = number(f[3]) {
        p.set("sensorVoltage", v);
    }
    if let Some(v) = int(f[6]) {
        p.set("rssi", v);
    }
    if let Some(v) = number(f[13]) {
        p.set("hdop", v);
    }
    if let Some(v) = int(f[15]) {
        p.set("ignition", v > 0);
    }
    if let Some(v) = int(f[16]) {
        p.set("charge", v > 0);
    }
    if present(f[17]) {
        p.set("error", f[17]);
    }
    Ok(Record::Position(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx() -> ParseContext {
        ParseContext::new(
            "359710045559474",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    fn one(frame: &str) -> Record {
        let mut records = parse(frame.as_bytes(), &ctx()).unwrap();
        assert_eq!(records.len(), 1);
        records.remove(0)
    }

    fn pos(frame: &str) -> Position {
        match one(frame) {
            Record::Position(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn time_zone_is_taken_out() {
        let p = pos("imei:359710049092324,tracker,151027025958,,F,235957.000,A,2429.5156,N,04424.5828,E,0.01,27.91,,0,0,,,;");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2015, 10, 26, 23, 59, 57).unwrap()
        );
        assert!((p.latitude - 24.49193).abs() < 1e-5);
        assert!((p.longitude - 44.40971).abs() < 1e-5);
        assert_eq!(p.course, 27.91);
        assert_eq!(p.attributes["ignition"], false);
        let p = pos("imei:359710045559474,tracker,151030080103,,F,000101.000,A,5443.3834,N,02512.9071,E,0.00,0;");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2015, 10, 30, 0, 1, 1).unwrap()
        );
    }

    #[test]
    fn keywords() {
        let p = pos("imei:359586015829802,help me,0809231429,13554900601,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,");
        assert_eq!(p.attributes["alarm"], "sos");
        let p = pos("imei:864035052942928,,241214083746,100%,F,123746.000,A,1012.63368,N,06757.59559,W,0.00,340.61;");
        assert!(p.attributes.get("event").is_none());
        assert!(p.longitude < 0.0);
        let p = pos("imei:868683026321020,tracker,181217080106,,F,080102.000,A,3227.3057,N,11649.4754,W,0.00,0,,0,0,0.00%,0,+11;");
        assert_eq!(p.attributes["temp1"], 11);
        assert_eq!(p.attributes["fuel1"], 0.0);
        let p = pos("imei:864180036029895,acc on,180508145653,,F,065645.000,A,4729.1497,N,01904.2342,E,0.00,0,,1,,0.00%,,;");
        assert_eq!(p.attributes["ignition"], true);
        let p = pos("imei:353451044508750,T:+28.0,0809231929,,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,,;");
        assert_eq!(p.attributes["alarm"], "temperature");
        assert_eq!(p.attributes["temp1"], 28.0);
        let p = pos("imei:760112011448012,001,2001151918,,F,191833.000,A,6136.6174,N,2126.9901,E,0.00,202.6,-0.1,1,,,,20;");
        assert_eq!(p.attributes["event"], "001");
        assert_eq!(p.altitude, -0.1);
    }

    #[test]
    fn odd_layouts() {
        let p = pos("imei:359710040656622,tracker,13/02/27 23:40,,F,125952.000,A,3450.9430,S,13828.6753,E,0.00,0");
        assert!(p.latitude < 0.0);
        let p = pos("imei:353552045403597,tracker,150420050648,53.0,F,0.0,A,N,5306.64155,E,00700.77848,0.0,,1.0,;");
        assert!((p.latitude - 53.11069).abs() < 1e-5);
        assert!((p.longitude - 7.01297).abs() < 1e-5);
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2015, 4, 20, 5, 6, 48).unwrap()
        );
        let p = pos(
            "imei:012497000208821,tracker,1301072224,,F,142411.077,A,2227.0739,S,06855.2912,,0,0,",
        );
        assert!(p.longitude > 0.0);
        let p = pos("imei:869039001186913,tracker,1308282156,0,F,215630.000,A,5602.11015,N,9246.30767,E,1.4,,175.9,");
        assert_eq!(p.altitude, 175.9);
        assert!((p.speed - 1.4 * 1.852).abs() < 1e-9);
    }

    #[test]
    fn without_gps() {
        match one("imei:359710049075097,help me,,,L,,,113b,,558f,,,,,0,0,,,") {
            Record::Status(m) => {
                assert_eq!(m.attributes["alarm"], "sos");
                assert_eq!(m.attributes["network"]["cellTowers"][0]["cellId"], 0x558f);
            }
            other => panic!("{other:?}"),
        }
        match one("imei:865456055519122,sensor alarm,2208011920,,L,;") {
            Record::Status(m) => assert_eq!(m.attributes["alarm"], "vibration"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn obd_is_status() {
        match one("imei:359710049090138,OBD,160629022949,51442,0.00,15.88,5632,122,40.39%,95,0.00%,2101,13.80,,,,;") {
            Record::Status(m) => {
                assert_eq!(m.attributes["odometer"], 51442);
                assert_eq!(m.attributes["rpm"], 2101);
                assert_eq!(m.attributes["battery"], 13.8);
                assert_eq!(m.attributes["engineLoad"], 40.39);
                assert_eq!(m.attributes["hours"], 5632i64 * 3_600_000);
                assert!(m.attributes.get("dtcs").is_none());
            }
            other => panic!("{other:?}"),
        }
        match one("imei:359710049049098,OBD,161003192752,1785,,,0,54,96.47%,75,20.00%,1892,0.00,P0134,P0571,,;") {
            Record::Status(m) => assert_eq!(m.attributes["dtcs"], "P0134 P0571"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        // Found by the fuzzer: engine hours of 18 digits.
        let frame = "imei:1,OBD,160629022949,1,0.00,15.88,999999999999999999,1,1%,1,1%,1,1.0,;";
        match one(frame) {
            Record::Status(m) => assert!(m.attributes.get("hours").is_none()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn alternative_layout() {
        let p = pos("imei:861359038609986,Equipo 1,---,------,----,214734,241018,26,1,-33.42317,-70.61930,067,229,0674,1.00,08,0,1,---,*");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2018, 10, 24, 21, 47, 34).unwrap()
        );
        assert_eq!(p.speed, 67.0);
        assert_eq!(p.satellites, Some(8));
        assert_eq!(p.attributes["charge"], true);
        assert!(p.attributes.get("event").is_none());
    }

    #[test]
    fn login_and_heartbeat() {
        assert!(matches!(
            one("##,imei:359586015829802,A;"),
            Record::Login(_)
        ));
        assert!(matches!(one("359586015829802;"), Record::Heartbeat(_)));
        assert!(matches!(one("imei:123451234512345,L,*"), Record::Login(_)));
        assert!(parse(b"imei:359710041100000,tracker,000000000,,X,;", &ctx()).is_err());
    }
}
