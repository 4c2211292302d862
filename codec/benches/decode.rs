//! Decode throughput: `just bench` (or `cargo bench -p fleetbus-codec --bench decode`).
//!
//! * Teltonika Codec 8 Extended frames of 10 records each (with the IO
//!   elements an FMB sends every few seconds), framed and parsed into
//!   records, against the `nom-teltonika` crate decoding the same frames;
//! * GT06 location frames (0x22), framed and parsed.
//!
//! Besides criterion's own figures it prints, for the same machine and run,
//! frames/s and MB/s of each and the ratio fleetbus / nom-teltonika, measured
//! interleaved (A, B, A, B, …) so that a noisy neighbour affects both alike.
//! Figures are in docs/performance.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, Criterion, Throughput};
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

/// fleetbus: cut the stream into frames, then parse each into records.
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

/// nom-teltonika: take each frame from the stream and evaluate its records.
fn nom_teltonika(stream: &BytesMut) -> usize {
    use nom_teltonika::decoder::take_frame;
    use nom_teltonika::protocol::FrameView;
    let mut input = &stream[..];
    let mut records = 0;
    while !input.is_empty() {
        match take_frame(&mut input) {
            Ok(FrameView::Avl(packet)) => records += black_box(packet.evaluate()).records().len(),
            _ => panic!("nom-teltonika refused a frame"),
        }
    }
    records
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
    assert_eq!(nom_teltonika(&tel), FRAMES * 10);
    let mut g = c.benchmark_group("teltonika_codec8e_10_records");
    g.throughput(Throughput::Bytes(tel.len() as u64));
    g.bench_function("fleetbus", |b| b.iter(|| fleetbus_teltonika(&tel, &ctx)));
    g.bench_function("nom-teltonika", |b| b.iter(|| nom_teltonika(&tel)));
    g.finish();

    let gt = stream(&gt06_frames());
    assert_eq!(fleetbus_gt06(&gt, &ctx), FRAMES);
    let mut g = c.benchmark_group("gt06_location");
    g.throughput(Throughput::Bytes(gt.len() as u64));
    g.bench_function("fleetbus", |b| b.iter(|| fleetbus_gt06(&gt, &ctx)));
    g.finish();
}

/// Runs `f` (which handles `FRAMES` frames of `bytes` bytes) for about
/// `slice`, returning (frames, seconds).
fn time_slice(slice: Duration, mut f: impl FnMut() -> usize) -> (u64, f64) {
    let start = Instant::now();
    let mut frames = 0u64;
    while start.elapsed() < slice {
        black_box(f());
        frames += FRAMES as u64;
    }
    (frames, start.elapsed().as_secs_f64())
}

/// The summary the issue asks for: frames/s, MB/s and the ratio, measured
/// interleaved in this one run.
fn summary() {
    let ctx = ctx();
    let tel = stream(&teltonika_frames());
    let gt = stream(&gt06_frames());
    let (mut a, mut b, mut g) = ((0u64, 0f64), (0u64, 0f64), (0u64, 0f64));
    for _ in 0..10 {
        let slice = Duration::from_millis(200);
        let x = time_slice(slice, || fleetbus_teltonika(&tel, &ctx));
        let y = time_slice(slice, || nom_teltonika(&tel));
        let z = time_slice(slice, || fleetbus_gt06(&gt, &ctx));
        a = (a.0 + x.0, a.1 + x.1);
        b = (b.0 + y.0, b.1 + y.1);
        g = (g.0 + z.0, g.1 + z.1);
    }
    let rate = |(frames, secs): (u64, f64), bytes: usize| {
        let fps = frames as f64 / secs;
        (fps, fps * (bytes as f64 / FRAMES as f64) / 1e6)
    };
    let (fa, ma) = rate(a, tel.len());
    let (fb, mb) = rate(b, tel.len());
    let (fg, mg) = rate(g, gt.len());
    println!();
    println!("summary (interleaved, same run)");
    println!("  teltonika codec8e x10  fleetbus       {fa:>12.0} frames/s  {ma:>8.1} MB/s  {:>12.0} records/s", fa * 10.0);
    println!("  teltonika codec8e x10  nom-teltonika  {fb:>12.0} frames/s  {mb:>8.1} MB/s  {:>12.0} records/s", fb * 10.0);
    println!("  gt06 location 0x22     fleetbus       {fg:>12.0} frames/s  {mg:>8.1} MB/s");
    println!("  fleetbus/nom-teltonika = {:.2}", fa / fb);
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
