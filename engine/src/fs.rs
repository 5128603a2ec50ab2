//! The engine's file I/O, behind a small trait so that tests can swap in a simulated file
//! system that loses unsynced data on a "crash" or fails the N-th call (see [`crate::sim`]).
//!
//! [`RealFs`] is the default: a segment's blocks are reserved with `fallocate` when it is
//! created, so appends are plain copies into its shared memory map (no system call per
//! write, and no SIGBUS on a full disk); other files use `pwrite`. Reads go through the
//! map; `fdatasync` makes mapped writes durable too. `flock` locks the directory. A segment
//! found on disk with holes in it is filled, or read into memory, before anything reads it
//! (see [`StorageFile::map_found`]). Only regular files (symlinks followed) are opened or
//! read: anything else found under a store file's name fails with [`is_not_regular`].

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::{Deref, Range};
use std::os::unix::fs::FileExt;
use std::path::Path;

use memmap2::MmapRaw;

/// Read access to a file's bytes; see [`StorageFile::view`].
pub enum View<'a> {
    /// Borrowed from a memory map.
    Slice(&'a [u8]),
    /// Borrowed from a simulated file under its lock.
    Guard(parking_lot::MappedRwLockReadGuard<'a, [u8]>),
}

impl Deref for View<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Slice(s) => s,
            Self::Guard(g) => g,
        }
    }
}

/// One open file of a data directory.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Like [`StorageFile::write_at`], but with a system call where `write_at` would copy
    /// into a memory map. The store uses it when every write is followed by an fsync: the
    /// fsync cleans the mapped pages and write-protects them, so the next copy into each one
    /// faults again, which costs more than the system call.
    fn write_at_unmapped(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write_at(buf, offset)
    }
    /// Grows or cuts the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes written data (and the length) durable: `fdatasync`.
    fn sync(&self) -> io::Result<()>;
    /// Whether the file has no name left in any directory (removed while open), as far as
    /// the file system can tell: what is written to it then is gone once it is closed.
    fn is_unlinked(&self) -> bool {
        false
    }
    /// The file's bytes as of the last [`StorageFile::map`] (a real file) or now (a simulated
    /// one). Readers only use bytes of complete, checked frames, which never change.
    fn view(&self) -> View<'_>;
    /// `len` bytes at `start` of [`StorageFile::view`], or `None` if out of bounds. Readers
    /// of a segment being appended to use this, so that they never borrow bytes that a
    /// writer may be filling.
    fn view_range(&self, start: usize, len: usize) -> Option<View<'_>>;
    /// Whether reading `len` bytes at `start` of the view would not wait for the disk.
    fn is_resident(&self, _start: usize, _len: usize) -> bool {
        true
    }
    /// (Re)maps the file at its current length.
    fn map(&mut self) -> io::Result<()>;
    /// Maps a file the store found on disk (a segment at open) rather than made, so that no
    /// read of its view can kill the process. A hole in it (a run of zeros that a sparse copy
    /// or restore left unallocated, or a range punched out of it) reads as zeros, but read
    /// through a map on a full tmpfs it raises SIGBUS: the page cannot be allocated. So its
    /// holes are filled with zeros first (`fill_holes`: the caller may change the file's
    /// blocks, never its bytes), and where they are not (a read-only store, or no space for
    /// them), the file is read into memory instead of mapped, and takes no writes. By
    /// default the same as [`StorageFile::map`]: a file without holes.
    fn map_found(&mut self, _fill_holes: bool) -> io::Result<()> {
        self.map()
    }
    /// Tells the file that its first `len` bytes are allocated on disk (it was written whole
    /// beforehand), so appends below that may go through the map.
    fn mark_allocated(&self, _len: u64) {}
    /// Tells the kernel how the map will be used: `true` while appends copy into it (no
    /// read-ahead: a page read ahead of the appends is one the appends then write again),
    /// `false` once sealed
    /// (the default read-ahead, for the sequential scans of compaction and hint writing).
    fn advise_appending(&self, _appending: bool) {}
    /// Whether a page of the file's map could not be read (an I/O error) and reads as zeros
    /// (see `map_faults.rs`): its bytes are not the file's until it is mapped again.
    fn unreadable(&self) -> bool {
        false
    }
}

/// A file that is not there: no bytes, every write refused for want of space. The active
/// segment of a store opened on a disk too full for even a segment header; the first write
/// replaces it with a real segment (or is refused with `DiskFull`).
#[derive(Debug)]
pub(crate) struct NoFile;

impl StorageFile for NoFile {
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOSPC))
    }
    fn set_len(&self, _len: u64) -> io::Result<()> {
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn view(&self) -> View<'_> {
        View::Slice(&[])
    }
    fn view_range(&self, _start: usize, _len: usize) -> Option<View<'_>> {
        None
    }
    fn map(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Directory-level operations and opening files.
pub trait FileSystem: Send + Sync + fmt::Debug + 'static {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new file (fails if it exists), open for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// [`FileSystem::open`] of a file the store owns and may grow or cut (the space
    /// reserve), never through a symbolic link and never one with other names (hard links):
    /// one put there from outside would have the store write into and then cut whatever it
    /// points at. By default, `open`.
    fn open_own(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.open(path)
    }
    /// [`FileSystem::open`] for reading only, by a read-only store: a file on a read-only
    /// file system opens (a read-write open fails there with `EROFS`), and nothing can be
    /// written through it. By default, `open`.
    fn open_read_only(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.open(path)
    }
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Reads a whole file chunk by chunk, calling `arrived` after each chunk with the bytes
    /// read so far and the file's length, so that the caller can work on the first bytes
    /// while the disk reads the next. Returns every byte. By default the file is read in one
    /// go and `arrived` called once.
    fn read_arriving(
        &self,
        path: &Path,
        arrived: &mut dyn FnMut(&[u8], usize),
    ) -> io::Result<Vec<u8>> {
        let bytes = self.read(path)?;
        arrived(&bytes, bytes.len());
        Ok(bytes)
    }
    /// Renames a file (atomically replacing `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// What [`sync_dir`](Self::sync_dir) does, opened now and run later: a rollover takes
    /// it before it changes anything, so that a process out of file descriptors has its
    /// write refused rather than failing half-way (which poisons the store). By default,
    /// `sync_dir` when run.
    fn dir_syncer(&self, dir: &Path) -> io::Result<DirSyncer<'_>> {
        let dir = dir.to_path_buf();
        Ok(Box::new(move || self.sync_dir(&dir)))
    }
    /// Takes an exclusive lock on `path` for as long as the returned guard lives; `None`
    /// if someone else holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Send + Sync>>>;
    /// [`try_lock`](Self::try_lock) for a read-only open: the lock file must already be
    /// there, and is opened for reading only, so that a directory on a read-only file system
    /// (a snapshot, or a disk the kernel remounted read-only after errors) can still be read
    /// and exported. By default, `try_lock`.
    fn try_lock_existing(&self, path: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        self.try_lock(path)
    }
    /// Takes an exclusive lock on the directory `dir` itself for as long as the returned
    /// guard lives; `None` if someone else holds it. Unlike a lock file, a directory cannot
    /// be deleted from under a running store while it holds files. By default (a file system
    /// whose locks are by path, as [`crate::sim::SimFs`]'s) nothing is taken.
    fn try_lock_dir(&self, _dir: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        Ok(Some(Box::new(())))
    }
    /// What `dir` names now (device and inode), if the file system can tell: a store
    /// compares it with what it opened, to notice its directory moved or replaced under it.
    fn dir_identity(&self, _dir: &Path) -> Option<(u64, u64)> {
        None
    }
    /// Bytes free for new data on the file system holding `dir`, if it can tell.
    fn free_space(&self, _dir: &Path) -> Option<u64> {
        None
    }
    /// Inodes free for new files on the file system holding `dir`, if it can tell (some
    /// file systems have no fixed number: they say so with a count of 0 total, taken as
    /// unknown).
    fn free_inodes(&self, _dir: &Path) -> Option<u64> {
        None
    }
    /// Fails if `path` is there but is not a regular file (see [`check_regular`]): the
    /// store opens, reads and removes only regular files. By default (a file system of
    /// files only, as [`crate::sim::SimFs`]) nothing fails.
    fn check_regular(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    /// Says that the first `len` bytes of `path` (`u64::MAX`: all of it) will be read soon,
    /// so that the disk can start on them while other files are read. Does nothing by
    /// default; errors are ignored.
    fn prefetch(&self, _path: &Path, _len: u64) {}
}

/// Whether an I/O error means the file system is out of space (or quota).
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
}

/// A directory sync opened ahead of time ([`FileSystem::dir_syncer`]).
pub type DirSyncer<'a> = Box<dyn FnOnce() -> io::Result<()> + 'a>;

/// Whether an I/O error means the process (EMFILE) or the system (ENFILE) has no file
/// descriptor left: a passing state, as connections and files are closed.
pub fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether an I/O error means the file system refused to make or change a name (permission
/// denied, a read-only file system): a passing state an operator sets and lifts, not a
/// failure of the disk.
pub fn is_denied(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS)
    ) || e.kind() == io::ErrorKind::PermissionDenied
        || e.kind() == io::ErrorKind::ReadOnlyFilesystem
}

/// Why [`RealFs`] refused a path: it is there, but not a regular file (symlinks followed).
#[derive(Debug)]
struct NotRegular(&'static str);

impl fmt::Display for NotRegular {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a regular file but {}", self.0)
    }
}

impl std::error::Error for NotRegular {}

/// Whether an I/O error is [`check_regular`]'s: the path names a directory, a FIFO, a
/// device or a socket, which the store never reads, writes or removes.
pub fn is_not_regular(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<NotRegular>())
}

/// Fails unless `path`, its symlinks followed, is a regular file (`NotFound` if nothing is
/// there). Asked before a file is opened: a FIFO blocks `open` until a writer comes (`verify`
/// and the open hung on a `seals.log` made one), and a device such as `/dev/zero` never
/// ends (a segment symlinked to it ate memory until the process was killed): found from
/// outside. A symlink to a regular file is allowed.
pub fn check_regular(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let kind = fs::metadata(path)?.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "of an unknown type"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        NotRegular(what),
    ))
}

/// Reads a whole file, only if it is a regular one ([`check_regular`]): what the store and
/// the server read of a data directory.
///
/// # Errors
/// The path is not a regular file, or reading it failed.
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    check_regular(path)?;
    fs::read(path)
}

/// What a `stat`-like call (`statvfs`, `statfs`) says of the file system holding `path`:
/// the struct it filled, or `None` if it failed.
fn stat_path<T>(
    path: &Path,
    call: unsafe extern "C" fn(*const libc::c_char, *mut T) -> libc::c_int,
) -> Option<T> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<T>::uninit();
    #[expect(unsafe_code, reason = "the stat calls have no safe wrapper in std")]
    // SAFETY: a NUL-terminated path and a buffer of the type the call fills.
    let rc = unsafe { call(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    #[expect(unsafe_code, reason = "initialised by the successful call")]
    // SAFETY: the call returned 0, so it filled the struct.
    Some(unsafe { st.assume_init() })
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile {
    file: File,
    /// The map's range, registered for reads the disk cannot serve (`map_faults`); before
    /// `map`, so that it is dropped (unregistered) before the map is unmapped.
    registered: Option<crate::map_faults::Registered>,
    map: Option<MmapRaw>,
    /// The file's bytes, read into memory instead of mapped: it has holes that could not be
    /// filled (see [`StorageFile::map_found`]). Such a file takes no writes.
    copy: Option<Box<[u8]>>,
    /// Bytes reserved with `fallocate`: appends below this go through the map.
    allocated: std::sync::atomic::AtomicU64,
    /// While appended to (`advise_appending(true)`): where the pages asked for ahead of the
    /// appends end (see [`READ_AHEAD_STEP`]); 0 otherwise.
    ahead: std::sync::atomic::AtomicU64,
    /// Opened for writing. Opened for reading only ([`FileSystem::open_read_only`]), the
    /// map is read-only and every write is refused before it reaches the map.
    writable: bool,
}

/// How far ahead of the appends the pages of a segment being appended to are asked for
/// (`MADV_WILLNEED`), a step at a time. The map itself is advised `MADV_RANDOM` then, so
/// that no append's fault reads ahead on its own: the kernel took a run of appends' faults
/// for a sequential read and zero-filled megabytes of the pre-allocated extent in one fault
/// (single puts waited 18-27 ms). Without read-ahead at all, each fault filled its own
/// page, which cost single puts 2-3%; asked for a step at a time, the pages are filled in
/// batches again, each well under a millisecond (`engine/examples/put_latency.rs`).
const READ_AHEAD_STEP: u64 = 1 << 20;

impl RealFile {
    fn new(file: File) -> Self {
        Self {
            file,
            registered: None,
            map: None,
            copy: None,
            allocated: std::sync::atomic::AtomicU64::new(0),
            ahead: std::sync::atomic::AtomicU64::new(0),
            writable: true,
        }
    }

    /// Asks for the next step of pages ahead of an append that ends at `end`, once it is
    /// within a step of where the last ask ended (appends only: a single appender).
    fn read_ahead(&self, map: &MmapRaw, end: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let ahead = self.ahead.load(Relaxed);
        if ahead == 0 || end + READ_AHEAD_STEP <= ahead {
            return;
        }
        let page = page_size() as u64;
        let from = ahead.max(end - end % page);
        let until = (from + READ_AHEAD_STEP).min(map.len() as u64);
        self.ahead.store(until.max(ahead), Relaxed);
        if until > from {
            // Advice only: where it fails, the appends fault their pages in one by one.
            let _ = map.advise_range(
                memmap2::Advice::WillNeed,
                from as usize,
                (until - from) as usize,
            );
        }
    }

    /// A file read into memory (see [`RealFile::copy`]) takes no writes: they would not
    /// reach the copy. Nor does one opened for reading only: a write through its read-only
    /// map would fault.
    fn refuse_write(&self) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::other(
                "a file opened read-only (by a read-only store) takes no writes",
            ));
        }
        if self.copy.is_some() {
            return Err(io::Error::other(
                "a segment read into memory (holes it could not fill) takes no writes",
            ));
        }
        Ok(())
    }

    fn mapped(&self) -> &[u8] {
        if let Some(copy) = &self.copy {
            return copy;
        }
        self.map.as_ref().map_or(&[], |m| {
            #[expect(unsafe_code, reason = "the map lives as long as self")]
            // SAFETY: the pointer and length come from a live map owned by self.
            unsafe {
                std::slice::from_raw_parts(m.as_ptr(), m.len())
            }
        })
    }
}

fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        #[expect(unsafe_code, reason = "sysconf has no safe wrapper in std")]
        // SAFETY: sysconf only reads a configuration value.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(n)
            .ok()
            .filter(|n| n.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// Reserves the blocks of `[0, len)` so that writes through a map cannot fail.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(io::Error::other)?;
    #[expect(unsafe_code, reason = "posix_fallocate has no safe wrapper in std")]
    // SAFETY: a valid open descriptor and a non-negative range.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Writes of at least this many bytes use `pwrite` rather than a copy into the map.
const PWRITE_FROM: usize = 64 << 10;

impl StorageFile for RealFile {
    fn write_at_unmapped(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.refuse_write()?;
        self.file.write_all_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.refuse_write()?;
        let end = offset.checked_add(buf.len() as u64);
        let allocated = self.allocated.load(std::sync::atomic::Ordering::Acquire);
        if let (Some(map), Some(end)) = (&self.map, end) {
            // Large writes (batches, compaction chunks) go through `pwrite`: copied into the
            // map, each fresh page would first fault and be read in as zeros (a fifth of a
            // bulk load's time went to that), while `pwrite` fills whole pages directly.
            // Both reach the same page cache, so the map sees the bytes either way.
            let small = buf.len() < PWRITE_FROM;
            if small && end <= allocated && end <= map.len() as u64 {
                self.read_ahead(map, end);
                #[expect(
                    unsafe_code,
                    reason = "appends copy into the shared map: no system call per write"
                )]
                // SAFETY: the range is inside the live map and reserved on disk; the single
                // appender writes bytes no reader has been handed yet.
                crate::map_faults::writing(|| unsafe {
                    std::ptr::copy_nonoverlapping(
                        buf.as_ptr(),
                        map.as_mut_ptr().add(offset as usize),
                        buf.len(),
                    );
                });
                return Ok(());
            }
        }
        self.file.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let current = self.file.metadata()?.len();
        // A file read into memory may be cut (recovery cuts a torn tail, and opens it again),
        // never grown.
        if !(self.writable && self.copy.is_some() && len <= current) {
            self.refuse_write()?;
        }
        self.file.set_len(len)?;
        if len > current {
            match allocate(&self.file, len) {
                Ok(()) => self
                    .allocated
                    .store(len, std::sync::atomic::Ordering::Release),
                Err(e) if is_out_of_space(&e) => {
                    // Never leave a sparse tail behind: on a full tmpfs, touching it through
                    // a map would raise SIGBUS.
                    let _ = self.file.set_len(current);
                    return Err(e);
                }
                // Where the file system cannot reserve blocks, writes use pwrite.
                Err(_) => {}
            }
        } else {
            self.allocated
                .fetch_min(len, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn is_unlinked(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().is_ok_and(|m| m.nlink() == 0)
    }

    fn view(&self) -> View<'_> {
        View::Slice(self.mapped())
    }

    fn view_range(&self, start: usize, len: usize) -> Option<View<'_>> {
        let end = start.checked_add(len)?;
        if let Some(copy) = &self.copy {
            return copy.get(start..end).map(View::Slice);
        }
        let map = self.map.as_ref()?;
        if end > map.len() {
            return None;
        }
        #[expect(unsafe_code, reason = "a shared slice of only the bytes asked for")]
        // SAFETY: the range lies inside the live map owned by self. Only this range is
        // borrowed, never the whole map: the appender copies into bytes past every range a
        // reader is handed (readers only ask for records already appended and indexed, which
        // are never written again), so no `&[u8]` ever aliases bytes being written.
        let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr().add(start), len) };
        Some(View::Slice(bytes))
    }

    fn is_resident(&self, start: usize, len: usize) -> bool {
        if self.copy.is_some() {
            return true;
        }
        let Some(map) = &self.map else { return false };
        let page = page_size();
        let Some(end) = start
            .checked_add(len)
            .filter(|&e| e <= map.len() && len > 0)
        else {
            return false;
        };
        let base = map.as_ptr() as usize;
        let first = (base + start) & !(page - 1);
        let pages = (base + end - first).div_ceil(page);
        let mut small = [0u8; 8];
        let mut large = Vec::new();
        let residency: &mut [u8] = if pages <= small.len() {
            &mut small[..pages]
        } else {
            large.resize(pages, 0);
            &mut large
        };
        #[expect(unsafe_code, reason = "mincore has no safe wrapper in std")]
        // SAFETY: the range lies inside the live map (page-aligned down, which stays within
        // the map's first page); the vector has one byte per page.
        let rc = unsafe {
            libc::mincore(
                first as *mut libc::c_void,
                pages * page,
                residency.as_mut_ptr(),
            )
        };
        rc == 0 && residency.iter().all(|&r| r & 1 == 1)
    }

    fn mark_allocated(&self, len: u64) {
        self.allocated
            .store(len, std::sync::atomic::Ordering::Release);
    }

    fn unreadable(&self) -> bool {
        self.registered.as_ref().is_some_and(|r| r.faulted())
    }

    fn advise_appending(&self, appending: bool) {
        if let Some(map) = &self.map {
            let advice = if appending {
                memmap2::Advice::Random
            } else {
                memmap2::Advice::Normal
            };
            // Advice only: where it fails, appends fault pages in as before.
            let _ = map.advise(advice);
            // Appending, the first append asks for the step after the header's page (its
            // bytes went in with `pwrite`).
            let ahead = if appending { page_size() as u64 } else { 0 };
            self.ahead
                .store(ahead, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn map(&mut self) -> io::Result<()> {
        self.copy = None;
        self.registered = None;
        if self.file.metadata()?.len() == 0 {
            self.map = None;
            return Ok(());
        }
        // Segment files are only written by this store (the lock file keeps other stores
        // out), appended past the bytes readers use, and never cut below them.
        let map = if self.writable {
            MmapRaw::map_raw(&self.file)?
        } else {
            memmap2::MmapOptions::new().map_raw_read_only(&self.file)?
        };
        self.registered = Some(crate::map_faults::Registered::new(map.as_ptr(), map.len()));
        self.map = Some(map);
        Ok(())
    }

    fn map_found(&mut self, fill_holes: bool) -> io::Result<()> {
        // Where the holes cannot be listed, the file is mapped as before.
        let holes = holes(&self.file).unwrap_or_default();
        if holes.is_empty() || (fill_holes && self.writable && fill(&self.file, &holes).is_ok()) {
            return self.map();
        }
        // Not filled (read-only, or no space: a full tmpfs): read(2) gives a hole's zeros
        // without allocating anything, where a map's page fault would raise SIGBUS.
        self.registered = None;
        self.map = None;
        self.copy = Some(read_around(&self.file, &holes)?);
        Ok(())
    }
}

/// The unallocated ranges (holes) of `file`: they read as zeros, but reading one through a
/// map faults in a page the file system must allocate, which on a full tmpfs raises SIGBUS.
/// Files with as many blocks as bytes have none to speak of: ranges reserved with
/// `fallocate` and not written yet (a segment's pre-allocated tail), which `SEEK_HOLE`
/// reports as holes on tmpfs, ext4 and XFS, have their blocks already. So the common case
/// costs one `fstat`; a file with fewer blocks than bytes, one `lseek` per hole and data
/// range.
pub(crate) fn holes(file: &File) -> io::Result<Vec<Range<u64>>> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    let len = meta.len();
    if meta.blocks().saturating_mul(512) >= len {
        return Ok(Vec::new());
    }
    let mut holes = Vec::new();
    let mut at = 0;
    while at < len {
        let start = seek(file, at, libc::SEEK_HOLE)?.unwrap_or(len);
        if start >= len {
            break;
        }
        // No data after it (ENXIO): the hole runs to the end of the file.
        let end = seek(file, start, libc::SEEK_DATA)?.unwrap_or(len).min(len);
        if end <= start {
            break;
        }
        holes.push(start..end);
        at = end;
    }
    Ok(holes)
}

/// `lseek(file, offset, whence)`: the offset it gives, or `None` for ENXIO (no hole or data
/// at or after `offset`).
fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    #[expect(
        unsafe_code,
        reason = "lseek with SEEK_HOLE and SEEK_DATA has no safe wrapper"
    )]
    // SAFETY: a plain system call on a descriptor that lives through it; it reads no memory
    // of ours. (The file's position moves: every read and write here gives its offset.)
    let at = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    if at >= 0 {
        return Ok(u64::try_from(at).ok());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENXIO) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// Writes zeros over `holes` of `file`, so that the file system allocates them: its bytes
/// stay what they were.
fn fill(file: &File, holes: &[Range<u64>]) -> io::Result<()> {
    const CHUNK: u64 = 64 << 10;
    let zeros = vec![0u8; CHUNK as usize];
    for hole in holes {
        let mut at = hole.start;
        while at < hole.end {
            let n = (hole.end - at).min(CHUNK);
            file.write_all_at(&zeros[..n as usize], at)?;
            at += n;
        }
    }
    Ok(())
}

/// The bytes of `file`, read with `pread` around its `holes` (left as the zeros they read
/// as, in pages of the copy that are never touched).
fn read_around(file: &File, holes: &[Range<u64>]) -> io::Result<Box<[u8]>> {
    let len = file.metadata()?.len();
    let mut bytes = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
    let mut at = 0;
    for range in holes.iter().cloned().chain(std::iter::once(len..len)) {
        if range.start > at {
            file.read_exact_at(&mut bytes[at as usize..range.start as usize], at)?;
        }
        at = range.end;
    }
    Ok(bytes.into_boxed_slice())
}

impl FileSystem for RealFs {
    fn free_space(&self, dir: &Path) -> Option<u64> {
        let st = stat_path(dir, libc::statvfs)?;
        #[allow(
            clippy::useless_conversion,
            reason = "the field types differ by platform"
        )]
        u64::from(st.f_bavail).checked_mul(u64::from(st.f_frsize))
    }

    fn free_inodes(&self, dir: &Path) -> Option<u64> {
        let st = stat_path(dir, libc::statvfs)?;
        #[allow(
            clippy::useless_conversion,
            reason = "the field types differ by platform"
        )]
        let (total, free) = (u64::from(st.f_files), u64::from(st.f_favail));
        (total > 0).then_some(free)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for dirent in fs::read_dir(dir)? {
            if let Ok(name) = dirent?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(RealFile::new(file)))
    }

    // Every call that opens or removes an existing file asks `check_regular` first (see
    // there).
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        check_regular(path)?;
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(RealFile::new(file)))
    }

    fn open_read_only(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        check_regular(path)?;
        let file = OpenOptions::new().read(true).open(path)?;
        Ok(Box::new(RealFile {
            writable: false,
            ..RealFile::new(file)
        }))
    }

    fn open_own(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOFOLLOW: a symbolic link is refused (ELOOP), whatever it points at. Found from
        // outside: `space-reserve.tmp` linked to a segment had the segment grown to the
        // reserve's size and then cut to nothing at a roomy close, its keys lost.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        // Nor a file with other names (hard links): growing and cutting it changed what they
        // name, a segment or a file outside the dir.
        if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has other names (hard links)", path.display()),
            ));
        }
        Ok(Box::new(RealFile::new(file)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_regular(path)
    }

    fn check_regular(&self, path: &Path) -> io::Result<()> {
        check_regular(path)
    }

    fn read_arriving(
        &self,
        path: &Path,
        arrived: &mut dyn FnMut(&[u8], usize),
    ) -> io::Result<Vec<u8>> {
        use std::io::Read;
        /// Small enough that work on the first bytes starts early, large enough that the
        /// system calls do not count.
        const CHUNK: u64 = 1 << 20;
        check_regular(path)?;
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        let mut bytes = Vec::with_capacity(len);
        loop {
            let read = (&file).take(CHUNK).read_to_end(&mut bytes)?;
            // A file cut short since its length was asked for ends here: the caller finds
            // it shorter than the length it was given.
            if read == 0 {
                return Ok(bytes);
            }
            arrived(&bytes, len);
            if bytes.len() >= len {
                return Ok(bytes);
            }
        }
    }

    fn prefetch(&self, path: &Path, len: u64) {
        use std::os::fd::AsRawFd;
        // 0: to the end of the file.
        let len = libc::off_t::try_from(len).unwrap_or(0);
        if check_regular(path).is_err() {
            return;
        }
        if let Ok(file) = File::open(path) {
            #[expect(unsafe_code, reason = "posix_fadvise has no safe wrapper in std")]
            // SAFETY: a plain system call on a descriptor that lives through it; it reads
            // no memory of ours.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), 0, len, libc::POSIX_FADV_WILLNEED);
            }
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        // Not a FIFO (or a device) someone put under a store file's name: the open reported
        // it left alone. (A directory `remove_file` refuses by itself.)
        match check_regular(path) {
            Err(e) if is_not_regular(&e) => return Err(e),
            _ => {}
        }
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn dir_identity(&self, dir: &Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
    }

    fn dir_syncer(&self, dir: &Path) -> io::Result<DirSyncer<'_>> {
        let dir = File::open(dir)?;
        Ok(Box::new(move || dir.sync_all()))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        lock_file(path, &options)
    }

    fn try_lock_existing(&self, path: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        // flock needs no write access: a read-only descriptor takes the same lock.
        let mut options = OpenOptions::new();
        options.read(true);
        lock_file(path, &options)
    }

    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(dir)?;
        #[expect(
            unsafe_code,
            reason = "flock on a directory has no safe wrapper in std"
        )]
        // SAFETY: a plain system call on a descriptor that lives through it.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            // Released when the descriptor is closed, with the guard.
            return Ok(Some(Box::new(file)));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(e)
        }
    }
}

/// Opens `path` with `options` (never through a symbolic link) and takes an exclusive
/// `flock` on it; `None` if someone else holds it.
fn lock_file(path: &Path, options: &OpenOptions) -> io::Result<Option<Box<dyn Send + Sync>>> {
    match check_regular(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW: through a symbolic link (to a segment name compaction had removed, say)
    // O_CREAT made the target, an empty segment that every open after reported damaged
    // (found from outside). A link there is refused, named.
    let file = options
        .clone()
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} is a symbolic link: the store's lock file must be a regular file (remove the link; nothing it points at is touched)",
                        path.display()
                    ),
                )
            } else {
                e
            }
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Box::new(file))),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync the directory.
pub fn write_atomically(
    fs: &dyn FileSystem,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs.remove(&tmp);
    let written = fs
        .create(&tmp)
        .and_then(|f| {
            f.write_at(bytes, 0)?;
            f.sync()
        })
        .and_then(|()| fs.rename(&tmp, path));
    if let Err(e) = written {
        // Nothing left behind (a full disk left empty `.tmp` files for verify to warn of).
        let _ = fs.remove(&tmp);
        return Err(e);
    }
    fs.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An append goes through the map only below `PWRITE_FROM` bytes and inside both the map
    /// and the blocks `fallocate` reserved; anything else is written with `pwrite`. Both
    /// kinds read back the same. (Touching the map past the file's end would raise SIGBUS,
    /// past the map's end corrupt memory: either kills this test.)
    #[test]
    fn appends_take_the_map_only_inside_the_reserved_and_mapped_range() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("segment");
        let mut file = RealFs.create(&path)?;
        file.set_len(8192)?;
        file.map()?;
        // The file shrinks under its map: the map still covers 8 KiB, the blocks only 4 KiB.
        file.set_len(4096)?;
        file.write_at(b"mapped", 100)?;
        file.write_at(b"past the reserved blocks", 6000)?;
        file.write_at(b"past the map", 64 << 10)?;
        let large = vec![7u8; PWRITE_FROM];
        file.write_at(&large, 100_000)?;
        let bytes = fs::read(&path)?;
        assert_eq!(&bytes[100..106], b"mapped");
        assert_eq!(&bytes[100_000..100_000 + PWRITE_FROM], &large[..]);
        assert_eq!(&bytes[6000..6024], b"past the reserved blocks");
        assert_eq!(&bytes[64 << 10..(64 << 10) + 12], b"past the map");
        Ok(())
    }

    /// A file found with holes is filled (its bytes unchanged, no hole left) when it may be
    /// changed, and read into memory otherwise (the file left as it was; the copy takes no
    /// writes). Space reserved with `fallocate` is no hole.
    #[test]
    fn a_file_found_with_holes_is_filled_or_read_into_memory() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let reserved = RealFs.create(&dir.path().join("reserved"))?;
        reserved.set_len(1 << 20)?;
        assert!(holes(&File::open(dir.path().join("reserved"))?)?.is_empty());
        let path = dir.path().join("segment");
        let page = page_size();
        let mut bytes = vec![0u8; 64 * page];
        bytes[..page].fill(1);
        bytes[63 * page..].fill(2);
        let file = File::create(&path)?;
        file.write_all_at(&bytes[..page], 0)?;
        file.write_all_at(&bytes[63 * page..], 63 * page as u64)?;
        if holes(&file)?.is_empty() {
            eprintln!("SKIPPED: this file system leaves no holes");
            return Ok(());
        }
        assert_eq!(holes(&file)?, vec![page as u64..63 * page as u64]);
        let mut copied = RealFs.open(&path)?;
        copied.map_found(false)?;
        assert_eq!(&*copied.view(), &bytes[..]);
        assert_eq!(
            copied.view_range(62 * page, 2 * page).as_deref(),
            Some(&bytes[62 * page..])
        );
        assert!(copied.view_range(63 * page, 2 * page).is_none());
        assert!(copied.write_at(b"x", 0).is_err());
        assert!(copied.set_len(65 * page as u64).is_err(), "not grown");
        assert!(!holes(&file)?.is_empty(), "left as it was");
        let mut filled = RealFs.open(&path)?;
        filled.map_found(true)?;
        assert_eq!(&*filled.view(), &bytes[..]);
        assert!(holes(&file)?.is_empty());
        assert_eq!(fs::read(&path)?, bytes);
        // Cut, though: recovery cuts a torn tail (found from outside: after kill -9 on a
        // full disk, the open refused such a segment, and the server could not start).
        let file = File::create(dir.path().join("cut"))?;
        file.write_all_at(&bytes[..page], 0)?;
        file.write_all_at(&bytes[63 * page..], 63 * page as u64)?;
        let mut copied = RealFs.open(&dir.path().join("cut"))?;
        copied.map_found(false)?;
        copied.set_len(2 * page as u64)?;
        assert_eq!(file.metadata()?.len(), 2 * page as u64);
        Ok(())
    }

    /// The `statfs` type of the file system holding `path`.
    fn fs_magic(path: &Path) -> Option<i64> {
        let st = stat_path(path, libc::statfs)?;
        #[allow(
            clippy::useless_conversion,
            reason = "f_type's width differs by platform"
        )]
        Some(i64::from(st.f_type))
    }

    /// Appended to, a file asks for the pages a step ahead of its appends (they are in the
    /// page cache before any append touches them), and no further; sealed, it stops.
    #[test]
    fn appends_ask_for_the_next_step_of_pages_ahead() -> io::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("segment");
        let mut file = RealFile::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?,
        );
        let step: u64 = 1 << 20;
        assert_eq!(READ_AHEAD_STEP, step);
        file.set_len(4 * step)?;
        file.map()?;
        if file.allocated.load(Relaxed) == 0 {
            eprintln!("SKIPPED: no fallocate here, appends take pwrite");
            return Ok(());
        }
        let page = page_size() as u64;
        // Whether pages are in memory after `MADV_WILLNEED`, and only those, depends on the
        // file system: ext4 and XFS fill a reserved extent's pages with zeros at once; tmpfs
        // counts reserved pages as not in memory and reads nothing ahead for the advice.
        let residency = matches!(fs_magic(&path), Some(0xEF53 | 0x5846_5342))
            && !file.is_resident((page + step) as usize, 4096);
        if !residency {
            eprintln!("residency checks SKIPPED: not ext4 or XFS here");
        }
        file.advise_appending(true);
        file.write_at(b"first", page)?;
        assert_eq!(file.ahead.load(Relaxed), page + step);
        // The pages asked for are in memory before any append reaches them; the first page
        // past them is not (the map reads nothing ahead on its own).
        if residency {
            assert!(file.is_resident((page + (1 << 19)) as usize, 4096));
            assert!(file.is_resident((page + step) as usize - 4096, 4096));
            assert!(!file.is_resident((page + step) as usize, 4096));
        }
        // Within a step of where the last ask ended: the next step.
        let at = page + step / 2;
        file.write_at(b"next", at)?;
        assert_eq!(file.ahead.load(Relaxed), page + 2 * step);
        // Further from it: nothing more.
        file.write_at(b"again", at + 8)?;
        assert_eq!(file.ahead.load(Relaxed), page + 2 * step);
        // Near the end of the file: never past it.
        file.write_at(b"last", 4 * step - 64)?;
        assert_eq!(file.ahead.load(Relaxed), 4 * step);
        file.advise_appending(false);
        assert_eq!(file.ahead.load(Relaxed), 0);
        let bytes = fs::read(&path)?;
        assert_eq!(&bytes[at as usize..at as usize + 4], b"next");
        Ok(())
    }
}
