//! The zero-copy view (`teltonika::view`) against `teltonika::parse` and the
//! independent `nom-teltonika` decoder: on every Teltonika conformance
//! capture and on generated frames, the view accepts what they accept
//! (except frames whose CRC or length field is off, which `parse` reads on
//! purpose and the view, meant for frames straight off a connection,
//! refuses), refuses what they refuse, and reads the same values.

use std::path::PathBuf;

use bytes::BytesMut;
use chrono::DateTime;
use fleetbus_codec::teltonika::codec::{CODEC_16, CODEC_8, CODEC_8E};
use fleetbus_codec::teltonika::encode::{self, AvlCodec, AvlRecord, IoElement, IoValue};
use fleetbus_codec::teltonika::view::{self, AvlFrameView, RecordView};
use fleetbus_codec::teltonika::{self, Framer, MAX_FRAME};
use fleetbus_codec::{ParseContext, Position, Record};
use proptest::prelude::*;
use serde_json::Value;
use tokio_util::codec::Decoder;

const IMEI: &str = "356307042441013";

fn ctx() -> ParseContext {
    ParseContext::new(IMEI, DateTime::from_timestamp(1_700_000_000, 0).unwrap())
}

fn is_avl(codec: u8) -> bool {
    matches!(codec, CODEC_8 | CODEC_8E | CODEC_16)
}

/// The data field of a TCP frame, found the way `parse` finds it (trusting
/// the length field where it fits).
fn tcp_data(frame: &[u8]) -> Option<&[u8]> {
    if frame.len() < 15 || frame[..4] != [0; 4] {
        return None;
    }
    let declared = u32::from_be_bytes(frame[4..8].try_into().unwrap()) as usize;
    if declared + 12 == frame.len() || (declared >= 3 && declared + 8 <= frame.len()) {
        Some(&frame[8..8 + declared])
    } else {
        Some(&frame[8..frame.len() - 4])
    }
}

/// The record's values as `parse` reports them, straight from the view.
fn assert_same_fix(r: &RecordView, p: &Position, what: &str) {
    assert_eq!(r.fix_time(), p.fix_time, "{what}: time");
    assert_eq!(r.latitude(), p.latitude, "{what}: latitude");
    assert_eq!(r.longitude(), p.longitude, "{what}: longitude");
    assert_eq!(f64::from(r.altitude()), p.altitude, "{what}: altitude");
    assert_eq!(f64::from(r.angle()), p.course, "{what}: course");
    assert_eq!(Some(u32::from(r.satellites())), p.satellites, "{what}");
    assert_eq!(r.satellites() != 0, p.valid, "{what}: valid");
    assert_eq!(p.attributes["priority"], u64::from(r.priority()), "{what}");
    assert_eq!(p.attributes["event"], u64::from(r.event_id()), "{what}");
    // IO element 24 (GNSS speed) replaces the GPS element's speed.
    let speed = r
        .io()
        .filter(|e| e.id == 24)
        .last()
        .map_or(f64::from(r.speed()), |e| match e.value {
            view::IoValue::Int { raw, .. } => raw as f64,
            _ => f64::from(r.speed()),
        });
    assert_eq!(speed, p.speed, "{what}: speed");
}

/// The view's records are `parse`'s positions, field by field.
fn assert_same_records(view: &AvlFrameView, records: &[Record], what: &str) {
    assert_eq!(view.len(), records.len(), "{what}: record count");
    for (i, (r, rec)) in view.records().zip(records).enumerate() {
        let p = rec.as_position().expect("a position");
        assert_same_fix(&r, p, &format!("{what}, record {i}"));
    }
}

/// nom-teltonika's IO elements as (id, view value) pairs.
fn nom_io(r: &nom_teltonika::protocol::AvlRecord) -> Vec<(u16, Vec<u8>, u64)> {
    use nom_teltonika::protocol::IoValue as V;
    r.io_elements()
        .iter()
        .map(|e| {
            let id = u16::from(e.id());
            match e.value() {
                V::U8(x) => (id, vec![], u64::from(*x)),
                V::U16(x) => (id, vec![], u64::from(*x)),
                V::U32(x) => (id, vec![], u64::from(*x)),
                V::U64(x) => (id, vec![], *x),
                V::Bytes(b) => (id, b.clone(), 0),
            }
        })
        .collect()
}

fn view_io(r: &RecordView) -> Vec<(u16, Vec<u8>, u64)> {
    r.io()
        .map(|e| match e.value {
            view::IoValue::Int { raw, .. } => (e.id, vec![], raw),
            view::IoValue::Sixteen(b) | view::IoValue::Variable(b) => (e.id, b.to_vec(), 0),
        })
        .collect()
}

#[test]
fn conformance_captures_agree_with_parse_and_nom_teltonika() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/traccar/teltonika.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let (mut accepted, mut envelope_refused, mut compared_with_nom) = (0, 0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let c: Value = serde_json::from_str(line).unwrap();
        if c["kind"] != "hex" {
            continue;
        }
        let frame = hex::decode(c["payload"].as_str().unwrap()).unwrap();
        let what = format!("capture line {}", c["line"]);
        let parsed = teltonika::parse(&frame, &ctx());
        match AvlFrameView::parse(&frame) {
            Ok(view) => {
                accepted += 1;
                let records = parsed.unwrap_or_else(|e| panic!("{what}: view accepts, parse: {e}"));
                assert_same_records(&view, &records, &what);
                // And the independent decoder reads the same IO elements.
                let mut input = &frame[..];
                if let Ok(nom_teltonika::protocol::FrameView::Avl(packet)) =
                    nom_teltonika::decoder::take_frame(&mut input)
                {
                    let packet = packet.evaluate();
                    assert_eq!(packet.records().len(), view.len(), "{what}");
                    for (n, v) in packet.records().iter().zip(view.records()) {
                        assert_eq!(u64::from(n.timestamp()), v.timestamp_ms(), "{what}");
                        assert_eq!(nom_io(n), view_io(&v), "{what}");
                    }
                    compared_with_nom += 1;
                }
            }
            Err(e) => {
                let Some(data) = tcp_data(&frame) else {
                    // Not a TCP AVL packet: a login, ping or UDP packet.
                    continue;
                };
                if !is_avl(data[0]) {
                    continue;
                }
                // Content refused: parse refuses it too. Otherwise the view
                // refused the envelope (CRC or length field, which parse
                // does not check), and the data alone is accepted.
                match AvlFrameView::from_data(data) {
                    Err(data_err) => {
                        assert_eq!(Err(data_err), parsed.map(|_| ()), "{what}: {e}")
                    }
                    Ok(view) => {
                        envelope_refused += 1;
                        let records = parsed.unwrap_or_else(|p| panic!("{what}: {p}"));
                        assert_same_records(&view, &records, &what);
                    }
                }
            }
        }
    }
    // The captures hold 23 Codec 8/8E/16 frames; 20 have a sound envelope.
    assert!(accepted >= 15, "only {accepted} captures accepted");
    assert!(
        compared_with_nom >= 10,
        "only {compared_with_nom} compared with nom-teltonika"
    );
    eprintln!("view: {accepted} accepted, {envelope_refused} refused for CRC/length only, {compared_with_nom} compared with nom-teltonika");
}

fn codec() -> impl Strategy<Value = AvlCodec> {
    prop_oneof![
        Just(AvlCodec::Codec8),
        Just(AvlCodec::Codec8E),
        Just(AvlCodec::Codec16)
    ]
}

/// A fixed-size IO value of a random width. Id 24 is left out: `parse` takes
/// it as the speed, which the field comparison accounts for anyway.
fn fixed_io(wide: bool) -> impl Strategy<Value = IoElement> {
    let id = if wide { 0u16..=u16::MAX } else { 0u16..=255 };
    (
        id,
        prop_oneof![
            any::<u8>().prop_map(IoValue::U8),
            any::<u16>().prop_map(IoValue::U16),
            any::<u32>().prop_map(IoValue::U32),
            any::<u64>().prop_map(IoValue::U64),
        ],
    )
        .prop_map(|(id, v)| IoElement::new(id, v))
}

/// A record to encode: its fix, priority, event IO id and IO elements.
type Generated = (Position, u8, u16, Vec<IoElement>);

/// Records and the codec to write them in, IO elements as that codec can
/// carry them.
fn records() -> impl Strategy<Value = (AvlCodec, Vec<Generated>)> {
    codec().prop_flat_map(|codec| {
        let wide = codec != AvlCodec::Codec8;
        let io = if codec == AvlCodec::Codec8E {
            prop::collection::vec(
                prop_oneof![
                    3 => fixed_io(true),
                    1 => (any::<u16>(), prop::collection::vec(any::<u8>(), 0..40))
                        .prop_map(|(id, b)| IoElement::new(id, IoValue::Bytes(b))),
                ],
                0..12,
            )
            .boxed()
        } else {
            prop::collection::vec(fixed_io(wide), 0..12).boxed()
        };
        let record = (
            0u64..4_102_444_800_000,
            any::<i32>(),
            any::<i32>(),
            any::<i16>(),
            any::<u16>(),
            any::<u8>(),
            any::<u16>(),
            // nom-teltonika refuses priorities above 2 (the view, like
            // parse, reads any byte); keep to what both accept.
            0u8..=2,
            if wide {
                any::<u16>().boxed()
            } else {
                (0u16..=255).boxed()
            },
            io,
        )
            .prop_map(
                |(ms, lat, lon, alt, course, sats, speed, priority, event, io)| {
                    let t = DateTime::from_timestamp_millis(ms as i64).unwrap();
                    let mut p = Position::new(IMEI, "teltonika", t);
                    p.latitude = f64::from(lat) / 1e7;
                    p.longitude = f64::from(lon) / 1e7;
                    p.altitude = f64::from(alt);
                    p.course = f64::from(course);
                    p.satellites = Some(u32::from(sats));
                    p.speed = f64::from(speed);
                    (p, priority, event, io)
                },
            );
        (Just(codec), prop::collection::vec(record, 0..6))
    })
}

fn frame_of(codec: AvlCodec, records: &[Generated]) -> Vec<u8> {
    let records: Vec<AvlRecord> = records
        .iter()
        .map(|(p, priority, event, io)| AvlRecord {
            position: p,
            priority: *priority,
            event_id: *event,
            io: io.clone(),
        })
        .collect();
    encode::avl_frame(codec, &records).unwrap().to_vec()
}

/// The IO elements in the order a frame carries them: by group (1, 2, 4, 8
/// bytes, then variable), in the order given within a group.
fn wire_order(io: &[IoElement]) -> Vec<(u16, Vec<u8>, u64)> {
    let group = |v: &IoValue| match v {
        IoValue::U8(_) => 0,
        IoValue::U16(_) => 1,
        IoValue::U32(_) => 2,
        IoValue::U64(_) => 3,
        IoValue::Bytes(_) => 4,
    };
    let mut out: Vec<(usize, u16, Vec<u8>, u64)> = io
        .iter()
        .map(|e| {
            let (bytes, raw) = match &e.value {
                IoValue::U8(x) => (vec![], u64::from(*x)),
                IoValue::U16(x) => (vec![], u64::from(*x)),
                IoValue::U32(x) => (vec![], u64::from(*x)),
                IoValue::U64(x) => (vec![], *x),
                IoValue::Bytes(b) => (b.clone(), 0),
            };
            (group(&e.value), e.id, bytes, raw)
        })
        .collect();
    out.sort_by_key(|e| e.0); // stable: keeps the order within a group
    out.into_iter()
        .map(|(_, id, b, raw)| (id, b, raw))
        .collect()
}

/// What the framer makes of `bytes` on their own: the frame, if it cuts
/// exactly all of them.
fn framer_accepts_whole(bytes: &[u8]) -> bool {
    let mut buf = BytesMut::from(bytes);
    matches!(Framer::new(MAX_FRAME).decode(&mut buf), Ok(Some(f)) if f.len() == bytes.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Encoded frames: the view reads back exactly what was written, the
    /// same values as `parse` and as nom-teltonika.
    #[test]
    fn view_reads_what_was_encoded((codec, records) in records()) {
        let frame = frame_of(codec, &records);
        let view = AvlFrameView::parse(&frame).unwrap();
        prop_assert_eq!(view.codec(), codec.id());
        prop_assert_eq!(view.len(), records.len());
        prop_assert_eq!(view.records().len(), records.len());
        for (r, (p, priority, event, io)) in view.records().zip(&records) {
            prop_assert_eq!(r.fix_time(), p.fix_time);
            prop_assert_eq!(r.latitude(), p.latitude);
            prop_assert_eq!(r.longitude(), p.longitude);
            prop_assert_eq!(f64::from(r.altitude()), p.altitude);
            prop_assert_eq!(f64::from(r.angle()), p.course);
            prop_assert_eq!(Some(u32::from(r.satellites())), p.satellites);
            prop_assert_eq!(f64::from(r.speed()), p.speed);
            prop_assert_eq!(r.priority(), *priority);
            prop_assert_eq!(r.event_id(), *event);
            prop_assert_eq!(r.generation_type().is_some(), codec == AvlCodec::Codec16);
            prop_assert_eq!(view_io(&r), wire_order(io));
        }
        let parsed = teltonika::parse(&frame, &ctx()).unwrap();
        assert_same_records(&view, &parsed, "generated");

        if records.is_empty() {
            // nom-teltonika refuses packets without records; the view, like
            // parse (and the session, which acks 0), accepts them.
            return Ok(());
        }
        let mut input = &frame[..];
        let Ok(nom_teltonika::protocol::FrameView::Avl(packet)) =
            nom_teltonika::decoder::take_frame(&mut input)
        else {
            return Err(TestCaseError::fail("nom-teltonika refused the frame"));
        };
        let packet = packet.evaluate();
        for (n, v) in packet.records().iter().zip(view.records()) {
            prop_assert_eq!(u64::from(n.timestamp()), v.timestamp_ms());
            prop_assert_eq!(nom_io(n), view_io(&v));
        }
    }

    /// One byte changed anywhere: the view accepts exactly when the framer
    /// cuts the whole frame (preamble, length, CRC) and `parse` accepts it,
    /// and then reads the same values.
    #[test]
    fn view_accepts_exactly_what_framer_and_parse_accept(
        (codec, records) in records(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
    ) {
        let mut frame = frame_of(codec, &records);
        let i = at.index(frame.len());
        frame[i] ^= xor;
        let view = AvlFrameView::parse(&frame);
        let parsed = teltonika::parse(&frame, &ctx());
        let expected = framer_accepts_whole(&frame) && is_avl(frame[8]) && parsed.is_ok();
        prop_assert_eq!(view.is_ok(), expected, "{:?} / {:?}", view, parsed);
        if let Ok(view) = view {
            assert_same_records(&view, &parsed.unwrap(), "mutated");
        }
    }

    /// The data field changed and the CRC made right again: the view and
    /// `parse` agree on every content rule, to the error.
    #[test]
    fn view_and_parse_agree_on_content(
        (codec, records) in records(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let frame = frame_of(codec, &records);
        let mut data = frame[8..frame.len() - 4].to_vec();
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        if truncate {
            data.truncate(cut.index(data.len() + 1));
        }
        let frame = encode::raw_frame(&data);
        let parsed = teltonika::parse(&frame, &ctx());
        match AvlFrameView::parse(&frame) {
            Ok(view) => assert_same_records(&view, &parsed.unwrap(), "edited"),
            Err(e) if data.len() >= 3 && is_avl(data[0]) => prop_assert_eq!(Err(e), parsed.map(|_| ())),
            Err(_) => {}
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for v in [AvlFrameView::parse(&bytes), AvlFrameView::from_data(&bytes)].into_iter().flatten() {
            for r in v.records() {
                let _ = (r.timestamp_ms(), r.fix_time(), r.declared_io_count(), r.io().count());
            }
        }
    }
}
