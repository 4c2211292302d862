//! Storing one frame in RAW: publish, await the PubAck, and on any failure
//! try again with the same `Nats-Msg-Id` until a bound. The device is only
//! answered after this returns `Ok`.

use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::Context;
use async_nats::HeaderMap;
use bytes::Bytes;

use super::metrics::{Metrics, ProtocolLabel};

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the first attempt.
    pub retry_for: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

/// Why a frame was not stored. The connection is closed without an ack.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("JetStream did not store the frame within {waited:?} ({attempts} attempts); last error: {last}")]
    GaveUp {
        waited: Duration,
        attempts: u32,
        last: String,
    },
    #[error("the frame can never be stored: {0}")]
    Permanent(String),
    /// RAW has no consumer: nobody would ever parse the frame, so it is not
    /// sent at all (and the device not acknowledged).
    #[error("RAW has no consumer to keep the frame (run `fleetbus provision`, start a hamster)")]
    NoInterest,
}

impl StoreError {
    pub fn error_type(&self) -> &'static str {
        match self {
            StoreError::GaveUp { .. } => "gave_up",
            StoreError::Permanent(_) => "permanent",
            StoreError::NoInterest => "no_consumer",
        }
    }
}

/// What the PubAck said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub sequence: u64,
    /// JetStream already had this `Nats-Msg-Id`: a resend.
    pub duplicate: bool,
}

/// Publishes `payload` to `subject` until a PubAck arrives or `policy` says
/// stop. Leader elections answer "no responders" (`StreamNotFound`) for a
/// few seconds; a stream at its limit refuses with an error in the PubAck;
/// a lost server connection times out. All are retried the same way,
/// because a retry with the same message id can never store twice.
pub async fn store(
    js: &Context,
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    policy: RetryPolicy,
    metrics: &Metrics,
    protocol: &'static str,
) -> Result<Stored, StoreError> {
    let started = Instant::now();
    let mut backoff = policy.first_backoff;
    let mut attempts = 0u32;
    let label = ProtocolLabel { protocol };
    loop {
        attempts += 1;
        let publish = PublishMessage::build()
            .payload(payload.clone())
            .headers(headers.clone());
        let result = match js.send_publish(subject.clone(), publish).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        let err = match result {
            Ok(ack) => {
                metrics
                    .publish_duration
                    .get_or_create(&label)
                    .observe(started.elapsed().as_secs_f64());
                return Ok(Stored {
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                });
            }
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                return Err(StoreError::Permanent(e.to_string()));
            }
            Err(e) => e,
        };
        if started.elapsed() + backoff >= policy.retry_for {
            return Err(StoreError::GaveUp {
                waited: started.elapsed(),
                attempts,
                last: err.to_string(),
            });
        }
        metrics.publish_retries.get_or_create(&label).inc();
        tracing::debug!(subject = %subject, attempt = attempts, error = %err,
            "Publishing to RAW failed; trying again with the same message id.");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}
