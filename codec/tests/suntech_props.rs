//! Properties of the Suntech framer, session, parser and encoder on
//! arbitrary input: no panics, frames are the bytes as sent (empty lines
//! between them dropped), the framer never holds `max_frame` bytes,
//! cuts streams the same wherever they are split, and encoded reports come
//! back.

use bytes::BytesMut;
use chrono::DateTime;
use fleetbus_codec::suntech::{self, encode, Framer, Session};
use fleetbus_codec::{FrameError, FrameKind, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const ID: &str = "317652";

fn ctx() -> ParseContext {
    ParseContext::new(ID, DateTime::from_timestamp(1_700_000_000, 0).unwrap())
}

/// Reports of known headers with random fields.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(
            &[
                "SA200STT", "ST300STT", "ST600UEX", "ST300ALT", "ST300EMG", "ST300EVT", "ST410STT",
                "ST910", "STT", "ALT", "UEX", "BLE", "BSA", "ST300HTE", "ST300CMD", "SA200ALV",
                "CRR",
            ][..],
        ),
        prop::collection::vec("[0-9A-Fa-f.:+\\-|=_,]{0,12}", 0..40),
    )
        .prop_map(|(header, fields)| {
            let mut s = format!("{header};{ID}");
            for f in fields {
                s.push(';');
                s.push_str(&f);
            }
            s.into_bytes()
        })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        shaped(),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|mut v| {
            v.splice(0..0, [2u8, 0]);
            v
        }),
    ]
}

fn position() -> impl Strategy<Value = Position> {
    (
        946_684_800i64..4_102_444_799,
        -90_000_000i64..=90_000_000,
        -180_000_000i64..=180_000_000,
        0u32..300_000,
        0u32..36_000,
        0u32..40,
        any::<bool>(),
        any::<bool>(),
        0u32..10_000_000,
    )
        .prop_map(
            |(secs, lat, lon, speed, course, sats, valid, ignition, odometer)| {
                let mut p =
                    Position::new(ID, "suntech", DateTime::from_timestamp(secs, 0).unwrap());
                p.latitude = lat as f64 / 1e6;
                p.longitude = lon as f64 / 1e6;
                p.speed = f64::from(speed) / 1000.0;
                p.course = f64::from(course) / 100.0;
                p.satellites = Some(sats);
                p.valid = valid;
                p.set("ignition", ignition);
                p.set("odometer", odometer);
                p
            },
        )
}

/// Feeds `input` to a framer in chunks, checking every call.
fn run_framer(input: &[u8], chunks: &[usize], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut framer = Framer::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut sizes = chunks.iter().copied().chain(std::iter::repeat(usize::MAX));
    loop {
        let before = buf.clone();
        match framer.decode(&mut buf)? {
            Some(frame) => {
                assert!(
                    frame.len() <= max,
                    "frame of {} bytes above max {max}",
                    frame.len()
                );
                // The frame is what came after the empty lines, its `\r`
                // included; nothing after it is consumed.
                let consumed = before.len() - buf.len();
                let start = before
                    .iter()
                    .position(|b| !matches!(b, b'\r' | b'\n' | 0))
                    .unwrap();
                assert_eq!(&before[start..start + frame.len()], &frame[..]);
                assert_eq!(consumed, start + frame.len());
                frames.push(frame.to_vec());
            }
            None => {
                assert!(buf.len() < max, "holds {} bytes, max {max}", buf.len());
                if fed == input.len() {
                    return Ok(frames);
                }
                let n = sizes.next().unwrap_or(1).clamp(1, input.len() - fed);
                buf.extend_from_slice(&input[fed..fed + n]);
                fed += n;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_panics(input in any_input()) {
        let _ = suntech::identify(&input);
        let _ = suntech::parse(&input, &ctx());
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&input);
        let mut buf = BytesMut::from(&input[..]);
        let mut framer = Framer::new(suntech::MAX_FRAME);
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
        fixes in prop::collection::vec(position(), 1..6),
        chunks in prop::collection::vec(1usize..50, 0..30),
    ) {
        let mut messages = vec![encode::keep_alive(ID).to_vec()];
        messages.extend(fixes.iter().zip(1..).map(|(p, i)| encode::status(ID, p, i).to_vec()));
        let stream: Vec<u8> = messages.concat();
        let cut = run_framer(&stream, &chunks, suntech::MAX_FRAME).unwrap();
        // Each frame is the message as sent, its `\r` included.
        prop_assert_eq!(cut, messages);
    }

    #[test]
    fn reports_round_trip(p in position(), index in 0u32..100_000) {
        let bytes = encode::status(ID, &p, index);
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = Framer::new(suntech::MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());
        let handled = Session::new().on_frame(&frame).unwrap();
        prop_assert_eq!((handled.kind, handled.store, handled.reply), (FrameKind::Data, true, None));
        let records = suntech::parse(&frame, &ctx()).unwrap();
        prop_assert_eq!(records.len(), 1);
        let Record::Position(got) = &records[0] else { panic!("{records:?}") };
        prop_assert_eq!(got.fix_time, p.fix_time);
        prop_assert_eq!(got.valid, p.valid);
        prop_assert!((got.latitude - p.latitude).abs() < 1e-9);
        prop_assert!((got.longitude - p.longitude).abs() < 1e-9);
        prop_assert!((got.speed - p.speed).abs() < 1e-9);
        prop_assert!((got.course - p.course).abs() < 1e-9);
        prop_assert_eq!(got.satellites, p.satellites);
        prop_assert_eq!(got.attributes.get("ignition"), p.attributes.get("ignition"));
        prop_assert_eq!(got.attributes.get("odometer"), p.attributes.get("odometer"));
        prop_assert_eq!(got.attributes.get("index").and_then(|v| v.as_u64()), Some(u64::from(index)));
    }
}
