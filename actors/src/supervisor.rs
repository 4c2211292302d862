//! A supervisor that owns N workers, restarts each one that fails, with
//! exponential backoff, and gives up when restarts come too fast.
//!
//! ractor's default reaction to a dead child is to stop the supervisor, and
//! a panic in a child's `pre_start` is not a supervision event but a failed
//! spawn. So [`Supervisor`] handles both explicitly:
//!
//! * `ActorFailed` (a panic or an error returned by the worker) and an
//!   unexpected `ActorTerminated` free the worker's slot and schedule a
//!   respawn after the slot's backoff (`backoff_min`, doubling up to
//!   `backoff_max`; reset once a worker has run for `stable_after`);
//! * a spawn that fails (a panicking or failing `pre_start`) counts as a
//!   restart too and is retried the same way;
//! * more than `max_restarts` restarts within `window` (all slots together,
//!   like Erlang/OTP's intensity and period) stops every worker and the
//!   supervisor with [`Exit::GaveUp`]: the process should then exit non-zero
//!   so that systemd or Kubernetes restarts it with a fresh connection.
//!
//! A restarted worker is a new actor with a new `ActorRef`; the supervisor
//! only keeps [`ActorCell`]s and never hands them out. Workers must keep
//! `pre_start` cheap (no I/O): connections are made before the supervisor
//! starts and passed in by the [`WorkerFactory`].
//!
//! [`Supervisor::shutdown`] stops the workers gracefully: each finishes the
//! message it is handling (ractor processes a stop between messages), then
//! the supervisor stops with [`Exit::Shutdown`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::{Deserialize, Serialize};
// tokio's clock, not std's: the same in production, and tests can pause it.
use tokio::time::Instant;

use crate::stats::Stats;

/// Restart policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// Restarts allowed within `window_secs` (all workers together) before
    /// the supervisor gives up.
    pub max_restarts: u32,
    /// The intensity window, seconds.
    pub window_secs: u64,
    /// First restart delay of a slot, milliseconds; doubles per consecutive failure.
    pub backoff_min_ms: u64,
    /// Longest restart delay, milliseconds.
    pub backoff_max_ms: u64,
    /// A worker that ran this long before failing restarts after `backoff_min` again, seconds.
    pub stable_after_secs: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            max_restarts: 20,
            window_secs: 60,
            backoff_min_ms: 100,
            backoff_max_ms: 10_000,
            stable_after_secs: 30,
        }
    }
}

impl SupervisorConfig {
    /// The delay before restarting a slot that failed `failures` times in a row (≥ 1).
    pub fn backoff(&self, failures: u32) -> Duration {
        let min = self.backoff_min_ms.max(1);
        let factor = 1u64 << failures.saturating_sub(1).min(20);
        Duration::from_millis(min.saturating_mul(factor).min(self.backoff_max_ms.max(min)))
    }
}

/// Makes workers: called once per start and once per restart of slot `index`.
pub trait WorkerFactory: Send + Sync + 'static {
    type Worker: Actor;
    fn make(&self, index: usize) -> (Self::Worker, <Self::Worker as Actor>::Arguments);
}

/// How a supervisor ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// [`Supervisor::shutdown`] was asked for: every worker finished.
    Shutdown,
    /// Restart intensity exceeded; the reason names the last failure.
    GaveUp(String),
}

/// Messages of the supervisor.
pub enum SupervisorMsg {
    /// (Re)start the worker of this slot.
    Spawn(usize),
    /// Stop every worker gracefully, then stop.
    Shutdown,
}

/// The supervisor actor; see the module documentation.
pub struct Supervisor<F: WorkerFactory> {
    _factory: std::marker::PhantomData<F>,
}

pub struct SupervisorArgs<F> {
    pub factory: F,
    pub workers: usize,
    pub config: SupervisorConfig,
    pub stats: Arc<Stats>,
    pub exit: Arc<Mutex<Option<Exit>>>,
}

struct Slot {
    cell: Option<ActorCell>,
    started: Instant,
    failures: u32,
}

pub struct SupervisorState<F> {
    factory: F,
    config: SupervisorConfig,
    stats: Arc<Stats>,
    exit: Arc<Mutex<Option<Exit>>>,
    slots: Vec<Slot>,
    restarts: VecDeque<Instant>,
    stopping: bool,
}

/// A running supervisor: its actor, and how it ended once it has.
pub struct SupervisorHandle {
    pub actor: ActorRef<SupervisorMsg>,
    join: tokio::task::JoinHandle<()>,
    exit: Arc<Mutex<Option<Exit>>>,
}

impl SupervisorHandle {
    /// Asks every worker to finish what it is doing and stop.
    pub fn shutdown(&self) {
        let _ = self.actor.cast(SupervisorMsg::Shutdown);
    }

    /// Waits until the supervisor has stopped.
    pub async fn wait(&mut self) -> Exit {
        let _ = (&mut self.join).await;
        self.exit
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Exit::GaveUp("supervisor stopped unexpectedly".into()))
    }

    /// The exit, if it has ended.
    pub fn exit(&self) -> Option<Exit> {
        self.exit.lock().unwrap().clone()
    }
}

impl<F: WorkerFactory> Supervisor<F> {
    /// Starts the supervisor and its `workers` workers.
    pub async fn start(
        factory: F,
        workers: usize,
        config: SupervisorConfig,
        stats: Arc<Stats>,
    ) -> Result<SupervisorHandle, ractor::SpawnErr> {
        let exit = Arc::new(Mutex::new(None));
        let (actor, join) = Actor::spawn(
            None,
            Supervisor::<F> {
                _factory: std::marker::PhantomData,
            },
            SupervisorArgs {
                factory,
                workers,
                config,
                stats,
                exit: exit.clone(),
            },
        )
        .await?;
        Ok(SupervisorHandle { actor, join, exit })
    }
}

impl<F: WorkerFactory> SupervisorState<F> {
    /// Records a restart; `false` when the intensity is exceeded.
    fn allow_restart(&mut self) -> bool {
        let now = Instant::now();
        let window = Duration::from_secs(self.config.window_secs);
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.config.max_restarts as usize
    }

    fn give_up(&mut self, myself: &ActorRef<SupervisorMsg>, why: String) {
        tracing::error!(
            max_restarts = self.config.max_restarts,
            window_secs = self.config.window_secs,
            "restart intensity exceeded, giving up: {why}"
        );
        *self.exit.lock().unwrap() = Some(Exit::GaveUp(why.clone()));
        self.stopping = true;
        for slot in &self.slots {
            if let Some(cell) = &slot.cell {
                cell.stop(Some("supervisor gave up".into()));
            }
        }
        myself.stop(Some(why));
    }

    /// A slot's worker died (or could not start): restart it later, or give up.
    fn failed(&mut self, myself: &ActorRef<SupervisorMsg>, index: usize, why: String) {
        let slot = &mut self.slots[index];
        slot.cell = None;
        if self.stopping {
            return;
        }
        if slot.started.elapsed() >= Duration::from_secs(self.config.stable_after_secs) {
            slot.failures = 0;
        }
        slot.failures += 1;
        let delay = self.config.backoff(slot.failures);
        if !self.allow_restart() {
            self.give_up(myself, format!("worker {index}: {why}"));
            return;
        }
        self.stats.restarted();
        tracing::warn!(
            worker = index,
            delay_ms = delay.as_millis() as u64,
            "worker died, restarting: {why}"
        );
        myself.send_after(delay, move || SupervisorMsg::Spawn(index));
    }

    fn all_stopped(&self) -> bool {
        self.slots.iter().all(|s| s.cell.is_none())
    }
}

impl<F: WorkerFactory> Actor for Supervisor<F> {
    type Msg = SupervisorMsg;
    type State = SupervisorState<F>;
    type Arguments = SupervisorArgs<F>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs<F>,
    ) -> Result<Self::State, ActorProcessingErr> {
        for i in 0..args.workers {
            myself.send_message(SupervisorMsg::Spawn(i))?;
        }
        Ok(SupervisorState {
            factory: args.factory,
            config: args.config,
            stats: args.stats,
            exit: args.exit,
            slots: (0..args.workers)
                .map(|_| Slot {
                    cell: None,
                    started: Instant::now(),
                    failures: 0,
                })
                .collect(),
            restarts: VecDeque::new(),
            stopping: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Spawn(index) => {
                if state.stopping || state.slots[index].cell.is_some() {
                    return Ok(());
                }
                let (worker, args) = state.factory.make(index);
                state.slots[index].started = Instant::now();
                match Actor::spawn_linked(None, worker, args, myself.get_cell()).await {
                    Ok((actor, _join)) => {
                        state.slots[index].cell = Some(actor.get_cell());
                    }
                    Err(e) => {
                        // pre_start failed or panicked: not a supervision event.
                        state.failed(&myself, index, format!("could not start: {e}"));
                    }
                }
            }
            SupervisorMsg::Shutdown => {
                state.stopping = true;
                if state.exit.lock().unwrap().is_none() {
                    *state.exit.lock().unwrap() = Some(Exit::Shutdown);
                }
                for slot in &state.slots {
                    if let Some(cell) = &slot.cell {
                        cell.stop(Some("shutdown".into()));
                    }
                }
                if state.all_stopped() {
                    myself.stop(Some("shutdown".into()));
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                format!("stopped ({})", reason.unwrap_or_else(|| "no reason".into())),
            ),
            _ => return Ok(()),
        };
        let Some(index) = state
            .slots
            .iter()
            .position(|s| s.cell.as_ref().is_some_and(|c| c.get_id() == cell.get_id()))
        else {
            return Ok(());
        };
        if state.stopping {
            state.slots[index].cell = None;
            if state.all_stopped() {
                myself.stop(Some("shutdown".into()));
            }
            return Ok(());
        }
        state.failed(&myself, index, why);
        Ok(())
    }
}
