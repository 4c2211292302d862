//! `fleetbus dead ls` and `fleetbus dead replay` as processes, against a
//! real three-node cluster, on dead letters written exactly as the workers
//! write them (`fleetbus_actors::dead::DeadLetter`).

mod common;

use async_nats::jetstream;
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::Utc;
use common::fixes::{moving, teltonika_frame as frame};
use common::streams::{header, messages_on};
use common::{fleetbus, fleetbus_ok};
use fleetbus_actors::dead;
use fleetbus_actors::DeadKind;
use fleetbus_codec::Record;
use fleetbus_e2e::{text, Cluster, Role};
use fleetbus_wire::dead::{record_payload, DeadLetter};
use fleetbus_wire::names;
use fleetbus_wire::{
    headers, ids,
    names::{parsed_subject, raw_subject},
    DeadStage,
};
use serde_json::Value;

/// `fleetbus dead ls --json <filters>`, which must succeed.
async fn ls_json(cluster: &Cluster, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["dead", "ls", "--json"];
    args.extend_from_slice(filters);
    let out = fleetbus(cluster, &args).await;
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not a JSON array ({e}): {}", text(&out)))
}

/// `fleetbus dead replay <args>`: its exit code and everything it printed.
async fn replay(cluster: &Cluster, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["dead", "replay"];
    all.extend_from_slice(args);
    let out = fleetbus(cluster, &all).await;
    (out.status.code(), text(&out))
}

fn devices(letters: &[Value]) -> Vec<&str> {
    letters
        .iter()
        .map(|l| l["device"].as_str().unwrap())
        .collect()
}

async fn cluster() -> Cluster {
    let cluster = common::provisioned_cluster().await;
    cluster.wait_stream_ready(names::DEAD).await.unwrap();
    cluster
}

/// The headers a gateway puts on a RAW frame.
fn gateway_headers(imei: &str, frame: &[u8]) -> HeaderMap {
    let mut h =
        common::fixes::gateway_headers("teltonika", imei, frame, "2026-11-29T12:00:01.000Z");
    h.insert(headers::GATEWAY, "gw-1");
    h.insert(headers::PEER, "10.0.0.7:40000");
    h
}

/// A RAW frame the hamsters gave up on, as they move it to DEAD.
async fn dead_frame(
    js: &jetstream::Context,
    imei: &str,
    payload: &Bytes,
    raw_sequence: u64,
    why: &str,
) {
    let original = gateway_headers(imei, payload);
    let letter = DeadLetter {
        stage: DeadStage::Raw,
        protocol: "teltonika",
        device: imei,
        original: Some(&original),
        kind: DeadKind::ParseError.as_str(),
        reason: why,
        stream: names::RAW,
        sequence: raw_sequence,
        subject: &raw_subject("teltonika", imei),
        deliveries: 1,
        record: None,
    };
    dead::publish(js, &letter, payload.clone()).await.unwrap();
}

/// Publishes a frame to RAW as a gateway does; its RAW sequence.
async fn store_raw(js: &jetstream::Context, imei: &str, payload: &Bytes) -> u64 {
    js.publish_with_headers(
        raw_subject("teltonika", imei),
        gateway_headers(imei, payload),
        payload.clone(),
    )
    .await
    .unwrap()
    .await
    .unwrap()
    .sequence
}

/// RAW's messages of one device.
async fn raw_of(cluster: &Cluster, imei: &str) -> Vec<jetstream::message::StreamMessage> {
    messages_on(cluster, names::RAW, &raw_subject("teltonika", imei)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_lists_what_the_workers_gave_up_on_and_filters_it() {
    let cluster = cluster().await;
    let js = common::js(&cluster, Role::Admin).await;
    let (one, two) = ("356307042441001", "356307042441002");

    let bad_crc = Bytes::from_static(b"\x00\x00\x00\x00\x00\x00\x00\x0f\x08\x01garbage");
    dead_frame(&js, one, &bad_crc, 11, "teltonika parse error: bad CRC").await;
    let truncated = Bytes::from_static(b"\x00\x00\x00\x00\x00\x00\x00\x2a\x08");
    dead_frame(&js, two, &truncated, 12, "teltonika parse error: truncated").await;

    // One record of a frame the monkeys' processor called invalid.
    let record = Record::Position(moving(two, "teltonika", 3));
    let record_id = ids::record_msg_id(&record).unwrap();
    let record_json = Bytes::from(record_payload(&record));
    let raw_id = ids::raw_msg_id("teltonika", two, b"the frame");
    let parsed = common::fixes::parsed_headers("teltonika", two, &raw_id, 2);
    let letter = DeadLetter {
        stage: DeadStage::Parsed,
        protocol: "teltonika",
        device: two,
        original: Some(&parsed),
        kind: DeadKind::Invalid.as_str(),
        reason: "speed 9000 km/h is not a speed",
        stream: names::PARSED,
        sequence: 5,
        subject: &parsed_subject(0, "teltonika", two),
        deliveries: 3,
        record: Some((1, &record_id)),
    };
    dead::publish(&js, &letter, record_json.clone())
        .await
        .unwrap();

    // The table: every letter, its reason, and a count by kind.
    let table = fleetbus_ok(&cluster, &["dead", "ls"]).await;
    assert!(table.starts_with("SEQ"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.contains("356307042441")).count(),
        3,
        "{table}"
    );
    assert!(table.contains("bad CRC"), "{table}");
    assert!(table.contains("speed 9000 km/h"), "{table}");
    assert!(
        table.contains("3 dead letters match: 1 invalid, 2 parse_error"),
        "{table}"
    );

    // JSON: every header the letter has, oldest first.
    let all = ls_json(&cluster, &[]).await;
    assert_eq!(devices(&all), vec![one, two, two], "{all:#?}");
    let first = &all[0];
    assert_eq!(first["stage"], "hamster");
    assert_eq!(first["kind"], "parse_error");
    assert_eq!(first["reason"], "teltonika parse error: bad CRC");
    assert_eq!(first["stream"], "RAW");
    assert_eq!(first["stream_sequence"], 11);
    assert_eq!(first["origin_subject"], raw_subject("teltonika", one));
    assert_eq!(first["deliveries"], 1);
    assert_eq!(
        first["msg_id"],
        ids::raw_msg_id("teltonika", one, &bad_crc),
        "the original id"
    );
    assert_eq!(first["payload_bytes"], bad_crc.len());
    assert_eq!(first["headers"][headers::GATEWAY], "gw-1");
    let record_letter = &all[2];
    assert_eq!(record_letter["stage"], "monkey");
    assert_eq!(record_letter["kind"], "invalid");
    assert_eq!(record_letter["record"], 1);
    assert_eq!(record_letter["msg_id"], record_id.as_str());
    assert_eq!(record_letter["raw_id"], raw_id.as_str());
    assert_eq!(record_letter["deliveries"], 3);
    assert_eq!(record_letter["payload_bytes"], record_json.len());
    let sequences: Vec<u64> = all
        .iter()
        .map(|l| l["sequence"].as_u64().unwrap())
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");

    // Each filter selects what it says.
    let hamster = ls_json(&cluster, &["--stage", "hamster"]).await;
    assert_eq!(devices(&hamster), vec![one, two]);
    assert!(hamster.iter().all(|l| l["stage"] == "hamster"));
    let monkey = ls_json(&cluster, &["--stage", "monkey"]).await;
    assert_eq!(devices(&monkey), vec![two]);
    let invalid = ls_json(&cluster, &["--kind", "invalid"]).await;
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0]["record"], 1);
    let device_one = ls_json(&cluster, &["--device", one]).await;
    assert_eq!(devices(&device_one), vec![one]);
    assert_eq!(device_one[0]["kind"], "parse_error");
    let both = ls_json(&cluster, &["--device", two, "--stage", "hamster"]).await;
    assert_eq!(both.len(), 1);
    assert_eq!(both[0]["reason"], "teltonika parse error: truncated");
    let crc = ls_json(&cluster, &["--reason", "crc"]).await;
    assert_eq!(devices(&crc), vec![one], "case-insensitive");
    assert_eq!(ls_json(&cluster, &["--protocol", "gt06"]).await.len(), 0);
    assert_eq!(ls_json(&cluster, &["--since", "1h"]).await.len(), 3);
    assert_eq!(ls_json(&cluster, &["--until", "1h"]).await.len(), 0);
    let later = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(ls_json(&cluster, &["--since", &later]).await.len(), 0);

    // Nothing matching is not an error, and it says so.
    let out = fleetbus_ok(&cluster, &["dead", "ls", "--since", &later]).await;
    assert!(out.contains("No dead letters match"), "{out}");

    // --limit shows the oldest, the summary still counts all.
    let out = fleetbus(&cluster, &["dead", "ls", "--limit", "1"]).await;
    let table = text(&out);
    assert_eq!(
        table.lines().filter(|l| l.contains("356307042441")).count(),
        1,
        "{table}"
    );
    assert!(table.contains("3 dead letters match"), "{table}");
    assert!(table.contains("showing the oldest 1"), "{table}");

    // Listing changed nothing; an unknown kind is a usage error.
    assert_eq!(ls_json(&cluster, &[]).await, all);
    let out = fleetbus(&cluster, &["dead", "ls", "--kind", "bogus"]).await;
    assert_eq!(out.status.code(), Some(64), "EX_USAGE: {}", text(&out));

    // Nothing there at all: unreachable.
    let out = tokio::process::Command::new(common::fleetbus_bin())
        .args(["dead", "ls", "--nats-connect-wait", "0"])
        .args(["--nats-url", "nats://admin:admin@127.0.0.1:1"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot connect"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_puts_a_frame_back_where_it_came_from_once() {
    let cluster = cluster().await;
    let js = common::js(&cluster, Role::Admin).await;
    let (x, y, z) = ("356307042441010", "356307042441011", "356307042441012");
    let (fx, fy, fz) = (frame(x, 1), frame(y, 2), frame(z, 3));
    dead_frame(&js, x, &fx, 7, "teltonika parse error: unknown codec").await;
    dead_frame(&js, y, &fy, 8, "teltonika parse error: unknown codec").await;
    dead_frame(&js, z, &fz, 9, "teltonika parse error: unknown codec").await;
    let original_id = ids::raw_msg_id("teltonika", x, &fx);

    // No selection at all: refused, nothing touched.
    let (code, out) = replay(&cluster, &[]).await;
    assert_eq!(code, Some(64), "EX_USAGE: {out}");
    assert!(out.contains("--all"), "{out}");
    assert_eq!(ls_json(&cluster, &[]).await.len(), 3);

    // A dry run says what it would do and does nothing.
    let (code, out) = replay(&cluster, &["--device", x, "--dry-run"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("would be published"), "{out}");
    assert!(out.contains(&original_id), "{out}");
    assert!(raw_of(&cluster, x).await.is_empty());
    assert_eq!(ls_json(&cluster, &["--device", x]).await.len(), 1);

    let (code, out) = replay(&cluster, &["--device", x]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("stored as RAW #"), "{out}");
    assert!(
        out.contains("1 letter: 1 stored, 0 already stored, 0 failed; 1 deleted from DEAD"),
        "{out}"
    );
    // Back on RAW as the gateway had stored it: subject, id, headers, bytes.
    let back = raw_of(&cluster, x).await;
    assert_eq!(back.len(), 1, "{back:?}");
    let m = &back[0];
    assert_eq!(header(m, headers::MSG_ID), Some(original_id.as_str()));
    assert_eq!(header(m, headers::PROTOCOL), Some("teltonika"));
    assert_eq!(header(m, headers::DEVICE), Some(x));
    assert_eq!(header(m, headers::GATEWAY), Some("gw-1"));
    assert_eq!(
        header(m, headers::RECEIVED_AT),
        Some("2026-11-29T12:00:01.000Z")
    );
    for name in headers::DEAD_ALL {
        assert_eq!(
            header(m, name),
            None,
            "{name} is the dead letter's, not the frame's"
        );
    }
    assert_eq!(m.payload, fx);
    // Gone from DEAD; the other devices' letters are not.
    assert!(ls_json(&cluster, &["--device", x]).await.is_empty());
    assert_eq!(devices(&ls_json(&cluster, &[]).await), vec![y, z]);

    // Again: nothing left to replay, RAW unchanged.
    let (code, out) = replay(&cluster, &["--device", x]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("nothing replayed"), "{out}");
    assert_eq!(raw_of(&cluster, x).await.len(), 1);

    // --keep twice: stored once, the second run knows it is there.
    let (code, out) = replay(&cluster, &["--device", z, "--keep"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 stored, 0 already stored"), "{out}");
    let (code, out) = replay(&cluster, &["--device", z, "--keep"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("already stored as RAW #"), "{out}");
    assert!(
        out.contains("0 stored, 1 already stored, 0 failed"),
        "{out}"
    );
    assert_eq!(raw_of(&cluster, z).await.len(), 1, "stored once");
    assert_eq!(ls_json(&cluster, &["--device", z]).await.len(), 1, "kept");

    // By sequence.
    let seq_y = ls_json(&cluster, &["--device", y]).await[0]["sequence"].to_string();
    let (code, out) = replay(&cluster, &["--seq", &seq_y]).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(raw_of(&cluster, y).await.len(), 1);
    assert_eq!(raw_of(&cluster, y).await[0].payload, fy);
    assert_eq!(devices(&ls_json(&cluster, &[]).await), vec![z]);
    let (code, out) = replay(&cluster, &["--seq", &seq_y]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not in DEAD"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_its_target_refuses_keeps_the_letter() {
    let cluster = cluster().await;
    let js = common::js(&cluster, Role::Admin).await;

    // A frame stored, consumed and given up on minutes ago: RAW still
    // remembers its id (duplicate window) but no longer holds it. A replay
    // now would be dropped as a duplicate; it must say so and keep it.
    let (gone, full) = ("356307042441020", "356307042441021");
    let fg = frame(gone, 1);
    let raw_seq = store_raw(&js, gone, &fg).await;
    let raw = js.get_stream(names::RAW).await.unwrap();
    raw.delete_message(raw_seq).await.unwrap();
    dead_frame(
        &js,
        gone,
        &fg,
        raw_seq,
        "teltonika parse error: unknown codec",
    )
    .await;
    let (code, out) = replay(&cluster, &["--device", gone]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAILED"), "{out}");
    assert!(out.contains("duplicate window"), "{out}");
    assert!(out.contains("0 deleted from DEAD"), "{out}");
    assert_eq!(ls_json(&cluster, &["--device", gone]).await.len(), 1);
    assert!(raw_of(&cluster, gone).await.is_empty());

    // RAW full: one frame stored, max_msgs capped at one.
    store_raw(&js, "356307042441099", &frame("356307042441099", 5)).await;
    let held = common::streams::messages(&cluster, names::RAW).await.len();
    assert_eq!(held, 1);
    let set_max = |max: i64| {
        let js = js.clone();
        async move {
            let mut raw = js.get_stream(names::RAW).await.unwrap();
            let mut config = raw.info().await.unwrap().config.clone();
            config.max_messages = max;
            js.update_stream(config).await.unwrap();
        }
    };
    set_max(held as i64).await;
    let ff = frame(full, 2);
    dead_frame(&js, full, &ff, 3, "teltonika parse error: unknown codec").await;
    let (code, out) = replay(&cluster, &["--device", full]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAILED"), "{out}");
    assert!(out.contains("maximum messages"), "{out}");
    assert!(
        out.contains("1 letter: 0 stored, 0 already stored, 1 failed"),
        "{out}"
    );
    assert_eq!(
        ls_json(&cluster, &["--device", full]).await.len(),
        1,
        "kept"
    );
    assert!(raw_of(&cluster, full).await.is_empty());

    // Room again: the same replay now goes through.
    set_max(-1).await;
    let (code, out) = replay(&cluster, &["--device", full]).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(raw_of(&cluster, full).await.len(), 1);
    assert!(ls_json(&cluster, &["--device", full]).await.is_empty());
}
