//! Ruptela: the binary protocol of Ruptela's FM-Eco, FM-Pro, FM-Tco and
//! Trace trackers.
//!
//! ```text
//! len:u16  imei:u64  command:u8  payload…  crc:u16
//! 0056     0003116e7438a7a5  01  00 01 …  c9ee
//! ```
//!
//! `len` counts IMEI, command and payload; the CRC is CRC-16/KERMIT over the
//! same bytes, sent big-endian. Every packet carries the IMEI, so there is no
//! separate login. Commands are `1` records, `68` extended records, `9` DTCs,
//! `15` identification, `16` heartbeat, `37` files, and command responses
//! (`2`, `3`, `4`, `7`, `17`); the server answers with `100 + command`.
//!
//! * [`Framer`] — cuts packets by their length and checks the CRC;
//! * [`Session`] — identity from each packet and the answers the device expects;
//! * [`parse`] — one packet to records, with Traccar's attribute names;
//! * [`encode`] — device packets and server answers.

pub mod encode;
mod frame;
mod framer;
mod parser;
mod session;

pub use framer::Framer;
pub use session::Session;

use crate::{ParseContext, ParseError, Record};

pub const NAME: &str = "ruptela";
/// Traccar's Ruptela port, so devices configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5046;
/// Default largest packet. Devices fill records up to about 1 KiB (Traccar's
/// frame decoder stops at 1024 bytes, and real packets reach it); twice that
/// leaves room for extended records.
pub const MAX_FRAME: usize = 2048;

/// The IMEI a packet carries (every Ruptela packet carries one).
pub fn identify(frame: &[u8]) -> Option<String> {
    frame::Packet::parse(frame).ok()?.device_id()
}

/// Turns one packet into records: positions (records with a GPS fix), status
/// records (records without a fix, DTCs, identification, files), heartbeats
/// and command replies — never a position without a fix of its own.
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx)
}

/// Ruptela in the protocol registry (see [`crate::Spec`]).
pub struct Ruptela;

impl crate::Spec for Ruptela {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // TCP only.
    const UDP: crate::Udp = crate::Udp::No;
    // Each records packet is answered.
    const ACK: crate::Ack = crate::Ack::Reply;
    // Devices send their pending records again in a new packet, with the
    // newer ones.
    const RESEND: crate::Resend = crate::Resend::Repack;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);
