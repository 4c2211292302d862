//! DEAD is not a grave: what `fleetbus dead` does with the letters the
//! workers gave up on. The command line is `cli::dead`.
//!
//! * listing ([`list()`]) shows what the workers gave up on and why;
//! * replaying ([`replay_letter`]) puts a dead letter back where it came
//!   from (after a parser was fixed, a full stream was given room), under
//!   its original message id, and only after the target stored it deletes
//!   it from DEAD;
//! * rescuing ([`rescue()`]) moves messages that ran out of deliveries
//!   under an older, finite `max_deliver` out of RAW and PARSED into DEAD.
//!
//! Listing and replaying read DEAD without changing it: an ordered consumer
//! (ephemeral, no acknowledgements, headers only) filtered by subject, read
//! up to the stream's last sequence at the start, so that a listing ends
//! even while workers keep adding letters.
//!
//! One file per job, each using only those listed before it:
//! - `letter`: one message on DEAD ([`Letter`]) and what `ls --json`
//!   prints of it ([`Listed`]);
//! - `filter`: which letters ([`Filter`], [`Stage`], [`parse_when`]);
//! - `read`: opening DEAD and reading it to its end ([`open_dead`]);
//! - `list`: a listing ([`Listing`]) and its table ([`render_listing`]);
//! - `replay`: the plan, the publish, the delete and the report of a replay;
//! - `rescue`: what no consumer delivers again, from RAW and PARSED to DEAD.

mod filter;
#[cfg(test)]
mod fixtures;
mod letter;
mod list;
mod read;
mod replay;
mod rescue;

pub use filter::{parse_when, Filter, Stage};
pub use letter::{Letter, Listed};
pub use list::{list, render_listing, terminal_width, Listing};
pub use read::{open_dead, DeadError};
pub use replay::{
    plan, render_line, replay_letter, select, summary, Line, Plan, ReplayError, ReplayOptions,
    Replayed,
};
pub use rescue::{move_range, rescue, Rescued};
