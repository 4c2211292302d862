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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::watch;

    /// What a worker does, per start.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// Panics in `pre_start`: a failed spawn.
        FailToStart,
        /// Panics in `handle` after running this long.
        PanicAfter(Duration),
        /// Runs until stopped.
        Run,
    }

    const CRASH: Step = Step::PanicAfter(Duration::ZERO);

    /// Panics without calling the panic hook: the same unwinding for
    /// ractor to catch, without the hook's report (with `RUST_BACKTRACE`
    /// set, resolving a backtrace costs about 0.1 s a panic).
    fn unwind(what: String) -> ! {
        std::panic::resume_unwind(Box::new(what))
    }

    /// When the workers started, in (virtual) time since the log was made.
    #[derive(Clone)]
    struct Starts {
        t0: Instant,
        log: watch::Sender<Vec<Duration>>,
    }

    impl Starts {
        /// Waits (an hour of virtual time at most) for `n` starts.
        async fn wait(&self, n: usize) -> Vec<Duration> {
            let mut rx = self.log.subscribe();
            let hour = Duration::from_secs(3600);
            let log = tokio::time::timeout(hour, rx.wait_for(|log| log.len() >= n))
                .await
                .unwrap_or_else(|_| panic!("not {n} starts in an hour: {:?}", self.log.borrow()))
                .unwrap()
                .clone();
            log
        }

        fn count(&self) -> usize {
            self.log.borrow().len()
        }
    }

    /// A worker following a script: start `n` (counted over every slot)
    /// does `steps[n]`, the last step once the script is used up.
    struct Scripted {
        starts: Starts,
        steps: Arc<[Step]>,
    }

    impl Actor for Scripted {
        type Msg = ();
        type State = Step;
        type Arguments = ();
        async fn pre_start(&self, myself: ActorRef<()>, _: ()) -> Result<Step, ActorProcessingErr> {
            let mut n = 0;
            self.starts.log.send_modify(|log| {
                n = log.len();
                log.push(self.starts.t0.elapsed());
            });
            let step = *self
                .steps
                .get(n)
                .or(self.steps.last())
                .unwrap_or(&Step::Run);
            if let Step::FailToStart = step {
                unwind(format!("pre_start panic {n}"));
            }
            myself.send_message(())?;
            Ok(step)
        }
        async fn handle(
            &self,
            _: ActorRef<()>,
            _: (),
            step: &mut Step,
        ) -> Result<(), ActorProcessingErr> {
            if let Step::PanicAfter(d) = *step {
                tokio::time::sleep(d).await;
                unwind("handle panic".into());
            }
            Ok(())
        }
    }

    struct Script {
        starts: Starts,
        steps: Arc<[Step]>,
    }

    impl WorkerFactory for Script {
        type Worker = Scripted;
        fn make(&self, _: usize) -> (Scripted, ()) {
            let (starts, steps) = (self.starts.clone(), self.steps.clone());
            (Scripted { starts, steps }, ())
        }
    }

    /// Starts `workers` workers following `steps`: the supervisor, its
    /// stats, and the log of the workers' starts (from now).
    async fn supervise(
        steps: &[Step],
        workers: usize,
        config: SupervisorConfig,
    ) -> (SupervisorHandle, Arc<Stats>, Starts) {
        let starts = Starts {
            t0: Instant::now(),
            log: watch::Sender::new(Vec::new()),
        };
        let script = Script {
            starts: starts.clone(),
            steps: steps.into(),
        };
        let stats = Arc::new(Stats::default());
        let sup = Supervisor::start(script, workers, config, stats.clone())
            .await
            .unwrap();
        (sup, stats, starts)
    }

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    /// Backoff 1 s doubling up to 4 s, 10 restarts a minute.
    fn config() -> SupervisorConfig {
        SupervisorConfig {
            max_restarts: 10,
            window_secs: 60,
            backoff_min_ms: 1_000,
            backoff_max_ms: 4_000,
            stable_after_secs: 30,
        }
    }

    async fn gives_up(sup: &mut SupervisorHandle, with: &str) {
        match sup.wait().await {
            Exit::GaveUp(why) => assert!(why.contains(with), "{why}"),
            other => panic!("expected to give up, got {other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = SupervisorConfig::default();
        assert_eq!(c.backoff(1), Duration::from_millis(100));
        assert_eq!(c.backoff(2), Duration::from_millis(200));
        assert_eq!(c.backoff(4), Duration::from_millis(800));
        assert_eq!(c.backoff(30), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_worker_is_restarted_after_1_2_4_4_s_and_shutdown_is_clean() {
        let steps = [CRASH, CRASH, CRASH, CRASH, Step::Run];
        let (mut sup, stats, starts) = supervise(&steps, 1, config()).await;
        assert_eq!(starts.wait(5).await, secs(&[0, 1, 3, 7, 11]));
        assert_eq!(stats.snapshot().restarts, 4);
        assert_eq!(sup.exit(), None, "still running");
        sup.shutdown();
        assert_eq!(sup.wait().await, Exit::Shutdown);
        assert_eq!(starts.count(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_pre_start_is_retried_after_the_backoff() {
        // Slots 0 and 1 share the script: two failing starts, then good ones.
        let steps = [Step::FailToStart, Step::FailToStart, Step::Run];
        let (mut sup, stats, starts) = supervise(&steps, 2, config()).await;
        assert_eq!(starts.wait(4).await, secs(&[0, 0, 1, 1]));
        sup.shutdown();
        assert_eq!(sup.wait().await, Exit::Shutdown);
        assert_eq!(stats.snapshot().restarts, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn too_many_restarts_give_up() {
        let config = SupervisorConfig {
            max_restarts: 5,
            ..config()
        };
        let t0 = Instant::now();
        let (mut sup, stats, starts) = supervise(&[CRASH], 2, config).await;
        gives_up(&mut sup, "handle panic").await;
        // Both slots fail at 0 s and 1 s (restarts 1-4), the first again at
        // 3 s (restart 5): the second's failure then is one too many.
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
        assert_eq!(starts.wait(6).await, secs(&[0, 0, 1, 1, 3, 3]));
        assert_eq!(stats.snapshot().restarts, 5);
    }

    /// 2 restarts within 5 s allowed, each after 1 s.
    fn window_config() -> SupervisorConfig {
        SupervisorConfig {
            max_restarts: 2,
            window_secs: 5,
            backoff_min_ms: 1_000,
            backoff_max_ms: 1_000,
            stable_after_secs: 60,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn restarts_further_apart_than_the_window_allows_never_give_up() {
        // A failure every 4 s: never 3 within 5 s.
        let crash_after_3s = Step::PanicAfter(Duration::from_secs(3));
        let (mut sup, stats, starts) = supervise(&[crash_after_3s], 1, window_config()).await;
        assert_eq!(starts.wait(6).await, secs(&[0, 4, 8, 12, 16, 20]));
        assert_eq!(sup.exit(), None, "still running");
        assert_eq!(stats.snapshot().restarts, 5);
        sup.shutdown();
        assert_eq!(sup.wait().await, Exit::Shutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn restarts_closer_than_the_window_allows_give_up() {
        // A failure every 2 s: the third, at 5 s, is within 5 s of the first.
        let crash_after_1s = Step::PanicAfter(Duration::from_secs(1));
        let t0 = Instant::now();
        let (mut sup, stats, starts) = supervise(&[crash_after_1s], 1, window_config()).await;
        gives_up(&mut sup, "handle panic").await;
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
        assert_eq!(starts.wait(3).await, secs(&[0, 2, 4]));
        assert_eq!(stats.snapshot().restarts, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_ran_for_stable_after_restarts_after_backoff_min_again() {
        let config = SupervisorConfig {
            backoff_max_ms: 60_000,
            stable_after_secs: 10,
            ..config()
        };
        let ran_20s = Step::PanicAfter(Duration::from_secs(20));
        let steps = [CRASH, CRASH, ran_20s, CRASH, Step::Run];
        let (mut sup, _, starts) = supervise(&steps, 1, config).await;
        // Backoffs 1 s, 2 s; then it runs 20 s (from 3 s) and its backoff
        // starts over: 1 s, 2 s (not 4 s, 8 s).
        assert_eq!(starts.wait(5).await, secs(&[0, 1, 3, 24, 26]));
        sup.shutdown();
        assert_eq!(sup.wait().await, Exit::Shutdown);
    }
}
