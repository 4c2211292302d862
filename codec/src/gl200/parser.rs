//! Queclink text messages to records.
//!
//! Fields are comma-separated; the last two are the send time
//! (`yyyyMMddHHmmss`) and a 4-hex-digit count. A location block is
//! `hdop,speed,course,altitude,longitude,latitude,fix time`, optionally
//! WiFi access points, then `mcc,mnc,lac,cell` (lac and cell hex) and one
//! field that is the odometer (km, with a point) or an append mask. Which
//! fields surround the blocks depends on the message type and, for some,
//! on the model, which the protocol version's first two characters name
//! (as Traccar reads it; a configured model wins).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::text::{cell, int, number, set_cells, signed_number};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::message::{fields, header, is_binary};
use super::NAME;

type Attrs = Map<String, Value>;

/// The model a protocol version stands for (its first two characters, or
/// six for the longer versions).
fn model_of(version: &str) -> &'static str {
    let key = if version.len() > 6 {
        version.get(..6).unwrap_or("")
    } else {
        version.get(..2).unwrap_or("")
    };
    match key {
        "02" | "21" => "GL200",
        "04" | "35" => "GV200",
        "06" | "25" => "GV300",
        "08" | "3F" => "GMT100",
        "09" => "GV50P",
        "0F" | "2F" => "GV55",
        "10" => "GV55 LITE",
        "11" | "40" => "GL500",
        "1A" | "30" => "GL300",
        "1F" | "36" => "GV500",
        "27" => "GV300W",
        "28" => "GL300VC",
        "2C" => "GL300W",
        "2D" => "GV500VC",
        "4F" => "GV56",
        "31" => "GV65",
        "41" => "GV75W",
        "42" => "GT501",
        "44" => "GL530",
        "45" => "GB100",
        "50" => "GV55W",
        "52" => "GL50",
        "55" => "GL50B",
        "5E" => "GV500MAP",
        "6E" => "GV310LAU",
        "74" => "GV350CEU",
        "BD" => "CV200",
        "C2" => "GV600M",
        "C3" => "GL320M",
        "DC" => "GV600MG",
        "DE" => "GL500M",
        "DF" => "CV100LG",
        "F1" => "GV350M",
        "F8" => "GV800W",
        "FC" => "GV600W",
        "802004" => "GV58LAU",
        "802005" => "GV355CEU",
        "80201E" => "GV30CEU",
        _ => "",
    }
}

fn time14(s: &str) -> Option<DateTime<Utc>> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?;
    Some(Utc.from_utc_datetime(&t))
}

/// A coordinate as Queclink writes it: optional `-`, digits, a point and
/// six decimals (some firmwares send fewer).
fn coord(s: &str, limit: f64) -> Option<f64> {
    s.contains('.')
        .then(|| signed_number(s))
        .flatten()
        .filter(|v| v.abs() <= limit)
}

fn hex(s: &str) -> Option<i64> {
    (!s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| i64::from_str_radix(s, 16).ok())
        .flatten()
}

fn invalid(what: &str, v: &str) -> ParseError {
    let shown: String = v.chars().take(40).collect();
    ParseError::Invalid(format!("bad {what} {shown:?}"))
}

/// One decoded location block.
struct Block {
    fix: Option<(f64, f64, DateTime<Utc>)>,
    valid: bool,
    speed: f64,
    course: f64,
    altitude: f64,
    attributes: Attrs,
}

/// Whether a location block's coordinates and time start at `i` (the
/// longitude; all three may be empty when there is no fix).
fn coordinates_at(v: &[String], i: usize) -> bool {
    let (Some(lon), Some(lat), Some(t)) = (v.get(i), v.get(i + 1), v.get(i + 2)) else {
        return false;
    };
    (coord(lon, 180.0).is_some() && coord(lat, 90.0).is_some() && time14(t).is_some())
        || (lon.is_empty() && lat.is_empty() && (t.is_empty() || time14(t).is_some()))
}

/// Reads a location block starting at `v[at]` (the HDOP); returns it and
/// the index after it. `model` is `None` for the short form (one field
/// after the cell: the odometer or nothing); with a model, the field after
/// the cell may be an append mask and some models add signal fields, as in
/// `ERI` and `IGN` reports.
fn block(v: &[String], at: usize, model: Option<&str>) -> Result<(Block, usize), ParseError> {
    let get = |i: usize| {
        v.get(i)
            .map(String::as_str)
            .ok_or_else(|| ParseError::Truncated("location block".into()))
    };
    let mut a = Attrs::new();
    let hdop = get(at)?;
    let hdop_value = number(hdop);
    if let Some(h) = hdop_value {
        a.insert("hdop".into(), h.into());
    }
    let speed = number(get(at + 1)?).unwrap_or(0.0);
    let course = number(get(at + 2)?).unwrap_or(0.0);
    let altitude = signed_number(get(at + 3)?).unwrap_or(0.0);
    let (lon, lat, t) = (get(at + 4)?, get(at + 5)?, get(at + 6)?);
    let fix = match (coord(lon, 180.0), coord(lat, 90.0), time14(t)) {
        (Some(lon), Some(lat), Some(t)) => Some((lat, lon, t)),
        _ if lon.is_empty() || lat.is_empty() => None,
        _ => return Err(invalid("coordinates", &format!("{lon},{lat},{t}"))),
    };
    let mut i = at + 7;
    // WiFi access points: count, then (mac, rssi, three reserved) each.
    if v.get(i + 1)
        .is_some_and(|m| m.len() == 12 && hex(m).is_some())
    {
        let n = int(get(i)?).filter(|n| (0..=32).contains(n)).unwrap_or(0) as usize;
        i += 1;
        let mut aps = Vec::new();
        for _ in 0..n {
            let mac = get(i)?;
            let rssi = int(get(i + 1)?);
            let pretty: Vec<String> = mac
                .as_bytes()
                .chunks(2)
                .map(|c| String::from_utf8_lossy(c).to_ascii_lowercase())
                .collect();
            let mut ap = json!({ "macAddress": pretty.join(":") });
            if let Some(r) = rssi {
                ap["signalStrength"] = r.into();
            }
            aps.push(ap);
            i += 5;
        }
        if !aps.is_empty() {
            a.insert("network".into(), json!({ "wifiAccessPoints": aps }));
        }
    }
    let field = |i: usize| v.get(i).map(String::as_str).unwrap_or("");
    if !field(i).is_empty() && i + 4 < v.len() {
        if let (Some(mcc), Some(mnc), Some(lac), Some(cid)) = (
            int(field(i)),
            int(field(i + 1)),
            hex(field(i + 2)),
            hex(field(i + 3)),
        ) {
            let mut cells = vec![cell(mcc, mnc, lac, cid, None)];
            match a.get_mut("network") {
                Some(n) => {
                    n["cellTowers"] = Value::Array(std::mem::take(&mut cells));
                }
                None => set_cells(&mut a, cells),
            }
        }
    }
    i += 4;
    let Some(model) = model else {
        if let Some(km) = v.get(i).filter(|s| s.contains('.')).and_then(|s| number(s)) {
            a.insert("odometer".into(), (km * 1000.0).into());
        }
        i += 1;
        return Ok((
            Block {
                fix,
                valid: hdop.is_empty() || hdop_value.is_some_and(|h| h > 0.0),
                speed,
                course,
                altitude,
                attributes: a,
            },
            i,
        ));
    };
    if model.starts_with("GL5") {
        i += 2;
    }
    if model == "GT501" {
        i += 1;
    } else if model != "GL320M" {
        if let Some(value) = v.get(i).filter(|s| !s.is_empty()) {
            if value.contains('.') {
                if let Some(km) = number(value) {
                    a.insert("odometer".into(), (km * 1000.0).into());
                }
            } else if let Some(mask) = hex(value) {
                if mask & 1 != 0 {
                    if let Some(s) = v.get(i + 1).and_then(|s| int(s)) {
                        a.insert("sat".into(), s.into());
                    }
                    i += 1;
                }
                if mask & 2 != 0 {
                    i += 1;
                }
                if mask & 0x10 != 0 {
                    i += 1;
                }
            }
        }
        i += 1;
    }
    Ok((
        Block {
            fix,
            valid: hdop.is_empty() || hdop_value.is_some_and(|h| h > 0.0),
            speed,
            course,
            altitude,
            attributes: a,
        },
        i,
    ))
}

/// A record from a block (or none) and message-level attributes.
fn record(
    block: Option<Block>,
    mut attrs: Attrs,
    sent: Option<DateTime<Utc>>,
    ctx: &ParseContext,
) -> Record {
    match block {
        Some(b) if b.fix.is_some() => {
            let (lat, lon, t) = b.fix.unwrap_or((0.0, 0.0, ctx.received_at));
            let mut p = Position::new(&ctx.device_id, NAME, t);
            p.valid = b.valid;
            p.latitude = lat;
            p.longitude = lon;
            p.speed = b.speed;
            p.course = b.course;
            p.altitude = b.altitude;
            if let Some(s) = b.attributes.get("sat").and_then(Value::as_u64) {
                p.satellites = u32::try_from(s).ok();
            }
            let mut a = b.attributes;
            a.remove("sat");
            a.append(&mut attrs);
            p.attributes = a;
            Record::Position(p)
        }
        other => {
            let mut m = DeviceMessage::new(ctx, NAME);
            if let Some(t) = sent {
                m.time = t;
            }
            if let Some(mut b) = other {
                b.attributes.remove("hdop");
                b.attributes.remove("sat");
                attrs.append(&mut b.attributes);
            }
            m.attributes = attrs;
            Record::Status(m)
        }
    }
}

/// Adds an alarm; several are joined with commas, each once.
fn add_alarm(a: &mut Attrs, alarm: &str) {
    let joined = match a.get("alarm").and_then(Value::as_str) {
        Some(previous) if previous.split(',').any(|x| x == alarm) => return,
        Some(previous) => format!("{previous},{alarm}"),
        None => alarm.to_owned(),
    };
    a.insert("alarm".into(), joined.into());
}

/// Device status (6 hex digits): ignition state, inputs, outputs.
fn status(a: &mut Attrs, value: i64) {
    let ignition = (value >> 16) & 0xff;
    if ignition & 0x10 != 0 {
        a.insert("ignition".into(), false.into());
    } else if ignition & 0x20 != 0 {
        a.insert("ignition".into(), true.into());
    }
    let input = (value >> 8) & 0xff;
    let output = value & 0xff;
    a.insert("input".into(), input.into());
    a.insert("in1".into(), (input & 2 != 0).into());
    a.insert("in2".into(), (input & 4 != 0).into());
    a.insert("output".into(), output.into());
    a.insert("out1".into(), (output & 1 != 0).into());
    a.insert("out2".into(), (output & 2 != 0).into());
}

/// `hhhhh:mm:ss` (or fewer parts) in milliseconds.
fn hours(s: &str) -> Option<i64> {
    let mut parts = s.split(':');
    let h = int(parts.next()?)?;
    let m = parts.next().map(int).unwrap_or(Some(0))?;
    let sec = parts.next().map(int).unwrap_or(Some(0))?;
    h.checked_mul(3600)?
        .checked_add(m * 60 + sec)?
        .checked_mul(1000)
}

fn analog(a: &mut Attrs, index: usize, s: &str) {
    if let Some(f) = s.strip_prefix('F') {
        if let Some(v) = int(f) {
            a.insert(format!("fuel{index}"), v.into());
        }
    } else if let Some(v) = int(s) {
        a.insert(format!("adc{index}"), (v as f64 / 1000.0).into());
    }
}

pub(crate) fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    if is_binary(frame) {
        return super::binary::parse(frame, ctx);
    }
    let v = fields(frame).ok_or_else(|| ParseError::Invalid("message is not text".into()))?;
    let (kind, ty) = header(&v).ok_or_else(|| invalid("header", &v[0]))?;
    if v.len() < 4 {
        return Err(ParseError::Truncated(format!("{} field(s)", v.len())));
    }
    let model = ctx
        .model
        .as_deref()
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| model_of(&v[1]).to_owned());
    let sent = time14(&v[v.len() - 2]);
    let mut records = if kind == "ACK" {
        let mut m = DeviceMessage::new(ctx, NAME);
        if let Some(t) = sent {
            m.time = t;
        }
        if ty == "HBD" {
            vec![Record::Heartbeat(m)]
        } else {
            m.set("result", v[0].as_str());
            vec![Record::CommandReply(m)]
        }
    } else {
        match ty {
            "FRI" | "GEO" | "RTL" | "DOG" => fri(&v, sent, ctx)?,
            "ERI" => eri(&v, &model, sent, ctx)?,
            "IGN" | "IGF" | "VGN" | "VGF" => vec![ign(&v, ty, &model, sent, ctx)?],
            "INF" => vec![inf(&v, &model, sent, ctx)],
            _ => vec![basic(&v, ty, &model, sent, ctx)?],
        }
    };
    if kind != "ACK" {
        for r in &mut records {
            match r {
                Record::Position(p) => {
                    p.attributes.insert("type".into(), ty.into());
                }
                Record::Status(m) => {
                    m.attributes.insert("type".into(), ty.into());
                }
                _ => {}
            }
        }
    }
    Ok(records)
}

/// Where the first location block with coordinates starts (its HDOP),
/// searching from `from`.
fn first_block(v: &[String], from: usize) -> Option<usize> {
    (from + 4..v.len().saturating_sub(2))
        .find(|&i| {
            coord(&v[i], 180.0).is_some()
                && v.get(i + 1).is_some_and(|s| coord(s, 90.0).is_some())
                && v.get(i + 2).is_some_and(|s| time14(s).is_some())
        })
        .map(|i| i - 4)
}

/// `FRI`-style reports: `…,<device name>,<power>,<report type>,<count>,
/// [<reserved>,][<battery>,]` then `count` location blocks, then a tail
/// whose layout depends on the device.
fn fri(
    v: &[String],
    sent: Option<DateTime<Utc>>,
    ctx: &ParseContext,
) -> Result<Vec<Record>, ParseError> {
    // A VIN (17 capital letters and digits) before the device name on some models.
    let name_at = if v[3].len() == 17 && v[3].bytes().all(|b| b.is_ascii_alphanumeric()) {
        4
    } else {
        3
    };
    // Without coordinates anywhere, the report is a status record.
    let start = first_block(v, name_at + 1);
    let from = (name_at + 1).min(v.len());
    let head = &v[from..start.unwrap_or(name_at + 4).clamp(from, v.len())];
    let mut msg = Attrs::new();
    if name_at == 4 {
        msg.insert("vin".into(), v[3].as_str().into());
    }
    let power = head.first().and_then(|s| int(s));
    let report_type = head.get(1).and_then(|s| int(s));
    let count = head
        .get(2)
        .and_then(|s| int(s))
        .filter(|&c| (1..=64).contains(&c))
        .unwrap_or(1);
    let battery = match head.len() {
        4 => head.get(3),
        n if n >= 5 => head.get(4),
        _ => None,
    }
    .and_then(|s| int(s));
    let mut blocks = Vec::new();
    let Some(mut at) = start else {
        let mut a = Attrs::new();
        if let Some(b) = battery {
            a.insert("batteryLevel".into(), b.into());
        }
        return Ok(vec![record(None, a, sent, ctx)]);
    };
    for _ in 0..count {
        if !coordinates_at(v, at + 4) {
            break;
        }
        let (b, next) = block(v, at, None)?;
        blocks.push(b);
        at = next;
    }
    let end = v.len().saturating_sub(2);
    let tail: Vec<&str> = v
        .get(at..end)
        .unwrap_or(&[])
        .iter()
        .map(String::as_str)
        .collect();
    if let Some(p) = power.filter(|&p| p > 10) {
        msg.insert("power".into(), (p as f64 / 1000.0).into());
    }
    if let Some(b) = battery {
        msg.insert("batteryLevel".into(), b.into());
    }
    let level = |a: &mut Attrs, s: &str| {
        if let Some(b) = int(s).filter(|b| (0..=999).contains(b)) {
            a.insert("batteryLevel".into(), b.into());
        }
    };
    let is_hours = |s: &str| s.is_empty() || (s.len() == 11 && s.as_bytes()[5] == b':');
    match tail.len() {
        // Personal trackers: index, battery (mV), level, mode, motion, temperature.
        6 if matches!(tail[3], "0" | "1") => {
            if let Some(mv) = int(tail[1]) {
                msg.insert("battery".into(), (mv as f64 / 1000.0).into());
            }
            level(&mut msg, tail[2]);
            if let Some(t) = signed_number(tail[5]) {
                msg.insert("temp1".into(), t.into());
            }
        }
        // Vehicle trackers: odometer, hour meter, adc1, adc2, [reserved],
        // battery level, device status, rpm, fuel consumption, fuel level.
        9 | 10 if is_hours(tail[1]) => {
            let off = tail.len() - 9;
            if let Some(km) = number(tail[0]) {
                msg.insert("odometer".into(), (km * 1000.0).into());
            }
            if let Some(h) = hours(tail[1]) {
                msg.insert("hours".into(), h.into());
            }
            for (i, adc) in [(1, tail[2]), (2, tail[3])] {
                if !adc.is_empty() {
                    msg.insert(format!("adc{i}"), adc.into());
                }
            }
            level(&mut msg, tail[4 + off]);
            if let Some(s) = hex(tail[5 + off]).filter(|_| tail[5 + off].len() == 6) {
                status(&mut msg, s);
            }
            if let Some(rpm) = int(tail[6 + off]) {
                msg.insert("rpm".into(), rpm.into());
            }
            if let Some(fuel) = int(tail[8 + off]) {
                msg.insert("fuel".into(), fuel.into());
            }
        }
        // RSSI and battery level.
        2 if tail[0].len() <= 2 && int(tail[0]).is_some() && !tail[0].contains('.') => {
            if let (Some(rssi), Some(_)) = (int(tail[0]), int(tail[1])) {
                if let Some(rt) = report_type {
                    msg.insert("motion".into(), (rt & 1 != 0).into());
                    msg.insert("charge".into(), (rt & 2 != 0).into());
                }
                msg.insert("rssi".into(), rssi.into());
            }
            level(&mut msg, tail[1]);
        }
        // Odometer and battery level.
        1 | 2 => {
            if tail.len() == 2 {
                if let Some(km) = number(tail[0]) {
                    msg.insert("odometer".into(), (km * 1000.0).into());
                }
            }
            level(&mut msg, tail[tail.len() - 1]);
        }
        _ => {}
    }
    let n = blocks.len();
    if n == 0 {
        return Ok(vec![record(None, msg, sent, ctx)]);
    }
    Ok(blocks
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            // Message-level values belong to the last (newest) location.
            let attrs = if i + 1 == n {
                std::mem::take(&mut msg)
            } else {
                Attrs::new()
            };
            record(Some(b), attrs, sent, ctx)
        })
        .collect())
}

/// `ERI`: like `FRI` with an extension mask (fuel, temperature, BLE …).
fn eri(
    v: &[String],
    model: &str,
    sent: Option<DateTime<Utc>>,
    ctx: &ParseContext,
) -> Result<Vec<Record>, ParseError> {
    let get = |i: usize| v.get(i).map(String::as_str).unwrap_or("");
    let mut i = 3;
    if model == "GV500" {
        i += 1;
    }
    i += 1; // device name
    let mask = hex(get(i)).unwrap_or(0);
    i += 1;
    let power = int(get(i)).map(|p| p as f64 / 1000.0);
    i += 2; // power, report type
    let count = int(get(i))
        .filter(|c| (0..=64).contains(c))
        .ok_or_else(|| invalid("count", get(i)))?;
    i += 1;
    let mut blocks = Vec::new();
    for _ in 0..count {
        let (b, next) = block(v, i, Some(model))?;
        blocks.push(b);
        i = next;
    }
    let mut a = Attrs::new();
    let bit = |n: u32| mask & (1 << n) != 0;
    let opt_int = |s: &str| int(s);
    if let Some(p) = power {
        a.insert("power".into(), p.into());
    }
    if !model.starts_with("GL5") {
        if let Some(km) = number(get(i)) {
            a.insert("odometer".into(), (km * 1000.0).into());
        }
        i += 1;
    }
    if !model.starts_with("GL5") && model != "GL320M" {
        if let Some(h) = hours(get(i)) {
            a.insert("hours".into(), h.into());
        }
        i += 1;
        if !get(i).is_empty() {
            analog(&mut a, 1, get(i));
        }
        i += 1;
    }
    if model.starts_with("GV") && !model.starts_with("GV6") && model != "GV350M" {
        if !get(i).is_empty() {
            analog(&mut a, 2, get(i));
        }
        i += 1;
    }
    if matches!(model, "GV200" | "GV310LAU" | "GV350CEU") {
        if !get(i).is_empty() {
            analog(&mut a, 3, get(i));
        }
        i += 1;
    } else if (model.starts_with("GV3") && model.ends_with("CEU")) || model.starts_with("GV600M") {
        i += 1;
    }
    if model.starts_with("GL5") {
        if let Some(b) = opt_int(get(i)) {
            a.insert("batteryLevel".into(), b.into());
        }
        if let Some(m) = opt_int(get(i + 2)) {
            a.insert("motion".into(), (m > 0).into());
        }
        i += 3;
    } else if model == "GV200" {
        if let Some(x) = hex(get(i)) {
            a.insert("input".into(), x.into());
        }
        if let Some(x) = hex(get(i + 1)) {
            a.insert("output".into(), x.into());
        }
        i += 3;
    } else if model == "GL320M" {
        if let Some(b) = opt_int(get(i)) {
            a.insert("batteryLevel".into(), b.into());
        }
        i += 1;
        if bit(7) {
            i += 1;
        }
    } else {
        if let Some(b) = opt_int(get(i)) {
            a.insert("batteryLevel".into(), b.into());
        }
        i += 1;
        if let Some(s) = hex(get(i)) {
            status(&mut a, s);
        }
        i += 1;
        i += 1; // reserved / UART device type
    }
    if bit(0) && model != "GV350M" {
        if let Some(f) = hex(get(i)) {
            a.insert("fuel".into(), f.into());
        }
        i += 1;
    }
    if bit(1) && i < v.len() - 2 {
        let n = int(get(i)).unwrap_or(0).clamp(0, 16) as usize;
        i += 1;
        for k in 1..=n {
            if let Some(t) = hex(get(i + 2)) {
                a.insert(
                    format!("temp{k}"),
                    (f64::from(t as u16 as i16) * 0.0625).into(),
                );
            }
            i += 3;
        }
    }
    if !bit(2) && (bit(3) || bit(4) || (bit(0) && model == "GV350M")) && i < v.len() - 2 {
        let n = int(get(i)).unwrap_or(0).clamp(0, 16) as usize;
        i += 1;
        for _ in 0..n {
            i += 1; // type
            if model == "GV350M" {
                i += 1; // UART id
                if bit(0) {
                    if let Some(f) = hex(get(i)) {
                        a.insert("fuel".into(), f.into());
                    }
                    i += 1;
                }
            }
            if bit(3) {
                if let Some(f) = number(get(i)) {
                    a.insert("fuel".into(), f.into());
                }
                i += 1;
            }
            if bit(4) {
                i += 1;
            }
            if bit(10) {
                i += 1;
            }
        }
    }
    let n = blocks.len();
    if n == 0 {
        return Ok(vec![record(None, a, sent, ctx)]);
    }
    Ok(blocks
        .into_iter()
        .enumerate()
        .map(|(k, b)| {
            let attrs = if k + 1 == n {
                std::mem::take(&mut a)
            } else {
                Attrs::new()
            };
            record(Some(b), attrs, sent, ctx)
        })
        .collect())
}

/// `IGN`/`IGF`/`VGN`/`VGF`: duration, a location block, hour meter, odometer.
fn ign(
    v: &[String],
    ty: &str,
    model: &str,
    sent: Option<DateTime<Utc>>,
    ctx: &ParseContext,
) -> Result<Record, ParseError> {
    let mut i = 4;
    if model == "CV200" {
        i += 2;
    }
    i += 1; // duration
    let (b, next) = block(v, i, Some(model))?;
    let mut a = Attrs::new();
    a.insert("ignition".into(), ty.contains("GN").into());
    if let Some(h) = v.get(next).and_then(|s| hours(s)) {
        a.insert("hours".into(), h.into());
    }
    if let Some(km) = v.get(next + 1).and_then(|s| number(s)) {
        a.insert("odometer".into(), (km * 1000.0).into());
    }
    Ok(record(Some(b), a, sent, ctx))
}

/// `INF`: device state, ICCID, signal, power and battery.
fn inf(v: &[String], model: &str, sent: Option<DateTime<Utc>>, ctx: &ParseContext) -> Record {
    let get = |i: usize| v.get(i).map(String::as_str).unwrap_or("");
    let mut a = Attrs::new();
    let mut i = 4;
    if let Some(state) = hex(get(i)) {
        let (ignition, motion) = match state {
            0x16 | 0x1a | 0x12 => (Some(false), Some(true)),
            0x11 => (Some(false), Some(false)),
            0x21 => (Some(true), Some(false)),
            0x22 => (Some(true), Some(true)),
            0x41 => (None, Some(false)),
            0x42 => (None, Some(true)),
            _ => (None, None),
        };
        if let Some(x) = ignition {
            a.insert("ignition".into(), x.into());
        }
        if let Some(x) = motion {
            a.insert("motion".into(), x.into());
        }
    }
    i += 1;
    if !get(i).is_empty() {
        a.insert("iccid".into(), get(i).into());
    }
    i += 1;
    if let Some(r) = int(get(i)) {
        a.insert("rssi".into(), r.into());
    }
    i += 3; // rssi, signal quality, external power supply
    if get(i + 1).len() >= 12 {
        i += 1; // BLE sensor MAC
        if let Some(t) = int(get(i)) {
            a.insert("deviceTemp".into(), t.into());
        }
        if let Some(h) = int(get(i + 1)) {
            a.insert("humidity".into(), h.into());
        }
        i += 2;
    }
    let value = get(i);
    if value.contains('.') {
        if let Some(km) = number(value) {
            a.insert("odometer".into(), (km * 1000.0).into());
        }
    } else if let Some(mv) = int(value) {
        a.insert("power".into(), (mv as f64 / 1000.0).into());
    }
    i += 1;
    if model != "GV500VC" {
        if model == "GV350M" || model == "GV310LAU" {
            i += 1;
        } else {
            if let Some(mv) = int(get(i)) {
                a.insert("power2".into(), (mv as f64 / 1000.0).into());
            }
            i += 1;
        }
    }
    if let Some(b) = number(get(i)) {
        a.insert("battery".into(), b.into());
    }
    i += 1;
    if get(i) == "1" {
        a.insert("charge".into(), true.into());
    }
    i += 1;
    if model == "GV310LAU" {
        i += 5;
        for k in 1..=3 {
            if let Some(x) = int(get(i)) {
                a.insert(format!("adc{k}"), x.into());
            }
            i += 1;
        }
    }
    record(None, a, sent, ctx)
}

/// Everything else: the first location block found anywhere, the first
/// cell, alarms by message type, and a few type-specific fields.
fn basic(
    v: &[String],
    ty: &str,
    model: &str,
    sent: Option<DateTime<Utc>>,
    ctx: &ParseContext,
) -> Result<Record, ParseError> {
    let get = |i: usize| v.get(i).map(String::as_str).unwrap_or("");
    let mut a = Attrs::new();
    let report = get(5);
    if (1..=2).contains(&report.len()) {
        if let Some(rt) = hex(report) {
            match ty {
                "STR" | "CTN" => {
                    if matches!(model, "GL500" | "GL530") {
                        if let Some(b) = int(get(8)) {
                            a.insert("batteryLevel".into(), b.into());
                        }
                    }
                }
                "NMR" => {
                    a.insert("motion".into(), (rt == 1).into());
                }
                "DIS" => {
                    a.insert(format!("in{}", rt / 0x10), (rt % 0x10 == 1).into());
                }
                "IGL" => {
                    a.insert("ignition".into(), (rt % 0x10 == 1).into());
                }
                "HBM" => match rt % 0x10 {
                    0 | 3 => add_alarm(&mut a, "hardBraking"),
                    1 | 4 => add_alarm(&mut a, "hardAcceleration"),
                    2 => add_alarm(&mut a, "hardCornering"),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    match ty {
        "DAR" => {
            if let Some(w) = int(get(4)) {
                a.insert("warningType".into(), w.into());
            }
        }
        "DTT" => {
            // Serial data in hex; a fuel sensor's `COMB,<n>,<fuel>,…` line.
            let data = v.iter().rev().skip(2).find(|s| {
                s.len() >= 8
                    && s.len() % 2 == 0
                    && hex(&s[..8]).is_some()
                    && s.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if let Some(text) = data.and_then(|d| hex::decode(d).ok()) {
                let text = String::from_utf8_lossy(&text).into_owned();
                if let Some(line) = text.lines().find(|l| l.starts_with("COMB,")) {
                    if let Some(f) = line.split(',').nth(2).and_then(signed_number) {
                        a.insert("fuel".into(), f.into());
                    }
                }
                a.insert("result".into(), text.into());
            }
        }
        "BAA" => {
            if let Some(mask) = hex(get(8)) {
                let mut k = 9;
                for (bit, key) in [
                    (0, "accessoryName"),
                    (1, "accessoryMac"),
                    (2, "accessoryStatus"),
                    (3, "accessoryVoltage"),
                    (4, "accessoryTemp"),
                    (5, "accessoryHumidity"),
                ] {
                    if mask & (1 << bit) != 0 {
                        let value = get(k);
                        let v: Value = match key {
                            "accessoryVoltage" => int(value)
                                .map(|mv| (mv as f64 / 1000.0).into())
                                .unwrap_or(Value::Null),
                            "accessoryName" | "accessoryMac" => value.into(),
                            _ => int(value).map(Value::from).unwrap_or(Value::Null),
                        };
                        if !v.is_null() {
                            a.insert(key.into(), v);
                        }
                        k += 1;
                    }
                }
            }
        }
        "IDA" => {
            if let Some(id) = v.get(5).filter(|s| !s.is_empty()) {
                a.insert("driverUniqueId".into(), id.as_str().into());
            }
        }
        "LSW" | "TSW" => {
            let n = if ty == "LSW" { 1 } else { 2 };
            a.insert(format!("in{n}"), (get(5) == "1").into());
        }
        _ => {}
    }
    let alarm = match ty {
        "SOS" => Some("sos"),
        "SPD" => Some("overspeed"),
        "TOW" => Some("tow"),
        "IDL" => Some("idle"),
        "PNA" => Some("powerOn"),
        "PFA" => Some("powerOff"),
        "EPN" | "MPN" => Some("powerRestored"),
        "EPF" | "MPF" => Some("powerCut"),
        "BPL" => Some("lowBattery"),
        "STT" => Some("movement"),
        "SWG" => Some("geofence"),
        "TMP" | "TEM" => Some("temperature"),
        "JDR" | "JDS" => Some("jamming"),
        _ => None,
    };
    if let Some(alarm) = alarm {
        add_alarm(&mut a, alarm);
    }
    let block = match first_block(v, 3) {
        Some(start) => {
            let mut b = block(v, start, None)?.0;
            if ty == "CAN" {
                // CAN reports put a fix flag where others put the HDOP.
                b.attributes.remove("hdop");
                b.valid = get(start) == "1";
            }
            Some(b)
        }
        None => None,
    };
    // A battery level just before the send time.
    if block.as_ref().is_some_and(|b| b.fix.is_some()) && sent.is_some() {
        let before = get(v.len().saturating_sub(3));
        if (1..=3).contains(&before.len()) && before.bytes().all(|b| b.is_ascii_digit()) {
            if let Some(b) = int(before) {
                a.insert("batteryLevel".into(), b.into());
            }
        }
    }
    if block.is_none() {
        // The first cell anywhere: mcc, mnc (4 digits each), lac, cell (hex).
        let found = (3..v.len().saturating_sub(3)).find(|&i| {
            let d4 = |s: &str| s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit());
            d4(&v[i])
                && d4(&v[i + 1])
                && v[i + 2].len() == 4
                && hex(&v[i + 2]).is_some()
                && (4..=8).contains(&v[i + 3].len())
                && hex(&v[i + 3]).is_some()
        });
        if let Some(i) = found {
            if let (Some(mcc), Some(mnc), Some(lac), Some(cid)) =
                (int(&v[i]), int(&v[i + 1]), hex(&v[i + 2]), hex(&v[i + 3]))
            {
                set_cells(&mut a, vec![cell(mcc, mnc, lac, cid, None)]);
            }
        }
    }
    Ok(record(block, a, sent, ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        ParseContext::new(
            "865284042140479",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    fn run(s: &str) -> Vec<Record> {
        parse(s.as_bytes(), &ctx()).unwrap()
    }

    #[test]
    fn fixed_report() {
        let r = run("+RESP:GTFRI,DE0114,865284042140479,,0,0,1,1,0.0,0,28.0,-118.268093,33.975430,20200901105954,0311,0480,3500,00D07F02,18,0,,93,0,,,20200901110000,0355$");
        assert_eq!(r.len(), 1);
        let Record::Position(p) = &r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(
            (p.latitude, p.longitude, p.altitude),
            (33.975430, -118.268093, 28.0)
        );
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2020, 9, 1, 10, 59, 54).unwrap()
        );
        assert!(p.valid);
        assert_eq!(p.attributes["batteryLevel"], 93);
        assert_eq!(
            p.attributes["network"]["cellTowers"][0]["cellId"],
            0x00D07F02
        );
    }

    #[test]
    fn vehicle_tail_status() {
        let r = run("+RESP:GTFRI,380903,869606020188383,,,40,1,2,43.4,80,252.4,8.606297,50.700200,20200721090109,0262,0001,1932,1BA4,00,0.0,,,,0,220100,,,,20200721090110,00B9$");
        let a = r[0].attributes();
        assert_eq!(a["in1"], false);
        assert_eq!(a["ignition"], true);
        assert!(a.get("speed").is_none());
    }

    #[test]
    fn vin_as_last_field_does_not_panic() {
        // Found by fuzzing: a 17-character VIN-like field ends the message.
        let _ = parse(
            b"+RESP:GTFRI,1A0200,865284042140479,ABCDEFGHJKLMNPRST",
            &ctx(),
        );
        let crash = b"+RESP:GTFRI,1A]0200,8605+RE2\0:GTIN****,1010";
        let _ = parse(crash, &ctx());
    }

    #[test]
    fn without_fix_is_status() {
        let r = run("+RESP:GTPFA,F50201,866425030235982,GL300M,20190208124849,0BD4$");
        assert!(matches!(&r[0], Record::Status(m) if m.attributes["alarm"] == "powerOff"));
        let r = run("+ACK:GTHBD,0F0106,862193020451183,,20160727001255,3B7D$");
        assert!(matches!(&r[0], Record::Heartbeat(_)));
        assert!(parse(b"+RESP:GTFRI,1,2", &ctx()).is_err());
        assert!(parse(&hex::decode("2b4556540c00fc1fbf005c45").unwrap(), &ctx()).is_err());
    }
}
