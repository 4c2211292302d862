//! The simulator's report (`fleetbus simulate --report`): one JSON line
//! per record a gateway acknowledged, the records `fleetbus verify` expects
//! in PARSED. A record is known by its device and fix time ([`Key`]), as a
//! simulated device never repeats a fix time, so the report and PARSED can
//! be matched without ids.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::simulate::Reported;

/// Record identity: a simulated device never repeats a fix time.
pub type Key = (String, DateTime<Utc>);

/// The report's records, each once (a record acknowledged twice — resent
/// after a crash — is reported twice but is one record).
pub fn read_report(path: &std::path::Path) -> anyhow::Result<BTreeMap<Key, Reported>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Reported = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a report line", path.display(), n + 1))?;
        out.insert((r.device_id.clone(), r.fix_time), r);
    }
    Ok(out)
}
