//! What reached PARSED, read through the verify consumer: a durable,
//! explicitly acknowledged pull consumer created before the run, so that
//! PARSED keeps every message of the run for it. Only positions count
//! (other record types have no [`Key`]); a message redelivered after a
//! lost ack is counted once, two messages with one key are a duplicate.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use fleetbus_wire::names;
use futures::StreamExt;
use serde_json::Value;

use super::report::Key;
use crate::simulate::Reported;

/// What reached PARSED: every position by its key, with how often it came
/// and its JSON, and how many messages were read.
#[derive(Debug, Default)]
pub struct Parsed {
    pub seen: BTreeMap<Key, (usize, Value)>,
    pub read: u64,
}

impl Parsed {
    /// Counts one record of message `sequence`.
    pub(super) fn add(&mut self, record: Value) {
        if let Some(key) = key_of(&record) {
            let e = self.seen.entry(key).or_insert((0, record));
            e.0 += 1;
        }
    }
}

/// The records of a PARSED payload as JSON (none when it is not JSON).
pub(super) fn records_of(payload: &[u8]) -> Vec<Value> {
    fleetbus_wire::parsed::records_json(payload).unwrap_or_default()
}

fn key_of(v: &Value) -> Option<Key> {
    if v.get("type").and_then(Value::as_str) != Some("position") {
        return None;
    }
    let device = v.get("device_id")?.as_str()?.to_string();
    let fix: DateTime<Utc> = v.get("fix_time")?.as_str()?.parse().ok()?;
    Some((device, fix))
}

/// The durable consumer `name` on PARSED that verify reads through.
pub fn consumer_config(name: &str) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(name.to_string()),
        description: Some("fleetbus verify: every record, once".into()),
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(60),
        max_ack_pending: 100_000,
        ..Default::default()
    }
}

/// The verify consumer on PARSED, created if missing. Right after a
/// cluster restart the stream has no leader for a few seconds and API
/// requests time out: try again until `wait` has passed.
pub async fn open_consumer(
    js: &jetstream::Context,
    config: consumer::pull::Config,
    wait: Duration,
) -> anyhow::Result<consumer::Consumer<consumer::pull::Config>> {
    let name = config.durable_name.clone().unwrap_or_default();
    let deadline = Instant::now() + wait;
    loop {
        let attempt = async {
            let stream = js.get_stream(names::PARSED).await?;
            let consumer = stream.get_or_create_consumer(&name, config.clone()).await?;
            anyhow::Ok(consumer)
        };
        match attempt.await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "PARSED not available yet; trying again.");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context(format!("consumer PARSED/{name}")),
        }
    }
}

/// Reads PARSED through `consumer` until every expected record was seen
/// and the stream is quiet, or nothing new came for `idle`.
pub async fn read_consumer(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    expected: &BTreeMap<Key, Reported>,
    idle: Duration,
) -> anyhow::Result<Parsed> {
    let mut parsed = Parsed::default();
    // Stream sequences already counted: a message redelivered to this
    // consumer (its ack was lost while the cluster elected a leader) is the
    // same message, not a duplicate record. Two messages with one key are.
    let mut sequences: HashSet<u64> = HashSet::new();
    let mut last_new = Instant::now();
    // A pull that fails (no leader yet after a restart, "503") is tried
    // again until nothing new has come for `idle`.
    let transient = |what: &str, e: &dyn std::fmt::Display| {
        tracing::debug!(error = %e, "{what} failed; trying again.");
    };
    loop {
        let mut got = 0;
        match consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_millis(500))
            .messages()
            .await
        {
            Err(e) => transient("a pull from PARSED", &e),
            Ok(mut batch) => {
                while let Some(msg) = batch.next().await {
                    let msg = match msg {
                        Ok(m) => m,
                        Err(e) => {
                            transient("a pull from PARSED", &e);
                            break;
                        }
                    };
                    let sequence = msg.info().map(|i| i.stream_sequence).ok();
                    if sequence.is_none_or(|s| sequences.insert(s)) {
                        got += 1;
                        parsed.read += 1;
                        for v in records_of(&msg.payload) {
                            parsed.add(v);
                        }
                    }
                    if let Err(e) = msg.ack().await {
                        transient("an ack", &e);
                    }
                }
            }
        }
        if got > 0 {
            last_new = Instant::now();
            continue;
        }
        let all_seen = expected.keys().all(|k| parsed.seen.contains_key(k));
        if all_seen || last_new.elapsed() >= idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positions_have_keys() {
        let p = serde_json::json!({"type":"position","device_id":"1","fix_time":"2026-11-29T12:00:00Z"});
        assert!(key_of(&p).is_some());
        let login = serde_json::json!({"type":"login","device_id":"1"});
        assert!(key_of(&login).is_none());
    }
}
