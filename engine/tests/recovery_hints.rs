//! What opening a data directory reports and rebuilds from hints: the counters of the
//! recovery report, dead-byte accounting, and hints that no longer match their segment, are
//! damaged, are read in chunks, or are written once a segment is sealed. Each test pins a
//! behaviour that a mutation of `recovery/` would break without failing the broader suites
//! (see "Mutation testing" in ARCHITECTURE.md).

mod recovery_support;

use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{Durability, FileSystem, PutOptions, Store, WriteBatch};

use recovery_support::*;

#[test]
fn the_report_counts_segments_and_records_from_hints_and_from_scans() {
    let fs = SimFs::new();
    build(&fs);
    let segments = files(&fs, ".seg").len() as u64;
    assert_eq!(segments, 2, "the workload spans two segments");

    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(
        (
            report.segments_from_hints,
            report.segments_scanned,
            report.records
        ),
        (segments, 0, RECORDS),
        "{report:?}"
    );
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.keys_lost, report.records_salvaged), (0, 0));
    check_contents(&store);
    drop(store);

    // Without hints every segment is scanned (the last opening wrote nothing: its active
    // segment was removed on close).
    remove_hints(&fs);
    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(
        (
            report.segments_from_hints,
            report.segments_scanned,
            report.records
        ),
        (0, segments, RECORDS),
        "{report:?}"
    );
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.keys_lost, report.records_salvaged), (0, 0));
    check_contents(&store);
}

#[test]
fn dead_and_live_bytes_are_the_same_after_reopening_so_compaction_still_reclaims() {
    let fs = SimFs::new();
    let (dead, live) = build(&fs);
    for with_hints in [true, false] {
        if !with_hints {
            remove_hints(&fs);
        }
        let store = open(&fs);
        let stats = store.stats();
        assert_eq!(
            (stats.dead_bytes, stats.live_bytes),
            (dead, live),
            "hints {with_hints}: {stats:?}"
        );
    }
    let store = open(&fs);
    let report = store.compact().expect("compact");
    let after = store.stats();
    assert!(
        after.dead_bytes < dead && after.live_bytes <= live,
        "compaction after reopening reclaims the dead bytes: {report:?} {after:?}"
    );
    check_contents(&store);
}

/// Offsets of a hint file's fields (see `hint.rs`).
const HINT_DATA_LEN: std::ops::Range<usize> = 16..24;

/// Hint version 2: the number of records the hint holds.
const HINT_RECORDS: std::ops::Range<usize> = 24..28;

/// `bytes` of a hint with `edit` applied and its CRC made valid again.
fn edit_hint(mut bytes: Vec<u8>, edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    bytes.truncate(bytes.len() - 4);
    edit(&mut bytes);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn a_hint_whose_data_length_differs_from_its_segment_is_not_trusted() {
    let fs = SimFs::new();
    build(&fs);
    let hint = files(&fs, ".hint")[0].clone();
    let bytes = fs.read(&path(&hint)).expect("read hint");
    let stated = u64::from_le_bytes(bytes[HINT_DATA_LEN].try_into().expect("8 bytes"));
    // One byte more than the segment holds: a hint of another version of the file.
    let stale = edit_hint(bytes, |b| {
        b[HINT_DATA_LEN].copy_from_slice(&(stated + 1).to_le_bytes());
    });
    rewrite(&fs, &hint, &stale);
    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(
        (report.segments_from_hints, report.segments_scanned),
        (1, 1),
        "the stale hint is ignored and its segment scanned: {report:?}"
    );
    assert!(
        report
            .ignored_files
            .iter()
            .any(|f| f.contains(&hint) && f.contains("stale")),
        "{report:?}"
    );
    assert_eq!(report.records, RECORDS, "{report:?}");
    check_contents(&store);
}

#[test]
fn a_hint_with_a_bad_record_is_dropped_whole_and_counted_once() {
    let fs = SimFs::new();
    build(&fs);
    let hint = files(&fs, ".hint")[0].clone();
    let bytes = fs.read(&path(&hint)).expect("read hint");
    // The header counts one record fewer than the hint holds: every record but the last
    // is applied before the hint turns out bad.
    let records = u32::from_le_bytes(bytes[HINT_RECORDS].try_into().expect("4 bytes"));
    assert!(records > 2, "{records} records");
    let bad = edit_hint(bytes, |b| {
        b[HINT_RECORDS].copy_from_slice(&(records - 1).to_le_bytes());
    });
    rewrite(&fs, &hint, &bad);
    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(
        (
            report.segments_from_hints,
            report.segments_scanned,
            report.records
        ),
        (1, 1, RECORDS),
        "the records applied from the bad hint are not counted twice: {report:?}"
    );
    assert!(
        report.ignored_files.iter().any(|f| f.contains(&hint)),
        "{report:?}"
    );
    check_contents(&store);
}

/// A hint's records are applied as its bytes arrive, before its CRC (its last bytes) is
/// read. A hint that turns out damaged then (here a key's byte flipped, which parses as
/// another key) must leave nothing of itself: loading starts over without it, so no record
/// of the key that was never written is indexed, nothing is counted twice, and the hint is
/// named in the report.
#[test]
fn a_hint_found_damaged_after_its_records_were_applied_leaves_nothing_of_itself() {
    let fs = SimFs::new();
    build(&fs);
    let hint = files(&fs, ".hint")[0].clone();
    let mut bytes = fs.read(&path(&hint)).expect("read hint");
    let at = bytes
        .windows(2)
        .rposition(|w| w == b"k7")
        .expect("a record of k7");
    bytes[at + 1] = b'Z';
    rewrite(&fs, &hint, &bytes);
    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(
        (
            report.segments_from_hints,
            report.segments_scanned,
            report.records
        ),
        (1, 1, RECORDS),
        "{report:?}"
    );
    assert!(
        report
            .ignored_files
            .iter()
            .any(|f| f.contains(&hint) && f.contains("damaged hint")),
        "{report:?}"
    );
    let keys: Vec<Vec<u8>> = store.keys(b"ns").collect();
    assert!(!keys.iter().any(|k| k == b"kZ"), "a key never written");
    assert_eq!(keys.len(), 9, "{keys:?}");
    check_contents(&store);
}

/// On the real file system a hint is read a megabyte at a time and applied as it arrives: a
/// store whose hints take several such reads opens to the same items, and one whose last
/// hint record is damaged (its CRC still the old one) opens to them too.
#[test]
fn hints_read_in_chunks_from_the_disk_give_every_item() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        Store::builder()
            .durability(Durability::Never)
            .compaction_interval(None)
            .open(dir.path())
            .expect("open")
    };
    const KEYS: u32 = 60_000;
    let key = |i: u32| format!("a-fairly-long-key-{i:08}");
    {
        let store = open();
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(5000) {
            let mut batch = WriteBatch::new();
            for &i in chunk {
                batch.put(
                    b"ns",
                    key(i).as_bytes(),
                    &i.to_le_bytes(),
                    PutOptions::default(),
                );
            }
            store.write_batch(batch).expect("batch");
        }
    }
    let hint = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "hint"))
        .expect("a hint");
    let len = std::fs::metadata(&hint).expect("hint").len();
    assert!(
        len > 1 << 20,
        "the hint takes more than one read: {len} bytes"
    );
    let check = |store: &Store| {
        for i in (0..KEYS).step_by(7) {
            let item = store
                .get(b"ns", key(i).as_bytes())
                .expect("read")
                .expect("item");
            assert_eq!(item.value[..], i.to_le_bytes());
        }
        assert_eq!(store.keys(b"ns").count(), KEYS as usize);
    };
    {
        let store = open();
        let report = store.recovery_report();
        assert!(
            report.is_clean() && report.segments_from_hints == 1,
            "{report:?}"
        );
        check(&store);
    }
    let mut bytes = std::fs::read(&hint).expect("read");
    let at = bytes.len() - 8;
    bytes[at] ^= 0x01;
    std::fs::write(&hint, &bytes).expect("write");
    let store = open();
    let report = store.recovery_report();
    assert_eq!(
        (report.segments_from_hints, report.segments_scanned),
        (0, 1),
        "{report:?}"
    );
    check(&store);
}

/// Opening from valid hints and closing again writes only what the new (empty) active
/// segment needs: the hints that were read are not written again, however many there are.
#[test]
fn hints_that_were_read_are_not_rewritten_on_close() {
    let fs = SimFs::new();
    build(&fs);
    let cycle = || {
        let before = fs.ops();
        let store = open(&fs);
        assert_eq!(store.recovery_report().segments_scanned, 0);
        drop(store);
        fs.ops() - before
    };
    let first = cycle();
    let second = cycle();
    let third = cycle();
    assert_eq!(
        (first, second),
        (third, third),
        "each opening has one more hinted segment than the one before"
    );
}

/// A sealed segment gets its hint within moments, not at the next compaction run (30 s by
/// default): a crash in between left recently sealed segments without one, and damage to
/// them then cost an unknown number of records, whose keys could read older values (found
/// from outside: no hint 10 s after a rollover, all of them after 35 s).
#[test]
fn a_sealed_segment_is_hinted_soon_after_it_is_sealed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::builder()
        .segment_size(4096)
        .compaction_interval(Some(std::time::Duration::from_secs(3600)))
        .open(dir.path())
        .expect("open");
    put_200_keys(&store);
    let hinted = || files_ending(dir.path(), ".hint").len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while hinted() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(hinted() > 0, "no hint 20 s after the segments were sealed");
    drop(store);
}
