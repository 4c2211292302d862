//! Decode throughput: `just bench` (or `cargo bench -p fleetbus-codec --bench decode`).
//!
//! * Teltonika Codec 8 Extended frames of 10 records each (with the IO
//!   elements an FMB sends every few seconds), decoded four ways from the
//!   same byte stream, framing and CRC check included in every one:
//!   - fleetbus (Position): `teltonika::Framer` then `teltonika::parse`
//!     into normalized `Position`s with named attributes — what the
//!     hamsters do;
//!   - fleetbus view: `teltonika::view::AvlFrameView` (validates the whole
//!     frame, then reads records and IO elements in place, no allocation);
//!   - nom-teltonika: `take_frame` + `evaluate` into its owned records;
//!   - nom-teltonika view: `take_frame` and its borrowed record views.
//!
//!   The typed rows fold every field of every record and IO element into a
//!   checksum (which must agree between them), so none can skip work.
//! * GT06 location frames (0x22), framed and parsed.
//! * Record identities (what the hamsters remember per device so that a
//!   record resent in another frame is stored once): the identity of each
//!   parsed Teltonika record, and claiming a frame's identities in a
//!   device's memory of 256 (decode, claim, encode: what a hamster does
//!   per frame besides the bucket's read and write).
//!
//! Besides criterion's own figures it prints, for the same machine and run,
//! frames/s and MB/s of each and the ratios to nom-teltonika, measured
//! interleaved (A, B, C, …, A, B, C, …) so that a noisy neighbour affects all
//! alike. Figures are in docs/performance.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, Criterion, Throughput};
use fleetbus_codec::identity::{owner_tag, record_identity, Memory};
use fleetbus_codec::{gt06, teltonika, ParseContext, Position, Record};
use serde_json::json;
use tokio_util::codec::Decoder;

const FRAMES: usize = 64;

/// A realistic FMB record: a fix plus the IO elements a car tracker reports
/// periodically (ignition, motion, GSM signal, external and battery voltage,
/// odometer, trip odometer, hdop/pdop, operator, one 8-byte id).
fn fmb_position(i: usize) -> Position {
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
        + chrono::Duration::seconds(i as i64 * 5);
    let mut p = Position::new("356307042441013", "teltonika", t);
    p.valid = true;
    p.latitude = 54.6872 + i as f64 * 1e-4;
    p.longitude = 25.2797 + i as f64 * 1e-4;
    p.altitude = 112.0;
    p.speed = 50.0 + (i % 30) as f64;
    p.course = (i * 7 % 360) as f64;
    p.satellites = Some(11);
    for (k, v) in [
        ("ignition", json!(true)),
        ("motion", json!(true)),
        ("rssi", json!(4)),
        ("power", json!(13.812)),
        ("battery", json!(4.102)),
        ("odometer", json!(123_456 + i as u64 * 70)),
        ("tripOdometer", json!(5_000 + i as u64 * 70)),
        ("hdop", json!(0.8)),
        ("pdop", json!(1.2)),
        ("operator", json!(24_602)),
        ("io78", json!(0x0102_0304_0506_0708u64)),
    ] {
        p.attributes.insert(k.into(), v);
    }
    p
}

fn teltonika_frames() -> Vec<Bytes> {
    (0..FRAMES)
        .map(|f| {
            let positions: Vec<Position> = (0..10).map(|i| fmb_position(f * 10 + i)).collect();
            teltonika::encode::codec8e(&positions).expect("encodable")
        })
        .collect()
}

fn gt06_frames() -> Vec<Bytes> {
    (0..FRAMES)
        .map(|i| {
            let mut p = fmb_position(i);
            p.protocol = "gt06".into();
            p.attributes.clear();
            gt06::encode::location(&p, i as u16)
        })
        .collect()
}

/// The whole stream of frames as one TCP byte stream would carry it.
fn stream(frames: &[Bytes]) -> BytesMut {
    let mut all = BytesMut::new();
    for f in frames {
        all.extend_from_slice(f);
    }
    all
}

fn ctx() -> ParseContext {
    ParseContext::new("356307042441013", Utc::now())
}

/// fleetbus (Position): cut the stream into frames, then parse each into
/// records.
fn fleetbus_teltonika(stream: &BytesMut, ctx: &ParseContext) -> usize {
    let mut buf = stream.clone();
    let mut framer = teltonika::Framer::new(teltonika::MAX_FRAME);
    let mut records = 0;
    while let Some(frame) = framer.decode(&mut buf).expect("valid stream") {
        let out: Vec<Record> = teltonika::parse(&frame, ctx).expect("parsable");
        records += black_box(out).len();
    }
    records
}

/// Folds one field into a checksum, so that every field a decoder gives is
/// read and the optimizer can drop none of them. Every row below that yields
/// typed fields folds the same ones, in the same order, so their checksums
/// must agree (checked before measuring).
#[inline(always)]
fn mix(acc: u64, x: u64) -> u64 {
    (acc ^ x).rotate_left(5)
}

fn mix_bytes(mut acc: u64, bytes: &[u8]) -> u64 {
    acc = mix(acc, bytes.len() as u64);
    for &b in bytes {
        acc = mix(acc, u64::from(b));
    }
    acc
}

/// The fields every typed row folds, in this order: timestamp, priority,
/// longitude, latitude, altitude, angle, satellites, speed, event IO id,
/// then each IO element's id and value.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn mix_fix(
    acc: u64,
    ms: u64,
    priority: u8,
    lon: i32,
    lat: i32,
    alt: u16,
    angle: u16,
    sats: u8,
    speed: u16,
    event: u16,
) -> u64 {
    let mut acc = mix(acc, ms);
    for x in [
        u64::from(priority),
        u64::from(lon as u32),
        u64::from(lat as u32),
        u64::from(alt),
        u64::from(angle),
        u64::from(sats),
        u64::from(speed),
        u64::from(event),
    ] {
        acc = mix(acc, x);
    }
    acc
}

/// fleetbus view: cut each frame at its length field, validate it whole
/// (preamble, length, CRC, counts, every record and IO element) with
/// `teltonika::view::AvlFrameView::parse`, then read every field of every
/// record and IO element. Returns (records, checksum).
fn view_teltonika(stream: &[u8]) -> (usize, u64) {
    use teltonika::view::{AvlFrameView, IoValue};
    let mut input = stream;
    let (mut records, mut acc) = (0, 0u64);
    while input.len() >= 8 {
        let data_len = u32::from_be_bytes([input[4], input[5], input[6], input[7]]);
        let (frame, rest) = input.split_at((data_len as usize + 12).min(input.len()));
        input = rest;
        let view = AvlFrameView::parse(frame).expect("valid frame");
        for r in view.records() {
            records += 1;
            acc = mix_fix(
                acc,
                r.timestamp_ms(),
                r.priority(),
                r.longitude_raw(),
                r.latitude_raw(),
                r.altitude() as u16,
                r.angle(),
                r.satellites(),
                r.speed(),
                r.event_id(),
            );
            for e in r.io() {
                acc = mix(acc, u64::from(e.id));
                acc = match e.value {
                    IoValue::Int { raw, .. } => mix(acc, raw),
                    IoValue::Sixteen(b) | IoValue::Variable(b) => mix_bytes(acc, b),
                };
            }
        }
    }
    assert!(input.is_empty(), "a partial frame at the end");
    (records, acc)
}

fn nom_value(acc: u64, v: nom_teltonika::protocol::IoValueView) -> u64 {
    use nom_teltonika::protocol::IoValueView as V;
    match v {
        V::U8(x) => mix(acc, u64::from(x)),
        V::U16(x) => mix(acc, u64::from(x)),
        V::U32(x) => mix(acc, u64::from(x)),
        V::U64(x) => mix(acc, x),
        V::Bytes(b) => mix_bytes(acc, b),
    }
}

/// nom-teltonika: take each frame from the stream (which checks its CRC),
/// evaluate it into owned records (`AvlPacket`: a `Vec` of records, each
/// with a `Vec` of IO elements), and read every field of what it produced.
fn nom_teltonika(stream: &BytesMut) -> (usize, u64) {
    use nom_teltonika::decoder::take_frame;
    use nom_teltonika::protocol::{FrameView, IoValue as V, IoValueView};
    let mut input = &stream[..];
    let (mut records, mut acc) = (0, 0u64);
    while !input.is_empty() {
        let Ok(FrameView::Avl(packet)) = take_frame(&mut input) else {
            panic!("nom-teltonika refused a frame")
        };
        let packet = packet.evaluate();
        for r in packet.records() {
            records += 1;
            let gps = r.gps();
            acc = mix_fix(
                acc,
                u64::from(r.timestamp()),
                u8::from(r.priority()),
                gps.longitude_raw,
                gps.latitude_raw,
                gps.altitude_meters,
                gps.angle_degrees,
                gps.satellites,
                gps.speed_kph,
                r.event_io_id().map_or(0, u16::from),
            );
            for e in r.io_elements() {
                acc = mix(acc, u64::from(u16::from(e.id())));
                let v = match e.value() {
                    V::U8(x) => IoValueView::U8(*x),
                    V::U16(x) => IoValueView::U16(*x),
                    V::U32(x) => IoValueView::U32(*x),
                    V::U64(x) => IoValueView::U64(*x),
                    V::Bytes(b) => IoValueView::Bytes(b),
                };
                acc = nom_value(acc, v);
            }
        }
    }
    (records, acc)
}

/// nom-teltonika's own zero-copy path: `take_frame`, then its record and
/// IO element views, without `evaluate`. Not the comparison (that
/// is the row above, the crate's owned output), but the like-for-like one
/// for the fleetbus view, reported so the ratio is read honestly.
fn nom_teltonika_view(stream: &BytesMut) -> (usize, u64) {
    use nom_teltonika::decoder::take_frame;
    use nom_teltonika::protocol::FrameView;
    let mut input = &stream[..];
    let (mut records, mut acc) = (0, 0u64);
    while !input.is_empty() {
        let Ok(FrameView::Avl(packet)) = take_frame(&mut input) else {
            panic!("nom-teltonika refused a frame")
        };
        for r in packet.records() {
            records += 1;
            let gps = r.gps();
            acc = mix_fix(
                acc,
                u64::from(r.timestamp()),
                u8::from(r.priority()),
                gps.longitude_raw,
                gps.latitude_raw,
                gps.altitude_meters,
                gps.angle_degrees,
                gps.satellites,
                gps.speed_kph,
                r.event_io_id().map_or(0, u16::from),
            );
            for e in r.io_elements() {
                acc = mix(acc, u64::from(u16::from(e.id())));
                acc = nom_value(acc, e.value());
            }
        }
    }
    (records, acc)
}

fn fleetbus_gt06(stream: &BytesMut, ctx: &ParseContext) -> usize {
    let mut buf = stream.clone();
    let mut framer = gt06::Framer::new(gt06::MAX_FRAME);
    let mut records = 0;
    while let Some(frame) = framer.decode(&mut buf).expect("valid stream") {
        records += black_box(gt06::parse(&frame, ctx).expect("parsable")).len();
    }
    records
}

fn benches(c: &mut Criterion) {
    let ctx = ctx();
    let tel = stream(&teltonika_frames());
    assert_eq!(fleetbus_teltonika(&tel, &ctx), FRAMES * 10);
    let view = view_teltonika(&tel);
    assert_eq!(view.0, FRAMES * 10);
    assert_eq!(nom_teltonika(&tel), view, "nom-teltonika read other values");
    assert_eq!(
        nom_teltonika_view(&tel),
        view,
        "nom-teltonika read other values"
    );
    let mut g = c.benchmark_group("teltonika_codec8e_10_records");
    g.throughput(Throughput::Bytes(tel.len() as u64));
    g.bench_function("fleetbus", |b| b.iter(|| fleetbus_teltonika(&tel, &ctx)));
    g.bench_function("fleetbus-view", |b| b.iter(|| view_teltonika(&tel)));
    g.bench_function("nom-teltonika", |b| b.iter(|| nom_teltonika(&tel)));
    g.bench_function("nom-teltonika-view", |b| {
        b.iter(|| nom_teltonika_view(&tel))
    });
    g.finish();

    let gt = stream(&gt06_frames());
    assert_eq!(fleetbus_gt06(&gt, &ctx), FRAMES);
    let mut g = c.benchmark_group("gt06_location");
    g.throughput(Throughput::Bytes(gt.len() as u64));
    g.bench_function("fleetbus", |b| b.iter(|| fleetbus_gt06(&gt, &ctx)));
    g.finish();

    let frames = parsed_frames(&ctx);
    let mut g = c.benchmark_group("record_identity");
    g.throughput(Throughput::Elements((FRAMES * 10) as u64));
    g.bench_function("identity", |b| b.iter(|| identities(&frames)));
    g.bench_function("claim_in_memory_of_256", |b| b.iter(|| claims(&frames)));
    g.finish();
}

/// The records of every Teltonika frame, parsed once.
fn parsed_frames(ctx: &ParseContext) -> Vec<Vec<Record>> {
    teltonika_frames()
        .iter()
        .map(|f| teltonika::parse(f, ctx).expect("parsable"))
        .collect()
}

/// The identity of every record.
fn identities(frames: &[Vec<Record>]) -> u64 {
    frames
        .iter()
        .flatten()
        .map(|r| record_identity(r).expect("positions"))
        .fold(0, |a, b| a ^ b)
}

/// Every frame of one device claimed in its memory, as a hamster does per
/// frame: decode the stored memory, claim, encode it for the write. The
/// memory is full (256 identities) after the first 26 frames.
fn claims(frames: &[Vec<Record>]) -> usize {
    let mut stored = Memory::default().encode();
    let mut carried = 0;
    for (i, f) in frames.iter().enumerate() {
        let ids: Vec<u64> = f.iter().map(|r| record_identity(r).unwrap()).collect();
        let mut memory = Memory::decode(&stored).expect("decodes");
        let claim = memory.claim(owner_tag(&format!("frame-{i}")), &ids, 256);
        carried += claim.carry.iter().filter(|c| **c).count();
        stored = memory.encode();
    }
    carried
}

/// Runs `f` (which handles `FRAMES` frames) for about `slice`, returning
/// (frames, seconds).
fn time_slice<T>(slice: Duration, mut f: impl FnMut() -> T) -> (u64, f64) {
    let start = Instant::now();
    let mut frames = 0u64;
    while start.elapsed() < slice {
        black_box(f());
        frames += FRAMES as u64;
    }
    (frames, start.elapsed().as_secs_f64())
}

/// The summary the issue asks for: frames/s, MB/s and the ratios, measured
/// interleaved in this one run.
fn summary() {
    let ctx = ctx();
    let tel = stream(&teltonika_frames());
    let gt = stream(&gt06_frames());
    let add = |t: &mut (u64, f64), x: (u64, f64)| *t = (t.0 + x.0, t.1 + x.1);
    let frames = parsed_frames(&ctx);
    let mut totals = [(0u64, 0f64); 7];
    for _ in 0..10 {
        let slice = Duration::from_millis(200);
        add(
            &mut totals[0],
            time_slice(slice, || fleetbus_teltonika(&tel, &ctx)),
        );
        add(&mut totals[1], time_slice(slice, || view_teltonika(&tel)));
        add(&mut totals[2], time_slice(slice, || nom_teltonika(&tel)));
        add(
            &mut totals[3],
            time_slice(slice, || nom_teltonika_view(&tel)),
        );
        add(
            &mut totals[4],
            time_slice(slice, || fleetbus_gt06(&gt, &ctx)),
        );
        add(&mut totals[5], time_slice(slice, || identities(&frames)));
        add(&mut totals[6], time_slice(slice, || claims(&frames)));
    }
    let rate = |(frames, secs): (u64, f64), bytes: usize| {
        let fps = frames as f64 / secs;
        (fps, fps * (bytes as f64 / FRAMES as f64) / 1e6)
    };
    let (fa, ma) = rate(totals[0], tel.len());
    let (fv, mv) = rate(totals[1], tel.len());
    let (fb, mb) = rate(totals[2], tel.len());
    let (fn_, mn) = rate(totals[3], tel.len());
    let (fg, mg) = rate(totals[4], gt.len());
    println!();
    println!("summary (interleaved, same run)");
    println!("  teltonika codec8e x10  fleetbus (Position)  {fa:>12.0} frames/s  {ma:>8.1} MB/s  {:>12.0} records/s", fa * 10.0);
    println!("  teltonika codec8e x10  fleetbus view        {fv:>12.0} frames/s  {mv:>8.1} MB/s  {:>12.0} records/s", fv * 10.0);
    println!("  teltonika codec8e x10  nom-teltonika        {fb:>12.0} frames/s  {mb:>8.1} MB/s  {:>12.0} records/s", fb * 10.0);
    println!("  teltonika codec8e x10  nom-teltonika view   {fn_:>12.0} frames/s  {mn:>8.1} MB/s  {:>12.0} records/s", fn_ * 10.0);
    println!("  gt06 location 0x22     fleetbus             {fg:>12.0} frames/s  {mg:>8.1} MB/s");
    println!(
        "  fleetbus view/nom-teltonika = {:.2} (target >= 1.5)",
        fv / fb
    );
    println!("  fleetbus (Position)/nom-teltonika = {:.2}", fa / fb);
    println!("  fleetbus view/nom-teltonika view = {:.2}", fv / fn_);
    // time_slice counts FRAMES per call; each frame has 10 records.
    let per_record_ns = |(frames, secs): (u64, f64)| secs * 1e9 / (frames as f64 * 10.0);
    println!(
        "  record identity: {:.0} ns per record; claiming a frame's 10 in a memory of 256: {:.0} ns per record",
        per_record_ns(totals[5]),
        per_record_ns(totals[6])
    );
    println!(
        "  the same, as a share of parsing the record (fleetbus Position): {:.2} and {:.2}",
        per_record_ns(totals[5]) / per_record_ns(totals[0]),
        per_record_ns(totals[6]) / per_record_ns(totals[0])
    );
}

criterion_group!(decode, benches);

fn main() {
    decode();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --all-targets` runs benches once in test mode (no
    // `--bench`): criterion then checks each routine once; the timed summary
    // is for real benchmark runs only.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
