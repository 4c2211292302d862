//! `just bench`, system part: what the three-node cluster itself can do, on
//! this machine, measured on real nats-server processes started by the e2e
//! harness. Prints one table; see docs/performance.md for the figures and
//! how each is computed.
//!
//! * ceiling: pipelined R3 publishes with a `Nats-Msg-Id` (as the gateway and
//!   the hamsters publish) and consume + ack through a durable pull consumer
//!   (as the workers consume), with messages the size of real frames;
//! * failover: the longest gap between two acknowledged publishes while the
//!   stream's leader node is killed with -9, and while it is put in lame-duck
//!   mode (a graceful stop);
//! * the cost of `sync_interval: always` against the chosen setting;
//! * the pipeline: the whole system as processes (three gateways, hamsters,
//!   monkeys) driven by `fleetbus simulate` as fast as the gateways accept,
//!   end-to-end records/s and latency from a device's send until the
//!   cluster stored the monkey's write of the device's latest position
//!   (with the first stage, until the gateway's ack, on its own); then
//!   latency at half that rate. The last line is `pipeline/ceiling`.
//!   `--trace` prints the workers' queues every second meanwhile;
//!   `--hamsters N`, `--monkeys N` set the worker processes (default 2,
//!   2; each runs a worker per partition and owns its share of them);
//! * record identities: the same max-rate run with the hamsters remembering
//!   record identities (the default) and with `deduplicate_records = false`,
//!   alternated twice, for what remembering costs per record
//!   (`--only-identity` runs just this).
//!
//! `cargo test --all-targets` runs this in test mode (no `--bench` argument):
//! a small smoke run of the ceiling and of an 80-record pipeline, so the
//! benchmark cannot rot.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use fleetbus_e2e::bench::Argv;
use fleetbus_e2e::{cpu, Cluster, ClusterOptions, Proc, Role, System, SystemOptions};
use fleetbus_wire::names;
use futures::StreamExt;

const STREAM: &str = "BENCH";
/// In-flight publishes per publisher (the gateway pipelines per connection
/// and has many connections, so the cluster sees a deep pipeline).
const WINDOW: usize = 512;

struct Args {
    full: bool,
    /// Only the pipeline part, against a ceiling measured before.
    only_pipeline: bool,
    /// Only the record-identity comparison.
    only_identity: bool,
    ceiling: Option<f64>,
    sample_every: usize,
    /// Only one run, paced at this many records per second.
    rate: Option<f64>,
    /// Print the hamsters' and monkeys' queues every second.
    trace: bool,
    /// The simulator keeps its queue in a SQLite file, as in the fault
    /// tests, instead of in memory.
    queue_file: bool,
    /// Hamster and monkey processes, and workers in each.
    hamsters: usize,
    monkeys: usize,
    /// Records of the max-rate pipeline run (400 devices share them).
    pipeline_records: usize,
    messages: usize,
    frame_bytes: usize,
}

fn args() -> anyhow::Result<Args> {
    let argv = Argv::from_env();
    let full = argv.full();
    Ok(Args {
        full,
        only_pipeline: argv.flag("--only-pipeline"),
        only_identity: argv.flag("--only-identity"),
        trace: argv.flag("--trace"),
        queue_file: argv.flag("--queue-file"),
        hamsters: argv.value("--hamsters")?.unwrap_or(2),
        monkeys: argv.value("--monkeys")?.unwrap_or(2),
        ceiling: argv.value::<f64>("--ceiling")?,
        sample_every: argv.value("--sample-every")?.unwrap_or(4).max(1),
        rate: argv.value::<f64>("--rate")?,
        pipeline_records: argv.value("--pipeline-records")?.unwrap_or(if full {
            40_000
        } else {
            400
        }),
        messages: argv
            .value("--messages")?
            .unwrap_or(if full { 100_000 } else { 500 }),
        // A Teltonika Codec 8E frame with one FMB record is ~100 bytes, a GT06
        // location 39; 10-record frames ~930. 128 is a typical frame.
        frame_bytes: argv.value("--frame-bytes")?.unwrap_or(128),
    })
}

async fn bench_stream(js: &jetstream::Context) -> anyhow::Result<stream::Stream> {
    let _ = js.delete_stream(STREAM).await;
    js.create_stream(stream::Config {
        name: STREAM.into(),
        subjects: vec!["bench.>".into()],
        num_replicas: 3,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::New,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .context("cannot create the bench stream")
}

/// Publishes `n` messages with at most [`WINDOW`] in flight; returns msgs/s.
async fn publish_rate(
    js: &jetstream::Context,
    n: usize,
    size: usize,
    run: &str,
) -> anyhow::Result<f64> {
    let payload = bytes::Bytes::from(vec![0x5a; size]);
    let message = |i: usize| {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{run}-{i}").as_str());
        (format!("bench.d{}", i % 1000), headers, payload.clone())
    };
    // A message whose publish or PubAck failed (a young cluster moving a
    // leader: "no responders") is sent again with the same id until stored,
    // as the gateway does; the time it takes counts.
    let stored = |i: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (subject, headers, body) = message(i);
            let error = match js.publish_with_headers(subject, headers, body).await {
                Ok(ack) => match ack.await {
                    Ok(_) => return Ok(()),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            anyhow::ensure!(Instant::now() < deadline, "message {i} not stored: {error}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    let start = Instant::now();
    for i in 0..n {
        let (subject, headers, body) = message(i);
        match js.publish_with_headers(subject, headers, body).await {
            Ok(ack) => in_flight.push_back((i, ack)),
            Err(_) => stored(i).await?,
        }
        if in_flight.len() >= WINDOW {
            let (i, ack) = in_flight.pop_front().expect("non-empty");
            if ack.await.is_err() {
                stored(i).await?;
            }
        }
    }
    for (i, ack) in in_flight {
        if ack.await.is_err() {
            stored(i).await?;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Consumes and acks `n` messages through a new durable pull consumer;
/// returns msgs/s.
async fn consume_rate(s: &stream::Stream, n: usize, name: &str) -> anyhow::Result<f64> {
    let c = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await?;
    // A young cluster may not have elected the new consumer's leader yet,
    // and a pull then gets "no responders": wait for the leader, and take
    // a failed pull as transient (a new pull stream) within a bound.
    let mut c = c;
    fleetbus_e2e::bench::consumer_leader(&mut c, name).await?;
    let pull = || async { c.stream().max_messages_per_batch(500).messages().await };
    let mut messages = pull().await?;
    let start = Instant::now();
    let mut got = 0;
    while got < n {
        match messages.next().await.context("consumer stream ended")? {
            Ok(m) => {
                m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                got += 1;
            }
            Err(e) => {
                anyhow::ensure!(
                    start.elapsed() < Duration::from_secs(120),
                    "pulls still failing after 120 s: {e}"
                );
                eprintln!("a pull failed ({e}); pulling again");
                tokio::time::sleep(Duration::from_millis(100)).await;
                messages = pull().await?;
            }
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Publishes one message every `every` for `total`, retrying each with the
/// same id until stored, and applies `fault` after `fault_at`. Returns the
/// longest time between two consecutive successful PubAcks.
async fn failover_gap(
    cluster: &mut Cluster,
    fault_at: Duration,
    total: Duration,
    graceful: bool,
) -> anyhow::Result<Duration> {
    let mut js = jetstream::new(cluster.connect(Role::Admin).await?);
    js.set_timeout(Duration::from_millis(500));
    bench_stream(&js).await?;
    cluster.wait_stream_ready(STREAM).await?;
    let leader = cluster.stream_leader(STREAM).await?;
    let victim = cluster
        .node_index(&leader)
        .context("leader is not a node")?;
    let publisher = tokio::spawn(async move {
        let start = Instant::now();
        let mut last_ok = Instant::now();
        let mut worst = Duration::ZERO;
        let mut i = 0u64;
        while start.elapsed() < total {
            let id = format!("gap-{i}");
            loop {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", id.as_str());
                let stored = match js
                    .publish_with_headers("bench.gap", headers, "x".into())
                    .await
                {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if stored {
                    worst = worst.max(last_ok.elapsed());
                    last_ok = Instant::now();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worst
    });
    tokio::time::sleep(fault_at).await;
    if graceful {
        cluster.lame_duck(victim).await;
    } else {
        cluster.kill(victim);
    }
    let worst = publisher.await?;
    cluster.start_node(victim)?;
    cluster.wait_ready().await?;
    Ok(worst)
}

struct Ceiling {
    publish: f64,
    consume: f64,
    /// CPU per position, microseconds: (the servers', the client's) for
    /// two publishes and two consume + acks.
    cpu: (f64, f64),
}

impl Ceiling {
    /// Positions per second the cluster can carry: each costs two replicated
    /// publishes (RAW, PARSED) and two consume+acks (hamster, monkey), all
    /// on the same three nodes, so the per-position time is the sum.
    fn positions_per_second(&self) -> f64 {
        1.0 / (2.0 / self.publish + 2.0 / self.consume)
    }
}

async fn ceiling(cluster: &Cluster, a: &Args, run: &str) -> anyhow::Result<Ceiling> {
    let js = jetstream::new(cluster.connect(Role::Admin).await?);
    let s = bench_stream(&js).await?;
    cluster.wait_stream_ready(STREAM).await?;
    let kinds = [("servers", servers(cluster))];
    let t0 = cpu::Snapshot::take(&kinds);
    let publish = publish_rate(&js, a.messages, a.frame_bytes, run).await?;
    let t1 = cpu::Snapshot::take(&kinds);
    let consume = consume_rate(&s, a.messages, &format!("c-{run}")).await?;
    let t2 = cpu::Snapshot::take(&kinds);
    // Microseconds per message of each step, twice each per position.
    let per_position = |used: Duration| 2.0 * used.as_secs_f64() * 1e6 / a.messages as f64;
    let servers_used = |later: &cpu::Snapshot, earlier| later.since(earlier)["servers"];
    Ok(Ceiling {
        publish,
        consume,
        cpu: (
            per_position(servers_used(&t1, &t0) + servers_used(&t2, &t1)),
            per_position(t2.this_process_since(&t0)),
        ),
    })
}

/// The process ids of the cluster's running nodes.
fn servers(cluster: &Cluster) -> Vec<u32> {
    (0..cluster.len()).filter_map(|i| cluster.pid(i)).collect()
}

/// The processes of the running system, by kind (the simulator is
/// accounted when it has exited, as a reaped child of the bench).
fn process_kinds(sys: &System) -> Vec<(&'static str, Vec<u32>)> {
    let pids = |procs: &mut dyn Iterator<Item = &Proc>| procs.filter_map(Proc::pid).collect();
    vec![
        ("servers", servers(&sys.cluster)),
        ("gateways", pids(&mut sys.gateways.iter().map(|g| &g.proc))),
        ("hamsters", pids(&mut sys.hamsters.iter())),
        ("monkeys", pids(&mut sys.monkeys.iter())),
    ]
}

/// The machine's cores, as the scheduler sees them.
fn cores_of_machine() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn row(what: &str, value: String, note: &str) {
    println!("| {what:<44} | {value:>16} | {note}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    if a.only_identity {
        println!("| {:<44} | {:>16} | note", "measure", "value");
        return identity_section(&a).await;
    }
    if a.only_pipeline {
        let ceiling = a
            .ceiling
            .context("--only-pipeline needs --ceiling <positions/s> from a full run")?;
        println!("| {:<44} | {:>16} | note", "measure", "value");
        return pipeline_section(&a, ceiling, None).await;
    }
    let cluster = Cluster::start().await?;
    let base = ceiling(&cluster, &a, "base").await?;
    if !a.full {
        assert!(base.publish > 0.0 && base.consume > 0.0);
        drop(cluster);
        smoke_pipeline(&a).await?;
        println!("system bench smoke run ok (run `just bench` for figures)");
        return Ok(());
    }
    println!();
    println!(
        "system benchmark: 3-node R3 cluster, {} messages of {} bytes",
        a.messages, a.frame_bytes
    );
    println!("| {:<44} | {:>16} | note", "measure", "value");
    row(
        "R3 publish, pipelined (msgs/s)",
        format!("{:.0}", base.publish),
        "sync_interval 1s",
    );
    row(
        "consume + ack, durable pull (msgs/s)",
        format!("{:.0}", base.consume),
        "",
    );
    row(
        "ceiling (positions/s)",
        format!("{:.0}", base.positions_per_second()),
        "1 / (2/publish + 2/consume)",
    );
    row(
        "CPU per position at the ceiling (µs)",
        format!("{:.0}", base.cpu.0 + base.cpu.1),
        &format!(
            "servers {:.0}, client {:.0}; two publishes and two consume + acks",
            base.cpu.0, base.cpu.1
        ),
    );
    drop(cluster);

    let always = Cluster::start_with(ClusterOptions {
        sync_interval: "always".into(),
        ..Default::default()
    })
    .await?;
    let fsync = ceiling(&always, &a, "always").await?;
    row(
        "R3 publish, sync_interval always (msgs/s)",
        format!("{:.0}", fsync.publish),
        "",
    );
    row(
        "publish always / 1s",
        format!("{:.2}", fsync.publish / base.publish),
        "the cost of fsync before every PubAck",
    );
    drop(always);

    let mut cluster = Cluster::start().await?;
    let total = Duration::from_secs(20);
    let hard = failover_gap(&mut cluster, Duration::from_secs(3), total, false).await?;
    row(
        "failover gap, leader kill -9 (s)",
        format!("{:.2}", hard.as_secs_f64()),
        "longest time without a PubAck",
    );
    let soft = failover_gap(
        &mut cluster,
        Duration::from_secs(3),
        Duration::from_secs(10),
        true,
    )
    .await?;
    row(
        "failover gap, leader lame duck (s)",
        format!("{:.2}", soft.as_secs_f64()),
        "graceful stop",
    );
    drop(cluster);
    pipeline_section(&a, base.positions_per_second(), Some(base.cpu)).await?;
    identity_section(&a).await
}

/// What remembering record identities costs: the max-rate run (one record
/// per frame, so one claim per record: the most it can cost) with the
/// hamsters deduplicating and without, alternated twice so that a noisy
/// neighbour affects both alike; rates and CPU per record of each.
async fn identity_section(a: &Args) -> anyhow::Result<()> {
    let per_record = (a.pipeline_records / 400) as u64;
    let mut runs: Vec<(bool, Pipeline)> = Vec::new();
    for dedup in [true, false, true, false] {
        let sys = System::start(SystemOptions {
            hamsters: a.hamsters,
            monkeys: a.monkeys,
            config_toml: format!("[hamster]\ndeduplicate_records = {dedup}\n"),
            ..SystemOptions::default()
        })
        .await?;
        let run = pipeline(&sys, a, "max", 400, 20, per_record, 1).await?;
        runs.push((dedup, run));
    }
    let summary = |dedup: bool| {
        let of: Vec<&Pipeline> = runs
            .iter()
            .filter(|(d, _)| *d == dedup)
            .map(|(_, p)| p)
            .collect();
        let rate = of.iter().map(|p| p.rate()).sum::<f64>() / of.len() as f64;
        let cpu = |kind: &str| {
            of.iter()
                .map(|p| {
                    p.cpu_per_record()
                        .0
                        .iter()
                        .filter(|(k, _)| kind.is_empty() || k == kind)
                        .map(|(_, v)| v)
                        .sum::<f64>()
                })
                .sum::<f64>()
                / of.len() as f64
        };
        (rate, cpu(""), cpu("hamsters"), cpu("servers"))
    };
    let (on, off) = (summary(true), summary(false));
    for (name, (rate, total, hamsters, servers)) in [("remembering", on), ("not remembering", off)]
    {
        row(
            &format!("records/s, identities {name}"),
            format!("{rate:.0}"),
            &format!("mean of 2 runs; CPU per record {total:.0} µs (hamsters {hamsters:.0}, servers {servers:.0})"),
        );
    }
    row(
        "  remembering / not (records/s)",
        format!("{:.2}", on.0 / off.0),
        &format!(
            "CPU per record +{:.0} µs (hamsters +{:.0}, servers +{:.0}): one direct get (unless cached) and one KV write per frame",
            on.1 - off.1,
            on.2 - off.2,
            on.3 - off.3
        ),
    );
    Ok(())
}

/// A small pipeline run, in test mode, so the pipeline part of the bench
/// cannot rot either: every record counted, latencies sampled, CPU read.
async fn smoke_pipeline(a: &Args) -> anyhow::Result<()> {
    let sys = start_system(a).await?;
    let run = pipeline(&sys, a, "max", 40, 20, 2, 1).await?;
    anyhow::ensure!(run.records == 80, "{} of 80 records", run.records);
    anyhow::ensure!(!run.latencies.is_empty(), "no latency sampled");
    let (kinds, total) = run.cpu_per_record();
    let servers = kinds.iter().find(|(k, _)| k == "servers").map(|(_, v)| *v);
    anyhow::ensure!(
        servers.is_some_and(|v| v > 0.0) && total > 0.0,
        "CPU not measured: {kinds:?}"
    );
    Ok(())
}

async fn start_system(a: &Args) -> anyhow::Result<System> {
    System::start(SystemOptions {
        hamsters: a.hamsters,
        monkeys: a.monkeys,
        ..SystemOptions::default()
    })
    .await
}

/// The whole system under load, reported against `ceiling` (and its CPU
/// per position, the servers' and the client's, microseconds, when it was
/// measured in this run).
async fn pipeline_section(
    a: &Args,
    ceiling: f64,
    ceiling_cpu: Option<(f64, f64)>,
) -> anyhow::Result<()> {
    let sys = start_system(a).await?;
    if let Some(rate) = a.rate {
        return paced(&sys, a, "paced", rate).await;
    }
    // One record per frame: what most protocols send (GT06, H02, … carry
    // one fix per message), and the work per record the ceiling counts.
    let per_record = (a.pipeline_records / 400) as u64;
    let max = pipeline(&sys, a, "max", 400, 20, per_record, 1).await?;
    row(
        "pipeline, as fast as accepted (records/s)",
        format!("{:.0}", max.rate()),
        &format!(
            "{} records, 400 Teltonika devices, one per frame",
            max.records
        ),
    );
    max.latency_rows("at max rate");
    max.cpu_row("at max rate");
    if let Some((servers, client)) = ceiling_cpu {
        let (kinds, total) = max.cpu_per_record();
        let fleetbus: f64 = kinds
            .iter()
            .filter(|(k, _)| k != "servers")
            .map(|(_, v)| v)
            .sum();
        // On a machine both runs keep busy, the rates are in the inverse
        // ratio of the CPU each unit costs. Even if the servers did a
        // record's work as cheaply as a position at the ceiling, the rest
        // of the pipeline would still cost what it measured.
        row(
            "  CPU per record / per position at the ceiling",
            format!("{:.2}", total / (servers + client)),
            &format!(
                "with the servers at the ceiling's cost, the rest as measured: at most {:.2} of the ceiling",
                (servers + client) / (servers + fleetbus)
            ),
        );
        let servers_here = kinds
            .iter()
            .find(|(k, _)| k == "servers")
            .map_or(f64::NAN, |(_, v)| *v);
        // What the fleetbus processes cost, without the load generators.
        let services: f64 = kinds
            .iter()
            .filter(|(k, _)| ["gateways", "hamsters", "monkeys"].contains(&k.as_str()))
            .map(|(_, v)| v)
            .sum();
        row(
            "  server efficiency",
            format!("{:.2}", servers / servers_here),
            "servers' CPU per position at the ceiling / per pipeline record",
        );
        row(
            "  service efficiency",
            format!("{:.2}", client / services),
            "the ceiling client's CPU per position / gateways + hamsters + monkeys per record",
        );
    }
    // Trackers that batch (Teltonika, Ruptela, Meitrack) send their backlog
    // in frames of several records when acks come back slower than records
    // fall due; a frame is then one RAW and one PARSED message.
    let batched = pipeline(&sys, a, "batched", 400, 20, per_record, 25).await?;
    row(
        "  frames of up to 25 records (records/s)",
        format!("{:.0}", batched.rate()),
        &format!(
            "{} records in {} frames ({:.1} per frame): {:.2} of the ceiling at that frame size",
            batched.records,
            batched.frames,
            batched.records as f64 / batched.frames.max(1) as f64,
            batched.rate() / (ceiling * batched.records as f64 / batched.frames.max(1) as f64)
        ),
    );
    // Half the rate (the target), then a quarter (how latency
    // follows the load): the same fleet, records spaced further apart.
    for (name, share) in [("half", 2.0), ("quarter", 4.0)] {
        paced(&sys, a, name, max.rate() / share).await?;
    }
    // A fixed offer, the same on every machine and design: issue 17's
    // latency target is set at it.
    paced(&sys, a, "fixed", 2000.0).await?;
    println!("ceiling = {ceiling:.0} positions/s");
    println!("pipeline/ceiling = {:.2}", max.rate() / ceiling);
    Ok(())
}

/// A run of 400 devices offering `rate` records/s for about 15 s, one
/// record per frame, and its rows.
async fn paced(sys: &System, a: &Args, name: &str, rate: f64) -> anyhow::Result<()> {
    let interval = (400.0 / rate * 1000.0).max(1.0) as u64;
    let records = (rate * 15.0 / 400.0).max(5.0) as u64;
    let run = pipeline(sys, a, name, 400, interval, records, 1).await?;
    row(
        &format!("pipeline at {name} rate (records/s)"),
        format!("{:.0}", run.rate()),
        &format!("offered {:.0}/s", 400.0 * 1000.0 / interval as f64),
    );
    run.latency_rows(&format!("at {name} rate"));
    run.cpu_row(&format!("at {name} rate"));
    Ok(())
}

/// One pipeline run.
struct Pipeline {
    records: usize,
    /// Frames the records went in (a frame's records share their send time).
    frames: usize,
    elapsed: Duration,
    /// Send → latest position stored, milliseconds, sorted.
    latencies: Vec<f64>,
    /// Send → the gateway's ack (the frame stored in RAW), milliseconds, sorted.
    acked: Vec<f64>,
    /// CPU time each kind of process used during the run.
    cpu: BTreeMap<String, Duration>,
    /// The whole machine's busy CPU time during the run.
    machine_cpu: Duration,
}

impl Pipeline {
    fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }

    /// Microseconds of CPU per record, by kind of process, and in all.
    fn cpu_per_record(&self) -> (Vec<(String, f64)>, f64) {
        let per = |d: &Duration| d.as_secs_f64() * 1e6 / self.records.max(1) as f64;
        let kinds: Vec<(String, f64)> = self.cpu.iter().map(|(k, d)| (k.clone(), per(d))).collect();
        let total = kinds.iter().map(|(_, v)| v).sum();
        (kinds, total)
    }

    fn cpu_row(&self, when: &str) {
        let (kinds, total) = self.cpu_per_record();
        let parts: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
        let cores = self.machine_cpu.as_secs_f64() / self.elapsed.as_secs_f64();
        row(
            &format!("CPU per record {when} (µs)"),
            format!("{total:.0}"),
            &format!(
                "{}; machine busy {cores:.2} cores of {}",
                parts.join(", "),
                cores_of_machine()
            ),
        );
    }

    fn latency_rows(&self, when: &str) {
        for (name, p) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
            row(
                &format!("latency {name} {when} (ms)"),
                format!("{:.1}", percentile(&self.latencies, p)),
                &format!("{} samples", self.latencies.len()),
            );
        }
        for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
            row(
                &format!("  of which send → gateway ack, {name} (ms)"),
                format!("{:.1}", percentile(&self.acked, p)),
                &format!("{} samples", self.acked.len()),
            );
        }
    }
}

/// The `p` quantile of sorted `values` (NaN when empty).
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// Runs a fleet of `devices` sending `records` each, one every
/// `interval_ms`, through the whole system; returns the end-to-end rate
/// (until the monkeys acknowledged the last record) and the latencies:
/// from the simulator's send (its report) to the time the cluster stored
/// the monkey's write of the device's entry (the entry's own timestamp,
/// read by watching the `devices` bucket). A fix that a newer one of the
/// same device replaced before the write (the monkey writes a device's run
/// of fixes once) is not sampled.
async fn pipeline(
    sys: &System,
    a: &Args,
    name: &str,
    devices: usize,
    interval_ms: u64,
    records: u64,
    per_frame: usize,
) -> anyhow::Result<Pipeline> {
    use std::collections::HashMap;
    let fleet_no: u32 = match name {
        "max" => 101,
        "half" => 102,
        "quarter" => 103,
        _ => 104,
    };
    // Latency is sampled on every `sample_every`-th device: each watched
    // write is one more delivery for the servers, and watching the whole
    // fleet took 10-15 % of the rate the bench measures (2026-11-30). The
    // devices are alike and spread evenly over the interval, so a sample
    // of them has the fleet's latencies.
    let sampled: Vec<String> = (0..devices)
        .step_by(a.sample_every)
        .map(|i| fleetbus_services::simulate::imei(fleet_no, i))
        .collect();
    let js = jetstream::new(sys.cluster.connect(Role::Admin).await?);
    // The watcher's consumer, like any new consumer on a young cluster,
    // may need a few tries.
    let mut tries = 0;
    let mut watch = loop {
        let watch = async {
            let kv = js
                .get_key_value(names::DEVICES_BUCKET)
                .await
                .map_err(|e| e.to_string())?;
            kv.watch_many(sampled.iter())
                .await
                .map_err(|e| e.to_string())
        };
        match watch.await {
            Ok(w) => break w,
            Err::<_, String>(e) => {
                tries += 1;
                anyhow::ensure!(tries < 600, "cannot watch the devices bucket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    type Seen = Vec<(String, String, chrono::DateTime<chrono::Utc>)>;
    let seen: std::sync::Arc<std::sync::Mutex<Seen>> = Default::default();
    let watcher = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(entry)) = watch.next().await {
                let at = chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(
                    entry.created.unix_timestamp_nanos() as i64,
                );
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&entry.value) {
                    let p = &v["position"];
                    if let (Some(d), Some(f)) = (p["device_id"].as_str(), p["fix_time"].as_str()) {
                        seen.lock()
                            .unwrap()
                            .push((d.to_string(), f.to_string(), at));
                    }
                }
            }
        })
    };
    let mut fleet: Vec<String> = [
        "--devices",
        &devices.to_string(),
        "--records",
        &records.to_string(),
        "--interval-ms",
        &interval_ms.to_string(),
        "--per-frame",
        &per_frame.to_string(),
        "--protocols",
        "teltonika",
        "--fleet",
        &fleet_no.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !a.queue_file {
        // The load generator should take as little of the machine as it
        // can; it is never restarted here, so it needs no file.
        fleet.extend(["--queue".to_string(), ":memory:".to_string()]);
    }
    let args: Vec<&str> = fleet.iter().map(String::as_str).collect();
    let kinds = process_kinds(sys);
    let cpu_before = cpu::Snapshot::take(&kinds);
    let started = Instant::now();
    let tracer = a.trace.then(|| {
        let js = js.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut line = format!("{:>5.1}s", started.elapsed().as_secs_f64());
                for stage in names::Durable::ALL {
                    if let Ok((pending, unacked)) =
                        fleetbus_e2e::cluster::stage_backlog(&js, stage).await
                    {
                        line += &format!(
                            "  {}: pending {pending} ack_pending {unacked}",
                            stage.name()
                        );
                    }
                }
                eprintln!("{line}");
            }
        })
    });
    sys.register_fleet(name, &args).await?;
    let mut sim = Proc::start(sys.simulator(name, &args), sys.dir())?;
    let exit = sim.wait_exit(Duration::from_secs(1800)).await;
    anyhow::ensure!(
        exit.is_some_and(|e| e.success()),
        "simulator: {}",
        sim.log_tail(5)
    );
    // Done when the monkeys have acknowledged everything. An answer that
    // fails (a consumer leader moving) is asked again.
    loop {
        let backlog = (
            fleetbus_e2e::cluster::stage_backlog(&js, names::Durable::Monkeys).await,
            fleetbus_e2e::cluster::stage_backlog(&js, names::Durable::Hamsters).await,
        );
        if let (Ok((mp, mu)), Ok((hp, hu))) = backlog {
            if mp + mu + hp + hu == 0 {
                break;
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "pipeline never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    // The simulator has exited and was waited for: its CPU is in this
    // process's reaped-children time.
    let cpu_after = cpu::Snapshot::take(&kinds);
    let mut cpu = cpu_after.since(&cpu_before);
    cpu.insert(
        "simulator".into(),
        cpu_after.reaped_children_since(&cpu_before),
    );
    cpu.insert("bench".into(), cpu_after.this_process_since(&cpu_before));
    let machine_cpu = cpu_after.machine_since(&cpu_before);
    watcher.abort();
    if let Some(t) = tracer {
        t.abort();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let report = std::fs::read_to_string(sys.dir().join(format!("{name}.jsonl")))?;
    let mut sent: HashMap<(String, i64), chrono::DateTime<chrono::Utc>> = HashMap::new();
    let mut acked = Vec::new();
    let mut frames = std::collections::HashSet::new();
    for line in report.lines() {
        let r: serde_json::Value = serde_json::from_str(line)?;
        let fix: chrono::DateTime<chrono::Utc> = r["fix_time"].as_str().unwrap_or("").parse()?;
        let at: chrono::DateTime<chrono::Utc> = r["sent_at"].as_str().unwrap_or("").parse()?;
        let ack: chrono::DateTime<chrono::Utc> = r["acked_at"].as_str().unwrap_or("").parse()?;
        acked.push((ack - at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        frames.insert((r["device_id"].as_str().unwrap_or("").to_string(), at));
        sent.insert(
            (
                r["device_id"].as_str().unwrap_or("").to_string(),
                fix.timestamp(),
            ),
            at,
        );
    }
    let mut latencies: Vec<f64> = seen
        .iter()
        .filter_map(|(d, f, at)| {
            let fix: chrono::DateTime<chrono::Utc> = f.parse().ok()?;
            let s = sent.get(&(d.clone(), fix.timestamp()))?;
            Some((*at - *s).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    acked.sort_by(|a, b| a.total_cmp(b));
    Ok(Pipeline {
        records: sent.len(),
        frames: frames.len(),
        elapsed,
        latencies,
        acked,
        cpu,
        machine_cpu,
    })
}
