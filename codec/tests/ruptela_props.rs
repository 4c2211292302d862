//! Properties of the Ruptela framer, session, parser and encoder on
//! arbitrary input: no panics, the framer never holds `max_frame` bytes nor
//! yields a packet with a wrong CRC, cuts streams the same wherever they are
//! split, and encoded records come back.

use bytes::BytesMut;
use chrono::DateTime;
use fleetbus_codec::ruptela::{self, encode, Framer, Session};
use fleetbus_codec::{FrameError, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

mod common;

const IMEI: u64 = 863_591_024_076_709;

fn ctx() -> ParseContext {
    ParseContext::new(
        "863591024076709",
        DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    )
}

/// Packets with a right length and CRC around an arbitrary body.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&[1u8, 2, 3, 7, 9, 15, 16, 17, 37, 68, 99][..]),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(command, payload)| encode::packet(IMEI, command, &payload).to_vec())
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..300), shaped()]
}

fn position() -> impl Strategy<Value = Position> {
    (
        946_684_800i64..4_102_444_799,
        -900_000_000i32..=900_000_000,
        -1_800_000_000i32..=1_800_000_000,
        0u16..=6000,
        0u16..36000,
        0u16..400,
        0u8..40,
        proptest::option::of(any::<bool>()),
        proptest::option::of(0u16..=30_000),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(
            |(secs, lat, lon, dm, course, speed, sats, ignition, mv, odometer)| {
                let mut p = Position::new(
                    "863591024076709",
                    "ruptela",
                    DateTime::from_timestamp(secs, 0).unwrap(),
                );
                p.valid = true;
                p.latitude = f64::from(lat) / 1e7;
                p.longitude = f64::from(lon) / 1e7;
                p.altitude = f64::from(dm) / 10.0;
                p.course = f64::from(course) / 100.0;
                p.speed = f64::from(speed);
                p.satellites = Some(u32::from(sats));
                if let Some(on) = ignition {
                    p.set("ignition", on);
                }
                if let Some(mv) = mv {
                    p.set("power", f64::from(mv) * 0.001);
                }
                if let Some(m) = odometer {
                    p.set("odometer", m);
                }
                p
            },
        )
}

/// Feeds `input` to a framer in chunks, checking every call.
fn run_framer(input: &[u8], chunks: &[usize], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    // Ruptela frames are back to back: nothing between them is skipped.
    let frames = common::run_framer(Framer::new(max), input, chunks, max, <[u8]>::is_empty)?;
    for frame in &frames {
        // Whatever the framer yields passes the session's checks of
        // envelope and CRC without a panic.
        let _ = Session::new().on_frame(frame);
    }
    Ok(frames)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_panics(input in any_input()) {
        let _ = ruptela::identify(&input);
        let _ = ruptela::parse(&input, &ctx());
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&input);
        let mut buf = BytesMut::from(&input[..]);
        let _ = Framer::new(ruptela::MAX_FRAME).decode(&mut buf);
    }

    #[test]
    fn framer_bounds(
        input in any_input(),
        chunks in prop::collection::vec(1usize..40, 0..20),
        max in 13usize..400,
    ) {
        let _ = run_framer(&input, &chunks, max);
    }

    #[test]
    fn streams_are_cut_wherever_they_are_split(
        batches in prop::collection::vec(prop::collection::vec(position(), 0..5), 1..5),
        chunks in prop::collection::vec(1usize..50, 0..30),
    ) {
        let mut frames = vec![encode::identification(IMEI, b"\x01\x02").to_vec()];
        frames.extend(batches.iter().map(|b| encode::records(IMEI, b, 1).unwrap().to_vec()));
        frames.push(encode::heartbeat(IMEI).to_vec());
        let stream: Vec<u8> = frames.concat();
        let cut = run_framer(&stream, &chunks, ruptela::MAX_FRAME).unwrap();
        prop_assert_eq!(cut, frames);
    }

    #[test]
    fn records_round_trip(positions in prop::collection::vec(position(), 1..8), event in any::<u8>()) {
        let bytes = encode::records(IMEI, &positions, event).unwrap();
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = Framer::new(ruptela::MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());

        let handled = Session::new().on_frame(&frame).unwrap();
        prop_assert!(handled.store);
        let reply = handled.reply.unwrap();
        prop_assert_eq!(&reply[..], &[0x00, 0x02, 0x64, 0x01, 0x13, 0xbc][..]);
        let id = ruptela::identify(&frame);
        prop_assert_eq!(id.as_deref(), Some("863591024076709"));

        let records = ruptela::parse(&frame, &ctx()).unwrap();
        prop_assert_eq!(records.len(), positions.len());
        for (r, p) in records.iter().zip(&positions) {
            let Record::Position(got) = r else { panic!("{r:?}") };
            prop_assert_eq!(got.fix_time, p.fix_time);
            prop_assert!((got.latitude - p.latitude).abs() < 1e-9);
            prop_assert!((got.longitude - p.longitude).abs() < 1e-9);
            prop_assert!((got.altitude - p.altitude).abs() < 1e-9);
            prop_assert!((got.course - p.course).abs() < 1e-9);
            prop_assert_eq!(got.speed, p.speed);
            prop_assert_eq!(got.satellites, p.satellites);
            prop_assert_eq!(got.attributes.get("event").and_then(|v| v.as_u64()), Some(u64::from(event)));
            for key in ["ignition", "odometer"] {
                prop_assert_eq!(got.attributes.get(key), p.attributes.get(key));
            }
            if let Some(v) = p.attributes.get("power").and_then(|v| v.as_f64()) {
                let g = got.attributes["power"].as_f64().unwrap();
                prop_assert!((g - v).abs() < 1e-9, "{} vs {}", g, v);
            }
        }
    }
}
