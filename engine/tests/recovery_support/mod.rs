//! Helpers shared by the `recovery_*.rs` tests: a store on the simulated file system at
//! `/recovery`, its files, and a store of records to reopen.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{Durability, FileSystem, ManualClock, PutOptions, Store};

pub const DIR: &str = "/recovery";

pub fn open(fs: &SimFs) -> Store {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .segment_size(4096)
        .durability(Durability::Always)
        .compaction_interval(None)
        .clock(ManualClock::new(1_000_000))
        .open(DIR)
        .expect("open")
}

pub fn path(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

pub fn files(fs: &SimFs, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = fs
        .list(Path::new(DIR))
        .expect("list")
        .into_iter()
        .filter(|n| n.ends_with(ext))
        .collect();
    names.sort();
    names
}

pub fn remove_hints(fs: &SimFs) {
    for h in files(fs, ".hint") {
        fs.remove(&path(&h)).expect("remove hint");
    }
}

/// Replaces a file's bytes (a whole new length) and syncs them.
pub fn rewrite(fs: &SimFs, name: &str, bytes: &[u8]) {
    let f = fs.open(&path(name)).expect("open file");
    f.set_len(bytes.len() as u64).expect("set_len");
    f.write_at(bytes, 0).expect("write");
    f.sync().expect("sync");
}

/// 30 puts over 10 keys (so 20 are overwritten) and one delete, in one namespace: 32
/// records (with the namespace's create) over two 4 KiB segments, closed cleanly.
pub const RECORDS: u64 = 32;

pub fn build(fs: &SimFs) -> (u64, u64) {
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

pub fn check_contents(store: &Store) {
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

/// Half a frame: the magic, a length, then nothing that checks.
pub const TORN: [u8; 11] = [0xF2, b'T', b'C', 0x9A, 40, 0, 0, 0, 1, 2, 3];

/// Puts 200 keys of 100-byte values: several 4 KiB segments.
pub fn put_200_keys(store: &Store) {
    for i in 0..200u32 {
        store
            .put(b"ns", &i.to_le_bytes(), &[7; 100], PutOptions::default())
            .expect("put");
    }
}

/// The names of the files in `dir` ending in `suffix`, sorted.
pub fn files_ending(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}
