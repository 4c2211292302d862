//! Library half of the `fleetbus` binary: every subcommand lives in its own
//! module so that tests can drive them without a child process.

pub mod cli;
pub mod config;
pub mod dead;
pub mod dev;
pub mod exit;
pub mod gateway;
pub mod nats;
pub mod ops;
pub mod registry;
pub mod simulate;
pub mod status;
pub mod topology;
pub mod verify;
pub mod worker;
