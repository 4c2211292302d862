//! Cuts a GPS103 byte stream (or one UDP datagram) into messages.
//!
//! A message ends with the first `;`, `*` (the alternative layout) or line
//! end, which is kept with it, as with Traccar's delimiters. Line ends and
//! spaces between messages are dropped. A message must start with `#`
//! (login), `i` (`imei:`) or a digit (heartbeat), and hold printable ASCII
//! only; anything else is `Malformed` (the gateway closes the connection).
//! A message whose end has not come within `max_frame` bytes is `TooLarge`.
//!
//! Over UDP a datagram holds one or more messages; a last message without a
//! delimiter is taken whole by [`Decoder::decode_eof`] at the end of the
//! datagram (or of the stream).

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::delimited::{Before, Delimited, Rules};
use crate::FrameError;

const RULES: Rules = Rules {
    expected: "a GPS103 message ('##,imei:', 'imei:' or an IMEI)",
    before: Before::Filler(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\0')),
    starts: |b| matches!(b, b'#' | b'i') || b.is_ascii_digit(),
    end: |buf| {
        buf.iter()
            .position(|&b| matches!(b, b';' | b'*' | b'\n'))
            .map(|at| at + 1)
    },
    holds: |m| {
        m.iter()
            .all(|&b| (0x20..0x7f).contains(&b) || matches!(b, b'\r' | b'\n' | b'\t'))
    },
};

#[derive(Debug)]
pub struct Framer(Delimited);

impl Framer {
    /// A framer refusing messages above `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Framer(Delimited::new(RULES, max_frame))
    }
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.0.decode(src)
    }

    /// At the end of a datagram or stream, what is left is the last message.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.0.decode_eof(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gps103::MAX_FRAME;

    fn cut_all(input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        crate::test_support::cut_all(Framer::new(MAX_FRAME), input)
    }

    #[test]
    fn delimiters() {
        let input = b"##,imei:359586015829802,A;359586015829802;\r\nimei:359586015829802,tracker,0809231929,,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;imei:1,a,b,*imei:2,x\r\n";
        let frames = cut_all(input).unwrap();
        assert_eq!(
            frames,
            vec![
                b"##,imei:359586015829802,A;".to_vec(),
                b"359586015829802;".to_vec(),
                b"imei:359586015829802,tracker,0809231929,,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;".to_vec(),
                b"imei:1,a,b,*".to_vec(),
                b"imei:2,x\r\n".to_vec(),
            ]
        );
    }

    #[test]
    fn partial_waits_and_eof_takes_the_rest() {
        let mut f = Framer::new(MAX_FRAME);
        let mut b = BytesMut::from(&b"imei:1,tracker"[..]);
        assert_eq!(f.decode(&mut b).unwrap(), None);
        assert_eq!(b.len(), 14);
        assert_eq!(
            &f.decode_eof(&mut b).unwrap().unwrap()[..],
            b"imei:1,tracker"
        );
        assert!(b.is_empty());
        assert_eq!(f.decode_eof(&mut b).unwrap(), None);
    }

    #[test]
    fn garbage_and_size() {
        assert!(matches!(
            cut_all(b"GET / HTTP/1.1\r\n"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            cut_all(b"imei:1,\xff;"),
            Err(FrameError::Malformed(_))
        ));
        let mut long = b"imei:1,".to_vec();
        long.resize(100, b'1');
        assert!(matches!(
            Framer::new(64).decode(&mut BytesMut::from(&long[..])),
            Err(FrameError::TooLarge { max: 64, .. })
        ));
    }
}
