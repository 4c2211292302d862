//! What the server answers to each message. GT06 firmwares resend what is
//! not acknowledged (some reconnect after a few misses), and an answer a
//! device does not expect is ignored, so we answer exactly what Traccar
//! answers: devices in the field work with that.

use super::frame::Frame;
use super::msg::{self, Variant};

/// The kind of answer a message gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    None,
    /// `78 78 05 <protocol> <serial> <crc> 0d 0a`.
    Ack,
    /// The same in an extended frame.
    AckExtended,
    /// The current UTC time (0x8A).
    Time,
    /// An empty address (0x2A asks for a street address; we have none).
    Address,
    /// A WiFi scan's own BCD time, without serial and CRC.
    WifiTime,
}

/// Mirrors the parser's dispatch order (see `parser::decode`).
pub(crate) fn answer(f: &Frame, variant: Variant) -> Answer {
    let kind = f.protocol;
    let extended = f.extended();
    match kind {
        msg::LOGIN | msg::HEARTBEAT => Answer::Ack,
        msg::ADDRESS_REQUEST => Answer::Address,
        msg::TIME_REQUEST => Answer::Time,
        msg::X1_GPS if variant != Variant::Sl4x => Answer::None,
        // Traccar answers with a request for the photo's data; we do not fetch photos.
        msg::X1_PHOTO_INFO => Answer::None,
        msg::WIFI_4 => Answer::None,
        k if msg::is_wifi_scan(k, variant) => Answer::WifiTime,
        msg::INFO if !extended => Answer::None,
        msg::LBS_MULTIPLE_3 if variant == Variant::Sr411Mini => Answer::None,
        k if msg::is_multi_lbs(k, variant, extended) => Answer::Ack,
        msg::BLUETOOTH_CLOCK | msg::STRING | msg::BMS | msg::IBUTTON => Answer::Ack,
        msg::LBS_STATUS if variant == Variant::Space10x => Answer::None,
        k if msg::is_location_family(k, variant)
            && !(extended && (k == msg::GPS_LBS_STATUS_4 || k == msg::STATUS_2)) =>
        {
            Answer::Ack
        }
        msg::ALARM | msg::STRING_INFO => Answer::Ack,
        msg::INFO | msg::STATUS_2 => Answer::None,
        msg::GPS_LBS_STATUS_4 | msg::WIFI_5 | msg::MULTIMEDIA => Answer::AckExtended,
        msg::OBD | msg::SERIAL | msg::GPS_LBS_8 => Answer::None,
        msg::GPS_MODULAR | msg::PERIPHERAL | msg::DEVICE_STATUS => Answer::Ack,
        msg::COMMAND_0 | msg::COMMAND_1 | msg::COMMAND_2 => Answer::None,
        // Unknown standard messages get the generic ack (as in Traccar);
        // unknown extended ones none.
        _ if extended => Answer::None,
        _ => Answer::Ack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_hex(hex_str: &str) -> Answer {
        let bytes = hex::decode(hex_str).unwrap();
        let f = Frame::parse(&bytes).unwrap();
        answer(&f, Variant::of(&f))
    }

    #[test]
    fn answers() {
        assert_eq!(
            answer_hex("78780d010352887071911998000479d00d0a"),
            Answer::Ack
        );
        assert_eq!(
            answer_hex("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a"),
            Answer::Ack
        );
        assert_eq!(answer_hex("7878058a000688290d0a"), Answer::Time);
        assert_eq!(
            answer_hex("787800171710231108290200cc080c4e2fa5640c4e2fa5640d0a"),
            Answer::WifiTime
        );
        assert_eq!(answer_hex("79790008940b02e3048614200d0a"), Answer::None);
        assert_eq!(answer_hex("78788b818300000000534545464e2626004f04220045042626262b37393035343031353534362626262626260410041b0415041a04210415041926262b373930363433333031313526260410043d044f26262b373936303437383430363426260412043e0432043026262b373932383834373738383126262626262626262626262626262626232300020022155d0d0a"), Answer::None);
        assert_eq!(answer_hex("7979000584001600000d0a"), Answer::None);
        assert_eq!(answer_hex("78780584001600000d0a"), Answer::Ack);
    }
}
