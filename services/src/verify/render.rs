//! What `fleetbus verify` prints without `--json`: one line of counts,
//! then at most twenty of each kind of problem (a run that lost thousands
//! of records must not bury the counts), the effects the same way, and
//! `OK` or `FAILED` last, for a person or a `grep`.

use super::compare::Outcome;
use super::effects::Effects;

/// The counts, the first problems of each kind, and the verdict.
pub fn render(o: &Outcome) -> String {
    let mut s = format!(
        "verify: {} records reported, {} in PARSED exactly once and unaltered; {} missing, {} duplicated, {} altered ({} messages read)\n",
        o.reported,
        o.found_once,
        o.missing.len(),
        o.duplicated.len(),
        o.altered.len(),
        o.read
    );
    for (what, list) in [
        ("missing", &o.missing),
        ("duplicated", &o.duplicated),
        ("altered", &o.altered),
    ] {
        for item in list.iter().take(20) {
            s.push_str(&format!("  {what}: {item}\n"));
        }
        if list.len() > 20 {
            s.push_str(&format!("  … and {} more {what}\n", list.len() - 20));
        }
    }
    if let Some(e) = &o.effects {
        s.push_str(&effects(e));
    }
    s.push_str(if o.ok() { "OK\n" } else { "FAILED\n" });
    s
}

/// The effects' counts and their first twenty problems.
fn effects(e: &Effects) -> String {
    let mut s = format!(
        "effects: {} devices, {} with their newest record as latest position; {} of {} expected events once, {} problems, {} devices missing transitions\n",
        e.devices,
        e.latest_ok,
        e.events_ok,
        e.events_expected,
        e.latest_wrong.len() + e.events_wrong.len(),
        e.events_missing.len()
    );
    let all = e.latest_wrong.iter().chain(&e.events_wrong);
    for item in all.chain(&e.events_missing).take(20) {
        s.push_str(&format!("  effect: {item}\n"));
    }
    s
}
