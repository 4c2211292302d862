//! The server side of one Teltonika TCP connection, or of one UDP datagram:
//! who the device is, what to store and what to answer.

use bytes::Bytes;

use crate::{Handled, ParseError, Pinned, SessionError};

use super::codec;
use super::encode;
use super::envelope::{self, Envelope};

/// What the server answers an accepted IMEI login.
const LOGIN_ACCEPTED: u8 = 0x01;

#[derive(Debug, Default)]
pub struct Session {
    device: Pinned,
    /// Judging UDP packets (one per datagram) rather than a TCP stream.
    datagrams: bool,
}

impl Session {
    /// A TCP connection: an IMEI login, then AVL packets.
    pub fn new() -> Self {
        Session::default()
    }

    /// A UDP datagram: one packet carrying its IMEI and its AVL data, no
    /// login and no CRC. The answer is the UDP acknowledgement (packet id,
    /// AVL packet id, records accepted).
    pub fn datagrams() -> Self {
        Session {
            device: Pinned::default(),
            datagrams: true,
        }
    }

    /// The IMEI the device logged in with.
    pub fn device_id(&self) -> Option<&str> {
        self.device.get()
    }

    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Handled, SessionError> {
        let envelope =
            envelope::classify(frame).map_err(|e| SessionError::Malformed(e.to_string()))?;
        if self.datagrams {
            return match envelope {
                Envelope::Udp {
                    packet_id,
                    avl_packet_id,
                    imei,
                    data,
                } => self.udp(packet_id, avl_packet_id, imei, data),
                _ => Err(SessionError::Malformed(
                    "a TCP frame (login, ping or AVL packet with CRC) arrived as a UDP datagram"
                        .into(),
                )),
            };
        }
        match envelope {
            // The framer swallows pings; one that arrives here is still harmless.
            Envelope::Ping => Ok(Handled::heartbeat(None)),
            Envelope::Login { imei } => self.login(imei),
            Envelope::Tcp {
                data,
                crc: Some(crc),
                ..
            } => self.avl(data, crc),
            Envelope::Tcp {
                declared_len,
                crc: None,
                ..
            } => Err(SessionError::Malformed(format!(
                "data length field says {declared_len}, the frame carries {} byte(s) of data",
                frame.len().saturating_sub(12)
            ))),
            Envelope::Udp { .. } => Err(SessionError::Malformed(
                "a UDP packet arrived on a TCP connection".into(),
            )),
        }
    }

    fn login(&mut self, imei: &str) -> Result<Handled, SessionError> {
        // A device that reconnects logically on the same socket is fine;
        // one connection speaking for two devices is not.
        self.device.pin(imei)?;
        Ok(Handled::login(
            imei,
            Some(Bytes::from_static(&[LOGIN_ACCEPTED])),
        ))
    }

    fn avl(&mut self, data: &[u8], crc: u32) -> Result<Handled, SessionError> {
        if self.device.is_none() {
            return Err(SessionError::NotIdentified);
        }
        envelope::check_crc(data, crc).map_err(|e| match e {
            ParseError::BadChecksum { received, computed } => {
                SessionError::BadChecksum { received, computed }
            }
            other => SessionError::Malformed(other.to_string()),
        })?;
        Self::data(data, |count| {
            Bytes::copy_from_slice(&encode::ack(u32::from(count)))
        })
    }

    fn udp(
        &mut self,
        packet_id: u16,
        avl_packet_id: u8,
        imei: &str,
        data: &[u8],
    ) -> Result<Handled, SessionError> {
        self.device.pin(imei)?;
        Self::data(data, |count| {
            Bytes::copy_from_slice(&encode::udp_ack(packet_id, avl_packet_id, count))
        })
    }

    /// AVL data (codec id … second record count) that passed the
    /// envelope's checks: stored, and answered with `ack(count)` for the
    /// AVL codecs.
    fn data(data: &[u8], ack: impl FnOnce(u8) -> Bytes) -> Result<Handled, SessionError> {
        // `classify` guarantees at least codec id and two counts.
        let (codec_id, first, second) = (data[0], data[1], data[data.len() - 1]);
        if first != second {
            return Err(SessionError::Malformed(format!(
                "record counts disagree: {first} at the start, {second} at the end"
            )));
        }
        let reply = if codec::is_avl(codec_id) {
            // The device deletes what it sees acknowledged; the gateway sends
            // this only after RAW stored the frame.
            Some(ack(first))
        } else {
            // Codec 12 (command response) and 13 (serial data) are one way:
            // Teltonika devices expect no answer. For a codec this code does
            // not know, the frame is well formed (length, CRC and counts
            // check out), so it is stored for later analysis (parsing will
            // dead-letter it) but not acknowledged: an ack format for an
            // unknown codec would be a guess, and a wrong ack could make the
            // device drop data. The connection stays open.
            None
        };
        Ok(Handled::data(reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameKind;

    fn bytes(h: &str) -> Vec<u8> {
        hex::decode(h).unwrap()
    }

    const LOGIN: &str = "000f333536333037303432343431303133";
    const WIKI_CODEC8: &str = "000000000000003608010000016b40d8ea30010000000000000000000000000000000105021503010101425e0f01f10000601a014e0000000000000000010000c7cf";
    /// A Codec 12 response (binary payload) from Traccar's test suite.
    const CODEC12: &str = "00000000000000100c010600000008010300010015d5c5010000d988";

    fn logged_in() -> Session {
        let mut s = Session::new();
        s.on_frame(&bytes(LOGIN)).unwrap();
        s
    }

    #[test]
    fn login_is_answered_with_01_and_not_stored() {
        let mut s = Session::new();
        let h = s.on_frame(&bytes(LOGIN)).unwrap();
        assert_eq!(
            h.kind,
            FrameKind::Login {
                device_id: "356307042441013".into()
            }
        );
        assert!(!h.store);
        assert_eq!(h.reply.as_deref(), Some(&[0x01][..]));
        assert_eq!(s.device_id(), Some("356307042441013"));
        // The same login again is fine, another IMEI is not.
        s.on_frame(&bytes(LOGIN)).unwrap();
        let other = bytes("000f333536333037303432343431303134");
        assert!(matches!(
            s.on_frame(&other),
            Err(SessionError::BadIdentity(_))
        ));
    }

    #[test]
    fn data_before_login_is_refused() {
        assert_eq!(
            Session::new().on_frame(&bytes(WIKI_CODEC8)),
            Err(SessionError::NotIdentified)
        );
    }

    #[test]
    fn avl_data_is_stored_and_acked_with_the_record_count() {
        let h = logged_in().on_frame(&bytes(WIKI_CODEC8)).unwrap();
        assert_eq!(h, Handled::data(Some(Bytes::from_static(&[0, 0, 0, 1]))));
    }

    #[test]
    fn codec12_response_is_stored_without_reply() {
        let h = logged_in().on_frame(&bytes(CODEC12)).unwrap();
        assert_eq!(h, Handled::data(None));
    }

    #[test]
    fn unknown_codec_is_stored_without_reply() {
        let frame = encode::raw_frame(&[0x42, 0x00, 0x00]);
        let h = logged_in().on_frame(&frame).unwrap();
        assert_eq!(h, Handled::data(None));
    }

    #[test]
    fn bad_crc_and_count_mismatch_are_refused() {
        let mut h = WIKI_CODEC8.to_owned();
        h.replace_range(h.len() - 4.., "0000");
        assert!(matches!(
            logged_in().on_frame(&bytes(&h)),
            Err(SessionError::BadChecksum { .. })
        ));
        let frame = encode::raw_frame(&[0x08, 0x01, 0x02]);
        assert!(matches!(
            logged_in().on_frame(&frame),
            Err(SessionError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_is_malformed_and_ping_is_a_heartbeat() {
        assert!(matches!(
            logged_in().on_frame(b"hello"),
            Err(SessionError::Malformed(_))
        ));
        assert!(matches!(
            logged_in().on_frame(&[]),
            Err(SessionError::Malformed(_))
        ));
        let h = logged_in().on_frame(&[0xff]).unwrap();
        assert_eq!(h, Handled::heartbeat(None));
    }

    #[test]
    fn a_udp_datagram_is_identified_by_its_imei_stored_and_answered_with_its_ids() {
        use crate::teltonika::encode::{udp_packet, AvlCodec, AvlRecord};
        let fix = crate::Position::new(
            "356307042441013",
            "teltonika",
            chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        );
        let records = vec![
            AvlRecord::from_position(&fix),
            AvlRecord::from_position(&fix),
        ];
        let packet = udp_packet(0xcafe, 9, "356307042441013", AvlCodec::Codec8, &records).unwrap();
        let mut s = Session::datagrams();
        let h = s.on_frame(&packet).unwrap();
        assert!(h.store);
        assert_eq!(h.kind, FrameKind::Data);
        assert_eq!(h.reply.as_deref(), Some(&encode::udp_ack(0xcafe, 9, 2)[..]));
        assert_eq!(s.device_id(), Some("356307042441013"));
        // The same datagram session cannot speak for a second device.
        let other = udp_packet(1, 1, "356307042441014", AvlCodec::Codec8, &records).unwrap();
        assert!(matches!(
            s.on_frame(&other),
            Err(SessionError::BadIdentity(_))
        ));
        // TCP frames are not UDP packets, and a TCP session takes no UDP packet.
        let mut s = Session::datagrams();
        assert!(matches!(
            s.on_frame(&bytes(LOGIN)),
            Err(SessionError::Malformed(_))
        ));
        assert!(matches!(
            s.on_frame(&bytes(WIKI_CODEC8)),
            Err(SessionError::Malformed(_))
        ));
        assert!(matches!(
            Session::new().on_frame(&packet),
            Err(SessionError::Malformed(_))
        ));
    }
}
