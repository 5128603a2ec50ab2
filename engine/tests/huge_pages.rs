//! Opening a store moves its index onto transparent huge pages soon after, off the caller's
//! thread (`huge.rs`): checked in this process's `/proc/self/smaps_rollup`. A test binary of
//! its own, so that no other test's memory counts. Skips loudly where the kernel has no
//! transparent huge pages for us (not Linux, or the setting `never`).
//!
//! The store is filled by a child process (this binary, running [`fill_for_the_parent`]):
//! filled here, the first store's index blocks, on huge pages by then, were kept for reuse
//! when it closed (`huge.rs` keeps up to 64 MiB) and the reopened index took them, so no
//! huge page was added and the check failed (once in CI), though the index was on them.

use std::time::{Duration, Instant};

use ttlcask_engine::{Durability, PutOptions, Store};

/// Kilobytes of this process's anonymous memory on huge pages.
fn anon_huge_kb() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = rollup.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    line.trim_start_matches("AnonHugePages:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Where the child of [`an_opened_store_has_its_index_moved_onto_huge_pages`] fills a store.
const FILL_DIR: &str = "TTLCASK_HUGE_PAGES_FILL_DIR";

fn open(dir: &std::path::Path) -> Store {
    Store::builder()
        .durability(Durability::Never)
        .compaction_interval(None)
        .open(dir)
        .expect("open")
}

/// Fills the store in `$TTLCASK_HUGE_PAGES_FILL_DIR` with 200,000 keys; does nothing when
/// that is not set (a plain test run).
#[test]
fn fill_for_the_parent() {
    let Some(dir) = std::env::var_os(FILL_DIR) else {
        return;
    };
    let store = open(std::path::Path::new(&dir));
    let value = [7u8; 100];
    for i in 0..200_000u32 {
        store
            .put(
                b"ns",
                format!("{i:024}").as_bytes(),
                &value,
                PutOptions::default(),
            )
            .expect("put");
    }
}

#[test]
fn an_opened_store_has_its_index_moved_onto_huge_pages() {
    let enabled = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    if !enabled.is_ok_and(|s| !s.contains("[never]")) || anon_huge_kb().is_none() {
        eprintln!("SKIPPED: no transparent huge pages here");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let filled = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "fill_for_the_parent", "--test-threads", "1"])
        .env(FILL_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run the filling child");
    assert!(filled.success(), "the child that fills the store: {filled}");
    // The open builds the index (a 2 MiB-plus table, several 2 MiB arena chunks), then
    // wakes the thread that moves them.
    let before = anon_huge_kb().unwrap_or(0);
    let store = open(dir.path());
    // 30 s: on a machine saturated by other builds the move took longer than 10 s (twice).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut now = before;
    while now < before + 4096 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        now = anon_huge_kb().unwrap_or(0);
    }
    assert!(
        now >= before + 4096,
        "{now} kB on huge pages after the open, {before} kB before"
    );
    assert_eq!(store.keys(b"ns").count(), 200_000);
}
