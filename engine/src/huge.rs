//! Memory on transparent huge pages for the key directory's two large, randomly read arrays:
//! its hash table and its arena chunks.
//!
//! A read looks up three places no cache holds at 1M keys: the table's bucket, the key's
//! slot in the arena, and the record in the segment. On 4 KiB pages each is also a TLB miss,
//! and in a virtual machine a TLB miss walks two sets of page tables. Allocations of at least
//! [`HUGE_PAGE`] bytes are therefore mapped on their own, aligned to a huge page and marked
//! `MADV_HUGEPAGE`, so the kernel backs them with 2 MiB pages when its setting allows
//! (`/sys/kernel/mm/transparent_hugepage/enabled` set to `madvise` or `always`; with `never`
//! they are plain pages). Measured on the benchmark machine: random reads of 1M keys
//! went from 0.89M/s to 0.96–0.98M/s with the arena alone.
//!
//! Smaller allocations, and every allocation off Linux, go to the global allocator, so a
//! small namespace costs no more than before. Bytes mapped here are counted in
//! [`mapped_bytes`] (a process-wide figure: the global allocator never sees them).

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use allocator_api2::alloc::{AllocError, Allocator, Global};

/// Size (and alignment) of a transparent huge page on x86-64 and most arm64 kernels.
pub const HUGE_PAGE: usize = 2 << 20;

/// Bytes mapped by [`HugePages`] and not yet unmapped, in this process.
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Bytes the key directories of every store in this process hold on their own mappings (see
/// the module doc), which a global allocator does not see: add them to its figure for the
/// index's whole memory.
pub fn mapped_bytes() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

/// Allocates blocks of at least [`HUGE_PAGE`] bytes on their own huge-page-aligned mapping,
/// smaller ones from the global allocator. Which of the two served a block follows from its
/// layout alone, so a block always goes back where it came from, also when `grow` or
/// `shrink` moves it across the threshold (they allocate, copy and deallocate).
#[derive(Debug, Clone, Copy, Default)]
pub struct HugePages;

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
            map(layout.size())
        } else {
            Global.allocate(layout)
        }
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if mapped(layout) {
            // A fresh anonymous mapping reads as zeros; writing them would fault in every page.
            map(layout.size())
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

/// A new mapping of `size` bytes (rounded up to huge pages), aligned to a huge page and
/// advised to be backed by them.
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "mmap, munmap and madvise have no safe wrapper in std"
)]
fn map(size: usize) -> Result<NonNull<[u8]>, AllocError> {
    let len = size.checked_next_multiple_of(HUGE_PAGE).ok_or(AllocError)?;
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
        // Advice only: without transparent huge pages the block works on small pages.
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    MAPPED.fetch_add(len, Ordering::Relaxed);
    let ptr = NonNull::new(start as *mut u8).ok_or(AllocError)?;
    Ok(NonNull::slice_from_raw_parts(ptr, size))
}

/// Unmaps a block `map(size)` returned.
#[cfg(target_os = "linux")]
#[expect(unsafe_code, reason = "munmap has no safe wrapper in std")]
fn unmap(ptr: NonNull<u8>, size: usize) {
    let len = size.next_multiple_of(HUGE_PAGE);
    // SAFETY: `map(size)` mapped exactly [ptr, ptr + len), and the block's owner is done with it.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), len);
    }
    MAPPED.fetch_sub(len, Ordering::Relaxed);
}

#[cfg(not(target_os = "linux"))]
fn map(_size: usize) -> Result<NonNull<[u8]>, AllocError> {
    unreachable!("`mapped` is false off Linux")
}

#[cfg(not(target_os = "linux"))]
fn unmap(_ptr: NonNull<u8>, _size: usize) {
    unreachable!("`mapped` is false off Linux")
}

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
        v.truncate(1000);
        v.shrink_to_fit();
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        let copy = v.clone();
        assert_eq!(copy, v);
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
