//! `fleetbus verify`: did every record the simulator was told is stored
//! reach PARSED exactly once, with the values sent?
//!
//! PARSED keeps a message only while some consumer still needs it, so the
//! check reads through its own durable consumer, created *before* the run:
//!
//! ```sh
//! fleetbus verify --prepare --consumer check-1
//! fleetbus simulate --records 100 --report sim.jsonl
//! fleetbus verify --consumer check-1 --report sim.jsonl
//! ```
//!
//! Exit status: 0 when nothing is missing, duplicated or altered; 1
//! otherwise; 2 when the cluster or the report cannot be read.

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;

use crate::nats::{NatsArgs, Role};
use crate::simulate::Reported;
use crate::topology;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// The durable consumer on PARSED to read through.
    #[arg(long, default_value = "verify")]
    pub consumer: String,
    /// Create the consumer (before the run) and exit.
    #[arg(long)]
    pub prepare: bool,
    /// The simulator's report (`fleetbus simulate --report`).
    #[arg(long, required_unless_present = "prepare")]
    pub report: Option<PathBuf>,
    /// Give up waiting for missing records after this many seconds
    /// without a new message.
    #[arg(long, default_value_t = 10)]
    pub idle_secs: u64,
    /// How long to wait for PARSED and the consumer while the cluster
    /// elects leaders (after a restart), in seconds.
    #[arg(long, default_value_t = 60)]
    pub wait_secs: u64,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Record identity: a simulated device never repeats a fix time.
type Key = (String, DateTime<Utc>);

/// The outcome of a check.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcome {
    pub reported: usize,
    pub found_once: usize,
    pub missing: Vec<String>,
    pub duplicated: Vec<String>,
    pub altered: Vec<String>,
    /// PARSED messages read (positions of other devices included).
    pub read: u64,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.altered.is_empty()
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = match args
            .nats
            .clone()
            .or_local_admin()
            .config(Role::Admin, "fleetbus-verify")?
            .connect()
            .await
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fleetbus verify: {e}");
                return Ok(ExitCode::from(2));
            }
        };
        let js = jetstream::new(client);
        let config = consumer::pull::Config {
            durable_name: Some(args.consumer.clone()),
            description: Some("fleetbus verify: every record, once".into()),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            max_ack_pending: 100_000,
            ..Default::default()
        };
        let consumer = open_consumer(&js, config, Duration::from_secs(args.wait_secs)).await?;
        if args.prepare {
            println!("consumer PARSED/{} ready", args.consumer);
            return Ok(ExitCode::SUCCESS);
        }
        let path = args.report.as_ref().expect("clap requires --report");
        let expected = match read_report(path) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("fleetbus verify: {e:#}");
                return Ok(ExitCode::from(2));
            }
        };
        let outcome = check(&consumer, &expected, Duration::from_secs(args.idle_secs)).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&outcome)?);
        } else {
            print!("{}", render(&outcome));
        }
        Ok(if outcome.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// The verify consumer on PARSED, created if missing. Right after a
/// cluster restart the stream has no leader for a few seconds and API
/// requests time out: try again until `wait` has passed.
async fn open_consumer(
    js: &jetstream::Context,
    config: consumer::pull::Config,
    wait: Duration,
) -> anyhow::Result<consumer::Consumer<consumer::pull::Config>> {
    let name = config.durable_name.clone().unwrap_or_default();
    let deadline = Instant::now() + wait;
    loop {
        let attempt = async {
            let stream = js.get_stream(topology::PARSED).await?;
            let consumer = stream.get_or_create_consumer(&name, config.clone()).await?;
            anyhow::Ok(consumer)
        };
        match attempt.await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "PARSED not available yet; trying again.");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context(format!("consumer PARSED/{name}")),
        }
    }
}

/// The report's records, each once (a record acknowledged twice — resent
/// after a crash — is reported twice but is one record).
pub fn read_report(path: &std::path::Path) -> anyhow::Result<BTreeMap<Key, Reported>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Reported = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a report line", path.display(), n + 1))?;
        out.insert((r.device_id.clone(), r.fix_time), r);
    }
    Ok(out)
}

/// Reads PARSED through `consumer` until every expected record was seen
/// and the stream is quiet, or nothing new came for `idle`.
pub async fn check(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    expected: &BTreeMap<Key, Reported>,
    idle: Duration,
) -> anyhow::Result<Outcome> {
    let mut seen: BTreeMap<Key, (usize, Value)> = BTreeMap::new();
    // Stream sequences already counted: a message redelivered to this
    // consumer (its ack was lost while the cluster elected a leader) is the
    // same message, not a duplicate record. Two messages with one key are.
    let mut sequences: HashSet<u64> = HashSet::new();
    let mut read = 0u64;
    let mut last_new = Instant::now();
    // A pull that fails (no leader yet after a restart, "503") is tried
    // again until nothing new has come for `idle`.
    let transient = |what: &str, e: &dyn std::fmt::Display| {
        tracing::debug!(error = %e, "{what} failed; trying again.");
    };
    loop {
        let mut got = 0;
        match consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_millis(500))
            .messages()
            .await
        {
            Err(e) => transient("a pull from PARSED", &e),
            Ok(mut batch) => {
                while let Some(msg) = batch.next().await {
                    let msg = match msg {
                        Ok(m) => m,
                        Err(e) => {
                            transient("a pull from PARSED", &e);
                            break;
                        }
                    };
                    let sequence = msg.info().map(|i| i.stream_sequence).ok();
                    if sequence.is_none_or(|s| sequences.insert(s)) {
                        got += 1;
                        read += 1;
                        // One record, or a frame's records (a JSON array).
                        let records = match serde_json::from_slice::<Value>(&msg.payload) {
                            Ok(Value::Array(records)) => records,
                            Ok(record) => vec![record],
                            Err(_) => vec![],
                        };
                        for v in records {
                            if let Some(key) = key_of(&v) {
                                let e = seen.entry(key).or_insert((0, v));
                                e.0 += 1;
                            }
                        }
                    }
                    if let Err(e) = msg.ack().await {
                        transient("an ack", &e);
                    }
                }
            }
        }
        if got > 0 {
            last_new = Instant::now();
            continue;
        }
        let all_seen = expected.keys().all(|k| seen.contains_key(k));
        if all_seen || last_new.elapsed() >= idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut out = Outcome {
        reported: expected.len(),
        read,
        ..Outcome::default()
    };
    for (key, sent) in expected {
        let name = format!("{} {}", key.0, key.1.to_rfc3339());
        match seen.get(key) {
            None => out.missing.push(name),
            Some((n, _)) if *n > 1 => out.duplicated.push(format!("{name} ×{n}")),
            Some((_, v)) => match differs(sent, v) {
                Some(what) => out.altered.push(format!("{name}: {what}")),
                None => out.found_once += 1,
            },
        }
    }
    Ok(out)
}

fn key_of(v: &Value) -> Option<Key> {
    if v.get("type").and_then(Value::as_str) != Some("position") {
        return None;
    }
    let device = v.get("device_id")?.as_str()?.to_string();
    let fix: DateTime<Utc> = v.get("fix_time")?.as_str()?.parse().ok()?;
    Some((device, fix))
}

/// What differs between what was sent and what arrived, within the wire
/// precision of the protocols (GT06: 1/1,800,000 degree, whole km/h).
fn differs(sent: &Reported, got: &Value) -> Option<String> {
    let num = |k: &str| got.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let checks = [
        ("latitude", sent.latitude, num("latitude"), 1e-5),
        ("longitude", sent.longitude, num("longitude"), 1e-5),
        ("speed", sent.speed, num("speed"), 1.0),
    ];
    for (name, want, have, tol) in checks {
        if (want - have).abs() > tol || have.is_nan() {
            return Some(format!("{name} sent {want}, stored {have}"));
        }
    }
    None
}

fn render(o: &Outcome) -> String {
    let mut s = format!(
        "verify: {} records reported, {} in PARSED exactly once and unaltered; {} missing, {} duplicated, {} altered ({} messages read)\n",
        o.reported,
        o.found_once,
        o.missing.len(),
        o.duplicated.len(),
        o.altered.len(),
        o.read
    );
    for (what, list) in [
        ("missing", &o.missing),
        ("duplicated", &o.duplicated),
        ("altered", &o.altered),
    ] {
        for item in list.iter().take(20) {
            s.push_str(&format!("  {what}: {item}\n"));
        }
        if list.len() > 20 {
            s.push_str(&format!("  … and {} more {what}\n", list.len() - 20));
        }
    }
    s.push_str(if o.ok() { "OK\n" } else { "FAILED\n" });
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sent() -> Reported {
        Reported {
            device_id: "350010000000001".into(),
            protocol: "gt06".into(),
            fix_time: Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
            latitude: 54.61234,
            longitude: 25.21234,
            speed: 42.0,
            course: 90.0,
            sent_at: Utc::now(),
            acked_at: Utc::now(),
        }
    }

    #[test]
    fn values_within_wire_precision_agree_and_others_do_not() {
        let s = sent();
        let ok = serde_json::json!({"type":"position","latitude":54.6123403,"longitude":25.2123398,"speed":42.0});
        assert_eq!(differs(&s, &ok), None);
        let moved = serde_json::json!({"type":"position","latitude":54.7,"longitude":25.21234,"speed":42.0});
        assert!(differs(&s, &moved).unwrap().contains("latitude"));
        let no_speed =
            serde_json::json!({"type":"position","latitude":54.61234,"longitude":25.21234});
        assert!(differs(&s, &no_speed).is_some());
    }

    #[test]
    fn only_positions_have_keys() {
        let p = serde_json::json!({"type":"position","device_id":"1","fix_time":"2026-11-29T12:00:00Z"});
        assert!(key_of(&p).is_some());
        let login = serde_json::json!({"type":"login","device_id":"1"});
        assert!(key_of(&login).is_none());
    }
}
