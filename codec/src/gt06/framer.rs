//! Cuts a GT06 byte stream into frames.
//!
//! A well-formed frame is exactly as long as its length field says, ends with
//! `0d 0a` and carries a CRC-ITU; those are checked strictly. Real devices
//! bend the rules in three ways that Traccar's `Gt06FrameDecoder` tolerates,
//! and so do we, because the devices cannot be changed:
//!
//! 1. the length field is two short (the stop bytes come two bytes late) —
//!    the CRC is still checked;
//! 2. WiFi scans (0x17, 0x69) use the length byte as the access point count
//!    and carry neither serial nor CRC; some old firmwares send location
//!    (0x10) and login (0x01) frames without them too — those are delimited
//!    by the first `0d 0a` and accepted without a CRC;
//! 3. a frame shorter or longer than announced ending in `0d 0a` with a
//!    valid CRC.
//!
//! While a frame is still arriving, `0d 0a` before its announced end is taken
//! for data, except for a login (old firmwares send short ones and wait for
//! the answer; a standard login can only hold `0d 0a` in its serial and CRC).
//!
//! Anything else is refused: bytes that do not start with `78 78`/`79 79`
//! (`Malformed`, the gateway closes the connection), a bad CRC
//! (`BadChecksum`), and frames above `max_frame` (`TooLarge`, decided from
//! the length field before the body is buffered, or once that many bytes are
//! buffered without a frame end for the frames delimited by `0d 0a`).

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::FrameError;

use super::frame::{crc_check, Start, STOP};
use super::msg;

/// Protocol numbers some devices send without serial and CRC, delimited by
/// `0d 0a` only (all seen in real captures), with the content such a frame
/// must at least hold to be of use: an IMEI, a GPS block, a time.
const WITHOUT_CRC: &[(u8, usize)] = &[
    (msg::LOGIN, 8),
    (msg::GPS, 18),
    (msg::WIFI, 6),
    (msg::WIFI_2, 6),
];

/// Whether a frame of `len` bytes may be a frame of `protocol` sent without CRC.
fn crc_less(protocol: u8, header: usize, len: usize) -> bool {
    WITHOUT_CRC
        .iter()
        .any(|&(p, content)| p == protocol && len >= header + 1 + content + STOP.len())
}

#[derive(Debug)]
pub struct Framer {
    max_frame: usize,
}

impl Framer {
    /// A framer refusing frames above `max_frame` bytes (start to stop bytes).
    pub fn new(max_frame: usize) -> Self {
        Framer { max_frame }
    }
}

/// How the end of the frame at the head of the buffer was found.
enum Cut {
    /// The frame is complete and checked: take this many bytes.
    Frame(usize),
    /// More bytes are needed; at least this many in all.
    Need(usize),
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.cut(src)? {
            Cut::Frame(len) => Ok(Some(src.split_to(len).freeze())),
            Cut::Need(total) => {
                src.reserve(total.saturating_sub(src.len()));
                Ok(None)
            }
        }
    }
}

impl Framer {
    fn cut(&self, buf: &[u8]) -> Result<Cut, FrameError> {
        let Some(start) = self.start(buf)? else {
            return Ok(Cut::Need(2));
        };
        let header = start.header_len();
        // The protocol number tells how strict to be, so wait for it too.
        let Some(length) = start.length_field(buf).filter(|_| buf.len() > header) else {
            return Ok(Cut::Need(header + 1));
        };
        let protocol = buf[header];
        let announced = start.announced_len(length);
        if announced > self.max_frame {
            return Err(FrameError::TooLarge {
                size: announced,
                max: self.max_frame,
            });
        }

        // The frame as announced.
        if announced >= header + 1 + STOP.len()
            && buf.len() >= announced
            && buf[announced - 2..announced] == STOP
        {
            return self.checked(&buf[..announced], protocol).map(Cut::Frame);
        }
        // The stop bytes two bytes late (length field two short).
        let late = announced + STOP.len();
        if late <= self.max_frame && buf.len() >= late && buf[late - 2..late] == STOP {
            return self.checked(&buf[..late], protocol).map(Cut::Frame);
        }

        // Otherwise the first stop bytes that end an acceptable frame.
        let limit = buf.len().min(self.max_frame);
        let mut from = header + 1;
        while let Some(at) = find_stop(&buf[..limit], from) {
            let end = at + STOP.len();
            from = at + 1;
            let crc = crc_check(&buf[..end]);
            if crc == Some(Ok(())) {
                return Ok(Cut::Frame(end));
            }
            if end < announced {
                // Old logins without serial and CRC end early; anything else
                // is `0d 0a` inside the data of a frame still arriving.
                if protocol == msg::LOGIN && crc_less(protocol, header, end) {
                    return Ok(Cut::Frame(end));
                }
                continue;
            }
            if crc_less(protocol, header, end) {
                return Ok(Cut::Frame(end));
            }
            if buf.len() < late {
                continue; // the stop bytes may yet come two bytes late
            }
            return Err(match crc {
                Some(Err((received, computed))) => FrameError::BadChecksum {
                    received: received.into(),
                    computed: computed.into(),
                },
                _ => too_short(end, protocol),
            });
        }
        if buf.len() >= self.max_frame {
            return Err(FrameError::TooLarge {
                size: buf.len(),
                max: self.max_frame,
            });
        }
        Ok(Cut::Need(announced.max(buf.len() + 1)))
    }

    /// The start bytes, `None` if not all here yet; garbage is an error.
    fn start(&self, buf: &[u8]) -> Result<Option<Start>, FrameError> {
        match buf {
            [] => Ok(None),
            [0x78] | [0x79] => Ok(None),
            _ => Start::of(buf).map(Some).ok_or_else(|| {
                let shown = &buf[..buf.len().min(8)];
                FrameError::Malformed(format!(
                    "expected start bytes 78 78 or 79 79, got {}",
                    hex::encode(shown)
                ))
            }),
        }
    }

    /// A frame whose end the length field gave: the CRC must match, whatever
    /// the protocol number (a full-size frame without a CRC is a corrupt one).
    fn checked(&self, frame: &[u8], protocol: u8) -> Result<usize, FrameError> {
        match crc_check(frame) {
            Some(Ok(())) => Ok(frame.len()),
            Some(Err((received, computed))) => Err(FrameError::BadChecksum {
                received: received.into(),
                computed: computed.into(),
            }),
            None => Err(too_short(frame.len(), protocol)),
        }
    }
}

fn too_short(len: usize, protocol: u8) -> FrameError {
    FrameError::Malformed(format!(
        "frame of {len} bytes (protocol {protocol:#04x}) is too short for a serial number and checksum"
    ))
}

/// Index of the first `0d 0a` in `buf` at or after `from`.
fn find_stop(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == STOP)
        .map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gt06::MAX_FRAME;

    fn framer() -> Framer {
        Framer::new(MAX_FRAME)
    }

    fn buf(hex_str: &str) -> BytesMut {
        BytesMut::from(&hex::decode(hex_str).unwrap()[..])
    }

    const LOGIN: &str = "78780d010352887071911998000479d00d0a";
    const LOCATION: &str =
        "78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a";

    #[test]
    fn cuts_one_login_frame() {
        let mut b = buf(LOGIN);
        let frame = framer().decode(&mut b).unwrap().unwrap();
        assert_eq!(hex::encode(&frame), LOGIN);
        assert!(b.is_empty());
    }

    #[test]
    fn two_frames_in_one_buffer() {
        let mut b = buf(&format!("{LOGIN}{LOCATION}"));
        let mut f = framer();
        assert_eq!(hex::encode(f.decode(&mut b).unwrap().unwrap()), LOGIN);
        assert_eq!(hex::encode(f.decode(&mut b).unwrap().unwrap()), LOCATION);
        assert_eq!(f.decode(&mut b).unwrap(), None);
    }

    #[test]
    fn frame_split_across_calls() {
        let whole = hex::decode(LOCATION).unwrap();
        let mut f = framer();
        let mut b = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            b.extend_from_slice(&[*byte]);
            let out = f.decode(&mut b).unwrap();
            if i + 1 < whole.len() {
                assert_eq!(out, None, "cut early after {} bytes", i + 1);
            } else {
                assert_eq!(out.unwrap(), whole);
            }
        }
    }

    #[test]
    fn wants_the_announced_size() {
        let mut b = buf("78781f12");
        assert_eq!(framer().decode(&mut b).unwrap(), None);
        assert!(b.capacity() >= 0x1f + 5);
    }

    #[test]
    fn bad_crc_is_rejected() {
        let mut b = buf("78780d010352887071911998000479d10d0a");
        match framer().decode(&mut b) {
            Err(FrameError::BadChecksum { received, computed }) => {
                assert_eq!((received, computed), (0x79d1, 0x79d0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversize_is_rejected_before_the_body() {
        // An extended frame announcing 0x1000 bytes; only the header arrived.
        let mut b = buf("797910001234");
        match Framer::new(1024).decode(&mut b) {
            Err(FrameError::TooLarge { size, max }) => assert_eq!((size, max), (0x1000 + 6, 1024)),
            other => panic!("{other:?}"),
        }
        assert_eq!(b.len(), 6, "nothing consumed");
    }

    #[test]
    fn garbage_is_malformed() {
        for garbage in ["00", "1234", "7800", "GET / HTTP/1.1"] {
            let bytes = if garbage.starts_with("GET") {
                garbage.as_bytes().to_vec()
            } else {
                hex::decode(garbage).unwrap()
            };
            let mut b = BytesMut::from(&bytes[..]);
            match framer().decode(&mut b) {
                Err(FrameError::Malformed(msg)) => assert!(msg.contains("78 78"), "{msg}"),
                other => panic!("{garbage}: {other:?}"),
            }
        }
        // A lone first start byte may still become a frame.
        assert_eq!(framer().decode(&mut buf("78")).unwrap(), None);
    }

    #[test]
    fn length_two_short_is_accepted_with_crc() {
        let frame = "787808134606020002044dc5050d0a";
        assert_eq!(
            hex::encode(framer().decode(&mut buf(frame)).unwrap().unwrap()),
            frame
        );
    }

    #[test]
    fn crc_less_frames_are_delimited_by_stop_bytes() {
        // A WiFi scan: the length byte is the access point count.
        let wifi = "787800171710231108290200cc080c4e2fa5640c4e2fa5640d0a";
        let mut b = buf(&format!("{wifi}{LOGIN}"));
        let mut f = framer();
        assert_eq!(hex::encode(f.decode(&mut b).unwrap().unwrap()), wifi);
        assert_eq!(hex::encode(f.decode(&mut b).unwrap().unwrap()), LOGIN);
        // An old login without serial and CRC, shorter than announced.
        let login = "78780d0103563140414198583c0d0a";
        assert_eq!(
            hex::encode(framer().decode(&mut buf(login)).unwrap().unwrap()),
            login
        );
    }

    #[test]
    fn stop_bytes_inside_a_partial_frame_are_not_an_end() {
        // A location frame whose latitude contains 0d 0a, cut before its end.
        let mut whole = hex::decode(LOCATION).unwrap();
        whole[12] = 0x0d;
        whole[13] = 0x0a;
        let n = whole.len();
        let crc = crate::checksum::crc_itu(&whole[2..n - 4]).to_be_bytes();
        whole[n - 4..n - 2].copy_from_slice(&crc);
        let mut b = BytesMut::from(&whole[..20]);
        assert_eq!(framer().decode(&mut b).unwrap(), None);
        b.extend_from_slice(&whole[20..]);
        assert_eq!(framer().decode(&mut b).unwrap().unwrap(), whole);
    }

    #[test]
    fn crc_less_frames_must_hold_their_data() {
        // A "login" too short for an IMEI, and a GPS frame without a GPS block.
        for tiny in ["78780d01120d0a", "787800100d0a1234"] {
            match framer().decode(&mut buf(tiny)) {
                Ok(None) | Err(_) => {}
                other => panic!("{tiny}: {other:?}"),
            }
        }
    }

    #[test]
    fn crc_less_frames_cannot_grow_past_max() {
        let mut b = buf(&format!("78780017{}", "11".repeat(200)));
        match Framer::new(64).decode(&mut b) {
            Err(FrameError::TooLarge { max: 64, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
