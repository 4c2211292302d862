//! The shape every GT06 frame shares, so that the framer, the session and the
//! parser agree on where the length, the protocol number and the serial are.
//!
//! ```text
//! 78 78 | len (1) | protocol (1) | content | serial (2) | CRC-ITU (2) | 0d 0a
//! 79 79 | len (2) | protocol (1) | content | serial (2) | CRC-ITU (2) | 0d 0a
//! ```
//!
//! `len` counts the protocol number, content, serial and CRC, so a well-formed
//! frame is `len + 5` (standard) or `len + 6` (extended) bytes long. Some
//! devices bend this (see the framer); this module only describes the shape.

/// Start bytes of a frame with a one-byte length field.
pub(crate) const START_STANDARD: [u8; 2] = [0x78, 0x78];
/// Start bytes of a frame with a two-byte length field.
pub(crate) const START_EXTENDED: [u8; 2] = [0x79, 0x79];
/// Stop bytes of every frame.
pub(crate) const STOP: [u8; 2] = [0x0d, 0x0a];
/// Serial number, CRC and stop bytes at the end of a frame.
pub(crate) const TRAILER_LEN: usize = 6;

/// Which of the two frame headers a frame uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// `78 78`, one-byte length.
    Standard,
    /// `79 79`, two-byte length (long messages and newer firmware).
    Extended,
}

impl Start {
    /// The header a frame starts with, if it starts with one.
    pub(crate) fn of(bytes: &[u8]) -> Option<Start> {
        match bytes.get(..2)? {
            b if b == START_STANDARD => Some(Start::Standard),
            b if b == START_EXTENDED => Some(Start::Extended),
            _ => None,
        }
    }

    /// Start bytes plus length field.
    pub(crate) fn header_len(self) -> usize {
        match self {
            Start::Standard => 3,
            Start::Extended => 4,
        }
    }

    /// The length field's value, if the header is complete.
    pub(crate) fn length_field(self, bytes: &[u8]) -> Option<usize> {
        match self {
            Start::Standard => bytes.get(2).map(|&b| usize::from(b)),
            Start::Extended => bytes
                .get(2..4)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))),
        }
    }

    /// Whole frame size the length field announces (start to stop bytes).
    pub(crate) fn announced_len(self, length_field: usize) -> usize {
        self.header_len() + length_field + STOP.len()
    }
}

/// A complete frame as the session and the parser see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub bytes: &'a [u8],
    pub start: Start,
    /// The length field's value (not necessarily the real length, see the framer).
    pub length: usize,
    /// The protocol number (message type).
    pub protocol: u8,
}

impl<'a> Frame<'a> {
    /// Checks the start bytes, that a protocol number is present and the stop
    /// bytes. The CRC is the framer's business: the parser also reads frames
    /// from storage and from captures of devices that send none.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, String> {
        let start = Start::of(bytes).ok_or_else(|| match bytes.get(..2) {
            Some(b) => format!("frame starts with {}, not 7878 or 7979", hex::encode(b)),
            None => format!("frame of {} byte(s) has no start bytes", bytes.len()),
        })?;
        let header = start.header_len();
        if bytes.len() < header + 1 + STOP.len() {
            return Err(format!(
                "frame of {} bytes is too short for a protocol number",
                bytes.len()
            ));
        }
        if !bytes.ends_with(&STOP) {
            return Err("frame does not end with 0d 0a".into());
        }
        let length = start.length_field(bytes).unwrap_or(0);
        Ok(Frame {
            bytes,
            start,
            length,
            protocol: bytes[header],
        })
    }

    pub(crate) fn extended(&self) -> bool {
        self.start == Start::Extended
    }

    /// Offset of the first content byte (after the protocol number).
    pub(crate) fn content_start(&self) -> usize {
        self.start.header_len() + 1
    }

    /// The content between the protocol number and the serial, as far as the
    /// frame's real size tells (empty when the frame has no room for one).
    pub(crate) fn content(&self) -> &'a [u8] {
        let end = self.bytes.len().saturating_sub(TRAILER_LEN);
        self.bytes.get(self.content_start()..end).unwrap_or(&[])
    }

    /// The serial number, read where Traccar reads it: six bytes before the
    /// end. Frames without one (some clones) give whatever is there, which is
    /// what those devices are answered with in Traccar too; 0 when the frame
    /// is too short to hold one.
    pub(crate) fn serial(&self) -> u16 {
        let n = self.bytes.len();
        if n < self.content_start() + TRAILER_LEN {
            return 0;
        }
        u16::from_be_bytes([self.bytes[n - 6], self.bytes[n - 5]])
    }
}

/// Whether `frame` (start to stop bytes) carries a valid CRC-ITU over its
/// length field to serial number. `None` when it is too short to carry one.
pub(crate) fn crc_check(frame: &[u8]) -> Option<Result<(), (u16, u16)>> {
    let start = Start::of(frame)?;
    // start, length, protocol, serial, CRC, stop.
    if frame.len() < start.header_len() + 1 + TRAILER_LEN {
        return None;
    }
    let n = frame.len();
    let received = u16::from_be_bytes([frame[n - 4], frame[n - 3]]);
    let computed = crate::checksum::crc_itu(&frame[2..n - 4]);
    Some(if received == computed {
        Ok(())
    } else {
        Err((received, computed))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_frame_shape() {
        let bytes = hex::decode("78780d010352887071911998000479d00d0a").unwrap();
        let f = Frame::parse(&bytes).unwrap();
        assert_eq!(f.start, Start::Standard);
        assert_eq!(f.length, 0x0d);
        assert_eq!(f.protocol, 0x01);
        assert_eq!(f.serial(), 0x0004);
        assert_eq!(f.content(), &hex::decode("0352887071911998").unwrap()[..]);
        assert_eq!(crc_check(&bytes), Some(Ok(())));
    }

    #[test]
    fn extended_frame_shape() {
        let bytes = hex::decode("79790008940b02e3048614200d0a").unwrap();
        let f = Frame::parse(&bytes).unwrap();
        assert!(f.extended());
        assert_eq!(f.length, 8);
        assert_eq!(f.protocol, 0x94);
        assert_eq!(f.content(), &[0x0b, 0x02, 0xe3]);
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(Frame::parse(&[]).is_err());
        assert!(Frame::parse(b"\x12\x34\x05\x01\r\n").is_err());
        assert!(Frame::parse(b"\x78\x78\x05\r\n").is_err());
        assert!(Frame::parse(b"\x78\x78\x05\x01\x00\x01\x00\x00\x00\x00").is_err());
    }
}
