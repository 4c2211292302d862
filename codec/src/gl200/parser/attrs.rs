//! Attribute decoders several report types share: alarms, the device
//! status word, hour meters and analog inputs.

use serde_json::Value;

use crate::text::int;

use super::Attrs;

/// Adds an alarm; several are joined with commas, each once.
pub(super) fn add_alarm(a: &mut Attrs, alarm: &str) {
    let joined = match a.get("alarm").and_then(Value::as_str) {
        Some(previous) if previous.split(',').any(|x| x == alarm) => return,
        Some(previous) => format!("{previous},{alarm}"),
        None => alarm.to_owned(),
    };
    a.insert("alarm".into(), joined.into());
}

/// Device status (6 hex digits): ignition state, inputs, outputs.
pub(super) fn status(a: &mut Attrs, value: i64) {
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
pub(super) fn hours(s: &str) -> Option<i64> {
    let mut parts = s.split(':');
    let h = int(parts.next()?)?;
    let m = parts.next().map(int).unwrap_or(Some(0))?;
    let sec = parts.next().map(int).unwrap_or(Some(0))?;
    h.checked_mul(3600)?
        .checked_add(m * 60 + sec)?
        .checked_mul(1000)
}

pub(super) fn analog(a: &mut Attrs, index: usize, s: &str) {
    if let Some(f) = s.strip_prefix('F') {
        if let Some(v) = int(f) {
            a.insert(format!("fuel{index}"), v.into());
        }
    } else if let Some(v) = int(s) {
        a.insert(format!("adc{index}"), (v as f64 / 1000.0).into());
    }
}
