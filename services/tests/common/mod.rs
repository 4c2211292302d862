//! What the service tests share: a provisioned cluster, an in-process
//! gateway on free ports, and reading the events the monkeys derived.

#![allow(dead_code)] // each test file uses its own part

use fleetbus_wire::names;
use std::process::Output;
use std::time::Duration;

use async_nats::jetstream;
use fleetbus_e2e::{Cluster, Role};
use fleetbus_services::gateway::{Gateway, GatewayConfig};
use fleetbus_services::topology::{self, Scope, Settings};

/// A three-node cluster with every stream and consumer, RAW led.
pub async fn provisioned_cluster() -> Cluster {
    let cluster = Cluster::start().await.unwrap();
    let js = jetstream::new(cluster.connect(Role::Admin).await.unwrap());
    topology::provision(
        &js,
        &Settings::default(),
        &Scope::all(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    cluster.wait_stream_ready(names::RAW).await.unwrap();
    cluster
}

/// Teltonika and GT06 on free loopback ports, everything else off.
pub fn gateway_config(id: &str) -> GatewayConfig {
    let mut c = GatewayConfig {
        id: id.into(),
        bind: [127, 0, 0, 1].into(),
        ..GatewayConfig::default()
    };
    for (name, l) in c.protocols.iter_mut() {
        l.port = 0;
        l.enabled = name == "teltonika" || name == "gt06";
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
    cluster
        .stream_messages(names::EVENTS)
        .await
        .unwrap()
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            (
                v["type"].as_str().unwrap().to_string(),
                v["fix_time"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Runs the `fleetbus` binary as admin against `cluster`.
pub async fn fleetbus(cluster: &Cluster, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbus"))
        .args(args)
        .envs(cluster.service_env(Role::Admin))
        .output()
        .await
        .expect("fleetbus runs")
}
