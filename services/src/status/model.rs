//! What `fleetbus status` reports: the [`Status`] with everything collected
//! and every problem found, and the stable [`Kind`] of each problem.
//!
//! These types are the report's interface: `--json` prints [`Status`] as
//! serde writes it, and scripts and alerts match the [`Kind`] names, so a
//! field or a name here changes only with them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::thresholds::Thresholds;

/// What kind of problem a line reports: stable names for alerts, scripts
/// and the `fleetbus_status_problems{kind}` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// No connection to any node.
    Unreachable,
    /// The servers' JetStream report (`$SYS.REQ.SERVER.PING.JSZ`) failed.
    ClusterReport,
    /// The JetStream API does not answer.
    JetstreamApi,
    /// A node does not answer.
    NodeDown,
    /// No meta leader, or a stream or consumer without leader.
    NoLeader,
    /// A stream replica is behind or offline.
    ReplicaLagging,
    /// A stream or consumer fleetbus provisions does not exist.
    Missing,
    /// DEAD received messages within the dead window.
    DeadRecent,
    /// A stream is above the full ratio of one of its limits.
    StreamFull,
    /// A consumer's oldest unacknowledged message is older than allowed.
    ConsumerLag,
    /// No instance of a stage (gateway, hamster, monkey) is registered.
    NoWorkers,
    /// An interest stream keeps messages that every consumer is past.
    Stranded,
    /// A fleetbus durable gives up on messages (finite max_deliver).
    MaxDeliver,
    /// A worker process has been held back by back-pressure too long.
    Blocked,
    /// A check could not be made (its question failed).
    CheckFailed,
}

impl Kind {
    pub const ALL: [Kind; 15] = [
        Kind::Unreachable,
        Kind::ClusterReport,
        Kind::JetstreamApi,
        Kind::NodeDown,
        Kind::NoLeader,
        Kind::ReplicaLagging,
        Kind::Missing,
        Kind::DeadRecent,
        Kind::StreamFull,
        Kind::ConsumerLag,
        Kind::NoWorkers,
        Kind::Stranded,
        Kind::MaxDeliver,
        Kind::Blocked,
        Kind::CheckFailed,
    ];

    /// The name in JSON, metrics and the summary line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unreachable => "unreachable",
            Kind::ClusterReport => "cluster_report",
            Kind::JetstreamApi => "jetstream_api",
            Kind::NodeDown => "node_down",
            Kind::NoLeader => "no_leader",
            Kind::ReplicaLagging => "replica_lagging",
            Kind::Missing => "missing",
            Kind::DeadRecent => "dead_recent",
            Kind::StreamFull => "stream_full",
            Kind::ConsumerLag => "consumer_lag",
            Kind::NoWorkers => "no_workers",
            Kind::Stranded => "stranded",
            Kind::MaxDeliver => "max_deliver",
            Kind::Blocked => "blocked",
            Kind::CheckFailed => "check_failed",
        }
    }
}

/// One problem: its kind and one line for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: Kind,
    pub text: String,
}

impl Problem {
    pub(super) fn new(kind: Kind, text: impl Into<String>) -> Problem {
        Problem {
            kind,
            text: text.into(),
        }
    }
}

/// Everything `fleetbus status` reports. Here and in the parts below, a
/// field that a report of an older fleetbus lacks reads as its default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub healthy: bool,
    pub reachable: bool,
    /// Why it is not healthy, one line each.
    pub problems: Vec<String>,
    /// The kind of each line of `problems`, in the same order.
    pub problem_kinds: Vec<Kind>,
    /// The thresholds the checks used.
    pub thresholds: Thresholds,
    pub cluster: Option<ClusterStatus>,
    pub streams: Vec<StreamStatus>,
    pub consumers: Vec<ConsumerStatus>,
    pub workers: Vec<WorkerStatus>,
    /// What DEAD received within the dead window (absent when DEAD could
    /// not be read).
    pub dead_recent: Option<DeadRecent>,
}

impl Status {
    pub(super) fn push(&mut self, problem: Problem) {
        self.problems.push(problem.text);
        self.problem_kinds.push(problem.kind);
    }

    pub(super) fn has(&self, kind: Kind) -> bool {
        self.problem_kinds.contains(&kind)
    }

    /// The kinds of the problems, each once, in order of first appearance.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut out: Vec<Kind> = Vec::new();
        for k in &self.problem_kinds {
            if !out.contains(k) {
                out.push(*k);
            }
        }
        out
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub name: Option<String>,
    /// Size of the JetStream meta group.
    pub size: usize,
    pub meta_leader: Option<String>,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    /// Answered the JetStream report request.
    pub up: bool,
    pub version: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamStatus {
    pub name: String,
    pub messages: u64,
    pub bytes: u64,
    pub replicas: usize,
    pub leader: Option<String>,
    /// Followers that are not current (or offline), with their lag.
    pub lagging: Vec<Lagging>,
    /// `limits`, `interest` or `workqueue`.
    pub retention: String,
    /// What happens at a limit: `new` (refused) or `old` (oldest dropped).
    pub discard: String,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Limits; 0 or -1 is no limit.
    pub max_bytes: i64,
    pub max_msgs: i64,
    /// The larger of bytes/max_bytes and messages/max_msgs (none when
    /// both are unlimited).
    pub fill: Option<f64>,
    /// Seconds since the stream received its last message (none if it
    /// never received one).
    pub newest_secs: Option<f64>,
    /// Seconds since the oldest message it stores was received (none when
    /// it is empty).
    pub oldest_secs: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lagging {
    pub name: String,
    pub lag: Option<u64>,
    pub offline: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerStatus {
    pub stream: String,
    pub name: String,
    /// Messages not yet delivered.
    pub pending: u64,
    /// Delivered, not yet acknowledged.
    pub ack_pending: u64,
    pub redelivered: u64,
    /// Pull requests waiting.
    pub waiting: u64,
    pub leader: Option<String>,
    /// A durable consumer (a processing group); an ephemeral one is a
    /// passing reader (`fleetbus dead ls`, `nats stream view`, …).
    pub durable: bool,
    /// JetStream's ack floor: the stream sequence up to which every
    /// message is acknowledged.
    pub ack_floor: u64,
    /// Stream sequence of the last message delivered.
    pub delivered_seq: u64,
    /// Deliveries before the server gives up on a message (-1: never).
    pub max_deliver: i64,
    /// Age of the oldest message it has not acknowledged (for a consumer
    /// that acknowledges nothing: not delivered), seconds; none when
    /// nothing is pending or ack pending.
    pub oldest_unacked_secs: Option<f64>,
}

impl ConsumerStatus {
    /// The stream sequence up to which this consumer is done with every
    /// message (acknowledged it, or gave up on it). That is the ack floor,
    /// except that with nothing ack pending every delivered message is
    /// done: JetStream leaves the floor below a message that ran out of
    /// deliveries until a later one is acknowledged.
    pub fn done_up_to(&self) -> u64 {
        if self.ack_pending == 0 {
            self.ack_floor.max(self.delivered_seq)
        } else {
            self.ack_floor
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerStatus {
    pub name: String,
    pub id: String,
    pub version: String,
    pub description: String,
    pub metadata: BTreeMap<String, String>,
    /// The instance's live counters since it started (its `stats`
    /// endpoint's data in `$SRV.STATS`: processed, errors, dead, held,
    /// blocked_secs, …), empty when it did not answer.
    pub stats: BTreeMap<String, serde_json::Value>,
}

/// Dead letters DEAD received within the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeadRecent {
    pub window_secs: u64,
    /// Messages DEAD holds that it received within the window.
    pub messages: u64,
    /// Seconds since DEAD received its last message.
    pub newest_secs: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::fixtures::{check, healthy};

    #[test]
    fn kind_names_are_their_json_names() {
        for kind in Kind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
    }

    #[test]
    fn json_keeps_problems_and_adds_their_kinds() {
        let mut status = healthy();
        status.workers.clear();
        status.dead_recent.as_mut().unwrap().messages = 1;
        let status = check(status);
        let json = serde_json::to_value(&status).unwrap();
        let problems = json["problems"].as_array().unwrap();
        let kinds = json["problem_kinds"].as_array().unwrap();
        assert_eq!(problems.len(), kinds.len());
        assert_eq!(kinds[0], "dead_recent");
        assert!(problems[0]
            .as_str()
            .unwrap()
            .starts_with("DEAD received 1 message "));
        assert_eq!(kinds[1], "no_workers");
        assert_eq!(json["thresholds"]["max_lag_secs"], 60);
        let back: Status = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
    }
}
