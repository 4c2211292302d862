//! Cuts a JT/T 808 byte stream into frames.
//!
//! A frame runs from a `7e` to the next `7e`; inside, `7d 02` stands for
//! `7e` and `7d 01` for `7d` (and on devices using `e7` as delimiter,
//! `e6 02`/`e6 01`/`3e 02`/`3e 01` for `e7`/`e6`/`3d`/`3e`). The framer
//! yields the frame **unescaped**, delimiters included, after checking the
//! escapes (`7d` followed by anything but `01`/`02` is `Malformed`) and the
//! size (`TooLarge` once `max_frame` bytes are buffered without an end — a
//! bogus frame costs at most that much buffer). The header and the XOR
//! checksum are the session's business (a bad checksum is refused there:
//! not stored, not answered, the device sends again), so that the framer
//! cuts exactly what Traccar's frame decoder cuts.
//!
//! Bytes before a frame start are dropped, as Traccar drops them; `7e 7e`
//! (an end and a start, seen when a stream is joined mid-frame) is not an
//! empty frame but a new start. A `(`…`)` text message (some JT808 locks
//! answer commands in text) is passed through as it is.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::FrameError;

use super::frame::{DELIMITER, DELIMITER_ALT};

#[derive(Debug)]
pub struct Framer {
    max_frame: usize,
}

impl Framer {
    /// A framer refusing frames above `max_frame` bytes on the wire.
    pub fn new(max_frame: usize) -> Self {
        Framer { max_frame }
    }
}

fn starts_frame(b: u8) -> bool {
    b == DELIMITER || b == DELIMITER_ALT || b == b'('
}

/// Unescapes the bytes between the delimiters.
fn unescape(delimiter: u8, raw: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(raw.len() + 2);
    out.push(delimiter);
    let mut bytes = raw.iter().copied();
    while let Some(b) = bytes.next() {
        let escaped = match (delimiter, b) {
            (DELIMITER, 0x7d) => Some([0x7d, 0x7e]),
            (DELIMITER_ALT, 0xe6) => Some([0xe6, 0xe7]),
            (DELIMITER_ALT, 0x3e) => Some([0x3e, 0x3d]),
            _ => None,
        };
        match escaped {
            None => out.push(b),
            Some(values) => match bytes.next() {
                Some(0x01) => out.push(values[0]),
                Some(0x02) => out.push(values[1]),
                other => {
                    return Err(FrameError::Malformed(format!(
                        "invalid escape {b:02x} {}",
                        other.map_or("(end)".into(), |o| format!("{o:02x}"))
                    )))
                }
            },
        }
    }
    out.push(delimiter);
    Ok(out)
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            let skip = src
                .iter()
                .position(|&b| starts_frame(b))
                .unwrap_or(src.len());
            src.advance(skip);
            let Some(&start) = src.first() else {
                return Ok(None);
            };
            let end_byte = if start == b'(' { b')' } else { start };
            let limit = src.len().min(self.max_frame);
            let Some(end) = src[1..limit]
                .iter()
                .position(|&b| b == end_byte)
                .map(|i| i + 1)
            else {
                if src.len() >= self.max_frame {
                    return Err(FrameError::TooLarge {
                        size: src.len(),
                        max: self.max_frame,
                    });
                }
                return Ok(None);
            };
            if start == b'(' {
                return Ok(Some(src.split_to(end + 1).freeze()));
            }
            if end == 1 {
                // `7e 7e`: the first was an end (or noise); the second starts a frame.
                src.advance(1);
                continue;
            }
            let frame = unescape(start, &src[1..end])?;
            src.advance(end + 1);
            return Ok(Some(Bytes::from(frame)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jt808::MAX_FRAME;

    fn cut_all(input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        crate::test_support::cut_all(Framer::new(MAX_FRAME), input)
    }

    const HEARTBEAT: &str = "7e0002000004304832546500b7ca7e";

    #[test]
    fn unescapes() {
        assert_eq!(
            unescape(0x7e, &hex::decode("307d02087d0155").unwrap()).unwrap(),
            hex::decode("7e307e087d557e").unwrap()
        );
        assert!(unescape(0x7e, &[0x7d, 0x03]).is_err());
        assert!(unescape(0x7e, &[0x7d]).is_err());
    }

    #[test]
    fn frames_and_garbage() {
        let hb = hex::decode(HEARTBEAT).unwrap();
        let input = [b"$$".to_vec(), hb.clone(), hb.clone()].concat();
        assert_eq!(cut_all(&input).unwrap(), vec![hb.clone(), hb.clone()]);
        // Joined mid-frame: the tail of a frame, then a whole one.
        let input = [hex::decode("00b7ca7e").unwrap(), hb.clone()].concat();
        assert_eq!(cut_all(&input).unwrap(), vec![hb.clone()]);
        let text = b"(740190311185,1,001,ELOCK,3,529439)".to_vec();
        assert_eq!(cut_all(&text).unwrap(), vec![text.clone()]);
    }

    #[test]
    fn partial_and_size() {
        let hb = hex::decode(HEARTBEAT).unwrap();
        let mut f = Framer::new(MAX_FRAME);
        let mut b = BytesMut::from(&hb[..8]);
        assert_eq!(f.decode(&mut b).unwrap(), None);
        assert_eq!(b.len(), 8);
        b.extend_from_slice(&hb[8..]);
        assert_eq!(f.decode(&mut b).unwrap().unwrap(), hb);
        let mut long = vec![0x7e];
        long.resize(100, 0x11);
        assert!(matches!(
            Framer::new(64).decode(&mut BytesMut::from(&long[..])),
            Err(FrameError::TooLarge { max: 64, .. })
        ));
        assert!(matches!(
            cut_all(&[0x7e, 0x7d, 3, 0x7e]),
            Err(FrameError::Malformed(_))
        ));
    }
}
