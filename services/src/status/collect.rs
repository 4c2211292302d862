//! Collection: what the cluster says right now, asked over one admin
//! connection (the servers' JetStream report for nodes and the meta leader,
//! the JetStream API for streams and consumers, the workers' NATS micro
//! service endpoints), gathered into a [`Status`] on which [`collect_with`]
//! then runs every check.
//!
//! This file holds the entry points and asks the servers (their JetStream
//! report) and the workers (their micro service endpoints); `streams` reads
//! the JetStream API. Nothing in the cluster changes: the one thing
//! collection creates is a short-lived probe consumer on DEAD
//! (`PROBE_PREFIX`) that counts recent dead letters.

use fleetbus_wire::names;
use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use serde::Deserialize;

use super::health::problems;
use super::model::{ClusterStatus, Kind, NodeStatus, Problem, Status, StreamStatus, WorkerStatus};
use super::streams::{recent_dead, streams_and_consumers};
use super::thresholds::Thresholds;
use crate::nats::{NatsArgs, Role};

/// Subject every server answers with its JetStream report (imported from
/// the system account into FLEETBUS, see nats-conf/accounts.conf).
pub const JSZ_SUBJECT: &str = "$SYS.REQ.SERVER.PING.JSZ";
/// Subject every NATS micro service instance answers with its info.
pub const SRV_INFO_SUBJECT: &str = "$SRV.INFO";
/// Subject every NATS micro service instance answers with its live stats.
pub const SRV_STATS_SUBJECT: &str = "$SRV.STATS";

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
    let why = match gather(client, JSZ_SUBJECT, timeout, |replies: &[JszReply]| {
        let size = replies
            .iter()
            .filter_map(|r| r.data.as_ref()?.meta_cluster.as_ref())
            .map(|m| m.cluster_size)
            .max();
        size.is_some_and(|n| n > 0 && replies.len() >= n)
    })
    .await
    {
        Ok(r) if !r.is_empty() => return (Some(cluster_from_replies(&r)), Vec::new()),
        Ok(_) => format!(
            "no server answered {JSZ_SUBJECT} (the FLEETBUS account must import it, \
             docs/cluster.md)"
        ),
        Err(e) => format!("cluster report failed: {e}"),
    };
    (None, vec![Problem::new(Kind::ClusterReport, why)])
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

#[cfg(test)]
mod tests {
    use std::process::ExitCode;

    use super::*;
    use crate::cli::status::exit_code;
    use crate::status::{metrics, render, Lagging};

    /// The servers' answers to the JetStream report, as JSON.
    fn jsz_replies(json: &[&str]) -> Vec<JszReply> {
        json.iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect()
    }

    /// Each node by name with whether it answered.
    fn node_states(cluster: &ClusterStatus) -> Vec<(&str, bool)> {
        cluster
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.up))
            .collect()
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
    fn cluster_from_jsz_replies() {
        let replies = jsz_replies(&[
            r#"{"server":{"name":"n1","ver":"2.12.8"},"data":{"meta_cluster":{"name":"fleetbus","leader":"n2","cluster_size":3,"replicas":[{"name":"n2"},{"name":"n3"}]}}}"#,
            r#"{"server":{"name":"n2","ver":"2.12.8"},"data":{"meta_cluster":{"name":"fleetbus","leader":"n2","cluster_size":3,"replicas":[{"name":"n1"},{"name":"n3"}]}}}"#,
        ]);
        let cluster = cluster_from_replies(&replies);
        assert_eq!(cluster.size, 3);
        assert_eq!(cluster.meta_leader.as_deref(), Some("n2"));
        assert_eq!(
            node_states(&cluster),
            vec![("n1", true), ("n2", true), ("n3", false)]
        );
    }

    #[test]
    fn a_dead_meta_leader_is_no_leader_and_streams_name_silent_nodes() {
        let replies = jsz_replies(&[
            r#"{"server":{"name":"n1","ver":"2.12.8"},"data":{"meta_cluster":{"name":"fleetbus","leader":"n3","cluster_size":3}}}"#,
            r#"{"server":{"name":"n2","ver":"2.12.8"},"data":{"meta_cluster":{"name":"fleetbus","leader":"n3","cluster_size":3}}}"#,
        ]);
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
        assert_eq!(
            node_states(&cluster),
            vec![("n1", true), ("n2", true), ("n3", false)]
        );
    }
}
