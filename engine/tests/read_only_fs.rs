//! A data dir on a read-only file system: a snapshot mounted read-only, or a disk the kernel
//! remounted read-only after I/O errors (ext4's `errors=remount-ro`), which is exactly when
//! an operator wants the data out. A read-only open must read it all; it used to fail at
//! once, because it opened `LOCK` for writing.
//!
//! As root, on a tmpfs: a store is written over several segments, deletes and overwrites
//! included, and closed; the file system is remounted read-only. A read-only open reads
//! every item as it was, `stats` counts them, and `verify` finds nothing wrong; a writable
//! open is refused with an error, never a panic, and changes nothing.
//!
//! Needs root and `mount`; skips LOUDLY (a line on stderr, then passes) where it is not root
//! or mounting is refused.

mod tmpfs;

use std::path::Path;

use ttlcask_engine::{PutOptions, Store};

const NS: &[u8] = b"ns";
const KEYS: usize = 200;
const SEGMENT: u64 = 16 << 10;

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

/// The value key `i` holds at the end: the even keys were overwritten, every tenth deleted.
fn final_value(i: usize) -> Option<Vec<u8>> {
    match i {
        _ if i.is_multiple_of(10) => None,
        _ if i.is_multiple_of(2) => Some(format!("second {i}").repeat(8).into_bytes()),
        _ => Some(format!("first {i}").repeat(8).into_bytes()),
    }
}

fn write(dir: &Path) {
    let store = Store::builder()
        .segment_size(SEGMENT)
        .compaction_interval(None)
        .open(dir)
        .expect("open");
    for i in 0..KEYS {
        let first = format!("first {i}").repeat(8);
        store
            .put(NS, &key(i), first.as_bytes(), PutOptions::default())
            .expect("put");
    }
    for i in (0..KEYS).step_by(2) {
        match final_value(i) {
            Some(v) => store.put(NS, &key(i), &v, PutOptions::default()).map(drop),
            None => store.delete(NS, &key(i)).map(drop),
        }
        .expect("overwrite or delete");
    }
    assert!(store.stats().segments >= 3, "{:?}", store.stats());
}

/// Every file of `dir` with its bytes, to show that nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            let bytes = std::fs::read(e.path()).expect("read");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_data_dir_on_a_read_only_file_system_opens_read_only_and_reads_everything() {
    if !tmpfs::is_root() {
        eprintln!("SKIPPED read_only_fs: needs root to mount a tmpfs");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = match tmpfs::mount(tmp.path(), "size=16m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("SKIPPED read_only_fs: mounting a tmpfs was refused: {e}");
            return;
        }
    };
    let dir = mnt.point.join("data");
    write(&dir);
    let before = snapshot(&dir);
    tmpfs::remount(&mnt, "ro").expect("remount read-only");

    let store = Store::builder()
        .read_only(true)
        .open(&dir)
        .expect("a read-only open of a read-only file system");
    // Nothing reported lost: every segment opened (a read-write open of each had failed
    // with EROFS, and every key was reported lost).
    let report = store.recovery_report();
    assert!(report.is_clean(), "{report:?}");
    for i in 0..KEYS {
        let got = store.get(NS, &key(i)).expect("read");
        assert_eq!(got.map(|it| it.value.to_vec()), final_value(i), "key {i}");
    }
    let live = (0..KEYS).filter(|&i| final_value(i).is_some()).count();
    assert_eq!(store.stats().items, live as u64);
    drop(store);

    let report = ttlcask_engine::verify(&dir).expect("verify");
    assert!(report.is_clean(), "{report:?}");

    // A writable open cannot work here: an error, and nothing changed.
    let err = Store::builder()
        .open(&dir)
        .expect_err("a writable open of a read-only file system");
    assert!(err.to_string().contains("Read-only file system"), "{err}");
    tmpfs::remount(&mnt, "rw").expect("remount read-write");
    assert_eq!(snapshot(&dir), before, "the data dir changed");
}
