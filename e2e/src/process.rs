//! Real child processes of the system under test — gateways, hamsters,
//! monkeys, the simulator — each logging to its own file, with the faults a
//! test inflicts on them: kill -9, SIGTERM, restart. Killed on Drop, so a
//! failing test leaves no orphan; the log tail is printed when a test panics.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How to start one process; kept so that [`Proc::restart`] starts the same.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Short name for logs and messages (`gateway-1`, `hamster-a`, …).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Spec {
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Spec {
        Spec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Spec {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Spec {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Spec {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn envs<I: IntoIterator<Item = (String, String)>>(mut self, vars: I) -> Spec {
        self.env.extend(vars);
        self
    }
}

/// One running (or stopped) child process.
pub struct Proc {
    spec: Spec,
    log_path: PathBuf,
    child: Option<Child>,
    exit: Option<ExitStatus>,
    starts: u32,
}

impl Proc {
    /// Starts `spec`, appending its stdout and stderr to `<dir>/<name>.log`.
    pub fn start(spec: Spec, dir: &Path) -> anyhow::Result<Proc> {
        let log_path = dir.join(format!("{}.log", spec.name));
        let mut p = Proc {
            spec,
            log_path,
            child: None,
            exit: None,
            starts: 0,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("cannot open {}", self.log_path.display()))?;
        let child = Command::new(&self.spec.program)
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} ({})",
                    self.spec.name,
                    self.spec.program.display()
                )
            })?;
        self.child = Some(child);
        self.exit = None;
        self.starts += 1;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How often it was started (1 after [`Proc::start`]).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.exit = Some(status);
                self.child = None;
                false
            }
            _ => false,
        }
    }

    /// How it last exited, if it did.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.is_running();
        self.exit
    }

    /// kill -9, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                self.exit = Some(status);
            }
        }
    }

    /// SIGSTOP: the process is paused, not dead — its sockets stay open and
    /// nobody is told (a hung host, a long GC pause, a VM migration).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Proc::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) with a pid we own and a constant signal.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    /// SIGTERM, then wait up to `timeout` for it to exit (SIGKILL after).
    /// Returns how it exited.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let Some(pid) = self.pid() else {
            return self.exit;
        };
        // A paused process cannot act on SIGTERM.
        self.resume();
        // SAFETY: kill(2) with a pid we own and a constant signal.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        self.wait_exit(timeout).await;
        if self.is_running() {
            self.kill();
        }
        self.exit
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.is_running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.exit
    }

    /// Starts it again with the same command line (kill it first if needed).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("{} is still running", self.spec.name);
        }
        self.spawn()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- {} ({}) ---\n{}",
                self.spec.name,
                self.log_path.display(),
                self.log_tail(40)
            );
        }
    }
}

/// Polls `check` every 100 ms until it returns `Ok(Some(v))`, failing after
/// `timeout` with the last reason it gave. For conditions on a real system,
/// instead of sleeps.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("{what}: still not the case after {timeout:?} ({last})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
