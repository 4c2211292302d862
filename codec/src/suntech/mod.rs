//! Suntech: the `;`-separated text protocol of Suntech's ST200/ST300/ST340,
//! ST390, ST4xx, ST500, ST600, ST910 and SA200 trackers, in both the legacy
//! form (`ST300STT;<id>;…`) and the universal form (`STT;<id>;<mask>;…`).
//!
//! ```text
//! SA200STT;317652;042;20120718;15:37:12;16d41;-15.618755;-056.083241;000.024;000.00;8;1;41548;12.17;100000;2;1979\r
//! STT;0560001616;BFFFFF;56;1.0.15;1;20200219;20:52:25;00008D6C;334;20;0925;24;+20.741764;…\r
//! ```
//!
//! A text message ends with `\r` (a `\r\n` inside a message is part of
//! its data); a binary universal message starts with a type byte and a
//! 16-bit length.
//!
//! * [`Framer`] — cuts messages at `\r`, binary ones by their length;
//! * [`Session`] — identity from each message; Suntech devices expect no
//!   answers;
//! * [`parse`] — one message to records, with Traccar's attribute names;
//! * [`encode`] — device messages (for the simulator).

pub mod encode;
mod framer;
mod message;
mod parser;
mod session;
mod universal;

pub use framer::Framer;
pub use session::Session;

use crate::{ParseContext, ParseError, Record};

pub const NAME: &str = "suntech";
/// Traccar's Suntech port, so devices configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5011;
/// Default largest message. Reports are under 400 bytes; command answers
/// with a device's whole configuration (`CMD;Res;…`) reach about 1 KiB.
pub const MAX_FRAME: usize = 2048;

/// The device id a message carries (every report carries one).
pub fn identify(frame: &[u8]) -> Option<String> {
    message::device_id(frame)
}

/// Turns one message into records: positions (status, event, alert,
/// emergency and BLE reports with a fix), status records (reports without
/// a fix, travel reports), heartbeats (`ALV`) and command answers — never a
/// position without a fix of its own.
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx)
}

/// Suntech in the protocol registry (see [`crate::Spec`]).
pub struct Suntech;

impl crate::Spec for Suntech {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // Every message carries the device id.
    const UDP: crate::Udp = crate::Udp::Optional;
    // Suntech devices expect no answer and get none (Traccar sends none).
    const ACK: crate::Ack = crate::Ack::None;
    // Never read: a device that cannot learn of a lost ack does not
    // resend.
    const RESEND: crate::Resend = crate::Resend::Same;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);
