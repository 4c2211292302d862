//! Collection from the JetStream API: every stream and its consumers as
//! the cluster reports them, and what their stored messages tell that the
//! reports do not (the age of a consumer's oldest unacknowledged message,
//! how many dead letters DEAD received lately). Those ages are read from
//! message timestamps, so status needs no state of its own between runs.

use fleetbus_wire::names;
use std::time::Duration;

use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream::{DiscardPolicy, RetentionPolicy};
use async_nats::jetstream::{self, consumer, ErrorCode};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde::Deserialize;

use super::health::{common_floor, fill, holds_passed_messages};
use super::model::{ConsumerStatus, DeadRecent, Kind, Lagging, Problem, StreamStatus};
use crate::topology;

/// Name prefix of the short-lived consumers status creates on DEAD to
/// count recent dead letters. Consumers named so are left out of the
/// report: another status run's probe is not part of the system.
pub const PROBE_PREFIX: &str = "fleetbus-status-";

/// Removal of acknowledged messages from an interest stream is replicated
/// after the ack floor moves; a stream that looks stranded is read again
/// after this long before it is reported.
const STRANDED_SETTLE: Duration = Duration::from_millis(500);

/// Streams and consumers as read, and what could not be read of them.
pub(super) struct Collected {
    pub(super) streams: Vec<StreamStatus>,
    pub(super) consumers: Vec<ConsumerStatus>,
    pub(super) problems: Vec<Problem>,
}

pub(super) async fn streams_and_consumers(
    js: &jetstream::Context,
) -> Result<Collected, async_nats::Error> {
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
        // A key-value bucket's consumers are watches (each gateway follows
        // the registry with one), not stages: none holds anything back.
        let bucket =
            fleetbus_wire::Stream::named(&stream.name).is_some_and(|s| s.bucket().is_some());
        let consumers = if bucket {
            Vec::new()
        } else {
            consumers_of(js, &stream.name).await?
        };
        for c in consumers {
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
    let Some((_, floor)) = common_floor(consumers, stream) else {
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
pub(super) async fn recent_dead(
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
