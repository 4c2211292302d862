//! The server side of one watch connection.
//!
//! Answers (the vendors' protocol documents and Traccar agree on the first
//! three; Traccar sends the others):
//!
//! * link keep `LK` → `LK` (a watch that gets no answer reconnects, then
//!   reboots); stored when it carries steps and battery, answered after the
//!   store then, else not stored and answered at once;
//! * alarm `AL…` (`AL`, `AL_LTE`, …) → `AL` after the store;
//! * `CONFIG` → `CONFIG,1` after the store;
//! * `INIT` → `INIT,1` (not stored: nothing else in it is read);
//! * voice fragment `JXTK` → `JXTKR,1` after the store;
//! * offline voice query `TKQ`/`TKQ2` → echoed (not stored: no data);
//! * positions (`UD`, `UD2`, `UD_LTE`, `WT`, …) and everything else → stored,
//!   no answer. A watch learns that a position was stored from the answer to
//!   the next `LK`: answers go out in frame order, and none after a frame
//!   that could not be stored.
//!
//! Every answer is `[<vendor>*<id>*[<index>*]<length>*<content>]` with the
//! message's own vendor, id and index. Every message carries the device id,
//! so the first message identifies the connection; a message with another
//! id on the same connection is refused (`BadIdentity`). No checksum.

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
        let answer = |content: &str| Some(encode::answer(m.vendor, m.id, m.index, content));
        let kind = m.kind();
        Ok(match kind {
            "LK" if m.body().is_empty() => Handled::heartbeat(answer("LK")),
            "LK" => Handled {
                kind: FrameKind::Heartbeat,
                store: true,
                reply: answer("LK"),
            },
            "TKQ" | "TKQ2" => Handled::heartbeat(answer(kind)),
            "INIT" => Handled::login(id, answer("INIT,1")),
            "CONFIG" => Handled::data(answer("CONFIG,1")),
            "JXTK" => Handled::data(answer("JXTKR,1")),
            k if k.starts_with("AL") => Handled::data(answer("AL")),
            _ => Handled::data(None::<Bytes>),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(h: &Handled) -> &[u8] {
        h.reply.as_deref().unwrap_or_default()
    }

    #[test]
    fn answers() {
        let mut s = Session::new();
        let h = s.on_frame(b"[SG*8800000015*0002*LK]").unwrap();
        assert_eq!((h.kind.clone(), h.store), (FrameKind::Heartbeat, false));
        assert_eq!(reply(&h), b"[SG*8800000015*0002*LK]");
        assert_eq!(s.device_id(), Some("8800000015"));
        let h = s.on_frame(b"[SG*8800000015*000D*LK,50,100,100]").unwrap();
        assert_eq!((h.kind.clone(), h.store), (FrameKind::Heartbeat, true));
        assert_eq!(reply(&h), b"[SG*8800000015*0002*LK]");
        let h = s
            .on_frame(b"[SG*8800000015*0053*UD,251021,223408,A,41.46500,N,081.53128,W,0.926,000,0,00,70,70,0,50,00000000,0,1,,,,00]")
            .unwrap();
        assert_eq!((h.kind, h.store, h.reply), (FrameKind::Data, true, None));
        let h = s.on_frame(b"[SG*8800000015*0006*AL_LTE]").unwrap();
        assert!(h.store);
        assert_eq!(reply(&h), b"[SG*8800000015*0002*AL]");
        let h = s.on_frame(b"[SG*8800000015*0003*TKQ]").unwrap();
        assert!(!h.store);
        assert_eq!(reply(&h), b"[SG*8800000015*0003*TKQ]");
        let h = s.on_frame(b"[SG*8800000015*0006*CONFIG]").unwrap();
        assert_eq!(reply(&h), b"[SG*8800000015*0008*CONFIG,1]");
        let h = s.on_frame(b"[SG*8800000015*0004*INIT]").unwrap();
        assert!(!h.store);
        assert_eq!(reply(&h), b"[SG*8800000015*0006*INIT,1]");
        // The index comes back.
        let mut s = Session::new();
        let h = s
            .on_frame(b"[ZJ*014111001350304*0034*0009*LK,0,0,19]")
            .unwrap();
        assert_eq!(reply(&h), b"[ZJ*014111001350304*0034*0002*LK]");
        let h = s
            .on_frame(b"[ZJ*014111001350304*0035*000A*JXTK,0,x,1]")
            .unwrap();
        assert_eq!(reply(&h), b"[ZJ*014111001350304*0035*0007*JXTKR,1]");
    }

    #[test]
    fn identity_rules() {
        let mut s = Session::new();
        s.on_frame(b"[3G*1234567890*0002*LK]").unwrap();
        assert!(matches!(
            s.on_frame(b"[3G*1234567891*0002*LK]"),
            Err(SessionError::BadIdentity(_))
        ));
        assert!(matches!(
            Session::new().on_frame(b"[3G*1234567890*0002*LK"),
            Err(SessionError::Malformed(_))
        ));
    }
}
