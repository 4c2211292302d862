//! The envelope of a Ruptela packet, shared by the framer, the session and
//! the parser.

use crc::{Crc, CRC_16_KERMIT};

/// CRC-16/KERMIT (poly 0x1021 reflected, init 0), as Ruptela computes it
/// over IMEI, command and payload.
static KERMIT: Crc<u16> = Crc::<u16>::new(&CRC_16_KERMIT);

pub(crate) fn crc(data: &[u8]) -> u16 {
    KERMIT.checksum(data)
}

/// Length field, IMEI, command byte and CRC: the smallest packet.
pub(crate) const MIN_PACKET: usize = 2 + 8 + 1 + 2;

pub(crate) const RECORDS: u8 = 1;
pub(crate) const DEVICE_CONFIGURATION: u8 = 2;
pub(crate) const DEVICE_VERSION: u8 = 3;
pub(crate) const FIRMWARE_UPDATE: u8 = 4;
pub(crate) const SMS_VIA_GPRS_RESPONSE: u8 = 7;
pub(crate) const DTCS: u8 = 9;
pub(crate) const IDENTIFICATION: u8 = 15;
pub(crate) const HEARTBEAT: u8 = 16;
pub(crate) const SET_IO: u8 = 17;
pub(crate) const FILES: u8 = 37;
pub(crate) const EXTENDED_RECORDS: u8 = 68;

/// One packet, split into its parts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    pub imei: u64,
    pub command: u8,
    pub payload: &'a [u8],
    /// The CRC the packet carries.
    pub received_crc: u16,
    /// The CRC of the packet's bytes between length field and CRC.
    pub computed_crc: u16,
}

impl<'a> Packet<'a> {
    /// Splits a whole packet. The CRC is computed over the bytes actually
    /// between the length field and the CRC; the length field itself is not
    /// compared with the packet's size here (the framer cut the packet by it,
    /// and one firmware's SMS answers carry a wrong length with a right CRC).
    pub(crate) fn parse(frame: &'a [u8]) -> Result<Packet<'a>, String> {
        if frame.len() < MIN_PACKET {
            return Err(format!(
                "{} byte(s), a packet has at least {MIN_PACKET}",
                frame.len()
            ));
        }
        let body = &frame[2..frame.len() - 2];
        let mut imei = [0u8; 8];
        imei.copy_from_slice(&body[..8]);
        Ok(Packet {
            imei: u64::from_be_bytes(imei),
            command: body[8],
            payload: &body[9..],
            received_crc: u16::from_be_bytes([frame[frame.len() - 2], frame[frame.len() - 1]]),
            computed_crc: crc(body),
        })
    }

    pub(crate) fn crc_ok(&self) -> bool {
        self.received_crc == self.computed_crc
    }

    /// The IMEI as 15 digits (leading zeros kept); `None` for zero or for a
    /// number too long to be an IMEI.
    pub(crate) fn device_id(&self) -> Option<String> {
        (self.imei != 0 && self.imei < 10u64.pow(15)).then(|| format!("{:015}", self.imei))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kermit_check_value_and_ack() {
        assert_eq!(crc(b"123456789"), 0x2189);
        // The records acknowledgement `00 02 64 01 13 bc`.
        assert_eq!(crc(&[0x64, 0x01]), 0x13bc);
    }

    #[test]
    fn split() {
        let bytes = hex::decode(
            "0011000315a07f440b1d07534554494f20636f6e66696775726174696f6e2064617461206f6b341c",
        )
        .unwrap();
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(p.device_id().as_deref(), Some("868204004248349"));
        assert_eq!(p.command, SMS_VIA_GPRS_RESPONSE);
        assert!(p.crc_ok());
        assert!(Packet::parse(&bytes[..12]).is_err());
    }
}
