//! The `devices` built-in: the latest position of every device in a
//! replicated JetStream key-value bucket, and device events in the `EVENTS`
//! stream.
//!
//! **Latest position.** Key: the device id (characters a key may not hold
//! become `_`). Value: a JSON [`DeviceEntry`] whose `position` is the fix
//! with the newest `fix_time` seen. A fix replaces it only if it is newer;
//! the write is a compare-and-set on the entry's revision (`update` with the
//! revision this process last wrote or read — a partition's owner writes
//! its devices' entries without reading them first — or `create`), redone
//! from a fresh read on conflict, so concurrent monkeys never lose a newer
//! fix to an older one. Any NATS client can read it:
//! `nats kv get devices 356307042441013`.
//!
//! **Events** (`events.<protocol>.<device>.<type>`, JSON [`Event`]):
//! `ignitionOn`/`ignitionOff` when the `ignition` attribute changes,
//! `overspeed` when the speed goes above the threshold, `alarm` for each
//! alarm the device reports (`attributes.alarm`: `sos`, `powerCut`, …).
//! Transitions are derived per device in fix-time order: against the
//! state kept in the device's entry, and only by a fix newer than the
//! latest one. A late fix (older than the latest) changes nothing and
//! raises no transition, which keeps the events consistent whatever order
//! fixes arrive in; alarms of a late fix are still reported.
//!
//! **A fix from the future** — dated more than `max_future_secs` (a day by
//! default) after the gateway received it: a device with a wrong clock, a
//! bad parse, a forged frame — never becomes the latest position, since
//! every fix after it would be late and the device would look frozen at it
//! for good. It changes nothing, raises a `futureFix` event (its alarms are
//! still reported), and stays in PARSED like any record.
//!
//! **Idempotence.** Each event's `Nats-Msg-Id` is derived from the PARSED
//! message's id (`<msg id>:<type>`), and the entry remembers the events of
//! the last few applied messages that raised any. The entry is written
//! first, then the events are published; a redelivered message whose fix is
//! already applied publishes the remembered events again (the stream drops
//! the duplicates) and changes nothing.

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, SecondsFormat, Utc};
use fleetbus_codec::{Position, Record};
use fleetbus_wire::names::{device_key, DEVICES_BUCKET};
use serde::{Deserialize, Serialize};

pub use fleetbus_wire::device::{Applied, DeviceEntry};
pub use fleetbus_wire::event::Event;

use super::{Meta, ProcessError, Processor};
use crate::revisions::Revisions;

/// Settings of the `devices` processor (`[monkey.devices]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevicesConfig {
    /// Key-value bucket of the latest positions.
    pub bucket: String,
    /// Derive events and publish them to EVENTS.
    pub events: bool,
    /// Speed above which `overspeed` is raised, km/h (0: never).
    pub overspeed_kmh: f64,
    /// How many applied messages that raised events an entry remembers,
    /// to publish their events again when they are redelivered.
    pub remember: usize,
    /// How far after its reception a fix may be dated and still become the
    /// latest position, seconds (0: no limit).
    pub max_future_secs: u64,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            bucket: DEVICES_BUCKET.into(),
            events: true,
            overspeed_kmh: 120.0,
            remember: 16,
            max_future_secs: 86_400,
        }
    }
}

/// What one fix does to a device's entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Already applied (a redelivery): publish these again, change nothing.
    Replay(Vec<Event>),
    /// Not newer than the latest fix: change nothing, publish these (alarms).
    Late(Vec<Event>),
    /// Dated too far after its reception: change nothing, publish these
    /// (`futureFix`, alarms).
    Future(Vec<Event>),
    /// Newer: write this entry, then publish these.
    Newer(Box<DeviceEntry>, Vec<Event>),
}

fn event(kind: &str, p: &Position, source: &str) -> Event {
    Event {
        kind: kind.into(),
        device_id: p.device_id.clone(),
        protocol: p.protocol.clone(),
        fix_time: p.fix_time.to_rfc3339_opts(SecondsFormat::Millis, true),
        latitude: p.latitude,
        longitude: p.longitude,
        speed: p.speed,
        alarm: None,
        threshold: None,
        source: source.into(),
    }
}

fn alarms(p: &Position, source: &str) -> Vec<Event> {
    let Some(text) = p.attributes.get("alarm").and_then(|v| v.as_str()) else {
        return Vec::new();
    };
    text.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| Event {
            alarm: Some(a.to_string()),
            ..event("alarm", p, source)
        })
        .collect()
}

/// Whether fix `p`, received at `received`, is dated too far after it.
pub fn from_the_future(p: &Position, received: DateTime<Utc>, config: &DevicesConfig) -> bool {
    let limit = i64::try_from(config.max_future_secs).unwrap_or(i64::MAX);
    config.max_future_secs > 0
        && p.fix_time.signed_duration_since(received) > chrono::TimeDelta::seconds(limit)
}

/// The pure core: how fix `p` (from message `source`, received at
/// `received`) changes `prev`.
pub fn step(
    prev: Option<&DeviceEntry>,
    p: &Position,
    source: &str,
    received: DateTime<Utc>,
    config: &DevicesConfig,
) -> Step {
    let with_events = |events: Vec<Event>| if config.events { events } else { Vec::new() };
    if let Some(prev) = prev {
        if let Some(applied) = prev.recent.iter().find(|a| a.source == source) {
            return Step::Replay(with_events(applied.events.clone()));
        }
    }
    if from_the_future(p, received, config) {
        let mut events = vec![event("futureFix", p, source)];
        events.extend(alarms(p, source));
        return Step::Future(with_events(events));
    }
    if let Some(prev) = prev {
        if p.fix_time <= prev.position.fix_time {
            return Step::Late(with_events(alarms(p, source)));
        }
    }
    let ignition = p.attributes.get("ignition").and_then(|v| v.as_bool());
    let over = config.overspeed_kmh > 0.0 && p.speed > config.overspeed_kmh;
    let mut events = Vec::new();
    if let (Some(before), Some(now)) = (prev.and_then(|e| e.ignition), ignition) {
        if before != now {
            events.push(event(
                if now { "ignitionOn" } else { "ignitionOff" },
                p,
                source,
            ));
        }
    }
    if over && !prev.is_some_and(|e| e.overspeed) {
        events.push(Event {
            threshold: Some(config.overspeed_kmh),
            ..event("overspeed", p, source)
        });
    }
    events.extend(alarms(p, source));
    let events = with_events(events);
    let mut recent = prev.map(|e| e.recent.clone()).unwrap_or_default();
    // Only messages that raised events need replaying: a redelivered one
    // without events is older than (or as old as) the latest fix and is
    // found late, which publishes nothing.
    if !events.is_empty() {
        recent.push(Applied {
            source: source.into(),
            events: events.clone(),
        });
    }
    let excess = recent.len().saturating_sub(config.remember.max(1));
    recent.drain(..excess);
    let entry = DeviceEntry {
        position: p.clone(),
        source: source.into(),
        ignition: ignition.or(prev.and_then(|e| e.ignition)),
        overspeed: over,
        recent,
    };
    Step::Newer(Box::new(entry), events)
}

/// The built-in processor; see the module documentation.
pub struct Devices {
    js: jetstream::Context,
    kv: kv::Store,
    config: DevicesConfig,
    /// The entries this process wrote or read last, with their revisions
    /// (`None`: a deleted entry): the partition's owner writes its devices'
    /// entries without reading them first.
    cache: Revisions<Option<DeviceEntry>>,
    /// Fixes from the future since the last line about them was logged,
    /// and when that was (one line a minute at most).
    future: std::sync::Mutex<(u64, Option<std::time::Instant>)>,
}

/// At most one log line about fixes from the future per this long.
const FUTURE_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// How much of the devices' entries a process caches, roughly (their size
/// in memory); past it the cache starts over.
const CACHE_BYTES: usize = 64 << 20;

/// What a cached entry costs, roughly: the fix and the remembered events.
fn cached_size(key: &str, entry: &Option<DeviceEntry>) -> usize {
    let remembered = entry.as_ref().map_or(0, |e| {
        e.recent
            .iter()
            .map(|a| 64 + a.source.len() + 256 * a.events.len())
            .sum()
    });
    key.len() + 512 + remembered
}

impl Devices {
    /// Opens the bucket (it must exist: the monkey provisions it at start).
    pub async fn open(js: jetstream::Context, config: DevicesConfig) -> Result<Devices, String> {
        let kv = js
            .get_key_value(&config.bucket)
            .await
            .map_err(|e| format!("key-value bucket {}: {e}", config.bucket))?;
        Ok(Devices {
            js,
            kv,
            config,
            cache: Revisions::new(CACHE_BYTES, cached_size),
            future: std::sync::Mutex::new((0, None)),
        })
    }

    /// Counts a fix from the future and logs it, rate-limited.
    fn future(&self, p: &Position, received: DateTime<Utc>) {
        let mut future = self.future.lock().unwrap_or_else(|e| e.into_inner());
        future.0 += 1;
        if future.1.is_none_or(|at| at.elapsed() >= FUTURE_LOG_EVERY) {
            tracing::warn!(
                device = %p.device_id,
                fix_time = %p.fix_time.to_rfc3339_opts(SecondsFormat::Millis, true),
                received = %received.to_rfc3339_opts(SecondsFormat::Millis, true),
                count = future.0,
                "Fixes dated more than max_future_secs after their reception were kept from the \
                 latest position (a futureFix event each); this is the latest."
            );
            *future = (0, Some(std::time::Instant::now()));
        }
    }

    async fn publish(&self, events: &[Event]) -> Result<(), ProcessError> {
        let mut acks = Vec::with_capacity(events.len());
        for e in events {
            let ack = self
                .js
                .publish_with_headers(e.subject(), e.headers(), e.payload().into())
                .await
                .map_err(|e| ProcessError::Retry(format!("publish event: {e}")))?;
            acks.push(ack.into_future());
        }
        for r in futures::future::join_all(acks).await {
            r.map_err(|e| ProcessError::Retry(format!("event PubAck: {e}")))?;
        }
        Ok(())
    }
}

use std::future::IntoFuture;

/// A fix to apply: the position, its record's id, when it was received.
type Fix<'a> = (&'a Position, &'a str, DateTime<Utc>);

/// When a record says nothing of its reception (a PARSED message of an
/// older hamster), it is taken as received now.
fn received(meta: &Meta) -> DateTime<Utc> {
    meta.received_at.unwrap_or_else(Utc::now)
}

impl Devices {
    /// Applies `fixes` of one device, in order.
    async fn apply(&self, device_id: &str, fixes: &[Fix<'_>]) -> Result<(), ProcessError> {
        let key = device_key(device_id);
        let mut rest = fixes;
        while !rest.is_empty() {
            let n = self.apply_some(&key, rest).await?;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Folds a prefix of `fixes` into the entry, writes it once (a
    /// compare-and-set on the revision this process last wrote or read,
    /// redone from a fresh read on conflict), then publishes the prefix's
    /// events; returns the prefix's length. The prefix ends after
    /// `remember` messages that raised events, so that a crash between the
    /// write and the events' PubAcks leaves every one of them in the
    /// entry's memory, to be published again on redelivery.
    ///
    /// A remembered entry can only be older than the stored one (entries
    /// only move to newer fixes), so a fix found late or applied against it
    /// is so against the stored one too; a fix found newer is written with
    /// a compare-and-set that fails if anyone wrote since.
    async fn apply_some(&self, key: &str, fixes: &[Fix<'_>]) -> Result<usize, ProcessError> {
        let retry =
            |what: &str, e: &dyn std::fmt::Display| ProcessError::Retry(format!("{what}: {e}"));
        let mut cached = self.cache.take(key);
        for _ in 0..32 {
            let (mut current, revision) = match cached.take() {
                Some((revision, entry)) => (entry, Some(revision)),
                None => self.read(key).await.map_err(|e| retry("read entry", &e))?,
            };
            let (mut events, mut changed, mut eventful, mut taken) = (Vec::new(), false, 0, 0);
            for &(p, source, received) in fixes {
                taken += 1;
                match step(current.as_ref(), p, source, received, &self.config) {
                    Step::Replay(ev) | Step::Late(ev) => events.extend(ev),
                    Step::Future(ev) => {
                        self.future(p, received);
                        events.extend(ev);
                    }
                    Step::Newer(next, ev) => {
                        eventful += usize::from(!ev.is_empty());
                        events.extend(ev);
                        current = Some(*next);
                        changed = true;
                    }
                }
                if eventful >= self.config.remember.max(1) {
                    break;
                }
            }
            let revision = if changed {
                let value = serde_json::to_vec(current.as_ref().expect("changed: an entry"))
                    .map_err(|e| ProcessError::Invalid(e.to_string()))?;
                let written = match revision {
                    Some(rev) => match self.kv.update(key, value.into(), rev).await {
                        Ok(rev) => Some(rev),
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => None,
                        Err(e) => return Err(retry("update entry", &e)),
                    },
                    None => match self.kv.create(key, value.into()).await {
                        Ok(rev) => Some(rev),
                        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => None,
                        Err(e) => return Err(retry("create entry", &e)),
                    },
                };
                match written {
                    Some(rev) => Some(rev),
                    // Another monkey wrote since: read again and redo.
                    None => continue,
                }
            } else {
                revision
            };
            if let Some(revision) = revision {
                self.cache.put(key.to_string(), revision, current);
            }
            self.publish(&events).await?;
            return Ok(taken);
        }
        Err(ProcessError::Retry(format!(
            "entry {key}: too many conflicting writers"
        )))
    }

    /// The stored entry and its revision (`None`: no entry yet; an entry
    /// deleted, or one that does not decode, is replaced by the next fix).
    async fn read(&self, key: &str) -> Result<(Option<DeviceEntry>, Option<u64>), kv::EntryError> {
        Ok(match self.kv.entry(key).await? {
            Some(e) if e.operation == kv::Operation::Put => (
                serde_json::from_slice::<DeviceEntry>(&e.value).ok(),
                Some(e.revision),
            ),
            Some(e) => (None, Some(e.revision)),
            None => (None, None),
        })
    }
}

impl Processor for Devices {
    fn name(&self) -> &str {
        "devices"
    }

    async fn process(&self, record: &Record, meta: &Meta) -> Result<(), ProcessError> {
        match record.as_position() {
            Some(p) => {
                let fix = (p, meta.msg_id.as_str(), received(meta));
                self.apply(&p.device_id, &[fix]).await
            }
            None => Ok(()),
        }
    }

    /// One read and one write per device for the whole run (usually one
    /// device: a run is one subject), instead of one of each per fix.
    async fn process_run(&self, run: &[(Record, Meta)]) -> Result<(), ProcessError> {
        let mut devices: Vec<(&str, Vec<Fix<'_>>)> = Vec::new();
        for (record, meta) in run {
            let Some(p) = record.as_position() else {
                continue;
            };
            let fix = (p, meta.msg_id.as_str(), received(meta));
            match devices.iter_mut().find(|(d, _)| *d == p.device_id) {
                Some((_, fixes)) => fixes.push(fix),
                None => devices.push((&p.device_id, vec![fix])),
            }
        }
        for (device, fixes) in &devices {
            self.apply(device, fixes).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn fix(sec: u32, ignition: Option<bool>, speed: f64) -> Position {
        let mut p = Position::new(
            "356307042441013",
            "teltonika",
            Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, sec).unwrap(),
        );
        p.speed = speed;
        if let Some(i) = ignition {
            p.set("ignition", i);
        }
        p
    }

    /// When the fixes arrived: just after the last of them was taken.
    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 1, 0).unwrap()
    }

    /// Applies fixes in arrival order; returns the final entry and all events.
    fn run(fixes: &[(&str, Position)]) -> (Option<DeviceEntry>, Vec<Event>) {
        let cfg = DevicesConfig::default();
        let mut entry: Option<DeviceEntry> = None;
        let mut all = Vec::new();
        for (id, p) in fixes {
            match step(entry.as_ref(), p, id, at(), &cfg) {
                Step::Replay(_) => {}
                Step::Late(ev) | Step::Future(ev) => all.extend(ev),
                Step::Newer(e, ev) => {
                    entry = Some(*e);
                    all.extend(ev);
                }
            }
        }
        (entry, all)
    }

    fn kinds(events: &[Event]) -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| (e.kind.clone(), e.fix_time[17..19].to_string()))
            .collect()
    }

    #[test]
    fn transitions_in_order() {
        let (entry, events) = run(&[
            ("a", fix(1, Some(false), 0.0)),
            ("b", fix(2, Some(true), 50.0)),
            ("c", fix(3, None, 130.0)),
            ("d", fix(4, Some(true), 140.0)),
            ("e", fix(5, Some(false), 0.0)),
        ]);
        assert_eq!(
            kinds(&events),
            vec![
                ("ignitionOn".into(), "02".into()),
                ("overspeed".into(), "03".into()),
                ("ignitionOff".into(), "05".into())
            ]
        );
        let entry = entry.unwrap();
        assert_eq!(entry.position.fix_time.format("%S").to_string(), "05");
        assert_eq!(entry.ignition, Some(false));
        assert!(!entry.overspeed);
    }

    #[test]
    fn a_late_fix_changes_nothing_but_reports_its_alarm() {
        let mut late = fix(2, Some(true), 200.0);
        late.set("alarm", "sos");
        let (entry, events) = run(&[
            ("a", fix(1, Some(false), 0.0)),
            ("c", fix(3, Some(false), 0.0)),
            ("b", late),
        ]);
        assert_eq!(kinds(&events), vec![("alarm".into(), "02".into())]);
        assert_eq!(events[0].alarm.as_deref(), Some("sos"));
        assert_eq!(entry.unwrap().source, "c");
    }

    #[test]
    fn a_redelivery_replays_the_same_events() {
        let cfg = DevicesConfig::default();
        let Step::Newer(first, _) = step(None, &fix(1, Some(false), 0.0), "a", at(), &cfg) else {
            panic!()
        };
        let Step::Newer(second, events) =
            step(Some(&first), &fix(2, Some(true), 0.0), "b", at(), &cfg)
        else {
            panic!()
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].msg_id(), "b:ignitionOn");
        assert_eq!(
            step(Some(&second), &fix(2, Some(true), 0.0), "b", at(), &cfg),
            Step::Replay(events)
        );
    }

    #[test]
    fn only_eventful_messages_are_remembered_and_quiet_ones_replay_nothing() {
        let cfg = DevicesConfig {
            remember: 2,
            ..DevicesConfig::default()
        };
        let mut entry: Option<DeviceEntry> = None;
        for (i, ignition) in [false, false, true, true, false, true]
            .into_iter()
            .enumerate()
        {
            let id = format!("m{i}");
            match step(
                entry.as_ref(),
                &fix(i as u32, Some(ignition), 0.0),
                &id,
                at(),
                &cfg,
            ) {
                Step::Newer(e, _) => entry = Some(*e),
                other => panic!("{other:?}"),
            }
        }
        let entry = entry.unwrap();
        let remembered: Vec<&str> = entry.recent.iter().map(|a| a.source.as_str()).collect();
        assert_eq!(remembered, vec!["m4", "m5"], "the last two with events");
        // A quiet message comes again: late, nothing to publish.
        assert_eq!(
            step(Some(&entry), &fix(3, Some(true), 0.0), "m3", at(), &cfg),
            Step::Late(vec![])
        );
        match step(Some(&entry), &fix(5, Some(true), 0.0), "m5", at(), &cfg) {
            Step::Replay(events) => assert_eq!(events[0].kind, "ignitionOn"),
            other => panic!("{other:?}"),
        }
    }

    /// A device whose clock jumped years ahead (or a forged frame) must not
    /// freeze its latest position: the fix from 2099 changes nothing and is
    /// flagged, and the device's next real fix becomes the latest.
    #[test]
    fn a_fix_from_the_future_never_becomes_the_latest_and_is_flagged() {
        let mut ahead = fix(2, Some(true), 0.0);
        ahead.fix_time = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
        ahead.set("alarm", "sos");
        let (entry, events) = run(&[
            ("a", fix(1, Some(false), 0.0)),
            ("b", ahead.clone()),
            ("c", fix(3, Some(true), 0.0)),
        ]);
        assert_eq!(
            kinds(&events),
            vec![
                ("futureFix".into(), "00".into()),
                ("alarm".into(), "00".into()),
                ("ignitionOn".into(), "03".into()),
            ]
        );
        assert_eq!(events[0].msg_id(), "b:futureFix");
        assert_eq!(entry.unwrap().source, "c");
        // As the first fix of a device it makes no entry either.
        let cfg = DevicesConfig::default();
        assert!(matches!(
            step(None, &ahead, "b", at(), &cfg),
            Step::Future(_)
        ));
        // Up to the limit a fix ahead of its reception is taken (a device
        // clock a few hours off, a time zone mistaken for UTC).
        let mut close = fix(0, None, 0.0);
        close.fix_time = at() + chrono::TimeDelta::hours(23);
        assert!(matches!(
            step(None, &close, "d", at(), &cfg),
            Step::Newer(..)
        ));
        // 0: no limit.
        let open = DevicesConfig {
            max_future_secs: 0,
            ..DevicesConfig::default()
        };
        assert!(matches!(
            step(None, &ahead, "b", at(), &open),
            Step::Newer(..)
        ));
    }

    #[test]
    fn keys_are_valid() {
        assert_eq!(device_key("356307042441013"), "356307042441013");
        assert_eq!(device_key("a.b c*"), "a_b_c_");
        assert_eq!(device_key(""), "_");
    }
}
