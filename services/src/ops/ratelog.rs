//! Warnings about bad input, rate-limited per reason: a flood of garbage
//! must not turn into a flood of log lines (the metric counts every case).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per key per `every`; the next line says how many were
/// suppressed in between.
#[derive(Debug)]
pub struct RateLimited {
    every: Duration,
    state: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl RateLimited {
    pub fn new(every: Duration) -> RateLimited {
        RateLimited {
            every,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed)` when a line for `key` may be written now (with the
    /// number of lines skipped since the last one), `None` to stay quiet.
    pub fn allow(&self, key: &'static str) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &'static str, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.get_mut(key) {
            Some((last, skipped)) if now.duration_since(*last) < self.every => {
                *skipped += 1;
                None
            }
            Some((last, skipped)) => {
                let n = *skipped;
                *last = now;
                *skipped = 0;
                Some(n)
            }
            None => {
                state.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_per_key_with_the_skipped_count() {
        let r = RateLimited::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(r.allow_at("a", t0), Some(0));
        assert_eq!(r.allow_at("a", t0 + Duration::from_millis(10)), None);
        assert_eq!(r.allow_at("a", t0 + Duration::from_millis(20)), None);
        assert_eq!(r.allow_at("b", t0 + Duration::from_millis(20)), Some(0));
        assert_eq!(r.allow_at("a", t0 + Duration::from_millis(1001)), Some(2));
        assert_eq!(r.allow_at("a", t0 + Duration::from_millis(1002)), None);
    }
}
