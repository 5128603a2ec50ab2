//! Helpers shared by the engine's integration tests that work on small segments.

use ttlcask_engine::{Durability, ManualClock, PutOptions, Store};

/// Segment size of [`open`]: a few dozen records fill one.
pub const SEGMENT: u64 = 4096;

/// A store in `dir` with small segments, no background compaction and `clock`.
pub fn open(dir: &std::path::Path, clock: &ManualClock) -> Store {
    Store::builder()
        .durability(Durability::Never)
        .segment_size(SEGMENT)
        .clock(clock.clone())
        .compaction_interval(None)
        .open(dir)
        .expect("open")
}

/// Calls `write` with 0, 1, 2, … until the store has started a new segment.
pub fn until_next_segment(store: &Store, mut write: impl FnMut(u64)) {
    let start = store.stats().segments;
    let mut i = 0;
    while store.stats().segments == start {
        write(i);
        i += 1;
    }
}

/// Writes live filler items until a new segment has been started.
pub fn fill_segment(store: &Store, tag: &str, options: PutOptions) {
    until_next_segment(store, |i| {
        store
            .put(b"ns", format!("{tag}-{i}").as_bytes(), &[7; 200], options)
            .expect("put");
    });
}
