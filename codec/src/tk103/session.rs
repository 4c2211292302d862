//! The server side of one TK103 connection (or one UDP datagram).
//!
//! Answers, from the TK103 GPRS protocol document (Traccar sends the first
//! two):
//!
//! * handshake `BP00` → `(<id>AP01HSO)` (not stored: it says nothing else);
//! * login `BP05` → `(<id>AP05)` (stored: it carries a position or cells);
//! * alarm `BO01<type>` → `(<id>AS01<type>)`, which stops the device
//!   repeating the alarm;
//! * everything else → stored, no answer.
//!
//! Every message carries the device id, so the first message identifies the
//! connection; a message with another id on the same connection is refused
//! (`BadIdentity`). TK103 has no checksum.

use bytes::Bytes;

use crate::{FrameKind, Handled, Pinned, SessionError};

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
        let m = Message::parse(frame).map_err(SessionError::Malformed)?;
        let id = m
            .device_id()
            .ok_or_else(|| SessionError::BadIdentity(format!("device id {:?}", m.id)))?;
        self.device.pin(&id)?;
        let (kind, store, reply): (FrameKind, bool, Option<Bytes>) = match m.command {
            "BP00" => (
                FrameKind::Login {
                    device_id: id.clone(),
                },
                false,
                Some(encode::handshake_ack(m.id)),
            ),
            "BP05" => (
                FrameKind::Login {
                    device_id: id.clone(),
                },
                true,
                Some(encode::login_ack(m.id)),
            ),
            "BO01" => {
                let code = m.body.chars().next().filter(char::is_ascii_digit);
                (
                    FrameKind::Data,
                    true,
                    code.map(|code| encode::alarm_ack(m.id, code)),
                )
            }
            _ => (FrameKind::Data, true, None),
        };
        Ok(Handled { kind, store, reply })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let mut s = Session::new();
        let h = s
            .on_frame(b"(027044702512BP00027044702512HSO01A4)")
            .unwrap();
        assert!(!h.store);
        assert_eq!(&h.reply.unwrap()[..], b"(027044702512AP01HSO)");
        assert_eq!(s.device_id(), Some("027044702512"));
        let mut s = Session::new();
        let h = s
            .on_frame(b"(088046338039BP05000088046338039160727A3354.7768N03540.7258E000.0140309065.1000000000L00BEB0D4+017.3)")
            .unwrap();
        assert!(h.store);
        assert_eq!(&h.reply.unwrap()[..], b"(088046338039AP05)");
        let h = s
            .on_frame(
                b"(088046338039BR00151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3)",
            )
            .unwrap();
        assert_eq!((h.kind, h.store, h.reply), (FrameKind::Data, true, None));
        let mut s = Session::new();
        let h = s
            .on_frame(b"(013666666666BO012110925A1234.5678N01234.5678W000.0025948118.7200000000L000024DE)")
            .unwrap();
        assert_eq!(&h.reply.unwrap()[..], b"(013666666666AS012)");
    }

    #[test]
    fn identity_rules() {
        let mut s = Session::new();
        s.on_frame(b"(013632651491,ZC20,180716,144222,6,392,65535,255)")
            .unwrap();
        assert!(matches!(
            s.on_frame(b"(013632651492,ZC20,180716,144222,6,392,65535,255)"),
            Err(SessionError::BadIdentity(_))
        ));
        assert!(matches!(
            Session::new().on_frame(b"(hi)"),
            Err(SessionError::Malformed(_))
        ));
    }
}
