//! The report for people: the tables `fleetbus status` prints, and the
//! one line ([`summary_line`]) that `fleetbus dev up` (`just up`) redraws
//! while the cluster runs. Both lead with the verdict and the kinds of the
//! problems, so that a glance tells what is wrong.

use std::fmt::Write as _;

use super::format::{bytes, duration, percent};
use super::health::fill;
use super::model::{ClusterStatus, ConsumerStatus, Status, StreamStatus, WorkerStatus};
use crate::ops::table::table;

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
    table(out, &["NODE", "STATE", "VERSION", "ROLE"], &rows, None);
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
        None,
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
        None,
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
        None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::fixtures::{check, healthy, hold_messages, stream_mut};
    use fleetbus_wire::names;

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
            text.contains("STREAM       MESSAGES  BYTES      FILL"),
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
    fn the_summary_line_names_the_kinds() {
        let mut status = healthy();
        status.dead_recent.as_mut().unwrap().messages = 2;
        hold_messages(&mut status, names::PARSED, 9, 10);
        let status = check(status);
        assert!(
            summary_line(&status).starts_with("[DEGRADED: dead_recent, stream_full] nodes 3/3"),
            "{}",
            summary_line(&status)
        );
    }
}
