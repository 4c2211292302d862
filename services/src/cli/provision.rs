//! `fleetbus provision`: create or update every stream and durable consumer
//! as `services/src/topology` describes them. Idempotent; services do the
//! same for their own resources at every start.
//!
//! Exit status: 0 when the cluster matches the code (created, updated or
//! unchanged), 1 when JetStream refused to change something in place (the
//! report says what and why), 2 when the cluster could not be reached.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::nats::{NatsArgs, Role};
use crate::topology::{self, ProvisionError, Scope, Settings};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// A TOML config file whose `[topology]` table overrides the defaults
    /// (`FLEETBUS_TOPOLOGY__…` variables override both).
    #[arg(long, env = "FLEETBUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// How long to wait for the cluster (leader elections), in seconds.
    #[arg(long, default_value_t = 60)]
    pub wait: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut config = args
            .nats
            .clone()
            .or_local_admin()
            .config(Role::Admin, "fleetbus-provision")?;
        config.connect_wait = Duration::from_secs(args.wait);
        let client = match config.connect().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fleetbus provision: {e}");
                return Ok(ExitCode::from(2));
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
                return Ok(ExitCode::from(2));
            }
            Err(e) => return Err(e).context("provisioning failed"),
        };
        client.flush().await.ok();
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{report}");
        }
        Ok(if report.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}
