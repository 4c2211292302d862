//! Supervision and the workers of fleetbus: hamsters parse RAW into PARSED,
//! monkeys process PARSED (latest position, events, archives, your own
//! [`monkey::Processor`]). How it fits together: docs/workers.md.
//!
//! * [`supervisor`] — a ractor supervisor owning N workers, restarting the
//!   ones that fail with backoff, giving up past a restart intensity;
//! * [`worker`] — the pull worker: batch pulls from a shared durable
//!   consumer, a [`worker::Handler`] per message that returns an
//!   [`Outcome`]; the worker alone acknowledges, dead-letters or holds;
//! * [`outcome`] — done, back-pressure ([`Downstream`]) or dead
//!   ([`DeadReason`]);
//! * [`gate`] — a process stops pulling while downstream refuses writes;
//!   [`subjects`] — one worker of a process at a time per device;
//! * [`hamster`] and [`monkey`] — the two handlers; [`seen`] — the record
//!   identities the hamsters remember per device; [`published`] — the
//!   frames a hamster process published, for acks that were lost;
//! * [`dead`] — dead-lettering; [`stats`] — live counters.

pub mod dead;
pub mod gate;
pub mod hamster;
pub mod janitor;
pub mod monkey;
pub mod outcome;
pub mod ownership;
pub mod published;
pub mod revisions;
pub mod seen;
pub mod stats;
pub mod subjects;
pub mod supervisor;
pub mod worker;

pub use gate::{Gate, GateStatus};
pub use outcome::{DeadKind, DeadReason, Downstream, DownstreamKind, Outcome};
pub use ownership::Ownership;
pub use stats::{Snapshot, Stats};
pub use supervisor::{Exit, Supervisor, SupervisorConfig, SupervisorHandle, WorkerFactory};
pub use worker::{Handler, Policy, PullConfig, PullWorkers};
