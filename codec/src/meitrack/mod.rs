//! Meitrack: the `$$` protocol of Meitrack's MVT, T, P and TC trackers
//! (MVT100/340/380/600/800, T1, T3, T311, T333, T355, T366, P88L, P99G, …).
//!
//! ```text
//! $$<flag><len>,<imei>,<command>,<data>*<checksum>\r\n
//! $$E141,863071013799553,AAA,35,-1.264521,36.801128,150307132846,A,11,20,…*17\r\n
//! ```
//!
//! `flag` is one character (`A`–`z`), `len` the decimal number of bytes from
//! the first `,` to the final `\r\n` inclusive, `checksum` two hex digits of
//! the byte sum (mod 256) of everything before them, `*` included. `AAA` is
//! the text position report; `CCC` and `CCE` carry cached records in binary
//! (so the data may hold any byte, `*` and `\r\n` included).
//!
//! * [`Framer`] — cuts messages by their length and checks the checksum;
//! * [`Session`] — identity from each message and the answers the device expects;
//! * [`parse`] — one message to records, with Traccar's attribute names;
//! * [`encode`] — device messages and server answers.

mod binary;
pub mod encode;
mod framer;
mod message;
mod parser;
mod session;

pub use framer::Framer;
pub use session::Session;

use crate::{ParseContext, ParseError, Record};

pub const NAME: &str = "meitrack";
/// Traccar's Meitrack port, so devices configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5020;
/// Default largest message. Text reports are under 300 bytes; binary `CCE`
/// batches and photo parts (`D00`) run to about 1.1 KiB in practice, and the
/// documents allow commands of 1024 bytes plus the header.
pub const MAX_FRAME: usize = 4096;

/// The IMEI a message carries (every Meitrack message carries one).
pub fn identify(frame: &[u8]) -> Option<String> {
    message::Message::parse(frame).ok()?.device_id()
}

/// Turns one message into records: positions (`AAA`, and each cached `CCC`
/// or `CCE` record with a fix), status records (records without a fix,
/// photo parts), command answers and heartbeats — never a position without a
/// fix of its own.
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx)
}

/// Meitrack in the protocol registry (see [`crate::Spec`]).
pub struct Meitrack;

impl crate::Spec for Meitrack {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // TCP only.
    const UDP: crate::Udp = crate::Udp::No;
    // `CCC` batches are answered.
    const ACK: crate::Ack = crate::Ack::Reply;
    // Devices send their pending records again in a new batch, with the
    // newer ones (and another flag byte).
    const RESEND: crate::Resend = crate::Resend::Repack;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);
