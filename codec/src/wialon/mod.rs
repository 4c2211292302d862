//! Wialon IPS (1.1 and 2.0): Gurtam's text protocol, spoken by many
//! trackers and by other servers forwarding to Wialon; Traccar's `wialon`.
//!
//! ```text
//! #L#2.0;354868050655283;NA;C3A5\r\n       login (1.1: #L#imei;password)  → #AL#1
//! #P#\r\n                                  ping                            → #AP#
//! #SD#date;time;lat;N;lon;E;speed;course;alt;sats;crc\r\n              → #ASD#1
//! #D#…short fields…;hdop;inputs;outputs;adc;ibutton;params;crc\r\n      → #AD#1
//! #B#record|record|…|crc\r\n               black box                       → #AB#<n>
//! #M#text;crc\r\n                          message from the driver         → #AM#1
//! 2.0;<imei>#D#…\r\n                       over UDP: the id in a prefix
//! ```
//!
//! * [`Framer`] — one packet per line, resynchronising on garbage;
//! * [`Session`] — login identity, checksums, store, and the answers above;
//! * [`parse`] — one packet to records, with Traccar's attribute names;
//! * [`encode`] — device packets and server answers.

pub mod encode;
mod framer;
mod message;
mod parser;
mod session;

pub use framer::Framer;
pub use session::Session;

use crate::{ParseContext, ParseError, Record};

pub const NAME: &str = "wialon";
/// Traccar's Wialon port, so devices configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5039;
/// Default largest packet: Traccar's 32 KiB line limit. A black box packet
/// may hold up to 5000 records (about 100 bytes each in the short form), so
/// a device that sends big ones needs a larger `max_frame`.
pub const MAX_FRAME: usize = 32 * 1024;

/// The device id a login names, or the UDP prefix of any packet.
pub fn identify(frame: &[u8]) -> Option<String> {
    let packet = message::Packet::parse(frame, message::Version::Unknown).ok()?;
    match packet.kind {
        "L" => packet.login().ok().map(|l| l.imei.to_owned()),
        _ => packet.id.map(str::to_owned),
    }
}

/// Turns one packet into records: a login, a heartbeat (ping), one record
/// per data record (positions where there are coordinates, status records
/// where there are none), a status record with the driver's text (`result`).
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx)
}

/// Wialon IPS in the protocol registry (see [`crate::Spec`]).
pub struct Wialon;

impl crate::Spec for Wialon {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // Every packet names its device in a `[2.0;]<imei>#` prefix over UDP;
    // off by default: TCP is the common transport for Wialon IPS devices.
    const UDP: crate::Udp = crate::Udp::Optional;
    // Data packets are answered once stored (`#ASD#1`, `#AD#1`, `#AB#<n>`,
    // `#AM#1`).
    const ACK: crate::Ack = crate::Ack::Reply;
    // A packet carries nothing that could change on a resend.
    const RESEND: crate::Resend = crate::Resend::Same;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);
