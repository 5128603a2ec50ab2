//! A record that hides an older version (a tombstone, an expired overwrite, a clear) must
//! survive compaction while the segment holding the older version is still on disk.
//! Found while mutation-testing the model test: it missed these two cases, so they are
//! pinned here deterministically.

mod common;

use common::{fill_segment, open};
use ttlcask_engine::{Clock, ManualClock, PutOptions, Store};

fn scenario(hide: impl Fn(&Store, &ManualClock)) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000);
    let store = open(dir.path(), &clock);
    store
        .put(b"ns", b"k", b"old", PutOptions::default())
        .expect("put");
    fill_segment(&store, "a", PutOptions::default());
    hide(&store, &clock);
    clock.advance_ms(10_000);
    // Only the mostly-dead segment is compacted; the one with the old version stays.
    store.compact_dead_over(0.5).expect("compact");
    drop(store);
    let store = open(dir.path(), &clock);
    store
        .get(b"ns", b"k")
        .expect("read")
        .map(|it| it.value.to_vec())
}

#[test]
fn deleted_key_stays_deleted_after_partial_compaction_and_reopen() {
    let got = scenario(|store, clock| {
        assert!(store.delete(b"ns", b"k").expect("delete"));
        fill_segment(store, "b", PutOptions::expiring_at(clock.now_ms() + 5));
    });
    assert_eq!(got, None);
}

#[test]
fn expired_overwrite_stays_hidden_after_partial_compaction_and_reopen() {
    let got = scenario(|store, clock| {
        let soon = PutOptions::expiring_at(clock.now_ms() + 5);
        store.put(b"ns", b"k", b"new", soon).expect("put");
        fill_segment(store, "b", soon);
    });
    assert_eq!(got, None);
}

#[test]
fn cleared_namespace_stays_empty_after_partial_compaction_and_reopen() {
    let got = scenario(|store, clock| {
        assert!(store.clear_namespace(b"ns").expect("clear"));
        fill_segment(store, "b", PutOptions::expiring_at(clock.now_ms() + 5));
    });
    assert_eq!(got, None);
}

/// A run at a dead ratio counts expired items as dead: segments half of whose items have
/// expired are rewritten, their live items kept (a mutant that stopped counting expired
/// bytes, unless a segment held droppable tombstones, went unnoticed by every test).
#[test]
fn a_run_at_a_ratio_counts_expired_items_as_dead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ttlcask_engine::ManualClock::new(1_000_000);
    let store = ttlcask_engine::Store::builder()
        .segment_size(4096)
        .compaction_interval(None)
        .clock(clock.clone())
        .open(dir.path())
        .expect("open");
    for i in 0..80u32 {
        let options = if i % 2 == 0 {
            ttlcask_engine::PutOptions::expiring_at(1_001_000)
        } else {
            ttlcask_engine::PutOptions::default()
        };
        store
            .put(b"ns", &i.to_le_bytes(), &[7; 100], options)
            .expect("put");
    }
    clock.advance_ms(5_000);
    let report = store.compact_dead_over(0.25).expect("compact");
    assert!(
        report.segments_rewritten > 0 && report.bytes_reclaimed > 0,
        "{report:?}"
    );
    for i in 0..80u32 {
        let got = store.get(b"ns", &i.to_le_bytes()).expect("read");
        assert_eq!(got.is_some(), i % 2 == 1, "key {i}");
    }
}
