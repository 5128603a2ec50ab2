//! What opening a data directory reports and rebuilds, detail by detail: the counters of
//! the recovery report, dead-byte accounting, hints that no longer match their segment,
//! segments whose header names another id, torn tails cut on disk, and entries made only of
//! a header. Each test pins a behaviour that a mutation of `recovery.rs` would break
//! without failing the broader suites (see "Mutation testing" in ARCHITECTURE.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{
    BatchOutcome, Durability, FileSystem, ManualClock, PutOptions, ReadError, RecoveryPolicy,
    RecoveryReport, Store, WriteBatch,
};

const DIR: &str = "/recovery";

fn open(fs: &SimFs) -> Store {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .segment_size(4096)
        .durability(Durability::Always)
        .compaction_interval(None)
        .clock(ManualClock::new(1_000_000))
        .open(DIR)
        .expect("open")
}

fn path(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

fn files(fs: &SimFs, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = fs
        .list(Path::new(DIR))
        .expect("list")
        .into_iter()
        .filter(|n| n.ends_with(ext))
        .collect();
    names.sort();
    names
}

fn remove_hints(fs: &SimFs) {
    for h in files(fs, ".hint") {
        fs.remove(&path(&h)).expect("remove hint");
    }
}

/// Replaces a file's bytes (a whole new length) and syncs them.
fn rewrite(fs: &SimFs, name: &str, bytes: &[u8]) {
    let f = fs.open(&path(name)).expect("open file");
    f.set_len(bytes.len() as u64).expect("set_len");
    f.write_at(bytes, 0).expect("write");
    f.sync().expect("sync");
}

/// 30 puts over 10 keys (so 20 are overwritten) and one delete, in one namespace: 32
/// records (with the namespace's create) over two 4 KiB segments, closed cleanly.
const RECORDS: u64 = 32;

fn build(fs: &SimFs) -> (u64, u64) {
    let store = open(fs);
    for i in 0..30u32 {
        let key = format!("k{}", i % 10);
        store
            .put(
                b"ns",
                key.as_bytes(),
                &[i as u8; 100],
                PutOptions::default(),
            )
            .expect("put");
    }
    assert!(store.delete(b"ns", b"k3").expect("delete"));
    let stats = store.stats();
    assert!(stats.dead_bytes > 0 && stats.live_bytes > 0, "{stats:?}");
    (stats.dead_bytes, stats.live_bytes)
}

fn check_contents(store: &Store) {
    for i in 20..30u32 {
        let key = format!("k{}", i % 10);
        let got = store.get(b"ns", key.as_bytes()).expect("read");
        if key == "k3" {
            assert_eq!(got, None, "the deleted key stays deleted");
        } else {
            assert_eq!(got.expect("present").value[..], [i as u8; 100], "{key}");
        }
    }
}

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

#[test]
fn a_segment_whose_header_names_another_id_is_ignored_and_reported() {
    let fs = SimFs::new();
    build(&fs);
    // Move the first segment to a name with another id (as a careless restore might).
    let segs = files(&fs, ".seg");
    let bytes = fs.read(&path(&segs[0])).expect("read");
    let renamed = "0000000050.seg";
    fs.create(&path(renamed)).expect("create");
    rewrite(&fs, renamed, &bytes);
    fs.remove(&path(&segs[0])).expect("remove");
    remove_hints(&fs);
    fs.sync_dir(Path::new(DIR)).expect("sync dir");
    let store = open(&fs);
    let report = store.recovery_report();
    assert!(
        report
            .ignored_files
            .iter()
            .any(|f| f.contains(renamed) && f.contains("header names segment")),
        "{report:?}"
    );
    // Nothing of the renamed file is indexed: no key points into a segment that is not
    // there, and the keys it alone held read as absent, not as an error.
    for i in 0..10 {
        let key = format!("k{i}");
        match store.get(b"ns", key.as_bytes()) {
            Ok(_) => {}
            Err(e) => panic!("{key}: {e}"),
        }
    }
    // New segments are numbered past every file name seen.
    store
        .put(b"ns", b"later", b"v", PutOptions::default())
        .expect("put");
    drop(store);
    let newest = files(&fs, ".seg").last().cloned().expect("segments");
    assert!(newest.as_str() > renamed, "{newest}");
}

/// Half a frame: the magic, a length, then nothing that checks.
const TORN: [u8; 11] = [0xF2, b'T', b'C', 0x9A, 40, 0, 0, 0, 1, 2, 3];

#[test]
fn a_torn_tail_of_the_newest_segment_is_cut_on_disk_and_reported_once() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        store
            .put(b"ns", b"a", b"kept", PutOptions::default())
            .expect("put");
    }
    {
        let store = open(&fs);
        store
            .put(b"ns", b"b", b"x", PutOptions::default())
            .expect("put");
    }
    // A later opening writes a segment after the one that will be torn: what matters is
    // that the torn segment was being appended to (the zeros of its pre-allocated space
    // follow the torn bytes), not that it is the last.
    {
        let store = open(&fs);
        store
            .put(b"ns", b"c", b"after", PutOptions::default())
            .expect("put");
    }
    remove_hints(&fs);
    // A segment being appended to has no entry in the seal log (it gets one when sealed):
    // without the log, the one made torn here is judged by its end.
    fs.remove(&path("seals.log")).expect("remove the seal log");
    let segs = files(&fs, ".seg");
    assert_eq!(segs.len(), 3);
    let newest = &segs[1];
    let mut bytes = fs.read(&path(newest)).expect("read");
    let good_len = bytes.len() as u64;
    // A small segment (one put): only its first data bytes tell that it holds data.
    assert!(bytes.len() < 192, "{}", bytes.len());
    bytes.extend_from_slice(&TORN);
    bytes.extend_from_slice(&[0; 4096]);
    rewrite(&fs, newest, &bytes);
    let cut = (TORN.len() + 4096) as u64;

    let store = open(&fs);
    let report = store.recovery_report();
    let seg_id: u32 = newest.trim_end_matches(".seg").parse().expect("id");
    assert_eq!(
        report.truncated,
        vec![(seg_id, good_len, cut)],
        "{report:?}"
    );
    assert_eq!(report.bytes_cut(), cut);
    assert!(report.damaged.is_empty(), "{report:?}");
    assert_eq!(
        fs.read(&path(newest)).expect("read").len() as u64,
        good_len,
        "the torn bytes are gone from the file"
    );
    assert_eq!(
        &store.get(b"ns", b"a").expect("read").expect("kept").value[..],
        b"kept"
    );
    store
        .put(b"ns", b"b", b"later", PutOptions::default())
        .expect("put");
    drop(store);
    remove_hints(&fs);
    let store = open(&fs);
    let report = store.recovery_report();
    assert!(
        report.is_clean(),
        "nothing is left to cut or report: {report:?}"
    );
    assert_eq!(
        &store.get(b"ns", b"b").expect("read").expect("kept").value[..],
        b"later"
    );
    assert_eq!(
        &store.get(b"ns", b"c").expect("read").expect("kept").value[..],
        b"after"
    );
}

/// A put of an empty namespace, key and value writes entries made only of a header (the
/// namespace's create and the put). Format 1 acknowledged it and then, on reopen, cut the
/// segment there and every later write with it; in format 2 it is an ordinary record.
#[test]
fn an_entry_made_only_of_a_header_survives_reopening_and_keeps_later_writes() {
    let fs = SimFs::new();
    let store = open(&fs);
    let version = store
        .put(b"", b"", b"", PutOptions::default())
        .expect("put");
    store
        .put(b"ns", b"after", b"x", PutOptions::default())
        .expect("put");
    let check = |store: &Store, what: &str| {
        let item = store
            .get(b"", b"")
            .expect("read")
            .unwrap_or_else(|| panic!("{what}: the empty key is missing"));
        assert_eq!((item.value.len(), item.version), (0, version), "{what}");
        assert_eq!(
            &store.get(b"ns", b"after").expect("read").expect(what).value[..],
            b"x",
            "{what}"
        );
        let report = store.recovery_report();
        assert!(report.is_clean(), "{what}: {report:?}");
    };
    check(&store, "before reopening");
    // A power cut: the newest segment is scanned, pre-allocated zeros and all.
    let crashed = fs.crash_image_now(Torn::No);
    drop(store);
    let store = open(&crashed);
    check(&store, "after a crash (scan)");
    drop(store);
    let store = open(&fs);
    check(&store, "after a clean close (hint)");
    store.compact().expect("compact");
    drop(store);
    remove_hints(&fs);
    let store = open(&fs);
    check(&store, "after compaction, scanned");
}

#[test]
fn a_damaged_record_of_a_sealed_segment_counts_salvaged_records_and_lost_keys() {
    let fs = SimFs::new();
    build(&fs);
    remove_hints(&fs);
    // Flip a byte inside the value of the first put of k5 (in the first segment): its
    // frame header still checks, so only that record is lost, and its newer versions in
    // the same segment make the loss moot.
    let segs = files(&fs, ".seg");
    let mut bytes = fs.read(&path(&segs[0])).expect("read");
    let value = [5u8; 100];
    let at = bytes
        .windows(value.len())
        .position(|w| w == value)
        .expect("the value is in the first segment");
    bytes[at + 50] ^= 0x40;
    rewrite(&fs, &segs[0], &bytes);
    let store = open(&fs);
    let report: RecoveryReport = store.recovery_report();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].records, Some(1), "{report:?}");
    assert_eq!(report.records, RECORDS - 1, "{report:?}");
    let first_segment_records = {
        let first: u32 = segs[0].trim_end_matches(".seg").parse().expect("id");
        assert_eq!(report.damaged[0].segment, first);
        report.records_salvaged
    };
    assert!(
        first_segment_records > 0 && first_segment_records < RECORDS - 1,
        "only the damaged segment's intact records count as salvaged: {report:?}"
    );
    // k5's newest version is in a later record, so nothing is lost.
    assert_eq!(report.keys_lost, 0, "{report:?}");
    check_contents(&store);
    assert!(!matches!(
        store.get(b"ns", b"k5"),
        Err(ReadError::Lost { .. })
    ));
}

#[test]
fn garbage_after_the_data_of_an_older_segment_is_damage_kept_on_disk() {
    garbage_after_an_older_segment(true);
}

/// The same in a data dir from before the seal log: the segment is judged by its end, which
/// is no pre-allocated zeros.
#[test]
fn garbage_after_the_data_of_an_older_segment_is_damage_without_the_seal_log_too() {
    garbage_after_an_older_segment(false);
}

fn garbage_after_an_older_segment(seal_log: bool) {
    let fs = SimFs::new();
    build(&fs);
    remove_hints(&fs);
    if !seal_log {
        fs.remove(&path("seals.log")).expect("remove the seal log");
    }
    let segs = files(&fs, ".seg");
    let mut bytes = fs.read(&path(&segs[0])).expect("read");
    let good_len = bytes.len();
    bytes.extend_from_slice(&TORN);
    rewrite(&fs, &segs[0], &bytes);
    let store = open(&fs);
    let report = store.recovery_report();
    let first: u32 = segs[0].trim_end_matches(".seg").parse().expect("id");
    assert!(
        report.truncated.is_empty(),
        "only the newest segment is cut: {report:?}"
    );
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    let d = &report.damaged[0];
    assert_eq!(
        (d.segment, d.offset, d.len, d.records),
        (first, good_len as u64, TORN.len() as u64, None),
        "{report:?}"
    );
    assert_eq!(report.records, RECORDS, "{report:?}");
    assert_eq!(
        fs.read(&path(&segs[0])).expect("read").len(),
        good_len + TORN.len(),
        "the damaged file is kept whole as evidence"
    );
    check_contents(&store);
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

/// Flips a byte of the first record of `ns` whose bytes contain `marker`, in the only
/// segment with data, with hints removed (so the segment is scanned).
fn damage_record(fs: &SimFs, marker: &[u8]) {
    remove_hints(fs);
    for seg in files(fs, ".seg") {
        let mut bytes = fs.read(&path(&seg)).expect("read");
        if let Some(at) = bytes.windows(marker.len()).position(|w| w == marker) {
            bytes[at] ^= 0x20;
            rewrite(fs, &seg, &bytes);
            return;
        }
    }
    panic!("marker not found");
}

/// The namespace's create record is lost to damage, a clear after it survived, and so did a
/// put after the clear: the namespace still exists and the put reads back.
#[test]
fn items_after_a_clear_survive_the_loss_of_their_namespaces_create() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        // The create and the first put share a frame.
        store
            .put(b"lost-create", b"k", b"before", PutOptions::default())
            .expect("put");
        assert!(store.clear_namespace(b"lost-create").expect("clear"));
        store
            .put(b"lost-create", b"j", b"after", PutOptions::default())
            .expect("put");
    }
    // The create record is the first record naming the namespace.
    damage_record(&fs, b"lost-create");
    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].records, Some(1), "{report:?}");
    assert_eq!(
        store
            .get(b"lost-create", b"j")
            .expect("j reads")
            .map(|i| i.value.to_vec()),
        Some(b"after".to_vec()),
        "an intact put after the clear is not lost with the create: {report:?}"
    );
    assert!(store.namespace(b"lost-create").is_some());
    assert_eq!(store.get(b"lost-create", b"k").expect("read"), None);
    // Compaction copies the damaged segment's intact records out and keeps the damage as
    // evidence: the namespace and its put survive that and another opening.
    let compaction = store.compact().expect("compact");
    assert_eq!(
        (compaction.segments_rewritten, compaction.damaged_ranges),
        (1, 1),
        "{compaction:?}"
    );
    drop(store);
    let store = open(&fs);
    assert_eq!(
        store
            .get(b"lost-create", b"j")
            .expect("j reads")
            .map(|i| i.value.to_vec()),
        Some(b"after".to_vec()),
        "after compaction and reopening: {:?}",
        store.recovery_report()
    );
}

/// A clear of one namespace makes moot the lost records of that namespace only.
#[test]
fn a_clear_of_another_namespace_does_not_make_a_lost_key_moot() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        store
            .put(b"other", b"a", b"1", PutOptions::default())
            .expect("put");
        store
            .put(b"mine", b"k", b"old-value", PutOptions::default())
            .expect("put");
        store
            .put(b"mine", b"k", b"new-value", PutOptions::default())
            .expect("put");
        assert!(store.clear_namespace(b"other").expect("clear"));
    }
    damage_record(&fs, b"new-value");
    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(report.keys_lost, 1, "{report:?}");
    assert!(
        matches!(store.get(b"mine", b"k"), Err(ReadError::Lost { .. })),
        "the newest record of k is lost: never answer the older value"
    );
}

/// A namespace whose create is lost and of which no item survived is not rebuilt, even if
/// a clear of it survived: a lost mark does not say whether the lost record created or
/// dropped the namespace, and only surviving items prove that it still exists.
#[test]
fn a_namespace_whose_create_is_lost_and_no_item_survived_is_not_listed() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        store
            .put(b"kept", b"a", b"1", PutOptions::default())
            .expect("put");
        assert!(store.create_namespace(b"only-created").expect("create"));
        assert!(store.clear_namespace(b"only-created").expect("clear"));
    }
    damage_record(&fs, b"only-created");
    let store = open(&fs);
    let report = store.recovery_report();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].records, Some(1), "{report:?}");
    assert!(store.namespace(b"only-created").is_none());
    assert!(store.namespace(b"kept").is_some());
}

fn open_at(fs: &SimFs, clock: &ManualClock) -> Store {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .segment_size(4096)
        .durability(Durability::Always)
        .compaction_interval(None)
        .clock(clock.clone())
        .open(DIR)
        .expect("open")
}

/// Recovery notes, per segment, the latest expiry of its puts and whether it holds puts at
/// all: a segment of expired puts whose only older neighbour holds no put is deleted
/// without being read, and a later segment of puts that never expire is kept.
#[test]
fn recovered_segments_know_their_expiry_and_that_they_hold_no_puts() {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000_000);
    {
        let store = open_at(&fs, &clock);
        assert!(store.create_namespace(b"ns").expect("create"));
    }
    {
        let store = open_at(&fs, &clock);
        for i in 0..5u32 {
            store
                .put(
                    b"ns",
                    &i.to_le_bytes(),
                    b"short-lived",
                    PutOptions::expiring_at(2_000_000),
                )
                .expect("put");
        }
    }
    {
        // A segment of puts that never expire: never "wholly expired".
        let store = open_at(&fs, &clock);
        store
            .put(b"ns", b"forever", b"v", PutOptions::default())
            .expect("put");
    }
    for with_hints in [true, false] {
        let image = fs.crash_image_now(Torn::No);
        if !with_hints {
            remove_hints(&image);
        }
        let clock = ManualClock::new(3_000_000);
        let store = open_at(&image, &clock);
        let report = store.compact().expect("compact");
        assert_eq!(
            report.segments_deleted_unread, 1,
            "hints {with_hints}: {report:?}"
        );
        assert_eq!(
            store.keys(b"ns").collect::<Vec<_>>(),
            vec![b"forever".to_vec()]
        );
    }
}

/// A segment of expired puts is not deleted unread while an older segment holds a put of
/// the same key: the older value would come back.
#[test]
fn recovered_segments_that_hold_puts_block_the_unread_deletion_of_newer_expired_ones() {
    let fs = SimFs::new();
    let clock = ManualClock::new(1_000_000);
    {
        let store = open_at(&fs, &clock);
        store
            .put(b"ns", b"k", b"old-value", PutOptions::default())
            .expect("put");
        // Live neighbours keep this segment from being worth rewriting.
        for i in 0..20u32 {
            store
                .put(b"ns", &i.to_le_bytes(), &[7; 100], PutOptions::default())
                .expect("put");
        }
    }
    {
        let store = open_at(&fs, &clock);
        store
            .put(
                b"ns",
                b"k",
                b"new-value",
                PutOptions::expiring_at(2_000_000),
            )
            .expect("put");
    }
    clock.set_ms(3_000_000);
    let store = open_at(&fs, &clock);
    let report = store.compact_dead_over(0.9).expect("compact");
    assert_eq!(report.segments_deleted_unread, 0, "{report:?}");
    assert_eq!(store.get(b"ns", b"k").expect("read"), None);
    // The puts that never expire are all still there.
    assert_eq!(store.keys(b"ns").count(), 20);
    drop(store);
    let store = open_at(&fs, &clock);
    assert_eq!(
        store.get(b"ns", b"k").expect("read"),
        None,
        "the expired value hid the older one, and still does"
    );
}

/// A namespace dropped before a reopen still refuses imports at or below the drop's
/// version: replay would hide them, so acknowledging one would lose it at the next open.
#[test]
fn a_drop_before_a_reopen_still_refuses_older_imports() {
    let fs = SimFs::new();
    {
        let store = open(&fs);
        store
            .put(b"gone", b"k", b"v", PutOptions::default())
            .expect("put");
        assert!(store.drop_namespace(b"gone").expect("drop"));
    }
    let store = open(&fs);
    let mut batch = WriteBatch::new();
    batch.import(b"gone", b"k", b"old", PutOptions::default(), 2);
    let outcome = store.write_batch(batch).expect("batch");
    assert!(
        matches!(outcome[..], [BatchOutcome::Kept { .. }]),
        "{outcome:?}"
    );
    drop(store);
    let store = open(&fs);
    assert_eq!(store.get(b"gone", b"k").expect("read"), None);
}

fn write_file(fs: &SimFs, name: &str, bytes: &[u8]) {
    let f = fs.create(&path(name)).expect("create");
    f.write_at(bytes, 0).expect("write");
    f.sync().expect("sync");
    fs.sync_dir(Path::new(DIR)).expect("sync dir");
}

fn exists(fs: &SimFs, name: &str) -> bool {
    files(fs, name).iter().any(|n| n == name)
}

/// A leftover temporary file and a segment whose header never reached the disk are removed
/// by a writable open and left alone by a read-only one.
#[test]
fn leftovers_are_removed_only_by_a_writable_open() {
    let fs = SimFs::new();
    open(&fs)
        .put(b"ns", b"k", b"v", PutOptions::default())
        .expect("put");
    write_file(&fs, "0000000001.hint.tmp", b"half a hint");
    write_file(&fs, "0000000090.seg", &[0; 4096]);
    {
        let store = Store::builder()
            .file_system(Arc::new(fs.clone()))
            .read_only(true)
            .open(DIR)
            .expect("read-only open");
        assert!(
            store
                .recovery_report()
                .ignored_files
                .iter()
                .any(|f| f.contains("0000000090.seg") && f.contains("blank")),
            "{:?}",
            store.recovery_report()
        );
    }
    assert!(exists(&fs, "0000000001.hint.tmp"));
    assert!(exists(&fs, "0000000090.seg"));
    let store = open(&fs);
    assert!(!exists(&fs, "0000000001.hint.tmp"));
    assert!(!exists(&fs, "0000000090.seg"));
    assert_eq!(
        &store.get(b"ns", b"k").expect("read").expect("k").value[..],
        b"v"
    );
}

/// `Strict` accepts a blank segment (a crash while starting one) but refuses a segment
/// file that is not a segment at all.
#[test]
fn strict_accepts_a_blank_segment_but_not_a_foreign_one() {
    let fs = SimFs::new();
    open(&fs)
        .put(b"ns", b"k", b"v", PutOptions::default())
        .expect("put");
    let strict = |fs: &SimFs| {
        Store::builder()
            .file_system(Arc::new(fs.clone()))
            .compaction_interval(None)
            .recovery_policy(RecoveryPolicy::Strict)
            .open(DIR)
    };
    write_file(&fs, "0000000090.seg", &[0; 4096]);
    let store = strict(&fs).expect("a blank segment is no damage");
    drop(store);
    write_file(&fs, "0000000095.seg", &[0x5A; 4096]);
    let refused = strict(&fs).expect_err("a foreign segment file is damage");
    assert!(refused.to_string().contains("0000000095.seg"), "{refused}");
}

/// A durable store of 4 KiB segments in `dir`, without background compaction.
fn durable_store(dir: &Path, policy: RecoveryPolicy) -> Result<Store, ttlcask_engine::OpenError> {
    Store::builder()
        .segment_size(4096)
        .durability(Durability::Always)
        .compaction_interval(None)
        .recovery_policy(policy)
        .open(dir)
}

/// The seal log is advice: one that cannot be read (here a directory in its place, as a bad
/// sector would make it) is reported and costs its checks; a salvaging open goes on (it
/// failed with the read's error before), a strict one refuses as for any reported problem,
/// and `verify` names it instead of failing.
#[test]
fn an_unreadable_seal_log_is_reported_and_the_store_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |policy| durable_store(dir.path(), policy);
    let store = open(RecoveryPolicy::Salvage).expect("open");
    put_200_keys(&store);
    drop(store);
    let log = dir.path().join("seals.log");
    assert!(log.exists(), "the store logged its sealed segments");
    std::fs::remove_file(&log).expect("remove");
    std::fs::create_dir(&log).expect("a directory in its place");
    // A segment file of zeros: blank, or a sealed one zeroed whole, which only the log could
    // tell apart. With the log unreadable it is kept.
    let zeroed = dir.path().join("0000000099.seg");
    std::fs::write(&zeroed, vec![0u8; 4096]).expect("a zeroed segment");
    let report = ttlcask_engine::verify(dir.path()).expect("verify reads the rest");
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.file == log && d.problem.contains("unreadable")),
        "{report:?}"
    );
    match open(RecoveryPolicy::Strict) {
        Err(ttlcask_engine::OpenError::Damaged(why)) => {
            assert!(why.contains("seals.log"), "{why}")
        }
        other => panic!("a strict open: {other:?}"),
    }
    let store = open(RecoveryPolicy::Salvage).expect("a salvaging open");
    let report = store.recovery_report();
    assert!(
        report
            .ignored_files
            .iter()
            .any(|f| f.contains("seals.log") && f.contains("unreadable")),
        "{report:?}"
    );
    for i in 0..200u32 {
        let item = store.get(b"ns", &i.to_le_bytes()).expect("read");
        assert_eq!(item.map(|v| v.value.len()), Some(100), "key {i}");
    }
    drop(store);
    assert!(
        zeroed.exists(),
        "not removed as blank while the log is unreadable"
    );
    assert!(
        log.is_dir(),
        "the unreadable log is left as it is, not written anew"
    );
}

/// `verify` and an open agree on a segment deleted outside the store whose hint is left:
/// damage (the open marks lost the records the hint names that nothing newer covers), where
/// `verify` had warned "hint of a segment that no longer exists (never used)" and called
/// the directory clean while older values were served (found from outside).
#[test]
fn verify_reports_a_missing_segment_whose_hint_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        Store::builder()
            .segment_size(4096)
            .compaction_interval(None)
            .open(dir.path())
    };
    let store = open().expect("open");
    for round in 0..2u8 {
        for i in 0..60u32 {
            store
                .put(
                    b"ns",
                    &i.to_le_bytes(),
                    &[round; 100],
                    PutOptions::default(),
                )
                .expect("put");
        }
    }
    drop(store);
    // The newest hinted segment holds second-round values that overwrote older ones.
    let hints = files_ending(dir.path(), ".hint");
    let hint = hints.last().expect("a hinted segment").clone();
    let segment = dir.path().join(hint.replace(".hint", ".seg"));
    std::fs::remove_file(&segment).expect("remove the segment");
    let report = ttlcask_engine::verify(dir.path()).expect("verify");
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.file.ends_with(&hint) && d.problem.contains("missing")),
        "{report:?}"
    );
    let store = open().expect("a salvaging open");
    assert!(
        store
            .recovery_report()
            .damaged
            .iter()
            .any(|d| d.problem.contains("missing")),
        "{:?}",
        store.recovery_report()
    );
    let mut lost = 0;
    for i in 0..60u32 {
        match store.get(b"ns", &i.to_le_bytes()) {
            Ok(Some(item)) => assert_eq!(item.value[0], 1, "key {i} reads an older value"),
            Err(ttlcask_engine::ReadError::Lost { .. }) => lost += 1,
            other => panic!("key {i}: {other:?}"),
        }
    }
    assert!(lost > 0, "the deleted segment's keys read as lost");
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

/// `verify` judges a sealed segment zeroed whole (or cut to nothing) as the open does:
/// damage whose records are lost, where it had said "blank segment (removed at open)" while
/// the open kept the file and reported the loss (found from outside).
#[test]
fn verify_calls_a_zeroed_sealed_segment_damage_not_blank() {
    let dir = closed_dir_of_200_keys();
    let first = dir.path().join("0000000001.seg");
    for emptied in [false, true] {
        let len = std::fs::metadata(&first).expect("segment").len();
        let bytes = if emptied {
            Vec::new()
        } else {
            vec![0u8; len as usize]
        };
        std::fs::write(&first, bytes).expect("damage");
        let report = ttlcask_engine::verify(dir.path()).expect("verify");
        let said: Vec<_> = report
            .damage
            .iter()
            .filter(|d| d.file == first)
            .map(|d| d.problem.clone())
            .collect();
        assert!(
            said.iter().any(|p| p.contains("sealed with"))
                && !said.iter().any(|p| p.contains("blank")),
            "emptied {emptied}: {said:?}"
        );
    }
}

/// Puts 200 keys of 100-byte values: several 4 KiB segments.
fn put_200_keys(store: &Store) {
    for i in 0..200u32 {
        store
            .put(b"ns", &i.to_le_bytes(), &[7; 100], PutOptions::default())
            .expect("put");
    }
}

/// `verify` says when a damaged segment's evidence may be deleted: not while an older
/// segment is left, which may hold the older values of the keys it lost (found from
/// outside: following its advice to delete the evidence served 16 overwritten values).
#[test]
fn verify_says_evidence_is_not_to_be_deleted_while_older_segments_are_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        Store::builder()
            .segment_size(4096)
            .compaction_interval(None)
            .open(dir.path())
            .expect("open")
    };
    let store = open();
    // Older segments whose records stay live (never rewritten), then keys and their
    // overwrites.
    for i in 0..100u32 {
        store
            .put(b"kept", &i.to_le_bytes(), &[6; 100], PutOptions::default())
            .expect("put");
    }
    put_200_keys(&store);
    for i in 0..200u32 {
        store
            .put(b"ns", &i.to_le_bytes(), &[8; 100], PutOptions::default())
            .expect("overwrite");
    }
    drop(store);
    // A record of the newest sealed segment damaged, its hint gone: the open scans and
    // finds it, compaction moves the segment aside as evidence.
    let segments = files_ending(dir.path(), ".seg");
    let victim = segments[segments.len() - 2].clone();
    let _ = std::fs::remove_file(dir.path().join(victim.replace(".seg", ".hint")));
    let path = dir.path().join(&victim);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[200] ^= 0x55;
    std::fs::write(&path, bytes).expect("damage");
    let store = open();
    store.compact_dead_over(0.9).expect("compact");
    drop(store);
    let report = ttlcask_engine::verify(dir.path()).expect("verify");
    let said: Vec<_> = report
        .damage
        .iter()
        .filter(|d| d.file.extension().is_some_and(|e| e == "damaged"))
        .map(|d| d.problem.clone())
        .collect();
    assert_eq!(said.len(), 1, "{report:?}");
    assert!(said[0].contains("do not delete it yet"), "{said:?}");
    // A full run rewrites (repacks) the older segments into new ones: then it may go.
    let store = open();
    store.compact().expect("a full run");
    drop(store);
    let report = ttlcask_engine::verify(dir.path()).expect("verify");
    let said: Vec<_> = report
        .damage
        .iter()
        .filter(|d| d.file.extension().is_some_and(|e| e == "damaged"))
        .map(|d| d.problem.clone())
        .collect();
    assert!(
        said.len() == 1 && said[0].contains("no older segment is left"),
        "{said:?}"
    );
}

/// The names of the files in `dir` ending in `suffix`, sorted.
fn files_ending(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// `verify` agrees with the open on a segment deleted with its hint: missing, where the
/// seal log says the store sealed it and never removed it; segments compaction removed are
/// not reported.
#[test]
fn verify_reports_a_segment_deleted_with_its_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        Store::builder()
            .segment_size(4096)
            .durability(Durability::Always)
            .compaction_interval(None)
            .open(dir.path())
            .expect("open")
    };
    let store = open();
    put_200_keys(&store);
    put_200_keys(&store);
    assert!(store.compact().expect("compact").segments_rewritten > 0);
    drop(store);
    drop(open());
    let report = ttlcask_engine::verify(dir.path()).expect("verify");
    assert!(report.is_clean(), "{report:?}");
    // A hint deleted alone is no missing segment (the segment is scanned instead).
    let hints = files_ending(dir.path(), ".hint");
    std::fs::remove_file(dir.path().join(&hints[1])).expect("remove a hint");
    let report = ttlcask_engine::verify(dir.path()).expect("verify");
    assert!(
        !report
            .damage
            .iter()
            .any(|d| d.problem.starts_with("missing")),
        "{report:?}"
    );
    let hint = hints[0].clone();
    let segment = hint.replace(".hint", ".seg");
    std::fs::remove_file(dir.path().join(&hint)).expect("remove hint");
    std::fs::remove_file(dir.path().join(&segment)).expect("remove segment");
    let report = ttlcask_engine::verify(dir.path()).expect("verify");
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.file.ends_with(&segment) && d.problem.starts_with("missing")),
        "{report:?}"
    );
}

/// A file `verify` cannot read is damage named as such, and the rest is still checked (it
/// gave up on the first one with "Permission denied", naming no file: found from outside,
/// twelfth session).
#[test]
fn verify_names_a_file_it_cannot_read_and_checks_the_rest() {
    let dir = closed_dir_of_200_keys();
    let hints = files_ending(dir.path(), ".hint");
    let segments = files_ending(dir.path(), ".seg");
    assert!(hints.len() >= 2 && segments.len() >= 2);
    // A directory in a hint's place (root reads any file, so unreadable by mode would not
    // fail where the tests run as root).
    let hint = dir.path().join(&hints[0]);
    std::fs::remove_file(&hint).expect("remove");
    std::fs::create_dir(&hint).expect("a directory in its place");
    let report = ttlcask_engine::verify(dir.path()).expect("verify reads the rest");
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.file == hint && d.problem.starts_with("cannot be read")),
        "{report:?}"
    );
    assert_eq!(report.segments, segments.len() as u64, "{report:?}");
}

/// What a kill -9 leaves behind, a write torn at the end of the segment being appended to
/// (cut) or a segment whose header never reached the disk (removed), is no damage: `verify`
/// warns and exits clean, and the open report is clean (found from outside, twelfth
/// session: both made an ordinary crash read as "recovery found damage", and `verify` exit 1).
#[test]
fn what_a_crash_leaves_is_a_warning_not_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        Store::builder()
            .segment_size(4096)
            .compaction_interval(None)
            .open(dir.path())
            .expect("open")
    };
    let store = open();
    put_200_keys(&store);
    drop(store);
    // The newest segment as a crash leaves it: not sealed (no seal log entry), a torn write
    // after its data, then the zeros of its pre-allocated space. And a blank segment.
    std::fs::remove_file(dir.path().join("seals.log")).expect("remove the seal log");
    let segments = files_ending(dir.path(), ".seg");
    let newest = dir.path().join(segments.last().expect("a segment"));
    // (It has no hint yet: hints come once a segment is sealed.)
    std::fs::remove_file(newest.with_extension("hint")).expect("remove its hint");
    let mut bytes = std::fs::read(&newest).expect("read");
    bytes.extend_from_slice(&TORN);
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&newest, &bytes).expect("write");
    let blank = dir.path().join("0000009999.seg");
    std::fs::write(&blank, [0u8; 4096]).expect("a blank segment");
    let report = ttlcask_engine::verify(dir.path()).expect("verify");
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("torn by a crash"))
            && report.warnings.iter().any(|w| w.contains("blank segment")),
        "{report:?}"
    );
    let store = open();
    let found = store.recovery_report();
    assert!(found.is_clean(), "{found:?}");
    assert_eq!(found.truncated.len(), 1, "{found:?}");
    drop(store);
    assert_eq!(
        ttlcask_engine::verify(dir.path())
            .expect("verify")
            .warnings
            .iter()
            .filter(|w| w.contains("torn by a crash"))
            .count(),
        0,
        "the open cut the tail"
    );
    // Zeros alone after the data of a segment being appended to are no torn write.
    let newest_now = dir
        .path()
        .join(files_ending(dir.path(), ".seg").last().expect("a segment"));
    let _ = std::fs::remove_file(newest_now.with_extension("hint"));
    let _ = std::fs::remove_file(dir.path().join("seals.log"));
    let mut bytes = std::fs::read(&newest_now).expect("read");
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&newest_now, &bytes).expect("write");
    let report = ttlcask_engine::verify(dir.path()).expect("verify");
    assert!(
        report.is_clean() && !report.warnings.iter().any(|w| w.contains("torn")),
        "{report:?}"
    );
    // Damage is still damage: a byte flipped inside a sealed segment's data.
    let first = dir.path().join(&files_ending(dir.path(), ".seg")[0]);
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[200] ^= 0x40;
    std::fs::write(&first, &bytes).expect("write");
    assert!(!ttlcask_engine::verify(dir.path())
        .expect("verify")
        .is_clean());
}

/// `verify` judges headers and blank segments as the open does: a header naming another
/// segment that is here is damage read with a rebuilt header, one naming a segment that is
/// not here is a renamed file (ignored at open); a blank segment the seal log says was
/// started is damage, one it does not name is what a crash leaves (a warning).
#[test]
fn verify_judges_foreign_headers_and_blank_segments_as_the_open_does() {
    let dir = closed_dir_of_200_keys();
    let segments = files_ending(dir.path(), ".seg");
    let (first, second) = (dir.path().join(&segments[0]), dir.path().join(&segments[1]));
    let header: Vec<u8> = std::fs::read(&first).expect("read")[..72].to_vec();
    let mut bytes = std::fs::read(&second).expect("read");
    bytes[..72].copy_from_slice(&header);
    std::fs::write(&second, &bytes).expect("write");
    let renamed = dir.path().join("0000009000.seg");
    std::fs::rename(
        dir.path().join(segments.last().expect("a segment")),
        &renamed,
    )
    .expect("rename");
    // A seal log entry saying segment 9001 was started (id, length u64::MAX - 1, CRC), its
    // file all zeros; and a blank 9002 the log does not name.
    let mut entry = Vec::new();
    entry.extend_from_slice(&9001u32.to_le_bytes());
    entry.extend_from_slice(&(u64::MAX - 1).to_le_bytes());
    let crc = crc32fast::hash(&entry);
    entry.extend_from_slice(&crc.to_le_bytes());
    let mut log = std::fs::read(dir.path().join("seals.log")).expect("read the log");
    log.extend_from_slice(&entry);
    std::fs::write(dir.path().join("seals.log"), &log).expect("write the log");
    std::fs::write(dir.path().join("0000009001.seg"), [0u8; 4096]).expect("write");
    std::fs::write(dir.path().join("0000009002.seg"), [0u8; 4096]).expect("write");
    // A misdirected block: the third segment's header and first frames over the fourth's.
    let (donor, misdirected) = (dir.path().join(&segments[2]), dir.path().join(&segments[3]));
    let donor_bytes = std::fs::read(&donor).expect("read");
    let magic = [0xF2, b'T', b'C', 0x9A];
    let frames: Vec<usize> = donor_bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == magic)
        .map(|(i, _)| i)
        .collect();
    let end = frames[3];
    let mut bytes = std::fs::read(&misdirected).expect("read");
    assert!(end < bytes.len());
    bytes[..end].copy_from_slice(&donor_bytes[..end]);
    std::fs::write(&misdirected, &bytes).expect("write");
    let report = ttlcask_engine::verify(dir.path()).expect("verify");
    let problem = |file: &std::path::Path| -> Vec<&str> {
        report
            .damage
            .iter()
            .filter(|d| d.file == file)
            .map(|d| d.problem.as_str())
            .collect()
    };
    assert!(
        problem(&second)
            .iter()
            .any(|p| p.contains("names segment") && p.contains("rebuilt")),
        "{report:?}"
    );
    assert!(
        problem(&renamed)
            .iter()
            .any(|p| p.contains("renamed from another id")),
        "{report:?}"
    );
    assert!(
        problem(&dir.path().join("0000009001.seg"))
            .iter()
            .any(|p| p.contains("being appended to")),
        "{report:?}"
    );
    assert!(
        problem(&dir.path().join("0000009002.seg")).is_empty(),
        "{report:?}"
    );
    assert!(
        problem(&misdirected)
            .iter()
            .any(|p| p.contains("its hint names are not in its bytes")),
        "{report:?}"
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("0000009002.seg") && w.contains("blank segment")),
        "{report:?}"
    );
}

/// A torn write after the length the seal log says a segment was sealed with is damage, not
/// what a crash leaves (only a segment being appended to can hold a write in flight).
#[test]
fn a_torn_write_after_a_sealed_length_is_damage_to_verify() {
    let dir = closed_dir_of_200_keys();
    let sealed = dir.path().join(&files_ending(dir.path(), ".seg")[0]);
    let mut bytes = std::fs::read(&sealed).expect("read");
    bytes.extend_from_slice(&TORN);
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&sealed, &bytes).expect("write");
    // And a sealed segment left uncut (zeros after its data) whose last frame is damaged:
    // the zeros do not make it one being appended to.
    let uncut = dir.path().join(&files_ending(dir.path(), ".seg")[1]);
    let mut bytes = std::fs::read(&uncut).expect("read");
    let last = bytes.len() - 20;
    bytes[last] ^= 0x55;
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&uncut, &bytes).expect("write");
    let report = ttlcask_engine::verify(dir.path()).expect("verify");
    for file in [&sealed, &uncut] {
        assert!(
            report.damage.iter().any(|d| &d.file == file),
            "{}: {report:?}",
            file.display()
        );
    }
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.contains("torn by a crash")),
        "{report:?}"
    );
}

/// A closed durable store of 4 KiB segments holding `put_200_keys`, on the real file system
/// (`verify` reads real files).
fn closed_dir_of_200_keys() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::builder()
        .segment_size(4096)
        .durability(Durability::Always)
        .compaction_interval(None)
        .open(dir.path())
        .expect("open");
    put_200_keys(&store);
    drop(store);
    dir
}

/// A segment deleted with its hint is reported at every open and by `verify`, not only at the
/// first open (found from outside, thirteenth session: that open dropped the seal log's
/// entry, and every later open and `verify` called the directory clean while the segment's
/// keys read older values). The open leaves `NNNNNNNNNN.missing`; the loss is reported until
/// the operator removes it, a strict open refuses meanwhile, and its id is never reused.
#[test]
fn a_segment_lost_outside_the_store_stays_reported_until_its_marker_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |policy| durable_store(dir.path(), policy);
    let store = open(RecoveryPolicy::Salvage).expect("open");
    put_200_keys(&store);
    drop(store);
    drop(open(RecoveryPolicy::Salvage).expect("open"));
    let hint = files_ending(dir.path(), ".hint")[1].clone();
    let segment = hint.replace(".hint", ".seg");
    let marker = hint.replace(".hint", ".missing");
    std::fs::remove_file(dir.path().join(&hint)).expect("remove hint");
    std::fs::remove_file(dir.path().join(&segment)).expect("remove segment");
    for round in 0..3 {
        let store = open(RecoveryPolicy::Salvage).expect("salvage opens");
        let report = store.recovery_report();
        assert!(
            report.damaged.iter().any(|d| d.problem.contains(&marker)),
            "open {round}: {report:?}"
        );
        drop(store);
        assert!(dir.path().join(&marker).exists(), "open {round}");
        assert!(
            !files_ending(dir.path(), ".seg").contains(&segment),
            "id reused"
        );
        let verified = ttlcask_engine::verify(dir.path()).expect("verify");
        assert!(
            !verified.is_clean(),
            "verify after open {round}: {verified:?}"
        );
        assert!(
            open(RecoveryPolicy::Strict).is_err(),
            "strict after open {round}"
        );
    }
    std::fs::remove_file(dir.path().join(&marker)).expect("remove marker");
    let store = open(RecoveryPolicy::Strict).expect("clean once the marker is removed");
    assert!(store.recovery_report().damaged.is_empty());
}
