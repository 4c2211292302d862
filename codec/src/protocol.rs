//! The registry of supported protocols and enum dispatch over them, so that
//! the gateway, the parsers and the CLI handle every protocol the same way.

use std::fmt;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::gl200;
use crate::gps103;
use crate::h02;
use crate::jt808;
use crate::meitrack;
use crate::ruptela;
use crate::suntech;
use crate::tk103;
use crate::{gt06, teltonika, FrameError, Handled, ParseContext, ParseError, Record, SessionError};

/// A tracker protocol fleetbus speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Teltonika,
    Gt06,
    H02,
    Gps103,
    Tk103,
    Jt808,
    Ruptela,
    Meitrack,
    Suntech,
    Gl200,
}

/// `"foo".parse::<Protocol>()` for a name that is not in [`Protocol::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown protocol {0:?} (supported: {list})", list = Protocol::names().join(", "))]
pub struct UnknownProtocol(pub String);

impl Protocol {
    /// Every supported protocol, in `fleetbus decode --list` order.
    pub const ALL: &'static [Protocol] = &[
        Protocol::Teltonika,
        Protocol::Gt06,
        Protocol::H02,
        Protocol::Gps103,
        Protocol::Tk103,
        Protocol::Jt808,
        Protocol::Ruptela,
        Protocol::Meitrack,
        Protocol::Suntech,
        Protocol::Gl200,
    ];

    /// The protocol's name: used in subjects (`raw.<name>.<device>`), headers,
    /// configuration keys and JSON. Traccar's names, so they are familiar.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Teltonika => teltonika::NAME,
            Protocol::Gt06 => gt06::NAME,
            Protocol::H02 => h02::NAME,
            Protocol::Gps103 => gps103::NAME,
            Protocol::Tk103 => tk103::NAME,
            Protocol::Jt808 => jt808::NAME,
            Protocol::Ruptela => ruptela::NAME,
            Protocol::Meitrack => meitrack::NAME,
            Protocol::Suntech => suntech::NAME,
            Protocol::Gl200 => gl200::NAME,
        }
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|p| p.name()).collect()
    }

    /// Traccar's default TCP port for the protocol, so devices configured
    /// for Traccar work unchanged.
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Teltonika => teltonika::DEFAULT_PORT,
            Protocol::Gt06 => gt06::DEFAULT_PORT,
            Protocol::H02 => h02::DEFAULT_PORT,
            Protocol::Gps103 => gps103::DEFAULT_PORT,
            Protocol::Tk103 => tk103::DEFAULT_PORT,
            Protocol::Jt808 => jt808::DEFAULT_PORT,
            Protocol::Ruptela => ruptela::DEFAULT_PORT,
            Protocol::Meitrack => meitrack::DEFAULT_PORT,
            Protocol::Suntech => suntech::DEFAULT_PORT,
            Protocol::Gl200 => gl200::DEFAULT_PORT,
        }
    }

    /// Default largest frame accepted, in bytes.
    pub fn default_max_frame(self) -> usize {
        match self {
            Protocol::Teltonika => teltonika::MAX_FRAME,
            Protocol::Gt06 => gt06::MAX_FRAME,
            Protocol::H02 => h02::MAX_FRAME,
            Protocol::Gps103 => gps103::MAX_FRAME,
            Protocol::Tk103 => tk103::MAX_FRAME,
            Protocol::Jt808 => jt808::MAX_FRAME,
            Protocol::Ruptela => ruptela::MAX_FRAME,
            Protocol::Meitrack => meitrack::MAX_FRAME,
            Protocol::Suntech => suntech::MAX_FRAME,
            Protocol::Gl200 => gl200::MAX_FRAME,
        }
    }

    /// A framer for one connection, refusing frames above `max_frame` bytes
    /// (0: the protocol's default, as in the gateway's configuration; a
    /// limit of nothing would otherwise leave some framers no room at all).
    pub fn framer(self, max_frame: usize) -> AnyFramer {
        let max_frame = if max_frame == 0 {
            self.default_max_frame()
        } else {
            max_frame
        };
        match self {
            Protocol::Teltonika => AnyFramer::Teltonika(teltonika::Framer::new(max_frame)),
            Protocol::Gt06 => AnyFramer::Gt06(gt06::Framer::new(max_frame)),
            Protocol::H02 => AnyFramer::H02(h02::Framer::new(max_frame)),
            Protocol::Gps103 => AnyFramer::Gps103(gps103::Framer::new(max_frame)),
            Protocol::Tk103 => AnyFramer::Tk103(tk103::Framer::new(max_frame)),
            Protocol::Jt808 => AnyFramer::Jt808(jt808::Framer::new(max_frame)),
            Protocol::Ruptela => AnyFramer::Ruptela(ruptela::Framer::new(max_frame)),
            Protocol::Meitrack => AnyFramer::Meitrack(meitrack::Framer::new(max_frame)),
            Protocol::Suntech => AnyFramer::Suntech(suntech::Framer::new(max_frame)),
            Protocol::Gl200 => AnyFramer::Gl200(gl200::Framer::new(max_frame)),
        }
    }

    /// A framer for one UDP datagram: Teltonika's UDP packets have their
    /// own layout (the whole datagram is one packet); every other protocol
    /// is cut as over TCP.
    pub fn datagram_framer(self, max_frame: usize) -> AnyFramer {
        match self {
            Protocol::Teltonika => {
                AnyFramer::TeltonikaDatagram(teltonika::DatagramFramer::new(max_frame))
            }
            other => other.framer(max_frame),
        }
    }

    /// The session judging one UDP datagram (Teltonika: the UDP packet
    /// layout; every other protocol as over TCP).
    pub fn datagram_session(self) -> AnySession {
        match self {
            Protocol::Teltonika => AnySession::Teltonika(teltonika::Session::datagrams()),
            other => other.session(),
        }
    }

    /// The server side of one device connection.
    pub fn session(self) -> AnySession {
        match self {
            Protocol::Teltonika => AnySession::Teltonika(teltonika::Session::new()),
            Protocol::Gt06 => AnySession::Gt06(gt06::Session::new()),
            Protocol::H02 => AnySession::H02(h02::Session::new()),
            Protocol::Gps103 => AnySession::Gps103(gps103::Session::new()),
            Protocol::Tk103 => AnySession::Tk103(tk103::Session::new()),
            Protocol::Jt808 => AnySession::Jt808(jt808::Session::new()),
            Protocol::Ruptela => AnySession::Ruptela(ruptela::Session::new()),
            Protocol::Meitrack => AnySession::Meitrack(meitrack::Session::new()),
            Protocol::Suntech => AnySession::Suntech(suntech::Session::new()),
            Protocol::Gl200 => AnySession::Gl200(gl200::Session::new()),
        }
    }

    /// The device identity a frame announces, if it is a login/identity frame.
    pub fn identify(self, frame: &[u8]) -> Option<String> {
        match self {
            Protocol::Teltonika => teltonika::identify(frame),
            Protocol::Gt06 => gt06::identify(frame),
            Protocol::H02 => h02::identify(frame),
            Protocol::Gps103 => gps103::identify(frame),
            Protocol::Tk103 => tk103::identify(frame),
            Protocol::Jt808 => jt808::identify(frame),
            Protocol::Ruptela => ruptela::identify(frame),
            Protocol::Meitrack => meitrack::identify(frame),
            Protocol::Suntech => suntech::identify(frame),
            Protocol::Gl200 => gl200::identify(frame),
        }
    }

    /// Turns one complete frame into records.
    pub fn parse(self, frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
        match self {
            Protocol::Teltonika => teltonika::parse(frame, ctx),
            Protocol::Gt06 => gt06::parse(frame, ctx),
            Protocol::H02 => h02::parse(frame, ctx),
            Protocol::Gps103 => gps103::parse(frame, ctx),
            Protocol::Tk103 => tk103::parse(frame, ctx),
            Protocol::Jt808 => jt808::parse(frame, ctx),
            Protocol::Ruptela => ruptela::parse(frame, ctx),
            Protocol::Meitrack => meitrack::parse(frame, ctx),
            Protocol::Suntech => suntech::parse(frame, ctx),
            Protocol::Gl200 => gl200::parse(frame, ctx),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownProtocol(s.to_owned()))
    }
}

/// The framer of any protocol.
#[derive(Debug)]
pub enum AnyFramer {
    Teltonika(teltonika::Framer),
    TeltonikaDatagram(teltonika::DatagramFramer),
    Gt06(gt06::Framer),
    H02(h02::Framer),
    Gps103(gps103::Framer),
    Tk103(tk103::Framer),
    Jt808(jt808::Framer),
    Ruptela(ruptela::Framer),
    Meitrack(meitrack::Framer),
    Suntech(suntech::Framer),
    Gl200(gl200::Framer),
}

impl Decoder for AnyFramer {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self {
            AnyFramer::Teltonika(f) => f.decode(src),
            AnyFramer::TeltonikaDatagram(f) => f.decode(src),
            AnyFramer::Gt06(f) => f.decode(src),
            AnyFramer::H02(f) => f.decode(src),
            AnyFramer::Gps103(f) => f.decode(src),
            AnyFramer::Tk103(f) => f.decode(src),
            AnyFramer::Jt808(f) => f.decode(src),
            AnyFramer::Ruptela(f) => f.decode(src),
            AnyFramer::Meitrack(f) => f.decode(src),
            AnyFramer::Suntech(f) => f.decode(src),
            AnyFramer::Gl200(f) => f.decode(src),
        }
    }

    /// At the end of a UDP datagram or of a stream. Text protocols whose last
    /// message may come without its delimiter (GPS103, TK103, Suntech) take it whole,
    /// and a Teltonika datagram is its one packet;
    /// the others report leftover bytes, as tokio's default does.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self {
            AnyFramer::Gps103(f) => f.decode_eof(src),
            AnyFramer::Tk103(f) => f.decode_eof(src),
            AnyFramer::Suntech(f) => f.decode_eof(src),
            AnyFramer::TeltonikaDatagram(f) => f.decode_eof(src),
            _ => match self.decode(src)? {
                Some(frame) => Ok(Some(frame)),
                None if src.is_empty() => Ok(None),
                None => Err(std::io::Error::other("bytes remaining on stream").into()),
            },
        }
    }
}

/// The session of any protocol.
#[derive(Debug)]
pub enum AnySession {
    Teltonika(teltonika::Session),
    Gt06(gt06::Session),
    H02(h02::Session),
    Gps103(gps103::Session),
    Tk103(tk103::Session),
    Jt808(jt808::Session),
    Ruptela(ruptela::Session),
    Meitrack(meitrack::Session),
    Suntech(suntech::Session),
    Gl200(gl200::Session),
}

impl AnySession {
    /// Validates one frame in the context of the connection and says whether
    /// to store it and what to answer.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Handled, SessionError> {
        match self {
            AnySession::Teltonika(s) => s.on_frame(frame),
            AnySession::Gt06(s) => s.on_frame(frame),
            AnySession::H02(s) => s.on_frame(frame),
            AnySession::Gps103(s) => s.on_frame(frame),
            AnySession::Tk103(s) => s.on_frame(frame),
            AnySession::Jt808(s) => s.on_frame(frame),
            AnySession::Ruptela(s) => s.on_frame(frame),
            AnySession::Meitrack(s) => s.on_frame(frame),
            AnySession::Suntech(s) => s.on_frame(frame),
            AnySession::Gl200(s) => s.on_frame(frame),
        }
    }

    /// Tells the session the credential the registry holds for its device
    /// (`None`: none to check), once the gateway admitted the device — that
    /// is, right after the frame that identified it was judged. A protocol
    /// with credentials checks them from then on, and judges that first
    /// frame again: an error refuses it; `Ok(Some(reply))` replaces its
    /// reply where the reply carries the credential (JT808's register
    /// response hands the device its authentication code). Other protocols
    /// have none, and nothing changes.
    pub fn admitted(&mut self, credential: Option<&str>) -> Result<Option<Bytes>, SessionError> {
        match self {
            AnySession::Jt808(s) => s.admitted(credential),
            _ => Ok(None),
        }
    }

    /// The identity the device gave, once it gave one.
    pub fn device_id(&self) -> Option<&str> {
        match self {
            AnySession::Teltonika(s) => s.device_id(),
            AnySession::Gt06(s) => s.device_id(),
            AnySession::H02(s) => s.device_id(),
            AnySession::Gps103(s) => s.device_id(),
            AnySession::Tk103(s) => s.device_id(),
            AnySession::Jt808(s) => s.device_id(),
            AnySession::Ruptela(s) => s.device_id(),
            AnySession::Meitrack(s) => s.device_id(),
            AnySession::Suntech(s) => s.device_id(),
            AnySession::Gl200(s) => s.device_id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framer_of_no_limit_is_one_of_the_default_limit() {
        // Every protocol's framer, given 0, cuts a frame as with its default
        // (JT808's once sliced out of bounds).
        for p in Protocol::ALL {
            let mut framer = p.framer(0);
            let mut buf = BytesMut::from(&b"\x7e\x7e(\x00\x01garbage"[..]);
            let _ = framer.decode(&mut buf);
        }
    }

    #[test]
    fn names_round_trip() {
        for p in Protocol::ALL {
            assert_eq!(p.name().parse::<Protocol>().unwrap(), *p);
        }
        let err = "nope".parse::<Protocol>().unwrap_err().to_string();
        assert!(err.contains("teltonika"), "{err}");
    }
}
