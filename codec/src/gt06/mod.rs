//! GT06: the binary protocol of Concox / Jimi IoT trackers and their many
//! clones (GT06N, JM-VL01/03, JC100/400, AT4, GK310, LW4G, …).
//!
//! * [`Framer`] — cuts the TCP stream into frames (`78 78` / `79 79` …
//!   `0d 0a`), checking size, stop bytes and CRC-ITU (see `framer.rs` for
//!   the device quirks tolerated);
//! * [`Session`] — login with the IMEI, then store and acknowledge;
//! * [`parse`] — one frame to records, with Traccar's attribute names;
//! * [`encode`] — device messages and server answers.
//!
//! Files: `frame` (shared frame shape), `msg` (message catalogue, variants),
//! `reply` (what is answered), `parser/` (one file per message family, reading
//! through the crate's one bounds-checked `read::Reader`).

pub mod encode;
mod frame;
mod framer;
mod msg;
mod parser;
mod reply;
mod session;

pub use framer::Framer;
pub use session::Session;

use crate::{ParseContext, ParseError, Record};

pub const NAME: &str = "gt06";
/// Traccar's GT06 port, so devices configured for Traccar work unchanged.
pub const DEFAULT_PORT: u16 = 5023;
/// Default largest frame, start to stop bytes. Standard frames cannot exceed
/// 260 bytes; extended ones could announce 65 541. The largest real GT06
/// messages are photo and multimedia chunks (1 KiB of data per chunk when
/// the server asks, as Traccar does) and OBD / camera-alarm texts of a few
/// hundred bytes, so 4 KiB leaves room for every known message while a bogus
/// or hostile length field costs at most 4 KiB of buffer per connection.
pub const MAX_FRAME: usize = 4 * 1024;

/// The device identity a login frame (0x01) announces: its 8-byte BCD IMEI
/// without the first digit (Traccar's rule, so identities match Traccar's).
/// `None` for other frames and for logins whose IMEI is not decimal.
pub fn identify(frame: &[u8]) -> Option<String> {
    let f = frame::Frame::parse(frame).ok()?;
    if f.protocol != msg::LOGIN {
        return None;
    }
    let start = f.content_start();
    let bcd = f.bytes.get(start..start + 8)?;
    if !bcd.iter().all(|b| b >> 4 <= 9 && b & 0x0f <= 9) {
        return None;
    }
    Some(hex::encode(bcd)[1..].to_owned())
}

/// The time zone a login's extension bits announce, in seconds east of UTC
/// (newer firmwares send local times and say so here; Traccar then reads the
/// device's later times in that zone). `None` for frames that are not a
/// login with the extension. [`parse`] reads times as UTC: a caller that
/// remembers this offset per device can correct them.
pub fn login_time_offset(frame: &[u8]) -> Option<i32> {
    let f = frame::Frame::parse(frame).ok()?;
    // IMEI (8), model type (2), extension (2), serial, CRC: length above 15.
    if f.protocol != msg::LOGIN || f.length <= 15 {
        return None;
    }
    let at = f.content_start() + 8 + 2;
    let bits = f
        .bytes
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))?;
    let hhmm = i32::from(bits >> 4);
    let offset = (hhmm / 100 * 60 + hhmm % 100) * 60;
    Some(if bits & 0x08 != 0 { -offset } else { offset })
}

/// Turns one complete frame into records: a login, positions (messages with
/// their own GPS fix), heartbeats, command replies, or status records.
/// Messages without data (time requests, photo transfers, …) give none;
/// unknown message types are [`ParseError::Unsupported`]. The device model
/// in `ctx.model`, when known, selects model-specific layouts (see
/// [`parse_with_model`]).
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx, ctx.model.as_deref())
}

/// [`parse`] for a device whose model is known. A few models give some
/// messages another meaning, as Traccar's device model setting does:
/// `LW…` (LW4G), `SEEWORLD`, `R11`, `QH302R`, the NT family (`NT11`, `NT20`,
/// `NT26`, `NT40`, `NT46`, `VL100`, `XT40`) and the VL family (`VL103`,
/// `LL303`, `VL512`, `G18`). Layouts that can be recognised from the bytes
/// are recognised without the model too.
pub fn parse_with_model(
    frame: &[u8],
    ctx: &ParseContext,
    model: Option<&str>,
) -> Result<Vec<Record>, ParseError> {
    parser::parse(frame, ctx, model)
}

/// GT06 in the protocol registry (see [`crate::Spec`]).
pub struct Gt06;

impl crate::Spec for Gt06 {
    const NAME: &'static str = NAME;
    const DEFAULT_PORT: u16 = DEFAULT_PORT;
    const MAX_FRAME: usize = MAX_FRAME;
    // TCP only: only the login carries the IMEI, so a datagram could not be
    // judged on its own.
    const UDP: crate::Udp = crate::Udp::No;
    // Each stored message is answered with its serial number.
    const ACK: crate::Ack = crate::Ack::Reply;
    // Every message is numbered: a resend has a new serial number.
    const RESEND: crate::Resend = crate::Resend::Reencode;

    crate::spec::conventional_parts!();
}

crate::spec::device_session!(Session);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_login() {
        let login = hex::decode("78780d010352887071911998000479d00d0a").unwrap();
        assert_eq!(identify(&login).as_deref(), Some("352887071911998"));
        let location =
            hex::decode("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a")
                .unwrap();
        assert_eq!(identify(&location), None);
        assert_eq!(identify(b"nonsense"), None);
        let bad = hex::decode("78780d01035288707191199f000479d00d0a").unwrap();
        assert_eq!(identify(&bad), None);
    }

    #[test]
    fn login_time_zone() {
        let east8 = hex::decode("787811010123456789012345100b3201000171930d0a").unwrap();
        assert_eq!(login_time_offset(&east8), Some(8 * 3600));
        let utc = hex::decode("787811010863586038760942a0010000010aa4000d0a").unwrap();
        assert_eq!(login_time_offset(&utc), Some(0));
        // 5:30 west: 530 in the high 12 bits, bit 3 set.
        let west = encode::frame(0x01, &hex::decode("0123456789012345100b2128").unwrap(), 1);
        assert_eq!(login_time_offset(&west), Some(-(5 * 3600 + 30 * 60)));
        let short = hex::decode("78780d010352887071911998000479d00d0a").unwrap();
        assert_eq!(login_time_offset(&short), None);
    }
}
