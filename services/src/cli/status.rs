//! `fleetbus status`: is the cluster whole, are the streams replicated and
//! led, are the consumers keeping up, which workers are registered.
//!
//! Exit status: 0 healthy, 1 degraded (the problems are listed), 2 the
//! cluster cannot be reached. `--json` prints the same as one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
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

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for answers, in seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

/// Everything `fleetbus status` reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub healthy: bool,
    pub reachable: bool,
    /// Why it is not healthy, one line each.
    pub problems: Vec<String>,
    pub cluster: Option<ClusterStatus>,
    pub streams: Vec<StreamStatus>,
    pub consumers: Vec<ConsumerStatus>,
    pub workers: Vec<WorkerStatus>,
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
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub name: String,
    pub id: String,
    pub version: String,
    pub description: String,
    pub metadata: BTreeMap<String, String>,
    /// The instance's live counters since it started (its `stats`
    /// endpoint's data in `$SRV.STATS`: processed, errors, dead, …), empty
    /// when it did not answer.
    #[serde(default)]
    pub stats: BTreeMap<String, serde_json::Value>,
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
    ));
    if args.json {
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
pub async fn query(nats: NatsArgs, timeout: Duration) -> Status {
    let mut config = match nats.config(Role::Admin, "fleetbus-status") {
        Ok(c) => c,
        Err(e) => return unreachable_status(e.to_string()),
    };
    config.connect_wait = timeout;
    match config.connect().await {
        Ok(client) => {
            let status = collect(&client, timeout).await;
            let _ = client.flush().await;
            status
        }
        Err(e) => unreachable_status(e.to_string()),
    }
}

fn unreachable_status(problem: String) -> Status {
    Status {
        reachable: false,
        healthy: false,
        problems: vec![problem],
        ..Status::default()
    }
}

/// Collects the status over an admin connection.
pub async fn collect(client: &async_nats::Client, timeout: Duration) -> Status {
    let mut status = Status {
        reachable: true,
        ..Status::default()
    };
    let (cluster, jsz_problems) = cluster_status(client, timeout).await;
    status.cluster = cluster;
    status.problems.extend(jsz_problems);

    let mut js = jetstream::new(client.clone());
    js.set_timeout(timeout);
    match streams_and_consumers(&js).await {
        Ok((streams, consumers)) => {
            status.streams = streams;
            status.consumers = consumers;
        }
        Err(e) => status
            .problems
            .push(format!("JetStream API not answering: {e}")),
    }
    status.workers = workers(client, (timeout / 4).max(Duration::from_millis(250))).await;
    if let Some(cluster) = status.cluster.as_mut() {
        add_silent_peers(cluster, &status.streams);
    }
    status.problems.extend(problems(&status));
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
) -> (Option<ClusterStatus>, Vec<String>) {
    let replies = match gather(client, JSZ_SUBJECT, timeout, |replies: &[JszReply]| {
        let size = replies.iter().filter_map(|r| r.data.as_ref()?.meta_cluster.as_ref()).map(|m| m.cluster_size).max();
        size.is_some_and(|n| n > 0 && replies.len() >= n)
    })
    .await
    {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => {
            return (
                None,
                vec![format!("no server answered {JSZ_SUBJECT} (the FLEETBUS account must import it, docs/cluster.md)")],
            )
        }
        Err(e) => return (None, vec![format!("cluster report failed: {e}")]),
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

async fn streams_and_consumers(
    js: &jetstream::Context,
) -> Result<(Vec<StreamStatus>, Vec<ConsumerStatus>), async_nats::Error> {
    let mut streams = Vec::new();
    let mut consumers = Vec::new();
    let mut list = js.streams();
    let mut infos = Vec::new();
    while let Some(info) = list.next().await {
        infos.push(info?);
    }
    infos.sort_by_key(|i| order(&i.config.name));
    for info in infos {
        let cluster = info.cluster.clone().unwrap_or_default();
        streams.push(StreamStatus {
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
        });
        let stream = js.get_stream_no_info(&info.config.name).await?;
        let mut list = stream.consumers();
        let mut these = Vec::new();
        while let Some(c) = list.next().await {
            let c = c?;
            these.push(ConsumerStatus {
                stream: info.config.name.clone(),
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
            });
        }
        these.sort_by(|a, b| a.name.cmp(&b.name));
        consumers.extend(these);
    }
    Ok((streams, consumers))
}

/// RAW, PARSED, DEAD first, in pipeline order, then the others by name.
fn order(name: &str) -> (usize, String) {
    let known = [topology::RAW, topology::PARSED, topology::DEAD];
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

/// The problems visible in what was collected.
fn problems(status: &Status) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(cluster) = &status.cluster {
        for node in cluster.nodes.iter().filter(|n| !n.up) {
            out.push(format!("node {} is not answering", node.name));
        }
        let answering = cluster.nodes.iter().filter(|n| n.up).count();
        if answering < cluster.size && cluster.nodes.len() < cluster.size {
            out.push(format!("{answering} of {} nodes answering", cluster.size));
        }
        if cluster.meta_leader.is_none() {
            out.push("no JetStream meta leader".into());
        }
    }
    let reachable_js = !status
        .problems
        .iter()
        .any(|p| p.starts_with("JetStream API"));
    if reachable_js {
        for name in [topology::RAW, topology::PARSED, topology::DEAD] {
            if !status.streams.iter().any(|s| s.name == name) {
                out.push(format!(
                    "stream {name} is missing (run `fleetbus provision`)"
                ));
            }
        }
        for (stream, name) in [
            (topology::RAW, topology::HAMSTERS),
            (topology::PARSED, topology::MONKEYS),
        ] {
            if !status
                .consumers
                .iter()
                .any(|c| c.stream == stream && c.name == name)
            {
                out.push(format!(
                    "consumer {stream}/{name} is missing (run `fleetbus provision`)"
                ));
            }
        }
    }
    for s in &status.streams {
        if s.leader.is_none() {
            out.push(format!("stream {} has no leader", s.name));
        }
        for l in &s.lagging {
            let why = if l.offline {
                "offline".to_string()
            } else {
                format!("behind by {}", l.lag.unwrap_or(0))
            };
            out.push(format!("stream {} replica on {} is {why}", s.name, l.name));
        }
    }
    for c in status.consumers.iter().filter(|c| c.leader.is_none()) {
        out.push(format!("consumer {}/{} has no leader", c.stream, c.name));
    }
    out
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

/// The human-readable report.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let verdict = if !status.reachable {
        "UNREACHABLE".to_string()
    } else if status.healthy {
        "HEALTHY".to_string()
    } else {
        format!(
            "DEGRADED ({} problem{})",
            status.problems.len(),
            if status.problems.len() == 1 { "" } else { "s" }
        )
    };
    let name = status
        .cluster
        .as_ref()
        .and_then(|c| c.name.clone())
        .unwrap_or_else(|| "?".into());
    let _ = writeln!(out, "cluster {name}: {verdict}");
    if let Some(cluster) = &status.cluster {
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
        table(&mut out, &["NODE", "STATE", "VERSION", "ROLE"], &rows);
        out.push('\n');
    }
    if status.reachable {
        let rows: Vec<Vec<String>> = status
            .streams
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
                    s.replicas.to_string(),
                    or_dash(&s.leader),
                    lagging,
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                "STREAM", "MESSAGES", "BYTES", "REPLICAS", "LEADER", "LAGGING",
            ],
            &rows,
        );
        out.push('\n');
        let rows: Vec<Vec<String>> = status
            .consumers
            .iter()
            .map(|c| {
                vec![
                    format!("{}/{}", c.stream, c.name),
                    c.pending.to_string(),
                    c.ack_pending.to_string(),
                    c.redelivered.to_string(),
                    c.waiting.to_string(),
                    or_dash(&c.leader),
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                "CONSUMER",
                "PENDING",
                "ACK PENDING",
                "REDELIVERED",
                "WAITING",
                "LEADER",
            ],
            &rows,
        );
        out.push('\n');
        if status.workers.is_empty() {
            out.push_str("WORKERS: none registered\n");
        } else {
            let rows: Vec<Vec<String>> = status
                .workers
                .iter()
                .map(|w| {
                    let pairs = |m: &mut dyn Iterator<Item = (&String, String)>| {
                        m.map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    };
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
                &mut out,
                &["WORKER", "ID", "VERSION", "STATS", "METADATA"],
                &rows,
            );
        }
    }
    if !status.problems.is_empty() {
        out.push_str("\nPROBLEMS\n");
        for p in &status.problems {
            let _ = writeln!(out, "- {p}");
        }
    }
    out
}

/// One line for a live display (`just up`).
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
    let verdict = if status.healthy { "ok" } else { "DEGRADED" };
    format!("[{verdict}] {}", parts.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Status {
        let mut status = Status {
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
            streams: ["RAW", "PARSED", "DEAD"]
                .iter()
                .map(|n| StreamStatus {
                    name: n.to_string(),
                    replicas: 3,
                    leader: Some("n2".into()),
                    ..Default::default()
                })
                .collect(),
            consumers: vec![
                ConsumerStatus {
                    stream: "RAW".into(),
                    name: "hamsters".into(),
                    leader: Some("n1".into()),
                    ..Default::default()
                },
                ConsumerStatus {
                    stream: "PARSED".into(),
                    name: "monkeys".into(),
                    leader: Some("n3".into()),
                    ..Default::default()
                },
            ],
            ..Status::default()
        };
        status.problems = problems(&status);
        status.healthy = status.problems.is_empty();
        status
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
        assert!(text.contains("WORKERS: none registered"), "{text}");
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
        status.problems = problems(&status);
        status.healthy = status.problems.is_empty();
        assert_eq!(
            status.problems,
            vec![
                "node n3 is not answering",
                "consumer PARSED/monkeys is missing (run `fleetbus provision`)",
                "stream RAW replica on n3 is offline",
            ]
        );
        assert_eq!(exit_code(&status), ExitCode::from(1));
        assert!(render(&status).contains("DEGRADED (3 problems)"));
        assert!(summary_line(&status).starts_with("[DEGRADED] nodes 2/3 meta n1"));
    }

    #[test]
    fn unreachable_exits_2() {
        let status = unreachable_status("cannot connect".into());
        assert_eq!(exit_code(&status), ExitCode::from(2));
        assert!(render(&status).starts_with("cluster ?: UNREACHABLE"));
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
