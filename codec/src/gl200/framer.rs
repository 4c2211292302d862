//! Cuts a Queclink byte stream into messages.
//!
//! Text messages (`+RESP:`, `+BUFF:`, `+ACK:`, …) end with `$` (kept with
//! the message, as the device sent it; a NUL ends one too, as in Traccar,
//! but only when no `$` is in sight). Binary messages (`+RSP`, `+BSP`,
//! `+EVT`, `+BVT`, `+INF`, `+BNF`, `+HBD`, `+CRD`, `+BRD`, `+LGN`, `+ACK`
//! without `:`, and the newer `+` 00 form) carry their total length at a fixed place
//! in the header and are cut by it. Bytes before a `+` are dropped and never
//! buffered (line ends between messages). A `+` followed by anything else is
//! `malformed`; a message without its end within `max_frame` bytes (its `$`
//! included), or announcing more, is `too large` (before the body is
//! buffered).

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::delimited::{anything, take_counted, Before, Delimited, Rules};
use crate::FrameError;

use super::message::{kind, Kind};

/// The shortest binary message (header, length, a few bytes of body).
const MIN_BINARY: usize = 11;

/// The text messages; binary ones never reach these rules.
const RULES: Rules = Rules {
    expected: "an @Track message ('+')",
    before: Before::Resync,
    starts: |b| b == b'+',
    end: |buf| {
        buf.iter()
            .position(|&b| b == b'$')
            .or_else(|| buf.iter().position(|&b| b == 0))
            .map(|at| at + 1)
    },
    holds: anything,
};

#[derive(Debug)]
pub struct Framer {
    text: Delimited,
}

impl Framer {
    /// A framer refusing messages above `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Framer {
            text: Delimited::new(RULES, max_frame),
        }
    }
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.text.skip(src);
        match kind(src) {
            // `+` and capital letters only could still become a header, but
            // never a message within the limit.
            Kind::Unknown if src.len() >= self.text.max_frame() => Err(FrameError::TooLarge {
                size: src.len(),
                max: self.text.max_frame(),
            }),
            Kind::Unknown => Ok(None),
            Kind::Invalid => Err(FrameError::Malformed(format!(
                "unknown @Track message header {:?}",
                String::from_utf8_lossy(&src[..src.len().min(6)])
            ))),
            Kind::Binary { offset, width } => {
                if src.len() < offset + width {
                    return Ok(None);
                }
                let total = src[offset..offset + width]
                    .iter()
                    .fold(0usize, |a, &b| (a << 8) | usize::from(b));
                if total < MIN_BINARY.max(offset + width) {
                    return Err(FrameError::Malformed(format!(
                        "binary message announces {total} bytes"
                    )));
                }
                take_counted(src, total, self.text.max_frame())
            }
            Kind::Text => self.text.cut(src),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gl200::MAX_FRAME;

    fn cut_all(input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        crate::test_support::cut_all(Framer::new(MAX_FRAME), input)
    }

    #[test]
    fn text_and_binary() {
        let evt =
            hex::decode("2b4556540c00fc1fbf005c4501010108676231303000000000ffff07e1070b03112d")
                .unwrap();
        let mut evt_full = evt.clone();
        evt_full.resize(0x5c, 0);
        let mut input = b"\r\n+ACK:GTHBD,0F0106,862193020451183,,20160727001255,3B7D$".to_vec();
        input.extend_from_slice(&evt_full);
        input.extend_from_slice(b"+RESP:GTPFA,F50201,866425030235982,GL300M,20190208124849,0BD4$");
        let frames = cut_all(&input).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames[0],
            b"+ACK:GTHBD,0F0106,862193020451183,,20160727001255,3B7D$"
        );
        assert_eq!(frames[1], evt_full);
        assert_eq!(
            frames[2],
            b"+RESP:GTPFA,F50201,866425030235982,GL300M,20190208124849,0BD4$"
        );
    }

    #[test]
    fn a_nul_ends_a_message_when_no_dollar_is_in_sight() {
        assert_eq!(
            cut_all(b"+RESP:GTPFA,F50201,866425030235982\0\r\n").unwrap(),
            vec![b"+RESP:GTPFA,F50201,866425030235982\0".to_vec()]
        );
        // Traccar looks for a `$` first, so one in the buffer wins over an
        // earlier NUL.
        assert_eq!(
            cut_all(b"+RESP:GTPFA,1\0+ACK:GTHBD,1,2$").unwrap(),
            vec![b"+RESP:GTPFA,1\0+ACK:GTHBD,1,2$".to_vec()]
        );
    }

    #[test]
    fn the_limit_counts_the_terminator() {
        let msg = b"+ACK:GTHBD,1,2$";
        let mut b = BytesMut::from(&msg[..]);
        assert_eq!(
            &Framer::new(msg.len()).decode(&mut b).unwrap().unwrap()[..],
            msg
        );
        let mut b = BytesMut::from(&msg[..]);
        assert!(matches!(
            Framer::new(msg.len() - 1).decode(&mut b),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn errors() {
        assert!(matches!(
            cut_all(b"+XYZ\x00\xff\x00&"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            Framer::new(64).decode(&mut BytesMut::from(
                &b"+RSP\x03\x00\xfc\x1f\xff\xff\xff"[..]
            )),
            Err(FrameError::TooLarge { size: 65535, .. })
        ));
        let mut long = b"+RESP:GTFRI,".to_vec();
        long.resize(100, b'1');
        assert!(matches!(
            Framer::new(64).decode(&mut BytesMut::from(&long[..])),
            Err(FrameError::TooLarge { .. })
        ));
        let mut letters = b"+".to_vec();
        letters.resize(100, b'A');
        assert!(matches!(
            Framer::new(64).decode(&mut BytesMut::from(&letters[..])),
            Err(FrameError::TooLarge { size: 100, .. })
        ));
        let mut b = BytesMut::from(&b"noise"[..]);
        assert_eq!(Framer::new(MAX_FRAME).decode(&mut b).unwrap(), None);
        assert!(b.is_empty());
    }
}
