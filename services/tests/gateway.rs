//! The gateway against a real three-node cluster over real TCP: devices get
//! their acknowledgement only once RAW stored the frame; bad input is
//! refused, counted, and harms nobody else.

use fleetbus_wire::names;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fleetbus_codec::{gt06, teltonika, Protocol};
use fleetbus_e2e::{wait_for, Cluster, Role};
use fleetbus_services::gateway::{Gateway, GatewayConfig};
use fleetbus_services::topology::Settings;
use fleetbus_wire::headers;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ACK_WAIT: Duration = Duration::from_secs(20);

mod common;

use common::fixes::{moving as position, teltonika_frame};
use common::metrics::{counter, error_metric, metric};
use common::streams::{delete_hamsters_durable, header, raw, raw_subjects, stream_info};
use common::{gateway, provisioned_cluster};

/// Teltonika and GT06 on free ports, everything else off.
fn config() -> GatewayConfig {
    common::gateway_config("gw-test")
}

/// A provisioned cluster, a gateway on it of [`config`] as `set` changes
/// it (what the test is about), and its Teltonika address.
async fn start(set: impl FnOnce(&mut GatewayConfig)) -> (Cluster, Gateway, SocketAddr) {
    let mut cfg = config();
    set(&mut cfg);
    let cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, cfg).await;
    let tel = gw.addr(Protocol::Teltonika).unwrap();
    (cluster, gw, tel)
}

/// A device: one TCP connection.
struct Device {
    stream: TcpStream,
}

impl Device {
    async fn connect(addr: SocketAddr) -> Device {
        Device {
            stream: TcpStream::connect(addr).await.unwrap(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Exactly `n` bytes, or `None` if the connection closed or nothing
    /// came within `wait`.
    async fn read(&mut self, n: usize, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0; n];
        match tokio::time::timeout(wait, self.stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => Some(buf),
            _ => None,
        }
    }

    /// Sends `frame` and expects exactly `reply` back.
    async fn exchange(&mut self, frame: &[u8], reply: &[u8]) {
        self.send(frame).await;
        let got = self.read(reply.len(), ACK_WAIT).await;
        assert_eq!(
            got.as_deref(),
            Some(reply),
            "reply to {}",
            hex::encode(frame)
        );
    }

    /// Whether the gateway closed the connection (without sending anything)
    /// within `wait`.
    async fn closed_silently(&mut self, wait: Duration) -> bool {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(wait, self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => panic!("expected no reply, got {}", hex::encode(&buf[..n])),
            Err(_) => false,
        }
    }
}

/// A Teltonika device that logged in.
async fn teltonika_device(addr: SocketAddr, imei: &str) -> Device {
    let mut d = Device::connect(addr).await;
    d.exchange(&teltonika::encode::login(imei), &[0x01]).await;
    d
}

/// The reply the protocol's own session gives to `frames`, in order.
fn replies(protocol: Protocol, frames: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut s = protocol.session();
    frames
        .iter()
        .map(|f| {
            s.on_frame(f)
                .unwrap()
                .reply
                .map(|b| b.to_vec())
                .unwrap_or_default()
        })
        .collect()
}

// ---- sessions ------------------------------------------------------------------

#[tokio::test]
async fn teltonika_and_gt06_sessions_end_in_raw_with_their_headers() {
    let (cluster, gw, tel) = start(|_| {}).await;

    // Teltonika: login answered 0x01, each AVL packet with its record count.
    let imei = "356307042441013";
    let mut t = teltonika_device(tel, imei).await;
    for minute in 0..3 {
        t.exchange(&teltonika_frame(imei, minute), &teltonika::encode::ack(1))
            .await;
    }
    // A resend of a frame the device already got an ack for is acked again
    // and stored once.
    t.exchange(&teltonika_frame(imei, 0), &teltonika::encode::ack(1))
        .await;

    // GT06: login and location, each answered as the protocol says.
    let gimei = "0358510051567789";
    let login = gt06::encode::login(gimei, 1);
    let location = gt06::encode::location(&position("358510051567789", "gt06", 5), 2);
    let expected = replies(Protocol::Gt06, &[&login, &location]);
    let mut g = Device::connect(gw.addr(Protocol::Gt06).unwrap()).await;
    g.exchange(&login, &expected[0]).await;
    g.exchange(&location, &expected[1]).await;

    assert_eq!(
        raw_subjects(&cluster).await,
        [
            format!("raw.teltonika.{imei}"),
            format!("raw.teltonika.{imei}"),
            format!("raw.teltonika.{imei}"),
            "raw.gt06.358510051567789".to_string(),
        ],
        "three Teltonika packets (the resend deduplicated) and one GT06 location; logins are not stored"
    );
    let first = &common::streams::messages(&cluster, names::RAW).await[0];
    assert_eq!(
        &first.payload[..],
        &teltonika_frame(imei, 0)[..],
        "the frame's bytes, unchanged"
    );
    let h = |name| header(first, name).unwrap();
    assert_eq!(h(headers::PROTOCOL), "teltonika");
    assert_eq!(h(headers::DEVICE), imei);
    assert_eq!(h(headers::GATEWAY), "gw-test");
    assert!(h(headers::PEER).starts_with("127.0.0.1:"));
    assert!(h(headers::RECEIVED_AT).ends_with('Z'));
    assert_eq!(counter(&gw, "frames_duplicate", "teltonika"), 1);
    assert_eq!(counter(&gw, "acks_sent", "teltonika"), 5);
}

#[tokio::test]
async fn pipelined_frames_are_acked_in_order_after_their_puback() {
    let (cluster, _gw, tel) = start(|_| {}).await;
    let imei = "356307042441014";
    let mut d = teltonika_device(tel, imei).await;
    // 40 packets in one write: more than the pipeline (16) holds.
    let mut burst = Vec::new();
    for minute in 0..40 {
        burst.extend_from_slice(&teltonika_frame(imei, minute));
    }
    d.send(&burst).await;
    let acks = d.read(4 * 40, ACK_WAIT).await.expect("40 acks");
    assert!(acks.chunks(4).all(|a| a == teltonika::encode::ack(1)));
    let stored = raw(&cluster).await;
    assert_eq!(stored.len(), 40);
    // Stored in the order sent: the message ids follow the frames.
    let expected: Vec<String> = (0..40)
        .map(|m| fleetbus_wire::ids::raw_msg_id("teltonika", imei, &teltonika_frame(imei, m)))
        .collect();
    let got: Vec<String> = stored.into_iter().map(|(_, id, _)| id).collect();
    assert_eq!(got, expected);
}

// ---- storage unavailable ---------------------------------------------------------

#[tokio::test]
async fn no_ack_while_the_cluster_is_down_and_one_stored_copy_after() {
    let (mut cluster, gw, addr) = start(|c| {
        c.retry_for_secs = 3;
        c.publish_timeout_ms = 500;
    })
    .await;
    let imei = "356307042441015";
    let frame = teltonika_frame(imei, 7);

    let mut d = teltonika_device(addr, imei).await;
    cluster.kill_all();
    d.send(&frame).await;
    assert!(
        d.closed_silently(Duration::from_secs(15)).await,
        "with the cluster down the gateway gives up and closes without an ack"
    );
    assert_eq!(error_metric(&gw, "teltonika", "publish", "gave_up"), 1);

    // The device still has its data: once the cluster is back it resends.
    common::back_up(&mut cluster).await;
    let acked = wait_for(
        "the resent frame is acked",
        Duration::from_secs(60),
        || async {
            let mut d = teltonika_device(addr, imei).await;
            d.send(&frame).await;
            Ok(d.read(4, Duration::from_secs(10)).await)
        },
    )
    .await
    .unwrap();
    assert_eq!(acked, teltonika::encode::ack(1));
    let stored = raw(&cluster).await;
    assert_eq!(stored.len(), 1, "stored exactly once: {stored:?}");
}

/// With no consumer, nobody would ever parse what RAW stores: it would
/// wait unread until `max_age` removed it. A gateway must then acknowledge
/// no device, or the device would forget data nobody will read.
#[tokio::test]
async fn no_ack_while_raw_has_no_consumer_to_keep_frames() {
    let (cluster, gw, addr) = start(|c| c.raw_check_ms = 100).await;
    let imei = "356307042441016";
    let mut d = teltonika_device(addr, imei).await;
    d.exchange(&teltonika_frame(imei, 1), &teltonika::encode::ack(1))
        .await;
    assert!(gw.raw_is_kept());

    // An operator deletes the hamsters' durable.
    let admin = common::js(&cluster, Role::Admin).await;
    delete_hamsters_durable(&admin).await;
    wait_for("the gateway notices", Duration::from_secs(30), || async {
        Ok((!gw.raw_is_kept()).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(metric(&gw, "fleetbus_gateway_raw_consumers"), 0);
    d.send(&teltonika_frame(imei, 2)).await;
    assert!(
        d.closed_silently(Duration::from_secs(15)).await,
        "no ack for a frame nobody would keep"
    );
    assert_eq!(error_metric(&gw, "teltonika", "publish", "no_consumer"), 1);

    // Provisioned again: frames are stored and acknowledged again.
    common::provision(&admin, &Settings::default()).await;
    wait_for(
        "the gateway stores again",
        Duration::from_secs(30),
        || async { Ok(gw.raw_is_kept().then_some(())) },
    )
    .await
    .unwrap();
    let mut d = teltonika_device(addr, imei).await;
    d.exchange(&teltonika_frame(imei, 2), &teltonika::encode::ack(1))
        .await;
    // RAW keeps by limits, swept by the hamsters (none runs here): the
    // first frame and the one after the new consumer, not the refused one
    // in between (that one the device sent again).
    let stored = raw(&cluster).await;
    assert_eq!(
        stored.len(),
        2,
        "the first frame and the one after the new consumer: {stored:?}"
    );
}

#[tokio::test]
async fn kill_9_of_the_raw_leader_mid_session_loses_and_duplicates_nothing() {
    let (mut cluster, _gw, addr) = start(|_| {}).await;
    let imei = "356307042441016";
    let mut d = teltonika_device(addr, imei).await;
    let leader = cluster.stream_leader(names::RAW).await.unwrap();
    let victim = cluster.node_index(&leader).unwrap();
    let started = Instant::now();
    let mut longest = Duration::ZERO;
    for minute in 0..30 {
        if minute == 10 {
            cluster.kill(victim);
        }
        let t = Instant::now();
        // The same connection throughout: the device notices nothing but a
        // slower ack while a new leader is elected.
        d.exchange(&teltonika_frame(imei, minute), &teltonika::encode::ack(1))
            .await;
        longest = longest.max(t.elapsed());
    }
    eprintln!(
        "kill -9 of {leader} mid-session: longest ack {longest:?}, 30 frames in {:?}",
        started.elapsed()
    );
    let stored = raw(&cluster).await;
    let mut ids: Vec<String> = stored.iter().map(|(_, id, _)| id.clone()).collect();
    assert_eq!(ids.len(), 30, "every acked frame is stored, once");
    ids.dedup();
    assert_eq!(ids.len(), 30);
    assert_ne!(cluster.stream_leader(names::RAW).await.unwrap(), leader);
}

// ---- bad input ----------------------------------------------------------------------

#[tokio::test]
async fn bad_input_is_refused_counted_and_harms_no_other_device() {
    let (cluster, gw, tel) = start(|_| {}).await;
    let gt = gw.addr(Protocol::Gt06).unwrap();

    // An honest device keeps working between every bad case.
    let honest = "356307042441017";
    let mut good = teltonika_device(tel, honest).await;
    let mut minute = 0;
    let mut honest_frame = async |good: &mut Device| {
        good.exchange(&teltonika_frame(honest, minute), &teltonika::encode::ack(1))
            .await;
        minute += 1;
    };

    // Oversize: a Teltonika packet announcing 1 MiB is refused from its header.
    let mut d = teltonika_device(tel, "356307042441018").await;
    d.send(&[0, 0, 0, 0, 0, 0x10, 0, 0, 0x08]).await;
    assert!(d.closed_silently(Duration::from_secs(5)).await, "oversize");
    assert_eq!(error_metric(&gw, "teltonika", "frame", "too_large"), 1);
    honest_frame(&mut good).await;

    // Bad CRC: no ack, the device will resend.
    let mut d = teltonika_device(tel, "356307042441019").await;
    let mut bad = teltonika_frame("356307042441019", 1).to_vec();
    *bad.last_mut().unwrap() ^= 0xff;
    d.send(&bad).await;
    assert!(d.closed_silently(Duration::from_secs(5)).await, "bad crc");
    assert_eq!(error_metric(&gw, "teltonika", "frame", "bad_checksum"), 1);
    honest_frame(&mut good).await;

    // Garbage instead of a login.
    let mut d = Device::connect(tel).await;
    d.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(d.closed_silently(Duration::from_secs(5)).await, "garbage");
    let garbage: u64 = ["too_large", "malformed", "bad_identity"]
        .iter()
        .map(|t| {
            error_metric(&gw, "teltonika", "frame", t)
                + error_metric(&gw, "teltonika", "session", t)
        })
        .sum();
    assert_eq!(
        garbage,
        2,
        "the oversize case and the garbage:\n{}",
        gw.metrics.render()
    );
    honest_frame(&mut good).await;

    // Data before login (GT06 location first).
    let mut d = Device::connect(gt).await;
    d.send(&gt06::encode::location(
        &position("358510051567790", "gt06", 1),
        1,
    ))
    .await;
    assert!(
        d.closed_silently(Duration::from_secs(5)).await,
        "data before login"
    );
    assert_eq!(error_metric(&gw, "gt06", "session", "not_identified"), 1);

    // An unknown but well-framed message type does not end the session:
    // it is stored (the parsers dead-letter it with its reason), and the
    // next location is acked as usual.
    let login = gt06::encode::login("358510051567791", 1);
    let unknown = gt06::encode::frame(0x77, &[1, 2, 3], 2);
    let location = gt06::encode::location(&position("358510051567791", "gt06", 2), 3);
    let expected = replies(Protocol::Gt06, &[&login, &unknown, &location]);
    let mut d = Device::connect(gt).await;
    d.exchange(&login, &expected[0]).await;
    d.exchange(&unknown, &expected[1]).await;
    d.exchange(&location, &expected[2]).await;
    honest_frame(&mut good).await;

    // Nothing was published for refused input: the honest device's four
    // packets and the well-framed GT06 pair only.
    assert_eq!(
        raw_subjects(&cluster).await,
        [
            format!("raw.teltonika.{honest}").as_str(),
            &format!("raw.teltonika.{honest}"),
            &format!("raw.teltonika.{honest}"),
            "raw.gt06.358510051567791",
            "raw.gt06.358510051567791",
            &format!("raw.teltonika.{honest}"),
        ]
    );
}

#[tokio::test]
async fn idle_and_half_open_connections_are_closed() {
    let (cluster, gw, tel) = start(|c| c.idle_timeout_secs = 1).await;

    let mut silent = Device::connect(tel).await;
    // Half a frame and then nothing: a stalled or half-open device.
    let mut half = teltonika_device(tel, "356307042441020").await;
    half.send(&teltonika_frame("356307042441020", 0)[..10])
        .await;
    assert!(silent.closed_silently(Duration::from_secs(5)).await);
    assert!(half.closed_silently(Duration::from_secs(5)).await);
    assert_eq!(
        error_metric(&gw, "teltonika", "connection", "idle_timeout"),
        2
    );
    assert!(raw(&cluster).await.is_empty());
}

#[tokio::test]
async fn a_connection_limit_refuses_the_excess_and_recovers() {
    let (_cluster, gw, tel) = start(|c| c.max_connections = 2).await;

    let a = teltonika_device(tel, "356307042441021").await;
    let mut b = teltonika_device(tel, "356307042441022").await;
    let mut c = Device::connect(tel).await;
    c.send(&teltonika::encode::login("356307042441023")).await;
    assert!(
        c.closed_silently(Duration::from_secs(5)).await,
        "third connection refused"
    );
    assert_eq!(
        error_metric(&gw, "teltonika", "accept", "connection_limit"),
        1
    );
    // The admitted devices are unaffected.
    b.exchange(
        &teltonika_frame("356307042441022", 0),
        &teltonika::encode::ack(1),
    )
    .await;

    drop(a);
    // Once a slot is free (and the accept backoff passed) devices get in again.
    wait_for(
        "a new device is admitted",
        Duration::from_secs(10),
        || async {
            let mut d = Device::connect(tel).await;
            d.send(&teltonika::encode::login("356307042441024")).await;
            Ok(d.read(1, Duration::from_secs(2))
                .await
                .filter(|r| r == &[1]))
        },
    )
    .await
    .unwrap();
}

// ---- scale ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_devices_sending_at_once_are_all_acked_and_stored() {
    const DEVICES: usize = 2_000;
    // 2,000 devices are 4,000 sockets in this one process.
    let limit = fleetbus_services::ops::raise_open_files_limit().unwrap();
    assert!(
        limit >= 5_000,
        "open files limit {limit} is too low for this test"
    );
    let (cluster, _gw, tel) = start(|_| {}).await;

    // Every device connects and logs in first, then all send at once.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(DEVICES + 1));
    let mut tasks = Vec::new();
    for i in 0..DEVICES {
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let imei = format!("35000000{i:07}");
            // Each from an address of its own, as devices on a mobile
            // network (one address holds at most 1,000 by default).
            let source = [127, 1, (i / 250) as u8, (i % 250 + 1) as u8];
            let mut d = teltonika_device_from(source, tel, &imei).await;
            start.wait().await;
            d.send(&teltonika_frame(&imei, 1)).await;
            d.read(4, Duration::from_secs(60)).await
        }));
    }
    start.wait().await;
    let t = Instant::now();
    let mut acked = 0;
    for task in tasks {
        if task.await.unwrap() == Some(teltonika::encode::ack(1).to_vec()) {
            acked += 1;
        }
    }
    eprintln!("{DEVICES} devices at once: all acked in {:?}", t.elapsed());
    assert_eq!(acked, DEVICES);
    let js = common::js(&cluster, Role::Admin).await;
    let info = stream_info(&js, names::RAW).await.unwrap();
    assert_eq!(info.state.messages, DEVICES as u64);
    assert_eq!(
        info.state.subjects_count, DEVICES as u64,
        "one message per device"
    );
}

// ---- limits per source address ---------------------------------------------------

/// A connection to `addr` from the loopback address `source`: all of
/// 127.0.0.0/8 is this host, so one test can be several hosts.
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> Device {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    Device {
        stream: socket.connect(addr).await.unwrap(),
    }
}

/// A Teltonika device on `source` that logged in.
async fn teltonika_device_from(source: [u8; 4], addr: SocketAddr, imei: &str) -> Device {
    let mut d = connect_from(source, addr).await;
    d.exchange(&teltonika::encode::login(imei), &[0x01]).await;
    d
}

#[tokio::test]
async fn one_address_holding_its_connections_leaves_every_other_address_theirs() {
    let (cluster, gw, tel) = start(|c| c.max_connections_per_source = 3).await;
    let flooder = [127, 0, 0, 1];

    // A keep-alive flood from one host: logins held open, nothing else.
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(teltonika_device_from(flooder, tel, &format!("35630704244103{i}")).await);
    }
    let mut fourth = connect_from(flooder, tel).await;
    fourth
        .send(&teltonika::encode::login("356307042441039"))
        .await;
    assert!(
        fourth.closed_silently(Duration::from_secs(5)).await,
        "a fourth connection from the same address is closed"
    );
    assert_eq!(
        error_metric(&gw, "teltonika", "accept", "source_connection_limit"),
        1
    );

    // An honest device on another address connects and is acknowledged.
    let honest = "356307042441040";
    let mut d = teltonika_device_from([127, 0, 0, 2], tel, honest).await;
    d.exchange(&teltonika_frame(honest, 0), &teltonika::encode::ack(1))
        .await;
    assert_eq!(
        raw_subjects(&cluster).await,
        [format!("raw.teltonika.{honest}")]
    );

    // One of the flood's connections closing frees a slot for its address.
    drop(held.pop());
    wait_for(
        "the address gets a connection again",
        Duration::from_secs(10),
        || async {
            let mut d = connect_from(flooder, tel).await;
            d.send(&teltonika::encode::login("356307042441041")).await;
            Ok(d.read(1, Duration::from_secs(2))
                .await
                .filter(|r| r == &[1]))
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_address_opening_connections_too_fast_is_refused_beyond_its_rate() {
    // One a second, in bursts of ten seconds' worth.
    let (_cluster, gw, tel) = start(|c| c.accept_rate_per_source = 1).await;
    const TRIES: usize = 30;
    let mut tries = Vec::new();
    for _ in 0..TRIES {
        tries.push(connect_from([127, 0, 0, 3], tel).await);
    }
    let mut admitted = 0;
    for (i, d) in tries.iter_mut().enumerate() {
        d.send(&teltonika::encode::login(&format!("3563070424411{i:02}")))
            .await;
        if d.read(1, Duration::from_secs(5)).await.as_deref() == Some(&[1]) {
            admitted += 1;
        }
    }
    let refused = error_metric(&gw, "teltonika", "accept", "accept_rate");
    assert_eq!(
        admitted + refused as usize,
        TRIES,
        "each admitted or refused"
    );
    // The burst, and the rate for the time the connects took (well under
    // the slack of five).
    assert!(
        (10..=15).contains(&admitted),
        "{admitted} of {TRIES} admitted"
    );
    // Another address is not held back by it.
    teltonika_device_from([127, 0, 0, 4], tel, "356307042441199").await;
}

#[tokio::test]
async fn a_device_that_never_identifies_or_sends_only_keepalives_is_closed() {
    let (cluster, gw, tel) = start(|c| {
        c.identify_timeout_secs = 1;
        c.data_timeout_secs = 3;
    })
    .await;
    let gt = gw.addr(Protocol::Gt06).unwrap();

    // Connected, never a word: closed after identify_timeout_secs, long
    // before the idle timeout (ten minutes).
    let mut silent = Device::connect(tel).await;
    assert!(silent.closed_silently(Duration::from_secs(10)).await);
    assert_eq!(
        error_metric(&gw, "teltonika", "session", "identify_timeout"),
        1
    );

    // A GT06 login and then heartbeats every half second: each is
    // answered, but after data_timeout_secs without a position the
    // connection is closed.
    let imei = "356307042441201";
    let login = gt06::encode::login(imei, 1);
    let mut keepalive = Device::connect(gt).await;
    let replies = replies(Protocol::Gt06, &[&login]);
    keepalive.exchange(&login, &replies[0]).await;
    let status = gt06::encode::TerminalStatus::default();
    let started = Instant::now();
    let mut serial = 2;
    let closed = loop {
        let hb = gt06::encode::heartbeat(&status, serial);
        keepalive.send(&hb).await;
        serial += 1;
        // The heartbeat's answer, or the close.
        if keepalive.read(10, Duration::from_secs(5)).await.is_none() {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never closed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(closed >= Duration::from_secs(3), "closed after {closed:?}");
    assert_eq!(error_metric(&gw, "gt06", "connection", "data_timeout"), 1);

    // A device sending positions as often stays connected through the same
    // time, and its data is stored.
    let steady = "356307042441202";
    let mut d = teltonika_device(tel, steady).await;
    for minute in 0..8 {
        d.exchange(&teltonika_frame(steady, minute), &teltonika::encode::ack(1))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        error_metric(&gw, "teltonika", "connection", "data_timeout"),
        0
    );
    let subjects = raw_subjects(&cluster).await;
    assert!(
        subjects.contains(&format!("raw.teltonika.{steady}")),
        "{subjects:?}"
    );
}

#[tokio::test]
async fn a_second_connection_of_a_device_takes_over_and_the_first_is_closed() {
    let (cluster, gw, tel) = start(|_| {}).await;
    let imei = "356307042441401";
    let other = "356307042441402";
    let mut old = teltonika_device(tel, imei).await;
    old.exchange(&teltonika_frame(imei, 0), &teltonika::encode::ack(1))
        .await;
    let mut bystander = teltonika_device(tel, other).await;

    // The tracker reconnects (its old socket is not known to be dead yet).
    let mut new = teltonika_device(tel, imei).await;
    assert!(
        old.closed_silently(Duration::from_secs(10)).await,
        "the older connection is closed"
    );
    assert_eq!(error_metric(&gw, "teltonika", "connection", "replaced"), 1);
    // The newer one carries on, and another device is not touched.
    new.exchange(&teltonika_frame(imei, 1), &teltonika::encode::ack(1))
        .await;
    bystander
        .exchange(&teltonika_frame(other, 0), &teltonika::encode::ack(1))
        .await;
    // The closed connection letting go does not take the device from the
    // newer one: a third frame still goes through it.
    new.exchange(&teltonika_frame(imei, 2), &teltonika::encode::ack(1))
        .await;
    assert_eq!(error_metric(&gw, "teltonika", "connection", "replaced"), 1);
    assert_eq!(raw(&cluster).await.len(), 4);
}
