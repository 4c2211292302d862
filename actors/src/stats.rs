//! Live counters of one worker process, shared by its workers, its
//! supervisor and its micro-service registration (`$SRV.STATS`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Counters since the process started.
#[derive(Debug, Default)]
pub struct Stats {
    processed: AtomicU64,
    errors: AtomicU64,
    restarts: AtomicU64,
    dead: AtomicU64,
    published: AtomicU64,
    redelivered: AtomicU64,
    backpressure: AtomicU64,
    duplicates: AtomicU64,
    purged: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Messages handled to the end and acknowledged (including dead-lettered ones).
    pub processed: u64,
    /// Failures that are neither back-pressure nor the message's fault:
    /// pulls, acks.
    pub errors: u64,
    /// Workers restarted by the supervisor.
    pub restarts: u64,
    /// Messages moved to DEAD.
    pub dead: u64,
    /// Messages published downstream (records to PARSED, events, …).
    pub published: u64,
    /// Messages received that had been delivered before.
    pub redelivered: u64,
    /// Tries that downstream refused (a full stream, an election, a store
    /// down): the message was held and tried again, never given up on.
    #[serde(default)]
    pub backpressure: u64,
    /// Records a device sent again in another frame (re-packed,
    /// re-encoded), left out because a frame before carried them.
    #[serde(default)]
    pub duplicates: u64,
    /// Messages this process's sweeps purged from the stream it consumes
    /// once every reader had acknowledged them (RAW and PARSED keep
    /// messages by limits: docs/streams.md).
    #[serde(default)]
    pub purged: u64,
}

/// `fn name => field;`: a method that adds one to the counter `field`;
/// `fn name(n) => field;`: one that adds `n`.
macro_rules! counters {
    ($(fn $name:ident $(($n:ident))? => $field:ident;)*) => {
        $(pub fn $name(&self $(, $n: u64)?) {
            self.$field.fetch_add(counters!(@by $($n)?), Relaxed);
        })*
    };
    (@by) => { 1 };
    (@by $n:ident) => { $n };
}

impl Stats {
    counters! {
        fn processed => processed;
        fn error => errors;
        fn restarted => restarts;
        fn dead => dead;
        fn published(n) => published;
        fn redelivered => redelivered;
        fn backpressure => backpressure;
        fn duplicates(n) => duplicates;
        fn purged(n) => purged;
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            processed: self.processed.load(Relaxed),
            errors: self.errors.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            dead: self.dead.load(Relaxed),
            published: self.published.load(Relaxed),
            redelivered: self.redelivered.load(Relaxed),
            backpressure: self.backpressure.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            purged: self.purged.load(Relaxed),
        }
    }
}
