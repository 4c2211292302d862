//! Properties of the JT808 framer, session, parser and encoder on arbitrary
//! input: no panics, the framer never yields or holds more than `max_frame`,
//! streams are cut the same wherever they are split (escapes included), a
//! corrupted byte is never stored, and encoded positions come back.

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use fleetbus_codec::jt808::{self, encode, encode::Terminal, Framer, Session};
use fleetbus_codec::{FrameError, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const PHONE: &str = "013511221122";

fn ctx() -> ParseContext {
    ParseContext::new(PHONE, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
}

/// Message ids the parser knows (and a few it does not).
const IDS: &[u16] = &[
    0x0001, 0x0002, 0x0003, 0x0100, 0x0102, 0x0104, 0x0107, 0x0109, 0x0200, 0x0201, 0x0210, 0x0506,
    0x0701, 0x0702, 0x0704, 0x0900, 0x1007, 0x1300, 0x2070, 0x5501, 0x5502, 0x6006, 0x8888, 0x1234,
];

/// Well-formed messages with random bodies: reach deep into the parser.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(IDS),
        prop::collection::vec(any::<u8>(), 0..200),
        any::<u16>(),
    )
        .prop_map(|(id, body, serial)| {
            encode::message(id, &Terminal::phone(PHONE), serial, &body).to_vec()
        })
}

/// Location reports with random extensions after a valid basic block.
fn shaped_location() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(
            (any::<u8>(), prop::collection::vec(any::<u8>(), 0..30)),
            0..8,
        ),
        any::<u32>(),
    )
        .prop_map(|(extensions, alarm)| {
            let p = Position::new(
                PHONE,
                "jt808",
                Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            );
            let mut body = encode::location_block(&p, alarm);
            for (kind, value) in extensions {
                body.push(kind);
                body.push(value.len() as u8);
                body.extend(value);
            }
            encode::message(0x0200, &Terminal::phone(PHONE), 1, &body).to_vec()
        })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        shaped(),
        shaped_location(),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|mut v| {
            v.insert(0, 0x7e);
            v.push(0x7e);
            v
        }),
    ]
}

/// Feeds `input` to a framer in chunks, checking every call.
fn run_framer(input: &[u8], chunks: &[usize], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut framer = Framer::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut sizes = chunks.iter().copied().chain(std::iter::repeat(usize::MAX));
    loop {
        let before = buf.len();
        match framer.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert!(
                    frame.len() <= max,
                    "frame of {} bytes above max {max}",
                    frame.len()
                );
                assert!(
                    before - buf.len() >= frame.len(),
                    "frame longer than what was taken"
                );
                frames.push(frame.to_vec());
            }
            Ok(None) => {
                assert!(buf.len() < max, "holds {} bytes, max {max}", buf.len());
                if fed == input.len() {
                    return Ok(frames);
                }
                let n = sizes.next().unwrap_or(1).clamp(1, input.len() - fed);
                buf.extend_from_slice(&input[fed..fed + n]);
                fed += n;
            }
            Err(e) => {
                assert!(buf.len() <= before);
                return Err(e);
            }
        }
    }
}

/// The frame one whole message gives.
fn cut_one(message: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::from(message);
    let frame = Framer::new(jt808::MAX_FRAME)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    frame.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_panics(input in any_input()) {
        let _ = jt808::identify(&input);
        let _ = jt808::parse(&input, &ctx());
        for model in ["G-360P", "AL300", "JC371", "MV710G", "C5L", "G1C Pro", "DT800"] {
            let _ = jt808::parse(&input, &ctx().with_model(Some(model.into())));
        }
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&input);
        let mut buf = BytesMut::from(&input[..]);
        if let Ok(Some(frame)) = Framer::new(jt808::MAX_FRAME).decode(&mut buf) {
            let _ = Session::new().on_frame(&frame);
            let _ = jt808::parse(&frame, &ctx());
        }
    }

    #[test]
    fn framer_bounds(
        input in any_input(),
        chunks in prop::collection::vec(1usize..40, 0..20),
        max in 8usize..400,
    ) {
        let _ = run_framer(&input, &chunks, max);
    }

    #[test]
    fn streams_are_cut_wherever_they_are_split(
        messages in prop::collection::vec(prop_oneof![shaped(), shaped_location()], 1..6),
        chunks in prop::collection::vec(1usize..50, 0..30),
    ) {
        let expected: Vec<Vec<u8>> = messages.iter().map(|m| cut_one(m)).collect();
        let stream: Vec<u8> = messages.concat();
        let cut = run_framer(&stream, &chunks, jt808::MAX_FRAME).unwrap();
        prop_assert_eq!(cut, expected);
    }

    #[test]
    fn a_corrupted_byte_is_never_stored(
        message in shaped_location(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let frame = cut_one(&message);
        let mut bad = frame.clone();
        // Inside the checksummed part (not the delimiters).
        let i = 1 + at.index(bad.len() - 2);
        bad[i] ^= flip;
        let handled = Session::new().on_frame(&bad);
        prop_assert!(handled.is_err() || !handled.unwrap().store, "stored a corrupted frame");
    }

    #[test]
    fn positions_round_trip(
        // The wire's time is BCD with a two-digit year, in GMT+8: from
        // 2000-01-01 to 2099-12-31 23:59:59 Beijing time, which ends
        // 8 hours before 2100 in UTC (4_102_416_000).
        secs in 946_684_800i64..4_102_416_000,
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        decikmh in 0u16..=65_535,
        course in 0u16..360,
        altitude in -1000i16..9000,
        valid in any::<bool>(),
        ignition in any::<bool>(),
        sats in prop::option::of(0u32..=40),
        serial in any::<u16>(),
    ) {
        let mut p = Position::new(PHONE, "jt808", Utc.timestamp_opt(secs, 0).unwrap());
        p.latitude = lat;
        p.longitude = lon;
        p.speed = f64::from(decikmh) / 10.0;
        p.course = f64::from(course);
        p.altitude = f64::from(altitude);
        p.valid = valid;
        p.satellites = sats;
        p.set("ignition", ignition);
        let t = Terminal::phone(PHONE);
        let frame = cut_one(&encode::location(&t, serial, &p, 0, 17));

        let mut session = Session::new();
        let handled = session.on_frame(&frame).unwrap();
        prop_assert!(handled.store);
        prop_assert_eq!(handled.reply.unwrap(), encode::general_response(&t, 0, serial, 0x0200));
        prop_assert_eq!(session.device_id(), Some(PHONE));

        let records = jt808::parse(&frame, &ctx()).unwrap();
        prop_assert_eq!(records.len(), 1);
        let Record::Position(got) = &records[0] else { panic!("{records:?}") };
        prop_assert_eq!(got.fix_time, p.fix_time);
        prop_assert_eq!(got.valid, valid);
        prop_assert!((got.latitude - lat).abs() < 1e-6, "{} vs {}", got.latitude, lat);
        prop_assert!((got.longitude - lon).abs() < 1e-6, "{} vs {}", got.longitude, lon);
        prop_assert!((got.speed - p.speed).abs() < 1e-9);
        prop_assert_eq!(got.course, p.course);
        prop_assert_eq!(got.altitude, p.altitude);
        prop_assert_eq!(got.satellites, sats);
        prop_assert_eq!(got.attributes.get("ignition"), Some(&ignition.into()));
        prop_assert_eq!(got.attributes.get("rssi").and_then(|v| v.as_u64()), Some(17));
    }

    #[test]
    fn logins_round_trip(phone in "[0-9]{12}", serial in any::<u16>()) {
        let t = Terminal::phone(&phone);
        let frame = cut_one(&encode::register(&t, serial));
        prop_assert_eq!(jt808::identify(&frame), Some(phone.clone()));
        let mut session = Session::new();
        let handled = session.on_frame(&frame).unwrap();
        prop_assert!(!handled.store);
        prop_assert_eq!(handled.reply.unwrap(), encode::register_response(&t, 0, serial, &phone));
        let handled = session.on_frame(&cut_one(&encode::auth(&t, serial.wrapping_add(1), &phone))).unwrap();
        prop_assert_eq!(handled.reply.unwrap(), encode::general_response(&t, 1, serial.wrapping_add(1), 0x0102));
    }
}
