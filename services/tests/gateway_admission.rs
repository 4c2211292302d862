//! Which devices the gateway takes, against a real three-node cluster over
//! real sockets: under `known` only registered devices are stored and
//! answered, an unknown one is refused before anything of it is stored
//! (it keeps its data) and a flood of made-up ids writes nothing; under
//! `register` the unknown device waits in `pending` until an operator
//! accepts it, and then its resend is taken; a removal reaches the gateway
//! through its watch, also after a kill -9 of the node the gateway is
//! connected to; the registry's model goes into RAW.

use std::net::SocketAddr;
use std::time::Duration;

use fleetbus_codec::{gps103, jt808, teltonika, Protocol};
use fleetbus_e2e::{wait_for, Cluster, Role};
use fleetbus_services::gateway::admission::Policy;
use fleetbus_services::gateway::{Gateway, GatewayConfig};
use fleetbus_wire::headers;
use fleetbus_wire::registry::{registry_key, PendingDevice, PENDING_BUCKET, REGISTRY_BUCKET};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

mod common;

use common::fixes::teltonika_frame;
use common::metrics::{error_metric, wait_metric};
use common::streams::{header, raw, raw_subjects};
use common::{gateway, provisioned_cluster, register};

const WAIT: Duration = Duration::from_secs(20);

/// Teltonika and GT06 over TCP, GPS103 over TCP and UDP, under `policy`.
fn config(policy: Policy) -> GatewayConfig {
    let mut c = common::only_protocols("gw-admission", &["teltonika", "gt06", "gps103"]);
    c.admission = policy;
    c.protocols.get_mut("gps103").unwrap().udp = true;
    c
}

/// Waits until the gateway has read the registry (it admits nobody before).
async fn loaded(gw: &Gateway) {
    let admission = gw.admission();
    wait_for("the registry is read", WAIT, || async {
        Ok(admission.is_loaded().then_some(()))
    })
    .await
    .unwrap();
}

/// Logs a Teltonika device in: `true` if the gateway answered the login,
/// `false` if it closed the connection without a word.
async fn login(addr: SocketAddr, imei: &str) -> (TcpStream, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&teltonika::encode::login(imei)).await.unwrap();
    let mut b = [0u8; 1];
    let answered = matches!(
        tokio::time::timeout(WAIT, s.read(&mut b)).await,
        Ok(Ok(1)) if b == [1]
    );
    (s, answered)
}

/// Sends one frame of `imei` and expects its ack.
async fn send_frame(s: &mut TcpStream, imei: &str, minute: u32) {
    s.write_all(&teltonika_frame(imei, minute)).await.unwrap();
    let mut ack = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut ack))
        .await
        .expect("an ack in time")
        .unwrap();
    assert_eq!(ack, teltonika::encode::ack(1));
}

async fn pending_entry(cluster: &Cluster, device: &str) -> Option<PendingDevice> {
    let kv = common::js(cluster, Role::Admin)
        .await
        .get_key_value(PENDING_BUCKET)
        .await
        .unwrap();
    kv.get(registry_key(device))
        .await
        .unwrap()
        .map(|v| serde_json::from_slice(&v).unwrap())
}

async fn pending_count(cluster: &Cluster) -> u64 {
    let kv = common::js(cluster, Role::Admin)
        .await
        .get_key_value(PENDING_BUCKET)
        .await
        .unwrap();
    kv.status().await.unwrap().values()
}

#[tokio::test]
async fn known_takes_only_registered_devices_and_a_flood_of_made_up_ids_writes_nothing() {
    let cluster = provisioned_cluster().await;
    let registered = "356307042441301";
    register(&cluster, registered, None, Some("FMB920")).await;
    // Registered, but for GT06 only.
    let pinned = "356307042441302";
    register(&cluster, pinned, Some("gt06"), None).await;
    let gw = gateway(&cluster, config(Policy::Known)).await;
    loaded(&gw).await;
    let tel = gw.addr(Protocol::Teltonika).unwrap();

    // An unknown device: its login is not answered, nothing is stored.
    let (_s, answered) = login(tel, "356307042441399").await;
    assert!(!answered, "an unknown device's login is refused");
    assert_eq!(
        error_metric(&gw, "teltonika", "session", "unknown_device"),
        1
    );
    // A device registered for another protocol is unknown on this one.
    let (_s, answered) = login(tel, pinned).await;
    assert!(!answered);

    // Made-up ids, one connection each: all refused, nothing anywhere.
    for i in 0..40 {
        let (_s, answered) = login(tel, &format!("99{i:013}")).await;
        assert!(!answered);
    }
    assert_eq!(
        error_metric(&gw, "teltonika", "session", "unknown_device"),
        42
    );
    assert_eq!(pending_count(&cluster).await, 0, "known holds nobody");

    // The registered device is taken, with the registry's model.
    let (mut s, answered) = login(tel, registered).await;
    assert!(answered);
    send_frame(&mut s, registered, 0).await;
    let stored = raw(&cluster).await;
    assert_eq!(
        stored.iter().map(|(s, ..)| s.as_str()).collect::<Vec<_>>(),
        [format!("raw.teltonika.{registered}").as_str()],
        "only the registered device is in RAW"
    );
    let messages = common::streams::messages(&cluster, fleetbus_wire::names::RAW).await;
    assert_eq!(header(&messages[0], headers::MODEL), Some("FMB920"));

    // Over UDP the same: a datagram of an unknown device gets no reply.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let gps = gw.udp_addr(Protocol::Gps103).unwrap();
    udp.send_to(&gps103::encode::heartbeat("864895031234599"), gps)
        .await
        .unwrap();
    wait_metric("unknown_device over UDP", 1, || {
        error_metric(&gw, "gps103", "session", "unknown_device")
    })
    .await;
    register(&cluster, "864895031234598", None, None).await;
    let answered = wait_for("the registered device is answered", WAIT, || async {
        udp.send_to(&gps103::encode::heartbeat("864895031234598"), gps)
            .await?;
        let mut buf = [0u8; 64];
        Ok(
            match tokio::time::timeout(Duration::from_secs(1), udp.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
                _ => None,
            },
        )
    })
    .await
    .unwrap();
    assert_eq!(answered, b"ON");
}

#[tokio::test]
async fn register_holds_an_unknown_device_until_accepted_and_a_removal_refuses_it_again() {
    let cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, config(Policy::Register)).await;
    loaded(&gw).await;
    let tel = gw.addr(Protocol::Teltonika).unwrap();
    let imei = "356307042441310";

    // Unknown: no answer (it keeps its data), and it is held for an operator.
    let (_s, answered) = login(tel, imei).await;
    assert!(!answered);
    let held = wait_for("the device is pending", WAIT, || async {
        Ok(pending_entry(&cluster, imei).await)
    })
    .await
    .unwrap();
    assert_eq!(
        (held.protocol.as_str(), held.gateway.as_str(), held.attempts),
        ("teltonika", "gw-admission", 1)
    );
    assert!(held.peer.starts_with("127.0.0.1:"), "{}", held.peer);
    assert!(raw(&cluster).await.is_empty());

    // The operator accepts it (what `fleetbus device accept` writes); the
    // device's next connection is taken and its data stored.
    register(&cluster, imei, Some("teltonika"), None).await;
    let mut s = wait_for("the accepted device is admitted", WAIT, || async {
        let (s, answered) = login(tel, imei).await;
        Ok(answered.then_some(s))
    })
    .await
    .unwrap();
    send_frame(&mut s, imei, 1).await;
    assert_eq!(
        raw_subjects(&cluster).await,
        [format!("raw.teltonika.{imei}")]
    );

    // Removed from the registry: its next connection is refused again.
    let kv = common::js(&cluster, Role::Admin)
        .await
        .get_key_value(REGISTRY_BUCKET)
        .await
        .unwrap();
    kv.delete(registry_key(imei)).await.unwrap();
    wait_for("the removed device is refused", WAIT, || async {
        let (_s, answered) = login(tel, imei).await;
        Ok((!answered).then_some(()))
    })
    .await
    .unwrap();
}

/// A JT808 terminal as firmware does it: register, keep the code the
/// platform answers with, authenticate with it on every connection.
struct Terminal {
    stream: TcpStream,
    framer: fleetbus_codec::AnyFramer,
    buf: bytes::BytesMut,
    id: jt808::encode::Terminal,
}

impl Terminal {
    async fn connect(addr: SocketAddr, id: &str) -> Terminal {
        Terminal {
            stream: TcpStream::connect(addr).await.unwrap(),
            framer: Protocol::Jt808.framer(0),
            buf: bytes::BytesMut::new(),
            id: jt808::encode::Terminal::phone(id),
        }
    }

    /// Sends `frame`; the gateway's answer, or `None` if it closed the
    /// connection without one.
    async fn send(&mut self, frame: &[u8]) -> Option<bytes::Bytes> {
        use tokio_util::codec::Decoder;
        self.stream.write_all(frame).await.ok()?;
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(reply) = self.framer.decode(&mut self.buf).unwrap() {
                    return Some(reply);
                }
                if self.stream.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        })
        .await
        .expect("an answer or a close in time")
    }
}

#[tokio::test]
async fn jt808_terminals_authenticate_with_the_code_the_registry_issued() {
    let cluster = provisioned_cluster().await;
    let mut cfg = common::only_protocols("gw-jt808", &["jt808"]);
    cfg.admission = Policy::Known;
    let gw = gateway(&cluster, cfg).await;
    let addr = gw.addr(Protocol::Jt808).unwrap();
    let id = "013912345678";
    // The operator's command issues the code; nobody types it anywhere.
    common::fleetbus_ok(&cluster, &["device", "add", id, "--protocol", "jt808"]).await;
    let listed = common::fleetbus_ok(&cluster, &["device", "ls", "--json"]).await;
    let entries: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let code = entries[0]["auth_code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 12, "{listed}");
    wait_for("the gateway knows the terminal", WAIT, || async {
        Ok(matches!(
            gw.admission().check(id, "jt808"),
            fleetbus_services::gateway::admission::Verdict::Admit { .. }
        )
        .then_some(()))
    })
    .await
    .unwrap();
    let position = common::fixes::moving(id, "jt808", 1);
    let location = |t: &Terminal, serial| jt808::encode::location(&t.id, serial, &position, 0, 20);

    // The terminal registers and is handed the registry's code, not its id.
    let mut real = Terminal::connect(addr, id).await;
    let answer = real
        .send(&jt808::encode::register(&real.id, 0))
        .await
        .unwrap();
    assert_eq!(
        jt808::register_code(&answer).as_deref(),
        Some(code.as_str())
    );
    real.send(&jt808::encode::auth(&real.id, 1, &code))
        .await
        .unwrap();
    let ack = real.send(&location(&real, 2)).await;
    assert!(ack.is_some(), "the authenticated terminal is answered");
    assert_eq!(raw(&cluster).await.len(), 1);

    // Someone who knows the terminal number only: Traccar's habit of the id
    // as code, or no authentication at all. Refused, nothing stored, and
    // the real terminal keeps its connection.
    let mut guess = Terminal::connect(addr, id).await;
    assert_eq!(
        guess.send(&jt808::encode::auth(&guess.id, 0, id)).await,
        None
    );
    let mut skip = Terminal::connect(addr, id).await;
    assert_eq!(skip.send(&location(&skip, 0)).await, None);
    wait_metric("a wrong code refused", 1, || {
        error_metric(&gw, "jt808", "session", "bad_credential")
    })
    .await;
    wait_metric("data without authentication refused", 1, || {
        error_metric(&gw, "jt808", "session", "not_authenticated")
    })
    .await;
    assert!(real.send(&location(&real, 3)).await.is_some());
    assert_eq!(raw(&cluster).await.len(), 2);

    // It reconnects (as after a lost connection) and authenticates with the
    // code it kept, without registering again.
    drop(real);
    let mut back = Terminal::connect(addr, id).await;
    back.send(&jt808::encode::auth(&back.id, 0, &code))
        .await
        .unwrap();
    assert!(back.send(&location(&back, 1)).await.is_some());
    gw.shutdown().await;
}

/// The gateway's copy of the registry follows a watch. A kill -9 of the
/// node the gateway is connected to must not leave that copy deaf: on
/// reconnecting, the client recreates the watch's consumer (R1) under a
/// fixed name, and the cluster, not yet knowing the node is gone, may place
/// it on that node again, where it never delivers. A device added after
/// the kill is admitted and one removed is refused.
#[tokio::test]
async fn the_registry_copy_follows_changes_made_after_its_node_was_killed() {
    let mut cluster = provisioned_cluster().await;
    let before = "356307042441101";
    register(&cluster, before, None, None).await;
    // Connected to node 0 alone (it learns the others from the server).
    let client = cluster.connect_to(0, Role::Gateway).await.unwrap();
    let gw = Gateway::start(config(Policy::Known), client).await.unwrap();
    loaded(&gw).await;
    let admitted = |id: &'static str| {
        let admission = gw.admission();
        move || {
            matches!(
                admission.check(id, "teltonika"),
                fleetbus_services::gateway::admission::Verdict::Admit { .. }
            )
        }
    };
    assert!(admitted(before)());

    cluster.kill(0);
    let admin = cluster.connect_to(1, Role::Admin).await.unwrap();
    let js = async_nats::jetstream::new(admin);
    wait_for(
        "the registry answers again",
        Duration::from_secs(90),
        || {
            let js = js.clone();
            async move {
                let registry = js.get_stream("KV_registry").await?;
                Ok(registry.get_info().await.ok().map(|_| ()))
            }
        },
    )
    .await
    .unwrap();
    let after = "356307042441102";
    register(&cluster, after, None, None).await;
    js.get_key_value(REGISTRY_BUCKET)
        .await
        .unwrap()
        .delete(registry_key(before))
        .await
        .unwrap();
    wait_for(
        "the change reaches the gateway's copy",
        Duration::from_secs(60),
        || {
            let (added, removed) = (admitted(after)(), !admitted(before)());
            async move { Ok((added && removed).then_some(())) }
        },
    )
    .await
    .unwrap();
    let (_device, answered) = login(gw.addr(Protocol::Teltonika).unwrap(), after).await;
    assert!(answered, "the device added after the kill logs in");
    cluster.start_node(0).unwrap();
    cluster.wait_ready().await.unwrap();
    gw.shutdown().await;
}
