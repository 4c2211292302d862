//! Cuts a watch byte stream into messages.
//!
//! The end of a message: the content's length is announced in the header,
//! but real watches get it wrong (in Traccar's captures 10 of 33 messages
//! announce 1 to 13 bytes more or fewer than they carry, every `SG`
//! position 3 fewer), and the content may hold `[` and `]` of its own (a
//! WiFi network named `[LG_Wall-Mount A/C]`); binary content escapes them.
//! So a message ends at the first `]` that either
//!
//! * closes the opening `[` (brackets in the content balanced, as Traccar
//!   cuts), or
//! * comes right after exactly the announced length of content (escapes
//!   counted as the one byte they stand for), which also ends a message
//!   whose content holds an unbalanced `[`.
//!
//! Both are decided on the bytes before that `]`, so a stream is cut the
//! same wherever it is split. A content `]` that closes the opening `[`
//! before the announced length ends the message early (the rest is then
//! dropped as garbage): no rule could tell it from a wrong length without
//! waiting for bytes the watch may not send before it gets an answer.
//!
//! Garbage: bytes before a `[`, and a `[` not followed by a valid header,
//! are dropped and never buffered. A message cut short by a new header
//! (`[` vendor `*` id `*` length `*` inside its content) is dropped up to
//! that header. A header announcing more content than `max_frame` allows,
//! or a message without its end within `max_frame` bytes, is `TooLarge`.
//!
//! Frames are the bytes as received, escapes included: the parser takes
//! them out, so RAW keeps what the watch sent.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::message::{header, Header};
use crate::FrameError;

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

/// What the scan of one message's content found.
enum Scan {
    /// The message ends at this index (its `]`).
    End(usize),
    /// A new header starts at this index: what comes before is garbage.
    Restart(usize),
    /// Neither within the bytes there are.
    More,
}

/// Scans `buf[start..]`, the content of a message whose header announced
/// `length` bytes.
fn scan(buf: &[u8], start: usize, length: usize) -> Scan {
    let mut depth = 1usize;
    let mut count = 0usize;
    let mut i = start;
    while i < buf.len() {
        match buf[i] {
            b']' => {
                depth -= 1;
                if depth == 0 || count == length {
                    return Scan::End(i);
                }
                count += 1;
                i += 1;
            }
            b'[' => match header(&buf[i..]) {
                Header::Complete(_) => return Scan::Restart(i),
                // Wait: the next bytes tell whether a message starts here.
                Header::Incomplete => return Scan::More,
                Header::Invalid => {
                    depth += 1;
                    count += 1;
                    i += 1;
                }
            },
            b'}' => match buf.get(i + 1) {
                Some(1..=5) => {
                    count += 1;
                    i += 2;
                }
                Some(_) => {
                    count += 1;
                    i += 1;
                }
                None => return Scan::More,
            },
            _ => {
                count += 1;
                i += 1;
            }
        }
    }
    Scan::More
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            let skip = src.iter().position(|&b| b == b'[').unwrap_or(src.len());
            src.advance(skip);
            if src.is_empty() {
                return Ok(None);
            }
            let limit = src.len().min(self.max_frame);
            let fields = match header(&src[..limit]) {
                Header::Incomplete if limit == self.max_frame => {
                    return Err(FrameError::TooLarge {
                        size: src.len(),
                        max: self.max_frame,
                    })
                }
                Header::Incomplete => return Ok(None),
                Header::Invalid => {
                    src.advance(1);
                    continue;
                }
                Header::Complete(f) => f,
            };
            let announced = fields.len + fields.length + 1;
            if announced > self.max_frame {
                return Err(FrameError::TooLarge {
                    size: announced,
                    max: self.max_frame,
                });
            }
            match scan(&src[..limit], fields.len, fields.length) {
                Scan::End(at) => return Ok(Some(src.split_to(at + 1).freeze())),
                Scan::Restart(at) => {
                    src.advance(at);
                    continue;
                }
                Scan::More if src.len() >= self.max_frame => {
                    return Err(FrameError::TooLarge {
                        size: src.len(),
                        max: self.max_frame,
                    })
                }
                Scan::More => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::MAX_FRAME;

    fn cut_all(input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        crate::test_support::cut_all(Framer::new(MAX_FRAME), input)
    }

    #[test]
    fn stream_of_messages() {
        let input = b"[3G*9705141740*0009*LK,0,0,53][3G*9705141740*005A*UD,190723,190707,A,36.815109,N,10.1792312,E,8.24,127.9,21.0,5,100,53,0,0,00000000,0,0,58.0][3G*9705141740*0003*TKQ][3G*9705141740*0009*LK,0,0,53]";
        let frames = cut_all(input).unwrap();
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[2], b"[3G*9705141740*0003*TKQ]".to_vec());
        assert_eq!(frames.concat(), input.to_vec());
    }

    #[test]
    fn brackets_in_the_content() {
        // Balanced, with a length that is off (Traccar's frame test).
        let ssid = b"[3G*880900242*013D*UD,120623,140020,A,48.949273,N, 4.3783060,E,5,Fiber,36:a1:ed:e1:91:4f,-75,[LG_Wall-Mount A/C]e725,66:a1:ed:e1:e7:25,-82,15.0]";
        assert_eq!(cut_all(ssid).unwrap(), vec![ssid.to_vec()]);
        // Unbalanced, with the right length.
        let open = b"[SG*1*000A*UD,a[b,c,d][SG*1*0002*LK]";
        let frames = cut_all(open).unwrap();
        assert_eq!(
            frames,
            vec![
                b"[SG*1*000A*UD,a[b,c,d]".to_vec(),
                b"[SG*1*0002*LK]".to_vec()
            ]
        );
        // Lengths that are off in both directions, as real watches send.
        let frames = cut_all(b"[SG*9081000548*0009*LK,0,100][SG*1*0001*LK]").unwrap();
        assert_eq!(frames.len(), 2);
    }

    #[test]
    fn escaped_binary_content() {
        let input =
            b"[CS*1234567890*000e*TK,#!AMR}\x01}\x02}\x03}\x04}\x05\xff][CS*1234567890*0002*LK]";
        let frames = cut_all(input).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(frames[0].ends_with(b"\xff]"));
    }

    #[test]
    fn garbage_is_dropped() {
        let input = b"garbage]]**[[xx[SG*12[SG*1*0002*LK]noise[SG*1*0003*TKQ]";
        let frames = cut_all(input).unwrap();
        assert_eq!(
            frames,
            vec![b"[SG*1*0002*LK]".to_vec(), b"[SG*1*0003*TKQ]".to_vec()]
        );
        // A message cut short by the next one.
        let frames = cut_all(b"[SG*1*0040*UD,0101[SG*1*0002*LK]").unwrap();
        assert_eq!(frames, vec![b"[SG*1*0002*LK]".to_vec()]);
        let mut b = BytesMut::from(&b"garbage"[..]);
        assert_eq!(Framer::new(MAX_FRAME).decode(&mut b).unwrap(), None);
        assert!(b.is_empty());
    }

    #[test]
    fn partial_messages_wait() {
        let whole = b"[ZJ*014111001350304*0034*0009*LK,0,0,19]";
        for n in 0..whole.len() {
            let mut f = Framer::new(MAX_FRAME);
            let mut b = BytesMut::from(&whole[..n]);
            assert_eq!(f.decode(&mut b).unwrap(), None, "{n} bytes");
            assert_eq!(b.len(), n);
            b.extend_from_slice(&whole[n..]);
            assert_eq!(&f.decode(&mut b).unwrap().unwrap()[..], &whole[..]);
        }
    }

    #[test]
    fn too_large() {
        // Announced beyond the maximum: refused before the content comes.
        assert!(matches!(
            Framer::new(64).decode(&mut BytesMut::from(&b"[SG*1*0100*UD,"[..])),
            Err(FrameError::TooLarge { max: 64, .. })
        ));
        // No end within the maximum.
        let mut long = b"[SG*1*0020*UD,".to_vec();
        long.resize(100, b'1');
        assert!(matches!(
            Framer::new(64).decode(&mut BytesMut::from(&long[..])),
            Err(FrameError::TooLarge { max: 64, .. })
        ));
    }
}
