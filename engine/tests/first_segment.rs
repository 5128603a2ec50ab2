//! The active segment an open starts: a durable store that already holds a segment's worth
//! of data starts on a small one (4 MiB), so that it soon moves to a spare of zeros written
//! ahead, whose fsyncs are cheaper; new stores, small ones and `never` stores start
//! full-size. Once a store has rolled over, a spare is kept ready. On the real file system:
//! the sizes are the files' lengths.

use std::path::Path;
use std::time::{Duration, Instant};

use ttlcask_engine::{Durability, PutOptions, Store};

const SEGMENT: u64 = 16 << 20;
const FIRST: u64 = 4 << 20;
const VALUE: usize = 64 << 10;

fn open(dir: &Path, durability: Durability) -> Store {
    Store::builder()
        .durability(durability)
        .segment_size(SEGMENT)
        .compaction_interval(None)
        .open(dir)
        .expect("open")
}

/// Length of the newest segment file (the active one while the store is open).
fn newest_segment_len(dir: &Path) -> u64 {
    let newest = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .expect("a segment");
    std::fs::metadata(newest).expect("metadata").len()
}

/// Waits (up to 20 s) until the background thread has a spare ready; fails with `why`.
fn until_a_spare_is_ready(store: &Store, why: &str) {
    let start = Instant::now();
    while !store.stats().spare_ready {
        assert!(start.elapsed() < Duration::from_secs(20), "{why}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn put_values(store: &Store, from: usize, count: usize) {
    for i in from..from + count {
        let value = vec![(i % 251) as u8; VALUE];
        store
            .put(
                b"ns",
                format!("k{i}").as_bytes(),
                &value,
                PutOptions::default(),
            )
            .expect("put");
    }
}

fn check_values(store: &Store, count: usize) {
    for i in 0..count {
        let item = store
            .get(b"ns", format!("k{i}").as_bytes())
            .expect("get")
            .unwrap_or_else(|| panic!("k{i} is missing"));
        assert_eq!(item.value.len(), VALUE);
        assert!(item.value.iter().all(|&b| b == (i % 251) as u8), "k{i}");
    }
}

#[test]
fn a_durable_store_holding_a_segment_of_data_reopens_small_then_moves_to_a_spare() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A segment and a bit of data, written without fsyncs.
    let loaded = (SEGMENT as usize + (1 << 20)) / VALUE;
    {
        let store = open(dir.path(), Durability::Never);
        put_values(&store, 0, loaded);
    }
    // `never` stores never use spares: full size.
    {
        let _store = open(dir.path(), Durability::Never);
        assert_eq!(newest_segment_len(dir.path()), SEGMENT);
    }
    let store = open(dir.path(), Durability::Always);
    assert_eq!(newest_segment_len(dir.path()), FIRST);
    // Past half of the small segment: the background thread writes a spare.
    let mut written = loaded;
    put_values(&store, written, 40);
    written += 40;
    until_a_spare_is_ready(&store, "no spare was written");
    // Past the small segment: the writer moves to the spare, full-size.
    put_values(&store, written, 40);
    written += 40;
    assert_eq!(newest_segment_len(dir.path()), SEGMENT);
    // A store that rolled over writes steadily: the next spare is made at once, though the
    // new segment is far from half full (2.5 of 16 MiB).
    until_a_spare_is_ready(&store, "no spare after the rollover");
    check_values(&store, written);
    drop(store);
    let store = open(dir.path(), Durability::Always);
    check_values(&store, written);
    // Made to ready a spare again, then closed: a closed store keeps no spare (the space
    // reserve's two files stay, for deletes and compaction after a restart on a full disk).
    put_values(&store, written, 40);
    until_a_spare_is_ready(&store, "no spare");
    drop(store);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") && n != "space-reserve.tmp" && n != "tombstone-reserve.tmp")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn new_and_small_durable_stores_start_full_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path(), Durability::Always);
        assert_eq!(newest_segment_len(dir.path()), SEGMENT);
        put_values(&store, 0, 10);
    }
    let store = open(dir.path(), Durability::Always);
    assert_eq!(newest_segment_len(dir.path()), SEGMENT);
    check_values(&store, 10);
}
