//! `ERI` reports: `FRI` with an extension mask (fuel, temperature, BLE …).

use chrono::{DateTime, Utc};

use crate::text::{int, number};
use crate::{ParseContext, ParseError, Record};

use super::attrs::{analog, hours, status};
use super::block::{block, hex, invalid, record};
use super::Attrs;

/// `ERI`: like `FRI` with an extension mask (fuel, temperature, BLE …).
pub(super) fn eri(
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
