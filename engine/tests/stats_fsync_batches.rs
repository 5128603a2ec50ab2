//! `Stats` reports group commit as a histogram of writes per fsync, and compaction state.

use ttlcask_engine::{Durability, ManualClock, PutOptions, Stats, Store, FSYNC_BATCH_BUCKETS};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn a_lone_durable_writer_gets_one_write_per_fsync() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Always)
        .compaction_interval(None)
        .open(dir.path())?;
    for i in 0..10u32 {
        store.put(b"ns", &i.to_le_bytes(), b"v", PutOptions::default())?;
    }
    let stats = store.stats();
    assert_eq!(stats.fsync_batches[0], 10, "{stats:?}");
    assert_eq!(stats.fsync_batches.iter().sum::<u64>(), 10);
    assert_eq!(stats.fsync_batched_writes, 10);
    Ok(())
}

#[test]
fn concurrent_durable_writers_are_counted_in_larger_buckets() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Always)
        .compaction_interval(None)
        .open(dir.path())?;
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..25u32 {
                    let key = [t.to_le_bytes(), i.to_le_bytes()].concat();
                    store
                        .put(b"ns", &key, b"v", PutOptions::default())
                        .expect("put");
                }
            });
        }
    });
    let stats = store.stats();
    assert_eq!(
        stats.fsync_batched_writes, 200,
        "every acknowledged write was covered by exactly one counted fsync: {stats:?}"
    );
    assert_eq!(stats.fsync_batches.iter().sum::<u64>(), stats.fsyncs);
    let buckets: Vec<_> = (0..FSYNC_BATCH_BUCKETS)
        .map(Stats::fsync_batch_bound)
        .collect();
    assert_eq!(buckets[1], Some(2));
    assert_eq!(buckets[FSYNC_BATCH_BUCKETS - 1], None);
    Ok(())
}

#[test]
fn compaction_state_is_reported() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_000_000);
    let store = Store::builder()
        .durability(Durability::Never)
        .clock(clock.clone())
        .compaction_interval(None)
        .segment_size(4096)
        .open(dir.path())?;
    assert_eq!(store.stats().last_compaction_ms, None);
    assert!(!store.stats().compacting);
    for i in 0..200u32 {
        store.put(
            b"ns",
            &(i % 10).to_le_bytes(),
            &[1; 64],
            PutOptions::default(),
        )?;
    }
    clock.advance_ms(5_000);
    store.compact()?;
    let stats = store.stats();
    assert_eq!(stats.last_compaction_ms, Some(1_005_000), "{stats:?}");
    assert!(stats.compactions >= 1);
    Ok(())
}
