//! The frames a hamster process published, remembered up to a capacity.

use fleetbus_actors::published::Published;

#[test]
fn remembers_what_it_published_up_to_its_capacity() {
    let p = Published::with_capacity(3);
    assert!(!p.contains("a"));
    p.insert("a");
    p.insert("a");
    assert!(p.contains("a"));
    assert!(!p.contains("b"));
    p.insert("b");
    p.insert("c");
    assert!(p.contains("a"), "a repeat takes no room");
    p.insert("d");
    assert!(!p.contains("a"), "the oldest is forgotten");
    assert!(["b", "c", "d"].iter().all(|id| p.contains(id)));
}
