//! The back-pressure gate, in paused time: who closes and opens it, how
//! long it has been closed, and how a holder's pause ends.

mod support;

use std::time::Duration;

use fleetbus_actors::gate::Woken;
use fleetbus_actors::{Downstream, DownstreamKind, Gate};
use support::within;

fn full() -> Downstream {
    Downstream::new("PARSED", DownstreamKind::Full, "maximum messages exceeded")
}

#[tokio::test(start_paused = true)]
async fn holding_closes_and_the_last_holder_or_a_success_opens() {
    let gate = Gate::new();
    assert!(gate.is_open());
    let a = gate.hold(&full());
    let b = gate.hold(&full());
    assert!(!gate.is_open());
    let st = gate.status();
    assert_eq!(st.held, 2);
    assert_eq!(
        st.blocked_by.as_deref(),
        Some("PARSED full: maximum messages exceeded")
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(gate.status().blocked_secs, 5);
    drop(a);
    assert!(!gate.is_open(), "one still held");
    drop(b);
    assert!(gate.is_open(), "nobody holds: open");
    assert_eq!(gate.status().blocked_secs, 0);
    let _c = gate.hold(&full());
    gate.passed();
    assert!(gate.is_open(), "a success opens even while others are held");
    assert_eq!(gate.status().held, 1);
}

#[tokio::test(start_paused = true)]
async fn a_pause_ends_early_when_the_gate_opens_or_the_process_stops() {
    let gate = Gate::new();
    let held = gate.hold(&full());
    let t0 = tokio::time::Instant::now();
    assert_eq!(gate.pause(Duration::from_secs(1)).await, Woken::Elapsed);
    assert_eq!(t0.elapsed(), Duration::from_secs(1), "the whole pause");
    let g = gate.clone();
    let waiter = tokio::spawn(async move { g.pause(Duration::from_secs(3600)).await });
    tokio::task::yield_now().await;
    gate.passed();
    let woken = within(Duration::from_secs(1), "the waiter", waiter).await;
    assert_eq!(woken.unwrap(), Woken::Opened);
    assert_eq!(t0.elapsed(), Duration::from_secs(1), "woken at once");
    assert!(gate.is_open());
    let _again = gate.hold(&full());
    assert!(!gate.is_open(), "closed");
    assert_eq!(gate.pause(Duration::from_secs(1)).await, Woken::Elapsed);
    gate.stop();
    assert_eq!(gate.pause(Duration::from_secs(3600)).await, Woken::Stopping);
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(2),
        "no pause once stopping"
    );
    drop(held);
}
