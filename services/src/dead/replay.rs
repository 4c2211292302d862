//! Putting dead letters back where they came from. Each selected letter is
//! fetched from DEAD with its payload, checked against the filter again,
//! planned ([`plan`]: its origin subject, its original headers and message
//! id, `fleetbus_wire::dead`'s rules), published until its target answers,
//! and deleted from DEAD only after the target stored it: a replay that
//! fails half-way leaves the letter where it was.
//!
//! Publishing under the original id makes a replay safe to repeat: within
//! the target's duplicate window a second one stores nothing, and the
//! duplicate PubAck tells whether the earlier copy is still there
//! ([`Replayed::AlreadyStored`]) or the original was consumed meanwhile
//! ([`ReplayError::Forgotten`]: the letter must stay).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use async_nats::jetstream::{self, publish::PublishAck};
use async_nats::HeaderMap;
use bytes::Bytes;
use fleetbus_actors::{Downstream, DownstreamKind};
use fleetbus_wire::dead::{replay_headers, NoReplayTarget};
use fleetbus_wire::{headers, names};

use super::filter::Filter;
use super::letter::Letter;
use super::read::{DeadError, DeadReader};

/// What a replay publishes for one letter.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Its DEAD sequence.
    pub sequence: u64,
    /// `Fleetbus-Dead-Subject`: where it came from.
    pub subject: String,
    /// The `Nats-Msg-Id` it is published under.
    pub msg_id: String,
    /// The original headers, `Nats-Msg-Id` the original id.
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Why one letter was not replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("not in DEAD (replayed already, or expired)")]
    Missing,
    #[error(transparent)]
    Target(#[from] NoReplayTarget),
    #[error("it does not match the filters")]
    NotSelected,
    #[error("refused: {0}")]
    Refused(String),
    #[error("not stored within {waited:?}: {last}")]
    GaveUp { waited: Duration, last: String },
    #[error(
        "not stored: {stream} saw id {id} within its duplicate window, and the message \
         (#{sequence}) is no longer there; try again once the window has passed"
    )]
    Forgotten {
        stream: String,
        sequence: u64,
        id: String,
    },
    #[error("{0}")]
    Read(String),
}

/// What happened to one letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// Published and stored as `sequence` of `stream`.
    Stored { stream: String, sequence: u64 },
    /// The target already holds it (an earlier replay).
    AlreadyStored { stream: String, sequence: u64 },
    /// `--dry-run`.
    Planned,
}

/// One line of a replay's report.
#[derive(Debug)]
pub struct Line {
    pub sequence: u64,
    pub plan: Option<(String, String)>,
    pub result: Result<Replayed, ReplayError>,
    /// Whether (and how) it was deleted from DEAD, when it was to be.
    pub deleted: Option<Result<(), String>>,
}

impl Line {
    /// Stored (or already stored) and, unless kept, gone from DEAD.
    pub fn ok(&self) -> bool {
        self.result.is_ok() && !matches!(self.deleted, Some(Err(_)))
    }
}

/// What to publish for `letter`: its payload, where it came from, under
/// its original id (`fleetbus_wire::dead`).
pub fn plan(letter: &Letter) -> Result<Plan, ReplayError> {
    let info = letter.info();
    let subject = info.replay_subject()?;
    let msg_id = info.replay_msg_id(&letter.payload, letter.sequence);
    Ok(Plan {
        sequence: letter.sequence,
        subject,
        headers: replay_headers(Some(&letter.headers), &msg_id),
        msg_id,
        payload: letter.payload.clone(),
    })
}

/// How a replay behaves.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    pub dry_run: bool,
    pub keep: bool,
    pub retry_for: Duration,
}

/// The DEAD sequences to replay, oldest first, at most `limit` (0: all):
/// the given ones (`seq`), else every letter the filter matches.
pub async fn select(
    mut dead: Stream,
    filter: &Filter,
    seq: &[u64],
    limit: usize,
) -> Result<Vec<u64>, DeadError> {
    let mut out = if seq.is_empty() {
        let mut reader = DeadReader::open(&mut dead, filter).await?;
        let mut out = Vec::new();
        while let Some(letter) = reader.next().await? {
            if filter.matches(&letter) {
                out.push(letter.sequence);
            }
        }
        out
    } else {
        seq.to_vec()
    };
    out.sort_unstable();
    out.dedup();
    if limit > 0 {
        out.truncate(limit);
    }
    Ok(out)
}

/// Fetches, publishes and (unless kept) deletes one letter.
pub async fn replay_letter(
    js: &jetstream::Context,
    dead: &Stream,
    sequence: u64,
    filter: &Filter,
    options: ReplayOptions,
) -> Line {
    let mut line = Line {
        sequence,
        plan: None,
        result: Err(ReplayError::Missing),
        deleted: None,
    };
    let letter = match fetch(dead, sequence, options.retry_for).await {
        Ok(Some(letter)) => letter,
        Ok(None) => return line,
        Err(e) => {
            line.result = Err(e);
            return line;
        }
    };
    if !filter.matches(&letter) {
        line.result = Err(ReplayError::NotSelected);
        return line;
    }
    let plan = match plan(&letter) {
        Ok(p) => p,
        Err(e) => {
            line.result = Err(e);
            return line;
        }
    };
    line.plan = Some((plan.subject.clone(), plan.msg_id.clone()));
    if options.dry_run {
        line.result = Ok(Replayed::Planned);
        return line;
    }
    line.result = store(js, &plan, options.retry_for).await;
    if line.result.is_ok() && !options.keep {
        line.deleted = Some(delete(dead, sequence, options.retry_for).await);
    }
    line
}

/// Letter `sequence` of DEAD with its payload, `None` when it is not there.
async fn fetch(
    dead: &Stream,
    sequence: u64,
    retry_for: Duration,
) -> Result<Option<Letter>, ReplayError> {
    let started = Instant::now();
    loop {
        let e = match dead.get_raw_message(sequence).await {
            Ok(m) => return Ok(Some(Letter::from_stored(m))),
            Err(e) => e,
        };
        if missing_message(&e) {
            return Ok(None);
        }
        if started.elapsed() >= retry_for {
            return Err(ReplayError::Read(format!(
                "cannot read DEAD #{sequence}: {e}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn missing_message(e: &async_nats::jetstream::stream::RawMessageError) -> bool {
    match e.kind() {
        LastRawMessageErrorKind::NoMessageFound => true,
        LastRawMessageErrorKind::JetStream(j) => {
            j.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND
        }
        _ => false,
    }
}

/// Publishes `plan` and waits for the PubAck, trying again while the
/// target does not answer (an election answers "no responders" for a few
/// seconds; a lost connection times out) for up to `retry_for`, as the
/// gateway does: with the same message id a retry never stores twice. A
/// refusal (a full stream, a payload too large) is not retried: it needs
/// an operator, and the letter stays in DEAD.
async fn store(
    js: &jetstream::Context,
    plan: &Plan,
    retry_for: Duration,
) -> Result<Replayed, ReplayError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        let publish = PublishMessage::build()
            .payload(plan.payload.clone())
            .headers(plan.headers.clone());
        let result = match js.send_publish(plan.subject.clone(), publish).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        let error = match result {
            Ok(ack) if ack.duplicate => return already_stored(js, &ack, &plan.msg_id).await,
            Ok(ack) => {
                return Ok(Replayed::Stored {
                    stream: ack.stream,
                    sequence: ack.sequence,
                })
            }
            Err(e) => Downstream::publish(plan.subject.as_str(), &e),
        };
        let transient = matches!(
            error.kind,
            DownstreamKind::Unavailable | DownstreamKind::Timeout
        );
        if !transient {
            return Err(ReplayError::Refused(error.detail));
        }
        if started.elapsed() + backoff >= retry_for {
            return Err(ReplayError::GaveUp {
                waited: started.elapsed(),
                last: error.detail,
            });
        }
        tracing::debug!(subject = %plan.subject, error = %error.detail,
            "Replaying a dead letter failed; trying again with the same message id.");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A duplicate PubAck names the message that holds the id. That is an
/// earlier replay when the target still holds it; when it is gone, it was
/// the original (consumed, then given up on, within the duplicate window)
/// and this replay stored nothing: the letter must stay.
async fn already_stored(
    js: &jetstream::Context,
    ack: &PublishAck,
    msg_id: &str,
) -> Result<Replayed, ReplayError> {
    let read_error = |e: &dyn std::fmt::Display| {
        ReplayError::Read(format!(
            "{} says duplicate of #{}, which cannot be read: {e}",
            ack.stream, ack.sequence
        ))
    };
    let stream = js
        .get_stream_no_info(&ack.stream)
        .await
        .map_err(|e| read_error(&e))?;
    let held = match stream.get_raw_message(ack.sequence).await {
        Ok(m) => m.headers.get(headers::MSG_ID).map(|v| v.as_str()) == Some(msg_id),
        Err(e) if missing_message(&e) => false,
        Err(e) => return Err(read_error(&e)),
    };
    if held {
        Ok(Replayed::AlreadyStored {
            stream: ack.stream.clone(),
            sequence: ack.sequence,
        })
    } else {
        Err(ReplayError::Forgotten {
            stream: ack.stream.clone(),
            sequence: ack.sequence,
            id: msg_id.to_string(),
        })
    }
}

/// Deletes letter `sequence` from DEAD (already gone counts as deleted).
async fn delete(dead: &Stream, sequence: u64, retry_for: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let e = match dead.delete_message(sequence).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if e.to_string().to_ascii_lowercase().contains("not found") {
            return Ok(());
        }
        if started.elapsed() >= retry_for {
            return Err(e.to_string());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `DEAD #7 -> raw.teltonika.1  id teltonika:1:…  stored as RAW #12, deleted from DEAD`.
pub fn render_line(line: &Line, options: ReplayOptions) -> String {
    let mut out = format!("{} #{}", names::DEAD, line.sequence);
    if let Some((subject, id)) = &line.plan {
        let _ = write!(out, " -> {subject}  id {id}");
    }
    let _ = match &line.result {
        Ok(Replayed::Stored { stream, sequence }) => {
            write!(out, "  stored as {stream} #{sequence}")
        }
        Ok(Replayed::AlreadyStored { stream, sequence }) => {
            write!(out, "  already stored as {stream} #{sequence} (duplicate)")
        }
        Ok(Replayed::Planned) if options.keep => write!(out, "  would be published"),
        Ok(Replayed::Planned) => write!(out, "  would be published, then deleted from DEAD"),
        Err(e @ ReplayError::Missing) => write!(out, "  FAILED: {e}"),
        Err(e) => write!(out, "  FAILED: {e}; it stays in DEAD"),
    };
    let _ = match &line.deleted {
        Some(Ok(())) => write!(out, ", deleted from DEAD"),
        Some(Err(e)) => write!(out, ", but NOT deleted from DEAD: {e}"),
        None => Ok(()),
    };
    out
}

/// `3 letters: 2 stored, 1 already stored, 0 failed; 3 deleted from DEAD`.
pub fn summary(lines: &[Line], options: ReplayOptions) -> String {
    let count = |f: &dyn Fn(&Line) -> bool| lines.iter().filter(|l| f(l)).count();
    let total = lines.len();
    let letters = if total == 1 { "letter" } else { "letters" };
    if options.dry_run {
        let planned = count(&|l| l.result.is_ok());
        return format!(
            "{total} {letters}: {planned} would be replayed, {} could not be (dry run, nothing changed)",
            total - planned
        );
    }
    let stored = count(&|l| matches!(l.result, Ok(Replayed::Stored { .. })));
    let already = count(&|l| matches!(l.result, Ok(Replayed::AlreadyStored { .. })));
    let failed = count(&|l| !l.ok());
    let deleted = count(&|l| matches!(l.deleted, Some(Ok(()))));
    let mut out =
        format!("{total} {letters}: {stored} stored, {already} already stored, {failed} failed");
    if !options.keep {
        let _ = write!(out, "; {deleted} deleted from {}", names::DEAD);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead::fixtures::letter;
    use fleetbus_wire::DeadStage;

    /// A RAW frame a hamster gave up on, with these headers.
    fn frame(headers: &[(&str, &str)]) -> Letter {
        letter(DeadStage::Raw, headers, b"frame")
    }

    #[test]
    fn a_replay_uses_the_original_id_and_headers() {
        let l = frame(&[
            (headers::MSG_ID, "dead:RAW:42"),
            (headers::DEAD_MSG_ID, "teltonika:1:abc"),
            (headers::DEAD_SUBJECT, "raw.teltonika.1"),
            (headers::DEAD_REASON, "bad"),
            (headers::PROTOCOL, "teltonika"),
            (headers::GATEWAY, "gw-1"),
        ]);
        let p = plan(&l).unwrap();
        assert_eq!(p.subject, "raw.teltonika.1");
        assert_eq!(p.msg_id, "teltonika:1:abc");
        let get = |n: &str| p.headers.get(n).map(|v| v.as_str().to_string());
        assert_eq!(get(headers::MSG_ID).as_deref(), Some("teltonika:1:abc"));
        assert_eq!(get(headers::GATEWAY).as_deref(), Some("gw-1"));
        assert_eq!(get(headers::DEAD_REASON), None);
        assert_eq!(get(headers::DEAD_SUBJECT), None);
        assert_eq!(get(headers::DEAD_MSG_ID), None);
    }

    #[test]
    fn a_letter_without_a_target_is_not_planned() {
        // How ids are derived is fleetbus_wire::dead's; the plan uses it.
        let raw = frame(&[(headers::DEAD_SUBJECT, "raw.teltonika.1")]);
        let p = plan(&raw).unwrap();
        assert_eq!(
            p.msg_id,
            fleetbus_wire::ids::raw_msg_id("teltonika", "1", b"frame")
        );
        let bare = letter(DeadStage::Parsed, &[], b"{}");
        let dead_target = letter(
            DeadStage::Raw,
            &[(headers::DEAD_SUBJECT, "dead.raw.teltonika.1")],
            b"x",
        );
        assert!(matches!(
            plan(&dead_target),
            Err(ReplayError::Target(NoReplayTarget::IntoDead(_)))
        ));
        assert_eq!(
            plan(&bare),
            Err(ReplayError::Target(NoReplayTarget::NoTarget))
        );
    }
}
