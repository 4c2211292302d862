//! The server side of one GPS103 connection (or one UDP datagram).
//!
//! * Login `##,imei:<imei>,A;` → `LOAD` (not stored: it says nothing else).
//! * Heartbeat `<imei>;` → `ON` (not stored). It also identifies the
//!   connection if no login came first (devices reconnecting mid-session).
//! * Data `imei:<imei>,…` → stored; `help me` (SOS) is answered with
//!   `**,imei:<imei>,E;`, which stops the device repeating the alarm; other
//!   messages get no answer. A data message after a heartbeat in the same
//!   frame (`<imei>imei:…`) gets `ON` first, as in Traccar.
//!
//! Data messages carry the IMEI, so a connection (or a datagram) without a
//! login is identified by its first message. A message with another IMEI
//! than the connection's is refused (`BadIdentity`), so that one connection
//! never mixes two devices' data. GPS103 has no checksum.

use bytes::Bytes;

use crate::{Handled, Pinned, SessionError};

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

    /// Validates one message (as cut by the framer) and says whether to
    /// store it and what to answer.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Handled, SessionError> {
        match Message::parse(frame).map_err(SessionError::Malformed)? {
            Message::Login { imei } => {
                let imei = imei.ok_or_else(|| {
                    SessionError::BadIdentity("login without a decimal IMEI".into())
                })?;
                self.device.pin(imei)?;
                Ok(Handled::login(imei, Some(encode::login_ack())))
            }
            Message::Heartbeat { imei } => {
                self.device.pin(imei)?;
                Ok(Handled::heartbeat(Some(encode::heartbeat_ack())))
            }
            Message::Data(d) => {
                self.device.pin(d.imei)?;
                let mut reply = Vec::new();
                if d.after_heartbeat {
                    reply.extend_from_slice(&encode::heartbeat_ack());
                }
                if d.fields.first() == Some(&"help me") {
                    reply.extend_from_slice(&encode::sos_ack(d.imei));
                }
                Ok(Handled::data(
                    (!reply.is_empty()).then(|| Bytes::from(reply)),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameKind;

    #[test]
    fn login_heartbeat_data() {
        let mut s = Session::new();
        let h = s.on_frame(b"##,imei:359586015829802,A;").unwrap();
        assert_eq!(
            h.kind,
            FrameKind::Login {
                device_id: "359586015829802".into()
            }
        );
        assert!(!h.store);
        assert_eq!(&h.reply.unwrap()[..], b"LOAD");
        let h = s.on_frame(b"359586015829802;").unwrap();
        assert_eq!((h.kind, h.store), (FrameKind::Heartbeat, false));
        assert_eq!(&h.reply.unwrap()[..], b"ON");
        let h = s
            .on_frame(b"imei:359586015829802,tracker,0809231929,,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;")
            .unwrap();
        assert_eq!((h.kind, h.store, h.reply), (FrameKind::Data, true, None));
        let h = s
            .on_frame(b"imei:359586015829802,help me,0809231429,13554900601,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;")
            .unwrap();
        assert_eq!(&h.reply.unwrap()[..], b"**,imei:359586015829802,E;");
    }

    #[test]
    fn identity_rules() {
        let mut s = Session::new();
        // Data without a login identifies the connection.
        s.on_frame(b"imei:1,tracker,,,L,;").unwrap();
        assert_eq!(s.device_id(), Some("1"));
        assert!(matches!(
            s.on_frame(b"imei:2,tracker,,,L,;"),
            Err(SessionError::BadIdentity(_))
        ));
        assert!(matches!(
            Session::new().on_frame(b"##,imei:abc,A;"),
            Err(SessionError::BadIdentity(_))
        ));
        assert!(matches!(
            Session::new().on_frame(b"hello;"),
            Err(SessionError::Malformed(_))
        ));
    }
}
