//! What the hamster and monkey tests share: their configuration (short ack
//! waits and backoffs) and a cluster provisioned with it, the fixes they
//! send, publishing until stored, and in-process workers under a supervisor
//! or `fleetbus <role>` as a process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer};
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use fleetbus_actors::{
    Exit, Gate, Handler, PullConfig, PullWorkers, Stats, Supervisor, SupervisorConfig,
    SupervisorHandle,
};
use fleetbus_codec::Position;
use fleetbus_e2e::{Cluster, Role, Spec};
use fleetbus_services::topology::{GroupSettings, Settings};

use super::WAIT;

/// Short ack waits so that redeliveries happen within a test.
pub const CONFIG: &str = r#"
[topology]
duplicate_window_secs = 120
partitions = 2

[topology.hamsters]
in_flight_per_partition = 256
owner_timeout_secs = 5
backoff_secs = [1]

[topology.monkeys]
in_flight_per_partition = 256
owner_timeout_secs = 5
backoff_secs = [1]

[hamster]
poison_after = 2
give_up_after = 4

[hamster.supervisor]
backoff_min_ms = 20

[monkey]
poison_after = 2
give_up_after = 4
"#;

/// A directory with [`CONFIG`] in it, its path, its settings, a cluster
/// provisioned with them, and two logins to it: admin, and a hamster's (to
/// publish into PARSED as hamsters do).
pub type Setup = (
    tempfile::TempDir,
    PathBuf,
    Settings,
    Cluster,
    jetstream::Context,
    jetstream::Context,
);

pub async fn setup() -> Setup {
    let (dir, config) = super::config_file(CONFIG);
    let settings = Settings::load(Some(&config)).unwrap();
    let cluster = super::provisioned_cluster_with(&settings).await;
    sweeping(&cluster).await;
    let admin = super::js(&cluster, Role::Admin).await;
    let hamster = super::js(&cluster, Role::Hamster).await;
    (dir, config, settings, cluster, admin, hamster)
}

/// 2024-05-01 at 12:00:`sec` UTC.
fn t(sec: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, sec).unwrap()
}

/// A Teltonika fix of `device` at 12:00:`sec` ([`super::fixes::position_at`]).
pub fn position(device: &str, sec: u32) -> Position {
    super::fixes::position_at(device, "teltonika", t(sec))
}

/// Publishes one message and waits for its PubAck; like the gateway, a
/// publish that fails (no stream leader yet: a young cluster on a small
/// machine may still be electing one) is tried again with the same
/// message id, for up to [`WAIT`].
pub async fn publish_stored(js: &jetstream::Context, subject: &str, h: HeaderMap, payload: Bytes) {
    let deadline = Instant::now() + WAIT;
    loop {
        let stored = match js
            .publish_with_headers(subject.to_string(), h.clone(), payload.clone())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "{subject}: never stored: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// In-process workers as a worker process runs them: short pull waits
/// (`config` says the rest), the test's delivery policy for `group`
/// (poison after 2 deliveries, give up after 4).
pub fn pull_workers<H>(
    consumers: Vec<PullConsumer>,
    handler: H,
    stats: &Arc<Stats>,
    config: PullConfig,
    group: &GroupSettings,
    gate: &Arc<Gate>,
) -> PullWorkers<H> {
    PullWorkers {
        ownership: Arc::new(fleetbus_actors::Ownership::new(consumers.len())),
        consumers: Arc::new(consumers),
        handler: Arc::new(handler),
        stats: stats.clone(),
        config: PullConfig {
            expires_ms: 500,
            ..config
        },
        policy: fleetbus_services::worker::policy(2, 4, group),
        gate: gate.clone(),
    }
}

/// The janitor as `fleetbus janitor` runs it, in this test's runtime
/// until it ends: RAW and PARSED swept every 10 s below every reader's
/// floor, with the janitor's login (workers may not purge;
/// docs/streams.md). [`setup`] starts it.
pub async fn sweeping(cluster: &Cluster) -> Arc<Stats> {
    let js = super::js(cluster, Role::Janitor).await;
    let stats = Arc::new(Stats::default());
    for stream in [fleetbus_wire::names::RAW, fleetbus_wire::names::PARSED] {
        tokio::spawn(fleetbus_actors::janitor::run(
            js.clone(),
            stream.to_string(),
            stats.clone(),
        ));
    }
    stats
}

/// A supervisor of `workers`, one per partition, counting into their stats.
pub async fn supervise<H: Handler>(
    workers: PullWorkers<H>,
    config: SupervisorConfig,
) -> SupervisorHandle {
    let stats = workers.stats.clone();
    let n = workers.workers();
    Supervisor::start(workers, n, config, stats).await.unwrap()
}

/// The durables of `stage`'s partitions, as `settings` has them.
pub async fn partitions(
    js: &jetstream::Context,
    stage: fleetbus_wire::names::Durable,
    settings: &Settings,
) -> Vec<PullConsumer> {
    fleetbus_services::worker::partition_consumers(js, stage, settings.partitions)
        .await
        .unwrap()
}

/// Asks every worker to stop, and the supervisor must end in a shutdown.
pub async fn shut_down(supervisor: &mut SupervisorHandle) {
    supervisor.shutdown();
    assert_eq!(supervisor.wait().await, Exit::Shutdown);
}

/// `fleetbus <role>` named `name` with `--config config`, the `extra`
/// arguments and info logs.
pub fn worker(cluster: &Cluster, role: Role, name: &str, config: &Path, extra: &[&str]) -> Spec {
    super::spec(cluster, role, name)
        .args(["--config", config.to_str().unwrap()])
        .args(extra.iter().copied())
        .env("RUST_LOG", "info")
}
