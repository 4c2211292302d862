//! Cuts a Meitrack byte stream into messages.
//!
//! A message starts with `$$`, a flag byte and its decimal length up to the
//! first `,`; the length counts the bytes from that `,` to the final `\r\n`.
//! The data of binary messages may hold any byte, so the end is found by the
//! length, never by searching. Bytes before a `$$` are dropped (never
//! buffered), and so is a `$$` whose header is not a flag and 1–6 digits
//! followed by `,`: the framer resynchronises on the next `$$`. A length
//! above `max_frame` is `TooLarge` before the body is buffered. A complete
//! message must end in `*XX\r\n` with the right checksum, or the connection
//! is refused (`Malformed` / `BadChecksum`): the device resends.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::FrameError;

use super::message::sum;

/// The longest length field accepted (the documents give at most four digits).
const MAX_LEN_DIGITS: usize = 6;
/// `,` + `*XX\r\n`: the shortest length that can hold a checksum.
const MIN_LEN: usize = 6;

#[derive(Debug)]
pub struct Framer {
    max_frame: usize,
}

impl Framer {
    /// A framer refusing messages above `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Framer { max_frame }
    }
}

/// What the header at the start of `buf` (which starts with `$$`) says.
enum Header {
    /// More bytes are needed to read it.
    Partial,
    /// Not a header: skip this `$$`.
    Invalid,
    /// The whole message is this many bytes.
    Total(usize),
}

fn header(buf: &[u8]) -> Header {
    // `$$`, flag, then digits up to the `,`.
    for (i, &b) in buf.iter().enumerate().skip(3) {
        let digits = i - 3;
        match b {
            b',' if digits > 0 => {
                let len: usize = std::str::from_utf8(&buf[3..i])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return if len < MIN_LEN {
                    Header::Invalid
                } else {
                    Header::Total(i + len)
                };
            }
            b'0'..=b'9' if digits < MAX_LEN_DIGITS => {}
            _ => return Header::Invalid,
        }
    }
    Header::Partial
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            // Drop everything before the next `$$` (keeping a last `$`).
            let start = src.windows(2).position(|w| w == b"$$").unwrap_or(
                src.len()
                    .saturating_sub(usize::from(src.last() == Some(&b'$'))),
            );
            src.advance(start);
            if src.len() < 2 {
                return Ok(None);
            }
            let total = match header(src) {
                Header::Partial => {
                    if src.len() >= self.max_frame {
                        return Err(FrameError::TooLarge {
                            size: src.len(),
                            max: self.max_frame,
                        });
                    }
                    return Ok(None);
                }
                Header::Invalid => {
                    src.advance(1);
                    continue;
                }
                Header::Total(total) => total,
            };
            if total > self.max_frame {
                return Err(FrameError::TooLarge {
                    size: total,
                    max: self.max_frame,
                });
            }
            if src.len() < total {
                src.reserve(total - src.len());
                return Ok(None);
            }
            let frame = &src[..total];
            let tail = &frame[total - 5..];
            if tail[0] != b'*' || &tail[3..] != b"\r\n" {
                return Err(FrameError::Malformed(format!(
                    "message of {total} bytes does not end in *XX\\r\\n (ends {:?})",
                    String::from_utf8_lossy(tail)
                )));
            }
            let computed = u32::from(sum(&frame[..total - 4]));
            let received = std::str::from_utf8(&tail[1..3])
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok());
            if received != Some(computed) {
                return Err(FrameError::BadChecksum {
                    received: received.unwrap_or(0x100),
                    computed,
                });
            }
            return Ok(Some(src.split_to(total).freeze()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meitrack::MAX_FRAME;

    const AAA: &[u8] = b"$$N127,863071013803066,AAA,35,-1.302680,36.852135,150409211026,A,9,0,0.1,0,5,1653,4096,32648,639|02|1004|90C,0000,0|0|0|3FF|300,*7C\r\n";

    fn cut_all(input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        crate::test_support::cut_all(Framer::new(MAX_FRAME), input)
    }

    #[test]
    fn cuts_by_length_with_garbage_between() {
        let mut input = b"junk$".to_vec();
        input.extend_from_slice(AAA);
        input.extend_from_slice(b"$$x,$$");
        input.extend_from_slice(b"$$z27,861451040910625,AAC,1*D3\r\n");
        let frames = cut_all(&input).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], AAA);
        assert_eq!(frames[1], b"$$z27,861451040910625,AAC,1*D3\r\n");
    }

    #[test]
    fn binary_data_may_hold_anything() {
        let msg = crate::meitrack::encode::message(b'A', "861585043200862", "CCE", b"*\r\n$$1,");
        assert_eq!(cut_all(&msg).unwrap(), vec![msg.to_vec()]);
    }

    #[test]
    fn split_anywhere() {
        for at in 0..AAA.len() {
            let mut f = Framer::new(MAX_FRAME);
            let mut b = BytesMut::from(&AAA[..at]);
            assert_eq!(f.decode(&mut b).unwrap(), None);
            b.extend_from_slice(&AAA[at..]);
            assert_eq!(&f.decode(&mut b).unwrap().unwrap()[..], AAA);
        }
    }

    #[test]
    fn errors() {
        let mut bad = AAA.to_vec();
        bad[20] = b'9';
        assert!(matches!(cut_all(&bad), Err(FrameError::BadChecksum { .. })));
        assert!(matches!(
            cut_all(b"$$A7,1,AAA\r\n"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            Framer::new(64).decode(&mut BytesMut::from(&b"$$A999,"[..])),
            Err(FrameError::TooLarge {
                size: 1005,
                max: 64
            })
        ));
        let mut b = BytesMut::from(&b"garbage"[..]);
        assert_eq!(Framer::new(MAX_FRAME).decode(&mut b).unwrap(), None);
        assert!(b.is_empty());
    }
}
