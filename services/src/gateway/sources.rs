//! Limits per source address: how many connections one address may hold,
//! how fast it may open them, and how many UDP messages it may have handled
//! a second. They keep one host (or one spoofed address) from taking what
//! every device shares — the connection slots, the accept loop, the UDP
//! budget — and bound the replies a spoofed datagram can draw at a victim.
//!
//! The rates are GCRA token buckets from the `governor` crate. Its keyed
//! limiter keeps one entry per key in a map, which a flood of spoofed UDP
//! sources would grow without bound; here the state lives in a fixed table
//! instead ([`Slots`]): an address's bucket is one of [`SLOTS`] slots chosen
//! by a hash keyed with a secret of this process. Two addresses that share
//! a slot share a bucket, which can only make their limit stricter, never
//! looser, and an attacker cannot pick a victim's slot without the secret.
//! Open connections are counted exactly: an address has an entry only
//! while it holds a connection, so the map is bounded by `max_connections`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

/// Buckets in a rate table (8 bytes each).
pub const SLOTS: usize = 16_384;

/// A fixed table of GCRA states indexed by a keyed hash of the address.
#[derive(Debug)]
pub struct Slots {
    hasher: RandomState,
    slots: Box<[AtomicU64]>,
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            hasher: RandomState::new(),
            slots: (0..n.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl StateStore for Slots {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let slot = &self.slots[self.hasher.hash_one(key) as usize % self.slots.len()];
        // 0 is "never used" (governor's own in-memory state does the same).
        let decode = |v: u64| (v != 0).then(|| Nanos::from(v));
        let mut prev = slot.load(Ordering::Acquire);
        loop {
            let (result, next) = f(decode(prev))?;
            match slot.compare_exchange_weak(
                prev,
                next.into(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(result),
                Err(actual) => prev = actual,
            }
        }
    }
}

/// A rate per source address: `per_second` on average, bursts of
/// `burst_secs` seconds' worth. A rate of 0 is no limit.
pub struct SourceRate<C: Clock = DefaultClock> {
    limiter: Option<RateLimiter<IpAddr, Slots, C, NoOpMiddleware<C::Instant>>>,
}

impl SourceRate {
    pub fn new(per_second: u32, burst_secs: u32) -> SourceRate {
        SourceRate::with_clock(per_second, burst_secs, DefaultClock::default())
    }
}

impl<C: Clock> SourceRate<C> {
    fn with_clock(per_second: u32, burst_secs: u32, clock: C) -> SourceRate<C> {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::new(burst_secs.max(1)).unwrap());
            RateLimiter::new(
                Quota::per_second(rate).allow_burst(burst),
                Slots::new(SLOTS),
                clock,
            )
        });
        SourceRate { limiter }
    }

    /// Takes `n` from `source`'s bucket if it holds that many.
    pub fn allow(&self, source: IpAddr, n: usize) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        let n = NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        // More than a whole burst can never pass (`InsufficientCapacity`).
        matches!(limiter.check_key_n(&source, n), Ok(Ok(())))
    }
}

/// Open connections per source address, at most `max` each (0: no limit).
#[derive(Clone)]
pub struct SourceConnections {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection counted against its address; uncounted when dropped.
pub struct Held {
    source: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl SourceConnections {
    pub fn new(max: usize) -> SourceConnections {
        SourceConnections {
            max,
            open: Arc::default(),
        }
    }

    /// Counts a new connection from `source`, unless it holds `max` already.
    pub fn hold(&self, source: IpAddr) -> Option<Held> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(source).or_insert(0);
        // `max` > 0 here means `count` is too, so no empty entry stays.
        if self.max > 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Held {
            source,
            open: self.open.clone(),
        })
    }

    /// Addresses holding at least one connection.
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate_and_others_are_untouched() {
        let clock = FakeRelativeClock::default();
        let rate = SourceRate::with_clock(10, 2, clock.clone());
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!((0..20).all(|_| rate.allow(a, 1)), "a burst of 2 s worth");
        assert!(!rate.allow(a, 1));
        assert!(rate.allow(b, 16), "another address has its own bucket");
        clock.advance(Duration::from_millis(300));
        assert!(rate.allow(a, 3));
        assert!(!rate.allow(a, 1));
        // More than a whole burst at once never passes.
        clock.advance(Duration::from_secs(60));
        assert!(!rate.allow(a, 21));
        assert!(rate.allow(a, 20));
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let rate = SourceRate::new(0, 1);
        assert!((0..100_000).all(|_| rate.allow(ip("::1"), 16)));
    }

    #[test]
    fn colliding_addresses_share_a_bucket_and_are_only_limited_more() {
        // One slot: every address collides.
        let clock = FakeRelativeClock::default();
        let rate = SourceRate {
            limiter: Some(RateLimiter::new(
                Quota::per_second(NonZeroU32::new(5).unwrap()),
                Slots::new(1),
                clock,
            )),
        };
        assert!(rate.allow(ip("10.0.0.1"), 3));
        assert!(rate.allow(ip("10.0.0.2"), 2));
        assert!(!rate.allow(ip("10.0.0.3"), 1));
    }

    #[test]
    fn connections_are_counted_per_address_and_released_on_drop() {
        let conns = SourceConnections::new(2);
        let (a, b) = (ip("198.51.100.7"), ip("198.51.100.8"));
        let first = conns.hold(a).unwrap();
        let second = conns.hold(a).unwrap();
        assert!(conns.hold(a).is_none(), "a third from one address");
        let other = conns.hold(b).unwrap();
        drop(first);
        let third = conns.hold(a).unwrap();
        drop((second, third, other));
        assert_eq!(conns.sources(), 0, "no entry is left behind");
        assert!(SourceConnections::new(0).hold(a).is_some());
    }
}
