//! Properties of the H02 framer, session, parser and encoder on arbitrary
//! input: no panics, the framer never takes more than it returns (besides
//! the line ends between messages) nor holds `max_frame` bytes, streams are
//! cut the same wherever they are split, and encoded positions come back.

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use fleetbus_codec::h02::{self, encode, Framer, Session};
use fleetbus_codec::{FrameError, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const ID: &str = "4210051415";

fn ctx() -> ParseContext {
    ParseContext::new(ID, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
}

/// Text messages of known types with random fields.
fn shaped_text() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(
            &[
                "V1", "V0", "HTBT", "NBR", "LINK", "V3", "VP1", "V4", "V19", "XT",
            ][..],
        ),
        prop::collection::vec("[0-9A-FNSEWXVY.\\- ]{0,12}", 0..30),
    )
        .prop_map(|(kind, fields)| {
            let mut s = format!("*HQ,{ID},{kind}");
            for f in fields {
                s.push(',');
                s.push_str(&f);
            }
            s.push('#');
            s.into_bytes()
        })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        shaped_text(),
        // Binary start and noise.
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|mut v| {
            v.insert(0, b'$');
            v
        }),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|mut v| {
            v.insert(0, b'*');
            v
        }),
    ]
}

fn position(secs: i64, lat: f64, lon: f64, speed: f64, course: f64, valid: bool) -> Position {
    let mut p = Position::new(ID, "h02", Utc.timestamp_opt(secs, 0).unwrap());
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
    common::run_framer(Framer::new(max), input, chunks, max, common::filler)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_panics(input in any_input()) {
        let _ = h02::identify(&input);
        let _ = h02::parse(&input, &ctx());
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&input);
        let _ = Framer::new(h02::MAX_FRAME).decode(&mut BytesMut::from(&input[..]));
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
            (946_684_800i64..4_102_444_799, -90.0f64..=90.0, -180.0f64..=180.0, any::<bool>(), any::<bool>()),
            1..6,
        ),
        chunks in prop::collection::vec(1usize..50, 0..30),
    ) {
        let frames: Vec<Vec<u8>> = fixes
            .iter()
            .map(|&(secs, lat, lon, valid, binary)| {
                let p = position(secs, lat, lon, 10.0, 90.0, valid);
                if binary {
                    encode::binary_position(ID, &p, 6, 0xFFFF_FBFF).to_vec()
                } else {
                    encode::position(ID, &p, 0xFFFF_FBFF).to_vec()
                }
            })
            .collect();
        // Text messages end with a line end on most firmwares.
        let stream: Vec<u8> = frames
            .iter()
            .flat_map(|f| {
                let end: &[u8] = if f[0] == b'*' { b"\r\n" } else { b"" };
                f.iter().chain(end).copied()
            })
            .collect();
        let cut = run_framer(&stream, &chunks, h02::MAX_FRAME).unwrap();
        prop_assert_eq!(cut, frames);
    }

    #[test]
    fn positions_round_trip(
        secs in 946_684_800i64..4_102_444_799,
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        knots in 0u32..=999,
        course in 0u32..360,
        valid in any::<bool>(),
        binary in any::<bool>(),
        ignition in any::<bool>(),
    ) {
        let p = position(secs, lat, lon, f64::from(knots) * 1.852, f64::from(course), valid);
        let status = if ignition { 0xFFFF_FFFF } else { 0xFFFF_FBFF };
        let bytes = if binary {
            encode::binary_position(ID, &p, 6, status)
        } else {
            encode::position(ID, &p, status)
        };
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = Framer::new(h02::MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());

        let mut session = Session::new();
        let handled = session.on_frame(&frame).unwrap();
        prop_assert!(handled.store);
        prop_assert_eq!(session.device_id(), Some(ID));
        prop_assert_eq!(handled.reply.is_some(), !binary);

        let records = h02::parse(&frame, &ctx()).unwrap();
        prop_assert_eq!(records.len(), 1);
        let Record::Position(got) = &records[0] else { panic!("{records:?}") };
        let precision = if binary { 1e-5 } else { 1e-6 };
        prop_assert_eq!(got.fix_time, p.fix_time);
        prop_assert_eq!(got.valid, valid);
        prop_assert!((got.latitude - lat).abs() < precision, "{} vs {}", got.latitude, lat);
        prop_assert!((got.longitude - lon).abs() < precision, "{} vs {}", got.longitude, lon);
        prop_assert!((got.speed - p.speed).abs() < 0.01, "{} vs {}", got.speed, p.speed);
        prop_assert_eq!(got.course, f64::from(course));
        prop_assert_eq!(got.attributes.get("ignition"), Some(&ignition.into()));
    }
}
