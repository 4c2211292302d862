//! Test harness: real three-node nats-server clusters on free ports in a
//! temporary directory, with the real accounts and per-role permissions of
//! `nats-conf/`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use fleetbus_e2e::{Cluster, Role};
//! let mut cluster = Cluster::start().await?;          // waits for a meta leader
//! let admin = cluster.connect(Role::Admin).await?;    // knows every node
//! let leader = cluster.stream_leader("RAW").await?;
//! cluster.kill(cluster.node_index(&leader).unwrap()); // kill -9
//! cluster.restart_all().await?;                       // SIGTERM all, start, wait
//! # Ok(()) }
//! ```
//!
//! At most two clusters run at once on the machine (a lock file per slot,
//! `FLEETBUS_E2E_MAX_CLUSTERS` to change), whatever the test parallelism.
//! nats-server is found like `just deps` does (and installed by it if
//! missing). A failing test prints the node logs; `FLEETBUS_E2E_KEEP=1`
//! keeps the cluster's directory.

pub mod bench;
pub mod cluster;
pub mod conf;
pub mod cpu;
pub mod creds;
pub mod http;
pub mod netns;
pub mod pki;
pub mod process;
pub mod proxy;
pub mod scenario;
pub mod server;
mod slots;
pub mod system;

use std::path::PathBuf;

use anyhow::bail;

pub use cluster::{Cluster, ClusterOptions};
pub use creds::{Credentials, Login, Role};
pub use netns::Lab;
pub use process::{wait_for, Proc, Spec};
pub use proxy::LossyProxy;
pub use system::{text, System, SystemOptions};

/// The `fleetbus` binary for process-level tests.
///
/// Tests of the `fleetbus-services` crate should prefer
/// `env!("CARGO_BIN_EXE_fleetbus")`. Elsewhere this returns `$FLEETBUS_BIN`
/// if set, else the `fleetbus` next to the running test executable's
/// directory (`target/<profile>/fleetbus`), which `cargo test --workspace`
/// builds. It does not build anything itself.
pub fn fleetbus_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("FLEETBUS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test>-<hash>
    if let Some(profile_dir) = exe.parent().and_then(|deps| deps.parent()) {
        let candidate = profile_dir.join("fleetbus");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("no fleetbus binary: run `cargo build --bin fleetbus` or set FLEETBUS_BIN")
}
