//! Turns an AVL packet's data field (codec id … second record count) into
//! records, whichever transport (TCP or UDP) carried it.

use crate::{ParseContext, ParseError, Record};

use super::codec::{CODEC_12, CODEC_13, CODEC_16, CODEC_8, CODEC_8E, GH3000};
use super::envelope::MIN_DATA_LEN;
use super::{avl, gh3000, serial};

/// Parses `data` sent by the device `ctx.device_id`.
pub(crate) fn parse_data(data: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    if data.len() < MIN_DATA_LEN {
        return Err(ParseError::Truncated(format!(
            "AVL data of {} byte(s) lacks codec id and record counts",
            data.len()
        )));
    }
    let (codec, count, second) = (data[0], data[1], data[data.len() - 1]);
    if count != second {
        return Err(ParseError::Invalid(format!(
            "record counts disagree: {count} at the start, {second} at the end"
        )));
    }
    let body = &data[2..data.len() - 1];
    match codec {
        CODEC_8 | CODEC_8E | CODEC_16 => avl::parse(codec, count, body, &ctx.device_id),
        GH3000 => gh3000::parse(count, body, &ctx.device_id),
        CODEC_12 => serial::codec12(count, body, ctx),
        CODEC_13 => serial::codec13(count, body, ctx),
        other => Err(ParseError::Unsupported(format!("codec id {other:#04x}"))),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::teltonika::{encode, identify, parse};

    fn ctx() -> ParseContext {
        ParseContext::new(
            "356307042441013",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    fn parse_hex(h: &str) -> Result<Vec<Record>, ParseError> {
        parse(&hex::decode(h).unwrap(), &ctx())
    }

    /// The first Codec 8 example of Teltonika's documentation.
    const WIKI_CODEC8: &str = "000000000000003608010000016b40d8ea30010000000000000000000000000000000105021503010101425e0f01f10000601a014e0000000000000000010000c7cf";

    #[test]
    fn wiki_codec8_example() {
        let records = parse_hex(WIKI_CODEC8).unwrap();
        let [Record::Position(p)] = &records[..] else {
            panic!("{records:?}")
        };
        assert_eq!(p.device_id, "356307042441013");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2019, 6, 10, 10, 4, 46).unwrap()
        );
        assert!(!p.valid, "no satellites, no fix");
        assert_eq!(p.satellites, Some(0));
        let a = serde_json::to_value(&p.attributes).unwrap();
        assert_eq!(
            a,
            serde_json::json!({"priority": 1, "event": 1, "rssi": 3, "in1": true, "power": 24.079, "operator": 24602})
        );
    }

    #[test]
    fn negative_coordinates_and_altitude() {
        // Codec 8 capture from Traccar's tests: south-west, below sea level.
        let h = "000000000000002b080100000140d4e3ec6e000cc661d01674a5e0fffc00000900000004020100f0000242322318000000000100007a04";
        let records = parse_hex(h).unwrap();
        let p = records[0].as_position().unwrap();
        assert_eq!(
            (p.longitude, p.latitude, p.altitude),
            (21.432776, 37.6743392, -4.0)
        );
        let h = "0000000000000035080100000161f37c50500020de5ba60ef11450000000000000000006040100b300b400ef000109002000014e0000000000000000010000be52";
        let p = parse_hex(h).unwrap()[0].as_position().unwrap().clone();
        assert_eq!((p.latitude, p.longitude), (25.06804, 55.1443366));
    }

    #[test]
    fn login_ping_and_udp() {
        let records = parse_hex("000f333536333037303432343431303133").unwrap();
        assert!(matches!(&records[..], [Record::Login(m)] if m.device_id == "356307042441013"));
        assert!(matches!(
            &parse_hex("ff").unwrap()[..],
            [Record::Heartbeat(_)]
        ));
        // Teltonika's UDP example: the IMEI comes from the packet itself.
        let udp = "003dcafe0105000f33353230393330383634303336353508010000016b4f815b30010000000000000000000000000000000103021503010101425dbc000001";
        assert_eq!(
            identify(&hex::decode(udp).unwrap()).as_deref(),
            Some("352093086403655")
        );
        let records = parse_hex(udp).unwrap();
        assert_eq!(records[0].device_id(), "352093086403655");
        assert_eq!(records[0].attributes()["power"], 23.996);
    }

    #[test]
    fn codec8e_and_16_examples() {
        // Teltonika's Codec 8 Extended and Codec 16 examples.
        let h = "000000000000004a8e010000016b412cee000100000000000000000000000000000000010005000100010100010011001d00010010015e2c880002000b000000003544c87a000e000000001dd7e06a00000100002994";
        let records = parse_hex(h).unwrap();
        let a = records[0].attributes();
        assert_eq!(
            (a["odometer"].as_u64(), a["axisX"].as_i64()),
            (Some(22_949_000), Some(29))
        );
        let h = "000000000000005f10020000016bdbc7833000000000000000000000000000000000000b05040200010000030002000b00270042563a00000000016bdbc7871800000000000000000000000000000000000b05040200010000030002000b00260042563a00000200005fb3";
        let records = parse_hex(h).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].attributes()["event"], 11);
        assert_eq!(records[1].attributes()["power"], 22.074);
    }

    /// One Codec 8 record without IO, with or without the 16-byte group.
    fn bare_record(sixteen_byte_group: bool) -> Vec<u8> {
        let mut data = vec![0x08, 0x01];
        data.extend_from_slice(
            &hex::decode("0000016b40d8ea3001000000000000000000000000000000000000000000").unwrap(),
        );
        if sixteen_byte_group {
            data.push(0);
        }
        data.push(0x01);
        data
    }

    #[test]
    fn the_16_byte_group_is_detected() {
        for extended in [false, true] {
            let records = parse_data(&bare_record(extended), &ctx()).unwrap();
            assert_eq!(records.len(), 1);
        }
        let mut data = bare_record(true);
        data.insert(data.len() - 1, 0);
        let err = parse_data(&data, &ctx()).unwrap_err();
        assert!(matches!(err, ParseError::Invalid(_)), "{err}");
    }

    #[test]
    fn malformed_data_is_an_error() {
        let ctx = ctx();
        let mut counts_differ = bare_record(false);
        *counts_differ.last_mut().unwrap() = 2;
        assert!(matches!(
            parse_data(&counts_differ, &ctx),
            Err(ParseError::Invalid(_))
        ));
        let truncated = [0x08, 0x01, 0x00, 0x00, 0x01];
        assert!(matches!(
            parse_data(&truncated, &ctx),
            Err(ParseError::Truncated(_))
        ));
        assert!(matches!(
            parse_data(&[0x42, 0, 0], &ctx),
            Err(ParseError::Unsupported(_))
        ));
        assert!(matches!(
            parse_data(&[0x08, 0], &ctx),
            Err(ParseError::Truncated(_))
        ));
        // 255 records announced, none present: fails fast, allocates little.
        assert!(parse_data(&[0x08, 0xff, 0xff], &ctx).is_err());
        assert!(parse_hex("47455420").is_err());
    }

    #[test]
    fn stored_frames_are_not_refused_for_their_crc() {
        // The gateway checked the CRC before acking; a stored frame decodes.
        let mut frame = encode::raw_frame(&bare_record(false)).to_vec();
        let n = frame.len();
        frame[n - 1] ^= 0xff;
        assert_eq!(parse(&frame, &ctx()).unwrap().len(), 1);
    }
}
