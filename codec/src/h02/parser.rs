//! H02 messages to records. Text layouts follow the HuaSunTeK/Sinotrack
//! documents and what real devices send (Traccar's captures): several
//! coordinate spellings, an optional battery field before the date, optional
//! sim information after it, and a status word whose bits carry alarms and
//! ignition. Speeds are knots on the wire, km/h in the output.

use chrono::NaiveTime;
use serde_json::{Map, Value};

use crate::text::{self, coordinate, digits, hex_of_len, int, number, KNOTS_TO_KMH};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::message::{Message, Text};
use super::NAME;

pub(crate) fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    match Message::parse(frame).map_err(ParseError::Invalid)? {
        Message::Binary(b) => binary(b, ctx).map(|p| vec![Record::Position(p)]),
        Message::Other => Err(ParseError::Unsupported("H02 'X' message".into())),
        Message::Text(t) => text_message(&t, ctx),
    }
}

fn text_message(t: &Text, ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let record = match t.kind {
        "V0" | "HTBT" => {
            let mut m = DeviceMessage::new(ctx, NAME);
            if let Some(level) = t.fields.first().and_then(|f| int(f)) {
                m.set("batteryLevel", level);
            }
            Record::Heartbeat(m)
        }
        "NBR" => Record::Status(nbr(&t.fields, ctx)?),
        "LINK" => Record::Status(link(&t.fields, ctx)?),
        "V3" => Record::Status(v3(&t.fields, ctx)?),
        "VP1" => vp1(&t.fields, ctx)?,
        "V4" => v4(&t.fields, ctx)?,
        _ => match position(&t.fields, ctx) {
            Ok(p) => Record::Position(p),
            Err(e) => no_fix(&t.fields, ctx).ok_or(ParseError::Invalid(e))?,
        },
    };
    Ok(vec![record])
}

/// Alarm, ignition and the raw status word, from the status bits (active low).
fn status(attributes: &mut Map<String, Value>, word: u32) {
    let bit = |n: u32| word & (1 << n) != 0;
    let alarm = if !bit(0) {
        Some("vibration")
    } else if !bit(1) || !bit(18) {
        Some("sos")
    } else if !bit(2) {
        Some("overspeed")
    } else if !bit(19) {
        Some("powerCut")
    } else {
        None
    };
    if let Some(alarm) = alarm {
        attributes.insert("alarm".into(), alarm.into());
    }
    attributes.insert("ignition".into(), bit(10).into());
    attributes.insert("status".into(), word.into());
}

fn status_word(s: &str) -> Option<u32> {
    hex_of_len(s, 8)
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

fn hhmmss(s: &str) -> Result<Option<chrono::Duration>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    text::lenient_hhmmss(s)
        .map(Some)
        .ok_or_else(|| format!("bad time {s:?}"))
}

/// A text position: the fields after the type, starting with the time.
fn position(f: &[&str], ctx: &ParseContext) -> Result<Position, String> {
    let get = |i: usize| f.get(i).copied().ok_or("message too short for a position");
    let time = hhmmss(get(0)?)?;
    let valid = match get(1)? {
        "A" => true,
        "" | "B" | "V" => false,
        s if digits(s) => true, // a coding scheme instead of a validity flag
        s => return Err(format!("bad validity {s:?}")),
    };
    let latitude = coordinate(get(2)?, get(3)?).ok_or("bad latitude")?;
    let longitude = coordinate(get(4)?, get(5)?).ok_or("bad longitude")?;
    let speed = number(get(6)?).ok_or("bad speed")?;
    let course = match get(7)? {
        "" => 0.0,
        s => number(s).ok_or("bad course")?,
    };
    let rest = f.get(8..).unwrap_or_default();
    // An optional battery field before the date.
    let (date, rest) = match rest {
        [battery, date, tail @ ..] if digits(battery) && battery.len() != 6 && date.len() == 6 => {
            (Some(*date), tail)
        }
        [date, tail @ ..] if date.is_empty() || date.len() == 6 => {
            (Some(*date).filter(|d| !d.is_empty()), tail)
        }
        [] => (None, rest),
        [other, ..] => return Err(format!("bad date {other:?}")),
    };
    let fix_time = match date {
        Some(d) => {
            let date = text::date_ddmmyy(d).ok_or_else(|| format!("bad date {d:?}"))?;
            text::utc_at(date, time.unwrap_or_default())
        }
        // No date: the device gave none, the message is from now.
        None => ctx.received_at,
    };
    let mut p = Position::new(&ctx.device_id, NAME, fix_time);
    p.valid = valid;
    p.latitude = latitude;
    p.longitude = longitude;
    p.speed = speed * KNOTS_TO_KMH;
    p.course = course;
    trailer(rest, &mut p);
    Ok(p)
}

/// What follows the date: optional sim information (three fields), the
/// status word, then either odometer, temperature, fuel, altitude, LAC and
/// CID, or free data (`io1`, `io2`, …).
fn trailer(rest: &[&str], p: &mut Position) {
    let at = match rest {
        [first, ..] if status_word(first).is_some() => 0,
        [_, _, _, fourth, ..] if status_word(fourth).is_some() => 3,
        _ => return,
    };
    if let Some(word) = status_word(rest[at]) {
        status(&mut p.attributes, word);
    }
    let tail = &rest[at + 1..];
    if let [odometer, temp, fuel, altitude, lac, cid] = tail {
        let lac_cid = (
            i64::from_str_radix(lac, 16).ok(),
            i64::from_str_radix(cid, 16).ok(),
        );
        if let (Some(odo), Some(t), true, Some(fuel), Some(alt), (Some(lac), Some(cid))) = (
            int(odometer),
            int(temp),
            fuel.contains('.'),
            number(fuel),
            int(altitude),
            lac_cid,
        ) {
            p.set("odometer", odo);
            p.set("temp1", t);
            p.set("fuel", fuel);
            p.altitude = alt as f64;
            let _ = (lac, cid); // LAC/CID without a country code: no tower to report
            return;
        }
    }
    for (i, value) in tail.iter().enumerate() {
        p.set(&format!("io{}", i + 1), value.trim());
    }
}

/// A message of a position layout without a fix (the device has no GPS
/// yet: empty time, latitude and longitude): a status record, never a position.
fn no_fix(f: &[&str], ctx: &ParseContext) -> Option<Record> {
    if f.len() < 8 || !f[2].is_empty() || !f[4].is_empty() {
        return None;
    }
    let mut m = DeviceMessage::new(ctx, NAME);
    if let Some(word) = f.get(9).and_then(|s| status_word(s)) {
        status(&mut m.attributes, word);
    }
    Some(Record::Status(m))
}

/// `V4,<answer>,<position fields>`: the device's answer to a command, with
/// a position. The answer may itself contain commas; the position is the
/// longest tail that reads as one.
fn v4(f: &[&str], ctx: &ParseContext) -> Result<Record, ParseError> {
    for split in (0..f.len()).rev() {
        if let Ok(mut p) = position(&f[split..], ctx) {
            p.set("result", f[..split].join(","));
            return Ok(Record::Position(p));
        }
    }
    let mut m = DeviceMessage::new(ctx, NAME);
    m.set("result", f.join(","));
    Ok(Record::CommandReply(m))
}

/// The time and date of a status message, as its time.
fn message_time(m: &mut DeviceMessage, time: &str, date: &str) -> Result<(), ParseError> {
    let t = text::lenient_hhmmss(time);
    let d = text::date_ddmmyy(date);
    match (d, t) {
        (Some(d), Some(t)) => {
            m.time = text::utc_at(d, t);
            Ok(())
        }
        _ => Err(ParseError::Invalid(format!(
            "bad time {time:?} or date {date:?}"
        ))),
    }
}

fn parse_int(s: &str, what: &str) -> Result<i64, ParseError> {
    int(s).ok_or_else(|| ParseError::Invalid(format!("bad {what} {s:?}")))
}

/// `NBR,hhmmss,mcc,mnc,delay,count,(lac,cid,rssi)…,ddmmyy,status`: cell towers.
fn nbr(f: &[&str], ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    if f.len() < 7 {
        return Err(ParseError::Truncated("NBR message".into()));
    }
    let mcc = parse_int(f[1], "mcc")?;
    let mnc = parse_int(f[2], "mnc")?;
    let mut cells = Vec::new();
    let mut at = 5;
    while at + 1 < f.len()
        && !(text::date_ddmmyy(f[at]).is_some() && status_word(f[at + 1]).is_some())
    {
        let [lac, cid, rssi] = f
            .get(at..at + 3)
            .and_then(|c| <[&str; 3]>::try_from(c).ok())
            .ok_or_else(|| ParseError::Truncated("NBR cell list".into()))?;
        cells.push(text::cell(
            mcc,
            mnc,
            parse_int(lac, "lac")?,
            parse_int(cid, "cid")?,
            Some(parse_int(rssi, "rssi")?),
        ));
        at += 3;
    }
    let word = f
        .get(at + 1)
        .and_then(|s| status_word(s))
        .ok_or_else(|| ParseError::Invalid("NBR without date and status".into()))?;
    let mut m = DeviceMessage::new(ctx, NAME);
    message_time(&mut m, f[0], f[at])?;
    status(&mut m.attributes, word);
    text::set_cells(&mut m.attributes, cells);
    Ok(m)
}

/// `LINK,hhmmss,rssi,satellites,battery,steps,turnovers,ddmmyy,status`.
fn link(f: &[&str], ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    if f.len() < 8 {
        return Err(ParseError::Truncated("LINK message".into()));
    }
    let mut m = DeviceMessage::new(ctx, NAME);
    message_time(&mut m, f[0], f[6])?;
    for (key, value) in [
        ("rssi", f[1]),
        ("sat", f[2]),
        ("batteryLevel", f[3]),
        ("steps", f[4]),
        ("turnovers", f[5]),
    ] {
        m.set(key, parse_int(value, key)?);
    }
    let word = status_word(f[7]).ok_or_else(|| ParseError::Invalid("LINK status".into()))?;
    status(&mut m.attributes, word);
    Ok(m)
}

/// `V3,hhmmss,<mcc><mnc>,count,(lac,cid,rssi,…)…,battery,reboot,X,ddmmyy,status`.
fn v3(f: &[&str], ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    let n = f.len();
    if n < 8 || f[n - 3] != "X" {
        return Err(ParseError::Invalid("V3 message layout".into()));
    }
    let operator = f[1];
    if operator.len() < 4 || !digits(operator) {
        return Err(ParseError::Invalid(format!("V3 operator {operator:?}")));
    }
    let mcc = parse_int(&operator[..3], "mcc")?;
    let mnc = parse_int(&operator[3..], "mnc")?;
    let count = parse_int(f[2], "count")?;
    let cells_fields = &f[3..n - 5];
    let mut cells = Vec::new();
    for (i, cell) in cells_fields.chunks(4).enumerate() {
        if i as i64 >= count {
            break;
        }
        if let [lac, cid, ..] = cell {
            cells.push(text::cell(
                mcc,
                mnc,
                parse_int(lac, "lac")?,
                parse_int(cid, "cid")?,
                None,
            ));
        }
    }
    let mut m = DeviceMessage::new(ctx, NAME);
    message_time(&mut m, f[0], f[n - 2])?;
    let word = status_word(f[n - 1]).ok_or_else(|| ParseError::Invalid("V3 status".into()))?;
    status(&mut m.attributes, word);
    text::set_cells(&mut m.attributes, cells);
    Ok(m)
}

/// `VP1,A,lat,N,lon,E,speed,course,ddmmyy` (a position without a time of
/// day) or `VP1,V,mcc,mnc,lac,cid,rssiYlac,cid,rssi…` (cell towers).
fn vp1(f: &[&str], ctx: &ParseContext) -> Result<Record, ParseError> {
    match f.first().copied() {
        Some("V") if f.len() >= 4 => {
            let mcc = parse_int(f[1], "mcc")?;
            let mnc = parse_int(f[2], "mnc")?;
            let mut cells = Vec::new();
            for cell in f[3..].join(",").split('Y') {
                let values: Vec<&str> = cell.split(',').collect();
                let [lac, cid, rssi] = values[..] else {
                    return Err(ParseError::Invalid(format!("VP1 cell {cell:?}")));
                };
                cells.push(text::cell(
                    mcc,
                    mnc,
                    parse_int(lac, "lac")?,
                    parse_int(cid, "cid")?,
                    Some(parse_int(rssi, "rssi")?),
                ));
            }
            let mut m = DeviceMessage::new(ctx, NAME);
            text::set_cells(&mut m.attributes, cells);
            Ok(Record::Status(m))
        }
        Some("A" | "B") if f.len() >= 8 => {
            let latitude = coordinate(f[1], f[2]);
            let longitude = coordinate(f[3], f[4]);
            let date = text::date_ddmmyy(f[7]);
            let (Some(latitude), Some(longitude), Some(date)) = (latitude, longitude, date) else {
                return Err(ParseError::Invalid("VP1 position".into()));
            };
            let mut p = Position::new(&ctx.device_id, NAME, text::utc(date, NaiveTime::MIN));
            p.valid = true;
            p.latitude = latitude;
            p.longitude = longitude;
            p.speed = number(f[5]).unwrap_or(0.0) * KNOTS_TO_KMH;
            p.course = number(f[6]).unwrap_or(0.0);
            Ok(Record::Position(p))
        }
        _ => Err(ParseError::Invalid("VP1 layout".into())),
    }
}

/// Two BCD digits of `b`, or `None` if a nibble is above 9.
fn bcd(b: u8) -> Option<u32> {
    let (hi, lo) = (u32::from(b >> 4), u32::from(b & 0x0f));
    (hi <= 9 && lo <= 9).then_some(hi * 10 + lo)
}

/// BCD digits `from..to` (nibble indexes) of `bytes` as a number.
fn bcd_digits(bytes: &[u8], from: usize, to: usize) -> Option<u64> {
    let mut value = 0u64;
    for i in from..to {
        let b = *bytes.get(i / 2)?;
        let digit = if i % 2 == 0 { b >> 4 } else { b & 0x0f };
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    Some(value)
}

/// Traccar's reading of the binary battery byte, in percent.
fn battery_level(raw: u8) -> Option<u32> {
    match raw {
        0 => None,
        1..=3 => Some((u32::from(raw) - 1) * 10),
        4..=6 => Some((u32::from(raw) - 1) * 20),
        7..=100 => Some(raw.into()),
        0xf1..=0xf6 => Some(u32::from(raw) - 0xf0),
        _ => None,
    }
}

/// A binary position (see `message`).
fn binary(b: &[u8], ctx: &ParseContext) -> Result<Position, ParseError> {
    let bad = |what: &str| ParseError::Invalid(format!("binary message: bad {what}"));
    // Nibble offsets within the message.
    let n = |from: usize, to: usize| bcd_digits(b, from, to);
    let byte = |i: usize| b.get(i).copied().and_then(bcd);
    let (h, mi, s) = (byte(6), byte(7), byte(8));
    let (d, mo, y) = (byte(9), byte(10), byte(11));
    let time = match (h, mi, s, d, mo, y) {
        (Some(h), Some(mi), Some(s), Some(d), Some(mo), Some(y)) => {
            let date =
                chrono::NaiveDate::from_ymd_opt(2000 + y as i32, mo, d).ok_or(bad("date"))?;
            let time = NaiveTime::from_hms_opt(h, mi, s).ok_or(bad("time"))?;
            text::utc(date, time)
        }
        _ => return Err(bad("time")),
    };
    // Latitude DD MM.MMMM (bytes 12..16), longitude DDD MM.MMMM (bytes 17..21½).
    let lat_deg = n(24, 26).ok_or(bad("latitude"))? as f64;
    let lat_min = n(26, 32).ok_or(bad("latitude"))? as f64 / 10_000.0;
    let lon_deg = n(34, 37).ok_or(bad("longitude"))? as f64;
    let lon_min = n(37, 43).ok_or(bad("longitude"))? as f64 / 10_000.0;
    let flags = b[21] & 0x0f;
    let speed = n(44, 47).ok_or(bad("speed"))? as f64;
    let course = f64::from(b[23] & 0x0f) * 100.0 + n(48, 50).ok_or(bad("course"))? as f64;
    let word = u32::from_be_bytes([b[25], b[26], b[27], b[28]]);

    let mut p = Position::new(&ctx.device_id, NAME, time);
    p.valid = flags & 0x02 != 0;
    let lat = lat_deg + lat_min / 60.0;
    let lon = lon_deg + lon_min / 60.0;
    p.latitude = if flags & 0x04 != 0 { lat } else { -lat };
    p.longitude = if flags & 0x08 != 0 { lon } else { -lon };
    p.speed = speed * KNOTS_TO_KMH;
    p.course = course;
    if let Some(level) = battery_level(b[16]) {
        p.set("batteryLevel", level);
    }
    status(&mut p.attributes, word);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx() -> ParseContext {
        ParseContext::new(
            "4210051415",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    fn one(frame: &[u8]) -> Record {
        let mut records = parse(frame, &ctx()).unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        records.remove(0)
    }

    fn pos(frame: &[u8]) -> Position {
        match one(frame) {
            Record::Position(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v1_position() {
        let p = pos(b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2015, 12, 22, 16, 45, 49).unwrap()
        );
        assert!(p.valid);
        assert!((p.latitude - 9.93978).abs() < 1e-5);
        assert!((p.longitude + 84.11178).abs() < 1e-5);
        assert_eq!(p.attributes["status"], 0xFFFF_FBFFu32);
        assert_eq!(p.attributes["ignition"], false);
        assert_eq!(p.attributes["io1"], "712");
        assert!(p.attributes.get("alarm").is_none());
    }

    #[test]
    fn speed_is_converted_from_knots() {
        let p =
            pos(b"*HQ,8161289587,V1,181933,A,5444.3994,N,02516.3844,E,10.00,090,090317,FFFFBBFF#");
        assert!((p.speed - 18.52).abs() < 1e-9);
        assert_eq!(p.course, 90.0);
    }

    #[test]
    fn variants() {
        // Battery before the date, extra data after the status.
        let p = pos(b"*HQ,4210209006,V1,054048,A,2828.2297,N,07733.4332,E,000.5,047,4,080918,EEE7FBDF,4261193,0#");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2018, 9, 8, 5, 40, 48).unwrap()
        );
        // A coding scheme instead of the validity; five decimals.
        let p = pos(b"*HQ,353505221264507,V2,100220,0,5238.26259,N,00507.33983,E,0.25,0,280917,FFFFFFFF,cc,28,  db,d75b#");
        assert!(p.valid);
        // Sim information before the status.
        let p = pos(b"*HQ,4109179024,V19,103732,V,3853.2770,S,06205.8678,W,000.00,000,100217,,5492932630888,8954314165044716555?,FFFFFBFF#");
        assert_eq!(p.attributes["status"], 0xFFFF_FBFFu32);
        // Signed degree-minute spelling.
        let p =
            pos(b"*HQ,1451316485,V1,121557,A,-23-35.3408,S,-48-2.8926,W,0.1,158,241115,FFFFFFFF#");
        assert!((p.latitude + 23.58901).abs() < 1e-5);
        // Empty validity: not valid.
        assert!(!pos(b"*HQ,355488020119695,V1,050418,,2827.61232,N,07703.84822,E,0.00,0,031015,FFFEFBFF#").valid);
        // Odometer, temperature, fuel, altitude, LAC, CID.
        let p = pos(b"*HQ,1,V1,050418,A,2827.61232,N,07703.84822,E,0.00,0,031015,FFFFFBFF,1234,-5,12.5,230,1a,2b#");
        assert_eq!(p.attributes["odometer"], 1234);
        assert_eq!(p.attributes["temp1"], -5);
        assert_eq!(p.altitude, 230.0);
    }

    #[test]
    fn alarms() {
        let alarm = |word: &str| {
            let frame =
                format!("*HQ,1,V1,050418,A,2827.61232,N,07703.84822,E,0.00,0,031015,{word}#");
            pos(frame.as_bytes()).attributes.get("alarm").cloned()
        };
        assert_eq!(alarm("FFFFFFFE"), Some("vibration".into()));
        assert_eq!(alarm("FFFBFFFF"), Some("sos".into()));
        assert_eq!(alarm("FFFFFFFB"), Some("overspeed".into()));
        assert_eq!(alarm("FFF7FFFF"), Some("powerCut".into()));
        assert_eq!(alarm("FFFFFFFF"), None);
    }

    #[test]
    fn command_answer_with_position() {
        let p = pos(b"*TH,2020916012,V4,S20,DONE,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,F7FFFBFF#");
        assert_eq!(p.attributes["result"], "S20,DONE,130305");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2002, 9, 22, 5, 3, 16).unwrap()
        );
    }

    #[test]
    fn no_fix_is_not_a_position() {
        match one(b"*HQ,353505510948929,V1,,V,,N,,E,0.00,0,,FFFFF7FF,f0,a,11a0,c0c6#") {
            Record::Status(m) => assert_eq!(m.attributes["status"], 0xFFFF_F7FFu32),
            other => panic!("{other:?}"),
        }
        assert!(parse(
            b"*HQ,1,V1,000000,V,0.0000,0,0.0000,0,0.00,0.00,000000,ffffffff#",
            &ctx()
        )
        .is_err());
        assert!(parse(b"*HQ,356327080425330,XT,1,100#", &ctx()).is_err());
    }

    #[test]
    fn heartbeats() {
        match one(b"*HQ,135790246811220,HTBT,100#") {
            Record::Heartbeat(m) => assert_eq!(m.attributes["batteryLevel"], 100),
            other => panic!("{other:?}"),
        }
        assert!(matches!(one(b"*HQ,1,V0#"), Record::Heartbeat(_)));
    }

    #[test]
    fn cell_towers() {
        match one(b"*HQ,7401004662,NBR,160453,234,10,0,2,21580,27766,-67,21580,27766,-67,291019,FFFFFBFF,6#") {
            Record::Status(m) => {
                let cells = m.attributes["network"]["cellTowers"].as_array().unwrap();
                assert_eq!(cells.len(), 2);
                assert_eq!(cells[0]["mobileCountryCode"], 234);
                assert_eq!(cells[0]["signalStrength"], -67);
                assert_eq!(m.time, Utc.with_ymd_and_hms(2019, 10, 29, 16, 4, 53).unwrap());
            }
            other => panic!("{other:?}"),
        }
        match one(b"*HQ,353111080001055,V3,044855,28403,01,001450,011473,158,-62,0292,0,X,030817,FFFFFBFF#") {
            Record::Status(m) => {
                let cell = &m.attributes["network"]["cellTowers"][0];
                assert_eq!((cell["mobileCountryCode"].as_i64(), cell["mobileNetworkCode"].as_i64()), (Some(284), Some(3)));
                assert_eq!(cell["cellId"], 11473);
            }
            other => panic!("{other:?}"),
        }
        match one(b"*hq,356327081001239,VP1,V,470,002,92,3565,0Y92,19433,30Y92,1340,29#") {
            Record::Status(m) => assert_eq!(
                m.attributes["network"]["cellTowers"]
                    .as_array()
                    .unwrap()
                    .len(),
                3
            ),
            other => panic!("{other:?}"),
        }
        match one(b"*HQ,1700086468,LINK,180902,15,0,84,0,0,240517,FFFFFBFF#") {
            Record::Status(m) => {
                assert_eq!(m.attributes["rssi"], 15);
                assert_eq!(m.attributes["batteryLevel"], 84);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vp1_position() {
        let p = pos(b"*hq,356327080425330,VP1,A,2702.7245,S,15251.9311,E,0.48,0.0000,080917#");
        assert!((p.latitude + 27.04541).abs() < 1e-5);
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2017, 9, 8, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn binary_position() {
        let b = hex::decode("2441060116601245431311165035313006004318210e000000fffffbffff0024")
            .unwrap();
        let p = pos(&b);
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2016, 11, 13, 12, 45, 43).unwrap()
        );
        assert!(p.valid);
        assert!((p.latitude - (50.0 + 35.3130 / 60.0)).abs() < 1e-9);
        assert!((p.longitude - (4.0 + 31.8210 / 60.0)).abs() < 1e-9);
        assert_eq!(p.attributes["batteryLevel"], 100);
        assert_eq!(p.attributes["status"], 0xFFFF_FBFFu32);
        // Southern and western hemispheres, speed and course.
        let b = hex::decode("2427051711092133391406135002584900014337822e000000ffffffffff0000")
            .unwrap();
        let p = pos(&b);
        assert!(p.latitude > 0.0 && p.longitude > 0.0);
        let mut bad = b.clone();
        bad[6] = 0xaa;
        assert!(parse(&bad, &ctx()).is_err());
    }
}
