//! Text from the device: command replies (0x15, 0x21), the SIM's ICCID
//! (0x15), a position as text (0x21 answering a WHERE command) and data from
//! a serial port device (0x9B).

use chrono::NaiveDateTime;

use crate::ParseError;

use super::super::frame::Frame;

use super::fields::{self, SERIAL_AND_CRC};
use super::out::{Decoded, Fix, Kind};

/// 0x15: length, server flag, text.
pub(crate) fn string(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    let len = usize::from(r.u8("length")?);
    if len == 0 {
        return Ok(out);
    }
    let text_len = len.checked_sub(4).ok_or_else(|| {
        ParseError::Invalid(format!(
            "string length {len} is shorter than its server flag"
        ))
    })?;
    r.skip(4, "server flag")?; // server flag
    let text = r.utf8_lossy(text_len, "text")?;
    match text.strip_prefix("<ICCID:") {
        Some(rest) => out.set("iccid", rest.chars().take(20).collect::<String>()),
        None => {
            out.kind = Kind::CommandReply;
            out.set("result", text);
        }
    }
    Ok(out)
}

/// 0x21: server flag, encoding (1 = ASCII, else UTF-16BE), text.
pub(crate) fn string_info(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::CommandReply);
    r.skip(4, "server flag")?; // server flag
    let ascii = r.u8("ascii")? == 1;
    let raw = r.rest_before_last(SERIAL_AND_CRC);
    let text = if ascii {
        String::from_utf8_lossy(raw).into_owned()
    } else {
        utf16be(raw)
    };
    match position_text(&text) {
        Some(fix) => {
            out.kind = Kind::Status;
            out.fix = Some(fix);
        }
        None => out.set("result", text),
    }
    Ok(out)
}

/// 0x9B: device type, then the serial device's bytes (text if printable, hex otherwise).
pub(crate) fn serial(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::CommandReply);
    r.skip(1, "external device type")?; // external device type
    let data = r.rest_before_last(SERIAL_AND_CRC);
    if data.iter().all(|b| (0x20..0x7f).contains(b)) {
        out.set("result", String::from_utf8_lossy(data).trim());
    } else {
        out.set("result", hex::encode(data));
    }
    Ok(out)
}

fn utf16be(raw: &[u8]) -> String {
    let units = raw
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// `Current position!Lat:N54.739332,Lon:E25.273270,Course:126.53,Speed:0.0000,DateTime:2017-05-26  10:27:47`
fn position_text(text: &str) -> Option<Fix> {
    let rest = &text[text.find("Current position!")? + "Current position!".len()..];
    let rest = rest.strip_prefix("Lat:")?;
    let (lat, rest) = rest.split_once(",Lon:")?;
    let (lon, rest) = rest.split_once(",Course:")?;
    let (course, rest) = rest.split_once(",Speed:")?;
    let (speed, rest) = rest.split_once(",DateTime:")?;
    let (date, time) = rest.trim().split_once(' ')?;
    let time =
        NaiveDateTime::parse_from_str(&format!("{date} {}", time.trim()), "%Y-%m-%d %H:%M:%S")
            .ok()?;
    Some(Fix {
        time: time.and_utc(),
        valid: true,
        latitude: hemisphere(lat, 'N', 'S')?,
        longitude: hemisphere(lon, 'E', 'W')?,
        // The text does not give units; taken as km/h like the binary messages.
        speed: speed.parse().ok()?,
        course: course.parse().ok()?,
        altitude: 0.0,
    })
}

fn hemisphere(value: &str, positive: char, negative: char) -> Option<f64> {
    let mut chars = value.chars();
    let sign = match chars.next()? {
        c if c == positive => 1.0,
        c if c == negative => -1.0,
        _ => return None,
    };
    Some(sign * chars.as_str().parse::<f64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gt06::parser::tests::decode_hex;

    #[test]
    fn position_as_text() {
        let fix = position_text(
            "Current position!Lat:N54.739332,Lon:E25.273270,Course:126.53,Speed:0.0000,DateTime:2017-05-26  10:27:47",
        )
        .unwrap();
        assert_eq!(
            (fix.latitude, fix.longitude, fix.course),
            (54.739332, 25.27327, 126.53)
        );
        assert_eq!(fix.time.to_string(), "2017-05-26 10:27:47 UTC");
        assert!(position_text("Command error!").is_none());
    }

    #[test]
    fn replies() {
        let d = decode_hex("78782d152500000000437574206f666620746865206675656c20737570706c793a2053756363657373210002013b898a0d0a");
        assert_eq!(d.kind, Kind::CommandReply);
        assert_eq!(d.attributes["result"], "Cut off the fuel supply: Success!");
        let d = decode_hex("797900262100000000020043006f006d006d0061006e00640020006500720072006f0072002100236e850d0a");
        assert_eq!(d.attributes["result"], "Command error!");
        let d = decode_hex("7979000e9b0332382e33a1e60d0a0289be490d0a");
        assert_eq!(d.attributes["result"], "32382e33a1e60d0a");
    }

    #[test]
    fn iccid() {
        let d = decode_hex("7878281520000000003c49434349443a38393838323339303030303039373330323635303e00020d446f260d0a");
        assert_eq!(d.kind, Kind::Status);
        assert_eq!(d.attributes["iccid"], "89882390000097302650");
    }
}
