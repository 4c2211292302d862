//! GPS103: the text protocol of Coban / Xexun-style trackers (TK103-2B,
//! TK104, GPS102/103/104, Coban GPS303/304/306, TK303, …), Traccar's `gps103`.
//!
//! ```text
//! ##,imei:359586015829802,A;                      login      → LOAD
//! 359586015829802;                                heartbeat  → ON
//! imei:359586015829802,tracker,0809231929,,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;
//! imei:…,OBD,…;                                   OBD data
//! imei:…,<name>,<event>,…,*                       alternative layout (ends with `*`)
//! ```
//!
//! * [`Framer`] — cuts at `;`, `*` or a line end (as Traccar's delimiters);
//! * [`Session`] — login/heartbeat identity, store, and the answers above
//!   (`help me` → `**,imei:<imei>,E;`);
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

pub const NAME: &str = "gps103";
/// Traccar's GPS103 port (traccar.org device list: TK103-2B, GPS-103, … on
/// 5001), so devices configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5001;
/// Default largest message: Traccar's 2 KiB. Position and OBD messages are
/// under 200 bytes; photo chunks (`vr…`) are the longest.
pub const MAX_FRAME: usize = 2048;

/// The IMEI a login, heartbeat or data message carries.
pub fn identify(frame: &[u8]) -> Option<String> {
    message::Message::parse(frame)
        .ok()?
        .imei()
        .map(str::to_owned)
}

/// Turns one message into records: a login, a heartbeat, positions (`F`
/// messages and the alternative layout), status records for messages
/// without a fix (`L` cell data, OBD data) — never a position without a fix.
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx)
}

/// GPS103 in the protocol registry (see [`crate::Spec`]).
pub struct Gps103;

impl crate::Spec for Gps103 {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // Commonly over UDP; every message carries the IMEI.
    const UDP: crate::Udp = crate::Udp::ByDefault;
    // A data message with the heartbeat glued in front (`<imei>imei:…;`)
    // is answered `ON`.
    const ACK: crate::Ack = crate::Ack::Reply;
    // A message carries nothing that could change on a resend.
    const RESEND: crate::Resend = crate::Resend::Same;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);
