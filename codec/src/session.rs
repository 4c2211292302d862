//! What a protocol session tells the gateway about each frame.

use bytes::Bytes;

/// What kind of frame a session saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    /// The device identified itself.
    Login { device_id: String },
    /// A message carrying device data (positions, status, replies).
    Data,
    /// A keep-alive without data.
    Heartbeat,
}

/// The session's verdict on one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub kind: FrameKind,
    /// Publish this frame to RAW. The device's data is only safe once a
    /// quorum stored it, so `reply` for a stored frame goes out after the PubAck.
    pub store: bool,
    /// Bytes the device expects back, if any. Replies go out in frame order.
    pub reply: Option<Bytes>,
}

impl Handled {
    /// A frame carrying device data (positions, status, command answers, …)
    /// to store: what a session returns for a data frame, unless it is one
    /// the session does not store. `reply`, if any, goes out after the PubAck.
    pub fn data(reply: Option<Bytes>) -> Handled {
        Handled {
            kind: FrameKind::Data,
            store: true,
            reply,
        }
    }

    /// A login that identified the connection as `device_id` and carries
    /// nothing else, so it is not stored. `reply` is the login's answer.
    pub fn login(device_id: impl Into<String>, reply: Option<Bytes>) -> Handled {
        Handled {
            kind: FrameKind::Login {
                device_id: device_id.into(),
            },
            store: false,
            reply,
        }
    }

    /// A keep-alive without data, so not stored. `reply` is the answer the
    /// device expects, sent at once.
    pub fn heartbeat(reply: Option<Bytes>) -> Handled {
        Handled {
            kind: FrameKind::Heartbeat,
            store: false,
            reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_kind_and_store() {
        let ack = Some(Bytes::from_static(b"ack"));
        let h = Handled::data(ack.clone());
        assert_eq!(
            (h.kind, h.store, h.reply),
            (FrameKind::Data, true, ack.clone())
        );
        assert_eq!(Handled::data(None).reply, None);
        let h = Handled::login("356307042441013", ack.clone());
        assert_eq!(
            (h.kind, h.store, h.reply),
            (
                FrameKind::Login {
                    device_id: "356307042441013".into()
                },
                false,
                ack.clone()
            )
        );
        assert_eq!(
            Handled::login(String::from("1"), None).kind,
            FrameKind::Login {
                device_id: "1".into()
            }
        );
        let h = Handled::heartbeat(ack.clone());
        assert_eq!(
            (h.kind, h.store, h.reply),
            (FrameKind::Heartbeat, false, ack)
        );
        assert_eq!(Handled::heartbeat(None).reply, None);
    }
}
