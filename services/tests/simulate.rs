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
        async move { Ok((Queue::open(&queue_path)?.pending()? == 200).then_some(())) }
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
