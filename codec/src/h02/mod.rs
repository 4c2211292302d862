//! H02: the text and binary protocol of Sinotrack (ST-901, ST-906), HuaSunTeK,
//! LKGPS and many cheap trackers that copied it.
//!
//! * text messages `*HQ,<id>,<type>,…#` (`V1` position, `V0`/`HTBT`
//!   heartbeat, `NBR`/`V3` cell towers, `LINK` status, `VP1`, `V4` command
//!   answers, …), where `HQ` is the maker code (`TH`, `hq`, … also occur);
//! * binary positions `$<id:5 BCD><time><date><lat><battery><lon+flags>…`,
//!   32 bytes (45 on some firmwares).
//!
//! Every message carries the device id, so there is no login message: the
//! first message identifies the connection (or the datagram, over UDP).
//!
//! * [`Framer`] — cuts text at `#` and binary messages by their fixed size;
//! * [`Session`] — identity from each message, store, and Traccar's answers;
//! * [`parse`] — one message to records, with Traccar's attribute names;
//! * [`encode`] — device messages and server answers.
//!
//! Files: `message` (what framer, session and parser agree a message looks
//! like), `framer`, `session`, `parser`, `encode`.

pub mod encode;
mod framer;
mod message;
mod parser;
mod session;

pub use framer::Framer;
pub use session::Session;

use crate::{ParseContext, ParseError, Record};

pub const NAME: &str = "h02";
/// Traccar's H02 port (traccar.org device list), so devices configured for
/// Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5013;
/// Default largest message. The longest H02 messages are `NBR` cell lists and
/// `V1` positions with sim information, well under 300 bytes; 1 KiB leaves
/// room for every known variant while a message without its `#` costs at
/// most 1 KiB of buffer per connection.
pub const MAX_FRAME: usize = 1024;

/// The device id a message carries (every H02 message carries one): the
/// decimal id of a text message, or the 10 BCD digits of a binary one.
pub fn identify(frame: &[u8]) -> Option<String> {
    message::Message::parse(frame).ok()?.device_id()
}

/// Turns one message into records: positions (`V1`-like texts and binary
/// messages), heartbeats (`V0`, `HTBT`), status records (`NBR`, `V3`,
/// `LINK`, `VP1` without a fix, messages without a fix) — never a position
/// without a fix of its own.
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx)
}

/// H02 in the protocol registry (see [`crate::Spec`]).
pub struct H02;

impl crate::Spec for H02 {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // Commonly over UDP; every message carries the device id.
    const UDP: crate::Udp = crate::Udp::ByDefault;
    // `V1` is answered with `V4`.
    const ACK: crate::Ack = crate::Ack::Reply;
    // A message carries nothing that could change on a resend.
    const RESEND: crate::Resend = crate::Resend::Same;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);
