//! The server side of one Meitrack connection.
//!
//! Every message carries the IMEI, so the first message identifies the
//! connection and a message with another IMEI is refused (`BadIdentity`).
//! The checksum is checked (`BadChecksum`).
//!
//! Answers (`@@<flag><len>,<imei>,<command>,<data>*XX\r\n`, with the flag
//! of the device's message):
//!
//! * `CCC` (cached binary records) → `@@…,CCC,<records>*XX`: the device
//!   deletes that many records from its cache (stored);
//! * `AAC` → `@@…,AAC,1*XX` (not stored: it carries nothing else);
//! * everything else → stored, no answer. `AAA` reports need none; `CCE`
//!   batches and photo parts (`D00`) are stored without an answer: fleetbus
//!   does not request further photo parts.

use crate::{Handled, Pinned, SessionError};

use super::binary;
use super::encode;
use super::message::Message;

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
        let m = Message::parse(frame).map_err(SessionError::Malformed)?;
        m.check()
            .map_err(|(received, computed)| SessionError::BadChecksum { received, computed })?;
        let id = m
            .device_id()
            .ok_or_else(|| SessionError::BadIdentity(format!("IMEI {:?}", m.imei)))?;
        self.device.pin(&id)?;
        let handled = match m.command {
            "CCC" => {
                let count = binary::ccc_count(m.data)
                    .map_err(|e| SessionError::Malformed(e.to_string()))?;
                Handled::data(Some(encode::ccc_ack(m.flag, &id, count)))
            }
            "AAC" => Handled::heartbeat(Some(encode::aac_ack(m.flag, &id))),
            _ => Handled::data(None),
        };
        Ok(handled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameKind;

    #[test]
    fn answers() {
        let mut s = Session::new();
        let h = s.on_frame(b"$$z27,861451040910625,AAC,1*D3\r\n").unwrap();
        assert_eq!((h.kind, h.store), (FrameKind::Heartbeat, false));
        assert_eq!(&h.reply.unwrap()[..], b"@@z27,861451040910625,AAC,1*0B\r\n");
        assert_eq!(s.device_id(), Some("861451040910625"));
        assert!(matches!(
            s.on_frame(b"$$u28,864606044993987,D82,0*D6"),
            Err(SessionError::BadIdentity(_))
        ));

        let ccc = hex::decode("24245838362c3336393830303031343039303032312c4343432c020134000100000023381f91ffe354b806c5e3121b0009130000000000000000d33801007cbf0200fe0101000435feeb02000500a3010000000000002a62650d0a").unwrap();
        let h = Session::new().on_frame(&ccc).unwrap();
        assert!(h.store);
        assert_eq!(&h.reply.unwrap()[..], b"@@X27,369800014090021,CCC,1*E4\r\n");

        let h = Session::new()
            .on_frame(b"$$E141,863071013799553,AAA,35,-1.264521,36.801128,150307132846,A,11,20,0.2,0,5,1767,84045888,36496633,639|02|100E|844,1234,0018|||025D|00CB,*17\r\n")
            .unwrap();
        assert_eq!((h.kind, h.store, h.reply), (FrameKind::Data, true, None));
    }

    #[test]
    fn refuses_bad_checksum() {
        assert!(matches!(
            Session::new().on_frame(b"$$z27,861451040910625,AAC,1*D4\r\n"),
            Err(SessionError::BadChecksum {
                received: 0xd4,
                computed: 0xd3
            })
        ));
        assert!(matches!(
            Session::new().on_frame(b"$$z27,86145104091062x,AAC,1*D4"),
            Err(SessionError::BadChecksum { .. }) | Err(SessionError::BadIdentity(_))
        ));
        assert!(matches!(
            Session::new().on_frame(b"nope"),
            Err(SessionError::Malformed(_))
        ));
    }
}
