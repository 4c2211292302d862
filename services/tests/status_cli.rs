//! `fleetbus provision` and `fleetbus status` as processes, against a real
//! three-node cluster from the fleetbus-e2e harness.

use std::process::Output;

use fleetbus_e2e::{Cluster, Role};
use serde_json::Value;

async fn fleetbus(cluster: &Cluster, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbus"))
        .args(args)
        .envs(cluster.service_env(Role::Admin))
        .output()
        .await
        .expect("fleetbus runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn provision_and_status_against_a_real_cluster() {
    let mut cluster = Cluster::start().await.unwrap();

    // Nothing provisioned yet: degraded, and it says why.
    let out = fleetbus(&cluster, &["status", "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["healthy"], false);
    let problems = status["problems"].to_string();
    assert!(problems.contains("stream RAW is missing"), "{problems}");

    let out = fleetbus(&cluster, &["provision"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("RAW              created"),
        "{}",
        text(&out)
    );
    let out = fleetbus(&cluster, &["provision", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["outcome"] == "unchanged"),
        "{report}"
    );

    // A worker registered as a NATS micro service, with the hamster login,
    // as the workers register (with live counters).
    let hamster = cluster.connect(Role::Hamster).await.unwrap();
    let _service = fleetbus_services::registry::register(
        &hamster,
        fleetbus_services::registry::Spec {
            role: fleetbus_services::nats::Role::Hamster,
            description: "test hamster".into(),
            concurrency: 2,
            metadata: Default::default(),
            stats: std::sync::Arc::new(|| serde_json::json!({"processed": 7, "dead": 1})),
        },
    )
    .await
    .unwrap();

    let out = fleetbus(&cluster, &["status", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["healthy"], true, "{status:#}");
    let cluster_json = &status["cluster"];
    assert_eq!(cluster_json["size"], 3);
    assert_eq!(
        cluster_json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["up"] == true)
            .count(),
        3
    );
    assert!(cluster_json["meta_leader"].is_string());
    let streams: Vec<&str> = status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        streams,
        vec!["RAW", "PARSED", "DEAD", "EVENTS", "KV_devices"]
    );
    assert!(status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["replicas"] == 3 && s["leader"].is_string()));
    assert_eq!(status["workers"][0]["name"], "hamster", "{status:#}");
    assert_eq!(status["workers"][0]["stats"]["processed"], 7, "{status:#}");
    assert_eq!(status["workers"][0]["metadata"]["concurrency"], "2");

    let out = fleetbus(&cluster, &["status"]).await;
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out);
    assert!(table.starts_with("cluster fleetbus: HEALTHY"), "{table}");
    assert!(table.contains("RAW/hamsters"), "{table}");
    assert!(table.contains("dead=1 processed=7"), "{table}");

    // One node down (not the meta leader, whose loss also stops the
    // JetStream API for a few seconds): degraded, and named.
    let leader = cluster_json["meta_leader"].as_str().unwrap().to_string();
    let victim = (0..3).find(|&i| cluster.node_name(i) != leader).unwrap();
    let victim_name = cluster.node_name(victim).to_string();
    cluster.kill(victim);
    let out = fleetbus(&cluster, &["status", "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = format!("node {victim_name} is not answering");
    assert!(
        status["problems"].to_string().contains(&expected),
        "{status:#}"
    );

    // Nothing there at all: unreachable.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetbus"))
        .args([
            "status",
            "--timeout",
            "1",
            "--nats-url",
            "nats://127.0.0.1:1",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
