//! The JSON Schemas in `wire/schema/` are what a reader outside Rust
//! implements (docs/streams.md#messages). This test holds them against what
//! real programs publish: a simulated fleet of every protocol the simulator
//! speaks, through a real gateway, a hamster process and a monkey process on
//! a real cluster. Every PARSED message, every EVENTS message and every
//! entry of the `devices` bucket must validate, with the headers the
//! contract promises.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;
use fleetbus_e2e::{Cluster, Proc, Role, Spec};
use fleetbus_services::simulate::protocols::SUPPORTED;
use fleetbus_services::simulate::{self, Config, Resend};
use fleetbus_wire::names::{self, Durable};
use fleetbus_wire::{headers, Envelope};
use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(90);

fn schema_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wire/schema")
}

fn load(name: &str) -> Value {
    let path = schema_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// A validator for `name`, the other schema files registered under their
/// `$id`s so that references between them resolve offline.
fn validator(name: &str) -> jsonschema::Validator {
    let mut options = jsonschema::options();
    for other in ["record.json", "event.json"] {
        let schema = load(other);
        let id = schema["$id"].as_str().unwrap().to_string();
        options = options.with_resource(id, jsonschema::Resource::from_contents(schema));
    }
    options
        .build(&load(name))
        .unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"))
}

fn check(v: &jsonschema::Validator, what: &str, instance: &Value) {
    let errors: Vec<String> = v
        .iter_errors(instance)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema: {errors:?}\n{instance}"
    );
}

fn worker(cluster: &Cluster, role: Role) -> Spec {
    Spec::new(role.name(), env!("CARGO_BIN_EXE_fleetbus"))
        .args([role.name()])
        .envs(cluster.service_env(role))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_workers_publish_matches_the_published_schemas() {
    let cluster = common::provisioned_cluster().await;
    let js = jetstream::new(cluster.connect(Role::Admin).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::gateway_config("gw-schema");
    for (_, l) in config.protocols.iter_mut() {
        l.enabled = true;
    }
    let gateway = common::gateway(&cluster, config).await;
    let gateways = SUPPORTED
        .iter()
        .map(|&p| simulate::gateway_spec(p, &[gateway.addr(p).unwrap()]))
        .collect();
    // 24 records a device: the simulator turns the ignition over after 20,
    // so devices whose protocol carries it raise events; frames of 3.
    let summary = simulate::run(
        Config {
            devices: SUPPORTED.len() * 2,
            protocols: SUPPORTED.map(|p| p.name().into()).to_vec(),
            fleet: 11,
            interval_ms: 10,
            records: 24,
            per_frame: 3,
            resend: Resend::Firmware,
            gateways,
            queue: dir.path().join("queue.db"),
            ack_timeout_secs: 20,
            progress_secs: 0,
            ..Config::default()
        },
        CancellationToken::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.acked, summary.generated, "{summary:?}");

    // PARSED, as a hamster process writes it; no monkey yet, so it stays.
    let mut hamster = Proc::start(worker(&cluster, Role::Hamster), dir.path()).unwrap();
    cluster
        .wait_stage_drained(Durable::Hamsters, WAIT)
        .await
        .unwrap();
    hamster.terminate(Duration::from_secs(30)).await;
    let parsed = validator("parsed.json");
    let mut protocols = BTreeSet::new();
    let mut records = 0;
    for m in cluster.stream_messages(names::PARSED).await.unwrap() {
        let id = m
            .header(headers::MSG_ID)
            .expect("every PARSED message has an id")
            .to_string();
        let body: Value = serde_json::from_slice(&m.payload).unwrap();
        check(&parsed, &id, &body);
        let n: usize = m
            .header(headers::RECORDS)
            .expect("Fleetbus-Records")
            .parse()
            .unwrap();
        assert_eq!(body.as_array().unwrap().len(), n, "{id}");
        let raw = m.header(headers::RAW_ID).expect("Fleetbus-Raw-Id");
        assert!(
            id.starts_with(&format!("{raw}#")),
            "{id} names its frame {raw}"
        );
        let (protocol, device) = m.origin();
        let partition = names::partition_of(m.subject.as_str()).expect("a partition");
        assert_eq!(
            m.subject.as_str(),
            names::parsed_subject(partition, &protocol, &device)
        );
        assert!(m.header(headers::RECEIVED_AT).is_some() && m.header(headers::GATEWAY).is_some());
        protocols.insert(protocol);
        records += n;
    }
    let speaks: BTreeSet<String> = SUPPORTED.iter().map(|p| p.name().to_string()).collect();
    assert_eq!(protocols, speaks, "every protocol's records were judged");
    assert!(
        records as u64 >= summary.generated,
        "{records} records of {summary:?}"
    );

    // EVENTS and the devices bucket, as a monkey process writes them.
    let mut monkey = Proc::start(worker(&cluster, Role::Monkey), dir.path()).unwrap();
    cluster
        .wait_stage_drained(Durable::Monkeys, WAIT)
        .await
        .unwrap();
    monkey.terminate(Duration::from_secs(30)).await;
    let event = validator("event.json");
    let events = cluster.stream_messages(names::EVENTS).await.unwrap();
    // Not every protocol carries the ignition; those that do turn it over.
    assert!(events.len() >= 2, "{} events", events.len());
    for m in &events {
        let body: Value = serde_json::from_slice(&m.payload).unwrap();
        check(&event, m.subject.as_str(), &body);
        let kind = body["type"].as_str().unwrap();
        assert!(
            m.subject.as_str().ends_with(&format!(".{kind}")),
            "{}",
            m.subject
        );
    }
    let entry = validator("device-entry.json");
    let kv = js.get_key_value(names::DEVICES_BUCKET).await.unwrap();
    let keys: Vec<String> = kv.keys().await.unwrap().map(|k| k.unwrap()).collect().await;
    assert_eq!(keys.len(), SUPPORTED.len() * 2, "{keys:?}");
    for key in keys {
        let value = kv.get(&key).await.unwrap().unwrap();
        check(&entry, &key, &serde_json::from_slice(&value).unwrap());
    }
    drop(gateway);
}
