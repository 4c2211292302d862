//! Which partitions this process owns, and handing one over.
//!
//! The server pins each partition's durable to the first client that
//! pulls from it, so a process that starts first owns every partition, and
//! one that joins later owns none until some owner goes. A process that
//! owns more than its share ([`fair_share`]) hands one over: its worker
//! lets go of the partition (its buffered messages handed back, the
//! partition unpinned) and stays away for a while, so that the server pins
//! one of the other processes' waiting pulls instead. Done a partition at a
//! time, the stage evens out within a few rounds of the balancer (in
//! `services`), which reads the owners from the durables' state and counts
//! the processes of the stage.
//!
//! Workers record here the pin id the server sent with their partition's
//! messages; the balancer compares it with the durable's pinned client.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One partition's worker, as the balancer sees it.
#[derive(Default)]
struct Slot {
    /// The `Nats-Pin-Id` its messages last came with.
    pin: Option<String>,
    /// Until when it stays away from the partition, after a hand-over.
    away_until: Option<Instant>,
}

/// See the module documentation: one slot per partition of the process.
pub struct Ownership {
    slots: Vec<Mutex<Slot>>,
    /// The partitions the balancer last confirmed this process owns.
    confirmed: Mutex<Vec<usize>>,
}

impl Ownership {
    pub fn new(partitions: usize) -> Ownership {
        Ownership {
            slots: (0..partitions).map(|_| Mutex::default()).collect(),
            confirmed: Mutex::default(),
        }
    }

    /// The balancer found this process owning `partitions`.
    pub fn confirm(&self, partitions: Vec<usize>) {
        *self.confirmed.lock().unwrap() = partitions;
    }

    /// The partitions this process owned at the balancer's last look (an
    /// owner learns it owns a partition from its first message there).
    pub fn confirmed(&self) -> Vec<usize> {
        self.confirmed.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, partition: usize) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[partition % self.slots.len()].lock().unwrap()
    }

    /// A message of `partition` came pinned to this worker with `pin`.
    pub fn pinned(&self, partition: usize, pin: &str) {
        let mut slot = self.slot(partition);
        if slot.pin.as_deref() != Some(pin) {
            slot.pin = Some(pin.to_string());
        }
    }

    /// The worker of `partition` does not own it (any more).
    pub fn lost(&self, partition: usize) {
        self.slot(partition).pin = None;
    }

    /// The pin id `partition`'s messages last came with, if any.
    pub fn pin(&self, partition: usize) -> Option<String> {
        self.slot(partition).pin.clone()
    }

    /// Asks the worker of `partition` to let go of it and stay away for
    /// `away`.
    pub fn hand_over(&self, partition: usize, away: Duration) {
        let mut slot = self.slot(partition);
        slot.away_until = Some(Instant::now() + away);
    }

    /// Until when the worker of `partition` stays away, while it does.
    pub fn away_until(&self, partition: usize) -> Option<Instant> {
        let mut slot = self.slot(partition);
        match slot.away_until {
            Some(until) if until > Instant::now() => Some(until),
            Some(_) => {
                slot.away_until = None;
                None
            }
            None => None,
        }
    }
}

/// How many of `partitions` one of `processes` should own at most: an
/// even share, rounded up (so that every partition has room somewhere).
pub fn fair_share(partitions: usize, processes: usize) -> usize {
    partitions.div_ceil(processes.max(1))
}

/// The partition to hand over when a process owns `owned` and its share
/// is `share`: the last one, while it owns more; none otherwise.
pub fn surplus(owned: &[usize], share: usize) -> Option<usize> {
    (owned.len() > share.max(1))
        .then(|| owned.iter().copied().max())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_even_and_round_up() {
        assert_eq!(fair_share(8, 1), 8);
        assert_eq!(fair_share(8, 2), 4);
        assert_eq!(fair_share(8, 3), 3);
        assert_eq!(fair_share(2, 5), 1);
        assert_eq!(fair_share(8, 0), 8, "no peer seen: this process alone");
    }

    #[test]
    fn only_a_process_over_its_share_hands_one_over() {
        assert_eq!(surplus(&[0, 1, 2, 5, 7], 4), Some(7));
        assert_eq!(surplus(&[0, 1, 2, 3], 4), None);
        assert_eq!(surplus(&[], 4), None);
        // A share of 0 is never asked for: the last partition stays.
        assert_eq!(surplus(&[3], 0), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hand_over_lasts_as_long_as_asked() {
        let o = Ownership::new(2);
        o.pinned(1, "abc");
        assert_eq!(o.pin(1).as_deref(), Some("abc"));
        assert_eq!(o.pin(0), None);
        assert!(o.away_until(1).is_none());
        o.hand_over(1, Duration::from_secs(10));
        assert!(o.away_until(1).is_some());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(o.away_until(1).is_none());
        o.lost(1);
        assert_eq!(o.pin(1), None);
    }
}
