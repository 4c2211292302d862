//! Conformance against real device captures.
//!
//! Every line of `fixtures/traccar/<protocol>.jsonl` is a message captured
//! from a real tracker together with what Traccar's own test suite expects of
//! it (see `fixtures/traccar/README.md` for fields and attribution). Each
//! capture must meet its expectation, or be listed with a reason in
//! `fixtures/conformance-exceptions.json` (and in docs/protocols.md). An
//! exception that starts passing fails the test too, so the list stays true.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::BytesMut;
use chrono::{NaiveDateTime, TimeZone, Utc};
use fleetbus_codec::{FrameDecoder, Protocol, Record};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::codec::Decoder;

#[derive(Debug, Deserialize)]
struct Capture {
    protocol: String,
    kind: String,
    payload: String,
    file_kind: String,
    expect: String,
    #[serde(default)]
    checks: Vec<Check>,
    #[serde(default)]
    frame_expected: Option<String>,
    test: String,
    method: String,
    line: u32,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Check {
    Position { expected: PositionCheck },
    Attribute { key: String, expected: Value },
}

#[derive(Debug, Deserialize)]
struct PositionCheck {
    time: Option<String>,
    valid: Option<bool>,
    lat: Option<f64>,
    lon: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Exception {
    protocol: String,
    line: u32,
    reason: String,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(protocol: Protocol) -> Vec<Capture> {
    let path = fixtures().join(format!("traccar/{}.jsonl", protocol.name()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

fn exceptions(protocol: Protocol) -> BTreeMap<u32, String> {
    let text = std::fs::read_to_string(fixtures().join("conformance-exceptions.json")).unwrap();
    let all: Vec<Exception> = serde_json::from_str(&text).unwrap();
    all.into_iter()
        .filter(|e| e.protocol == protocol.name())
        .map(|e| (e.line, e.reason))
        .collect()
}

fn payload_bytes(c: &Capture, text: &str) -> Vec<u8> {
    match c.kind.as_str() {
        "hex" => hex::decode(text).unwrap_or_else(|e| panic!("line {}: bad hex: {e}", c.line)),
        "text" => text.as_bytes().to_vec(),
        other => panic!("line {}: unknown kind {other}", c.line),
    }
}

/// The terminators Traccar's frame decoder drops from a text message and
/// fleetbus keeps: a frame is the message as the device sent it.
fn kept_terminators(protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::Suntech => b"\r",
        Protocol::Gl200 => b"$\0",
        _ => b"",
    }
}

/// Whether `frame` is Traccar's `expected` frame, allowing for a kept
/// terminator.
fn frame_agrees(protocol: Protocol, frame: &[u8], expected: &[u8]) -> bool {
    frame == expected
        || frame.split_last().is_some_and(|(last, rest)| {
            rest == expected && kept_terminators(protocol).contains(last)
        })
}

/// Checks one `frame` capture: the framer must cut exactly `frame_expected`
/// (with its terminator, where Traccar drops it).
fn check_frame(protocol: Protocol, c: &Capture) -> Result<(), String> {
    let mut buf = BytesMut::from(&payload_bytes(c, &c.payload)[..]);
    // A chunk that must give no frame (Traccar's `verifyNull` on a frame decoder).
    if c.expect == "null" && c.frame_expected.is_none() {
        let mut framer = protocol.framer(protocol.default_max_frame());
        return match framer.decode(&mut buf) {
            Ok(Some(frame)) => Err(format!("framer cut {}, expected none", hex::encode(&frame))),
            Ok(None) | Err(_) => Ok(()),
        };
    }
    let expected = payload_bytes(c, c.frame_expected.as_deref().ok_or("no frame_expected")?);
    let mut framer = protocol.framer(protocol.default_max_frame());
    match framer.decode(&mut buf) {
        Ok(Some(frame)) if frame_agrees(protocol, &frame, &expected) => Ok(()),
        Ok(Some(frame)) => Err(format!(
            "framer cut {}, expected {}",
            hex::encode(&frame),
            hex::encode(&expected)
        )),
        Ok(None) => Err("framer wants more bytes".into()),
        Err(e) => Err(format!("framer error: {e}")),
    }
}

/// What the gateway does with these bytes — frame them, hand them to a
/// fresh session — must never panic, whatever the outcome.
fn through_gateway_path(protocol: Protocol, bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    let mut framer = protocol.framer(protocol.default_max_frame());
    while let Ok(Some(frame)) = framer.decode(&mut buf) {
        let _ = protocol.session().on_frame(&frame);
    }
    let _ = protocol.session().on_frame(bytes);
}

fn numbers_agree(got: &Value, expected: &Value) -> bool {
    match (got.as_f64(), expected.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-5_f64.max(b.abs() * 1e-9),
        _ => false,
    }
}

/// Traccar's `new Network(CellTower.from(mcc, mnc, lac, cid), …)`, which
/// the capture extraction could not turn into JSON (`{"unresolved": "…"}`),
/// as the `network` attribute fleetbus writes (`{"cellTowers": [...]}`);
/// `None` for any other unresolved expression.
fn resolve_network(expected: &Value) -> Option<Value> {
    let text = expected.get("unresolved")?.as_str()?;
    let inner = text
        .trim()
        .strip_prefix("new Network(")?
        .strip_suffix(')')?;
    let mut towers = Vec::new();
    for part in inner.split("CellTower.from(").skip(1) {
        let args = part.split(')').next()?;
        let n: Vec<i64> = args
            .split(',')
            .map(|a| a.trim().parse().ok())
            .collect::<Option<_>>()?;
        let [mcc, mnc, lac, cid] = n[..] else {
            return None;
        };
        towers.push(serde_json::json!({
            "mobileCountryCode": mcc,
            "mobileNetworkCode": mnc,
            "locationAreaCode": lac,
            "cellId": cid,
        }));
    }
    (!towers.is_empty()).then(|| serde_json::json!({ "cellTowers": towers }))
}

fn value_agrees(got: &Value, expected: &Value) -> bool {
    if got == expected || numbers_agree(got, expected) {
        return true;
    }
    if let Some(network) = resolve_network(expected) {
        return got == &network;
    }
    // Traccar compares some values through their text form (e.g. ids kept as strings).
    match (got, expected) {
        (Value::String(g), e) if !e.is_string() => g == &e.to_string(),
        (g, Value::String(e)) if !g.is_string() => &g.to_string() == e,
        _ => false,
    }
}

/// Checks one `decoder` capture against its expectation.
fn check_decoded(
    c: &Capture,
    result: Result<Vec<Record>, fleetbus_codec::ParseError>,
) -> Result<(), String> {
    let records = match (c.expect.as_str(), result) {
        ("other", _) => return Ok(()),
        ("null", Ok(records)) if records.iter().all(|r| r.as_position().is_none()) => return Ok(()),
        ("null", Err(_)) => return Ok(()),
        ("null", Ok(_)) => return Err("expected no position, got one".into()),
        (_, Err(e)) => return Err(format!("parse error: {e}")),
        (_, Ok(records)) => records,
    };
    if c.expect == "position" && !records.iter().any(|r| r.as_position().is_some()) {
        return Err(format!(
            "expected a position, got {} record(s) without one",
            records.len()
        ));
    }
    if c.expect == "attributes" && records.is_empty() {
        return Err("expected a record with attributes, got none".into());
    }
    for check in &c.checks {
        match check {
            Check::Position { expected } => {
                let p = records
                    .iter()
                    .rev()
                    .find_map(Record::as_position)
                    .ok_or("position check without a position")?;
                if let Some(t) = &expected.time {
                    let naive = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.3f")
                        .map_err(|e| format!("bad expected time {t}: {e}"))?;
                    let want = Utc.from_utc_datetime(&naive);
                    if p.fix_time != want {
                        return Err(format!("fix_time {} != {want}", p.fix_time));
                    }
                }
                if let Some(v) = expected.valid {
                    if p.valid != v {
                        return Err(format!("valid {} != {v}", p.valid));
                    }
                }
                if let Some(lat) = expected.lat {
                    if (p.latitude - lat).abs() > 1e-5 {
                        return Err(format!("latitude {} != {lat}", p.latitude));
                    }
                }
                if let Some(lon) = expected.lon {
                    if (p.longitude - lon).abs() > 1e-5 {
                        return Err(format!("longitude {} != {lon}", p.longitude));
                    }
                }
            }
            Check::Attribute { key, expected } => {
                // Traccar asserts on the decoded record, the first of a list
                // (`verifyAttribute` takes `iterator().next()`).
                let first = records.first().ok_or("attribute check without a record")?;
                // Traccar's helper reads these keys from the position's own
                // fields; so do we (its speed is in knots, ours in km/h).
                if let (Some(p), "altitude" | "speed" | "course") =
                    (first.as_position(), key.as_str())
                {
                    let got = match key.as_str() {
                        "altitude" => p.altitude,
                        "speed" => p.speed / 1.852,
                        _ => p.course,
                    };
                    let want = expected.as_f64().ok_or("non-numeric expectation")?;
                    if (got - want).abs() > 1e-3_f64.max(want.abs() * 1e-6) {
                        return Err(format!("{key} = {got}, expected {want}"));
                    }
                    continue;
                }
                match first.attributes().get(key) {
                    // Traccar asserts `null` for an attribute that must be absent.
                    None if expected.is_null() => {}
                    Some(got) if value_agrees(got, expected) => {}
                    Some(got) => {
                        return Err(format!("attribute {key} = {got}, expected {expected}"))
                    }
                    None => return Err(format!("attribute {key} missing (expected {expected})")),
                }
            }
        }
    }
    Ok(())
}

fn run(protocol: Protocol) {
    let captures = load(protocol);
    let known = exceptions(protocol);
    let received_at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut failures = Vec::new();
    let mut passed = 0;
    // Traccar's tests share decoder state within one test method (login → data);
    // a test that sets a device model gets a decoder of its own.
    let mut decoders: BTreeMap<(String, String, Option<String>), FrameDecoder> = BTreeMap::new();
    for c in &captures {
        assert_eq!(c.protocol, protocol.name());
        let outcome = if c.file_kind == "frame" {
            check_frame(protocol, c)
        } else {
            let decoder = decoders
                .entry((c.test.clone(), c.method.clone(), c.model.clone()))
                .or_insert_with(|| FrameDecoder::new(protocol).with_model(c.model.clone()));
            let bytes = payload_bytes(c, &c.payload);
            through_gateway_path(protocol, &bytes);
            check_decoded(c, decoder.decode(&bytes, received_at))
        };
        match (outcome, known.get(&c.line)) {
            (Ok(()), None) => passed += 1,
            (Ok(()), Some(reason)) => failures.push(format!(
                "line {}: listed as an exception ({reason}) but passes now: remove it from the list",
                c.line
            )),
            (Err(_), Some(_)) => {}
            (Err(e), None) => failures.push(format!(
                "line {} ({}{}): {e}",
                c.line,
                c.expect,
                c.model.as_ref().map(|m| format!(", model {m}")).unwrap_or_default()
            )),
        }
    }
    eprintln!(
        "{}: {passed}/{} captures conform, {} listed exceptions",
        protocol.name(),
        captures.len(),
        known.len()
    );
    assert!(
        failures.is_empty(),
        "{} failing capture(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn teltonika_captures() {
    run(Protocol::Teltonika);
}

#[test]
fn gt06_captures() {
    run(Protocol::Gt06);
}

#[test]
fn h02_captures() {
    run(Protocol::H02);
}

#[test]
fn gps103_captures() {
    run(Protocol::Gps103);
}

#[test]
fn tk103_captures() {
    run(Protocol::Tk103);
}

#[test]
fn jt808_captures() {
    run(Protocol::Jt808);
}

#[test]
fn ruptela_captures() {
    run(Protocol::Ruptela);
}

#[test]
fn meitrack_captures() {
    run(Protocol::Meitrack);
}

#[test]
fn suntech_captures() {
    run(Protocol::Suntech);
}

#[test]
fn gl200_captures() {
    run(Protocol::Gl200);
}

#[test]
fn watch_captures() {
    run(Protocol::Watch);
}

#[test]
fn wialon_captures() {
    run(Protocol::Wialon);
}
