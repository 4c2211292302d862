//! One module per `fleetbus` subcommand.

pub mod dead;
pub mod decode;
pub mod dev;
pub mod gateway;
pub mod hamster;
pub mod monkey;
pub mod provision;
pub mod simulate;
pub mod status;
pub mod verify;
