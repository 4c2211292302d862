//! Keeps a gateway's in-memory copy of the device registry current.
//!
//! The copy is fed by a key-value watch, which async-nats builds on an
//! ordered consumer: R1, in memory, on one node of the registry's three.
//! When that node dies the client recreates the consumer under a fixed
//! name, and the cluster may place it on the dead node again — a kill -9 is
//! not known as "offline" to the placement for minutes — so the watch can
//! stay silent while the registry moves on, and the gateway would admit by
//! a stale copy for good. Waiting on the client is therefore not enough:
//! every [`CHECK_EVERY`] the copy compares the revision it has applied
//! with the registry's last sequence (fresh stream info; `Store::status`
//! is a cached one), and behind at two checks in a row with nothing
//! applied between means the watch is dropped and a new one (a new
//! consumer, placed anew) resumes after the last revision applied.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use fleetbus_wire::registry::KnownDevice;
use futures::StreamExt;

use super::admission::{apply, Admission};

/// How often the watch is checked against the registry itself.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Keeps `admission`'s copy of `registry` current for as long as it runs:
/// reads it whole, then follows it. When the watch fails or stalls, a new
/// one resumes after the last revision applied (the copy serves
/// meanwhile); a resumed watch that stalls too reads the registry whole
/// again and swaps the new copy in once it is complete.
pub async fn follow(registry: kv::Store, admission: Arc<Admission>) {
    let mut copy = Followed::default();
    let mut pause = FIRST_PAUSE;
    loop {
        let before = copy.complete_at;
        let Err(err) = follow_once(&registry, &admission, &mut copy).await;
        // A watch that moved the copy on before it failed was working: its
        // failure is a new one, retried soon, not the next of a series.
        if copy.complete_at != before {
            pause = FIRST_PAUSE;
        }
        tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64,
            resume_after = copy.complete_at,
            "Following the device registry failed; watching it again.");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LAST_PAUSE);
    }
}

/// The wait before watching again after a failure, doubled per failure in
/// a row up to [`LAST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LAST_PAUSE: Duration = Duration::from_secs(5);

/// What the gateway's copy reflects, across watches.
#[derive(Debug, Default)]
struct Followed {
    /// The registry revision a complete copy reflects; `None` until the
    /// first full read is in, and after a resume failed (read whole again).
    complete_at: Option<u64>,
}

/// The registry's own position: fresh stream info.
struct Position {
    messages: u64,
    last_sequence: u64,
}

async fn position(registry: &kv::Store) -> anyhow::Result<Position> {
    let info = registry.stream.get_info().await?;
    Ok(Position {
        messages: info.state.messages,
        last_sequence: info.state.last_sequence,
    })
}

/// Judges, one check at a time, whether a watch has stalled.
#[derive(Debug, Default)]
struct Stall {
    /// The revision applied at the last check, if the watch was behind.
    behind_at: Option<u64>,
}

impl Stall {
    /// `true` when the watch was behind at the last check and is still
    /// behind without having applied anything since.
    fn check(&mut self, applied: u64, registry: &Position) -> bool {
        // A registry purged whole keeps its last sequence and has nothing
        // the watch could deliver.
        let behind = registry.messages > 0 && registry.last_sequence > applied;
        let stalled = behind && self.behind_at == Some(applied);
        self.behind_at = behind.then_some(applied);
        stalled
    }
}

async fn follow_once(
    registry: &kv::Store,
    admission: &Admission,
    copy: &mut Followed,
) -> anyhow::Result<Infallible> {
    let at_start = position(registry).await?;
    // Resume only where the registry still has what follows (a bucket
    // deleted and made again starts its sequence over).
    let resume = copy
        .complete_at
        .filter(|rev| *rev <= at_start.last_sequence);
    let mut watch = match resume {
        Some(rev) => registry.watch_all_from_revision(rev + 1).await?,
        None => registry.watch_with_history(">").await?,
    };
    let mut building: Option<HashMap<String, KnownDevice>> = match resume {
        Some(_) => None,
        None if at_start.messages == 0 => {
            admission.replace(HashMap::new());
            copy.complete_at = Some(at_start.last_sequence);
            tracing::info!(devices = 0, "The device registry is read (empty).");
            None
        }
        None => Some(HashMap::new()),
    };
    let mut applied = copy.complete_at.unwrap_or(0);
    let mut delivered = false;
    let mut stall = Stall::default();
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    loop {
        let entry = tokio::select! {
            entry = watch.next() => entry,
            _ = check.tick() => {
                // Unknown during an election: judged at the next check.
                let Ok(now) = position(registry).await else { continue };
                if stall.check(applied, &now) {
                    if resume.is_some() && !delivered {
                        // A resumed watch that never delivered: read whole.
                        copy.complete_at = None;
                    }
                    anyhow::bail!(
                        "the registry watch stalled at revision {applied} while the registry is at {}",
                        now.last_sequence
                    );
                }
                continue;
            }
        };
        let Some(entry) = entry else { break };
        let entry = entry?;
        delivered = true;
        applied = applied.max(entry.revision);
        match building.as_mut() {
            Some(partial) => {
                apply(partial, &entry);
                if entry.delta == 0 {
                    let done = building.take().unwrap_or_default();
                    let devices = done.len();
                    admission.replace(done);
                    // Everything stored when the read began is in the copy,
                    // also a last sequence whose message is gone.
                    applied = applied.max(at_start.last_sequence);
                    tracing::info!(devices, revision = applied, "The device registry is read.");
                }
            }
            None => admission.apply(&entry),
        }
        if building.is_none() {
            copy.complete_at = Some(applied);
        }
    }
    anyhow::bail!("the registry watch ended")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(messages: u64, last_sequence: u64) -> Position {
        Position {
            messages,
            last_sequence,
        }
    }

    #[test]
    fn a_watch_behind_twice_without_progress_has_stalled() {
        let mut stall = Stall::default();
        assert!(!stall.check(4, &at(3, 6)), "behind once is a delay");
        assert!(stall.check(4, &at(3, 6)));
    }

    #[test]
    fn a_watch_that_moves_or_catches_up_has_not_stalled() {
        let mut stall = Stall::default();
        assert!(!stall.check(4, &at(3, 6)));
        assert!(!stall.check(5, &at(3, 6)), "it applied something");
        assert!(!stall.check(6, &at(3, 6)), "it caught up");
        assert!(!stall.check(6, &at(3, 6)));
    }

    #[test]
    fn a_purged_registry_is_not_a_stall() {
        let mut stall = Stall::default();
        assert!(!stall.check(4, &at(0, 9)));
        assert!(!stall.check(4, &at(0, 9)));
    }
}
