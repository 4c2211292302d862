//! The simulated fleet against real gateways and a real cluster: what it
//! reports as acknowledged is in RAW with the values sent — once where
//! nothing was resent or resends are byte for byte, in several frames where
//! a device re-packed or re-encoded a resend as its firmware does; it moves
//! to the next gateway when one is unreachable; it resumes from its queue.

use fleetbus_wire::names;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleetbus_codec::identity::position_identity;
use fleetbus_codec::{ParseContext, Position, Protocol, Record};
use fleetbus_e2e::Cluster;
use fleetbus_services::gateway::{Gateway, GatewayConfig};
use fleetbus_services::simulate::protocols::{behaviour, Behaviour};
use fleetbus_services::simulate::{self, Config, Queue, Reported, Resend, Summary};
use fleetbus_wire::headers;
use tokio_util::sync::CancellationToken;

mod common;

use common::provisioned_cluster;
use common::streams::{header, messages};

/// A gateway that gives up storing a frame after 5 s.
async fn started(cluster: &Cluster, mut c: GatewayConfig) -> Gateway {
    c.retry_for_secs = 5;
    common::gateway(cluster, c).await
}

/// Teltonika and GT06.
async fn gateway(cluster: &Cluster, id: &str) -> Gateway {
    started(cluster, common::gateway_config(id)).await
}

/// Every protocol.
async fn all_protocols_gateway(cluster: &Cluster, id: &str) -> Gateway {
    let mut c = common::gateway_config(id);
    for (_, l) in c.protocols.iter_mut() {
        l.enabled = true;
    }
    started(cluster, c).await
}

/// A loopback address where nothing listens, like a dead primary server.
fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn config(dir: &Path, gateways: Vec<(Protocol, Vec<SocketAddr>)>) -> Config {
    Config {
        devices: 20,
        protocols: vec!["teltonika".into(), "gt06".into()],
        fleet: 7,
        interval_ms: 10,
        records: 10,
        duration_secs: None,
        per_frame: 3,
        resend: Resend::Firmware,
        gateways: gateways
            .iter()
            .map(|(p, addrs)| simulate::gateway_spec(*p, addrs))
            .collect(),
        queue: dir.join("queue.db"),
        report: Some(dir.join("report.jsonl")),
        ack_timeout_secs: 20,
        progress_secs: 0,
        ..Config::default()
    }
}

/// [`config`] for a mixed fleet: two devices per protocol the simulator
/// speaks.
fn mixed_fleet(dir: &Path, gateways: Vec<(Protocol, Vec<SocketAddr>)>) -> Config {
    let mut cfg = config(dir, gateways);
    cfg.protocols = simulate::SUPPORTED.map(|p| p.name().into()).to_vec();
    cfg.devices = 2 * simulate::SUPPORTED.len();
    cfg
}

/// Runs the fleet to the end.
async fn run(cfg: Config) -> Summary {
    simulate::run(cfg, CancellationToken::new(), CancellationToken::new())
        .await
        .unwrap()
}

fn addrs(gws: &[&Gateway], p: Protocol) -> (Protocol, Vec<SocketAddr>) {
    (p, gws.iter().map(|g| g.addr(p).unwrap()).collect())
}

/// A fix in RAW: by (device, fix time), one copy per RAW message that
/// carries it, in stream order.
type InRaw = BTreeMap<(String, DateTime<Utc>), Vec<Position>>;

/// Every RAW message decoded with the codec of its protocol header.
async fn records_in_raw(cluster: &Cluster) -> Vec<Vec<Record>> {
    let mut out = Vec::new();
    for m in messages(cluster, names::RAW).await {
        let protocol: Protocol = header(&m, headers::PROTOCOL).unwrap().parse().unwrap();
        let device = header(&m, headers::DEVICE).unwrap().to_string();
        let ctx = ParseContext::new(device, Utc::now());
        out.push(protocol.parse(&m.payload, &ctx).unwrap());
    }
    out
}

/// Every position in RAW, with its copies.
async fn positions_in_raw(cluster: &Cluster) -> InRaw {
    let mut out = InRaw::new();
    for r in records_in_raw(cluster).await.into_iter().flatten() {
        if let Record::Position(p) = r {
            out.entry((p.device_id.clone(), p.fix_time))
                .or_default()
                .push(p);
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
    let dead = dead_addr();
    let mut gws = vec![
        addrs(&[&a, &b], Protocol::Teltonika),
        addrs(&[&a, &b], Protocol::Gt06),
    ];
    for (_, list) in gws.iter_mut() {
        list.insert(0, dead);
    }
    let summary = run(config(dir.path(), gws)).await;
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
        let copies = raw
            .get(&(r.device_id.clone(), r.fix_time))
            .unwrap_or_else(|| panic!("{} {} acked but not in RAW", r.device_id, r.fix_time));
        assert_eq!(
            copies.len(),
            1,
            "{} {} stored twice",
            r.device_id,
            r.fix_time
        );
        let (lat, lon) = (copies[0].latitude, copies[0].longitude);
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

/// Devices whose IMEI belongs to fleet `fleet` (its 3 digits after `35`).
fn of_fleet<V>(raw: &BTreeMap<(String, DateTime<Utc>), V>, fleet: u32) -> Vec<&V> {
    let prefix = &simulate::imei(fleet, 0)[..5];
    raw.iter()
        .filter(|((device, _), _)| device.starts_with(prefix))
        .map(|(_, v)| v)
        .collect()
}

/// Two fleets side by side, stopped while the cluster was down and started
/// again from their queues: one resending the same bytes, one as firmware
/// does (Teltonika re-packs, GT06 re-encodes). Both deliver every record
/// and generate none anew (the queue remembered the sequence). With the
/// same bytes each record is in RAW once, even where a gateway stored a
/// frame late; as firmware, such a frame's resend is other bytes, another
/// RAW message, which the hamsters recognise by record identity.
#[tokio::test]
async fn a_stopped_simulator_resumes_from_its_queue_without_duplicates() {
    let mut cluster = provisioned_cluster().await;
    let gw = gateway(&cluster, "gw-r").await;
    let gws = vec![
        addrs(&[&gw], Protocol::Teltonika),
        addrs(&[&gw], Protocol::Gt06),
    ];
    let fleets = [(7, Resend::Same), (8, Resend::Firmware)];
    let dirs: Vec<tempfile::TempDir> = fleets
        .iter()
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let configs: Vec<Config> = fleets
        .iter()
        .zip(&dirs)
        .map(|(&(fleet, resend), dir)| Config {
            fleet,
            resend,
            ack_timeout_secs: 2,
            ..config(dir.path(), gws.clone())
        })
        .collect();

    // The cluster is down: nothing can be acknowledged. Stop the fleets
    // after they generated everything.
    cluster.kill_all();
    let stop_now = CancellationToken::new();
    let first: Vec<_> = configs
        .iter()
        .map(|cfg| {
            let (cfg, stop_now) = (cfg.clone(), stop_now.clone());
            tokio::spawn(
                async move { simulate::run(cfg, CancellationToken::new(), stop_now).await },
            )
        })
        .collect();
    for cfg in &configs {
        let queue_path = cfg.queue.clone();
        fleetbus_e2e::wait_for("all records generated", Duration::from_secs(30), || {
            let queue_path = queue_path.clone();
            async move { Ok((Queue::open(&queue_path)?.pending().await? == 200).then_some(())) }
        })
        .await
        .unwrap();
    }
    stop_now.cancel();
    for (run, dir) in first.into_iter().zip(&dirs) {
        let first = run.await.unwrap().unwrap();
        assert_eq!(first.acked, 0, "no ack without a cluster");
        assert_eq!(first.pending, 200);
        assert!(report(dir.path()).is_empty());
    }

    // Cluster back; new simulator processes resume from the same queues.
    common::back_up(&mut cluster).await;
    let second = futures::future::join_all(configs.iter().map(|cfg| {
        simulate::run(
            cfg.clone(),
            CancellationToken::new(),
            CancellationToken::new(),
        )
    }))
    .await;
    for (summary, (fleet, resend)) in second.into_iter().zip(fleets) {
        let summary = summary.unwrap();
        assert_eq!(
            summary.generated, 0,
            "fleet {fleet}: nothing new: the queue remembered the sequence"
        );
        assert_eq!(summary.acked, 200, "fleet {fleet}");
        assert_eq!(summary.pending, 0, "fleet {fleet}");
        assert_eq!(summary.resend, resend);
    }
    let raw = positions_in_raw(&cluster).await;
    let same = of_fleet(&raw, 7);
    assert_eq!(same.len(), 200, "--resend same: every record");
    assert!(
        same.iter().all(|copies| copies.len() == 1),
        "--resend same: no record stored twice"
    );
    assert_eq!(
        of_fleet(&raw, 8).len(),
        200,
        "--resend firmware: every record"
    );
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
    let gws = [
        all_protocols_gateway(&cluster, "gw-all-a").await,
        all_protocols_gateway(&cluster, "gw-all-b").await,
    ];
    let dead = dead_addr();
    let gateways: Vec<(Protocol, Vec<SocketAddr>)> = simulate::SUPPORTED
        .iter()
        .map(|&p| {
            let mut list = vec![dead];
            list.extend(gws.iter().map(|g| g.addr(p).unwrap()));
            (p, list)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = mixed_fleet(dir.path(), gateways);
    let records = cfg.devices as u64 * cfg.records;
    let summary = run(cfg).await;
    assert_eq!(summary.generated, records);
    assert_eq!(summary.acked, records);
    assert_eq!(summary.pending, 0);

    let reported = report(dir.path());
    assert_eq!(reported.len() as u64, records);
    let raw = positions_in_raw(&cluster).await;
    assert_eq!(raw.len() as u64, records, "every record, and nothing else");
    let mut protocols = std::collections::BTreeSet::new();
    for r in &reported {
        let copies = raw
            .get(&(r.device_id.clone(), r.fix_time))
            .unwrap_or_else(|| {
                panic!(
                    "{} {} {} acked but not in RAW",
                    r.protocol, r.device_id, r.fix_time
                )
            });
        assert_eq!(
            copies.len(),
            1,
            "{} {} stored twice",
            r.device_id,
            r.fix_time
        );
        let Position {
            protocol,
            latitude: lat,
            longitude: lon,
            speed,
            ..
        } = &copies[0];
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

/// A TCP proxy to `target` that loses every `every`-th answer after the
/// frame was stored (`fleetbus_e2e::LossyProxy`); it serves until the test
/// ends.
async fn lossy_proxy(target: SocketAddr, every: usize) -> SocketAddr {
    let proxy = fleetbus_e2e::LossyProxy::start(target, every)
        .await
        .unwrap();
    let addr = proxy.addr;
    // Dropping it would stop it.
    std::mem::forget(proxy);
    addr
}

/// A mixed fleet (two devices per protocol the simulator speaks) through
/// two gateways behind [`lossy_proxy`]s that lose every third answer after
/// the frame was stored, until every record is acknowledged.
struct LossyRun {
    cluster: Cluster,
    gateways: Vec<Gateway>,
    dir: tempfile::TempDir,
    summary: Summary,
    records: u64,
}

async fn lossy_run(ids: [&str; 2], tune: impl FnOnce(&mut Config)) -> LossyRun {
    let cluster = provisioned_cluster().await;
    let mut gws = Vec::new();
    for id in ids {
        gws.push(all_protocols_gateway(&cluster, id).await);
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
    let mut cfg = mixed_fleet(dir.path(), gateways);
    tune(&mut cfg);
    let records = cfg.devices as u64 * cfg.records;
    let summary = run(cfg).await;
    eprintln!("{summary}");
    assert_eq!(summary.acked, records);
    assert_eq!(summary.pending, 0);
    assert!(summary.sent > summary.acked, "acks were lost: {summary}");
    assert!(summary.resends > 0, "frames were resent: {summary}");
    LossyRun {
        cluster,
        gateways: gws,
        dir,
        summary,
        records,
    }
}

/// The duplicates all gateways' stores recognised, per protocol.
fn duplicates_of_all(gws: &[Gateway]) -> BTreeMap<String, u64> {
    let mut dup: BTreeMap<String, u64> = BTreeMap::new();
    for g in gws {
        let d = common::metrics::per_protocol(g, "frames_duplicate");
        eprintln!("duplicates recognised per protocol by one gateway: {d:?}");
        for (p, n) in d {
            *dup.entry(p).or_default() += n;
        }
    }
    dup
}

/// Acks lost after the frame was stored, for every protocol the simulator
/// speaks, with `--resend same`: the device sends the same frame again (to
/// the next gateway), the bytes are the same, so RAW keeps each record
/// once — the resends show up as duplicates the gateways' store recognised.
#[tokio::test]
async fn every_protocol_resends_identical_frames_after_a_lost_ack() {
    let run = lossy_run(["gw-lossy-a", "gw-lossy-b"], |cfg| {
        cfg.resend = Resend::Same;
        cfg.per_frame = 2;
        // Enough frames that each protocol loses some acks (a third of the
        // answers are lost: no loss in 40 answers is a 1e-7 chance).
        cfg.records = 20;
    })
    .await;
    let raw = positions_in_raw(&run.cluster).await;
    assert_eq!(
        raw.len() as u64,
        run.records,
        "every record, and nothing else"
    );
    for ((device, fix), copies) in &raw {
        let protocol = &copies[0].protocol;
        assert_eq!(copies.len(), 1, "{protocol} {device} {fix} stored twice");
    }
    let dup = duplicates_of_all(&run.gateways);
    for p in simulate::SUPPORTED {
        assert!(
            dup.get(p.name()).copied().unwrap_or(0) > 0,
            "{p}: no stored frame was resent ({dup:?})"
        );
    }
}

/// Acks lost after the frame was stored, for every protocol, with the
/// default `--resend firmware`: every acknowledged record is in RAW with
/// the values sent, and nothing else; where the firmware re-packs
/// (Teltonika, Ruptela, Meitrack) or re-encodes (GT06, JT808, Queclink)
/// some records are in more than one RAW message — the resends really are
/// other bytes — each copy the same record (identity); where it resends
/// the same bytes (H02, GPS103, TK103, Wialon IPS) each record is in RAW once and the
/// resends are duplicates the gateways recognised. (That PARSED holds each
/// record once is the hamsters' part, tested end to end.)
#[tokio::test]
async fn every_protocol_resends_as_its_firmware_after_a_lost_ack() {
    let run = lossy_run(["gw-firmware-a", "gw-firmware-b"], |cfg| {
        assert_eq!(cfg.resend, Resend::Firmware, "the default");
        // Frames never full and records still coming during the resends:
        // a re-packed frame then holds more records than the one it
        // replaces (a full frame re-packed is the same frame again).
        cfg.per_frame = 40;
        cfg.interval_ms = 25;
        cfg.records = 30;
    })
    .await;
    let reported = report(run.dir.path());
    assert_eq!(reported.len() as u64, run.records, "{}", run.summary);
    let raw = positions_in_raw(&run.cluster).await;
    let acked: BTreeSet<(String, DateTime<Utc>)> = reported
        .iter()
        .map(|r| (r.device_id.clone(), r.fix_time))
        .collect();
    let stored: BTreeSet<(String, DateTime<Utc>)> = raw.keys().cloned().collect();
    assert_eq!(
        acked.len() as u64,
        run.records,
        "each record acknowledged once"
    );
    assert_eq!(
        stored.difference(&acked).count() + acked.difference(&stored).count(),
        0,
        "every acknowledged record is in RAW, and nothing else: missing {:?}, extra {:?}",
        acked.difference(&stored).collect::<Vec<_>>(),
        stored.difference(&acked).collect::<Vec<_>>()
    );
    // Per protocol: records in more than one RAW message.
    let mut repeated: BTreeMap<String, usize> = BTreeMap::new();
    for r in &reported {
        let copies = &raw[&(r.device_id.clone(), r.fix_time)];
        assert_eq!(&copies[0].protocol, &r.protocol);
        let (lat, lon) = (copies[0].latitude, copies[0].longitude);
        // Per RAW message that carries it: the parsed position's identity.
        let identities: Vec<u64> = copies.iter().map(position_identity).collect();
        assert!(
            identities.iter().all(|&c| c == identities[0]),
            "{} {} {}: its copies in RAW are different records: {identities:?}",
            r.protocol,
            r.device_id,
            r.fix_time
        );
        assert!(
            (lat - r.latitude).abs() < 1e-5 && (lon - r.longitude).abs() < 1e-5,
            "{} {} {}: sent {} {}, stored {lat} {lon}",
            r.protocol,
            r.device_id,
            r.fix_time,
            r.latitude,
            r.longitude
        );
        *repeated.entry(r.protocol.clone()).or_default() += usize::from(copies.len() > 1);
    }
    eprintln!("records in more than one RAW message, per protocol: {repeated:?}");
    let dup = duplicates_of_all(&run.gateways);
    for p in simulate::SUPPORTED {
        let repeated = repeated.get(p.name()).copied().unwrap_or(0);
        match behaviour(p, Resend::Firmware) {
            Behaviour::Same => {
                assert_eq!(repeated, 0, "{p}: the same bytes are stored once");
                assert!(
                    dup.get(p.name()).copied().unwrap_or(0) > 0,
                    "{p}: no stored frame was resent ({dup:?})"
                );
            }
            Behaviour::Repack | Behaviour::Reencode => assert!(
                repeated > 0,
                "{p}: no record stored in two frames: the resends were the same bytes"
            ),
        }
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
        protocols: vec!["teltonika".into()],
        interval_ms: 20,
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
    let frames: Vec<usize> = records_in_raw(&cluster)
        .await
        .iter()
        .map(Vec::len)
        .collect();
    assert!(
        frames.iter().filter(|&&n| n == 10).count() >= 2,
        "the backlog went out in full frames of 10: {frames:?}"
    );
}
