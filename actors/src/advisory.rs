//! The backstop for messages that ran out of deliveries.
//!
//! A worker dead-letters what it cannot process before `max_deliver` is
//! reached, but a message can still exhaust its deliveries unseen (workers
//! that hung past the ack wait every time, DEAD unreachable at the last
//! try). JetStream then stops delivering it and keeps it in the stream (by
//! design, so it can be inspected) and publishes a max-deliveries advisory.
//! [`MaxDeliveries`] listens to that advisory (one listener per group
//! through a queue group), fetches the message by its stream sequence,
//! publishes it to DEAD, waits for the PubAck, and then deletes it from its
//! stream, so nothing sits there forgotten until `max_age`.
//!
//! Advisories are not stored: one published while no worker of the group
//! runs is missed, and the message stays in its stream until `max_age`
//! (`fleetbus status` shows it as ack pending/redelivered).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use fleetbus_codec::wire::{headers, DeadStage};
use futures::StreamExt;
use serde::Deserialize;

use crate::dead::DeadLetter;
use crate::stats::Stats;

/// The advisory's fields we use (`io.nats.jetstream.advisory.v1.max_deliver`).
#[derive(Debug, Deserialize)]
pub struct Advisory {
    pub stream: String,
    pub consumer: String,
    pub stream_seq: u64,
    #[serde(default)]
    pub deliveries: i64,
}

/// Moves messages that exhausted `max_deliver` on `stream`/`consumer` to DEAD.
pub struct MaxDeliveries {
    pub js: jetstream::Context,
    pub stream: String,
    pub consumer: String,
    pub stage: DeadStage,
    pub stats: Arc<Stats>,
}

impl MaxDeliveries {
    pub fn subject(&self) -> String {
        format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
            self.stream, self.consumer
        )
    }

    /// Subscribes (queue group `<consumer>-advisories`), then handles
    /// advisories in a background task until it is aborted.
    pub async fn spawn(
        self,
        client: &async_nats::Client,
    ) -> Result<tokio::task::JoinHandle<()>, async_nats::SubscribeError> {
        let mut sub = client
            .queue_subscribe(self.subject(), format!("{}-advisories", self.consumer))
            .await?;
        Ok(tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let advisory: Advisory = match serde_json::from_slice(&msg.payload) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("unreadable max-deliveries advisory: {e}");
                        continue;
                    }
                };
                let mut pause = Duration::from_millis(200);
                for attempt in 1..=10 {
                    match self.move_to_dead(&advisory).await {
                        Ok(()) => break,
                        Err(e) => {
                            self.stats.error();
                            tracing::warn!(
                                sequence = advisory.stream_seq,
                                attempt,
                                "moving an exhausted message to DEAD failed: {e}"
                            );
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        }))
    }

    /// Copies message `stream_seq` to DEAD, then deletes it from its stream.
    pub async fn move_to_dead(&self, advisory: &Advisory) -> Result<(), String> {
        let stream = self
            .js
            .get_stream_no_info(&advisory.stream)
            .await
            .map_err(|e| format!("stream {}: {e}", advisory.stream))?;
        let msg = match stream.get_raw_message(advisory.stream_seq).await {
            Ok(m) => m,
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::stream::RawMessageErrorKind::NoMessageFound
                ) =>
            {
                return Ok(()); // already gone (acknowledged after all, or moved)
            }
            Err(e) => return Err(format!("get message {}: {e}", advisory.stream_seq)),
        };
        let mut tokens = msg.subject.as_str().splitn(3, '.').skip(1);
        let (sp, sd) = (tokens.next().unwrap_or("_"), tokens.next().unwrap_or("_"));
        let get = |name: &str, default: &str| {
            msg.headers
                .get(name)
                .map(|v| v.as_str().to_string())
                .unwrap_or_else(|| default.to_string())
        };
        let protocol = get(headers::PROTOCOL, sp);
        let device = get(headers::DEVICE, sd);
        let reason = format!(
            "exhausted max deliveries ({}) on {}/{} without being acknowledged",
            advisory.deliveries, advisory.stream, advisory.consumer
        );
        DeadLetter {
            stage: self.stage,
            protocol: &protocol,
            device: &device,
            payload: msg.payload.clone(),
            original: Some(&msg.headers),
            reason: &reason,
            stream: &advisory.stream,
            sequence: advisory.stream_seq,
            subject: msg.subject.as_str(),
            deliveries: advisory.deliveries,
            record: None,
        }
        .publish(&self.js)
        .await?;
        self.stats.dead();
        match stream.delete_message(advisory.stream_seq).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("no message found") => Ok(()),
            Err(e) => Err(format!("delete message {}: {e}", advisory.stream_seq)),
        }
    }
}
