//! Promises of the appender that the broader suites do not pin: which durability policies
//! wait for an fsync, and the adoption of the pre-written spare segment. Each test fails
//! against a mutation of `writer.rs` that the others let through (see "Mutation testing"
//! in ARCHITECTURE.md).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{Durability, FileSystem, ManualClock, PutOptions, Store, StoreBuilder};

const DIR: &str = "/writer";

fn builder(fs: &SimFs, durability: Durability) -> StoreBuilder {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .segment_size(4096)
        .durability(durability)
        .compaction_interval(None)
        .clock(ManualClock::new(1_000_000))
}

/// `Never` and `Every` acknowledge a write once it is appended: no write waits for (or
/// makes) an fsync; `Always` makes one per lone write.
#[test]
fn only_always_waits_for_an_fsync_per_write() {
    for (durability, per_write) in [
        (Durability::Never, false),
        (Durability::Every(Duration::from_secs(3600)), false),
        (Durability::Always, true),
    ] {
        let fs = SimFs::new();
        let store = builder(&fs, durability).open(DIR).expect("open");
        let before = store.stats().fsyncs;
        for i in 0..5u32 {
            store
                .put(b"ns", &i.to_le_bytes(), b"v", PutOptions::default())
                .expect("put");
        }
        let fsyncs = store.stats().fsyncs - before;
        assert_eq!(
            fsyncs,
            if per_write { 5 } else { 0 },
            "{durability:?}: {fsyncs} fsyncs for 5 writes"
        );
    }
}

fn spare_exists(fs: &SimFs) -> bool {
    fs.list(Path::new(DIR))
        .expect("list")
        .iter()
        .any(|n| n == "spare-segment.tmp")
}

fn segments(fs: &SimFs) -> Vec<String> {
    let mut names: Vec<_> = fs
        .list(Path::new(DIR))
        .expect("list")
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

/// Fills the active segment past half, then waits (bounded) for the background thread to
/// finish the spare (the file exists while it is still being written: a rollover then makes
/// a segment of its own).
fn store_with_a_spare(fs: &SimFs) -> Store {
    let store = builder(fs, Durability::Always)
        .compaction_interval(Some(Duration::from_secs(3600)))
        .open(DIR)
        .expect("open");
    for i in 0..12u32 {
        store
            .put(b"ns", &i.to_le_bytes(), &[1; 150], PutOptions::default())
            .expect("put");
    }
    assert_eq!(segments(fs).len(), 1, "still in the first segment");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.stats().spare_ready && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(store.stats().spare_ready, "no spare segment was prepared");
    assert!(spare_exists(fs));
    store
}

#[test]
fn a_rollover_adopts_the_spare_segment() {
    let fs = SimFs::new();
    let store = store_with_a_spare(&fs);
    // Writes until the next one starts a segment.
    let mut i = 100u32;
    while segments(&fs).len() == 1 {
        store
            .put(b"ns", &i.to_le_bytes(), &[2; 150], PutOptions::default())
            .expect("put");
        i += 1;
    }
    assert!(!store.stats().spare_ready, "the spare was used");
    assert!(
        !spare_exists(&fs),
        "the new segment is the spare, renamed: {:?}",
        fs.list(Path::new(DIR))
    );
    drop(store);
    let store = builder(&fs, Durability::Always).open(DIR).expect("reopen");
    assert!(store.recovery_report().is_clean());
    assert_eq!(store.keys(b"ns").count(), 12 + (i - 100) as usize);
}

#[test]
fn a_write_larger_than_a_segment_leaves_the_spare_for_later() {
    let fs = SimFs::new();
    let store = store_with_a_spare(&fs);
    store
        .put(b"ns", b"large", &[3; 10_000], PutOptions::default())
        .expect("a write larger than a segment gets a segment of its own");
    assert_eq!(
        store
            .get(b"ns", b"large")
            .expect("read")
            .expect("present")
            .value[..],
        [3; 10_000]
    );
    assert!(spare_exists(&fs), "a segment-sized spare cannot hold it");
    drop(store);
    let store = builder(&fs, Durability::Always).open(DIR).expect("reopen");
    assert!(store.recovery_report().is_clean());
    assert_eq!(
        store
            .get(b"ns", b"large")
            .expect("read")
            .expect("present")
            .value
            .len(),
        10_000
    );
}
