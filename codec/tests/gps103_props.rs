//! Properties of the GPS103 framer, session, parser and encoder on arbitrary
//! input: no panics, the framer never takes more than it returns (besides
//! the line ends between messages) nor holds `max_frame` bytes, streams are
//! cut the same wherever they are split, and encoded positions come back.

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use fleetbus_codec::gps103::{self, encode, Framer, Session};
use fleetbus_codec::{FrameError, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const IMEI: &str = "359586015829802";

fn ctx() -> ParseContext {
    ParseContext::new(IMEI, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
}

/// Messages of known shapes with random fields.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(
            &[
                "tracker", "help me", "OBD", "acc on", "T:+1", "oil 5", "rfid", "vr01", "",
            ][..],
        ),
        prop::collection::vec("[0-9A-FLNSEWV.:/%+\\- ]{0,14}", 0..24),
        prop::sample::select(&[";", "*", "\r\n", ""][..]),
    )
        .prop_map(|(keyword, fields, end)| {
            let mut s = format!("imei:{IMEI},{keyword}");
            for f in fields {
                s.push(',');
                s.push_str(&f);
            }
            s.push_str(end);
            s.into_bytes()
        })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        shaped(),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|mut v| {
            v.splice(0..0, *b"imei:");
            v
        }),
    ]
}

fn position(secs: i64, lat: f64, lon: f64, speed: f64, course: f64, valid: bool) -> Position {
    let mut p = Position::new(IMEI, "gps103", Utc.timestamp_opt(secs, 0).unwrap());
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
        let _ = gps103::identify(&input);
        let _ = gps103::parse(&input, &ctx());
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&input);
        let mut buf = BytesMut::from(&input[..]);
        let mut framer = Framer::new(gps103::MAX_FRAME);
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
        line_ends in any::<bool>(),
    ) {
        let mut frames = vec![encode::login(IMEI).to_vec(), encode::heartbeat(IMEI).to_vec()];
        frames.extend(fixes.iter().map(|&(secs, lat, lon, valid)| {
            encode::position(IMEI, "tracker", &position(secs, lat, lon, 10.0, 90.0, valid)).to_vec()
        }));
        let end: &[u8] = if line_ends { b"\r\n" } else { b"" };
        let stream: Vec<u8> = frames.iter().flat_map(|f| f.iter().chain(end).copied()).collect();
        let cut = run_framer(&stream, &chunks, gps103::MAX_FRAME).unwrap();
        prop_assert_eq!(cut, frames);
    }

    #[test]
    fn positions_round_trip(
        secs in 946_684_800i64..4_102_444_799,
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        centiknots in 0u32..=99_999,
        centidegrees in 0u32..36_000,
        valid in any::<bool>(),
        sos in any::<bool>(),
    ) {
        let speed = f64::from(centiknots) / 100.0 * 1.852;
        let course = f64::from(centidegrees) / 100.0;
        let p = position(secs, lat, lon, speed, course, valid);
        let keyword = if sos { "help me" } else { "tracker" };
        let bytes = encode::position(IMEI, keyword, &p);
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = Framer::new(gps103::MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());

        let mut session = Session::new();
        let handled = session.on_frame(&frame).unwrap();
        prop_assert!(handled.store);
        prop_assert_eq!(handled.reply.is_some(), sos);

        let records = gps103::parse(&frame, &ctx()).unwrap();
        prop_assert_eq!(records.len(), 1);
        let Record::Position(got) = &records[0] else { panic!("{records:?}") };
        prop_assert_eq!(got.fix_time, p.fix_time);
        prop_assert_eq!(got.valid, valid);
        prop_assert!((got.latitude - lat).abs() < 1e-6, "{} vs {}", got.latitude, lat);
        prop_assert!((got.longitude - lon).abs() < 1e-6, "{} vs {}", got.longitude, lon);
        prop_assert!((got.speed - speed).abs() < 1e-6, "{} vs {}", got.speed, speed);
        prop_assert!((got.course - course).abs() < 1e-9);
        if sos {
            prop_assert_eq!(got.attributes.get("alarm").and_then(|a| a.as_str()), Some("sos"));
        }
    }
}

/// A UDP datagram: several messages, the last without its `;`, cut through
/// the protocol registry as the gateway does (`decode` until `None`, then
/// `decode_eof` at the end of the datagram).
#[test]
fn a_datagram_is_cut_whole() {
    let protocol = fleetbus_codec::Protocol::Gps103;
    let mut framer = protocol.framer(protocol.default_max_frame());
    let mut buf = BytesMut::from(&b"##,imei:359586015829802,A;imei:359586015829802,tracker,,,L,;imei:359586015829802,tracker,,,L,"[..]);
    let mut frames = Vec::new();
    while let Some(frame) = framer.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    frames.push(framer.decode_eof(&mut buf).unwrap().unwrap());
    assert!(buf.is_empty());
    assert_eq!(frames.len(), 3);
    let mut session = protocol.session();
    assert!(!session.on_frame(&frames[0]).unwrap().store);
    assert!(session.on_frame(&frames[2]).unwrap().store);
    assert_eq!(session.device_id(), Some(IMEI));
}
