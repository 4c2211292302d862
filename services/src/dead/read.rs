//! Reading DEAD without changing it. DEAD is opened through an election
//! (a freshly restarted cluster answers after a few seconds), then read by
//! an ordered consumer: ephemeral, no acknowledgements, headers only, and
//! filtered by the subject of a [`Filter`]. It is read up to the last
//! sequence DEAD had when it was opened, so that a listing ends even while
//! workers keep adding letters.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::Stream;
use chrono::{DateTime, Utc};
use fleetbus_wire::names;
use futures::StreamExt;

use super::filter::Filter;
use super::letter::{utc, Letter};

/// How long DEAD may stay silent while a listing still expects letters.
const READ_IDLE: Duration = Duration::from_secs(30);
/// How long to wait for DEAD through an election before giving up (exit 2).
const OPEN_WAIT: Duration = Duration::from_secs(30);

/// Why DEAD could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DeadError {
    #[error("stream DEAD does not exist (run `fleetbus provision`)")]
    Missing,
    #[error("stream DEAD is not answering: {0}")]
    Unavailable(String),
    #[error("reading DEAD stalled for {READ_IDLE:?} with letters still pending: {0}")]
    Stalled(String),
}

/// DEAD, waiting through an election for up to `OPEN_WAIT` (30 s).
pub async fn open_dead(js: &jetstream::Context) -> Result<Stream, DeadError> {
    let deadline = Instant::now() + OPEN_WAIT;
    loop {
        let error = match js.get_stream(names::DEAD).await {
            Ok(stream) => return Ok(stream),
            Err(e) => e,
        };
        if let GetStreamErrorKind::JetStream(j) = error.kind() {
            if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND {
                return Err(DeadError::Missing);
            }
        }
        if Instant::now() > deadline {
            return Err(DeadError::Unavailable(error.to_string()));
        }
        tracing::debug!(error = %error, "DEAD is not answering yet; trying again.");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads the letters matching a filter's subject, oldest first, headers
/// only, up to the last sequence DEAD had when it was opened.
pub(super) struct DeadReader {
    messages: Option<pull::Ordered>,
    end: u64,
}

impl DeadReader {
    pub(super) async fn open(dead: &mut Stream, filter: &Filter) -> Result<DeadReader, DeadError> {
        let unavailable = |e: &dyn std::fmt::Display| DeadError::Unavailable(e.to_string());
        let end = dead
            .info()
            .await
            .map_err(|e| unavailable(&e))?
            .state
            .last_sequence;
        let config = pull::OrderedConfig {
            description: Some("fleetbus dead: reading, changing nothing".into()),
            filter_subject: filter.subject(),
            deliver_policy: deliver_policy(filter.since),
            headers_only: true,
            ..Default::default()
        };
        let consumer = dead
            .create_consumer(config)
            .await
            .map_err(|e| unavailable(&e))?;
        if end == 0 || consumer.cached_info().num_pending == 0 {
            return Ok(DeadReader {
                messages: None,
                end,
            });
        }
        let messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
        Ok(DeadReader {
            messages: Some(messages),
            end,
        })
    }

    /// The next letter, `None` at the end.
    pub(super) async fn next(&mut self) -> Result<Option<Letter>, DeadError> {
        let Some(messages) = self.messages.as_mut() else {
            return Ok(None);
        };
        let deadline = tokio::time::Instant::now() + READ_IDLE;
        let mut last_error = String::from("no message");
        let msg = loop {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Err(_) => return Err(DeadError::Stalled(last_error)),
                Ok(None) => {
                    self.messages = None;
                    return Ok(None);
                }
                // The ordered consumer recreates itself after a gap or a
                // lost leader; what it reports meanwhile is only news.
                Ok(Some(Err(e))) => last_error = e.to_string(),
                Ok(Some(Ok(m))) => break m,
            }
        };
        let (sequence, stored, pending) = match msg.info() {
            Ok(i) => (i.stream_sequence, utc(i.published), i.pending),
            Err(e) => return Err(DeadError::Unavailable(e.to_string())),
        };
        if sequence > self.end {
            self.messages = None;
            return Ok(None);
        }
        if pending == 0 || sequence == self.end {
            self.messages = None;
        }
        Ok(Some(Letter::from_delivered(&msg, sequence, stored)))
    }
}

/// Everything from `since` on, on the server's side.
fn deliver_policy(since: Option<DateTime<Utc>>) -> DeliverPolicy {
    let start = since
        .and_then(|t| t.timestamp_nanos_opt())
        .and_then(|n| async_nats::datetime::from_nanos(i128::from(n)).ok());
    match start {
        Some(start_time) => DeliverPolicy::ByStartTime { start_time },
        None => DeliverPolicy::All,
    }
}
