//! Watch messages to records.
//!
//! A position report (`UD`, `UD2`, `UD_LTE`, `UD_WCDMA`, `WT`, `AL…`) is
//! `ddmmyy,hhmmss,A|V,lat,[N|S],lon,[E|W],speed(km/h),course,altitude,
//! satellites,rssi,battery(%),steps,tumbles,status(hex),` then the cells
//! (`count,[ta,mcc,mnc,(lac,cid,rssi)…]`) and WiFi access points
//! (`count,(name,mac,rssi)…`) and, on newer firmwares, an accuracy. The
//! coordinates are decimal degrees, signed or with a hemisphere (an empty
//! hemisphere is N/E). `V` says the watch has no GPS fix: coordinates it
//! still sends (the last fix, or zeros) make a position with `valid` false,
//! as Traccar reads them; a report without coordinates is a status record.

use serde_json::{json, Value};

use crate::text::{self, int, signed_number};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::message::Message;
use super::NAME;

pub(crate) fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let m = Message::parse(frame).map_err(ParseError::Invalid)?;
    let kind = m.kind();
    let body = || {
        std::str::from_utf8(m.body())
            .map_err(|_| ParseError::Invalid(format!("{kind} is not text")))
    };
    let lower = kind.to_ascii_lowercase();
    let record = match lower.as_str() {
        "lk" => Record::Heartbeat(link(body()?, ctx)),
        "tkq" | "tkq2" => Record::Heartbeat(DeviceMessage::new(ctx, NAME)),
        "init" => Record::Login(DeviceMessage::new(ctx, NAME)),
        "config" => {
            let mut s = DeviceMessage::new(ctx, NAME);
            s.set("config", body()?);
            Record::Status(s)
        }
        "pulse" | "heart" | "blood" | "bphrt" | "temp" | "btemp2" | "oxygen" => {
            Record::Status(health(&lower, body()?, ctx)?)
        }
        "tk" | "jxtk" | "img" => {
            return Err(ParseError::Unsupported(format!(
                "{kind}: voice or picture data (stored, not decoded)"
            )))
        }
        _ if kind.starts_with("UD") || kind.starts_with("AL") || kind == "WT" => {
            report(kind, body()?, ctx)?
        }
        _ => {
            return Err(ParseError::Unsupported(format!(
                "watch message type {:?}",
                kind.chars().take(20).collect::<String>()
            )))
        }
    };
    Ok(vec![record])
}

fn invalid(what: &str, body: &str) -> ParseError {
    let shown: String = body.chars().take(60).collect();
    ParseError::Invalid(format!("bad {what} in {shown:?}"))
}

/// `LK[,steps,tumbles,battery]`: a heartbeat, with steps and battery level
/// when the watch sends all three.
fn link(body: &str, ctx: &ParseContext) -> DeviceMessage {
    let mut m = DeviceMessage::new(ctx, NAME);
    let f: Vec<&str> = body.split(',').collect();
    if f.len() >= 3 {
        if let Some(steps) = int(f[0].trim()) {
            m.set("steps", steps);
        }
        if let Some(battery) = int(f[2].trim()) {
            m.set("batteryLevel", battery);
        }
    }
    m
}

/// Health measurements, without a fix: heart rate, blood pressure,
/// temperature, blood oxygen.
fn health(kind: &str, body: &str, ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    let f: Vec<&str> = body.split(',').map(str::trim).collect();
    let mut m = DeviceMessage::new(ctx, NAME);
    let number = |i: usize| f.get(i).copied().and_then(signed_number);
    match kind {
        "temp" => {
            m.set(
                "temp1",
                number(0).ok_or_else(|| invalid("temperature", body))?,
            );
        }
        // `btemp2,<measured>,<°C>`: a temperature only when measured.
        "btemp2" => {
            if int(f[0]).is_some_and(|v| v > 0) {
                m.set(
                    "temp1",
                    number(1).ok_or_else(|| invalid("temperature", body))?,
                );
            }
        }
        "oxygen" => {
            m.set(
                "bloodOxygen",
                f.get(1)
                    .and_then(|v| int(v))
                    .ok_or_else(|| invalid("oxygen", body))?,
            );
        }
        _ => {
            let mut i = 0;
            if kind == "blood" || kind == "bphrt" {
                let high = f.first().and_then(|v| int(v));
                let low = f.get(1).and_then(|v| int(v));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(invalid("blood pressure", body));
                };
                m.set("pressureHigh", high);
                m.set("pressureLow", low);
                i = 2;
            }
            if let Some(rate) = f.get(i).and_then(|v| int(v)) {
                m.set("heartRate", rate);
            } else if kind == "pulse" || kind == "heart" {
                return Err(invalid("heart rate", body));
            }
        }
    }
    Ok(m)
}

/// The alarm the status word reports (Traccar's reading of its bits).
fn alarm(status: u32) -> Option<&'static str> {
    const BITS: [(u32, &str); 11] = [
        (0, "lowBattery"),
        (1, "geofenceExit"),
        (2, "geofenceEnter"),
        (14, "powerCut"),
        (16, "sos"),
        (17, "lowBattery"),
        (18, "geofenceExit"),
        (19, "geofenceEnter"),
        (20, "removing"),
        (21, "fallDown"),
        (22, "fallDown"),
    ];
    BITS.iter()
        .find(|(bit, _)| status & (1 << bit) != 0)
        .map(|(_, name)| *name)
}

/// A decimal-degree coordinate and its hemisphere (`S`/`W` negative, empty
/// as given). `Ok(None)` when the field is empty.
fn coordinate(
    value: &str,
    hemisphere: &str,
    max: f64,
    body: &str,
) -> Result<Option<f64>, ParseError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let v = signed_number(value).ok_or_else(|| invalid("coordinate", body))?;
    let v = match hemisphere.trim() {
        "S" | "W" => -v.abs(),
        "N" | "E" | "" => v,
        _ => return Err(invalid("hemisphere", body)),
    };
    if v.abs() > max {
        return Err(invalid("coordinate", body));
    }
    Ok(Some(v))
}

/// A cell's LAC or cell id: decimal, or hex when it has hex letters
/// (`55C0`, `3B882A2`).
fn cell_number(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.bytes().any(|b| b.is_ascii_alphabetic()) {
        if s.len() > 15 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        i64::from_str_radix(s, 16).ok()
    } else {
        int(s)
    }
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| text::hex_of_len(p, 2))
}

/// Cells and WiFi access points after the status word, as Traccar's
/// `network` object. Read as far as they make sense: a block that does not
/// fit the layout is left out, the fix is kept.
fn network(f: &[&str]) -> Option<Value> {
    let mut cells = Vec::new();
    let mut wifi = Vec::new();
    let mut i = 0;
    let count = int(f.first()?.trim())?;
    i += 1;
    if count > 0 {
        let count = usize::try_from(count).ok()?;
        // Timing advance, then the serving network.
        i += 1;
        let mcc = f.get(i).and_then(|v| int(v.trim())).unwrap_or(0);
        let mnc = f.get(i + 1).and_then(|v| int(v.trim())).unwrap_or(0);
        i += 2;
        for _ in 0..count {
            let (Some(lac), Some(cid)) = (
                f.get(i).and_then(|v| cell_number(v)),
                f.get(i + 1).and_then(|v| cell_number(v)),
            ) else {
                break;
            };
            let rssi = f.get(i + 2).and_then(|v| int(v.trim()));
            cells.push(text::cell(mcc, mnc, lac, cid, rssi));
            i += 3;
        }
    }
    if let Some(n) = f.get(i).and_then(|v| int(v.trim())) {
        i += 1;
        for _ in 0..n.clamp(0, 64) {
            let (Some(mac), Some(rssi)) = (f.get(i + 1), f.get(i + 2)) else {
                break;
            };
            if is_mac(mac.trim()) {
                if let Some(rssi) = int(rssi.trim()) {
                    wifi.push(json!({ "macAddress": mac.trim(), "signalStrength": rssi }));
                }
            }
            i += 3;
        }
    }
    let mut network = serde_json::Map::new();
    if !cells.is_empty() {
        network.insert("cellTowers".into(), cells.into());
    }
    if !wifi.is_empty() {
        network.insert("wifiAccessPoints".into(), wifi.into());
    }
    (!network.is_empty()).then_some(Value::Object(network))
}

/// A position report: a position, or a status record when it has no
/// coordinates.
fn report(kind: &str, body: &str, ctx: &ParseContext) -> Result<Record, ParseError> {
    let f: Vec<&str> = body.split(',').collect();
    if f.len() < 16 {
        return Err(ParseError::Truncated(format!("{kind} report")));
    }
    let date = f[0].trim();
    let date = (date.len() == 6 && text::digits(date))
        .then(|| {
            let n = |i: usize| date[i..i + 2].parse::<u32>().unwrap_or(0);
            text::lenient_date(2000 + n(4) as i32, n(2), n(0))
        })
        .flatten()
        .ok_or_else(|| invalid("date", body))?;
    let time = text::lenient_hhmmss(f[1].trim()).ok_or_else(|| invalid("time", body))?;
    let valid = match f[2].trim() {
        "A" => true,
        "V" => false,
        _ => return Err(invalid("validity", body)),
    };
    let latitude = coordinate(f[3], f[4], 90.0, body)?;
    let longitude = coordinate(f[5], f[6], 180.0, body)?;
    // Speed and course are never negative; the altitude may be.
    let decimal = |i: usize, signed: bool, what: &str| -> Result<f64, ParseError> {
        let v = f[i].trim();
        if v.is_empty() {
            return Ok(0.0);
        }
        let read = if signed {
            signed_number(v)
        } else {
            text::number(v)
        };
        read.ok_or_else(|| invalid(what, body))
    };
    let speed = decimal(7, false, "speed")?;
    let course = decimal(8, false, "course")?;
    let altitude = decimal(9, true, "altitude")?;
    let whole = |i: usize| int(f[i].trim());
    let status = u32::from_str_radix(f[15].trim(), 16).map_err(|_| invalid("status", body))?;

    let mut attributes = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        attributes.insert(k.to_owned(), v);
    };
    if let Some(v) = whole(11) {
        put("rssi", v.into());
    }
    if let Some(v) = whole(12) {
        put("batteryLevel", v.into());
    }
    if let Some(v) = whole(13) {
        put("steps", v.into());
    }
    match alarm(status) {
        Some(a) => put("alarm", a.into()),
        None if kind.starts_with("AL") => put("alarm", "general".into()),
        None => {}
    }
    if status & (1 << 4) != 0 {
        put("motion", true.into());
    }
    if let Some(n) = network(&f[16..]) {
        put("network", n);
    }

    let (Some(latitude), Some(longitude)) = (latitude, longitude) else {
        let mut m = DeviceMessage::new(ctx, NAME);
        m.time = text::utc_at(date, time);
        m.attributes = attributes;
        return Ok(Record::Status(m));
    };
    let mut p = Position::new(&ctx.device_id, NAME, text::utc_at(date, time));
    p.valid = valid;
    p.latitude = latitude;
    p.longitude = longitude;
    p.speed = speed;
    p.course = course;
    p.altitude = altitude;
    p.satellites = whole(10).and_then(|s| u32::try_from(s).ok());
    p.attributes = attributes;
    Ok(Record::Position(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx() -> ParseContext {
        ParseContext::new(
            "4700222306",
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
    fn positions() {
        let p = pos("[3G*4700222306*011F*UD2,120316,140444,A,48.779045,N, 9.1574736,E,0.57,12.8,0.0,7,28,77,0,0,00000000,2,2,262,1,21041,9067,121,21041,5981,116,5,WG-Superlativ,34:31:c4:c8:a9:22,-67,EasyBox-28E858,18:83:bf:28:e8:f4,-70,MoMaXXg,be:05:43:b7:19:15,-72,MoMaXX2,bc:05:43:b7:19:15,-72,Gastzugang,18:83:bf:28:e8:f5,-72]");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2016, 3, 12, 14, 4, 44).unwrap()
        );
        assert!(p.valid);
        assert_eq!((p.latitude, p.longitude), (48.779045, 9.1574736));
        assert_eq!((p.speed, p.course, p.satellites), (0.57, 12.8, Some(7)));
        assert_eq!(p.attributes["rssi"], 28);
        assert_eq!(p.attributes["batteryLevel"], 77);
        assert_eq!(p.attributes["steps"], 0);
        let net = &p.attributes["network"];
        assert_eq!(net["cellTowers"].as_array().unwrap().len(), 2);
        assert_eq!(net["cellTowers"][0]["mobileCountryCode"], 262);
        assert_eq!(net["cellTowers"][1]["cellId"], 5981);
        assert_eq!(net["wifiAccessPoints"].as_array().unwrap().len(), 5);
        assert_eq!(
            net["wifiAccessPoints"][0]["macAddress"],
            "34:31:c4:c8:a9:22"
        );

        // No fix, coordinates signed with hemispheres that do not say so.
        let p = pos("[3G*6105117105*008D*UD2,210716,231601,V,-33.480366,N,-70.7630692,E,0.00,0.0,0.0,0,100,34,0,0,00000000,3,255,730,2,29731,54315,167,29731,54316,162,29731,54317,145]");
        assert!(!p.valid);
        assert_eq!((p.latitude, p.longitude), (-33.480366, -70.7630692));
        // S and an empty hemisphere; hex cells.
        let p = pos("[SG*9081000548*00A9*UD,110116,113639,V,16.479064,S,68.119072,,0.7593,000,99,00,80,80,0,50,00000000,5,1,736,2,10103,10732,153]");
        assert_eq!((p.latitude, p.longitude), (-16.479064, 68.119072));
        let p = pos("[SG*9059011020*0067*AL,240123,181628,V,54.427538,N,6.409275,W,0.00,0,0,0,19,90,0,0,00000000,1,1,234,10,55C0,3B882A2,132,,10]");
        assert_eq!(p.longitude, -6.409275);
        assert_eq!(p.attributes["alarm"], "general");
        assert_eq!(
            p.attributes["network"]["cellTowers"][0]["locationAreaCode"],
            0x55C0
        );
        assert_eq!(
            p.attributes["network"]["cellTowers"][0]["cellId"],
            0x3B882A2
        );
        let p = pos(
            "[3G*6907919734*003e*AL_LTE,170525,214118,V,0,N,0,E,0,0,0,0,0,22,0,0,00010000,0,0,0]",
        );
        assert_eq!(p.attributes["alarm"], "sos");
        let p = pos("[3G*6005412902*011F*WT,170517,133811,V,18.512200,N,73.7750283,E,0.00,0.0,-1,0,92,82,4262,0,00000010,0]");
        assert_eq!(p.altitude, -1.0);
        assert_eq!(p.attributes["motion"], true);
        assert_eq!(p.attributes["steps"], 4262);
    }

    #[test]
    fn without_coordinates_a_status() {
        match one("[SG*1*0040*UD,150817,132115,V,,,,,0,0,0,0,100,50,0,0,00000001,0,0]") {
            Record::Status(m) => {
                assert_eq!(m.attributes["alarm"], "lowBattery");
                assert_eq!(
                    m.time,
                    Utc.with_ymd_and_hms(2017, 8, 15, 13, 21, 15).unwrap()
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_messages() {
        match one("[SG*8800000015*000D*LK,50,100,100]") {
            Record::Heartbeat(m) => {
                assert_eq!(m.attributes["steps"], 50);
                assert_eq!(m.attributes["batteryLevel"], 100);
            }
            other => panic!("{other:?}"),
        }
        match one("[SG*9081000548*0009*LK,0,100]") {
            Record::Heartbeat(m) => assert!(m.attributes.is_empty()),
            other => panic!("{other:?}"),
        }
        let status = |frame: &str| match one(frame) {
            Record::Status(m) => m.attributes,
            other => panic!("{other:?}"),
        };
        assert_eq!(status("[ZJ*5678901234*0001*0009*TEMP,36.5]")["temp1"], 36.5);
        assert_eq!(
            status("[3G*2104326058*000E*btemp2,1,35.29]")["temp1"],
            35.29
        );
        assert!(status("[3G*2104326058*000E*btemp2,0,35.29]").is_empty());
        assert_eq!(status("[CS*8800000015*0008*PULSE,72]")["heartRate"], 72);
        let a = status("[3G*4700609403*0013*bphrt,120,79,73,,,,]");
        assert_eq!(
            (
                a["pressureHigh"].clone(),
                a["pressureLow"].clone(),
                a["heartRate"].clone()
            ),
            (120.into(), 79.into(), 73.into())
        );
        let a = status("[ZJ*357653059860416*0007*000c*BLOOD,109,68]");
        assert!(a.get("heartRate").is_none());
        assert_eq!(status("[3G*1*0009*oxygen,1,98]")["bloodOxygen"], 98);
        assert_eq!(
            status("[3G*1*0009*CONFIG,TY:g36a,UL:600]")["config"],
            "TY:g36a,UL:600"
        );
        assert!(matches!(
            one("[3G*8800000015*0003*TKQ]"),
            Record::Heartbeat(_)
        ));
        assert!(matches!(
            parse(b"[CS*1234567890*000e*TK,#!AMR}\x01\xff]", &ctx()),
            Err(ParseError::Unsupported(_))
        ));
        assert!(matches!(
            parse(b"[3G*8308406279*0008*rcapture]", &ctx()),
            Err(ParseError::Unsupported(_))
        ));
        assert!(parse(b"[3G*1*0010*UD,991399,250000,A]", &ctx()).is_err());
    }
}
