//! Codec 12 (responses to text commands) and Codec 13 (serial-port data with
//! a timestamp). Neither carries a position: they become command replies and
//! status records, never fixes.

use chrono::{DateTime, Utc};

use crate::read::Reader;
use crate::{DeviceMessage, ParseContext, ParseError, Record};

use super::NAME;

/// Codec 12 message type of a command, sent by the server.
pub const TYPE_COMMAND: u8 = 0x05;
/// Codec 12 message type of a response, sent by the device.
pub const TYPE_RESPONSE: u8 = 0x06;
/// Codec 12 message type of camera (image transfer) packets.
pub const TYPE_CAMERA: u8 = 0x0D;

/// Codec 12: `count` messages of `type:u8 size:u32 payload`.
pub(crate) fn codec12(
    count: u8,
    body: &[u8],
    ctx: &ParseContext,
) -> Result<Vec<Record>, ParseError> {
    let mut r = Reader::new(body);
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let kind = r.u8("message type")?;
        let size = r.u32("message size")?;
        let payload = r.bytes(usize::try_from(size).unwrap_or(usize::MAX), "message")?;
        if kind == TYPE_CAMERA {
            // Images arrive in chunks the server must request one by one;
            // reassembling them needs state across frames, which a parser of
            // single stored frames does not have.
            return Err(ParseError::Unsupported(
                "Codec 12 camera image transfer".into(),
            ));
        }
        let mut m = DeviceMessage::new(ctx, NAME);
        m.set("type", kind);
        text_attributes(&mut m, payload);
        out.push(Record::CommandReply(m));
    }
    r.finish("Codec 12 data after the last message")?;
    Ok(out)
}

/// Codec 13: `count` messages of `type:u8 size:u32 timestamp:u32 payload`,
/// where `size` counts the timestamp and the payload.
pub(crate) fn codec13(
    count: u8,
    body: &[u8],
    ctx: &ParseContext,
) -> Result<Vec<Record>, ParseError> {
    let mut r = Reader::new(body);
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        r.u8("message type")?;
        let size = r.u32("message size")?;
        let payload_len = size.checked_sub(4).ok_or_else(|| {
            ParseError::Invalid(format!(
                "Codec 13 message size {size} cannot hold its 4-byte timestamp"
            ))
        })?;
        let seconds = r.u32("timestamp")?;
        let mut payload_len = usize::try_from(payload_len).unwrap_or(usize::MAX);
        // Some firmwares count only the payload in `size`, not the timestamp
        // (seen in the wild, e.g. `#GET DATAORDER` replies). When the last
        // message is left exactly 4 bytes short that way, read the whole
        // payload rather than cut the text and reject the frame.
        if count == 1 && r.remaining() == payload_len + 4 {
            payload_len += 4;
        }
        let payload = r.bytes(payload_len, "message")?;
        let mut m = DeviceMessage::new(ctx, NAME);
        if let Some(time) = DateTime::<Utc>::from_timestamp(i64::from(seconds), 0) {
            m.time = time;
        }
        // A driver card reader sends `GTSL|…|…|…|<card id>|…`.
        let card = printable(payload)
            .filter(|text| text.starts_with("GTSL"))
            .and_then(|text| text.split('|').nth(4).map(str::to_owned));
        match card {
            Some(card) => m.set("driverUniqueId", card),
            None => text_attributes(&mut m, payload),
        }
        out.push(Record::Status(m));
    }
    r.finish("Codec 13 data after the last message")?;
    Ok(out)
}

/// The payload as trimmed text when it is printable ASCII (CR and LF
/// allowed), as Traccar decides.
fn printable(payload: &[u8]) -> Option<String> {
    let ok = payload
        .iter()
        .all(|&b| (32..128).contains(&b) || b == b'\r' || b == b'\n');
    ok.then(|| {
        String::from_utf8_lossy(payload)
            .trim_matches(|c: char| c <= ' ')
            .to_owned()
    })
}

/// `result` (text, or hex when binary), or the axle weights of a
/// `UUUUww…;SSS` weighing-scale report.
fn text_attributes(m: &mut DeviceMessage, payload: &[u8]) {
    let Some(text) = printable(payload) else {
        m.set("result", hex::encode(payload));
        return;
    };
    if !axle_weights(m, &text) {
        m.set("result", text);
    }
}

/// `UUUUww` + twelve `;`-separated numbers + `;SSS`: eight axle loads, then
/// truck and trailer load and total.
fn axle_weights(m: &mut DeviceMessage, text: &str) -> bool {
    let Some(inner) = text
        .strip_prefix("UUUUww")
        .and_then(|t| t.strip_suffix(";SSS"))
    else {
        return false;
    };
    let values: Option<Vec<f64>> = inner.split(';').map(|v| v.trim().parse().ok()).collect();
    let Some(values) = values.filter(|v| v.len() >= 12) else {
        return false;
    };
    for (i, v) in values[..8].iter().enumerate() {
        m.set(&format!("axle{}", i + 1), *v);
    }
    for (key, v) in ["loadTruck", "loadTrailer", "totalTruck", "totalTrailer"]
        .iter()
        .zip(&values[8..12])
    {
        m.set(key, *v);
    }
    true
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::teltonika::parse;

    fn ctx() -> ParseContext {
        ParseContext::new(
            "356307042441013",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    fn parse_hex(h: &str) -> Result<Vec<Record>, ParseError> {
        parse(&hex::decode(h).unwrap(), &ctx())
    }

    #[test]
    fn codec12_text_and_binary_responses() {
        // "Hello" from the device, and a binary (Modbus-like) response.
        let frame = crate::teltonika::encode::command_response("Hello").unwrap();
        let records = parse(&frame, &ctx()).unwrap();
        let [Record::CommandReply(m)] = &records[..] else {
            panic!("{records:?}")
        };
        assert_eq!(
            (
                m.attributes["type"].as_u64(),
                m.attributes["result"].as_str()
            ),
            (Some(6), Some("Hello"))
        );
        assert_eq!(m.time, ctx().received_at);
        let records =
            parse_hex("00000000000000100c010600000008010300010015d5c5010000d988").unwrap();
        assert_eq!(records[0].attributes()["result"], "010300010015d5c5");
    }

    #[test]
    fn codec12_axle_weights() {
        let h = "000000000000004f0c01060000004755555555777730362e343b30342e323b30302e303b30302e303b30302e303b30302e303b30302e303b30302e303b30312e333b30302e303b31302e373b30302e303b5353530d0a010000e371";
        let a = parse_hex(h).unwrap()[0].attributes().clone();
        assert_eq!(
            (a["axle1"].as_f64(), a["axle2"].as_f64()),
            (Some(6.4), Some(4.2))
        );
        assert_eq!(
            (a["loadTruck"].as_f64(), a["totalTruck"].as_f64()),
            (Some(1.3), Some(10.7))
        );
        assert!(!a.contains_key("result"));
    }

    #[test]
    fn codec13_driver_card_is_a_timed_status() {
        let h = "00000000000000240d01060000001c642b3ad14754534c7c367c317c307c31323734393838347c317c0d0a010000ec11";
        let records = parse_hex(h).unwrap();
        let [Record::Status(m)] = &records[..] else {
            panic!("{records:?}")
        };
        assert_eq!(m.attributes["driverUniqueId"], "12749884");
        assert_eq!(m.time, Utc.timestamp_opt(0x642b_3ad1, 0).unwrap());
    }

    #[test]
    fn codec13_size_without_the_timestamp_is_read_whole() {
        // Real capture: size 0x10 counts only "#GET DATAORDER\r\n".
        let h = "000000000000001c0d01050000001056e924222347455420444154414f524445520d0a0100004990";
        let records = parse_hex(h).unwrap();
        let [Record::Status(m)] = &records[..] else {
            panic!("{records:?}")
        };
        assert_eq!(m.attributes["result"], "#GET DATAORDER");
    }

    #[test]
    fn camera_transfer_is_unsupported_and_sizes_are_checked() {
        let err =
            parse_hex("00000000000000100c010d00000008010300010015d5c5010000d988").unwrap_err();
        assert!(matches!(err, ParseError::Unsupported(_)), "{err}");
        // Message size larger than the frame.
        let err =
            parse_hex("00000000000000100c0106ffffffff010300010015d5c5010000d988").unwrap_err();
        assert!(matches!(err, ParseError::Truncated(_)), "{err}");
        // Codec 13 size too small for its timestamp.
        let err = parse_hex("000000000000000c0d010600000002642b3ad1010000").unwrap_err();
        assert!(matches!(err, ParseError::Invalid(_)), "{err}");
    }
}
