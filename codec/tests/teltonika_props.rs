//! Property tests of the Teltonika framer, session and parser: nothing
//! panics on arbitrary bytes, the framer never takes more than one frame nor
//! holds more than its limit, and what the encoder writes parses back
//! (checked against the independent `nom-teltonika` decoder too).

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use fleetbus_codec::teltonika::encode::{self, AvlCodec, AvlRecord};
use fleetbus_codec::teltonika::{self, Framer, Session, MAX_FRAME};
use fleetbus_codec::{FrameError, FrameKind, ParseContext, Position, Record};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const IMEI: &str = "356307042441013";

fn ctx() -> ParseContext {
    ParseContext::new(IMEI, DateTime::from_timestamp(1_700_000_000, 0).unwrap())
}

/// A position exactly representable on the wire, with the attributes the
/// parser will produce for it.
fn position() -> impl Strategy<Value = Position> {
    (
        946_684_800_000i64..4_102_444_800_000, // 2000 to 2100, in ms
        -900_000_000i32..=900_000_000,
        -1_800_000_000i32..=1_800_000_000,
        any::<i16>(),
        0u16..360,
        0u16..400,
        0u8..40,
        0u8..=2,
        any::<u8>(),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0u16..=30_000),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(
            |(
                ms,
                lat,
                lon,
                alt,
                course,
                speed,
                sats,
                priority,
                event,
                ignition,
                power,
                odometer,
            )| {
                let mut p = Position::new(
                    IMEI,
                    "teltonika",
                    DateTime::<Utc>::from_timestamp_millis(ms).unwrap(),
                );
                p.latitude = f64::from(lat) / 1e7;
                p.longitude = f64::from(lon) / 1e7;
                p.altitude = f64::from(alt);
                p.course = f64::from(course);
                p.speed = f64::from(speed);
                p.satellites = Some(u32::from(sats));
                p.valid = sats != 0;
                p.set("priority", priority);
                p.set("event", event);
                if let Some(on) = ignition {
                    p.set("ignition", on);
                }
                if let Some(mv) = power {
                    p.set("power", f64::from(mv) / 1000.0);
                }
                if let Some(m) = odometer {
                    p.set("odometer", m);
                }
                p
            },
        )
}

/// One piece of a device's byte stream.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![0xff]),
        Just(encode::login(IMEI).to_vec()),
        (proptest::collection::vec(position(), 0..4), codec())
            .prop_map(|(p, c)| encode::positions_frame(c, &p).unwrap().to_vec()),
        Just(encode::command_response("Hello").unwrap().to_vec()),
        proptest::collection::vec(any::<u8>(), 1..6),
    ]
}

fn codec() -> impl Strategy<Value = AvlCodec> {
    prop_oneof![
        Just(AvlCodec::Codec8),
        Just(AvlCodec::Codec8E),
        Just(AvlCodec::Codec16)
    ]
}

/// Feeds `stream` to a framer in chunks of the given sizes, checking after
/// every call that only pings and at most one frame were consumed. Returns
/// the frames and the error that stopped the framer, if any.
fn run_framer(
    stream: &[u8],
    chunks: &[usize],
    max_frame: usize,
) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut framer = Framer::new(max_frame);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut frames = Vec::new();
    let mut sizes = chunks.iter().cycle();
    loop {
        let n = (*sizes.next().unwrap_or(&1)).max(1).min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        loop {
            let before = buf.to_vec();
            match framer.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(
                        frame.len() <= max_frame,
                        "a frame of {} bytes passed a limit of {max_frame}",
                        frame.len()
                    );
                    let pings = before.iter().take_while(|&&b| b == 0xff).count();
                    assert_eq!(
                        before[pings..pings + frame.len()],
                        frame[..],
                        "the frame is the next bytes after the pings"
                    );
                    assert_eq!(
                        before[pings + frame.len()..],
                        buf[..],
                        "nothing after the frame was consumed"
                    );
                    frames.push(frame.to_vec());
                }
                Ok(None) => {
                    let pings = before.iter().take_while(|&&b| b == 0xff).count();
                    assert_eq!(
                        before[pings..],
                        buf[..],
                        "only pings are consumed while waiting"
                    );
                    // Waiting means the buffer holds part of one frame, which
                    // is never allowed to reach the limit.
                    assert!(
                        buf.len() < max_frame,
                        "waiting with {} bytes buffered (limit {max_frame})",
                        buf.len()
                    );
                    break;
                }
                Err(e) => return (frames, Some(e)),
            }
        }
        if fed == stream.len() {
            return (frames, None);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = teltonika::parse(&bytes, &ctx());
        let _ = teltonika::identify(&bytes);
        let mut session = Session::new();
        let _ = session.on_frame(&bytes);
        let _ = session.on_frame(&encode::login(IMEI));
        let _ = session.on_frame(&bytes);
        // As a UDP datagram: cut whole, then judged as a packet.
        let mut datagram = BytesMut::from(&bytes[..]);
        let mut framer = teltonika::DatagramFramer::new(MAX_FRAME);
        if let Ok(Some(packet)) = framer.decode_eof(&mut datagram) {
            let _ = Session::datagrams().on_frame(&packet);
        }
        let _ = Session::datagrams().on_frame(&bytes);
    }

    /// Streams of real frames, pings and bits of garbage, cut anywhere.
    #[test]
    fn framer_on_mixed_streams(
        pieces in proptest::collection::vec(piece(), 0..8),
        chunks in proptest::collection::vec(1usize..64, 1..8),
        max_frame in 16usize..1200,
    ) {
        let stream: Vec<u8> = pieces.concat();
        let (frames, _) = run_framer(&stream, &chunks, max_frame);
        let mut session = Session::new();
        for frame in frames {
            let _ = session.on_frame(&frame);
            let _ = teltonika::parse(&frame, &ctx());
        }
    }

    #[test]
    fn framer_takes_one_frame_at_a_time(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        chunks in proptest::collection::vec(1usize..64, 1..8),
        max_frame in 16usize..600,
    ) {
        let (frames, _) = run_framer(&bytes, &chunks, max_frame);
        for frame in frames {
            let _ = teltonika::parse(&frame, &ctx());
        }
    }

    /// Arbitrary content behind a valid header: the framer must not wait for
    /// more than the limit, whatever the announced length.
    #[test]
    fn oversize_is_refused_from_the_header(len in any::<u32>(), max_frame in 16usize..4096) {
        let mut header = vec![0, 0, 0, 0];
        header.extend_from_slice(&len.to_be_bytes());
        let mut buf = BytesMut::from(&header[..]);
        match Framer::new(max_frame).decode(&mut buf) {
            Ok(None) => prop_assert!(len as usize + 12 <= max_frame),
            Err(FrameError::TooLarge { size, max }) => {
                prop_assert_eq!(max, max_frame);
                prop_assert!(size > max_frame);
                prop_assert_eq!(size, len as usize + 12);
            }
            Err(FrameError::Malformed(_)) => prop_assert!(len < 3),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn encoded_positions_round_trip(
        positions in proptest::collection::vec(position(), 1..8),
        codec in codec(),
        chunks in proptest::collection::vec(1usize..100, 1..6),
        pings in 0usize..3,
    ) {
        let frame = encode::positions_frame(codec, &positions).unwrap();
        let login = encode::login(IMEI);
        let mut stream = vec![0xff; pings];
        stream.extend_from_slice(&login);
        stream.extend_from_slice(&frame);

        let (frames, err) = run_framer(&stream, &chunks, MAX_FRAME);
        prop_assert!(err.is_none(), "{:?}", err);
        prop_assert_eq!(&frames, &vec![login.to_vec(), frame.to_vec()]);

        // Every strict prefix only makes the framer wait.
        for cut in 0..frame.len() {
            let mut buf = BytesMut::from(&frame[..cut]);
            prop_assert!(Framer::new(MAX_FRAME).decode(&mut buf).unwrap().is_none());
        }

        let mut session = Session::new();
        let h = session.on_frame(&frames[0]).unwrap();
        prop_assert_eq!(h.kind, FrameKind::Login { device_id: IMEI.into() });
        let h = session.on_frame(&frames[1]).unwrap();
        prop_assert!(h.store);
        prop_assert_eq!(h.reply.as_deref(), Some(&encode::ack(positions.len() as u32)[..]));

        let parsed = teltonika::parse(&frames[1], &ctx()).unwrap();
        let expected: Vec<Record> = positions.iter().cloned().map(Record::Position).collect();
        prop_assert_eq!(parsed, expected);
    }

    /// The same frames, read by an independent decoder.
    #[test]
    fn encoded_frames_agree_with_nom_teltonika(positions in proptest::collection::vec(position(), 1..8), codec in codec()) {
        use nom_teltonika::decoder::take_frame;
        use nom_teltonika::protocol::FrameView;
        let frame = encode::positions_frame(codec, &positions).unwrap();
        let mut input = &frame[..];
        let Ok(FrameView::Avl(packet)) = take_frame(&mut input) else {
            return Err(TestCaseError::fail(format!("nom-teltonika refused {}", hex::encode(&frame))));
        };
        let records = packet.evaluate();
        prop_assert_eq!(records.records().len(), positions.len());
        for (r, p) in records.records().iter().zip(&positions) {
            prop_assert_eq!(u64::from(r.timestamp()) as i64, p.fix_time.timestamp_millis());
            let gps = r.gps();
            prop_assert_eq!(f64::from(gps.latitude_raw) / 1e7, p.latitude);
            prop_assert_eq!(f64::from(gps.longitude_raw) / 1e7, p.longitude);
            prop_assert_eq!(f64::from(gps.altitude_meters_signed()), p.altitude);
            prop_assert_eq!(f64::from(gps.speed_kph), p.speed);
            prop_assert_eq!(f64::from(gps.angle_degrees), p.course);
            prop_assert_eq!(Some(u32::from(gps.satellites)), p.satellites);
            prop_assert_eq!(r.io_elements().len(), encode::io_from_attributes(p).len());
        }
    }

    /// Frames with one byte changed: the framer rejects them or cuts them
    /// unchanged, and nothing downstream panics.
    #[test]
    fn corrupted_frames_never_panic(positions in proptest::collection::vec(position(), 1..4), codec in codec(), at in any::<prop::sample::Index>(), xor in 1u8..) {
        let mut frame = encode::positions_frame(codec, &positions).unwrap().to_vec();
        let i = at.index(frame.len());
        frame[i] ^= xor;
        let mut buf = BytesMut::from(&frame[..]);
        if let Ok(Some(cut)) = Framer::new(MAX_FRAME).decode(&mut buf) {
            prop_assert_eq!(&cut[..], &frame[..cut.len()]);
        }
        let _ = teltonika::parse(&frame, &ctx());
        let mut session = Session::new();
        session.on_frame(&encode::login(IMEI)).unwrap();
        let _ = session.on_frame(&frame);
    }

    #[test]
    fn udp_packets_round_trip(positions in proptest::collection::vec(position(), 1..4), codec in codec(), packet_id in any::<u16>(), avl_id in any::<u8>()) {
        let records: Vec<AvlRecord> = positions.iter().map(AvlRecord::from_position).collect();
        let packet = encode::udp_packet(packet_id, avl_id, IMEI, codec, &records).unwrap();
        prop_assert_eq!(teltonika::identify(&packet), Some(IMEI.to_owned()));
        let other = ParseContext::new("someone-else", ctx().received_at);
        let parsed = teltonika::parse(&packet, &other).unwrap();
        let expected: Vec<Record> = positions.iter().cloned().map(Record::Position).collect();
        prop_assert_eq!(parsed, expected);
        // As the gateway takes it: cut whole from its datagram, accepted,
        // identified by its IMEI, answered with its ids and count.
        let mut datagram = BytesMut::from(&packet[..]);
        let cut = teltonika::DatagramFramer::new(MAX_FRAME).decode_eof(&mut datagram).unwrap().unwrap();
        prop_assert_eq!(&cut[..], &packet[..]);
        let mut session = Session::datagrams();
        let handled = session.on_frame(&cut).unwrap();
        prop_assert!(handled.store);
        let ack = encode::udp_ack(packet_id, avl_id, positions.len() as u8);
        prop_assert_eq!(handled.reply.as_deref(), Some(&ack[..]));
        prop_assert_eq!(session.device_id(), Some(IMEI));
    }
}
