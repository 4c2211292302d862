//! One worker at a time per subject (device), across the workers of a
//! process.
//!
//! A worker handles the messages of one subject in stream order, but two
//! workers of a process can each hold messages of the same device, pulled
//! in two batches: then they race, and the later messages may be done
//! first. That matters where order matters — a hamster that publishes a
//! device's later frames to PARSED before its earlier ones makes the
//! monkeys see those as late fixes, which raise no ignition or overspeed
//! transition — and it grows with every message held for back-pressure,
//! since a hold keeps whole batches waiting. So a worker takes its
//! subject's lock before handling its messages; the other worker's messages
//! of that device wait (reported in progress) and go after, in the order
//! the workers asked. (Across processes there is no such lock: see
//! docs/reliability.md, "Ordering".)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as Lock, OwnedMutexGuard};

#[derive(Default)]
pub struct Subjects {
    locks: Mutex<HashMap<String, Arc<Lock<()>>>>,
}

/// A subject held by one worker; dropping it lets the next one in.
pub struct SubjectGuard<'a> {
    subjects: &'a Subjects,
    subject: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Subjects {
    /// Waits until no other worker of the process handles `subject`.
    /// Waiters are let in in the order they asked.
    pub async fn lock(&self, subject: &str) -> SubjectGuard<'_> {
        let lock = self
            .locks
            .lock()
            .unwrap()
            .entry(subject.to_string())
            .or_default()
            .clone();
        let guard = lock.lock_owned().await;
        SubjectGuard {
            subjects: self,
            subject: subject.to_string(),
            guard: Some(guard),
        }
    }

    /// Subjects someone holds or waits for.
    pub fn len(&self) -> usize {
        self.locks.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for SubjectGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.subjects.locks.lock().unwrap();
        // Forget a subject nobody holds or waits for: the map stays as large
        // as the work in flight, not as the fleet.
        if locks
            .get(&self.subject)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(&self.subject);
        }
    }
}
