//! `fleetbus hamster`: parse RAW into PARSED with N supervised workers on
//! the shared durable `hamsters` (docs/workers.md).

use std::process::ExitCode;

use crate::worker::{self, CommonArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    worker::run_hamster(args.common)
}
