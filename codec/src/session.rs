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
