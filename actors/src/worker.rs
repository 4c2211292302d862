//! The pull worker: one actor per partition of its stage's stream. It
//! pulls continuously from the partition's durable in the priority group
//! [`OWNER_GROUP`]: the server pins the durable to one client, so of all
//! the processes of a stage exactly one gets a partition's messages at a
//! time (the others' pulls wait, and one of them takes over when the
//! owner stops pulling for the durable's pinned TTL or lets go). Each
//! message goes to a [`Handler`]. The handler does the work and says how
//! it went ([`Outcome`]); the worker alone settles the message -
//! acknowledges it, dead-letters it, or keeps it - so no handler can get
//! that wrong. Messages of different subjects (devices) are handled
//! concurrently, each as soon as it arrives; those of one subject in
//! stream order: the messages of a subject that arrive while it is busy
//! wait and go together as its next run ([`Handler::handle_run`], where a
//! handler can merge the side effects of a device's messages), then one by
//! one for whatever the run did not finish.
//!
//! **Back-pressure, not loss.** When something downstream refuses a write
//! ([`Outcome::BackPressure`]), the message is not handed back: a hand-back
//! would use up one of its deliveries, and an outage longer than the
//! redelivery schedule would end in DEAD. The worker keeps it instead,
//! tells the server it is still working on it (so it is not redelivered),
//! closes the process's [`Gate`] so that no worker pulls anything new, and
//! tries it again after a pause. The stage stops; its stream fills; a full
//! RAW makes the gateways stop acknowledging devices, which keep their data.
//! The first held message that gets through opens the gate.
//!
//! **Only a bad message goes to DEAD**: the handler says so
//! ([`Outcome::Dead`]), or it keeps crashing workers. A delivery count is
//! only evidence of crashes now (nothing is handed back): a message
//! delivered more than `poison_after` times is handled alone with panics
//! caught, and a panic then sends it to DEAD; one delivered more than
//! `give_up_after` times (every delivery ended with its worker process
//! dying or stalling) goes to DEAD unhandled. The consumers have no
//! `max_deliver` (docs/streams.md): the server never gives up on a message
//! by itself, so none is ever left stranded.
//!
//! Nothing is acknowledged early: what a worker holds when it dies (a
//! panic, a kill -9 of the process) is redelivered by JetStream after the
//! consumer's ack wait, to whichever worker owns the partition next. The
//! worker works in rounds of at most a second (messages keep arriving in
//! the pull's buffer meanwhile); a stop takes effect between rounds: every
//! message started is finished first, except held ones, which are let go
//! when the gate is stopped. Then the messages still in the buffer are
//! handed back and the partition is unpinned, so another process takes it
//! over at once.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Stream as PullStream;
use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use fleetbus_wire::names::OWNER_GROUP;
use fleetbus_wire::DeadStage;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
// tokio's clock, not std's: the same in production, and tests can pause it.
use tokio::time::Instant;

use crate::gate::{self, Gate, Woken};
use crate::outcome::{DeadKind, DeadReason, Downstream, Outcome};
use crate::ownership::Ownership;
use crate::stats::Stats;
use crate::supervisor::WorkerFactory;

/// What a worker does with its messages. Handlers never acknowledge: they
/// make their outputs durable and return an [`Outcome`]; the worker
/// settles the message. A message can come again after a crash, so
/// handling must be idempotent.
pub trait Handler: Send + Sync + 'static {
    /// Handles one message.
    fn handle(&self, msg: &jetstream::Message) -> impl Future<Output = Outcome> + Send;

    /// Where a message nobody can process goes: the context the worker
    /// publishes its copy to DEAD with (waiting for the PubAck before it
    /// terminates the original), and the stage the message was at.
    fn dead_letters(&self) -> (&jetstream::Context, DeadStage);

    /// Handles messages of one subject (first deliveries, in stream order)
    /// together, with the same guarantees as [`Handler::handle`] for each.
    /// Returns how many leading messages are done (the worker acknowledges
    /// them). The worker hands the next one alone to `handle` (it is what
    /// stopped the run) and makes another run of the rest; when none is
    /// done, all go to `handle` one by one. Any of them may be handled a
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
    /// Messages per pull request: what one partition's worker may have
    /// buffered and in flight at once.
    pub batch: usize,
    /// How long a pull request waits for messages, milliseconds (the
    /// client pulls again before it runs out; an owner that pulls nothing
    /// for its durable's pinned TTL loses the partition). At least 1 s.
    pub expires_ms: u64,
    /// Longest pause between two tries of a message held for
    /// back-pressure, milliseconds (the pauses double from 100 ms).
    pub hold_max_ms: u64,
    /// How long pulls may keep failing (cluster unreachable, elections)
    /// before the worker gives up and lets its supervisor restart it, seconds.
    pub pull_failure_grace_secs: u64,
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            batch: 64,
            expires_ms: 5_000,
            hold_max_ms: 5_000,
            pull_failure_grace_secs: 30,
        }
    }
}

/// When a message counts as bad by its deliveries alone (every delivery
/// is a worker that died or stalled holding it: nothing is handed back).
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// A message delivered more often than this is handled alone, with
    /// panics caught: a panic then sends it to DEAD.
    pub poison_after: i64,
    /// A message delivered more often than this goes to DEAD unhandled.
    pub give_up_after: i64,
    /// The consumer's ack wait: a held message is reported in progress
    /// well within it.
    pub ack_wait: Duration,
}

impl Policy {
    /// How often to tell the server a message is still being worked on.
    fn keepalive(&self) -> Duration {
        (self.ack_wait / 3).max(Duration::from_millis(100))
    }
}

/// The pull worker actor.
pub struct Worker<H>(std::marker::PhantomData<H>);

/// What one worker gets: its process's share, and its own index (its
/// partition's durable is `workers.consumers[index]`).
pub struct WorkerArgs<H> {
    pub workers: PullWorkers<H>,
    pub index: usize,
}

pub struct WorkerState<H> {
    args: WorkerArgs<H>,
    failing_since: Option<Instant>,
    /// The continuous pull, once started.
    pull: Option<Pulling>,
}

/// A continuous pull from the partition's durable, the pin id the server
/// sent its messages with (only an owner unpins), and the messages parked
/// for the next round (at most the durable's `max_ack_pending`: the server
/// delivers no more unacknowledged ones).
struct Pulling {
    stream: PullStream,
    /// The pin id the server last sent this pull's messages with.
    pin: Option<String>,
    /// Delivered while the gate was closed or after a round's end, not
    /// started yet, oldest first.
    parked: Vec<jetstream::Message>,
    /// When the parked messages were last reported in progress.
    progressed: Instant,
    /// The highest consumer sequence this pull received: what the server
    /// delivered here, for a hand-over to wait for what is on its way.
    received: u64,
}

impl Pulling {
    /// Notes a message this pull received.
    fn note(&mut self, msg: &jetstream::Message) {
        if let Some(pin) = pin_of(msg) {
            if self.pin.as_deref() != Some(pin) {
                self.pin = Some(pin.to_string());
            }
        }
        if let Ok(info) = msg.info() {
            self.received = self.received.max(info.consumer_sequence);
        }
    }
}

/// Work one round.
pub struct Pull;

/// How long a round lasts at most: a stop waits for the round to end.
const ROUND: Duration = Duration::from_secs(1);

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
            pull: None,
        })
    }

    /// A stop (or a restart after a crash): the messages the pull buffered
    /// and no round started are handed back, and an owner unpins the
    /// partition, so that the next owner need not wait for the pinned TTL
    /// and the ack wait.
    async fn post_stop(
        &self,
        _: ActorRef<Pull>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(pull) = state.pull.take() {
            let a = &state.args.workers;
            let_go(
                a.handler.dead_letters().0,
                a.consumer(state.args.index),
                pull,
            )
            .await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Pull>,
        _: Pull,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (a, index) = (&state.args.workers, state.args.index);
        // Handing the partition over: let go of it, and pull nothing until
        // another process had the time to take it.
        if let Some(until) = a.ownership.away_until(index) {
            if let Some(pull) = state.pull.take() {
                let_go(a.handler.dead_letters().0, a.consumer(index), pull).await;
                a.ownership.lost(index);
            }
            tokio::time::sleep_until(until.min(Instant::now() + ROUND)).await;
            myself.send_message(Pull)?;
            return Ok(());
        }
        if state.pull.is_none() {
            match start_pull(a.consumer(index), &a.config).await {
                Ok(stream) => {
                    state.pull = Some(Pulling {
                        stream,
                        pin: None,
                        parked: Vec::new(),
                        progressed: Instant::now(),
                        received: 0,
                    })
                }
                Err(e) => {
                    return pull_failed(myself, state, e).await;
                }
            }
        }
        let pull = state.pull.as_mut().expect("started above");
        match pull_round(a, index, pull).await {
            Ok(()) => state.failing_since = None,
            Err(e) => {
                // A pull fails when the process was paused or cut off (the
                // partition may well be another's by now: then it is
                // dropped, and what it held comes back after its ack wait),
                // or it missed a heartbeat on a loaded machine while still
                // the owner: then it lets go as a stop does, since the
                // partition stays pinned to the broken pull for the pinned
                // TTL otherwise, even against this process's next pull.
                // `let_go` tells the two apart.
                if let Some(pull) = state.pull.take() {
                    let_go(a.handler.dead_letters().0, a.consumer(index), pull).await;
                }
                a.ownership.lost(index);
                return pull_failed(myself, state, e).await;
            }
        }
        myself.send_message(Pull)?;
        Ok(())
    }
}

/// Pulling failed (cluster unreachable, an election): try again in a
/// moment, up to the grace; then let the supervisor restart the worker.
async fn pull_failed<H: Handler>(
    myself: ActorRef<Pull>,
    state: &mut WorkerState<H>,
    e: async_nats::Error,
) -> Result<(), ActorProcessingErr> {
    let (a, index) = (&state.args.workers, state.args.index);
    a.stats.error();
    let since = *state.failing_since.get_or_insert_with(Instant::now);
    if since.elapsed() > Duration::from_secs(a.config.pull_failure_grace_secs) {
        return Err(format!("pulling has failed for {:?}: {e}", since.elapsed()).into());
    }
    tracing::warn!(worker = index, "Pulling failed; trying again: {e}.");
    tokio::time::sleep(Duration::from_millis(500)).await;
    myself.send_message(Pull)?;
    Ok(())
}

/// A continuous pull in the owner group: the client keeps up to `batch`
/// messages requested, pulling again as they are used and before a
/// request expires.
async fn start_pull(
    consumer: &PullConsumer,
    config: &PullConfig,
) -> Result<PullStream, async_nats::Error> {
    let expires = Duration::from_millis(config.expires_ms.max(1_000));
    Ok(consumer
        .stream()
        .group(OWNER_GROUP)
        .max_messages_per_batch(config.batch.max(1))
        .expires(expires)
        .heartbeat(expires / 2)
        .messages()
        .await?)
}

/// Hands back what the pull buffered (delivered, never started: a NAK
/// redelivers it at once to the next owner) and unpins the partition if
/// this pull owned it.
///
/// Nothing is handed back while the pull is open. An open pull is one of
/// the partition's waiting pulls, so after the unpin the server may well
/// pin it again (on a cut-off or lonely node it is the only one), and
/// when the unpin did not go through it is still the owner: either way a
/// message handed back came straight back to it, to be handed back again,
/// for as long as the hand-over lasted - each time one more delivery, so
/// that a few seconds of it sent healthy frames to DEAD as exhausted. So
/// the pull collects what it hands back, is closed, and only then are the
/// messages handed back: each hand-over costs a message one delivery.
async fn let_go(js: &jetstream::Context, consumer: &PullConsumer, mut pull: Pulling) {
    let mut back = std::mem::take(&mut pull.parked);
    while let Some(Some(Ok(msg))) = pull.stream.next().now_or_never() {
        pull.note(&msg);
        back.push(msg);
    }
    let name = consumer.cached_info().name.clone();
    let stream = consumer.cached_info().stream_name.clone();
    let pin = pull.pin.clone();
    // Only the owner unpins: an unpin clears whoever is pinned, and after
    // a pause past the pinned TTL that is another process.
    let owner = owner_info(js, &stream, &name, pin.as_deref()).await;
    let mut unpinned = None;
    let mut trailing = 0;
    let mut repinned = None;
    if let Some(info) = owner {
        // Unpinned, the server sends this pull nothing more (unless it
        // pins it again), and gives the partition to another client.
        // Those still on their way are handed back with the rest:
        // dropped, each would hold its device for its whole ack wait.
        // What is on its way is known: while this pull is the owner,
        // every delivery is to it, so it waits until it has received up
        // to the consumer sequence the server had delivered (on a loaded
        // machine a message can trail by more than any quiet pause), then
        // for the pull to be quiet a moment (for what was delivered
        // between that count and the unpin).
        let delivered = info.delivered.consumer_sequence;
        let result = unpin(js, &stream, &name).await;
        if result.is_ok() {
            let quiet = Duration::from_millis(200);
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let wait = if pull.received < delivered {
                    deadline.saturating_duration_since(Instant::now())
                } else {
                    quiet
                };
                match tokio::time::timeout(wait, pull.stream.next()).await {
                    Ok(Some(Ok(msg))) => {
                        let again = pin_of(&msg).filter(|p| Some(*p) != pin.as_deref());
                        if let Some(again) = again {
                            // Pinned again: what comes now is this pull's
                            // as the new owner; it is let go below.
                            repinned = Some(again.to_string());
                        }
                        pull.note(&msg);
                        back.push(msg);
                        if repinned.is_some() {
                            break;
                        }
                    }
                    _ => break,
                }
                if Instant::now() > deadline {
                    break;
                }
            }
            if repinned.is_none() {
                trailing = delivered.saturating_sub(pull.received);
            }
        }
        unpinned = Some(result);
    }
    drop(pull.stream);
    // Not the owner any more (a pause past the pinned TTL): what it holds
    // may be another's delivery by now, and a hand-back would send it to
    // a third while the second works on it. It comes back after its ack
    // wait instead.
    if unpinned.is_none() {
        back.clear();
    }
    let handed_back = back.len();
    for msg in back {
        let _ = msg.ack_with(AckKind::Nak(None)).await;
    }
    if let Some(again) = &repinned {
        // The server chose this pull again (no other was waiting): with
        // it closed, a second unpin lets the next pull that comes take it.
        if owner_info(js, &stream, &name, Some(again)).await.is_some() {
            let _ = unpin(js, &stream, &name).await;
        }
    }
    if trailing > 0 {
        tracing::warn!(consumer = %name, trailing,
            "Let go of the partition with deliveries still on their way; they hold it until their ack wait.");
    }
    match unpinned {
        Some(Ok(())) => tracing::info!(consumer = %name, handed_back,
            repinned = repinned.is_some(), "Let go of the partition."),
        Some(Err(e)) => tracing::warn!(consumer = %name, handed_back,
            "Could not unpin the partition; another worker takes it over after the pinned TTL: {e}."),
        None => {}
    }
}

/// The durable's info if it is still pinned to `pin` (this pull's).
async fn owner_info(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    pin: Option<&str>,
) -> Option<jetstream::consumer::Info> {
    let pin = pin?;
    let handle = js.get_stream_no_info(stream).await.ok()?;
    let info = handle.consumer_info(name).await.ok()?;
    info.priority_groups
        .iter()
        .any(|g| g.group == OWNER_GROUP && g.pinned_client_id.as_deref() == Some(pin))
        .then_some(info)
}

/// `$JS.API.CONSUMER.UNPIN.<stream>.<consumer>` for the owner group.
pub async fn unpin(js: &jetstream::Context, stream: &str, name: &str) -> Result<(), String> {
    let body = serde_json::json!({ "group": OWNER_GROUP });
    let answer: serde_json::Value = js
        .request(format!("CONSUMER.UNPIN.{stream}.{name}"), &body)
        .await
        .map_err(|e| e.to_string())?;
    match answer.get("error") {
        Some(error) => Err(error.to_string()),
        None => Ok(()),
    }
}

/// The pin id the server sent `msg` with: it went to this client as the
/// partition's owner.
fn pin_of(msg: &jetstream::Message) -> Option<&str> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_PIN_ID))
        .map(|v| v.as_str())
}

/// One round: messages as they come for up to [`ROUND`], then every run
/// started is finished.
async fn pull_round<H: Handler>(
    a: &PullWorkers<H>,
    index: usize,
    pull: &mut Pulling,
) -> Result<(), async_nats::Error> {
    let round_ends = Instant::now() + ROUND;
    // Each message is started as soon as it arrives, unless a message of
    // its subject (device) is still being handled: then it waits, with any
    // others of that subject, and they go as the subject's next run. So a
    // device's messages keep their order, no message waits for another
    // device's slow one, and the busier a device, the larger its runs.
    let mut waiting: HashMap<String, Vec<jetstream::Message>> = HashMap::new();
    let mut running = FuturesUnordered::new();
    // While the gate is closed nothing new is started: what arrives is
    // parked (kept across rounds, in arrival order, reported in progress)
    // until a round begins with the gate open.
    let mut parked = std::mem::take(&mut pull.parked);
    // (A macro, not a closure: it borrows all three mutably.)
    macro_rules! dispatch {
        ($msg:expr) => {{
            let msg: jetstream::Message = $msg;
            let subject = msg.subject.to_string();
            match waiting.get_mut(&subject) {
                Some(queued) => queued.push(msg),
                None if parked.is_empty() && a.gate.is_open() => {
                    waiting.insert(subject.clone(), Vec::new());
                    running.push(subject_run(a, subject, vec![msg]));
                }
                None => parked.push(msg),
            }
        }};
    }
    if a.gate.is_open() {
        for msg in std::mem::take(&mut parked) {
            dispatch!(msg);
        }
    }
    // `open`: the round still starts what arrives; after it, what arrives
    // while runs finish is parked for the next round. The pull is read to
    // the end either way: a message left in its buffer would get no
    // progress reports, run out its ack wait during a long hold and come
    // back again and again until it counted as exhausted.
    let (mut open, mut alive, mut failed) = (true, true, None);
    // Messages waiting behind a slow or held one of their subject, and the
    // parked ones, are reported in progress, so that their ack wait does
    // not run out.
    let mut keepalive = tokio::time::interval(a.policy.keepalive());
    keepalive.tick().await;
    loop {
        if !open && running.is_empty() {
            break;
        }
        tokio::select! {
            next = pull.stream.next(), if alive => match next {
                Some(Ok(msg)) => {
                    pull.note(&msg);
                    if let Some(pin) = pin_of(&msg) {
                        a.ownership.pinned(index, pin);
                    }
                    if open {
                        dispatch!(msg);
                    } else {
                        parked.push(msg);
                    }
                }
                Some(Err(e)) => {
                    failed = Some(e);
                    (open, alive) = (false, false);
                }
                None => (open, alive) = (false, false),
            },
            _ = tokio::time::sleep_until(round_ends), if open => open = false,
            Some(subject) = running.next() => {
                let queued = waiting.get_mut(&subject).map(std::mem::take).unwrap_or_default();
                if queued.is_empty() {
                    waiting.remove(&subject);
                } else {
                    running.push(subject_run(a, subject, queued));
                }
            }
            _ = keepalive.tick() => {
                for msg in waiting.values().flatten().chain(parked.iter()) {
                    progress(msg).await;
                }
                pull.progressed = Instant::now();
            }
        }
    }
    // Parked messages stay this worker's: reported in progress as often as
    // held ones are, however many rounds they wait.
    if !parked.is_empty() && pull.progressed.elapsed() >= a.policy.keepalive() {
        for msg in &parked {
            progress(msg).await;
        }
        pull.progressed = Instant::now();
    }
    pull.parked = parked;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Messages of one subject, in order: in runs where it can, one by one
/// where it must, once no other worker of the process handles the subject
/// (reporting them in progress while they wait). Returns the subject.
async fn subject_run<H: Handler>(
    a: &PullWorkers<H>,
    subject: String,
    msgs: Vec<jetstream::Message>,
) -> String {
    let key = subject.clone();
    let lock = a.gate.subjects().lock(&key);
    tokio::pin!(lock);
    let mut keepalive = tokio::time::interval(a.policy.keepalive());
    keepalive.tick().await;
    let _held = loop {
        tokio::select! {
            guard = &mut lock => break guard,
            _ = keepalive.tick() => {
                for msg in &msgs {
                    progress(msg).await;
                }
            }
        }
    };
    let mut rest = &msgs[..];
    while !rest.is_empty() {
        match run(a, rest).await {
            // The run failed: the handler may be in trouble (its store
            // down), so the rest goes one by one.
            Some(0) => {
                for (i, msg) in rest.iter().enumerate() {
                    one(a, msg, &rest[i + 1..]).await;
                }
                return subject;
            }
            Some(done) => rest = &rest[done..],
            None => {}
        }
        // What stopped the run (or did not start one) goes alone.
        if let Some((first, others)) = rest.split_first() {
            one(a, first, others).await;
            rest = others;
        }
    }
    subject
}

/// Handles the leading first deliveries of `msgs` as one run and
/// acknowledges those done; returns how many, or `None` when there is no
/// run to make (fewer than two). A redelivered message (a worker died
/// holding it) is handled on its own by [`one`], so it cannot take others
/// down with it.
async fn run<H: Handler>(a: &PullWorkers<H>, msgs: &[jetstream::Message]) -> Option<usize> {
    let first = msgs.iter().take_while(|m| delivered(m) == 1).count();
    if first < 2 {
        return None;
    }
    let done = a.handler.handle_run(&msgs[..first]).await.min(first);
    for msg in &msgs[..done] {
        ack(a, msg).await;
    }
    if done > 0 {
        a.gate.passed();
    }
    Some(done)
}

fn delivered(msg: &jetstream::Message) -> i64 {
    msg.info().map(|i| i.delivered).unwrap_or(1)
}

/// Handles one message to its end: acknowledged, dead-lettered, or (only
/// when the process stops while downstream refuses) left to be redelivered.
/// `behind` are the messages of its subject waiting for it.
async fn one<H: Handler>(
    a: &PullWorkers<H>,
    msg: &jetstream::Message,
    behind: &[jetstream::Message],
) {
    let delivered = delivered(msg);
    if delivered > 1 {
        a.stats.redelivered();
    }
    // Held from the first refusal until the message is settled: while it
    // is, the gate stays closed.
    let mut held = Held::default();
    let reason = if delivered > a.policy.give_up_after {
        DeadReason::new(
            DeadKind::Exhausted,
            format!(
                "delivered {delivered} times and never finished: every delivery ended with its \
                 worker dying or stalling before it could acknowledge; not handled again"
            ),
        )
    } else {
        loop {
            let outcome = if delivered > a.policy.poison_after {
                isolated(a, msg, delivered).await
            } else {
                a.handler.handle(msg).await
            };
            match outcome {
                Outcome::Done => {
                    ack(a, msg).await;
                    a.gate.passed();
                    return;
                }
                Outcome::Dead(reason) => break reason,
                Outcome::BackPressure(why) => {
                    if !hold(a, msg, behind, &why, &mut held).await {
                        return;
                    }
                }
            }
        }
    };
    // DEAD refusing the copy is back-pressure like any other.
    loop {
        let (js, stage) = a.handler.dead_letters();
        match crate::dead::dead_letter(js, stage, msg, &reason).await {
            Ok(()) => {
                if let Err(e) = msg.ack_with(AckKind::Term).await {
                    // Redelivered then, and dead-lettered again under the
                    // same id: stored once.
                    a.stats.error();
                    tracing::debug!(subject = %msg.subject, "Terminating failed: {e}.");
                }
                a.stats.processed();
                a.stats.dead();
                a.gate.passed();
                return;
            }
            Err(why) => {
                if !hold(a, msg, behind, &why, &mut held).await {
                    return;
                }
            }
        }
    }
}

/// A suspect (delivered more than `poison_after` times: it may be what
/// crashed the workers before) handled alone with panics caught.
async fn isolated<H: Handler>(
    a: &PullWorkers<H>,
    msg: &jetstream::Message,
    delivered: i64,
) -> Outcome {
    match AssertUnwindSafe(a.handler.handle(msg)).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Outcome::Dead(DeadReason::new(
                DeadKind::Crashed,
                format!(
                    "delivered {delivered} times without being acknowledged (it crashed or \
                     stalled workers), and handled alone it panicked: {what}"
                ),
            ))
        }
    }
}

/// Keeps `msg` (and the messages of its subject behind it) while downstream
/// refuses `why`: the server hears they are still being worked on, the
/// gate stops new pulls, and after a pause (100 ms doubling up to
/// `hold_max_ms`, cut short when another message gets through) the caller
/// tries again. `false`: the process is stopping, and the message is left
/// unacknowledged, to be redelivered after the ack wait.
async fn hold<H: Handler>(
    a: &PullWorkers<H>,
    msg: &jetstream::Message,
    behind: &[jetstream::Message],
    why: &Downstream,
    held: &mut Held,
) -> bool {
    a.stats.backpressure();
    match &held.guard {
        // Still refused: the gate says so with the latest reason.
        Some(_) => a.gate.refused(why),
        None => held.guard = Some(a.gate.hold(why)),
    }
    let pause = hold_pause(held.pauses, a.config.hold_max_ms);
    held.pauses += 1;
    tracing::debug!(subject = %msg.subject, ?pause, "Holding a message: {why}.");
    let until = Instant::now() + pause;
    loop {
        progress(msg).await;
        for m in behind {
            progress(m).await;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        match a.gate.pause(left.min(a.policy.keepalive())).await {
            Woken::Stopping => return false,
            Woken::Opened => return true,
            Woken::Elapsed => {}
        }
    }
}

/// The pause after a held message's `pauses`-th refusal (counting from
/// 0): 100 ms doubling, up to `hold_max_ms` (at least 100 ms).
fn hold_pause(pauses: u32, hold_max_ms: u64) -> Duration {
    let longest = Duration::from_millis(hold_max_ms.max(100));
    (Duration::from_millis(100) * 2u32.saturating_pow(pauses.min(16))).min(longest)
}

/// A message held for back-pressure: the gate's guard (closed while any
/// message is held) and how often it has paused.
#[derive(Default)]
struct Held {
    guard: Option<gate::Held>,
    pauses: u32,
}

/// "Still working on it": restarts the server's ack timer.
async fn progress(msg: &jetstream::Message) {
    let _ = msg.ack_with(AckKind::Progress).await;
}

/// Acknowledges a finished message. A plain ack, not a double ack: one
/// that is lost only means a redelivery, which idempotent outputs make
/// harmless, and not waiting saves a round trip per message.
async fn ack<H: Handler>(a: &PullWorkers<H>, msg: &jetstream::Message) {
    if let Err(e) = msg.ack().await {
        a.stats.error();
        tracing::debug!(subject = %msg.subject, "Acknowledging failed (it will come again): {e}.");
    }
    a.stats.processed();
}

/// Makes [`Worker`]s of one handler, one per partition durable, for a
/// [`crate::Supervisor`].
pub struct PullWorkers<H> {
    /// The partitions' durables, in partition order; worker `i` pulls
    /// from `consumers[i]`.
    pub consumers: Arc<Vec<PullConsumer>>,
    pub handler: Arc<H>,
    pub stats: Arc<Stats>,
    pub config: PullConfig,
    pub policy: Policy,
    /// The process's back-pressure gate (also its stop for held messages).
    pub gate: Arc<Gate>,
    /// Which partitions the process owns; hand-overs asked by its balancer.
    pub ownership: Arc<Ownership>,
}

// Not derived: `H` itself need not be `Clone`.
impl<H> Clone for PullWorkers<H> {
    fn clone(&self) -> Self {
        PullWorkers {
            consumers: self.consumers.clone(),
            handler: self.handler.clone(),
            stats: self.stats.clone(),
            config: self.config.clone(),
            policy: self.policy.clone(),
            gate: self.gate.clone(),
            ownership: self.ownership.clone(),
        }
    }
}

impl<H> PullWorkers<H> {
    /// Worker `index`'s durable.
    pub fn consumer(&self, index: usize) -> &PullConsumer {
        &self.consumers[index % self.consumers.len()]
    }

    /// How many workers the process runs: one per partition.
    pub fn workers(&self) -> usize {
        self.consumers.len()
    }
}

impl<H: Handler> WorkerFactory for PullWorkers<H> {
    type Worker = Worker<H>;
    fn make(&self, index: usize) -> (Worker<H>, WorkerArgs<H>) {
        let workers = self.clone();
        (
            Worker(std::marker::PhantomData),
            WorkerArgs { workers, index },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_messages_are_reported_well_within_the_ack_wait() {
        let p = Policy {
            poison_after: 3,
            give_up_after: 10,
            ack_wait: Duration::from_secs(30),
        };
        assert_eq!(p.keepalive(), Duration::from_secs(10));
        let tiny = Policy {
            ack_wait: Duration::from_millis(30),
            ..p
        };
        assert_eq!(tiny.keepalive(), Duration::from_millis(100));
    }

    #[test]
    fn a_held_message_is_tried_again_after_100_ms_doubling_up_to_hold_max() {
        let pauses: Vec<_> = (0..8).map(|n| hold_pause(n, 5_000).as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
        assert_eq!(hold_pause(u32::MAX, 5_000), Duration::from_secs(5));
        // hold_max_ms below the first pause: every pause is 100 ms.
        assert_eq!(hold_pause(0, 0), Duration::from_millis(100));
        assert_eq!(hold_pause(3, 10), Duration::from_millis(100));
    }
}
