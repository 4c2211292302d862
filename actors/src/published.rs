//! The frames this hamster process published recently, by RAW id.
//!
//! A frame whose records are stored in PARSED and whose RAW ack was then
//! lost (an election, a restart of the nodes, a dropped connection) comes
//! back. Publishing it again is normally harmless — the same ids, and
//! PARSED drops the duplicate — but PARSED's duplicate detection only
//! remembers the messages it still stores once its nodes restarted, and
//! what the monkeys consumed is swept from PARSED (actors/src/janitor.rs). So a
//! frame that comes back to the process that published it is recognised
//! here and not published again. (One that comes back to another process,
//! after this one died, still relies on PARSED's duplicate window:
//! docs/reliability.md.)

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use xxhash_rust::xxh3::xxh3_128;

/// Frames remembered (16 bytes each, twice: about 32 MB at most).
const CAPACITY: usize = 1 << 20;

pub struct Published {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Default)]
struct Inner {
    order: VecDeque<u128>,
    set: HashSet<u128>,
}

/// Remembers the last 2^20 frames (about 32 MB at most).
impl Default for Published {
    fn default() -> Self {
        Published::with_capacity(CAPACITY)
    }
}

impl Published {
    /// Remembers the last `capacity` frames (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Published {
            inner: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers that every record of frame `raw_id` is stored in PARSED.
    pub fn insert(&self, raw_id: &str) {
        let key = xxh3_128(raw_id.as_bytes());
        let mut s = self.inner.lock().unwrap();
        if s.set.insert(key) {
            s.order.push_back(key);
            if s.order.len() > self.capacity {
                if let Some(old) = s.order.pop_front() {
                    s.set.remove(&old);
                }
            }
        }
    }

    pub fn contains(&self, raw_id: &str) -> bool {
        let key = xxh3_128(raw_id.as_bytes());
        self.inner.lock().unwrap().set.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_capacity_frames_by_default() {
        assert_eq!(Published::default().capacity, CAPACITY);
    }
}
