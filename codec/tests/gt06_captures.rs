//! GT06 against Traccar's captures (`fixtures/traccar/gt06.jsonl`, see the
//! README there for fields and attribution), beyond the generic runner in
//! `conformance.rs`:
//!
//! * captures that Traccar decoded with a device model override are decoded
//!   with that model (`gt06::parse_with_model`);
//! * attribute checks follow Traccar's `verifyAttribute`: `speed`, `course`
//!   and `altitude` are position fields, and an expected `null` means the
//!   attribute is absent;
//! * every decoder capture also goes through the framer (when it is a single
//!   frame with a valid layout) and the session, which must not panic.
//!
//! `GT06_DUMP=1 cargo test --test gt06_captures -- --nocapture` prints what
//! each capture decodes to.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::BytesMut;
use chrono::{NaiveDateTime, TimeZone, Utc};
use fleetbus_codec::gt06::{self, Framer, Session};
use fleetbus_codec::{ParseContext, Record};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::codec::Decoder;

#[derive(Debug, Deserialize)]
struct Capture {
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

fn captures() -> Vec<Capture> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/traccar/gt06.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5_f64.max(b.abs() * 1e-9)
}

fn attribute_agrees(record: &Record, key: &str, expected: &Value) -> Result<(), String> {
    let field = record.as_position().and_then(|p| match key {
        "speed" => Some(p.speed),
        "course" => Some(p.course),
        "altitude" => Some(p.altitude),
        _ => None,
    });
    let got = match field {
        Some(v) => Some(Value::from(v)),
        None => record.attributes().get(key).cloned(),
    };
    let ok = match (&got, expected) {
        (None, Value::Null) => true,
        (Some(g), e) if g == e => true,
        (Some(g), e) => match (g.as_f64(), e.as_f64()) {
            (Some(a), Some(b)) => close(a, b),
            _ => false,
        },
        (None, _) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("attribute {key} = {got:?}, expected {expected}"))
    }
}

fn check(
    c: &Capture,
    result: &Result<Vec<Record>, fleetbus_codec::ParseError>,
) -> Result<(), String> {
    let records = match (c.expect.as_str(), result) {
        ("other", _) | ("null", Err(_)) => return Ok(()),
        ("null", Ok(r)) if r.iter().all(|r| r.as_position().is_none()) => return Ok(()),
        ("null", Ok(_)) => return Err("expected no position".into()),
        (_, Err(e)) => return Err(format!("parse error: {e}")),
        (_, Ok(r)) => r,
    };
    if c.expect == "position" && !records.iter().any(|r| r.as_position().is_some()) {
        return Err("expected a position".into());
    }
    if records.is_empty() {
        return Err("expected a record".into());
    }
    for check in &c.checks {
        match check {
            Check::Attribute { key, expected } => attribute_agrees(&records[0], key, expected)?,
            Check::Position { expected } => {
                let p = records
                    .iter()
                    .find_map(Record::as_position)
                    .ok_or("no position")?;
                if let Some(t) = &expected.time {
                    let want = Utc.from_utc_datetime(
                        &NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.3f").unwrap(),
                    );
                    if p.fix_time != want {
                        return Err(format!("time {} != {want}", p.fix_time));
                    }
                }
                if expected.valid.is_some_and(|v| v != p.valid) {
                    return Err(format!("valid {}", p.valid));
                }
                if expected.lat.is_some_and(|v| (v - p.latitude).abs() > 1e-5) {
                    return Err(format!("latitude {}", p.latitude));
                }
                if expected.lon.is_some_and(|v| (v - p.longitude).abs() > 1e-5) {
                    return Err(format!("longitude {}", p.longitude));
                }
            }
        }
    }
    Ok(())
}

/// The session and framer take every decoder capture without panicking.
fn through_session_and_framer(bytes: &[u8]) {
    let mut session = Session::new();
    let _ = session.on_frame(&gt06::encode::login("123456789012345", 1));
    let _ = session.on_frame(bytes);
    let mut buf = BytesMut::from(bytes);
    let _ = Framer::new(gt06::MAX_FRAME).decode(&mut buf);
}

#[test]
fn every_capture_with_its_model() {
    let dump = std::env::var_os("GT06_DUMP").is_some();
    let received_at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut identities: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut failures = Vec::new();
    let all = captures();
    for c in &all {
        let bytes = hex::decode(&c.payload).unwrap();
        let outcome = if c.file_kind == "frame" {
            let mut buf = BytesMut::from(&bytes[..]);
            let expected = hex::decode(c.frame_expected.as_ref().unwrap()).unwrap();
            match Framer::new(gt06::MAX_FRAME).decode(&mut buf) {
                Ok(Some(frame)) if frame[..] == expected[..] => Ok(()),
                other => Err(format!("framer gave {other:?}")),
            }
        } else {
            through_session_and_framer(&bytes);
            let id = identities
                .entry((c.test.clone(), c.method.clone()))
                .or_insert_with(|| "unknown".into());
            if let Some(imei) = gt06::identify(&bytes) {
                *id = imei;
            }
            let ctx = ParseContext::new(id.clone(), received_at);
            let result = gt06::parse_with_model(&bytes, &ctx, c.model.as_deref());
            if dump {
                match &result {
                    Ok(records) => {
                        println!(
                            "line {} ({}): {}",
                            c.line,
                            c.expect,
                            serde_json::to_string(records).unwrap()
                        )
                    }
                    Err(e) => println!("line {} ({}): error {e}", c.line, c.expect),
                }
            }
            check(c, &result)
        };
        if let Err(e) = outcome {
            failures.push(format!("line {}: {e}", c.line));
        }
    }
    println!(
        "gt06: {}/{} captures conform with their models",
        all.len() - failures.len(),
        all.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn model_captures_need_the_model() {
    // Without the model these decode as the common layout (documented limit).
    let received_at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let ctx = ParseContext::new("123456789012345", received_at);
    let lw_heartbeat = hex::decode("78780a13560604f0830ccf986f0d0a").unwrap();
    let plain = gt06::parse(&lw_heartbeat, &ctx).unwrap();
    assert!(plain[0].attributes().get("power").is_none());
    let lw = gt06::parse_with_model(&lw_heartbeat, &ctx, Some("LW4G-4B")).unwrap();
    assert_eq!(lw[0].attributes()["power"], 13.1);
}
