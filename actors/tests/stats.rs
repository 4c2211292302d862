//! The live counters: each counts in its own field of the snapshot.

use fleetbus_actors::{Snapshot, Stats};

#[test]
fn each_counter_counts_in_its_own_field() {
    let s = Stats::default();
    assert_eq!(s.snapshot(), Snapshot::default());
    // A different count for each, so no two can be mixed up.
    let times = |n: u64, count: &dyn Fn()| (0..n).for_each(|_| count());
    times(1, &|| s.processed());
    times(2, &|| s.error());
    times(3, &|| s.restarted());
    times(4, &|| s.dead());
    s.published(2);
    s.published(3);
    times(6, &|| s.redelivered());
    times(7, &|| s.backpressure());
    s.duplicates(8);
    s.purged(9);
    let expected = Snapshot {
        processed: 1,
        errors: 2,
        restarts: 3,
        dead: 4,
        published: 5,
        redelivered: 6,
        backpressure: 7,
        duplicates: 8,
        purged: 9,
    };
    assert_eq!(s.snapshot(), expected);
}
