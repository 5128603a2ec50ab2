//! Memory for the key directory's two large, randomly read arrays, its hash table and its
//! arena chunks, and their move to transparent huge pages off the writers' path.
//!
//! A read looks up three places no cache holds at 1M keys: the table's bucket, the key's
//! slot in the arena, and the record in the segment. On 4 KiB pages each is also a TLB miss,
//! and in a virtual machine a TLB miss walks two sets of page tables. With the table and
//! the arena on 2 MiB pages, random reads of 1M keys went from 0.90–0.93M/s to
//! 1.09–1.10M/s on the benchmark machine (one thread).
//!
//! Allocations of at least [`HUGE_PAGE`] bytes are mapped on their own, aligned to a huge
//! page, on small pages first. A huge page fault there takes 5–9 ms (up to 58) when the guest
//! hands out memory its host has not backed yet, against about 1 ms for 2 MiB of small
//! pages: faulting huge pages in on the writers' path made the bulk load 43% slower and a
//! warm reopen of 1M keys 160 ms slower. So a thread of the process's own moves the blocks
//! afterwards: when a store has opened, then every 10 s ([`collapse_soon`],
//! [`collapse_new`]: `MADV_HUGEPAGE`, then `MADV_COLLAPSE`, Linux 6.1 or later), which
//! costs the writers nothing. Where the kernel cannot (older kernels, transparent huge
//! pages set to `never`), the blocks stay on small pages.
//!
//! Smaller allocations, and every allocation off Linux, go to the global allocator, so a
//! small namespace costs no more than before. Bytes mapped here are counted in
//! [`mapped_bytes`] (a process-wide figure: the global allocator never sees them).

use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use allocator_api2::alloc::{AllocError, Allocator, Global};
use parking_lot::{Condvar, Mutex};

/// Size (and alignment) of a transparent huge page on x86-64 and most arm64 kernels.
pub const HUGE_PAGE: usize = 2 << 20;

/// Bytes of the blocks in use (to the 4 KiB page) in this process: see [`mapped_bytes`].
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// The blocks [`HugePages`] mapped, one lock for all.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Registry {
    /// Blocks in use: start → (bytes asked for, whether offered to the kernel for huge pages
    /// yet).
    blocks: BTreeMap<usize, (usize, bool)>,
    /// Blocks given back but kept mapped for reuse, as a `malloc` keeps freed memory: start,
    /// mapped length, whether offered. A fresh mapping faults its pages in one by one (a
    /// reopen's index took 18 ms longer that way than on memory `malloc` reused), and a kept
    /// block may already be on huge pages.
    kept: Vec<(usize, usize, bool)>,
    /// The block [`collapse_new`] is advising now, outside the lock.
    collapsing: Option<usize>,
    /// Blocks given back while being advised (start, mapped length): released once the
    /// advice returns, so that no advice ever reaches memory that is no longer ours.
    deferred: Vec<(usize, usize)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    blocks: BTreeMap::new(),
    kept: Vec::new(),
    collapsing: None,
    deferred: Vec::new(),
});

/// Most bytes `Registry::kept` holds.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const KEEP_AT_MOST: usize = 64 << 20;

/// Bytes the key directories of every store in this process hold on their own mappings (see
/// the module doc), which a global allocator does not see: add them to its figure for the
/// index's whole memory. Counted to the 4 KiB page: a mapping is rounded up to huge pages,
/// but the rest of its last one is never touched, nor moved onto a huge page.
pub fn mapped_bytes() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

/// Asks the kernel to move blocks mapped since the last call onto huge pages, one block at
/// a time. Slow (milliseconds a block): for the thread [`collapse_soon`] starts. One caller
/// at a time: a call while another runs returns at once. Each block is offered once; one
/// the kernel refuses stays on small pages. Only the huge pages a block fills are offered:
/// the rest of its last one is never touched. A block given back meanwhile stays mapped
/// until its advice returns.
pub fn collapse_new() {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let Some(_one) = ONE_AT_A_TIME.try_lock() else {
        return;
    };
    let fresh: Vec<usize> = REGISTRY
        .lock()
        .blocks
        .iter()
        .filter(|(_, (_, offered))| !*offered)
        .map(|(&start, _)| start)
        .collect();
    for start in fresh {
        // Looked up again: the block may have gone, and another taken its address.
        let len = {
            let mut registry = REGISTRY.lock();
            let Some((size, offered)) = registry.blocks.get_mut(&start) else {
                continue;
            };
            *offered = true;
            let len = *size / HUGE_PAGE * HUGE_PAGE;
            if len == 0 {
                continue;
            }
            registry.collapsing = Some(start);
            len
        };
        collapse(start, len);
        let deferred = {
            let mut registry = REGISTRY.lock();
            registry.collapsing = None;
            std::mem::take(&mut registry.deferred)
        };
        for (start, len) in deferred {
            release(start, len, true);
        }
    }
}

/// How often the huge-page thread looks for new blocks unasked. Rarely: a collapse holds
/// the process's memory map for writing while it copies a block, so page faults of every
/// thread wait (up to the milliseconds a host takes to back the new huge page); once a
/// second during a bulk load made a reopen right after it 30–80 ms slower.
const COLLAPSE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Wakes the process's huge-page thread (started on the first call), which runs
/// [`collapse_new`] at once and then every [`COLLAPSE_EVERY`]. A store calls this once its
/// index is built. One thread for the process, apart from the stores' own: an advice takes
/// milliseconds a block, which would hold up their timed fsyncs and spares.
pub fn collapse_soon() {
    static KICK: Mutex<bool> = Mutex::new(false);
    static WAKE: Condvar = Condvar::new();
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        // Without the thread the blocks stay on small pages; nothing else changes.
        let _ = std::thread::Builder::new()
            .name("ttlcask-huge-pages".into())
            .spawn(|| loop {
                {
                    let mut kicked = KICK.lock();
                    if !*kicked {
                        WAKE.wait_for(&mut kicked, COLLAPSE_EVERY);
                    }
                    *kicked = false;
                }
                collapse_new();
            });
    });
    *KICK.lock() = true;
    WAKE.notify_one();
}

/// Allocates blocks of at least [`HUGE_PAGE`] bytes on their own huge-page-aligned mapping,
/// smaller ones from the global allocator. Which of the two served a block follows from its
/// layout alone, so a block always goes back where it came from, also when `grow` or
/// `shrink` moves it across the threshold (they allocate, copy and deallocate).
#[derive(Debug, Clone, Copy, Default)]
pub struct HugePages;

/// [`HugePages`] that remembers where its latest block starts: a hash table's, so that a
/// lookup can start loading the table's memory before the table's code reads it (see
/// `keydir.rs`). A clone remembers nothing until it allocates.
#[derive(Debug, Default)]
pub struct Recording {
    latest: AtomicUsize,
}

impl Recording {
    /// Where the block allocated last starts (0 before the first). It may have been freed
    /// since: use it for hints only, such as prefetching.
    pub fn latest(&self) -> usize {
        self.latest.load(Ordering::Relaxed)
    }

    fn remember(&self, block: NonNull<[u8]>) -> NonNull<[u8]> {
        self.latest
            .store(block.cast::<u8>().as_ptr() as usize, Ordering::Relaxed);
        block
    }
}

impl Clone for Recording {
    fn clone(&self) -> Self {
        Self::default()
    }
}

// SAFETY: every block comes from and goes back to `HugePages`; only its address is noted.
#[expect(unsafe_code, reason = "an allocator is an unsafe trait")]
unsafe impl Allocator for Recording {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        HugePages.allocate(layout).map(|b| self.remember(b))
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        HugePages.allocate_zeroed(layout).map(|b| self.remember(b))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's promise, passed on: `HugePages` allocated the block.
        unsafe { HugePages.deallocate(ptr, layout) }
    }
}

/// Whether `layout` is served by a mapping of its own.
fn mapped(layout: Layout) -> bool {
    cfg!(target_os = "linux") && layout.size() >= HUGE_PAGE && layout.align() <= HUGE_PAGE
}

// SAFETY: blocks come from `Global` or from `map`, chosen by `mapped(layout)`, and go back to
// the same one: `deallocate` gets the layout the block was allocated with (or one of the same
// size, as the trait requires), and `mapped` depends on the size and alignment alone.
// Mapped blocks are aligned to HUGE_PAGE, which is at least the layout's alignment.
#[expect(unsafe_code, reason = "an allocator is an unsafe trait")]
unsafe impl Allocator for HugePages {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if mapped(layout) {
            map(layout.size(), false)
        } else {
            Global.allocate(layout)
        }
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if mapped(layout) {
            map(layout.size(), true)
        } else {
            Global.allocate_zeroed(layout)
        }
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if mapped(layout) {
            unmap(ptr, layout.size());
        } else {
            // SAFETY: per the trait's contract `ptr` is a block of `layout` from this
            // allocator, and blocks of this layout come from `Global`.
            unsafe { Global.deallocate(ptr, layout) }
        }
    }
}

/// A block of `size` bytes on a mapping of its own (rounded up to huge pages), aligned to a
/// huge page: a kept one of that length (zeroed first if `zeroed`), else a new one (zeros
/// already).
#[cfg(target_os = "linux")]
#[expect(unsafe_code, reason = "mmap and munmap have no safe wrapper in std")]
fn map(size: usize, zeroed: bool) -> Result<NonNull<[u8]>, AllocError> {
    let len = size.checked_next_multiple_of(HUGE_PAGE).ok_or(AllocError)?;
    let kept = {
        let kept = &mut REGISTRY.lock().kept;
        let found = kept.iter().position(|&(_, l, _)| l == len);
        found.map(|i| kept.swap_remove(i))
    };
    if let Some((start, _, offered)) = kept {
        if zeroed {
            // SAFETY: the kept mapping is ours and at least `size` bytes long.
            unsafe { (start as *mut u8).write_bytes(0, size) };
        }
        return Ok(in_use(start, offered, size));
    }
    let over = len.checked_add(HUGE_PAGE).ok_or(AllocError)?;
    // SAFETY: a new private anonymous mapping; it overlaps no memory of ours.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            over,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(AllocError);
    }
    // Map a huge page more than needed, then give back the unaligned head and the tail.
    let base = raw as usize;
    let start = base.next_multiple_of(HUGE_PAGE);
    let (head, tail) = (start - base, base + over - (start + len));
    // SAFETY: both ranges lie in the mapping just made, outside [start, start + len); a
    // failed unmap would only leave address space mapped (and is not expected).
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((start + len) as *mut libc::c_void, tail);
        }
    }
    Ok(in_use(start, false, size))
}

/// Bytes of the small pages a block of `size` bytes can touch.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn touchable(size: usize) -> usize {
    size.next_multiple_of(4096)
}

/// Registers the block of `size` bytes at `start`, a mapping of ours, as in use.
#[cfg(target_os = "linux")]
fn in_use(start: usize, offered: bool, size: usize) -> NonNull<[u8]> {
    MAPPED.fetch_add(touchable(size), Ordering::Relaxed);
    REGISTRY.lock().blocks.insert(start, (size, offered));
    // `start` is a mapping's address, never null.
    let ptr = NonNull::new(start as *mut u8).unwrap_or(NonNull::dangling());
    NonNull::slice_from_raw_parts(ptr, size)
}

/// Takes back a block `map(size)` returned.
#[cfg(target_os = "linux")]
fn unmap(ptr: NonNull<u8>, size: usize) {
    let (start, len) = (ptr.as_ptr() as usize, size.next_multiple_of(HUGE_PAGE));
    MAPPED.fetch_sub(touchable(size), Ordering::Relaxed);
    let offered = {
        let mut registry = REGISTRY.lock();
        let offered = registry.blocks.remove(&start).is_some_and(|(_, o)| o);
        if registry.collapsing == Some(start) {
            registry.deferred.push((start, len));
            return;
        }
        offered
    };
    release(start, len, offered);
}

/// Keeps the mapping [start, start + len), of a block no longer in use, for reuse while
/// `Registry::kept` has room; else unmaps it.
#[cfg(target_os = "linux")]
#[expect(unsafe_code, reason = "munmap has no safe wrapper in std")]
fn release(start: usize, len: usize, offered: bool) {
    {
        let kept = &mut REGISTRY.lock().kept;
        if kept.iter().map(|&(_, l, _)| l).sum::<usize>() + len <= KEEP_AT_MOST {
            kept.push((start, len, offered));
            return;
        }
    }
    // SAFETY: `map` mapped exactly [start, start + len) for a block whose owner is done with
    // it, and no advice is under way on it (see `unmap`).
    unsafe {
        libc::munmap(start as *mut libc::c_void, len);
    }
}

/// `madvise`'s request to move a range onto huge pages now (Linux 6.1; the value is the
/// kernel's, which not every libc binding names).
#[cfg(target_os = "linux")]
const MADV_COLLAPSE: libc::c_int = 25;

/// Marks [start, start + len) for huge pages and asks the kernel to move it onto them now.
/// Where it refuses (an older kernel, the setting `never`), the range stays on small pages.
#[cfg(target_os = "linux")]
#[expect(unsafe_code, reason = "madvise has no safe wrapper in std")]
fn collapse(start: usize, len: usize) {
    let at = start as *mut libc::c_void;
    // SAFETY: advice about a block of ours, which stays mapped meanwhile (see `unmap`);
    // neither advice changes any memory's contents.
    unsafe {
        if libc::madvise(at, len, libc::MADV_HUGEPAGE) == 0 {
            libc::madvise(at, len, MADV_COLLAPSE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn map(_size: usize, _zeroed: bool) -> Result<NonNull<[u8]>, AllocError> {
    unreachable!("`mapped` is false off Linux")
}

#[cfg(not(target_os = "linux"))]
fn unmap(_ptr: NonNull<u8>, _size: usize) {
    unreachable!("`mapped` is false off Linux")
}

#[cfg(not(target_os = "linux"))]
fn release(_start: usize, _len: usize, _offered: bool) {
    unreachable!("`mapped` is false off Linux")
}

#[cfg(not(target_os = "linux"))]
fn collapse(_start: usize, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;
    use allocator_api2::vec::Vec;

    // `mapped_bytes` is process-wide and other tests map blocks at the same time:
    // `tests/index_memory.rs` checks it, alone in its binary.

    #[test]
    fn large_blocks_are_mapped_on_huge_page_boundaries_and_keep_their_contents() {
        let mut large: Vec<u64, HugePages> = Vec::with_capacity_in(HUGE_PAGE / 8 + 1, HugePages);
        if cfg!(target_os = "linux") {
            assert_eq!(large.as_ptr() as usize % HUGE_PAGE, 0);
        }
        large.extend((0..HUGE_PAGE as u64 / 8 + 1).map(|i| i * 3));
        assert!(large.iter().enumerate().all(|(i, &v)| v == i as u64 * 3));
    }

    #[test]
    fn growing_and_shrinking_across_the_threshold_keep_the_contents() {
        let mut v: Vec<u8, HugePages> = Vec::new_in(HugePages);
        // Doubles from the global allocator into a mapping, then shrinks back below it.
        for i in 0..3 * HUGE_PAGE {
            v.push((i % 251) as u8);
        }
        if cfg!(target_os = "linux") {
            assert_eq!(v.as_ptr() as usize % HUGE_PAGE, 0);
        }
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        // Moving it onto huge pages keeps what it holds.
        collapse_new();
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        v.truncate(1000);
        v.shrink_to_fit();
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        let copy = v.clone();
        assert_eq!(copy, v);
    }

    /// Whether the kernel here moves memory onto huge pages on request (`madvise` or
    /// `always`; not `never`, nor a kernel without transparent huge pages).
    fn kernel_has_huge_pages() -> bool {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|s| !s.contains("[never]"))
    }

    /// Kilobytes of `AnonHugePages` in the mapping that holds `at`, from /proc/self/smaps.
    fn huge_kb_at(at: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            // A mapping's first line starts with its range: `lo-hi` in hex.
            let range = line
                .split_whitespace()
                .next()
                .and_then(|r| r.split_once('-'));
            if let Some((Ok(lo), Ok(hi))) =
                range.map(|(lo, hi)| (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)))
            {
                inside = (lo..hi).contains(&at);
                continue;
            }
            if inside {
                if let Some(kb) = line.strip_prefix("AnonHugePages:") {
                    return kb.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
        None
    }

    #[test]
    fn collapse_moves_new_blocks_onto_huge_pages_and_keeps_their_contents() {
        let mut v: Vec<u8, HugePages> = Vec::with_capacity_in(2 * HUGE_PAGE, HugePages);
        v.extend((0..2 * HUGE_PAGE).map(|i| (i % 253) as u8));
        // Another test's store may be running `collapse_new` (ours then returns at once) and
        // take this block, or have listed its blocks before this one: asked again until the
        // block is on huge pages, for at most 10 s.
        collapse_new();
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8));
        if !cfg!(target_os = "linux") || !kernel_has_huge_pages() {
            eprintln!("SKIPPED: no transparent huge pages here; checked the contents only");
            return;
        }
        let started = std::time::Instant::now();
        let kb = loop {
            let kb = huge_kb_at(v.as_ptr() as usize).expect("the block's mapping in smaps");
            if kb >= 2 * 2048 || started.elapsed() > std::time::Duration::from_secs(10) {
                break kb;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            collapse_new();
        };
        assert!(kb >= 2 * 2048, "{kb} kB of the block on huge pages");
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8));
    }

    #[test]
    fn a_block_given_back_is_kept_up_to_a_bound_and_comes_back_zeroed_when_asked() {
        let layout = Layout::from_size_align(HUGE_PAGE, 8).expect("layout");
        let mut blocks = std::vec::Vec::new();
        for _ in 0..(KEEP_AT_MOST / HUGE_PAGE + 8) {
            let block = HugePages.allocate(layout).expect("allocate");
            // SAFETY: the block is HUGE_PAGE bytes and ours.
            #[expect(unsafe_code, reason = "dirtying a block straight from the allocator")]
            unsafe {
                block.cast::<u8>().write_bytes(0xab, HUGE_PAGE);
            }
            blocks.push(block);
        }
        for block in blocks {
            // SAFETY: allocated above with this layout.
            #[expect(unsafe_code, reason = "returning the block to the allocator")]
            unsafe {
                HugePages.deallocate(block.cast(), layout);
            }
        }
        let kept: usize = REGISTRY.lock().kept.iter().map(|&(_, len, _)| len).sum();
        assert!(kept <= KEEP_AT_MOST, "{kept} bytes kept");
        if cfg!(target_os = "linux") {
            assert!(kept > 0, "nothing kept for reuse");
        }
        // A kept block was written to; asked for zeroed memory, it comes back zeroed.
        let block = HugePages.allocate_zeroed(layout).expect("allocate");
        // SAFETY: the block is HUGE_PAGE bytes, ours until deallocated below.
        #[expect(unsafe_code, reason = "reading a block straight from the allocator")]
        let zeros = unsafe { block.as_ref() }.iter().all(|&b| b == 0);
        // SAFETY: allocated above with this layout.
        #[expect(unsafe_code, reason = "returning the block to the allocator")]
        unsafe {
            HugePages.deallocate(block.cast(), layout);
        }
        assert!(zeros);
    }

    #[test]
    fn small_blocks_come_from_the_global_allocator() {
        // A mapped block starts on a huge page boundary; the global allocator's small
        // blocks (16-byte aligned) practically never do.
        let boundaries = (0..16)
            .map(|_| Vec::<u8, HugePages>::with_capacity_in(100, HugePages))
            .filter(|v| (v.as_ptr() as usize).is_multiple_of(HUGE_PAGE))
            .count();
        assert!(boundaries < 2, "{boundaries} of 16 small blocks mapped");
    }

    #[test]
    fn recording_notes_each_new_block_and_zeroes_what_it_is_asked_to() {
        let recording = Recording::default();
        assert_eq!(recording.latest(), 0);
        for size in [64, HUGE_PAGE] {
            let layout = Layout::from_size_align(size, 16).expect("layout");
            let block = recording.allocate_zeroed(layout).expect("allocate");
            assert_eq!(recording.latest(), block.cast::<u8>().as_ptr() as usize);
            // SAFETY: the block is `size` bytes, ours until deallocated below.
            #[expect(unsafe_code, reason = "reading a block straight from the allocator")]
            let zeros = unsafe { block.as_ref() }.iter().all(|&b| b == 0);
            assert!(zeros && block.len() == size);
            // SAFETY: allocated above with this layout.
            #[expect(unsafe_code, reason = "returning the block to the allocator")]
            unsafe {
                recording.deallocate(block.cast(), layout);
            }
        }
        assert_eq!(recording.clone().latest(), 0, "a clone remembers nothing");
    }

    #[test]
    fn a_mapped_zeroed_block_reads_as_zeros() {
        let layout = Layout::from_size_align(HUGE_PAGE, 64).expect("layout");
        let block = HugePages.allocate_zeroed(layout).expect("allocate");
        // SAFETY: the block is HUGE_PAGE bytes, ours until deallocated below.
        #[expect(unsafe_code, reason = "reading a block straight from the allocator")]
        let bytes = unsafe { block.as_ref() };
        assert_eq!(bytes.len(), HUGE_PAGE);
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: allocated above with this layout.
        #[expect(unsafe_code, reason = "returning the block to the allocator")]
        unsafe {
            HugePages.deallocate(block.cast(), layout);
        }
    }
}
