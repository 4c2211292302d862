//! `fleetbus`: every deployable program of fleetbus behind one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fleetbus_services::cli;
use fleetbus_services::exit::{self, Exit};

#[derive(Parser)]
#[command(
    name = "fleetbus",
    version,
    about = "Vehicle tracker ingestion on NATS JetStream"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode hex frames from stdin (one per line) into JSON positions.
    Decode(cli::decode::Args),
    /// The gateway: devices in (TCP, UDP), RAW out (ack after a quorum stored it).
    Gateway(cli::gateway::Args),
    /// Parser workers: RAW -> PARSED, supervised, on the shared durable `hamsters`.
    Hamster(cli::hamster::Args),
    /// Processing workers on PARSED: latest position, events, archive.
    Monkey(cli::monkey::Args),
    /// Sweeps RAW and PARSED below every reader's floor (the only login that may purge them).
    Janitor(cli::janitor::Args),
    /// A simulated fleet with a persistent outbound queue (see docs/simulator.md).
    Simulate(cli::simulate::Args),
    /// Check a simulator report against PARSED: missing, duplicated, altered.
    Verify(cli::verify::Args),
    /// Create or update the streams and consumers (idempotent).
    Provision(cli::provision::Args),
    /// Cluster, streams, consumers and workers; exit 0 when healthy.
    Status(cli::status::Args),
    /// Local development: `fleetbus dev up` runs the whole system (`just up`).
    Dev(cli::dev::Args),
    /// Dead letters: `ls` what was given up on and why, `replay` it where it came from.
    Dead(cli::dead::Args),
    /// The device registry: `add`, `rm`, `ls`, `import` devices; `accept` the `pending` ones.
    Device(cli::device::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors; anything else is a wrong
        // command line (exit 64, the table in fleetbus_services::exit).
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    let result = match cli.command {
        Command::Decode(args) => cli::decode::run(args),
        Command::Gateway(args) => cli::gateway::run(args),
        Command::Hamster(args) => cli::hamster::run(args),
        Command::Monkey(args) => cli::monkey::run(args),
        Command::Janitor(args) => cli::janitor::run(args),
        Command::Simulate(args) => cli::simulate::run(args),
        Command::Verify(args) => cli::verify::run(args),
        Command::Provision(args) => cli::provision::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Dev(args) => cli::dev::run(args),
        Command::Dead(args) => cli::dead::run(args),
        Command::Device(args) => cli::device::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("fleetbus: {err:#}");
            exit::of_error(&err).into()
        }
    }
}
