//! The worker programs, `fleetbus hamster` and `fleetbus monkey`: connect,
//! provision what is missing for the role, start a supervisor of one pull
//! worker per partition of the role's stream (each waits on its partition's
//! durable, and gets its messages while the server has the partition
//! pinned to it), register as a NATS micro service, and on SIGTERM/SIGINT stop pulling, finish and acknowledge what
//! is in flight (letting go of what downstream still refuses), deregister
//! and exit 0. How it works: docs/workers.md.
//!
//! Exit status (`crate::exit`): 0 after a graceful stop; 1 when the
//! supervisor gave up (workers kept dying: restart intensity exceeded); 3
//! when the graceful stop did not finish in time; 2 when the cluster could
//! not be reached; 78 for a wrong configuration or a stream the cluster
//! refuses to change.

mod balance;

use fleetbus_wire::names;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::PullConsumer};
use figment::Figment;
use fleetbus_actors::hamster::Hamster;
use fleetbus_actors::monkey::devices::{Devices, DevicesConfig};
use fleetbus_actors::monkey::file::{FileSink, FileSinkConfig};
use fleetbus_actors::monkey::{DynProcessor, Monkey};
use fleetbus_actors::seen::Seen;
use fleetbus_actors::{
    Exit, Gate, Handler, Ownership, Policy, PullConfig, PullWorkers, Stats, Supervisor,
    SupervisorConfig,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Effective, ProgramArgs};
use crate::exit;
use crate::nats::{NatsArgs, Role};
use crate::registry;
use crate::topology::{self, Settings};

/// Options shared by `fleetbus hamster` and `fleetbus monkey`.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Longest graceful stop on SIGTERM, seconds.
    #[arg(long, default_value_t = 30)]
    pub shutdown_grace: u64,
}

/// `[hamster]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HamsterSettings {
    /// A frame delivered more often than this (its workers died or stalled
    /// each time) is parsed alone, with panics caught: a panic sends it to DEAD.
    pub poison_after: i64,
    /// A frame delivered more often than this goes to DEAD unparsed.
    pub give_up_after: i64,
    /// Leave out the records a device sent again in another frame (the
    /// `seen` bucket; docs/reliability.md). Off only to measure what it
    /// costs: resends in other bytes are then stored twice.
    pub deduplicate_records: bool,
    pub pull: PullConfig,
    pub supervisor: SupervisorConfig,
}

impl Default for HamsterSettings {
    fn default() -> Self {
        HamsterSettings {
            poison_after: 3,
            give_up_after: 10,
            deduplicate_records: true,
            pull: PullConfig::default(),
            supervisor: SupervisorConfig::default(),
        }
    }
}

/// `[monkey]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonkeySettings {
    /// A message delivered more often than this (its workers died or
    /// stalled each time) is processed alone, with panics caught: a panic
    /// sends it to DEAD.
    pub poison_after: i64,
    /// A message delivered more often than this goes to DEAD unprocessed.
    pub give_up_after: i64,
    /// Built-in processors, run in this order: `devices` (latest position
    /// and events), `file` (JSON-lines archive, needs `file.dir`).
    pub processors: Vec<String>,
    pub devices: DevicesConfig,
    pub file: FileSinkConfig,
    pub pull: PullConfig,
    pub supervisor: SupervisorConfig,
}

impl Default for MonkeySettings {
    fn default() -> Self {
        MonkeySettings {
            poison_after: 3,
            give_up_after: 10,
            processors: vec!["devices".into()],
            devices: DevicesConfig::default(),
            file: FileSinkConfig::default(),
            pull: PullConfig::default(),
            supervisor: SupervisorConfig::default(),
        }
    }
}

/// Defaults, then table `table` of `config`, then `FLEETBUS_<TABLE>__…`.
pub fn load<T: Serialize + DeserializeOwned + Default>(
    config: Option<&Path>,
    table: &str,
) -> Result<T, ConfigError> {
    crate::config::table(config, table, Figment::new())
}

/// The effective settings as a config file (`--print-config`).
pub fn render_config<T: Serialize>(
    topology: &Settings,
    nats: &NatsArgs,
    name: &'static str,
    role: &T,
) -> anyhow::Result<String> {
    Effective::new()
        .table("topology", topology)?
        .table(name, role)?
        .table("nats", &nats.effective())?
        .render()
}

/// What a role builds once connected: its handler and how it describes
/// itself to the registry.
struct Plan<H> {
    handler: H,
    description: &'static str,
    metadata: BTreeMap<String, String>,
}

/// What a worker process starts from: the topology, its NATS options and
/// its role's table, layered; `None` when `--print-config` printed them.
fn configure<T: Table>(
    common: &CommonArgs,
    adjust: impl FnOnce(&mut T),
) -> anyhow::Result<Option<(Settings, NatsArgs, T)>> {
    let file = common.program.cfg.config.as_deref();
    let role = T::ROLE.name();
    let topo = Settings::load(file)?;
    let nats = common.program.nats.layered(file)?;
    let mut settings: T = load(file, role)?;
    adjust(&mut settings);
    check(&settings.common())?;
    if common.program.cfg.print_config {
        print!("{}", render_config(&topo, &nats, role, &settings)?);
        return Ok(None);
    }
    crate::ops::logging::init(common.program.cfg.log_json);
    Ok(Some((topo, nats, settings)))
}

/// Connects as `role` and provisions the role's scope; the exit status
/// when that fails (it is logged).
async fn connect(
    nats: &NatsArgs,
    role: Role,
    topology_settings: &Settings,
) -> Result<(async_nats::Client, jetstream::Context), exit::Exit> {
    let name = format!(
        "fleetbus-{}-{}-{}",
        role.name(),
        crate::ops::hostname(),
        std::process::id()
    );
    let config = nats.config(role, name).map_err(|e| {
        tracing::error!(error = %e, "The NATS options are wrong.");
        exit::Exit::Config
    })?;
    let client = config.connect().await.map_err(|e| {
        tracing::error!(error = %e, "Cannot connect to NATS.");
        exit::Exit::Unreachable
    })?;
    let js = jetstream::new(client.clone());
    if let Err(e) = topology::check(&js, topology_settings, role).await {
        tracing::error!(error = %e, "The streams and consumers this role uses are not all there.");
        return Err(match e {
            topology::ProvisionError::Unavailable { .. } => exit::Exit::Unreachable,
            _ => exit::Exit::Config,
        });
    }
    Ok((client, js))
}

async fn serve<T: Table, H: Handler>(
    client: async_nats::Client,
    js: jetstream::Context,
    stats: Arc<Stats>,
    plan: Plan<H>,
    settings: Common,
    (group, partitions): (&topology::GroupSettings, u32),
    grace: Duration,
) -> anyhow::Result<ExitCode> {
    let (role, stage) = (T::ROLE, T::STAGE);
    let stream = stage.stream().name();
    let consumers = partition_consumers(&js, stage, partitions).await?;
    let gate = Gate::new();
    let ownership = Arc::new(Ownership::new(consumers.len()));
    let workers_ownership = ownership.clone();
    let workers = PullWorkers {
        ownership: ownership.clone(),
        consumers: Arc::new(consumers),
        handler: Arc::new(plan.handler),
        stats: stats.clone(),
        config: settings.pull,
        policy: policy(settings.poison_after, settings.give_up_after, group),
        gate: gate.clone(),
    };
    let count = workers.workers();
    let mut supervisor = Supervisor::start(workers, count, settings.supervisor, stats.clone())
        .await
        .context("cannot start the supervisor")?;
    let balancer = tokio::spawn(
        balance::Balancer {
            client: client.clone(),
            js: js.clone(),
            role,
            stage,
            ownership,
            gate: gate.clone(),
        }
        .run(),
    );
    let snapshot_stats = stats.clone();
    let snapshot_ownership = workers_ownership.clone();
    let snapshot_gate = gate.clone();
    let registration = registry::register(
        &client,
        registry::Spec {
            role,
            description: plan.description.into(),
            // One worker per partition.
            concurrency: partitions as usize,
            metadata: plan.metadata,
            stats: Arc::new(move || {
                live_stats(&snapshot_stats, &snapshot_gate, &snapshot_ownership)
            }),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot register as a micro service: {e}"))?;
    tracing::info!(
        role = role.name(),
        partitions,
        consumers = format!("{stream}/{}", stage.partition_pattern()),
        "Started: one worker per partition, each working while it owns its partition."
    );

    let signal = tokio::select! {
        s = crate::ops::signals::terminated() => Some(s?),
        _ = supervisor.wait() => None,
    };
    let code = match signal {
        Some(name) => {
            tracing::info!(
                signal = name,
                "Stopping: no more pulls; finishing the messages in flight."
            );
            // Messages held for back-pressure are let go (redelivered after
            // the ack wait); everything else in flight is finished.
            gate.stop();
            supervisor.shutdown();
            match tokio::time::timeout(grace, supervisor.wait()).await {
                Ok(_) => exit::Exit::Ok,
                Err(_) => {
                    tracing::error!(
                        ?grace,
                        "The workers did not finish within the shutdown grace; their messages will be redelivered."
                    );
                    exit::Exit::Unclean
                }
            }
        }
        None => {
            if let Some(Exit::GaveUp(why)) = supervisor.exit() {
                tracing::error!(why = %why, "The supervisor gave up.");
            }
            exit::Exit::Problems
        }
    };
    balancer.abort();
    registration.stop().await;
    let _ = client.flush().await;
    tracing::info!(stats = ?stats.snapshot(), "Stopped.");
    Ok(code.into())
}

/// The durables of `stage`'s partitions, in partition order.
pub async fn partition_consumers(
    js: &jetstream::Context,
    stage: names::Durable,
    partitions: u32,
) -> anyhow::Result<Vec<PullConsumer>> {
    let stream = stage.stream().name();
    let mut consumers = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        let durable = stage.partition(p);
        let consumer: PullConsumer = js
            .get_consumer_from_stream(&durable, stream)
            .await
            .with_context(|| format!("consumer {stream}/{durable}"))?;
        consumers.push(consumer);
    }
    Ok(consumers)
}

/// `fleetbus hamster`.
pub fn run_hamster(common: CommonArgs) -> anyhow::Result<ExitCode> {
    run_role(
        &common,
        |_: &mut HamsterSettings| {},
        |topo, settings, js, stats| async move {
            let seen = if settings.deduplicate_records {
                let kv = js
                    .get_key_value(names::SEEN_BUCKET)
                    .await
                    .with_context(|| format!("key-value bucket {}", names::SEEN_BUCKET))?;
                Some(Seen::new(kv, topo.seen.records_per_device))
            } else {
                tracing::warn!(
                "deduplicate_records is off: records a device sends again in other bytes are stored twice."
            );
                None
            };
            Ok(Plan {
                handler: Hamster::new(js, stats, seen),
                description: "fleetbus hamster: parses RAW into PARSED",
                metadata: BTreeMap::new(),
            })
        },
    )
}

/// `fleetbus monkey`.
pub fn run_monkey(common: CommonArgs, archive: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let archive = |s: &mut MonkeySettings| {
        if let Some(dir) = archive {
            s.file.dir = Some(dir);
            if !s.processors.iter().any(|p| p == "file") {
                s.processors.push("file".into());
            }
        }
    };
    run_role(&common, archive, |_, settings, js, stats| async move {
        let mut processors: Vec<Arc<dyn DynProcessor>> = Vec::new();
        for name in &settings.processors {
            match name.as_str() {
                "devices" => processors.push(Arc::new(
                    Devices::open(js.clone(), settings.devices.clone())
                        .await
                        .map_err(anyhow::Error::msg)?,
                )),
                "file" => {
                    let dir = settings
                        .file
                        .dir
                        .clone()
                        .context("processor `file` needs [monkey.file] dir (or --archive)")?;
                    processors.push(Arc::new(
                        FileSink::open(dir.clone(), settings.file.clone())
                            .with_context(|| format!("cannot write to {}", dir.display()))?,
                    ));
                }
                other => anyhow::bail!("unknown processor {other:?} (known: devices, file)"),
            }
        }
        let handler = Monkey::new(js, processors).with_stats(stats);
        Ok(Plan {
            description: "fleetbus monkey: processes PARSED",
            metadata: BTreeMap::from([(
                "processors".to_string(),
                handler.processor_names().join(","),
            )]),
            handler,
        })
    })
}

/// The life of a worker program, the same for both roles: its settings
/// (`adjust` applies the role's own flags), the runtime, the connection and
/// provisioning, then the handler `build` makes, served until stopped.
fn run_role<T, H, Fut>(
    common: &CommonArgs,
    adjust: impl FnOnce(&mut T),
    build: impl FnOnce(Settings, T, jetstream::Context, Arc<Stats>) -> Fut,
) -> anyhow::Result<ExitCode>
where
    T: Table,
    H: Handler,
    Fut: Future<Output = anyhow::Result<Plan<H>>>,
{
    let Some((topo, nats, settings)) = configure(common, adjust)? else {
        return Ok(exit::Exit::Ok.into());
    };
    crate::cli::service_runtime()?.block_on(async {
        let (client, js) = match connect(&nats, T::ROLE, &topo).await {
            Ok(c) => c,
            Err(code) => return Ok(code.into()),
        };
        let stats = Arc::new(Stats::default());
        let group = T::group(&topo).clone();
        let partitions = topo.partitions;
        let common_settings = settings.common();
        let plan = build(topo, settings, js.clone(), stats.clone()).await?;
        let grace = Duration::from_secs(common.shutdown_grace);
        let layout = (&group, partitions);
        serve::<T, H>(client, js, stats, plan, common_settings, layout, grace).await
    })
}

/// The delivery policy of a group: the role's `poison_after` and
/// `give_up_after`, the consumer's ack wait.
pub fn policy(poison_after: i64, give_up_after: i64, group: &topology::GroupSettings) -> Policy {
    Policy {
        poison_after,
        give_up_after,
        ack_wait: group.ack_wait(),
    }
}

/// The counters `$SRV.STATS` reports: the process's [`Stats`], its gate
/// (`held`, `blocked_secs`, `blocked_by` while downstream refuses) and the
/// partitions it owns (`partitions`, as its balancer last found them).
pub fn live_stats(stats: &Stats, gate: &Gate, ownership: &Ownership) -> serde_json::Value {
    let mut v = serde_json::to_value(stats.snapshot()).unwrap_or_default();
    let g = gate.status();
    if let Some(map) = v.as_object_mut() {
        map.insert("partitions".into(), ownership.confirmed().into());
        map.insert("held".into(), g.held.into());
        map.insert("blocked_secs".into(), g.blocked_secs.into());
        if let Some(by) = g.blocked_by {
            map.insert("blocked_by".into(), by.into());
        }
    }
    v
}

/// What both workers' tables hold: the supervisor's and pullers'
/// settings, which [`check`] judges.
struct Common {
    poison_after: i64,
    give_up_after: i64,
    pull: PullConfig,
    supervisor: SupervisorConfig,
}

/// A worker role's table, and where the role reads from.
trait Table: Serialize + DeserializeOwned + Default {
    const ROLE: Role;
    /// The stage whose partition durables it pulls from.
    const STAGE: names::Durable;
    /// The role's durables in the topology.
    fn group(topology: &Settings) -> &topology::GroupSettings;
    fn common(&self) -> Common;
}

/// Both tables hold the same four common fields under the same names.
macro_rules! table {
    ($settings:ty, $role:expr, $stage:expr, $group:ident) => {
        impl Table for $settings {
            const ROLE: Role = $role;
            const STAGE: names::Durable = $stage;
            fn group(topology: &Settings) -> &topology::GroupSettings {
                &topology.$group
            }
            fn common(&self) -> Common {
                Common {
                    poison_after: self.poison_after,
                    give_up_after: self.give_up_after,
                    pull: self.pull.clone(),
                    supervisor: self.supervisor.clone(),
                }
            }
        }
    };
}

table!(
    HamsterSettings,
    Role::Hamster,
    names::Durable::Hamsters,
    hamsters
);
table!(
    MonkeySettings,
    Role::Monkey,
    names::Durable::Monkeys,
    monkeys
);

/// Every problem of a worker's table at once.
fn check(settings: &Common) -> Result<(), ConfigError> {
    let Common {
        poison_after,
        give_up_after,
        pull,
        ..
    } = settings;
    let (poison_after, give_up_after) = (*poison_after, *give_up_after);
    let mut problems = Vec::new();
    if pull.batch == 0 {
        problems.push("pull.batch must be at least 1".to_string());
    }
    if pull.expires_ms < 1_000 {
        problems.push(format!(
            "pull.expires_ms must be at least 1000 (a pull waits that long), not {}",
            pull.expires_ms
        ));
    }
    if poison_after < 1 || give_up_after <= poison_after {
        problems.push(format!(
            "poison_after ({poison_after}) must be at least 1 and give_up_after \
             ({give_up_after}) larger than it"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_load_from_the_role_table() {
        let dir = std::env::temp_dir().join(format!("fleetbus-worker-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fleetbus.toml");
        std::fs::write(
            &path,
            "[hamster]\npoison_after = 7\n[hamster.pull]\nbatch = 10\n\
             [monkey]\nprocessors = [\"devices\", \"file\"]\n[monkey.devices]\noverspeed_kmh = 90.0\n",
        )
        .unwrap();
        let h: HamsterSettings = load(Some(&path), "hamster").unwrap();
        assert_eq!(h.poison_after, 7);
        assert_eq!(h.pull.batch, 10);
        assert_eq!(h.supervisor, SupervisorConfig::default());
        let m: MonkeySettings = load(Some(&path), "monkey").unwrap();
        assert_eq!(m.devices.overspeed_kmh, 90.0);
        assert_eq!(m.processors, vec!["devices", "file"]);
        std::fs::write(&path, "[hamster]\nconcurrency = 7\n").unwrap();
        assert!(
            load::<HamsterSettings>(Some(&path), "hamster").is_err(),
            "unknown keys are refused (concurrency went with the partitions)"
        );
        // --print-config gives a file that loads back to the same settings.
        let mut m = MonkeySettings::default();
        m.file.dir = Some("/var/lib/fleetbus".into());
        m.devices.overspeed_kmh = 95.5;
        let text = render_config(&Settings::default(), &NatsArgs::default(), "monkey", &m).unwrap();
        std::fs::write(&path, text).unwrap();
        assert_eq!(load::<MonkeySettings>(Some(&path), "monkey").unwrap(), m);
        assert_eq!(Settings::load(Some(&path)).unwrap(), Settings::default());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
