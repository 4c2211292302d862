//! `just bench`, op-set part: what the three-node cluster spends on one
//! record under each design's *operations*, with no fleetbus process in
//! the way — so that a design's cost and the code's cost can be told apart.
//!
//! Every op set carries the same records (one-record frames of 128 bytes
//! from 1,000 devices) through the same three stages, run one after the
//! other on a fresh cluster, each timed, the three servers' CPU read around
//! each (`e2e/src/cpu.rs`):
//!
//! * **ceiling**: the system bench's model — two pipelined publishes and two
//!   consume + acks per position on a limits stream, one header each;
//! * **per record** (today's layout): RAW and PARSED interest streams (every
//!   ack also deletes), the gateway's RAW headers and the hamster's PARSED
//!   headers and JSON (`fleetbus_wire`), one PARSED message, delivery and ack
//!   per record, and for each record a read of the device's entry and a
//!   compare-and-set of it (entry ~1 KB); and the same without the entry;
//! * **partition batches** (issue 17's direction): RAW and PARSED keep
//!   messages by limits, and a janitor purges each below the lowest ack
//!   floor of its durables four times a second; `P` partitions, each consumed by its own durable, as one
//!   owner would; a hamster takes up to `B` RAW messages of its partition,
//!   publishes them as one PARSED message (the records' JSON array, id from
//!   the RAW sequence range) and acknowledges the batch with one AckAll ack;
//!   a monkey writes each device of the batch once (its newest fix, a small
//!   entry) with a compare-and-set on the revision it holds (no read), then
//!   acks the message;
//! * the same with a message's entries written as **one atomic batch**
//!   (nats-server 2.12's `allow_atomic` on the bucket's stream), each entry
//!   still with its expected revision;
//! * the same **without the entry write**, to show what the device state
//!   costs (the differences between rows are what each operation costs).
//!
//! `records/s` is records divided by the three stages' time together (the
//! ceiling's positions/s is computed the same way), so the ratios compare
//! the cluster's work per record, not the overlap of stages. Run:
//!
//! ```sh
//! cargo bench -p fleetbus-e2e --bench opset -- --records 40000 --batch 64 --partitions 8
//! ```
//!
//! `cargo test --all-targets` runs it in test mode: 300 records, every op
//! set once, each record checked to arrive at the last stage.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, kv, stream, Context as Js};
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use fleetbus_codec::{Position, Record};
use fleetbus_e2e::bench::Argv;
use fleetbus_e2e::{cpu, Cluster, Role};
use fleetbus_wire::device::{Applied, DeviceEntry};
use fleetbus_wire::event::Event;
use fleetbus_wire::parsed::ParsedMeta;
use fleetbus_wire::raw::RawFrame;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

const DEVICES: usize = 1_000;
const FRAME_BYTES: usize = 128;
/// In-flight publishes or entry writes of one client (the gateways and
/// workers together keep about this many in flight).
const WINDOW: usize = 512;
/// How often the janitor purges what every durable has acknowledged.
const PURGE_EVERY_MS: u64 = 250;

struct Args {
    full: bool,
    records: usize,
    batch: usize,
    partitions: usize,
}

fn args() -> anyhow::Result<Args> {
    let argv = Argv::from_env();
    let full = argv.full();
    Ok(Args {
        full,
        records: argv
            .value("--records")?
            .unwrap_or(if full { 40_000 } else { 300 }),
        batch: argv.value("--batch")?.unwrap_or(64),
        partitions: argv.value("--partitions")?.unwrap_or(8),
    })
}

/// What one op set cost.
#[derive(Clone)]
struct Measured {
    /// Wall time of each stage: RAW publishes, hamster stage, monkey stage.
    stages: [Duration; 3],
    /// The three servers' CPU over the three stages.
    servers: Duration,
    /// This process's CPU (the clients of every stage).
    client: Duration,
    records: usize,
    /// Messages the monkeys' stage read (records, or batches).
    parsed_messages: usize,
    /// Entry writes refused because another write came first, retried.
    conflicts: usize,
    /// Purges of RAW and PARSED (the batched layout's janitor).
    purges: u64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.records as f64 / self.stages.iter().sum::<Duration>().as_secs_f64()
    }

    fn per_record(&self, d: Duration) -> f64 {
        d.as_secs_f64() * 1e6 / self.records as f64
    }
}

/// Times `stage` and reads the servers' and this process's CPU around it.
struct Meter {
    servers: Vec<u32>,
    used: Duration,
    client: Duration,
}

impl Meter {
    fn new(cluster: &Cluster) -> Meter {
        Meter {
            servers: (0..cluster.len()).filter_map(|i| cluster.pid(i)).collect(),
            used: Duration::ZERO,
            client: Duration::ZERO,
        }
    }

    async fn stage<T>(
        &mut self,
        run: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<(Duration, T)> {
        let kinds = [("servers", self.servers.clone())];
        let before = cpu::Snapshot::take(&kinds);
        let start = Instant::now();
        let out = run.await?;
        let took = start.elapsed();
        let after = cpu::Snapshot::take(&kinds);
        self.used += after.since(&before)["servers"];
        self.client += after.this_process_since(&before);
        Ok((took, out))
    }
}

fn device(i: usize) -> String {
    format!("35{:013}", i % DEVICES)
}

fn partition(i: usize, partitions: usize) -> usize {
    (i % DEVICES) % partitions
}

/// Record `i`: a fix of its device, one second after the device's last.
fn position(i: usize) -> Position {
    let at = Utc
        .timestamp_opt(1_795_000_000 + (i / DEVICES) as i64, 0)
        .unwrap();
    let mut p = Position::new(&device(i), "teltonika", at);
    p.valid = true;
    p.latitude = 54.6872 + (i % 97) as f64 * 1e-4;
    p.longitude = 25.2797;
    p.speed = 42.0;
    p.course = 90.0;
    p.satellites = Some(9);
    for (k, v) in [
        ("ignition", serde_json::json!(true)),
        ("motion", serde_json::json!(true)),
        ("rssi", serde_json::json!(4)),
        ("power", serde_json::json!(12.6)),
        ("battery", serde_json::json!(4.1)),
        ("odometer", serde_json::json!(123_456)),
    ] {
        p.attributes.insert(k.into(), v);
    }
    p
}

async fn stream_of(
    js: &Js,
    name: &str,
    subjects: &str,
    retention: stream::RetentionPolicy,
) -> anyhow::Result<stream::Stream> {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        num_replicas: 3,
        storage: stream::StorageType::File,
        retention,
        discard: stream::DiscardPolicy::New,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot create stream {name}"))
}

async fn bucket(js: &Js) -> anyhow::Result<kv::Store> {
    js.create_key_value(kv::Config {
        bucket: "opset".into(),
        history: 1,
        num_replicas: 3,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("cannot create the bucket")
}

/// An admin's context on a fresh cluster, with RAW and PARSED of
/// `retention` and the entries' bucket.
async fn streams(
    cluster: &Cluster,
    retention: stream::RetentionPolicy,
) -> anyhow::Result<(Js, stream::Stream, stream::Stream, kv::Store)> {
    let js = jetstream::new(cluster.connect(Role::Admin).await?);
    let raw = stream_of(&js, "RAW", "raw.>", retention).await?;
    let parsed = stream_of(&js, "PARSED", "parsed.>", retention).await?;
    let kv = bucket(&js).await?;
    Ok((js, raw, parsed, kv))
}

/// A durable pull consumer, once its leader is elected (a young cluster
/// answers the first pulls with "no responders" otherwise).
async fn durable(
    s: &stream::Stream,
    name: &str,
    filter: &str,
    ack_policy: consumer::AckPolicy,
) -> anyhow::Result<consumer::PullConsumer> {
    let config = consumer::pull::Config {
        durable_name: Some(name.into()),
        filter_subject: filter.into(),
        ack_policy,
        max_ack_pending: 20_000,
        ..Default::default()
    };
    // A young cluster on a small machine may time the creation out (CI
    // met it): creating the same durable again is harmless.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut c = loop {
        match s.create_consumer(config.clone()).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("creating {name} failed, trying again: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    fleetbus_e2e::bench::consumer_leader(&mut c, name).await?;
    Ok(c)
}

/// Continuous pulls of up to 500 messages from `c`, as the workers pull.
async fn pulls(c: &consumer::PullConsumer) -> anyhow::Result<consumer::pull::Stream> {
    Ok(c.stream().max_messages_per_batch(500).messages().await?)
}

/// The next message of a pull stream of `what`; an error when it ended or
/// its pulls kept failing for a minute. A young cluster on a small machine
/// may answer pulls with "no responders" for a few seconds while a leader
/// settles (a CI smoke run met it); the stream pulls again by itself.
async fn next(msgs: &mut consumer::pull::Stream, what: &str) -> anyhow::Result<jetstream::Message> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match msgs.next().await.with_context(|| format!("{what} ended"))? {
            Ok(m) => return Ok(m),
            Err(e) if Instant::now() < deadline => {
                eprintln!("pulling {what} failed, pulling again: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => anyhow::bail!("{what}: {e}"),
        }
    }
}

/// Publishes every message with at most [`WINDOW`] in flight; a message
/// whose publish or PubAck failed (a leader moving) goes again with the
/// same id until stored.
async fn publish_all(js: &Js, messages: Vec<(String, HeaderMap, Bytes)>) -> anyhow::Result<()> {
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for (i, (subject, headers, body)) in messages.iter().enumerate() {
        let ack = js
            .publish_with_headers(subject.clone(), headers.clone(), body.clone())
            .await;
        in_flight.push_back((i, ack));
        if in_flight.len() >= WINDOW {
            let (i, ack) = in_flight.pop_front().expect("non-empty");
            settle(js, &messages[i], ack).await?;
        }
    }
    for (i, ack) in in_flight {
        settle(js, &messages[i], ack).await?;
    }
    Ok(())
}

type Published = Result<jetstream::context::PublishAckFuture, jetstream::context::PublishError>;

async fn settle(js: &Js, m: &(String, HeaderMap, Bytes), first: Published) -> anyhow::Result<()> {
    let mut attempt = first;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let error = match attempt {
            Ok(ack) => match ack.await {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        anyhow::ensure!(Instant::now() < deadline, "{} not stored: {error}", m.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        attempt = js
            .publish_with_headers(m.0.clone(), m.1.clone(), m.2.clone())
            .await;
    }
}

/// The RAW frames: today's headers (gateway id, peer, received time, …)
/// or only the id the batched layout keeps (the subject names the rest).
fn raw_frames(a: &Args, full_headers: bool) -> Vec<(String, HeaderMap, Bytes)> {
    (0..a.records)
        .map(|i| {
            let mut frame = vec![0x5a; FRAME_BYTES];
            frame[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let mut raw = RawFrame::new("teltonika", device(i));
            if full_headers {
                raw.received_at = Some(Utc::now());
                raw.gateway = Some("gw-bench".into());
                raw.peer = Some("10.1.2.3:40000".into());
                (raw.subject(), raw.headers(&frame), frame.into())
            } else {
                let mut h = HeaderMap::new();
                h.insert("Nats-Msg-Id", raw.msg_id(&frame).as_str());
                let subject = format!("raw.p{}.{}", partition(i, a.partitions), device(i));
                (subject, h, frame.into())
            }
        })
        .collect()
}

/// Today: a message, a delivery, an ack (and so a delete) per record at
/// each stage; a read and a compare-and-set of the entry per record
/// (`entries: false`: no entry at all).
async fn per_record(cluster: &Cluster, a: &Args, entries: bool) -> anyhow::Result<Measured> {
    let (js, raw, parsed, kv) = streams(cluster, stream::RetentionPolicy::Interest).await?;
    let hamsters = durable(&raw, "hamsters", "raw.>", consumer::AckPolicy::Explicit).await?;
    let monkeys = durable(
        &parsed,
        "monkeys",
        "parsed.>",
        consumer::AckPolicy::Explicit,
    )
    .await?;
    let mut meter = Meter::new(cluster);
    let n = a.records;

    let (t_raw, ()) = meter.stage(publish_all(&js, raw_frames(a, true))).await?;
    let (t_hamster, ()) = meter
        .stage(async {
            let mut msgs = pulls(&hamsters).await?;
            let mut pending = VecDeque::new();
            let mut done = 0;
            while done < n {
                if pending.len() < WINDOW && done + pending.len() < n {
                    let m = next(&mut msgs, "RAW").await?;
                    let frame = RawFrame::read(&m);
                    let seq = m
                        .info()
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .stream_sequence;
                    let i = u64::from_be_bytes(m.payload[..8].try_into()?) as usize;
                    let meta = ParsedMeta::of_frame(&frame, &format!("RAW:{seq}"));
                    let record = Record::Position(position(i));
                    let out = meta.messages(1, &[(0, &record)], usize::MAX).remove(0);
                    let ack = js
                        .publish_with_headers(out.subject, out.headers, out.payload)
                        .await?;
                    pending.push_back((ack, m));
                } else {
                    let (ack, m) = pending.pop_front().context("nothing pending")?;
                    ack.await?;
                    m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    done += 1;
                }
            }
            Ok(())
        })
        .await?;
    let (t_monkey, conflicts) = meter
        .stage(async {
            let mut msgs = pulls(&monkeys).await?;
            let mut writes = FuturesUnordered::new();
            let (mut taken, mut done, mut conflicts) = (0, 0, 0);
            while done < n {
                if writes.len() < WINDOW && taken < n {
                    let m = next(&mut msgs, "PARSED").await?;
                    taken += 1;
                    let kv = kv.clone();
                    writes.push(async move {
                        let records = fleetbus_wire::parsed::read_records(&m.payload)?.0;
                        let Some(Record::Position(p)) = records.into_iter().next() else {
                            anyhow::bail!("not a position");
                        };
                        let key = p.device_id.clone();
                        let value: Bytes = serde_json::to_vec(&today_entry(p))?.into();
                        let lost = if entries {
                            read_and_swap(&kv, &key, value).await?
                        } else {
                            0
                        };
                        m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                        Ok(lost)
                    });
                } else {
                    conflicts += writes.next().await.context("no write in flight")??;
                    done += 1;
                }
            }
            Ok(conflicts)
        })
        .await?;
    Ok(Measured {
        stages: [t_raw, t_hamster, t_monkey],
        servers: meter.used,
        client: meter.client,
        records: n,
        parsed_messages: n,
        conflicts,
        purges: 0,
    })
}

/// Today's write of an entry: read it, then compare-and-set; again if
/// another write came between. How many times one did.
async fn read_and_swap(kv: &kv::Store, key: &str, value: Bytes) -> anyhow::Result<usize> {
    let mut lost = 0;
    loop {
        let written = match kv.entry(key).await? {
            Some(e) => kv.update(key, value.clone(), e.revision).await.is_ok(),
            None => kv.create(key, value.clone()).await.is_ok(),
        };
        if written {
            return Ok(lost);
        }
        lost += 1;
    }
}

/// Today's entry: the fix, its source, and the two applied messages of
/// events it remembers (the cap is 16; most devices hold a few).
fn today_entry(p: Position) -> DeviceEntry {
    let applied = |k: usize| Applied {
        source: format!("PARSED:{k}"),
        events: vec![Event {
            kind: "ignitionOn".into(),
            device_id: p.device_id.clone(),
            protocol: p.protocol.clone(),
            fix_time: p.fix_time.to_rfc3339(),
            latitude: p.latitude,
            longitude: p.longitude,
            speed: p.speed,
            alarm: None,
            threshold: None,
            source: format!("teltonika:{}:{k}", p.device_id),
        }],
    };
    DeviceEntry {
        recent: vec![applied(1), applied(2)],
        source: "PARSED:3".into(),
        ignition: Some(true),
        overspeed: false,
        position: p,
    }
}

/// Issue 17's direction: partitions owned one consumer each, a PARSED
/// message and one AckAll per batch, limits retention purged below the
/// ack floor, the entry written once per device per batch from the
/// revision the owner holds (`entries: false`: not at all).
/// How the batched layout's monkeys write the device entries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entries {
    None,
    /// A compare-and-set per device, from the revision the owner holds.
    PerDevice,
    /// The same writes as one atomic batch per PARSED message
    /// (nats-server 2.12's `allow_atomic` streams), each still carrying
    /// its expected revision.
    AtomicBatch,
}

async fn batched(cluster: &Cluster, a: &Args, entries: Entries) -> anyhow::Result<Measured> {
    let (js, raw, parsed, kv) = streams(cluster, stream::RetentionPolicy::Limits).await?;
    if entries == Entries::AtomicBatch {
        let mut bucket = js
            .get_stream("KV_opset")
            .await?
            .info()
            .await?
            .config
            .clone();
        bucket.allow_atomic_publish = true;
        js.update_stream(bucket)
            .await
            .context("cannot allow atomic batches")?;
    }
    let mut hamsters = Vec::new();
    let mut monkeys = Vec::new();
    for p in 0..a.partitions {
        let all = consumer::AckPolicy::All;
        hamsters.push(durable(&raw, &format!("hamsters-{p}"), &format!("raw.p{p}.>"), all).await?);
        monkeys.push(
            durable(
                &parsed,
                &format!("monkeys-{p}"),
                &format!("parsed.p{p}"),
                all,
            )
            .await?,
        );
    }
    // Records of each partition, for the check at the end.
    let mut expected = vec![0usize; a.partitions];
    for i in 0..a.records {
        expected[partition(i, a.partitions)] += 1;
    }
    let mut meter = Meter::new(cluster);

    let (t_raw, ()) = meter.stage(publish_all(&js, raw_frames(a, false))).await?;
    let names = |role: &str| (0..a.partitions).map(|p| format!("{role}-{p}")).collect();
    let (t_hamster, (counts, raw_purges)) = meter
        .stage(with_janitor(raw.clone(), names("hamsters"), async {
            let owners = hamsters
                .iter()
                .zip(&expected)
                .enumerate()
                .map(|(p, (c, &want))| hamster_partition(&js, c, p, want, a.batch));
            futures::future::try_join_all(owners).await
        }))
        .await?;
    let (t_monkey, (conflicts, parsed_purges)) = meter
        .stage(with_janitor(parsed.clone(), names("monkeys"), async {
            let owners = monkeys
                .iter()
                .zip(&expected)
                .enumerate()
                .map(|(p, (c, &want))| monkey_partition(&js, p, c, &kv, want, entries));
            futures::future::try_join_all(owners).await
        }))
        .await?;
    let (batches, conflicts) = (counts.iter().sum(), conflicts.iter().sum());
    if entries != Entries::None {
        // Every device's entry is there: no write was lost on the way
        // (an atomic batch with a wrong revision is refused whole).
        let held = js
            .get_stream("KV_opset")
            .await?
            .info()
            .await?
            .state
            .messages;
        let devices = a.records.min(DEVICES) as u64;
        anyhow::ensure!(held == devices, "{held} entries for {devices} devices");
    }
    Ok(Measured {
        stages: [t_raw, t_hamster, t_monkey],
        servers: meter.used,
        client: meter.client,
        records: a.records,
        parsed_messages: batches,
        conflicts,
        purges: raw_purges + parsed_purges,
    })
}

/// One hamster owning partition `p`: batches of up to `batch` frames, one
/// PARSED message and one ack each; the batches it published.
async fn hamster_partition(
    js: &Js,
    c: &consumer::PullConsumer,
    p: usize,
    want: usize,
    batch: usize,
) -> anyhow::Result<usize> {
    let mut msgs = c.stream().max_messages_per_batch(batch).messages().await?;
    let (mut done, mut batches) = (0, 0u64);
    while done < want {
        // What has arrived, up to a batch: the first waits, the rest only
        // if already here.
        let mut taken = vec![next(&mut msgs, "RAW").await?];
        while taken.len() < batch && done + taken.len() < want {
            match futures::FutureExt::now_or_never(msgs.next()) {
                Some(Some(Ok(m))) => taken.push(m),
                // An error, the end or nothing yet: `next` judges the first two.
                _ => break,
            }
        }
        let seqs: Vec<u64> = taken
            .iter()
            .map(|m| m.info().map(|i| i.stream_sequence))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let records: Vec<Record> = taken
            .iter()
            .map(|m| {
                Ok(Record::Position(position(
                    u64::from_be_bytes(m.payload[..8].try_into()?) as usize,
                )))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut h = HeaderMap::new();
        let id = format!("p{p}:{}-{}", seqs[0], seqs[seqs.len() - 1]);
        h.insert("Nats-Msg-Id", id.as_str());
        let body: Bytes = serde_json::to_vec(&records)?.into();
        let m = (format!("parsed.p{p}"), h, body);
        let ack = js
            .publish_with_headers(m.0.clone(), m.1.clone(), m.2.clone())
            .await;
        settle(js, &m, ack).await?;
        taken
            .last()
            .expect("a batch")
            .ack()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        done += taken.len();
        batches += 1;
    }
    Ok(batches as usize)
}

/// One monkey owning a partition: each device of a message written once
/// (its newest fix) from the revision it holds; the writes refused.
async fn monkey_partition(
    js: &Js,
    partition: usize,
    c: &consumer::PullConsumer,
    kv: &kv::Store,
    want: usize,
    entries: Entries,
) -> anyhow::Result<usize> {
    let mut msgs = c.stream().max_messages_per_batch(16).messages().await?;
    let mut revisions: HashMap<String, u64> = HashMap::new();
    let (mut done, mut conflicts) = (0, 0);
    while done < want {
        let m = next(&mut msgs, "PARSED").await?;
        let records = fleetbus_wire::parsed::read_records(&m.payload)?.0;
        done += records.len();
        let mut newest: HashMap<String, Position> = HashMap::new();
        for r in records {
            if let Record::Position(p) = r {
                newest.insert(p.device_id.clone(), p);
            }
        }
        if entries == Entries::AtomicBatch {
            let seq = m
                .info()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .stream_sequence;
            let batch = format!("p{partition}-{seq}");
            let written = atomic_entries(js, &batch, newest.into_values(), &revisions).await?;
            revisions.extend(written);
        } else if entries == Entries::PerDevice {
            let writes = newest.into_values().map(|p| {
                let key = p.device_id.clone();
                let known = revisions.get(&key).copied();
                async move {
                    let entry = DeviceEntry {
                        source: String::new(),
                        ignition: Some(true),
                        overspeed: false,
                        recent: Vec::new(),
                        position: p,
                    };
                    let value: Bytes = serde_json::to_vec(&entry)?.into();
                    let written = match known {
                        Some(rev) => kv.update(&key, value.clone(), rev).await.ok(),
                        None => kv.create(&key, value.clone()).await.ok(),
                    };
                    let (rev, lost) = match written {
                        Some(rev) => (rev, 0),
                        // Only a cached revision gone stale gets here: read
                        // it once and write again.
                        None => {
                            let now = kv.entry(&key).await?.map(|e| e.revision).unwrap_or(0);
                            (kv.update(&key, value, now).await?, 1)
                        }
                    };
                    anyhow::Ok((key, rev, lost))
                }
            });
            for (key, rev, lost) in futures::future::try_join_all(writes).await? {
                revisions.insert(key, rev);
                conflicts += lost;
            }
        }
        m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(conflicts)
}

/// A message's device entries as one atomic batch: every entry but the
/// last published without waiting (the server stages them), the last
/// with `Nats-Batch-Commit` and a PubAck for the whole batch; each with
/// the revision the owner holds as its expected last subject sequence.
/// The batch is stored in one piece, at consecutive sequences: the new
/// revisions.
async fn atomic_entries(
    js: &Js,
    batch: &str,
    positions: impl Iterator<Item = Position>,
    revisions: &HashMap<String, u64>,
) -> anyhow::Result<Vec<(String, u64)>> {
    let entries: Vec<(String, Bytes)> = positions
        .map(|p| {
            let key = p.device_id.clone();
            let entry = DeviceEntry {
                source: String::new(),
                ignition: Some(true),
                overspeed: false,
                recent: Vec::new(),
                position: p,
            };
            Ok((key, serde_json::to_vec(&entry)?.into()))
        })
        .collect::<anyhow::Result<_>>()?;
    let Some(last) = entries.len().checked_sub(1) else {
        return Ok(Vec::new());
    };
    let client = js.client();
    for (i, (key, value)) in entries.iter().enumerate() {
        let mut h = HeaderMap::new();
        h.insert("Nats-Batch-Id", batch);
        h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
        let expected = revisions.get(key).copied().unwrap_or(0);
        h.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        let subject = format!("$KV.opset.{key}");
        if i < last {
            client
                .publish_with_headers(subject, h, value.clone())
                .await?;
        } else {
            h.insert("Nats-Batch-Commit", "1");
            let ack = js.publish_with_headers(subject, h, value.clone()).await?;
            let stored = ack.await.context("the batch was refused")?;
            let first = stored.sequence - last as u64;
            return Ok(entries
                .into_iter()
                .enumerate()
                .map(|(i, (key, _))| (key, first + i as u64))
                .collect());
        }
    }
    Ok(Vec::new())
}

/// Runs `stage` with a [`janitor`] on `s` beside it; what the stage gave
/// and the purges.
async fn with_janitor<T>(
    s: stream::Stream,
    durables: Vec<String>,
    stage: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, u64)> {
    let stop = CancellationToken::new();
    let purging = tokio::spawn(janitor(s, durables, stop.clone()));
    let out = stage.await;
    stop.cancel();
    let purges = purging.await??;
    Ok((out?, purges))
}

/// The janitor of a limits stream read by partition durables: every
/// [`PURGE_EVERY_MS`] it reads their ack floors and purges the whole
/// stream below the lowest. (A first version purged each partition's
/// subjects below its own floor, filtered: with nats-server 2.12.8 one
/// durable then never got messages of its partition that were still
/// stored. Unfiltered, below every floor, nothing unread is touched.)
/// Runs until `stop`; the purges it made.
async fn janitor(
    s: stream::Stream,
    durables: Vec<String>,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    let mut purges = 0;
    while !stop.is_cancelled() {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(PURGE_EVERY_MS)) => {}
        }
        let mut floor = u64::MAX;
        for name in &durables {
            let info = s
                .consumer_info(name)
                .await
                .map_err(|e| anyhow::anyhow!("consumer {name}: {e}"))?;
            floor = floor.min(info.ack_floor.stream_sequence);
        }
        if floor > 0 && floor != u64::MAX {
            s.purge()
                .sequence(floor + 1)
                .await
                .map_err(|e| anyhow::anyhow!("purge: {e}"))?;
            purges += 1;
        }
    }
    Ok(purges)
}

/// The system bench's ceiling, in this run: two publishes and two consume
/// + acks per position, limits retention, one header.
async fn ceiling(cluster: &Cluster, a: &Args) -> anyhow::Result<Measured> {
    let js = jetstream::new(cluster.connect(Role::Admin).await?);
    let s = stream_of(&js, "BENCH", "bench.>", stream::RetentionPolicy::Limits).await?;
    let c = durable(&s, "c", "bench.>", consumer::AckPolicy::Explicit).await?;
    let mut meter = Meter::new(cluster);
    let frames: Vec<_> = (0..a.records)
        .map(|i| {
            let mut h = HeaderMap::new();
            h.insert("Nats-Msg-Id", format!("c-{i}").as_str());
            (
                format!("bench.d{}", i % DEVICES),
                h,
                Bytes::from(vec![0x5a; FRAME_BYTES]),
            )
        })
        .collect();
    let (t_publish, ()) = meter.stage(publish_all(&js, frames)).await?;
    let (t_consume, ()) = meter
        .stage(async {
            let mut msgs = pulls(&c).await?;
            for _ in 0..a.records {
                let m = next(&mut msgs, "BENCH").await?;
                m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            Ok(())
        })
        .await?;
    // Two of each per position.
    Ok(Measured {
        stages: [t_publish * 2, t_consume * 2, Duration::ZERO],
        servers: meter.used * 2,
        client: meter.client * 2,
        records: a.records,
        parsed_messages: a.records,
        conflicts: 0,
        purges: 0,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let sets: [(&str, &str); 6] = [
        ("ceiling", "2 publishes + 2 consume/acks, limits"),
        (
            "per record (today)",
            "interest; message, ack, entry read + CAS per record",
        ),
        ("per record, no entry", "the same without the entry"),
        (
            "partition batches",
            "limits + purge; message and AckAll per batch; CAS per device",
        ),
        (
            "partition batches, atomic",
            "the same, a message's entries as one atomic batch",
        ),
        (
            "partition batches, no entry",
            "the same without the entry write",
        ),
    ];
    if a.full {
        println!();
        println!(
            "op-set benchmark: 3-node R3 cluster, {} one-record frames of {FRAME_BYTES} B from {DEVICES} devices, batches of up to {}, {} partitions",
            a.records, a.batch, a.partitions
        );
        println!(
            "| {:<28} | {:>10} | {:>9} | {:>9} | {:>13} | {:>9} | note",
            "op set", "records/s", "/ceiling", "servers", "servers/ceil.", "client"
        );
    }
    let mut base: Option<Measured> = None;
    for (k, (name, note)) in sets.iter().enumerate() {
        // A fresh cluster each: no op set pays for another's leftovers.
        let cluster = Cluster::start().await?;
        let m = match k {
            0 => ceiling(&cluster, &a).await?,
            1 => per_record(&cluster, &a, true).await?,
            2 => per_record(&cluster, &a, false).await?,
            3 => batched(&cluster, &a, Entries::PerDevice).await?,
            4 => batched(&cluster, &a, Entries::AtomicBatch).await?,
            _ => batched(&cluster, &a, Entries::None).await?,
        };
        drop(cluster);
        anyhow::ensure!(
            m.records == a.records && m.parsed_messages > 0,
            "{name}: records lost"
        );
        let b = base.get_or_insert_with(|| m.clone());
        if a.full {
            println!(
                "| {:<28} | {:>10.0} | {:>9.2} | {:>7.0}µs | {:>13.2} | {:>7.0}µs | {note}; {} PARSED messages, {} stale revisions, {} purges; stages {:.2}/{:.2}/{:.2} s",
                name,
                m.rate(),
                m.rate() / b.rate(),
                m.per_record(m.servers),
                b.per_record(b.servers) / m.per_record(m.servers),
                m.per_record(m.client),
                m.parsed_messages,
                m.conflicts,
                m.purges,
                m.stages[0].as_secs_f64(),
                m.stages[1].as_secs_f64(),
                m.stages[2].as_secs_f64(),
            );
        }
    }
    if !a.full {
        println!("op-set bench smoke run ok (run `just bench` for figures)");
    }
    Ok(())
}
