//! The server side of one Suntech connection.
//!
//! Every report carries the device id, so the first one identifies the
//! connection; a report with another id is refused (`BadIdentity`). A
//! message without an id (`-Error`, a command answer's echo) is accepted
//! once the connection is identified, refused before (`NotIdentified`).
//! Suntech devices wait for no answer (Traccar sends none either), so the
//! session never replies. Keep-alives (`ALV`) are not stored.

use crate::{Handled, Pinned, SessionError};

use super::message::{device_id, fields, is_binary};

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
        if frame.is_empty() {
            return Err(SessionError::Malformed("empty message".into()));
        }
        self.device.pin_or_known(device_id(frame).as_deref())?;
        let keep_alive =
            !is_binary(frame) && fields(frame).first().is_some_and(|h| h.ends_with("ALV"));
        Ok(if keep_alive {
            Handled::heartbeat(None)
        } else {
            Handled::data(None)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameKind;

    #[test]
    fn identity_and_kinds() {
        let mut s = Session::new();
        assert_eq!(s.on_frame(b"-Error"), Err(SessionError::NotIdentified));
        let h = s.on_frame(b"SA200ALV;317652").unwrap();
        assert_eq!(
            (h.kind, h.store, h.reply),
            (FrameKind::Heartbeat, false, None)
        );
        assert_eq!(s.device_id(), Some("317652"));
        let h = s
            .on_frame(b"SA200STT;317652;042;20120718;15:37:12;16d41;-15.618755;-056.083241;000.024;000.00;8;1;41548;12.17;100000;2;1979")
            .unwrap();
        assert_eq!((h.kind, h.store), (FrameKind::Data, true));
        assert!(s.on_frame(b"-Error").unwrap().store);
        assert!(matches!(
            s.on_frame(b"SA200ALV;317653"),
            Err(SessionError::BadIdentity(_))
        ));
    }
}
