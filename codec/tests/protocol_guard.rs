//! A guard for protocols: every protocol in [`Protocol::ALL`] comes with
//!
//! * capture fixtures: `codec/tests/fixtures/traccar/<name>.jsonl`, each
//!   line one capture of that protocol, run by `conformance.rs`;
//! * a fuzz target: `fuzz/fuzz_targets/<name>.rs`, fuzzing that protocol,
//!   and its `[[bin]]` in `fuzz/Cargo.toml`;
//! * property tests: `codec/tests/<name>_props.rs`, a `proptest!` on the
//!   protocol's module;
//! * a docs entry in `docs/protocols.md`: its row in the summary table, a
//!   section of its own and its row in the conformance table.
//!
//! A protocol without one of them fails with its name and what is missing.
//! So does a protocol module of `codec/src` missing from the registry (the
//! one line of `protocols!` in `codec/src/protocol.rs` that `Protocol` and
//! `Protocol::ALL` are generated from: it would escape every check), and a
//! capture fixture or property test file named for a protocol that does not
//! exist (any more). (Fuzz targets may fuzz
//! other things than a protocol; one of a protocol that is gone no longer
//! compiles.)

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use fleetbus_codec::Protocol;

/// The workspace's root: files are read at test time, relative to the
/// codec crate.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the codec crate is in the workspace")
        .to_path_buf()
}

/// A file's text, or `None` when it cannot be read.
fn read(relative: &str) -> Option<String> {
    std::fs::read_to_string(root().join(relative)).ok()
}

/// A file that must be there for the guard to mean anything.
fn must_read(relative: &str) -> String {
    read(relative).unwrap_or_else(|| panic!("{relative} cannot be read"))
}

/// Whether `word` stands in `text` on its own (not as part of a longer
/// name: `h02` is not in `h021`, `Gt06` not in `Gt06x`).
fn has_word(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// The `name = "…"` and `path = "…"` of every `[[bin]]` in a Cargo.toml.
fn bins(manifest: &str) -> Vec<(Option<String>, Option<String>)> {
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            if in_bin {
                bins.push((None, None));
            }
            continue;
        }
        let (Some((key, value)), true) = (line.split_once('='), in_bin) else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_string();
        let bin = bins.last_mut().expect("in a [[bin]]");
        match key.trim() {
            "name" => bin.0 = Some(value),
            "path" => bin.1 = Some(value),
            _ => {}
        }
    }
    bins
}

/// What `protocol` lacks of its capture fixtures.
fn captures(protocol: Protocol, conformance: &str) -> Vec<String> {
    let name = protocol.name();
    let path = format!("codec/tests/fixtures/traccar/{name}.jsonl");
    let mut missing = Vec::new();
    match read(&path) {
        None => missing.push(format!("capture fixtures: {path} does not exist")),
        Some(text) => {
            let lines: Vec<_> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.is_empty() {
                missing.push(format!("capture fixtures: {path} has no captures"));
            }
            for (i, line) in lines.iter().enumerate() {
                let of = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|c| c["protocol"].as_str().map(str::to_string));
                if of.as_deref() != Some(name) {
                    missing.push(format!(
                        "capture fixtures: capture {} of {path} is not a capture of {name} \
                         (its \"protocol\" is {})",
                        i + 1,
                        of.map(|p| format!("{p:?}"))
                            .unwrap_or_else(|| "missing".into())
                    ));
                    break;
                }
            }
        }
    }
    let run = format!("run(Protocol::{protocol:?})");
    if !conformance.contains(&run) {
        missing.push(format!(
            "capture fixtures: codec/tests/conformance.rs never calls `{run}`, so its captures are \
             not run"
        ));
    }
    missing
}

/// What `protocol` lacks of its fuzz target.
fn fuzz_target(protocol: Protocol, fuzz_manifest: &str) -> Vec<String> {
    let name = protocol.name();
    let path = format!("fuzz_targets/{name}.rs");
    let mut missing = Vec::new();
    match read(&format!("fuzz/{path}")) {
        None => missing.push(format!("a fuzz target: fuzz/{path} does not exist")),
        Some(text) if !has_word(&text, &format!("Protocol::{protocol:?}")) => missing.push(
            format!("a fuzz target: fuzz/{path} does not fuzz `Protocol::{protocol:?}`"),
        ),
        Some(_) => {}
    }
    let bins = bins(fuzz_manifest);
    match bins.iter().find(|(n, _)| n.as_deref() == Some(name)) {
        None => missing.push(format!(
            "a fuzz target: fuzz/Cargo.toml has no [[bin]] named \"{name}\""
        )),
        Some((_, p)) if p.as_deref() != Some(path.as_str()) => missing.push(format!(
            "a fuzz target: the [[bin]] \"{name}\" of fuzz/Cargo.toml has path {}, not \
             \"{path}\"",
            p.as_ref()
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "none".into())
        )),
        Some(_) => {}
    }
    missing
}

/// What `protocol` lacks of its property tests.
fn property_tests(protocol: Protocol) -> Vec<String> {
    let name = protocol.name();
    let path = format!("codec/tests/{name}_props.rs");
    let mut missing = Vec::new();
    match read(&path) {
        None => missing.push(format!("property tests: {path} does not exist")),
        Some(text) => {
            if !text.contains("proptest!") {
                missing.push(format!("property tests: {path} has no `proptest!`"));
            }
            if !has_word(&text, &format!("fleetbus_codec::{name}")) {
                missing.push(format!(
                    "property tests: {path} does not use `fleetbus_codec::{name}`"
                ));
            }
        }
    }
    missing
}

/// What `protocol` lacks of its entry in docs/protocols.md.
fn docs_entry(protocol: Protocol, docs: &str) -> Vec<String> {
    let name = protocol.name();
    let mut missing = Vec::new();
    let row = format!("| `{name}` |");
    if !docs.lines().any(|l| l.starts_with(&row)) {
        missing.push(format!(
            "a docs entry: docs/protocols.md has no row starting \"{row}\" in its summary table"
        ));
    }
    let section = docs
        .lines()
        .filter(|l| l.starts_with("## "))
        .any(|l| has_word(&l.to_lowercase(), name));
    if !section {
        missing.push(format!(
            "a docs entry: docs/protocols.md has no section (`## …`) naming {name}"
        ));
    }
    let conformance = format!("| {name} |");
    if !docs.lines().any(|l| l.starts_with(&conformance)) {
        missing.push(format!(
            "a docs entry: docs/protocols.md has no row starting \"{conformance}\" in its \
             conformance table"
        ));
    }
    missing
}

#[test]
fn every_protocol_has_captures_a_fuzz_target_property_tests_and_docs() {
    let conformance = must_read("codec/tests/conformance.rs");
    let fuzz_manifest = must_read("fuzz/Cargo.toml");
    let docs = must_read("docs/protocols.md");
    let mut report = String::new();
    for &protocol in Protocol::ALL {
        let missing = [
            captures(protocol, &conformance),
            fuzz_target(protocol, &fuzz_manifest),
            property_tests(protocol),
            docs_entry(protocol, &docs),
        ]
        .concat();
        for what in missing {
            writeln!(report, "protocol {} lacks {what}", protocol.name()).unwrap();
        }
    }
    assert!(report.is_empty(), "\n{report}");
}

/// Whether a module's text implements the registry's trait.
fn implements_spec(text: &str) -> bool {
    [
        "impl Spec for ",
        "impl crate::Spec for ",
        "impl crate::spec::Spec for ",
    ]
    .iter()
    .any(|i| text.contains(i))
}

/// `Protocol` and `Protocol::ALL` are generated from the one list of
/// `protocols!` in codec/src/protocol.rs, so nothing can be in one and not
/// the other; what can be left out is a protocol module nobody listed. A
/// module of codec/src is a protocol's if it implements `Spec` or has a
/// session (`<module>/session.rs`), and its name is the protocol's (as the
/// fixtures, property tests and fuzz targets above are named).
#[test]
fn every_protocol_module_is_in_the_registry() {
    let names: BTreeSet<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
    let src = root().join("codec/src");
    let entries = std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let mut modules: Vec<(String, String, bool)> = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(file) = path
            .file_name()
            .and_then(|f| f.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if path.is_dir() {
            let text = std::fs::read_to_string(path.join("mod.rs")).unwrap_or_default();
            modules.push((file, text, path.join("session.rs").exists()));
        } else if let Some(stem) = file.strip_suffix(".rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            modules.push((stem.to_string(), text, false));
        }
    }
    modules.sort();
    let mut report = String::new();
    let mut found = 0;
    for (module, text, has_session) in &modules {
        let spec = implements_spec(text);
        if !spec && !has_session {
            continue;
        }
        found += 1;
        if !spec {
            writeln!(
                report,
                "codec/src/{module} has a session but no `impl Spec for …` in its mod.rs, so the \
                 registry cannot list it"
            )
            .unwrap();
        }
        if !names.contains(module.as_str()) {
            writeln!(
                report,
                "codec/src/{module} is a protocol module, but no protocol of Protocol::ALL is \
                 named {module:?}: add its line to `protocols!` in codec/src/protocol.rs"
            )
            .unwrap();
        }
    }
    assert!(report.is_empty(), "\n{report}");
    assert_eq!(
        found,
        names.len(),
        "a protocol of Protocol::ALL whose module this guard does not see: {names:?}"
    );
}

#[test]
fn nothing_is_left_for_a_protocol_that_is_not_there() {
    let names: BTreeSet<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
    let mut report = String::new();
    let stems = |dir: &str, suffix: &str| -> Vec<String> {
        let dir = root().join(dir);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut stems: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(suffix).map(str::to_string))
            .collect();
        stems.sort();
        stems
    };
    for stem in stems("codec/tests/fixtures/traccar", ".jsonl") {
        if !names.contains(stem.as_str()) {
            writeln!(
                report,
                "codec/tests/fixtures/traccar/{stem}.jsonl: no protocol {stem}"
            )
            .unwrap();
        }
    }
    for stem in stems("codec/tests", "_props.rs") {
        if !names.contains(stem.as_str()) {
            writeln!(report, "codec/tests/{stem}_props.rs: no protocol {stem}").unwrap();
        }
    }
    assert!(report.is_empty(), "\n{report}");
}
