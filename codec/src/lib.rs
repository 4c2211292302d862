//! Pure protocol code for the GPS trackers fleetbus talks to.
//!
//! Nothing in this crate does I/O or needs an async runtime. Every protocol is
//! split into three parts that different programs use:
//!
//! * a **framer** (a [`tokio_util::codec::Decoder`]) that cuts a TCP byte
//!   stream into frames, enforcing a maximum frame size before buffering;
//! * a **session** that knows how a device identifies itself and what the
//!   server must answer to each frame — the gateway frames, publishes and acks;
//! * a **parser** that turns one frame into typed [`Record`]s — the hamsters
//!   parse what the gateways stored.
//!
//! Encoders for every protocol exist so the simulator can speak like a device.

pub mod checksum;
mod delimited;
mod error;
mod frame_decoder;
pub mod gl200;
pub mod gps103;
pub mod gt06;
pub mod h02;
pub mod identity;
pub mod jt808;
pub mod meitrack;
pub mod pin;
mod protocol;
pub(crate) mod read;
mod record;
pub mod ruptela;
mod session;
mod spec;
pub mod suntech;
pub mod teltonika;
#[cfg(test)]
mod test_support;
pub(crate) mod text;
pub mod tk103;
pub mod watch;
pub mod wialon;

pub use error::{FrameError, ParseError, SessionError};
pub use frame_decoder::FrameDecoder;
pub use pin::Pinned;
pub use protocol::{AnyFramer, AnySession, Protocol, UnknownProtocol};
pub use record::{DeviceMessage, ParseContext, Position, Record};
pub use session::{FrameKind, Handled};
pub use spec::{Ack, DeviceSession, Resend, Spec, Udp};
