//! `fleetbus status`: is the cluster whole, are the streams replicated and
//! led, are the consumers keeping up, is anything being given up on or held
//! back, which workers are registered.
//!
//! Every check is computed from what the cluster reports at that moment:
//! status keeps no state between runs, so each one that looks back in time
//! (recent dead letters, the age of the oldest unacknowledged message) reads
//! message timestamps from the streams themselves. Thresholds are flags
//! ([`Thresholds`]).
//!
//! Exit status: 0 healthy, 1 degraded (the problems are listed, each with a
//! stable [`Kind`]), 2 the cluster cannot be reached. `--json` prints the
//! same as one JSON object, `--metrics` as Prometheus text.

use fleetbus_wire::names;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream::{DiscardPolicy, RetentionPolicy};
use async_nats::jetstream::{self, consumer, ErrorCode};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::nats::{NatsArgs, Role};
use crate::topology;

/// Subject every server answers with its JetStream report (imported from
/// the system account into FLEETBUS, see nats-conf/accounts.conf).
pub const JSZ_SUBJECT: &str = "$SYS.REQ.SERVER.PING.JSZ";
/// Subject every NATS micro service instance answers with its info.
pub const SRV_INFO_SUBJECT: &str = "$SRV.INFO";
/// Subject every NATS micro service instance answers with its live stats.
pub const SRV_STATS_SUBJECT: &str = "$SRV.STATS";

/// Name prefix of the short-lived consumers status creates on DEAD to
/// count recent dead letters. Consumers named so are left out of the
/// report: another status run's probe is not part of the system.
pub const PROBE_PREFIX: &str = "fleetbus-status-";

/// Where a report of recent dead letters sends people.
const DEAD_HINT: &str = "see fleetbus dead ls";

/// Removal of acknowledged messages from an interest stream is replicated
/// after the ack floor moves; a stream that looks stranded is read again
/// after this long before it is reported.
const STRANDED_SETTLE: Duration = Duration::from_millis(500);

/// Default of `--dead-window-secs`: 15 min, long enough for a cron or a
/// scrape every few minutes to see every dead letter at least once.
pub const DEFAULT_DEAD_WINDOW_SECS: u64 = 900;
/// Default of `--full-ratio`: a stream that discards new messages refuses
/// writes at its limit; 80 % leaves time to act before it does.
pub const DEFAULT_FULL_RATIO: f64 = 0.8;
/// Default of `--max-lag-secs`: a healthy stage acknowledges within
/// milliseconds; a minute is a stage that is stopped, failing or far behind.
pub const DEFAULT_MAX_LAG_SECS: u64 = 60;
/// Default of `--max-blocked-secs`: an election refuses writes for a few
/// seconds (docs/cluster.md); longer is a stream that stays full or a store
/// that stays down.
pub const DEFAULT_MAX_BLOCKED_SECS: u64 = 30;
/// A follower this many messages behind its stream's leader is reported; a
/// few behind is the normal pipelining of a busy stream.
pub const DEFAULT_MAX_REPLICA_LAG: u64 = 1_000;
/// More than two of nats-server's interest sweeps (2 min + up to 30 s).
pub const DEFAULT_STRANDED_AFTER_SECS: u64 = 300;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Print one JSON object instead of tables.
    #[arg(long, conflicts_with = "metrics")]
    pub json: bool,
    /// Print Prometheus text exposition instead of tables (same exit status).
    #[arg(long)]
    pub metrics: bool,
    /// How long to wait for answers, in seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
    #[command(flatten)]
    pub thresholds: Thresholds,
}

/// When a check reports a problem.
#[derive(clap::Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Report dead letters DEAD received within this many seconds.
    #[arg(long, default_value_t = DEFAULT_DEAD_WINDOW_SECS)]
    pub dead_window_secs: u64,
    /// Report a stream filled above this share of its max_bytes or
    /// max_msgs (0 < ratio <= 1).
    #[arg(long, default_value_t = DEFAULT_FULL_RATIO, value_parser = parse_ratio)]
    pub full_ratio: f64,
    /// Report a consumer whose oldest unacknowledged message is older than
    /// this many seconds.
    #[arg(long, default_value_t = DEFAULT_MAX_LAG_SECS)]
    pub max_lag_secs: u64,
    /// Report a worker process blocked by back-pressure for longer than
    /// this many seconds.
    #[arg(long, default_value_t = DEFAULT_MAX_BLOCKED_SECS)]
    pub max_blocked_secs: u64,
    /// Report a stream replica more than this many messages behind its
    /// leader (an offline one always).
    #[arg(long, default_value_t = DEFAULT_MAX_REPLICA_LAG)]
    #[serde(default = "default_max_replica_lag")]
    pub max_replica_lag: u64,
    /// Report messages an interest stream keeps past every consumer's
    /// floor only once the oldest is this many seconds old. nats-server
    /// removes such messages lazily when the acks of two consumers were
    /// led from different nodes (its periodic interest sweep, about every
    /// two minutes), so a younger one may just be waiting for that sweep.
    #[arg(long, default_value_t = DEFAULT_STRANDED_AFTER_SECS)]
    #[serde(default = "default_stranded_after_secs")]
    pub stranded_after_secs: u64,
}

fn default_stranded_after_secs() -> u64 {
    DEFAULT_STRANDED_AFTER_SECS
}

fn default_max_replica_lag() -> u64 {
    DEFAULT_MAX_REPLICA_LAG
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            dead_window_secs: DEFAULT_DEAD_WINDOW_SECS,
            full_ratio: DEFAULT_FULL_RATIO,
            max_lag_secs: DEFAULT_MAX_LAG_SECS,
            max_blocked_secs: DEFAULT_MAX_BLOCKED_SECS,
            max_replica_lag: DEFAULT_MAX_REPLICA_LAG,
            stranded_after_secs: DEFAULT_STRANDED_AFTER_SECS,
        }
    }
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not in (0, 1]"))
    }
}

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
    fn new(kind: Kind, text: impl Into<String>) -> Problem {
        Problem {
            kind,
            text: text.into(),
        }
    }
}

/// Everything `fleetbus status` reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub healthy: bool,
    pub reachable: bool,
    /// Why it is not healthy, one line each.
    pub problems: Vec<String>,
    /// The kind of each line of `problems`, in the same order.
    #[serde(default)]
    pub problem_kinds: Vec<Kind>,
    /// The thresholds the checks used.
    #[serde(default)]
    pub thresholds: Thresholds,
    pub cluster: Option<ClusterStatus>,
    pub streams: Vec<StreamStatus>,
    pub consumers: Vec<ConsumerStatus>,
    pub workers: Vec<WorkerStatus>,
    /// What DEAD received within the dead window (absent when DEAD could
    /// not be read).
    #[serde(default)]
    pub dead_recent: Option<DeadRecent>,
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

impl Status {
    fn push(&mut self, problem: Problem) {
        self.problems.push(problem.text);
        self.problem_kinds.push(problem.kind);
    }

    fn has(&self, kind: Kind) -> bool {
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
pub struct StreamStatus {
    pub name: String,
    pub messages: u64,
    pub bytes: u64,
    pub replicas: usize,
    pub leader: Option<String>,
    /// Followers that are not current (or offline), with their lag.
    pub lagging: Vec<Lagging>,
    /// `limits`, `interest` or `workqueue`.
    #[serde(default)]
    pub retention: String,
    /// What happens at a limit: `new` (refused) or `old` (oldest dropped).
    #[serde(default)]
    pub discard: String,
    #[serde(default)]
    pub first_seq: u64,
    #[serde(default)]
    pub last_seq: u64,
    /// Limits; 0 or -1 is no limit.
    #[serde(default)]
    pub max_bytes: i64,
    #[serde(default)]
    pub max_msgs: i64,
    /// The larger of bytes/max_bytes and messages/max_msgs (none when
    /// both are unlimited).
    #[serde(default)]
    pub fill: Option<f64>,
    /// Seconds since the stream received its last message (none if it
    /// never received one).
    #[serde(default)]
    pub newest_secs: Option<f64>,
    /// Seconds since the oldest message it stores was received (none when
    /// it is empty).
    #[serde(default)]
    pub oldest_secs: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lagging {
    pub name: String,
    pub lag: Option<u64>,
    pub offline: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub durable: bool,
    /// JetStream's ack floor: the stream sequence up to which every
    /// message is acknowledged.
    #[serde(default)]
    pub ack_floor: u64,
    /// Stream sequence of the last message delivered.
    #[serde(default)]
    pub delivered_seq: u64,
    /// Deliveries before the server gives up on a message (-1: never).
    #[serde(default)]
    pub max_deliver: i64,
    /// Age of the oldest message it has not acknowledged (for a consumer
    /// that acknowledges nothing: not delivered), seconds; none when
    /// nothing is pending or ack pending.
    #[serde(default)]
    pub oldest_unacked_secs: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub name: String,
    pub id: String,
    pub version: String,
    pub description: String,
    pub metadata: BTreeMap<String, String>,
    /// The instance's live counters since it started (its `stats`
    /// endpoint's data in `$SRV.STATS`: processed, errors, dead, held,
    /// blocked_secs, …), empty when it did not answer.
    #[serde(default)]
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

/// The part of a `$SRV.STATS` answer that `status` reads.
#[derive(Deserialize)]
struct ServiceStats {
    id: String,
    #[serde(default)]
    endpoints: Vec<EndpointStats>,
}

#[derive(Deserialize)]
struct EndpointStats {
    name: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(query(
        args.nats.clone().or_local_admin(),
        Duration::from_secs(args.timeout),
        &args.thresholds,
    ));
    if args.metrics {
        print!("{}", metrics(&status)?);
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(exit_code(&status))
}

/// 0 healthy, 1 degraded, 2 unreachable.
pub fn exit_code(status: &Status) -> ExitCode {
    if !status.reachable {
        ExitCode::from(2)
    } else if !status.healthy {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Connects (as given, for at most `timeout`) and collects the status.
pub async fn query(nats: NatsArgs, timeout: Duration, thresholds: &Thresholds) -> Status {
    let mut config = match nats.config(Role::Admin, "fleetbus-status") {
        Ok(c) => c,
        Err(e) => return unreachable_status(e.to_string()),
    };
    config.connect_wait = timeout;
    match config.connect().await {
        Ok(client) => {
            let status = collect_with(&client, timeout, thresholds).await;
            let _ = client.flush().await;
            status
        }
        Err(e) => unreachable_status(e.to_string()),
    }
}

fn unreachable_status(problem: String) -> Status {
    let mut status = Status::default();
    status.push(Problem::new(Kind::Unreachable, problem));
    status
}

/// Collects the status over an admin connection, with the default
/// thresholds.
pub async fn collect(client: &async_nats::Client, timeout: Duration) -> Status {
    collect_with(client, timeout, &Thresholds::default()).await
}

/// Collects the status over an admin connection and runs every check.
pub async fn collect_with(
    client: &async_nats::Client,
    timeout: Duration,
    thresholds: &Thresholds,
) -> Status {
    let mut status = Status {
        reachable: true,
        thresholds: thresholds.clone(),
        ..Status::default()
    };
    let (cluster, jsz_problems) = cluster_status(client, timeout).await;
    status.cluster = cluster;
    jsz_problems.into_iter().for_each(|p| status.push(p));

    let mut js = jetstream::new(client.clone());
    js.set_timeout(timeout);
    match streams_and_consumers(&js).await {
        Ok(found) => {
            status.streams = found.streams;
            status.consumers = found.consumers;
            found.problems.into_iter().for_each(|p| status.push(p));
            match recent_dead(&js, &status.streams, thresholds.dead_window_secs).await {
                Ok(dead) => status.dead_recent = dead,
                Err(e) => status.push(Problem::new(
                    Kind::CheckFailed,
                    format!("cannot count recent dead letters in {}: {e:#}", names::DEAD),
                )),
            }
        }
        Err(e) => status.push(Problem::new(
            Kind::JetstreamApi,
            format!("JetStream API not answering: {e}"),
        )),
    }
    status.workers = workers(client, (timeout / 4).max(Duration::from_millis(250))).await;
    if let Some(cluster) = status.cluster.as_mut() {
        add_silent_peers(cluster, &status.streams);
    }
    problems(&status, thresholds)
        .into_iter()
        .for_each(|p| status.push(p));
    status.healthy = status.problems.is_empty();
    status
}

#[derive(Deserialize)]
struct JszReply {
    server: JszServer,
    #[serde(default)]
    data: Option<JszData>,
}

#[derive(Deserialize)]
struct JszServer {
    name: String,
    #[serde(default)]
    ver: Option<String>,
}

#[derive(Deserialize)]
struct JszData {
    #[serde(default)]
    meta_cluster: Option<MetaCluster>,
}

#[derive(Deserialize)]
struct MetaCluster {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    leader: Option<String>,
    #[serde(default)]
    cluster_size: usize,
    #[serde(default)]
    replicas: Vec<MetaPeer>,
}

#[derive(Deserialize)]
struct MetaPeer {
    name: String,
}

async fn cluster_status(
    client: &async_nats::Client,
    timeout: Duration,
) -> (Option<ClusterStatus>, Vec<Problem>) {
    let replies = match gather(client, JSZ_SUBJECT, timeout, |replies: &[JszReply]| {
        let size = replies
            .iter()
            .filter_map(|r| r.data.as_ref()?.meta_cluster.as_ref())
            .map(|m| m.cluster_size)
            .max();
        size.is_some_and(|n| n > 0 && replies.len() >= n)
    })
    .await
    {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => {
            return (
                None,
                vec![Problem::new(
                    Kind::ClusterReport,
                    format!(
                        "no server answered {JSZ_SUBJECT} (the FLEETBUS account must import it, \
                         docs/cluster.md)"
                    ),
                )],
            )
        }
        Err(e) => {
            return (
                None,
                vec![Problem::new(
                    Kind::ClusterReport,
                    format!("cluster report failed: {e}"),
                )],
            )
        }
    };
    (Some(cluster_from_replies(&replies)), Vec::new())
}

fn cluster_from_replies(replies: &[JszReply]) -> ClusterStatus {
    let mut cluster = ClusterStatus::default();
    let mut nodes: BTreeMap<String, NodeStatus> = BTreeMap::new();
    let mut leaders: Vec<String> = Vec::new();
    for reply in replies {
        nodes.insert(
            reply.server.name.clone(),
            NodeStatus {
                name: reply.server.name.clone(),
                up: true,
                version: reply.server.ver.clone(),
            },
        );
        let Some(meta) = reply.data.as_ref().and_then(|d| d.meta_cluster.as_ref()) else {
            continue;
        };
        cluster.name = cluster.name.take().or_else(|| meta.name.clone());
        cluster.size = cluster.size.max(meta.cluster_size);
        if let Some(leader) = meta.leader.as_ref().filter(|l| !l.is_empty()) {
            leaders.push(leader.clone());
        }
        for peer in &meta.replicas {
            nodes
                .entry(peer.name.clone())
                .or_insert_with(|| NodeStatus {
                    name: peer.name.clone(),
                    ..NodeStatus::default()
                });
        }
    }
    // The leader most servers agree on (servers that lost contact see none).
    leaders.sort();
    cluster.meta_leader = leaders
        .iter()
        .max_by_key(|l| leaders.iter().filter(|x| x == l).count())
        .cloned();
    cluster.nodes = nodes.into_values().collect();
    cluster.size = cluster.size.max(cluster.nodes.len());
    // Followers keep naming a leader that just died until they notice.
    if cluster
        .meta_leader
        .as_ref()
        .is_some_and(|l| !cluster.nodes.iter().any(|n| n.up && &n.name == l))
    {
        cluster.meta_leader = None;
    }
    cluster
}

/// Only the meta leader lists the meta group's peers: without one, nodes
/// that do not answer are still named by the streams they replicate.
fn add_silent_peers(cluster: &mut ClusterStatus, streams: &[StreamStatus]) {
    for name in streams
        .iter()
        .flat_map(|s| s.lagging.iter().map(|l| &l.name).chain(s.leader.as_ref()))
    {
        if !cluster.nodes.iter().any(|n| &n.name == name) {
            cluster.nodes.push(NodeStatus {
                name: name.clone(),
                ..NodeStatus::default()
            });
        }
    }
    cluster.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    cluster.size = cluster.size.max(cluster.nodes.len());
}

/// Sends one request and gathers every reply for up to `timeout`, or until
/// `enough` says so.
async fn gather<T: for<'de> Deserialize<'de>>(
    client: &async_nats::Client,
    subject: &str,
    timeout: Duration,
    enough: impl Fn(&[T]) -> bool,
) -> anyhow::Result<Vec<T>> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(subject.to_string(), inbox, "{}".into())
        .await?;
    client.flush().await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, sub.next()).await {
        if msg.status.is_some() {
            // 503 no responders: nobody answers this subject.
            break;
        }
        if let Ok(value) = serde_json::from_slice::<T>(&msg.payload) {
            out.push(value);
        }
        if enough(&out) {
            break;
        }
    }
    let _ = sub.unsubscribe().await;
    Ok(out)
}

/// Streams and consumers as read, and what could not be read of them.
struct Collected {
    streams: Vec<StreamStatus>,
    consumers: Vec<ConsumerStatus>,
    problems: Vec<Problem>,
}

async fn streams_and_consumers(js: &jetstream::Context) -> Result<Collected, async_nats::Error> {
    let mut out = Collected {
        streams: Vec::new(),
        consumers: Vec::new(),
        problems: Vec::new(),
    };
    let mut list = js.streams();
    let mut infos = Vec::new();
    while let Some(info) = list.next().await {
        infos.push(info?);
    }
    infos.sort_by_key(|i| order(&i.config.name));
    for info in infos {
        let mut stream = stream_status(&info, Utc::now());
        let mut these = Vec::new();
        for c in consumers_of(js, &stream.name).await? {
            let mut status = consumer_status(&c);
            if status.pending > 0 || status.ack_pending > 0 {
                match oldest_unacked(js, &c).await {
                    Ok(age) => status.oldest_unacked_secs = age,
                    Err(e) => out.problems.push(Problem::new(
                        Kind::CheckFailed,
                        format!(
                            "cannot read the oldest unacknowledged message of {}/{}: {e:#}",
                            c.stream_name, c.name
                        ),
                    )),
                }
            }
            these.push(status);
        }
        these.sort_by(|a, b| a.name.cmp(&b.name));
        if stream.retention != "limits" {
            if let Err(e) = settle_stranded(js, &mut stream, &these).await {
                out.problems.push(Problem::new(
                    Kind::CheckFailed,
                    format!("cannot read stream {} again: {e:#}", stream.name),
                ));
            }
        }
        out.streams.push(stream);
        out.consumers.extend(these);
    }
    Ok(out)
}

/// The consumers of one stream, without status' own probes.
async fn consumers_of(
    js: &jetstream::Context,
    stream: &str,
) -> Result<Vec<consumer::Info>, async_nats::Error> {
    let stream = js.get_stream_no_info(stream).await?;
    let mut list = stream.consumers();
    let mut out = Vec::new();
    while let Some(c) = list.next().await {
        let c = c?;
        if !c.name.starts_with(PROBE_PREFIX) {
            out.push(c);
        }
    }
    Ok(out)
}

fn stream_status(info: &jetstream::stream::Info, now: DateTime<Utc>) -> StreamStatus {
    let cluster = info.cluster.clone().unwrap_or_default();
    let mut status = StreamStatus {
        name: info.config.name.clone(),
        messages: info.state.messages,
        bytes: info.state.bytes,
        replicas: info.config.num_replicas,
        leader: cluster.leader.clone().filter(|l| !l.is_empty()),
        lagging: cluster
            .replicas
            .iter()
            .filter(|p| !p.current || p.offline)
            .map(|p| Lagging {
                name: p.name.clone(),
                lag: p.lag,
                offline: p.offline,
            })
            .collect(),
        retention: match info.config.retention {
            RetentionPolicy::Limits => "limits",
            RetentionPolicy::Interest => "interest",
            RetentionPolicy::WorkQueue => "workqueue",
        }
        .into(),
        discard: match info.config.discard {
            DiscardPolicy::New => "new",
            DiscardPolicy::Old => "old",
        }
        .into(),
        first_seq: info.state.first_sequence,
        last_seq: info.state.last_sequence,
        max_bytes: info.config.max_bytes,
        max_msgs: info.config.max_messages,
        fill: None,
        // A stream that never received a message reports year 1 as its
        // last time.
        newest_secs: (info.state.last_sequence > 0)
            .then(|| age_secs(info.state.last_timestamp.unix_timestamp_nanos(), now)),
        oldest_secs: (info.state.messages > 0)
            .then(|| age_secs(info.state.first_timestamp.unix_timestamp_nanos(), now)),
    };
    status.fill = fill(&status).map(|f| f.ratio);
    status
}

fn consumer_status(c: &consumer::Info) -> ConsumerStatus {
    ConsumerStatus {
        stream: c.stream_name.clone(),
        name: c.name.clone(),
        pending: c.num_pending,
        ack_pending: c.num_ack_pending as u64,
        redelivered: c.num_redelivered as u64,
        waiting: c.num_waiting as u64,
        leader: c
            .cluster
            .as_ref()
            .and_then(|cl| cl.leader.clone())
            .filter(|l| !l.is_empty()),
        durable: c.config.durable_name.is_some(),
        ack_floor: c.ack_floor.stream_sequence,
        delivered_seq: c.delivered.stream_sequence,
        max_deliver: c.config.max_deliver,
        oldest_unacked_secs: None,
    }
}

/// Seconds from a timestamp (Unix nanoseconds) to `now`; 0 for one in the
/// future (clocks differ a little between hosts).
fn age_secs(nanos: i128, now: DateTime<Utc>) -> f64 {
    let now = i128::from(now.timestamp_nanos_opt().unwrap_or(i64::MAX));
    (now - nanos).max(0) as f64 / 1e9
}

/// Age of the oldest message consumer `c` has not acknowledged: the first
/// stream message (of its filter) after the point up to which it is done
/// with everything ([`ConsumerStatus::done_up_to`]; with nothing ack pending
/// that is the last delivered message, tighter than the ack floor when
/// another consumer of an interest stream keeps messages this one is done
/// with).
async fn oldest_unacked(
    js: &jetstream::Context,
    c: &consumer::Info,
) -> anyhow::Result<Option<f64>> {
    let after = consumer_status(c).done_up_to();
    let mut oldest: Option<DateTime<Utc>> = None;
    for subject in filters(&c.config) {
        if let Some(t) = first_message_time(js, &c.stream_name, after + 1, &subject).await? {
            oldest = Some(oldest.map_or(t, |o| o.min(t)));
        }
    }
    Ok(oldest.map(|t| age_secs(i128::from(t.timestamp_nanos_opt().unwrap_or(0)), Utc::now())))
}

/// The subjects a consumer reads (`>`: all).
fn filters(config: &consumer::Config) -> Vec<String> {
    if !config.filter_subjects.is_empty() {
        config.filter_subjects.clone()
    } else if !config.filter_subject.is_empty() {
        vec![config.filter_subject.clone()]
    } else {
        vec![">".into()]
    }
}

#[derive(Deserialize)]
struct MsgGetReply {
    message: StoredMessage,
}

#[derive(Deserialize)]
struct StoredMessage {
    time: DateTime<Utc>,
}

/// When `stream` stored its first message of `subject` at or after `seq`
/// (`$JS.API.STREAM.MSG.GET`), none if there is no such message.
async fn first_message_time(
    js: &jetstream::Context,
    stream: &str,
    seq: u64,
    subject: &str,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let request = serde_json::json!({"seq": seq, "next_by_subj": subject});
    let reply: Response<MsgGetReply> = js
        .request(format!("STREAM.MSG.GET.{stream}"), &request)
        .await?;
    match reply {
        Response::Ok(r) => Ok(Some(r.message.time)),
        // Acknowledged (and removed) since the consumer was read.
        Response::Err { error } if error.error_code() == ErrorCode::NO_MESSAGE_FOUND => Ok(None),
        Response::Err { error } => Err(error.into()),
    }
}

/// The stream was read before its consumers, so messages acknowledged in
/// between look kept: read it again, and once more after a moment (the
/// removal is replicated after the ack), before it counts as stranded.
async fn settle_stranded(
    js: &jetstream::Context,
    stream: &mut StreamStatus,
    consumers: &[ConsumerStatus],
) -> anyhow::Result<()> {
    let Some(floor) = common_floor(consumers, &stream.name).map(|c| c.done_up_to()) else {
        return Ok(());
    };
    for pause in [Duration::ZERO, STRANDED_SETTLE] {
        if !holds_passed_messages(stream, floor) {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        let fresh = js.get_stream(&stream.name).await?;
        let state = &fresh.cached_info().state;
        stream.messages = state.messages;
        stream.bytes = state.bytes;
        stream.first_seq = state.first_sequence;
        stream.last_seq = state.last_sequence;
        stream.oldest_secs = (state.messages > 0)
            .then(|| age_secs(state.first_timestamp.unix_timestamp_nanos(), Utc::now()));
        stream.fill = fill(stream).map(|f| f.ratio);
    }
    Ok(())
}

#[derive(Deserialize)]
struct ProbeInfo {
    num_pending: u64,
}

/// How long the server keeps a probe consumer whose delete was lost.
const PROBE_INACTIVE: Duration = Duration::from_secs(30);

/// What DEAD received within the last `window_secs`. Counting needs a
/// consumer, so it is only made when DEAD's newest message is that recent.
async fn recent_dead(
    js: &jetstream::Context,
    streams: &[StreamStatus],
    window_secs: u64,
) -> anyhow::Result<Option<DeadRecent>> {
    let Some(dead) = streams.iter().find(|s| s.name == names::DEAD) else {
        return Ok(None);
    };
    let mut recent = DeadRecent {
        window_secs,
        messages: 0,
        newest_secs: dead.newest_secs,
    };
    if dead.messages > 0 && dead.newest_secs.is_some_and(|a| a <= window_secs as f64) {
        let since = Utc::now() - chrono::Duration::seconds(window_secs.min(i64::MAX as u64) as i64);
        recent.messages = count_since(js, names::DEAD, since).await?;
    }
    Ok(Some(recent))
}

/// Messages `stream` holds that it stored at or after `since`: the pending
/// count of a new consumer that starts there. The consumer is ephemeral,
/// in memory, on one replica, pulls nothing and acknowledges nothing, so it
/// changes nothing in the stream; it is deleted at once (and, should that
/// fail, by the server after [`PROBE_INACTIVE`]).
async fn count_since(
    js: &jetstream::Context,
    stream: &str,
    since: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let name = format!(
        "{PROBE_PREFIX}{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let request = serde_json::json!({
        "stream_name": stream,
        "action": "create",
        "config": {
            "name": name,
            "deliver_policy": "by_start_time",
            "opt_start_time": since.to_rfc3339_opts(SecondsFormat::Nanos, true),
            "ack_policy": "none",
            "replay_policy": "instant",
            "mem_storage": true,
            "num_replicas": 1,
            "inactive_threshold": PROBE_INACTIVE.as_nanos() as u64,
        },
    });
    let reply: Response<ProbeInfo> = js
        .request(format!("CONSUMER.CREATE.{stream}.{name}"), &request)
        .await?;
    // Nothing to delete when the create was refused; the error then is the
    // create's.
    let _ = js.delete_consumer_from_stream(&name, stream).await;
    match reply {
        Response::Ok(info) => Ok(info.num_pending),
        Response::Err { error } => Err(error.into()),
    }
}

/// Streams fleetbus provisions first, in pipeline order, then the others
/// by name.
fn order(name: &str) -> (usize, String) {
    let known = topology::Scope::all().streams;
    (
        known.iter().position(|k| *k == name).unwrap_or(known.len()),
        name.to_string(),
    )
}

async fn workers(client: &async_nats::Client, timeout: Duration) -> Vec<WorkerStatus> {
    // Both asked at once: every instance answers each, and the wait is the
    // same `timeout` either way.
    let (infos, stats) = tokio::join!(
        gather(
            client,
            SRV_INFO_SUBJECT,
            timeout,
            |_: &[async_nats::service::Info]| false,
        ),
        gather(
            client,
            SRV_STATS_SUBJECT,
            timeout,
            |_: &[ServiceStats]| { false }
        ),
    );
    let mut stats: BTreeMap<String, BTreeMap<String, serde_json::Value>> = stats
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| {
            let data = s
                .endpoints
                .into_iter()
                .find(|e| e.name == "stats")
                .and_then(|e| e.data)?;
            let serde_json::Value::Object(counters) = data else {
                return None;
            };
            Some((s.id, counters.into_iter().collect()))
        })
        .collect();
    let mut workers: Vec<WorkerStatus> = infos
        .unwrap_or_default()
        .into_iter()
        .map(|i| WorkerStatus {
            stats: stats.remove(&i.id).unwrap_or_default(),
            name: i.name,
            id: i.id,
            version: i.version,
            description: i.description,
            metadata: i.metadata.into_iter().collect(),
        })
        .collect();
    workers.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    workers
}

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
    let consumers = scope
        .consumers
        .iter()
        .filter(|(stream, name)| {
            !status
                .consumers
                .iter()
                .any(|c| &c.stream == stream && &c.name == name)
        })
        .map(|(stream, name)| {
            Problem::new(
                Kind::Missing,
                format!("consumer {stream}/{name} is missing (run `fleetbus provision`)"),
            )
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

/// Whole percent, rounded down (a stream at 99.7 % is not full yet).
fn percent(ratio: f64) -> u64 {
    (ratio * 100.0 + 1e-9).floor().max(0.0) as u64
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
fn common_floor<'a>(
    consumers: impl IntoIterator<Item = &'a ConsumerStatus>,
    stream: &str,
) -> Option<&'a ConsumerStatus> {
    consumers
        .into_iter()
        .filter(|c| c.stream == stream)
        .min_by_key(|c| c.done_up_to())
}

/// Does an interest or work-queue stream hold messages at or below the
/// common floor? It removes a message once every consumer acknowledged
/// it, so such a message was given up on, not acknowledged.
fn holds_passed_messages(stream: &StreamStatus, floor: u64) -> bool {
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
    let c = common_floor(consumers, &stream.name)?;
    let floor = c.done_up_to();
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
            scope
                .consumers
                .iter()
                .any(|(stream, name)| c.stream == *stream && c.name == *name)
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
fn stages() -> [(Role, String); 3] {
    [
        (
            Role::Gateway,
            format!("no device's frames get into {}", names::RAW),
        ),
        (
            Role::Hamster,
            format!("{}/{} is not being consumed", names::RAW, names::HAMSTERS),
        ),
        (
            Role::Monkey,
            format!("{}/{} is not being consumed", names::PARSED, names::MONKEYS),
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

/// `1 message`, `211 messages`.
fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A duration for people, to the second: `12s`, `3m12s`, `2h05m`, `3d04h`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).floor() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60).replace("m00s", "m"),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A byte count for people: `0 B`, `12.3 KiB`, `1.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Aligned columns, two spaces apart.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(header.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn kind_list(status: &Status) -> String {
    status
        .kinds()
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human-readable report.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let verdict = if !status.reachable {
        "UNREACHABLE".to_string()
    } else if status.healthy {
        "HEALTHY".to_string()
    } else {
        format!(
            "DEGRADED ({} problem{}: {})",
            status.problems.len(),
            if status.problems.len() == 1 { "" } else { "s" },
            kind_list(status)
        )
    };
    let name = status
        .cluster
        .as_ref()
        .and_then(|c| c.name.clone())
        .unwrap_or_else(|| "?".into());
    let _ = writeln!(out, "cluster {name}: {verdict}");
    if let Some(cluster) = &status.cluster {
        render_nodes(&mut out, cluster);
    }
    if status.reachable {
        render_streams(&mut out, &status.streams);
        render_consumers(&mut out, &status.consumers);
        render_workers(&mut out, &status.workers);
    }
    if !status.problems.is_empty() {
        out.push_str("\nPROBLEMS\n");
        for p in &status.problems {
            let _ = writeln!(out, "- {p}");
        }
    }
    out
}

fn render_nodes(out: &mut String, cluster: &ClusterStatus) {
    let up = cluster.nodes.iter().filter(|n| n.up).count();
    let _ = writeln!(
        out,
        "nodes up {up}/{}, meta leader {}\n",
        cluster.size,
        or_dash(&cluster.meta_leader)
    );
    let rows: Vec<Vec<String>> = cluster
        .nodes
        .iter()
        .map(|n| {
            let role = if cluster.meta_leader.as_deref() == Some(n.name.as_str()) {
                "meta leader"
            } else {
                ""
            };
            vec![
                n.name.clone(),
                if n.up { "up" } else { "DOWN" }.into(),
                or_dash(&n.version),
                role.into(),
            ]
        })
        .collect();
    table(out, &["NODE", "STATE", "VERSION", "ROLE"], &rows);
    out.push('\n');
}

fn render_streams(out: &mut String, streams: &[StreamStatus]) {
    let rows: Vec<Vec<String>> = streams
        .iter()
        .map(|s| {
            let lagging = if s.lagging.is_empty() {
                "-".to_string()
            } else {
                s.lagging
                    .iter()
                    .map(|l| {
                        if l.offline {
                            format!("{} (offline)", l.name)
                        } else {
                            format!("{} ({})", l.name, l.lag.unwrap_or(0))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                s.name.clone(),
                s.messages.to_string(),
                bytes(s.bytes),
                fill(s).map_or("-".into(), |f| format!("{}%", percent(f.ratio))),
                s.replicas.to_string(),
                or_dash(&s.leader),
                lagging,
            ]
        })
        .collect();
    table(
        out,
        &[
            "STREAM", "MESSAGES", "BYTES", "FILL", "REPLICAS", "LEADER", "LAGGING",
        ],
        &rows,
    );
    out.push('\n');
}

fn render_consumers(out: &mut String, consumers: &[ConsumerStatus]) {
    let rows: Vec<Vec<String>> = consumers
        .iter()
        .map(|c| {
            vec![
                format!("{}/{}", c.stream, c.name),
                c.pending.to_string(),
                c.ack_pending.to_string(),
                c.oldest_unacked_secs.map_or("-".into(), duration),
                c.redelivered.to_string(),
                c.waiting.to_string(),
                or_dash(&c.leader),
            ]
        })
        .collect();
    table(
        out,
        &[
            "CONSUMER",
            "PENDING",
            "ACK PENDING",
            "OLDEST",
            "REDELIVERED",
            "WAITING",
            "LEADER",
        ],
        &rows,
    );
    out.push('\n');
}

fn render_workers(out: &mut String, workers: &[WorkerStatus]) {
    if workers.is_empty() {
        out.push_str("WORKERS: none registered\n");
        return;
    }
    let pairs = |m: &mut dyn Iterator<Item = (&String, String)>| {
        m.map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            let meta = pairs(&mut w.metadata.iter().map(|(k, v)| (k, v.clone())));
            let stats = if w.stats.is_empty() {
                "-".to_string()
            } else {
                pairs(&mut w.stats.iter().map(|(k, v)| (k, v.to_string())))
            };
            vec![w.name.clone(), w.id.clone(), w.version.clone(), stats, meta]
        })
        .collect();
    table(
        out,
        &["WORKER", "ID", "VERSION", "STATS", "METADATA"],
        &rows,
    );
}

/// One line for a live display (`just up`): `[ok] …`, or `[DEGRADED:
/// <kinds>] …` while any check reports a problem.
pub fn summary_line(status: &Status) -> String {
    if !status.reachable {
        return "cluster unreachable".into();
    }
    let mut parts = Vec::new();
    if let Some(c) = &status.cluster {
        let up = c.nodes.iter().filter(|n| n.up).count();
        parts.push(format!(
            "nodes {up}/{} meta {}",
            c.size,
            or_dash(&c.meta_leader)
        ));
    }
    for s in &status.streams {
        parts.push(format!("{} {}", s.name, s.messages));
    }
    for c in &status.consumers {
        parts.push(format!(
            "{} pend {} ack {}",
            c.name, c.pending, c.ack_pending
        ));
    }
    parts.push(format!("workers {}", status.workers.len()));
    let verdict = if status.healthy && status.problems.is_empty() {
        "ok".to_string()
    } else {
        format!("DEGRADED: {}", kind_list(status))
    };
    format!("[{verdict}] {}", parts.join(" | "))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabel {
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabels {
    stream: String,
    consumer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The status as Prometheus text exposition (OpenMetrics text, which
/// Prometheus and node_exporter's textfile collector read). Every problem
/// kind and every fleetbus role is always present, 0 when none, so an
/// alert can tell "none" from "not scraped".
pub fn metrics(status: &Status) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("fleetbus");
    let gauge = |v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        g
    };
    registry.register(
        "status_healthy",
        "1 when fleetbus status found no problem, else 0",
        gauge(i64::from(status.healthy)),
    );
    registry.register(
        "status_reachable",
        "1 when fleetbus status reached the cluster, else 0",
        gauge(i64::from(status.reachable)),
    );
    let problems = Family::<KindLabel, Gauge>::default();
    for kind in Kind::ALL {
        let n = status.problem_kinds.iter().filter(|k| **k == kind).count();
        problems
            .get_or_create(&KindLabel {
                kind: kind.as_str().into(),
            })
            .set(n as i64);
    }
    registry.register(
        "status_problems",
        "Problems fleetbus status reports, by kind",
        problems,
    );
    register_streams(&mut registry, status);
    register_consumers(&mut registry, status);
    register_workers(&mut registry, status);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(sorted_samples(&out))
}

/// The samples of each metric in label order (the encoder writes them in
/// hash order): the same cluster gives the same text, run after run.
fn sorted_samples(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut samples: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            samples.sort_unstable();
            samples.drain(..).for_each(|s| {
                out.push_str(s);
                out.push('\n');
            });
            out.push_str(line);
            out.push('\n');
        } else {
            samples.push(line);
        }
    }
    samples.sort_unstable();
    samples.into_iter().for_each(|s| {
        out.push_str(s);
        out.push('\n');
    });
    out
}

fn register_streams(registry: &mut Registry, status: &Status) {
    let messages = Family::<StreamLabel, Gauge>::default();
    let stored = Family::<StreamLabel, Gauge>::default();
    let fill_ratio = Family::<StreamLabel, FloatGauge>::default();
    for s in &status.streams {
        let label = StreamLabel {
            stream: s.name.clone(),
        };
        messages.get_or_create(&label).set(s.messages as i64);
        stored.get_or_create(&label).set(s.bytes as i64);
        if let Some(f) = fill(s) {
            fill_ratio.get_or_create(&label).set(f.ratio);
        }
    }
    registry.register("stream_messages", "Messages a stream holds", messages);
    registry.register("stream_bytes", "Bytes a stream holds (per replica)", stored);
    registry.register(
        "stream_fill_ratio",
        "The larger of bytes/max_bytes and messages/max_msgs (streams with a limit only)",
        fill_ratio,
    );
    if let Some(dead) = &status.dead_recent {
        let g = Gauge::<i64>::default();
        g.set(dead.messages as i64);
        registry.register(
            "dead_recent_messages",
            format!(
                "Messages DEAD received within the last {} s (--dead-window-secs)",
                dead.window_secs
            ),
            g,
        );
    }
}

fn register_consumers(registry: &mut Registry, status: &Status) {
    let pending = Family::<ConsumerLabels, Gauge>::default();
    let ack_pending = Family::<ConsumerLabels, Gauge>::default();
    let oldest = Family::<ConsumerLabels, FloatGauge>::default();
    for c in &status.consumers {
        let labels = ConsumerLabels {
            stream: c.stream.clone(),
            consumer: c.name.clone(),
        };
        pending.get_or_create(&labels).set(c.pending as i64);
        ack_pending.get_or_create(&labels).set(c.ack_pending as i64);
        oldest
            .get_or_create(&labels)
            .set(c.oldest_unacked_secs.unwrap_or(0.0));
    }
    registry.register(
        "consumer_pending",
        "Messages a consumer has not delivered yet",
        pending,
    );
    registry.register(
        "consumer_ack_pending",
        "Messages a consumer delivered that are not acknowledged yet",
        ack_pending,
    );
    registry.register(
        "consumer_oldest_unacked_seconds",
        "Age of the oldest message a consumer has not acknowledged (0: none)",
        oldest,
    );
}

fn register_workers(registry: &mut Registry, status: &Status) {
    let workers = Family::<RoleLabel, Gauge>::default();
    // Every stage, so that "none running" is a 0 and not a missing series.
    for (role, _) in stages() {
        workers
            .get_or_create(&RoleLabel {
                role: role.name().into(),
            })
            .set(0);
    }
    for w in &status.workers {
        workers
            .get_or_create(&RoleLabel {
                role: w.name.clone(),
            })
            .inc();
    }
    registry.register(
        "workers",
        "Registered worker processes (NATS micro services), by role",
        workers,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str, retention: &str) -> StreamStatus {
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

    fn consumer(stream: &str, name: &str) -> ConsumerStatus {
        ConsumerStatus {
            stream: stream.into(),
            name: name.into(),
            leader: Some("n1".into()),
            durable: true,
            max_deliver: -1,
            ..Default::default()
        }
    }

    fn worker(role: &str, id: &str) -> WorkerStatus {
        WorkerStatus {
            name: role.into(),
            id: id.into(),
            version: "0.1.0".into(),
            ..Default::default()
        }
    }

    /// Runs the checks as `collect_with` does.
    fn evaluate(mut status: Status, t: &Thresholds) -> Status {
        status.problems.clear();
        status.problem_kinds.clear();
        for p in problems(&status, t) {
            status.push(p);
        }
        status.healthy = status.problems.is_empty();
        status
    }

    fn check(status: Status) -> Status {
        evaluate(status, &Thresholds::default())
    }

    fn healthy() -> Status {
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
                consumer(names::RAW, names::HAMSTERS),
                consumer(names::PARSED, names::MONKEYS),
            ],
            workers: vec![
                worker("gateway", "G1"),
                worker("hamster", "H1"),
                worker("monkey", "M1"),
            ],
            dead_recent: Some(DeadRecent {
                window_secs: DEFAULT_DEAD_WINDOW_SECS,
                messages: 0,
                newest_secs: None,
            }),
            ..Status::default()
        })
    }

    fn stream_mut<'a>(status: &'a mut Status, name: &str) -> &'a mut StreamStatus {
        status.streams.iter_mut().find(|s| s.name == name).unwrap()
    }

    fn consumer_mut<'a>(status: &'a mut Status, name: &str) -> &'a mut ConsumerStatus {
        status
            .consumers
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap()
    }

    fn only(status: &Status, kind: Kind) -> Vec<&str> {
        status
            .problems
            .iter()
            .zip(&status.problem_kinds)
            .filter(|(_, k)| **k == kind)
            .map(|(p, _)| p.as_str())
            .collect()
    }

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
        assert!(text.contains("RAW/hamsters"), "{text}");
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
                "consumer PARSED/monkeys is missing (run `fleetbus provision`)",
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
    fn unreachable_exits_2() {
        let status = unreachable_status("cannot connect".into());
        assert_eq!(exit_code(&status), ExitCode::from(2));
        assert_eq!(status.problem_kinds, vec![Kind::Unreachable]);
        assert!(render(&status).starts_with("cluster ?: UNREACHABLE"));
        let m = metrics(&status).unwrap();
        assert!(m.contains("\nfleetbus_status_healthy 0\n"), "{m}");
        assert!(m.contains("\nfleetbus_status_reachable 0\n"), "{m}");
        assert!(
            m.contains("fleetbus_status_problems{kind=\"unreachable\"} 1\n"),
            "{m}"
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
        let parsed = stream_mut(&mut status, names::PARSED);
        parsed.max_msgs = 31;
        parsed.messages = 31;
        parsed.first_seq = 1;
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
    fn the_stream_table_shows_fill() {
        let mut status = healthy();
        let raw = stream_mut(&mut status, names::RAW);
        raw.bytes = (1u64 << 30) / 8;
        raw.fill = fill(raw).map(|f| f.ratio);
        stream_mut(&mut status, names::DEAD).max_bytes = -1;
        let text = render(&status);
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert!(
            text.contains("STREAM      MESSAGES  BYTES      FILL"),
            "{text}"
        );
        assert_eq!(row("RAW")[4], "12%", "{text}");
        assert_eq!(row("DEAD")[4], "-", "{text}");
        let json: serde_json::Value = serde_json::to_value(&status).unwrap();
        assert_eq!(json["streams"][0]["fill"], 0.125);
        assert_eq!(json["streams"][0]["max_bytes"], 1 << 30);
        assert_eq!(json["streams"][0]["max_msgs"], -1);
    }

    #[test]
    fn an_old_unacknowledged_message_is_consumer_lag() {
        let mut status = healthy();
        let monkeys = consumer_mut(&mut status, names::MONKEYS);
        monkeys.pending = 24;
        monkeys.ack_pending = 7;
        monkeys.oldest_unacked_secs = Some(192.3);
        let lagging = check(status.clone());
        assert_eq!(
            only(&lagging, Kind::ConsumerLag),
            vec![
                "consumer PARSED/monkeys: its oldest unacknowledged message is 3m12s old (24 \
                 pending, 7 ack pending)"
            ]
        );
        let text = render(&lagging);
        assert!(
            text.lines()
                .any(|l| l.starts_with("PARSED/monkeys") && l.contains(" 3m12s ")),
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
        consumer_mut(&mut status, names::MONKEYS).oldest_unacked_secs = Some(59.0);
        assert!(check(status).healthy);
    }

    #[test]
    fn no_instance_of_a_stage_is_no_workers() {
        let mut status = healthy();
        status.workers.retain(|w| w.name != "monkey");
        let status = check(status);
        assert_eq!(
            only(&status, Kind::NoWorkers),
            vec!["no monkey is running: PARSED/monkeys is not being consumed"]
        );
        let mut status = status;
        status.workers.clear();
        let status = check(status);
        assert_eq!(
            only(&status, Kind::NoWorkers),
            vec![
                "no gateway is running: no device's frames get into RAW",
                "no hamster is running: RAW/hamsters is not being consumed",
                "no monkey is running: PARSED/monkeys is not being consumed",
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
        consumer_mut(&mut status, names::HAMSTERS).ack_floor = 452;
        // Younger than the server's interest sweep: maybe acknowledged by
        // all and not yet removed.
        assert!(check(status.clone()).healthy);
        stream_mut(&mut status, names::RAW).oldest_secs = Some(DEFAULT_STRANDED_AFTER_SECS as f64);
        let stranded = check(status.clone());
        assert_eq!(
            only(&stranded, Kind::Stranded),
            vec![
                "RAW holds up to 3 messages that no consumer will deliver again (first sequence 12 \
                 <= 452, up to which RAW/hamsters acknowledged or gave up on every message): they \
                 most likely ran out of deliveries (max_deliver), and stay until max_age unless \
                 moved to DEAD (`fleetbus dead rescue`)"
            ]
        );

        // Another consumer not past them yet: they are still wanted.
        let mut wanted = status.clone();
        let mut audit = consumer(names::RAW, "audit");
        audit.ack_floor = 11;
        wanted.consumers.push(audit);
        assert!(check(wanted).healthy);

        // JetStream leaves the ack floor below a message that ran out of
        // deliveries: with nothing ack pending, what was delivered is done.
        let mut exhausted = status.clone();
        let hamsters = consumer_mut(&mut exhausted, names::HAMSTERS);
        hamsters.ack_floor = 11;
        hamsters.delivered_seq = 460;
        assert_eq!(check(exhausted.clone()).problem_kinds, vec![Kind::Stranded]);
        // ... but while some are ack pending, they may still be acknowledged.
        consumer_mut(&mut exhausted, names::HAMSTERS).ack_pending = 1;
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
        consumer_mut(&mut status, names::HAMSTERS).max_deliver = 5;
        let mut other = consumer(names::PARSED, "analytics");
        other.max_deliver = 5;
        status.consumers.push(other);
        let status = check(status);
        assert_eq!(
            only(&status, Kind::MaxDeliver),
            vec![
                "consumer RAW/hamsters has max_deliver 5: a message that runs out of deliveries \
                 stays in RAW with nobody to deliver it (run `fleetbus provision`, which sets it \
                 unlimited)"
            ]
        );
        assert_eq!(status.problem_kinds, vec![Kind::MaxDeliver]);
    }

    #[test]
    fn a_worker_blocked_longer_than_allowed_is_reported() {
        let mut status = healthy();
        let monkey = status
            .workers
            .iter_mut()
            .find(|w| w.name == "monkey")
            .unwrap();
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
        let monkey = status
            .workers
            .iter_mut()
            .find(|w| w.name == "monkey")
            .unwrap();
        monkey
            .stats
            .insert("blocked_secs".into(), serde_json::json!(0));
        monkey.stats.remove("blocked_by");
        assert!(check(status).healthy);
    }

    #[test]
    fn the_summary_line_names_the_kinds() {
        let mut status = healthy();
        status.dead_recent.as_mut().unwrap().messages = 2;
        let parsed = stream_mut(&mut status, names::PARSED);
        parsed.max_msgs = 10;
        parsed.messages = 9;
        parsed.first_seq = 1;
        let status = check(status);
        assert!(
            summary_line(&status).starts_with("[DEGRADED: dead_recent, stream_full] nodes 3/3"),
            "{}",
            summary_line(&status)
        );
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

    /// `name{labels} value` or `name value`; `None` for anything else.
    fn sample(line: &str) -> Option<(String, f64)> {
        let (series, value) = line.rsplit_once(' ')?;
        let value: f64 = value.parse().ok()?;
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        let ok_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        let labels = &series[name_end..];
        let ok_labels = labels.is_empty()
            || (labels.starts_with('{')
                && labels.ends_with('}')
                && labels[1..labels.len() - 1].split(',').all(|kv| {
                    kv.split_once('=')
                        .is_some_and(|(_, v)| v.starts_with('"') && v.ends_with('"'))
                }));
        (ok_name && ok_labels).then(|| (series.to_string(), value))
    }

    fn samples(text: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| sample(l).unwrap_or_else(|| panic!("not a sample: {l:?}")))
            .collect()
    }

    #[test]
    fn metrics_are_prometheus_text_with_every_kind() {
        let mut status = healthy();
        let monkeys = consumer_mut(&mut status, names::MONKEYS);
        monkeys.pending = 3;
        monkeys.ack_pending = 2;
        monkeys.oldest_unacked_secs = Some(75.5);
        let parsed = stream_mut(&mut status, names::PARSED);
        parsed.messages = 5;
        parsed.first_seq = 1;
        parsed.bytes = 1 << 29;
        status.workers.push(worker("hamster", "H2"));
        let status = check(status);
        let text = metrics(&status).unwrap();
        let m = samples(&text);
        assert_eq!(m["fleetbus_status_healthy"], 0.0, "{text}");
        for kind in Kind::ALL {
            let key = format!("fleetbus_status_problems{{kind=\"{}\"}}", kind.as_str());
            let want = if kind == Kind::ConsumerLag { 1.0 } else { 0.0 };
            assert_eq!(m.get(&key), Some(&want), "{key} in {text}");
        }
        assert_eq!(m["fleetbus_stream_messages{stream=\"PARSED\"}"], 5.0);
        assert_eq!(
            m["fleetbus_stream_bytes{stream=\"PARSED\"}"],
            (1u64 << 29) as f64
        );
        assert_eq!(m["fleetbus_stream_fill_ratio{stream=\"PARSED\"}"], 0.5);
        let labels = "{stream=\"PARSED\",consumer=\"monkeys\"}";
        assert_eq!(m[&format!("fleetbus_consumer_pending{labels}")], 3.0);
        assert_eq!(m[&format!("fleetbus_consumer_ack_pending{labels}")], 2.0);
        assert_eq!(
            m[&format!("fleetbus_consumer_oldest_unacked_seconds{labels}")],
            75.5
        );
        assert_eq!(m["fleetbus_workers{role=\"hamster\"}"], 2.0);
        assert_eq!(m["fleetbus_workers{role=\"gateway\"}"], 1.0);
        assert_eq!(m["fleetbus_dead_recent_messages"], 0.0);
        assert!(text.contains("# HELP fleetbus_status_healthy "), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains(
                "fleetbus_workers{role=\"gateway\"} 1\nfleetbus_workers{role=\"hamster\"} 2\n\
                 fleetbus_workers{role=\"monkey\"} 1\n"
            ),
            "samples in label order: {text}"
        );

        let m = samples(&metrics(&healthy()).unwrap());
        assert_eq!(m["fleetbus_status_healthy"], 1.0);
        let mut none = healthy();
        none.workers.clear();
        let m = samples(&metrics(&check(none)).unwrap());
        assert_eq!(m["fleetbus_workers{role=\"monkey\"}"], 0.0);
        assert_eq!(m["fleetbus_status_problems{kind=\"no_workers\"}"], 3.0);
    }

    #[test]
    fn kind_names_are_their_json_names() {
        for kind in Kind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_default_to_the_documented_thresholds() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["status"]).unwrap();
        assert_eq!(cli.args.thresholds, Thresholds::default());
        let cli = Cli::try_parse_from([
            "status",
            "--max-lag-secs",
            "1",
            "--full-ratio",
            "0.5",
            "--metrics",
        ])
        .unwrap();
        assert_eq!(cli.args.thresholds.max_lag_secs, 1);
        assert_eq!(cli.args.thresholds.full_ratio, 0.5);
        assert!(cli.args.metrics);
        assert!(Cli::try_parse_from(["status", "--full-ratio", "0"]).is_err());
        assert!(Cli::try_parse_from(["status", "--full-ratio", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["status", "--json", "--metrics"]).is_err());
    }

    #[test]
    fn durations_and_percentages_for_people() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(12.9), "12s");
        assert_eq!(duration(192.0), "3m12s");
        assert_eq!(duration(900.0), "15m");
        assert_eq!(duration(3600.0 + 5.0 * 60.0), "1h05m");
        assert_eq!(duration(3.0 * 86_400.0 + 4.0 * 3600.0), "3d04h");
        assert_eq!(percent(0.29), 29);
        assert_eq!(percent(0.999), 99);
        assert_eq!(percent(1.0), 100);
    }

    #[test]
    fn cluster_from_jsz_replies() {
        let replies: Vec<JszReply> = [
            r#"{"server":{"name":"n1","ver":"2.12.8"},"data":{"meta_cluster":{"name":"fleetbus","leader":"n2","cluster_size":3,"replicas":[{"name":"n2"},{"name":"n3"}]}}}"#,
            r#"{"server":{"name":"n2","ver":"2.12.8"},"data":{"meta_cluster":{"name":"fleetbus","leader":"n2","cluster_size":3,"replicas":[{"name":"n1"},{"name":"n3"}]}}}"#,
        ]
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
        let cluster = cluster_from_replies(&replies);
        assert_eq!(cluster.size, 3);
        assert_eq!(cluster.meta_leader.as_deref(), Some("n2"));
        let states: Vec<(&str, bool)> = cluster
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.up))
            .collect();
        assert_eq!(states, vec![("n1", true), ("n2", true), ("n3", false)]);
    }

    #[test]
    fn a_dead_meta_leader_is_no_leader_and_streams_name_silent_nodes() {
        let replies: Vec<JszReply> = [
            r#"{"server":{"name":"n1","ver":"2.12.8"},"data":{"meta_cluster":{"name":"fleetbus","leader":"n3","cluster_size":3}}}"#,
            r#"{"server":{"name":"n2","ver":"2.12.8"},"data":{"meta_cluster":{"name":"fleetbus","leader":"n3","cluster_size":3}}}"#,
        ]
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
        let mut cluster = cluster_from_replies(&replies);
        assert_eq!(cluster.meta_leader, None);
        let streams = vec![StreamStatus {
            name: "RAW".into(),
            leader: Some("n1".into()),
            lagging: vec![Lagging {
                name: "n3".into(),
                lag: Some(4),
                offline: false,
            }],
            ..Default::default()
        }];
        add_silent_peers(&mut cluster, &streams);
        let states: Vec<(&str, bool)> = cluster
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.up))
            .collect();
        assert_eq!(states, vec![("n1", true), ("n2", true), ("n3", false)]);
    }

    #[test]
    fn byte_counts() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1 << 30), "1.0 GiB");
    }
}
