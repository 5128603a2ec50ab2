//! A data directory that refuses new files for a while (an operator's `chmod 555`, or a
//! read-only remount): found from outside, a write that needed a new segment then poisoned
//! the store for good, though nothing had been written and nothing was lost. Now such a
//! write is refused with `DirNotWritable` (nothing of it stored), reads go on, the store is
//! not poisoned, and once the directory takes files again writes go on with no reopen, as
//! after a full disk.

use std::sync::Arc;

use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{Durability, FileSystem, PutOptions, Store, WriteError};

const DIR: &str = "/data";

fn open(fs: &SimFs) -> Store {
    open_with_spares(fs, true)
}

fn open_with_spares(fs: &SimFs, spare: bool) -> Store {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .durability(Durability::Always)
        .segment_size(4096)
        .compaction_interval(None)
        .spare_segments(spare)
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

/// Puts write `i`: `key(i)`, 200 bytes of `i`.
fn put(store: &Store, i: u32) -> Result<u64, WriteError> {
    store.put(b"ns", &key(i), &[i as u8; 200], PutOptions::default())
}

/// Puts `key(acked)`, `key(acked + 1)`, … until one is refused (counting the others in
/// `acked`), and returns its error: the write that needed a new segment.
fn put_until_refused(store: &Store, acked: &mut u32) -> WriteError {
    loop {
        match put(store, *acked) {
            Ok(_) => *acked += 1,
            Err(e) => return e,
        }
        assert!(*acked < 1000, "no write needed a new segment");
    }
}

/// Once the refusal is lifted: the next write goes through with no reopen, the health is
/// clean, and every acknowledged write is there, before and after a reopen.
fn writes_resume(fs: &SimFs, store: Store, acked: u32) {
    put(&store, acked).expect("a write once the refusal is lifted");
    assert_eq!(store.health(), Default::default());
    check(&store, acked + 1, acked + 1);
    drop(store);
    check(&open(fs), acked + 1, acked + 1);
}

#[test]
fn a_segment_create_refused_for_permission_refuses_writes_until_allowed_again() {
    for errno in [libc::EACCES, libc::EROFS] {
        let fs = SimFs::new();
        let store = open(&fs);
        fs.deny_names(Some(errno));
        // Writes fill the active segment, then the one that needs a new segment is refused.
        let mut acked = 0u32;
        let err = put_until_refused(&store, &mut acked);
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
        writes_resume(&fs, store, acked);
    }
}

/// Found from outside (seventeenth session): a process out of file descriptors (EMFILE,
/// with many client connections) could not open the next segment, or the directory to sync
/// its name, and the store was poisoned for good. Now such a write is refused with
/// `OutOfDescriptors`, nothing of it stored, and writes go on once a descriptor is free.
/// With spare segments the new segment is a rename of the spare, which needs no descriptor,
/// but the directory's sync after the seal did: it is now opened before anything changes.
#[test]
fn a_process_out_of_file_descriptors_refuses_writes_until_one_is_free() {
    for spare in [false, true] {
        let fs = SimFs::new();
        let store = open_with_spares(&fs, spare);
        let mut acked = 0u32;
        if spare {
            // A spare is made once the active segment is half full.
            let ready = std::time::Instant::now();
            while !fs
                .list(std::path::Path::new(DIR))
                .expect("list")
                .iter()
                .any(|n| n == "spare-segment.tmp")
            {
                assert!(ready.elapsed().as_secs() < 10, "no spare segment was made");
                put(&store, acked).expect("put");
                acked += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        fs.run_out_of_descriptors(true);
        let err = put_until_refused(&store, &mut acked);
        assert!(
            matches!(err, WriteError::OutOfDescriptors(_)),
            "spare {spare}: {err:?}"
        );
        assert!(err.to_string().contains("ulimit"), "says what to do: {err}");
        let health = store.health();
        assert_eq!(health.poisoned, None, "spare {spare}: not poisoned");
        assert!(health.out_of_descriptors.is_some(), "{health:?}");
        assert_eq!(health.dir_not_writable, None, "{health:?}");
        check(&store, acked, acked);

        fs.run_out_of_descriptors(false);
        writes_resume(&fs, store, acked);
    }
}
