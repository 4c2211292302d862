//! The supervisor, in paused time: its restart schedule (backoff, restart
//! intensity and window, `stable_after`) is observed in tokio's virtual
//! clock, to the millisecond, and takes no wall time.

mod support;

use std::sync::Arc;
use std::time::Duration;

use fleetbus_actors::{Exit, Stats, Supervisor, SupervisorConfig, SupervisorHandle, WorkerFactory};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use support::within;
use tokio::sync::watch;
use tokio::time::Instant;

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

const HOUR: Duration = Duration::from_secs(3600);

/// Panics without calling the panic hook: the same unwinding for ractor to
/// catch, without the hook's report (with `RUST_BACKTRACE` set, resolving
/// a backtrace costs about 0.1 s a panic).
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
    /// Waits (an hour of virtual time at most) for `n` starts; all of them so far.
    async fn wait(&self, n: usize) -> Vec<Duration> {
        let mut rx = self.log.subscribe();
        let log = within(
            HOUR,
            &format!("{n} starts"),
            rx.wait_for(|log| log.len() >= n),
        )
        .await
        .unwrap()
        .clone();
        log
    }

    fn count(&self) -> usize {
        self.log.borrow().len()
    }
}

/// A worker following a script: start `n` (counted over every slot) does
/// `steps[n]`, the last step once the script is used up.
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

/// Starts `workers` workers following `steps`: the supervisor, its stats,
/// and the log of the workers' starts (from now).
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

/// Stops the supervisor and checks it ends with [`Exit::Shutdown`].
async fn shut_down(mut sup: SupervisorHandle) {
    sup.shutdown();
    assert_eq!(within(HOUR, "shutdown", sup.wait()).await, Exit::Shutdown);
}

/// Waits for the supervisor to give up over a failure saying `with`.
async fn gives_up(sup: &mut SupervisorHandle, with: &str) {
    match within(HOUR, "giving up", sup.wait()).await {
        Exit::GaveUp(why) => assert!(why.contains(with), "{why}"),
        other => panic!("expected to give up, got {other:?}"),
    }
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
    let (sup, stats, starts) = supervise(&steps, 1, config()).await;
    assert_eq!(starts.wait(5).await, secs(&[0, 1, 3, 7, 11]));
    assert_eq!(stats.snapshot().restarts, 4);
    assert_eq!(sup.exit(), None, "still running");
    shut_down(sup).await;
    assert_eq!(starts.count(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_failing_pre_start_is_retried_after_the_backoff() {
    // Slots 0 and 1 share the script: two failing starts, then good ones.
    let steps = [Step::FailToStart, Step::FailToStart, Step::Run];
    let (sup, stats, starts) = supervise(&steps, 2, config()).await;
    assert_eq!(starts.wait(4).await, secs(&[0, 0, 1, 1]));
    shut_down(sup).await;
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

#[tokio::test(start_paused = true)]
async fn restarts_further_apart_than_the_window_allows_never_give_up() {
    // A failure every 4 s: never 3 within 5 s.
    let crash_after_3s = Step::PanicAfter(Duration::from_secs(3));
    let (sup, stats, starts) = supervise(&[crash_after_3s], 1, window_config()).await;
    assert_eq!(starts.wait(6).await, secs(&[0, 4, 8, 12, 16, 20]));
    assert_eq!(sup.exit(), None, "still running");
    assert_eq!(stats.snapshot().restarts, 5);
    shut_down(sup).await;
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
    let (sup, _, starts) = supervise(&steps, 1, config).await;
    // Backoffs 1 s, 2 s; then it runs 20 s (from 3 s) and its backoff
    // starts over: 1 s, 2 s (not 4 s, 8 s).
    assert_eq!(starts.wait(5).await, secs(&[0, 1, 3, 24, 26]));
    shut_down(sup).await;
}
