//! `fleetbus device` as a process against a real, provisioned three-node
//! cluster: `add`, `ls`, `import` (a file with bad lines writes nothing; a
//! simulated fleet through stdin from `fleetbus simulate --print-devices`),
//! `rm`, and the `pending` devices a gateway would hold back, listed and
//! moved into the registry by `accept` (and by `add`).

mod common;

use std::process::{Command, Output, Stdio};

use chrono::Utc;
use common::{fleetbus, fleetbus_alone, fleetbus_bin, fleetbus_ok};
use fleetbus_e2e::{text, Cluster, Role};
use fleetbus_wire::names;
use fleetbus_wire::registry::{registry_key, PendingDevice, PENDING_BUCKET};
use serde_json::Value;

/// `fleetbus device ls --json`, which must succeed.
async fn ls(cluster: &Cluster) -> Vec<Value> {
    let out = fleetbus(cluster, &["device", "ls", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "ls: {}", text(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ls: not a JSON array ({e}): {}", text(&out)))
}

/// `fleetbus device pending --json`, which must succeed.
async fn pending_json(cluster: &Cluster) -> Vec<Value> {
    let out = fleetbus(cluster, &["device", "pending", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "pending: {}", text(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("pending: not a JSON array ({e}): {}", text(&out)))
}

fn ids(devices: &[Value]) -> Vec<&str> {
    devices.iter().map(|d| d["id"].as_str().unwrap()).collect()
}

fn find<'a>(devices: &'a [Value], id: &str) -> &'a Value {
    devices
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {devices:#?}"))
}

/// `fleetbus device import <file>` of `csv` written to a file.
async fn import_file(cluster: &Cluster, csv: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.csv");
    std::fs::write(&path, csv).unwrap();
    fleetbus(cluster, &["device", "import", path.to_str().unwrap()]).await
}

/// What a gateway under `admission = "register"` writes for an unknown device.
async fn hold_back(cluster: &Cluster, id: &str, protocol: &str) {
    let kv = common::js(cluster, Role::Admin)
        .await
        .get_key_value(PENDING_BUCKET)
        .await
        .unwrap();
    let now = Utc::now();
    let device = PendingDevice {
        id: id.into(),
        protocol: protocol.into(),
        first_seen: now,
        last_seen: now,
        gateway: "gw-7".into(),
        peer: "10.0.0.7:40000".into(),
        attempts: 3,
    };
    kv.put(
        registry_key(id),
        serde_json::to_vec(&device).unwrap().into(),
    )
    .await
    .unwrap();
}

/// `fleetbus simulate --print-devices <fleet> | fleetbus device import -`,
/// through a pipe; what the import printed.
async fn import_simulated_fleet(cluster: &Cluster, fleet: &[&str]) -> Output {
    let fleet: Vec<String> = fleet.iter().map(|s| s.to_string()).collect();
    let env = cluster.service_env(Role::Admin);
    tokio::task::spawn_blocking(move || {
        let mut simulate = Command::new(fleetbus_bin())
            .args(["simulate", "--print-devices"])
            .args(&fleet)
            .env_remove("FLEETBUS_CONFIG")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Command::new(fleetbus_bin())
            .args(["device", "import", "-"])
            .envs(env)
            .stdin(simulate.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(simulate.wait().unwrap().success());
        out
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_add_import_list_remove_and_accept_devices() {
    let cluster = common::provisioned_cluster().await;
    for stream in [names::REGISTRY, names::PENDING] {
        cluster.wait_stream_ready(stream).await.unwrap();
    }
    assert!(ls(&cluster).await.is_empty());
    let out = fleetbus_ok(&cluster, &["device", "ls"]).await;
    assert!(out.contains("No devices registered."), "{out}");

    // add, then ls shows it.
    let truck = "356307042441013";
    let out = fleetbus_ok(
        &cluster,
        &[
            "device",
            "add",
            truck,
            "--protocol",
            "gt06",
            "--model",
            "TR02",
        ],
    )
    .await;
    assert!(out.contains(&format!("added {truck}")), "{out}");
    let devices = ls(&cluster).await;
    assert_eq!(ids(&devices), [truck]);
    assert_eq!(devices[0]["protocol"], "gt06");
    assert_eq!(devices[0]["model"], "TR02");
    assert!(devices[0].get("name").is_none(), "{devices:#?}");
    let added_at = devices[0]["added_at"].clone();
    let out = fleetbus_ok(&cluster, &["device", "ls"]).await;
    assert!(out.starts_with("ID "), "{out}");
    assert!(out.contains("TR02"), "{out}");

    // An unknown protocol is a wrong command line, and says what is known.
    let out = fleetbus(&cluster, &["device", "add", "1", "--protocol", "gt07"]).await;
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        text(&out).contains("supported: teltonika, gt06"),
        "{}",
        text(&out)
    );

    // A file with bad lines: each named by its number, nothing written.
    let out = import_file(
        &cluster,
        "id,protocol,model,name\n\
         356307042441020,teltonika\n\
         356307042441021,gt07\n\
         # a comment\n\
         ,gt06\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: unknown protocol \"gt07\""), "{err}");
    assert!(err.contains("line 5: a device id cannot be empty"), "{err}");
    assert!(err.contains("nothing imported"), "{err}");
    assert_eq!(ids(&ls(&cluster).await), [truck]);

    // A good file: one new device, one replaced (added_at kept).
    let out = import_file(
        &cluster,
        "id,protocol,model,name\n\
         356307042441013,gt06,TR02,Truck 7\n\
         \n\
         356307042441020\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("imported 2 devices: 1 added, 1 updated"),
        "{}",
        text(&out)
    );
    let devices = ls(&cluster).await;
    assert_eq!(ids(&devices), [truck, "356307042441020"]);
    assert_eq!(find(&devices, truck)["name"], "Truck 7");
    assert_eq!(find(&devices, truck)["added_at"], added_at);
    assert!(find(&devices, "356307042441020").get("protocol").is_none());

    // A simulated fleet, through stdin.
    let fleet = ["--devices", "3", "--protocols", "teltonika,gt06"];
    let printed = fleetbus_alone(&[&["simulate", "--print-devices"][..], &fleet].concat());
    assert_eq!(printed.status.code(), Some(0), "{}", text(&printed));
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        "350010000000000,teltonika\n350010000000001,gt06\n350010000000002,teltonika\n"
    );
    let out = import_simulated_fleet(&cluster, &fleet).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("imported 3 devices: 3 added, 0 updated"),
        "{}",
        text(&out)
    );
    let devices = ls(&cluster).await;
    assert_eq!(
        ids(&devices),
        [
            "350010000000000",
            "350010000000001",
            "350010000000002",
            truck,
            "356307042441020"
        ]
    );
    assert_eq!(find(&devices, "350010000000001")["protocol"], "gt06");
    assert_eq!(find(&devices, "350010000000002")["protocol"], "teltonika");

    // rm: what was there goes, what was not is only noted.
    let out = fleetbus_ok(&cluster, &["device", "rm", "350010000000002", "999"]).await;
    assert!(out.contains("removed 350010000000002"), "{out}");
    assert!(
        out.contains("not registered (nothing to remove): 999"),
        "{out}"
    );
    assert!(!ids(&ls(&cluster).await).contains(&"350010000000002"));

    // Pending devices: listed, accepted (an unknown id is a problem), gone
    // from pending, registered on the protocol they spoke.
    let stranger = "356307042441099";
    hold_back(&cluster, stranger, "teltonika").await;
    let held = pending_json(&cluster).await;
    assert_eq!(ids(&held), [stranger]);
    assert_eq!(held[0]["gateway"], "gw-7");
    let out = fleetbus_ok(&cluster, &["device", "pending"]).await;
    assert!(
        out.contains(stranger) && out.contains("10.0.0.7:40000"),
        "{out}"
    );
    assert!(out.contains("1 device pending"), "{out}");

    let out = fleetbus(&cluster, &["device", "accept", stranger, "111"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("accepted {stranger} (teltonika)")),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("111 is not pending"), "{}", text(&out));
    assert!(pending_json(&cluster).await.is_empty());
    let devices = ls(&cluster).await;
    assert_eq!(find(&devices, stranger)["protocol"], "teltonika");

    // `add` takes a device out of pending too; `accept --all` takes every one.
    hold_back(&cluster, "356307042441100", "gt06").await;
    hold_back(&cluster, "356307042441101", "gt06").await;
    let out = fleetbus_ok(&cluster, &["device", "add", "356307042441100"]).await;
    assert!(out.contains("it was pending"), "{out}");
    assert_eq!(ids(&pending_json(&cluster).await), ["356307042441101"]);
    let out = fleetbus_ok(&cluster, &["device", "accept", "--all"]).await;
    assert!(out.contains("accepted 356307042441101 (gt06)"), "{out}");
    assert!(pending_json(&cluster).await.is_empty());
    let devices = ls(&cluster).await;
    assert!(find(&devices, "356307042441100").get("protocol").is_none());
    assert_eq!(find(&devices, "356307042441101")["protocol"], "gt06");
    let out = fleetbus_ok(&cluster, &["device", "accept", "--all"]).await;
    assert!(out.contains("No devices pending"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_provisioned_buckets_the_commands_say_to_provision() {
    let cluster = Cluster::start().await.unwrap();
    for command in [
        &["ls"][..],
        &["add", "1"],
        &["pending"],
        &["accept", "--all"],
    ] {
        let out = fleetbus(&cluster, &[&["device"][..], command].concat()).await;
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        // `accept` opens the registry first, as every command but `pending`.
        let bucket = if command[0] == "pending" {
            "pending"
        } else {
            "registry"
        };
        assert!(
            err.contains(&format!(
                "the {bucket} bucket does not exist: run `fleetbus provision`"
            )),
            "{command:?}: {err}"
        );
    }
}

#[test]
fn the_commands_read_the_file_before_the_cluster_and_take_the_common_options() {
    // A bad file is refused before connecting (nobody listens on port 1).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "1,nope\n").unwrap();
    let nobody = [
        "--nats-url",
        "nats://admin:admin@127.0.0.1:1",
        "--nats-connect-wait",
        "0",
    ];
    let out =
        fleetbus_alone(&[&["device", "import", path.to_str().unwrap()][..], &nobody].concat());
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    assert!(
        text(&out).contains("line 1: unknown protocol"),
        "{}",
        text(&out)
    );
    let missing = dir.path().join("missing.csv");
    let out = fleetbus_alone(&["device", "import", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));

    for command in [
        &["ls"][..],
        &["add", "1"],
        &["rm", "1"],
        &["pending"],
        &["accept", "--all"],
        &["import", path.to_str().unwrap()],
    ] {
        let args = [&["device"][..], command].concat();
        let out = fleetbus_alone(&[&args[..], &["--print-config"]].concat());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("[nats]"),
            "{args:?}: {}",
            text(&out)
        );
        if command[0] != "import" {
            let out = fleetbus_alone(&[&args[..], &nobody].concat());
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        }
        let out = fleetbus_alone(&[&args[..], &["--no-such-flag"]].concat());
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", text(&out));
    }
    // Neither ids nor --all; a bad id.
    for args in [&["device", "accept"][..], &["device", "add", "a.b"]] {
        let out = fleetbus_alone(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", text(&out));
    }
}
