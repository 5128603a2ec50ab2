//! An import applies a record only if the store holds no newer one, and a delete is a newer
//! record: re-running an import after the target deleted a key must not bring the key back
//! (issue 11). The store remembers a delete for as long as its tombstone is on disk, so what
//! it answers live and what it answers after a reopen are the same.

mod common;

use common::{fill_segment, open, until_next_segment, SEGMENT};
use ttlcask_engine::{BatchOutcome, Durability, ManualClock, PutOptions, Store, WriteBatch};

fn import(
    store: &Store,
    key: &[u8],
    value: &[u8],
    options: PutOptions,
    version: u64,
) -> BatchOutcome {
    let mut batch = WriteBatch::new();
    batch.import(b"ns", key, value, options, version);
    store.write_batch(batch).expect("import").remove(0)
}

fn value(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
    store
        .get(b"ns", key)
        .expect("read")
        .map(|it| it.value.to_vec())
}

#[test]
fn a_key_deleted_after_an_import_stays_deleted_when_the_import_runs_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let store = open(dir.path(), &clock);
    let first = import(&store, b"k", b"imported", PutOptions::default(), 500);
    assert_eq!(first, BatchOutcome::Stored { version: 500 });
    assert!(store.delete(b"ns", b"k").expect("delete"));
    let again = import(&store, b"k", b"imported", PutOptions::default(), 500);
    let BatchOutcome::Kept { version: deleted } = again else {
        panic!("the re-run import of a deleted key was applied: {again:?}");
    };
    assert!(
        deleted > 500,
        "the tombstone's version {deleted} is the newer one"
    );
    assert_eq!(value(&store, b"k"), None);
    // A record newer than the delete is applied, and a later delete is again remembered.
    let newer = import(&store, b"k", b"newer", PutOptions::default(), deleted + 1);
    assert_eq!(
        newer,
        BatchOutcome::Stored {
            version: deleted + 1
        }
    );
    assert_eq!(value(&store, b"k").as_deref(), Some(&b"newer"[..]));
    assert!(store.delete(b"ns", b"k").expect("delete"));
    // In one batch: a delete, then an import of an older record of the same key.
    let live = store
        .put(b"ns", b"j", b"live", PutOptions::default())
        .expect("put");
    let mut batch = WriteBatch::new();
    batch.delete(b"ns", b"j");
    batch.import(b"ns", b"j", b"old", PutOptions::default(), live - 1);
    let out = store.write_batch(batch).expect("batch");
    assert_eq!(out[0], BatchOutcome::Deleted);
    assert!(matches!(out[1], BatchOutcome::Kept { .. }), "{out:?}");
    assert_eq!(value(&store, b"j"), None);
    drop(store);

    let store = open(dir.path(), &clock);
    assert_eq!(
        value(&store, b"j"),
        None,
        "the batch's delete wins after a reopen too"
    );
    let after_reopen = import(&store, b"k", b"imported", PutOptions::default(), 500);
    assert!(
        matches!(after_reopen, BatchOutcome::Kept { version } if version > deleted),
        "a reopened store forgot the delete: {after_reopen:?}"
    );
    assert_eq!(value(&store, b"k"), None);
}

#[test]
fn an_expired_newer_record_is_not_replaced_by_an_older_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let store = open(dir.path(), &clock);
    let soon = PutOptions::expiring_at(1_000_500);
    assert_eq!(
        import(&store, b"k", b"newer", soon, 700),
        BatchOutcome::Stored { version: 700 }
    );
    clock.advance_ms(1_000);
    assert_eq!(value(&store, b"k"), None);
    assert_eq!(
        import(&store, b"k", b"older", PutOptions::default(), 650),
        BatchOutcome::Kept { version: 700 }
    );
    assert_eq!(value(&store, b"k"), None);
    assert_eq!(
        import(&store, b"k", b"newest", PutOptions::default(), 701),
        BatchOutcome::Stored { version: 701 }
    );
}

/// Imports version 5 of "k" after it was imported, deleted and compacted (`full`: until
/// nothing is left to reclaim), with or without a reopen first.
fn import_after_compaction(full: bool, reopen: bool) -> BatchOutcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000);
    let mut store = open(dir.path(), &clock);
    import(&store, b"k", b"old", PutOptions::default(), 5);
    fill_segment(&store, "a", PutOptions::default());
    assert!(store.delete(b"ns", b"k").expect("delete"));
    fill_segment(&store, "b", PutOptions::expiring_at(1_005));
    clock.advance_ms(10_000);
    if full {
        for _ in 0..4 {
            store.compact().expect("compact");
        }
    } else {
        // Only the mostly-dead segment with the tombstone; the old record's stays.
        store.compact_dead_over(0.5).expect("compact");
    }
    if reopen {
        drop(store);
        store = open(dir.path(), &clock);
    }
    let out = import(&store, b"k", b"old", PutOptions::default(), 5);
    // Whatever was answered, a reopen reads the same thing back.
    let got = value(&store, b"k");
    drop(store);
    let store = open(dir.path(), &clock);
    assert_eq!(value(&store, b"k"), got, "the index and the disk disagree");
    out
}

#[test]
fn a_delete_is_remembered_while_its_tombstone_is_on_disk_live_and_after_reopen() {
    for reopen in [false, true] {
        let partial = import_after_compaction(false, reopen);
        assert!(
            matches!(partial, BatchOutcome::Kept { version } if version > 5),
            "reopen {reopen}: the tombstone compaction kept was forgotten: {partial:?}"
        );
    }
    // Once compaction dropped the tombstone (no older record left for it to hide), live and
    // reopened stores agree on what the import does.
    let live = import_after_compaction(true, false);
    let reopened = import_after_compaction(true, true);
    assert_eq!(live, reopened);
}

#[test]
fn an_expired_record_that_compaction_turned_into_a_tombstone_still_refuses_older_imports() {
    for reopen in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(1_000);
        let mut store = open(dir.path(), &clock);
        // An older segment with a put: the expired record must leave a tombstone behind.
        fill_segment(&store, "a", PutOptions::default());
        let soon = PutOptions::expiring_at(1_005);
        import(&store, b"k", b"soon", soon, 5);
        fill_segment(&store, "b", soon);
        clock.advance_ms(10_000);
        let report = store.compact_dead_over(0.5).expect("compact");
        assert_eq!(report.segments_rewritten, 1, "{report:?}");
        if reopen {
            drop(store);
            store = open(dir.path(), &clock);
        }
        assert_eq!(
            import(&store, b"k", b"older", PutOptions::default(), 4),
            BatchOutcome::Kept { version: 5 },
            "reopen {reopen}"
        );
    }
}

/// Writes namespace creates (no puts) until a new segment has been started.
fn fill_with_creates(store: &Store, tag: &str) {
    until_next_segment(store, |i| {
        store
            .create_namespace(format!("{tag}-{i:0>40}").as_bytes())
            .expect("create");
    });
}

/// A put of a deleted key does not make the index forget the tombstone: it stays on disk, and
/// once the put expires and compaction drops it (leaving no tombstone, nothing older being
/// left), a reopen finds the old tombstone again. Found in review.
#[test]
fn a_tombstone_under_a_later_put_still_counts_once_the_put_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000);
    let store = open(dir.path(), &clock);
    store
        .put(b"ns", b"k", b"v1", PutOptions::default())
        .expect("put");
    fill_with_creates(&store, "x");
    assert!(store.delete(b"ns", b"k").expect("delete"));
    fill_with_creates(&store, "y");
    // The tombstone is kept (the first put's segment still existed) in an output of creates.
    store.compact().expect("compact");
    let later = PutOptions::expiring_at(20_005);
    store.put(b"ns", b"k", b"v2", later).expect("put");
    fill_segment(&store, "c", later);
    clock.advance_ms(40_000);
    store.compact_dead_over(0.5).expect("compact");
    let live = import(&store, b"k", b"imported", PutOptions::default(), 2);
    assert!(
        matches!(live, BatchOutcome::Kept { version } if version > 2),
        "{live:?}"
    );
    let got_live = value(&store, b"k");
    drop(store);
    let store = open(dir.path(), &clock);
    assert_eq!(
        value(&store, b"k"),
        got_live,
        "the index and the disk disagree"
    );
}

/// A delete earlier in a batch compares with the tombstone's version, as the same
/// operations one at a time do, not with the newest version the batch gave out.
#[test]
fn a_delete_earlier_in_a_batch_counts_with_its_own_version() {
    let clock = ManualClock::new(1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), &clock);
    store
        .put(b"ns", b"k", b"v", PutOptions::default())
        .expect("put");
    let mut batch = WriteBatch::new();
    batch.delete(b"ns", b"k");
    batch.import(b"ns", b"j", b"x", PutOptions::default(), 1_000);
    batch.import(b"ns", b"k", b"y", PutOptions::default(), 500);
    let together = store.write_batch(batch).expect("batch");

    let dir2 = tempfile::tempdir().expect("tempdir");
    let apart = open(dir2.path(), &clock);
    apart
        .put(b"ns", b"k", b"v", PutOptions::default())
        .expect("put");
    assert!(apart.delete(b"ns", b"k").expect("delete"));
    import(&apart, b"j", b"x", PutOptions::default(), 1_000);
    let single = import(&apart, b"k", b"y", PutOptions::default(), 500);
    assert_eq!(single, BatchOutcome::Stored { version: 500 });
    assert_eq!(together[2], single);
    // And both read back the same after a reopen.
    drop(store);
    let store = open(dir.path(), &clock);
    assert_eq!(value(&store, b"k").as_deref(), Some(&b"y"[..]));
}

/// A compaction run that drops a tombstone and then fails keeps its input segments, and so
/// the tombstone: the index must go on knowing it (found in review). Each call of the second
/// run is failed in turn; whatever the import answers then, a reopen reads the same back,
/// and an acknowledged import is never lost.
#[test]
fn a_failed_compaction_run_never_forgets_a_tombstone_still_on_disk() {
    use std::sync::Arc;
    use ttlcask_engine::sim::SimFs;
    let open = |fs: &SimFs| {
        Store::builder()
            .file_system(Arc::new(fs.clone()))
            .durability(Durability::Always)
            .segment_size(SEGMENT)
            .compaction_interval(None)
            .open("/data")
            .expect("open")
    };
    let mut failed_runs = 0;
    for k in 0..200u64 {
        let fs = SimFs::new();
        let store = open(&fs);
        import(&store, b"k", b"old", PutOptions::default(), 5);
        fill_with_creates(&store, "x");
        assert!(store.delete(b"ns", b"k").expect("delete"));
        fill_with_creates(&store, "y");
        // The first run drops the old put and keeps the tombstone (its segment still existed).
        store.compact().expect("compact");
        fill_with_creates(&store, "z");
        let start = fs.ops();
        fs.fail_op(start + k);
        let run = store.compact();
        if fs.ops() <= start + k {
            break; // the run made fewer calls: every one has been failed
        }
        let mut batch = WriteBatch::new();
        batch.import(b"ns", b"k", b"again", PutOptions::default(), 2);
        let live = store.write_batch(batch);
        if run.is_err() {
            failed_runs += 1;
        }
        let got = value(&store, b"k");
        drop(store);
        let store = open(&fs);
        // A failed call may poison the store (`Err`): nothing is acknowledged then.
        if let Ok(out) = live {
            if out[0] == (BatchOutcome::Stored { version: 2 }) {
                assert_eq!(
                    value(&store, b"k").as_deref(),
                    Some(&b"again"[..]),
                    "call {k}: acknowledged import lost"
                );
            }
            assert_eq!(
                value(&store, b"k"),
                got,
                "call {k}: the index and the disk disagree"
            );
        }
    }
    assert!(failed_runs > 0, "no failed run exercised the case");
}

/// An import creates a missing namespace with the store's next version, which earlier
/// batches of the same import have raised past the versions it goes on to import into it
/// (an export is ordered by namespace, not by version). Those items are live, and
/// compaction must keep them: it dropped every item older than its namespace's create
/// record, so a compaction after an import lost them (found from outside).
#[test]
fn an_imported_item_older_than_its_namespace_survives_compaction_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000);
    let mut store = open(dir.path(), &clock);
    let mut batch = WriteBatch::new();
    batch.import(b"first", b"x", b"x1", PutOptions::default(), 10);
    store.write_batch(batch).expect("first batch");
    let mut batch = WriteBatch::new();
    batch.import(b"late", b"k", b"older", PutOptions::default(), 3);
    assert_eq!(
        store.write_batch(batch).expect("second batch"),
        vec![BatchOutcome::Stored { version: 3 }]
    );
    let late = store
        .namespace(b"late")
        .expect("the import created the namespace");
    assert_eq!(late.items, 1);
    // Overwrites make the first segment worth compacting; fillers seal it.
    store
        .put(b"first", b"x", b"x2", PutOptions::default())
        .expect("overwrite");
    fill_segment(&store, "a", PutOptions::default());
    let mut lost = 0;
    for _ in 0..4 {
        lost += store.compact().expect("compact").records_lost;
    }
    assert_eq!(lost, 0);
    assert_eq!(
        store.get(b"late", b"k").expect("read").map(|it| it.version),
        Some(3),
        "compaction dropped the imported item"
    );
    drop(store);
    store = open(dir.path(), &clock);
    let item = store.get(b"late", b"k").expect("read after reopen");
    assert_eq!(
        item.map(|it| (it.value.to_vec(), it.version)),
        Some((b"older".to_vec(), 3))
    );
}

fn import_over_clears(store: &Store, key: &[u8], value: &[u8], version: u64) -> BatchOutcome {
    let mut batch = WriteBatch::new();
    batch.import_over_clears(b"ns", key, value, PutOptions::default(), version);
    store.write_batch(batch).expect("import").remove(0)
}

/// A cluster node that moved a cache away dropped it; when the cache comes back, its items
/// carry the new owner's versions, lower than the drop (found from outside, twelfth
/// session: a move back stored nothing and then dropped the only copy). The owner's copy
/// goes in over the drop with new versions, stays after compaction and reopen, and a
/// re-run keeps what the first run stored; a plain import still keeps them out.
#[test]
fn the_owners_copy_goes_in_over_a_newer_drop_with_new_versions() {
    owners_copy_over(|s| s.drop_namespace(b"ns"));
}

/// The same over a clear (the namespace stays, its older records hidden by its floor).
#[test]
fn the_owners_copy_goes_in_over_a_newer_clear_with_new_versions() {
    owners_copy_over(|s| s.clear_namespace(b"ns"));
}

fn owners_copy_over(wipe: impl Fn(&Store) -> Result<bool, ttlcask_engine::WriteError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let store = open(dir.path(), &clock);
    for i in 0..50u32 {
        store
            .put(
                b"ns",
                format!("old{i}").as_bytes(),
                b"stale",
                PutOptions::default(),
            )
            .expect("put");
    }
    let deleted = store
        .put(b"ns", b"gone", b"stale", PutOptions::default())
        .expect("put");
    assert!(store.delete(b"ns", b"gone").expect("delete"));
    assert!(wipe(&store).expect("drop or clear"));
    let plain = import(&store, b"old1", b"owner's", PutOptions::default(), 10);
    assert!(
        matches!(plain, BatchOutcome::Kept { version } if version > deleted),
        "a plain import is kept out by the drop: {plain:?}"
    );
    let BatchOutcome::Stored {
        version: renumbered,
    } = import_over_clears(&store, b"old1", b"owner's", 10)
    else {
        panic!("the owner's copy was kept out");
    };
    assert!(
        renumbered > deleted + 1,
        "renumbered above the drop: {renumbered}"
    );
    // A key the store deleted before its drop: the tombstone is older than the drop.
    assert!(matches!(
        import_over_clears(&store, b"gone", b"owner's", deleted),
        BatchOutcome::Stored { version } if version > renumbered
    ));
    // A version above the drop is kept as it came.
    let above = renumbered + 1000;
    assert_eq!(
        import_over_clears(&store, b"new", b"owner's", above),
        BatchOutcome::Stored { version: above }
    );
    // A re-run keeps what the first run stored: its records are newer than the drop.
    assert_eq!(
        import_over_clears(&store, b"old1", b"owner's", 10),
        BatchOutcome::Kept {
            version: renumbered
        }
    );
    let check = |store: &Store, when: &str| {
        for key in [&b"old1"[..], b"gone", b"new"] {
            assert_eq!(
                value(store, key).as_deref(),
                Some(&b"owner's"[..]),
                "{} ({when})",
                String::from_utf8_lossy(key)
            );
        }
        assert_eq!(
            value(store, b"old2"),
            None,
            "the drop or clear still hides the rest ({when})"
        );
    };
    check(&store, "live");
    store.compact().expect("compact");
    check(&store, "compacted");
    drop(store);
    let store = open(dir.path(), &clock);
    check(&store, "reopened");
}

/// An import of the highest version allowed leaves the store room to write and to open
/// again (found from outside, twelfth session: at the old bound, the writes that followed
/// took versions the open refuses as implausible: the store could not be opened again).
/// The bound is a quarter of the format's version space, so 2^54 writes fit after it.
#[test]
fn the_highest_importable_version_leaves_room_to_write_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let store = open(dir.path(), &clock);
    let top = ttlcask_engine::MAX_IMPORT_VERSION;
    assert_eq!(
        import(&store, b"k", b"v", PutOptions::default(), top),
        BatchOutcome::Stored { version: top }
    );
    let mut last = top;
    for i in 0..100u32 {
        last = store
            .put(
                b"ns",
                format!("w{i}").as_bytes(),
                b"w",
                PutOptions::default(),
            )
            .expect("put");
    }
    assert!(last > top);
    drop(store);
    let store = open(dir.path(), &clock);
    assert_eq!(value(&store, b"w99").as_deref(), Some(&b"w"[..]));
    assert!(
        store
            .put(b"ns", b"after", b"a", PutOptions::default())
            .expect("put")
            > last
    );
}

/// `import_namespace` keeps the exported creation's version, and a creation older than a
/// drop the store holds stays out, live and after a reopen; a newer one (the namespace was
/// made again after the drop, at the source) goes in.
#[test]
fn a_namespace_dropped_after_an_import_stays_dropped_when_the_import_runs_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let store = open(dir.path(), &clock);
    assert!(store.import_namespace(b"c", 400, 400).expect("import"));
    assert_eq!(store.namespace(b"c").map(|n| n.created_version), Some(400));
    assert!(!store.import_namespace(b"c", 400, 400).expect("exists"));
    assert!(store.drop_namespace(b"c").expect("drop"));
    let kept_out = |store: &Store, when: &str| {
        for (created, newest) in [(400, 400), (0, 400), (400, 401)] {
            assert!(
                !store
                    .import_namespace(b"c", created, newest)
                    .expect("again"),
                "made again over the newer drop ({created}, {newest}; {when})"
            );
        }
        assert!(store.namespace(b"c").is_none());
    };
    kept_out(&store, "live");
    drop(store);
    let store = open(dir.path(), &clock);
    kept_out(&store, "after a reopen");
    drop(store);
    let store = open(dir.path(), &clock);
    // Newer than the drop (the store's counter is past it): the source made it again.
    assert!(store.import_namespace(b"c", 0, u64::MAX).expect("newer"));
    assert!(store.namespace(b"c").is_some());
}
