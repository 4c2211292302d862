//! Properties of the GT06 framer, session, parser and encoder on arbitrary
//! input: no panics, the framer never takes more than one frame nor holds
//! more than `max_frame` bytes, and encoded positions come back (within the
//! wire's precision).

use bytes::BytesMut;
use chrono::{DateTime, TimeZone, Utc};
use fleetbus_codec::gt06::{self, encode, Framer, Session};
use fleetbus_codec::{FrameError, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn ctx() -> ParseContext {
    ParseContext::new(
        "123456789012345",
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
    )
}

/// Protocol numbers the parser knows (and a few it does not).
const TYPES: &[u8] = &[
    0x01, 0x08, 0x10, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1e, 0x21, 0x22, 0x23,
    0x24, 0x25, 0x26, 0x27, 0x28, 0x2a, 0x2c, 0x2d, 0x2e, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    0x38, 0x39, 0x40, 0x41, 0x61, 0x69, 0x70, 0x80, 0x81, 0x8a, 0x8c, 0x94, 0x95, 0x9b, 0xa0, 0xa1,
    0xa2, 0xa3, 0xa4, 0xa5, 0xa7, 0xa9, 0xb2, 0xf1, 0xf2, 0xf3, 0xfd,
];

/// Well-shaped frames (valid CRC) with random content: reaches deep into the parser.
fn shaped_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(TYPES),
        prop::collection::vec(any::<u8>(), 0..120),
        any::<u16>(),
        any::<bool>(),
    )
        .prop_map(|(kind, content, serial, extended)| {
            if extended {
                encode::frame_extended(kind, &content, serial).to_vec()
            } else {
                encode::frame(kind, &content, serial).to_vec()
            }
        })
}

/// Shaped frames of types that always carry a CRC (some devices send 0x01,
/// 0x10, 0x17 and 0x69 without one, delimited by the first 0d 0a).
fn crc_frame() -> impl Strategy<Value = Vec<u8>> {
    shaped_frame().prop_map(|mut f| {
        let at = if f[0] == 0x78 { 3 } else { 4 };
        if matches!(f[at], 0x01 | 0x10 | 0x17 | 0x69) {
            f[at] = 0x12;
            let n = f.len();
            let crc = fleetbus_codec::checksum::crc_itu(&f[2..n - 4]).to_be_bytes();
            f[n - 4..n - 2].copy_from_slice(&crc);
        }
        f
    })
}

/// Shaped frames whose length field may lie.
fn lying_frame() -> impl Strategy<Value = Vec<u8>> {
    (shaped_frame(), any::<u8>()).prop_map(|(mut f, len)| {
        if f[0] == 0x78 {
            f[2] = len;
        } else {
            f[3] = len;
        }
        f
    })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        shaped_frame(),
        lying_frame(),
        // Start bytes followed by noise.
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|mut v| {
            v.splice(0..0, [0x78, 0x78]);
            v
        }),
    ]
}

fn position(
    t: DateTime<Utc>,
    lat: f64,
    lon: f64,
    speed: f64,
    course: f64,
    sats: u32,
    valid: bool,
) -> Position {
    let mut p = Position::new("123456789012345", "gt06", t);
    p.latitude = lat;
    p.longitude = lon;
    p.speed = speed;
    p.course = course;
    p.satellites = Some(sats);
    p.valid = valid;
    p
}

mod common;

/// The shared framer check (tests/common) with this protocol's framer and
/// what it may discard.
fn run_framer(input: &[u8], chunks: &[usize], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    common::run_framer(Framer::new(max), input, chunks, max, |b: &[u8]| {
        b.is_empty()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nothing_panics(input in any_input()) {
        let _ = gt06::identify(&input);
        let _ = gt06::parse(&input, &ctx());
        for model in ["LW4G", "SEEWORLD", "R11", "NT20", "VL103", "QH302R"] {
            let _ = gt06::parse_with_model(&input, &ctx(), Some(model));
        }
        let mut session = Session::new();
        let _ = session.on_frame(&input);
        let _ = session.on_frame(&encode::login("123456789012345", 1));
        let _ = session.on_frame(&input);
        let _ = Framer::new(gt06::MAX_FRAME).decode(&mut BytesMut::from(&input[..]));
    }

    #[test]
    fn framer_takes_at_most_one_frame_and_bounds_its_buffer(
        input in any_input(),
        chunks in prop::collection::vec(1usize..40, 0..20),
        max in 8usize..400,
    ) {
        let _ = run_framer(&input, &chunks, max);
    }

    #[test]
    fn framer_cuts_a_stream_of_frames_wherever_it_is_split(
        frames in prop::collection::vec(crc_frame(), 1..6),
        chunks in prop::collection::vec(1usize..50, 0..30),
    ) {
        let stream: Vec<u8> = frames.concat();
        let cut = run_framer(&stream, &chunks, gt06::MAX_FRAME).unwrap();
        prop_assert_eq!(cut, frames);
    }

    #[test]
    fn a_corrupted_byte_is_never_accepted(
        frame in crc_frame(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bad = frame.clone();
        let i = at.index(bad.len());
        bad[i] ^= flip;
        // Unless the flip made it a type sent without CRC.
        let kind = bad[if bad[0] == 0x78 { 3 } else { 4 }];
        prop_assume!(!matches!(kind, 0x01 | 0x10 | 0x17 | 0x69));
        if let Ok(frames) = run_framer(&bad, &[], gt06::MAX_FRAME) {
            prop_assert!(frames.is_empty(), "accepted {frames:02x?}");
        }
    }

    #[test]
    fn positions_round_trip(
        secs in 946_684_800i64..4_102_444_799, // 2000 to 2099
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        speed in 0u8..=255,
        course in 0u16..360,
        sats in 0u32..=15,
        valid in any::<bool>(),
        ignition in any::<bool>(),
        serial in any::<u16>(),
        as_alarm in any::<bool>(),
    ) {
        let t = Utc.timestamp_opt(secs, 0).unwrap();
        let mut p = position(t, lat, lon, f64::from(speed), f64::from(course), sats, valid);
        p.set("ignition", ignition);
        let bytes = if as_alarm {
            let status = encode::TerminalStatus { alarm: 0x01, ignition, ..Default::default() };
            encode::alarm(&p, &status, serial)
        } else {
            encode::location(&p, serial)
        };

        let mut buf = BytesMut::from(&bytes[..]);
        let frame = Framer::new(gt06::MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        prop_assert!(buf.is_empty());

        let mut session = Session::new();
        session.on_frame(&encode::login("123456789012345", 1)).unwrap();
        let handled = session.on_frame(&frame).unwrap();
        prop_assert!(handled.store);
        let kind = if as_alarm { 0x16 } else { 0x22 };
        prop_assert_eq!(handled.reply.unwrap(), encode::ack(kind, serial));

        let records = gt06::parse(&frame, &ctx()).unwrap();
        prop_assert_eq!(records.len(), 1);
        let Record::Position(got) = &records[0] else { panic!("{records:?}") };
        prop_assert_eq!(got.fix_time, t);
        prop_assert_eq!(got.valid, valid);
        prop_assert!((got.latitude - lat).abs() < 1e-6, "{} vs {}", got.latitude, lat);
        prop_assert!((got.longitude - lon).abs() < 1e-6, "{} vs {}", got.longitude, lon);
        prop_assert_eq!(got.speed, f64::from(speed));
        prop_assert_eq!(got.course, f64::from(course));
        prop_assert_eq!(got.satellites, Some(sats));
        prop_assert_eq!(got.attributes.get("ignition"), Some(&ignition.into()));
        if as_alarm {
            prop_assert_eq!(got.attributes.get("alarm").and_then(|a| a.as_str()), Some("sos"));
        }
    }

    #[test]
    fn logins_round_trip(imei in "[0-9]{15}", serial in any::<u16>()) {
        let bytes = encode::login(&imei, serial);
        prop_assert_eq!(gt06::identify(&bytes), Some(imei.clone()));
        let mut session = Session::new();
        let handled = session.on_frame(&bytes).unwrap();
        prop_assert_eq!(handled.reply.unwrap(), encode::login_ack(serial));
        prop_assert_eq!(session.device_id(), Some(imei.as_str()));
    }
}

#[test]
fn heartbeat_round_trips() {
    let status = encode::TerminalStatus {
        ignition: true,
        charging: true,
        voltage_level: 3,
        gsm_signal: 2,
        ..Default::default()
    };
    let bytes = encode::heartbeat(&status, 42);
    let mut buf = BytesMut::from(&bytes[..]);
    let frame = Framer::new(gt06::MAX_FRAME)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    match &gt06::parse(&frame, &ctx()).unwrap()[..] {
        [Record::Heartbeat(m)] => {
            assert_eq!(m.attributes["ignition"], true);
            assert_eq!(m.attributes["charge"], true);
            assert_eq!(m.attributes["batteryLevel"], 50);
            assert_eq!(m.attributes["rssi"], 2);
            assert!(m.attributes.get("alarm").is_none());
        }
        other => panic!("{other:?}"),
    }
}
