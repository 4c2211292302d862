//! Cuts a Teltonika TCP stream into frames: IMEI logins and AVL packets.
//! Ping bytes between frames are consumed and never yielded.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::checksum::crc16_ibm;
use crate::FrameError;

use super::envelope::{MAX_IMEI_LEN, MIN_DATA_LEN, PING, TCP_OVERHEAD};

/// The framer of one connection. It keeps no state between frames: each
/// frame announces its own length in its first bytes.
#[derive(Debug)]
pub struct Framer {
    max_frame: usize,
}

impl Framer {
    /// A framer refusing frames over `max_frame` bytes (whole frame, from the
    /// preamble or login length to the CRC or last IMEI digit).
    pub fn new(max_frame: usize) -> Self {
        Framer { max_frame }
    }

    fn check_size(&self, size: usize) -> Result<(), FrameError> {
        if size > self.max_frame {
            return Err(FrameError::TooLarge {
                size,
                max: self.max_frame,
            });
        }
        Ok(())
    }

    /// `len:u16` + IMEI digits. Digits are checked as they arrive, so garbage
    /// is refused without waiting for the announced length.
    fn login(&self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let len = usize::from(u16::from_be_bytes([src[0], src[1]]));
        if len > MAX_IMEI_LEN {
            return Err(FrameError::Malformed(format!(
                "login announces a {len}-byte IMEI (at most {MAX_IMEI_LEN})"
            )));
        }
        let total = 2 + len;
        self.check_size(total)?;
        let present = &src[2..src.len().min(total)];
        if let Some(bad) = present.iter().find(|b| !b.is_ascii_digit()) {
            return Err(FrameError::Malformed(format!(
                "IMEI contains the non-digit byte {bad:#04x}"
            )));
        }
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        Ok(Some(src.split_to(total).freeze()))
    }

    /// `00000000` + `data_len:u32` + data + `crc:u32`. The size is checked
    /// from the 8-byte header, before any of the body is buffered.
    fn avl(&self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let preamble_end = src.len().min(4);
        if src[..preamble_end].iter().any(|&b| b != 0) {
            return Err(FrameError::Malformed(format!(
                "AVL packet preamble is {}, not 00000000",
                hex::encode(&src[..preamble_end])
            )));
        }
        if src.len() < 8 {
            return Ok(None);
        }
        let data_len = u32::from_be_bytes([src[4], src[5], src[6], src[7]]);
        // On 32-bit targets a huge length saturates, which is still too large.
        let data_len = usize::try_from(data_len).unwrap_or(usize::MAX);
        if data_len < MIN_DATA_LEN {
            return Err(FrameError::Malformed(format!(
                "AVL data length {data_len} is below the minimum {MIN_DATA_LEN} (codec id and two record counts)"
            )));
        }
        let total = data_len.saturating_add(TCP_OVERHEAD);
        self.check_size(total)?;
        if src.len() < total {
            // One allocation for the whole announced frame, not one per read.
            src.reserve(total - src.len());
            return Ok(None);
        }
        let data = &src[8..8 + data_len];
        let received = u32::from_be_bytes([
            src[total - 4],
            src[total - 3],
            src[total - 2],
            src[total - 1],
        ]);
        let computed = u32::from(crc16_ibm(data));
        if received != computed {
            return Err(FrameError::BadChecksum { received, computed });
        }
        Ok(Some(src.split_to(total).freeze()))
    }
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        // Pings only ever stand between frames, where a frame's first byte is
        // 00 (AVL preamble, or the high byte of a short IMEI length).
        let pings = src.iter().take_while(|&&b| b == PING).count();
        src.advance(pings);
        match src.first() {
            None => Ok(None),
            Some(0) if src.len() < 2 => Ok(None),
            Some(0) if src[1] == 0 => self.avl(src),
            Some(0) => self.login(src),
            Some(&b) => Err(FrameError::Malformed(format!(
                "frame starts with {b:#04x}: neither a login (00 + IMEI length), an AVL packet (00000000) nor a ping (ff)"
            ))),
        }
    }
}

/// Cuts a Teltonika UDP datagram: the whole datagram is one packet,
/// `len:u16` + everything after it, and the length must say exactly that.
/// Nothing comes out before the datagram's end (`decode_eof`).
#[derive(Debug)]
pub struct DatagramFramer {
    max_frame: usize,
}

impl DatagramFramer {
    /// A framer refusing datagrams over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        DatagramFramer { max_frame }
    }
}

impl Decoder for DatagramFramer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if src.len() > self.max_frame {
            return Err(FrameError::TooLarge {
                size: src.len(),
                max: self.max_frame,
            });
        }
        Ok(None)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.decode(src)?;
        if src.is_empty() {
            return Ok(None);
        }
        if src.len() < 2 {
            return Err(FrameError::Malformed(
                "a 1-byte datagram is no UDP packet".into(),
            ));
        }
        let declared = usize::from(u16::from_be_bytes([src[0], src[1]]));
        if declared + 2 != src.len() {
            return Err(FrameError::Malformed(format!(
                "UDP packet length field says {declared}, the datagram carries {} byte(s) after it",
                src.len() - 2
            )));
        }
        Ok(Some(src.split().freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = super::super::MAX_FRAME;

    fn buf(h: &str) -> BytesMut {
        BytesMut::from(&hex::decode(h).unwrap()[..])
    }

    const LOGIN: &str = "000f333536333037303432343431303133";
    /// Codec 8, one record: the first example of Teltonika's Codec 8 documentation.
    const WIKI_CODEC8: &str = "000000000000003608010000016b40d8ea30010000000000000000000000000000000105021503010101425e0f01f10000601a014e0000000000000000010000c7cf";

    #[test]
    fn login_frame() {
        let mut b = buf(LOGIN);
        let frame = Framer::new(MAX).decode(&mut b).unwrap().unwrap();
        assert_eq!(hex::encode(&frame), LOGIN);
        assert!(b.is_empty());
    }

    #[test]
    fn wiki_codec8_frame() {
        let mut b = buf(WIKI_CODEC8);
        let frame = Framer::new(MAX).decode(&mut b).unwrap().unwrap();
        assert_eq!(hex::encode(&frame), WIKI_CODEC8);
        assert!(b.is_empty());
    }

    #[test]
    fn bad_crc_is_rejected() {
        let mut h = WIKI_CODEC8.to_owned();
        h.replace_range(h.len() - 4.., "c7ce");
        let err = Framer::new(MAX).decode(&mut buf(&h)).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::BadChecksum {
                    received: 0xc7ce,
                    computed: 0xc7cf
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn oversize_is_rejected_from_the_header_alone() {
        // 8 header bytes announcing 100 000 bytes of data, no body at all.
        let mut b = buf("00000000000186a0");
        let err = Framer::new(MAX).decode(&mut b).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    size: 100_012,
                    max: MAX
                }
            ),
            "{err}"
        );
        // A limit below a real frame refuses it too.
        let err = Framer::new(50).decode(&mut buf(WIKI_CODEC8)).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { size: 66, max: 50 }),
            "{err}"
        );
    }

    #[test]
    fn frame_split_across_reads() {
        let bytes = hex::decode(WIKI_CODEC8).unwrap();
        let mut framer = Framer::new(MAX);
        let mut b = BytesMut::new();
        for (i, chunk) in bytes.chunks(5).enumerate() {
            b.extend_from_slice(chunk);
            let out = framer.decode(&mut b).unwrap();
            if (i + 1) * 5 < bytes.len() {
                assert!(out.is_none(), "frame yielded early at chunk {i}");
                // The whole frame is reserved once the header is known.
                if b.len() >= 8 {
                    assert!(b.capacity() >= bytes.len());
                }
            } else {
                assert_eq!(out.unwrap()[..], bytes[..]);
            }
        }
        assert!(b.is_empty());
    }

    #[test]
    fn two_frames_in_one_buffer_come_out_one_at_a_time() {
        let mut b = buf(&format!("{LOGIN}{WIKI_CODEC8}"));
        let mut framer = Framer::new(MAX);
        assert_eq!(hex::encode(framer.decode(&mut b).unwrap().unwrap()), LOGIN);
        assert_eq!(
            hex::encode(&b),
            WIKI_CODEC8,
            "the second frame is left untouched"
        );
        assert_eq!(
            hex::encode(framer.decode(&mut b).unwrap().unwrap()),
            WIKI_CODEC8
        );
        assert!(framer.decode(&mut b).unwrap().is_none());
    }

    #[test]
    fn pings_are_consumed_and_ignored() {
        let mut framer = Framer::new(MAX);
        let mut b = buf("ff");
        assert!(framer.decode(&mut b).unwrap().is_none());
        assert!(b.is_empty());
        let mut b = buf(&format!("ffff{WIKI_CODEC8}ff"));
        assert_eq!(
            hex::encode(framer.decode(&mut b).unwrap().unwrap()),
            WIKI_CODEC8
        );
        assert_eq!(
            hex::encode(&b),
            "ff",
            "a ping after the frame waits for the next call"
        );
        assert!(framer.decode(&mut b).unwrap().is_none());
        assert!(b.is_empty());
    }

    #[test]
    fn garbage_is_malformed() {
        let mut framer = Framer::new(MAX);
        for garbage in [
            "474554202f",
            "01",
            "000f3335363330373034324134",
            "0000000100",
            "000000000000000108",
            "0040",
        ] {
            let err = framer.decode(&mut buf(garbage)).unwrap_err();
            assert!(matches!(err, FrameError::Malformed(_)), "{garbage}: {err}");
        }
        // Fewer bytes than a header: wait, unless they already show garbage.
        assert!(framer.decode(&mut buf("00")).unwrap().is_none());
        assert!(framer.decode(&mut buf("000000")).unwrap().is_none());
        assert!(framer.decode(&mut buf("000f3335")).unwrap().is_none());
    }

    #[test]
    fn a_datagram_is_one_packet_whose_length_field_must_fit() {
        let packet = crate::teltonika::encode::udp_packet(
            7,
            1,
            "356307042441013",
            crate::teltonika::encode::AvlCodec::Codec8,
            &[],
        )
        .unwrap();
        let mut f = DatagramFramer::new(MAX);
        let mut b = BytesMut::from(&packet[..]);
        assert_eq!(f.decode(&mut b).unwrap(), None, "nothing before the end");
        assert_eq!(f.decode_eof(&mut b).unwrap().unwrap(), packet);
        assert!(b.is_empty());
        // One byte more or less than the length field says: refused.
        let mut longer = BytesMut::from(&packet[..]);
        longer.extend_from_slice(&[0]);
        assert!(matches!(
            f.decode_eof(&mut longer),
            Err(FrameError::Malformed(_))
        ));
        let mut shorter = BytesMut::from(&packet[..packet.len() - 1]);
        assert!(matches!(
            f.decode_eof(&mut shorter),
            Err(FrameError::Malformed(_))
        ));
        let mut big = BytesMut::from(&vec![0u8; 64][..]);
        assert!(matches!(
            DatagramFramer::new(32).decode_eof(&mut big),
            Err(FrameError::TooLarge { size: 64, max: 32 })
        ));
    }
}
