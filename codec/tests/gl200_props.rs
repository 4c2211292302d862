//! Properties of the Queclink framer, session, parser and encoder on
//! arbitrary input: no panics, the framer drops only bytes before a `+` and
//! frames keep everything else (their terminator too),
//! never holds `max_frame` bytes, cuts streams the same wherever they are
//! split, and encoded reports come back.

use bytes::BytesMut;
use chrono::DateTime;
use fleetbus_codec::gl200::{self, encode, Framer, Session};
use fleetbus_codec::{FrameError, FrameKind, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const IMEI: &str = "865284042140479";
const VERSION: &str = "DE0114";

fn ctx() -> ParseContext {
    ParseContext::new(IMEI, DateTime::from_timestamp(1_700_000_000, 0).unwrap())
}

/// Text reports of known types with random fields.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(
            &[
                "+RESP:GTFRI",
                "+BUFF:GTFRI",
                "+RESP:GTERI",
                "+RESP:GTIGN",
                "+RESP:GTIGF",
                "+RESP:GTINF",
                "+RESP:GTHBM",
                "+RESP:GTCAN",
                "+RESP:GTOBD",
                "+RESP:GTDTT",
                "+RESP:GTBAA",
                "+RESP:GTPNA",
                "+ACK:GTHBD",
                "+ACK:GTGEO",
                "+RESP:GTSOS",
            ][..],
        ),
        prop::sample::select(
            &[
                "DE0114",
                "F10415",
                "6E0202",
                "8020050704",
                "410502",
                "C2010D",
            ][..],
        ),
        prop::collection::vec("[0-9A-F.:\\-]{0,14}", 0..45),
    )
        .prop_map(|(header, version, fields)| {
            let mut s = format!("{header},{version},{IMEI}");
            for f in fields {
                s.push(',');
                s.push_str(&f);
            }
            s.push('$');
            s.into_bytes()
        })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        shaped(),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|mut v| {
            v.splice(0..0, b"+RSP".iter().copied());
            v
        }),
    ]
}

fn position() -> impl Strategy<Value = Position> {
    (
        946_684_800i64..4_102_444_799,
        -90_000_000i64..=90_000_000,
        -180_000_000i64..=180_000_000,
        0u32..10_000,
        0u32..360,
        -5000i32..90_000,
        proptest::option::of(0u8..=100),
    )
        .prop_map(|(secs, lat, lon, decikmh, course, dm, battery)| {
            let mut p = Position::new(IMEI, "gl200", DateTime::from_timestamp(secs, 0).unwrap());
            p.valid = true;
            p.latitude = lat as f64 / 1e6;
            p.longitude = lon as f64 / 1e6;
            p.speed = f64::from(decikmh) / 10.0;
            p.course = f64::from(course);
            p.altitude = f64::from(dm) / 10.0;
            if let Some(b) = battery {
                p.set("batteryLevel", b);
            }
            p
        })
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
                let consumed = before.len() - buf.len();
                let start = before.iter().position(|&b| b == b'+').unwrap();
                // The frame is what came after the `+`, its terminator
                // included; nothing after it is consumed.
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
        let _ = gl200::identify(&input);
        let _ = gl200::parse(&input, &ctx());
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&input);
        let mut buf = BytesMut::from(&input[..]);
        let _ = Framer::new(gl200::MAX_FRAME).decode(&mut buf);
    }

    #[test]
    fn framer_bounds(
        input in any_input(),
        chunks in prop::collection::vec(1usize..40, 0..20),
        max in 12usize..400,
    ) {
        let _ = run_framer(&input, &chunks, max);
    }

    #[test]
    fn streams_are_cut_wherever_they_are_split(
        fixes in prop::collection::vec(position(), 1..5),
        chunks in prop::collection::vec(1usize..50, 0..30),
    ) {
        let sent = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut messages = vec![encode::heartbeat(VERSION, IMEI, sent, 1).to_vec()];
        messages.extend(fixes.iter().zip(2u16..).map(|(p, n)| encode::fixed_report(VERSION, IMEI, p, sent, n).to_vec()));
        let stream: Vec<u8> = messages.join(&b"\r\n"[..]);
        let cut = run_framer(&stream, &chunks, gl200::MAX_FRAME).unwrap();
        // Each frame is the message as sent, its `$` included.
        prop_assert_eq!(cut, messages);
    }

    #[test]
    fn reports_round_trip(p in position(), count in any::<u16>()) {
        let sent = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let bytes = encode::fixed_report(VERSION, IMEI, &p, sent, count);
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = Framer::new(gl200::MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());
        let handled = Session::new().on_frame(&frame).unwrap();
        prop_assert_eq!((handled.kind, handled.store, handled.reply), (FrameKind::Data, true, None));
        let records = gl200::parse(&frame, &ctx()).unwrap();
        prop_assert_eq!(records.len(), 1);
        let Record::Position(got) = &records[0] else { panic!("{records:?}") };
        prop_assert_eq!(got.fix_time, p.fix_time);
        prop_assert!(got.valid);
        prop_assert!((got.latitude - p.latitude).abs() < 1e-9);
        prop_assert!((got.longitude - p.longitude).abs() < 1e-9);
        prop_assert!((got.speed - p.speed).abs() < 1e-9);
        prop_assert!((got.course - p.course).abs() < 1e-9);
        prop_assert!((got.altitude - p.altitude).abs() < 1e-9);
        prop_assert_eq!(got.attributes.get("batteryLevel"), p.attributes.get("batteryLevel"));
    }
}

#[test]
fn heartbeat_is_answered() {
    let sent = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let hb = encode::heartbeat(VERSION, IMEI, sent, 0x3b7d);
    let mut buf = BytesMut::from(&hb[..]);
    let frame = Framer::new(gl200::MAX_FRAME)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    let handled = Session::new().on_frame(&frame).unwrap();
    assert_eq!(&handled.reply.unwrap()[..], b"+SACK:GTHBD,DE0114,3B7D$");
}
