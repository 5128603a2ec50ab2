//! One test per promise of `Store` about opening and closing that the model test does not
//! pin: the lock, options, versions across a reopen, hints, a torn tail, a flipped bit, the
//! default clock, read-only opens, and what a close leaves behind.

mod store_ops_support;

use std::sync::Arc;

use ttlcask_engine::{Clock, CompactError, ManualClock, OpenError, PutOptions, Store, WriteError};

use store_ops_support::*;

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

#[test]
fn the_system_clock_is_the_default() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let now = ttlcask_engine::SystemClock.now_ms();
    assert!(store.now_ms().abs_diff(now) < 60_000);
    let _shared: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
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
