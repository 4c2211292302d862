//! Supervision and the workers of fleetbus: hamsters parse RAW into PARSED,
//! monkeys process PARSED (latest position, events, archives, your own
//! [`monkey::Processor`]). How it fits together: docs/workers.md.
//!
//! * [`supervisor`] — a ractor supervisor owning N workers, restarting the
//!   ones that fail with backoff, giving up past a restart intensity;
//! * [`worker`] — the pull worker: batch pulls from a shared durable
//!   consumer, a [`worker::Handler`] per message, acks only when durable;
//! * [`hamster`] and [`monkey`] — the two handlers;
//! * [`advisory`] — moves messages that exhausted their deliveries to DEAD;
//! * [`dead`] — dead-lettering; [`stats`] — live counters.

pub mod advisory;
pub mod dead;
pub mod hamster;
pub mod monkey;
pub mod stats;
pub mod supervisor;
pub mod worker;

pub use stats::{Snapshot, Stats};
pub use supervisor::{Exit, Supervisor, SupervisorConfig, SupervisorHandle, WorkerFactory};
pub use worker::{HandleError, Handler, Policy, PullConfig, PullWorkers};
