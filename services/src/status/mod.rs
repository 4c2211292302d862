//! What `fleetbus status` finds: is the cluster whole, are the streams
//! replicated and led, are the consumers keeping up, is anything being given
//! up on or held back, which workers are registered. The command line is
//! `cli::status`; `fleetbus dev up` shows the [`summary_line`] and `fleetbus
//! dead rescue` moves what [`stranded`] finds.
//!
//! Every check is computed from what the cluster reports at that moment:
//! status keeps no state between runs, so each one that looks back in time
//! (recent dead letters, the age of the oldest unacknowledged message) reads
//! message timestamps from the streams themselves. Thresholds are flags
//! ([`Thresholds`]).
//!
//! One file per step, each using only those listed before it:
//! - `thresholds`: when a check reports a problem;
//! - `model`: the report ([`Status`]) and the kinds of problems ([`Kind`]);
//! - `format`: numbers for people;
//! - `health`: the checks ([`problems`]);
//! - `streams`: what the JetStream API says of streams and consumers;
//! - `collect`: asking the cluster ([`query`], [`collect()`]), `streams` included;
//! - `render`: the tables ([`render()`]) and the summary line;
//! - `metrics`: Prometheus text ([`metrics()`]).

mod collect;
#[cfg(test)]
mod fixtures;
mod format;
mod health;
mod metrics;
mod model;
mod render;
mod streams;
mod thresholds;

pub use collect::{collect, collect_with, query, JSZ_SUBJECT, SRV_INFO_SUBJECT, SRV_STATS_SUBJECT};
pub use format::{bytes, duration};
pub use health::{fill, problems, stranded, Fill};
pub use metrics::metrics;
pub use model::{
    ClusterStatus, ConsumerStatus, DeadRecent, Kind, Lagging, NodeStatus, Problem, Status,
    StreamStatus, WorkerStatus,
};
pub use render::{render, summary_line};
pub use streams::PROBE_PREFIX;
pub use thresholds::{
    Thresholds, DEFAULT_DEAD_WINDOW_SECS, DEFAULT_FULL_RATIO, DEFAULT_MAX_BLOCKED_SECS,
    DEFAULT_MAX_LAG_SECS, DEFAULT_MAX_REPLICA_LAG, DEFAULT_STRANDED_AFTER_SECS,
};
