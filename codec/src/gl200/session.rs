//! The server side of one Queclink connection.
//!
//! Every text message carries the IMEI (15 digits, or 14 hex digits), so
//! the first one identifies the connection and another IMEI is refused
//! (`BadIdentity`). Binary `+RSP`/`+EVT`/`+INF` messages carry the IMEI as
//! a 64-bit number (printed with at least 15 digits, as Traccar does); other
//! binary messages are stored on an identified connection and refused
//! before (`NotIdentified`). Binary messages get no answer.
//!
//! Answers: the heartbeat `+ACK:GTHBD,<version>,<imei>,…,<count>$` →
//! `+SACK:GTHBD,<version>,<count>$` (not stored; in the long-connection
//! mode the device expects it, as Queclink's protocol documents say).
//! Reports are stored without an answer: the per-message `+SACK:<count>$`
//! is only expected when the device's `SACK enable` setting is on (off by
//! default; Traccar does not send it unless configured to).

use crate::{Handled, Pinned, SessionError};

use super::encode;
use super::message::{device_id, fields, header, is_binary, valid_id};

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
        if is_binary(frame) {
            // `+RSP`/`+EVT`/`+INF` carry the IMEI; others (`+ACK`, `+HBD`,
            // `+LGN`, …) are accepted on an identified connection only.
            self.device.pin_or_known(device_id(frame).as_deref())?;
            return Ok(Handled::data(None));
        }
        let f =
            fields(frame).ok_or_else(|| SessionError::Malformed("message is not text".into()))?;
        let (kind, ty) =
            header(&f).ok_or_else(|| SessionError::Malformed(format!("header {:?}", f.first())))?;
        let id = f
            .get(2)
            .filter(|id| valid_id(id))
            .ok_or_else(|| SessionError::BadIdentity(format!("unique id {:?}", f.get(2))))?;
        self.device.pin(id)?;
        if kind == "ACK" && ty == "HBD" {
            let count = f.last().map(String::as_str).unwrap_or("");
            return Ok(Handled::heartbeat(Some(encode::heartbeat_ack(
                &f[1], count,
            ))));
        }
        Ok(Handled::data(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameKind;

    #[test]
    fn heartbeat_and_reports() {
        let mut s = Session::new();
        let h = s
            .on_frame(b"+ACK:GTHBD,0F0106,862193020451183,,20160727001255,3B7D")
            .unwrap();
        assert_eq!((h.kind, h.store), (FrameKind::Heartbeat, false));
        assert_eq!(&h.reply.unwrap()[..], b"+SACK:GTHBD,0F0106,3B7D$");
        assert!(
            s.on_frame(b"+RESP:GTPFA,F50201,862193020451183,GL300M,20190208124849,0BD4")
                .unwrap()
                .store
        );
        assert!(matches!(
            s.on_frame(b"+RESP:GTPFA,F50201,866425030235982,GL300M,20190208124849,0BD4"),
            Err(SessionError::BadIdentity(_))
        ));
        assert_eq!(
            Session::new().on_frame(&hex::decode("2b41434b017f2445010101").unwrap()),
            Err(SessionError::NotIdentified)
        );
        let evt = hex::decode("2b4556542d00fc1fbf006345010202095632540300034305").unwrap();
        let mut s = Session::new();
        assert!(s.on_frame(&evt).unwrap().store);
        assert_eq!(s.device_id(), Some("6211119207959184133"));
    }
}
