//! One connection per device on a gateway: when a second connection names
//! a device that already has one, the newer wins and the older is closed
//! (`replaced`). A tracker that lost its link often reconnects before the
//! gateway noticed the old socket was dead; the old one must not linger
//! until its idle timeout, and two connections of one device must not
//! interleave its frames. The older connection still finishes what it had
//! in flight (its stored frames are acknowledged), and reads nothing more.
//!
//! Per gateway only: a device that moved to another gateway leaves its old
//! connection to that gateway's timeouts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The connections holding each device.
#[derive(Default)]
pub struct Claims {
    held: Arc<Mutex<HashMap<String, (u64, CancellationToken)>>>,
    next: AtomicU64,
}

/// A connection's hold on its device; let go when dropped.
pub struct Claim {
    device: String,
    id: u64,
    held: Arc<Mutex<HashMap<String, (u64, CancellationToken)>>>,
}

impl Claims {
    /// Makes the connection whose `replaced` token this is the device's;
    /// the previous holder's token is cancelled. Whether there was one.
    pub fn claim(&self, device: &str, replaced: CancellationToken) -> (Claim, bool) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let previous = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device.to_string(), (id, replaced));
        let had = previous.map(|(_, older)| older.cancel()).is_some();
        let claim = Claim {
            device: device.to_string(),
            id,
            held: self.held.clone(),
        };
        (claim, had)
    }

    /// Devices with a connection.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        // Only its own: a newer connection's claim stays.
        if held.get(&self.device).is_some_and(|(id, _)| *id == self.id) {
            held.remove(&self.device);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_connection_wins_and_the_older_letting_go_leaves_it() {
        let claims = Claims::default();
        let (a, b) = (CancellationToken::new(), CancellationToken::new());
        let (first, had) = claims.claim("356307042441013", a.clone());
        assert!(!had && !a.is_cancelled());
        let (second, had) = claims.claim("356307042441013", b.clone());
        assert!(had && a.is_cancelled() && !b.is_cancelled());
        // The older one closes: the newer still holds the device.
        drop(first);
        assert_eq!(claims.len(), 1);
        let (_other, had) = claims.claim("356307042441014", CancellationToken::new());
        assert!(!had);
        drop(second);
        assert_eq!(claims.len(), 1, "only the other device");
    }
}
