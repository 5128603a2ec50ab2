//! What `verify` reports of a data directory, judged as the open judges it: missing and
//! zeroed segments, evidence of damage, unreadable files, what a crash leaves (a warning, not
//! damage), foreign headers, blank segments, and torn writes after a sealed length.

mod recovery_support;

use ttlcask_engine::{Durability, PutOptions, Store};

use recovery_support::*;

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
