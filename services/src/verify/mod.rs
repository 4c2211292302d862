//! What `fleetbus verify` judges: did every record the simulator was told
//! is stored reach PARSED exactly once, with the values sent — and did the
//! monkeys do with it what they should (the latest position of every
//! device, each device event once)? The command line is `cli::verify`.
//!
//! PARSED keeps a message only while some consumer still needs it, so the
//! check reads through its own durable consumer ([`consumer_config`]),
//! created *before* the run. A consumer that is read only at the end holds
//! every message of the run in PARSED (the monkeys sweep only what every
//! consumer acknowledged), which changes what is being judged; the
//! tap ([`tap()`]) instead follows the consumer during the run into a file,
//! which is judged afterwards ([`read_tap`]).
//!
//! One file per step, each using only those listed before it:
//! - `report`: what the simulator says was stored ([`read_report`]), by
//!   record identity ([`Key`]);
//! - `parsed`: what reached PARSED ([`Parsed`]), read through the verify
//!   consumer ([`open_consumer`], [`read_consumer`]);
//! - `tap`: following the consumer into a file and reading it back;
//! - `effects`: the monkeys' effects ([`Effects`], [`check_effects`]);
//! - `compare`: the report against PARSED ([`compare()`], [`Outcome`]);
//! - `render`: the outcome for people ([`render()`]).

mod compare;
mod effects;
mod parsed;
mod render;
mod report;
mod tap;

pub use compare::{compare, Outcome};
pub use effects::{check as check_effects, Effects};
pub use parsed::{consumer_config, open_consumer, read_consumer, Parsed};
pub use render::render;
pub use report::{read_report, Key};
pub use tap::{read_tap, tap};
