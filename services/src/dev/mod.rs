//! The local system on one command: what `fleetbus dev up` (`just up`)
//! does. The command line is `cli::dev`.
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
//!
//! One file per job, each using only those listed before it:
//! - `nodes`: the nats-server nodes and the binary that runs them;
//! - `credentials`: the logins, generated once and kept;
//! - `procs`: starting, watching and stopping processes, and signals;
//! - `workers`: the gateways, workers and simulator to start ([`workers()`]);
//! - `status_line`: the endpoints and the live status line;
//! - this file: the order of it all ([`up`]).

mod credentials;
mod nodes;
mod procs;
mod status_line;
mod workers;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::nats::{NatsArgs, Role, LOCAL_ADMIN};
use crate::status;
use crate::topology::{self, Scope, Settings};

use credentials::credentials;
use nodes::{check_confs, check_nats_server, NODES};
use procs::{out, say, spawn, stop_all, watch_exits, Proc, Signals};
use status_line::{print_endpoints, status_lines};
pub use workers::{workers, WorkerSpec};

/// How `dev up` runs (its flags).
#[derive(Clone, Debug)]
pub struct Options {
    /// Directory of n1.conf, n2.conf, n3.conf and accounts.conf.
    pub conf_dir: PathBuf,
    /// Directory for node data, logs, credentials and pid files.
    pub data_dir: PathBuf,
    /// The nats-server binary (>= 2.11).
    pub nats_server: PathBuf,
    /// Seconds between two status lines.
    pub status_every: u64,
    /// Start the cluster and provision only, no workers.
    pub cluster_only: bool,
}

/// Runs the local system until a signal, then stops all it started. An
/// error (a node that never came up, a second `dev up`) is printed too.
pub async fn up(args: Options) -> anyhow::Result<()> {
    // If `just` (our parent) dies, stop as if Ctrl-C had been pressed.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    let mut signals = Signals::new()?;
    check_nats_server(&args.nats_server)?;
    check_confs(&args.conf_dir)?;
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
    result
}

async fn run_system(
    args: &Options,
    passwords: &[(String, String)],
    procs: &mut Vec<Proc>,
    signals: &mut Signals,
) -> anyhow::Result<()> {
    let data = &args.data_dir;
    for node in NODES {
        let cmd = nodes::command(&args.nats_server, &args.conf_dir, node, passwords);
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
    let fleet = workers::simulated_fleet()?;
    register_fleet(&js, &fleet).await?;
    out(&format!(
        "registered the simulated fleet ({} devices; `fleetbus device ls`)",
        fleet.len()
    ));

    if !args.cluster_only {
        let exe = std::env::current_exe()?;
        for w in workers() {
            procs.push(spawn(&w.name, w.command(&exe, passwords), data)?);
        }
    }

    print_endpoints(data);
    status_lines(&client, args.status_every, procs, signals).await;
    Ok(())
}

/// Registers `fleet` in the device registry (gateways run with `admission
/// = "known"`, the default); an entry that exists is left as it is.
async fn register_fleet(
    js: &async_nats::jetstream::Context,
    fleet: &[(String, fleetbus_codec::Protocol)],
) -> anyhow::Result<()> {
    use fleetbus_wire::registry::{registry_key, KnownDevice, REGISTRY_BUCKET};
    let registry = js
        .get_key_value(REGISTRY_BUCKET)
        .await
        .context("opening the device registry")?;
    for (id, protocol) in fleet {
        let entry = KnownDevice {
            id: id.clone(),
            protocol: Some(protocol.name().to_string()),
            model: None,
            name: Some("simulated".into()),
            // As `fleetbus device add` issues one: the simulated JT808
            // terminals register and authenticate with it.
            auth_code: crate::cli::device::AUTHENTICATING
                .contains(&protocol.name())
                .then(crate::cli::device::issue_auth_code)
                .transpose()?,
            added_at: chrono::Utc::now(),
        };
        // `create` leaves an operator's own entry for the device alone.
        match registry
            .create(registry_key(id), serde_json::to_vec(&entry)?.into())
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).context("registering the simulated fleet"),
        }
    }
    Ok(())
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
