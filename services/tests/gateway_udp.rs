//! The gateway's UDP side against a real three-node cluster over real UDP
//! sockets: a datagram's messages are stored in RAW exactly as over TCP and
//! answered only after their PubAck; bad datagrams are refused whole and
//! counted; with storage down no reply goes out.

use fleetbus_wire::names;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use fleetbus_codec::{gl200, gps103, h02, Protocol};
use fleetbus_e2e::{wait_for, Cluster};
use fleetbus_services::gateway::{Gateway, GatewayConfig};
use fleetbus_wire::headers;
use fleetbus_wire::ids::raw_msg_id;
use tokio::net::UdpSocket;

mod common;

use common::fixes::moving as position;
use common::metrics::{counter, error_metric, wait_metric};
use common::streams::{header, raw, raw_subjects};
use common::{gateway, provisioned_cluster};

/// A binary `+ACK` (36 bytes, no device id) from Traccar's Queclink tests.
const GL200_BINARY_ACK: &str =
    "2b41434b017f244501010108676231303000000000ffff07e1070b03112d054dfe030d0a";

const REPLY_WAIT: Duration = Duration::from_secs(20);

/// H02, GPS103 and Queclink on free ports, TCP and UDP; everything else off.
fn config() -> GatewayConfig {
    udp_config(&["h02", "gps103", "gl200"])
}

/// The protocols named on free ports, TCP and UDP; everything else off.
fn udp_config(protocols: &[&str]) -> GatewayConfig {
    let mut c = common::only_protocols("gw-udp", protocols);
    for (_, l) in c.protocols.iter_mut() {
        l.udp = l.enabled;
    }
    c
}

/// A device: one UDP socket talking to one gateway socket.
struct Device {
    socket: UdpSocket,
    gateway: SocketAddr,
}

impl Device {
    async fn new(gateway: SocketAddr) -> Device {
        Device::from([127, 0, 0, 1], gateway).await
    }

    /// A device on the loopback address `source` (all of 127.0.0.0/8 is
    /// this host, so one test can be several hosts).
    async fn from(source: [u8; 4], gateway: SocketAddr) -> Device {
        Device {
            socket: UdpSocket::bind(SocketAddr::from((source, 0)))
                .await
                .unwrap(),
            gateway,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    async fn send(&self, datagram: &[u8]) {
        self.socket.send_to(datagram, self.gateway).await.unwrap();
    }

    /// The next datagram from the gateway, or `None` if none came within `wait`.
    async fn recv(&self, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        let (n, from) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        assert_eq!(from, self.gateway, "a reply from the gateway's socket");
        buf.truncate(n);
        Some(buf)
    }

    /// The next reply, which must come.
    async fn reply(&self) -> Vec<u8> {
        self.recv(REPLY_WAIT).await.expect("a reply datagram")
    }

    /// Sends `datagram` and expects exactly `replies` back, in order.
    async fn exchange(&self, datagram: &[u8], replies: &[&[u8]]) {
        self.send(datagram).await;
        for expected in replies {
            let got = self.reply().await;
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(expected),
                "reply to {:?}",
                String::from_utf8_lossy(datagram)
            );
        }
    }
}

/// An H02 `V1` position: answered `*HQ,<id>,V4,V1,<server time>#`.
fn h02_position(id: &str, minute: u32) -> Vec<u8> {
    h02::encode::position(id, &position(id, "h02", minute), 0xFFFF_FBFF).to_vec()
}

fn assert_v1_reply(reply: &[u8], id: &str) {
    let text = String::from_utf8_lossy(reply);
    let prefix = format!("*HQ,{id},V4,V1,");
    let time = text
        .strip_prefix(&prefix)
        .and_then(|t| t.strip_suffix('#'))
        .unwrap_or_else(|| panic!("not a V1 answer for {id}: {text}"));
    assert!(
        time.len() == 14 && time.bytes().all(|b| b.is_ascii_digit()),
        "{text}"
    );
}

// ---- storing and answering -------------------------------------------------------

#[tokio::test]
async fn datagrams_are_stored_like_tcp_frames_and_answered_after_the_puback() {
    let cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, config()).await;
    assert!(gw.udp_addr(Protocol::Teltonika).is_none());
    for p in [Protocol::H02, Protocol::Gps103, Protocol::Gl200] {
        assert!(gw.addr(p).is_some(), "{p} over TCP too");
    }

    // H02: a position and a heartbeat in one datagram, answered in order.
    let id = "4210051415";
    let pos = h02_position(id, 1);
    let beat = h02::encode::heartbeat(id, 80).to_vec();
    let datagram = [pos.as_slice(), b"\r\n", &beat].concat();
    let dev = Device::new(gw.udp_addr(Protocol::H02).unwrap()).await;
    dev.send(&datagram).await;
    assert_v1_reply(&dev.reply().await, id);
    assert_eq!(dev.reply().await, format!("*HQ,{id},HTBT#").into_bytes());

    let stored = raw(&cluster).await;
    assert_eq!(stored.len(), 2, "both messages, nothing else");
    assert_eq!(stored[0].0, format!("raw.h02.{id}"));
    assert_eq!(stored[0].1, raw_msg_id("h02", id, &pos));
    assert_eq!(stored[0].2, pos, "the message's bytes, unchanged");
    assert_eq!(stored[1].1, raw_msg_id("h02", id, &beat));
    let first = &common::streams::messages(&cluster, names::RAW).await[0];
    let h = |name| header(first, name).unwrap();
    assert_eq!(h(headers::PROTOCOL), "h02");
    assert_eq!(h(headers::DEVICE), id);
    assert_eq!(h(headers::GATEWAY), "gw-udp");
    assert_eq!(h(headers::PEER), dev.addr().to_string());
    assert!(h(headers::RECEIVED_AT).ends_with('Z'));

    // The device did not get its answers (say) and sends the datagram again,
    // from another port: answered again, stored once.
    let again = Device::new(gw.udp_addr(Protocol::H02).unwrap()).await;
    again.send(&datagram).await;
    assert_v1_reply(&again.reply().await, id);
    assert_eq!(again.reply().await, format!("*HQ,{id},HTBT#").into_bytes());
    assert_eq!(raw(&cluster).await.len(), 2, "the resend is deduplicated");
    assert_eq!(counter(&gw, "frames_duplicate", "h02"), 2);
    assert_eq!(counter(&gw, "frames_stored", "h02"), 4);
    assert_eq!(counter(&gw, "frames_received", "h02"), 4);
    assert_eq!(counter(&gw, "acks_sent", "h02"), 4);

    // GPS103: login (answered, not stored) and an SOS (stored, then
    // answered); a heartbeat alone is answered and not stored.
    let imei = "359586015829802";
    let sos = gps103::encode::position(imei, "help me", &position(imei, "gps103", 2)).to_vec();
    let dev = Device::new(gw.udp_addr(Protocol::Gps103).unwrap()).await;
    dev.exchange(
        &[gps103::encode::login(imei).as_ref(), &sos].concat(),
        &[b"LOAD", &gps103::encode::sos_ack(imei)],
    )
    .await;
    dev.exchange(&gps103::encode::heartbeat(imei), &[b"ON"])
        .await;

    // Queclink: a report (stored, no answer of its own) and a heartbeat in
    // one datagram; the heartbeat's answer comes after the report's PubAck.
    let qimei = "862193020451183";
    let sent = Utc.with_ymd_and_hms(2026, 11, 29, 12, 3, 0).unwrap();
    let report =
        gl200::encode::fixed_report("F50201", qimei, &position(qimei, "gl200", 3), sent, 0x10);
    let hbd = gl200::encode::heartbeat("F50201", qimei, sent, 0x11);
    let dev = Device::new(gw.udp_addr(Protocol::Gl200).unwrap()).await;
    dev.exchange(
        &[report.as_ref(), &hbd].concat(),
        &[&gl200::encode::heartbeat_ack("F50201", "0011")],
    )
    .await;

    assert_eq!(
        raw_subjects(&cluster).await,
        [
            format!("raw.h02.{id}").as_str(),
            &format!("raw.h02.{id}"),
            &format!("raw.gps103.{imei}"),
            &format!("raw.gl200.{qimei}"),
        ]
    );
    let stored = raw(&cluster).await;
    assert_eq!(stored[2].2, sos);
    // The report as the device sent it, its closing `$` included, over UDP
    // as over TCP.
    assert_eq!(stored[3].2, report.to_vec());
}

// ---- bad input -----------------------------------------------------------------------

/// Teltonika over UDP: each datagram is one packet that names its IMEI;
/// stored as sent, answered with its packet id, AVL packet id and record
/// count after the PubAck; a resend is answered and stored once; a packet
/// whose length field does not fit, or a TCP frame, gets no answer.
#[tokio::test]
async fn teltonika_udp_packets_are_stored_and_answered_with_their_ids() {
    use fleetbus_codec::teltonika::encode::{codec8, udp_ack, udp_packet, AvlCodec, AvlRecord};
    use fleetbus_codec::{ParseContext, Record};
    let cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, udp_config(&["teltonika"])).await;
    let imei = "356307042441013";
    let fixes = [
        position(imei, "teltonika", 1),
        position(imei, "teltonika", 2),
    ];
    let records: Vec<AvlRecord> = fixes.iter().map(AvlRecord::from_position).collect();
    let packet = udp_packet(0xbeef, 7, imei, AvlCodec::Codec8, &records).unwrap();
    let dev = Device::new(gw.udp_addr(Protocol::Teltonika).unwrap()).await;
    dev.send(&packet).await;
    assert_eq!(dev.reply().await, udp_ack(0xbeef, 7, 2));

    let stored = raw(&cluster).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, format!("raw.teltonika.{imei}"));
    assert_eq!(stored[0].1, raw_msg_id("teltonika", imei, &packet));
    assert_eq!(stored[0].2, packet, "the packet's bytes, unchanged");
    // What the hamsters will read: both fixes.
    let parsed = Protocol::Teltonika
        .parse(&stored[0].2, &ParseContext::new(imei, Utc::now()))
        .unwrap();
    let times: Vec<_> = parsed
        .iter()
        .filter_map(Record::as_position)
        .map(|p| p.fix_time)
        .collect();
    assert_eq!(times, vec![fixes[0].fix_time, fixes[1].fix_time]);

    // No answer seen: the device sends it again, answered and stored once.
    dev.send(&packet).await;
    assert_eq!(dev.reply().await, udp_ack(0xbeef, 7, 2));
    assert_eq!(raw(&cluster).await.len(), 1, "the resend is deduplicated");
    assert_eq!(counter(&gw, "frames_duplicate", "teltonika"), 1);

    // A packet one byte longer than its length field and a TCP AVL frame
    // (cut by the length field), then a TCP login (it fits its length, but
    // is no UDP packet): refused, counted, not answered, not stored.
    dev.send(&[packet.as_ref(), &[0]].concat()).await;
    dev.send(&codec8(&fixes).unwrap()).await;
    wait_metric("the long packet and the TCP frame refused", 2, || {
        error_metric(&gw, "teltonika", "frame", "malformed")
    })
    .await;
    dev.send(&fleetbus_codec::teltonika::encode::login(imei))
        .await;
    wait_metric("the login refused", 1, || {
        error_metric(&gw, "teltonika", "session", "malformed")
    })
    .await;
    assert_eq!(dev.recv(Duration::from_millis(300)).await, None);
    assert_eq!(raw(&cluster).await.len(), 1);
    assert_eq!(counter(&gw, "acks_sent", "teltonika"), 2);
}

#[tokio::test]
async fn bad_datagrams_are_refused_whole_counted_and_not_published() {
    let cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, config()).await;
    let h02_addr = gw.udp_addr(Protocol::H02).unwrap();
    let dev = Device::new(h02_addr).await;
    let id = "4210051416";
    let good = h02_position(id, 1);

    let cases: [(&str, &str, Vec<u8>); 5] = [
        ("frame", "malformed", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        // A good message, then one cut short: refused whole, the good one
        // is not stored either.
        (
            "frame",
            "malformed",
            [good.as_slice(), b"*HQ,4210051416,V1,1645"].concat(),
        ),
        (
            "frame",
            "too_large",
            [b"*HQ,4210051416,V1,".as_slice(), &[b'0'; 2_000], b"#"].concat(),
        ),
        // Two devices in one datagram.
        (
            "session",
            "bad_identity",
            [good.as_slice(), &h02::encode::heartbeat("4210051417", 50)].concat(),
        ),
        // Nothing at all.
        ("frame", "malformed", Vec::new()),
    ];
    let mut expected = std::collections::BTreeMap::<(&str, &str), u64>::new();
    for (stage, error_type, datagram) in &cases {
        dev.send(datagram).await;
        let count = expected.entry((*stage, *error_type)).or_default();
        *count += 1;
        let want = *count;
        wait_metric(&format!("{stage}/{error_type}"), want, || {
            error_metric(&gw, "h02", stage, error_type)
        })
        .await;
    }

    // Queclink: a binary command acknowledgement (a real capture, from
    // Traccar's tests) carries no IMEI, and no message of its datagram
    // names the device: refused, never guessed from the sender's address.
    let q = Device::new(gw.udp_addr(Protocol::Gl200).unwrap()).await;
    q.send(&hex::decode(GL200_BINARY_ACK).unwrap()).await;
    wait_metric("gl200 not_identified", 1, || {
        error_metric(&gw, "gl200", "session", "not_identified")
    })
    .await;

    // Every refusal is counted when it is decided, before any reply could
    // be sent: an honest exchange on the same socket now gets the first
    // datagram the gateway sends to it.
    dev.send(&good).await;
    assert_v1_reply(&dev.reply().await, id);
    assert!(q.recv(Duration::from_millis(300)).await.is_none());
    let stored = raw(&cluster).await;
    assert_eq!(
        stored
            .iter()
            .map(|(s, id, _)| (s.as_str(), id.as_str()))
            .collect::<Vec<_>>(),
        [(
            format!("raw.h02.{id}").as_str(),
            raw_msg_id("h02", id, &good).as_str()
        )],
        "only the honest message is stored"
    );
    assert_eq!(counter(&gw, "acks_sent", "h02"), 1);
}

// ---- storage unavailable ---------------------------------------------------------

/// [`config`] for storage that goes away: publishes time out after 500 ms
/// and are tried again for `retry_for_secs`.
fn retrying_for(retry_for_secs: u64) -> GatewayConfig {
    GatewayConfig {
        retry_for_secs,
        publish_timeout_ms: 500,
        ..config()
    }
}

/// A cluster and a gateway of `cfg` on it; then every node is killed and
/// a device sends `datagram` to the `protocol` socket, which the gateway
/// receives (its metrics say so) and cannot store. The cluster, the
/// gateway and that device.
async fn received_while_down(
    cfg: GatewayConfig,
    protocol: Protocol,
    datagram: &[u8],
) -> (Cluster, Gateway, Device) {
    let mut cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, cfg).await;
    let dev = Device::new(gw.udp_addr(protocol).unwrap()).await;
    cluster.kill_all();
    dev.send(datagram).await;
    wait_metric(&format!("the {protocol} datagram is received"), 1, || {
        counter(&gw, "frames_received", protocol.name())
    })
    .await;
    (cluster, gw, dev)
}

#[tokio::test]
async fn no_reply_while_the_cluster_is_down_and_excess_datagrams_are_dropped() {
    let id = "4210051418";
    let beat = h02::encode::heartbeat(id, 70).to_vec();
    let cfg = GatewayConfig {
        udp_inflight: 1,
        udp_max_messages: 1,
        ..retrying_for(3)
    };
    // In flight (retrying) once it was received; the one slot is taken.
    let (mut cluster, gw, dev) = received_while_down(cfg, Protocol::H02, &beat).await;
    let other = Device::new(dev.gateway).await;
    other.send(&h02_position(id, 4)).await;
    wait_metric("the second datagram is dropped", 1, || {
        error_metric(&gw, "h02", "frame", "overload")
    })
    .await;
    wait_metric("the gateway gives up", 1, || {
        error_metric(&gw, "h02", "publish", "gave_up")
    })
    .await;
    // Given up means no reply: nothing was and nothing will be sent.
    assert_eq!(counter(&gw, "acks_sent", "h02"), 0);
    assert!(dev.recv(Duration::from_millis(300)).await.is_none());
    assert!(other.recv(Duration::from_millis(300)).await.is_none());

    // The device still has its data: once the cluster is back it resends,
    // gets its answer, and RAW has one copy.
    common::back_up(&mut cluster).await;
    let reply = wait_for(
        "the resent heartbeat is answered",
        Duration::from_secs(60),
        || async {
            dev.send(&beat).await;
            Ok(dev.recv(Duration::from_secs(5)).await)
        },
    )
    .await
    .unwrap();
    assert_eq!(reply, format!("*HQ,{id},HTBT#").into_bytes());
    let stored = raw(&cluster).await;
    assert_eq!(stored.len(), 1, "stored exactly once");
    assert_eq!(stored[0].1, raw_msg_id("h02", id, &beat));
}

#[tokio::test]
async fn shutdown_stops_receiving_and_finishes_datagrams_in_flight() {
    let imei = "359586015829803";
    let sos = gps103::encode::position(imei, "help me", &position(imei, "gps103", 5));
    let cfg = GatewayConfig {
        drain_timeout_secs: 90,
        ..retrying_for(90)
    };
    // A datagram in flight while storage is down, then the stop.
    let (mut cluster, gw, dev) = received_while_down(cfg, Protocol::Gps103, &sos).await;
    let metrics = gw.metrics.clone();
    let stopping = tokio::spawn(gw.shutdown());
    cluster.start_all().unwrap();
    cluster.wait_ready().await.unwrap();
    // The in-flight SOS is stored once storage is back, and answered.
    assert_eq!(
        dev.recv(Duration::from_secs(80)).await.as_deref(),
        Some(gps103::encode::sos_ack(imei).as_ref())
    );
    assert_eq!(stopping.await.unwrap(), 0, "drained within the timeout");
    // Stopped: the socket is no longer read, nothing more is answered.
    dev.send(&gps103::encode::heartbeat(imei)).await;
    assert!(dev.recv(Duration::from_millis(500)).await.is_none());
    let received = metrics
        .render()
        .lines()
        .find(|l| l.starts_with("fleetbus_gateway_frames_received_total{protocol=\"gps103\"}"))
        .map(str::to_owned);
    assert_eq!(
        received.as_deref(),
        Some("fleetbus_gateway_frames_received_total{protocol=\"gps103\"} 1"),
        "nothing received after the stop"
    );
    let stored = raw(&cluster).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].2, sos.to_vec());
}

// ---- bounds against floods and reflection ----------------------------------------

#[tokio::test]
async fn a_datagram_draws_at_most_udp_max_messages_replies_whatever_its_size() {
    let cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, config()).await;
    let dev = Device::new(gw.udp_addr(Protocol::Gps103).unwrap()).await;
    let heartbeat = gps103::encode::heartbeat("864895031234567").to_vec();

    // Sixteen heartbeats in one datagram (the default bound): sixteen `ON`s.
    dev.exchange(&heartbeat.repeat(16), &[b"ON".as_slice(); 16])
        .await;

    // A spoofed 64 KB datagram of heartbeats would have drawn thousands of
    // replies at whoever the source address names: it draws none.
    let flood = heartbeat.repeat(65_000 / heartbeat.len());
    assert!(flood.len() > 64_000 && flood.len() <= 65_507);
    dev.send(&flood).await;
    wait_metric("too_many_messages", 1, || {
        error_metric(&gw, "gps103", "frame", "too_many_messages")
    })
    .await;
    // Seventeen are refused the same way.
    dev.send(&heartbeat.repeat(17)).await;
    wait_metric("too_many_messages", 2, || {
        error_metric(&gw, "gps103", "frame", "too_many_messages")
    })
    .await;
    // Refusals are counted when decided, so the next datagram the socket
    // gets answers the next exchange, not the flood.
    dev.exchange(&heartbeat, &[b"ON"]).await;
    assert!(dev.recv(Duration::from_millis(300)).await.is_none());
    assert_eq!(counter(&gw, "acks_sent", "gps103"), 17);
}

#[tokio::test]
async fn one_address_beyond_its_udp_rate_is_dropped_while_another_is_answered() {
    let cluster = provisioned_cluster().await;
    // Five messages a second, bursts of two seconds' worth.
    let mut c = config();
    c.udp_rate_per_source = 5;
    let gw = gateway(&cluster, c).await;
    let addr = gw.udp_addr(Protocol::Gps103).unwrap();
    let flooder = Device::from([127, 0, 0, 1], addr).await;
    let heartbeat = gps103::encode::heartbeat("864895031234568").to_vec();

    const SENT: u64 = 40;
    for _ in 0..SENT {
        flooder.send(&heartbeat).await;
    }
    let mut answered = 0;
    while flooder.recv(Duration::from_secs(2)).await.is_some() {
        answered += 1;
    }
    let dropped = error_metric(&gw, "gps103", "frame", "rate_limited");
    assert_eq!(answered + dropped, SENT, "each answered or dropped");
    // The burst, plus the rate for however long the sends took.
    assert!(
        (10..=15).contains(&answered),
        "{answered} of {SENT} answered"
    );

    // Another address has its own budget.
    let honest = Device::from([127, 0, 0, 2], addr).await;
    honest
        .exchange(&gps103::encode::heartbeat("864895031234569"), &[b"ON"])
        .await;
}
