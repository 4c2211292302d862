//! Cuts a Wialon IPS byte stream (or one UDP datagram) into packets.
//!
//! A packet is one line: `[prefix]#<type>#<message>\r\n`, the line end kept
//! with it (so a frame is exactly the bytes it was cut from). Line ends,
//! blanks and NULs between packets are dropped. Garbage is resynchronised
//! on, never buffered beyond the limit: a line without a packet header
//! (`#`, one to three capital letters, `#`) is dropped whole, and bytes
//! before a header that cannot be a UDP device prefix (`<id>` or
//! `<version>;<id>`) are dropped too — so modem noise or a stray HTTP probe
//! does not close the connection, and the device's next packet is read.
//! A packet with control bytes or invalid UTF-8 after its header is
//! `Malformed` (the connection is closed unacknowledged; the device
//! resends). A line without its end within `max_frame` bytes is `TooLarge`.
//! Compressed containers (a `0xFF` byte, then a length and DEFLATE data)
//! are `Malformed`: they are not supported.
//!
//! Over UDP a datagram holds one or more packets; a last packet without its
//! line end is taken whole by [`Decoder::decode_eof`].

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::FrameError;

use super::message;

#[derive(Debug)]
pub struct Framer {
    max_frame: usize,
}

impl Framer {
    /// A framer refusing packets above `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Framer { max_frame }
    }

    /// Takes the line `src[..len]` (its end included, if any): the packet
    /// in it, or `None` when it holds none (the line is dropped).
    fn line(&self, src: &mut BytesMut, len: usize) -> Result<Option<Bytes>, FrameError> {
        let Some(start) = packet_start(&src[..len]) else {
            src.advance(len);
            return Ok(None);
        };
        src.advance(start);
        let frame = &src[..len - start];
        let body = frame.strip_suffix(b"\n").unwrap_or(frame);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.iter().any(|&b| b < 0x20 && b != b'\t') || std::str::from_utf8(body).is_err() {
            return Err(FrameError::Malformed(format!(
                "Wialon packet with control bytes or invalid UTF-8: {}",
                hex::encode(&body[..body.len().min(16)])
            )));
        }
        Ok(Some(src.split_to(len - start).freeze()))
    }
}

/// Where the packet in `line` starts: at its beginning when the bytes
/// before the first header are a possible device prefix, else at the header.
fn packet_start(line: &[u8]) -> Option<usize> {
    let header = (0..line.len()).find(|&i| is_header(&line[i..]))?;
    let prefix = &line[..header];
    let prefix_ok = prefix.is_empty()
        || std::str::from_utf8(prefix).is_ok_and(|p| message::split_prefix(p).is_some());
    Some(if prefix_ok { 0 } else { header })
}

/// `#`, one to three capital letters, `#`.
fn is_header(s: &[u8]) -> bool {
    if s.first() != Some(&b'#') {
        return false;
    }
    // At most four looked at, so a long run of capitals stays linear.
    let letters = s[1..]
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    (1..=3).contains(&letters) && s.get(1 + letters) == Some(&b'#')
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            let filler = src
                .iter()
                .take_while(|&&b| matches!(b, b'\r' | b'\n' | b' ' | b'\0'))
                .count();
            src.advance(filler);
            match src.first() {
                None => return Ok(None),
                Some(0xFF) => {
                    return Err(FrameError::Malformed(
                        "compressed Wialon packets (0xFF containers) are not supported".into(),
                    ))
                }
                Some(_) => {}
            }
            let limit = src.len().min(self.max_frame);
            match src[..limit].iter().position(|&b| b == b'\n') {
                Some(at) => {
                    if let Some(frame) = self.line(src, at + 1)? {
                        return Ok(Some(frame));
                    }
                }
                None if src.len() >= self.max_frame => {
                    return Err(FrameError::TooLarge {
                        size: src.len(),
                        max: self.max_frame,
                    })
                }
                None => return Ok(None),
            }
        }
    }

    /// At the end of a datagram or stream, what is left is the last packet.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let len = src.len();
        self.line(src, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wialon::MAX_FRAME;

    fn cut_all(input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut f = Framer::new(MAX_FRAME);
        let mut b = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(frame) = f.decode(&mut b)? {
            out.push(frame.to_vec());
        }
        if let Some(frame) = f.decode_eof(&mut b)? {
            out.push(frame.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn lines() {
        let frames = cut_all(
            b"#L#2002;NA\r\n#P#\r\n\r\n2.0;354#SD#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;1234\r\n#P#",
        )
        .unwrap();
        assert_eq!(
            frames,
            vec![
                b"#L#2002;NA\r\n".to_vec(),
                b"#P#\r\n".to_vec(),
                b"2.0;354#SD#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;1234\r\n".to_vec(),
                b"#P#".to_vec(),
            ]
        );
    }

    #[test]
    fn garbage_is_skipped() {
        let frames =
            cut_all(b"GET / HTTP/1.1\r\nHost: x\r\n\x01\x02#P#\r\nAT+OK\n#AP#x\r\n#ABCD#\r\n")
                .unwrap();
        assert_eq!(frames, vec![b"#P#\r\n".to_vec(), b"#AP#x\r\n".to_vec()]);
        assert!(matches!(
            cut_all(b"#D#a\x01b\r\n"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            cut_all(b"#M#\xff\xfe\r\n"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            cut_all(b"\xff\x10\x00abc"),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn size_limit() {
        let mut long = b"#D#".to_vec();
        long.resize(100, b'1');
        assert!(matches!(
            Framer::new(64).decode(&mut BytesMut::from(&long[..])),
            Err(FrameError::TooLarge { max: 64, .. })
        ));
        let mut partial = BytesMut::from(&b"#D#1;2"[..]);
        assert_eq!(Framer::new(64).decode(&mut partial).unwrap(), None);
        assert_eq!(partial.len(), 6);
    }
}
