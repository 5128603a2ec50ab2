//! Promises of the appender that the broader suites do not pin: which durability policies
//! wait for an fsync, and the adoption of the pre-written spare segment. Each test fails
//! against a mutation of `writer.rs` or `writer/rollover.rs` that the others let through (see
//! "Mutation testing" in ARCHITECTURE.md).

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

/// An `Always` store without spares, for tests that count the writer's file-system calls:
/// the background thread writing a spare would touch the file system too.
fn open_without_spares(fs: &SimFs) -> Store {
    builder(fs, Durability::Always)
        .spare_segments(false)
        .open(DIR)
        .expect("open")
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

/// The spare segment's file name.
const SPARE: &str = "spare-segment.tmp";

fn spare_exists(fs: &SimFs) -> bool {
    fs.list(Path::new(DIR))
        .expect("list")
        .iter()
        .any(|n| n == SPARE)
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
    // The spare file itself, whatever name it has later.
    let spare = fs.open(&Path::new(DIR).join(SPARE)).expect("the spare");
    assert!(spare.view().iter().all(|&b| b == 0), "a spare holds zeros");
    // Writes until the next one starts a segment.
    let mut i = 100u32;
    while segments(&fs).len() == 1 {
        store
            .put(b"ns", &i.to_le_bytes(), &[2; 150], PutOptions::default())
            .expect("put");
        i += 1;
    }
    // The new segment is that file, renamed, its header written. (The background thread
    // may have written a new spare since: a store that rolled over keeps one ready.)
    assert!(
        spare.view().iter().any(|&b| b != 0),
        "the new segment is not the spare: {:?}",
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

/// The callback of a deferred write that an earlier fsync already covered runs at once, in
/// the caller's thread: no hand-off to the sync thread for what is already durable.
#[test]
fn a_deferred_write_already_synced_is_acknowledged_at_once() {
    let fs = SimFs::new();
    let store = builder(&fs, Durability::Always).open(DIR).expect("open");
    let (version, ticket) = store
        .try_put_deferred(b"ns", b"k", b"v", PutOptions::default(), None)
        .expect("appended");
    assert!(version.is_some());
    store.sync().expect("sync");
    let caller = std::thread::current().id();
    let ran_in = Arc::new(std::sync::Mutex::new(None));
    let slot = ran_in.clone();
    store.when_durable(ticket, move |r| {
        r.expect("durable");
        *slot.lock().expect("lock") = Some(std::thread::current().id());
    });
    assert_eq!(*ran_in.lock().expect("lock"), Some(caller));
}

/// A failure other than a full disk while starting a segment poisons the store; a full
/// disk does not.
#[test]
fn only_a_full_disk_spares_the_store_when_a_segment_cannot_be_started() {
    for (kind, full) in [
        (std::io::ErrorKind::Other, false),
        (std::io::ErrorKind::StorageFull, true),
    ] {
        let fs = SimFs::new();
        let store = builder(&fs, Durability::Always).open(DIR).expect("open");
        store
            .put(b"ns", b"first", &[1; 3000], PutOptions::default())
            .expect("put");
        fs.fail_writes(Some(kind));
        let err = store
            .put(b"ns", b"second", &[2; 3000], PutOptions::default())
            .expect_err("no segment can be started");
        let health = store.health();
        if full {
            assert!(
                matches!(err, ttlcask_engine::WriteError::DiskFull(_)),
                "{err}"
            );
            assert!(health.disk_full && health.poisoned.is_none(), "{health:?}");
        } else {
            assert!(matches!(err, ttlcask_engine::WriteError::Io(_)), "{err}");
            assert!(!health.disk_full && health.poisoned.is_some(), "{health:?}");
        }
    }
}

/// Found from outside: a full ext4 refused an append into the active segment's reserved
/// blocks with ENOSPC (writing into them needed blocks of its own), and the store was
/// poisoned until a restart. A full disk is refused as one: `DiskFull`, nothing stored, the
/// store not poisoned; the next write starts a new segment once there is room, and a
/// reopen finds every acknowledged write and no damage.
#[test]
fn an_append_refused_for_space_is_a_full_disk_not_a_poisoned_store() {
    let fs = SimFs::new();
    let store = open_without_spares(&fs);
    store
        .put(b"ns", b"first", b"1", PutOptions::default())
        .expect("put");
    let segments_before = segments(&fs).len();
    fs.fail_writes(Some(std::io::ErrorKind::StorageFull));
    let err = store
        .put(b"ns", b"refused", &[2; 300], PutOptions::default())
        .expect_err("no space");
    assert!(
        matches!(err, ttlcask_engine::WriteError::DiskFull(_)),
        "{err}"
    );
    let health = store.health();
    assert!(health.poisoned.is_none() && health.disk_full, "{health:?}");
    assert_eq!(store.get(b"ns", b"refused").expect("read"), None);
    fs.fail_writes(None);
    // Writes go on, in a new segment.
    store
        .put(b"ns", b"after", b"3", PutOptions::default())
        .expect("room again");
    assert!(segments(&fs).len() > segments_before, "a new segment");
    drop(store);
    let store = open_without_spares(&fs);
    assert!(
        store.recovery_report().is_clean(),
        "{:?}",
        store.recovery_report()
    );
    assert_eq!(
        &store
            .get(b"ns", b"first")
            .expect("read")
            .expect("kept")
            .value[..],
        b"1"
    );
    assert_eq!(
        &store
            .get(b"ns", b"after")
            .expect("read")
            .expect("kept")
            .value[..],
        b"3"
    );
    assert_eq!(store.get(b"ns", b"refused").expect("read"), None);
}

/// Where the file system cannot say how much is free, a store that just found no space
/// waits a little before trying to start a segment again (refusing writes at once in
/// between), then tries again by itself.
#[test]
fn after_running_out_of_space_a_new_segment_is_tried_again_after_a_pause() {
    let fs = SimFs::new();
    let store = open_without_spares(&fs);
    store
        .put(b"ns", b"first", &[1; 3000], PutOptions::default())
        .expect("put");
    fs.fail_writes(Some(std::io::ErrorKind::StorageFull));
    let full = |r: Result<u64, ttlcask_engine::WriteError>| {
        matches!(r, Err(ttlcask_engine::WriteError::DiskFull(_)))
    };
    assert!(full(store.put(
        b"ns",
        b"second",
        &[2; 3000],
        PutOptions::default()
    )));
    // Space is back, but the store does not ask again so soon.
    fs.fail_writes(None);
    let ops = fs.ops();
    assert!(full(store.put(
        b"ns",
        b"second",
        &[2; 3000],
        PutOptions::default()
    )));
    assert_eq!(fs.ops(), ops, "refused without touching the file system");
    std::thread::sleep(Duration::from_millis(300));
    store
        .put(b"ns", b"second", &[2; 3000], PutOptions::default())
        .expect("tried again after the pause");
    assert!(!store.health().disk_full);
}

fn segment_sizes(fs: &SimFs) -> Vec<usize> {
    segments(fs)
        .iter()
        .map(|n| fs.read(&Path::new(DIR).join(n)).expect("read").len())
        .collect()
}

/// With less free space than a segment, the next segment is made smaller (halving), not
/// refused, as long as the write fits.
#[test]
fn short_of_space_for_a_whole_segment_a_smaller_one_is_started() {
    const SEGMENT: u64 = 64 << 10;
    let fs = SimFs::new();
    let store = builder(&fs, Durability::Always)
        .segment_size(SEGMENT)
        .open(DIR)
        .expect("open");
    // Room for the active segment, the space reserve (a segment and a quarter, made before
    // any data where it is short) and 20 KiB more.
    let reserve_short = (SEGMENT + SEGMENT / 4).saturating_sub(store.stats().reserve_bytes);
    fs.set_capacity(Some(fs.used() + reserve_short + (20 << 10)));
    let mut i = 0u32;
    while segments(&fs).len() < 2 {
        store
            .put(b"ns", &i.to_le_bytes(), &[3; 500], PutOptions::default())
            .expect("the next segment fits, smaller");
        i += 1;
    }
    let sizes = segment_sizes(&fs);
    assert_eq!(sizes[1] as u64, SEGMENT / 4, "{sizes:?}");
}

/// On a full disk, deletes may take the tombstone part of the space reserve for a new
/// segment once the active one is full: they never fail for want of space.
#[test]
fn deletes_on_a_full_disk_take_the_tombstone_part_of_the_space_reserve() {
    const SEGMENT: u64 = 64 << 10;
    let fs = SimFs::new();
    fs.set_capacity(Some(3 * SEGMENT + SEGMENT / 2));
    // No background thread: its tick (a second, longer than the test on a loaded machine)
    // cuts sealed segments' tails and makes the reserve again with the space that frees.
    let store = builder(&fs, Durability::Always)
        .segment_size(SEGMENT)
        .spare_segments(false)
        .open(DIR)
        .expect("open");
    // (The output part, and the tombstone part: a file each.)
    let reserve = || {
        ["space-reserve.tmp", "tombstone-reserve.tmp"].map(|name| {
            fs.read(&Path::new(DIR).join(name))
                .map(|b| b.len() as u64)
                .unwrap_or(0)
        })
    };
    assert_eq!(
        reserve(),
        [SEGMENT, SEGMENT / 4],
        "the whole reserve is made"
    );
    let mut stored = Vec::new();
    loop {
        let key = (stored.len() as u32).to_le_bytes();
        match store.put(b"ns", &key, &[4; 300], PutOptions::default()) {
            Ok(_) => stored.push(key),
            Err(ttlcask_engine::WriteError::DiskFull(_)) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(stored.len() > 300, "{} stored", stored.len());
    for (n, key) in stored[..180].iter().enumerate() {
        let r = store.delete(b"ns", key);
        assert!(
            r.is_ok(),
            "delete {n}: {r:?}; reserve {:?}, free {:?}, segments {:?}",
            reserve(),
            fs.free_space(Path::new(DIR)),
            segment_sizes(&fs)
        );
    }
    assert_eq!(
        reserve(),
        [SEGMENT, 0],
        "the tombstone part became a segment"
    );
    drop(store);
    let store = builder(&fs, Durability::Always)
        .segment_size(SEGMENT)
        .open(DIR)
        .expect("reopen");
    assert_eq!(store.get(b"ns", &stored[0]).expect("read"), None);
    assert_eq!(store.keys(b"ns").count(), stored.len() - 180);
}

/// Imports keep their version within 1 to `MAX_IMPORT_VERSION` (2^54 − 1, leaving room
/// above for the store's own below the 2^55 an open takes for plausible), and the store's
/// next version goes past the highest one imported, so no later write reuses it.
#[test]
fn imported_versions_are_bounded_and_raise_the_next_version() {
    let fs = SimFs::new();
    let store = builder(&fs, Durability::Always).open(DIR).expect("open");
    let import = |key: &[u8], version: u64| {
        let mut batch = ttlcask_engine::WriteBatch::new();
        batch.import(b"ns", key, b"v", PutOptions::default(), version);
        store.write_batch(batch)
    };
    let limit = ttlcask_engine::MAX_IMPORT_VERSION + 1;
    assert_eq!(limit, 1 << 54);
    for bad in [0, limit, limit + 1, 1 << 55, u64::MAX] {
        assert!(
            matches!(
                import(b"bad", bad),
                Err(ttlcask_engine::WriteError::ConditionFailed { .. })
            ),
            "version {bad}"
        );
    }
    assert_eq!(store.get(b"ns", b"bad").expect("read"), None);
    let top = limit - 1;
    let outcome = import(b"top", top).expect("the highest version an import may carry");
    assert!(
        matches!(outcome[..], [ttlcask_engine::BatchOutcome::Stored { version }] if version == top),
        "{outcome:?}"
    );
    let fs2 = SimFs::new();
    let store2 = builder(&fs2, Durability::Always).open(DIR).expect("open");
    let mut batch = ttlcask_engine::WriteBatch::new();
    batch.import(b"ns", b"old", b"v", PutOptions::default(), 1000);
    store2.write_batch(batch).expect("import");
    let next = store2
        .put(b"ns", b"new", b"v", PutOptions::default())
        .expect("put");
    assert!(next > 1000, "a write after the import got version {next}");
}

/// An operation that changes nothing (a delete of a missing key, a refused condition, a
/// drop of a missing namespace) writes no frame and waits for no fsync.
#[test]
fn operations_that_change_nothing_write_nothing() {
    let fs = SimFs::new();
    let store = open_without_spares(&fs);
    store
        .put(b"ns", b"k", b"v", PutOptions::default())
        .expect("put");
    let (ops, fsyncs) = (fs.ops(), store.stats().fsyncs);
    assert!(!store.delete(b"ns", b"missing").expect("delete"));
    assert!(store
        .put_if(
            b"ns",
            b"k",
            b"w",
            PutOptions::default(),
            ttlcask_engine::Condition::Absent
        )
        .expect("put_if")
        .is_none());
    assert!(!store.drop_namespace(b"missing").expect("drop"));
    assert_eq!(fs.ops(), ops, "nothing reached the file system");
    assert_eq!(store.stats().fsyncs, fsyncs);
}
