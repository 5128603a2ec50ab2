//! One test per public operation of `Store` on items that the model test does not pin:
//! expiry, increments, size limits, namespaces, `try_get`, batches and imports.

mod store_ops_support;

use ttlcask_engine::{
    BatchOutcome, Condition, Durability, IncrementError, ManualClock, PutOptions, Store,
    WriteBatch, WriteError,
};

use store_ops_support::*;

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

/// Found from outside (seventeenth session): an expiry past 2106 (past `u32::MAX` seconds,
/// what a record keeps) was moved back to 2106, so the item expired early. Such an expiry
/// is kept as never; the last one that fits is kept as it is.
#[test]
fn an_expiry_past_2106_is_kept_as_never_not_moved_earlier() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_000);
    let store = Store::builder().clock(clock.clone()).open(dir.path())?;
    let last = u64::from(u32::MAX) * 1000;
    store.put(b"ns", b"far", b"v", PutOptions::expiring_at(1 << 42))?;
    store.put(b"ns", b"max", b"v", PutOptions::expiring_at(u64::MAX))?;
    store.put(
        b"ns",
        b"in",
        b"v",
        PutOptions::expiring_in(std::time::Duration::MAX),
    )?;
    store.put(b"ns", b"last", b"v", PutOptions::expiring_at(last))?;
    for key in [&b"far"[..], b"max", b"in"] {
        let item = store.get(b"ns", key)?.expect("stored");
        assert_eq!(item.expires_at_ms, None, "{key:?}");
    }
    assert_eq!(
        store.get(b"ns", b"last")?.expect("stored").expires_at_ms,
        Some(last)
    );
    clock.advance_ms(last - 1_000);
    assert!(store.get(b"ns", b"far")?.is_some(), "not expired in 2106");
    assert!(store.get(b"ns", b"last")?.is_none(), "expired at its time");
    Ok(())
}

/// Found from outside (seventeenth session): `create_namespace` and `import_namespace` took
/// a name over the 65,535-byte limit, wrote a frame that did not read back whole, and
/// poisoned the store. Every call that takes a namespace or key refuses or ignores one over
/// the limit, and the store goes on.
#[test]
fn oversized_namespaces_and_keys_never_poison_the_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let long = vec![b'x'; 70_000];
    let refused = |r: Result<bool, WriteError>, what: &str| match r {
        Err(WriteError::TooLarge {
            what: "namespace", ..
        })
        | Ok(false) => {}
        other => panic!("{what}: {other:?}"),
    };
    refused(store.create_namespace(&long), "create_namespace");
    refused(
        store.import_namespace(&long, 0, u64::MAX),
        "import_namespace",
    );
    refused(store.clear_namespace(&long), "clear_namespace");
    refused(store.drop_namespace(&long), "drop_namespace");
    for (ns, key) in [(&long[..], &b"k"[..]), (&b"ns"[..], &long[..])] {
        match store.delete(ns, key) {
            Ok(false) | Err(WriteError::TooLarge { .. }) => {}
            other => panic!("delete: {other:?}"),
        }
    }
    assert_eq!(store.health(), Default::default());
    store.put(b"ns", b"k", b"v", PutOptions::default())?;
    assert_eq!(&store.get(b"ns", b"k")?.expect("stored").value[..], b"v");
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
