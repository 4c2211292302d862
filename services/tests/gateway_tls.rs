//! Devices over TLS: a Teltonika tracker speaking TLS to the gateway's TLS
//! port (rustls, certificates from files made here), acknowledged only
//! once RAW stored its frame, as over plain TCP; a renewed certificate
//! served to new connections without a restart. Real cluster, real sockets.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fleetbus_codec::{teltonika, Protocol};
use fleetbus_e2e::pki::{Ca, Files};
use fleetbus_e2e::wait_for;
use fleetbus_services::gateway::{Gateway, GatewayConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

mod common;

use common::fixes::teltonika_frame;
use common::metrics::{error_metric, metric};
use common::streams::raw;
use common::{gateway, provisioned_cluster};

const WAIT: Duration = Duration::from_secs(20);

/// Teltonika over TLS only, with `files`, checked for change every second.
fn tls_only(files: &Files) -> GatewayConfig {
    let mut c = common::only_protocols("gw-tls", &["teltonika"]);
    c.tls_reload_secs = 1;
    let l = c.protocols.get_mut("teltonika").unwrap();
    l.plain = false;
    l.tls_port = Some(0);
    l.tls_cert = Some(files.cert.clone());
    l.tls_key = Some(files.key.clone());
    c
}

fn gateway_cert(ca: &Ca, dir: &Path) -> Files {
    ca.issue("gateway", &["localhost", "127.0.0.1"])
        .unwrap()
        .write(dir, "gateway")
        .unwrap()
}

/// A tracker's TLS connection trusting `trust`, or why it failed.
async fn tls_connect(
    addr: SocketAddr,
    trust: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(trust).connect(name, tcp).await
}

/// Sends `frame`, expects `reply` (flushing: TLS holds what is written).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, frame: &[u8], reply: &[u8]) {
    s.write_all(frame).await.unwrap();
    s.flush().await.unwrap();
    let mut got = vec![0; reply.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut got))
        .await
        .expect("a reply in time")
        .expect("a reply");
    assert_eq!(got, reply, "reply to {}", hex::encode(frame));
}

fn tls_addr(gw: &Gateway) -> SocketAddr {
    gw.tls_addr(Protocol::Teltonika).expect("a TLS listener")
}

#[tokio::test]
async fn a_tracker_over_tls_is_acked_once_raw_stored_its_frame_and_plain_tcp_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("device CA").unwrap();
    let files = gateway_cert(&ca, dir.path());
    let cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, tls_only(&files)).await;
    assert_eq!(gw.addr(Protocol::Teltonika), None, "plain = false");
    // When the certificate expires, for an alert well before it does.
    let not_after = metric(
        &gw,
        "fleetbus_gateway_tls_certificate_not_after_seconds{protocol=\"teltonika\"}",
    );
    assert!(
        not_after > chrono::Utc::now().timestamp() as u64,
        "{not_after}"
    );

    let imei = "356307042441013";
    let mut device = tls_connect(tls_addr(&gw), ca.client_config().unwrap())
        .await
        .expect("the TLS handshake with a certificate from the device CA");
    exchange(&mut device, &teltonika::encode::login(imei), &[0x01]).await;
    let frame = teltonika_frame(imei, 1);
    exchange(&mut device, &frame, &teltonika::encode::ack(1)).await;
    let stored = raw(&cluster).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].0, format!("raw.teltonika.{imei}"));
    assert_eq!(
        stored[0].2,
        frame.to_vec(),
        "RAW holds the frame, not TLS records"
    );

    // A tracker left on plain TCP, pointed at the TLS port: refused and
    // counted, nothing answered, nothing stored.
    let mut plain = TcpStream::connect(tls_addr(&gw)).await.unwrap();
    plain
        .write_all(&teltonika::encode::login("356307042441014"))
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, plain.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the connection is closed");
    // At most a TLS alert record (content type 21), never a device reply.
    assert!(
        got.is_empty() || got[0] == 0x15,
        "a plain client got {}",
        hex::encode(&got)
    );
    assert_eq!(error_metric(&gw, "teltonika", "accept", "tls_handshake"), 1);
    // A device that does not trust the gateway's certificate gives up.
    let stranger = Ca::new("someone else").unwrap();
    assert!(
        tls_connect(tls_addr(&gw), stranger.client_config().unwrap())
            .await
            .is_err()
    );
    assert_eq!(raw(&cluster).await.len(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_renewed_certificate_is_served_to_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new("old CA").unwrap(), Ca::new("new CA").unwrap());
    let files = gateway_cert(&old_ca, dir.path());
    let cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, tls_only(&files)).await;
    let imei = "356307042441013";
    let mut before = tls_connect(tls_addr(&gw), old_ca.client_config().unwrap())
        .await
        .unwrap();
    exchange(&mut before, &teltonika::encode::login(imei), &[0x01]).await;
    assert!(
        tls_connect(tls_addr(&gw), new_ca.client_config().unwrap())
            .await
            .is_err(),
        "not renewed yet"
    );

    // The renewal lands in place, as certbot or cert-manager write it.
    let renewed = new_ca.issue("gateway", &["localhost"]).unwrap();
    std::fs::write(&files.key, &renewed.key_pem).unwrap();
    std::fs::write(&files.cert, &renewed.cert_pem).unwrap();
    let loaded = "fleetbus_gateway_tls_reloads_total{protocol=\"teltonika\",result=\"loaded\"}";
    let trusts_new = new_ca.client_config().unwrap();
    let mut after = wait_for("the renewed certificate served", WAIT, || {
        let trusts_new = trusts_new.clone();
        let addr = tls_addr(&gw);
        async move { Ok(tls_connect(addr, trusts_new).await.ok()) }
    })
    .await
    .unwrap();
    assert!(metric(&gw, loaded) >= 1);
    exchange(
        &mut after,
        &teltonika::encode::login("356307042441014"),
        &[0x01],
    )
    .await;
    // The connection made before the renewal goes on with its own.
    exchange(
        &mut before,
        &teltonika_frame(imei, 2),
        &teltonika::encode::ack(1),
    )
    .await;

    // A broken renewal (a key that is not the certificate's) is refused;
    // the renewed pair stays in use.
    // (Two files are not written at once: a check between them may count
    // a failure already, so counts are compared with what they were.)
    let failed = "fleetbus_gateway_tls_reloads_total{protocol=\"teltonika\",result=\"failed\"}";
    let (loaded_before, failed_before) = (metric(&gw, loaded), metric(&gw, failed));
    let stray = new_ca.issue("gateway", &["localhost"]).unwrap();
    std::fs::write(&files.key, &stray.key_pem).unwrap();
    common::metrics::wait_metric("the broken pair refused", failed_before + 1, || {
        metric(&gw, failed)
    })
    .await;
    let mut still = tls_connect(tls_addr(&gw), new_ca.client_config().unwrap())
        .await
        .expect("still served the last good pair");
    exchange(
        &mut still,
        &teltonika::encode::login("356307042441015"),
        &[0x01],
    )
    .await;
    assert_eq!(metric(&gw, loaded), loaded_before);
    gw.shutdown().await;
}
