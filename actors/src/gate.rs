//! The back-pressure gate of one worker process: while some message is
//! held because downstream refuses writes, the process's workers pull
//! nothing new. The held messages are the probes: each is tried again
//! after a pause, and the first that gets through opens the gate for all.
//!
//! The gate also carries the process's stop: a held message is never
//! given up on while the process runs, so a graceful stop must tell the
//! holders to let go (their messages stay unacknowledged and are
//! redelivered after the ack wait). And it carries the process's subject
//! locks ([`Subjects`]): one worker at a time per device.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::outcome::Downstream;
use crate::subjects::Subjects;

#[derive(Default)]
struct State {
    held: usize,
    /// Since when, and why, the gate is closed.
    closed: Option<(Instant, Downstream)>,
}

/// See the module documentation. One per process, shared by its workers.
#[derive(Default)]
pub struct Gate {
    state: Mutex<State>,
    opened: Notify,
    stop: CancellationToken,
    subjects: Subjects,
}

/// How a pause ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The pause ran out.
    Elapsed,
    /// Something got through: try now.
    Opened,
    /// The process is stopping.
    Stopping,
}

/// A message held for back-pressure; dropping it lets go. When the last
/// holder lets go (whatever the reason: done, dead-lettered, its worker
/// died), the gate opens.
pub struct Held {
    gate: Arc<Gate>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut s = self.gate.state.lock().unwrap();
        s.held = s.held.saturating_sub(1);
        if s.held == 0 {
            if let Some((since, _)) = s.closed.take() {
                tracing::info!(
                    blocked_secs = since.elapsed().as_secs(),
                    "No message is held any more; pulling again."
                );
            }
            drop(s);
            self.gate.opened.notify_waiters();
        }
    }
}

/// What the gate looks like now, for the process's stats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateStatus {
    pub held: usize,
    /// Seconds since the gate closed; 0 while open.
    pub blocked_secs: u64,
    /// What refused, while closed.
    pub blocked_by: Option<String>,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// Holds a message that met `why`; closes the gate if it is open.
    pub fn hold(self: &Arc<Self>, why: &Downstream) -> Held {
        let mut s = self.state.lock().unwrap();
        s.held += 1;
        match &mut s.closed {
            Some((_, reason)) => *reason = why.clone(),
            None => {
                tracing::warn!(target = %why.target, kind = why.kind.as_str(),
                    "Downstream refuses writes; holding the messages and pulling no more until it takes them: {why}.");
                s.closed = Some((Instant::now(), why.clone()));
            }
        }
        Held { gate: self.clone() }
    }

    /// A held message was refused again: the gate closes if a success
    /// opened it meanwhile, and says why.
    pub fn refused(&self, why: &Downstream) {
        let mut s = self.state.lock().unwrap();
        match &mut s.closed {
            Some((_, reason)) => *reason = why.clone(),
            None => s.closed = Some((Instant::now(), why.clone())),
        }
    }

    /// A message got through: open the gate and wake every holder to try
    /// again now.
    pub fn passed(&self) {
        let mut s = self.state.lock().unwrap();
        if let Some((since, _)) = s.closed.take() {
            tracing::info!(
                blocked_secs = since.elapsed().as_secs(),
                still_held = s.held,
                "Downstream takes writes again; resuming."
            );
            drop(s);
            self.opened.notify_waiters();
        }
    }

    pub fn is_open(&self) -> bool {
        self.state.lock().unwrap().closed.is_none()
    }

    /// Waits up to `d` for the gate to open (or the process to stop).
    pub async fn pause(&self, d: Duration) -> Woken {
        let opened = self.opened.notified();
        tokio::pin!(opened);
        // Register before checking, so an opening in between is not missed.
        opened.as_mut().enable();
        if self.stop.is_cancelled() {
            return Woken::Stopping;
        }
        tokio::select! {
            _ = self.stop.cancelled() => Woken::Stopping,
            _ = opened => Woken::Opened,
            _ = tokio::time::sleep(d) => Woken::Elapsed,
        }
    }

    /// Tells every holder to let go: the process is stopping.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// The process's subject locks.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    pub fn status(&self) -> GateStatus {
        let s = self.state.lock().unwrap();
        GateStatus {
            held: s.held,
            blocked_secs: s
                .closed
                .as_ref()
                .map(|(since, _)| since.elapsed().as_secs())
                .unwrap_or(0),
            blocked_by: s.closed.as_ref().map(|(_, why)| why.to_string()),
        }
    }
}
