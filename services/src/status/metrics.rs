//! The report as Prometheus text (`fleetbus status --metrics`), for a
//! scrape or node_exporter's textfile collector. Alerts are written against
//! these metric names and labels, so they change only together with them.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::health::{fill, stages};
use super::model::{ConsumerStatus, Kind, Status, StreamStatus};

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
    let problems = family(Kind::ALL.into_iter().map(|kind| {
        let n = status.problem_kinds.iter().filter(|k| **k == kind).count();
        let label = KindLabel {
            kind: kind.as_str().into(),
        };
        (label, n as i64)
    }));
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

/// A gauge that reads `v`.
fn gauge(v: i64) -> Gauge {
    let g = Gauge::default();
    g.set(v);
    g
}

/// A family of gauges, one series a row: integer or float gauges, by the
/// rows' values.
fn family<L, N: Value>(rows: impl IntoIterator<Item = (L, N)>) -> Family<L, N::Gauge>
where
    L: Clone + std::hash::Hash + Eq,
{
    let f = Family::<L, N::Gauge>::default();
    for (label, v) in rows {
        v.set(&f.get_or_create(&label));
    }
    f
}

/// A value a gauge reads, and the gauge that reads it.
trait Value {
    type Gauge: Default;
    fn set(self, gauge: &Self::Gauge);
}

impl Value for i64 {
    type Gauge = Gauge;
    fn set(self, gauge: &Gauge) {
        gauge.set(self);
    }
}

impl Value for f64 {
    type Gauge = FloatGauge;
    fn set(self, gauge: &FloatGauge) {
        gauge.set(self);
    }
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
    let streams = &status.streams;
    let label = |s: &StreamStatus| StreamLabel {
        stream: s.name.clone(),
    };
    let messages = family(streams.iter().map(|s| (label(s), s.messages as i64)));
    let stored = family(streams.iter().map(|s| (label(s), s.bytes as i64)));
    let fill_ratio = family(
        streams
            .iter()
            .filter_map(|s| Some((label(s), fill(s)?.ratio))),
    );
    registry.register("stream_messages", "Messages a stream holds", messages);
    registry.register("stream_bytes", "Bytes a stream holds (per replica)", stored);
    registry.register(
        "stream_fill_ratio",
        "The larger of bytes/max_bytes and messages/max_msgs (streams with a limit only)",
        fill_ratio,
    );
    if let Some(dead) = &status.dead_recent {
        registry.register(
            "dead_recent_messages",
            format!(
                "Messages DEAD received within the last {} s (--dead-window-secs)",
                dead.window_secs
            ),
            gauge(dead.messages as i64),
        );
    }
}

fn register_consumers(registry: &mut Registry, status: &Status) {
    let consumers = &status.consumers;
    let labels = |c: &ConsumerStatus| ConsumerLabels {
        stream: c.stream.clone(),
        consumer: c.name.clone(),
    };
    let pending = family(consumers.iter().map(|c| (labels(c), c.pending as i64)));
    let ack_pending = family(consumers.iter().map(|c| (labels(c), c.ack_pending as i64)));
    let oldest = family(
        consumers
            .iter()
            .map(|c| (labels(c), c.oldest_unacked_secs.unwrap_or(0.0))),
    );
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
    // Every stage, so that "none running" is a 0 and not a missing series.
    let mut by_role: BTreeMap<String, i64> = stages()
        .map(|(role, _)| (role.name().to_string(), 0))
        .into();
    for w in &status.workers {
        *by_role.entry(w.name.clone()).or_default() += 1;
    }
    let workers = family(by_role.into_iter().map(|(role, n)| (RoleLabel { role }, n)));
    registry.register(
        "workers",
        "Registered worker processes (NATS micro services), by role",
        workers,
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::status::fixtures::{backlog, check, healthy, stream_mut, worker, MONKEYS_0};
    use fleetbus_wire::names;

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
        backlog(&mut status, MONKEYS_0, 3, 2, 75.5);
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
        let labels = "{stream=\"PARSED\",consumer=\"monkeys-0\"}";
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
                 fleetbus_workers{role=\"janitor\"} 1\nfleetbus_workers{role=\"monkey\"} 1\n"
            ),
            "samples in label order: {text}"
        );

        let m = samples(&metrics(&healthy()).unwrap());
        assert_eq!(m["fleetbus_status_healthy"], 1.0);
        let mut none = healthy();
        none.workers.clear();
        let m = samples(&metrics(&check(none)).unwrap());
        assert_eq!(m["fleetbus_workers{role=\"monkey\"}"], 0.0);
        assert_eq!(m["fleetbus_status_problems{kind=\"no_workers\"}"], 4.0);
    }
}
