//! Hamsters against a real three-node cluster: in-process workers under a
//! supervisor, restarted after a panic mid-message with nothing lost or
//! doubled, a frame that crashes every worker and one whose workers all died
//! holding it sent to DEAD; `fleetbus hamster` processes that share the
//! work, register, survive kill -9 of one of them, dead-letter garbage and
//! give up with status 1 when their workers keep failing; a backlog of
//! re-packed frames claimed in runs, each record stored once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use async_nats::HeaderMap;
use bytes::Bytes;
use common::streams::{header_string as header, messages, stream_count, unprocessed, wait_counts};
use common::workers::{
    partitions, position, publish_stored, pull_workers, setup, shut_down, supervise, worker, CONFIG,
};
use common::{registered, wait_registered, WAIT};
use fleetbus_actors::hamster::Hamster;
use fleetbus_actors::{Gate, PullConfig, PullWorkers, Stats, SupervisorConfig};
use fleetbus_codec::teltonika::encode::codec8;
use fleetbus_e2e::{wait_for, Cluster, Proc, Role, Spec};
use fleetbus_services::topology::Settings;
use fleetbus_wire::headers;
use fleetbus_wire::ids::{parsed_frame_msg_id, parsed_msg_id, raw_msg_id};
use fleetbus_wire::names::{self, raw_subject, Durable};
use fleetbus_wire::parsed::read_records;
use futures::StreamExt;
use serde_json::Value;

/// A Codec 8 frame with two fixes, as a device sends it (`n` makes it unique).
fn frame(device: &str, n: u32) -> Bytes {
    let at = |k: u32| {
        let mut p = position(device, 0);
        p.fix_time += chrono::Duration::seconds(i64::from(2 * n + k));
        p
    };
    codec8(&[at(0), at(1)]).unwrap()
}

/// Teltonika frames `frame(device(n), n)` for every `n` in `ns`, as
/// [`publish_raw`] takes them.
fn teltonika_frames(
    ns: Range<u32>,
    device: impl Fn(u32) -> String,
) -> Vec<(String, String, Bytes)> {
    ns.map(|n| {
        let d = device(n);
        let f = frame(&d, n);
        ("teltonika".to_string(), d, f)
    })
    .collect()
}

/// Publishes frames as the gateway does (subject, headers, message id),
/// waiting for every PubAck (pipelined, then [`publish_stored`] for any that
/// failed). Returns the RAW ids.
async fn publish_raw(js: &jetstream::Context, frames: &[(String, String, Bytes)]) -> Vec<String> {
    let message = |(protocol, device, frame): &(String, String, Bytes)| {
        let id = raw_msg_id(protocol, device, frame);
        let h = common::fixes::gateway_headers(protocol, device, frame, "2024-05-01T12:00:00.000Z");
        (id, raw_subject(protocol, device), h, frame.clone())
    };
    let publish = |(_, subject, h, frame): &(String, String, HeaderMap, Bytes)| {
        js.publish_with_headers(subject.clone(), h.clone(), frame.clone())
    };
    let mut ids = Vec::new();
    // At most 256 unacknowledged publishes at a time.
    for chunk in frames.chunks(256) {
        let messages: Vec<_> = chunk.iter().map(message).collect();
        let mut acks = Vec::new();
        for m in &messages {
            acks.push(publish(m).await);
        }
        for (m, ack) in messages.iter().zip(acks) {
            let stored = match ack {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            };
            if !stored {
                publish_stored(js, &m.1, m.2.clone(), m.3.clone()).await;
            }
            ids.push(m.0.clone());
        }
    }
    ids
}

/// Takes the one message waiting in one of the partitions `consumers`
/// `times` times without finishing it (a nak stands for a worker that died
/// holding it), as if every worker that took it had died; then lets go of
/// the partition, as a stopping worker does.
async fn deliver_unfinished(js: &jetstream::Context, consumers: &[PullConsumer], times: i64) {
    for consumer in consumers {
        let info = consumer.cached_info();
        let mut pull = consumer
            .stream()
            .group(names::OWNER_GROUP)
            .max_messages_per_batch(1)
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .unwrap();
        let mut taken = 0;
        while taken < times {
            match tokio::time::timeout(Duration::from_secs(3), pull.next()).await {
                Ok(Some(Ok(msg))) => {
                    msg.ack_with(AckKind::Nak(None)).await.unwrap();
                    taken += 1;
                }
                _ => break,
            }
        }
        drop(pull);
        if taken > 0 {
            assert_eq!(taken, times, "{}: delivered only {taken} times", info.name);
            fleetbus_actors::worker::unpin(js, &info.stream_name, &info.name)
                .await
                .unwrap();
            return;
        }
    }
    panic!("no message waiting in any partition");
}

/// The records in PARSED by their ids (`<raw id>#<i>`), counted: every
/// message is an array (`Fleetbus-Records: n`); one of a frame's records
/// is that record's id, a frame's n records stand for `<raw id>#0` …
/// `<raw id>#n-1` and must say so in their message's id.
async fn record_ids_in_parsed(cluster: &Cluster) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for m in messages(cluster, names::PARSED).await {
        let id = header(&m, headers::MSG_ID);
        let (records, array) = read_records(&m.payload).unwrap();
        assert!(array, "{id}: PARSED holds arrays");
        let n: usize = header(&m, headers::RECORDS).parse().unwrap();
        assert_eq!(records.len(), n, "{id}: {n} records");
        if n == 1 {
            *ids.entry(id).or_default() += 1;
        } else {
            let raw = header(&m, headers::RAW_ID);
            assert_eq!(id, parsed_frame_msg_id(&raw, n));
            for i in 0..n {
                *ids.entry(parsed_msg_id(&raw, i)).or_default() += 1;
            }
        }
    }
    ids
}

/// In-process hamster workers as a hamster process runs them (small
/// batches, short pull waits, the test's delivery policy).
fn hamster_workers(
    consumers: &[PullConsumer],
    handler: Hamster,
    stats: &Arc<Stats>,
    settings: &Settings,
    gate: &Arc<Gate>,
) -> PullWorkers<Hamster> {
    let config = PullConfig {
        batch: 8,
        ..PullConfig::default()
    };
    pull_workers(
        consumers.to_vec(),
        handler,
        stats,
        config,
        &settings.hamsters,
        gate,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_panics_mid_message_is_restarted_and_nothing_is_lost_or_doubled() {
    let t0 = Instant::now();
    let (_dir, _, settings, cluster, admin, _) = setup().await;

    // 20 good frames (two records each) and one that crashes every worker.
    let mut frames = teltonika_frames(0..20, |i| format!("3563070424{i:05}"));
    frames.push(("teltonika".into(), "poison".into(), frame("poison", 7)));
    let gateway = common::js(&cluster, Role::Gateway).await;
    let raw_ids = publish_raw(&gateway, &frames).await;

    // A hamster process's insides, in-process, with a fault injected after
    // the records are stored and before the frame is acknowledged, and a
    // frame whose parsing crashes every hamster.
    let client = cluster.connect(Role::Hamster).await.unwrap();
    let js = jetstream::new(client.clone());
    let consumers = partitions(&js, Durable::Hamsters, &settings).await;
    let stats = Arc::new(Stats::default());
    let crashed = Arc::new(AtomicBool::new(false));
    let victim = frames[5].1.clone();
    let hook = {
        let crashed = crashed.clone();
        Arc::new(move |msg: &jetstream::Message| {
            let device = msg.headers.as_ref().unwrap().get(headers::DEVICE).unwrap();
            if device.as_str() == victim && !crashed.swap(true, Ordering::SeqCst) {
                panic!("injected: crash after publishing, before the ack");
            }
        })
    };
    let poison = Arc::new(|msg: &jetstream::Message| {
        let device = msg.headers.as_ref().unwrap().get(headers::DEVICE).unwrap();
        if device.as_str() == "poison" {
            panic!("injected: this frame crashes every hamster");
        }
    });
    let handler = Hamster::new(js.clone(), stats.clone(), None)
        .with_after_publish(hook)
        .with_before_parse(poison);
    let gate = Gate::new();
    let mut supervisor = supervise(
        hamster_workers(&consumers, handler, &stats, &settings, &gate),
        SupervisorConfig {
            backoff_min_ms: 20,
            ..SupervisorConfig::default()
        },
    )
    .await;

    // Every frame ends up parsed (or dead), RAW is empty.
    wait_counts(&admin, "RAW drained", &[(names::RAW, 0), (names::DEAD, 1)]).await;
    assert!(crashed.load(Ordering::SeqCst), "the fault was injected");
    let parsed = record_ids_in_parsed(&cluster).await;
    // Every record of every frame but the poison one (the victim's
    // redelivery is recognised as published: its ack alone was lost).
    let expected: BTreeSet<String> = raw_ids[..20]
        .iter()
        .flat_map(|id| [parsed_msg_id(id, 0), parsed_msg_id(id, 1)])
        .collect();
    assert_eq!(
        parsed.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "every record of every frame"
    );
    assert!(
        parsed.values().all(|&n| n == 1),
        "a record stored twice: {parsed:?}"
    );
    // The poison frame: twice a crash, then parsed alone, where its panic
    // is caught and it goes to DEAD.
    let dead = messages(&cluster, names::DEAD).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].subject.as_str(), "dead.raw.teltonika.poison");
    assert_eq!(header(&dead[0], headers::DEAD_STAGE), "hamster");
    assert_eq!(header(&dead[0], headers::DEAD_KIND), "crashed");
    assert_eq!(header(&dead[0], headers::DEAD_DELIVERIES), "3");
    let reason = header(&dead[0], headers::DEAD_REASON);
    assert!(
        reason.contains("delivered 3 times") && reason.contains("this frame crashes every hamster"),
        "{reason}"
    );
    assert_eq!(
        header(&dead[0], headers::DEAD_MSG_ID),
        raw_ids[20],
        "its original id, for a replay"
    );
    assert_eq!(dead[0].payload, frames[20].2, "the original frame");
    let s = stats.snapshot();
    assert_eq!(
        s.restarts, 3,
        "the victim once, the poison frame twice: {s:?}"
    );
    assert_eq!(s.dead, 1, "{s:?}");
    assert!(supervisor.exit().is_none(), "the supervisor kept going");

    // Graceful stop, then a frame whose workers all died holding it more
    // than give_up_after times: DEAD unparsed, as one that kills processes.
    gate.stop();
    shut_down(&mut supervisor).await;
    publish_raw(
        &gateway,
        &[(
            "teltonika".into(),
            "exhausted".into(),
            frame("exhausted", 1),
        )],
    )
    .await;
    deliver_unfinished(&js, &consumers, 4).await;
    let handler = Hamster::new(js.clone(), stats.clone(), None);
    let hamsters = hamster_workers(&consumers, handler, &stats, &settings, &Gate::new());
    let mut again = supervise(hamsters, SupervisorConfig::default()).await;
    wait_counts(
        &admin,
        "RAW empty again",
        &[(names::RAW, 0), (names::DEAD, 2)],
    )
    .await;
    let moved = messages(&cluster, names::DEAD)
        .await
        .into_iter()
        .find(|m| m.subject.as_str() == "dead.raw.teltonika.exhausted")
        .expect("the exhausted frame in DEAD");
    assert_eq!(header(&moved, headers::DEAD_KIND), "exhausted");
    assert_eq!(header(&moved, headers::DEAD_DELIVERIES), "5");
    shut_down(&mut again).await;
    drop(client);
    eprintln!("in-process hamster test: {:?}", t0.elapsed());
}

/// `$SRV.STATS.<name>` replies: instance id → its live stats.
/// Stops at `expect` replies, or after 500 ms of silence.
async fn live_stats(
    client: &async_nats::Client,
    name: &str,
    expect: usize,
) -> BTreeMap<String, Value> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(format!("$SRV.STATS.{name}"), inbox, "".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut out = BTreeMap::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
        let v: Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
        let data = v["endpoints"][0]["data"].clone();
        out.insert(v["id"].as_str().unwrap_or_default().to_string(), data);
        if out.len() >= expect {
            break;
        }
    }
    out
}

/// `hamster-<x>` with small batches: a backlog lasts long enough to kill
/// one mid-way.
fn batching_hamster(cluster: &Cluster, name: &str, config: &Path) -> Spec {
    worker(cluster, Role::Hamster, name, config, &[]).env("FLEETBUS_HAMSTER__PULL__BATCH", "16")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hamster_processes_share_the_work_survive_kill_9_and_dead_letter_garbage() {
    let t0 = Instant::now();
    let (dir, config) = common::config_file(CONFIG);
    let cluster = Cluster::start().await.unwrap();
    let admin_client = cluster.connect(Role::Admin).await.unwrap();
    let admin = jetstream::new(admin_client.clone());
    // The operator provisions; a hamster only checks what it uses is there.
    let settings = fleetbus_services::topology::Settings::load(Some(&config)).unwrap();
    common::provision(&admin, &settings).await;
    common::workers::sweeping(&cluster).await;
    let mut a = Proc::start(batching_hamster(&cluster, "hamster-a", &config), dir.path()).unwrap();
    wait_registered(&cluster, "hamster", 1).await;

    // Garbage and an unknown protocol go to DEAD, with their reasons, and
    // do not hold up the frames behind them.
    let gateway = common::js(&cluster, Role::Gateway).await;
    let mut frames = vec![
        (
            "teltonika".to_string(),
            "garbage".to_string(),
            Bytes::from_static(b"\x00\x00\x00\x00\x00\x00\x00\x10not a frame"),
        ),
        ("nosuch".into(), "dev1".into(), Bytes::from_static(b"hello")),
    ];
    frames.push((
        "teltonika".into(),
        "after-garbage".into(),
        frame("after-garbage", 1),
    ));
    let first = publish_raw(&gateway, &frames).await;
    wait_counts(
        &admin,
        "garbage dead, good frame parsed",
        // The good frame's two records, in one message.
        &[(names::DEAD, 2), (names::PARSED, 1)],
    )
    .await;
    let dead = messages(&cluster, names::DEAD).await;
    let reasons: BTreeMap<String, String> = dead
        .iter()
        .map(|m| (m.subject.to_string(), header(m, headers::DEAD_REASON)))
        .collect();
    assert!(
        reasons["dead.raw.teltonika.garbage"].contains("teltonika parse error"),
        "{reasons:?}"
    );
    assert!(
        reasons["dead.raw.nosuch.dev1"].contains("unknown protocol"),
        "{reasons:?}"
    );

    // SIGTERM: it finishes, deregisters and exits 0.
    common::stop(&mut a).await;
    assert!(a.log().contains("Stopped."), "{}", a.log_tail(20));
    wait_registered(&cluster, "hamster", 0).await;

    // A backlog while no hamster runs.
    let fleet = |i: u32| format!("86{:013}", i % 300);
    let load_ids = publish_raw(&gateway, &teltonika_frames(0..4000, fleet)).await;

    // Two processes, each joining with nothing but the cluster and its
    // login; both take a share of the work.
    a.restart().unwrap();
    let mut b = Proc::start(batching_hamster(&cluster, "hamster-b", &config), dir.path()).unwrap();
    let pids: BTreeSet<String> = [a.pid().unwrap(), b.pid().unwrap()]
        .iter()
        .map(u32::to_string)
        .collect();
    let ids_by_pid = wait_for("both hamsters in fleetbus status", WAIT, || async {
        let workers = registered(&cluster, "hamster").await;
        let seen: BTreeMap<String, String> = workers
            .iter()
            .map(|w| {
                (
                    w["metadata"]["pid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    w["id"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let meta_ok = workers
            .iter()
            .all(|w| w["metadata"]["concurrency"] == "2" && w["metadata"]["host"].is_string());
        // (concurrency: one worker per partition, two partitions here.)
        Ok((seen.keys().cloned().collect::<BTreeSet<_>>() == pids && meta_ok).then_some(seen))
    })
    .await
    .unwrap();
    let b_id = ids_by_pid[&b.pid().unwrap().to_string()].clone();
    // Whichever started first owns both partitions; its balancer hands one
    // over to the other (the stats' `partitions`: what a process found
    // itself owning at its balancer's last look).
    let owned = |stats: &BTreeMap<String, Value>| -> Vec<Vec<u64>> {
        stats
            .values()
            .map(|s| {
                s["partitions"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default()
            })
            .collect()
    };
    let logs =
        |e: anyhow::Error| -> String { format!("{e}\n{}\n{}", a.log_tail(30), b.log_tail(30)) };
    wait_for("a partition handed over", WAIT, || async {
        let o = owned(&live_stats(&admin_client, "hamster", 2).await);
        let handed =
            o.len() == 2 && o.iter().all(|p| p.len() <= 1) && o.iter().any(|p| p.len() == 1);
        Ok(handed.then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{}", logs(e)));
    // New work: each works on its own partition (an owner learns that it
    // owns a partition from its first message there).
    let shared_ids = publish_raw(&gateway, &teltonika_frames(8000..10000, fleet)).await;
    let shares = wait_for(
        "each hamster owning one partition and busy",
        WAIT,
        || async {
            let stats = live_stats(&admin_client, "hamster", 2).await;
            let o = owned(&stats);
            let all: BTreeSet<u64> = o.iter().flatten().copied().collect();
            let busy = stats
                .values()
                .filter(|s| s["processed"].as_u64().unwrap_or(0) > 0)
                .count();
            let even = o.len() == 2 && o.iter().all(|p| p.len() == 1) && all.len() == 2;
            Ok((even && busy == 2).then_some(stats))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", logs(e)));
    eprintln!("shares: {shares:?}");

    // kill -9 one of them in the middle of the backlog. On a fast machine
    // the first backlog may be gone already: add more work right before
    // the kill, so hamster-a dies holding a batch whatever the speed.
    let more_ids = publish_raw(&gateway, &teltonika_frames(4000..8000, fleet)).await;
    let left = stream_count(&admin, names::RAW).await.unwrap();
    a.kill();
    eprintln!("killed hamster-a with {left} frames still in RAW");
    assert!(left > 0, "the backlog was gone before the kill");

    wait_for("every frame parsed", WAIT, || async {
        let raw = stream_count(&admin, names::RAW).await?;
        Ok((raw == 0).then_some(()))
    })
    .await
    .unwrap();
    let parsed = record_ids_in_parsed(&cluster).await;
    let expected: BTreeSet<String> = first[2..]
        .iter()
        .chain(&load_ids)
        .chain(&shared_ids)
        .chain(&more_ids)
        .flat_map(|id| [parsed_msg_id(id, 0), parsed_msg_id(id, 1)])
        .collect();
    let got: BTreeSet<String> = parsed.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(got, expected);
    let doubled: Vec<_> = parsed.iter().filter(|(_, &n)| n > 1).take(5).collect();
    assert!(doubled.is_empty(), "stored twice: {doubled:?}");
    let (records, _) = read_records(&messages(&cluster, names::PARSED).await[0].payload).unwrap();
    assert!(records.iter().all(|r| r.kind() == "position"));

    // What hamster-a held, if it held anything at the instant of the kill,
    // was redelivered to hamster-b: "every frame parsed" above could not
    // have happened otherwise. Whether it held a batch at that instant is
    // timing (a clean CI run once killed it between two pulls), so the
    // count is reported, not asserted; the loss and duplicate checks above
    // are the promise.
    let stats = live_stats(&admin_client, "hamster", 1).await;
    eprintln!(
        "hamster-b redelivered {} frames of hamster-a",
        stats[&b_id]["redelivered"].as_u64().unwrap_or(0)
    );
    common::stop(&mut b).await;
    wait_registered(&cluster, "hamster", 0).await;
    assert!(b.log().contains("Stopped."), "{}", b.log_tail(20));

    // Workers that keep failing: the process gives up with status 1 (for
    // systemd or Kubernetes to restart it). Here the durable is deleted
    // under a running hamster, so every pull fails.
    let mut c = Proc::start(
        worker(&cluster, Role::Hamster, "hamster-c", &config, &[])
            .env("FLEETBUS_HAMSTER__PULL__PULL_FAILURE_GRACE_SECS", "1")
            .env("FLEETBUS_HAMSTER__SUPERVISOR__MAX_RESTARTS", "2"),
        dir.path(),
    )
    .unwrap();
    wait_registered(&cluster, "hamster", 1).await;
    common::streams::delete_hamsters_durable(&admin).await;
    let status = c.wait_exit(WAIT).await.expect("hamster-c gave up");
    assert_eq!(status.code(), Some(1), "{}", c.log_tail(20));
    assert!(
        c.log().contains("restart intensity exceeded"),
        "{}",
        c.log_tail(20)
    );
    eprintln!("hamster process test: {:?}", t0.elapsed());
}

/// A device that re-packs its records after lost acks, with a backlog of
/// such frames waiting before the hamster starts: the frames of one device
/// that queue up are claimed together (one write of the device's memory
/// for a run of frames, not one per frame), and PARSED still holds every
/// record exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_s_backlog_of_repacked_frames_is_claimed_in_runs_and_each_record_stored_once() {
    let (dir, config, _, cluster, admin, _) = setup().await;
    let device = "356307042441015".to_string();
    // Frame n carries fixes n, n+1 and n+2: two of the previous frame's
    // records, re-packed with a new one. 30 frames, 32 records.
    let frames: Vec<(String, String, Bytes)> = (0..30)
        .map(|n| {
            let fixes: Vec<_> = (n..n + 3).map(|s| position(&device, s)).collect();
            ("teltonika".into(), device.clone(), codec8(&fixes).unwrap())
        })
        .collect();
    let raw = common::js(&cluster, Role::Gateway).await;
    publish_raw(&raw, &frames).await;

    let mut hamster = Proc::start(
        worker(&cluster, Role::Hamster, "hamster", &config, &[]),
        dir.path(),
    )
    .unwrap();
    wait_counts(&admin, "RAW drained", &[(names::RAW, 0)]).await;

    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for m in messages(&cluster, names::PARSED).await {
        let read = fleetbus_wire::parsed::ParsedMessage::read(&m, "?").unwrap();
        for (_, id) in read.records {
            *stored.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "records stored more than once: {twice:?}");
    assert_eq!(
        stored.len(),
        32,
        "every record of the 30 frames: {stored:?}"
    );

    // The device's memory is the bucket's only key: its revision counts
    // the writes.
    let kv = admin.get_key_value(names::SEEN_BUCKET).await.unwrap();
    let entry = kv
        .entry(names::seen_key("teltonika", &device))
        .await
        .unwrap()
        .expect("the device's memory");
    eprintln!(
        "30 frames, {} writes of the device's memory",
        entry.revision
    );
    assert!(
        entry.revision < 20,
        "a backlog is claimed in runs, not frame by frame: {} writes",
        entry.revision
    );
    common::stop(&mut hamster).await;
}

/// A hamster stopped again and again in the middle of a backlog (a rolling
/// deploy, an operator's restarts) hands back what it had pulled and not
/// started, and each stop costs those frames one delivery, not dozens: none
/// of them counts as exhausted and goes to DEAD (here after 4 deliveries),
/// and every record is stored once. A hand-back made while the pull was
/// still open came straight back to it - pinned again, or still pinned -
/// to be handed back again for as long as the hand-over lasted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hamster_stopped_mid_backlog_hands_back_its_frames_without_using_up_their_deliveries() {
    let (dir, config, _, cluster, admin, _) = setup().await;
    let gateway = common::js(&cluster, Role::Gateway).await;
    let fleet = |i: u32| format!("87{:013}", i % 200);
    let mut ids = publish_raw(&gateway, &teltonika_frames(0..3000, fleet)).await;
    let mut hamster =
        Proc::start(batching_hamster(&cluster, "hamster", &config), dir.path()).unwrap();
    // Two stops, each while frames are still waiting: each frame is handed
    // back at most twice, so at most 3 deliveries with the one that
    // finishes it. On a fast machine the first backlog may be gone by the
    // second stop: more work comes right before each.
    for stop in 0..2u32 {
        let more = 3000 + 2000 * stop..5000 + 2000 * stop;
        ids.extend(publish_raw(&gateway, &teltonika_frames(more, fleet)).await);
        let before = unprocessed(&admin, names::RAW).await.unwrap();
        wait_for("the hamster at work", WAIT, || async {
            let left = unprocessed(&admin, names::RAW).await?;
            Ok((left + 100 < before).then_some(()))
        })
        .await
        .unwrap();
        common::stop(&mut hamster).await;
        let left = unprocessed(&admin, names::RAW).await.unwrap();
        assert!(
            left > 0,
            "stop {stop}: the backlog was gone before the stop"
        );
        hamster.restart().unwrap();
    }
    // (The log of every run of the process, one after the other.)
    let handed_back: u64 = hamster
        .log()
        .lines()
        .filter(|l| l.contains("Let go of the partition."))
        .filter_map(|l| {
            l.split("handed_back=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    wait_counts(&admin, "RAW drained", &[(names::RAW, 0)]).await;
    let dead = messages(&cluster, names::DEAD).await;
    let reasons: Vec<String> = dead
        .iter()
        .take(3)
        .map(|m| header(m, headers::DEAD_REASON))
        .collect();
    assert!(
        dead.is_empty(),
        "{} frames sent to DEAD: {reasons:?}",
        dead.len()
    );
    let parsed = record_ids_in_parsed(&cluster).await;
    let expected: BTreeSet<String> = ids
        .iter()
        .flat_map(|id| [parsed_msg_id(id, 0), parsed_msg_id(id, 1)])
        .collect();
    assert_eq!(parsed.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let doubled: Vec<_> = parsed.iter().filter(|(_, &n)| n > 1).take(5).collect();
    assert!(doubled.is_empty(), "stored twice: {doubled:?}");
    // The stops did hand frames back (or the test tried nothing).
    eprintln!("{handed_back} frames handed back over two stops");
    assert!(handed_back > 0, "{}", hamster.log_tail(20));
    common::stop(&mut hamster).await;
}

/// RAW keeps frames by limits, and the owner of each partition purges what
/// every reader of it acknowledged: another reader that is behind (an
/// audit consumer of one device here; a sink's durable in production)
/// keeps what it has not read, and no more: the sweep goes up to the first
/// message *its filter* matches after its ack floor, whatever it reports
/// pending. Once it goes, the rest is swept. A device's resend of a swept
/// frame is still a duplicate within the duplicate window: a purge does
/// not forget message ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_is_swept_below_every_reader_s_floor_and_a_resend_after_the_sweep_stays_a_duplicate() {
    let (dir, config, _, cluster, admin, _) = setup().await;
    // Frame i is device i % 20's, stored at sequence i + 1: the audited
    // device's frames are sequences 20, 40, ... 200.
    let audited = format!("88{:013}", 19);
    let audit: PullConsumer = admin
        .create_consumer_on_stream(
            jetstream::consumer::pull::Config {
                durable_name: Some("audit".into()),
                filter_subject: format!("raw.*.*.{audited}"),
                ..Default::default()
            },
            names::RAW,
        )
        .await
        .unwrap();
    let gateway = common::js(&cluster, Role::Gateway).await;
    let frames = teltonika_frames(0..200, |i| format!("88{:013}", i % 20));
    let ids = publish_raw(&gateway, &frames).await;
    let mut hamster = Proc::start(
        worker(&cluster, Role::Hamster, "hamster", &config, &[]),
        dir.path(),
    )
    .unwrap();
    let parsed_all = || async {
        let parsed = record_ids_in_parsed(&cluster).await;
        Ok((parsed.len() == 2 * ids.len()).then_some(()))
    };
    wait_for("every frame parsed", WAIT, parsed_all)
        .await
        .unwrap();
    // The hamsters are done; the audit reader has read nothing, so what
    // is before its first frame goes and the rest stays.
    wait_counts(
        &admin,
        "swept up to the audited device's first frame",
        &[(names::RAW, 181)],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        stream_count(&admin, names::RAW).await.unwrap(),
        181,
        "a later sweep went past the audit reader"
    );

    // It reads and acknowledges its first five (sequences 20 to 100):
    // everything before its sixth (120) goes.
    let mut pull = audit.fetch().max_messages(5).messages().await.unwrap();
    let mut read = 0;
    while let Some(msg) = pull.next().await {
        msg.unwrap().double_ack().await.unwrap();
        read += 1;
    }
    assert_eq!(read, 5);
    wait_counts(
        &admin,
        "swept up to the audit reader's next frame",
        &[(names::RAW, 81)],
    )
    .await;

    // It goes: the rest is swept too.
    admin
        .get_stream(names::RAW)
        .await
        .unwrap()
        .delete_consumer("audit")
        .await
        .unwrap();
    wait_counts(&admin, "RAW swept", &[(names::RAW, 0)]).await;
    let raw = admin.get_stream(names::RAW).await.unwrap();
    assert_eq!(
        (
            raw.cached_info().state.first_sequence,
            raw.cached_info().state.last_sequence
        ),
        (201, 200),
        "all 200 purged, none deleted one by one"
    );

    // A device sends its first frame again (its ack was lost, say): the
    // same id, a duplicate, not a second frame.
    let (protocol, device, frame) = &frames[0];
    let h = common::fixes::gateway_headers(protocol, device, frame, "2024-05-01T12:00:00.000Z");
    let ack = gateway
        .publish_with_headers(raw_subject(protocol, device), h, frame.clone())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        ack.duplicate,
        "a resend after the sweep stored again: {ack:?}"
    );
    assert_eq!(stream_count(&admin, names::RAW).await.unwrap(), 0);
    common::stop(&mut hamster).await;
}
