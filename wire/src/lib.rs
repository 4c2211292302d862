//! The wire contract of fleetbus: what travels between the programs, once.
//!
//! | message | stream | subject | written by | read by | module |
//! |---|---|---|---|---|---|
//! | a device frame, as sent | RAW | `raw.<protocol>.<device>` | gateway | hamsters, verify | [`raw`] |
//! | the records of one frame | PARSED | `parsed.<protocol>.<device>` | hamsters | monkeys, verify | [`parsed`] |
//! | a message given up on | DEAD | `dead.<raw\|parsed>.<protocol>.<device>` | hamsters, monkeys, `dead rescue` | `dead ls`, `dead replay` | [`dead`] |
//! | a device event | EVENTS | `events.<protocol>.<device>.<type>` | monkeys | users, verify | [`event`] |
//! | a device's latest position | bucket `devices` | key: the device | monkeys | users, verify | [`device`] |
//! | a device's recent record identities | bucket `seen` | key: `<protocol>.<device>` | hamsters | hamsters | `fleetbus_actors::seen` |
//! | a registered device | bucket `registry` | key: the device | `fleetbus device` | gateways | [`registry`] |
//! | an unknown device held for an operator | bucket `pending` | key: the device | gateways (`register`) | `fleetbus device` | [`registry`] |
//!
//! [`names`] spells every stream, durable and bucket; [`headers`] every
//! header; [`ids`] every message id (pinned by tests: an id must never
//! change between versions); [`roles`] what each login reads and writes,
//! from which its NATS permissions are derived. The JSON payloads are
//! described for readers outside Rust in `wire/schema/` (docs/streams.md).
//!
//! No I/O here: each kind has a writer (subject, headers, id) and a reader
//! (from any [`Envelope`]); the programs publish and fetch.

pub mod dead;
pub mod device;
pub mod envelope;
pub mod event;
pub mod headers;
pub mod ids;
pub mod names;
pub mod parsed;
pub mod raw;
pub mod registry;
pub mod roles;

pub use envelope::Envelope;
pub use names::{DeadStage, Durable, Stream};
pub use roles::Role;
