//! The server side of one GT06 connection: the device logs in with its IMEI
//! (0x01), then sends data; every frame after the login is stored and then
//! answered as Traccar answers it (see `reply`).
//!
//! Choices:
//! * Data before a login is refused (`NotIdentified`): the device cannot be
//!   attributed, and GT06 devices always log in first after connecting.
//! * A second login with another IMEI on the same connection is refused
//!   (`BadIdentity`) so that one connection never mixes two devices' data;
//!   a repeated login with the same IMEI is answered again.
//! * Every frame after the login is stored, including message types we
//!   cannot parse: nothing the device was told is stored is lost, and the
//!   parser dead-letters what it does not know. Unknown standard messages get
//!   the generic acknowledgement (as in Traccar, so the device does not
//!   resend them forever); unknown extended ones none.
//! * The time request (0x8A) is answered with the current time from the
//!   session's clock (`Utc::now` unless given, see [`Session::with_clock`]).

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::{FrameKind, Handled, Pinned, SessionError};

use super::encode;
use super::frame::Frame;
use super::msg::{self, Variant};
use super::reply::{answer, Answer};

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

    /// A session reading the time it answers time requests with from `clock`.
    pub fn with_clock(clock: fn() -> DateTime<Utc>) -> Self {
        Session {
            device: Pinned::default(),
            clock,
        }
    }

    /// Validates one frame (as cut by the framer) in the context of the
    /// connection and says whether to store it and what to answer.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Handled, SessionError> {
        let f = Frame::parse(frame).map_err(SessionError::Malformed)?;
        if f.protocol == msg::LOGIN {
            return self.login(&f);
        }
        if self.device.is_none() {
            return Err(SessionError::NotIdentified);
        }
        let kind = match f.protocol {
            msg::STATUS | msg::HEARTBEAT => FrameKind::Heartbeat,
            _ => FrameKind::Data,
        };
        Ok(Handled {
            kind,
            store: true,
            reply: self.reply(&f),
        })
    }

    pub fn device_id(&self) -> Option<&str> {
        self.device.get()
    }

    fn login(&mut self, f: &Frame) -> Result<Handled, SessionError> {
        let imei = super::identify(f.bytes).ok_or_else(|| {
            let shown = f.content().get(..8).unwrap_or(f.content());
            SessionError::BadIdentity(format!("login without a BCD IMEI: {}", hex::encode(shown)))
        })?;
        self.device.pin(&imei)?;
        Ok(Handled::login(imei, Some(encode::login_ack(f.serial()))))
    }

    fn reply(&self, f: &Frame) -> Option<Bytes> {
        Some(match answer(f, Variant::of(f)) {
            Answer::None => return None,
            Answer::Ack => encode::ack(f.protocol, f.serial()),
            Answer::AckExtended => encode::ack_extended(f.protocol, f.serial()),
            Answer::Time => encode::time_response((self.clock)()),
            Answer::Address => encode::address_response(),
            Answer::WifiTime => {
                let time = f.bytes.get(f.content_start()..f.content_start() + 6)?;
                let mut bcd = [0; 6];
                bcd.copy_from_slice(time);
                encode::wifi_ack(f.protocol, bcd)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const LOGIN: &str = "78780d010352887071911998000479d00d0a";

    fn bytes(hex_str: &str) -> Vec<u8> {
        hex::decode(hex_str).unwrap()
    }

    fn logged_in() -> Session {
        let mut s = Session::new();
        s.on_frame(&bytes(LOGIN)).unwrap();
        s
    }

    #[test]
    fn login_is_acknowledged_not_stored() {
        let mut s = Session::new();
        let h = s.on_frame(&bytes(LOGIN)).unwrap();
        assert_eq!(
            h.kind,
            FrameKind::Login {
                device_id: "352887071911998".into()
            }
        );
        assert!(!h.store);
        assert_eq!(hex::encode(h.reply.unwrap()), "7878050100048e710d0a");
        assert_eq!(s.device_id(), Some("352887071911998"));
    }

    #[test]
    fn data_before_login_is_refused() {
        let mut s = Session::new();
        let location =
            bytes("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a");
        assert_eq!(s.on_frame(&location), Err(SessionError::NotIdentified));
    }

    #[test]
    fn heartbeat_is_stored_and_echoed() {
        let mut s = logged_in();
        let h = s
            .on_frame(&bytes("78780a130604ea04000006bc8a0d0a"))
            .unwrap();
        assert_eq!(h.kind, FrameKind::Heartbeat);
        assert!(h.store);
        assert_eq!(h.reply.unwrap(), encode::ack(0x13, 6));
    }

    #[test]
    fn location_is_stored_and_echoed() {
        let mut s = logged_in();
        let h = s
            .on_frame(&bytes(
                "78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a",
            ))
            .unwrap();
        assert_eq!(h.kind, FrameKind::Data);
        assert!(h.store);
        assert_eq!(h.reply.unwrap(), encode::ack(0x12, 3));
    }

    #[test]
    fn time_request_gets_the_clock() {
        fn clock() -> DateTime<Utc> {
            Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 5).unwrap()
        }
        let mut s = Session::with_clock(clock);
        s.on_frame(&bytes(LOGIN)).unwrap();
        let h = s.on_frame(&bytes("7878058a000688290d0a")).unwrap();
        assert_eq!(h.reply.unwrap(), encode::time_response(clock()));
    }

    #[test]
    fn wifi_scan_gets_its_time_back() {
        let mut s = logged_in();
        let h = s
            .on_frame(&bytes(
                "787800171710231108290200cc080c4e2fa5640c4e2fa5640d0a",
            ))
            .unwrap();
        assert_eq!(
            hex::encode(h.reply.unwrap()),
            "78780017171023110829 0d0a".replace(' ', "")
        );
    }

    #[test]
    fn unknown_types_are_stored() {
        let mut s = logged_in();
        let unknown = encode::frame(0x77, &[1, 2, 3], 9);
        let h = s.on_frame(&unknown).unwrap();
        assert!(h.store);
        assert_eq!(h.reply.unwrap(), encode::ack(0x77, 9));
        let unknown = encode::frame_extended(0x77, &[1, 2, 3], 9);
        assert_eq!(s.on_frame(&unknown).unwrap().reply, None);
    }

    #[test]
    fn other_imei_on_the_same_connection_is_refused() {
        let mut s = logged_in();
        assert!(s.on_frame(&encode::login("352887071911998", 5)).is_ok());
        match s.on_frame(&encode::login("123456789012345", 6)) {
            Err(SessionError::BadIdentity(msg)) => {
                assert!(msg.contains("352887071911998"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_frames() {
        let mut s = logged_in();
        assert!(matches!(
            s.on_frame(b"hello"),
            Err(SessionError::Malformed(_))
        ));
        assert!(matches!(
            s.on_frame(&bytes("78780d01ffffffffffffffff000479d00d0a")),
            Err(SessionError::BadIdentity(_))
        ));
    }
}
