//! `fleetbus dead rescue`: its flags and what it exits with. What it
//! moves, and why it waits first, is `crate::dead::rescue`.
//!
//! Exit status: 0 when every stranded message was moved (or there was
//! none), 1 when a move failed, 2 when the cluster cannot be reached.

use std::process::ExitCode;

use crate::config::ProgramArgs;
use crate::dead::rescue;
use crate::exit::Exit;
use crate::nats::Role;

#[derive(clap::Args, Debug)]
pub struct RescueArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Say what would be moved; change nothing (and do not wait).
    #[arg(long)]
    pub dry_run: bool,
    /// Wait this long before moving anything, so that messages every
    /// consumer acknowledged are removed by the server's interest sweep
    /// first (it runs about every two minutes).
    #[arg(long, default_value_t = 180)]
    pub settle_secs: u64,
}

/// Connects as admin, rescues, and exits 1 when a move failed.
pub async fn run(args: RescueArgs) -> anyhow::Result<ExitCode> {
    let Some(nats) = args.program.admin_nats()? else {
        return Ok(Exit::Ok.into());
    };
    let config = nats.config(Role::Admin, "fleetbus-dead-rescue")?;
    let client = match config.connect().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleetbus dead: {e}");
            return Ok(Exit::Unreachable.into());
        }
    };
    let moved = rescue(client, args.dry_run, args.settle_secs).await;
    Ok(Exit::problems_unless(moved).into())
}
