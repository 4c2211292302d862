//! Monkeys against a real three-node cluster: the latest position and the
//! events derived from fixes that arrive out of order, a non-record sent to
//! DEAD and the archive (a `fleetbus monkey` process); a device's backlog
//! applied in runs with the same outcome as one by one; an entry the
//! monkey remembers gone stale behind its back; and a user
//! processor whose database is down holding its record (never redelivered,
//! never dead-lettered) until it is back, while only invalid records go to
//! DEAD (in-process workers under a supervisor).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer};
use async_nats::HeaderMap;
use common::streams::{header_string as header, messages, stream_count, wait_counts};
use common::workers::{
    partitions, position, publish_stored, pull_workers, setup, shut_down, supervise, worker,
};
use common::WAIT;
use fleetbus_actors::monkey::{DynProcessor, Meta, Monkey, ProcessError, Processor};
use fleetbus_actors::{Gate, PullConfig, Stats, SupervisorConfig};
use fleetbus_codec::Record;
use fleetbus_e2e::{wait_for, Cluster, Proc, Role};
use fleetbus_wire::headers;
use fleetbus_wire::ids::record_msg_id;
use fleetbus_wire::names::{self, Durable};
use fleetbus_wire::parsed::{read_records, ParsedMeta, FRAME_MESSAGE_MAX_BYTES};
use serde_json::Value;

/// A parsed record as a hamster publishes it (under the message id `id`),
/// received a minute after the first fix of the tests.
async fn publish_parsed(js: &jetstream::Context, id: &str, record: &Record) {
    let meta = ParsedMeta {
        raw_id: None,
        model: None,
        received_at: Some("2024-05-01T12:01:00Z".parse().unwrap()),
        gateway: None,
        protocol: "teltonika".into(),
        device: record.device_id().into(),
        partition: 0,
    };
    let mut out = meta
        .messages(1, &[(0, record)], FRAME_MESSAGE_MAX_BYTES)
        .remove(0);
    out.headers.insert(headers::MSG_ID, id);
    publish_stored(js, &out.subject, out.headers, out.payload).await;
}

/// Something that is not a record at all, on `subject` of PARSED.
async fn publish_junk(js: &jetstream::Context, subject: &str) {
    let mut h = HeaderMap::new();
    h.insert(headers::MSG_ID, "junk#0");
    publish_stored(js, subject, h, "{not json".into()).await;
}

/// `fleetbus monkey` (the only one: a device's records are handled in
/// stream order) with the `extra` arguments.
fn one_monkey(cluster: &Cluster, dir: &Path, config: &Path, extra: &[&str]) -> Proc {
    Proc::start(worker(cluster, Role::Monkey, "monkey", config, extra), dir).unwrap()
}

/// Waits until the monkeys drained PARSED and the one junk message a test
/// sends among its records is in DEAD.
async fn wait_drained_with_junk_dead(admin: &jetstream::Context) {
    wait_counts(
        admin,
        "PARSED drained, the junk in DEAD",
        &[(names::DEAD, 1), (names::PARSED, 0)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monkeys_keep_the_latest_position_and_derive_events_from_out_of_order_fixes() {
    let t0 = Instant::now();
    let (dir, config, _, cluster, admin, hamster) = setup().await;
    let archive = dir.path().join("archive");

    let mut monkey = one_monkey(
        &cluster,
        dir.path(),
        &config,
        &["--archive", archive.to_str().unwrap()],
    );

    let device = "356307042441013";
    let fix = |sec: u32, ignition: bool, speed: f64, alarm: Option<&str>| {
        let mut p = position(device, sec);
        p.speed = speed;
        p.set("ignition", ignition);
        if let Some(a) = alarm {
            p.set("alarm", a);
        }
        Record::Position(p)
    };
    // Arrival order 10, 30, 20 (late), 40, and one dated 2099 (a device
    // clock gone wrong, a forged frame) that must not freeze the device.
    let mut ahead = fix(50, true, 0.0, None);
    if let Record::Position(p) = &mut ahead {
        p.fix_time = "2099-01-01T00:00:50Z".parse().unwrap();
    }
    let input = [
        ("r1#0", fix(10, false, 0.0, None)),
        ("r3#0", fix(30, true, 130.0, None)),
        ("r2#0", fix(20, false, 150.0, Some("sos"))),
        ("r4#0", fix(40, false, 0.0, None)),
        ("r5#0", ahead),
    ];
    for (id, record) in &input {
        publish_parsed(&hamster, id, record).await;
    }
    // And something that is not a record at all.
    publish_junk(&hamster, "parsed.0.teltonika.junk").await;

    let latest = common::streams::wait_latest(&admin, device, "2024-05-01T12:00:40.000Z").await;
    assert_eq!(
        latest["source"],
        record_msg_id(&input[3].1).unwrap(),
        "the record's identity"
    );
    assert_eq!(latest["ignition"], false);

    wait_for("events", WAIT, || async {
        let n = stream_count(&admin, names::EVENTS).await?;
        Ok((n >= 5).then_some(()))
    })
    .await
    .unwrap();
    wait_drained_with_junk_dead(&admin).await;
    let events: Vec<(String, String, String)> =
        common::streams::json_messages(&cluster, names::EVENTS)
            .await
            .into_iter()
            .map(|(subject, v)| {
                let what = v["alarm"].as_str().unwrap_or(v["type"].as_str().unwrap());
                (
                    subject,
                    what.to_string(),
                    v["fix_time"].as_str().unwrap()[17..19].to_string(),
                )
            })
            .collect();
    let e = |kind: &str, what: &str, sec: &str| {
        (
            format!("events.teltonika.{device}.{kind}"),
            what.to_string(),
            sec.to_string(),
        )
    };
    assert_eq!(
        events,
        vec![
            e("ignitionOn", "ignitionOn", "30"),
            e("overspeed", "overspeed", "30"),
            e("alarm", "sos", "20"),
            e("ignitionOff", "ignitionOff", "40"),
            e("futureFix", "futureFix", "50"),
        ],
        "transitions in fix-time order, the late fix's alarm, the fix from the future flagged, \
         nothing twice"
    );
    // The fix from the future did not become the latest.
    let latest = common::streams::wait_latest(&admin, device, "2024-05-01T12:00:40.000Z").await;
    assert_eq!(latest["source"], record_msg_id(&input[3].1).unwrap());
    let dead = messages(&cluster, names::DEAD).await;
    assert_eq!(dead[0].subject.as_str(), "dead.parsed.teltonika.junk");
    assert_eq!(header(&dead[0], headers::DEAD_STAGE), "monkey");
    assert!(header(&dead[0], headers::DEAD_REASON).contains("not a fleetbus record"));

    // The archive has every record once, with its id.
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&archive).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].to_string()),
        );
    }
    lines.sort();
    let mut ids: Vec<String> = input
        .iter()
        .map(|(_, r)| format!("{:?}", record_msg_id(r).unwrap()))
        .collect();
    ids.sort();
    assert_eq!(lines, ids);

    common::stop(&mut monkey).await;
    eprintln!("monkey process test: {:?}", t0.elapsed());
}

/// A backlog of one device, waiting before the monkey starts, arrives in one
/// pull: the monkey applies it as runs (one read and one write of the
/// device's entry for many fixes), with the same outcome as one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_s_backlog_is_applied_in_runs_with_the_same_outcome() {
    let (dir, config, _, cluster, admin, hamster) = setup().await;

    // 60 fixes a second apart, ignition on for 10 s, off for 10 s, …; a
    // message that is no record at all in the middle of them.
    let device = "356307042441014";
    for sec in 0..60 {
        let mut p = position(device, sec);
        p.set("ignition", (sec / 10) % 2 == 1);
        publish_parsed(&hamster, &format!("b{sec}#0"), &Record::Position(p)).await;
        if sec == 30 {
            publish_junk(&hamster, &format!("parsed.0.teltonika.{device}")).await;
        }
    }
    let mut monkey = one_monkey(&cluster, dir.path(), &config, &[]);
    wait_drained_with_junk_dead(&admin).await;

    let kv = admin.get_key_value(names::DEVICES_BUCKET).await.unwrap();
    let entry = kv.entry(device).await.unwrap().expect("the device's entry");
    let v: Value = serde_json::from_slice(&entry.value).unwrap();
    assert_eq!(v["position"]["fix_time"], "2024-05-01T12:00:59.000Z");
    let mut last = position(device, 59);
    last.set("ignition", true);
    assert_eq!(v["source"], record_msg_id(&Record::Position(last)).unwrap());
    assert_eq!(v["ignition"], true);
    // The only key of the bucket: its revision counts the writes.
    eprintln!("60 fixes, {} writes of the entry", entry.revision);
    assert!(
        entry.revision < 30,
        "a backlog is written in runs, not once per fix: {} writes",
        entry.revision
    );
    let events: Vec<(String, String)> = common::events(&cluster)
        .await
        .into_iter()
        .map(|(kind, fix_time)| (kind, fix_time[17..19].to_string()))
        .collect();
    let e = |kind: &str, sec: &str| (kind.to_string(), sec.to_string());
    assert_eq!(
        events,
        vec![
            e("ignitionOn", "10"),
            e("ignitionOff", "20"),
            e("ignitionOn", "30"),
            e("ignitionOff", "40"),
            e("ignitionOn", "50"),
        ],
        "every transition once, in order"
    );
    common::stop(&mut monkey).await;
}

/// A user's processor: fails in the ways a real one does. Calls are
/// counted per record (`<device>@<second>`).
struct Flaky {
    calls: Arc<std::sync::Mutex<BTreeMap<String, u32>>>,
    /// The database of device "down" is back.
    back: Arc<AtomicBool>,
}

impl Processor for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    async fn process(&self, record: &Record, _meta: &Meta) -> Result<(), ProcessError> {
        let p = record.as_position().expect("positions only");
        let key = format!("{}@{}", p.device_id, p.fix_time.format("%S"));
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(key).or_default();
            *n += 1;
            *n
        };
        if record.attributes().contains_key("reject") {
            return Err(ProcessError::Invalid("rejected record".into()));
        }
        match record.device_id() {
            "down" if !self.back.load(Ordering::SeqCst) => {
                Err(ProcessError::Retry("database down".into()))
            }
            "blip" if n <= 2 => Err(ProcessError::Retry("database blip".into())),
            "invalid" => Err(ProcessError::Invalid("no such vehicle".into())),
            _ => Ok(()),
        }
    }
}

/// Consumer info of `PARSED/monkeys-0`, the partition these tests publish
/// into.
async fn monkeys_info(admin: &jetstream::Context) -> jetstream::consumer::Info {
    let mut c: PullConsumer = admin
        .get_consumer_from_stream(Durable::Monkeys.partition(0), names::PARSED)
        .await
        .unwrap();
    c.info().await.unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_that_is_down_holds_its_record_and_only_invalid_ones_go_to_dead() {
    let t0 = Instant::now();
    let (_dir, _, settings, cluster, admin, hamster) = setup().await;
    for device in ["fine", "blip", "down", "invalid"] {
        let record = Record::Position(position(device, 1));
        publish_parsed(&hamster, &format!("{device}#0"), &record).await;
    }
    // A frame of three records in one message, the middle one rejected.
    let frame: Vec<Record> = (1..=3)
        .map(|sec| {
            let mut p = position("framed", sec);
            if sec == 2 {
                p.set("reject", true);
            }
            Record::Position(p)
        })
        .collect();
    let h = common::fixes::parsed_headers("teltonika", "framed", "framed", 3);
    let body = serde_json::to_vec(&frame).unwrap();
    publish_stored(&hamster, "parsed.0.teltonika.framed", h, body.into()).await;

    let js = common::js(&cluster, Role::Monkey).await;
    let calls = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let back = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let gate = Gate::new();
    let processors: Vec<Arc<dyn DynProcessor>> = vec![Arc::new(Flaky {
        calls: calls.clone(),
        back: back.clone(),
    })];
    let monkeys = pull_workers(
        partitions(&js, Durable::Monkeys, &settings).await,
        Monkey::new(js.clone(), processors).with_stats(stats.clone()),
        &stats,
        PullConfig {
            hold_max_ms: 200,
            ..PullConfig::default()
        },
        &settings.monkeys,
        &gate,
    );
    let mut supervisor = supervise(monkeys, SupervisorConfig::default()).await;

    // Everything but the record whose database is down is done; that one
    // is held, far longer than its ack wait (1 s) and than every backoff,
    // and is never redelivered, handed back or dead-lettered. (PARSED
    // still stores the messages after it: the partition is swept below
    // its ack floor, which the held one holds.)
    wait_counts(&admin, "two dead letters", &[(names::DEAD, 2)]).await;
    wait_for("all but the held record done", WAIT, || async {
        let info = monkeys_info(&admin).await;
        Ok((info.num_pending == 0 && info.num_ack_pending == 1).then_some(()))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let info = monkeys_info(&admin).await;
    assert_eq!(info.num_ack_pending, 1, "held: {info:?}");
    assert_eq!(
        info.num_redelivered, 0,
        "a held message is not redelivered: {info:?}"
    );
    let st = gate.status();
    assert_eq!(st.held, 1);
    assert!(st.blocked_secs >= 5, "{st:?}");
    assert_eq!(
        st.blocked_by.as_deref(),
        Some("flaky failed: database down")
    );
    assert!(
        stats.snapshot().backpressure >= 10,
        "tried again and again: {:?}",
        stats.snapshot()
    );
    assert!(calls.lock().unwrap()["down@01"] >= 10);

    // The database comes back: the held record is processed, once more.
    back.store(true, Ordering::SeqCst);
    wait_counts(
        &admin,
        "PARSED drained",
        &[(names::PARSED, 0), (names::DEAD, 2)],
    )
    .await;
    assert_eq!(gate.status(), Default::default(), "open again");

    // The rejected record of the frame went to DEAD alone; its neighbours
    // were processed and the message acknowledged.
    let dead = messages(&cluster, names::DEAD).await;
    let alone = dead
        .iter()
        .find(|m| m.subject.as_str() == "dead.parsed.teltonika.framed")
        .expect("the rejected record in DEAD");
    assert_eq!(header(alone, headers::DEAD_RECORD), "1");
    assert_eq!(header(alone, headers::DEAD_KIND), "invalid");
    assert_eq!(
        header(alone, headers::DEAD_REASON),
        "flaky: rejected record"
    );
    assert!(header(alone, headers::MSG_ID).ends_with("#1"));
    assert_eq!(
        header(alone, headers::DEAD_MSG_ID),
        record_msg_id(&frame[1]).unwrap(),
        "the record's own id"
    );
    assert_eq!(
        header(alone, headers::RECORDS),
        "1",
        "one record, not the frame"
    );
    assert_eq!(
        read_records(&alone.payload).unwrap(),
        (vec![frame[1].clone()], true)
    );
    let invalid = dead
        .iter()
        .find(|m| m.subject.as_str() == "dead.parsed.teltonika.invalid")
        .expect("the invalid record in DEAD");
    assert_eq!(
        header(invalid, headers::DEAD_REASON),
        "flaky: no such vehicle"
    );
    assert_eq!(header(invalid, headers::DEAD_DELIVERIES), "1");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls["blip@01"], 3, "held until it worked");
    assert_eq!(calls["fine@01"], 1);
    assert_eq!(
        calls["framed@03"], 1,
        "after the rejected record: {calls:?}"
    );
    assert!(calls.contains_key("framed@01"), "{calls:?}");
    gate.stop();
    shut_down(&mut supervisor).await;
    assert_eq!(stats.snapshot().dead, 2, "one message and one record");
    eprintln!("processor test: {:?}", t0.elapsed());
}

/// A monkey writes the entries of the devices it owns without reading them
/// first (it remembers what it wrote). When another writer moved an entry
/// on meanwhile (a hand-over, another process), the remembered revision is
/// stale: the compare-and-set fails, the monkey reads, and a fix older than
/// the stored one changes nothing, while a newer one is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monkey_that_remembers_a_stale_entry_reads_it_again_and_loses_no_newer_fix() {
    let (dir, config, _, cluster, admin, hamster) = setup().await;
    let mut monkey = one_monkey(&cluster, dir.path(), &config, &[]);
    let device = "356307042441013";
    let fix = |sec: u32| Record::Position(position(device, sec));

    publish_parsed(&hamster, "a#0", &fix(10)).await;
    common::streams::wait_latest(&admin, device, "2024-05-01T12:00:10.000Z").await;

    // Another writer stores a newer fix behind the monkey's back.
    let kv = admin.get_key_value(names::DEVICES_BUCKET).await.unwrap();
    let Record::Position(newer) = fix(50) else {
        unreachable!()
    };
    let theirs = fleetbus_wire::device::DeviceEntry {
        position: newer,
        source: "elsewhere".into(),
        ignition: None,
        overspeed: false,
        recent: Vec::new(),
    };
    kv.put(device, serde_json::to_vec(&theirs).unwrap().into())
        .await
        .unwrap();

    // Older than what is stored, newer than what the monkey remembers.
    publish_parsed(&hamster, "b#0", &fix(30)).await;
    wait_counts(&admin, "PARSED drained", &[(names::PARSED, 0)]).await;
    let stored: Value = serde_json::from_slice(&kv.get(device).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        (
            stored["position"]["fix_time"].as_str(),
            stored["source"].as_str()
        ),
        (Some("2024-05-01T12:00:50.000Z"), Some("elsewhere")),
        "the late fix did not replace the newer one"
    );

    publish_parsed(&hamster, "c#0", &fix(59)).await;
    let latest = common::streams::wait_latest(&admin, device, "2024-05-01T12:00:59.000Z").await;
    assert_eq!(latest["source"], record_msg_id(&fix(59)).unwrap());
    common::stop(&mut monkey).await;
}
