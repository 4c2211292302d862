//! What `fleetbus dev up` runs on the local cluster once it is
//! provisioned: one gateway per node, two hamsters, two monkeys and a
//! simulated fleet, each this same binary with its arguments and its own
//! login. The gateway, worker and simulator changes add theirs here.

use std::path::Path;

use tokio::process::Command;

use crate::nats::Role;

use super::credentials::service_env;
use super::nodes::NODES;

/// Devices of the simulated fleet `dev up` runs (fleet 1, the simulator's
/// default protocols).
const SIMULATED_DEVICES: usize = 20;

/// The simulated fleet's devices, as the gateways will see them: `dev up`
/// registers them, so the demo runs with `admission = "known"` like
/// production.
pub fn simulated_fleet() -> anyhow::Result<Vec<(String, fleetbus_codec::Protocol)>> {
    let config = crate::simulate::Config {
        devices: SIMULATED_DEVICES,
        ..crate::simulate::Config::default()
    };
    Ok(config.fleet_devices()?)
}

/// A worker process to start once the cluster is provisioned: this same
/// binary with `args`, logged in as `role` (none: it gets no NATS login).
pub struct WorkerSpec {
    pub name: String,
    pub role: Option<Role>,
    pub args: Vec<String>,
}

impl WorkerSpec {
    /// This binary (`exe`) with the worker's arguments and its own login
    /// only: none of the password variables the nodes get.
    pub(super) fn command(&self, exe: &Path, passwords: &[(String, String)]) -> Command {
        let mut cmd = Command::new(exe);
        for (var, _) in passwords {
            cmd.env_remove(var);
        }
        cmd.args(&self.args);
        if let Some(role) = self.role {
            cmd.envs(service_env(role, passwords));
        }
        cmd
    }
}

/// `/metrics` of node 1's gateway; nodes 2 and 3 follow.
const GATEWAY_HTTP_BASE: u16 = 9101;

/// The workers `just up` runs. The gateway, worker and simulator issues add
/// theirs here: one gateway per node, two hamsters, two monkeys and a
/// simulated fleet.
pub fn workers() -> Vec<WorkerSpec> {
    let mut w = Vec::new();
    // One gateway per node: node 1's on Traccar's ports, node 2's +100,
    // node 3's +200; /metrics on 9101..9103.
    for (i, node) in NODES.iter().enumerate() {
        w.push(WorkerSpec {
            name: format!("gateway-{node}"),
            role: Some(Role::Gateway),
            args: vec![
                "gateway".into(),
                "--id".into(),
                format!("gw-{node}"),
                "--port-offset".into(),
                (100 * i).to_string(),
                "--http".into(),
                format!("127.0.0.1:{}", GATEWAY_HTTP_BASE + i as u16),
            ],
        });
    }
    // Two hamsters and two monkeys: each partition is owned by one of a
    // stage's two, and the other takes it over when it goes (docs/workers.md).
    for (role, n) in [
        (Role::Hamster, 1),
        (Role::Hamster, 2),
        (Role::Monkey, 1),
        (Role::Monkey, 2),
    ] {
        w.push(WorkerSpec {
            name: format!("{}-{n}", role.name()),
            role: Some(role),
            args: vec![role.name().into()],
        });
    }
    // A janitor per node, as on real hosts: the one login that may purge
    // RAW and PARSED (below every reader's floor), kept off worker hosts.
    for n in 1..=NODES.len() {
        w.push(WorkerSpec {
            name: format!("janitor-{n}"),
            role: Some(Role::Janitor),
            args: vec!["janitor".into()],
        });
    }
    // A small simulated fleet on all three gateways, so data flows at once.
    // Its queue lives with the cluster's state: stopped and started again,
    // it resumes with what was not acknowledged. It talks to the gateways
    // only, so it gets no NATS login.
    w.push(WorkerSpec {
        name: "simulator".into(),
        role: None,
        args: [
            "simulate",
            "--devices",
            &SIMULATED_DEVICES.to_string(),
            "--interval-ms",
            "5000",
            "--queue",
            ".data/simulator.db",
            "--progress-secs",
            "0",
        ]
        .map(String::from)
        .to_vec(),
    });
    w
}
