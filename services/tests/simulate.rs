//! The simulated fleet against real gateways and a real cluster: what it
//! reports as acknowledged is in RAW, once, with the values sent; it moves
//! to the next gateway when one is unreachable; it resumes from its queue.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleetbus_codec::wire::headers;
use fleetbus_codec::{ParseContext, Protocol, Record};
use fleetbus_e2e::Cluster;
use fleetbus_services::gateway::Gateway;
use fleetbus_services::simulate::{self, Config, Queue, Reported};
use fleetbus_services::topology;
use tokio_util::sync::CancellationToken;

mod common;

use common::provisioned_cluster;

async fn gateway(cluster: &Cluster, id: &str) -> Gateway {
    let mut c = common::gateway_config(id);
    c.retry_for_secs = 5;
    common::gateway(cluster, c).await
}

fn config(dir: &Path, gateways: Vec<(Protocol, Vec<SocketAddr>)>) -> Config {
    Config {
        devices: 20,
        protocols: vec![Protocol::Teltonika, Protocol::Gt06],
        fleet: 7,
        interval: Duration::from_millis(10),
        records: 10,
        duration: None,
        per_frame: 3,
        gateways,
        queue: dir.join("queue.db"),
        report: Some(dir.join("report.jsonl")),
        ack_timeout: Duration::from_secs(20),
        progress: None,
    }
}

fn addrs(gws: &[&Gateway], p: Protocol) -> (Protocol, Vec<SocketAddr>) {
    (p, gws.iter().map(|g| g.addr(p).unwrap()).collect())
}

/// Every position in RAW, decoded with the codec, counted by (device, fix).
async fn positions_in_raw(
    cluster: &Cluster,
) -> BTreeMap<(String, DateTime<Utc>), (usize, f64, f64)> {
    let mut out = BTreeMap::new();
    for m in cluster.stream_messages(topology::RAW).await.unwrap() {
        let protocol: Protocol = m
            .headers
            .get(headers::PROTOCOL)
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
        let device = m.headers.get(headers::DEVICE).unwrap().as_str().to_string();
        let records = protocol
            .parse(&m.payload, &ParseContext::new(device.clone(), Utc::now()))
            .unwrap();
        for r in records {
            if let Record::Position(p) = r {
                let e = out.entry((p.device_id.clone(), p.fix_time)).or_insert((
                    0,
                    p.latitude,
                    p.longitude,
                ));
                e.0 += 1;
            }
        }
    }
    out
}

fn report(dir: &Path) -> Vec<Reported> {
    std::fs::read_to_string(dir.join("report.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn every_acknowledged_record_is_in_raw_once_with_its_values() {
    let cluster = provisioned_cluster().await;
    let a = gateway(&cluster, "gw-a").await;
    let b = gateway(&cluster, "gw-b").await;
    let dir = tempfile::tempdir().unwrap();
    // Devices know two gateways; the first address of each list is a port
    // where nothing listens, like a dead primary server.
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut gws = vec![
        addrs(&[&a, &b], Protocol::Teltonika),
        addrs(&[&a, &b], Protocol::Gt06),
    ];
    for (_, list) in gws.iter_mut() {
        list.insert(0, dead);
    }
    let summary = simulate::run(
        config(dir.path(), gws),
        CancellationToken::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.generated, 200);
    assert_eq!(summary.acked, 200);
    assert_eq!(summary.pending, 0);
    assert!(
        summary.reconnects > 0,
        "some devices started on the dead address"
    );

    let reported = report(dir.path());
    assert_eq!(reported.len(), 200);
    let raw = positions_in_raw(&cluster).await;
    assert_eq!(raw.len(), 200, "every record, and nothing else");
    for r in &reported {
        let (count, lat, lon) = raw
            .get(&(r.device_id.clone(), r.fix_time))
            .unwrap_or_else(|| panic!("{} {} acked but not in RAW", r.device_id, r.fix_time));
        assert_eq!(*count, 1, "{} {} stored twice", r.device_id, r.fix_time);
        assert!((lat - r.latitude).abs() < 1e-5 && (lon - r.longitude).abs() < 1e-5);
    }
    // Both gateways took devices.
    for g in [&a, &b] {
        assert!(g
            .metrics
            .render()
            .contains("fleetbus_gateway_frames_stored_total"));
    }
}

#[tokio::test]
async fn a_stopped_simulator_resumes_from_its_queue_without_duplicates() {
    let mut cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, "gw-r").await;
    let dir = tempfile::tempdir().unwrap();
    let gws = vec![
        addrs(&[&gw], Protocol::Teltonika),
        addrs(&[&gw], Protocol::Gt06),
    ];

    // The cluster is down: nothing can be acknowledged. Stop the fleet
    // after it generated everything.
    cluster.kill_all();
    let mut cfg = config(dir.path(), gws.clone());
    cfg.ack_timeout = Duration::from_secs(2);
    let stop_now = CancellationToken::new();
    let first = {
        let stop_now = stop_now.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move { simulate::run(cfg, CancellationToken::new(), stop_now).await })
    };
    let queue_path = dir.path().join("queue.db");
    fleetbus_e2e::wait_for("all records generated", Duration::from_secs(30), || {
        let queue_path = queue_path.clone();
        async move { Ok((Queue::open(&queue_path)?.pending().await? == 200).then_some(())) }
    })
    .await
    .unwrap();
    stop_now.cancel();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.acked, 0, "no ack without a cluster");
    assert_eq!(first.pending, 200);
    assert!(report(dir.path()).is_empty());

    // Cluster back; a new simulator process resumes from the same queue.
    cluster.start_all().unwrap();
    cluster.wait_ready().await.unwrap();
    cluster.wait_stream_ready(topology::RAW).await.unwrap();
    let second = simulate::run(cfg, CancellationToken::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        second.generated, 0,
        "nothing new: the queue remembered the sequence"
    );
    assert_eq!(second.acked, 200);
    assert_eq!(second.pending, 0);
    let raw = positions_in_raw(&cluster).await;
    assert_eq!(raw.len(), 200);
    assert!(
        raw.values().all(|(n, _, _)| *n == 1),
        "no record stored twice"
    );
}

/// Every position in RAW with its speed, counted by (device, protocol, fix).
async fn positions_with_speed_in_raw(
    cluster: &Cluster,
) -> BTreeMap<(String, DateTime<Utc>), (usize, String, f64, f64, f64)> {
    let mut out = BTreeMap::new();
    for m in cluster.stream_messages(topology::RAW).await.unwrap() {
        let protocol: Protocol = m
            .headers
            .get(headers::PROTOCOL)
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
        let device = m.headers.get(headers::DEVICE).unwrap().as_str().to_string();
        let records = protocol
            .parse(&m.payload, &ParseContext::new(device.clone(), Utc::now()))
            .unwrap();
        for r in records {
            if let Record::Position(p) = r {
                let e = out.entry((p.device_id.clone(), p.fix_time)).or_insert((
                    0,
                    p.protocol.clone(),
                    p.latitude,
                    p.longitude,
                    p.speed,
                ));
                e.0 += 1;
            }
        }
    }
    out
}

/// A mixed fleet, two devices per protocol the simulator speaks, through
/// two gateways listening on every protocol, the first address of each
/// device dead: every acknowledged record is in RAW once, under the
/// protocol's device id, with the values sent (within `fleetbus verify`'s
/// tolerances). Covers the answered protocols and the barrier ones (TK103,
/// Queclink), whose ack is the answer to an unstored frame sent behind the
/// data.
#[tokio::test]
async fn every_protocol_delivers_each_acknowledged_record_once() {
    let cluster = provisioned_cluster().await;
    let mut gws = Vec::new();
    for id in ["gw-all-a", "gw-all-b"] {
        let mut c = common::gateway_config(id);
        c.retry_for_secs = 5;
        for (_, l) in c.protocols.iter_mut() {
            l.enabled = true;
        }
        gws.push(common::gateway(&cluster, c).await);
    }
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gateways: Vec<(Protocol, Vec<SocketAddr>)> = simulate::SUPPORTED
        .iter()
        .map(|&p| {
            let mut list = vec![dead];
            list.extend(gws.iter().map(|g| g.addr(p).unwrap()));
            (p, list)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), gateways);
    cfg.protocols = simulate::SUPPORTED.to_vec();
    cfg.devices = 2 * simulate::SUPPORTED.len();
    let records = cfg.devices as u64 * cfg.records;
    let summary = simulate::run(cfg, CancellationToken::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.generated, records);
    assert_eq!(summary.acked, records);
    assert_eq!(summary.pending, 0);

    let reported = report(dir.path());
    assert_eq!(reported.len() as u64, records);
    let raw = positions_with_speed_in_raw(&cluster).await;
    assert_eq!(raw.len() as u64, records, "every record, and nothing else");
    let mut protocols = std::collections::BTreeSet::new();
    for r in &reported {
        let (count, protocol, lat, lon, speed) = raw
            .get(&(r.device_id.clone(), r.fix_time))
            .unwrap_or_else(|| {
                panic!(
                    "{} {} {} acked but not in RAW",
                    r.protocol, r.device_id, r.fix_time
                )
            });
        assert_eq!(*count, 1, "{} {} stored twice", r.device_id, r.fix_time);
        assert_eq!(protocol, &r.protocol);
        assert!(
            (lat - r.latitude).abs() < 1e-5
                && (lon - r.longitude).abs() < 1e-5
                && (speed - r.speed).abs() < 1.0,
            "{} {}: sent {} {} {}, stored {lat} {lon} {speed}",
            r.protocol,
            r.device_id,
            r.latitude,
            r.longitude,
            r.speed
        );
        protocols.insert(r.protocol.clone());
    }
    assert_eq!(protocols.len(), simulate::SUPPORTED.len());
}

/// A TCP proxy to `target` that loses answers: every `every`-th chunk the
/// gateway sends (counted over all connections) is not forwarded, and the
/// connection is cut instead — an ack lost after the frame was stored.
async fn lossy_proxy(target: SocketAddr, every: usize) -> SocketAddr {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let chunks = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((device, _)) = listener.accept().await {
            let chunks = chunks.clone();
            tokio::spawn(async move {
                let Ok(gateway) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut from_device, mut to_device) = device.into_split();
                let (mut from_gateway, mut to_gateway) = gateway.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_device, &mut to_gateway).await;
                });
                let mut buf = vec![0u8; 8192];
                loop {
                    match from_gateway.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if (chunks.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(every) {
                                break; // lost
                            }
                            if to_device.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                up.abort();
            });
        }
    });
    addr
}

/// Duplicates the gateway's RAW store reported, per protocol.
fn duplicates(gw: &Gateway) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in gw.metrics.render().lines() {
        let Some(rest) = line.strip_prefix("fleetbus_gateway_frames_duplicate_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let protocol = labels.split('"').nth(1).unwrap_or_default().to_string();
        *out.entry(protocol).or_default() += value.trim().parse::<u64>().unwrap_or(0);
    }
    out
}

/// Acks lost after the frame was stored, for every protocol the simulator
/// speaks: the device sends the same frame again (to the next gateway), the
/// bytes are the same, so RAW keeps each record once — the resends show up
/// as duplicates the gateways' store recognised.
#[tokio::test]
async fn every_protocol_resends_identical_frames_after_a_lost_ack() {
    let cluster = provisioned_cluster().await;
    let mut gws = Vec::new();
    for id in ["gw-lossy-a", "gw-lossy-b"] {
        let mut c = common::gateway_config(id);
        c.retry_for_secs = 5;
        for (_, l) in c.protocols.iter_mut() {
            l.enabled = true;
        }
        gws.push(common::gateway(&cluster, c).await);
    }
    let mut gateways: Vec<(Protocol, Vec<SocketAddr>)> = Vec::new();
    for &p in simulate::SUPPORTED.iter() {
        let mut list = Vec::new();
        for g in &gws {
            list.push(lossy_proxy(g.addr(p).unwrap(), 3).await);
        }
        gateways.push((p, list));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), gateways);
    cfg.protocols = simulate::SUPPORTED.to_vec();
    cfg.devices = 2 * simulate::SUPPORTED.len();
    cfg.per_frame = 2;
    // Enough frames that each protocol loses some acks (a third of the
    // answers are lost: no loss in 40 answers is a 1e-7 chance).
    cfg.records = 20;
    let records = cfg.devices as u64 * cfg.records;
    let summary = simulate::run(cfg, CancellationToken::new(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.acked, records);
    assert_eq!(summary.pending, 0);
    assert!(summary.sent > summary.acked, "acks were lost: {summary}");
    eprintln!("{summary}");

    let raw = positions_with_speed_in_raw(&cluster).await;
    assert_eq!(raw.len() as u64, records, "every record, and nothing else");
    for ((device, fix), (count, protocol, ..)) in &raw {
        assert_eq!(*count, 1, "{protocol} {device} {fix} stored twice");
    }
    let mut dup: BTreeMap<String, u64> = BTreeMap::new();
    for g in &gws {
        let d = duplicates(g);
        eprintln!("duplicates recognised per protocol by one gateway: {d:?}");
        for (p, n) in d {
            *dup.entry(p).or_default() += n;
        }
    }
    for p in simulate::SUPPORTED {
        assert!(
            dup.get(p.name()).copied().unwrap_or(0) > 0,
            "{p}: no stored frame was resent ({dup:?})"
        );
    }
}

/// A TCP gate in front of `target`: closed (every connection is accepted
/// and dropped at once, like a server that is down) until `open` is set,
/// then a plain proxy.
async fn gate(
    target: SocketAddr,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> SocketAddr {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut device, _)) = listener.accept().await {
            if !open.load(Ordering::SeqCst) {
                continue; // dropped: the device sees its connection closed
            }
            tokio::spawn(async move {
                let Ok(mut gateway) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut device, &mut gateway).await;
            });
        }
    });
    addr
}

/// A tracker records on its schedule whether or not its server answers:
/// records that fell due while no gateway took the device are all queued,
/// and the backlog goes out in full frames once a gateway is back.
#[tokio::test]
async fn a_device_keeps_recording_while_unreachable_and_sends_its_backlog_in_full_frames() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, "gw-a").await;
    let open = Arc::new(AtomicBool::new(false));
    let addr = gate(gw.addr(Protocol::Teltonika).unwrap(), open.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        devices: 1,
        protocols: vec![Protocol::Teltonika],
        interval: Duration::from_millis(20),
        records: 30,
        per_frame: 10,
        ..config(dir.path(), vec![(Protocol::Teltonika, vec![addr])])
    };
    let queue_path = config.queue.clone();
    let fleet = tokio::spawn(simulate::run(
        config,
        CancellationToken::new(),
        CancellationToken::new(),
    ));
    // While every connection fails (with the device backing off up to
    // seconds between attempts), records keep falling due every 20 ms.
    let queue = Queue::open(&queue_path).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while queue.pending().await.unwrap() < 25 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the device stopped recording while it could not connect ({} queued)",
            queue.pending().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open.store(true, Ordering::SeqCst);
    let summary = fleet.await.unwrap().unwrap();
    assert_eq!((summary.generated, summary.acked), (30, 30));
    assert_eq!(positions_in_raw(&cluster).await.len(), 30);
    let mut frames: Vec<usize> = Vec::new();
    for m in cluster.stream_messages(topology::RAW).await.unwrap() {
        let ctx = ParseContext::new("d", Utc::now());
        frames.push(Protocol::Teltonika.parse(&m.payload, &ctx).unwrap().len());
    }
    assert!(
        frames.iter().filter(|&&n| n == 10).count() >= 2,
        "the backlog went out in full frames of 10: {frames:?}"
    );
}
