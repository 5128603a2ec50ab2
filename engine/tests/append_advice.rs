//! The segment being appended to is mapped without read-ahead (`MADV_RANDOM`), and a sealed
//! one gets the default back: small appends copy into the map, and with read-ahead one page
//! fault zero-filled megabytes of pre-allocated space ahead of it (single puts waited
//! 18-27 ms at two places in every 64 MiB segment; `engine/examples/put_latency.rs`).
//! Checked in `/proc/self/smaps`, where the kernel shows the advice as the `rr` flag.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};

use ttlcask_engine::{Durability, PutOptions, Store};

/// The `VmFlags` of the mapping of `file` in this process: `None` if it is not mapped,
/// `Some(None)` if the kernel shows no flags.
fn vm_flags(file: &Path) -> Option<Option<Vec<String>>> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    // smaps shows the resolved path.
    let file = std::fs::canonicalize(file).ok()?;
    let name = file.to_str()?;
    let mut found = false;
    let mut in_file = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // A mapping's first line: address range, permissions, offset, device, inode, path.
            in_file = line.ends_with(name);
            found |= in_file;
        } else if in_file {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return Some(Some(flags.split_whitespace().map(String::from).collect()));
            }
        }
    }
    found.then_some(None)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_active_segment_is_mapped_without_read_ahead_and_a_sealed_one_with() {
    if std::fs::read_to_string("/proc/self/smaps").is_err() {
        eprintln!("SKIPPED: /proc/self/smaps is not readable here");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::builder()
        .durability(Durability::Never)
        .segment_size(64 << 10)
        .compaction_interval(None)
        .open(tmp.path())
        .expect("open");
    let put = |i: u32| {
        store
            .put(b"ns", &i.to_le_bytes(), &[1; 200], PutOptions::default())
            .expect("put");
    };
    put(0);
    let first = segments(tmp.path());
    let active = first.last().expect("a segment").clone();
    let Some(flags) = vm_flags(&active).expect("the active segment is mapped") else {
        eprintln!("SKIPPED: /proc/self/smaps shows no VmFlags here");
        return;
    };
    assert!(flags.iter().any(|f| f == "rr"), "active: {flags:?}");
    // Enough puts for a few rollovers.
    for i in 1..1_000 {
        put(i);
    }
    let now = segments(tmp.path());
    assert!(now.len() >= 3, "{now:?}");
    let newest = now.last().expect("a segment");
    assert_ne!(newest, &active);
    let flags = vm_flags(newest)
        .flatten()
        .expect("the new active segment is mapped");
    assert!(flags.iter().any(|f| f == "rr"), "new active: {flags:?}");
    let sealed = vm_flags(&active)
        .flatten()
        .expect("the sealed segment is still mapped");
    assert!(!sealed.iter().any(|f| f == "rr"), "sealed: {sealed:?}");
}
