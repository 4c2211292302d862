//! The device network as an attacker on it sees fleetbus, over real
//! processes: a gateway process (`fleetbus gateway`), hamsters, monkeys and
//! the janitor on a real three-node cluster, attacked with real sockets
//! from several loopback addresses (all of 127.0.0.0/8 is this host, so one
//! test is several hosts). Each attack is judged where an operator would
//! look: the honest device's acknowledgements and its latest position in
//! the `devices` bucket, the buckets' sizes, the gateway's `/metrics`.
//! docs/security.md maps each row of its threat model to these tests and to
//! the narrower ones in `services/tests/`.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use fleetbus_codec::{gps103, teltonika, Position};
use fleetbus_e2e::scenario::admin;
use fleetbus_e2e::{http, wait_for, Role, System, SystemOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(30);
const HONEST: &str = "356307042441013";
const UDP_DEVICE: &str = "864895031234567";

async fn system(gateway_toml: &str) -> System {
    System::start(SystemOptions {
        gateways: 1,
        protocols: vec!["teltonika", "gps103"],
        udp: vec!["gps103"],
        gateway_toml: gateway_toml.into(),
        ..SystemOptions::default()
    })
    .await
    .expect("the system starts")
}

/// `fleetbus <args>` as admin, which must succeed.
async fn fleetbus_ok(sys: &System, args: &[&str]) -> String {
    let out = sys.fleetbus(Role::Admin, args).await.unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        fleetbus_e2e::text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sum of the gateway's series whose line starts with `start`.
async fn metric(sys: &System, start: &str) -> u64 {
    let g = &sys.gateways[0];
    let (_, text) = http::get_at(&g.host, g.http, "/metrics").await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(start))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits until the gateway's copy of the registry holds `n` devices.
async fn registry_holds(sys: &System, n: u64) {
    wait_for("the gateway's registry copy", WAIT, || async {
        let v = metric(sys, "fleetbus_gateway_registry_devices ").await;
        Ok((v >= n).then_some(()))
    })
    .await
    .unwrap();
}

fn tcp_addr(sys: &System, protocol: &str) -> SocketAddr {
    let g = &sys.gateways[0];
    format!("{}:{}", g.host, g.ports[protocol]).parse().unwrap()
}

/// A TCP connection from the loopback address `source`.
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Sends `bytes` and reads `n` bytes back; `None` when the gateway closed
/// the connection instead.
async fn exchange(s: &mut TcpStream, bytes: &[u8], n: usize) -> Option<Vec<u8>> {
    s.write_all(bytes).await.ok()?;
    let mut got = vec![0; n];
    match tokio::time::timeout(WAIT, s.read_exact(&mut got)).await {
        Ok(Ok(_)) => Some(got),
        Ok(Err(_)) => None,
        Err(_) => panic!("neither an answer nor a close within {WAIT:?}"),
    }
}

/// Whether the gateway closes `s` within `within` (without a word).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(within, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn fix(device: &str, at: DateTime<Utc>) -> Position {
    let mut p = Position::new(device, "teltonika", at);
    p.valid = true;
    p.latitude = 54.6872;
    p.longitude = 25.2797;
    p.satellites = Some(9);
    p
}

/// One Codec 8 frame of `p`, acknowledged with its record count.
async fn send_fix(s: &mut TcpStream, p: &Position) {
    let frame = teltonika::encode::codec8(std::slice::from_ref(p)).unwrap();
    let ack = exchange(s, &frame, 4).await;
    assert_eq!(
        ack,
        Some(teltonika::encode::ack(1).to_vec()),
        "the fix is acked"
    );
}

/// The `devices` bucket's entry of `device` once its latest fix is `at`.
async fn latest_is(sys: &System, device: &str, at: DateTime<Utc>) -> serde_json::Value {
    let js = admin(sys).await;
    let kv = js.get_key_value("devices").await.unwrap();
    let want = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    wait_for("the latest position", WAIT, || async {
        let Some(entry) = kv.get(device).await? else {
            return Ok(None);
        };
        let v: serde_json::Value = serde_json::from_slice(&entry)?;
        Ok((v["position"]["fix_time"] == want.as_str()).then_some(v))
    })
    .await
    .unwrap()
}

async fn bucket_size(sys: &System, bucket: &str) -> u64 {
    let js = admin(sys).await;
    let kv = js.get_key_value(bucket).await.unwrap();
    kv.status().await.unwrap().values()
}

/// The EVENTS stream's payloads, all of them.
async fn events(sys: &System) -> Vec<String> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    use futures::StreamExt;
    let js = admin(sys).await;
    let stream = js.get_stream("EVENTS").await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer
        .fetch()
        .max_messages(10_000)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(Ok(m)) = batch.next().await {
        out.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    out
}

/// Datagrams `socket` receives until it has been quiet for `quiet`.
async fn replies(socket: &UdpSocket, quiet: Duration) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok(Ok(n)) = tokio::time::timeout(quiet, socket.recv(&mut buf)).await {
        out.push(buf[..n].to_vec());
    }
    out
}

/// Under `admission = "known"` (the default): a host holding connections
/// with keep-alives, a flood of made-up IMEIs, a fix from 2099 and a
/// spoofed 64 KB datagram, each while an honest device goes on.
#[tokio::test]
async fn an_attacker_on_the_device_network_cannot_crowd_out_impersonate_or_freeze_a_device() {
    let sys = system("max_connections_per_source = 20\nidentify_timeout_secs = 3\n").await;
    fleetbus_ok(&sys, &["device", "add", HONEST, "--protocol", "teltonika"]).await;
    fleetbus_ok(&sys, &["device", "add", UDP_DEVICE, "--protocol", "gps103"]).await;
    registry_holds(&sys, 2).await;
    let tel = tcp_addr(&sys, "teltonika");

    // 1. One host (127.0.0.2) takes every connection it may and holds them
    // without a word: its limit is 20, the rest are closed at once, and the
    // held ones when they have not identified within 3 s. Meanwhile an
    // honest device on another address logs in and is acknowledged.
    let mut held = Vec::new();
    for _ in 0..25 {
        held.push(connect_from([127, 0, 0, 2], tel).await);
    }
    let mut honest = connect_from([127, 0, 0, 1], tel).await;
    let login = exchange(&mut honest, &teltonika::encode::login(HONEST), 1).await;
    assert_eq!(
        login,
        Some(vec![1]),
        "the honest device logs in during the flood"
    );
    let now = Utc::now();
    let first = Utc.timestamp_opt(now.timestamp() - 120, 0).unwrap();
    send_fix(&mut honest, &fix(HONEST, first)).await;
    latest_is(&sys, HONEST, first).await;
    let refused = "fleetbus_gateway_errors_total{protocol=\"teltonika\",stage=\"accept\",error_type=\"source_connection_limit\"}";
    assert_eq!(
        metric(&sys, refused).await,
        5,
        "the 21st connection on is refused"
    );
    for (i, s) in held.iter_mut().enumerate() {
        assert!(
            closed_within(s, WAIT).await,
            "held connection {i} is never closed"
        );
    }
    assert!(
        metric(&sys, "fleetbus_gateway_errors_total{protocol=\"teltonika\",stage=\"session\",error_type=\"identify_timeout\"}").await >= 20
    );

    // 2. A flood of made-up IMEIs from a third address: every one refused
    // before anything is stored or answered; no bucket grows.
    let (devices, pending) = (
        bucket_size(&sys, "devices").await,
        bucket_size(&sys, "pending").await,
    );
    let stored = metric(&sys, "fleetbus_gateway_frames_stored_total").await;
    for i in 0..200u64 {
        let imei = format!("35{:013}", 7_000_000_000_000u64 + i * 7919);
        let mut s = connect_from([127, 0, 0, 3], tel).await;
        let frame = teltonika::encode::codec8(&[fix(&imei, first)]).unwrap();
        s.write_all(&teltonika::encode::login(&imei)).await.unwrap();
        let _ = s.write_all(&frame).await;
        assert!(closed_within(&mut s, WAIT).await, "{imei} was answered");
    }
    let unknown = "fleetbus_gateway_errors_total{protocol=\"teltonika\",stage=\"session\",error_type=\"unknown_device\"}";
    assert_eq!(metric(&sys, unknown).await, 200);
    assert_eq!(
        metric(&sys, "fleetbus_gateway_frames_stored_total").await,
        stored
    );
    assert_eq!(bucket_size(&sys, "devices").await, devices);
    assert_eq!(bucket_size(&sys, "pending").await, pending);

    // 3. One fix dated 2099 (forged, or a device's broken clock) does not
    // become the latest position: the next real fix does, and the forged
    // one is flagged.
    let future = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
    send_fix(&mut honest, &fix(HONEST, future)).await;
    let second = Utc.timestamp_opt(now.timestamp() - 60, 0).unwrap();
    send_fix(&mut honest, &fix(HONEST, second)).await;
    latest_is(&sys, HONEST, second).await;
    let flagged = wait_for("the futureFix event", WAIT, || async {
        let found = events(&sys)
            .await
            .into_iter()
            .find(|e| e.contains("futureFix") && e.contains(HONEST));
        Ok(found)
    })
    .await
    .unwrap();
    assert!(flagged.contains("2099"), "{flagged}");

    // 4. A spoofed datagram of 64 KB of heartbeats, to reflect thousands of
    // replies at whoever its source names, draws at most udp_max_messages
    // (16) replies: none, as it is refused whole; 16 heartbeats draw 16.
    let udp: SocketAddr = tcp_addr(&sys, "gps103");
    let victim = UdpSocket::bind("127.0.0.4:0").await.unwrap();
    victim.connect(udp).await.unwrap();
    let heartbeat = gps103::encode::heartbeat(UDP_DEVICE).to_vec();
    victim.send(&heartbeat.repeat(16)).await.unwrap();
    let answered = replies(&victim, Duration::from_secs(3)).await;
    assert_eq!(
        answered.concat(),
        b"ON".repeat(16),
        "16 heartbeats, 16 replies"
    );
    let flood = heartbeat.repeat(65_000 / heartbeat.len());
    assert!(flood.len() > 64_000);
    victim.send(&flood).await.unwrap();
    let reflected = replies(&victim, Duration::from_secs(3)).await;
    let replies_count = reflected.concat().len() / 2;
    assert!(
        replies_count <= 16,
        "{replies_count} replies to one datagram"
    );
    assert_eq!(replies_count, 0, "the oversized datagram is refused whole");

    // After all of it the honest device is still connected and served.
    let third = Utc.timestamp_opt(now.timestamp() - 30, 0).unwrap();
    send_fix(&mut honest, &fix(HONEST, third)).await;
    latest_is(&sys, HONEST, third).await;
}

/// Under `admission = "register"`: an unknown device is refused and held
/// in `pending` with nothing of it stored; once an operator accepts it
/// (`fleetbus device accept`) its next connection is served.
#[tokio::test]
async fn an_unknown_device_waits_in_pending_until_an_operator_accepts_it() {
    let sys = system("admission = \"register\"\n").await;
    registry_holds(&sys, 0).await;
    let tel = tcp_addr(&sys, "teltonika");
    let newcomer = "356307042441777";
    let at = Utc.timestamp_opt(Utc::now().timestamp() - 60, 0).unwrap();

    let mut s = connect_from([127, 0, 0, 1], tel).await;
    assert_eq!(
        exchange(&mut s, &teltonika::encode::login(newcomer), 1).await,
        None
    );
    let listed = wait_for("the newcomer held in pending", WAIT, || async {
        let out = fleetbus_ok(&sys, &["device", "pending", "--json"]).await;
        Ok(out.contains(newcomer).then_some(out))
    })
    .await
    .unwrap();
    assert!(listed.contains("\"teltonika\""), "{listed}");
    assert_eq!(
        metric(&sys, "fleetbus_gateway_frames_stored_total").await,
        0
    );
    assert_eq!(bucket_size(&sys, "devices").await, 0);

    fleetbus_ok(&sys, &["device", "accept", newcomer]).await;
    registry_holds(&sys, 1).await;
    assert!(!fleetbus_ok(&sys, &["device", "pending", "--json"])
        .await
        .contains(newcomer));
    let mut s = connect_from([127, 0, 0, 1], tel).await;
    assert_eq!(
        exchange(&mut s, &teltonika::encode::login(newcomer), 1).await,
        Some(vec![1])
    );
    send_fix(&mut s, &fix(newcomer, at)).await;
    latest_is(&sys, newcomer, at).await;
}
