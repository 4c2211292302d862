//! The pull worker: one actor that batch-pulls from a shared durable
//! consumer and hands each message to a [`Handler`], which makes every side
//! effect durable before it acknowledges. Messages of different subjects
//! (devices) are handled concurrently, each as soon as it arrives; those of
//! one subject in stream order: the messages of a subject that arrive while
//! it is busy wait and go together as its next run
//! ([`Handler::handle_run`], where a handler can merge the side effects of
//! a device's messages), then one by one for whatever the run did not
//! finish.
//!
//! Nothing is acknowledged early: what a worker holds when it dies (a
//! panic, a kill -9 of the process) is redelivered by JetStream after the
//! consumer's ack wait, to whichever worker pulls next. Because a worker
//! handles its whole batch inside one actor message, a stop (graceful
//! shutdown) takes effect between batches: every message it pulled is
//! finished and acknowledged first.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};

use crate::stats::Stats;
use crate::supervisor::WorkerFactory;

/// Why a handler could not finish a message.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth retrying (a publish or a store failed): the worker retries in
    /// place for a while, then hands the message back (nak with the
    /// consumer's backoff).
    #[error("{0}")]
    Retry(String),
    /// Can never succeed (a frame no parser accepts, …): to DEAD.
    #[error("{0}")]
    Dead(String),
}

/// What a worker does with one message. `handle` acknowledges the message
/// only once everything it did is durable, and must be idempotent: a
/// message can come again after a crash. `dead_letter` publishes it to
/// DEAD with the reason, waits for the PubAck, then terminates it.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        msg: &jetstream::Message,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    fn dead_letter(
        &self,
        msg: &jetstream::Message,
        reason: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Handles messages of one subject (first deliveries, in stream order)
    /// together, with the same guarantees as [`Handler::handle`] for each.
    /// Returns how many leading messages are done and acknowledged. The
    /// worker hands the next one alone to `handle` (it is what stopped the
    /// run) and makes another run of the rest; when none is done (the run
    /// failed), all go to `handle` one by one. Any of them may be handled a
    /// second time that way. By default none: all go one by one.
    fn handle_run(&self, msgs: &[jetstream::Message]) -> impl Future<Output = usize> + Send {
        let _ = msgs;
        async { 0 }
    }
}

/// How workers pull (user settings: `[hamster.pull]`, `[monkey.pull]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullConfig {
    /// Messages per pull request.
    pub batch: usize,
    /// How long a pull request waits for messages, milliseconds.
    pub expires_ms: u64,
    /// How long a worker retries a failing message itself (telling the
    /// server it is still working on it) before handing it back, milliseconds.
    pub retry_in_place_ms: u64,
    /// How long pulls may keep failing (cluster unreachable, elections)
    /// before the worker gives up and lets its supervisor restart it, seconds.
    pub pull_failure_grace_secs: u64,
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            batch: 64,
            expires_ms: 2_000,
            retry_in_place_ms: 5_000,
            pull_failure_grace_secs: 30,
        }
    }
}

/// When to give up on a message: from the consumer's settings and the role's.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// A message delivered more often than this (it keeps crashing or
    /// stalling workers, or keeps failing) goes to DEAD without being
    /// handled again.
    pub poison_after: i64,
    /// The consumer's `max_deliver`: still failing at that delivery, a
    /// message goes to DEAD.
    pub max_deliver: i64,
    /// The consumer's backoff: the delay asked for when handing a message
    /// back after its n-th delivery (the last step repeats).
    pub backoff: Vec<Duration>,
}

impl Policy {
    /// The redelivery delay after delivery `delivered` (1-based).
    pub fn delay(&self, delivered: i64) -> Duration {
        let i = usize::try_from(delivered.max(1) - 1).unwrap_or(0);
        self.backoff
            .get(i)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// The pull worker actor.
pub struct Worker<H>(std::marker::PhantomData<H>);

pub struct WorkerArgs<H> {
    pub consumer: PullConsumer,
    pub handler: Arc<H>,
    pub stats: Arc<Stats>,
    pub config: PullConfig,
    pub policy: Policy,
    pub index: usize,
}

pub struct WorkerState<H> {
    args: WorkerArgs<H>,
    failing_since: Option<Instant>,
}

/// Pull the next batch.
pub struct Pull;

impl<H: Handler> Actor for Worker<H> {
    type Msg = Pull;
    type State = WorkerState<H>;
    type Arguments = WorkerArgs<H>;

    /// Cheap on purpose: no I/O (a panic here is not supervised).
    async fn pre_start(
        &self,
        myself: ActorRef<Pull>,
        args: WorkerArgs<H>,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_message(Pull)?;
        Ok(WorkerState {
            args,
            failing_since: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Pull>,
        _: Pull,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let a = &state.args;
        match pull_batch(a).await {
            Ok(()) => state.failing_since = None,
            Err(e) => {
                a.stats.error();
                let since = *state.failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(a.config.pull_failure_grace_secs) {
                    return Err(format!("pulling has failed for {:?}: {e}", since.elapsed()).into());
                }
                tracing::warn!(worker = a.index, "pull failed, trying again: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        myself.send_message(Pull)?;
        Ok(())
    }
}

async fn pull_batch<H: Handler>(a: &WorkerArgs<H>) -> Result<(), async_nats::Error> {
    let mut batch = a
        .consumer
        .batch()
        .max_messages(a.config.batch.max(1))
        .expires(Duration::from_millis(a.config.expires_ms.max(100)))
        .messages()
        .await?;
    // Each message is started as soon as it arrives, unless a message of
    // its subject (device) is still being handled: then it waits, with any
    // others of that subject, and they go as the subject's next run. So a
    // device's messages keep their order, no message waits for another
    // device's slow one, and the busier a device, the larger its runs.
    let mut waiting: HashMap<String, Vec<jetstream::Message>> = HashMap::new();
    let mut running = FuturesUnordered::new();
    let (mut open, mut failed) = (true, None);
    loop {
        tokio::select! {
            next = batch.next(), if open => match next {
                Some(Ok(msg)) => {
                    let subject = msg.subject.to_string();
                    match waiting.get_mut(&subject) {
                        Some(queued) => queued.push(msg),
                        None => {
                            waiting.insert(subject.clone(), Vec::new());
                            running.push(subject_run(a, subject, vec![msg]));
                        }
                    }
                }
                Some(Err(e)) => {
                    failed = Some(e);
                    open = false;
                }
                None => open = false,
            },
            Some(subject) = running.next() => {
                let queued = waiting.get_mut(&subject).map(std::mem::take).unwrap_or_default();
                if queued.is_empty() {
                    waiting.remove(&subject);
                } else {
                    running.push(subject_run(a, subject, queued));
                }
            }
            else => break,
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Messages of one subject, in order: in runs where it can, one by one
/// where it must. Returns the subject.
async fn subject_run<H: Handler>(
    a: &WorkerArgs<H>,
    subject: String,
    msgs: Vec<jetstream::Message>,
) -> String {
    let mut rest = &msgs[..];
    while !rest.is_empty() {
        match run(a, rest).await {
            // The run failed: the handler may be in trouble (its store
            // down), so the rest goes one by one, with its retries.
            Some(0) => {
                for msg in rest {
                    one(a, msg).await;
                }
                return subject;
            }
            Some(done) => rest = &rest[done..],
            None => {}
        }
        // What stopped the run (or did not start one) goes alone.
        if let Some((first, others)) = rest.split_first() {
            one(a, first).await;
            rest = others;
        }
    }
    subject
}

/// Handles the leading first deliveries of `msgs` as one run; returns how
/// many are done, or `None` when there is no run to make (fewer than two).
/// A redelivered message (it failed, or a worker died holding it) is
/// handled on its own by [`one`], so it cannot take others down with it.
async fn run<H: Handler>(a: &WorkerArgs<H>, msgs: &[jetstream::Message]) -> Option<usize> {
    let first = msgs
        .iter()
        .take_while(|m| m.info().map(|i| i.delivered).unwrap_or(1) == 1)
        .count();
    if first < 2 {
        return None;
    }
    let done = a.handler.handle_run(&msgs[..first]).await.min(first);
    for _ in &msgs[..done] {
        a.stats.processed();
    }
    Some(done)
}

/// Handles one message to its end: done, dead, or handed back.
async fn one<H: Handler>(a: &WorkerArgs<H>, msg: &jetstream::Message) {
    let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
    if delivered > 1 {
        a.stats.redelivered();
    }
    let reason = if delivered > a.policy.poison_after {
        format!(
            "delivered {delivered} times without being acknowledged (it keeps failing or \
             crashing workers); not handled again"
        )
    } else {
        let started = Instant::now();
        let budget = Duration::from_millis(a.config.retry_in_place_ms);
        let mut pause = Duration::from_millis(100);
        loop {
            match a.handler.handle(msg).await {
                Ok(()) => {
                    a.stats.processed();
                    return;
                }
                Err(HandleError::Dead(why)) => break why,
                Err(HandleError::Retry(why)) => {
                    a.stats.error();
                    if started.elapsed() + pause <= budget {
                        tracing::debug!(subject = %msg.subject, "retrying in place: {why}");
                        // Still working on it: restart the server's ack timer.
                        let _ = msg.ack_with(AckKind::Progress).await;
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                        continue;
                    }
                    if delivered < a.policy.max_deliver {
                        let delay = a.policy.delay(delivered);
                        tracing::warn!(subject = %msg.subject, delivered, ?delay, "handing back: {why}");
                        let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
                        return;
                    }
                    break format!("still failing at the last delivery ({delivered}): {why}");
                }
            }
        }
    };
    match a.handler.dead_letter(msg, &reason).await {
        Ok(()) => {
            a.stats.processed();
            a.stats.dead();
        }
        Err(e) => {
            // Handed back; at the last delivery the max-deliveries
            // advisory moves it later.
            a.stats.error();
            tracing::warn!(subject = %msg.subject, "dead-lettering failed: {e}");
            let _ = msg
                .ack_with(AckKind::Nak(Some(a.policy.delay(delivered))))
                .await;
        }
    }
}

/// Makes [`Worker`]s of one handler on one consumer, for a [`crate::Supervisor`].
pub struct PullWorkers<H> {
    pub consumer: PullConsumer,
    pub handler: Arc<H>,
    pub stats: Arc<Stats>,
    pub config: PullConfig,
    pub policy: Policy,
}

impl<H: Handler> WorkerFactory for PullWorkers<H> {
    type Worker = Worker<H>;
    fn make(&self, index: usize) -> (Worker<H>, WorkerArgs<H>) {
        (
            Worker(std::marker::PhantomData),
            WorkerArgs {
                consumer: self.consumer.clone(),
                handler: self.handler.clone(),
                stats: self.stats.clone(),
                config: self.config.clone(),
                policy: self.policy.clone(),
                index,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_back_delays_follow_the_consumer_backoff() {
        let p = Policy {
            poison_after: 3,
            max_deliver: 5,
            backoff: vec![Duration::from_secs(10), Duration::from_secs(30)],
        };
        assert_eq!(p.delay(1), Duration::from_secs(10));
        assert_eq!(p.delay(2), Duration::from_secs(30));
        assert_eq!(p.delay(7), Duration::from_secs(30), "the last step repeats");
        assert_eq!(p.delay(0), Duration::from_secs(10));
        let none = Policy {
            backoff: Vec::new(),
            ..p
        };
        assert_eq!(none.delay(3), Duration::from_secs(1));
    }
}
