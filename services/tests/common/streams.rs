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

/// The messages of `stream` on `subject` (one device's, say), in order.
pub async fn messages_on(cluster: &Cluster, stream: &str, subject: &str) -> Vec<StreamMessage> {
    messages(cluster, stream)
        .await
        .into_iter()
        .filter(|m| m.subject.as_str() == subject)
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

/// Everything in RAW as (subject, `Nats-Msg-Id`, payload), in order.
pub async fn raw(cluster: &Cluster) -> Vec<(String, String, Vec<u8>)> {
    messages(cluster, names::RAW)
        .await
        .into_iter()
        .map(|m| {
            let id = header_string(&m, fleetbus_wire::headers::MSG_ID);
            (m.subject.to_string(), id, m.payload.to_vec())
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

/// Deletes the hamsters' durable on RAW, as an operator might.
pub async fn delete_hamsters_durable(admin: &jetstream::Context) {
    admin
        .get_stream(names::RAW)
        .await
        .unwrap()
        .delete_consumer(names::HAMSTERS)
        .await
        .unwrap();
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
