//! Cuts a TK103 byte stream (or one UDP datagram) into messages.
//!
//! A message runs from `(` to the first `)` that is not inside `$…$` (the
//! text of a command answer, which may hold anything, `)` and line ends
//! included). Bytes before a `(` are dropped: some firmwares print debug text
//! between messages, and Traccar drops it too; they are never buffered. A
//! message whose end has not come within `max_frame` bytes is `TooLarge`.
//!
//! Over UDP a datagram holds one or more messages; a last message without its
//! `)` is taken whole by [`Decoder::decode_eof`] at the end of the datagram.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::delimited::{anything, Before, Delimited, Rules};
use crate::FrameError;

const RULES: Rules = Rules {
    expected: "a TK103 message ('(')",
    before: Before::Resync,
    starts: |b| b == b'(',
    end: end_of,
    holds: anything,
};

#[derive(Debug)]
pub struct Framer(Delimited);

impl Framer {
    /// A framer refusing messages above `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Framer(Delimited::new(RULES, max_frame))
    }
}

/// The length of the message starting at `buf[0]`, up to its `)`.
fn end_of(buf: &[u8]) -> Option<usize> {
    let mut quoted = false;
    for (i, &b) in buf.iter().enumerate().skip(1) {
        match b {
            b'$' => quoted = !quoted,
            b')' if !quoted => return Some(i + 1),
            _ => {}
        }
    }
    None
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.0.decode(src)
    }

    /// At the end of a datagram or stream, a started message without its `)`
    /// is the last message.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.0.decode_eof(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tk103::MAX_FRAME;

    fn cut_all(input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        crate::test_support::cut_all(Framer::new(MAX_FRAME), input)
    }

    #[test]
    fn garbage_is_dropped() {
        let input = b"garbage%@#*^$-+<>?$)))$$--(864755555555555,DW3B,131117,A,5562.02870N,01348.08194E,1.597,223707,291.65,-0.10,4)(864755555555555,ZC20,131117,223706,6,394,65535,255)";
        let frames = cut_all(input).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(frames[0].ends_with(b",4)"));
        let mut b = BytesMut::from(&b"garbage"[..]);
        assert_eq!(Framer::new(MAX_FRAME).decode(&mut b).unwrap(), None);
        assert!(b.is_empty());
    }

    #[test]
    fn dollar_text_may_hold_parentheses() {
        let input = b"(86475555555,ZC03,191117,234421,$)Notice:\r\n58055555555).\r\n11:17)$)(1)";
        let frames = cut_all(input).unwrap();
        assert_eq!(
            frames[0],
            b"(86475555555,ZC03,191117,234421,$)Notice:\r\n58055555555).\r\n11:17)$)".to_vec()
        );
        assert_eq!(frames[1], b"(1)".to_vec());
    }

    #[test]
    fn partial_and_eof() {
        let mut f = Framer::new(MAX_FRAME);
        let mut b = BytesMut::from(&b"(0880473654"[..]);
        assert_eq!(f.decode(&mut b).unwrap(), None);
        assert_eq!(b.len(), 11);
        assert_eq!(&f.decode_eof(&mut b).unwrap().unwrap()[..], b"(0880473654");
    }

    #[test]
    fn too_large() {
        let mut long = b"(".to_vec();
        long.resize(100, b'1');
        assert!(matches!(
            Framer::new(64).decode(&mut BytesMut::from(&long[..])),
            Err(FrameError::TooLarge { max: 64, .. })
        ));
    }
}
