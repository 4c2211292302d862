//! The whole pipeline with real parts: a device over TCP, the gateway, a
//! hamster process and a monkey process on a real three-node cluster; the
//! device's latest position and events come out right although its fixes
//! arrive out of order.

mod common;

use fleetbus_wire::names;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use fleetbus_codec::{teltonika, Position, Protocol};
use fleetbus_e2e::{wait_for, Cluster, Proc, Role, Spec};
use fleetbus_services::gateway::{Gateway, GatewayConfig};
use fleetbus_services::topology::{self, Scope, Settings};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(60);

fn fix(imei: &str, minute: u32, ignition: bool, speed: f64) -> Bytes {
    let mut p = Position::new(
        imei,
        "teltonika",
        Utc.with_ymd_and_hms(2026, 11, 29, 12, minute, 0).unwrap(),
    );
    p.valid = true;
    p.latitude = 54.6872;
    p.longitude = 25.2797;
    p.speed = speed;
    p.satellites = Some(9);
    p.set("ignition", ignition);
    teltonika::encode::codec8(&[p]).unwrap()
}

async fn exchange(stream: &mut TcpStream, frame: &[u8], reply: &[u8]) {
    stream.write_all(frame).await.unwrap();
    let mut got = vec![0; reply.len()];
    tokio::time::timeout(Duration::from_secs(20), stream.read_exact(&mut got))
        .await
        .expect("an ack within 20 s")
        .unwrap();
    assert_eq!(got, reply);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_s_fixes_become_its_latest_position_and_events() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start().await.unwrap();
    let admin = jetstream::new(cluster.connect(Role::Admin).await.unwrap());
    topology::provision(&admin, &Settings::default(), &Scope::all(), WAIT)
        .await
        .unwrap();

    // One worker each, so that the fixes are handled in the order sent.
    let worker = |role: Role| {
        Spec::new(role.name(), env!("CARGO_BIN_EXE_fleetbus"))
            .args([role.name(), "--concurrency", "1"])
            .envs(cluster.service_env(role))
    };
    let mut hamster = Proc::start(worker(Role::Hamster), dir.path()).unwrap();
    let mut monkey = Proc::start(worker(Role::Monkey), dir.path()).unwrap();

    let mut config = GatewayConfig {
        id: "gw-pipeline".into(),
        bind: [127, 0, 0, 1].into(),
        ..GatewayConfig::default()
    };
    for (name, listener) in config.protocols.iter_mut() {
        listener.port = 0;
        listener.enabled = name == "teltonika";
    }
    let client = cluster
        .connect_options(Role::Gateway)
        .connect(cluster.client_urls())
        .await
        .unwrap();
    let gateway = Gateway::start(config, client).await.unwrap();

    let imei = "356307042441013";
    let mut device = TcpStream::connect(gateway.addr(Protocol::Teltonika).unwrap())
        .await
        .unwrap();
    exchange(&mut device, &teltonika::encode::login(imei), &[1]).await;
    // 12:10 parked, 12:30 driving fast, then 12:20 arriving late, 12:40 parked.
    for (minute, ignition, speed) in [
        (10, false, 0.0),
        (30, true, 130.0),
        (20, true, 50.0),
        (40, false, 0.0),
    ] {
        exchange(
            &mut device,
            &fix(imei, minute, ignition, speed),
            &teltonika::encode::ack(1),
        )
        .await;
    }

    let kv = admin.get_key_value(names::DEVICES_BUCKET).await.unwrap();
    let entry: Value = wait_for("the latest position", WAIT, || async {
        let Some(value) = kv.get(imei).await? else {
            return Ok(None);
        };
        let v: Value = serde_json::from_slice(&value)?;
        Ok((v["position"]["fix_time"] == "2026-11-29T12:40:00.000Z").then_some(v))
    })
    .await
    .unwrap();
    assert_eq!(entry["position"]["attributes"]["ignition"], false);
    assert_eq!(entry["position"]["latitude"], 54.6872);

    wait_for("PARSED processed", WAIT, || async {
        let parsed = admin
            .get_stream(names::PARSED)
            .await?
            .info()
            .await?
            .state
            .messages;
        let events = admin
            .get_stream(names::EVENTS)
            .await?
            .info()
            .await?
            .state
            .messages;
        Ok((parsed == 0 && events >= 3).then_some(()))
    })
    .await
    .unwrap();
    let events: Vec<(String, String)> = common::events(&cluster)
        .await
        .into_iter()
        .map(|(kind, fix_time)| (kind, fix_time[11..16].to_string()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("ignitionOn", "12:30"),
        ("overspeed", "12:30"),
        ("ignitionOff", "12:40"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(events, expected, "the late 12:20 fix changes nothing");
    let dead = admin
        .get_stream(names::DEAD)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(dead, 0);

    gateway.shutdown().await;
    for p in [&mut hamster, &mut monkey] {
        let status = p.terminate(Duration::from_secs(30)).await.unwrap();
        assert_eq!(status.code(), Some(0), "{}", p.log_tail(20));
    }
    eprintln!("pipeline test: {:?}", t0.elapsed());
}
