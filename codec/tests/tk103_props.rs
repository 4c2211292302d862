//! Properties of the TK103 framer, session, parser and encoder on arbitrary
//! input: no panics, the framer drops only bytes before a `(`, never holds
//! `max_frame` bytes, cuts streams the same wherever they are split, and
//! encoded positions come back.

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use fleetbus_codec::tk103::{self, encode, Framer, Session};
use fleetbus_codec::{FrameError, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const ID: &str = "088047365460";

fn ctx() -> ParseContext {
    ParseContext::new(ID, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
}

/// Messages of known commands with random bodies.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(
            &[
                "BR00", "BP05", "BO01", "BP00", "ZC20", "ZC03", "DW5B", "DW3B", "BZ00", "BV00",
                "BS50", "BQ81",
            ][..],
        ),
        any::<bool>(),
        "[0-9A-FLNSEWV.,:*{}$ +\\-]{0,90}",
    )
        .prop_map(|(command, comma, body)| {
            let s = if comma {
                format!("({ID},{command},{body})")
            } else {
                format!("({ID}{command}{body})")
            };
            s.into_bytes()
        })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        shaped(),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|mut v| {
            v.insert(0, b'(');
            v
        }),
    ]
}

fn position(secs: i64, lat: f64, lon: f64, speed: f64, course: f64, valid: bool) -> Position {
    let mut p = Position::new(ID, "tk103", Utc.timestamp_opt(secs, 0).unwrap());
    p.latitude = lat;
    p.longitude = lon;
    p.speed = speed;
    p.course = course;
    p.valid = valid;
    p
}

mod common;

/// The shared framer check (tests/common) with this protocol's framer and
/// what it may discard.
fn run_framer(input: &[u8], chunks: &[usize], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    common::run_framer(Framer::new(max), input, chunks, max, |b: &[u8]| {
        !b.contains(&b'(')
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_panics(input in any_input()) {
        let _ = tk103::identify(&input);
        let _ = tk103::parse(&input, &ctx());
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&input);
        let mut buf = BytesMut::from(&input[..]);
        let mut framer = Framer::new(tk103::MAX_FRAME);
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
            (946_684_800i64..4_102_444_799, -90.0f64..=90.0, -180.0f64..=180.0, any::<bool>()),
            1..6,
        ),
        chunks in prop::collection::vec(1usize..50, 0..30),
    ) {
        let mut frames = vec![encode::handshake(ID, "354188047365460").to_vec()];
        frames.extend(fixes.iter().map(|&(secs, lat, lon, valid)| {
            encode::position(ID, &position(secs, lat, lon, 10.0, 90.0, valid), 7).to_vec()
        }));
        let stream: Vec<u8> = frames.concat();
        let cut = run_framer(&stream, &chunks, tk103::MAX_FRAME).unwrap();
        prop_assert_eq!(cut, frames);
    }

    #[test]
    fn positions_round_trip(
        secs in 946_684_800i64..4_102_444_799,
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        decikmh in 0u32..=9_999,
        centidegrees in 0u32..36_000,
        valid in any::<bool>(),
        kind in 0u8..3,
        odometer in any::<u32>(),
    ) {
        let speed = f64::from(decikmh) / 10.0;
        let course = f64::from(centidegrees) / 100.0;
        let p = position(secs, lat, lon, speed, course, valid);
        let bytes = match kind {
            0 => encode::position(ID, &p, odometer),
            1 => encode::login(ID, "354188047365460", &p),
            _ => encode::alarm(ID, '2', &p),
        };
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = Framer::new(tk103::MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());

        let mut session = Session::new();
        let handled = session.on_frame(&frame).unwrap();
        prop_assert!(handled.store);
        prop_assert_eq!(handled.reply.is_some(), kind != 0);

        let records = tk103::parse(&frame, &ctx()).unwrap();
        prop_assert_eq!(records.len(), 1);
        let Record::Position(got) = &records[0] else { panic!("{records:?}") };
        prop_assert_eq!(got.fix_time, p.fix_time);
        prop_assert_eq!(got.valid, valid);
        prop_assert!((got.latitude - lat).abs() < 1e-5, "{} vs {}", got.latitude, lat);
        prop_assert!((got.longitude - lon).abs() < 1e-5, "{} vs {}", got.longitude, lon);
        prop_assert!((got.speed - speed).abs() < 1e-9, "{} vs {}", got.speed, speed);
        prop_assert!((got.course - course).abs() < 1e-9, "{} vs {}", got.course, course);
        if kind == 0 {
            prop_assert_eq!(got.attributes.get("odometer").and_then(|v| v.as_u64()), Some(u64::from(odometer)));
        }
        if kind == 2 {
            prop_assert_eq!(got.attributes.get("alarm").and_then(|v| v.as_str()), Some("sos"));
        }
    }
}
