//! Every other report type: alarms and events, heartbeats and the like.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::text::{cell, int, set_cells, signed_number};
use crate::{ParseContext, ParseError, Record};

use super::attrs::add_alarm;
use super::block::{block, first_block, hex, record};
use super::Attrs;

/// Everything else: the first location block found anywhere, the first
/// cell, alarms by message type, and a few type-specific fields.
pub(super) fn basic(
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
