//! JT/T 808: the Chinese national standard for vehicle terminals (2011,
//! 2013 and 2019 editions), spoken by Huabao and most Chinese vehicle
//! trackers, dash cameras and many lock and asset devices — Traccar's
//! `jt808` (formerly `huabao`).
//!
//! ```text
//! 7e | id:u16 | attributes:u16 | [version] | terminal id:6 BCD (10) | serial:u16 | body | xor | 7e
//! ```
//!
//! with `7e`/`7d` escaped as `7d 02`/`7d 01` between the delimiters.
//!
//! * [`Framer`] — cuts and unescapes frames;
//! * [`Session`] — checksum, identity, and the platform's answers;
//! * [`parse`] — one frame to records, with Traccar's attribute names;
//! * [`encode`] — server answers and device messages.
//!
//! Files: `frame` (header), `msg` (message ids), `location` (the location
//! block and its extensions), `transparent` (0x0900 vendor data), `parser`,
//! `session`, `encode`; bytes are read with the crate's bounds-checked
//! cursor (`crate::read`).

pub mod encode;
mod frame;
mod framer;
mod location;
mod msg;
mod parser;
mod session;
mod transparent;

pub use framer::Framer;
pub use session::Session;

use crate::{ParseContext, ParseError, Record};

pub const NAME: &str = "jt808";
/// Traccar's JT808 port (its `huabao`/`jt808` protocol), so devices
/// configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5015;
/// Default largest frame on the wire. A body is at most 1023 bytes (a
/// 10-bit length; longer data is sent in packages), the header at most 21,
/// and escaping can double every byte: 2 KiB holds any standard message
/// (batch uploads of many locations included) while a frame without its end
/// delimiter costs at most 2 KiB of buffer.
pub const MAX_FRAME: usize = 2048;

/// The device id a frame carries: the terminal id's digits (a phone number
/// or IMEI-derived number), or for a binary id the IMEI it encodes.
pub fn identify(frame: &[u8]) -> Option<String> {
    frame::Frame::parse(frame).ok()?.device_id()
}

/// The authentication code a successful register response (0x8100, as
/// [`Framer`] cuts it) hands the terminal: what the terminal keeps and
/// authenticates with (0x0102) on every connection after.
pub fn register_code(frame: &[u8]) -> Option<String> {
    let f = frame::Frame::parse(frame).ok()?;
    if f.id != msg::REGISTER_RESPONSE || f.body.get(2) != Some(&0) {
        return None;
    }
    Some(String::from_utf8_lossy(&f.body[3..]).into_owned())
}

/// Turns one frame into records: positions (0x0200, batches 0x0704/0x0210,
/// 0x0201, 0x5501/0x5502, transparent data with a location), login
/// (register/authentication), heartbeats, command replies (0x0701, 0x6006,
/// 0x1300, lock texts) and status records. Times in the messages are China
/// Standard Time (UTC+8), as the standard specifies; the records are UTC.
/// The device model in `ctx.model` selects model-specific readings as
/// Traccar's model setting does (`G-360P`/`G-508P` padlocks, `AL300`/`GL100`,
/// Jimi `JC371`…, `MV710G`/`MV810G`, `C5`/`C5L`, `G1C Pro`, `VL300`, `DT800`).
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx)
}

/// JT808 in the protocol registry (see [`crate::Spec`]).
pub struct Jt808;

impl crate::Spec for Jt808 {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // TCP only: registration and authentication hold for a connection.
    const UDP: crate::Udp = crate::Udp::No;
    // The general response 0x8001 answers each stored message.
    const ACK: crate::Ack = crate::Ack::Reply;
    // Every message is numbered: a resend has a new serial number.
    const RESEND: crate::Resend = crate::Resend::Reencode;

    crate::spec::conventional_parts!();
}

impl crate::DeviceSession for Session {
    fn on_frame(&mut self, frame: &[u8]) -> Result<crate::Handled, crate::SessionError> {
        Session::on_frame(self, frame)
    }

    fn device_id(&self) -> Option<&str> {
        Session::device_id(self)
    }

    /// The authentication code: see [`Session::admitted`].
    fn admitted(
        &mut self,
        credential: Option<&str>,
    ) -> Result<Option<bytes::Bytes>, crate::SessionError> {
        Session::admitted(self, credential)
    }
}
