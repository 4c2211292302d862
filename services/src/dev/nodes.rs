//! The three nats-server nodes of the local cluster: `nats-conf/n1.conf`
//! … (client ports 4222–4224, monitoring 8222–8224, data under
//! `.data/n1` …), run by a nats-server that is new enough for the stream
//! settings fleetbus provisions (2.11). Each node reads every login's
//! password from its environment.

use std::path::Path;

use anyhow::bail;
use tokio::process::Command;

/// The nodes, as named in `nats-conf/` and in the logs.
pub(super) const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// Refuses a nats-server that does not run or is older than 2.11.
pub(super) fn check_nats_server(bin: &Path) -> anyhow::Result<()> {
    let out = std::process::Command::new(bin).arg("--version").output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).to_string(),
        _ => bail!(
            "cannot run {} — install nats-server >= 2.11 (`just deps` does it) or set NATS_SERVER",
            bin.display()
        ),
    };
    let version = text
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or("")
        .trim_start_matches('v')
        .to_string();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (2, 11) {
        bail!(
            "{} is nats-server {version}; fleetbus needs >= 2.11 (`just deps` installs one)",
            bin.display()
        );
    }
    Ok(())
}

/// Refuses a configuration directory without the nodes' files (`dev up`
/// run from elsewhere than the repository root).
pub(super) fn check_confs(conf_dir: &Path) -> anyhow::Result<()> {
    for node in NODES {
        let conf = conf_dir.join(format!("{node}.conf"));
        if !conf.is_file() {
            bail!(
                "{} not found: run from the repository root (just up)",
                conf.display()
            );
        }
    }
    Ok(())
}

/// nats-server for `node`, with every password in its environment.
pub(super) fn command(
    nats_server: &Path,
    conf_dir: &Path,
    node: &str,
    passwords: &[(String, String)],
) -> Command {
    let conf = conf_dir.join(format!("{node}.conf"));
    let mut cmd = Command::new(nats_server);
    cmd.arg("-c")
        .arg(&conf)
        .envs(passwords.iter().map(|(k, v)| (k, v)));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_committed_node_configs_use_the_documented_ports() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nats-conf");
        for (i, node) in NODES.iter().enumerate() {
            let text = fs::read_to_string(root.join(format!("{node}.conf"))).unwrap();
            assert!(text.contains(&format!("listen: 127.0.0.1:{}\n", 4222 + i)));
            assert!(text.contains(&format!("http: 127.0.0.1:{}\n", 8222 + i)));
            assert!(text.contains(&format!("store_dir: \".data/{node}\"")));
        }
    }
}
