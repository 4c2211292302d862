//! Downstream outages and full streams, end to end: whatever cannot be
//! written downstream holds the stage back — its workers keep what they
//! have and pull nothing new, its stream fills, a full RAW makes the
//! gateways stop acknowledging, the devices keep their data — and nothing
//! a device was told is stored goes to DEAD or is left behind. Each
//! scenario holds the system back far longer than every retry, backoff
//! and redelivery horizon of its (scaled-down) settings, says what
//! `fleetbus status` reports meanwhile, then releases it and judges the
//! result after the pipeline drained: every record once in PARSED, every
//! device's latest position, each event once.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use bytes::Bytes;
use fleetbus_e2e::scenario::{
    acked_at_least, admin, assert_delivered_once, assert_delivered_once_out_of_order, messages,
    problems, set_max_msgs, start_fleet, status,
};
use fleetbus_e2e::{wait_for, Role, System, SystemOptions};
use fleetbus_wire::headers;
use fleetbus_wire::ids::raw_msg_id;
use fleetbus_wire::names;
use fleetbus_wire::names::raw_subject;

/// Every timeout and redelivery horizon short, so that a hold of 30 s
/// outlasts them all many times over: ack waits of 2 s, redelivery waits
/// of 2 and 4 s, a message suspect after 2 deliveries and given up after
/// 4, held messages tried again every second at the longest.
const SCALED: &str = r#"
[topology]
duplicate_window_secs = 120
[topology.hamsters]
backoff_secs = [2, 4]
[topology.monkeys]
backoff_secs = [2, 4]
[hamster]
poison_after = 2
give_up_after = 4
[hamster.pull]
hold_max_ms = 1000
[monkey]
poison_after = 2
give_up_after = 4
[monkey.pull]
hold_max_ms = 1000
"#;

/// How long each scenario holds the system back.
const HOLD: Duration = Duration::from_secs(30);

async fn system(monkeys: usize) -> System {
    let opts = SystemOptions {
        monkeys,
        config_toml: SCALED.into(),
        ..SystemOptions::default()
    };
    let mut sys = System::start(opts).await.expect("system starts");
    sys.prepare_verify("check").await.unwrap();
    sys
}

/// `devices` × `records`, a record every `interval_ms` per device.
fn fleet(devices: usize, records: usize, interval_ms: u64) -> Vec<String> {
    fleetbus_e2e::scenario::fleet(devices, records, interval_ms, 5, 5)
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The sequence of `stream`'s last message: how many it ever stored.
async fn last_sequence(js: &jetstream::Context, stream: &str) -> u64 {
    let mut s = js.get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.last_sequence
}

/// For `HOLD`, once a second: DEAD holds `dead` messages, no more, and
/// `fleetbus status` is not healthy (exit 1) and names `what`. Returns the
/// problems status listed last.
async fn held_back(sys: &System, js: &jetstream::Context, dead: u64, what: &str) -> Vec<String> {
    let until = tokio::time::Instant::now() + HOLD;
    let mut last = Vec::new();
    while tokio::time::Instant::now() < until {
        assert_eq!(
            messages(js, names::DEAD).await,
            dead,
            "nothing acknowledged goes to DEAD while held back"
        );
        let (code, s) = status(sys).await.unwrap();
        last = problems(&s);
        assert_eq!(code, 1, "status is not healthy while held back: {s}");
        assert!(
            last.iter().any(|p| p.contains(what)),
            "status names {what}: {last:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    last
}

/// The monkeys hang (SIGSTOP) while PARSED is capped just above what it
/// holds: PARSED fills, the hamsters hold their frames and stop pulling,
/// RAW fills (capped too, so it happens within the scenario), the gateways
/// stop acknowledging — and the devices keep their records.
#[tokio::test]
async fn monkeys_stopped_past_every_horizon_hold_everything_back_and_lose_nothing() {
    let mut sys = system(2).await;
    let js = admin(&sys).await;
    let f = fleet(20, 100, 200);
    let mut sim = start_fleet(&sys, &args(&f)).await;
    acked_at_least(&sys, 100).await;
    for m in &sys.monkeys {
        m.pause();
    }
    let parsed_cap = messages(&js, names::PARSED).await as i64 + 30;
    set_max_msgs(&js, names::PARSED, parsed_cap).await;
    wait_for("PARSED full", Duration::from_secs(60), || async {
        Ok((messages(&js, names::PARSED).await as i64 >= parsed_cap).then_some(()))
    })
    .await
    .unwrap();
    let raw_cap = messages(&js, names::RAW).await as i64 + 60;
    set_max_msgs(&js, names::RAW, raw_cap).await;
    wait_for("RAW full", Duration::from_secs(60), || async {
        Ok((messages(&js, names::RAW).await as i64 >= raw_cap).then_some(()))
    })
    .await
    .unwrap();
    // Whatever was in flight settles. From then on a gateway acknowledges
    // only what RAW stored, and RAW stores only into room a hamster made
    // by dropping a frame whose records PARSED already has (a re-packed
    // resend): a trickle, not the fleet's 100 records a second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acked = sys.reported("sim");
    let raw_stored = last_sequence(&js, names::RAW).await;
    let last = held_back(&sys, &js, 0, names::PARSED).await;
    let (acked_meanwhile, stored_meanwhile) = (
        sys.reported("sim") - acked,
        last_sequence(&js, names::RAW).await - raw_stored,
    );
    assert!(
        acked_meanwhile as u64 <= stored_meanwhile * 5,
        "{acked_meanwhile} records acknowledged while RAW was full, more than the \
         {stored_meanwhile} frames of up to 5 it stored"
    );
    // The trickle comes in bursts: the room is made by the hamsters' sweep
    // (every 10 s it purges what they acknowledged since, resends whose
    // records PARSED has), so a sweep's worth of resends is stored and
    // acknowledged at once. A quarter of what the fleet offers (100
    // records a second) tells held back from flowing.
    assert!(
        acked_meanwhile * 4 < 100 * HOLD.as_secs() as usize,
        "{acked_meanwhile} records acknowledged in {HOLD:?} with RAW full: the gateways \
         did not stop acknowledging"
    );
    assert!(acked < 2000, "the hold came too late to test anything");
    eprintln!(
        "held back for {HOLD:?} with {acked} of 2000 records acknowledged \
         ({acked_meanwhile} more meanwhile); status said: {last:?}"
    );
    for m in &sys.monkeys {
        m.resume();
    }
    set_max_msgs(&js, names::PARSED, -1).await;
    set_max_msgs(&js, names::RAW, -1).await;
    assert_delivered_once_out_of_order(
        &mut sys,
        &mut sim,
        "monkeys stopped, PARSED and RAW full",
        2000,
    )
    .await;
    assert_eq!(messages(&js, names::DEAD).await, 0);
}

/// Frames no parser accepts while DEAD takes nothing more: the hamster
/// holds them (a dead letter it cannot store is back-pressure too), stops
/// pulling, and the good frames wait behind them in RAW. Once DEAD takes
/// writes again, the bad frames are in DEAD and the good ones in PARSED.
#[tokio::test]
async fn a_full_dead_holds_bad_frames_back_and_loses_nothing() {
    let mut sys = system(1).await;
    let js = admin(&sys).await;
    set_max_msgs(&js, names::DEAD, 1).await;
    let f = fleet(20, 60, 200);
    let mut sim = start_fleet(&sys, &args(&f)).await;
    acked_at_least(&sys, 100).await;
    let gateway = jetstream::new(sys.cluster.connect(Role::Gateway).await.unwrap());
    for i in 0..5 {
        let device = format!("garbage{i}");
        let frame = Bytes::from(format!("\0\0\0\0\0\0\0\x10not a frame {i}"));
        let mut h = HeaderMap::new();
        h.insert(
            headers::MSG_ID,
            raw_msg_id("teltonika", &device, &frame).as_str(),
        );
        h.insert(headers::PROTOCOL, "teltonika");
        h.insert(headers::DEVICE, device.as_str());
        gateway
            .publish_with_headers(raw_subject("teltonika", &device), h, frame)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    wait_for(
        "the first bad frame in DEAD",
        Duration::from_secs(60),
        || async { Ok((messages(&js, names::DEAD).await == 1).then_some(())) },
    )
    .await
    .unwrap();
    let last = held_back(&sys, &js, 1, names::DEAD).await;
    eprintln!("DEAD full for {HOLD:?}; status said: {last:?}");
    set_max_msgs(&js, names::DEAD, -1).await;
    assert_delivered_once(&mut sys, &mut sim, "DEAD full", 1200).await;
    let dead = sys.cluster.stream_messages(names::DEAD).await.unwrap();
    assert_eq!(dead.len(), 5, "every bad frame, once");
    for m in &dead {
        assert_eq!(
            m.headers.get(headers::DEAD_KIND).map(|v| v.as_str()),
            Some("parse_error")
        );
    }
}

/// EVENTS takes one event and no more: the monkeys hold the records whose
/// events they cannot publish (the device's entry is already written; the
/// events are published again under the same ids), PARSED fills behind
/// them. Released, every event is there once.
#[tokio::test]
async fn a_full_events_stream_holds_the_monkeys_back_and_loses_no_event() {
    let mut sys = system(1).await;
    let js = admin(&sys).await;
    set_max_msgs(&js, names::EVENTS, 1).await;
    let f = fleet(20, 60, 200);
    let mut sim = start_fleet(&sys, &args(&f)).await;
    wait_for("EVENTS full", Duration::from_secs(120), || async {
        Ok((messages(&js, names::EVENTS).await == 1).then_some(()))
    })
    .await
    .unwrap();
    let last = held_back(&sys, &js, 0, names::EVENTS).await;
    eprintln!("EVENTS full for {HOLD:?}; status said: {last:?}");
    set_max_msgs(&js, names::EVENTS, -1).await;
    let report = assert_delivered_once(&mut sys, &mut sim, "EVENTS full", 1200).await;
    assert!(report.contains("40 of 40 expected events once"), "{report}");
}

/// The `devices` bucket takes one entry and no more: every other device's
/// first latest position is refused, and the monkeys hold it.
#[tokio::test]
async fn a_full_devices_bucket_holds_the_monkeys_back_and_loses_nothing() {
    let mut sys = system(1).await;
    let js = admin(&sys).await;
    set_max_msgs(&js, "KV_devices", 1).await;
    let f = fleet(20, 60, 200);
    let mut sim = start_fleet(&sys, &args(&f)).await;
    acked_at_least(&sys, 100).await;
    let last = held_back(&sys, &js, 0, "KV_devices").await;
    eprintln!("KV_devices full for {HOLD:?}; status said: {last:?}");
    assert_eq!(messages(&js, "KV_devices").await, 1);
    set_max_msgs(&js, "KV_devices", -1).await;
    let report = assert_delivered_once(&mut sys, &mut sim, "devices bucket full", 1200).await;
    assert!(
        report.contains("20 with their newest record as latest position"),
        "{report}"
    );
}
