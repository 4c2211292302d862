//! `fleetbus verify --effects`: what the monkeys made of the records.
//!
//! * **Latest position.** Every device's entry in the `devices` bucket
//!   holds its newest record (the one with the latest fix time in PARSED).
//! * **Events once.** The monkeys derive `ignitionOn`/`ignitionOff` from a
//!   device's records in fix-time order. The expected transitions are those
//!   of the device's records sorted by fix time. A fix that reaches the
//!   monkeys after a newer one raises no transition (docs/workers.md), so
//!   when records of a device were processed out of order (a worker died
//!   holding one, two workers raced) a transition shows at a later fix of
//!   the same stretch: each expected transition must appear once, of the
//!   right type, at a fix time from its record up to (not including) the
//!   next transition's. Any other event (overspeed, alarm) of these devices
//!   is unexpected: the simulator drives below the overspeed threshold and
//!   raises no alarms.

use fleetbus_wire::device::DeviceEntry;
use fleetbus_wire::names;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;

use super::report::Key;

/// What the effects check found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Effects {
    pub devices: usize,
    /// Devices whose entry holds their newest record.
    pub latest_ok: usize,
    pub latest_wrong: Vec<String>,
    pub events_expected: usize,
    pub events_ok: usize,
    pub events_wrong: Vec<String>,
    /// Devices some of whose transitions never showed, while every event
    /// that did is a real one, once: what processing a device's fixes out
    /// of order costs (docs/reliability.md, "Ordering").
    pub events_missing: Vec<String>,
}

impl Effects {
    pub fn ok(&self) -> bool {
        self.ok_but_for_order() && self.events_missing.is_empty()
    }

    /// Right but for transitions lost to out-of-order processing: every
    /// latest position is right and no event is wrong or duplicated.
    pub fn ok_but_for_order(&self) -> bool {
        self.latest_wrong.is_empty() && self.events_wrong.is_empty()
    }
}

/// One event as the monkeys publish it.
struct Event {
    kind: String,
    fix_time: DateTime<Utc>,
}

/// Checks the effects of the records in `seen` (PARSED's positions, by
/// device and fix time) for the devices in `reported` — not for others
/// PARSED carried too (another fleet on the same system, `just up`'s own
/// simulator), whose newest records the judged run never saw.
pub async fn check(
    js: &jetstream::Context,
    seen: &BTreeMap<Key, (usize, Value)>,
    reported: &BTreeSet<&str>,
    wait: Duration,
) -> anyhow::Result<Effects> {
    let mut by_device: BTreeMap<&str, Vec<(&DateTime<Utc>, &Value)>> = BTreeMap::new();
    for ((device, fix), (_, record)) in seen {
        if reported.contains(device.as_str()) {
            by_device.entry(device).or_default().push((fix, record));
        }
    }
    let mut out = Effects {
        devices: by_device.len(),
        ..Effects::default()
    };
    let kv = retry(wait, || js.get_key_value(names::DEVICES_BUCKET)).await?;
    for (device, records) in &by_device {
        let (newest, record) = records.last().expect("a device has records");
        let key = names::device_key(device);
        let entry = retry(wait, || kv.get(&key)).await?;
        // Read as the contract describes it: an entry that does not decode
        // as one is as wrong as a missing one.
        let got = entry
            .and_then(|v| serde_json::from_slice::<DeviceEntry>(&v).ok())
            .map(|e| e.position);
        let same = got.as_ref().is_some_and(|p| {
            p.fix_time == **newest
                && Some(p.latitude) == record["latitude"].as_f64()
                && Some(p.longitude) == record["longitude"].as_f64()
        });
        if same {
            out.latest_ok += 1;
        } else {
            out.latest_wrong.push(format!(
                "{device}: latest position {} instead of the record of {}",
                got.map(|p| p.fix_time.to_rfc3339())
                    .unwrap_or_else(|| "missing".into()),
                newest.to_rfc3339()
            ));
        }
    }
    let events = read_events(js, wait).await?;
    for (device, records) in &by_device {
        let expected = transitions(records);
        out.events_expected += expected.len();
        let got = events.get(*device).map(Vec::as_slice).unwrap_or_default();
        match judge_events(&expected, got) {
            Ok(()) => out.events_ok += expected.len(),
            Err(Misjudged::Wrong(why)) => out.events_wrong.push(format!("{device}: {why}")),
            Err(Misjudged::Missing(why)) => {
                out.events_ok += got.len();
                out.events_missing.push(format!("{device}: {why}"))
            }
        }
    }
    Ok(out)
}

/// An expected ignition transition: its event type, and the fix times from
/// its record up to (not including) the next transition's.
type Transition = (&'static str, DateTime<Utc>, Option<DateTime<Utc>>);

/// The ignition transitions of a device's records in fix-time order.
fn transitions(records: &[(&DateTime<Utc>, &Value)]) -> Vec<Transition> {
    let mut out: Vec<Transition> = Vec::new();
    let mut state: Option<bool> = None;
    for (fix, record) in records {
        let Some(now) = record["attributes"]["ignition"].as_bool() else {
            continue;
        };
        if let Some(before) = state {
            if before != now {
                if let Some(last) = out.last_mut() {
                    last.2 = Some(**fix);
                }
                out.push((if now { "ignitionOn" } else { "ignitionOff" }, **fix, None));
            }
        }
        state = Some(now);
    }
    out
}

/// Why a device's events are not what its records call for.
#[derive(Debug)]
enum Misjudged {
    /// An event twice, of a kind that should not be, or outside every
    /// stretch of its kind.
    Wrong(String),
    /// Fewer events than transitions, each of them right.
    Missing(String),
}

impl Misjudged {
    #[cfg(test)]
    fn text(&self) -> &str {
        match self {
            Misjudged::Wrong(s) | Misjudged::Missing(s) => s,
        }
    }
}

fn judge_events(expected: &[Transition], got: &[Event]) -> Result<(), Misjudged> {
    let mut unique = BTreeSet::new();
    for e in got {
        if !unique.insert((e.kind.as_str(), e.fix_time)) {
            return Err(Misjudged::Wrong(format!(
                "{} at {} twice",
                e.kind,
                e.fix_time.to_rfc3339()
            )));
        }
    }
    if let Some(other) = got.iter().find(|e| !e.kind.starts_with("ignition")) {
        return Err(Misjudged::Wrong(format!(
            "unexpected {} at {}",
            other.kind,
            other.fix_time.to_rfc3339()
        )));
    }
    let inside = |e: &Event, (kind, from, until): &Transition| {
        e.kind == *kind && e.fix_time >= *from && until.is_none_or(|u| e.fix_time < u)
    };
    if got.len() == expected.len() {
        for (e, t) in got.iter().zip(expected) {
            if !inside(e, t) {
                return Err(Misjudged::Wrong(format!(
                    "{} at {} where {} from {} was expected",
                    e.kind,
                    e.fix_time.to_rfc3339(),
                    t.0,
                    t.1.to_rfc3339()
                )));
            }
        }
        return Ok(());
    }
    let at = |t: &DateTime<Utc>| t.format("%H:%M:%S").to_string();
    let shown: Vec<String> = got
        .iter()
        .map(|e| format!("{} {}", e.kind, at(&e.fix_time)))
        .collect();
    let want: Vec<String> = expected
        .iter()
        .map(|(k, f, _)| format!("{k} {}", at(f)))
        .collect();
    let why = format!(
        "{} ignition events {shown:?}, {} expected {want:?}",
        got.len(),
        expected.len()
    );
    // Fewer is "missing" only when each event falls, in order, in a
    // distinct stretch of its kind: a real transition, reported late.
    let mut stretches = expected.iter();
    let each_real =
        got.len() < expected.len() && got.iter().all(|e| stretches.any(|t| inside(e, t)));
    Err(if each_real {
        Misjudged::Missing(why)
    } else {
        Misjudged::Wrong(why)
    })
}

/// Every event on EVENTS by device, in fix-time order (an ordered consumer:
/// it leaves the stream as it is).
async fn read_events(
    js: &jetstream::Context,
    wait: Duration,
) -> anyhow::Result<BTreeMap<String, Vec<Event>>> {
    let stream = retry(wait, || js.get_stream(names::EVENTS)).await?;
    let total = stream.cached_info().state.messages;
    let mut out: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    if total == 0 {
        return Ok(out);
    }
    // A node that just died may have led the meta group: creating a
    // consumer fails until another is elected.
    let reader = retry(wait, || {
        stream.create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
    })
    .await
    .context("an ordered consumer on EVENTS")?;
    let mut messages = reader.messages().await?;
    let mut read = 0;
    while read < total {
        let msg = tokio::time::timeout(wait, messages.next())
            .await
            .context("EVENTS did not deliver everything it holds")?
            .context("EVENTS ended")??;
        read += 1;
        let v: Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
        let (Some(kind), Some(device), Some(fix)) = (
            v["type"].as_str(),
            v["device_id"].as_str(),
            v["fix_time"].as_str().and_then(|t| t.parse().ok()),
        ) else {
            continue;
        };
        out.entry(device.to_string()).or_default().push(Event {
            kind: kind.to_string(),
            fix_time: fix,
        });
    }
    for events in out.values_mut() {
        events.sort_by_key(|e| e.fix_time);
    }
    Ok(out)
}

/// Tries `f` until it works or `wait` passed (no leader right after a restart).
async fn retry<T, E: std::fmt::Display, Fut: std::future::Future<Output = Result<T, E>>>(
    wait: Duration,
    mut f: impl FnMut() -> Fut,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + wait;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "Not available yet; trying again.");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => anyhow::bail!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, s).unwrap()
    }

    fn records(ignitions: &[bool]) -> Vec<(DateTime<Utc>, Value)> {
        ignitions
            .iter()
            .enumerate()
            .map(|(i, &on)| {
                (
                    t(i as u32),
                    serde_json::json!({"attributes": {"ignition": on}}),
                )
            })
            .collect()
    }

    fn ev(kind: &str, s: u32) -> Event {
        Event {
            kind: kind.into(),
            fix_time: t(s),
        }
    }

    #[test]
    fn each_transition_once_at_its_stretch() {
        let r = records(&[true, true, false, false, true]);
        let refs: Vec<(&DateTime<Utc>, &Value)> = r.iter().map(|(a, b)| (a, b)).collect();
        let expected = transitions(&refs);
        assert_eq!(expected.len(), 2);
        assert!(judge_events(&expected, &[ev("ignitionOff", 2), ev("ignitionOn", 4)]).is_ok());
        // Record 2 came late: the transition shows at record 3.
        assert!(judge_events(&expected, &[ev("ignitionOff", 3), ev("ignitionOn", 4)]).is_ok());
        let twice = [
            ev("ignitionOff", 2),
            ev("ignitionOff", 2),
            ev("ignitionOn", 4),
        ];
        assert!(matches!(
            judge_events(&expected, &twice),
            Err(Misjudged::Wrong(w)) if w.contains("twice")
        ));
        assert!(
            matches!(
                judge_events(&expected, &[ev("ignitionOff", 2)]),
                Err(Misjudged::Missing(_))
            ),
            "one missing, the other right"
        );
        assert!(
            matches!(
                judge_events(&expected, &[ev("ignitionOn", 2)]),
                Err(Misjudged::Wrong(_))
            ),
            "one missing, the other of the wrong kind"
        );
        assert!(
            matches!(
                judge_events(&expected, &[ev("ignitionOff", 4), ev("ignitionOn", 4)]),
                Err(Misjudged::Wrong(_))
            ),
            "outside its stretch"
        );
        assert!(judge_events(
            &expected,
            &[
                ev("ignitionOff", 2),
                ev("overspeed", 3),
                ev("ignitionOn", 4)
            ]
        )
        .unwrap_err()
        .text()
        .contains("unexpected overspeed"));
    }
}
