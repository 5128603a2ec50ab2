//! Segment files that go missing outside the store: deleted with or without their hint,
//! the segment being appended to at a crash, and the one an open starts. Each is reported as
//! missing (and never falsely), and the keys its hint names are lost.

mod damage_support;

use std::path::Path;
use std::sync::Arc;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{FileSystem, ManualClock, OpenError, PutOptions, RecoveryPolicy, Store};

use damage_support::*;

/// A segment file deleted outside the store, its hint left: the records the hint names
/// that no newer record covers read as lost, never as the older values they had
/// overwritten, nor as deleted keys come back (found from outside: 212 keys read older
/// values and `verify`, the report and a strict open all said the directory was clean).
/// The store removes a segment's hint before the segment, so a hint without its segment
/// only comes from such a loss. Every segment but the newest, one at a time.
#[test]
fn a_deleted_segment_whose_hint_is_left_loses_the_keys_it_named() {
    let fs = SimFs::new();
    let model = build(&fs);
    let base = fs.crash_image_now(Torn::No);
    let hints = files(&base, ".hint");
    assert!(
        hints.len() >= 3,
        "the build seals several hinted segments: {hints:?}"
    );
    for hint in hints {
        let name = hint.replace(".hint", ".seg");
        let image = base.crash_image_now(Torn::No);
        image
            .remove(&Path::new(DIR).join(&name))
            .expect("remove segment");
        image.sync_dir(Path::new(DIR)).expect("sync dir");
        let what = format!("{name} deleted");
        match open(&image, RecoveryPolicy::Strict) {
            Err(OpenError::Damaged(m)) => assert!(m.contains("missing"), "{what}: {m}"),
            other => panic!("{what}: a strict open: {other:?}"),
        }
        let segments = files(&image, ".seg").len();
        // Every key of the model reads its value, as deleted, or as lost (never older).
        let lost = check_with(&image, &model, &what, 1000);
        assert!(
            lost > 0,
            "{what}: the segment held live records, none read as lost"
        );
        assert_eq!(files(&image, ".seg").len(), segments);
        assert!(
            files(&image, ".hint").contains(&hint),
            "{what}: the hint is kept"
        );
    }
}

/// A segment deleted together with its hint: the seal log, which records the store's own
/// removals, says it was sealed and never removed, so the open reports it (its records are
/// unknown) and a strict open refuses. It was silent (found from outside: 213 keys read
/// older values and everything said clean). Segments compaction removed are not reported.
#[test]
fn a_segment_deleted_with_its_hint_is_reported_and_compacted_ones_are_not() {
    let fs = SimFs::new();
    build(&fs);
    {
        let store = open(&fs, RecoveryPolicy::Salvage).expect("open");
        let c = store.compact().expect("a full run");
        assert!(c.segments_rewritten > 0, "{c:?}");
    }
    let base = fs.crash_image_now(Torn::No);
    let clean = base.crash_image_now(Torn::No);
    let store = open(&clean, RecoveryPolicy::Strict).expect("compacted segments are no loss");
    assert!(store.recovery_report().damaged.is_empty());
    drop(store);
    for hint in files(&base, ".hint") {
        let name = hint.replace(".hint", ".seg");
        let image = base.crash_image_now(Torn::No);
        image
            .remove(&Path::new(DIR).join(&name))
            .expect("remove segment");
        image
            .remove(&Path::new(DIR).join(&hint))
            .expect("remove hint");
        image.sync_dir(Path::new(DIR)).expect("sync dir");
        match open(&image, RecoveryPolicy::Strict) {
            Err(OpenError::Damaged(m)) => assert!(m.contains("missing"), "{name}: {m}"),
            other => panic!("{name}: a strict open: {other:?}"),
        }
        let store = open(&image, RecoveryPolicy::Salvage).expect("a salvaging open");
        let id: u32 = name.trim_end_matches(".seg").parse().expect("id");
        assert!(
            store
                .recovery_report()
                .damaged
                .iter()
                .any(|d| d.segment == id && d.problem.contains("missing") && d.records.is_none()),
            "{name}: {:?}",
            store.recovery_report()
        );
    }
}

/// After a crash, the segment the store was appending to is known from the seal log: found
/// missing, or emptied, it is reported and a strict open refuses; left alone, the open is
/// clean (found from outside, twelfth session: deleting it after a kill -9 brought back
/// overwritten values and deleted keys, and the open, `verify` and a strict open all said
/// clean).
#[test]
fn the_segment_being_appended_to_at_a_crash_is_missed_when_it_goes() {
    let fs = SimFs::new();
    let store = open(&fs, RecoveryPolicy::Salvage).expect("open");
    for round in 0..3u8 {
        for i in 0..20u32 {
            store
                .put(
                    b"ns",
                    format!("k{i}").as_bytes(),
                    &[b'a' + round; 100],
                    PutOptions::default(),
                )
                .expect("put");
        }
    }
    store.delete(b"ns", b"k0").expect("delete");
    let image = fs.crash_image_now(Torn::No);
    drop(store);
    let newest = files(&image, ".seg").pop().expect("segments");
    let path = Path::new(DIR).join(&newest);
    // Left alone: clean, and no false report after a close either.
    let alone = image.crash_image_now(Torn::No);
    let store = open(&alone, RecoveryPolicy::Salvage).expect("open");
    assert!(
        store.recovery_report().is_clean(),
        "{:?}",
        store.recovery_report()
    );
    drop(store);
    let store = open(&alone, RecoveryPolicy::Strict).expect("a clean close reopens strict");
    drop(store);
    for how in ["deleted", "emptied"] {
        let damaged = image.crash_image_now(Torn::No);
        match how {
            "deleted" => {
                damaged.remove(&path).expect("remove");
                damaged.sync_dir(Path::new(DIR)).expect("sync dir");
            }
            _ => {
                let f = damaged.open(&path).expect("open file");
                f.set_len(0).expect("empty");
                f.sync().expect("sync");
            }
        }
        let what = format!("{newest} {how} after a crash");
        // Strict first: a salvaging open accepts what it found and writes the log anew.
        assert!(
            open(&damaged, RecoveryPolicy::Strict).is_err(),
            "{what}: strict opened it"
        );
        let store = open(&damaged, RecoveryPolicy::Salvage).expect("open");
        let report = store.recovery_report();
        assert!(!report.is_clean(), "{what}: {report:?}");
    }
}

/// The active segment an open makes is logged as started too (a store that wrote less than
/// a segment since it opened), and only where its file is durable: a `never` store's and a
/// full disk's detached one are not, so a crash leaves no false report.
#[test]
fn the_segment_an_open_starts_is_missed_when_it_goes_and_never_falsely() {
    let put_a_few = |store: &Store| {
        for i in 0..5u32 {
            store
                .put(
                    b"ns",
                    format!("k{i}").as_bytes(),
                    b"v",
                    PutOptions::default(),
                )
                .expect("put");
        }
    };
    // Durable: the open's own segment, deleted after a crash, is damage.
    let fs = SimFs::new();
    drop(open(&fs, RecoveryPolicy::Salvage).expect("open"));
    let store = open(&fs, RecoveryPolicy::Salvage).expect("reopen");
    put_a_few(&store);
    let image = fs.crash_image_now(Torn::No);
    drop(store);
    let newest = files(&image, ".seg").pop().expect("a segment");
    image.remove(&Path::new(DIR).join(&newest)).expect("remove");
    image.sync_dir(Path::new(DIR)).expect("sync dir");
    assert!(
        open(&image, RecoveryPolicy::Strict).is_err(),
        "{newest} deleted after a crash: strict opened it"
    );
    // Not durable: nothing is logged as started, and a crash image opens clean.
    let fs = SimFs::new();
    let never = || {
        Store::builder()
            .file_system(Arc::new(fs.clone()))
            .segment_size(4096)
            .durability(ttlcask_engine::Durability::Never)
            .compaction_interval(None)
            .clock(ManualClock::new(1_000_000))
            .open(DIR)
            .expect("open")
    };
    drop(never());
    let store = never();
    put_a_few(&store);
    let image = fs.crash_image_now(Torn::No);
    drop(store);
    // (Its own segment's header may not have reached the disk: a blank file, removed.)
    let store = open(&image, RecoveryPolicy::Strict).expect("a never store's crash opens strict");
    assert!(
        store.recovery_report().damaged.is_empty(),
        "{:?}",
        store.recovery_report()
    );
    drop(store);
    // A full disk: the open's segment is detached (no file), and logged as nothing.
    let fs = SimFs::new();
    drop(open(&fs, RecoveryPolicy::Salvage).expect("open"));
    // Room for the seal log, none for a segment.
    fs.set_capacity(Some(fs.used() + 1024));
    let store = open(&fs, RecoveryPolicy::Salvage).expect("opens on a full disk");
    let image = fs.crash_image_now(Torn::No);
    drop(store);
    image.set_capacity(None);
    let store = open(&image, RecoveryPolicy::Strict).expect("a full disk's crash opens strict");
    assert!(
        store.recovery_report().damaged.is_empty(),
        "{:?}",
        store.recovery_report()
    );
}

/// A segment deleted with its hint, found by an open on a full disk (no room for the
/// marker's text, nor for the seal log written anew): still reported at the next open.
/// Found from outside (fourteenth session): the marker could not be written, the seal log
/// that was to keep the entry instead could not be written either, and from the second
/// open on everything said clean while those keys could read older values.
#[test]
fn a_missing_segment_found_on_a_full_disk_is_reported_at_every_open() {
    let fs = SimFs::new();
    build(&fs);
    let image = fs.crash_image_now(Torn::No);
    let hint = files(&image, ".hint").first().cloned().expect("a hint");
    let name = hint.replace(".hint", ".seg");
    let id: u32 = name.trim_end_matches(".seg").parse().expect("id");
    for file in [&name, &hint] {
        image.remove(&Path::new(DIR).join(file)).expect("remove");
    }
    image.sync_dir(Path::new(DIR)).expect("sync dir");
    image.set_capacity(Some(image.used()));
    for round in ["first open", "second open", "third open"] {
        let store = open(&image, RecoveryPolicy::Salvage).expect("a salvaging open");
        assert!(
            store
                .recovery_report()
                .damaged
                .iter()
                .any(|d| d.segment == id && d.problem.contains("missing")),
            "{round}: {:?}",
            store.recovery_report()
        );
    }
}
