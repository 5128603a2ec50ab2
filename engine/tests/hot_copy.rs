//! A copy of a live data dir (`cp -a` or rsync while the server writes) takes each file at a
//! different moment. Found from outside: a segment copied while it was being written (zeros
//! where later records went) and its hint copied after the seal, with `seals.log` copied
//! early: the open took the segment for one being appended to at a crash, its missing
//! records for a torn tail, and an overwritten value came back, reported nowhere. The hint
//! names those records: they read as lost, never as the older value, and the open says so.

use std::path::Path;

use ttlcask_engine::{PutOptions, ReadError, Store};

const SEGMENT: u64 = 8 << 10;

fn open(dir: &Path) -> Store {
    Store::builder()
        .segment_size(SEGMENT)
        .compaction_interval(None)
        .open(dir)
        .expect("open")
}

fn segment(id: u32) -> String {
    format!("{id:010}.seg")
}

/// Puts 100-byte fillers until the store has `segments` segments.
fn fill_until(store: &Store, segments: u64, next: &mut u32) {
    while store.stats().segments < segments {
        store
            .put(
                b"ns",
                format!("filler-{next}").as_bytes(),
                &[b'f'; 100],
                PutOptions::default(),
            )
            .expect("filler");
        *next += 1;
    }
}

#[test]
fn a_segment_copied_while_written_with_its_hint_copied_after_the_seal_loses_no_value_silently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let live = tmp.path().join("live");
    let early = tmp.path().join("early");
    std::fs::create_dir_all(&early).expect("early");
    let store = open(&live);
    let mut next = 0;
    store
        .put(b"ns", b"a", b"OLD", PutOptions::default())
        .expect("put");
    fill_until(&store, 2, &mut next);
    // The copy reaches segment 2 and seals.log now, while segment 2 is written.
    for name in [segment(2), "seals.log".to_string()] {
        std::fs::copy(live.join(&name), early.join(&name)).expect("early copy");
    }
    store
        .put(b"ns", b"a", b"NEW", PutOptions::default())
        .expect("put");
    fill_until(&store, 3, &mut next);
    store
        .put(b"ns", b"b", b"later", PutOptions::default())
        .expect("put");
    drop(store);
    assert!(
        live.join("0000000002.hint").exists(),
        "segment 2 was sealed with its hint"
    );

    // The rest of the copy, taken after the close.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).expect("copy");
    for entry in std::fs::read_dir(&live).expect("list") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let from = if early.join(&name).exists() {
            early.join(&name)
        } else {
            entry.path()
        };
        std::fs::copy(from, copy.join(&name)).expect("copy");
    }

    let store = open(&copy);
    match store.get(b"ns", b"a") {
        Err(ReadError::Lost { .. }) => {}
        Ok(Some(item)) => assert_eq!(&item.value[..], b"NEW", "an overwritten value came back"),
        other => panic!("a: {other:?}"),
    }
    assert_eq!(
        store
            .get(b"ns", b"b")
            .expect("read")
            .map(|i| i.value.to_vec()),
        Some(b"later".to_vec())
    );
    let report = store.recovery_report();
    assert!(!report.is_clean(), "the loss is reported: {report:?}");
    assert!(report.keys_lost > 0, "{report:?}");
}
