//! `fleetbus monkey`: process PARSED with N supervised workers on the
//! shared durable `monkeys`: latest position per device, device events, and
//! optionally a JSON-lines archive (docs/workers.md).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::worker::{self, CommonArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Also archive every record as JSON lines in rotating files in this
    /// directory (the `file` processor).
    #[arg(long, env = "FLEETBUS_MONKEY_ARCHIVE")]
    pub archive: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    worker::run_monkey(args.common, args.archive)
}
