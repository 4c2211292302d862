//! One worker at a time per subject, in paused time.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetbus_actors::subjects::Subjects;
use support::within;

#[tokio::test(start_paused = true)]
async fn one_holder_per_subject_in_the_order_asked_and_nothing_left_after() {
    let s = Arc::new(Subjects::default());
    let order = Arc::new(Mutex::new(Vec::new()));
    let first = s.lock("d1").await;
    let mut waiters = Vec::new();
    for i in 0..3 {
        let (s, order) = (s.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let _g = s.lock("d1").await;
            order.lock().unwrap().push(i);
        }));
        // Ask in turn (virtual time: the waiter runs up to its lock before
        // the clock moves on).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another subject is not held back.
    drop(within(Duration::from_secs(1), "d2", s.lock("d2")).await);
    assert!(order.lock().unwrap().is_empty(), "d1 is held");
    assert_eq!(s.len(), 1, "only d1 is held or waited for");
    drop(first);
    for w in waiters {
        within(Duration::from_secs(1), "a waiter", w).await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
    assert!(s.is_empty(), "no subject remembered once done");
}
