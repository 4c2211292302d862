//! The whole pipeline with real parts: a device over TCP, the gateway, a
//! hamster process and a monkey process on a real three-node cluster; the
//! device's latest position and events come out right although its fixes
//! arrive out of order.

mod common;

use fleetbus_wire::names;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::fixes::{at_minute, position_at};
use common::streams::{stream_count, wait_latest};
use common::WAIT;
use fleetbus_codec::{teltonika, Protocol};
use fleetbus_e2e::{wait_for, Proc, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn fix(imei: &str, minute: u32, ignition: bool, speed: f64) -> Bytes {
    let mut p = position_at(imei, "teltonika", at_minute(minute));
    p.speed = speed;
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
    let cluster = common::provisioned_cluster().await;
    let admin = common::js(&cluster, Role::Admin).await;

    // One of each: a device's fixes are handled in the order sent (its
    // partition's worker handles them one after the other).
    let worker = |role: Role| common::spec(&cluster, role, role.name());
    let mut hamster = Proc::start(worker(Role::Hamster), dir.path()).unwrap();
    let mut monkey = Proc::start(worker(Role::Monkey), dir.path()).unwrap();
    // And the janitor, which sweeps what they processed.
    let _janitor = Proc::start(worker(Role::Janitor), dir.path()).unwrap();

    let config = common::only_protocols("gw-pipeline", &["teltonika"]);
    let gateway = common::gateway(&cluster, config).await;

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

    let entry = wait_latest(&admin, imei, "2026-11-29T12:40:00.000Z").await;
    assert_eq!(entry["position"]["attributes"]["ignition"], false);
    assert_eq!(entry["position"]["latitude"], 54.6872);

    wait_for("PARSED processed", WAIT, || async {
        let parsed = stream_count(&admin, names::PARSED).await?;
        let events = stream_count(&admin, names::EVENTS).await?;
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
    assert_eq!(stream_count(&admin, names::DEAD).await.unwrap(), 0);

    gateway.shutdown().await;
    for p in [&mut hamster, &mut monkey] {
        common::stop(p).await;
    }
    eprintln!("pipeline test: {:?}", t0.elapsed());
}
