//! `fleetbus janitor`: sweeps RAW and PARSED every 10 s below the floor of
//! all their readers (`fleetbus_actors::janitor`), logged in as the janitor
//! role — the only login that may purge them, so that a worker host, which
//! joins with a hamster or monkey login, cannot drop a stage's backlog
//! (docs/security.md). Run one per node, as `just up` does: several are
//! safe (a purge below the lowest floor is the same whoever makes it), and
//! with none RAW and PARSED are not lost but grow until `max_age` or
//! `max_bytes` (`fleetbus status` shows their fill).
//!
//! Exit status (`crate::exit`): 0 after SIGTERM or SIGINT, 2 when the
//! cluster cannot be reached, 78 on a bad configuration or when RAW or
//! PARSED does not exist (the operator provisions).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use fleetbus_actors::stats::Stats;
use fleetbus_wire::names;

use crate::config::{Effective, ProgramArgs};
use crate::exit::{self, Exit};
use crate::nats::Role;
use crate::topology::{self, Settings};
use crate::{ops, registry};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub program: ProgramArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = args.program.cfg.config.as_deref();
    let settings = Settings::load(file)?;
    let nats = args.program.nats.layered(file)?;
    if args.program.cfg.print_config {
        Effective::new()
            .table("topology", &settings)?
            .table("nats", &nats.effective())?
            .print()?;
        return Ok(Exit::Ok.into());
    }
    ops::logging::init(args.program.cfg.log_json);
    let runtime = crate::cli::service_runtime()?;
    runtime.block_on(async {
        let name = format!("janitor-{}", ops::hostname());
        let client = match nats.config(Role::Janitor, name)?.connect().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "Cannot connect to NATS.");
                return Ok(Exit::Unreachable.into());
            }
        };
        let js = async_nats::jetstream::new(client.clone());
        if let Err(e) = topology::check(&js, &settings, Role::Janitor).await {
            tracing::error!(error = %e, "The streams to sweep are not all there.");
            return Ok(exit::of_error(&e.into()).into());
        }
        let stats = Arc::new(Stats::default());
        let sweeps: Vec<_> = [names::RAW, names::PARSED]
            .into_iter()
            .map(|stream| {
                tokio::spawn(fleetbus_actors::janitor::run(
                    js.clone(),
                    stream.to_string(),
                    stats.clone(),
                ))
            })
            .collect();
        let totals = stats.clone();
        let service = registry::register(
            &client,
            registry::Spec {
                role: Role::Janitor,
                description: "fleetbus janitor: sweeps RAW and PARSED below every reader's floor"
                    .into(),
                concurrency: sweeps.len(),
                metadata: BTreeMap::new(),
                stats: Arc::new(move || {
                    serde_json::to_value(totals.snapshot()).unwrap_or_default()
                }),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot register the janitor service: {e}"))?;
        tracing::info!("The janitor is up: sweeping RAW and PARSED every 10 s.");
        let signal = ops::signals::terminated().await?;
        tracing::info!(signal, purged = stats.snapshot().purged, "Stopping.");
        for sweep in sweeps {
            sweep.abort();
        }
        service.stop().await;
        Ok(Exit::Ok.into())
    })
}
