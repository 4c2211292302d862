//! `fleetbus verify`: did every record the simulator was told is stored
//! reach PARSED exactly once, with the values sent — and, with
//! `--effects`, did the monkeys do with it what they should (the latest
//! position of every device, each device event once)?
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
//! A consumer that is read only at the end holds every message of the run
//! in PARSED (an interest stream keeps what some consumer has not
//! acknowledged), which changes what is being judged: a full PARSED, a
//! stream that should have drained. `--tap FILE` instead follows the
//! consumer during the run, writing each record to FILE before
//! acknowledging it, until SIGTERM; `--from-tap FILE` then judges from the
//! file. The fault suite does that.
//!
//! Exit status: 0 when nothing is missing, duplicated or altered (and the
//! effects are right); 1 otherwise; 2 when the cluster or the report cannot
//! be read.

use fleetbus_wire::names;
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

use crate::config::ProgramArgs;
use crate::exit::Exit;
use crate::nats::Role;
use crate::simulate::Reported;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// The durable consumer on PARSED to read through.
    #[arg(long, default_value = "verify")]
    pub consumer: String,
    /// Create the consumer (before the run) and exit.
    #[arg(long)]
    pub prepare: bool,
    /// The simulator's report (`fleetbus simulate --report`).
    #[arg(long, required_unless_present_any = ["prepare", "tap", "print_config"])]
    pub report: Option<PathBuf>,
    /// Follow the consumer and append every record to this file (JSON
    /// lines) before acknowledging it, until SIGTERM or SIGINT.
    #[arg(long, conflicts_with_all = ["prepare", "report", "from_tap"])]
    pub tap: Option<PathBuf>,
    /// Judge from a file `--tap` wrote instead of reading the consumer.
    #[arg(long)]
    pub from_tap: Option<PathBuf>,
    /// Also check the monkeys' effects: every reported device's entry in
    /// the `devices` bucket holds its newest record, and EVENTS holds each
    /// ignition change of its records once.
    #[arg(long)]
    pub effects: bool,
    /// With `--effects`, pass although some ignition transitions never
    /// showed, as long as every event that did is real and once: what a
    /// device's fixes processed out of order cost (docs/reliability.md,
    /// "Ordering"). The missing ones are still reported.
    #[arg(long, requires = "effects")]
    pub allow_lost_transitions: bool,
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

mod effects;

/// Record identity: a simulated device never repeats a fix time.
pub type Key = (String, DateTime<Utc>);

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
    /// The monkeys' effects, with `--effects`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effects: Option<effects::Effects>,
    /// `--allow-lost-transitions`.
    #[serde(skip)]
    pub allow_lost_transitions: bool,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        let effects_ok = |e: &effects::Effects| {
            if self.allow_lost_transitions {
                e.ok_but_for_order()
            } else {
                e.ok()
            }
        };
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.altered.is_empty()
            && self.effects.as_ref().is_none_or(effects_ok)
    }
}

/// What reached PARSED: every position by its key, with how often it came
/// and its JSON, and how many messages were read.
#[derive(Debug, Default)]
pub struct Parsed {
    pub seen: BTreeMap<Key, (usize, Value)>,
    pub read: u64,
}

impl Parsed {
    /// Counts one record of message `sequence`.
    fn add(&mut self, record: Value) {
        if let Some(key) = key_of(&record) {
            let e = self.seen.entry(key).or_insert((0, record));
            e.0 += 1;
        }
    }
}

/// The records of a PARSED payload as JSON (none when it is not JSON).
fn records_of(payload: &[u8]) -> Vec<Value> {
    fleetbus_wire::parsed::records_json(payload).unwrap_or_default()
}

/// Follows `consumer` until SIGTERM or SIGINT: every record of every new
/// message goes to `path` (one JSON line: stream sequence, index, record)
/// and is flushed before the message is acknowledged, so the file holds
/// everything acknowledged. A message redelivered to the tap (an ack lost
/// in an election) is written again under the same sequence; `--from-tap`
/// counts it once.
async fn tap(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let stop = crate::ops::signals::terminated();
    tokio::pin!(stop);
    loop {
        let batch = tokio::select! {
            _ = &mut stop => return Ok(()),
            b = consumer.fetch().max_messages(1000).expires(Duration::from_millis(500)).messages() => b,
        };
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "A pull from PARSED failed; trying again.");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut taken = Vec::new();
        while let Some(msg) = batch.next().await {
            let Ok(msg) = msg else { break };
            let sequence = msg.info().map(|i| i.stream_sequence).unwrap_or_default();
            for (i, record) in records_of(&msg.payload).into_iter().enumerate() {
                let line = serde_json::json!({"seq": sequence, "i": i, "record": record});
                writeln!(file, "{line}")?;
            }
            taken.push(msg);
        }
        file.flush()?;
        for msg in taken {
            if let Err(e) = msg.ack().await {
                tracing::debug!(error = %e, "An ack failed; the message comes again.");
            }
        }
    }
}

/// What `--tap` wrote: each (sequence, index) once.
fn read_tap(path: &std::path::Path) -> anyhow::Result<Parsed> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut parsed = Parsed::default();
    let mut lines: HashSet<(u64, u64)> = HashSet::new();
    let mut messages: HashSet<u64> = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a tap line", path.display(), n + 1))?;
        let seq = v["seq"].as_u64().unwrap_or_default();
        let i = v["i"].as_u64().unwrap_or_default();
        if lines.insert((seq, i)) {
            if messages.insert(seq) {
                parsed.read += 1;
            }
            parsed.add(v["record"].clone());
        }
    }
    Ok(parsed)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(nats) = args.program.admin_nats()? else {
        return Ok(Exit::Ok.into());
    };
    let runtime = crate::cli::tool_runtime()?;
    runtime.block_on(async move {
        let client = match nats.config(Role::Admin, "fleetbus-verify")?.connect().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fleetbus verify: {e}");
                return Ok(Exit::Unreachable.into());
            }
        };
        let js = jetstream::new(client);
        if let Some(path) = &args.from_tap {
            let path = path.clone();
            return judge(&js, &args, move |_| async move { read_tap(&path) }).await;
        }
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
        if let Some(path) = &args.tap {
            tap(&consumer, path).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let idle = Duration::from_secs(args.idle_secs);
        let consumer = &consumer;
        judge(&js, &args, move |expected| async move {
            read_consumer(consumer, &expected, idle).await
        })
        .await
    })
}

/// Reads the report, gets what reached PARSED from `parsed`, compares,
/// checks the effects if asked, prints, and says how it went.
async fn judge<F, Fut>(js: &jetstream::Context, args: &Args, parsed: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(BTreeMap<Key, Reported>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Parsed>>,
{
    let path = args.report.as_ref().expect("clap requires --report");
    let expected = match read_report(path) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("fleetbus verify: {e:#}");
            return Ok(Exit::Usage.into());
        }
    };
    let parsed = parsed(expected.clone()).await?;
    let mut outcome = compare(&expected, &parsed);
    outcome.allow_lost_transitions = args.allow_lost_transitions;
    if args.effects {
        let wait = Duration::from_secs(args.wait_secs);
        let reported = expected.keys().map(|(device, _)| device.as_str()).collect();
        outcome.effects = Some(effects::check(js, &parsed.seen, &reported, wait).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", render(&outcome));
    }
    Ok(Exit::problems_unless(outcome.ok()).into())
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
            let stream = js.get_stream(names::PARSED).await?;
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
pub async fn read_consumer(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    expected: &BTreeMap<Key, Reported>,
    idle: Duration,
) -> anyhow::Result<Parsed> {
    let mut parsed = Parsed::default();
    // Stream sequences already counted: a message redelivered to this
    // consumer (its ack was lost while the cluster elected a leader) is the
    // same message, not a duplicate record. Two messages with one key are.
    let mut sequences: HashSet<u64> = HashSet::new();
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
                        parsed.read += 1;
                        for v in records_of(&msg.payload) {
                            parsed.add(v);
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
        let all_seen = expected.keys().all(|k| parsed.seen.contains_key(k));
        if all_seen || last_new.elapsed() >= idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(parsed)
}

/// Every reported record against what reached PARSED.
pub fn compare(expected: &BTreeMap<Key, Reported>, parsed: &Parsed) -> Outcome {
    let mut out = Outcome {
        reported: expected.len(),
        read: parsed.read,
        ..Outcome::default()
    };
    for (key, sent) in expected {
        let name = format!("{} {}", key.0, key.1.to_rfc3339());
        match parsed.seen.get(key) {
            None => out.missing.push(name),
            Some((n, _)) if *n > 1 => out.duplicated.push(format!("{name} ×{n}")),
            Some((_, v)) => match differs(sent, v) {
                Some(what) => out.altered.push(format!("{name}: {what}")),
                None => out.found_once += 1,
            },
        }
    }
    out
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
    if let Some(e) = &o.effects {
        s.push_str(&e.render());
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
