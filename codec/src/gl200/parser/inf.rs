//! `INF` device information reports.

use chrono::{DateTime, Utc};

use crate::text::{int, number};
use crate::{ParseContext, Record};

use super::block::{hex, record};
use super::Attrs;

/// `INF`: device state, ICCID, signal, power and battery.
pub(super) fn inf(
    v: &[String],
    model: &str,
    sent: Option<DateTime<Utc>>,
    ctx: &ParseContext,
) -> Record {
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
