//! Properties of the watch framer, session, parser and encoder on arbitrary
//! input: no panics, the framer never holds `max_frame` bytes and drops
//! nothing but garbage between messages, streams are cut the same wherever
//! they are split, and encoded positions come back.

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use fleetbus_codec::watch::{self, encode, Framer, Session};
use fleetbus_codec::{FrameError, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const ID: &str = "8800000015";

fn ctx() -> ParseContext {
    ParseContext::new(ID, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
}

/// Messages of known types with random bodies and lengths.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&["SG", "3G", "CS", "ZJ"][..]),
        prop::sample::select(
            &[
                "LK", "UD", "UD2", "UD_LTE", "AL", "AL_LTE", "WT", "TKQ", "CONFIG", "INIT", "JXTK",
                "TK", "PULSE", "bphrt", "btemp2", "TEMP", "oxygen",
            ][..],
        ),
        prop::option::of("[0-9a-f]{4}"),
        0u16..300,
        "[0-9A-FNSEWV.,:\\- \\[\\]}*]{0,120}",
    )
        .prop_map(|(vendor, kind, index, len, body)| {
            let index = index.map(|i| format!("{i}*")).unwrap_or_default();
            format!("[{vendor}*{ID}*{index}{len:04X}*{kind},{body}]").into_bytes()
        })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        shaped(),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|mut v| {
            v.splice(0..0, b"[3G*1*0010*".iter().copied());
            v
        }),
    ]
}

fn position(secs: i64, lat: f64, lon: f64, speed: f64, course: f64, valid: bool) -> Position {
    let mut p = Position::new(ID, "watch", Utc.timestamp_opt(secs, 0).unwrap());
    p.latitude = lat;
    p.longitude = lon;
    p.speed = speed;
    p.course = course;
    p.valid = valid;
    p
}

mod common;

/// The shared framer check (tests/common) with this protocol's framer; what
/// it may drop is checked by the stream properties below.
fn run_framer(input: &[u8], chunks: &[usize], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    common::run_framer(Framer::new(max), input, chunks, max, |_: &[u8]| true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_panics(input in any_input()) {
        let _ = watch::identify(&input);
        let _ = watch::parse(&input, &ctx());
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&input);
        let mut buf = BytesMut::from(&input[..]);
        let mut framer = Framer::new(watch::MAX_FRAME);
        while let Ok(Some(frame)) = framer.decode(&mut buf) {
            let _ = Session::new().on_frame(&frame);
            let _ = watch::parse(&frame, &ctx());
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

    /// Whatever the split, the same frames; garbage without `[` between
    /// messages is dropped and nothing else.
    #[test]
    fn streams_are_cut_wherever_they_are_split(
        fixes in prop::collection::vec(
            (946_684_800i64..4_102_444_799, -90.0f64..=90.0, -180.0f64..=180.0, any::<bool>()),
            1..6,
        ),
        garbage in prop::collection::vec("[^\\[]{0,12}", 6),
        chunks in prop::collection::vec(1usize..50, 0..30),
    ) {
        let mut frames = vec![encode::link("3G", ID, Some((50, 3, 100))).to_vec()];
        frames.extend(fixes.iter().map(|&(secs, lat, lon, valid)| {
            let p = position(secs, lat, lon, 10.0, 90.0, valid);
            encode::position("3G", ID, None, "UD", &p, encode::Status::default()).to_vec()
        }));
        frames.push(encode::link("3G", ID, None).to_vec());
        let stream: Vec<u8> = frames
            .iter()
            .zip(garbage.iter().cycle())
            .flat_map(|(f, g)| g.as_bytes().iter().chain(f.iter()).copied())
            .collect();
        let whole = run_framer(&stream, &[], watch::MAX_FRAME).unwrap();
        let cut = run_framer(&stream, &chunks, watch::MAX_FRAME).unwrap();
        prop_assert_eq!(&cut, &whole);
        prop_assert_eq!(cut, frames);
    }

    /// Binary content, escaped, is one message whatever it holds.
    #[test]
    fn escaped_binary_is_one_message(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = format!("[CS*{ID}*{:04X}*TK,", data.len() + 3).into_bytes();
        bytes.extend(encode::escape(&data));
        bytes.push(b']');
        let mut stream = bytes.clone();
        stream.extend_from_slice(&encode::link("CS", ID, None));
        let cut = run_framer(&stream, &[], watch::MAX_FRAME).unwrap();
        prop_assert_eq!(cut.len(), 2);
        prop_assert_eq!(&cut[0], &bytes);
    }

    #[test]
    fn positions_round_trip(
        secs in 946_684_800i64..4_102_444_799,
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        speed in 0.0f64..400.0,
        course in 0.0f64..360.0,
        altitude in -500.0f64..9000.0,
        satellites in 0u32..40,
        valid in any::<bool>(),
        alarm in any::<bool>(),
        index in prop::option::of("[0-9]{4}"),
        battery in 0u8..=100,
        steps in 0u32..100_000,
    ) {
        let mut p = position(secs, lat, lon, speed, course, valid);
        p.altitude = altitude;
        p.satellites = Some(satellites);
        let kind = if alarm { "AL" } else { "UD" };
        let status = encode::Status { rssi: 80, battery, steps, flags: if alarm { 1 << 16 } else { 0 } };
        let bytes = encode::position("ZJ", ID, index.as_deref(), kind, &p, status);
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = Framer::new(watch::MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());

        let handled = Session::new().on_frame(&frame).unwrap();
        prop_assert!(handled.store);
        match &handled.reply {
            Some(reply) => {
                let index = index.as_deref().map(|i| format!("{i}*")).unwrap_or_default();
                prop_assert!(alarm);
                let expected = format!("[ZJ*{ID}*{index}0002*AL]");
                prop_assert_eq!(&reply[..], expected.as_bytes());
            }
            None => prop_assert!(!alarm),
        }

        let records = watch::parse(&frame, &ctx()).unwrap();
        prop_assert_eq!(records.len(), 1);
        let Record::Position(got) = &records[0] else { panic!("{records:?}") };
        prop_assert_eq!(got.fix_time, p.fix_time);
        prop_assert_eq!(got.valid, valid);
        prop_assert_eq!(got.latitude, lat);
        prop_assert_eq!(got.longitude, lon);
        prop_assert_eq!(got.speed, speed);
        prop_assert_eq!(got.course, course);
        prop_assert_eq!(got.altitude, altitude);
        prop_assert_eq!(got.satellites, Some(satellites));
        prop_assert_eq!(got.attributes["batteryLevel"].as_u64(), Some(u64::from(battery)));
        prop_assert_eq!(got.attributes["steps"].as_u64(), Some(u64::from(steps)));
        prop_assert_eq!(got.attributes.get("alarm").and_then(|v| v.as_str()), alarm.then_some("sos"));
    }
}
