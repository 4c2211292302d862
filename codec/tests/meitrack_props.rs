//! Properties of the Meitrack framer, session, parser and encoder on
//! arbitrary input: no panics, the framer drops only bytes that cannot start
//! a message, never holds `max_frame` bytes, cuts streams the same wherever
//! they are split, and encoded positions come back.

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use fleetbus_codec::meitrack::{self, encode, Framer, Session};
use fleetbus_codec::{FrameError, FrameKind, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

mod common;

const IMEI: &str = "863071013799553";

fn ctx() -> ParseContext {
    ParseContext::new(IMEI, DateTime::from_timestamp(1_700_000_000, 0).unwrap())
}

/// Well-formed messages of known commands around random data.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&["AAA", "CCC", "CCE", "AAC", "D00", "D82", "D03"][..]),
        prop::collection::vec(any::<u8>(), 0..200),
        "[0-9A-F.,|\\-]{0,120}",
        any::<bool>(),
    )
        .prop_map(|(command, binary, text, use_text)| {
            let data = if use_text { text.into_bytes() } else { binary };
            encode::message(b'E', IMEI, command, &data).to_vec()
        })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        shaped(),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|mut v| {
            v.splice(0..0, b"$$A1".iter().copied());
            v
        }),
    ]
}

fn position() -> impl Strategy<Value = Position> {
    (
        946_684_800i64..4_102_444_799,
        -90_000_000i64..=90_000_000,
        -180_000_000i64..=180_000_000,
        0u16..1000,
        0u16..360,
        -500i32..9000,
        0u32..40,
        any::<bool>(),
    )
        .prop_map(|(secs, lat, lon, speed, course, alt, sats, valid)| {
            let mut p = Position::new(IMEI, "meitrack", DateTime::from_timestamp(secs, 0).unwrap());
            p.latitude = lat as f64 / 1e6;
            p.longitude = lon as f64 / 1e6;
            p.speed = f64::from(speed);
            p.course = f64::from(course);
            p.altitude = f64::from(alt);
            p.satellites = Some(sats);
            p.valid = valid;
            p
        })
}

/// Feeds `input` to a framer in chunks, checking every call.
fn run_framer(input: &[u8], chunks: &[usize], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    // Bytes before a `$$`, and a `$$` whose header is not one, are dropped
    // (the framer resynchronises on the next `$$`): anything may be.
    let frames = common::run_framer(Framer::new(max), input, chunks, max, |_| true)?;
    for frame in &frames {
        assert!(frame.starts_with(b"$$") && frame.ends_with(b"\r\n"));
    }
    Ok(frames)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_panics(input in any_input()) {
        let _ = meitrack::identify(&input);
        let _ = meitrack::parse(&input, &ctx());
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&input);
        let mut buf = BytesMut::from(&input[..]);
        let _ = Framer::new(meitrack::MAX_FRAME).decode(&mut buf);
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
    fn shaped_messages_pass_the_framer_and_session(input in shaped()) {
        let mut buf = BytesMut::from(&input[..]);
        let frame = Framer::new(meitrack::MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());
        prop_assert_eq!(&frame[..], &input[..]);
        let handled = Session::new().on_frame(&frame);
        // CCC with random data may be malformed; everything else is accepted.
        if !input.windows(4).any(|w| w == b",CCC") {
            prop_assert!(handled.is_ok());
        }
    }

    #[test]
    fn streams_are_cut_wherever_they_are_split(
        fixes in prop::collection::vec(position(), 1..5),
        garbage in prop::collection::vec(prop::sample::select(&b"xyz,*\r\n0"[..]), 0..10),
        chunks in prop::collection::vec(1usize..50, 0..30),
    ) {
        let mut frames: Vec<Vec<u8>> = fixes.iter().map(|p| encode::aaa(b'A', IMEI, p, 35).to_vec()).collect();
        frames.push(encode::ccc(b'B', IMEI, &fixes, 2).to_vec());
        let mut stream = garbage.clone();
        for f in &frames {
            stream.extend_from_slice(f);
        }
        let cut = run_framer(&stream, &chunks, meitrack::MAX_FRAME).unwrap();
        prop_assert_eq!(cut, frames);
    }

    #[test]
    fn positions_round_trip(fixes in prop::collection::vec(position(), 1..5), event in 0u8..=200) {
        let mut messages: Vec<(bytes::Bytes, usize)> = fixes.iter().map(|p| (encode::aaa(b'A', IMEI, p, u16::from(event)), 1)).collect();
        messages.push((encode::ccc(b'B', IMEI, &fixes, event), fixes.len()));
        for (i, (bytes, n)) in messages.iter().enumerate() {
            let mut buf = BytesMut::from(&bytes[..]);
            let frame = Framer::new(meitrack::MAX_FRAME).decode(&mut buf).unwrap().unwrap();
            let handled = Session::new().on_frame(&frame).unwrap();
            prop_assert_eq!(handled.kind, FrameKind::Data);
            prop_assert!(handled.store);
            let is_ccc = i == fixes.len();
            prop_assert_eq!(handled.reply.is_some(), is_ccc);
            let records = meitrack::parse(&frame, &ctx()).unwrap();
            prop_assert_eq!(records.len(), *n);
            let expected: Vec<&Position> = if is_ccc { fixes.iter().collect() } else { vec![&fixes[i]] };
            for (r, p) in records.iter().zip(expected) {
                let Record::Position(got) = r else { panic!("{r:?}") };
                prop_assert_eq!(got.fix_time, p.fix_time);
                prop_assert_eq!(got.valid, p.valid);
                prop_assert!((got.latitude - p.latitude).abs() < 1e-9, "{} vs {}", got.latitude, p.latitude);
                prop_assert!((got.longitude - p.longitude).abs() < 1e-9);
                prop_assert_eq!(got.speed, p.speed);
                prop_assert_eq!(got.course, p.course);
                if !is_ccc || p.altitude >= 0.0 {
                    prop_assert_eq!(got.altitude, p.altitude);
                }
                prop_assert_eq!(got.satellites, p.satellites);
                prop_assert_eq!(got.attributes.get("event").and_then(|v| v.as_u64()), Some(u64::from(event)));
            }
        }
    }
}

#[test]
fn ccc_answer_counts_records() {
    let p = Position::new(IMEI, "meitrack", Utc::now());
    let frame = encode::ccc(b'Q', IMEI, &[p.clone(), p.clone(), p], 1);
    let handled = Session::new().on_frame(&frame).unwrap();
    assert_eq!(
        &handled.reply.unwrap()[..],
        &encode::ccc_ack(b'Q', IMEI, 3)[..]
    );
}
