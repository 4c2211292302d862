//! `fleetbus dead rescue`: moves the messages a consumer gave up on out of
//! the interest stream they are stuck in, into DEAD, from where `fleetbus
//! dead replay` puts them back.
//!
//! fleetbus' durables never give up on a message (`max_deliver` -1,
//! docs/streams.md), but a cluster provisioned by an older version may
//! still hold messages that ran out of deliveries under a finite one: they
//! stay in RAW or PARSED, which keep what some consumer has not
//! acknowledged, and no consumer will ever deliver them again. `fleetbus
//! status` reports them (`stranded`). A message is stranded when it is
//! still stored at or below the point up to which every consumer of its
//! stream is done (`status::stranded`): an interest stream removes a
//! message once every consumer acknowledged it, so what is left there was
//! given up on.
//!
//! Each is copied to DEAD as the workers would dead-letter it (kind
//! `exhausted`, its original headers and id), and deleted from its stream
//! only after DEAD acknowledged the copy.
//!
//! A message every consumer acknowledged can also sit below the floor for
//! a while: when the acks of two consumers are led from different nodes,
//! nats-server may leave the removal to the stream's periodic interest
//! sweep (about every two minutes). Moving such a message would dead-letter
//! what was processed, so rescue first waits `--settle-secs` (default
//! 180 s, longer than a sweep) and moves only what was below the floor
//! before the wait and is still stored after it.

use fleetbus_wire::names;
use std::time::Duration;

use async_nats::jetstream::{self, stream::RawMessageErrorKind};
use fleetbus_actors::dead;
use fleetbus_actors::{DeadKind, DeadReason};
use fleetbus_wire::dead::DeadLetter;
use fleetbus_wire::{DeadStage, Envelope};

use crate::status;

/// What one stream's rescue did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rescued {
    pub stream: String,
    pub moved: u64,
    /// Sequences in the range that were not stored (acknowledged after all).
    pub gone: u64,
}

/// A stream that holds messages past every consumer.
#[derive(Clone, Debug)]
struct Candidate {
    stream: &'static str,
    first: u64,
    /// Every consumer is done up to here.
    floor: u64,
    /// The consumer with that floor, `STREAM/NAME`, and its max_deliver.
    consumer: String,
    max_deliver: i64,
}

/// RAW and PARSED, where they hold messages past every consumer, of any
/// age.
async fn candidates(client: &async_nats::Client) -> Vec<Candidate> {
    let state = status::collect(client, Duration::from_secs(3)).await;
    let mut out = Vec::new();
    for stream in [names::RAW, names::PARSED] {
        let Some(s) = state.streams.iter().find(|s| s.name == stream) else {
            continue;
        };
        if let Some((c, floor)) = status::stranded(s, &state.consumers, 0) {
            out.push(Candidate {
                stream,
                first: s.first_seq,
                floor,
                consumer: format!("{}/{}", c.stream, c.name),
                max_deliver: c.max_deliver,
            });
        }
    }
    out
}

/// Finds what is stranded on RAW and PARSED, waits `settle_secs` (not on a
/// dry run), and moves what is still stranded to DEAD, saying on stdout
/// what it does (on stderr what failed). `false` when a move failed.
pub async fn rescue(client: async_nats::Client, dry_run: bool, settle_secs: u64) -> bool {
    let before = candidates(&client).await;
    if before.is_empty() {
        println!("No stream holds messages its consumers gave up on.");
        return true;
    }
    if !dry_run && settle_secs > 0 {
        for Candidate {
            stream,
            first,
            floor,
            ..
        } in &before
        {
            println!(
                "{stream}: sequences {first}..={floor} are past every consumer; waiting \
                 {settle_secs}s for the server to remove any that were acknowledged after all"
            );
        }
        tokio::time::sleep(Duration::from_secs(settle_secs)).await;
    }
    let after = if dry_run || settle_secs == 0 {
        before.clone()
    } else {
        candidates(&client).await
    };
    let js = jetstream::new(client);
    let mut failed = false;
    let mut any = false;
    for (stage, stream) in [
        (DeadStage::Raw, names::RAW),
        (DeadStage::Parsed, names::PARSED),
    ] {
        let found = |list: &[Candidate]| list.iter().find(|c| c.stream == stream).cloned();
        let (Some(was), Some(now)) = (found(&before), found(&after)) else {
            continue;
        };
        // Only what was past the floor before the wait and is still stored.
        let (first, floor) = (was.first.max(now.first), was.floor.min(now.floor));
        if first > floor {
            continue;
        }
        let Candidate {
            consumer,
            max_deliver,
            ..
        } = now;
        any = true;
        println!(
            "{stream}: sequences {first}..={floor} are past {consumer} and still stored{}",
            if dry_run {
                " (dry run: nothing moved)"
            } else {
                ""
            }
        );
        if dry_run {
            continue;
        }
        match move_range(&js, stage, stream, first, floor, max_deliver).await {
            Ok(r) => println!(
                "{stream}: {} moved to DEAD ({} already gone); put them back with \
                 `fleetbus dead replay --kind exhausted`",
                r.moved, r.gone
            ),
            Err(e) => {
                eprintln!("{stream}: {e}");
                failed = true;
            }
        }
    }
    if !any {
        println!(
            "Nothing to move: the server removed them while rescue waited (every consumer had \
             acknowledged them)."
        );
    }
    !failed
}

/// Copies every stored message of `stream` from `first` to `floor` to DEAD,
/// then deletes it from `stream`. `deliveries`: how often they were
/// delivered (the consumer's `max_deliver`, if it is still finite; once
/// provisioning made it unlimited, nobody knows and DEAD does not say).
pub async fn move_range(
    js: &jetstream::Context,
    stage: DeadStage,
    stream: &str,
    first: u64,
    floor: u64,
    deliveries: i64,
) -> anyhow::Result<Rescued> {
    let s = js.get_stream(stream).await?;
    let mut out = Rescued {
        stream: stream.to_string(),
        ..Rescued::default()
    };
    let reason = DeadReason::new(
        DeadKind::Exhausted,
        format!(
            "ran out of deliveries on {stream} under a finite max_deliver: no consumer would \
             deliver it again (moved by fleetbus dead rescue)"
        ),
    );
    for seq in first..=floor {
        let msg = match s.get_raw_message(seq).await {
            Ok(m) => m,
            Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => {
                out.gone += 1;
                continue;
            }
            Err(e) => anyhow::bail!("message {seq}: {e}"),
        };
        let (protocol, device) = msg.origin();
        let letter = DeadLetter {
            stage,
            protocol: &protocol,
            device: &device,
            original: Some(&msg.headers),
            kind: reason.kind.as_str(),
            reason: &reason.detail,
            stream,
            sequence: seq,
            subject: msg.subject.as_str(),
            deliveries,
            record: None,
        };
        dead::publish(js, &letter, msg.payload.clone())
            .await
            .map_err(|e| anyhow::anyhow!("message {seq}: {e}"))?;
        match s.delete_message(seq).await {
            Ok(_) => out.moved += 1,
            // Acknowledged meanwhile: its copy in DEAD is one replay would
            // store again under the same id (a duplicate within the window).
            Err(e) if e.to_string().contains("no message found") => out.gone += 1,
            Err(e) => anyhow::bail!("message {seq} is in DEAD but not deleted from {stream}: {e}"),
        }
    }
    Ok(out)
}
