//! RAW and PARSED keep their messages by limits, not by interest: on an
//! interest stream every acknowledgement also proposes a delete through
//! the stream's raft and removes the message from the store, per message
//! and stage (about a quarter of the servers' CPU per record,
//! docs/performance.md). Instead `fleetbus janitor` (its own role, the
//! only login that may purge: a worker host cannot), purges the
//! stream every 10 s below
//! the lowest floor of all its readers: one purge for everything processed
//! since, and nothing that any reader still has to deliver or settle — the
//! partitions' durables and any other reader (a sink's durable, a tap) all
//! count, as they did for interest. The purge is by sequence alone, which
//! the store does by dropping whole blocks (and rewriting the one it ends
//! in, which is why it is not done every round); one by subject filter
//! (each partition its own) removed message by message and saved nothing
//! in the bench.
//!
//! A reader's floor is where the **stream** says its next unsettled
//! message is: the first stored message its filter matches after its ack
//! floor, asked of the stream's leader (`STREAM.MSG.GET` with
//! `next_by_subj`, which always reaches the leader, unlike a direct get).
//! A partition's durable never moves its ack floor past the other
//! partitions' messages, so a quiet partition would hold the whole stream
//! otherwise. What the reader itself reports pending is never trusted:
//! right after a restart a consumer can answer from a copy of the stream
//! that has not caught up (a prototype that counted "nothing pending" as
//! done lost 48 records of a reader in the faults suite's all-at-once
//! restart, most likely so). Only its ack floor is taken from it, and that
//! can only be behind the truth.
//!
//! The readers are listed at every sweep. A reader that was listed last
//! time and is missing now, or that cannot be asked, stops the sweep until
//! the next one: after a restart the cluster's answers are incomplete for
//! a while, and a reader deleted for good costs one sweep's delay.
//!
//! A sweep costs one stream info, one consumer list, and per reader one
//! consumer info and one message lookup, every 10 s per process; a stream
//! with nothing new since the last sweep (this process's or another's)
//! costs the stream info alone. Every process sweeps, not only an owner: a
//! partition that never receives a message has no owner, and the purge of
//! one makes the others' a no-op.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use crate::stats::Stats;

/// How often a process sweeps. A purge in the middle of a message block
/// makes the store rewrite the block, so a sweep every second cost the
/// servers as much as the deletes it replaced; every 10 s it takes a
/// quarter to a third off their CPU per record (docs/performance.md,
/// "Sweeping instead of deleting").
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How long one sweep may take before it is given up for the next (an
/// election, a loaded machine); the purge itself is one request.
const SWEEP_WITHIN: Duration = Duration::from_secs(5);

/// Sweeps `stream` every [`SWEEP_EVERY`] for as long as the process runs,
/// counting what went in `stats`' `purged`. A failed sweep is logged at
/// debug level (after a restart the first ones fail as a rule) and tried
/// again at the next.
pub async fn run(js: jetstream::Context, stream: String, stats: Arc<Stats>) {
    let mut janitor = Janitor::default();
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match tokio::time::timeout(SWEEP_WITHIN, janitor.sweep(&js, &stream)).await {
            Ok(Ok(purged)) => stats.purged(purged),
            Ok(Err(e)) => {
                tracing::debug!(stream, "Sweeping failed; the next sweep tries again: {e}.")
            }
            Err(_) => tracing::debug!(
                stream,
                "Sweeping took over {SWEEP_WITHIN:?}; the next sweep tries again."
            ),
        }
    }
}

/// The sweeping state of one stream, kept across sweeps.
#[derive(Default)]
pub struct Janitor {
    /// The stream sequence below which the stream was last purged (or
    /// found purged).
    floor: u64,
    /// The stream's readers at the last sweep.
    readers: Vec<String>,
}

/// What stopped a sweep before it purged.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("reading the stream: {0}")]
    Stream(String),
    #[error("listing the stream's readers: {0}")]
    Readers(String),
    #[error("reader {0} was there at the last sweep and is not listed now; waiting a sweep")]
    Missing(String),
    #[error("asking reader {0}: {1}")]
    Reader(String, String),
    #[error("finding reader {0}'s next message: {1}")]
    Next(String, String),
    #[error("purging below {0}: {1}")]
    Purge(u64, String),
}

impl Janitor {
    /// Purges `stream` below the lowest floor of all its readers. Returns
    /// how many messages went.
    pub async fn sweep(
        &mut self,
        js: &jetstream::Context,
        stream: &str,
    ) -> Result<u64, SweepError> {
        let handle = js
            .get_stream(stream)
            .await
            .map_err(|e| SweepError::Stream(e.to_string()))?;
        let state = &handle.cached_info().state;
        let last = state.last_sequence;
        // Another process's sweep may have gone further.
        self.floor = self.floor.max(state.first_sequence.saturating_sub(1));
        if last <= self.floor {
            return Ok(0);
        }
        let readers = list_readers(&handle).await?;
        let before = std::mem::replace(&mut self.readers, readers);
        if let Some(gone) = before.into_iter().find(|r| !self.readers.contains(r)) {
            return Err(SweepError::Missing(gone));
        }
        // Asked side by side: a sweep costs one round trip per reader
        // otherwise, which a loaded cluster makes long.
        let floors = self.readers.iter().map(|name| reader_floor(&handle, name));
        let floor = futures::future::try_join_all(floors)
            .await?
            .into_iter()
            .fold(last, u64::min);
        if floor <= self.floor {
            return Ok(0);
        }
        // Below a sequence, unfiltered: the store drops whole blocks
        // (a filtered purge removes message by message, as deletes do).
        let done = handle
            .purge()
            .sequence(floor + 1)
            .await
            .map_err(|e| SweepError::Purge(floor + 1, e.to_string()))?;
        self.floor = floor;
        Ok(done.purged)
    }
}

async fn list_readers(handle: &stream::Stream) -> Result<Vec<String>, SweepError> {
    let mut names = handle.consumer_names();
    let mut all = Vec::new();
    while let Some(name) = names.next().await {
        all.push(name.map_err(|e| SweepError::Readers(e.to_string()))?);
    }
    Ok(all)
}

/// The last sequence `name` is done with: just before the first stored
/// message its filters match after its ack floor, or the stream's end
/// when there is none (the caller caps it at the last sequence it read).
async fn reader_floor(handle: &stream::Stream, name: &str) -> Result<u64, SweepError> {
    let info = handle
        .consumer_info(name)
        .await
        .map_err(|e| SweepError::Reader(name.to_string(), e.to_string()))?;
    let acked = info.ack_floor.stream_sequence;
    let mut floor = u64::MAX;
    for filter in filters(&info.config) {
        let next = handle
            .raw_message_builder()
            .sequence(acked + 1)
            .next_by_subject(filter)
            .send()
            .await;
        match next {
            Ok(m) => floor = floor.min(m.sequence.saturating_sub(1)),
            Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(SweepError::Next(name.to_string(), e.to_string())),
        }
    }
    Ok(floor)
}

/// The subjects a reader reads: its filters, or everything.
fn filters(config: &consumer::Config) -> Vec<String> {
    if !config.filter_subjects.is_empty() {
        config.filter_subjects.clone()
    } else if !config.filter_subject.is_empty() {
        vec![config.filter_subject.clone()]
    } else {
        vec![">".to_string()]
    }
}
