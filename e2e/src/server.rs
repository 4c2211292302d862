//! Finding a nats-server binary that is new enough, the same way `just deps`
//! (scripts/deps.sh) does: `$NATS_SERVER`, then `nats-server` on PATH, then
//! the copy `just deps` installs under `.tools/`. If none is found the
//! harness runs scripts/deps.sh itself (once per process).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context};

/// Oldest nats-server the project supports.
pub const MIN_VERSION: (u32, u32) = (2, 11);

/// The workspace root (the directory holding `nats-conf/` and `scripts/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// Parses `nats-server: v2.12.8` (the output of `nats-server --version`).
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.trim().rsplit(' ').next()?.trim_start_matches('v');
    let mut parts = v.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// The version of the nats-server at `path`, if it runs.
pub fn version_of(path: &Path) -> Option<(u32, u32, u32)> {
    let out = Command::new(path).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

fn new_enough(path: &Path) -> bool {
    version_of(path).is_some_and(|(major, minor, _)| (major, minor) >= MIN_VERSION)
}

fn on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

fn look() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = on_path().filter(|p| new_enough(p)) {
        return Some(p);
    }
    let tools = workspace_root().join(".tools/nats/bin/nats-server");
    tools.is_file().then_some(tools).filter(|p| new_enough(p))
}

/// The nats-server to run, installing it with scripts/deps.sh when needed.
pub fn nats_server() -> anyhow::Result<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| find_or_install().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn find_or_install() -> anyhow::Result<PathBuf> {
    if let Some(found) = look() {
        if !new_enough(&found) {
            bail!(
                "{} is not a nats-server >= {}.{} (from $NATS_SERVER)",
                found.display(),
                MIN_VERSION.0,
                MIN_VERSION.1
            );
        }
        return Ok(found);
    }
    let script = workspace_root().join("scripts/deps.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "no nats-server >= 2.11 found and `just deps` ({}) failed",
            script.display()
        );
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(printed.lines().last().unwrap_or_default().trim());
    if !new_enough(&path) {
        bail!("scripts/deps.sh printed {path:?}, which is not a nats-server >= 2.11");
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("nats-server: v2.12.8\n"), Some((2, 12, 8)));
        assert_eq!(parse_version("nats-server: v2.11.0-RC.1"), Some((2, 11, 0)));
        assert_eq!(parse_version("nats-server: v2.9"), Some((2, 9, 0)));
        assert_eq!(parse_version("garbage"), None);
    }
}
