//! The server side of one H02 connection (or one UDP datagram).
//!
//! H02 has no login: every message carries the device id, and the first one
//! identifies the connection. Answers are Traccar's (the HuaSunTeK document
//! makes them optional; devices that expect them wait for them):
//!
//! * `V1` position → `*HQ,<id>,V4,V1,<yyyyMMddHHmmss>#` (server time, UTC);
//! * `NBR` cell towers → `*HQ,<id>,V4,NBR,<yyyyMMddHHmmss>#`;
//! * `V0` / `HTBT` heartbeat → the message up to its type, closed: `*HQ,<id>,HTBT#`;
//! * everything else → nothing.
//!
//! Choices:
//! * Every text and binary message is stored (the parser dead-letters what
//!   it cannot read); `X` messages, whose meaning nobody documents, are not.
//! * A message with another device id than the first one on the same
//!   connection is refused (`BadIdentity`), so that one connection never
//!   mixes two devices' data; a message without a usable id likewise.
//! * There is no checksum in H02.

use chrono::{DateTime, Utc};

use crate::{FrameKind, Handled, Pinned, SessionError};

use super::encode;
use super::message::Message;

#[derive(Debug)]
pub struct Session {
    device: Pinned,
    clock: fn() -> DateTime<Utc>,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Session::with_clock(Utc::now)
    }

    /// A session reading the time of its answers from `clock`.
    pub fn with_clock(clock: fn() -> DateTime<Utc>) -> Self {
        Session {
            device: Pinned::default(),
            clock,
        }
    }

    pub fn device_id(&self) -> Option<&str> {
        self.device.get()
    }

    /// Validates one message (as cut by the framer) and says whether to
    /// store it and what to answer.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Handled, SessionError> {
        let message = Message::parse(frame).map_err(SessionError::Malformed)?;
        if let Message::Other = message {
            return Ok(Handled::heartbeat(None));
        }
        let id = message.device_id().ok_or_else(|| {
            SessionError::BadIdentity("H02 message without a decimal device id".into())
        })?;
        self.device.pin(&id)?;
        let Message::Text(text) = message else {
            return Ok(Handled::data(None));
        };
        let (kind, reply) = match text.kind {
            "V0" | "HTBT" => (
                FrameKind::Heartbeat,
                Some(encode::heartbeat_reply(text.head)),
            ),
            "V1" | "NBR" => (
                FrameKind::Data,
                Some(encode::v4_reply(&id, text.kind, (self.clock)())),
            ),
            _ => (FrameKind::Data, None),
        };
        Ok(Handled {
            kind,
            store: true,
            reply,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn clock() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 5).unwrap()
    }

    #[test]
    fn position_is_stored_and_answered() {
        let mut s = Session::with_clock(clock);
        let h = s
            .on_frame(
                b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF#",
            )
            .unwrap();
        assert_eq!(h.kind, FrameKind::Data);
        assert!(h.store);
        assert_eq!(
            &h.reply.unwrap()[..],
            b"*HQ,4210051415,V4,V1,20240501123005#"
        );
        assert_eq!(s.device_id(), Some("4210051415"));
    }

    #[test]
    fn heartbeat_is_echoed() {
        let mut s = Session::new();
        let h = s.on_frame(b"*HQ,135790246811220,HTBT,100#").unwrap();
        assert_eq!(h.kind, FrameKind::Heartbeat);
        assert!(h.store);
        assert_eq!(&h.reply.unwrap()[..], b"*HQ,135790246811220,HTBT#");
        let h = s.on_frame(b"*HQ,135790246811220,V0#\r\n").unwrap();
        assert_eq!(&h.reply.unwrap()[..], b"*HQ,135790246811220,V0#");
    }

    #[test]
    fn nbr_is_answered_others_not() {
        let mut s = Session::with_clock(clock);
        let h = s
            .on_frame(b"*HQ,7401004662,NBR,160453,234,10,0,2,21580,27766,-67,291019,FFFFFBFF,6#")
            .unwrap();
        assert_eq!(
            &h.reply.unwrap()[..],
            b"*HQ,7401004662,V4,NBR,20240501123005#"
        );
        let h = s
            .on_frame(b"*HQ,7401004662,LINK,180902,15,0,84,0,0,240517,FFFFFBFF#")
            .unwrap();
        assert!(h.store);
        assert_eq!(h.reply, None);
    }

    #[test]
    fn binary_is_stored_without_answer() {
        let mut s = Session::new();
        let b = hex::decode("2441060116601245431311165035313006004318210e000000fffffbffff0024")
            .unwrap();
        let h = s.on_frame(&b).unwrap();
        assert!(h.store);
        assert_eq!(h.reply, None);
        assert_eq!(s.device_id(), Some("4106011660"));
    }

    #[test]
    fn identity_rules() {
        let mut s = Session::new();
        assert!(matches!(
            s.on_frame(b"*HQ,,V1,173212,A,2225.78879,S,02829.19021,E,0.00,0,290418,FFFFFBFF#"),
            Err(SessionError::BadIdentity(_))
        ));
        s.on_frame(b"*HQ,1,V0#").unwrap();
        assert!(matches!(
            s.on_frame(b"*HQ,2,V0#"),
            Err(SessionError::BadIdentity(_))
        ));
        assert!(matches!(
            s.on_frame(b"hello"),
            Err(SessionError::Malformed(_))
        ));
        let x = [b'X'; 32];
        assert!(!s.on_frame(&x).unwrap().store);
    }
}
