//! The server side of one Ruptela connection.
//!
//! Every packet carries the IMEI, so the first packet identifies the
//! connection and a packet with another IMEI on it is refused
//! (`BadIdentity`). The CRC is checked again here (the framer checked it on
//! the stream; this also holds for a packet handed over on its own).
//!
//! Answers are `len:u16 = 2`, `100 + command`, `01`, CRC-16/KERMIT:
//!
//! * records (`1`) and extended records (`68`) → `00 02 64 01 13 bc`
//!   (stored; the device deletes what it sees acknowledged);
//! * DTCs (`9`) → `00 02 6d 01 c4 a4` (stored);
//! * identification (`15`) → `00 02 73 01 cb 25` (stored: it carries
//!   firmware versions);
//! * heartbeat (`16`) → `00 02 74 01 86 2d` (not stored);
//! * command responses and file transfers → stored, no answer (a file
//!   transfer continues only when the server asks for the next part, which
//!   fleetbus does not do).

use crate::{FrameKind, Handled, Pinned, SessionError};

use super::encode;
use super::frame::{self, Packet};

#[derive(Debug, Default)]
pub struct Session {
    device: Pinned,
}

impl Session {
    pub fn new() -> Self {
        Session::default()
    }

    pub fn device_id(&self) -> Option<&str> {
        self.device.get()
    }

    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Handled, SessionError> {
        let p = Packet::parse(frame).map_err(SessionError::Malformed)?;
        if !p.crc_ok() {
            return Err(SessionError::BadChecksum {
                received: u32::from(p.received_crc),
                computed: u32::from(p.computed_crc),
            });
        }
        let id = p
            .device_id()
            .ok_or_else(|| SessionError::BadIdentity(format!("IMEI {}", p.imei)))?;
        self.device.pin(&id)?;
        let (kind, store, reply) = match p.command {
            frame::RECORDS | frame::EXTENDED_RECORDS | frame::DTCS => {
                (FrameKind::Data, true, Some(encode::ack(p.command)))
            }
            frame::IDENTIFICATION => (
                FrameKind::Login { device_id: id },
                true,
                Some(encode::ack(p.command)),
            ),
            frame::HEARTBEAT => (FrameKind::Heartbeat, false, Some(encode::ack(p.command))),
            _ => (FrameKind::Data, true, None),
        };
        Ok(Handled { kind, store, reply })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn answers() {
        let mut s = Session::new();
        let r = s.on_frame(&h("00560003116e7438a7a50100015565cbb9000020fd21300f113f4600005f000600090d090805011b13cf00020003001c012029ad00041d31dd1e0ebd160000c50000047200000000d0000000004100016a2a960000a5a300c9ee")).unwrap();
        assert_eq!(r.kind, FrameKind::Data);
        assert!(r.store);
        assert_eq!(&r.reply.unwrap()[..], &h("0002640113bc")[..]);
        assert_eq!(s.device_id(), Some("863591024076709"));

        let hb = encode::heartbeat(863591024076709);
        let r = s.on_frame(&hb).unwrap();
        assert_eq!((r.kind, r.store), (FrameKind::Heartbeat, false));
        assert_eq!(&r.reply.unwrap()[..], &h("00027401862d")[..]);

        let r = s
            .on_frame(&h(
                "0011000315a07f440b1d07534554494f20636f6e66696775726174696f6e2064617461206f6b341c",
            ))
            .err();
        assert!(matches!(r, Some(SessionError::BadIdentity(_))));
    }

    #[test]
    fn dtc_and_identification_acks() {
        assert_eq!(&encode::ack(9)[..], &h("00026d01c4a4")[..]);
        assert_eq!(&encode::ack(15)[..], &h("00027301cb25")[..]);
        let mut s = Session::new();
        let r = s.on_frame(&encode::identification(1, b"\x00\x01")).unwrap();
        assert!(matches!(r.kind, FrameKind::Login { .. }));
        assert!(r.store);
    }

    #[test]
    fn refuses_bad_crc_and_zero_imei() {
        let mut bad = encode::heartbeat(863591024076709).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(
            Session::new().on_frame(&bad),
            Err(SessionError::BadChecksum { .. })
        ));
        assert!(matches!(
            Session::new().on_frame(&encode::heartbeat(0)),
            Err(SessionError::BadIdentity(_))
        ));
        assert!(matches!(
            Session::new().on_frame(&[0, 1, 2]),
            Err(SessionError::Malformed(_))
        ));
    }
}
