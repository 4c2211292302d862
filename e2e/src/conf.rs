//! nats-server configuration: the one template behind both the committed
//! local cluster (`nats-conf/n1.conf` .. `n3.conf`) and the clusters the
//! harness starts. A unit test checks that the committed files are exactly
//! what [`render_node`] makes of [`local_node`], so the two cannot drift.

use std::fmt::Write as _;

/// `nats-conf/accounts.conf`: accounts, users and per-role permissions.
/// Passwords come from the `FLEETBUS_*_PASSWORD` environment variables.
pub const ACCOUNTS_TEMPLATE: &str = include_str!("../../nats-conf/accounts.conf");

/// Name of the cluster (and of the JetStream meta group).
pub const CLUSTER_NAME: &str = "fleetbus";

/// How often JetStream fsyncs its files. See docs/cluster.md ("sync_interval").
pub const SYNC_INTERVAL: &str = "1s";

/// Everything that differs between two nodes, or between the local cluster
/// and a test cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConf {
    /// `server_name`, also the node's name in the JetStream meta group.
    pub name: String,
    /// The address every listener binds to (`127.0.0.1`, or the node's
    /// address in a network lab).
    pub host: String,
    pub client_port: u16,
    pub cluster_port: u16,
    pub http_port: u16,
    /// Cluster ports of every node of the cluster (this one included).
    pub route_ports: Vec<u16>,
    /// Their addresses, in the same order (`127.0.0.1` each locally).
    pub route_hosts: Vec<String>,
    /// JetStream `store_dir`, written as given (relative paths are relative
    /// to nats-server's working directory).
    pub store_dir: String,
    pub lame_duck_grace_period: String,
    pub lame_duck_duration: String,
    /// JetStream `sync_interval` ([`SYNC_INTERVAL`] unless a benchmark
    /// compares another, e.g. `always`).
    pub sync_interval: String,
    /// Text placed in the header comment.
    pub comment: String,
    /// TLS on the client port and the routes, with route authorization;
    /// `None` renders the loopback-only local cluster's plain listeners.
    pub tls: Option<NodeTls>,
}

/// TLS and route login of a node (files as paths nats-server can open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTls {
    /// This node's certificate and key: shown to clients, and to the other
    /// nodes on routes in both directions.
    pub cert_file: String,
    pub key_file: String,
    /// The CA every client and every node must have a certificate from.
    pub ca_file: String,
    /// The login one node presents to another on a route.
    pub route_user: String,
    pub route_password: String,
}

impl NodeTls {
    fn block(&self, indent: &str) -> String {
        format!(
            "{indent}tls {{\n\
             {indent}  cert_file: \"{}\"\n\
             {indent}  key_file: \"{}\"\n\
             {indent}  ca_file: \"{}\"\n\
             {indent}  # the peer must show a certificate signed by the CA\n\
             {indent}  verify: true\n\
             {indent}  timeout: 2\n\
             {indent}}}\n",
            self.cert_file, self.key_file, self.ca_file
        )
    }
}

/// The three nodes of the local cluster started by `just up`.
pub fn local_node(index: usize) -> NodeConf {
    assert!(index < 3, "the local cluster has three nodes");
    let i = index as u16;
    NodeConf {
        name: format!("n{}", index + 1),
        host: "127.0.0.1".into(),
        client_port: 4222 + i,
        cluster_port: 6222 + i,
        http_port: 8222 + i,
        route_ports: vec![6222, 6223, 6224],
        route_hosts: vec!["127.0.0.1".into(); 3],
        store_dir: format!(".data/n{}", index + 1),
        lame_duck_grace_period: "10s".into(),
        lame_duck_duration: "30s".into(),
        sync_interval: SYNC_INTERVAL.into(),
        comment: "Node {name} of the local fleetbus cluster (`just up`). Paths are relative to\n\
                  # the repository root, where `just up` starts nats-server. The passwords\n\
                  # come from the environment, see accounts.conf and docs/cluster.md.\n\
                  # Made by fleetbus_e2e::conf::render_node; a test keeps them identical."
            .into(),
        tls: None,
    }
}

/// Renders one node's configuration. It includes `./accounts.conf`
/// ([`ACCOUNTS_TEMPLATE`]), which must sit in the same directory.
pub fn render_node(node: &NodeConf) -> String {
    let mut out = String::new();
    let comment = node.comment.replace("{name}", &node.name);
    let _ = writeln!(out, "# {comment}");
    let _ = writeln!(out);
    let _ = writeln!(out, "server_name: {}", node.name);
    let _ = writeln!(out, "listen: {}:{}", node.host, node.client_port);
    let _ = writeln!(out, "http: {}:{}", node.host, node.http_port);
    if let Some(tls) = &node.tls {
        let _ = writeln!(
            out,
            "# Clients must speak TLS and show a certificate from the CA (and then\n\
             # log in as their role, as everywhere)."
        );
        out.push_str(&tls.block(""));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "jetstream {{");
    let _ = writeln!(out, "  store_dir: \"{}\"", node.store_dir);
    let _ = writeln!(out, "  max_memory_store: 256MB");
    let _ = writeln!(out, "  max_file_store: 16GB");
    let sync = &node.sync_interval;
    if sync == "always" {
        let _ = writeln!(
            out,
            "  # fsync every write before the PubAck: nothing acknowledged is in a page\n  \
             # cache only. See docs/cluster.md."
        );
    } else {
        let _ = writeln!(
            out,
            "  # fsync every {sync}: a PubAck means \"in the page cache of a quorum\";\n  \
             # at most {sync} of acknowledged data is exposed to losing power on two\n  \
             # or three machines at once. See docs/cluster.md."
        );
    }
    let _ = writeln!(out, "  sync_interval: {sync}");
    let _ = writeln!(out, "}}");
    let _ = writeln!(out);
    let _ = writeln!(out, "cluster {{");
    let _ = writeln!(out, "  name: {CLUSTER_NAME}");
    let _ = writeln!(out, "  listen: {}:{}", node.host, node.cluster_port);
    let mut route_login = String::new();
    if let Some(tls) = &node.tls {
        let _ = writeln!(
            out,
            "  # Routes: TLS both ways with certificates from the CA, and a login, so\n  \
             # that neither an eavesdropper nor a stranger with a certificate joins."
        );
        out.push_str(&tls.block("  "));
        let _ = writeln!(out, "  authorization {{");
        let _ = writeln!(out, "    user: {}", tls.route_user);
        let _ = writeln!(out, "    password: \"{}\"", tls.route_password);
        let _ = writeln!(out, "    timeout: 2");
        let _ = writeln!(out, "  }}");
        route_login = format!("{}:{}@", tls.route_user, tls.route_password);
    }
    let _ = writeln!(out, "  routes: [");
    for (host, port) in node.route_hosts.iter().zip(&node.route_ports) {
        let _ = writeln!(out, "    nats-route://{route_login}{host}:{port}");
    }
    let _ = writeln!(out, "  ]");
    let _ = writeln!(out, "}}");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "# Lame duck (SIGUSR2, `nats-server --signal ldm`): hand JetStream leadership\n\
         # over at once, stop accepting clients, then close the existing ones over\n\
         # the duration (30 s at least) so that they reconnect to the other nodes."
    );
    let _ = writeln!(
        out,
        "lame_duck_grace_period: {}",
        node.lame_duck_grace_period
    );
    let _ = writeln!(out, "lame_duck_duration: {}", node.lame_duck_duration);
    let _ = writeln!(out);
    let _ = writeln!(out, "include ./accounts.conf");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_local_configs_are_the_rendered_template() {
        let committed = [
            include_str!("../../nats-conf/n1.conf"),
            include_str!("../../nats-conf/n2.conf"),
            include_str!("../../nats-conf/n3.conf"),
        ];
        for (i, text) in committed.iter().enumerate() {
            assert_eq!(
                *text,
                render_node(&local_node(i)),
                "nats-conf/n{}.conf differs from fleetbus_e2e::conf::render_node(local_node({i})); \
                 regenerate it with `cargo run -p fleetbus-e2e --example render-local-conf`",
                i + 1
            );
        }
    }

    #[test]
    fn accounts_template_names_every_role_password() {
        for var in [
            "$FLEETBUS_SYS_PASSWORD",
            "$FLEETBUS_ADMIN_PASSWORD",
            "$FLEETBUS_GATEWAY_PASSWORD",
            "$FLEETBUS_HAMSTER_PASSWORD",
            "$FLEETBUS_MONKEY_PASSWORD",
            "$FLEETBUS_JANITOR_PASSWORD",
        ] {
            assert!(ACCOUNTS_TEMPLATE.contains(var), "{var} missing");
        }
    }

    #[test]
    fn a_tls_node_verifies_clients_and_routes_and_routes_log_in() {
        let mut node = local_node(0);
        node.tls = Some(NodeTls {
            cert_file: "/etc/fleetbus/n1.pem".into(),
            key_file: "/etc/fleetbus/n1-key.pem".into(),
            ca_file: "/etc/fleetbus/ca.pem".into(),
            route_user: "route".into(),
            route_password: "s3cret".into(),
        });
        let text = render_node(&node);
        assert_eq!(text.matches("verify: true").count(), 2, "{text}");
        assert_eq!(text.matches("ca_file: \"/etc/fleetbus/ca.pem\"").count(), 2);
        assert!(text.contains("authorization {\n    user: route\n    password: \"s3cret\"\n"));
        for port in [6222, 6223, 6224] {
            assert!(text.contains(&format!("nats-route://route:s3cret@127.0.0.1:{port}\n")));
        }
        // The plain local node has none of it.
        let plain = render_node(&local_node(0));
        assert!(!plain.contains("tls {") && !plain.contains("authorization"));
    }

    #[test]
    fn routes_list_every_node() {
        let text = render_node(&local_node(1));
        assert!(text.contains("server_name: n2\n"));
        assert!(text.contains("listen: 127.0.0.1:4223\n"));
        for port in [6222, 6223, 6224] {
            assert!(text.contains(&format!("nats-route://127.0.0.1:{port}\n")));
        }
    }
}
