//! Cuts an H02 byte stream (or one UDP datagram) into messages.
//!
//! * `*…#`: a text message ends at the first `#`. Line ends and spaces
//!   between messages (`\r\n` after the `#` on most firmwares) are dropped.
//! * `$…`: a binary message has a fixed size, 32 bytes or 45 on some
//!   firmwares, which no field announces. The framer learns it from the first
//!   binary message of the connection, as Traccar does: the whole buffer when
//!   it holds exactly 32 or 45 bytes (always so for a UDP datagram, and for a
//!   device that sends one message per TCP segment), else 32 when a text
//!   message, a line end or a binary message with the same device id starts
//!   after 32 bytes,
//!   else 45. Over TCP a message split at an unlucky point could be misread —
//!   the next message then does not start where expected, the connection is
//!   closed as `Malformed` and the device sends again.
//! * `X…`: 32 bytes (a message Traccar ignores too).
//!
//! Anything else is `Malformed` (the gateway closes the connection), and a
//! text message whose `#` has not come within `max_frame` bytes is `TooLarge`.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::delimited::{anything, take_counted, Before, Delimited, Rules};
use crate::FrameError;

use super::message::{BINARY_LONG, BINARY_SHORT};

/// The text messages; `$` and `X` never reach these rules.
const RULES: Rules = Rules {
    expected: "an H02 message ('*', '$' or 'X')",
    before: Before::Filler(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\0')),
    starts: |b| b == b'*',
    end: |buf| buf.iter().position(|&b| b == b'#').map(|at| at + 1),
    holds: anything,
};

#[derive(Debug)]
pub struct Framer {
    text: Delimited,
    /// Size of this connection's binary messages, once known.
    binary_len: Option<usize>,
}

impl Framer {
    /// A framer refusing messages above `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Framer {
            text: Delimited::new(RULES, max_frame),
            binary_len: None,
        }
    }
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.text.skip(src);
        let max_frame = self.text.max_frame();
        match src.first() {
            Some(b'$') => match self.binary_len.or_else(|| binary_len(src)) {
                Some(len) => {
                    self.binary_len = Some(len);
                    take_counted(src, len, max_frame)
                }
                None if src.len() >= max_frame => Err(FrameError::TooLarge {
                    size: src.len(),
                    max: max_frame,
                }),
                None => {
                    src.reserve(BINARY_LONG + 1 - src.len().min(BINARY_LONG));
                    Ok(None)
                }
            },
            Some(b'X') => take_counted(src, BINARY_SHORT, max_frame),
            _ => self.text.cut(src),
        }
    }
}

/// The size of the binary message at the head of `buf`, once it can be told:
/// the whole buffer when it is exactly one message (a datagram, or a device
/// that sends one message per segment), else the size after which the next
/// message starts — a text message, or a binary one with the same device id.
fn binary_len(buf: &[u8]) -> Option<usize> {
    // Whether a message starts at `at`; `None` while that cannot be told yet.
    let starts_at = |at: usize| match buf.get(at)? {
        b'*' | b'\r' | b'\n' => Some(true),
        b'$' => Some(buf.get(at + 1..at + 6)? == buf.get(1..6)?),
        _ => Some(false),
    };
    if buf.len() == BINARY_SHORT || starts_at(BINARY_SHORT) == Some(true) {
        return Some(BINARY_SHORT);
    }
    if buf.len() == BINARY_LONG {
        return Some(BINARY_LONG);
    }
    match starts_at(BINARY_SHORT)? {
        true => Some(BINARY_SHORT),
        false if buf.len() > BINARY_LONG => Some(BINARY_LONG),
        false => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h02::MAX_FRAME;

    const TEXT: &[u8] =
        b"*HQ,355488020113911,V1,012945,A,5231.79283,N,01324.10718,E,0.05,0,170217,FFFFFFFF#";
    const BINARY: &str = "2441060116601245431311165035313006004318210e000000fffffbffff0024";
    const LONG: &str = "2442061191301024031101175540227006012321670c000095fffffbffff001f00000001f800ee010000000032";

    fn cut_all(input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        crate::test_support::cut_all(Framer::new(MAX_FRAME), input)
    }

    #[test]
    fn text_then_line_end() {
        let mut input = TEXT.to_vec();
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(TEXT);
        assert_eq!(cut_all(&input).unwrap(), vec![TEXT.to_vec(), TEXT.to_vec()]);
    }

    #[test]
    fn binary_sizes() {
        let short = hex::decode(BINARY).unwrap();
        let long = hex::decode(LONG).unwrap();
        assert_eq!(cut_all(&short).unwrap(), vec![short.clone()]);
        assert_eq!(cut_all(&long).unwrap(), vec![long.clone()]);
        let mut both = short.clone();
        both.extend_from_slice(TEXT);
        assert_eq!(cut_all(&both).unwrap(), vec![short.clone(), TEXT.to_vec()]);
        let twice = [long.clone(), long.clone()].concat();
        assert_eq!(cut_all(&twice).unwrap(), vec![long.clone(), long]);
        // Learned once per connection: the next message is cut by size at once.
        let mut f = Framer::new(MAX_FRAME);
        let mut b = BytesMut::from(&short[..]);
        f.decode(&mut b).unwrap().unwrap();
        b.extend_from_slice(&short[..20]);
        assert_eq!(f.decode(&mut b).unwrap(), None);
        b.extend_from_slice(&short[20..]);
        assert_eq!(f.decode(&mut b).unwrap().unwrap(), short);
    }

    #[test]
    fn partial_text_waits() {
        let mut f = Framer::new(MAX_FRAME);
        let mut b = BytesMut::from(&TEXT[..30]);
        assert_eq!(f.decode(&mut b).unwrap(), None);
        assert_eq!(b.len(), 30);
        b.extend_from_slice(&TEXT[30..]);
        assert_eq!(f.decode(&mut b).unwrap().unwrap(), TEXT);
    }

    #[test]
    fn garbage_and_size() {
        assert!(matches!(
            cut_all(b"GET / HTTP/1.1"),
            Err(FrameError::Malformed(_))
        ));
        let mut long = b"*HQ,1,V1,".to_vec();
        long.resize(100, b'1');
        let mut b = BytesMut::from(&long[..]);
        assert!(matches!(
            Framer::new(64).decode(&mut b),
            Err(FrameError::TooLarge { max: 64, .. })
        ));
        assert!(matches!(
            Framer::new(40).decode(&mut BytesMut::from(&hex::decode(BINARY).unwrap()[..])),
            Ok(Some(_))
        ));
        assert!(matches!(
            Framer::new(16).decode(&mut BytesMut::from(&hex::decode(BINARY).unwrap()[..])),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(cut_all(b"\r\n").unwrap(), Vec::<Vec<u8>>::new());
    }
}
