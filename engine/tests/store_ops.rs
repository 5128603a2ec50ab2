//! One test per public operation and promise of `Store` that the model test does not pin.

use std::sync::Arc;
use std::time::Duration;

use ttlcask_engine::{
    BatchOutcome, Clock, CompactError, Condition, Durability, IncrementError, ManualClock,
    OpenError, PutOptions, Store, WriteBatch, WriteError,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn quiet(dir: &std::path::Path, clock: &ManualClock) -> Result<Store, OpenError> {
    Store::builder()
        .durability(Durability::Never)
        .clock(clock.clone())
        .compaction_interval(None)
        .segment_size(4096)
        .open(dir)
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let first = Store::open(dir.path())?;
    let err = Store::open(dir.path()).expect_err("second open must fail");
    assert!(matches!(err, OpenError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("in use"),
        "message says what is wrong: {err}"
    );
    drop(first);
    Store::open(dir.path())?;
    Ok(())
}

#[test]
fn bad_options_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Store::builder()
        .segment_size(10)
        .open(dir.path())
        .expect_err("too small");
    assert!(err.to_string().contains("segment_size"), "{err}");
}

#[test]
fn expired_items_are_not_returned_counted_or_listed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(10_000);
    let store = quiet(dir.path(), &clock)?;
    store.put(b"ns", b"short", b"1", PutOptions::expiring_at(10_500))?;
    store.put(b"ns", b"long", b"2", PutOptions::expiring_at(20_000))?;
    store.put(b"ns", b"forever", b"3", PutOptions::default())?;
    assert_eq!(store.namespace(b"ns").map(|i| i.items), Some(3));
    // Expiry is kept in whole seconds, rounded up: never early.
    clock.set_ms(10_999);
    assert_eq!(
        store.get(b"ns", b"short")?.and_then(|i| i.expires_at_ms),
        Some(11_000)
    );
    clock.set_ms(11_000);
    assert_eq!(store.get(b"ns", b"short")?, None);
    assert_eq!(store.namespace(b"ns").map(|i| i.items), Some(2));
    let mut keys: Vec<_> = store.keys(b"ns").collect();
    keys.sort();
    assert_eq!(keys, vec![b"forever".to_vec(), b"long".to_vec()]);
    assert_eq!(store.stats().items, 2);
    // An expired key counts as absent for conditional writes and deletes.
    assert!(!store.delete(b"ns", b"short")?);
    assert!(store
        .put_if(
            b"ns",
            b"short",
            b"again",
            PutOptions::default(),
            Condition::Absent
        )?
        .is_some());
    Ok(())
}

#[test]
fn increment_creates_adds_and_rejects_non_integers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(0);
    let store = quiet(dir.path(), &clock)?;
    assert_eq!(
        store.increment(b"ns", b"n", 5, PutOptions::default().with_kind(2))?,
        5
    );
    assert_eq!(store.increment(b"ns", b"n", -7, PutOptions::default())?, -2);
    assert_eq!(
        store.get(b"ns", b"n")?.map(|i| (i.value.to_vec(), i.kind)),
        Some((b"-2".to_vec(), 2))
    );
    store.put(b"ns", b"text", b"hello", PutOptions::default())?;
    assert_eq!(
        store.increment(b"ns", b"text", 1, PutOptions::default()),
        Err(IncrementError::NotAnInteger)
    );
    store.put(
        b"ns",
        b"big",
        i64::MAX.to_string().as_bytes(),
        PutOptions::default(),
    )?;
    assert_eq!(
        store.increment(b"ns", b"big", 1, PutOptions::default()),
        Err(IncrementError::Overflow)
    );
    assert_eq!(
        &store.get(b"ns", b"big")?.expect("kept").value[..],
        i64::MAX.to_string().as_bytes()
    );
    Ok(())
}

#[test]
fn concurrent_increments_are_all_counted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Never)
        .open(dir.path())?;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    store
                        .increment(b"ns", b"hits", 1, PutOptions::default())
                        .expect("increment");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "thread panicked")?;
    }
    assert_eq!(
        &store.get(b"ns", b"hits")?.expect("present").value[..],
        b"1000"
    );
    Ok(())
}

#[test]
fn versions_are_unique_and_increase_across_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(0);
    let mut last = 0;
    for _ in 0..3 {
        let store = quiet(dir.path(), &clock)?;
        for i in 0..20u8 {
            let v = store.put(b"ns", &[i], b"v", PutOptions::default())?;
            assert!(v > last);
            last = v;
        }
        // Delete the newest key so its version exists only in a tombstone, then compact.
        store.delete(b"ns", &[19])?;
        store.compact()?;
    }
    Ok(())
}

#[test]
fn oversized_values_are_refused_and_nothing_is_stored() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder().max_value_size(100).open(dir.path())?;
    let err = store
        .put(b"ns", b"k", &[0; 101], PutOptions::default())
        .expect_err("too large");
    assert!(
        matches!(err, WriteError::TooLarge { what: "value", .. }),
        "{err}"
    );
    assert_eq!(store.get(b"ns", b"k")?, None);
    assert_eq!(
        store.namespace(b"ns"),
        None,
        "not even the namespace was created"
    );
    Ok(())
}

#[test]
fn values_larger_than_a_segment_get_a_segment_of_their_own() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(0);
    let big = vec![9u8; 20_000];
    {
        let store = quiet(dir.path(), &clock)?;
        store.put(b"ns", b"big", &big, PutOptions::default())?;
        store.put(b"ns", b"small", b"s", PutOptions::default())?;
    }
    let store = quiet(dir.path(), &clock)?;
    assert_eq!(
        &store.get(b"ns", b"big")?.expect("present").value[..],
        &big[..]
    );
    Ok(())
}

#[test]
fn namespaces_are_listed_by_prefix_with_counts_and_dropped_in_one_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(0);
    let store = quiet(dir.path(), &clock)?;
    assert!(store.create_namespace(b"t1/empty")?);
    assert!(!store.create_namespace(b"t1/empty")?);
    for i in 0..100u32 {
        store.put(
            b"t1/full",
            &i.to_be_bytes(),
            b"0123456789",
            PutOptions::default(),
        )?;
    }
    store.put(b"t2/other", b"k", b"v", PutOptions::default())?;
    let names: Vec<_> = store
        .namespaces(b"t1/")
        .into_iter()
        .map(|n| (n.name, n.items, n.live_bytes))
        .collect();
    assert_eq!(
        names,
        vec![
            (b"t1/empty".to_vec(), 0, 0),
            (b"t1/full".to_vec(), 100, 1400)
        ]
    );
    let writes_before = store.stats().writes;
    assert!(store.drop_namespace(b"t1/full")?);
    assert_eq!(store.stats().writes, writes_before + 1, "drop is one write");
    assert!(!store.drop_namespace(b"t1/full")?);
    assert_eq!(store.get(b"t1/full", &0u32.to_be_bytes())?, None);
    assert!(store.clear_namespace(b"t2/other")?);
    assert_eq!(
        store.namespace(b"t2/other").map(|n| n.items),
        Some(0),
        "a cleared namespace still exists"
    );
    drop(store);
    let store = quiet(dir.path(), &clock)?;
    assert_eq!(store.namespaces(b"").len(), 2);
    assert_eq!(store.namespace(b"t1/full"), None);
    Ok(())
}

#[test]
fn reopening_uses_hint_files_instead_of_scanning() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(0);
    {
        let store = quiet(dir.path(), &clock)?;
        for i in 0..200u32 {
            store.put(b"ns", &i.to_be_bytes(), &[1; 100], PutOptions::default())?;
        }
    }
    let store = quiet(dir.path(), &clock)?;
    let report = store.recovery_report();
    assert!(report.segments_from_hints > 1, "{report:?}");
    assert_eq!(report.segments_scanned, 0, "{report:?}");
    assert_eq!(store.keys(b"ns").count(), 200);
    Ok(())
}

/// The segment files of a data directory, oldest first.
fn segment_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut segs: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    Ok(segs)
}

#[test]
fn a_torn_tail_is_cut_and_reported() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(0);
    {
        let store = quiet(dir.path(), &clock)?;
        store.put(b"ns", b"a", b"kept", PutOptions::default())?;
    }
    // The newest segment as a crash leaves it while appending: half a frame, then the
    // zeros of its pre-allocated space; no hint.
    let segs = segment_files(dir.path())?;
    let newest = segs.last().ok_or("no segment")?;
    let _ = std::fs::remove_file(newest.with_extension("hint"));
    // A segment being appended to has no entry in the seal log yet.
    std::fs::remove_file(dir.path().join("seals.log"))?;
    let mut bytes = std::fs::read(newest)?;
    let good_len = bytes.len() as u64;
    let torn = [0xf2, b'T', b'C', 0x9a, 40, 0, 0, 0, 1, 2, 3];
    bytes.extend_from_slice(&torn);
    bytes.extend_from_slice(&[0; 4096]);
    let file_len = bytes.len() as u64;
    std::fs::write(newest, &bytes)?;
    {
        let store = quiet(dir.path(), &clock)?;
        let report = store.recovery_report();
        assert!(
            report
                .truncated
                .iter()
                .any(|&(_, at, n)| at == good_len && n == file_len - good_len),
            "{report:?}"
        );
        assert!(
            report.damaged.is_empty(),
            "a torn tail is no damage: {report:?}"
        );
        assert_eq!(&store.get(b"ns", b"a")?.expect("kept").value[..], b"kept");
    }
    assert_eq!(std::fs::metadata(newest)?.len(), good_len, "physically cut");

    // The same bytes at the end of a sealed segment (no pre-allocated zeros after them)
    // are not a write in flight: they are damage, reported and kept byte for byte.
    let mut sealed = std::fs::read(newest)?;
    sealed.extend_from_slice(&torn);
    std::fs::write(newest, &sealed)?;
    let store = quiet(dir.path(), &clock)?;
    let report = store.recovery_report();
    assert!(report.truncated.is_empty(), "{report:?}");
    assert!(
        report.damaged.iter().any(|d| d.offset == good_len),
        "{report:?}"
    );
    assert_eq!(std::fs::read(newest)?, sealed, "kept as it was");
    assert_eq!(&store.get(b"ns", b"a")?.expect("kept").value[..], b"kept");
    Ok(())
}

#[test]
fn a_flipped_bit_in_a_value_is_never_served() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(0);
    {
        let store = quiet(dir.path(), &clock)?;
        store.put(b"ns", b"a", b"precious-value", PutOptions::default())?;
    }
    let segs = segment_files(dir.path())?;
    for seg in &segs {
        let mut bytes = std::fs::read(seg)?;
        if let Some(at) = bytes.windows(14).position(|w| w == b"precious-value") {
            bytes[at + 3] ^= 0x01;
            std::fs::write(seg, &bytes)?;
        }
    }
    // The hint is still valid, so the damage is found on read.
    let store = quiet(dir.path(), &clock)?;
    assert!(
        store.get(b"ns", b"a").is_err(),
        "a damaged record must not be served"
    );
    Ok(())
}

/// Expired records in a segment compaction rewrites (not wholly expired) leave the index,
/// each counted once in `expired_removed`; live ones stay.
#[test]
fn expired_records_a_compaction_rewrites_leave_the_index() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(0);
    let store = quiet(dir.path(), &clock)?;
    for i in 0..10u32 {
        store.put(
            b"ns",
            &i.to_be_bytes(),
            &[3; 50],
            PutOptions::expiring_at(1_000),
        )?;
        store.put(
            b"ns",
            &(100 + i).to_be_bytes(),
            &[4; 50],
            PutOptions::default(),
        )?;
    }
    // Reopened, so that their segment is sealed and can be compacted.
    drop(store);
    let store = quiet(dir.path(), &clock)?;
    clock.set_ms(2_000);
    let report = store.compact()?;
    assert_eq!(report.segments_deleted_unread, 0, "{report:?}");
    assert_eq!(store.stats().expired_removed, 10);
    assert_eq!(store.stats().items, 10);
    for i in 0..10u32 {
        assert!(store.get(b"ns", &(100 + i).to_be_bytes())?.is_some());
    }
    Ok(())
}

#[test]
fn wholly_expired_segments_are_deleted_without_reading() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(0);
    let store = quiet(dir.path(), &clock)?;
    // The first segment also holds the namespace's create record, so it is rewritten.
    let expiring = |at| PutOptions::expiring_at(at);
    for i in 0..100u32 {
        store.put(b"ns", &i.to_be_bytes(), &[3; 100], expiring(1_000))?;
    }
    clock.set_ms(2_000);
    store.compact()?;
    // Later segments that expire whole can then go without being read.
    for i in 0..100u32 {
        store.put(b"ns", &i.to_be_bytes(), &[4; 100], expiring(3_000))?;
    }
    let segments_before = store.stats().segments;
    clock.set_ms(4_000);
    let report = store.compact()?;
    assert!(report.segments_deleted_unread >= 2, "{report:?}");
    assert!(store.stats().segments < segments_before);
    assert!(store.stats().expired_removed > 0);
    assert_eq!(store.keys(b"ns").count(), 0);
    drop(store);
    let store = quiet(dir.path(), &clock)?;
    assert_eq!(
        store.keys(b"ns").count(),
        0,
        "nothing expired comes back after reopen"
    );
    Ok(())
}

#[test]
fn compaction_reclaims_overwritten_space_while_reads_and_writes_go_on() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Never)
        .segment_size(16 << 10)
        .compaction_interval(None)
        .open(dir.path())?;
    for round in 0..5u32 {
        for i in 0..300u32 {
            store.put(
                b"ns",
                &i.to_be_bytes(),
                &round.to_le_bytes().repeat(25),
                PutOptions::default(),
            )?;
        }
    }
    let dead_before = store.stats().dead_bytes;
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..2_000 {
                for i in [0u32, 150, 299] {
                    let item = store
                        .get(b"ns", &i.to_be_bytes())
                        .expect("read")
                        .expect("present");
                    assert_eq!(item.value.len(), 100);
                }
            }
        })
    };
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..300u32 {
                store
                    .put(
                        b"ns",
                        &i.to_be_bytes(),
                        &9u32.to_le_bytes().repeat(25),
                        PutOptions::default(),
                    )
                    .expect("put");
            }
        })
    };
    let report = store.compact()?;
    reader.join().map_err(|_| "reader panicked")?;
    writer.join().map_err(|_| "writer panicked")?;
    assert!(report.bytes_reclaimed > 0, "{report:?}");
    assert!(store.stats().dead_bytes < dead_before);
    for i in 0..300u32 {
        assert_eq!(
            &store.get(b"ns", &i.to_be_bytes())?.expect("present").value[..4],
            &9u32.to_le_bytes()
        );
    }
    Ok(())
}

#[test]
fn concurrent_durable_writers_share_fsyncs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Always)
        .open(dir.path())?;
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50u32 {
                    store
                        .put(
                            b"ns",
                            format!("{t}-{i}").as_bytes(),
                            b"v",
                            PutOptions::default(),
                        )
                        .expect("put");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "writer panicked")?;
    }
    let stats = store.stats();
    println!("{} durable writes, {} fsyncs", stats.writes, stats.fsyncs);
    assert_eq!(stats.writes, 800);
    assert!(
        stats.fsyncs < stats.writes,
        "group commit shares fsyncs: {stats:?}"
    );
    Ok(())
}

#[test]
fn every_policy_syncs_in_the_background() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Every(Duration::from_millis(10)))
        .compaction_interval(None)
        .open(dir.path())?;
    store.put(b"ns", b"k", b"v", PutOptions::default())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.stats().fsyncs == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        store.stats().fsyncs > 0,
        "the background thread never synced"
    );
    Ok(())
}

#[test]
fn try_get_answers_hot_reads_and_sends_large_ones_to_get() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Never)
        .open(dir.path())?;
    store.put(b"ns", b"small", b"hot", PutOptions::default())?;
    store.put(b"ns", b"large", &[5; 100_000], PutOptions::default())?;
    assert_eq!(
        &store.try_get(b"ns", b"small")?.expect("present").value[..],
        b"hot"
    );
    assert_eq!(store.try_get(b"ns", b"missing")?, None);
    assert_eq!(
        store.try_get(b"ns", b"large"),
        Err(ttlcask_engine::TryGetError::WouldBlock)
    );
    assert_eq!(
        store.get(b"ns", b"large")?.expect("present").value.len(),
        100_000
    );
    Ok(())
}

#[test]
fn a_batch_sees_its_own_earlier_operations() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Never)
        .open(dir.path())?;
    store.put(b"ns", b"old", b"1", PutOptions::default())?;
    let mut batch = ttlcask_engine::WriteBatch::new();
    batch.delete(b"ns", b"old");
    batch.delete(b"ns", b"old");
    batch.put(b"ns", b"new", b"2", PutOptions::default());
    batch.delete(b"ns", b"new");
    let outcomes = store.write_batch(batch)?;
    use ttlcask_engine::BatchOutcome::{Deleted, NotFound};
    assert_eq!(&outcomes[..2], &[Deleted, NotFound]);
    assert_eq!(outcomes[3], Deleted);
    assert_eq!(store.get(b"ns", b"old")?, None);
    assert_eq!(store.get(b"ns", b"new")?, None);
    Ok(())
}

#[test]
fn the_system_clock_is_the_default() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let now = ttlcask_engine::SystemClock.now_ms();
    assert!(store.now_ms().abs_diff(now) < 60_000);
    let _shared: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    Ok(())
}

#[test]
fn durable_stores_roll_over_into_prewritten_spare_segments() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let store = Store::builder()
            .durability(Durability::Always)
            .segment_size(64 << 10)
            .compaction_interval(Some(Duration::from_secs(3600)))
            .open(dir.path())?;
        // Once the active segment is half full, the background thread writes a spare; wait
        // (bounded) until it is ready.
        for i in 0..150u32 {
            store.put(
                b"ns",
                &(1_000_000 + i).to_be_bytes(),
                &[7; 200],
                PutOptions::default(),
            )?;
        }
        let spare = dir.path().join("spare-segment.tmp");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !store.stats().spare_ready && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(store.stats().spare_ready, "no spare segment was prepared");
        assert!(spare.exists());
        let mut batch = ttlcask_engine::WriteBatch::new();
        for i in 0..400u32 {
            batch.put(b"ns", &i.to_be_bytes(), &[9; 200], PutOptions::default());
        }
        store.write_batch(batch)?;
        for i in 400..420u32 {
            store.put(b"ns", &i.to_be_bytes(), &[8; 200], PutOptions::default())?;
        }
    }
    // Without a background thread no new spare is prepared, so the old one must be gone.
    let store = Store::builder()
        .compaction_interval(None)
        .open(dir.path())?;
    assert_eq!(store.keys(b"ns").count(), 570);
    assert!(
        !dir.path().join("spare-segment.tmp").exists(),
        "a leftover spare is removed on open"
    );
    Ok(())
}

/// Names and sizes of the files in `dir`.
fn dir_listing(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().expect("metadata").len(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn read_only_opens_change_nothing_and_refuse_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::builder()
            .segment_size(4096)
            .open(dir.path())
            .expect("open");
        for i in 0..50u32 {
            store
                .put(b"ns", &i.to_be_bytes(), &[7; 100], PutOptions::default())
                .expect("put");
        }
    }
    let before = dir_listing(dir.path());
    for _ in 0..5 {
        let store = Store::builder()
            .read_only(true)
            .open(dir.path())
            .expect("read-only open");
        assert_eq!(store.stats().items, 50);
        assert_eq!(
            &store
                .get(b"ns", &7u32.to_be_bytes())
                .expect("read")
                .expect("item")
                .value[..],
            &[7; 100][..]
        );
        assert_eq!(
            store.put(b"ns", b"x", b"y", PutOptions::default()),
            Err(WriteError::ReadOnly)
        );
        assert_eq!(
            store.delete(b"ns", &7u32.to_be_bytes()),
            Err(WriteError::ReadOnly)
        );
        assert!(matches!(store.compact(), Err(CompactError::ReadOnly)));
        // A second read-only opener is kept out like a writer: the LOCK is exclusive.
        assert!(matches!(
            Store::builder().read_only(true).open(dir.path()),
            Err(OpenError::Locked { .. })
        ));
    }
    assert_eq!(
        dir_listing(dir.path()),
        before,
        "five read-only opens left no trace"
    );
    let missing = dir.path().join("missing");
    assert!(Store::builder().read_only(true).open(&missing).is_err());
    assert!(!missing.exists(), "a read-only open creates no directory");
}

#[test]
fn batches_with_conditions_and_increments_are_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let v = store
        .put(b"ns", b"a", b"1", PutOptions::default())
        .expect("put");
    let mut ok = WriteBatch::new();
    ok.put_if(
        b"ns",
        b"a",
        b"2",
        PutOptions::default(),
        Condition::VersionIs(v),
    );
    ok.increment(b"ns", b"n", 5, PutOptions::default());
    ok.increment(b"ns", b"n", -2, PutOptions::default());
    ok.put_if(
        b"ns",
        b"b",
        b"new",
        PutOptions::default(),
        Condition::Absent,
    );
    let out = store.write_batch(ok).expect("batch");
    assert!(
        matches!(out[2], BatchOutcome::Incremented { value: 3, .. }),
        "{out:?}"
    );
    assert_eq!(
        &store.get(b"ns", b"n").expect("read").expect("n").value[..],
        b"3"
    );
    for (i, bad) in [
        {
            let mut b = WriteBatch::new();
            b.put(b"ns", b"c", b"x", PutOptions::default());
            b.put_if(
                b"ns",
                b"b",
                b"again",
                PutOptions::default(),
                Condition::Absent,
            );
            b
        },
        {
            let mut b = WriteBatch::new();
            b.delete(b"ns", b"a");
            b.put(b"ns", b"c", b"x", PutOptions::default());
            b.increment(b"ns", b"b", 1, PutOptions::default());
            b
        },
        {
            let mut b = WriteBatch::new();
            b.put(b"ns", b"c", b"x", PutOptions::default());
            b.increment(b"ns", b"n", i64::MAX, PutOptions::default());
            b
        },
    ]
    .into_iter()
    .enumerate()
    {
        let want_op = [1, 2, 1][i];
        match store.write_batch(bad) {
            Err(WriteError::ConditionFailed { op, .. }) => assert_eq!(op, want_op, "batch {i}"),
            other => panic!("batch {i}: {other:?}"),
        }
        assert_eq!(
            store.get(b"ns", b"c").expect("read"),
            None,
            "batch {i} stored nothing"
        );
        assert!(
            store.get(b"ns", b"a").expect("read").is_some(),
            "batch {i}: the delete too"
        );
    }
}

#[test]
fn imports_keep_versions_and_never_overwrite_newer_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let open = || {
        Store::builder()
            .clock(clock.clone())
            .open(dir.path())
            .expect("open")
    };
    let store = open();
    let newer = store
        .put(b"ns", b"mine", b"newer", PutOptions::default())
        .expect("put");
    let mut batch = WriteBatch::new();
    batch.import(
        b"ns",
        b"a",
        b"imported",
        PutOptions::expiring_at(2_000_000),
        500,
    );
    batch.import(b"ns", b"mine", b"old", PutOptions::default(), newer);
    batch.import(b"other", b"z", b"1", PutOptions::default().with_kind(1), 7);
    let out = store.write_batch(batch).expect("import");
    assert_eq!(out[0], BatchOutcome::Stored { version: 500 });
    assert_eq!(out[1], BatchOutcome::Kept { version: newer });
    let a = store.get(b"ns", b"a").expect("read").expect("a");
    assert_eq!((a.version, a.expires_at_ms), (500, Some(2_000_000)));
    assert_eq!(store.get(b"other", b"z").expect("read").expect("z").kind, 1);
    assert_eq!(
        &store
            .get(b"ns", b"mine")
            .expect("read")
            .expect("mine")
            .value[..],
        b"newer"
    );
    // The counter moved past what was imported; re-running the import changes nothing.
    assert!(
        store
            .put(b"ns", b"after", b"x", PutOptions::default())
            .expect("put")
            > 500
    );
    let mut again = WriteBatch::new();
    again.import(
        b"ns",
        b"a",
        b"imported",
        PutOptions::expiring_at(2_000_000),
        500,
    );
    assert_eq!(
        store.write_batch(again).expect("re-run"),
        vec![BatchOutcome::Kept { version: 500 }]
    );
    // A namespace dropped after the exported versions hides them, before and after reopen.
    store.drop_namespace(b"other").expect("drop");
    let mut late = WriteBatch::new();
    late.import(b"other", b"z", b"1", PutOptions::default(), 8);
    assert!(matches!(
        store.write_batch(late).expect("import")[0],
        BatchOutcome::Kept { .. }
    ));
    drop(store);
    let store = open();
    let a = store.get(b"ns", b"a").expect("read").expect("a");
    assert_eq!((a.version, &a.value[..]), (500, &b"imported"[..]));
    assert_eq!(store.get(b"other", b"z").expect("read"), None);
}

/// A full compaction run repacks segments of single writes (a frame each) into large frames,
/// even with nothing dead in them, and reads still answer; a second run finds nothing to do,
/// and segments written in batches are left alone.
#[test]
fn a_full_compaction_repacks_single_writes_once_and_leaves_batches_alone() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_000_000);
    let store = Store::builder()
        .clock(clock.clone())
        .compaction_interval(None)
        .segment_size(64 << 10)
        .open(dir.path())?;
    let value = [7u8; 100];
    for i in 0..2_000u32 {
        store.put(
            b"single",
            format!("key-{i:06}").as_bytes(),
            &value,
            PutOptions::default(),
        )?;
    }
    for chunk in 0..20u32 {
        let mut batch = WriteBatch::new();
        for i in 0..100u32 {
            let key = format!("key-{:06}", chunk * 100 + i);
            batch.put(b"batched", key.as_bytes(), &value, PutOptions::default());
        }
        store.write_batch(batch)?;
    }
    // Seal what was written: every record is now in a sealed segment.
    drop(store);
    let store = quiet(dir.path(), &clock)?;
    let before = store.stats();
    let first = store.compact()?;
    assert!(first.segments_rewritten >= 3, "{first:?}");
    assert_eq!(first.records_dropped, 0, "{first:?}");
    assert!(
        first.records_kept >= 2_000 && first.records_kept < 3_000,
        "the single writes, and at most a segment that mixes both: {first:?}"
    );
    let after = store.stats();
    assert_eq!(after.items, before.items);
    let shrunk = before.live_bytes + before.dead_bytes - after.live_bytes - after.dead_bytes;
    assert!(shrunk > 2_000 * 20, "{before:?} → {after:?}");
    for i in (0..2_000u32).step_by(37) {
        let key = format!("key-{i:06}");
        for ns in [&b"single"[..], b"batched"] {
            let item = store.get(ns, key.as_bytes())?.expect("kept");
            assert_eq!(&item.value[..], &value[..]);
        }
    }
    let second = store.compact()?;
    assert_eq!(
        second.segments_rewritten, 0,
        "nothing left to repack: {second:?}"
    );
    Ok(())
}

/// An open adds an active segment; a close that wrote nothing removes it again, so a store
/// opened and closed often piles up no empty segments. Writes after that still land and
/// survive a reopen.
#[test]
fn opening_and_closing_without_writes_leaves_no_file_behind() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_000_000);
    let files = || -> std::io::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        names.sort();
        Ok(names)
    };
    let store = quiet(dir.path(), &clock)?;
    store.put(b"ns", b"a", b"1", PutOptions::default())?;
    drop(store);
    let before = files()?;
    for _ in 0..3 {
        let store = quiet(dir.path(), &clock)?;
        assert_eq!(&store.get(b"ns", b"a")?.expect("a").value[..], b"1");
    }
    assert_eq!(files()?, before);
    let store = quiet(dir.path(), &clock)?;
    store.put(b"ns", b"b", b"2", PutOptions::default())?;
    drop(store);
    let store = quiet(dir.path(), &clock)?;
    assert_eq!(&store.get(b"ns", b"a")?.expect("a").value[..], b"1");
    assert_eq!(&store.get(b"ns", b"b")?.expect("b").value[..], b"2");
    Ok(())
}

/// Non-blocking reads (`try_get`, which gives up while a writer holds or waits for the
/// index) beside blocking reads and writers, for a bounded time: every thread finishes. A
/// `try_get` that gave up once released a lock shard it had not taken, and the writers then
/// waited for ever; a watchdog aborts the test binary instead of letting it hang.
#[test]
fn try_get_beside_writers_never_stalls_the_store() -> TestResult {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(ttlcask_engine::Durability::Never)
        .compaction_interval(None)
        .open(dir.path())?;
    for i in 0..200u32 {
        store.put(b"ns", &i.to_be_bytes(), b"v", PutOptions::default())?;
    }
    let stop = AtomicBool::new(false);
    let finished = AtomicUsize::new(0);
    const READERS: usize = 4;
    const WRITERS: usize = 2;
    std::thread::scope(|s| {
        for t in 0..READERS as u32 {
            let (store, stop, finished) = (&store, &stop, &finished);
            s.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let key = (i % 200).to_be_bytes();
                    match store.try_get(b"ns", &key) {
                        Ok(_) => {}
                        Err(ttlcask_engine::TryGetError::WouldBlock) => {
                            store.get(b"ns", &key).expect("read");
                        }
                        Err(e) => panic!("{e}"),
                    }
                    i += 7;
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        for t in 0..WRITERS as u32 {
            let (store, stop, finished) = (&store, &stop, &finished);
            s.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    store
                        .put(b"ns", &(i % 200).to_be_bytes(), b"w", PutOptions::default())
                        .expect("put");
                    i += 3;
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        std::thread::sleep(Duration::from_millis(800));
        stop.store(true, Ordering::Relaxed);
        // Every thread must see `stop` within 10 s; stuck in the lock, they never would.
        let deadline = Instant::now() + Duration::from_secs(10);
        while finished.load(Ordering::SeqCst) < READERS + WRITERS {
            if Instant::now() > deadline {
                eprintln!("threads stuck for 10 s: the store stalled");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    Ok(())
}

/// A store closed on a disk with room to spare gives its space reserve's bytes back (a
/// closed store holds no space it does not need) and keeps its files, empty (their inodes,
/// for a file system whose inodes run out before the next open: `full_disk_inodes.rs`); on
/// a nearly full disk it keeps the bytes too for the next open (`full_disk.rs`).
#[test]
fn a_close_on_a_roomy_disk_gives_the_space_reserve_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let files = ["space-reserve.tmp", "tombstone-reserve.tmp"].map(|n| dir.path().join(n));
    let store = Store::builder()
        .segment_size(1 << 20)
        .compaction_interval(None)
        .open(dir.path())?;
    store.put(b"ns", b"k", b"v", PutOptions::default())?;
    for file in &files {
        assert!(file.metadata()?.len() > 0, "made while the store is open");
    }
    drop(store);
    for file in &files {
        assert_eq!(
            file.metadata()?.len(),
            0,
            "given back at close, the file kept"
        );
    }
    Ok(())
}

/// The background thread compacts at its interval (or when deletes find the disk full),
/// not at every tick: with an hour's interval, segments half dead stay as they are for the
/// two seconds (two ticks) this test waits, then a compaction on demand reclaims them.
#[test]
fn compaction_waits_for_its_interval() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Never)
        .compaction_interval(Some(std::time::Duration::from_secs(3600)))
        .segment_size(4096)
        .open(dir.path())?;
    for round in 0..2u8 {
        for i in 0..40u32 {
            store.put(
                b"ns",
                &i.to_le_bytes(),
                &[round; 200],
                PutOptions::default(),
            )?;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(
        store.stats().compactions,
        0,
        "compacted before its interval"
    );
    assert!(
        store.compact()?.bytes_reclaimed > 0,
        "there was something to reclaim"
    );
    Ok(())
}
