//! `fleetbus gateway` as a real process: configuration, the operations
//! endpoint, registration, and a graceful stop on SIGTERM.

mod common;

use std::time::Duration;

use common::fleetbus_bin as fleetbus;
use fleetbus_codec::teltonika;
use fleetbus_e2e::{http, wait_for, Proc, Role};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[test]
fn print_config_shows_the_effective_configuration() {
    let out = std::process::Command::new(fleetbus())
        .args(["gateway", "--print-config", "--port-offset", "100"])
        .env("FLEETBUS_GATEWAY__PIPELINE", "4")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: toml::Value = toml::from_str(&text).expect("printed config is TOML");
    let gw = &parsed["gateway"];
    assert_eq!(gw["port_offset"].as_integer(), Some(100), "flag");
    assert_eq!(gw["pipeline"].as_integer(), Some(4), "environment");
    assert_eq!(
        gw["protocols"]["teltonika"]["port"].as_integer(),
        Some(5027)
    );
    assert_eq!(gw["protocols"]["gt06"]["port"].as_integer(), Some(5023));
}

#[test]
fn an_invalid_configuration_reports_every_problem_and_exits_78() {
    common::assert_config_refused(
        &["gateway"],
        "[gateway]\npipeline = 0\nmax_connections = 0\n[gateway.protocols.gt06]\nport = 5027\n",
        &[
            "pipeline must be > 0",
            "max_connections must be > 0",
            "port 5027 is also used",
        ],
    );
}

/// The `fields` of the first JSON log line whose message is `message`.
fn log_fields(proc: &Proc, message: &str) -> Vec<Value> {
    proc.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .map(|v| v["fields"].clone())
        .collect()
}

#[tokio::test]
async fn the_gateway_process_serves_registers_and_drains_on_sigterm() {
    let cluster = common::provisioned_cluster().await;
    // The default admission is `known`: the device of the session below
    // is registered, and the gateway is ready only once it read the
    // registry.
    common::register(&cluster, "356307042441099", None, None).await;
    let mut toml = String::from(
        "[gateway]\nid = \"gw-proc\"\nbind = \"127.0.0.1\"\nhttp = \"127.0.0.1:0\"\ndrain_delay_secs = 1\n",
    );
    for p in fleetbus_codec::Protocol::ALL {
        toml.push_str(&format!("[gateway.protocols.{}]\nport = 0\n", p.name()));
    }
    let (dir, conf) = common::config_file(&toml);
    let spec = common::spec(&cluster, Role::Gateway, "gateway")
        .args(["--log-json", "--config"])
        .arg(conf.to_string_lossy().to_string());
    let mut gw = Proc::start(spec, dir.path()).unwrap();

    let http_port: u16 = wait_for(
        "the operations endpoint",
        Duration::from_secs(60),
        || async {
            Ok(log_fields(&gw, "Serving /metrics, /healthz and /readyz.")
                .first()
                .and_then(|f| f["addr"].as_str()?.rsplit(':').next()?.parse().ok()))
        },
    )
    .await
    .unwrap();
    let teltonika: String = log_fields(&gw, "Listening for devices.")
        .into_iter()
        .find(|f| f["protocol"] == "teltonika")
        .and_then(|f| f["addr"].as_str().map(str::to_string))
        .expect("a teltonika listener");
    wait_for("ready", Duration::from_secs(30), || async {
        Ok((http::get(http_port, "/readyz").await?.0 == 200).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(http::get(http_port, "/healthz").await.unwrap().0, 200);

    // A device session through the process.
    let imei = "356307042441099";
    let mut device = TcpStream::connect(&teltonika).await.unwrap();
    device
        .write_all(&teltonika::encode::login(imei))
        .await
        .unwrap();
    let mut b = [0u8; 1];
    device.read_exact(&mut b).await.unwrap();
    assert_eq!(b, [1]);
    let mut p = fleetbus_codec::Position::new(imei, "teltonika", chrono::Utc::now());
    p.valid = true;
    device
        .write_all(&teltonika::encode::codec8(&[p]).unwrap())
        .await
        .unwrap();
    let mut ack = [0u8; 4];
    device.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, teltonika::encode::ack(1));

    let (code, metrics) = http::get(http_port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("fleetbus_gateway_frames_stored_total{protocol=\"teltonika\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("fleetbus_gateway_publish_duration_seconds_bucket"));

    // Registered: `fleetbus status` lists it.
    let workers = common::registered(&cluster, "gateway").await;
    let me = workers
        .first()
        .unwrap_or_else(|| panic!("gateway not registered: {workers:?}"));
    assert_eq!(me["metadata"]["gateway_id"], "gw-proc");
    // With live counters: the frame stored above, the device still connected.
    assert_eq!(me["stats"]["frames_stored"], 1, "{me}");
    assert_eq!(me["stats"]["connections_open"], 1, "{me}");
    assert_eq!(me["stats"]["errors"], 0, "{me}");

    // SIGTERM: readiness turns 503 first, then the process exits cleanly.
    let pid = gw.pid().unwrap() as libc::pid_t;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let draining = wait_for("readiness 503", Duration::from_secs(5), || async {
        Ok(match http::get(http_port, "/readyz").await {
            Ok((503, body)) => Some(body),
            _ => None,
        })
    })
    .await
    .unwrap();
    assert_eq!(draining.trim(), "draining");
    let exit = gw.wait_exit(Duration::from_secs(30)).await.expect("exits");
    assert!(exit.success(), "{exit:?}\n{}", gw.log_tail(20));
    let mut rest = Vec::new();
    let n = device.read_to_end(&mut rest).await.unwrap_or(0);
    assert_eq!(n, 0, "the device connection was closed, nothing more sent");
}

#[tokio::test]
async fn services_refuse_to_run_on_a_cluster_nobody_provisioned_and_change_nothing() {
    // No `fleetbus provision`: a service may not create what it needs.
    let cluster = fleetbus_e2e::Cluster::start().await.unwrap();
    let (dir, conf) = common::config_file(
        "[gateway]\nbind = \"127.0.0.1\"\nhttp = \"127.0.0.1:0\"\n[gateway.protocols.teltonika]\nport = 0\n",
    );
    for (role, name) in [(Role::Gateway, "gateway"), (Role::Hamster, "hamster")] {
        let spec = common::spec(&cluster, role, name)
            .args(["--config"])
            .arg(conf.to_string_lossy().to_string());
        let mut p = Proc::start(spec, dir.path()).unwrap();
        let status = p.wait_exit(Duration::from_secs(120)).await;
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(78),
            "{name}: {}",
            p.log()
        );
        let log = p.log();
        assert!(
            log.contains("does not exist") && log.contains("fleetbus provision"),
            "{name}: {log}"
        );
    }
    let admin = common::js(&cluster, Role::Admin).await;
    let mut streams = admin.stream_names();
    use futures::StreamExt;
    assert!(streams.next().await.is_none(), "a service created a stream");
}
