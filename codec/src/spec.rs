//! What the registry needs to know of a protocol, in one place: each
//! protocol module implements [`Spec`] on a unit struct (`gt06::Gt06`, …),
//! and `protocols!` in `protocol.rs` generates [`Protocol`](crate::Protocol)
//! and its dispatch from one line per protocol. The facts the gateway and
//! the simulator act on (UDP, how a device learns that a frame was stored,
//! how its firmware resends) live here too, beside the code they describe,
//! instead of in lists in `services/` that a new protocol could miss.

use std::fmt;

use bytes::Bytes;
use tokio_util::codec::Decoder;

use crate::{FrameError, Handled, ParseContext, ParseError, Record, SessionError};

/// Whether a protocol can be served over UDP.
///
/// A protocol can if its framer cuts a whole datagram (`decode_eof` at its
/// end) and its messages carry the device id, so a datagram is judged on
/// its own (services/src/gateway/udp.rs; the few messages without an id are
/// refused over UDP). Teltonika's UDP packets have their own layout (IMEI
/// in every packet, no CRC), hence its own datagram framer and session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp {
    /// TCP only.
    No,
    /// Over UDP when a listener asks for it (`udp = true`).
    Optional,
    /// Commonly used over UDP: its listeners serve UDP unless told not to.
    ByDefault,
}

impl Udp {
    /// Whether the protocol can be served over UDP at all.
    pub const fn served(self) -> bool {
        !matches!(self, Udp::No)
    }
}

/// How a device learns that the gateway stored a data frame. The gateway
/// answers a connection's frames strictly in order and gives no answer to
/// anything after a frame it could not store (services/src/gateway/conn.rs),
/// which is what makes [`Ack::Barrier`] work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The data frame's own answer.
    Reply,
    /// The answer to an unstored frame sent right after it: the protocol
    /// does not answer data, so the device sends a frame that is answered
    /// (a handshake, a heartbeat) after it.
    Barrier,
    /// Nothing the device is sent says so: it can never know.
    None,
}

/// What a device's firmware does with records whose ack it did not get (no
/// answer, a cut connection), as the simulator models it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Sends the frame again byte for byte: nothing in it could change.
    Same,
    /// Sends the pending records again in a new frame, first, with the
    /// records recorded meanwhile.
    Repack,
    /// Sends the same records in the same grouping, with what the protocol
    /// changes on a resend (serial number, flag byte, send time).
    Reencode,
}

/// One protocol, as the registry (`protocol.rs`) sees it. Implemented by a
/// unit struct in the protocol's module; adding a protocol is that module
/// plus one line of `protocols!`.
pub trait Spec {
    /// Used in subjects (`raw.<name>.<device>`), headers, configuration
    /// keys and JSON; Traccar's name, so it is familiar.
    const NAME: &'static str;
    /// Traccar's default TCP port, so devices configured for Traccar work
    /// unchanged.
    const DEFAULT_PORT: u16;
    /// Default largest frame accepted, in bytes.
    const MAX_FRAME: usize;
    const UDP: Udp;
    const ACK: Ack;
    /// What the firmware does after a lost ack. Only read for protocols
    /// with an [`Ack`] the device can see.
    const RESEND: Resend;

    /// Cuts one connection's byte stream into frames.
    type Framer: Decoder<Item = Bytes, Error = FrameError> + fmt::Debug;
    /// The server side of one connection.
    type Session: DeviceSession + fmt::Debug;

    /// A framer refusing frames above `max_frame` bytes (the caller has
    /// already replaced 0 by [`Spec::MAX_FRAME`]).
    fn framer(max_frame: usize) -> Self::Framer;
    fn session() -> Self::Session;
    /// The device identity a frame announces, if it is a login/identity
    /// frame.
    fn identify(frame: &[u8]) -> Option<String>;
    /// Turns one complete frame into records.
    fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError>;
}

/// The server side of one device connection, in every protocol.
pub trait DeviceSession {
    /// Validates one frame in the context of the connection and says whether
    /// to store it and what to answer.
    fn on_frame(&mut self, frame: &[u8]) -> Result<Handled, SessionError>;

    /// The identity the device gave, once it gave one.
    fn device_id(&self) -> Option<&str>;

    /// Tells the session the credential the registry holds for its device
    /// (`None`: none to check), once the gateway admitted the device — that
    /// is, right after the frame that identified it was judged. A protocol
    /// with credentials checks them from then on, and judges that first
    /// frame again: an error refuses it; `Ok(Some(reply))` replaces its
    /// reply where the reply carries the credential (JT808's register
    /// response hands the device its authentication code). Protocols
    /// without credentials keep this default: nothing changes.
    fn admitted(&mut self, credential: Option<&str>) -> Result<Option<Bytes>, SessionError> {
        let _ = credential;
        Ok(None)
    }
}

/// The parts of a [`Spec`] every protocol module writes the same way, by
/// the module's conventions: `Framer::new(max_frame)`, `Session::new()`, and
/// its `identify` and `parse` functions. Invoked inside the `impl Spec`
/// block, after the facts, which stay written out (each with its reason).
macro_rules! conventional_parts {
    () => {
        type Framer = Framer;
        type Session = Session;

        fn framer(max_frame: usize) -> Framer {
            Framer::new(max_frame)
        }

        fn session() -> Session {
            Session::new()
        }

        fn identify(frame: &[u8]) -> Option<String> {
            identify(frame)
        }

        fn parse(
            frame: &[u8],
            ctx: &$crate::ParseContext,
        ) -> Result<Vec<$crate::Record>, $crate::ParseError> {
            parse(frame, ctx)
        }
    };
}
pub(crate) use conventional_parts;

/// [`DeviceSession`] for a session whose inherent `on_frame` and
/// `device_id` are the whole of it (every protocol without credentials).
macro_rules! device_session {
    ($session:ty) => {
        impl $crate::DeviceSession for $session {
            fn on_frame(&mut self, frame: &[u8]) -> Result<$crate::Handled, $crate::SessionError> {
                <$session>::on_frame(self, frame)
            }

            fn device_id(&self) -> Option<&str> {
                <$session>::device_id(self)
            }
        }
    };
}
pub(crate) use device_session;
