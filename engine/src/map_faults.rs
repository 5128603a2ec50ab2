//! Reads of a segment's map that the disk cannot serve: the page reads as zeros, and the
//! process lives.
//!
//! Segments are read through memory maps. A page the kernel cannot read in (an I/O error
//! from a failing disk, or a file cut short under the store) is not an error code but a
//! `SIGBUS`, whose default kills the process; and since the open reads the same pages, a
//! restart died again (found from outside: one unreadable block of a segment's header made
//! every `serve`, `stats` and `export` die; one in its middle killed the server at each read
//! of the key there).
//!
//! Each map of a store file registers its range here ([`Registered`]), and a `SIGBUS`
//! handler, installed once by the first map, looks the faulting address up. Inside a
//! registered range it puts a read-only page of zeros in place of the faulting page
//! (`mmap` with `MAP_FIXED`) and returns, so the read that faulted goes on and reads zeros:
//! every record the store reads is checked by its CRC, so the zeros are damage, reported as
//! any damage is (a read error, a damaged range at the open, `verify`). The page stays zeros
//! for the life of the map. [`unreadable_pages`] counts them.
//!
//! Not recovered, and passed on to the handler that was there before (Rust's own, for stack
//! overflows, which falls back to the default and its core dump):
//! - a fault outside every registered range: not a store file's;
//! - a fault while the appender copies into a map ([`writing`]): its bytes would go to the
//!   zero page instead of the file, and be acknowledged. The page is read-only for the same
//!   reason: a later append into it faults again, rather than write where no file is.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

/// Maps that can be registered at once; a map beyond them is not protected.
const SLOTS: usize = 1 << 14;

/// A slot's `start` while a registration fills it in: no range (see [`registered`]).
const CLAIMING: usize = usize::MAX;

/// One registered range: `start` 0 when free.
struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
}

#[expect(
    clippy::declare_interior_mutable_const,
    reason = "an array initialiser"
)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
};

static RANGES: [Slot; SLOTS] = [FREE; SLOTS];

#[expect(
    clippy::declare_interior_mutable_const,
    reason = "an array initialiser"
)]
const CLEAR: AtomicBool = AtomicBool::new(false);

/// Whether a page of the range in the same slot was replaced with zeros.
static FAULTED: [AtomicBool; SLOTS] = [CLEAR; SLOTS];

/// Pages replaced with zeros so far, in this process.
static UNREADABLE: AtomicU64 = AtomicU64::new(0);

/// The page size, read once before the handler is installed (`sysconf` is not
/// async-signal-safe).
static PAGE: AtomicUsize = AtomicUsize::new(0);

/// The action the handler replaced, to pass on what is not ours.
static mut PREVIOUS: Option<libc::sigaction> = None;

static INSTALL: Once = Once::new();

thread_local! {
    /// Set while this thread copies into a map (see the module doc).
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

/// Pages of store files that could not be read and were read as zeros instead, in this
/// process: a failing disk, or a file cut short under the store. Each is also damage
/// where the store reads it.
pub fn unreadable_pages() -> u64 {
    UNREADABLE.load(Ordering::Relaxed)
}

/// A map's range, registered until dropped (drop it before unmapping).
#[derive(Debug)]
pub(crate) struct Registered(Option<usize>);

impl Registered {
    /// Registers `len` bytes at `start` (and installs the handler, once).
    pub(crate) fn new(start: *const u8, len: usize) -> Self {
        install();
        let start = start as usize;
        if start == 0 || len == 0 {
            return Self(None);
        }
        for (i, slot) in RANGES.iter().enumerate() {
            if slot.start.load(Ordering::Relaxed) != 0 {
                continue;
            }
            // Claimed first, then the length, then the start: a handler that finds the start
            // finds its length. Storing the length before claiming let two registrations
            // racing for one free slot leave the winner with the loser's length.
            if slot
                .start
                .compare_exchange(0, CLAIMING, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.len.store(len, Ordering::Release);
                slot.start.store(start, Ordering::Release);
                return Self(Some(i));
            }
        }
        Self(None)
    }

    /// Whether a page of this map could not be read and reads as zeros: what reads there
    /// find is not the file's, so nothing may be judged from it for good (no record marked
    /// lost, no segment cut or moved aside) until a new map reads the file again.
    pub(crate) fn faulted(&self) -> bool {
        self.0.is_some_and(|i| FAULTED[i].load(Ordering::Acquire))
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            // Cleared while the slot is still this map's: cleared by the next owner before
            // it had claimed the slot, a registration that lost the race for it wiped the
            // flag of the map that won.
            FAULTED[i].store(false, Ordering::Release);
            RANGES[i].start.store(0, Ordering::Release);
        }
    }
}

/// Runs `copy` (the appender's copy into a map) with faults in it left to kill the process
/// (see the module doc).
pub(crate) fn writing<T>(copy: impl FnOnce() -> T) -> T {
    WRITING.with(|w| w.set(true));
    let out = copy();
    WRITING.with(|w| w.set(false));
    out
}

fn install() {
    INSTALL.call_once(|| {
        #[expect(
            unsafe_code,
            reason = "sysconf and sigaction have no safe wrapper in std"
        )]
        // SAFETY: sysconf reads a value; sigaction gets a zeroed, then filled, action and a
        // place for the old one, both valid for the call. PREVIOUS is written here once,
        // before the handler that reads it can run.
        unsafe {
            let page = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE)).unwrap_or(4096);
            PAGE.store(page, Ordering::Relaxed);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &action, &mut old) == 0 {
                PREVIOUS = Some(old);
            }
        }
    });
}

/// The slot of the registered range holding `addr`, if one does.
fn registered(addr: usize) -> Option<usize> {
    RANGES.iter().position(|slot| {
        let start = slot.start.load(Ordering::Acquire);
        start != 0
            && start != CLAIMING
            && addr >= start
            && addr - start < slot.len.load(Ordering::Acquire)
    })
}

#[expect(unsafe_code, reason = "a signal handler")]
extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel hands a valid siginfo for a SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let ours = if WRITING.with(Cell::get) {
        None
    } else {
        registered(addr)
    };
    if let Some(slot) = ours {
        let page = PAGE.load(Ordering::Relaxed);
        let at = addr & !(page - 1);
        // SAFETY: the page lies inside a live map of ours (registered), which is replaced
        // by an anonymous read-only page of zeros; nothing else is touched.
        let mapped = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if mapped != libc::MAP_FAILED {
            FAULTED[slot].store(true, Ordering::Release);
            UNREADABLE.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    // Not ours: what was there before handles it, or the default (the fault repeats once
    // this returns, and kills the process as it would have).
    // SAFETY: PREVIOUS was written before this handler was installed and never again; the
    // previous handler gets the arguments the kernel gave this one.
    unsafe {
        let previous = *std::ptr::addr_of!(PREVIOUS);
        match previous {
            Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
                if old.sa_flags & libc::SA_SIGINFO != 0 {
                    let handler: extern "C" fn(
                        libc::c_int,
                        *mut libc::siginfo_t,
                        *mut libc::c_void,
                    ) = std::mem::transmute(old.sa_sigaction);
                    handler(signal, info, context);
                } else {
                    let handler: extern "C" fn(libc::c_int) = std::mem::transmute(old.sa_sigaction);
                    handler(signal);
                }
            }
            _ => {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registrations racing for the same free slots each keep their own length. Before the
    /// slot was claimed first, a registration that lost a slot had stored its length in it,
    /// and the winner's range could end where the loser's did.
    #[test]
    fn registrations_racing_for_a_slot_each_keep_their_own_length() {
        // Above the user address space: no map of this process (another test's, whose
        // faults are real) can ever lie in these ranges.
        const BASE: usize = 1 << 60;
        let threads = 4;
        let rounds = 2_000;
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    for r in 0..rounds {
                        // Each its own range, apart from every other's.
                        let id = t * rounds + r;
                        let len = 4096 * (1 + id);
                        let start = BASE + (id << 30);
                        let reg = Registered::new(start as *const u8, len);
                        let Some(i) = reg.0 else {
                            panic!("no free slot");
                        };
                        assert_eq!(RANGES[i].start.load(Ordering::Acquire), start);
                        assert_eq!(
                            RANGES[i].len.load(Ordering::Acquire),
                            len,
                            "slot {i} holds another registration's length"
                        );
                        assert_eq!(registered(start + len - 1), Some(i));
                        assert_eq!(registered(start + len), None);
                    }
                });
            }
        });
    }
}
