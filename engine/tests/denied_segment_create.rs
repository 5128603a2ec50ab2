//! A data directory that refuses new files for a while (an operator's `chmod 555`, or a
//! read-only remount): found from outside, a write that needed a new segment then poisoned
//! the store for good, though nothing had been written and nothing was lost. Now such a
//! write is refused with `DirNotWritable` (nothing of it stored), reads go on, the store is
//! not poisoned, and once the directory takes files again writes go on with no reopen, as
//! after a full disk.

use std::sync::Arc;

use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{Durability, PutOptions, Store, WriteError};

const DIR: &str = "/data";

fn open(fs: &SimFs) -> Store {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .durability(Durability::Always)
        .segment_size(4096)
        .compaction_interval(None)
        .open(DIR)
        .expect("open")
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

fn check(store: &Store, acked: u32, refused: u32) {
    for i in 0..acked {
        let item = store.get(b"ns", &key(i)).expect("read").expect("acked");
        assert_eq!(&item.value[..], &[i as u8; 200][..], "key {i}");
    }
    assert_eq!(store.get(b"ns", &key(refused)).expect("read"), None);
}

#[test]
fn a_segment_create_refused_for_permission_refuses_writes_until_allowed_again() {
    for errno in [libc::EACCES, libc::EROFS] {
        let fs = SimFs::new();
        let store = open(&fs);
        fs.deny_names(Some(errno));
        // Writes fill the active segment, then the one that needs a new segment is refused.
        let mut acked = 0u32;
        let err = loop {
            match store.put(
                b"ns",
                &key(acked),
                &[acked as u8; 200],
                PutOptions::default(),
            ) {
                Ok(_) => acked += 1,
                Err(e) => break e,
            }
            assert!(acked < 1000, "no write needed a new segment");
        };
        assert!(
            matches!(err, WriteError::DirNotWritable(_)),
            "errno {errno}: {err:?}"
        );
        assert!(
            err.to_string().contains("writable"),
            "says what to do: {err}"
        );
        let health = store.health();
        assert_eq!(health.poisoned, None, "errno {errno}: not poisoned");
        assert!(health.dir_not_writable.is_some(), "{health:?}");
        // Refused again while it lasts; reads go on.
        let again = store.put(b"ns", &key(acked), &[0; 200], PutOptions::default());
        assert!(
            matches!(again, Err(WriteError::DirNotWritable(_))),
            "{again:?}"
        );
        check(&store, acked, acked);

        // The directory takes files again: writes go on, no reopen.
        fs.deny_names(None);
        store
            .put(
                b"ns",
                &key(acked),
                &[acked as u8; 200],
                PutOptions::default(),
            )
            .expect("a write once the directory takes files again");
        assert_eq!(store.health(), Default::default());
        check(&store, acked + 1, acked + 1);
        drop(store);
        let store = open(&fs);
        check(&store, acked + 1, acked + 1);
    }
}
