//! Cuts a Ruptela TCP stream into packets.
//!
//! A packet announces its size in its first two bytes (IMEI, command and
//! payload; the length field and CRC add four). The size is checked against
//! `max_frame` before any of the body is buffered, and the CRC of every
//! complete packet is checked before it is yielded. Ruptela has no sync
//! bytes, so garbage cannot be skipped: a length below the smallest packet,
//! above the maximum, or a wrong CRC is an error and the connection closes.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::FrameError;

use super::frame::{crc, MIN_PACKET};

#[derive(Debug)]
pub struct Framer {
    max_frame: usize,
}

impl Framer {
    /// A framer refusing packets above `max_frame` bytes (whole packet).
    pub fn new(max_frame: usize) -> Self {
        Framer { max_frame }
    }
}

impl Decoder for Framer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if src.len() < 2 {
            return Ok(None);
        }
        let total = usize::from(u16::from_be_bytes([src[0], src[1]])) + 4;
        if total < MIN_PACKET {
            return Err(FrameError::Malformed(format!(
                "packet length {} is below the minimum {} (IMEI and command)",
                total - 4,
                MIN_PACKET - 4
            )));
        }
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
        let received = u16::from_be_bytes([src[total - 2], src[total - 1]]);
        let computed = crc(&src[2..total - 2]);
        if received != computed {
            return Err(FrameError::BadChecksum {
                received: u32::from(received),
                computed: u32::from(computed),
            });
        }
        Ok(Some(src.split_to(total).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruptela::MAX_FRAME;

    const RECORDS: &str = "00560003116e7438a7a50100015565cbb9000020fd21300f113f4600005f000600090d090805011b13cf00020003001c012029ad00041d31dd1e0ebd160000c50000047200000000d0000000004100016a2a960000a5a300c9ee";

    #[test]
    fn cuts_packets_split_anywhere() {
        let one = hex::decode(RECORDS).unwrap();
        let stream = [one.clone(), one.clone()].concat();
        for split in 0..stream.len() {
            let mut f = Framer::new(MAX_FRAME);
            let mut b = BytesMut::from(&stream[..split]);
            let mut got = Vec::new();
            while let Some(frame) = f.decode(&mut b).unwrap() {
                got.push(frame);
            }
            b.extend_from_slice(&stream[split..]);
            while let Some(frame) = f.decode(&mut b).unwrap() {
                got.push(frame);
            }
            assert_eq!(got.len(), 2, "split at {split}");
            assert!(got.iter().all(|g| g[..] == one[..]));
            assert!(b.is_empty());
        }
    }

    #[test]
    fn bad_crc_short_and_large() {
        let mut bad = hex::decode(RECORDS).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            Framer::new(MAX_FRAME).decode(&mut BytesMut::from(&bad[..])),
            Err(FrameError::BadChecksum { .. })
        ));
        assert!(matches!(
            Framer::new(MAX_FRAME).decode(&mut BytesMut::from(&[0u8, 3, 1, 2, 3][..])),
            Err(FrameError::Malformed(_))
        ));
        // The size is refused from the header alone.
        let mut b = BytesMut::from(&[0xffu8, 0xff][..]);
        assert!(matches!(
            Framer::new(MAX_FRAME).decode(&mut b),
            Err(FrameError::TooLarge { size: 65539, .. })
        ));
        let mut b = BytesMut::from(&[0x00u8][..]);
        assert_eq!(Framer::new(MAX_FRAME).decode(&mut b).unwrap(), None);
    }
}
