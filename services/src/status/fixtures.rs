//! What the unit tests of the status files start from: a cluster as
//! `fleetbus provision` leaves it with every stage running ([`healthy`]),
//! made worse one field at a time, and the checks run on it as
//! `collect_with` runs them ([`check`]).

use super::health::problems;
use super::model::{
    ClusterStatus, ConsumerStatus, DeadRecent, Kind, NodeStatus, Status, StreamStatus, WorkerStatus,
};
use super::thresholds::{Thresholds, DEFAULT_DEAD_WINDOW_SECS};
use crate::topology;
use fleetbus_wire::names;

pub(super) fn stream(name: &str, retention: &str) -> StreamStatus {
    StreamStatus {
        name: name.to_string(),
        replicas: 3,
        leader: Some("n2".into()),
        retention: retention.into(),
        discard: "new".into(),
        max_bytes: 1 << 30,
        max_msgs: -1,
        ..Default::default()
    }
}

pub(super) fn consumer(stream: &str, name: &str) -> ConsumerStatus {
    ConsumerStatus {
        stream: stream.into(),
        name: name.into(),
        leader: Some("n1".into()),
        durable: true,
        max_deliver: -1,
        ..Default::default()
    }
}

pub(super) fn worker(role: &str, id: &str) -> WorkerStatus {
    WorkerStatus {
        name: role.into(),
        id: id.into(),
        version: "0.1.0".into(),
        ..Default::default()
    }
}

/// The durables of the one partition of the fixtures' cluster.
pub const HAMSTERS_0: &str = "hamsters-0";
pub const MONKEYS_0: &str = "monkeys-0";

/// Runs the checks as `collect_with` does.
pub(super) fn evaluate(mut status: Status, t: &Thresholds) -> Status {
    status.problems.clear();
    status.problem_kinds.clear();
    for p in problems(&status, t) {
        status.push(p);
    }
    status.healthy = status.problems.is_empty();
    status
}

pub(super) fn check(status: Status) -> Status {
    evaluate(status, &Thresholds::default())
}

pub(super) fn healthy() -> Status {
    let streams = topology::Scope::all()
        .streams
        .iter()
        .map(|name| {
            let interest = [names::RAW, names::PARSED].contains(name);
            stream(name, if interest { "interest" } else { "limits" })
        })
        .collect();
    check(Status {
        reachable: true,
        cluster: Some(ClusterStatus {
            name: Some("fleetbus".into()),
            size: 3,
            meta_leader: Some("n1".into()),
            nodes: ["n1", "n2", "n3"]
                .iter()
                .map(|n| NodeStatus {
                    name: n.to_string(),
                    up: true,
                    version: Some("2.12.8".into()),
                })
                .collect(),
        }),
        streams,
        consumers: vec![
            consumer(names::RAW, HAMSTERS_0),
            consumer(names::PARSED, MONKEYS_0),
        ],
        workers: vec![
            worker("gateway", "G1"),
            worker("hamster", "H1"),
            worker("monkey", "M1"),
            worker("janitor", "J1"),
        ],
        dead_recent: Some(DeadRecent {
            window_secs: DEFAULT_DEAD_WINDOW_SECS,
            messages: 0,
            newest_secs: None,
        }),
        ..Status::default()
    })
}

pub(super) fn stream_mut<'a>(status: &'a mut Status, name: &str) -> &'a mut StreamStatus {
    status.streams.iter_mut().find(|s| s.name == name).unwrap()
}

pub(super) fn consumer_mut<'a>(status: &'a mut Status, name: &str) -> &'a mut ConsumerStatus {
    status
        .consumers
        .iter_mut()
        .find(|c| c.name == name)
        .unwrap()
}

/// The worker of `role` (the first, `healthy` has one of each).
pub(super) fn worker_mut<'a>(status: &'a mut Status, role: &str) -> &'a mut WorkerStatus {
    status.workers.iter_mut().find(|w| w.name == role).unwrap()
}

/// Gives consumer `name` a backlog: `pending` messages not delivered,
/// `ack_pending` not acknowledged, the oldest `oldest_secs` old.
pub(super) fn backlog(
    status: &mut Status,
    name: &str,
    pending: u64,
    ack_pending: u64,
    oldest_secs: f64,
) {
    let c = consumer_mut(status, name);
    c.pending = pending;
    c.ack_pending = ack_pending;
    c.oldest_unacked_secs = Some(oldest_secs);
}

/// Fills stream `name` to `messages` (from sequence 1) of at most
/// `max_msgs`.
pub(super) fn hold_messages(status: &mut Status, name: &str, messages: u64, max_msgs: i64) {
    let s = stream_mut(status, name);
    s.max_msgs = max_msgs;
    s.messages = messages;
    s.first_seq = 1;
}

/// The problems of `kind`, in report order.
pub(super) fn only(status: &Status, kind: Kind) -> Vec<&str> {
    status
        .problems
        .iter()
        .zip(&status.problem_kinds)
        .filter(|(_, k)| **k == kind)
        .map(|(p, _)| p.as_str())
        .collect()
}
