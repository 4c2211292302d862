//! Recognizes what kind of message one frame is, and checks its envelope.
//!
//! The framer, the session and the parser all see the same four shapes; this
//! is the one place that tells them apart:
//!
//! * ping: the single byte `FF`;
//! * IMEI login: `len:u16` + `len` ASCII digits;
//! * TCP AVL packet: `00000000` + `data_len:u32` + data + `crc:u32`;
//! * UDP packet: `len:u16 packet_id:u16 type:u8 avl_packet_id:u8 imei_len:u16
//!   imei` + data, without CRC.
//!
//! Logins and UDP packets both start with a length of everything after it,
//! but a login is digits only, while byte 4 of a UDP packet is its packet type
//! (`01`), never a digit.

use crate::checksum::crc16_ibm;
use crate::read::Reader;
use crate::ParseError;

/// The single byte a device sends to keep an idle connection open.
pub const PING: u8 = 0xFF;

/// The longest IMEI accepted. IMEIs are 15 digits; a little slack allows
/// other identifiers, and anything longer is garbage, not a login.
pub const MAX_IMEI_LEN: usize = 32;

/// Bytes of a TCP AVL packet around its data field: preamble, length, CRC.
pub const TCP_OVERHEAD: usize = 12;

/// The smallest data field: codec id and the two record counts.
pub const MIN_DATA_LEN: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Envelope<'a> {
    Ping,
    Login {
        imei: &'a str,
    },
    /// `data` runs from the codec id to the second record count. `crc` is
    /// the CRC field when the length field matches the frame's size exactly,
    /// as it does for every frame the framer cut; otherwise `None`.
    Tcp {
        data: &'a [u8],
        declared_len: u32,
        crc: Option<u32>,
    },
    Udp {
        packet_id: u16,
        avl_packet_id: u8,
        imei: &'a str,
        data: &'a [u8],
    },
}

impl Envelope<'_> {
    /// The device identity the frame itself carries.
    pub(crate) fn imei(&self) -> Option<&str> {
        match self {
            Envelope::Login { imei } | Envelope::Udp { imei, .. } => Some(imei),
            _ => None,
        }
    }
}

/// `bytes` as an IMEI, if it is 1 to [`MAX_IMEI_LEN`] ASCII digits.
pub(crate) fn imei(bytes: &[u8]) -> Option<&str> {
    let plausible =
        !bytes.is_empty() && bytes.len() <= MAX_IMEI_LEN && bytes.iter().all(u8::is_ascii_digit);
    // Digits are ASCII, so this cannot fail once `plausible` holds.
    plausible.then(|| std::str::from_utf8(bytes).ok()).flatten()
}

pub(crate) fn classify(frame: &[u8]) -> Result<Envelope<'_>, ParseError> {
    if frame == [PING] {
        return Ok(Envelope::Ping);
    }
    if frame.len() >= 4 && frame[..4] == [0, 0, 0, 0] {
        return tcp(frame);
    }
    if frame.len() >= 2 && usize::from(u16::from_be_bytes([frame[0], frame[1]])) == frame.len() - 2
    {
        if let Some(imei) = imei(&frame[2..]) {
            return Ok(Envelope::Login { imei });
        }
        return udp(frame);
    }
    Err(ParseError::Invalid(format!(
        "not a Teltonika frame: starts with {} and is neither a login, an AVL packet nor a UDP packet",
        hex::encode(&frame[..frame.len().min(8)])
    )))
}

fn tcp(frame: &[u8]) -> Result<Envelope<'_>, ParseError> {
    if frame.len() < TCP_OVERHEAD + MIN_DATA_LEN {
        return Err(ParseError::Truncated(format!(
            "AVL packet of {} bytes is shorter than the minimum {}",
            frame.len(),
            TCP_OVERHEAD + MIN_DATA_LEN
        )));
    }
    let declared_len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let declared = usize::try_from(declared_len).unwrap_or(usize::MAX);
    if declared.checked_add(TCP_OVERHEAD) == Some(frame.len()) {
        let crc = u32::from_be_bytes([
            frame[frame.len() - 4],
            frame[frame.len() - 3],
            frame[frame.len() - 2],
            frame[frame.len() - 1],
        ]);
        return Ok(Envelope::Tcp {
            data: &frame[8..8 + declared],
            declared_len,
            crc: Some(crc),
        });
    }
    // Not a frame the framer cut: a hand-copied capture. Trust the length
    // field where it fits (a capture with a clipped CRC), else the size.
    let end = match declared.checked_add(8) {
        Some(end) if declared >= MIN_DATA_LEN && end <= frame.len() => end,
        _ => frame.len() - 4,
    };
    Ok(Envelope::Tcp {
        data: &frame[8..end],
        declared_len,
        crc: None,
    })
}

fn udp(frame: &[u8]) -> Result<Envelope<'_>, ParseError> {
    let mut r = Reader::new(frame);
    r.u16("UDP length")?;
    let packet_id = r.u16("UDP packet id")?;
    r.u8("UDP packet type")?;
    let avl_packet_id = r.u8("AVL packet id")?;
    let imei_len = r.u16("IMEI length")?;
    let raw = r.bytes(usize::from(imei_len), "IMEI")?;
    let imei = imei(raw).ok_or_else(|| {
        ParseError::Invalid(format!(
            "IMEI {:?} is not 1 to {MAX_IMEI_LEN} digits",
            String::from_utf8_lossy(raw)
        ))
    })?;
    let data = r.bytes(r.remaining(), "AVL data")?;
    if data.len() < MIN_DATA_LEN {
        return Err(ParseError::Truncated(format!(
            "UDP packet carries {} byte(s) of AVL data",
            data.len()
        )));
    }
    Ok(Envelope::Udp {
        packet_id,
        avl_packet_id,
        imei,
        data,
    })
}

/// Checks the CRC field of a TCP packet against its data.
pub(crate) fn check_crc(data: &[u8], crc: u32) -> Result<(), ParseError> {
    let computed = u32::from(crc16_ibm(data));
    if crc != computed {
        return Err(ParseError::BadChecksum {
            received: crc,
            computed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(h: &str) -> Vec<u8> {
        hex::decode(h).unwrap()
    }

    #[test]
    fn recognizes_each_shape() {
        assert_eq!(classify(&[0xff]).unwrap(), Envelope::Ping);
        let login = bytes("000f333536333037303432343431303133");
        assert_eq!(
            classify(&login).unwrap(),
            Envelope::Login {
                imei: "356307042441013"
            }
        );
        let tcp = bytes("000000000000000308000000000000");
        assert!(matches!(
            classify(&tcp).unwrap(),
            Envelope::Tcp {
                declared_len: 3,
                crc: Some(0),
                ..
            }
        ));
        let udp = bytes("0018cafe0105000f333537343534303732373133393735080000");
        match classify(&udp).unwrap() {
            Envelope::Udp {
                packet_id,
                avl_packet_id,
                imei,
                data,
            } => {
                assert_eq!(
                    (packet_id, avl_packet_id, imei),
                    (0xcafe, 5, "357454072713975")
                );
                assert_eq!(data, &[8, 0, 0]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(classify(b"").is_err());
        assert!(classify(b"GET / HTTP/1.1\r\n").is_err());
        assert!(classify(&bytes("000300")).is_err());
        // A login length that matches but with a letter in the IMEI is not a
        // login, and too short for a UDP packet.
        assert!(classify(&bytes("000331a233")).is_err());
    }

    #[test]
    fn crc_check() {
        let data = [8u8, 0, 0];
        let crc = u32::from(crc16_ibm(&data));
        check_crc(&data, crc).unwrap();
        assert!(matches!(
            check_crc(&data, crc ^ 1),
            Err(ParseError::BadChecksum { .. })
        ));
    }

    #[test]
    fn inconsistent_length_fields_still_find_the_data() {
        // Zeroed length and CRC (an old hand-made capture): data is the rest.
        match classify(&bytes("000000000000000008000000000000")).unwrap() {
            Envelope::Tcp {
                data, crc: None, ..
            } => assert_eq!(data, &[8, 0, 0]),
            other => panic!("{other:?}"),
        }
        // A clipped CRC: the length field still says where the data ends.
        match classify(&bytes("000000000000000408000000000000")).unwrap() {
            Envelope::Tcp {
                data, crc: None, ..
            } => assert_eq!(data, &[8, 0, 0, 0]),
            other => panic!("{other:?}"),
        }
    }
}
