//! Properties of the Wialon IPS framer, session, parser and encoder on
//! arbitrary input: no panics, the framer drops only filler and lines (or
//! line starts) without a packet, never holds `max_frame` bytes, cuts
//! streams the same wherever they are split, and encoded packets (1.1 and
//! 2.0, TCP and UDP) come back through framer, session and parser.

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use fleetbus_codec::wialon::{self, encode, encode::Version, Framer, Session};
use fleetbus_codec::{FrameError, ParseContext, Position, Record, SessionError};
use proptest::prelude::*;
use serde_json::Value;
use tokio_util::codec::Decoder;

const IMEI: &str = "354868050655283";

fn ctx() -> ParseContext {
    ParseContext::new(IMEI, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
}

/// Packets of known types with random bodies.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&["", "354#", "2.0;354#", "x;y#"][..]),
        prop::sample::select(&["L", "SD", "D", "B", "P", "M", "I", "AD"][..]),
        "[0-9A-FNSEW.,:;|x -]{0,120}",
        any::<bool>(),
    )
        .prop_map(|(prefix, kind, body, end)| {
            let prefix = prefix.strip_suffix('#').unwrap_or(prefix);
            let mut s = format!("{prefix}#{kind}#{body}");
            if end {
                s.push_str("\r\n");
            }
            s.into_bytes()
        })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        shaped(),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|mut v| {
            v.splice(0..0, b"#D#".iter().copied());
            v
        }),
    ]
}

mod common;

/// What the framer may drop: filler, lines without a packet header and
/// bytes before a header that cannot be a device prefix — never a header
/// (`#`, one to three capital letters, `#`) itself.
fn may_discard(b: &[u8]) -> bool {
    !(0..b.len()).any(|i| {
        let letters = b[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_uppercase())
            .count();
        b[i] == b'#' && (1..=3).contains(&letters) && b.get(i + 1 + letters) == Some(&b'#')
    })
}

fn run_framer(input: &[u8], chunks: &[usize], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    common::run_framer(Framer::new(max), input, chunks, max, may_discard)
}

fn position(secs: i64, lat: f64, lon: f64, speed: f64, sats: Option<u32>) -> Position {
    let mut p = Position::new(IMEI, "wialon", Utc.timestamp_opt(secs, 0).unwrap());
    p.latitude = lat;
    p.longitude = lon;
    p.speed = speed;
    p.course = 123.45;
    p.altitude = -12.5;
    p.satellites = sats;
    p.valid = sats.is_some_and(|s| s >= 3);
    p
}

fn cut_one(bytes: &[u8]) -> bytes::Bytes {
    let mut buf = BytesMut::from(bytes);
    let frame = Framer::new(wialon::MAX_FRAME)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    frame
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_panics(input in any_input()) {
        let _ = wialon::identify(&input);
        let _ = wialon::parse(&input, &ctx());
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&input);
        let mut buf = BytesMut::from(&input[..]);
        let mut framer = Framer::new(wialon::MAX_FRAME);
        let _ = framer.decode(&mut buf);
        let _ = framer.decode_eof(&mut buf);
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
        fixes in prop::collection::vec(
            (946_684_800i64..4_102_444_799, -90.0f64..=90.0, -180.0f64..=180.0),
            1..6,
        ),
        v2 in any::<bool>(),
        chunks in prop::collection::vec(1usize..50, 0..30),
    ) {
        let version = if v2 { Version::V2 } else { Version::V1 };
        let mut frames = vec![encode::login(IMEI, None, version).to_vec(), encode::ping().to_vec()];
        frames.extend(fixes.iter().map(|&(secs, lat, lon)| {
            encode::data(&position(secs, lat, lon, 10.0, Some(7)), version).to_vec()
        }));
        let mut stream: Vec<u8> = Vec::new();
        for f in &frames {
            // Noise between packets is skipped.
            stream.extend_from_slice(b"\r\nAT+CSQ\r\n");
            stream.extend_from_slice(f);
        }
        let cut = run_framer(&stream, &chunks, wialon::MAX_FRAME).unwrap();
        prop_assert_eq!(cut, frames);
    }

    #[test]
    fn packets_round_trip(
        secs in 946_684_800i64..4_102_444_799,
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        centikmh in 0u32..=99_999,
        sats in prop::option::of(0u32..30),
        kind in 0u8..3,
        v2 in any::<bool>(),
        udp in any::<bool>(),
        count in 1usize..5,
        fuel in -1_000_000i64..1_000_000,
        name in "[a-z][a-z0-9_]{0,10}",
        text in "[A-Za-z0-9 .]{0,20}",
    ) {
        let version = if v2 { Version::V2 } else { Version::V1 };
        let speed = f64::from(centikmh) / 100.0;
        let mut p = position(secs, lat, lon, speed, sats);
        p.set(&format!("p_{name}"), fuel);
        p.set("note", text.as_str());
        let packet = match kind {
            0 => encode::short_data(&p, version),
            1 => encode::data(&p, version),
            _ => encode::black_box(&vec![p.clone(); count], version),
        };
        let mut session = Session::new();
        let packet = if udp {
            encode::udp(IMEI, &packet, version)
        } else {
            let login = session.on_frame(&cut_one(&encode::login(IMEI, None, version))).unwrap();
            prop_assert_eq!(login.reply.as_deref(), Some(&b"#AL#1\r\n"[..]));
            packet
        };
        let frame = cut_one(&packet);
        let handled = session.on_frame(&frame).unwrap();
        prop_assert!(handled.store);
        prop_assert_eq!(session.device_id(), Some(IMEI));
        let ack = match kind {
            0 => "#ASD#1\r\n".to_owned(),
            1 => "#AD#1\r\n".to_owned(),
            _ => format!("#AB#{count}\r\n"),
        };
        prop_assert_eq!(handled.reply.as_deref(), Some(ack.as_bytes()));

        let records = wialon::parse(&frame, &ctx()).unwrap();
        prop_assert_eq!(records.len(), if kind == 2 { count } else { 1 });
        for record in &records {
            let Record::Position(got) = record else { panic!("{records:?}") };
            prop_assert_eq!(got.fix_time, p.fix_time);
            prop_assert_eq!(got.valid, p.valid);
            prop_assert_eq!(got.satellites, sats);
            prop_assert!((got.latitude - lat).abs() < 1e-7, "{} vs {}", got.latitude, lat);
            prop_assert!((got.longitude - lon).abs() < 1e-7, "{} vs {}", got.longitude, lon);
            prop_assert!((got.speed - speed).abs() < 1e-9, "{} vs {}", got.speed, speed);
            prop_assert!((got.course - 123.45).abs() < 1e-9);
            prop_assert!((got.altitude + 12.5).abs() < 1e-9);
            if kind != 0 {
                let key = format!("p_{name}");
                prop_assert_eq!(got.attributes.get(&key), Some(&Value::from(fuel)));
                prop_assert_eq!(got.attributes.get("note"), Some(&Value::from(text.as_str())));
            }
        }
    }

    #[test]
    fn a_changed_byte_fails_the_checksum(
        secs in 946_684_800i64..4_102_444_799,
        at in any::<prop::sample::Index>(),
    ) {
        let p = position(secs, 54.5, 25.25, 12.0, Some(5));
        let packet = encode::data(&p, Version::V2);
        // A digit of the message (after `#D#`, before the checksum) turned into another.
        let body = 3..packet.len() - 7;
        let digits: Vec<usize> = body.filter(|&i| packet[i].is_ascii_digit()).collect();
        let i = digits[at.index(digits.len())];
        let mut bad = packet.to_vec();
        bad[i] = if bad[i] == b'9' { b'1' } else { bad[i] + 1 };
        let mut session = Session::new();
        session.on_frame(&encode::login(IMEI, None, Version::V2)).unwrap();
        let refused = matches!(session.on_frame(&bad), Err(SessionError::BadChecksum { .. }));
        prop_assert!(refused);
        prop_assert!(wialon::parse(&bad, &ctx()).is_err());
    }
}
