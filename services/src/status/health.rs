//! The health rules: every check that turns what was collected into
//! [`Problem`]s, in report order, and the measures they share with the
//! report and with `fleetbus dead rescue` (how full a stream is, which
//! messages are stranded). They are plain functions of a [`Status`] and the
//! [`Thresholds`]: the cluster is asked once, by collection, and every rule
//! is tested without one.

use super::format::{bytes, duration, percent, plural};
use super::model::{ConsumerStatus, Kind, Problem, Status, StreamStatus, WorkerStatus};
use super::thresholds::Thresholds;
use crate::nats::Role;
use crate::topology;
use fleetbus_wire::names;

/// Where a report of recent dead letters sends people.
const DEAD_HINT: &str = "see fleetbus dead ls";

/// Every check on what was collected, in report order.
pub fn problems(status: &Status, t: &Thresholds) -> Vec<Problem> {
    let mut out = Vec::new();
    out.extend(cluster_problems(status));
    // Without the JetStream API nothing is known to be missing.
    if !status.has(Kind::JetstreamApi) {
        out.extend(missing_problems(status));
    }
    out.extend(leader_and_replica_problems(status, t));
    out.extend(dead_problems(status));
    out.extend(full_problems(status, t));
    out.extend(lag_problems(status, t));
    out.extend(stranded_problems(status, t.stranded_after_secs));
    out.extend(max_deliver_problems(status));
    out.extend(worker_problems(status));
    out.extend(blocked_problems(status, t));
    out
}

fn cluster_problems(status: &Status) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(cluster) = &status.cluster else {
        return out;
    };
    for node in cluster.nodes.iter().filter(|n| !n.up) {
        out.push(Problem::new(
            Kind::NodeDown,
            format!("node {} is not answering", node.name),
        ));
    }
    let answering = cluster.nodes.iter().filter(|n| n.up).count();
    if answering < cluster.size && cluster.nodes.len() < cluster.size {
        out.push(Problem::new(
            Kind::NodeDown,
            format!("{answering} of {} nodes answering", cluster.size),
        ));
    }
    if cluster.meta_leader.is_none() {
        out.push(Problem::new(Kind::NoLeader, "no JetStream meta leader"));
    }
    out
}

/// Every stream and durable `fleetbus provision` creates.
fn missing_problems(status: &Status) -> Vec<Problem> {
    let scope = topology::Scope::all();
    let streams = scope
        .streams
        .iter()
        .filter(|name| !status.streams.iter().any(|s| &s.name == *name))
        .map(|name| {
            Problem::new(
                Kind::Missing,
                format!("stream {name} is missing (run `fleetbus provision`)"),
            )
        });
    // How many partitions there are is the topology's; what status sees
    // is which partition durables exist: none of a stage, or a gap.
    let consumers = scope.stages.iter().flat_map(|stage| {
        let stream = stage.stream().name();
        let present: Vec<u32> = status
            .consumers
            .iter()
            .filter(|c| c.stream == stream)
            .filter_map(|c| stage.partition_of(&c.name))
            .collect();
        let missing: Vec<String> = match present.iter().max() {
            None => vec![stage.partition_pattern()],
            Some(&last) => (0..last)
                .filter(|p| !present.contains(p))
                .map(|p| stage.partition(p))
                .collect(),
        };
        missing.into_iter().map(move |name| {
            Problem::new(
                Kind::Missing,
                format!("consumer {stream}/{name} is missing (run `fleetbus provision`)"),
            )
        })
    });
    streams.chain(consumers).collect()
}

fn leader_and_replica_problems(status: &Status, t: &Thresholds) -> Vec<Problem> {
    let mut out = Vec::new();
    for s in &status.streams {
        if s.leader.is_none() {
            out.push(Problem::new(
                Kind::NoLeader,
                format!("stream {} has no leader", s.name),
            ));
        }
        // A follower a few messages behind is a busy stream, not a problem.
        for l in s
            .lagging
            .iter()
            .filter(|l| l.offline || l.lag.is_none_or(|n| n > t.max_replica_lag))
        {
            let why = if l.offline {
                "offline".to_string()
            } else {
                format!("behind by {}", l.lag.unwrap_or(0))
            };
            out.push(Problem::new(
                Kind::ReplicaLagging,
                format!("stream {} replica on {} is {why}", s.name, l.name),
            ));
        }
    }
    for c in status.consumers.iter().filter(|c| c.leader.is_none()) {
        out.push(Problem::new(
            Kind::NoLeader,
            format!("consumer {}/{} has no leader", c.stream, c.name),
        ));
    }
    out
}

/// Dead letters are given-up work: any within the window is worth a look.
fn dead_problems(status: &Status) -> Vec<Problem> {
    let Some(dead) = status.dead_recent.as_ref().filter(|d| d.messages > 0) else {
        return Vec::new();
    };
    let newest = dead
        .newest_secs
        .map(|s| format!(" (newest {} ago)", duration(s)))
        .unwrap_or_default();
    vec![Problem::new(
        Kind::DeadRecent,
        format!(
            "{} received {} in the last {}{newest}: {DEAD_HINT}",
            names::DEAD,
            plural(dead.messages, "message"),
            duration(dead.window_secs as f64),
        ),
    )]
}

/// How full a stream is against the limit it is nearest to.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    pub ratio: f64,
    /// `max_bytes` or `max_msgs`.
    pub limit: &'static str,
    pub used: String,
    pub max: String,
}

/// The larger of bytes/max_bytes and messages/max_msgs, for the limits
/// that are set (> 0).
pub fn fill(s: &StreamStatus) -> Option<Fill> {
    let by_bytes = (s.max_bytes > 0).then(|| Fill {
        ratio: s.bytes as f64 / s.max_bytes as f64,
        limit: "max_bytes",
        used: bytes(s.bytes),
        max: bytes(s.max_bytes as u64),
    });
    let by_msgs = (s.max_msgs > 0).then(|| Fill {
        ratio: s.messages as f64 / s.max_msgs as f64,
        limit: "max_msgs",
        used: s.messages.to_string(),
        max: s.max_msgs.to_string(),
    });
    match (by_bytes, by_msgs) {
        (Some(b), Some(m)) => Some(if m.ratio > b.ratio { m } else { b }),
        (b, m) => b.or(m),
    }
}

fn full_problems(status: &Status, t: &Thresholds) -> Vec<Problem> {
    let mut out = Vec::new();
    for s in &status.streams {
        let Some(f) = fill(s).filter(|f| f.ratio >= t.full_ratio) else {
            continue;
        };
        let full = f.ratio >= 1.0;
        let effect = match (s.discard.as_str(), full) {
            ("old", true) => "it drops its oldest messages to take new ones",
            ("old", false) => "at the limit it drops its oldest messages to take new ones",
            (_, true) => "it refuses new messages, so writers into it are held back",
            (_, false) => "at the limit it refuses new messages, and writers into it are held back",
        };
        out.push(Problem::new(
            Kind::StreamFull,
            format!(
                "stream {} is {}% full ({} of {} {}): {effect}",
                s.name,
                percent(f.ratio),
                f.used,
                f.limit,
                f.max
            ),
        ));
    }
    out
}

/// Durable consumers only: an ephemeral one reading old messages (a
/// listing of DEAD) is behind by design, and gone when it is done.
fn lag_problems(status: &Status, t: &Thresholds) -> Vec<Problem> {
    status
        .consumers
        .iter()
        .filter(|c| c.durable && (c.pending > 0 || c.ack_pending > 0))
        .filter_map(|c| {
            let age = c
                .oldest_unacked_secs
                .filter(|age| *age > t.max_lag_secs as f64)?;
            Some(Problem::new(
                Kind::ConsumerLag,
                format!(
                    "consumer {}/{}: its oldest unacknowledged message is {} old ({} pending, {} \
                     ack pending)",
                    c.stream,
                    c.name,
                    duration(age),
                    c.pending,
                    c.ack_pending
                ),
            ))
        })
        .collect()
}

/// The consumer of `stream` that is done with the fewest messages: every
/// message at or below its [`ConsumerStatus::done_up_to`] is acknowledged
/// or given up on by all of them.
pub(super) fn common_floor<'a>(
    consumers: impl IntoIterator<Item = &'a ConsumerStatus>,
    stream: &StreamStatus,
) -> Option<(&'a ConsumerStatus, u64)> {
    consumers
        .into_iter()
        .filter(|c| c.stream == stream.name)
        .map(|c| (c, done_in(c, stream)))
        .min_by_key(|(_, floor)| *floor)
}

/// Up to where in `stream` a consumer is done. One with nothing pending
/// and nothing unacknowledged is done with the whole stream: a filtered
/// durable (one partition's) never delivers the other partitions'
/// messages, so its own floor says nothing about them.
fn done_in(c: &ConsumerStatus, stream: &StreamStatus) -> u64 {
    if c.pending == 0 && c.ack_pending == 0 {
        c.done_up_to().max(stream.last_seq)
    } else {
        c.done_up_to()
    }
}

/// Does an interest or work-queue stream hold messages at or below the
/// common floor? It removes a message once every consumer acknowledged
/// it, so such a message was given up on, not acknowledged.
pub(super) fn holds_passed_messages(stream: &StreamStatus, floor: u64) -> bool {
    stream.messages > 0 && stream.first_seq <= floor
}

/// The stranded messages of an interest stream, if it holds any and the
/// oldest is at least `after_secs` old: the consumer with the smallest
/// floor and that floor. A message at or below the floor that is still
/// stored was given up on by some consumer (`fleetbus dead rescue` moves
/// them to DEAD) — or every consumer acknowledged it and the server has
/// not removed it yet: with consumers led from different nodes it may wait
/// for the stream's periodic interest sweep (nats-server, about every two
/// minutes), which `after_secs` and rescue's settling wait out.
pub fn stranded<'a>(
    stream: &StreamStatus,
    consumers: &'a [ConsumerStatus],
    after_secs: u64,
) -> Option<(&'a ConsumerStatus, u64)> {
    if stream.retention == "limits" || stream.oldest_secs.is_none_or(|a| a < after_secs as f64) {
        return None;
    }
    let (c, floor) = common_floor(consumers, stream)?;
    holds_passed_messages(stream, floor).then_some((c, floor))
}

fn stranded_problems(status: &Status, after_secs: u64) -> Vec<Problem> {
    let mut out = Vec::new();
    for s in &status.streams {
        let Some((c, floor)) = stranded(s, &status.consumers, after_secs) else {
            continue;
        };
        let at_most = (floor - s.first_seq + 1).min(s.messages);
        out.push(Problem::new(
            Kind::Stranded,
            format!(
                "{} holds up to {} that no consumer will deliver again (first sequence {} <= {}, \
                 up to which {}/{} acknowledged or gave up on every message): they most likely \
                 ran out of deliveries (max_deliver), and stay until max_age unless moved to {} \
                 (`fleetbus dead rescue`)",
                s.name,
                plural(at_most, "message"),
                s.first_seq,
                floor,
                c.stream,
                c.name,
                names::DEAD,
            ),
        ));
    }
    out
}

/// fleetbus' durables never give up on a message (`max_deliver` -1); a
/// cluster provisioned by an older version may still have a finite one.
fn max_deliver_problems(status: &Status) -> Vec<Problem> {
    let scope = topology::Scope::all();
    status
        .consumers
        .iter()
        .filter(|c| {
            scope.stages.iter().any(|stage| {
                c.stream == stage.stream().name()
                    && (c.name == stage.name() || stage.partition_of(&c.name).is_some())
            })
        })
        .filter(|c| c.max_deliver > 0)
        .map(|c| {
            Problem::new(
                Kind::MaxDeliver,
                format!(
                    "consumer {}/{} has max_deliver {}: a message that runs out of deliveries \
                     stays in {} with nobody to deliver it (run `fleetbus provision`, which sets \
                     it unlimited)",
                    c.stream, c.name, c.max_deliver, c.stream
                ),
            )
        })
        .collect()
}

/// Each stage of the pipeline and what stops without it.
pub(super) fn stages() -> [(Role, String); 4] {
    [
        (
            Role::Gateway,
            format!("no device's frames get into {}", names::RAW),
        ),
        (
            Role::Hamster,
            format!(
                "{}/{} is not being consumed",
                names::RAW,
                names::Durable::Hamsters.partition_pattern()
            ),
        ),
        (
            Role::Monkey,
            format!(
                "{}/{} is not being consumed",
                names::PARSED,
                names::Durable::Monkeys.partition_pattern()
            ),
        ),
        (
            Role::Janitor,
            format!(
                "{} and {} are not swept: what was processed stays until max_age or max_bytes",
                names::RAW,
                names::PARSED
            ),
        ),
    ]
}

fn worker_problems(status: &Status) -> Vec<Problem> {
    stages()
        .into_iter()
        .filter(|(role, _)| !status.workers.iter().any(|w| w.name == role.name()))
        .map(|(role, effect)| {
            Problem::new(
                Kind::NoWorkers,
                format!("no {} is running: {effect}", role.name()),
            )
        })
        .collect()
}

fn stat_f64(w: &WorkerStatus, key: &str) -> Option<f64> {
    w.stats.get(key).and_then(|v| v.as_f64())
}

fn blocked_problems(status: &Status, t: &Thresholds) -> Vec<Problem> {
    status
        .workers
        .iter()
        .filter_map(|w| {
            let secs = stat_f64(w, "blocked_secs").filter(|s| *s > t.max_blocked_secs as f64)?;
            let by = w
                .stats
                .get("blocked_by")
                .and_then(|v| v.as_str())
                .unwrap_or("downstream refuses writes");
            let held = w
                .stats
                .get("held")
                .and_then(|v| v.as_u64())
                .map(|n| format!(" ({} held)", plural(n, "message")))
                .unwrap_or_default();
            Some(Problem::new(
                Kind::Blocked,
                format!(
                    "{} {} has been blocked for {}: {by}{held}",
                    w.name,
                    w.id,
                    duration(secs)
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::process::ExitCode;

    use super::*;
    use crate::cli::status::exit_code;
    use crate::status::fixtures::{
        backlog, check, consumer, consumer_mut, evaluate, healthy, hold_messages, only, stream,
        stream_mut, worker_mut, HAMSTERS_0, MONKEYS_0,
    };
    use crate::status::{
        render, summary_line, DeadRecent, Lagging, DEFAULT_MAX_REPLICA_LAG,
        DEFAULT_STRANDED_AFTER_SECS,
    };

    #[test]
    fn a_whole_cluster_is_healthy() {
        let status = healthy();
        assert_eq!(status.problems, Vec::<String>::new());
        assert_eq!(exit_code(&status), ExitCode::SUCCESS);
        let text = render(&status);
        assert!(
            text.starts_with("cluster fleetbus: HEALTHY\nnodes up 3/3, meta leader n1"),
            "{text}"
        );
        assert!(text.contains("RAW/hamsters-0"), "{text}");
        assert!(summary_line(&status).starts_with("[ok] nodes 3/3 meta n1"));
    }

    #[test]
    fn a_missing_node_and_a_lagging_replica_degrade() {
        let mut status = healthy();
        status.cluster.as_mut().unwrap().nodes[2].up = false;
        status.streams[0].lagging.push(Lagging {
            name: "n3".into(),
            lag: None,
            offline: true,
        });
        status.consumers.remove(1);
        let status = check(status);
        assert_eq!(
            status.problems,
            vec![
                "node n3 is not answering",
                "consumer PARSED/monkeys-<partition> is missing (run `fleetbus provision`)",
                "stream RAW replica on n3 is offline",
            ]
        );
        assert_eq!(
            status.problem_kinds,
            vec![Kind::NodeDown, Kind::Missing, Kind::ReplicaLagging]
        );
        assert_eq!(exit_code(&status), ExitCode::from(1));
        assert!(
            render(&status).contains("DEGRADED (3 problems: node_down, missing, replica_lagging)")
        );
        assert!(summary_line(&status)
            .starts_with("[DEGRADED: node_down, missing, replica_lagging] nodes 2/3 meta n1"));
    }

    #[test]
    fn a_follower_a_few_messages_behind_is_a_busy_stream_not_a_problem() {
        let mut status = healthy();
        for (name, lag) in [("n2", 3), ("n3", DEFAULT_MAX_REPLICA_LAG + 1)] {
            status.streams[1].lagging.push(Lagging {
                name: name.into(),
                lag: Some(lag),
                offline: false,
            });
        }
        let status = check(status);
        assert_eq!(
            status.problems,
            vec![format!(
                "stream PARSED replica on n3 is behind by {}",
                DEFAULT_MAX_REPLICA_LAG + 1
            )]
        );
    }

    #[test]
    fn every_provisioned_stream_is_expected() {
        let mut status = healthy();
        status.streams.retain(|s| s.name != names::SEEN);
        let status = check(status);
        assert_eq!(
            only(&status, Kind::Missing),
            vec!["stream KV_seen is missing (run `fleetbus provision`)"]
        );
    }

    #[test]
    fn recent_dead_letters_are_reported_with_count_and_age() {
        let mut status = healthy();
        status.dead_recent = Some(DeadRecent {
            window_secs: 900,
            messages: 211,
            newest_secs: Some(12.4),
        });
        let status = check(status);
        assert_eq!(
            only(&status, Kind::DeadRecent),
            vec![
                "DEAD received 211 messages in the last 15m (newest 12s ago): see fleetbus dead ls"
            ]
        );
        assert_eq!(status.problem_kinds, vec![Kind::DeadRecent]);
        assert_eq!(exit_code(&status), ExitCode::from(1));
    }

    #[test]
    fn dead_letters_older_than_the_window_are_not_reported() {
        // DEAD holds old messages, none within the window: counted as 0.
        let mut status = healthy();
        stream_mut(&mut status, names::DEAD).messages = 40;
        status.dead_recent = Some(DeadRecent {
            window_secs: 900,
            messages: 0,
            newest_secs: Some(3600.0),
        });
        assert!(check(status).healthy);
    }

    #[test]
    fn a_stream_at_the_full_ratio_is_reported_below_it_not() {
        let mut status = healthy();
        hold_messages(&mut status, names::PARSED, 31, 31);
        let status = check(status);
        assert_eq!(
            only(&status, Kind::StreamFull),
            vec![
                "stream PARSED is 100% full (31 of max_msgs 31): it refuses new messages, so \
                 writers into it are held back"
            ]
        );

        let mut status = healthy();
        let raw = stream_mut(&mut status, names::RAW);
        raw.bytes = (raw.max_bytes as f64 * 0.8).ceil() as u64;
        let reported = check(status.clone());
        assert_eq!(
            only(&reported, Kind::StreamFull),
            vec![
                "stream RAW is 80% full (819.2 MiB of max_bytes 1.0 GiB): at the limit it refuses \
                 new messages, and writers into it are held back"
            ]
        );
        stream_mut(&mut status, names::RAW).bytes -= 1 << 20;
        assert!(check(status.clone()).healthy, "79.9 % is below 0.8");
        let strict = Thresholds {
            full_ratio: 0.9,
            ..Thresholds::default()
        };
        stream_mut(&mut status, names::RAW).bytes = (0.85 * (1u64 << 30) as f64) as u64;
        assert!(evaluate(status.clone(), &strict).healthy);
        assert!(!evaluate(status, &Thresholds::default()).healthy);
    }

    #[test]
    fn fill_is_the_nearer_limit_and_none_when_unlimited() {
        let mut s = stream("X", "limits");
        s.max_bytes = -1;
        assert_eq!(fill(&s), None);
        s.max_bytes = 1000;
        s.bytes = 100;
        s.max_msgs = 10;
        s.messages = 5;
        let f = fill(&s).unwrap();
        assert_eq!((f.ratio, f.limit), (0.5, "max_msgs"));
        s.max_msgs = 0;
        assert_eq!(fill(&s).unwrap().limit, "max_bytes");
    }

    #[test]
    fn a_full_stream_that_discards_old_says_so() {
        let mut status = healthy();
        let events = stream_mut(&mut status, names::EVENTS);
        events.discard = "old".into();
        events.bytes = events.max_bytes as u64;
        assert_eq!(
            only(&check(status), Kind::StreamFull),
            vec![
                "stream EVENTS is 100% full (1.0 GiB of max_bytes 1.0 GiB): it drops its oldest \
                 messages to take new ones"
            ]
        );
    }

    #[test]
    fn an_old_unacknowledged_message_is_consumer_lag() {
        let mut status = healthy();
        backlog(&mut status, MONKEYS_0, 24, 7, 192.3);
        let lagging = check(status.clone());
        assert_eq!(
            only(&lagging, Kind::ConsumerLag),
            vec![
                "consumer PARSED/monkeys-0: its oldest unacknowledged message is 3m12s old (24 \
                 pending, 7 ack pending)"
            ]
        );
        let text = render(&lagging);
        assert!(
            text.lines()
                .any(|l| l.starts_with("PARSED/monkeys-0") && l.contains(" 3m12s ")),
            "{text}"
        );
        let patient = Thresholds {
            max_lag_secs: 200,
            ..Thresholds::default()
        };
        assert!(evaluate(status.clone(), &patient).healthy);
        // A passing reader is behind by design.
        let mut reader = consumer(names::DEAD, "reader");
        reader.durable = false;
        reader.pending = 400;
        reader.oldest_unacked_secs = Some(86_400.0);
        let mut with_reader = status.clone();
        with_reader.consumers.push(reader);
        assert_eq!(check(with_reader).problem_kinds, vec![Kind::ConsumerLag]);
        consumer_mut(&mut status, MONKEYS_0).oldest_unacked_secs = Some(59.0);
        assert!(check(status).healthy);
    }

    #[test]
    fn no_instance_of_a_stage_is_no_workers() {
        let mut status = healthy();
        status.workers.retain(|w| w.name != "monkey");
        let status = check(status);
        assert_eq!(
            only(&status, Kind::NoWorkers),
            vec!["no monkey is running: PARSED/monkeys-<partition> is not being consumed"]
        );
        let mut status = status;
        status.workers.clear();
        let status = check(status);
        assert_eq!(
            only(&status, Kind::NoWorkers),
            vec![
                "no gateway is running: no device's frames get into RAW",
                "no hamster is running: RAW/hamsters-<partition> is not being consumed",
                "no monkey is running: PARSED/monkeys-<partition> is not being consumed",
                "no janitor is running: RAW and PARSED are not swept: what was processed stays \
                 until max_age or max_bytes",
            ]
        );
    }

    #[test]
    fn messages_below_every_ack_floor_of_an_interest_stream_are_stranded() {
        let mut status = healthy();
        let raw = stream_mut(&mut status, names::RAW);
        raw.messages = 3;
        raw.first_seq = 12;
        raw.last_seq = 460;
        raw.oldest_secs = Some(DEFAULT_STRANDED_AFTER_SECS as f64 - 1.0);
        // Past them, the last eight still to deliver (a consumer with
        // nothing pending is done with the whole stream).
        let hamsters = consumer_mut(&mut status, HAMSTERS_0);
        (hamsters.ack_floor, hamsters.pending) = (452, 8);
        // Younger than the server's interest sweep: maybe acknowledged by
        // all and not yet removed.
        assert!(check(status.clone()).healthy);
        stream_mut(&mut status, names::RAW).oldest_secs = Some(DEFAULT_STRANDED_AFTER_SECS as f64);
        let stranded = check(status.clone());
        assert_eq!(
            only(&stranded, Kind::Stranded),
            vec![
                "RAW holds up to 3 messages that no consumer will deliver again (first sequence 12 \
                 <= 452, up to which RAW/hamsters-0 acknowledged or gave up on every message): they \
                 most likely ran out of deliveries (max_deliver), and stay until max_age unless \
                 moved to DEAD (`fleetbus dead rescue`)"
            ]
        );

        // An idle partition's durable (it never delivered anything: its
        // floor is 0) does not hide them: its filter matches none of them.
        let mut idle = status.clone();
        idle.consumers.push(consumer(names::RAW, "hamsters-1"));
        assert_eq!(only(&check(idle), Kind::Stranded).len(), 1);

        // Another consumer not past them yet: they are still wanted.
        let mut wanted = status.clone();
        let mut audit = consumer(names::RAW, "audit");
        (audit.ack_floor, audit.pending) = (11, 3);
        wanted.consumers.push(audit);
        assert!(check(wanted).healthy);

        // JetStream leaves the ack floor below a message that ran out of
        // deliveries: with nothing ack pending, what was delivered is done.
        let mut exhausted = status.clone();
        let hamsters = consumer_mut(&mut exhausted, HAMSTERS_0);
        hamsters.ack_floor = 11;
        hamsters.delivered_seq = 460;
        assert_eq!(check(exhausted.clone()).problem_kinds, vec![Kind::Stranded]);
        // ... but while some are ack pending, they may still be acknowledged.
        consumer_mut(&mut exhausted, HAMSTERS_0).ack_pending = 1;
        assert!(check(exhausted).healthy);

        // The backlog after the floor is no problem.
        stream_mut(&mut status, names::RAW).first_seq = 453;
        assert!(check(status.clone()).healthy);

        // A limits stream keeps what was acknowledged: not stranded.
        let mut status = healthy();
        let dead = stream_mut(&mut status, names::DEAD);
        dead.messages = 5;
        dead.first_seq = 1;
        let mut reader = consumer(names::DEAD, "reader");
        reader.ack_floor = 5;
        status.consumers.push(reader);
        assert!(check(status).healthy);
    }

    #[test]
    fn a_finite_max_deliver_on_a_fleetbus_durable_is_reported() {
        let mut status = healthy();
        consumer_mut(&mut status, HAMSTERS_0).max_deliver = 5;
        let mut other = consumer(names::PARSED, "analytics");
        other.max_deliver = 5;
        status.consumers.push(other);
        let status = check(status);
        assert_eq!(
            only(&status, Kind::MaxDeliver),
            vec![
                "consumer RAW/hamsters-0 has max_deliver 5: a message that runs out of deliveries \
                 stays in RAW with nobody to deliver it (run `fleetbus provision`, which sets it \
                 unlimited)"
            ]
        );
        assert_eq!(status.problem_kinds, vec![Kind::MaxDeliver]);
    }

    #[test]
    fn a_worker_blocked_longer_than_allowed_is_reported() {
        let mut status = healthy();
        let monkey = worker_mut(&mut status, "monkey");
        monkey.stats = BTreeMap::from([
            ("held".to_string(), serde_json::json!(12)),
            ("blocked_secs".to_string(), serde_json::json!(95)),
            (
                "blocked_by".to_string(),
                serde_json::json!("EVENTS full: maximum bytes exceeded"),
            ),
        ]);
        let blocked = check(status.clone());
        assert_eq!(
            only(&blocked, Kind::Blocked),
            vec![
                "monkey M1 has been blocked for 1m35s: EVENTS full: maximum bytes exceeded (12 \
                 messages held)"
            ]
        );
        let patient = Thresholds {
            max_blocked_secs: 95,
            ..Thresholds::default()
        };
        assert!(
            evaluate(status.clone(), &patient).healthy,
            "95 s is not more than 95 s"
        );
        let monkey = worker_mut(&mut status, "monkey");
        monkey
            .stats
            .insert("blocked_secs".into(), serde_json::json!(0));
        monkey.stats.remove("blocked_by");
        assert!(check(status).healthy);
    }
}
