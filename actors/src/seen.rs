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

use std::collections::HashMap;
use std::sync::Mutex;

use async_nats::jetstream::kv;
use fleetbus_codec::identity::{owner_tag, Memory};
use fleetbus_wire::names::seen_key;

use crate::outcome::{Downstream, DownstreamKind};

/// How much of the devices' memories a process caches (their stored
/// size); past it the cache starts over.
const CACHE_BYTES: usize = 32 << 20;

/// See the module documentation.
pub struct Seen {
    kv: kv::Store,
    /// Identities remembered per device.
    cap: usize,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, (u64, Memory)>,
    bytes: usize,
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
            cache: Mutex::new(Cache::default()),
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
        let ids: Vec<u64> = identities.iter().flatten().copied().collect();
        if ids.is_empty() {
            return Ok((vec![true; identities.len()], Claimed::default()));
        }
        let key = seen_key(protocol, device);
        let owner = owner_tag(raw_id);
        let mut counts = Claimed::default();
        let mut cached = self.cache.lock().unwrap().take(&key);
        for _ in 0..32 {
            let (revision, mut memory) = match cached.take() {
                Some(c) => c,
                None => {
                    counts.reads += 1;
                    self.read(&key).await?
                }
            };
            let claim = memory.claim(owner, &ids, self.cap);
            let revision = if claim.changed {
                match self.write(&key, revision, &memory).await? {
                    Some(r) => r,
                    // Another hamster wrote first: read again, decide again.
                    None => continue,
                }
            } else {
                revision
            };
            self.remember(key, revision, memory);
            let mut carried = claim.carry.into_iter();
            let carry: Vec<bool> = identities
                .iter()
                .map(|id| id.is_none() || carried.next().unwrap_or(true))
                .collect();
            counts.duplicates = carry.iter().filter(|c| !**c).count();
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
        self.cache.lock().unwrap().put(key, revision, memory);
    }
}

impl Cache {
    fn take(&mut self, key: &str) -> Option<(u64, Memory)> {
        let entry = self.entries.remove(key)?;
        self.bytes = self.bytes.saturating_sub(size(key, &entry.1));
        Some(entry)
    }

    fn put(&mut self, key: String, revision: u64, memory: Memory) {
        let bytes = size(&key, &memory);
        if self.bytes + bytes > CACHE_BYTES {
            // Crude but bounded: a full cache starts over.
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += bytes;
        if let Some(old) = self.entries.insert(key.clone(), (revision, memory)) {
            self.bytes = self.bytes.saturating_sub(size(&key, &old.1));
        }
    }
}

/// What a cached memory costs, roughly.
fn size(key: &str, memory: &Memory) -> usize {
    key.len() + 64 + memory.len() * 14
}
