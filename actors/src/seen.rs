//! The records each device sent recently, by identity: the key-value
//! bucket `seen`, one entry per device (`<protocol>.<device>`), kept by the
//! hamsters so that a record a device resends in other bytes — re-packed
//! with newer records, re-encoded with a new serial number or send time —
//! is published to PARSED once (docs/reliability.md, "Each record once").
//!
//! For every frame with positions, before anything is published: read the
//! device's [`Memory`], claim the frame's identities for the frame
//! ([`Memory::claim`]), write the memory back with a compare-and-set on the
//! revision read (another hamster wrote first: read again and decide
//! again). The frame then publishes exactly the records it carries. A
//! frame that comes again finds its own claims and carries what it carried
//! the first time, so its republish has the same ids; one that crashed
//! after claiming loses nothing, since its claims send everybody else's
//! copies away and its own redelivery publishes them.
//!
//! Cost: one direct get and one replicated write per frame with positions
//! (docs/performance.md). A per-process cache keeps each device's last
//! memory and revision, so a frame of a device whose previous frame this
//! process handled needs no read; a stale cache only costs a failed
//! compare-and-set and a read.

use async_nats::jetstream::kv;
use fleetbus_codec::identity::{owner_tag, Memory};
use fleetbus_wire::names::seen_key;

use crate::outcome::{Downstream, DownstreamKind};
use crate::revisions::Revisions;

/// How much of the devices' memories a process caches (their stored
/// size); past it the cache starts over.
const CACHE_BYTES: usize = 32 << 20;

/// See the module documentation.
pub struct Seen {
    kv: kv::Store,
    /// Identities remembered per device.
    cap: usize,
    cache: Revisions<Memory>,
}

/// Counts of one claim, for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claimed {
    /// Reads of the bucket it took (0 when the cache was right).
    pub reads: u32,
    /// Records left out: another frame carries them.
    pub duplicates: usize,
}

impl Seen {
    pub fn new(kv: kv::Store, cap: usize) -> Seen {
        Seen {
            kv,
            cap: cap.max(1),
            cache: Revisions::new(CACHE_BYTES, size),
        }
    }

    /// Which of a frame's records (their identities, `None` for records
    /// without one: always carried) frame `raw_id` carries.
    pub async fn claim(
        &self,
        protocol: &str,
        device: &str,
        raw_id: &str,
        identities: &[Option<u64>],
    ) -> Result<(Vec<bool>, Claimed), Downstream> {
        let (mut carry, counts) = self
            .claim_run(protocol, device, &[(raw_id, identities)])
            .await?;
        Ok((carry.pop().unwrap_or_default(), counts))
    }

    /// [`Seen::claim`] for several frames of one device, in stream order,
    /// with one write of its memory for all of them: each frame claims
    /// after the ones before it, exactly as if they came one by one.
    pub async fn claim_run(
        &self,
        protocol: &str,
        device: &str,
        frames: &[(&str, &[Option<u64>])],
    ) -> Result<(Vec<Vec<bool>>, Claimed), Downstream> {
        let all_carried = || {
            frames
                .iter()
                .map(|(_, identities)| vec![true; identities.len()])
                .collect()
        };
        if frames
            .iter()
            .all(|(_, identities)| identities.iter().all(Option::is_none))
        {
            return Ok((all_carried(), Claimed::default()));
        }
        let key = seen_key(protocol, device);
        let mut counts = Claimed::default();
        let mut cached = self.cache.take(&key);
        for _ in 0..32 {
            let (revision, mut memory) = match cached.take() {
                Some(c) => c,
                None => {
                    counts.reads += 1;
                    self.read(&key).await?
                }
            };
            let mut changed = false;
            let carry: Vec<Vec<bool>> = frames
                .iter()
                .map(|(raw_id, identities)| {
                    let ids: Vec<u64> = identities.iter().flatten().copied().collect();
                    if ids.is_empty() {
                        return vec![true; identities.len()];
                    }
                    let claim = memory.claim(owner_tag(raw_id), &ids, self.cap);
                    changed |= claim.changed;
                    let mut carried = claim.carry.into_iter();
                    identities
                        .iter()
                        .map(|id| id.is_none() || carried.next().unwrap_or(true))
                        .collect()
                })
                .collect();
            let revision = if changed {
                match self.write(&key, revision, &memory).await? {
                    Some(r) => r,
                    // Another hamster wrote first: read again, decide again.
                    None => continue,
                }
            } else {
                revision
            };
            self.remember(key, revision, memory);
            counts.duplicates = carry.iter().flatten().filter(|c| !**c).count();
            return Ok((carry, counts));
        }
        Err(Downstream::new(
            "KV seen",
            DownstreamKind::Conflict,
            format!("entry {key}: too many conflicting writers"),
        ))
    }

    /// The stored memory and its revision (0: none yet). An entry that
    /// does not decode is started afresh: that can cost duplicates, never
    /// a record.
    async fn read(&self, key: &str) -> Result<(u64, Memory), Downstream> {
        let entry = self
            .kv
            .entry(key)
            .await
            .map_err(|e| Downstream::other("KV seen", e))?;
        Ok(match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let memory = Memory::decode(&e.value).unwrap_or_else(|err| {
                    tracing::warn!(
                        key,
                        "An identity memory does not decode; starting it afresh: {err}."
                    );
                    Memory::default()
                });
                (e.revision, memory)
            }
            Some(e) => (e.revision, Memory::default()),
            None => (0, Memory::default()),
        })
    }

    /// Compare-and-set; `None` when another writer won.
    async fn write(
        &self,
        key: &str,
        revision: u64,
        memory: &Memory,
    ) -> Result<Option<u64>, Downstream> {
        let value = memory.encode().into();
        if revision == 0 {
            match self.kv.create(key, value).await {
                Ok(r) => Ok(Some(r)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(Downstream::other("KV seen", e)),
            }
        } else {
            match self.kv.update(key, value, revision).await {
                Ok(r) => Ok(Some(r)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                Err(e) => Err(Downstream::other("KV seen", e)),
            }
        }
    }

    fn remember(&self, key: String, revision: u64, memory: Memory) {
        self.cache.put(key, revision, memory);
    }
}

/// What a cached memory costs, roughly.
fn size(key: &str, memory: &Memory) -> usize {
    key.len() + 64 + memory.len() * 14
}
