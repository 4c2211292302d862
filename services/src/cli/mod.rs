//! One module per `fleetbus` subcommand.

pub mod dead;
pub mod decode;
pub mod dev;
pub mod device;
pub mod gateway;
pub mod hamster;
pub mod janitor;
pub mod monkey;
pub mod provision;
pub mod simulate;
pub mod status;
pub mod verify;

/// The runtime of a one-shot admin tool (`status`, `verify`, `provision`,
/// `dead`, `device`): it waits on the cluster, one thread is plenty.
pub fn tool_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The runtime of a long-running program (gateway, workers, simulator):
/// a thread per core.
pub fn service_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
