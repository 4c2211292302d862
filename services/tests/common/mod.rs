//! What the service tests share: provisioned clusters, an in-process
//! gateway on free ports, configuration files, the `fleetbus` binary as a
//! process (commands, a configuration it must refuse, worker specs,
//! registrations), and, in the submodules, fixes and frames
//! ([`fixes`]), reading streams and headers ([`streams`]), a gateway's
//! metrics ([`metrics`]) and what the hamster and monkey tests share
//! ([`workers`]).

#![allow(dead_code)] // each test file uses its own part

pub mod fixes;
pub mod metrics;
pub mod streams;
pub mod workers;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use async_nats::jetstream;
use fleetbus_e2e::{text, wait_for, Cluster, Proc, Role, Spec};
use fleetbus_services::gateway::{Gateway, GatewayConfig};
use fleetbus_services::topology::{self, Scope, Settings};
use fleetbus_wire::names;
use serde_json::Value;

/// How long the tests wait for a cluster or a worker to get somewhere.
pub const WAIT: Duration = Duration::from_secs(60);

/// A JetStream context logged in as `role`, knowing every node.
pub async fn js(cluster: &Cluster, role: Role) -> jetstream::Context {
    jetstream::new(cluster.connect(role).await.unwrap())
}

/// Provisions every stream and consumer with `settings`, which must go
/// without a problem.
pub async fn provision(admin: &jetstream::Context, settings: &Settings) {
    let report = topology::provision(admin, settings, &Scope::all(), WAIT)
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
}

/// A three-node cluster with every stream and consumer, RAW led.
pub async fn provisioned_cluster() -> Cluster {
    provisioned_cluster_with(&Settings::default()).await
}

/// [`provisioned_cluster`] with these settings.
pub async fn provisioned_cluster_with(settings: &Settings) -> Cluster {
    let cluster = Cluster::start().await.unwrap();
    provision(&js(&cluster, Role::Admin).await, settings).await;
    cluster.wait_stream_ready(names::RAW).await.unwrap();
    cluster
}

/// Starts every node of a cluster that was killed again, and waits until
/// it is ready and RAW has a leader.
pub async fn back_up(cluster: &mut Cluster) {
    cluster.start_all().unwrap();
    cluster.wait_ready().await.unwrap();
    cluster.wait_stream_ready(names::RAW).await.unwrap();
}

/// Teltonika and GT06 on free loopback ports, everything else off.
pub fn gateway_config(id: &str) -> GatewayConfig {
    only_protocols(id, &["teltonika", "gt06"])
}

/// The protocols named on free loopback ports, TCP only, everything else
/// off; every device admitted (`open`: these tests are about what the
/// gateway does with a device's frames; `gateway_admission.rs` is about
/// which devices it takes).
pub fn only_protocols(id: &str, protocols: &[&str]) -> GatewayConfig {
    let mut c = GatewayConfig {
        id: id.into(),
        bind: [127, 0, 0, 1].into(),
        admission: fleetbus_services::gateway::admission::Policy::Open,
        ..GatewayConfig::default()
    };
    for (name, l) in c.protocols.iter_mut() {
        l.port = 0;
        l.enabled = protocols.contains(&name.as_str());
    }
    c
}

/// A gateway in this process, logged in as the gateway role, knowing every node.
pub async fn gateway(cluster: &Cluster, config: GatewayConfig) -> Gateway {
    let client = cluster
        .connect_options(Role::Gateway)
        .connect(cluster.client_urls())
        .await
        .unwrap();
    Gateway::start(config, client).await.unwrap()
}

/// The EVENTS stream as (type, fix time) pairs, in stream order.
pub async fn events(cluster: &Cluster) -> Vec<(String, String)> {
    streams::json_messages(cluster, names::EVENTS)
        .await
        .into_iter()
        .map(|(_, v)| {
            (
                v["type"].as_str().unwrap().to_string(),
                v["fix_time"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The `fleetbus` binary this crate built.
pub fn fleetbus_bin() -> &'static str {
    env!("CARGO_BIN_EXE_fleetbus")
}

/// Runs the `fleetbus` binary as admin against `cluster`.
pub async fn fleetbus(cluster: &Cluster, args: &[&str]) -> Output {
    tokio::process::Command::new(fleetbus_bin())
        .args(args)
        .envs(cluster.service_env(Role::Admin))
        .output()
        .await
        .expect("fleetbus runs")
}

/// [`fleetbus`], which must exit 0: everything it printed (stdout, then
/// stderr).
pub async fn fleetbus_ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = fleetbus(cluster, args).await;
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    text(&out)
}

/// `fleetbus <role>` as a process named `name`, logged in as `role`;
/// the caller adds its arguments.
pub fn spec(cluster: &Cluster, role: Role, name: &str) -> Spec {
    Spec::new(name, fleetbus_bin())
        .arg(role.name())
        .envs(cluster.service_env(role))
}

/// A fresh directory with `text` as its `fleetbus.toml`: the directory
/// (the file is gone when it is dropped) and the file's path.
pub fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleetbus.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// `fleetbus <args>` as a process with nothing from the environment
/// running the tests (no `FLEETBUS_CONFIG`, no NATS URL or login), so that
/// only the arguments and files a test gives count.
pub fn fleetbus_alone(args: &[&str]) -> Output {
    std::process::Command::new(fleetbus_bin())
        .args(args)
        .env_remove("FLEETBUS_CONFIG")
        .env_remove("FLEETBUS_NATS_URL")
        .env_remove("FLEETBUS_NATS_USER")
        .env_remove("FLEETBUS_NATS_PASSWORD")
        .output()
        .unwrap()
}

/// `fleetbus <args> --config <a file of toml>` must refuse the file as
/// every program refuses a wrong configuration: exit 78 (EX_CONFIG), each
/// of `problems` named on stderr.
pub fn assert_config_refused(args: &[&str], toml: &str, problems: &[&str]) {
    let (_dir, path) = config_file(toml);
    let out = fleetbus_alone(&[args, &["--config", path.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(78), "{args:?}: {}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for problem in problems {
        assert!(
            err.contains(problem),
            "{args:?}: {problem:?} missing in {err}"
        );
    }
}

/// SIGTERM, and the process must exit 0 within 30 s.
pub async fn stop(p: &mut Proc) {
    let status = p.terminate(Duration::from_secs(30)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", p.log_tail(20));
}

/// The workers named `name` that `fleetbus status --json` lists (none
/// where it printed no report).
pub async fn registered(cluster: &Cluster, name: &str) -> Vec<Value> {
    let out = fleetbus(cluster, &["status", "--json"]).await;
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    status["workers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|w| w["name"] == name)
        .collect()
}

/// Waits until `fleetbus status` lists exactly `n` workers named `name`.
pub async fn wait_registered(cluster: &Cluster, name: &str, n: usize) {
    wait_for(&format!("{n} {name} registered"), WAIT, || async {
        Ok((registered(cluster, name).await.len() == n).then_some(()))
    })
    .await
    .unwrap();
}

/// Registers `device` in the registry bucket as an operator would
/// (`fleetbus device add`), optionally pinned to a protocol, with a model.
pub async fn register(
    cluster: &Cluster,
    device: &str,
    protocol: Option<&str>,
    model: Option<&str>,
) {
    put_entry(
        cluster,
        &fleetbus_wire::registry::KnownDevice {
            id: device.into(),
            protocol: protocol.map(Into::into),
            model: model.map(Into::into),
            name: None,
            auth_code: None,
            added_at: chrono::Utc::now(),
        },
    )
    .await;
}

/// Writes `entry` into the registry bucket, replacing what was there.
pub async fn put_entry(cluster: &Cluster, entry: &fleetbus_wire::registry::KnownDevice) {
    use fleetbus_wire::registry::{registry_key, REGISTRY_BUCKET};
    let kv = js(cluster, Role::Admin)
        .await
        .get_key_value(REGISTRY_BUCKET)
        .await
        .unwrap();
    kv.put(
        registry_key(&entry.id),
        serde_json::to_vec(entry).unwrap().into(),
    )
    .await
    .unwrap();
}
