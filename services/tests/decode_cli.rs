//! `fleetbus decode --records` (issue 19): every record of a frame, each
//! as it travels on PARSED. Runs the real binary on real device captures
//! (codec/tests/fixtures/traccar, attribution in that folder's README) and
//! holds what it prints against the PARSED schema of `wire/schema/` and
//! against the function that writes PARSED payloads.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::Utc;
use fleetbus_codec::{FrameDecoder, Protocol};
use fleetbus_wire::parsed::records_payload;
use serde_json::Value;

/// Protocols whose captures are decoded; between them they hold
/// positions, logins, heartbeats and status records.
const PROTOCOLS: &[&str] = &["gt06", "teltonika", "h02", "gps103", "jt808", "tk103"];

/// A line that is no frame.
const BAD: &str = "not a frame";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `fleetbus decode <args>` with `input` on stdin.
fn decode(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetbus"))
        .arg("decode")
        .args(args)
        .env_remove("FLEETBUS_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The captures of `protocol` a protocol decoder reads, as decode takes
/// them: hex, text captures hex-encoded (`xxd -p`). Captures made for
/// another device model are left out (they would need `--model`).
fn captures(protocol: &str) -> Vec<String> {
    let path = root().join(format!("codec/tests/fixtures/traccar/{protocol}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|c| c["file_kind"] == "decoder" && c.get("model").is_none())
        .map(|c| {
            let payload = c["payload"].as_str().unwrap();
            match c["kind"].as_str().unwrap() {
                "hex" => payload.to_string(),
                "text" => hex::encode(payload.as_bytes()),
                other => panic!("{path:?}: a capture of kind {other}"),
            }
        })
        .collect()
}

fn load(name: &str) -> Value {
    let path = root().join("wire/schema").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The PARSED payload schema, `record.json` registered under its `$id` so
/// that the reference resolves offline (as in tests/schemas.rs).
fn parsed_schema() -> jsonschema::Validator {
    let record = load("record.json");
    let id = record["$id"].as_str().unwrap().to_string();
    jsonschema::options()
        .with_resource(id, jsonschema::Resource::from_contents(record))
        .build(&load("parsed.json"))
        .expect("parsed.json is a valid schema")
}

#[test]
fn every_record_of_real_captures_is_printed_as_a_parsed_payload() {
    let schema = parsed_schema();
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for protocol in PROTOCOLS {
        // A bad line first and after every tenth capture: each gets its
        // error and the lines after it are decoded still.
        let mut input = vec![BAD.to_string()];
        for (i, capture) in captures(protocol).into_iter().enumerate() {
            input.push(capture);
            if i % 10 == 9 {
                input.push(BAD.to_string());
            }
        }
        let text = input.join("\n") + "\n";
        let out = decode(&["--records", protocol], &text);
        assert_eq!(out.status.code(), Some(0), "{protocol}: {out:?}");
        let printed = lines(&out);
        assert_eq!(printed.len(), input.len(), "{protocol}: one line per line");
        let mut decoded = 0;
        for (line, answer) in input.iter().zip(&printed) {
            let v: Value = serde_json::from_str(answer)
                .unwrap_or_else(|e| panic!("{protocol}: {e}: {answer}"));
            let object = v.as_object().unwrap();
            assert_eq!(object.len(), 1, "{protocol}: {answer}");
            if line == BAD {
                assert!(v["error"].as_str().unwrap().contains("not hex"), "{answer}");
                continue;
            }
            if v.get("error").is_some() {
                continue; // a capture fleetbus does not read (docs/protocols.md)
            }
            let records = &v["records"];
            let array = records.as_array().unwrap_or_else(|| panic!("{answer}"));
            decoded += 1;
            if array.is_empty() {
                continue; // a frame without records: no PARSED message at all
            }
            let errors: Vec<String> = schema
                .iter_errors(records)
                .take(5)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{protocol}: {errors:?}\n{answer}");
            for r in array {
                assert_eq!(r["protocol"], *protocol, "{answer}");
                *types
                    .entry(r["type"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
        // Nearly every capture conforms (docs/protocols.md#conformance-against-real-devices).
        let captured = input.iter().filter(|l| *l != BAD).count();
        assert!(
            decoded * 10 >= captured * 8,
            "{protocol}: only {decoded} of {captured} captures decoded"
        );
    }
    for kind in ["position", "heartbeat", "status", "login"] {
        assert!(types.contains_key(kind), "no {kind} record in {types:?}");
    }
}

/// A real GT06 heartbeat (Gt06ProtocolDecoderTest, line 131: terminal
/// info, voltage level, GSM signal).
const GT06_HEARTBEAT: &str = "78780a130604ea04000006bc8a0d0a";

#[test]
fn a_heartbeat_is_a_typed_record_and_the_plain_form_still_shows_positions_only() {
    let position = captures("teltonika")
        .into_iter()
        .find(|c| {
            let v: Value = serde_json::from_str(&lines(&decode(&["teltonika"], c))[0]).unwrap();
            v["positions"].as_array().is_some_and(|p| !p.is_empty())
        })
        .expect("a teltonika capture with a position");
    let out = decode(&["--records", "gt06"], &format!("{GT06_HEARTBEAT}\n"));
    let v: Value = serde_json::from_str(&lines(&out)[0]).unwrap();
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{v}");
    assert_eq!(records[0]["type"], "heartbeat", "{v}");
    assert_eq!(
        records[0]["device_id"], "unknown",
        "no login line before it"
    );
    assert!(records[0]["attributes"]
        .as_object()
        .is_some_and(|a| !a.is_empty()));
    let plain = decode(&["gt06"], &format!("{GT06_HEARTBEAT}\n"));
    assert_eq!(lines(&plain), [r#"{"positions":[]}"#]);

    // The plain form's positions are the position records without `type`.
    let plain: Value = serde_json::from_str(&lines(&decode(&["teltonika"], &position))[0]).unwrap();
    let full: Value =
        serde_json::from_str(&lines(&decode(&["--records", "teltonika"], &position))[0]).unwrap();
    let without_type: Vec<Value> = full["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "position")
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("type");
            r
        })
        .collect();
    assert_eq!(plain["positions"].as_array().unwrap(), &without_type);
}

#[test]
fn the_records_are_the_bytes_a_hamster_publishes() {
    // Frames whose records carry the device's own times, not the time of
    // decoding, so this process can decode them to the same records.
    for (protocol, capture) in [
        (Protocol::Teltonika, captures("teltonika")[0].clone()),
        (Protocol::H02, captures("h02")[0].clone()),
    ] {
        let out = decode(&["--records", protocol.name()], &format!("{capture}\n"));
        let line = &lines(&out)[0];
        let records = FrameDecoder::new(protocol)
            .decode(&hex::decode(&capture).unwrap(), Utc::now())
            .unwrap();
        assert!(!records.is_empty(), "{protocol:?}");
        let records: Vec<_> = records.iter().collect();
        let payload = String::from_utf8(records_payload(&records)).unwrap();
        assert_eq!(*line, format!("{{\"records\":{payload}}}"), "{protocol:?}");
    }
}

#[test]
fn a_login_line_names_the_device_of_the_lines_after_it() {
    // Teltonika: the IMEI packet, then an AVL packet that names no device.
    let login = "000F333536333037303432343431303133";
    let data = captures("teltonika")[0].clone();
    let out = decode(&["--records", "teltonika"], &format!("{login}\n{data}\n"));
    assert_eq!(out.status.code(), Some(0));
    let printed = lines(&out);
    let after: Value = serde_json::from_str(&printed[1]).unwrap();
    for r in after["records"].as_array().unwrap() {
        assert_eq!(r["device_id"], "356307042441013", "{}", printed[1]);
    }
}
