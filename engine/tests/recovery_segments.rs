//! What opening a data directory does with odd segments, detail by detail: a header that
//! names another id, a torn tail cut on disk, an entry made only of a header, a damaged record
//! of a sealed segment, garbage after an older segment's data, leftovers, blank and foreign
//! segments under the strict policy, an unreadable seal log, and a segment lost outside the
//! store. Each test pins a behaviour that a mutation of `recovery/` would break without
//! failing the broader suites (see "Mutation testing" in ARCHITECTURE.md).

mod recovery_support;

use std::path::Path;
use std::sync::Arc;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{
    Durability, FileSystem, PutOptions, ReadError, RecoveryPolicy, RecoveryReport, Store,
};

use recovery_support::*;

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
