//! The framer of the delimited text protocols (GPS103, TK103, H02, Suntech,
//! Queclink), parameterised by each protocol's [`Rules`].
//!
//! One rule holds for all of them: a frame is the message exactly as the
//! device sent it, its terminator included. RAW stores frames and their
//! `Nats-Msg-Id` hashes them, so "the bytes the device sent" must not depend
//! on which protocol's framer happened to cut them; parsers trim the
//! terminator where they read fields.
//!
//! What differs between protocols is small and lives in [`Rules`]: what may
//! come between messages, which bytes start one, where one ends, what it may
//! hold. The limit is the same everywhere: a frame, terminator included, is
//! at most `max_frame` bytes, and no more than that is ever buffered waiting
//! for an end.
//!
//! Protocols that also carry binary messages on the same connection (H02,
//! Suntech, Queclink) tell them apart themselves and cut them with
//! [`take_counted`]; their text messages go through [`Delimited::cut`].

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::FrameError;

/// What a protocol does with the bytes before a message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Before {
    /// Filler (line ends, spaces, NULs) between messages is dropped; any
    /// other byte must start a message, or the stream is `Malformed` — a
    /// protocol whose devices never send noise learns early that a peer
    /// speaks something else.
    Filler(fn(u8) -> bool),
    /// Everything up to a start byte is dropped, never buffered: devices of
    /// these protocols print debug text between messages.
    Resync,
}

/// One protocol's delimited messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// What a message should look like, for `Malformed` errors.
    pub expected: &'static str,
    pub before: Before,
    /// Whether a message may start with this byte.
    pub starts: fn(u8) -> bool,
    /// The length, terminator included, of the message at the start of
    /// `buf` once its end is in `buf`. `buf` is cut one byte past the
    /// largest frame, so a rule that must look past a terminator (Suntech's
    /// `\r` that is not `\r\n`) still can at the limit.
    pub end: fn(&[u8]) -> Option<usize>,
    /// Whether the bytes of a whole message are acceptable.
    pub holds: fn(&[u8]) -> bool,
}

/// Any byte may be in a message.
pub(crate) fn anything(_: &[u8]) -> bool {
    true
}

#[derive(Debug)]
pub(crate) struct Delimited {
    rules: Rules,
    max_frame: usize,
}

impl Delimited {
    pub(crate) fn new(rules: Rules, max_frame: usize) -> Self {
        Delimited { rules, max_frame }
    }

    pub(crate) fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Drops what comes before a message; afterwards `src` is empty or
    /// starts where a message (or, with [`Before::Filler`], garbage) does.
    pub(crate) fn skip(&self, src: &mut BytesMut) {
        let n = match self.rules.before {
            Before::Filler(filler) => src.iter().take_while(|&&b| filler(b)).count(),
            Before::Resync => src
                .iter()
                .position(|&b| (self.rules.starts)(b))
                .unwrap_or(src.len()),
        };
        src.advance(n);
    }

    /// Cuts the text message at the start of `src` (after [`Self::skip`]).
    pub(crate) fn cut(&self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        if !(self.rules.starts)(first) {
            return Err(self.malformed(src));
        }
        let view = &src[..src.len().min(self.max_frame + 1)];
        match (self.rules.end)(view) {
            Some(len) if len > self.max_frame => Err(self.too_large(len)),
            Some(len) => self.take(src, len).map(Some),
            // Even if the end came with the next byte, the frame would be
            // above the limit: refuse now rather than buffer more.
            None if src.len() >= self.max_frame => Err(self.too_large(src.len())),
            None => Ok(None),
        }
    }

    /// At the end of a UDP datagram or of a stream, what is left of a
    /// started message is taken whole: devices end a datagram's last message
    /// without its terminator, and a stream's last report should not be lost
    /// for want of one. Call after `decode` returned `None`.
    pub(crate) fn rest(&self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if src.is_empty() {
            return Ok(None);
        }
        let len = src.len();
        self.take(src, len).map(Some)
    }

    fn take(&self, src: &mut BytesMut, len: usize) -> Result<Bytes, FrameError> {
        if !(self.rules.holds)(&src[..len]) {
            return Err(self.malformed(src));
        }
        Ok(src.split_to(len).freeze())
    }

    fn malformed(&self, src: &[u8]) -> FrameError {
        FrameError::Malformed(format!(
            "expected {}, got {}",
            self.rules.expected,
            hex::encode(&src[..src.len().min(8)])
        ))
    }

    fn too_large(&self, size: usize) -> FrameError {
        FrameError::TooLarge {
            size,
            max: self.max_frame,
        }
    }
}

impl Decoder for Delimited {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.skip(src);
        self.cut(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None => self.rest(src),
        }
    }
}

/// Cuts a message whose `total` size its header announced (or the protocol
/// fixes), once all of it is in `src`. The size is checked first, so an
/// announcement above `max_frame` is refused before its body is buffered.
pub(crate) fn take_counted(
    src: &mut BytesMut,
    total: usize,
    max_frame: usize,
) -> Result<Option<Bytes>, FrameError> {
    if total > max_frame {
        return Err(FrameError::TooLarge {
            size: total,
            max: max_frame,
        });
    }
    if src.len() < total {
        src.reserve(total - src.len());
        return Ok(None);
    }
    Ok(Some(src.split_to(total).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines `>…;` with line ends between them, printable only.
    const LINES: Rules = Rules {
        expected: "a '>' line",
        before: Before::Filler(|b| matches!(b, b'\r' | b'\n')),
        starts: |b| b == b'>',
        end: |buf| buf.iter().position(|&b| b == b';').map(|at| at + 1),
        holds: |m| m.iter().all(|b| (0x20..0x7f).contains(b)),
    };

    /// `(…)` messages with anything between them.
    const PARENS: Rules = Rules {
        expected: "'('",
        before: Before::Resync,
        starts: |b| b == b'(',
        end: |buf| buf.iter().position(|&b| b == b')').map(|at| at + 1),
        holds: anything,
    };

    fn cut_all(rules: Rules, max: usize, input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        crate::test_support::cut_all(Delimited::new(rules, max), input)
    }

    #[test]
    fn several_frames_in_one_read_keep_their_terminators() {
        assert_eq!(
            cut_all(LINES, 64, b">a;\r\n>b;\n\n>c;").unwrap(),
            vec![b">a;".to_vec(), b">b;".to_vec(), b">c;".to_vec()]
        );
        assert_eq!(
            cut_all(PARENS, 64, b"(1)(2)").unwrap(),
            vec![b"(1)".to_vec(), b"(2)".to_vec()]
        );
    }

    #[test]
    fn a_frame_split_across_reads_waits_for_its_end() {
        let input = b"\r\n>one;>two;";
        for split in 0..=input.len() {
            let mut f = Delimited::new(LINES, 64);
            let mut b = BytesMut::from(&input[..split]);
            let mut out = Vec::new();
            while let Some(frame) = f.decode(&mut b).unwrap() {
                out.push(frame.to_vec());
            }
            b.extend_from_slice(&input[split..]);
            while let Some(frame) = f.decode(&mut b).unwrap() {
                out.push(frame.to_vec());
            }
            assert_eq!(out, vec![b">one;".to_vec(), b">two;".to_vec()], "{split}");
            assert!(b.is_empty());
        }
    }

    #[test]
    fn garbage_is_refused_or_dropped_as_the_rules_say() {
        assert!(matches!(
            cut_all(LINES, 64, b"GET / HTTP/1.1\r\n"),
            Err(FrameError::Malformed(e)) if e.contains("'>' line")
        ));
        assert!(matches!(
            cut_all(LINES, 64, b">\x01;"),
            Err(FrameError::Malformed(_))
        ));
        assert_eq!(
            cut_all(PARENS, 64, b"debug: boot)(1)noise").unwrap(),
            vec![b"(1)".to_vec()]
        );
        // Noise alone is never buffered.
        let mut b = BytesMut::from(&b"noise without a start"[..]);
        assert_eq!(Delimited::new(PARENS, 64).decode(&mut b).unwrap(), None);
        assert!(b.is_empty());
    }

    #[test]
    fn the_limit_counts_the_terminator_and_is_checked_before_buffering() {
        // A frame of exactly `max` bytes, terminator included, passes ...
        assert_eq!(cut_all(LINES, 4, b">ab;").unwrap(), vec![b">ab;".to_vec()]);
        // ... one byte more does not, whether its end is in the buffer or not.
        assert!(matches!(
            cut_all(LINES, 4, b">abc;"),
            Err(FrameError::TooLarge { size: 5, max: 4 })
        ));
        let mut f = Delimited::new(LINES, 4);
        let mut b = BytesMut::from(&b">ab"[..]);
        assert_eq!(f.decode(&mut b).unwrap(), None);
        b.extend_from_slice(b"c");
        assert!(matches!(
            f.decode(&mut b),
            Err(FrameError::TooLarge { size: 4, max: 4 })
        ));
        // The end is not searched for beyond the limit.
        let mut long = b">".to_vec();
        long.resize(10_000, b'a');
        long.push(b';');
        assert!(matches!(
            cut_all(LINES, 64, &long),
            Err(FrameError::TooLarge { max: 64, .. })
        ));
    }

    #[test]
    fn eof_takes_a_partial_frame_whole() {
        let mut f = Delimited::new(LINES, 64);
        let mut b = BytesMut::from(&b">a;>partial"[..]);
        assert_eq!(&f.decode_eof(&mut b).unwrap().unwrap()[..], b">a;");
        assert_eq!(f.decode(&mut b).unwrap(), None);
        assert_eq!(&f.decode_eof(&mut b).unwrap().unwrap()[..], b">partial");
        assert_eq!(f.decode_eof(&mut b).unwrap(), None);
        // What is taken at the end must still be an acceptable message.
        let mut b = BytesMut::from(&b">bad\x01"[..]);
        assert!(matches!(
            f.decode_eof(&mut b),
            Err(FrameError::Malformed(_))
        ));
        // Filler or noise at the end is no message.
        let mut b = BytesMut::from(&b"\r\n"[..]);
        assert_eq!(f.decode_eof(&mut b).unwrap(), None);
        let mut b = BytesMut::from(&b"noise"[..]);
        assert_eq!(Delimited::new(PARENS, 64).decode_eof(&mut b).unwrap(), None);
    }

    #[test]
    fn a_datagram_is_cut_like_a_stream_its_last_message_without_terminator() {
        let datagram = b">login;\r\n>report;\r\n>last";
        let mut f = Delimited::new(LINES, 64);
        let mut b = BytesMut::from(&datagram[..]);
        let mut out = Vec::new();
        while let Some(frame) = f.decode_eof(&mut b).unwrap() {
            out.push(frame.to_vec());
        }
        assert_eq!(
            out,
            vec![b">login;".to_vec(), b">report;".to_vec(), b">last".to_vec()]
        );
    }

    #[test]
    fn counted_messages_are_refused_before_their_body_is_buffered() {
        let mut b = BytesMut::from(&[1u8, 2][..]);
        assert_eq!(take_counted(&mut b, 4, 8).unwrap(), None);
        assert!(b.capacity() >= 4);
        b.extend_from_slice(&[3, 4, 5]);
        assert_eq!(
            &take_counted(&mut b, 4, 8).unwrap().unwrap()[..],
            [1, 2, 3, 4]
        );
        assert_eq!(&b[..], [5]);
        let mut b = BytesMut::from(&[1u8][..]);
        assert!(matches!(
            take_counted(&mut b, 65_535, 8),
            Err(FrameError::TooLarge {
                size: 65_535,
                max: 8
            })
        ));
        assert_eq!(b.len(), 1);
    }
}
