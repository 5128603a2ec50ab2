//! Measures the memory the index uses per key, with a counting allocator (plus the blocks the
//! engine maps on huge pages itself, `index_mapped_bytes`), and guards it against
//! regressions. Memory, unlike time, is deterministic enough to test. One test only: the
//! mapped bytes are counted process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ttlcask_engine::{index_mapped_bytes, Durability, PutOptions, Store};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
#[expect(unsafe_code, reason = "a counting global allocator needs unsafe impl")]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const KEY_LEN: usize = 24;

/// Everything the index holds: the allocator's live bytes and the engine's own mappings.
fn held() -> isize {
    LIVE.load(Ordering::Relaxed) + index_mapped_bytes() as isize
}

#[test]
fn index_bytes_per_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mapped_at_start = index_mapped_bytes();
    let store = Store::builder()
        .durability(Durability::Never)
        .compaction_interval(None)
        .open(dir.path())
        .expect("open");
    store
        .put(b"bench", b"warm-up", b"x", PutOptions::default())
        .expect("put");
    let keys: usize = std::env::var("TTLCASK_INDEX_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let before = held();
    let value = [0x5a; 150];
    for i in 0..keys {
        let key = format!("{i:0width$}", width = KEY_LEN);
        store
            .put(b"bench", key.as_bytes(), &value, PutOptions::default())
            .expect("put");
    }
    let after = held();
    let per_key = (after - before) as f64 / keys as f64;
    let beyond_key = per_key - KEY_LEN as f64;
    let estimate = store.stats().index_bytes as f64 / keys as f64;
    println!(
        "index heap: {per_key:.1} bytes per {KEY_LEN}-byte key ({beyond_key:.1} beyond the key); stats() estimates {estimate:.1}"
    );
    // Regression guard, not the target: the target (<= 40 beyond the key) is a benchmark.
    assert!(
        beyond_key < 96.0,
        "index grew to {beyond_key:.1} bytes per key beyond the key"
    );
    // The table and the full arena chunks (2 MiB each) are on mappings of their own (for
    // huge pages), and every mapping goes when the store does.
    if cfg!(target_os = "linux") && keys >= 100_000 {
        let mapped = index_mapped_bytes() - mapped_at_start;
        assert!(mapped >= 4 << 20, "{mapped} bytes mapped for {keys} keys");
    }
    drop(store);
    assert_eq!(
        index_mapped_bytes(),
        mapped_at_start,
        "mappings left after close"
    );
}
