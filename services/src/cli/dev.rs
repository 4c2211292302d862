//! `fleetbus dev up`: the local system on one command (`just up` runs it).
//! This file holds its flags; what it starts, in which order, and how it
//! stops it all is [`crate::dev`].
//!
//! Exit status: 0 once a signal stopped everything it started; an error
//! (no nats-server, a node that did not come up, a second `dev up` on the
//! same data directory) is printed, and exits as `crate::exit::of_error`
//! says.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::dev::{up, Options};

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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        DevCommand::Up(up_args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let options = Options {
                conf_dir: up_args.conf_dir,
                data_dir: up_args.data_dir,
                nats_server: up_args.nats_server,
                status_every: up_args.status_every,
                cluster_only: up_args.cluster_only,
            };
            runtime.block_on(up(options)).map(|()| ExitCode::SUCCESS)
        }
    }
}
