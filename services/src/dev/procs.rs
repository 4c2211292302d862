//! The processes `fleetbus dev up` starts and how they end. Each runs in
//! its own process group with its output in `<data>/logs/<name>.log` and
//! its pid in `<data>/pids/`, and gets SIGTERM from the kernel should
//! `dev up` die without cleaning up (PR_SET_PDEATHSIG). Stopping is
//! workers first (they drain and let go of their connections), then the
//! nodes, and waits for each: no orphan is left. Output goes through
//! [`out`] and [`say`], which never panic once the terminal is gone.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use super::nodes::NODES;

/// A process started by `dev up`.
pub(super) struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    exited: bool,
}

/// SIGINT, SIGTERM and SIGHUP as one stream.
pub(super) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    pub(super) async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// Resolves when a process that has not been reported yet has exited.
pub(super) async fn watch_exits(procs: &mut [Proc]) -> String {
    loop {
        for p in procs.iter_mut().filter(|p| !p.exited) {
            if let Ok(Some(status)) = p.child.try_wait() {
                p.exited = true;
                return format!("{} exited ({status}); see {}", p.name, p.log.display());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Starts `cmd` (its environment already set: the nodes get every
/// password, a worker only its own login) with its output in the log.
pub(super) fn spawn(name: &str, mut cmd: Command, data: &Path) -> anyhow::Result<Proc> {
    let log_path = data.join("logs").join(format!("{name}.log"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Own process group: Ctrl-C in the terminal reaches only us, and we
        // stop the children in order.
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe prctl between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    if let Some(pid) = child.id() {
        fs::write(
            data.join("pids").join(format!("{name}.pid")),
            format!("{pid}\n"),
        )?;
    }
    Ok(Proc {
        name: name.to_string(),
        child,
        log: log_path,
        exited: false,
    })
}

/// Workers first (they drain and let go of their connections), then the
/// nodes, all at once: SIGTERM, a grace period, then SIGKILL.
pub(super) async fn stop_all(procs: &mut Vec<Proc>, data: &Path) {
    let (nodes, workers): (Vec<Proc>, Vec<Proc>) = procs
        .drain(..)
        .partition(|p| NODES.contains(&p.name.as_str()));
    for mut group in [workers, nodes] {
        for p in &group {
            if let Some(pid) = p.child.id() {
                // SAFETY: kill(2) of our own child.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for p in &mut group {
            match tokio::time::timeout_at(deadline, p.child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    say(&format!("{} did not stop in time: killing it", p.name));
                    let _ = p.child.kill().await;
                }
            }
            let _ = fs::remove_file(data.join("pids").join(format!("{}.pid", p.name)));
        }
    }
}

/// A line on stdout that does not panic when the terminal is gone.
pub(super) fn out(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A line on stderr that does not panic when the terminal is gone.
pub(super) fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
