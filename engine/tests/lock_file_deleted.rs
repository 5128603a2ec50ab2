//! `LOCK` deleted while a store runs (found from outside): a second store made a new `LOCK`,
//! locked it and opened the same directory, two writers destroying each other's data. The
//! directory itself is locked too now, and cannot be deleted from under the store.

use ttlcask_engine::{OpenError, Store};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn a_second_store_is_refused_after_lock_is_deleted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let first = Store::open(dir.path())?;
    std::fs::remove_file(dir.path().join("LOCK"))?;
    let err = Store::open(dir.path()).expect_err("a second open must fail");
    assert!(matches!(err, OpenError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    // A read-only open of a directory without `LOCK` takes no lock, as before.
    std::fs::remove_file(dir.path().join("LOCK"))?;
    drop(Store::builder().read_only(true).open(dir.path())?);
    drop(first);
    Store::open(dir.path())?;
    Ok(())
}

/// The active segment deleted while the store runs (an operator's `rm`, a cleanup job):
/// writes went on being acknowledged into the deleted file, and were gone at the restart
/// (found from outside). Under `Always`, the sync that would acknowledge the next write
/// finds the file gone; under `Never`, the background thread does within a second or two.
/// Either way no write is acknowledged after that, and `health()` says why.
#[test]
fn writes_into_a_deleted_active_segment_are_not_acknowledged() -> TestResult {
    use std::time::{Duration, Instant};
    use ttlcask_engine::{Durability, PutOptions};
    for durability in [Durability::Always, Durability::Never] {
        let dir = tempfile::tempdir()?;
        let store = Store::builder().durability(durability).open(dir.path())?;
        for i in 0..20u32 {
            store.put(b"ns", &i.to_le_bytes(), &[1; 100], PutOptions::default())?;
        }
        let mut segments: Vec<_> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        segments.sort();
        let active = segments.last().expect("an active segment");
        std::fs::remove_file(active)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let refused = loop {
            let put = store.put(b"ns", b"after", &[2; 100], PutOptions::default());
            if let Err(e) = put {
                break e;
            }
            assert!(
                durability == Durability::Never,
                "a durable write into the deleted segment was acknowledged"
            );
            assert!(
                Instant::now() < deadline,
                "writes still acknowledged after 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(refused.to_string().contains("deleted"), "{refused}");
        let health = store.health();
        assert!(
            health
                .poisoned
                .as_deref()
                .is_some_and(|p| p.contains("deleted")),
            "{health:?}"
        );
    }
    Ok(())
}

/// Sealed segments deleted while the store runs (an operator's `rm` of old files): the
/// store still has them open, and compaction copies their live records into new segments
/// within a second or two, so that a restart finds every acknowledged key (a deleted
/// segment's keys were lost, reported missing at the next open). With and without its
/// hint deleted too.
#[test]
fn live_records_of_a_deleted_sealed_segment_are_copied_out() -> TestResult {
    use std::time::{Duration, Instant};
    use ttlcask_engine::{Durability, PutOptions};
    for with_hint in [false, true] {
        let dir = tempfile::tempdir()?;
        let open = || {
            Store::builder()
                .durability(Durability::Never)
                .segment_size(16 << 10)
                .compaction_interval(Some(Duration::from_secs(3600)))
                .open(dir.path())
        };
        let store = open()?;
        for i in 0..600u32 {
            store.put(
                b"ns",
                &i.to_le_bytes(),
                &[i as u8; 100],
                PutOptions::default(),
            )?;
        }
        let mut sealed: Vec<_> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        sealed.sort();
        sealed.pop(); // the active one
        assert!(sealed.len() >= 3, "several sealed segments: {sealed:?}");
        let before = store.stats().compactions;
        for seg in &sealed[..2] {
            std::fs::remove_file(seg)?;
            if with_hint {
                let _ = std::fs::remove_file(seg.with_extension("hint"));
            }
        }
        // A compaction within seconds (or none: then the restart below finds the keys lost).
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.stats().compactions == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(store.health().poisoned.is_none(), "{:?}", store.health());
        drop(store);
        let store = open()?;
        let report = store.recovery_report();
        assert!(report.is_clean(), "with_hint {with_hint}: {report:?}");
        for i in 0..600u32 {
            let item = store
                .get(b"ns", &i.to_le_bytes())?
                .expect("every key is kept");
            assert_eq!(item.value[..], [i as u8; 100]);
        }
    }
    Ok(())
}
