//! One test per promise of `Store` about its segments that the model test does not pin:
//! compaction (expired records, wholly expired segments, reads and writes beside it, repacking,
//! its interval), shared and background fsyncs, and spare segments.

mod store_ops_support;

use std::time::Duration;

use ttlcask_engine::{Durability, ManualClock, PutOptions, Store, WriteBatch};

use store_ops_support::*;

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
    let seg_bytes = || -> u64 {
        std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    };
    let bytes_before = seg_bytes();
    clock.set_ms(4_000);
    let report = store.compact()?;
    assert!(report.segments_deleted_unread >= 2, "{report:?}");
    // Their bytes count as reclaimed: at least what the directory gave back (cargo mutants:
    // a count of 0 or 1 went unnoticed).
    assert!(
        report.bytes_reclaimed >= bytes_before - seg_bytes(),
        "{report:?}"
    );
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
