//! The frames this hamster process published recently, by RAW id.
//!
//! A frame whose records are stored in PARSED and whose RAW ack was then
//! lost (an election, a restart of the nodes, a dropped connection) comes
//! back. Publishing it again is normally harmless — the same ids, and
//! PARSED drops the duplicate — but PARSED's duplicate detection only
//! remembers the messages it still stores once its nodes restarted, and
//! PARSED is an interest stream: what the monkeys consumed is gone. So a
//! frame that comes back to the process that published it is recognised
//! here and not published again. (One that comes back to another process,
//! after this one died, still relies on PARSED's duplicate window:
//! docs/reliability.md.)

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use xxhash_rust::xxh3::xxh3_128;

/// Frames remembered (16 bytes each, twice: about 32 MB at most).
const CAPACITY: usize = 1 << 20;

#[derive(Default)]
pub struct Published {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    order: VecDeque<u128>,
    set: HashSet<u128>,
}

impl Published {
    /// Remembers that every record of frame `raw_id` is stored in PARSED.
    pub fn insert(&self, raw_id: &str) {
        let key = xxh3_128(raw_id.as_bytes());
        let mut s = self.inner.lock().unwrap();
        if s.set.insert(key) {
            s.order.push_back(key);
            if s.order.len() > CAPACITY {
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
    fn remembers_what_it_published_up_to_its_capacity() {
        let p = Published::default();
        assert!(!p.contains("a"));
        p.insert("a");
        p.insert("a");
        assert!(p.contains("a"));
        assert!(!p.contains("b"));
        for i in 0..CAPACITY {
            p.insert(&i.to_string());
        }
        assert!(!p.contains("a"), "the oldest is forgotten");
        assert!(p.contains("0"));
    }
}
