//! TK103: the `(…)` text protocol of the original TK103 family and its
//! descendants (Xexun/Kingneed TK102/TK103, TK05/TK10/TK15, T-series), in
//! Traccar's `tk103` flavour.
//!
//! ```text
//! (027044702512BP00027044702512HSO01A4)            handshake  → (…AP01HSO)
//! (088046338039BP05000088046338039160727A3354.7768N03540.7258E…)  login → (…AP05)
//! (088047365460BR00151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3)
//! (352606090042050,BP05,240414,A,4527.3513N,00909.9758E,4.80,112825,155.49)   comma form
//! ```
//!
//! A message is `(` + a 12-character id (11 on some firmwares, or any id
//! followed by `,` in the comma form) + a 4-character command + its body + `)`.
//!
//! * [`Framer`] — cuts `(…)`, with `$…$` text inside command answers;
//! * [`Session`] — identity from each message, store, and the answers above;
//! * [`parse`] — one message to records, with Traccar's attribute names;
//! * [`encode`] — device messages and server answers.

pub mod encode;
mod framer;
mod message;
mod parser;
mod session;

pub use framer::Framer;
pub use session::Session;

use crate::{ParseContext, ParseError, Record};

pub const NAME: &str = "tk103";
/// Traccar's TK103 port (traccar.org device list: TK05, TK10, T18, … on
/// 5002), so devices configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5002;
/// Default largest message. Positions are under 120 bytes; the longest known
/// messages are command answers (`ZC03`) with a device's settings text and
/// battery-management reports, a few hundred bytes.
pub const MAX_FRAME: usize = 1024;

/// The device id a message carries (every TK103 message carries one).
pub fn identify(frame: &[u8]) -> Option<String> {
    message::Message::parse(frame).ok()?.device_id()
}

/// Turns one message into records: positions (`BR00`, `BP05`, `BO01`, `ZC07`,
/// `DW3x`, … with a fix), a login (`BP00` handshake), status records (battery
/// `ZC20`, cells and WiFi `DW5x`/`BZ00`, `VIN`), command answers (`ZC03`) —
/// never a position without a fix of its own.
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx)
}

/// TK103 in the protocol registry (see [`crate::Spec`]).
pub struct Tk103;

impl crate::Spec for Tk103 {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // Every message carries the device id.
    const UDP: crate::Udp = crate::Udp::Optional;
    // Positions (`BR00`) get no answer; the handshake `BP00` sent right
    // after one does.
    const ACK: crate::Ack = crate::Ack::Barrier;
    // A message carries nothing that could change on a resend.
    const RESEND: crate::Resend = crate::Resend::Same;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);
