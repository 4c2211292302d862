//! The server side of one Wialon IPS connection (or one UDP datagram).
//!
//! * Login `#L#[2.0;]imei;password[;crc]` → `#AL#1` (not stored). The
//!   password is not checked: the gateway's registry decides who is admitted.
//! * Ping `#P#` → `#AP#` (not stored).
//! * Short data `#SD#` → stored, then `#ASD#1`; data `#D#` → stored, then
//!   `#AD#1`; black box `#B#` → stored, then `#AB#<records>`; message from
//!   the driver `#M#` → stored, then `#AM#1`. Every answer goes out after
//!   the store, so an unanswered device keeps its data and sends it again.
//! * Other packet types (photos `#I#`, tachograph files `#IT#`/`#T#`, …)
//!   are refused (`Malformed`): their binary parts are not supported.
//!
//! Over TCP only the login names the device; over UDP every packet carries
//! its id in the prefix (`[2.0;]<imei>#…`), so a datagram is judged on its
//! own. Another id than the connection's is refused (`BadIdentity`).
//!
//! A packet that carries a checksum (2.0) must match it, or it is refused
//! (`BadChecksum`: counted, not stored, not answered — the device sends it
//! again, as for every other protocol's checksum). The protocol's own error
//! answers (`#AD#16`, `#ASD#13`, `#AL#10`) would keep the connection open
//! but tell the device nothing it can act on that the missing ack does not.
//! A 2.0 device that leaves a checksum out is accepted, as Traccar accepts
//! it. A data packet of the wrong shape (not 10/16 fields per record) is
//! `Malformed` before it is stored.

use crate::{Handled, Pinned, SessionError};

use super::encode;
use super::message::{Packet, Version, FULL_FIELDS, SHORT_FIELDS};

#[derive(Debug, Default)]
pub struct Session {
    device: Pinned,
    /// The login said 2.0: a driver message then ends with a checksum.
    v2: bool,
}

impl Session {
    pub fn new() -> Self {
        Session::default()
    }

    pub fn device_id(&self) -> Option<&str> {
        self.device.get()
    }

    /// Validates one packet (as cut by the framer) and says whether to
    /// store it and what to answer.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Handled, SessionError> {
        let version = if self.v2 { Version::V2 } else { Version::V1 };
        let packet = Packet::parse(frame, version).map_err(SessionError::Malformed)?;
        if let Some(c) = packet.checksum.filter(|c| !c.ok()) {
            return Err(SessionError::BadChecksum {
                received: c.received.into(),
                computed: c.computed.into(),
            });
        }
        if let Some(id) = packet.id {
            self.device.pin(id)?;
        }
        match packet.kind {
            "L" => {
                let login = packet.login().map_err(SessionError::BadIdentity)?;
                self.device.pin(login.imei)?;
                self.v2 = login.version.is_some();
                Ok(Handled::login(login.imei, Some(encode::login_ack())))
            }
            "P" => Ok(Handled::heartbeat(Some(encode::ping_ack()))),
            kind @ ("SD" | "D" | "B") => {
                self.device.pin_or_known(None)?;
                let records = packet.records();
                let wanted: &[usize] = match kind {
                    "SD" => &[SHORT_FIELDS],
                    "D" => &[FULL_FIELDS],
                    _ => &[SHORT_FIELDS, FULL_FIELDS],
                };
                if records.is_empty() {
                    return Err(SessionError::Malformed(
                        "black box packet without records".into(),
                    ));
                }
                if let Some(bad) = records.iter().find(|r| !wanted.contains(&r.len())) {
                    return Err(SessionError::Malformed(format!(
                        "#{kind}# record of {} fields, expected {wanted:?}",
                        bad.len()
                    )));
                }
                let reply = match kind {
                    "SD" => encode::short_data_ack(),
                    "D" => encode::data_ack(),
                    _ => encode::black_box_ack(records.len()),
                };
                Ok(Handled::data(Some(reply)))
            }
            "M" => {
                self.device.pin_or_known(None)?;
                Ok(Handled::data(Some(encode::message_ack())))
            }
            other => Err(SessionError::Malformed(format!(
                "Wialon packet type {other:?} is not supported"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameKind;

    #[test]
    fn login_ping_data() {
        let mut s = Session::new();
        let h = s.on_frame(b"#L#2002;NA\r\n").unwrap();
        assert_eq!(
            h.kind,
            FrameKind::Login {
                device_id: "2002".into()
            }
        );
        assert!(!h.store);
        assert_eq!(&h.reply.unwrap()[..], b"#AL#1\r\n");
        let h = s.on_frame(b"#P#\r\n").unwrap();
        assert_eq!((h.kind, h.store), (FrameKind::Heartbeat, false));
        assert_eq!(&h.reply.unwrap()[..], b"#AP#\r\n");
        let h = s
            .on_frame(b"#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4\r\n")
            .unwrap();
        assert!(h.store);
        assert_eq!(&h.reply.unwrap()[..], b"#ASD#1\r\n");
        let h = s.on_frame(b"#D#101118;061143;0756.0930;N;12338.6403;E;18.223;99.766;-4.000;10;0.800;NA;NA;NA;NA;101_521347:1:521249,101_521126:1:6593598,101_521127:1:774780,101_521072_21.1:1:0,101_521072_21.2:1:71353;F24A\r\n").unwrap();
        assert_eq!(&h.reply.unwrap()[..], b"#AD#1\r\n");
        let h = s.on_frame(b"#B#110315;045857;5364.0167;N;06127.8262;E;0;155;965;7|110315;045857;5364.0167;N;06127.8262;E;0;155;965;7;2.40;4;0;14.77,0.02,3.6;AB45DF01145;\r\n").unwrap();
        assert_eq!(&h.reply.unwrap()[..], b"#AB#2\r\n");
        let h = s.on_frame(b"#M#hello\r\n").unwrap();
        assert_eq!(&h.reply.unwrap()[..], b"#AM#1\r\n");
    }

    #[test]
    fn checksums() {
        let mut s = Session::new();
        s.on_frame(&encode::login("1", None, encode::Version::V2))
            .unwrap();
        assert!(s
            .on_frame(b"#SD#300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;7A01")
            .is_ok());
        assert_eq!(
            s.on_frame(b"#SD#300924;154245;5554.350052;N;3644.670410;E;2.93;NA;NA;NA;7A01"),
            Err(SessionError::BadChecksum {
                received: 0x7a01,
                computed: u32::from(crate::checksum::crc16_ibm(
                    b"300924;154245;5554.350052;N;3644.670410;E;2.93;NA;NA;NA;"
                )),
            })
        );
        // 2.0: a driver message ends with its checksum.
        assert!(matches!(
            s.on_frame(b"#M#hello;0000\r\n"),
            Err(SessionError::BadChecksum { .. })
        ));
        assert!(s
            .on_frame(&encode::message("hello", encode::Version::V2))
            .is_ok());
        // The login capture's checksum does not match its text.
        assert!(matches!(
            Session::new().on_frame(b"#L#2.0;42001300083;;CE45"),
            Err(SessionError::BadChecksum { .. })
        ));
    }

    #[test]
    fn identity_rules() {
        assert_eq!(
            Session::new().on_frame(b"#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA\r\n"),
            Err(SessionError::NotIdentified)
        );
        let mut s = Session::new();
        let h = s
            .on_frame(b"2.0;354#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA\r\n")
            .unwrap();
        assert!(h.store);
        assert_eq!(s.device_id(), Some("354"));
        assert!(matches!(
            s.on_frame(b"355#P#\r\n"),
            Err(SessionError::BadIdentity(_))
        ));
        assert!(matches!(
            Session::new().on_frame(b"#L#;NA\r\n"),
            Err(SessionError::BadIdentity(_))
        ));
        let mut s = Session::new();
        s.on_frame(b"#L#1;NA\r\n").unwrap();
        assert!(matches!(
            s.on_frame(b"#SD#1;2;3\r\n"),
            Err(SessionError::Malformed(_))
        ));
        assert!(matches!(
            s.on_frame(b"#I#1;2;3;4;5;x.jpg\r\n"),
            Err(SessionError::Malformed(_))
        ));
    }
}
