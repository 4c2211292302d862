//! The tap: following the verify consumer during a run instead of reading
//! it at the end, so that PARSED drains as it would without verify (a
//! consumer read only at the end holds every message of the run, which
//! changes what is judged: a full PARSED, a stream that should have
//! drained). Every record is written to a file before its message is
//! acknowledged, so the file holds everything acknowledged; the file is
//! judged afterwards as PARSED would be.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::consumer;
use futures::StreamExt;
use serde_json::Value;

use super::parsed::{records_of, Parsed};

/// Follows `consumer` until SIGTERM or SIGINT: every record of every new
/// message goes to `path` (one JSON line: stream sequence, index, record)
/// and is flushed before the message is acknowledged, so the file holds
/// everything acknowledged. A message redelivered to the tap (an ack lost
/// in an election) is written again under the same sequence; `--from-tap`
/// counts it once.
pub async fn tap(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let stop = crate::ops::signals::terminated();
    tokio::pin!(stop);
    loop {
        let batch = tokio::select! {
            _ = &mut stop => return Ok(()),
            b = consumer.fetch().max_messages(1000).expires(Duration::from_millis(500)).messages() => b,
        };
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "A pull from PARSED failed; trying again.");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut taken = Vec::new();
        while let Some(msg) = batch.next().await {
            let Ok(msg) = msg else { break };
            let sequence = msg.info().map(|i| i.stream_sequence).unwrap_or_default();
            for (i, record) in records_of(&msg.payload).into_iter().enumerate() {
                let line = serde_json::json!({"seq": sequence, "i": i, "record": record});
                writeln!(file, "{line}")?;
            }
            taken.push(msg);
        }
        file.flush()?;
        for msg in taken {
            if let Err(e) = msg.ack().await {
                tracing::debug!(error = %e, "An ack failed; the message comes again.");
            }
        }
    }
}

/// What `--tap` wrote: each (sequence, index) once.
pub fn read_tap(path: &std::path::Path) -> anyhow::Result<Parsed> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut parsed = Parsed::default();
    let mut lines: HashSet<(u64, u64)> = HashSet::new();
    let mut messages: HashSet<u64> = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a tap line", path.display(), n + 1))?;
        let seq = v["seq"].as_u64().unwrap_or_default();
        let i = v["i"].as_u64().unwrap_or_default();
        if lines.insert((seq, i)) {
            if messages.insert(seq) {
                parsed.read += 1;
            }
            parsed.add(v["record"].clone());
        }
    }
    Ok(parsed)
}
