//! `fleetbus provision`: create or update every stream and durable consumer
//! as `services/src/topology` describes them. Idempotent; services do the
//! same for their own resources at every start.
//!
//! Exit status (`crate::exit`): 0 when the cluster matches the code
//! (created, updated or unchanged), 1 when JetStream refused to change
//! something in place (the report says what and why), 2 when the cluster
//! could not be reached, 78 when the configuration is wrong.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::config::{Effective, ProgramArgs};
use crate::exit::Exit;
use crate::nats::Role;
use crate::topology::{self, ProvisionError, Scope, Settings};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// How long to wait for the cluster (leader elections), in seconds.
    #[arg(long, default_value_t = 60)]
    pub wait: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = args.program.cfg.config.as_deref();
    let settings = Settings::load(file)?;
    let nats = args.program.nats.layered(file)?.or_local_admin();
    if args.program.cfg.print_config {
        Effective::new()
            .table("topology", &settings)?
            .table("nats", &nats.effective())?
            .print()?;
        return Ok(Exit::Ok.into());
    }
    let runtime = crate::cli::tool_runtime()?;
    runtime.block_on(async {
        let mut config = nats.config(Role::Admin, "fleetbus-provision")?;
        config.connect_wait = Duration::from_secs(args.wait);
        let client = match config.connect().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fleetbus provision: {e}");
                return Ok(Exit::Unreachable.into());
            }
        };
        let js = async_nats::jetstream::new(client.clone());
        let report = match topology::provision(
            &js,
            &settings,
            &Scope::all(),
            Duration::from_secs(args.wait),
        )
        .await
        {
            Ok(r) => r,
            Err(e @ ProvisionError::Unavailable { .. }) => {
                eprintln!("fleetbus provision: {e}");
                return Ok(Exit::Unreachable.into());
            }
            Err(e) => return Err(e).context("provisioning failed"),
        };
        client.flush().await.ok();
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{report}");
        }
        Ok(Exit::problems_unless(report.is_ok()).into())
    })
}
