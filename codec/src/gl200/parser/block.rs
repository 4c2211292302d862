//! The location block most reports carry (HDOP to fix time, WiFi, cell,
//! odometer or append mask), finding it, and turning it into a record.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::text::{cell, int, number, set_cells, signed_number};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::super::NAME;
use super::Attrs;

pub(super) fn time14(s: &str) -> Option<DateTime<Utc>> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?;
    Some(Utc.from_utc_datetime(&t))
}

/// A coordinate as Queclink writes it: optional `-`, digits, a point and
/// six decimals (some firmwares send fewer).
pub(super) fn coord(s: &str, limit: f64) -> Option<f64> {
    s.contains('.')
        .then(|| signed_number(s))
        .flatten()
        .filter(|v| v.abs() <= limit)
}

pub(super) fn hex(s: &str) -> Option<i64> {
    (!s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| i64::from_str_radix(s, 16).ok())
        .flatten()
}

pub(super) fn invalid(what: &str, v: &str) -> ParseError {
    let shown: String = v.chars().take(40).collect();
    ParseError::Invalid(format!("bad {what} {shown:?}"))
}

/// One decoded location block.
pub(super) struct Block {
    pub(super) fix: Option<(f64, f64, DateTime<Utc>)>,
    pub(super) valid: bool,
    speed: f64,
    course: f64,
    altitude: f64,
    pub(super) attributes: Attrs,
}

/// Whether a location block's coordinates and time start at `i` (the
/// longitude; all three may be empty when there is no fix).
pub(super) fn coordinates_at(v: &[String], i: usize) -> bool {
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
pub(super) fn block(
    v: &[String],
    at: usize,
    model: Option<&str>,
) -> Result<(Block, usize), ParseError> {
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
pub(super) fn record(
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

/// Where the first location block with coordinates starts (its HDOP),
/// searching from `from`.
pub(super) fn first_block(v: &[String], from: usize) -> Option<usize> {
    (from + 4..v.len().saturating_sub(2))
        .find(|&i| {
            coord(&v[i], 180.0).is_some()
                && v.get(i + 1).is_some_and(|s| coord(s, 90.0).is_some())
                && v.get(i + 2).is_some_and(|s| time14(s).is_some())
        })
        .map(|i| i - 4)
}
