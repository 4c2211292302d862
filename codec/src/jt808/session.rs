//! The server side of one JT/T 808 connection.
//!
//! Every message carries the terminal id, and the first message identifies
//! the connection (register 0x0100 and authentication 0x0102 normally come
//! first; devices that reconnect often skip them). The checksum is verified
//! here (`BadChecksum`: not stored, not answered, the device sends again),
//! and a message with another terminal id than the connection's is refused.
//!
//! Answers, as the standard asks and Traccar sends them:
//!
//! * register 0x0100 → 0x8100 register response (success, authentication
//!   code: the registry's, else the device id), not stored;
//! * authentication 0x0102, logout 0x0003 → 0x8001 general response, not stored;
//! * heartbeat 0x0002 → 0x8001 (stored when it carries battery and signal);
//! * location 0x0200, batches 0x0704/0x0210, transparent data 0x0900,
//!   terminal attributes 0x0107, text reports 0x6006, and 0x0506, 0x8888,
//!   0x1007 → 0x8001;
//! * time synchronisation 0x0109 → 0x8109 with the current UTC time;
//! * 0x5501/0x5502 → the short 0x4401 response when the device asks for one
//!   (attribute bit 15);
//! * a `(…,BASE,2,TIME)` text → the same text with `TIME` replaced by the
//!   current UTC time `yyyyMMddHHmmss`;
//! * everything else (0x0001 answers to our commands excepted) is stored
//!   without an answer.
//!
//! The platform's own serial numbers count up per connection from 0.
//!
//! **Authentication codes.** When the registry holds a code for the device
//! ([`Session::admitted`]), the register response hands the device that
//! code instead of its id, an authentication with another code is refused
//! (`BadCredential`), and nothing is stored before the connection
//! authenticated (`NotAuthenticated`): the standard has a terminal
//! authenticate on every connection with the code it got when it
//! registered. Without a code (an entry from before codes, or `open`
//! admission) nothing is checked, as Traccar does.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::{FrameKind, Handled, Pinned, SessionError};

use super::encode::{self, Terminal};
use super::frame::Frame;
use super::msg;

#[derive(Debug)]
pub struct Session {
    device: Pinned,
    serial: u16,
    clock: fn() -> DateTime<Utc>,
    credential: Credential,
    authenticated: bool,
    /// The frame that identified the connection, as far as the credential
    /// changes its judgement, until [`Session::admitted`] judges it again.
    first: First,
}

/// What the registry says about the device's authentication code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    /// Not admitted yet: the gateway has not said.
    Unknown,
    /// No code to check.
    None,
    Code(String),
}

#[derive(Debug, Clone, Default)]
enum First {
    #[default]
    Nothing,
    Register {
        terminal: Terminal,
        own_serial: u16,
        serial: u16,
    },
    Auth(String),
    Stored,
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

    /// A session reading the time of its time answers from `clock`.
    pub fn with_clock(clock: fn() -> DateTime<Utc>) -> Self {
        Session {
            device: Pinned::default(),
            serial: 0,
            clock,
            credential: Credential::Unknown,
            authenticated: false,
            first: First::Nothing,
        }
    }

    /// The authentication code the registry holds for the device (`None`:
    /// nothing to check), once it is admitted; see [`AnySession::admitted`](crate::AnySession::admitted).
    pub fn admitted(&mut self, code: Option<&str>) -> Result<Option<Bytes>, SessionError> {
        self.credential = match code {
            Some(c) => Credential::Code(c.to_string()),
            None => Credential::None,
        };
        let Credential::Code(code) = &self.credential else {
            return Ok(None);
        };
        match std::mem::take(&mut self.first) {
            First::Nothing => Ok(None),
            First::Register {
                terminal,
                own_serial,
                serial,
            } => Ok(Some(encode::register_response(
                &terminal, own_serial, serial, code,
            ))),
            First::Auth(given) => {
                self.check(&given)?;
                Ok(None)
            }
            First::Stored => Err(SessionError::NotAuthenticated),
        }
    }

    fn check(&mut self, given: &str) -> Result<(), SessionError> {
        match &self.credential {
            Credential::Code(code) if code != given => Err(SessionError::BadCredential(
                "the authentication code is not the one the registry issued".into(),
            )),
            _ => {
                self.authenticated = true;
                Ok(())
            }
        }
    }

    /// Whether a stored message may pass: always without a code, and with
    /// one once the connection authenticated.
    fn may_store(&mut self) -> Result<(), SessionError> {
        match self.credential {
            Credential::Unknown => {
                if matches!(self.first, First::Nothing) {
                    self.first = First::Stored;
                }
                Ok(())
            }
            Credential::Code(_) if !self.authenticated => Err(SessionError::NotAuthenticated),
            _ => Ok(()),
        }
    }

    pub fn device_id(&self) -> Option<&str> {
        self.device.get()
    }

    fn next_serial(&mut self) -> u16 {
        let s = self.serial;
        self.serial = self.serial.wrapping_add(1);
        s
    }

    /// Validates one frame (as cut by the framer) and says whether to store
    /// it and what to answer.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Handled, SessionError> {
        if frame.first() == Some(&b'(') {
            return self.text(frame);
        }
        let f = Frame::parse(frame).map_err(SessionError::Malformed)?;
        let computed = f.computed_checksum();
        if computed != f.checksum {
            return Err(SessionError::BadChecksum {
                received: f.checksum.into(),
                computed: computed.into(),
            });
        }
        let id = f
            .device_id()
            .ok_or_else(|| SessionError::BadIdentity("terminal id".into()))?;
        self.device.pin(&id)?;
        let terminal = Terminal {
            id: f.terminal.to_vec(),
            version: f.version,
            delimiter: f.delimiter,
        };
        let general = |s: &mut Self| {
            let own = s.next_serial();
            Some(encode::general_response(&terminal, own, f.serial, f.id))
        };
        let (kind, store, reply) = match f.id {
            msg::REGISTER => {
                let own = self.next_serial();
                let code = match &self.credential {
                    Credential::Code(code) => code.clone(),
                    _ => id.clone(),
                };
                let reply = encode::register_response(&terminal, own, f.serial, &code);
                if self.credential == Credential::Unknown {
                    self.first = First::Register {
                        terminal: terminal.clone(),
                        own_serial: own,
                        serial: f.serial,
                    };
                }
                (FrameKind::Login { device_id: id }, false, Some(reply))
            }
            msg::AUTH => {
                let given = auth_code(&f);
                if self.credential == Credential::Unknown {
                    self.first = First::Auth(given);
                } else {
                    self.check(&given)?;
                }
                (FrameKind::Login { device_id: id }, false, general(self))
            }
            msg::LOGOUT => (FrameKind::Heartbeat, false, general(self)),
            msg::HEARTBEAT => (FrameKind::Heartbeat, f.body.len() >= 3, general(self)),
            msg::HEARTBEAT_2 | msg::PHOTO | msg::TIME_ZONE_SYNC => {
                (FrameKind::Heartbeat, false, general(self))
            }
            msg::LOCATION
            | msg::LOCATION_BATCH
            | msg::LOCATION_BATCH_2
            | msg::TRANSPARENT
            | msg::TERMINAL_ATTRIBUTES
            | msg::REPORT_TEXT => (FrameKind::Data, true, general(self)),
            msg::TIME_SYNC => {
                let own = self.next_serial();
                let reply = encode::time_sync_response(&terminal, own, (self.clock)());
                (FrameKind::Heartbeat, false, Some(reply))
            }
            msg::LOCATION_2 | msg::LOCATION_BLIND => {
                let reply = (f.attributes & 0x8000 != 0)
                    .then(|| encode::general_response_2(&terminal, f.id));
                (FrameKind::Data, true, reply)
            }
            msg::TERMINAL_RESPONSE => (FrameKind::Data, false, None),
            _ => (FrameKind::Data, true, None),
        };
        if store {
            self.may_store()?;
        }
        Ok(Handled { kind, store, reply })
    }

    /// `(id,…)` text messages of JT808 locks.
    fn text(&mut self, frame: &[u8]) -> Result<Handled, SessionError> {
        let sentence = std::str::from_utf8(frame)
            .map_err(|_| SessionError::Malformed("text message is not ASCII".into()))?;
        let id = sentence[1..]
            .split([',', ')'])
            .next()
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
        self.device.pin_or_known(id)?;
        if sentence.contains("BASE,2") {
            let now = (self.clock)().format("%Y%m%d%H%M%S").to_string();
            return Ok(Handled::heartbeat(Some(Bytes::from(
                sentence.replace("TIME", &now),
            ))));
        }
        self.may_store()?;
        Ok(Handled::data(None))
    }
}

/// The code of an authentication (0x0102): the whole body in the 2011/2013
/// editions; a length byte, the code, then IMEI and software version in
/// 2019's. Trailing NULs are padding.
fn auth_code(f: &Frame<'_>) -> String {
    let code = match f.version {
        Some(_) => {
            let len = usize::from(f.body.first().copied().unwrap_or(0));
            f.body
                .get(1..1 + len)
                .unwrap_or(&f.body[f.body.len().min(1)..])
        }
        None => f.body,
    };
    String::from_utf8_lossy(code)
        .trim_end_matches('\0')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn bytes(hex_str: &str) -> Vec<u8> {
        hex::decode(hex_str).unwrap()
    }

    fn clock() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 5).unwrap()
    }

    #[test]
    fn register_then_auth_then_location() {
        let mut s = Session::with_clock(clock);
        let h = s
            .on_frame(&bytes(
                "7e010000190940278494700012000000000000000000000000000000000000094027849470000a7e",
            ))
            .unwrap();
        assert!(!h.store);
        assert_eq!(
            h.kind,
            FrameKind::Login {
                device_id: "094027849470".into()
            }
        );
        let t = Terminal::phone("094027849470");
        assert_eq!(
            h.reply.unwrap(),
            encode::register_response(&t, 0, 0x12, "094027849470")
        );
        let h = s
            .on_frame(&bytes(
                "7e010200100940278494700084323031313131303831313333323139369f7e",
            ))
            .unwrap();
        assert_eq!(
            h.reply.unwrap(),
            encode::general_response(&t, 1, 0x84, 0x0102)
        );
        let loc = encode::location(&t, 9, &crate::Position::new("x", "jt808", clock()), 0, 20);
        let h = s.on_frame(&loc).unwrap();
        assert!(h.store);
        assert_eq!(h.reply.unwrap(), encode::general_response(&t, 2, 9, 0x0200));
    }

    #[test]
    fn the_registry_code_is_handed_out_at_register_and_required_before_data() {
        let t = Terminal::phone("094027849470");
        let register = encode::register(&t, 0x12);
        let loc = |serial| {
            encode::location(
                &t,
                serial,
                &crate::Position::new("x", "jt808", clock()),
                0,
                20,
            )
        };

        // Register first: the gateway admits the device after judging it,
        // and the reply is replaced by one carrying the registry's code.
        let mut s = Session::with_clock(clock);
        let h = s.on_frame(&register).unwrap();
        assert_eq!(
            h.reply.unwrap(),
            encode::register_response(&t, 0, 0x12, "094027849470")
        );
        assert_eq!(
            s.admitted(Some("K3y")).unwrap(),
            Some(encode::register_response(&t, 0, 0x12, "K3y"))
        );
        // A register later on the connection answers with the code at once.
        let again = s.on_frame(&encode::register(&t, 0x13)).unwrap();
        assert_eq!(
            again.reply.unwrap(),
            encode::register_response(&t, 1, 0x13, "K3y")
        );
        assert_eq!(
            s.on_frame(&loc(1)).unwrap_err(),
            SessionError::NotAuthenticated
        );
        assert!(matches!(
            s.on_frame(&encode::auth(&t, 2, "094027849470")),
            Err(SessionError::BadCredential(_))
        ));
        s.on_frame(&encode::auth(&t, 3, "K3y")).unwrap();
        assert!(s.on_frame(&loc(4)).unwrap().store);

        // Authentication first, judged when the code is known.
        let mut s = Session::with_clock(clock);
        s.on_frame(&encode::auth(&t, 0, "wrong")).unwrap();
        assert!(matches!(
            s.admitted(Some("K3y")),
            Err(SessionError::BadCredential(_))
        ));
        let mut s = Session::with_clock(clock);
        s.on_frame(&encode::auth(&t, 0, "K3y")).unwrap();
        assert_eq!(s.admitted(Some("K3y")).unwrap(), None);
        assert!(s.on_frame(&loc(1)).unwrap().store);

        // Data first (a device that skips authentication): refused with a
        // code, taken without one.
        let mut s = Session::with_clock(clock);
        s.on_frame(&loc(0)).unwrap();
        assert_eq!(
            s.admitted(Some("K3y")).unwrap_err(),
            SessionError::NotAuthenticated
        );
        let mut s = Session::with_clock(clock);
        s.on_frame(&loc(0)).unwrap();
        assert_eq!(s.admitted(None).unwrap(), None);
        assert!(s.on_frame(&loc(1)).unwrap().store);
    }

    #[test]
    fn a_2019_authentication_carries_its_code_after_a_length_byte() {
        let t = Terminal {
            id: vec![0; 10],
            version: Some(1),
            delimiter: 0x7e,
        };
        let mut body = vec![3];
        body.extend(b"K3y");
        body.extend(b"861234567890123");
        body.extend([0u8; 20]);
        let mut s = Session::with_clock(clock);
        s.on_frame(&encode::message(msg::AUTH, &t, 0, &body))
            .unwrap();
        assert_eq!(s.admitted(Some("K3y")).unwrap(), None);
    }

    #[test]
    fn checksum_and_identity() {
        let mut s = Session::new();
        let mut hb = bytes("7e0002000004304832546500b7ca7e");
        hb[13] ^= 1;
        assert!(matches!(
            s.on_frame(&hb),
            Err(SessionError::BadChecksum { .. })
        ));
        s.on_frame(&bytes("7e0002000004304832546500b7ca7e"))
            .unwrap();
        let other = encode::heartbeat(&Terminal::phone("1"), 1);
        assert!(matches!(
            s.on_frame(&other),
            Err(SessionError::BadIdentity(_))
        ));
        assert!(matches!(
            s.on_frame(b"hello"),
            Err(SessionError::Malformed(_))
        ));
    }

    #[test]
    fn time_requests() {
        let mut s = Session::with_clock(clock);
        let h = s.on_frame(b"(794104004140,1,001,BASE,2,TIME)").unwrap();
        assert_eq!(
            &h.reply.unwrap()[..],
            b"(794104004140,1,001,BASE,2,20240501123005)"
        );
        let t = Terminal::phone("794104004140");
        let h = s
            .on_frame(&encode::message(msg::TIME_SYNC, &t, 3, &[]))
            .unwrap();
        assert_eq!(h.reply.unwrap(), encode::time_sync_response(&t, 0, clock()));
    }
}
