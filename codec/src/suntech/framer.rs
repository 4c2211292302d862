//! Cuts a Suntech byte stream into messages.
//!
//! A text message ends at the first `\r` that is not followed by `\n` (data
//! such as a serial port's text inside `UEX` reports may hold `\r\n`); the
//! `\r` stays with it, as the device sent it. A `\r` that is the last byte
//! received ends the message at once, as Traccar does, so that a device's
//! last report is not held back waiting for the next one; a `\r\n` split
//! exactly between two TCP reads is therefore cut at the `\r` (the `\n`
//! then goes as an empty line). Empty lines (`\r`, `\n`, NUL) between
//! messages are skipped. A binary message (second byte `00`) is a type
//! byte, a 16-bit length, that many bytes and a final byte. Nothing is held
//! beyond `max_frame` bytes, a text message's `\r` included (`TooLarge`).
//! Suntech has no checksum on text reports.
//!
//! At the end of a UDP datagram or stream, [`Decoder::decode_eof`] takes a
//! last text message without its `\r`.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::delimited::{anything, take_counted, Before, Delimited, Rules};
use crate::FrameError;

use super::message::is_binary;

/// The text messages; binary ones never reach these rules.
const RULES: Rules = Rules {
    expected: "a Suntech message",
    before: Before::Filler(|b| matches!(b, b'\r' | b'\n' | 0)),
    starts: |_| true,
    end: end_of_text,
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

/// The length of the text message at the start of `buf`, up to its `\r`.
fn end_of_text(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|&b| b == b'\r') {
        let at = from + i;
        if buf.get(at + 1) != Some(&b'\n') {
            return Some(at + 1);
        }
        from = at + 1;
    }
    None
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.text.skip(src);
        if src.len() < 2 {
            return Ok(None);
        }
        if is_binary(src) {
            if src.len() < 3 {
                return Ok(None);
            }
            let total = 3 + usize::from(u16::from_be_bytes([src[1], src[2]])) + 1;
            return take_counted(src, total, self.text.max_frame());
        }
        self.text.cut(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if is_binary(src) => {
                Err(std::io::Error::other("bytes remaining on stream").into())
            }
            None => self.text.rest(src),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suntech::MAX_FRAME;

    fn cut_all(input: &[u8]) -> Vec<Vec<u8>> {
        crate::test_support::cut_all(Framer::new(MAX_FRAME), input).unwrap()
    }

    #[test]
    fn text_with_crlf_inside() {
        let input = b"ST600UEX;008728327;20;Q_D=0B\r\n;B4;028498;4.1;1\r\rSA200ALV;317652\r";
        assert_eq!(
            cut_all(input),
            vec![
                b"ST600UEX;008728327;20;Q_D=0B\r\n;B4;028498;4.1;1\r".to_vec(),
                b"SA200ALV;317652\r".to_vec()
            ]
        );
    }

    #[test]
    fn binary_by_length() {
        let msg = hex::decode("02003210511340877028813f180c170016041051290c0635652d793653000038001a30e601665e560000000100750002712704000103").unwrap();
        let mut input = msg.clone();
        input.extend_from_slice(b"SA200ALV;317652\r");
        assert_eq!(cut_all(&input), vec![msg, b"SA200ALV;317652\r".to_vec()]);
    }

    #[test]
    fn a_line_end_split_between_reads() {
        let mut f = Framer::new(MAX_FRAME);
        let mut b = BytesMut::from(&b"ST600UEX;1;Q_D=0B\r"[..]);
        // The `\r` is the last byte received: the message ends here ...
        assert_eq!(
            &f.decode(&mut b).unwrap().unwrap()[..],
            b"ST600UEX;1;Q_D=0B\r"
        );
        // ... and the `\n` that follows is an empty line.
        b.extend_from_slice(b"\nSA200ALV;317652\r");
        assert_eq!(
            &f.decode(&mut b).unwrap().unwrap()[..],
            b"SA200ALV;317652\r"
        );
        let mut b = BytesMut::from(&b"ST600UEX;1;Q_D=0B\r\n;B4\r"[..]);
        assert_eq!(
            &f.decode(&mut b).unwrap().unwrap()[..],
            b"ST600UEX;1;Q_D=0B\r\n;B4\r"
        );
    }

    #[test]
    fn the_limit_counts_the_terminator() {
        let mut f = Framer::new(16);
        let mut b = BytesMut::from(&b"SA200ALV;317652\r"[..]);
        assert_eq!(f.decode(&mut b).unwrap().unwrap().len(), 16);
        // 16 bytes before the `\r`: one more than the limit allows.
        let mut b = BytesMut::from(&b"SA200ALV;3176520\r"[..]);
        assert!(matches!(
            f.decode(&mut b),
            Err(FrameError::TooLarge { size: 17, max: 16 })
        ));
        // A `\r` at the limit that a `\n` follows does not end the message.
        let mut b = BytesMut::from(&b"SA200ALV;317652\r\n;1\r"[..]);
        assert!(matches!(f.decode(&mut b), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn limits_and_eof() {
        let mut f = Framer::new(16);
        let mut b = BytesMut::from(&b"ST300STT;1234567890123"[..]);
        assert!(matches!(f.decode(&mut b), Err(FrameError::TooLarge { .. })));
        let mut b = BytesMut::from(&[2u8, 0, 0xff][..]);
        assert!(matches!(f.decode(&mut b), Err(FrameError::TooLarge { .. })));
        let mut f = Framer::new(MAX_FRAME);
        let mut b = BytesMut::from(&b"SA200ALV;317652"[..]);
        assert_eq!(f.decode(&mut b).unwrap(), None);
        assert_eq!(
            &f.decode_eof(&mut b).unwrap().unwrap()[..],
            b"SA200ALV;317652"
        );
    }
}
