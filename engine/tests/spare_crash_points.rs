//! Crash points while spare segments are written and adopted: a durable store with small
//! segments rolls over every few puts, and its background thread writes the next spare
//! whenever the writer nudges it. The store is crashed before each mutating file-system
//! call in turn (the last unsynced write lost, torn, or replaced by garbage); each crash
//! image must open, also under the strict policy (a spare or a blank segment left by a
//! crash is no damage), and hold exactly the acknowledged puts, or those plus the one in
//! flight.
//!
//! The background thread's calls interleave with the writer's differently in each run, so a
//! call number does not name the same crash in every run (`crash_points.rs` turns spares off
//! for that reason). Here every number up to the reference run's count is tried, and most
//! must crash: how many did, and how many crash images held a spare, are checked.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{Durability, FileSystem, ManualClock, PutOptions, RecoveryPolicy, Store};

const DIR: &str = "/data";
const PUTS: usize = 40;

fn open(fs: &SimFs, policy: RecoveryPolicy) -> Result<Store, ttlcask_engine::OpenError> {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .durability(Durability::Always)
        .segment_size(8192)
        .clock(ManualClock::new(1_000_000))
        .compaction_interval(None)
        .recovery_policy(policy)
        .open(DIR)
}

fn put_of(i: usize) -> (String, Vec<u8>) {
    (format!("k{}", i % 16), vec![b'a' + (i % 26) as u8; 500 + i])
}

/// Key → value.
type Items = BTreeMap<String, Vec<u8>>;

/// Every acknowledged put, and the put in flight when a call failed.
fn run(fs: &SimFs) -> (Items, Option<(String, Vec<u8>)>) {
    let mut acked = BTreeMap::new();
    let Ok(store) = open(fs, RecoveryPolicy::Salvage) else {
        return (acked, None);
    };
    let mut segments = store.stats().segments;
    for i in 0..PUTS {
        let (key, value) = put_of(i);
        if store
            .put(b"ns", key.as_bytes(), &value, PutOptions::default())
            .is_err()
        {
            return (acked, Some((key, value)));
        }
        // Acknowledged: its fsync came before the crash, if there was one.
        acked.insert(key, value);
        if fs.crashed() {
            return (acked, None);
        }
        // After a rollover, give the background thread a moment to write the spare it was
        // nudged for: on a loaded machine the writer otherwise ran every put before it was
        // scheduled, and no crash image held a spare. Bounded; the crash may come meanwhile,
        // in either thread.
        let now = store.stats().segments;
        if now != segments {
            segments = now;
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(10);
            while !store.stats().spare_ready
                && !fs.crashed()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
    }
    (acked, None)
}

fn items(store: &Store) -> Items {
    store
        .keys(b"ns")
        .map(|key| {
            let item = store
                .get(b"ns", &key)
                .expect("no corrupt record is served")
                .expect("listed");
            (String::from_utf8(key).expect("utf8"), item.value.to_vec())
        })
        .collect()
}

#[test]
fn a_crash_while_spares_are_written_or_adopted_loses_no_acknowledged_put() {
    let total = {
        let fs = SimFs::new();
        let (acked, in_flight) = run(&fs);
        assert_eq!((acked.len(), in_flight), (16, None));
        fs.ops()
    };
    let (mut tried, mut crashed, mut with_spare) = (0, 0, 0);
    for point in 0..total {
        for torn in [Torn::No, Torn::Prefix(100), Torn::Garbage] {
            tried += 1;
            let fs = SimFs::new();
            fs.crash_at(point, torn);
            let (acked, in_flight) = run(&fs);
            let Some(image) = fs.crash_image() else {
                continue;
            };
            crashed += 1;
            let files = image.list(Path::new(DIR)).unwrap_or_default();
            if files.iter().any(|f| f.starts_with("spare")) {
                with_spare += 1;
            }
            if let Err(e) = open(&image.crash_image_now(Torn::No), RecoveryPolicy::Strict) {
                panic!(
                    "crash at call {point} ({torn:?}), files {files:?}: strict open refused: {e}"
                );
            }
            let store = open(&image, RecoveryPolicy::Salvage)
                .unwrap_or_else(|e| panic!("crash at call {point} ({torn:?}): reopen failed: {e}"));
            let got = items(&store);
            let mut with_in_flight = acked.clone();
            if let Some((key, value)) = in_flight {
                with_in_flight.insert(key, value);
            }
            assert!(
                got == acked || got == with_in_flight,
                "crash at call {point} ({torn:?}), files {files:?}: recovered {:?}, acknowledged {:?}",
                got.keys().collect::<Vec<_>>(),
                acked.keys().collect::<Vec<_>>()
            );
        }
    }
    // The runs differ only in when the background thread's calls come: nearly every number
    // names a crash.
    assert!(
        crashed * 10 >= tried * 9,
        "{crashed} of {tried} runs crashed"
    );
    assert!(
        with_spare > 0,
        "no crash image held a spare ({crashed} crashes)"
    );
    println!("{crashed} of {tried} runs crashed; {with_spare} images held a spare");
}
