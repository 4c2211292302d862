//! Turns one GT06 frame into records, following the message types, layouts,
//! attribute names and units of Traccar's `Gt06ProtocolDecoder` (our own
//! code, checked against Traccar's test captures), with three differences:
//! speed stays in km/h (Traccar stores knots), messages without their own
//! fix become typed non-position records (Traccar repeats the last fix), and
//! times are read as UTC (Traccar applies a time zone from its settings or
//! from the login's extension bits, which a frame-at-a-time parser does not
//! see).
//!
//! The CRC is not checked here: the framer checked it on the way in, stored
//! frames are trusted, and some devices send none.

mod alarm;
mod fields;
mod info;
mod lbs;
mod location;
mod modular;
mod out;
mod positions;
mod status;
mod text;
mod vehicle;

use crate::{DeviceMessage, ParseContext, ParseError, Record};

use super::frame::Frame;
use super::msg::{self, Model, Variant};
use super::NAME;
use out::Decoded;

/// Parses one frame; `model` is the device model when known (it changes the
/// meaning of a few messages, see [`Model`]).
pub(crate) fn parse(
    bytes: &[u8],
    ctx: &ParseContext,
    model: Option<&str>,
) -> Result<Vec<Record>, ParseError> {
    let frame = Frame::parse(bytes).map_err(ParseError::Invalid)?;
    if frame.protocol == msg::LOGIN {
        return login(bytes, ctx).map(|r| vec![r]);
    }
    let decoded = decode(&frame, Variant::of(&frame), Model::new(model))?;
    Ok(decoded.into_iter().map(|d| d.into_record(ctx)).collect())
}

fn login(bytes: &[u8], ctx: &ParseContext) -> Result<Record, ParseError> {
    let imei = super::identify(bytes)
        .ok_or_else(|| ParseError::Invalid("login frame without a BCD IMEI".into()))?;
    let mut message = DeviceMessage::new(ctx, NAME);
    message.device_id = imei;
    Ok(Record::Login(message))
}

/// One message, dispatched in the order Traccar tries them: several
/// protocol numbers mean different things depending on the variant and on
/// whether the frame is extended. `None` for messages without data.
fn decode(f: &Frame, variant: Variant, model: Model) -> Result<Option<Decoded>, ParseError> {
    let kind = f.protocol;
    let extended = f.extended();
    let decoded = match kind {
        msg::HEARTBEAT => status::heartbeat(f)?,
        // Requests and photo transfers: answered by the session, nothing to record.
        msg::ADDRESS_REQUEST | msg::TIME_REQUEST | msg::X1_PHOTO_INFO => return Ok(None),
        msg::X1_GPS if variant != Variant::Sl4x => positions::x1(f)?,
        k if msg::is_wifi_scan(k, variant) => lbs::wifi_scan(f)?,
        msg::INFO if !extended => info::power(f)?,
        msg::LBS_MULTIPLE_3 if variant == Variant::Sr411Mini => positions::sr411(f, variant)?,
        k if msg::is_multi_lbs(k, variant, extended) => lbs::cells(f, variant, model)?,
        msg::BLUETOOTH_CLOCK => lbs::bluetooth_clock(f)?,
        msg::STRING => text::string(f)?,
        msg::BMS => vehicle::bms(f)?,
        msg::STATUS if f.content().len() == 16 => status::with_temperature(f)?,
        msg::IBUTTON => positions::ibutton(f, variant)?,
        k if msg::is_location_family(k, variant)
            && !(extended && (k == msg::GPS_LBS_STATUS_4 || k == msg::STATUS_2)) =>
        {
            return location::decode(f, variant, model);
        }
        msg::ALARM => alarm::decode(f, variant)?,
        msg::STRING_INFO => text::string_info(f)?,
        msg::INFO => return info::decode(f),
        // Extended 0x36 is photo data, 0x41 multimedia: not stored as records.
        msg::STATUS_2 | msg::MULTIMEDIA => return Ok(None),
        // Extended 0x32 / 0x33 (standard ones are handled above).
        msg::GPS_LBS_STATUS_4 | msg::WIFI_5 => positions::az735(f, variant)?,
        msg::OBD => vehicle::obd(f)?,
        msg::GPS_MODULAR => modular::gps_modular(f)?,
        msg::SERIAL => text::serial(f)?,
        msg::PERIPHERAL | msg::DEVICE_STATUS => modular::device_status(f)?,
        msg::GPS_LBS_8 => positions::gps_lbs_8(f, variant)?,
        // Server command numbers echoed by some devices; Traccar ignores them too.
        msg::COMMAND_0 | msg::COMMAND_1 | msg::COMMAND_2 => return Ok(None),
        // Unknown: a permanent error, so the frame is dead-lettered and kept
        // for a parser that knows it.
        other => {
            return Err(ParseError::Unsupported(format!(
                "{} message type {other:#04x}",
                if extended { "extended" } else { "standard" }
            )))
        }
    };
    Ok(Some(decoded))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes a frame that must yield one message.
    pub(crate) fn decode_bytes(bytes: &[u8]) -> Decoded {
        let f = Frame::parse(bytes).unwrap();
        decode(&f, Variant::of(&f), Model::default())
            .unwrap()
            .expect("a message")
    }

    pub(crate) fn decode_hex(hex_str: &str) -> Decoded {
        decode_bytes(&hex::decode(hex_str).unwrap())
    }
}
