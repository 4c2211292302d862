//! Teltonika trackers (FMB, FMC, FMM, FMT, FMU… and the older GH3000).
//!
//! Over TCP a device first sends its IMEI (`len:u16` + ASCII digits) and
//! waits for `01`. It then sends AVL packets, `00000000` + `data_len:u32` +
//! data + `crc:u32` (CRC-16/IBM of the data in the low two bytes), where the
//! data is `codec:u8 count:u8 records… count:u8`; the server answers each with
//! the number of records it accepted as a `u32`. A single `FF` byte keeps an
//! idle connection open. Over UDP every packet carries the IMEI in a small
//! header and the same data field, without CRC.
//!
//! * [`Framer`] cuts the TCP stream into logins and AVL packets, dropping pings,
//! * [`Session`] decides what to store and answer,
//! * [`parse`] turns a stored frame (TCP or UDP) into records,
//! * [`encode`] speaks like a device, for the simulator and tests,
//! * [`view`] reads Codec 8/8E/16 records in place, without allocating.
//!
//! Supported codecs: 8, 8 Extended, 16 and 7 (GH3000) carry positions; 12
//! (command responses) becomes command replies; 13 (timestamped serial data)
//! becomes status records. IO elements get Traccar's attribute names (see
//! the `io` module).

mod avl;
pub mod codec;
pub mod encode;
mod envelope;
mod framer;
mod gh3000;
mod io;
mod nx;
mod parser;
mod serial;
mod session;
pub mod view;

pub use framer::{DatagramFramer, Framer};
pub use session::Session;

use crate::{DeviceMessage, ParseContext, ParseError, Record};

use envelope::Envelope;

pub const NAME: &str = "teltonika";

/// Traccar's Teltonika port, so devices configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5027;

/// Largest frame accepted by default, in bytes (preamble to CRC).
///
/// Teltonika documents a maximum AVL packet of 1280 bytes (512 for the
/// FMx64x family); the largest real frames in Traccar's captures are a
/// 961-byte Codec 8 packet and a 2079-byte Codec 12 camera chunk. Too small a
/// limit is the worse failure: the device never gets an ack, resends the same
/// packet forever and its data is stuck. Too large a limit only lets a peer
/// make the gateway hold that much for one connection. 8 KiB is six times
/// the documented maximum and four times the largest frame seen, and still
/// bounds what garbage in a length field can make the gateway buffer.
pub const MAX_FRAME: usize = 8 * 1024;

/// The IMEI a frame announces: an IMEI login, or a UDP packet (which carries
/// the IMEI in every packet).
pub fn identify(frame: &[u8]) -> Option<String> {
    envelope::classify(frame).ok()?.imei().map(str::to_owned)
}

/// Turns one frame, as the framer cut it or as a UDP datagram arrived, into
/// records.
///
/// A login becomes [`Record::Login`], a ping [`Record::Heartbeat`], an AVL
/// packet one record per AVL record. Every length is checked against the
/// bytes present and every byte must be accounted for, so a packet read with
/// the wrong layout fails instead of producing nonsense. The CRC is not
/// checked (see below): that is the framer's and session's job.
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    match envelope::classify(frame)? {
        Envelope::Ping => Ok(vec![Record::Heartbeat(DeviceMessage::new(ctx, NAME))]),
        Envelope::Login { imei } => {
            let mut m = DeviceMessage::new(ctx, NAME);
            m.device_id = imei.to_owned();
            Ok(vec![Record::Login(m)])
        }
        // The length field and CRC are not checked again here: the framer and
        // the session did, on the connection, where refusing a frame makes
        // the device send it again. A stored frame was acknowledged already,
        // so refusing it now could only lose it. (Traccar's captures include
        // hand-edited frames whose CRC no longer matches.) The content is
        // checked strictly instead: counts agree and every byte is read.
        Envelope::Tcp { data, .. } => parser::parse_data(data, ctx),
        Envelope::Udp { imei, data, .. } => {
            parser::parse_data(data, &ParseContext::new(imei, ctx.received_at))
        }
    }
}

/// Teltonika in the protocol registry (see [`crate::Spec`]).
pub struct Teltonika;

impl crate::Spec for Teltonika {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // UDP: its own packet layout, with the IMEI in every packet
    // (`Protocol::datagram_framer`).
    const UDP: crate::Udp = crate::Udp::Optional;
    // The record count answers each AVL packet.
    const ACK: crate::Ack = crate::Ack::Reply;
    // Devices send their pending records again in a new packet, with the
    // newer ones.
    const RESEND: crate::Resend = crate::Resend::Repack;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);
