//! TLS inside the cluster, over real processes: every fleetbus program
//! speaks TLS to the nodes with a client certificate, the nodes speak TLS
//! to each other with a route login, and whoever lacks a piece of that is
//! refused by the server itself. Certificates are made by the test
//! (`fleetbus_e2e::pki`); see docs/security.md, "Three hosts with TLS".

use std::time::Duration;

use fleetbus_e2e::scenario::{assert_delivered_once, start_fleet, FLEET, RECORDS};
use fleetbus_e2e::{pki, wait_for, Cluster, ClusterOptions, Role, System, SystemOptions};

fn tls_cluster() -> ClusterOptions {
    ClusterOptions {
        tls: true,
        ..ClusterOptions::default()
    }
}

/// The whole pipeline — provision, three gateways, hamsters, monkeys, the
/// janitor, verify — runs on a cluster that takes TLS clients only, and
/// delivers every acknowledged record once.
#[tokio::test]
async fn the_whole_pipeline_runs_over_tls() {
    let mut sys = System::start(SystemOptions {
        cluster: tls_cluster(),
        ..SystemOptions::default()
    })
    .await
    .expect("system starts on a TLS cluster");
    sys.prepare_verify("check").await.unwrap();
    let mut sim = start_fleet(&sys, FLEET).await;
    assert_delivered_once(&mut sys, &mut sim, "over TLS", RECORDS).await;
    // Every client the server sees is on TLS (connz says so per client).
    let (code, body) = fleetbus_e2e::http::get(sys.cluster.monitor_port(0), "/connz?limit=1000")
        .await
        .unwrap();
    assert_eq!(code, 200);
    let connz: serde_json::Value = serde_json::from_str(&body).unwrap();
    let conns = connz["connections"].as_array().unwrap();
    assert!(!conns.is_empty(), "{body}");
    for c in conns {
        assert!(
            c["tls_version"].as_str().is_some_and(|v| !v.is_empty()),
            "a client without TLS: {c}"
        );
    }
}

/// What the client side can get wrong, each refused with a reason: no TLS,
/// TLS without a client certificate, a certificate from another CA, and
/// the fleetbus CLI pointed at the cluster without its TLS options.
#[tokio::test]
async fn clients_without_tls_or_the_right_certificate_are_refused() {
    let cluster = Cluster::start_with(tls_cluster()).await.unwrap();
    let tls = cluster.tls().unwrap();
    let login = cluster.login(Role::Admin).clone();
    let plain_url = cluster.client_url(0).replace("tls://", "nats://");
    let connect = |opts: async_nats::ConnectOptions, url: String| async move {
        opts.connection_timeout(Duration::from_secs(3))
            .connect(url)
            .await
    };
    let with_login = || {
        async_nats::ConnectOptions::with_user_and_password(
            login.user.clone(),
            login.password.clone(),
        )
    };

    // The harness's own options (CA + client certificate) work.
    cluster
        .connect(Role::Admin)
        .await
        .expect("a proper TLS client connects");

    // Not speaking TLS: the server requires it.
    let refused = with_login().connect(plain_url.as_str()).await;
    assert!(refused.is_err(), "a client without TLS was let in");
    // TLS, but no client certificate.
    let no_cert = connect(
        with_login()
            .add_root_certificates(tls.ca_file.clone())
            .require_tls(true),
        cluster.client_url(0),
    )
    .await;
    assert!(
        no_cert.is_err(),
        "a client without a certificate was let in"
    );
    // A certificate from a CA the cluster does not trust.
    let stranger = pki::Ca::new("someone else").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let theirs = stranger
        .issue("intruder", &[])
        .unwrap()
        .write(dir.path(), "intruder")
        .unwrap();
    let wrong_ca = connect(
        with_login()
            .add_root_certificates(tls.ca_file.clone())
            .add_client_certificate(theirs.cert, theirs.key)
            .require_tls(true),
        cluster.client_url(0),
    )
    .await;
    assert!(
        wrong_ca.is_err(),
        "a client with a stranger's certificate was let in"
    );

    // The CLI, given the login but not the TLS options: a clear error.
    let out = std::process::Command::new(fleetbus_e2e::fleetbus_bin().unwrap())
        .args(["status", "--nats-connect-wait", "0"])
        .env_remove("FLEETBUS_CONFIG")
        .env("FLEETBUS_NATS_URL", cluster.client_urls().join(","))
        .env("FLEETBUS_NATS_USER", &login.user)
        .env("FLEETBUS_NATS_PASSWORD", &login.password)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("cannot connect to NATS"), "{said}");
    // And with them it works.
    let out = std::process::Command::new(fleetbus_e2e::fleetbus_bin().unwrap())
        .args(["status", "--json", "--nats-connect-wait", "0"])
        .env_remove("FLEETBUS_CONFIG")
        .envs(cluster.service_env(Role::Admin))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"streams\""),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A route is a node's way into the cluster's data. A stranger node with a
/// valid certificate but without the route login is refused, and so is
/// one with the login but a certificate from another CA; neither ever
/// shows among the cluster's routes.
#[tokio::test]
async fn a_node_without_the_route_login_or_certificate_cannot_join() {
    let cluster = Cluster::start_with(tls_cluster()).await.unwrap();
    let tls = cluster.tls().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ports = cluster.spare_ports(6).unwrap();
    let routes: Vec<String> = (0..cluster.len())
        .map(|i| {
            let conf = std::fs::read_to_string(cluster.conf_path(i)).unwrap();
            let listen = conf
                .split("cluster {")
                .nth(1)
                .and_then(|c| c.lines().find_map(|l| l.trim().strip_prefix("listen: ")))
                .unwrap()
                .to_string();
            listen
        })
        .collect();
    let stranger_ca = pki::Ca::new("someone else").unwrap();
    let cases = [
        ("nologin", &tls.ca, String::new()),
        (
            "wrongca",
            &stranger_ca,
            format!("{}:{}@", tls.route_user, tls.route_password),
        ),
    ];
    let mut children = Vec::new();
    for (k, (name, ca, login)) in cases.iter().enumerate() {
        let files = ca
            .issue(name, &["127.0.0.1", "localhost"])
            .unwrap()
            .write(dir.path(), name)
            .unwrap();
        let route_list: String = routes
            .iter()
            .map(|r| format!("    nats-route://{login}{r}\n"))
            .collect();
        let conf = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\n\
             cluster {{\n  name: fleetbus\n  listen: 127.0.0.1:{}\n\
             tls {{\n cert_file: \"{}\"\n key_file: \"{}\"\n ca_file: \"{}\"\n verify: true\n timeout: 2\n }}\n\
             routes: [\n{route_list}  ]\n}}\n",
            ports[k * 3],
            ports[k * 3 + 2],
            ports[k * 3 + 1],
            files.cert.display(),
            files.key.display(),
            tls.ca_file.display(),
        );
        let path = dir.path().join(format!("{name}.conf"));
        std::fs::write(&path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        let child = std::process::Command::new(cluster.nats_server())
            .args(["-c", path.to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        children.push(KillOnDrop(child));
    }
    // The members say why they refused each: the login, and the certificate.
    let member_logs = || {
        (0..cluster.len())
            .map(|i| {
                std::fs::read_to_string(cluster.dir().join(format!("{}.log", cluster.node_name(i))))
                    .unwrap_or_default()
            })
            .collect::<String>()
    };
    wait_for("both strangers refused", Duration::from_secs(60), || {
        let logs = member_logs();
        async move {
            let auth = logs.contains("Router connection closed: Authentication Failure");
            let cert = logs.contains("Router connection closed: TLS Handshake Failure");
            Ok((auth && cert).then_some(()))
        }
    })
    .await
    .unwrap();
    // And neither is a route of any member, though they keep trying.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..cluster.len() {
        let (code, body) = fleetbus_e2e::http::get(cluster.monitor_port(i), "/routez")
            .await
            .unwrap();
        assert_eq!(code, 200);
        let routez: serde_json::Value = serde_json::from_str(&body).unwrap();
        let names: Vec<&str> = routez["routes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["remote_name"].as_str())
            .collect();
        assert!(
            !names.is_empty(),
            "the members still route to each other: {body}"
        );
        for stranger in ["nologin", "wrongca"] {
            assert!(
                !names.contains(&stranger),
                "{stranger} joined node {i}: {names:?}"
            );
        }
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
