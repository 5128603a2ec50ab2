//! Helpers shared by the `store_ops_*.rs` tests: their result type, and a quiet store (no
//! background compaction, no fsync, small segments) on a manual clock.
#![allow(dead_code)]

use ttlcask_engine::{Durability, ManualClock, OpenError, Store};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn quiet(dir: &std::path::Path, clock: &ManualClock) -> Result<Store, OpenError> {
    Store::builder()
        .durability(Durability::Never)
        .clock(clock.clone())
        .compaction_interval(None)
        .segment_size(4096)
        .open(dir)
}
