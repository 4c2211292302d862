//! Alarm messages 0x95 (JC100 / JC400 dash cameras): a time or a GPS block,
//! an event code and, from cameras, the names of the recorded video files.

use crate::ParseError;

use super::super::frame::Frame;
use super::super::msg::Variant;

use super::fields::SERIAL_AND_CRC;
use super::fields::{self, GpsLayout};
use super::out::{Decoded, Kind};

pub(crate) fn decode(f: &Frame, variant: Variant) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    let jc400 = variant == Variant::Jc400;
    // More than a time and an event code: a GPS block.
    let with_gps = f.length.saturating_sub(5) > 7;
    if with_gps {
        if jc400 {
            r.skip(3, "marker, version")?; // marker, version
        }
        let layout = GpsLayout {
            has_length: false,
            has_satellites: jc400,
            has_speed: jc400,
            long_speed: jc400,
            flags_first: jc400,
        };
        fields::gps(&mut r, layout, &mut out)?;
    } else {
        out.time = Some(fields::date(&mut r)?);
    }
    if jc400 {
        out.set("power", f64::from(r.u16("power")?) / 10.0);
    }
    let event = r.u8("event")?;
    out.set("event", event);
    if r.remaining_before_last(SERIAL_AND_CRC) >= 2 {
        out.set("eventData", r.u16("eventData")?);
    }
    out.add_alarm(match event {
        0x01 if with_gps => Some("sos"),
        0x01 => Some("general"),
        0x0e => Some("lowPower"),
        0x76 => Some("temperature"),
        0x80 => Some("vibration"),
        0x87 => Some("overspeed"),
        0x88 => Some("powerCut"),
        0x90 => Some("hardAcceleration"),
        0x91 => Some("hardBraking"),
        0x92 => Some("hardCornering"),
        0x93 => Some("accident"),
        _ => None,
    });
    let files = r.rest_before_last(SERIAL_AND_CRC);
    if !files.is_empty() {
        out.set("eventFiles", String::from_utf8_lossy(files).into_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::gt06::parser::tests::decode_hex;

    #[test]
    fn short_alarm_has_no_fix() {
        let d = decode_hex("78780c95130a0209321c91000112800d0a");
        assert!(d.fix.is_none());
        assert_eq!(d.attributes["alarm"], "hardBraking");
        assert_eq!(d.time.unwrap().to_string(), "2019-10-02 09:50:28 UTC");
    }

    #[test]
    fn camera_alarm_with_files() {
        let d = decode_hex("78785995ffff01170719152013df0163d45f041ee52018be002f00876900004556454e545f3836323739383035303137353131325f30303030303030305f323032335f30375f32355f31385f33325f30355f31342e6d70340119d15a0d0a");
        assert!(d.fix.is_some());
        assert_eq!(d.attributes["event"], 105);
        assert!(d.attributes["eventFiles"]
            .as_str()
            .unwrap()
            .ends_with(".mp4"));
    }
}
