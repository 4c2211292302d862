//! Suntech messages to records.
//!
//! Legacy reports (`<model><type>;<id>;…`, e.g. `ST300STT`) read, after the
//! id: `[model] firmware yyyymmdd hh:mm:ss [cell] [mcc mnc lac rssi]
//! latitude longitude speed(km/h) course satellites fix odometer power io`,
//! then fields that depend on the type (`STT` status and index, `EVT`
//! event, `ALT` alert, `EMG` emergency, `UEX` serial-port data), then, when
//! the device sends them, hour meter, backup battery, archive flag, analog
//! inputs or RPM, driver id and temperature sensors. ST4xx reports carry
//! seven cell towers first; ST9xx reports are shorter. Universal reports
//! (`STT;<id>;<mask>;…`) are read in [`super::universal`].

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::{Map, Value};

use crate::text::{cell, int, number, set_cells, signed_number};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::message::{fields, is_binary};
use super::universal;
use super::NAME;

pub(crate) fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    if is_binary(frame) {
        return Err(ParseError::Unsupported(
            "binary universal report (its layout is not documented in any source available)".into(),
        ));
    }
    let f = fields(frame);
    let header = f[0].as_str();
    if header == "CRR" {
        return Err(ParseError::Unsupported(
            "crash report (CRR) accelerometer data".into(),
        ));
    }
    if header.ends_with("ALV") {
        return Ok(vec![Record::Heartbeat(DeviceMessage::new(ctx, NAME))]);
    }
    if header.ends_with("CMD") {
        // `<model>CMD;Res;<id>;<answer…>`
        let mut m = DeviceMessage::new(ctx, NAME);
        m.set(
            "result",
            f.get(3..).map(|r| r.join(";")).unwrap_or_default(),
        );
        return Ok(vec![Record::CommandReply(m)]);
    }
    if f.len() == 1 {
        let mut m = DeviceMessage::new(ctx, NAME);
        m.set("result", header.trim());
        return Ok(vec![Record::CommandReply(m)]);
    }
    if header.len() < 5 {
        return universal::parse(&f, ctx);
    }
    if header.ends_with("HTE") {
        // Travel report: the driver id is its last field.
        let mut m = DeviceMessage::new(ctx, NAME);
        m.set("type", "HTE");
        if let Some(driver) = f.last().filter(|d| !d.is_empty()) {
            m.set("driverUniqueId", driver.as_str());
        }
        return Ok(vec![Record::Status(m)]);
    }
    let record = if header.starts_with("ST9") {
        st9(&f, ctx)?
    } else if header.starts_with("ST4") {
        st4(&f, ctx)?
    } else {
        legacy(&f, ctx)?
    };
    Ok(vec![record])
}

pub(crate) fn invalid(what: &str, value: &str) -> ParseError {
    let shown: String = value.chars().take(40).collect();
    ParseError::Invalid(format!("bad {what} {shown:?}"))
}

/// A cursor over the fields.
pub(crate) struct Fields<'a> {
    pub f: &'a [String],
    pub at: usize,
}

impl<'a> Fields<'a> {
    pub fn new(f: &'a [String], at: usize) -> Self {
        Fields { f, at }
    }
    pub fn next(&mut self, what: &str) -> Result<&'a str, ParseError> {
        let v = self
            .f
            .get(self.at)
            .ok_or_else(|| ParseError::Truncated(format!("no {what}")))?;
        self.at += 1;
        Ok(v.as_str())
    }
    pub fn peek(&self) -> Option<&'a str> {
        self.f.get(self.at).map(String::as_str)
    }
    pub fn rest(&self) -> &'a [String] {
        self.f.get(self.at..).unwrap_or(&[])
    }
}

/// `yyyymmdd` and `hh:mm:ss`.
pub(crate) fn date_time(date: &str, time: &str) -> Option<DateTime<Utc>> {
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d = NaiveDate::from_ymd_opt(
        date[..4].parse().ok()?,
        date[4..6].parse().ok()?,
        date[6..].parse().ok()?,
    )?;
    let t = NaiveTime::parse_from_str(time, "%H:%M:%S").ok()?;
    Some(crate::text::utc(d, t))
}

pub(crate) fn read_time(c: &mut Fields) -> Result<DateTime<Utc>, ParseError> {
    let d = c.next("date")?;
    let t = c.next("time")?;
    date_time(d, t).ok_or_else(|| invalid("date and time", &format!("{d} {t}")))
}

pub(crate) fn coordinate(c: &mut Fields, what: &str, limit: f64) -> Result<f64, ParseError> {
    let v = c.next(what)?;
    signed_number(v)
        .filter(|x| x.abs() <= limit)
        .ok_or_else(|| invalid(what, v))
}

pub(crate) fn decimal(c: &mut Fields, what: &str) -> Result<f64, ParseError> {
    let v = c.next(what)?;
    signed_number(v).ok_or_else(|| invalid(what, v))
}

/// The alarm of a legacy `ALT` alert id.
pub(crate) fn alert(id: i64) -> Option<&'static str> {
    Some(match id {
        1 => "overspeed",
        5 => "geofenceExit",
        6 => "geofenceEnter",
        14 => "lowBattery",
        15 => "vibration",
        16 => "accident",
        40 => "powerRestored",
        41 => "powerCut",
        46 => "hardAcceleration",
        47 => "hardBraking",
        50 => "jamming",
        _ => return None,
    })
}

/// The alarm of an `EMG` emergency id.
fn emergency(id: i64) -> Option<&'static str> {
    Some(match id {
        1 => "sos",
        2 => "parking",
        3 => "powerCut",
        5 | 6 => "door",
        7 => "movement",
        8 => "vibration",
        _ => return None,
    })
}

/// Latitude, longitude, speed, course, satellites, fix — the block every
/// legacy report shares.
fn fix(c: &mut Fields, p: &mut Position) -> Result<(), ParseError> {
    p.latitude = coordinate(c, "latitude", 90.0)?;
    p.longitude = coordinate(c, "longitude", 180.0)?;
    p.speed = decimal(c, "speed")?;
    p.course = decimal(c, "course")?;
    let sats = c.next("satellites")?;
    p.satellites = int(sats).and_then(|s| u32::try_from(s).ok());
    p.valid = c.next("fix")? == "1";
    Ok(())
}

fn legacy(f: &[String], ctx: &ParseContext) -> Result<Record, ParseError> {
    let header = f[0].as_str();
    let (Some(model), Some(kind)) = (header.get(..5), header.get(5..)) else {
        return Err(ParseError::Unsupported(format!("{header} report")));
    };
    if !matches!(kind, "STT" | "EMG" | "EVT" | "ALT" | "UEX") {
        return Err(ParseError::Unsupported(format!("{header} report")));
    }
    let mut c = Fields::new(f, 2);
    if model.starts_with("ST3") || model == "ST500" || model == "ST600" {
        c.next("model")?;
    }
    let firmware = c.next("firmware")?;
    let time = read_time(&mut c)?;
    let mut p = Position::new(&ctx.device_id, NAME, time);
    p.set("type", kind);
    p.set("versionFw", firmware);
    if model != "ST500" {
        let cid = c.next("cell id")?;
        if model == "ST600" {
            let (mcc, mnc, lac, rssi) = (
                c.next("mcc")?,
                c.next("mnc")?,
                c.next("lac")?,
                c.next("rssi")?,
            );
            if let (Some(cid), Some(mcc), Some(mnc), Some(lac)) = (
                i64::from_str_radix(cid, 16).ok(),
                int(mcc),
                int(mnc),
                i64::from_str_radix(lac, 16).ok(),
            ) {
                set_cells(&mut p.attributes, vec![cell(mcc, mnc, lac, cid, int(rssi))]);
            }
        }
    }
    fix(&mut c, &mut p)?;
    if let Some(odometer) = c.next("odometer").ok().and_then(int) {
        p.set("odometer", odometer);
    }
    if let Some(power) = c.next("power").ok().and_then(number) {
        p.set("power", power);
    }
    let io = c.next("io").unwrap_or("");
    let b = io.as_bytes();
    if b.len() >= 6 {
        p.set("ignition", b[0] == b'1');
        p.set("in1", b[1] == b'1');
        p.set("in2", b[2] == b'1');
        p.set("in3", b[3] == b'1');
        p.set("out1", b[4] == b'1');
        p.set("out2", b[5] == b'1');
    }
    let code = |c: &mut Fields, what: &str| -> Result<i64, ParseError> {
        let v = c.next(what)?;
        int(v).ok_or_else(|| invalid(what, v))
    };
    match kind {
        "STT" => {
            if let Ok(status) = code(&mut c, "status") {
                p.set("status", status);
            }
            if let Ok(index) = code(&mut c, "index") {
                p.set("index", index);
            }
        }
        "EMG" => {
            if let Some(alarm) = emergency(code(&mut c, "emergency")?) {
                p.set("alarm", alarm);
            }
        }
        "EVT" => {
            let event = code(&mut c, "event")?;
            p.set("event", event);
        }
        "ALT" => {
            if let Some(alarm) = alert(code(&mut c, "alert")?) {
                p.set("alarm", alarm);
            }
        }
        _ => {
            let len = code(&mut c, "serial data length")?;
            serial_data(&mut c, len, &mut p.attributes);
            c.next("checksum").ok();
        }
    }
    extras(c.rest(), &mut p.attributes);
    Ok(Record::Position(p))
}

/// `UEX` serial-port data: `len` characters, which may contain `;`.
pub(crate) fn serial_data(c: &mut Fields, len: i64, a: &mut Map<String, Value>) {
    let mut remaining = len;
    let mut total_fuel = 0.0;
    while remaining > 0 {
        let Ok(item) = c.next("serial data") else {
            break;
        };
        remaining -= item.len() as i64 + 1;
        let item_trimmed = item.trim_end_matches(['\r', '\n']);
        if let Some(rest) = item_trimmed.strip_prefix("CabAVL") {
            let parts: Vec<&str> = rest.split(',').collect();
            for (i, key) in [(2, "fuel1"), (3, "fuel2")] {
                if let Some(v) = parts.get(i).and_then(|s| signed_number(s)) {
                    if v > 0.0 {
                        total_fuel += v;
                        a.insert(key.into(), v.into());
                    }
                }
            }
        } else if item_trimmed.starts_with("GTSL") {
            if let Some(driver) = item_trimmed.split('|').nth(4) {
                a.insert("driverUniqueId".into(), driver.into());
            }
        } else if let Some((key, value)) = item_trimmed
            .split_once('=')
            .filter(|(k, _)| k.len() == 3 && k.as_bytes()[1] == b'_')
        {
            let value = value.trim();
            let whole = value.split('.').next().unwrap_or("");
            let Ok(v) = i64::from_str_radix(whole, 16) else {
                continue;
            };
            let suffix = &key[2..];
            match key.as_bytes()[0] {
                b't' => {
                    a.insert(format!("temp{suffix}"), v.into());
                }
                b'N' => {
                    total_fuel += v as f64;
                    a.insert(format!("fuel{suffix}"), v.into());
                }
                b'Q' => {
                    a.insert("drivingQuality".into(), v.into());
                }
                _ => {}
            }
        } else if !item_trimmed.is_empty() {
            a.insert("serial".into(), item_trimmed.into());
        }
    }
    if total_fuel > 0.0 {
        a.insert("fuel".into(), total_fuel.into());
    }
}

/// The optional fields after the type-specific ones: hour meter (minutes),
/// backup battery (V), archive flag, then analog inputs (V) or an RPM,
/// a driver id (14 hex digits, ignored when all zero) and its flag, and
/// temperature sensors (`<sensor id>:<°C>`).
fn extras(rest: &[String], a: &mut Map<String, Value>) {
    let [hours, battery, archive, tail @ ..] = rest else {
        return;
    };
    let (Some(hours), Some(battery)) = (int(hours), number(battery)) else {
        return;
    };
    if !matches!(archive.as_str(), "0" | "1") {
        return;
    }
    if let Some(ms) = hours.checked_mul(60_000) {
        a.insert("hours".into(), ms.into());
    }
    a.insert("battery".into(), battery.into());
    if archive == "0" {
        a.insert("archive".into(), true.into());
    }
    let is_driver = |s: &str| s.len() == 14 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let driver_at = tail.iter().position(|s| is_driver(s));
    let analog = &tail[..driver_at.unwrap_or(tail.len())];
    let analog: Vec<&str> = analog
        .iter()
        .map(String::as_str)
        .take_while(|s| !s.contains(':'))
        .collect();
    match analog[..] {
        [rpm] if !rpm.contains('.') => {
            if let Some(rpm) = int(rpm) {
                a.insert("rpm".into(), rpm.into());
            }
        }
        _ => {
            for (i, adc) in analog.iter().take(3).enumerate() {
                if let Some(v) = number(adc) {
                    a.insert(format!("adc{}", i + 1), v.into());
                }
            }
        }
    }
    if let Some(at) = driver_at {
        let driver = tail[at].as_str();
        if driver.bytes().any(|b| b != b'0') {
            a.insert("driverUniqueId".into(), driver.into());
        }
    }
    let temps = tail
        .iter()
        .filter_map(|s| s.split_once(':'))
        .map(|(_, v)| v);
    for (i, t) in temps.enumerate() {
        if let Some(v) = signed_number(t) {
            a.insert(format!("temp{}", i + 1), v.into());
        }
    }
}

/// ST9xx: `ST910;<Location|Emergency|Alert>;<id>;[firmware;]yyyymmdd;hh:mm:ss;
/// [cell;]latitude;longitude;speed;course;fix[;odometer…]`.
fn st9(f: &[String], ctx: &ParseContext) -> Result<Record, ParseError> {
    let kind = f.get(1).map(String::as_str).unwrap_or("");
    if !matches!(kind, "Location" | "Emergency" | "Alert") {
        return Err(ParseError::Unsupported(format!("ST9xx {kind} report")));
    }
    let mut c = Fields::new(f, 3);
    let mut firmware = None;
    if c.peek().is_some_and(|s| s.len() != 8) {
        firmware = Some(c.next("firmware")?);
    }
    let time = read_time(&mut c)?;
    // A cell id (hex, no decimal point) before the latitude in one variant.
    let with_cell = c.peek().is_some_and(|s| !s.contains('.'));
    if with_cell {
        c.next("cell id")?;
    }
    let mut p = Position::new(&ctx.device_id, NAME, time);
    if let Some(fw) = firmware {
        p.set("versionFw", fw);
    }
    if kind != "Location" {
        p.set("alarm", "general");
    }
    p.latitude = coordinate(&mut c, "latitude", 90.0)?;
    p.longitude = coordinate(&mut c, "longitude", 180.0)?;
    p.speed = decimal(&mut c, "speed")?;
    p.course = decimal(&mut c, "course")?;
    p.valid = c.next("fix")? == "1";
    if with_cell {
        if let Some(odometer) = c.peek().and_then(int) {
            p.set("odometer", odometer);
        }
    }
    Ok(Record::Position(p))
}

/// ST4xx: `ST410STT;<id>;<firmware>;<model>;[…;]` seven cell towers
/// (`cid mcc mnc rssi lac ta` for the serving cell, `cid mcc mnc lac rssi ta`
/// for the neighbours), `battery;archive;index;status;…` and, when the
/// device has a fix, `yyyymmdd;hh:mm:ss;latitude;longitude;speed;course;
/// satellites;fix`.
fn st4(f: &[String], ctx: &ParseContext) -> Result<Record, ParseError> {
    let header = f[0].as_str();
    let kind = header.get(5..).unwrap_or("");
    if !matches!(kind, "STT" | "ALT") {
        return Err(ParseError::Unsupported(format!("{header} report")));
    }
    let mut a = Map::new();
    a.insert("type".into(), kind.into());
    if let Some(fw) = f.get(2) {
        a.insert("versionFw".into(), fw.as_str().into());
    }
    // The cells start after the model, or one field later on newer models;
    // the battery voltage (with a decimal point) follows the 42 cell fields.
    let start = [4usize, 5]
        .into_iter()
        .find(|&s| f.get(s + 42).is_some_and(|b| b.contains('.')));
    if let Some(start) = start {
        let mut cells = Vec::new();
        for i in 0..7 {
            let g = &f[start + i * 6..start + i * 6 + 6];
            let n = |j: usize| int(&g[j]);
            let (rssi, lac) = if i == 0 { (n(3), n(4)) } else { (n(4), n(3)) };
            if let (Some(cid), Some(mcc), Some(mnc), Some(lac)) = (n(0), n(1), n(2), lac) {
                if cid > 0 {
                    cells.push(cell(mcc, mnc, lac, cid, rssi));
                }
            }
        }
        set_cells(&mut a, cells);
        let mut c = Fields::new(f, start + 42);
        if let Some(battery) = c.next("battery").ok().and_then(number) {
            a.insert("battery".into(), battery.into());
        }
        if c.next("archive").ok() == Some("0") {
            a.insert("archive".into(), true.into());
        }
        if let Some(index) = c.next("index").ok().and_then(int) {
            a.insert("index".into(), index.into());
        }
        if let Some(status) = c.next("status").ok().and_then(int) {
            a.insert("status".into(), status.into());
        }
    }
    // The fix block starts at the date (8 digits followed by hh:mm:ss).
    let date_at = (2..f.len().saturating_sub(1)).find(|&i| date_time(&f[i], &f[i + 1]).is_some());
    let Some(at) = date_at else {
        let mut m = DeviceMessage::new(ctx, NAME);
        m.attributes = a;
        return Ok(Record::Status(m));
    };
    let mut c = Fields::new(f, at);
    let time = read_time(&mut c)?;
    let mut p = Position::new(&ctx.device_id, NAME, time);
    p.attributes = a;
    fix(&mut c, &mut p)?;
    Ok(Record::Position(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx() -> ParseContext {
        ParseContext::new("317652", Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
    }

    fn one(s: &str) -> Record {
        let mut r = parse(s.as_bytes(), &ctx()).unwrap();
        assert_eq!(r.len(), 1);
        r.remove(0)
    }

    #[test]
    fn sa200_status() {
        let r = one("SA200STT;317652;042;20120718;15:37:12;16d41;-15.618755;-056.083241;000.024;000.00;8;1;41548;12.17;100000;2;1979");
        let Record::Position(p) = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2012, 7, 18, 15, 37, 12).unwrap()
        );
        assert!(p.valid);
        assert_eq!(
            (p.latitude, p.longitude, p.speed),
            (-15.618755, -56.083241, 0.024)
        );
        assert_eq!(p.satellites, Some(8));
        assert_eq!(p.attributes["odometer"], 41548);
        assert_eq!(p.attributes["power"], 12.17);
        assert_eq!(p.attributes["ignition"], true);
        assert_eq!(p.attributes["index"], 1979);
    }

    #[test]
    fn hour_meter_block() {
        let r = one("ST300STT;907131077;04;706;20190227;23:59:34;cc719;-12.963490;-038.499587;000.067;000.00;7;1;57095;12.50;000000;1;0337;000207;0.0;1;0;012E717F010000;1");
        assert_eq!(r.attributes()["rpm"], 0);
        assert_eq!(r.attributes()["driverUniqueId"], "012E717F010000");
        assert_eq!(r.attributes()["hours"], 207 * 60_000);
        let r = one("ST300STT;205173382;07;564;20160322;23:23:18;232e19;+19.288278;-099.128750;000.122;000.00;9;1;478391;11.53;000100;1;9498;079324;4.3;1;0.00;0.00;0.00;00000000000000;0;2898E16006000058:-20.8;2861626006000039:+2.5;:");
        assert_eq!(r.attributes()["temp1"], -20.8);
        assert_eq!(r.attributes()["temp2"], 2.5);
        assert_eq!(r.attributes()["adc1"], 0.0);
        assert!(r.attributes().get("driverUniqueId").is_none());
    }

    #[test]
    fn uex_serial_data() {
        let r = one("ST600UEX;008728327;20;520;20190218;10:56:51;0bf1a893;334;20;2f19;18;+20.514195;-100.743597;000.015;000.00;9;1;3720808;12.89;000000;44;t_0=0D;N_0=0551.0;t_1=14;N_1=039F.0;Q_D=0B\r\n;9E;010440;4.1;1");
        assert_eq!(r.attributes()["temp0"], 0x0d);
        assert_eq!(r.attributes()["fuel1"], 0x39f);
        assert_eq!(r.attributes()["drivingQuality"], 0x0b);
        assert_eq!(r.attributes()["fuel"], (0x551 + 0x39f) as f64);
    }

    #[test]
    fn huge_hour_meter_does_not_overflow() {
        let r = one("ST300STT;907131077;04;706;20190227;23:59:34;cc719;-12.963490;-038.499587;000.067;000.00;7;1;57095;12.50;000000;1;0337;999999999999999999;0.0;1");
        assert!(r.attributes().get("hours").is_none());
    }

    #[test]
    fn non_ascii_header_is_refused_not_a_panic() {
        // Found by the property tests: a 5-byte header boundary inside a
        // multi-byte character.
        assert!(parse("Jih\u{fffd}0;1;2".as_bytes(), &ctx()).is_err());
        assert!(parse("ST4\u{fffd};1;2".as_bytes(), &ctx()).is_err());
        assert!(parse(&[0, 1, 0, 128, b';'], &ctx()).is_err());
    }

    #[test]
    fn others() {
        assert!(matches!(one("SA200ALV;317652"), Record::Heartbeat(_)));
        assert!(matches!(one("-Error"), Record::CommandReply(_)));
        let r = one("ST910;Alert;123456;410;20141018;18:30:12;+37.478774;+126.889690;000.000;000.00;0;4.0;1;6002");
        let Record::Position(p) = r else { panic!() };
        assert!(!p.valid);
        assert_eq!(p.attributes["alarm"], "general");
        assert!(parse(b"SA200STT;317652;042;20121318;15:37:12;16d41", &ctx()).is_err());
        assert!(parse(b"ST300XYZ;1;2", &ctx()).is_err());
    }
}
