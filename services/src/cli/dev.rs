//! `fleetbus dev up`: the local system on one command (`just up` runs it).
//!
//! Starts the three nodes of `nats-conf/` (data under `.data/n1` …, logs
//! under `.data/logs`), waits for a JetStream meta leader, provisions the
//! streams and consumers, starts the workers (see [`workers`]), prints the
//! endpoints and then a live status line. SIGINT (Ctrl-C), SIGTERM or SIGHUP
//! stops everything it started, workers first, and waits for each process:
//! no orphan is left. Every child also gets SIGTERM from the kernel should
//! this process die without cleaning up (PR_SET_PDEATHSIG), and this process
//! gets SIGTERM if its parent (`just`) dies.
//!
//! Logins: admin/admin on the local cluster; every other role's password is
//! generated once per machine into `.data/credentials/<role>.env` (or taken
//! from `FLEETBUS_<ROLE>_PASSWORD` when set).

use std::fs::{self, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use crate::nats::{NatsArgs, Role, LOCAL_ADMIN};
use crate::status;
use crate::topology::{self, Scope, Settings};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: DevCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum DevCommand {
    /// Run the local cluster and the system until Ctrl-C (`just up`).
    Up(UpArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Directory of n1.conf, n2.conf, n3.conf and accounts.conf.
    #[arg(long, default_value = "nats-conf")]
    pub conf_dir: PathBuf,
    /// Git-ignored directory for node data, logs, credentials and pid files.
    #[arg(long, default_value = ".data")]
    pub data_dir: PathBuf,
    /// The nats-server binary (>= 2.11); `just deps` finds or installs one.
    #[arg(long, env = "NATS_SERVER", default_value = "nats-server")]
    pub nats_server: PathBuf,
    /// Seconds between two status lines.
    #[arg(long, default_value_t = 2)]
    pub status_every: u64,
    /// Start the cluster and provision only, no workers.
    #[arg(long)]
    pub cluster_only: bool,
}

const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// Roles whose password is generated (admin is admin/admin locally).
const GENERATED: [&str; 4] = ["sys", "gateway", "hamster", "monkey"];

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        DevCommand::Up(up_args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(up(up_args))
        }
    }
}

/// A process started by `dev up`.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    exited: bool,
}

/// A worker process to start once the cluster is provisioned: this same
/// binary with `args`, logged in as `role` (none: it gets no NATS login).
pub struct WorkerSpec {
    pub name: String,
    pub role: Option<Role>,
    pub args: Vec<String>,
}

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
    // Two hamsters and two monkeys, two workers each (docs/workers.md).
    for (role, n) in [
        (Role::Hamster, 1),
        (Role::Hamster, 2),
        (Role::Monkey, 1),
        (Role::Monkey, 2),
    ] {
        w.push(WorkerSpec {
            name: format!("{}-{n}", role.name()),
            role: Some(role),
            args: vec![role.name().into(), "--concurrency".into(), "2".into()],
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
            "20",
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

/// `/metrics` of node 1's gateway; nodes 2 and 3 follow.
const GATEWAY_HTTP_BASE: u16 = 9101;

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    // If `just` (our parent) dies, stop as if Ctrl-C had been pressed.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    let mut signals = Signals::new()?;
    check_nats_server(&args.nats_server)?;
    for node in NODES {
        let conf = args.conf_dir.join(format!("{node}.conf"));
        if !conf.is_file() {
            bail!(
                "{} not found: run from the repository root (just up)",
                conf.display()
            );
        }
    }
    let data = args.data_dir.clone();
    for sub in ["logs", "pids", "credentials"] {
        fs::create_dir_all(data.join(sub))
            .with_context(|| format!("cannot create {}", data.join(sub).display()))?;
    }
    fs::set_permissions(data.join("credentials"), fs::Permissions::from_mode(0o700))?;
    let _lock = single_instance(&data)?;
    let passwords = credentials(&data)?;

    let mut procs: Vec<Proc> = Vec::new();
    let result = run_system(&args, &passwords, &mut procs, &mut signals).await;
    // The terminal may be gone (SIGHUP): never panic on output from here.
    if let Err(e) = &result {
        say(&format!("\nfleetbus dev up: {e:#}"));
    }
    say("\nstopping…");
    stop_all(&mut procs, &data).await;
    let _ = fs::remove_file(data.join("dev.pid"));
    say(&format!(
        "stopped; data kept in {} (`just down` removes it)",
        data.display()
    ));
    result.map(|()| ExitCode::SUCCESS)
}

async fn run_system(
    args: &UpArgs,
    passwords: &[(String, String)],
    procs: &mut Vec<Proc>,
    signals: &mut Signals,
) -> anyhow::Result<()> {
    let data = &args.data_dir;
    for node in NODES {
        let conf = args.conf_dir.join(format!("{node}.conf"));
        let mut cmd = Command::new(&args.nats_server);
        cmd.arg("-c")
            .arg(&conf)
            .envs(passwords.iter().map(|(k, v)| (k, v)));
        procs.push(spawn(node, cmd, data)?);
    }
    out(&format!(
        "nats-server {} started; waiting for a JetStream meta leader…",
        NODES.join(", ")
    ));

    let admin = NatsArgs {
        user: Some(LOCAL_ADMIN.0.into()),
        password: Some(LOCAL_ADMIN.1.into()),
        connect_wait_secs: Some(120),
        ..NatsArgs::default()
    };
    let config = admin.config(Role::Admin, "fleetbus-dev")?;
    let client = tokio::select! {
        c = config.connect() => c?,
        _ = signals.recv() => return Ok(()),
        e = watch_exits(procs) => bail!("{e} before the cluster came up"),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status::collect(&client, Duration::from_secs(2)).await;
        if let Some(leader) = s.cluster.as_ref().and_then(|c| c.meta_leader.clone()) {
            out(&format!("meta leader: {leader}"));
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "no JetStream meta leader after 120 s; see {}",
                data.join("logs").display()
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = signals.recv() => return Ok(()),
            e = watch_exits(procs) => bail!("{e} before a meta leader was elected"),
        }
    }

    let settings = Settings::load(None)?;
    let js = async_nats::jetstream::new(client.clone());
    let scope = Scope::all();
    let report = tokio::select! {
        r = topology::provision(&js, &settings, &scope, Duration::from_secs(60)) => r?,
        _ = signals.recv() => return Ok(()),
    };
    let _ = write!(std::io::stdout(), "{report}");

    if !args.cluster_only {
        let exe = std::env::current_exe()?;
        for w in workers() {
            let mut cmd = Command::new(&exe);
            for (var, _) in passwords {
                cmd.env_remove(var);
            }
            cmd.args(&w.args);
            if let Some(role) = w.role {
                cmd.envs(service_env(role, passwords));
            }
            procs.push(spawn(&w.name, cmd, data)?);
        }
    }

    print_endpoints(data);
    let tty = std::io::stdout().is_terminal();
    let every = Duration::from_secs(args.status_every.max(1));
    let mut last_print = Instant::now() - Duration::from_secs(3600);
    loop {
        let s = status::collect(&client, Duration::from_secs(2)).await;
        let line = status::summary_line(&s);
        if tty {
            let mut out = std::io::stdout();
            let _ = write!(out, "\r\x1b[2K{line}");
            let _ = out.flush();
        } else if last_print.elapsed() >= Duration::from_secs(10) {
            let _ = writeln!(std::io::stdout(), "{line}");
            last_print = Instant::now();
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = signals.recv() => return Ok(()),
            e = watch_exits(procs) => {
                // Keep running: the cluster survives one node, and the
                // status line shows what is missing.
                let _ = writeln!(std::io::stdout(), "\n{e}");
            }
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP as one stream.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// Resolves when a process that has not been reported yet has exited.
async fn watch_exits(procs: &mut [Proc]) -> String {
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
fn spawn(name: &str, mut cmd: Command, data: &Path) -> anyhow::Result<Proc> {
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
async fn stop_all(procs: &mut Vec<Proc>, data: &Path) {
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
fn out(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A line on stderr that does not panic when the terminal is gone.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Refuses a second `dev up` on the same data directory.
fn single_instance(data: &Path) -> anyhow::Result<fs::File> {
    let path = data.join("dev.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    if file.try_lock().is_err() {
        let pid = fs::read_to_string(data.join("dev.pid")).unwrap_or_default();
        bail!(
            "`just up` is already running (pid {}); stop it first or run `just down`",
            pid.trim()
        );
    }
    fs::write(data.join("dev.pid"), format!("{}\n", std::process::id()))?;
    Ok(file)
}

fn check_nats_server(bin: &Path) -> anyhow::Result<()> {
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

/// The password variables for nats-server, generating what is missing.
fn credentials(data: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let dir = data.join("credentials");
    let mut vars = vec![(Role::Admin.password_var(), LOCAL_ADMIN.1.to_string())];
    write_login(&dir, "admin", LOCAL_ADMIN.1)?;
    for user in GENERATED {
        let var = format!("FLEETBUS_{}_PASSWORD", user.to_ascii_uppercase());
        let path = dir.join(format!("{user}.env"));
        let password = match std::env::var(&var).ok().filter(|p| !p.is_empty()) {
            Some(p) => p,
            None => match read_password(&path) {
                Some(p) => p,
                None => random_password()?,
            },
        };
        write_login(&dir, user, &password)?;
        vars.push((var, password));
    }
    Ok(vars)
}

fn read_password(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("FLEETBUS_NATS_PASSWORD="))
        .map(str::to_string)
        .filter(|p| !p.is_empty())
}

/// `<dir>/<user>.env`, readable by the owner only.
fn write_login(dir: &Path, user: &str, password: &str) -> anyhow::Result<()> {
    let path = dir.join(format!("{user}.env"));
    let text = format!(
        "# Login of `{user}` on the local fleetbus cluster, made by `just up`. Not committed.\n\
         FLEETBUS_NATS_URL={}\nFLEETBUS_NATS_USER={user}\nFLEETBUS_NATS_PASSWORD={password}\n",
        crate::nats::LOCAL_URLS
    );
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(text.as_bytes())?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// 128 random bits as hex behind a letter (nats-server reads a variable
/// from the environment as a config value: the letter keeps it a string).
fn random_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("p{}", hex::encode(bytes)))
}

/// `FLEETBUS_NATS_*` for a worker of `role`.
fn service_env(role: Role, passwords: &[(String, String)]) -> Vec<(String, String)> {
    let password = passwords
        .iter()
        .find(|(k, _)| *k == role.password_var())
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    vec![
        ("FLEETBUS_NATS_URL".into(), crate::nats::LOCAL_URLS.into()),
        ("FLEETBUS_NATS_USER".into(), role.name().into()),
        ("FLEETBUS_NATS_PASSWORD".into(), password),
    ]
}

fn print_endpoints(data: &Path) {
    out("");
    out("fleetbus is up.");
    out(&format!(
        "  NATS clients   {}",
        crate::nats::LOCAL_URLS.replace(',', "  ")
    ));
    out("  monitoring     http://127.0.0.1:8222  http://127.0.0.1:8223  http://127.0.0.1:8224");
    out("  gateways       teltonika 5027/5127/5227, gt06 5023/5123/5223, … (Traccar's ports, +100 per node; see docs/gateway.md)");
    out("  gateway ops    http://127.0.0.1:9101/metrics  :9102  :9103   (/healthz, /readyz)");
    out("  admin          nats://admin:admin@127.0.0.1:4222   (nats CLI: nats -s nats://admin:admin@127.0.0.1:4222 stream ls)");
    out("  status         cargo run -q --bin fleetbus -- status");
    out(&format!(
        "  logins         {}/credentials/<role>.env",
        data.display()
    ));
    out(&format!("  logs           {}/logs/", data.display()));
    out("Ctrl-C stops everything.");
    out("");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_logins_are_kept_between_runs() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("credentials")).unwrap();
        let first = credentials(dir.path()).unwrap();
        let second = credentials(dir.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(first[0], ("FLEETBUS_ADMIN_PASSWORD".into(), "admin".into()));
        assert_eq!(first.len(), 5);
        let gateway = fs::read_to_string(dir.path().join("credentials/gateway.env")).unwrap();
        assert!(gateway.contains("FLEETBUS_NATS_USER=gateway\n"));
        let mode = fs::metadata(dir.path().join("credentials/gateway.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

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
