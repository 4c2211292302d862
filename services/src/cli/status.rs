//! `fleetbus status`: its flags, what it prints and what it exits with.
//! What it asks the cluster and how it judges the answers is
//! [`crate::status`]; this file runs that once and prints the report as
//! asked.
//!
//! Exit status: 0 healthy, 1 degraded (the problems are listed, each with a
//! stable [`Kind`](crate::status::Kind)), 2 the cluster cannot be reached.
//! `--json` prints the same as one JSON object, `--metrics` as Prometheus
//! text.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::ProgramArgs;
use crate::exit::Exit;
use crate::status::{metrics, query, render, Status, Thresholds};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Print one JSON object instead of tables.
    #[arg(long, conflicts_with = "metrics")]
    pub json: bool,
    /// Print Prometheus text exposition instead of tables (same exit status).
    #[arg(long)]
    pub metrics: bool,
    /// How long to wait for answers, in seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
    #[command(flatten)]
    pub thresholds: Thresholds,
}

/// Asks the cluster once, prints the report as asked and exits with its
/// verdict ([`exit_code`]).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(nats) = args.program.admin_nats()? else {
        return Ok(Exit::Ok.into());
    };
    let runtime = crate::cli::tool_runtime()?;
    let status = runtime.block_on(query(
        nats,
        Duration::from_secs(args.timeout),
        &args.thresholds,
    ));
    if args.metrics {
        print!("{}", metrics(&status)?);
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(exit_code(&status))
}

/// 0 healthy, 1 degraded, 2 unreachable.
pub fn exit_code(status: &Status) -> ExitCode {
    if !status.reachable {
        Exit::Unreachable
    } else {
        Exit::problems_unless(status.healthy)
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_default_to_the_documented_thresholds() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["status"]).unwrap();
        assert_eq!(cli.args.thresholds, Thresholds::default());
        let cli = Cli::try_parse_from([
            "status",
            "--max-lag-secs",
            "1",
            "--full-ratio",
            "0.5",
            "--metrics",
        ])
        .unwrap();
        assert_eq!(cli.args.thresholds.max_lag_secs, 1);
        assert_eq!(cli.args.thresholds.full_ratio, 0.5);
        assert!(cli.args.metrics);
        assert!(Cli::try_parse_from(["status", "--full-ratio", "0"]).is_err());
        assert!(Cli::try_parse_from(["status", "--full-ratio", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["status", "--json", "--metrics"]).is_err());
    }
}
