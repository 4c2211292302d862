//! What a process last read or wrote of some key-value entries, with their
//! revisions: a partition's owner is almost always the only writer of its
//! devices' entries, so the value it wrote last is the value stored, and a
//! compare-and-set on the remembered revision needs no read first. When it
//! is not (another process wrote meanwhile: a hand-over, a restart), the
//! compare-and-set fails and the caller reads. The cache is an
//! optimisation only; the compare-and-set keeps it safe.

use std::collections::HashMap;
use std::sync::Mutex;

/// Remembered entries, bounded by their approximate size in bytes.
pub struct Revisions<V> {
    inner: Mutex<Inner<V>>,
    max_bytes: usize,
    size: fn(&str, &V) -> usize,
}

struct Inner<V> {
    entries: HashMap<String, (u64, V)>,
    bytes: usize,
}

impl<V> Revisions<V> {
    /// Remembers at most about `max_bytes`, each entry costing `size`.
    pub fn new(max_bytes: usize, size: fn(&str, &V) -> usize) -> Self {
        Revisions {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                bytes: 0,
            }),
            max_bytes,
            size,
        }
    }

    /// Takes the remembered revision and value of `key` out (the caller
    /// puts back what it writes).
    pub fn take(&self, key: &str) -> Option<(u64, V)> {
        let mut s = self.inner.lock().unwrap();
        let entry = s.entries.remove(key)?;
        s.bytes = s.bytes.saturating_sub((self.size)(key, &entry.1));
        Some(entry)
    }

    /// Remembers `value` at `revision` for `key`.
    pub fn put(&self, key: String, revision: u64, value: V) {
        let bytes = (self.size)(&key, &value);
        let mut s = self.inner.lock().unwrap();
        if s.bytes + bytes > self.max_bytes {
            // Crude but bounded: a full cache starts over.
            s.entries.clear();
            s.bytes = 0;
        }
        s.bytes += bytes;
        if let Some(old) = s.entries.insert(key.clone(), (revision, value)) {
            s.bytes = s.bytes.saturating_sub((self.size)(&key, &old.1));
        }
    }

    /// How many entries are remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_entry_is_gone_until_put_back() {
        let r: Revisions<String> = Revisions::new(1 << 10, |k, v| k.len() + v.len());
        r.put("a".into(), 3, "x".into());
        assert_eq!(r.take("a"), Some((3, "x".to_string())));
        assert_eq!(r.take("a"), None);
    }

    #[test]
    fn a_full_cache_starts_over_and_stays_within_its_bound() {
        let r: Revisions<String> = Revisions::new(10, |k, v| k.len() + v.len());
        r.put("a".into(), 1, "1234".into());
        r.put("b".into(), 1, "1234".into());
        assert_eq!(r.len(), 2);
        r.put("c".into(), 1, "1234".into());
        assert_eq!(r.len(), 1, "over the bound: started over");
        assert_eq!(r.take("c"), Some((1, "1234".to_string())));
        // Replacing an entry does not count it twice.
        for rev in 0..100 {
            r.put("d".into(), rev, "12".into());
        }
        assert_eq!(r.len(), 1);
    }
}
