//! Watch: the `[…]` text protocol of 2G/3G/4G kids' and elderly watches
//! (Wonlex, Beesure/SeTracker, 3G/4G "GW" and "Q" series and their clones),
//! in Traccar's `watch` flavour.
//!
//! ```text
//! [SG*8800000015*000D*LK,50,100,100]                       link keep → [SG*8800000015*0002*LK]
//! [3G*4700222306*0077*UD,120316,140610,V,48.779045,N,…]    position  → no answer
//! [3G*6907919734*003E*AL_LTE,170525,214118,V,0,N,0,E,…]     alarm     → [3G*6907919734*0002*AL]
//! [ZJ*014111001350304*0033*0064*UD,070318,…]               with a message index
//! ```
//!
//! A message is `[` + a 2-character vendor (`SG`, `3G`, `CS`, `ZJ`, …) +
//! `*` + the device id + `*` + (on some firmwares a 4-hex-digit message
//! index + `*`) + the content's length as 4 hex digits + `*` + the content
//! (its type, then `,`-separated fields) + `]`. Binary content (voice,
//! pictures) escapes `} [ ] , *` as `}` followed by 0x01…0x05.
//!
//! * [`Framer`] — cuts `[…]` (see its documentation for the end rule);
//! * [`Session`] — identity from each message, store, and the answers;
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

pub const NAME: &str = "watch";
/// Traccar's watch port (`<entry key='watch.port'>5093</entry>` in its
/// default configuration), so watches configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5093;
/// Default largest message: the most content the 4-hex-digit length can
/// announce (65 535 bytes: voice messages and pictures are sent whole in one
/// message) plus the longest header accepted. Positions are under 400 bytes.
pub const MAX_FRAME: usize = 0xFFFF + message::MAX_HEADER + 1;

/// The device id a message carries (every watch message carries one).
pub fn identify(frame: &[u8]) -> Option<String> {
    message::Message::parse(frame).ok()?.device_id()
}

/// Turns one message into records: positions (`UD`, `UD2`, `UD_LTE`,
/// `UD_WCDMA`, `WT`, alarms `AL…`) — a report without coordinates is a
/// status record, never a position —, heartbeats (`LK` with steps and
/// battery, `TKQ`), health measurements (`PULSE`, `heart`, `BLOOD`, `bphrt`,
/// `TEMP`, `btemp2`, `oxygen`) and `CONFIG` as status records. Voice and
/// pictures (`TK`, `JXTK`, `img`) are stored but reported unsupported.
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx)
}

/// Watch in the protocol registry (see [`crate::Spec`]).
pub struct Watch;

impl crate::Spec for Watch {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // Watches speak TCP only (the vendors' documents; Traccar's watch
    // protocol is TCP).
    const UDP: crate::Udp = crate::Udp::No;
    // Positions (`UD`, `UD2`, `WT`) get no answer; the link keep `LK` sent
    // right after one does, and proves it stored.
    const ACK: crate::Ack = crate::Ack::Barrier;
    // A message carries nothing that could change on a resend.
    const RESEND: crate::Resend = crate::Resend::Same;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);
