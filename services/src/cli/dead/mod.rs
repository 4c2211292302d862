//! `fleetbus dead`: DEAD is not a grave.
//!
//! * `fleetbus dead ls` lists what the workers gave up on and why;
//! * `fleetbus dead replay` puts dead letters back where they came from
//!   (after a parser was fixed, a full stream was given room), under their
//!   original message id, and only after the target stored them deletes
//!   them from DEAD;
//! * `fleetbus dead rescue` moves messages that ran out of deliveries under
//!   an older, finite `max_deliver` out of RAW and PARSED into DEAD
//!   ([`rescue`]).
//!
//! This file holds their flags and what they print and exit with; how DEAD
//! is read, listed, replayed and rescued is [`crate::dead`].
//!
//! Exit status (`crate::exit`): `ls` 0 (also when nothing matches), 2 when
//! the cluster cannot be reached. `replay` 0 when every selected letter was
//! stored (or already was), 1 when some failed, 2 when the cluster cannot
//! be reached, 64 when nothing says which letters to replay.

use std::process::ExitCode;
use std::time::Duration;

use async_nats::jetstream;

use crate::config::ProgramArgs;
use crate::dead::{
    list, open_dead, render_line, render_listing, replay_letter, select, summary, terminal_width,
    Filter, Letter, Line, Listed, ReplayOptions,
};
use crate::exit::Exit;
use crate::nats::Role;

pub mod rescue;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List dead letters, oldest first: sequence, time, stage, kind, device, reason.
    Ls(LsArgs),
    /// Put dead letters back where they came from, then delete them from DEAD.
    Replay(ReplayArgs),
    /// Move messages no consumer will deliver again (they ran out of
    /// deliveries under an older max_deliver) from RAW and PARSED into DEAD.
    Rescue(rescue::RescueArgs),
}

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    #[command(flatten)]
    pub filter: Filter,
    /// Show at most this many letters, oldest first (0: all); the summary
    /// counts every match.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print one JSON array (every header, the payload's length) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    #[command(flatten)]
    pub filter: Filter,
    /// Replay these DEAD sequences (repeat, or separate with commas); the
    /// filters still apply.
    #[arg(long = "seq", value_delimiter = ',')]
    pub seq: Vec<u64>,
    /// Replay every letter in DEAD: required when no filter and no --seq is given.
    #[arg(long)]
    pub all: bool,
    /// Replay at most this many letters, oldest first (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Print what would be published; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave the letters in DEAD after they were stored.
    #[arg(long)]
    pub keep: bool,
    /// How long to keep trying one letter while its target does not answer
    /// (elections, timeouts), in seconds.
    #[arg(long, default_value_t = 30)]
    pub retry_secs: u64,
}

/// Connects as admin; the exit status (the reason on stderr) when it
/// cannot, or `Ok` when `--print-config` printed the options instead.
async fn connect(
    program: &ProgramArgs,
    name: &str,
) -> anyhow::Result<Result<jetstream::Context, Exit>> {
    let Some(nats) = program.admin_nats()? else {
        return Ok(Err(Exit::Ok));
    };
    let config = nats.config(Role::Admin, name)?;
    match config.connect().await {
        Ok(client) => Ok(Ok(jetstream::new(client))),
        Err(e) => {
            eprintln!("fleetbus dead: {e}");
            Ok(Err(Exit::Unreachable))
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Ls(args) => crate::cli::tool_runtime()?.block_on(ls(args)),
        Command::Replay(args) => crate::cli::tool_runtime()?.block_on(replay(args)),
        Command::Rescue(args) => crate::cli::tool_runtime()?.block_on(rescue::run(args)),
    }
}

async fn ls(args: LsArgs) -> anyhow::Result<ExitCode> {
    let js = match connect(&args.program, "fleetbus-dead-ls").await? {
        Ok(js) => js,
        Err(code) => return Ok(code.into()),
    };
    let listing = match list(&js, &args.filter, args.limit).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fleetbus dead ls: {e}");
            return Ok(Exit::Unreachable.into());
        }
    };
    if args.json {
        let rows: Vec<Listed> = listing.shown.iter().map(Letter::listed).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render_listing(&listing, terminal_width()));
    }
    Ok(Exit::Ok.into())
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if args.filter.is_empty() && args.seq.is_empty() && !args.all {
        eprintln!(
            "fleetbus dead replay: say which letters: a filter (--stage, --kind, --reason, \
             --protocol, --device, --since, --until), --seq N, or --all for every letter in DEAD"
        );
        return Ok(Exit::Usage.into());
    }
    let js = match connect(&args.program, "fleetbus-dead-replay").await? {
        Ok(js) => js,
        Err(code) => return Ok(code.into()),
    };
    let dead = match open_dead(&js).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fleetbus dead replay: {e}");
            return Ok(Exit::Unreachable.into());
        }
    };
    let selected = match select(dead.clone(), &args.filter, &args.seq, args.limit).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleetbus dead replay: {e}");
            return Ok(Exit::Unreachable.into());
        }
    };
    if selected.is_empty() {
        println!("No dead letters match: nothing replayed.");
        return Ok(Exit::Ok.into());
    }
    let options = ReplayOptions {
        dry_run: args.dry_run,
        keep: args.keep,
        retry_for: Duration::from_secs(args.retry_secs),
    };
    let mut lines = Vec::new();
    for sequence in selected {
        let line = replay_letter(&js, &dead, sequence, &args.filter, options).await;
        // Printed as it goes: a long replay shows its progress.
        println!("{}", render_line(&line, options));
        lines.push(line);
    }
    println!("{}", summary(&lines, options));
    Ok(Exit::problems_unless(lines.iter().all(Line::ok)).into())
}
