//! Queclink @Track: the `+RESP:`/`+BUFF:`/`+ACK:` text protocol of Queclink's
//! GL200/GL300/GL500, GV55/GV300/GV350/GV500/GV600, GMT100, GB100, GT501,
//! CV100 and relatives, in Traccar's `gl200` flavour.
//!
//! ```text
//! +RESP:GTFRI,DE0114,865284042140479,,0,0,1,1,0.0,0,28.0,-118.268093,33.975430,20200901105954,0311,0480,3500,00D07F02,18,0,,93,0,,,20200901110000,0355$
//! +ACK:GTHBD,0F0106,862193020451183,,20160727001255,3B7D$      → +SACK:GTHBD,0F0106,3B7D$
//! ```
//!
//! A text message is `+<kind>:GT<type>,<protocol version>,<IMEI>,<device
//! name>,…,<send time>,<count>$`. The binary form (`+RSP`, `+EVT`, `+ACK`
//! with a binary body, …) is framed by its length; `+RSP` location reports
//! (plain and compressed) and `+EVT` event reports are parsed.
//!
//! * [`Framer`] — cuts text messages at `$`, binary ones by their length;
//! * [`Session`] — identity from each message; answers heartbeats;
//! * [`parse`] — one text message to records, with Traccar's attribute names;
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

pub const NAME: &str = "gl200";
/// Traccar's Queclink port, so devices configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5004;
/// Default largest message. Text reports are under 600 bytes (CAN reports
/// with every field reach about 1 KiB); binary batches reach 1.4 KiB.
pub const MAX_FRAME: usize = 4096;

/// The IMEI a message carries (every text message; binary `+RSP`, `+EVT`
/// and `+INF`).
pub fn identify(frame: &[u8]) -> Option<String> {
    message::device_id(frame)
}

/// Turns one message into records: positions (one per location block with
/// a fix), status records (reports without a fix: power on/off, device
/// information, cells), heartbeats and command acknowledgements — never a
/// position without a fix of its own. Binary `+RSP` and `+EVT` messages are
/// parsed; other binary messages are reported unsupported.
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx)
}

/// Queclink @Track in the protocol registry (see [`crate::Spec`]).
pub struct Gl200;

impl crate::Spec for Gl200 {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // Commonly over UDP; every text message carries the IMEI.
    const UDP: crate::Udp = crate::Udp::ByDefault;
    // Reports (`+RESP:GTFRI`) get no answer; the heartbeat `+ACK:GTHBD`
    // sent right after one does.
    const ACK: crate::Ack = crate::Ack::Barrier;
    // Buffered reports come again as `+BUFF:` with a new send time and
    // count.
    const RESEND: crate::Resend = crate::Resend::Reencode;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);
