//! `FRI`-style reports (`FRI`, `GEO`, `RTL`, `DOG`): several location
//! blocks and a device-specific tail.

use chrono::{DateTime, Utc};

use crate::text::{int, number, signed_number};
use crate::{ParseContext, ParseError, Record};

use super::attrs::{hours, status};
use super::block::{block, coordinates_at, first_block, hex, record};
use super::Attrs;

/// `FRI`-style reports: `…,<device name>,<power>,<report type>,<count>,
/// [<reserved>,][<battery>,]` then `count` location blocks, then a tail
/// whose layout depends on the device.
pub(super) fn fri(
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
