//! TK103 messages to records.
//!
//! The position layout (after the command) is, in the fixed form,
//! `[digits]yymmdd A|V ddmm.mmmm N|S dddmm.mmmm E|W speed(5) hhmmss
//! course(6) charge ignition io io io fuel(3 hex) L odometer(hex) [±temp]`
//! and in the comma form `ddmmyy,A|V,lat,lon,speed,hhmmss,course[,…]`.
//! Fields are read one after the other with the widths the documents give,
//! allowing what real devices send (spaces for leading zeros, an 11-character
//! id, the course as a plain decimal). Speeds are km/h on the wire.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::text::{self, coordinate, digits, int, number};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::message::Message;
use super::NAME;

pub(crate) fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let m = Message::parse(frame).map_err(ParseError::Invalid)?;
    let record = match m.command {
        "BP00" => Record::Login(DeviceMessage::new(ctx, NAME)),
        "ZC20" => Record::Status(battery(m.body, ctx)?),
        "BZ00" => Record::Status(network(m.body, ctx)?),
        "ZC03" => Record::CommandReply(command_result(m.body, ctx)?),
        "BV00" => {
            let vin = m.body.trim();
            if vin.len() != 17 || !vin.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ParseError::Invalid(format!("VIN {vin:?}")));
            }
            let mut s = DeviceMessage::new(ctx, NAME);
            s.set("vin", vin);
            Record::Status(s)
        }
        c if c.starts_with("BS5") => {
            return Err(ParseError::Unsupported(format!(
                "{c} battery-management report (layout not documented)"
            )))
        }
        c if c.starts_with("DW5") => Record::Status(lbs_wifi(c, m.body, ctx)?),
        "BP05" if m.body.contains('{') => Record::Status(bp05_cells(m.body, ctx)?),
        c => Record::Position(position(c, m.body, m.comma, ctx)?),
    };
    Ok(vec![record])
}

/// Alarms and ignition some commands stand for.
fn command_attributes(command: &str, data: &str, attributes: &mut Map<String, Value>) {
    let alarm = match command {
        "BQ81" => match data {
            "0" => Some("lowBattery"),
            "1" => Some("overspeed"),
            "2" => Some("idle"),
            "3" => Some("hardAcceleration"),
            "4" => Some("hardBraking"),
            "5" => Some("temperature"),
            _ => None,
        },
        "BO01" => alarm_code(data.bytes().next().unwrap_or(b'0')),
        "ZC11" | "DW31" | "DW51" => Some("movement"),
        "ZC12" | "DW32" | "DW52" => Some("lowBattery"),
        "ZC13" | "DW33" | "DW53" => Some("powerCut"),
        "ZC17" | "DW37" | "DW57" => Some("removing"),
        "ZC25" | "DW3E" | "DW5E" => Some("sos"),
        "ZC26" | "DW3F" | "DW5F" => Some("tampering"),
        "ZC27" | "DW40" | "DW60" => Some("lowPower"),
        _ => None,
    };
    if let Some(alarm) = alarm {
        attributes.insert("alarm".into(), alarm.into());
    }
    match command {
        "ZC15" | "DW35" | "DW55" | "ZC29" | "DW42" | "DW62" => {
            attributes.insert("ignition".into(), true.into());
        }
        "ZC16" | "DW36" | "DW56" => {
            attributes.insert("ignition".into(), false.into());
        }
        _ => {}
    }
}

/// The alarm of a `BO01` message (its first body character).
pub(crate) fn alarm_code(code: u8) -> Option<&'static str> {
    match code {
        b'1' => Some("accident"),
        b'2' => Some("sos"),
        b'3' => Some("vibration"),
        b'4' => Some("lowspeed"),
        b'5' => Some("overspeed"),
        b'6' => Some("geofenceExit"),
        _ => None,
    }
}

/// A cursor over the body.
struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }
    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }
    /// The longest prefix of the rest whose characters satisfy `f`.
    fn run(&self, f: impl Fn(u8) -> bool) -> &'a str {
        let n = self.rest().bytes().take_while(|&b| f(b)).count();
        &self.rest()[..n]
    }
    fn take(&mut self, n: usize) -> &'a str {
        let s = &self.rest()[..n];
        self.at += n;
        s
    }
}

fn invalid(what: &str, body: &str) -> ParseError {
    let shown: String = body.chars().take(60).collect();
    ParseError::Invalid(format!("bad {what} in {shown:?}"))
}

/// A coordinate field: spaces, `d*dd.d+`, then the hemisphere letter.
fn read_coordinate(c: &mut Cursor, hemispheres: [char; 2], what: &str) -> Result<f64, ParseError> {
    let spaces = c.run(|b| b == b' ').len();
    c.take(spaces);
    let value = c.run(|b| b.is_ascii_digit() || b == b'.');
    c.take(value.len());
    let hemisphere = c
        .rest()
        .chars()
        .next()
        .filter(|h| hemispheres.contains(h))
        .ok_or_else(|| invalid(what, c.s))?;
    c.eat(hemisphere);
    c.eat(',');
    let mut buf = [0u8; 4];
    coordinate(value, hemisphere.encode_utf8(&mut buf))
        .filter(|_| value.contains('.'))
        .ok_or_else(|| invalid(what, c.s))
}

fn position(
    command: &str,
    body: &str,
    comma: bool,
    ctx: &ParseContext,
) -> Result<Position, ParseError> {
    let mut c = Cursor { s: body, at: 0 };
    let mut data = "";
    if comma && c.rest().starts_with("ALARM,") {
        // `ALARM,<type>,<n>,` before the date.
        let parts: Vec<&str> = c.rest().splitn(4, ',').collect();
        if parts.len() < 4 || parts[1].len() != 1 || !digits(parts[1]) || !digits(parts[2]) {
            return Err(invalid("alarm", body));
        }
        data = parts[1];
        c.at += parts[0].len() + parts[1].len() + parts[2].len() + 3;
    }
    // Leading digits: anything before the last six is data (an IMEI, an
    // alarm type); the last six are the date.
    let lead = c.run(|b| b.is_ascii_digit());
    if lead.len() < 6 {
        return Err(invalid("date", body));
    }
    if data.is_empty() {
        data = &lead[..lead.len() - 6];
    }
    let date = &lead[lead.len() - 6..];
    c.take(lead.len());
    c.eat(',');
    let n = |i: usize| date[i..i + 2].parse::<u32>().unwrap_or(0);
    let (year, month, day) = if comma {
        (n(4), n(2), n(0))
    } else {
        (n(0), n(2), n(4))
    };
    let date =
        text::lenient_date(2000 + year as i32, month, day).ok_or_else(|| invalid("date", body))?;
    let valid = if c.eat('A') {
        true
    } else if c.eat('V') {
        false
    } else {
        return Err(invalid("validity", body));
    };
    c.eat(',');
    let latitude = read_coordinate(&mut c, ['N', 'S'], "latitude")?;
    let longitude = read_coordinate(&mut c, ['E', 'W'], "longitude")?;

    // Speed (up to 5 characters of digits, spaces and points), optionally
    // digits and a comma, then the time: the longest speed that leaves a time.
    let speed_run = c.run(|b| b.is_ascii_digit() || b == b' ' || b == b'.');
    let (speed, time) = (1..=speed_run.len().min(5))
        .rev()
        .find_map(|len| {
            let speed = number(&speed_run[..len])?;
            let mut after = Cursor {
                s: c.s,
                at: c.at + len,
            };
            let skip = after.run(|b| b.is_ascii_digit());
            if after.rest()[skip.len()..].starts_with(',') {
                after.at += skip.len() + 1;
            }
            let time = after.run(|b| b.is_ascii_digit());
            if time.len() < 6 {
                return None;
            }
            let time = text::lenient_hhmmss(&time[..6])?;
            after.at += 6;
            Some((speed, time, after.at))
        })
        .map(|(speed, time, at)| {
            c.at = at;
            (speed, time)
        })
        .ok_or_else(|| invalid("speed or time", body))?;
    c.eat(',');

    let mut p = Position::new(&ctx.device_id, NAME, text::utc_at(date, time));
    p.valid = valid;
    p.latitude = latitude;
    p.longitude = longitude;
    p.speed = speed;
    command_attributes(command, data, &mut p.attributes);
    course_and_status(&mut c, &mut p);
    // A temperature at the very end (`+017.3`).
    let rest = c.rest();
    if let Some(tail) = rest.len().checked_sub(6).and_then(|at| rest.get(at..)) {
        if (tail.starts_with('+') || tail.starts_with('-')) && tail.as_bytes()[4] == b'.' {
            if let Some(t) = text::signed_number(tail) {
                p.set("temp1", t);
            }
        }
    }
    Ok(p)
}

/// The course and, in the long layout, charge, ignition, three I/O digits,
/// fuel and odometer; else a plain decimal course.
fn course_and_status(c: &mut Cursor, p: &mut Position) {
    let rest = c.rest();
    for width in [6, 2] {
        let Some(course) = rest.get(..width) else {
            continue;
        };
        if !course
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b' ' || b == b'.')
        {
            continue;
        }
        let Some(course) = number(course) else {
            continue;
        };
        let after = rest[width..].strip_prefix(',').unwrap_or(&rest[width..]);
        let Some(status) = after.get(..8) else {
            continue;
        };
        let b = status.as_bytes();
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        let flags_ok = matches!(b[0], b'0' | b'1')
            && matches!(b[1], b'0' | b'1')
            && status[2..].bytes().all(|x| x.is_ascii_hexdigit());
        let odometer = after[8..]
            .strip_prefix('L')
            .map(|o| &o[..o.bytes().take_while(u8::is_ascii_hexdigit).count()])
            .filter(|o| !o.is_empty());
        let (true, Some(odometer)) = (flags_ok, odometer) else {
            continue;
        };
        p.course = course;
        p.set("charge", b[0] == b'0');
        p.set("ignition", b[1] == b'1');
        let bit = |mask: u64, n: u32| i64::from(mask & (1 << n) != 0);
        let mask1 = hex(&status[2..3]).unwrap_or(0);
        p.set("in2", bit(mask1, 0));
        p.set("panic", bit(mask1, 1));
        p.set("out2", bit(mask1, 2));
        if bit(mask1, 3) == 1 {
            p.set("blocked", 1);
        }
        let mask2 = hex(&status[3..4]).unwrap_or(0);
        for i in 0..3 {
            if bit(mask2, i) == 1 {
                p.set(&format!("hs{}", 3 - i), 1);
            }
        }
        if bit(mask2, 3) == 1 {
            p.set("door", 1);
        }
        let mask3 = hex(&status[4..5]).unwrap_or(0);
        for i in 1..=3 {
            if bit(mask3, i) == 1 {
                p.set(&format!("ls{}", 3 - i + 1), 1);
            }
        }
        if let Some(fuel) = hex(&status[5..8]) {
            p.set("fuel", fuel);
        }
        if let Some(odo) = hex(odometer) {
            p.set("odometer", odo);
        }
        c.at += (rest.len() - after.len()) + 8 + 1 + odometer.len();
        return;
    }
    // A plain decimal course (`155.49`).
    let course = c.run(|b| b.is_ascii_digit() || b == b'.');
    if course.contains('.') {
        if let Some(v) = number(course) {
            p.course = v;
            c.take(course.len());
        }
    }
}

/// `ddmmyy,hhmmss` as a time.
fn dmy_hms(date: &str, time: &str) -> Option<DateTime<Utc>> {
    let date = text::date_ddmmyy(date)?;
    Some(text::utc_at(date, text::lenient_hhmmss(time)?))
}

/// `ZC20,ddmmyy,hhmmss,level,battery,power,installed`: battery status.
fn battery(body: &str, ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    let f: Vec<&str> = body.split(',').collect();
    if f.len() < 6 {
        return Err(ParseError::Truncated("ZC20 message".into()));
    }
    let mut m = DeviceMessage::new(ctx, NAME);
    m.time = dmy_hms(f[0], f[1]).ok_or_else(|| invalid("time", body))?;
    let level = int(f[2]).ok_or_else(|| invalid("battery level", body))?;
    let level = match level {
        6 => Some(100),
        5 => Some(80),
        4 => Some(50),
        3 => Some(20),
        2 => Some(10),
        _ => None,
    };
    if let Some(level) = level {
        m.set("batteryLevel", level);
    }
    match int(f[3]) {
        Some(65535) | None => {}
        Some(v) => m.set("battery", v as f64 * 0.01),
    }
    match int(f[4]) {
        Some(65535) | None => {}
        Some(v) => m.set("power", v as f64 * 0.1),
    }
    Ok(m)
}

/// `BZ00,mcc,mnc,lac(hex),cid(hex),…`: the serving cell.
fn network(body: &str, ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    let f: Vec<&str> = body.split(',').collect();
    let hex = |s: &str| i64::from_str_radix(s, 16).ok();
    let cell = match f[..] {
        [mcc, mnc, lac, cid, ..] => (int(mcc), int(mnc), hex(lac), hex(cid)),
        _ => (None, None, None, None),
    };
    let (Some(mcc), Some(mnc), Some(lac), Some(cid)) = cell else {
        return Err(invalid("cell", body));
    };
    let mut m = DeviceMessage::new(ctx, NAME);
    text::set_cells(
        &mut m.attributes,
        vec![text::cell(mcc, mnc, lac, cid, None)],
    );
    Ok(m)
}

/// `ZC03,ddmmyy,hhmmss,$text$`: the answer to a command.
fn command_result(body: &str, ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    let mut parts = body.splitn(3, ',');
    let (date, time, rest) = (parts.next(), parts.next(), parts.next());
    let (Some(date), Some(time), Some(rest)) = (date, time, rest) else {
        return Err(ParseError::Truncated("ZC03 message".into()));
    };
    let text = rest
        .strip_prefix('$')
        .ok_or_else(|| invalid("command answer", body))?;
    let text = text.split('$').next().unwrap_or_default();
    let mut m = DeviceMessage::new(ctx, NAME);
    m.time = dmy_hms(date, time).ok_or_else(|| invalid("time", body))?;
    m.set("result", text);
    Ok(m)
}

/// `DW5x,mcc,mnc,lac,cid,count,(mac*rssi*channel,)…,ddmmyy,hhmmss`: the
/// serving cell and WiFi access points, without a fix.
fn lbs_wifi(command: &str, body: &str, ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    let f: Vec<&str> = body.split(',').collect();
    if f.len() < 7 {
        return Err(ParseError::Truncated("LBS/WiFi message".into()));
    }
    let n = f.len();
    let number_of = |i: usize| int(f[i]).ok_or_else(|| invalid("cell", body));
    let (mcc, mnc, lac, cid, count) = (
        number_of(0)?,
        number_of(1)?,
        number_of(2)?,
        number_of(3)?,
        number_of(4)?,
    );
    let mut m = DeviceMessage::new(ctx, NAME);
    m.time = dmy_hms(f[n - 2], f[n - 1]).ok_or_else(|| invalid("time", body))?;
    command_attributes(command, "0", &mut m.attributes);
    let mut network = json!({ "cellTowers": [text::cell(mcc, mnc, lac, cid, None)] });
    let macs = &f[5..n - 2];
    if count > 0 && macs.len() as i64 == count {
        let mut points = Vec::new();
        for ap in macs {
            let parts: Vec<&str> = ap.split('*').collect();
            let [mac, rssi, channel] = parts[..] else {
                return Err(invalid("access point", body));
            };
            points.push(json!({
                "macAddress": mac,
                "signalStrength": int(rssi).ok_or_else(|| invalid("signal", body))?,
                "channel": int(channel).ok_or_else(|| invalid("channel", body))?,
            }));
        }
        network["wifiAccessPoints"] = points.into();
    }
    m.attributes.insert("network".into(), network);
    Ok(m)
}

/// `BP05<imei>,{mcc,mnc,lac,cid}…,<status>`: a login with cell towers instead of a fix.
fn bp05_cells(body: &str, ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    let mut cells = Vec::new();
    for group in body.split('{').skip(1) {
        let inner = group.split('}').next().unwrap_or_default();
        let v: Vec<Option<i64>> = inner.split(',').map(int).collect();
        let [Some(mcc), Some(mnc), Some(lac), Some(cid)] = v[..] else {
            return Err(invalid("cell", body));
        };
        cells.push(text::cell(mcc, mnc, lac, cid, None));
    }
    let mut m = DeviceMessage::new(ctx, NAME);
    text::set_cells(&mut m.attributes, cells);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx() -> ParseContext {
        ParseContext::new(
            "088047365460",
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
    fn br00() {
        let p =
            pos("(088047365460BR00151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3)");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2015, 10, 24, 5, 51, 48).unwrap()
        );
        assert!(p.valid);
        assert!((p.latitude + 25.92255).abs() < 1e-5);
        assert!((p.longitude - 28.92222).abs() < 1e-5);
        assert_eq!(p.speed, 4.7);
        assert_eq!(p.course, 276.17);
        assert_eq!(p.attributes["charge"], true);
        assert_eq!(p.attributes["ignition"], true);
        assert_eq!(p.attributes["fuel"], 0);
        assert_eq!(p.attributes["odometer"], 0x9AA3);
    }

    #[test]
    fn spaces_and_short_ids() {
        let p =
            pos("(027023361470BR00200617A4000.5775N 8415.4076W 46.0173725 87.3101000000L00000000)");
        assert_eq!(p.speed, 46.0);
        assert_eq!(p.course, 87.31);
        assert!(p.longitude < -84.0);
        let p =
            pos("(01602009983BR00160830V1855.7022S4817.8731W000.0002729000.0010000000L00000000)");
        assert!(!p.valid);
        let p = pos("(086375304593BR00210119A2220.0160N11335.4073E0000014000309.84001000293L0000015FP23BS27F)");
        assert_eq!(p.course, 9.84);
        assert_eq!(p.attributes["fuel"], 0x293);
    }

    #[test]
    fn login_with_position_and_temperature() {
        let p = pos("(088046338039BP05000088046338039160727A3354.7768N03540.7258E000.0140309065.1000000000L00BEB0D4+017.3)");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2016, 7, 27, 14, 3, 9).unwrap()
        );
        assert_eq!(p.attributes["temp1"], 17.3);
        assert_eq!(p.attributes["odometer"], 0xBEB0D4);
    }

    #[test]
    fn alarms() {
        let p = pos(
            "(013666666666BO012110925A1234.5678N01234.5678W000.0025948118.7200000000L000024DE)",
        );
        assert_eq!(p.attributes["alarm"], "sos");
        let p = pos("(013632651491,ZC07,040613,A,2234.0297N,11405.9101E,000.0,040137,178.48)");
        assert_eq!(p.course, 178.48);
    }

    #[test]
    fn comma_form() {
        let p = pos("(352606090042050,BP05,240414,A,4527.3513N,00909.9758E,4.80,112825,155.49)");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2014, 4, 24, 11, 28, 25).unwrap()
        );
        assert!((p.latitude - 45.45586).abs() < 1e-5);
        assert_eq!(p.speed, 4.8);
        assert_eq!(p.course, 155.49);
        let p = pos(
            "(868822040452227,DW3B,150421,A,4154.51607N,45.78950E,0.050,103142,0.000,595.200,7,0)",
        );
        assert!((p.longitude - 0.763158).abs() < 1e-5);
        let p = pos("(013632782450,BP05,101201,A,2234.0297N,11405.9101E,000.0,040137,178.48,00000000,L00000000)");
        assert_eq!(p.course, 178.48);
    }

    #[test]
    fn status_records() {
        match one("(013632651491,ZC20,180716,144222,6,392,65535,255)") {
            Record::Status(m) => {
                assert_eq!(m.attributes["batteryLevel"], 100);
                assert_eq!(m.attributes["battery"], 3.92);
                assert!(m.attributes.get("power").is_none());
            }
            other => panic!("{other:?}"),
        }
        match one("(027023361470BV005J6RW2H53HL066029)") {
            Record::Status(m) => assert_eq!(m.attributes["vin"], "5J6RW2H53HL066029"),
            other => panic!("{other:?}"),
        }
        match one("(864555555555555,DW5B,210,6,5995,47701,5,30:EE:CC:E7:86:DD*-59*11,4C:60:CC:EA:BB:EE*-68*1,42:AA:DE:EA:BB:00*-69*1,32:CD:BB:C3:4F:CC*-86*3,10:00:43:BA:22:15*-88*1,151117,163722)") {
            Record::Status(m) => {
                assert_eq!(m.attributes["network"]["wifiAccessPoints"].as_array().unwrap().len(), 5);
                assert_eq!(m.time, Utc.with_ymd_and_hms(2017, 11, 15, 16, 37, 22).unwrap());
            }
            other => panic!("{other:?}"),
        }
        match one("(027045009305BP05355227045009305,{413,2,30073,16724}\n{413,2,30073,16730}\n{413,2,30073,49860}\n,01000000)") {
            Record::Status(m) => assert_eq!(m.attributes["network"]["cellTowers"].as_array().unwrap().len(), 3),
            other => panic!("{other:?}"),
        }
        match one("(864555555555555,ZC03,191117,234207,$Notice: Device version: 1.0$)") {
            Record::CommandReply(m) => {
                assert_eq!(m.attributes["result"], "Notice: Device version: 1.0")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            one("(027044702512BP00027044702512HSO01A4)"),
            Record::Login(_)
        ));
        assert!(parse(b"(027028258309BQ86,0,05550c21b10d1d0f431008bd114c0ea5078400010007a100423932,161117005322,01000001)", &ctx()).is_err());
    }
}
