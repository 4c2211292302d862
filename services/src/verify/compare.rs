//! Every reported record against what reached PARSED: missing, there more
//! than once, or there with other values than were sent. Values are
//! compared within what the protocols carry on the wire (GT06 sends
//! 1/1,800,000 of a degree and whole km/h), so that a record that came
//! through a coarser protocol is not called altered.

use std::collections::BTreeMap;

use serde_json::Value;

use super::effects::Effects;
use super::parsed::Parsed;
use super::report::Key;
use crate::simulate::Reported;

/// The outcome of a check.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcome {
    pub reported: usize,
    pub found_once: usize,
    pub missing: Vec<String>,
    pub duplicated: Vec<String>,
    pub altered: Vec<String>,
    /// PARSED messages read (positions of other devices included).
    pub read: u64,
    /// The monkeys' effects, with `--effects`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effects: Option<Effects>,
    /// `--allow-lost-transitions`.
    #[serde(skip)]
    pub allow_lost_transitions: bool,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        let effects_ok = |e: &Effects| {
            if self.allow_lost_transitions {
                e.ok_but_for_order()
            } else {
                e.ok()
            }
        };
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.altered.is_empty()
            && self.effects.as_ref().is_none_or(effects_ok)
    }
}

/// Every reported record against what reached PARSED.
pub fn compare(expected: &BTreeMap<Key, Reported>, parsed: &Parsed) -> Outcome {
    let mut out = Outcome {
        reported: expected.len(),
        read: parsed.read,
        ..Outcome::default()
    };
    for (key, sent) in expected {
        let name = format!("{} {}", key.0, key.1.to_rfc3339());
        match parsed.seen.get(key) {
            None => out.missing.push(name),
            Some((n, _)) if *n > 1 => out.duplicated.push(format!("{name} ×{n}")),
            Some((_, v)) => match differs(sent, v) {
                Some(what) => out.altered.push(format!("{name}: {what}")),
                None => out.found_once += 1,
            },
        }
    }
    out
}

/// What differs between what was sent and what arrived, within the wire
/// precision of the protocols (GT06: 1/1,800,000 degree, whole km/h).
fn differs(sent: &Reported, got: &Value) -> Option<String> {
    let num = |k: &str| got.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let checks = [
        ("latitude", sent.latitude, num("latitude"), 1e-5),
        ("longitude", sent.longitude, num("longitude"), 1e-5),
        ("speed", sent.speed, num("speed"), 1.0),
    ];
    for (name, want, have, tol) in checks {
        if (want - have).abs() > tol || have.is_nan() {
            return Some(format!("{name} sent {want}, stored {have}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn sent() -> Reported {
        Reported {
            device_id: "350010000000001".into(),
            protocol: "gt06".into(),
            fix_time: Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
            latitude: 54.61234,
            longitude: 25.21234,
            speed: 42.0,
            course: 90.0,
            sent_at: Utc::now(),
            acked_at: Utc::now(),
        }
    }

    #[test]
    fn values_within_wire_precision_agree_and_others_do_not() {
        let s = sent();
        let ok = serde_json::json!({"type":"position","latitude":54.6123403,"longitude":25.2123398,"speed":42.0});
        assert_eq!(differs(&s, &ok), None);
        let moved = serde_json::json!({"type":"position","latitude":54.7,"longitude":25.21234,"speed":42.0});
        assert!(differs(&s, &moved).unwrap().contains("latitude"));
        let no_speed =
            serde_json::json!({"type":"position","latitude":54.61234,"longitude":25.21234});
        assert!(differs(&s, &no_speed).is_some());
    }
}
