//! Reading what the stages stored: a stream's messages (all, one subject's,
//! as JSON), their headers, message counts, and the device entries.

use async_nats::jetstream::{self, message::StreamMessage};
use fleetbus_e2e::{wait_for, Cluster};
use fleetbus_wire::names;
use serde_json::Value;

use super::WAIT;

/// Every message of `stream`, in order.
pub async fn messages(cluster: &Cluster, stream: &str) -> Vec<StreamMessage> {
    cluster.stream_messages(stream).await.unwrap()
}

/// The messages of `stream` on `subject` (one device's, say), in order;
/// a RAW or PARSED subject matches whichever partition holds it.
pub async fn messages_on(cluster: &Cluster, stream: &str, subject: &str) -> Vec<StreamMessage> {
    messages(cluster, stream)
        .await
        .into_iter()
        .filter(|m| {
            names::without_partition(m.subject.as_str()) == names::without_partition(subject)
        })
        .collect()
}

/// Every message of `stream` as (subject, JSON payload), in order.
pub async fn json_messages(cluster: &Cluster, stream: &str) -> Vec<(String, Value)> {
    messages(cluster, stream)
        .await
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            (m.subject.to_string(), v)
        })
        .collect()
}

/// Everything in RAW as (the subject the gateway published it on,
/// `Nats-Msg-Id`, payload), in order. Each is stored under its partition
/// (`raw.<partition>.<protocol>.<device>`; asserted here), which the
/// server chose, not the gateway.
pub async fn raw(cluster: &Cluster) -> Vec<(String, String, Vec<u8>)> {
    messages(cluster, names::RAW)
        .await
        .into_iter()
        .map(|m| {
            let id = header_string(&m, fleetbus_wire::headers::MSG_ID);
            let stored = m.subject.as_str();
            assert!(
                names::partition_of(stored).is_some(),
                "{stored}: RAW stores every frame in a partition"
            );
            (names::without_partition(stored), id, m.payload.to_vec())
        })
        .collect()
}

/// The subject of everything in RAW, in order.
pub async fn raw_subjects(cluster: &Cluster) -> Vec<String> {
    raw(cluster).await.into_iter().map(|(s, ..)| s).collect()
}

/// A header of a stored message, if it has it.
pub fn header<'a>(m: &'a StreamMessage, name: &str) -> Option<&'a str> {
    m.headers.get(name).map(|v| v.as_str())
}

/// A header of a stored message, empty where it has none.
pub fn header_string(m: &StreamMessage, name: &str) -> String {
    header(m, name).unwrap_or_default().to_string()
}

/// The state and configuration of `stream`.
pub async fn stream_info(
    js: &jetstream::Context,
    stream: &str,
) -> anyhow::Result<jetstream::stream::Info> {
    Ok(js.get_stream(stream).await?.info().await?.clone())
}

/// How many messages `stream` holds.
pub async fn stream_count(js: &jetstream::Context, stream: &str) -> anyhow::Result<u64> {
    Ok(stream_info(js, stream).await?.state.messages)
}

/// Waits until every stream named holds exactly that many messages.
pub async fn wait_counts(js: &jetstream::Context, what: &str, want: &[(&str, u64)]) {
    let seen = std::sync::Mutex::new(Vec::new());
    let result = wait_for(what, WAIT, || async {
        let mut now = Vec::new();
        for (stream, _) in want {
            now.push((stream.to_string(), stream_count(js, stream).await?));
        }
        let done = now.iter().zip(want).all(|((_, got), (_, n))| got == n);
        *seen.lock().unwrap() = now;
        Ok(done.then_some(()))
    })
    .await;
    if let Err(e) = result {
        panic!("{e:#}: counts {:?}, wanted {want:?}", seen.lock().unwrap());
    }
}

/// Deletes the hamsters' durables on RAW (every partition's), as an
/// operator might.
pub async fn delete_hamsters_durable(admin: &jetstream::Context) {
    use futures::TryStreamExt;
    let raw = admin.get_stream(names::RAW).await.unwrap();
    let names: Vec<String> = raw.consumer_names().try_collect().await.unwrap();
    assert!(!names.is_empty(), "RAW has no durables to delete");
    for name in names {
        raw.delete_consumer(&name).await.unwrap();
    }
}

/// Waits until the device entry of `device` holds the position of
/// `fix_time` (`2026-11-29T12:40:00.000Z`); that entry.
pub async fn wait_latest(admin: &jetstream::Context, device: &str, fix_time: &str) -> Value {
    let kv = admin.get_key_value(names::DEVICES_BUCKET).await.unwrap();
    wait_for("the latest position", WAIT, || async {
        let Some(entry) = kv.get(device).await? else {
            return Ok(None);
        };
        let v: Value = serde_json::from_slice(&entry)?;
        Ok((v["position"]["fix_time"] == fix_time).then_some(v))
    })
    .await
    .unwrap()
}

/// What the durables of `stream` have still to process: messages pending
/// or unacknowledged, summed. (A stream's own count also holds what every
/// consumer is done with until its stage sweeps it.)
pub async fn unprocessed(js: &jetstream::Context, stream: &str) -> anyhow::Result<u64> {
    use futures::StreamExt;
    let s = js.get_stream(stream).await?;
    let mut consumers = s.consumers();
    let mut left = 0;
    while let Some(c) = consumers.next().await {
        let c = c?;
        left += c.num_pending + c.num_ack_pending as u64;
    }
    Ok(left)
}
