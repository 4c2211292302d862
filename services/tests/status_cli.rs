//! `fleetbus provision` and `fleetbus status` as processes, against real
//! three-node clusters from the fleetbus-e2e harness. Each problem test
//! starts from a cluster that status calls healthy, breaks one thing the way
//! it breaks in production, and checks what a user would read: the exit
//! status, the problem line and its kind, the tables, the metrics.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use common::streams::{header, messages};
use common::{fleetbus, fleetbus_ok};
use fleetbus_e2e::{text, wait_for, Cluster, Role};
use fleetbus_services::registry::{self, Registration};
use serde_json::Value;

/// `fleetbus status --json <extra>`: its exit status and its report.
async fn status_json(cluster: &Cluster, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(extra);
    let out = fleetbus(cluster, &args).await;
    let status = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", text(&out)));
    (out.status.code(), status)
}

/// The problem kinds, as strings.
fn kinds(status: &Value) -> Vec<String> {
    status["problem_kinds"]
        .as_array()
        .unwrap_or_else(|| panic!("no problem_kinds: {status:#}"))
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// Polls `fleetbus status --json <extra>` until it reports exactly the
/// problem kinds `want`, in that order, with the exit status that goes with
/// them, and returns that report. Right after a change, a cluster may show
/// something passing (a leader being elected, a replica catching up); a
/// check that never fires fails the test, with the last report.
async fn wait_status(cluster: &Cluster, extra: &[&str], want: &[&str]) -> Value {
    let exit = if want.is_empty() { 0 } else { 1 };
    wait_for(
        &format!("status to report {want:?}"),
        Duration::from_secs(30),
        || async {
            let (code, status) = status_json(cluster, extra).await;
            if code == Some(exit) && kinds(&status) == want {
                Ok(Some(status))
            } else {
                Err(anyhow::anyhow!("exit {code:?}: {}", status["problems"]))
            }
        },
    )
    .await
    .unwrap()
}

/// The problem lines of one kind.
fn problems_of(status: &Value, kind: &str) -> Vec<String> {
    let lines = status["problems"].as_array().unwrap();
    kinds(status)
        .iter()
        .zip(lines)
        .filter(|(k, _)| k.as_str() == kind)
        .map(|(_, p)| p.as_str().unwrap().to_string())
        .collect()
}

fn named<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v[key] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:#}"))
}

/// Prometheus text: every line a comment or `name{labels} value`, as
/// series -> value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line:?}"
        );
        let labels = &series[name_end..];
        assert!(
            labels.is_empty()
                || (labels.starts_with('{')
                    && labels.ends_with('}')
                    && labels[1..labels.len() - 1].split(',').all(|kv| kv
                        .split_once('=')
                        .is_some_and(|(k, v)| !k.is_empty()
                            && v.len() >= 2
                            && v.starts_with('"')
                            && v.ends_with('"')))),
            "bad labels: {line:?}"
        );
        out.insert(series.to_string(), value);
    }
    out
}

/// `fleetbus status --metrics <extra>`, which must exit `exit` (the same
/// status as the report it renders): its series.
async fn metrics(cluster: &Cluster, extra: &[&str], exit: i32) -> BTreeMap<String, f64> {
    let mut args = vec!["status", "--metrics"];
    args.extend_from_slice(extra);
    let out = fleetbus(cluster, &args).await;
    let body = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(out.status.code(), Some(exit), "{args:?}: {}", text(&out));
    assert!(
        body.contains("# TYPE fleetbus_status_healthy gauge"),
        "{body}"
    );
    parse_metrics(&body)
}

/// `fleetbus status <extra>`, which must exit `exit`: its table.
async fn status_table(cluster: &Cluster, extra: &[&str], exit: i32) -> String {
    let mut args = vec!["status"];
    args.extend_from_slice(extra);
    let out = fleetbus(cluster, &args).await;
    assert_eq!(out.status.code(), Some(exit), "{args:?}: {}", text(&out));
    text(&out)
}

/// Registers a micro service of `role` with its own login, as the worker
/// programs do, answering `stats` with `stats`.
async fn register(cluster: &Cluster, role: Role, stats: Value) -> Registration {
    assert_ne!(role, Role::Admin, "admin is no stage");
    let service_role = role;
    let client = cluster.connect(role).await.unwrap();
    registry::register(
        &client,
        registry::Spec {
            role: service_role,
            description: format!("test {}", service_role.name()),
            concurrency: 2,
            metadata: Default::default(),
            stats: std::sync::Arc::new(move || stats.clone()),
        },
    )
    .await
    .unwrap()
}

/// The durable of the partition RAW's first message is in (`hamsters-<p>`).
async fn partition_durable(cluster: &Cluster) -> String {
    let stored = cluster.stream_messages("RAW").await.unwrap();
    let p = fleetbus_wire::names::partition_of(stored[0].subject.as_str()).expect("a partition");
    fleetbus_wire::names::Durable::Hamsters.partition(p)
}

/// Publishes `payload` on `subject` as `role` and waits for its PubAck.
async fn publish(cluster: &Cluster, role: Role, subject: &str, payload: &'static str) {
    common::js(cluster, role)
        .await
        .publish(subject.to_string(), payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// A provisioned cluster with a gateway, a hamster and a monkey
/// registered, which status calls healthy: whatever a test breaks next is
/// the only thing wrong.
async fn healthy_cluster() -> (Cluster, BTreeMap<&'static str, Registration>) {
    let cluster = Cluster::start().await.unwrap();
    fleetbus_ok(&cluster, &["provision"]).await;
    let mut stages = BTreeMap::new();
    for (name, role) in [
        ("gateway", Role::Gateway),
        ("hamster", Role::Hamster),
        ("monkey", Role::Monkey),
        ("janitor", Role::Janitor),
    ] {
        stages.insert(name, register(&cluster, role, serde_json::json!({})).await);
    }
    // Fresh streams and consumers elect their leaders and catch their
    // replicas up: wait for that, as an operator would.
    let status = wait_status(&cluster, &[], &[]).await;
    assert_eq!(status["healthy"], true, "{status:#}");
    (cluster, stages)
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
    assert!(
        kinds(&status).contains(&"missing".to_string()),
        "{status:#}"
    );

    let out = fleetbus_ok(&cluster, &["provision"]).await;
    assert!(out.contains("RAW              created"), "{out}");
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

    // Provisioned, but no stage running: not healthy.
    let (code, status) = status_json(&cluster, &[]).await;
    assert_eq!(code, Some(1), "{status:#}");
    assert_eq!(
        problems_of(&status, "no_workers"),
        vec![
            "no gateway is running: no device's frames get into RAW",
            "no hamster is running: RAW/hamsters-<partition> is not being consumed",
            "no monkey is running: PARSED/monkeys-<partition> is not being consumed",
            "no janitor is running: RAW and PARSED are not swept: what was processed stays \
             until max_age or max_bytes",
        ],
        "{status:#}"
    );

    // Workers registered as NATS micro services, each with its own login,
    // as the programs register (with live counters).
    let _hamster = register(
        &cluster,
        Role::Hamster,
        serde_json::json!({"processed": 7, "dead": 1}),
    )
    .await;
    let _gateway = register(&cluster, Role::Gateway, serde_json::json!({})).await;
    let _monkey = register(&cluster, Role::Monkey, serde_json::json!({})).await;
    let _janitor = register(&cluster, Role::Janitor, serde_json::json!({"purged": 0})).await;

    let status = wait_status(&cluster, &[], &[]).await;
    assert_eq!(status["healthy"], true, "{status:#}");
    assert_eq!(status["problem_kinds"], serde_json::json!([]));
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
        vec![
            "RAW",
            "PARSED",
            "DEAD",
            "EVENTS",
            "KV_devices",
            "KV_seen",
            "KV_registry",
            "KV_pending"
        ]
    );
    assert!(status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["replicas"] == 3 && s["leader"].is_string() && s["fill"] == 0.0));
    let hamster = named(&status["workers"], "name", "hamster");
    assert_eq!(hamster["stats"]["processed"], 7, "{status:#}");
    assert_eq!(hamster["metadata"]["concurrency"], "2");

    let table = status_table(&cluster, &[], 0).await;
    assert!(table.starts_with("cluster fleetbus: HEALTHY"), "{table}");
    assert!(table.contains("RAW/hamsters-0"), "{table}");
    assert!(table.contains("dead=1 processed=7"), "{table}");

    // Healthy in metrics too, with every kind at 0.
    let m = metrics(&cluster, &[], 0).await;
    assert_eq!(m["fleetbus_status_healthy"], 1.0);
    assert_eq!(m["fleetbus_status_problems{kind=\"stream_full\"}"], 0.0);
    assert_eq!(m["fleetbus_workers{role=\"hamster\"}"], 1.0);

    // One node down (not the meta leader, whose loss also stops the
    // JetStream API for a few seconds): degraded, and named.
    let leader = cluster_json["meta_leader"].as_str().unwrap().to_string();
    let victim = (0..3).find(|&i| cluster.node_name(i) != leader).unwrap();
    let victim_name = cluster.node_name(victim).to_string();
    cluster.kill(victim);
    let (code, status) = status_json(&cluster, &[]).await;
    assert_eq!(code, Some(1), "{status:#}");
    let expected = format!("node {victim_name} is not answering");
    assert!(
        problems_of(&status, "node_down").contains(&expected),
        "{status:#}"
    );

    // Nothing there at all: unreachable.
    let out = tokio::process::Command::new(common::fleetbus_bin())
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

#[tokio::test]
async fn a_stream_capped_at_its_count_is_full_and_degraded() {
    let (cluster, _stages) = healthy_cluster().await;
    publish(
        &cluster,
        Role::Admin,
        "events.teltonika.dev1.ignitionOn",
        "{}",
    )
    .await;
    let js = common::js(&cluster, Role::Admin).await;

    // The operator's cap: max_msgs at what it holds now.
    let mut events = js.get_stream("EVENTS").await.unwrap();
    let info = events.info().await.unwrap().clone();
    assert_eq!(info.state.messages, 1);
    let mut config = info.config.clone();
    config.max_messages = 1;
    js.update_stream(&config).await.unwrap();

    let status = wait_status(&cluster, &[], &["stream_full"]).await;
    assert_eq!(
        problems_of(&status, "stream_full"),
        vec![
            "stream EVENTS is 100% full (1 of max_msgs 1): it refuses new messages, so writers \
             into it are held back"
        ]
    );
    let stream = named(&status["streams"], "name", "EVENTS");
    assert_eq!(stream["max_msgs"], 1, "{stream:#}");
    assert_eq!(stream["fill"], 1.0, "{stream:#}");
    assert!(stream["max_bytes"].as_i64().unwrap() > 0, "{stream:#}");

    let table = status_table(&cluster, &[], 1).await;
    assert!(
        table.starts_with("cluster fleetbus: DEGRADED (") && table.contains("stream_full)"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("EVENTS "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(" 100% "), "{table}");

    // Metrics say the same, with the same exit status.
    let m = metrics(&cluster, &[], 1).await;
    assert_eq!(m["fleetbus_status_healthy"], 0.0);
    assert_eq!(m["fleetbus_status_problems{kind=\"stream_full\"}"], 1.0);
    assert_eq!(m["fleetbus_status_problems{kind=\"dead_recent\"}"], 0.0);
    assert_eq!(m["fleetbus_stream_fill_ratio{stream=\"EVENTS\"}"], 1.0);
    assert_eq!(m["fleetbus_stream_messages{stream=\"EVENTS\"}"], 1.0);

    // The cap lifted: healthy again.
    config.max_messages = -1;
    js.update_stream(&config).await.unwrap();
    wait_status(&cluster, &[], &[]).await;
}

#[tokio::test]
async fn a_dead_letter_is_reported_as_recent() {
    let (cluster, _stages) = healthy_cluster().await;
    publish(&cluster, Role::Admin, "dead.raw.teltonika.dev1", "garbage").await;

    let status = wait_status(&cluster, &[], &["dead_recent"]).await;
    let line = &problems_of(&status, "dead_recent")[0];
    assert!(
        line.starts_with("DEAD received 1 message in the last 15m (newest "),
        "{line}"
    );
    assert_eq!(status["dead_recent"]["messages"], 1, "{status:#}");
    assert_eq!(status["dead_recent"]["window_secs"], 900, "{status:#}");

    let m = metrics(&cluster, &[], 1).await;
    assert_eq!(m["fleetbus_status_problems{kind=\"dead_recent\"}"], 1.0);
    assert_eq!(m["fleetbus_dead_recent_messages"], 1.0);

    // Counting left no consumer behind on DEAD.
    let js = common::js(&cluster, Role::Admin).await;
    let dead = js.get_stream("DEAD").await.unwrap();
    let mut names = dead.consumer_names();
    let mut left = Vec::new();
    while let Some(name) = futures::StreamExt::next(&mut names).await {
        left.push(name.unwrap());
    }
    assert_eq!(left, Vec::<String>::new());

    // A window shorter than the letter's age: not recent any more.
    wait_status(&cluster, &["--dead-window-secs", "1"], &[]).await;
}

#[tokio::test]
async fn a_raw_message_without_hamsters_is_consumer_lag_and_no_workers() {
    let (cluster, mut stages) = healthy_cluster().await;
    stages.remove("hamster").unwrap().stop().await;
    publish(&cluster, Role::Gateway, "raw.teltonika.dev1", "frame").await;
    // The durable of the partition RAW hashed the device into.
    let durable = partition_durable(&cluster).await;

    // Fresh: no lag yet under the default 60 s, but nobody to parse it.
    let status = wait_status(&cluster, &[], &["no_workers"]).await;
    assert_eq!(
        problems_of(&status, "no_workers"),
        vec!["no hamster is running: RAW/hamsters-<partition> is not being consumed"]
    );
    let hamsters = named(&status["consumers"], "name", &durable);
    assert_eq!(hamsters["pending"], 1, "{hamsters:#}");
    let age = hamsters["oldest_unacked_secs"].as_f64().unwrap();
    assert!(age < 60.0, "{hamsters:#}");

    let status = wait_for(
        "the partition's durable to lag more than 1 s",
        Duration::from_secs(30),
        || async {
            let (code, status) = status_json(&cluster, &["--max-lag-secs", "1"]).await;
            assert_eq!(code, Some(1), "{status:#}");
            Ok(kinds(&status)
                .contains(&"consumer_lag".to_string())
                .then_some(status))
        },
    )
    .await
    .unwrap();
    let lag = problems_of(&status, "consumer_lag");
    assert_eq!(lag.len(), 1, "{status:#}");
    assert!(
        lag[0].starts_with(&format!(
            "consumer RAW/{durable}: its oldest unacknowledged message is "
        )) && lag[0].ends_with(" old (1 pending, 0 ack pending)"),
        "{lag:?}"
    );
    assert!(kinds(&status).contains(&"no_workers".to_string()));

    let table = status_table(&cluster, &["--max-lag-secs", "1"], 1).await;
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("RAW/{durable} ")))
        .unwrap_or_else(|| panic!("{table}"));
    let oldest = row.split_whitespace().nth(3).unwrap();
    assert!(oldest.ends_with('s') && oldest != "-", "{table}");

    let m = metrics(&cluster, &["--max-lag-secs", "1"], 1).await;
    assert_eq!(m["fleetbus_status_healthy"], 0.0);
    assert_eq!(m["fleetbus_workers{role=\"hamster\"}"], 0.0);
    assert_eq!(m["fleetbus_status_problems{kind=\"consumer_lag\"}"], 1.0);
    assert!(
        m[&format!(
            "fleetbus_consumer_oldest_unacked_seconds{{stream=\"RAW\",consumer=\"{durable}\"}}"
        )] > 1.0
    );
    assert_eq!(
        m[&format!("fleetbus_consumer_pending{{stream=\"RAW\",consumer=\"{durable}\"}}")],
        1.0
    );
}

/// Stranded messages of any age count: this test's are seconds old (the
/// default waits out nats-server's lazy interest sweep).
const YOUNG: &[&str] = &["--stranded-after-secs", "0"];

#[tokio::test]
async fn an_old_durable_with_max_deliver_strands_what_runs_out() {
    let (cluster, _stages) = healthy_cluster().await;
    let js = common::js(&cluster, Role::Admin).await;

    // RAW as the layouts before partition sweeping had it, an interest
    // stream (what `fleetbus dead rescue` is for: run before an upgrade,
    // docs/cluster.md) ...
    let mut raw = js
        .get_stream("RAW")
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    raw.retention = jetstream::stream::RetentionPolicy::Interest;
    js.update_stream(raw).await.unwrap();
    // ... and the shared RAW/hamsters of the layout before partitions, as
    // an older fleetbus provisioned it: finite deliveries (with a short ack
    // wait, so that the test runs out of them quickly).
    let hamsters = js
        .create_consumer_on_stream(
            jetstream::consumer::pull::Config {
                durable_name: Some("hamsters".into()),
                name: Some("hamsters".into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(1),
                max_deliver: 2,
                backoff: vec![Duration::from_secs(1)],
                max_ack_pending: 512,
                num_replicas: 3,
                ..Default::default()
            },
            "RAW",
        )
        .await
        .unwrap();
    let status = wait_status(&cluster, &[], &["max_deliver"]).await;
    assert!(
        problems_of(&status, "max_deliver")[0]
            .starts_with("consumer RAW/hamsters has max_deliver 2"),
        "{status:#}"
    );

    // A frame its partition's hamster parsed (here: took and acknowledged)
    // and the old durable delivered twice and never saw acknowledged:
    // JetStream gives up on it there, and RAW keeps it.
    publish(&cluster, Role::Gateway, "raw.teltonika.dev1", "frame").await;
    let durable = partition_durable(&cluster).await;
    let owner: jetstream::consumer::PullConsumer =
        js.get_consumer_from_stream(&durable, "RAW").await.unwrap();
    let mut pull = owner
        .stream()
        .group(fleetbus_wire::names::OWNER_GROUP)
        .messages()
        .await
        .unwrap();
    let msg = futures::StreamExt::next(&mut pull).await.unwrap().unwrap();
    msg.double_ack().await.unwrap();
    drop(pull);
    // The server notices that a message ran out of deliveries when it would
    // deliver it again, so a worker keeps pulling, as hamsters do, until a
    // pull past the ack wait gets nothing.
    let mut deliveries = 0;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let mut batch = hamsters
                .fetch()
                .max_messages(1)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .unwrap();
            match futures::StreamExt::next(&mut batch).await {
                Some(_) => deliveries += 1,
                None if deliveries >= 2 => break,
                None => {}
            }
        }
    })
    .await
    .expect("two deliveries, then none, within 30 s");
    assert_eq!(deliveries, 2);

    let status = wait_for(
        "RAW to hold a message nobody delivers",
        Duration::from_secs(30),
        || async {
            let (_, status) = status_json(&cluster, YOUNG).await;
            Ok(kinds(&status)
                .contains(&"stranded".to_string())
                .then_some(status))
        },
    )
    .await
    .unwrap();
    let line = &problems_of(&status, "stranded")[0];
    assert!(
        line.starts_with(
            "RAW holds up to 1 message that no consumer will deliver again (first sequence 1 <= \
             1, up to which RAW/hamsters"
        ),
        "{line}"
    );
    assert_eq!(
        kinds(&status),
        vec!["stranded", "max_deliver"],
        "{status:#}"
    );
    let stream = named(&status["streams"], "name", "RAW");
    assert_eq!(stream["messages"], 1, "{stream:#}");

    // `fleetbus dead rescue` moves it to DEAD (a dry run first changes
    // nothing); status is healthy but for the recent dead letter, and a
    // replay puts the frame back into RAW, where the hamsters get it again.
    // (The old durable's max_deliver is reported until provisioning
    // removes it, below.)
    let out = fleetbus_ok(&cluster, &["dead", "rescue", "--dry-run"]).await;
    assert!(out.contains("RAW: sequences 1..=1"), "{out}");
    wait_status(&cluster, YOUNG, &["stranded", "max_deliver"]).await;
    let out = fleetbus_ok(&cluster, &["dead", "rescue", "--settle-secs", "1"]).await;
    assert!(out.contains("RAW: 1 moved to DEAD"), "{out}");
    wait_status(&cluster, YOUNG, &["dead_recent", "max_deliver"]).await;
    let dead = messages(&cluster, "DEAD").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], "Fleetbus-Dead-Kind"), Some("exhausted"));
    assert_eq!(dead[0].payload.as_ref(), b"frame");
    let out = fleetbus(&cluster, &["dead", "rescue", "--settle-secs", "1"]).await;
    assert!(
        text(&out).contains("No stream holds messages its consumers gave up on."),
        "a second rescue finds nothing: {}",
        text(&out)
    );
    // Provisioning removes the old durable, drained now: it is not part of
    // the layout, and on an interest stream it would keep every frame.
    let out = fleetbus_ok(&cluster, &["provision"]).await;
    assert!(
        out.lines()
            .any(|l| l.contains("RAW/hamsters ") && l.contains("removed")),
        "{out}"
    );
    fleetbus_ok(&cluster, &["dead", "replay", "--kind", "exhausted"]).await;
    let raw = messages(&cluster, "RAW").await;
    assert_eq!(raw.len(), 1, "back in RAW");
    assert_eq!(raw[0].payload.as_ref(), b"frame");
    assert!(
        fleetbus_wire::names::partition_of(raw[0].subject.as_str()).is_some(),
        "replayed through RAW's hash into a partition"
    );
}
