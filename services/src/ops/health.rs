//! Liveness and readiness, as load balancers and orchestrators read them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared readiness state. `/healthz` answers 200 while the process runs;
/// `/readyz` answers 200 only while [`Health::set_ready`] says so and no
/// drain has begun, so traffic moves away *before* a process stops
/// accepting work.
#[derive(Clone, Debug, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    ready: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    /// Readiness turns off for good: the process is shutting down.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst) && !self.is_draining()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_wins_over_ready() {
        let h = Health::new();
        assert!(!h.is_ready());
        h.set_ready(true);
        assert!(h.is_ready());
        h.start_draining();
        assert!(!h.is_ready());
        h.set_ready(true);
        assert!(
            !h.is_ready(),
            "a draining process never becomes ready again"
        );
    }
}
