//! `fleetbus verify`: did every record the simulator was told is stored
//! reach PARSED exactly once, with the values sent — and, with
//! `--effects`, did the monkeys do with it what they should (the latest
//! position of every device, each device event once)?
//!
//! PARSED keeps a message only while some consumer still needs it, so the
//! check reads through its own durable consumer, created *before* the run:
//!
//! ```sh
//! fleetbus verify --prepare --consumer check-1
//! fleetbus simulate --records 100 --report sim.jsonl
//! fleetbus verify --consumer check-1 --report sim.jsonl
//! ```
//!
//! A consumer that is read only at the end holds every message of the run
//! in PARSED (the monkeys sweep only what every consumer acknowledged),
//! which changes what is being judged: a full PARSED, a
//! stream that should have drained. `--tap FILE` instead follows the
//! consumer during the run, writing each record to FILE before
//! acknowledging it, until SIGTERM; `--from-tap FILE` then judges from the
//! file. The fault suite does that.
//!
//! Exit status: 0 when nothing is missing, duplicated or altered (and the
//! effects are right); 1 otherwise; 2 when the cluster cannot be reached;
//! 64 when the report cannot be read (`crate::exit`).
//!
//! This file holds the flags, what it prints and what it exits with; how
//! PARSED, the report, the tap and the effects are read and judged is
//! [`crate::verify`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use async_nats::jetstream;

use crate::config::ProgramArgs;
use crate::exit::Exit;
use crate::nats::Role;
use crate::simulate::Reported;
use crate::verify::{
    check_effects, compare, consumer_config, open_consumer, read_consumer, read_report, read_tap,
    render, tap, Key, Parsed,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// The durable consumer on PARSED to read through.
    #[arg(long, default_value = "verify")]
    pub consumer: String,
    /// Create the consumer (before the run) and exit.
    #[arg(long)]
    pub prepare: bool,
    /// The simulator's report (`fleetbus simulate --report`).
    #[arg(long, required_unless_present_any = ["prepare", "tap", "print_config"])]
    pub report: Option<PathBuf>,
    /// Follow the consumer and append every record to this file (JSON
    /// lines) before acknowledging it, until SIGTERM or SIGINT.
    #[arg(long, conflicts_with_all = ["prepare", "report", "from_tap"])]
    pub tap: Option<PathBuf>,
    /// Judge from a file `--tap` wrote instead of reading the consumer.
    #[arg(long)]
    pub from_tap: Option<PathBuf>,
    /// Also check the monkeys' effects: every reported device's entry in
    /// the `devices` bucket holds its newest record, and EVENTS holds each
    /// ignition change of its records once.
    #[arg(long)]
    pub effects: bool,
    /// With `--effects`, pass although some ignition transitions never
    /// showed, as long as every event that did is real and once: what a
    /// device's fixes processed out of order cost (docs/reliability.md,
    /// "Ordering"). The missing ones are still reported.
    #[arg(long, requires = "effects")]
    pub allow_lost_transitions: bool,
    /// Give up waiting for missing records after this many seconds
    /// without a new message.
    #[arg(long, default_value_t = 10)]
    pub idle_secs: u64,
    /// How long to wait for PARSED and the consumer while the cluster
    /// elects leaders (after a restart), in seconds.
    #[arg(long, default_value_t = 60)]
    pub wait_secs: u64,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Reads the report, gets what reached PARSED from `parsed`, compares,
/// checks the effects if asked, prints, and says how it went.
async fn judge<F, Fut>(js: &jetstream::Context, args: &Args, parsed: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(BTreeMap<Key, Reported>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Parsed>>,
{
    let path = args.report.as_ref().expect("clap requires --report");
    let expected = match read_report(path) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("fleetbus verify: {e:#}");
            return Ok(Exit::Usage.into());
        }
    };
    let parsed = parsed(expected.clone()).await?;
    let mut outcome = compare(&expected, &parsed);
    outcome.allow_lost_transitions = args.allow_lost_transitions;
    if args.effects {
        let wait = Duration::from_secs(args.wait_secs);
        let reported = expected.keys().map(|(device, _)| device.as_str()).collect();
        outcome.effects = Some(check_effects(js, &parsed.seen, &reported, wait).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", render(&outcome));
    }
    Ok(Exit::problems_unless(outcome.ok()).into())
}

/// Connects as admin, then prepares the consumer, taps it, or judges a run
/// (through the consumer, or from a tap file), as the flags say.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(nats) = args.program.admin_nats()? else {
        return Ok(Exit::Ok.into());
    };
    let runtime = crate::cli::tool_runtime()?;
    runtime.block_on(async move {
        let client = match nats.config(Role::Admin, "fleetbus-verify")?.connect().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fleetbus verify: {e}");
                return Ok(Exit::Unreachable.into());
            }
        };
        let js = jetstream::new(client);
        if let Some(path) = &args.from_tap {
            let path = path.clone();
            return judge(&js, &args, move |_| async move { read_tap(&path) }).await;
        }
        let config = consumer_config(&args.consumer);
        let consumer = open_consumer(&js, config, Duration::from_secs(args.wait_secs)).await?;
        if args.prepare {
            println!("consumer PARSED/{} ready", args.consumer);
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(path) = &args.tap {
            tap(&consumer, path).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let idle = Duration::from_secs(args.idle_secs);
        let consumer = &consumer;
        judge(&js, &args, move |expected| async move {
            read_consumer(consumer, &expected, idle).await
        })
        .await
    })
}
