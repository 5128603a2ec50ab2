//! A simulated file system for crash and fault-injection tests.
//!
//! [`SimFs`] keeps, per file, what has been written and what an fsync has made durable, and
//! per directory which names a directory fsync has made durable. It can "crash": take the
//! image a machine would find after a power cut (durable bytes only, optionally with a torn
//! prefix of the last unsynced write, or garbage in its place) and fail every later call. It
//! can also fail chosen calls with an error while going on (for example ENOSPC on writes).
//!
//! ```
//! use std::sync::Arc;
//! use ttlcask_engine::sim::{SimFs, Torn};
//! use ttlcask_engine::{Durability, PutOptions, Store};
//!
//! let fs = SimFs::new();
//! let store = Store::builder().file_system(Arc::new(fs.clone())).durability(Durability::Always).open("/data")?;
//! store.put(b"ns", b"k", b"v", PutOptions::default())?;
//! let image = fs.crash_image_now(Torn::No); // a power cut now
//! drop(store);
//! let store = Store::builder().file_system(Arc::new(image)).open("/data")?;
//! assert!(store.get(b"ns", b"k")?.is_some(), "acknowledged under Always");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::fs::{FileSystem, StorageFile, View};

/// What a crash keeps of the last write that was not yet durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Torn {
    /// Nothing: only durable bytes survive.
    No,
    /// The first `n`/256 of it (at least one byte).
    Prefix(u8),
    /// Garbage of its length in its place.
    Garbage,
}

#[derive(Debug, Default)]
struct FileData {
    durable: Vec<u8>,
    /// The last write since the last sync: (offset, bytes).
    last_unsynced: Option<(u64, Vec<u8>)>,
}

#[derive(Debug, Default)]
struct SimFile {
    data: RwLock<Vec<u8>>,
    /// `data`'s length, kept beside it for the capacity check, which sums every file's:
    /// reading it through `data` would take a read lock the checking thread may already
    /// hold (a segment's view is a read guard), and with another thread waiting to write
    /// that file (the background thread cutting a sealed segment) the second read waits
    /// behind the writer forever.
    len: AtomicUsize,
    meta: Mutex<FileData>,
}

impl SimFile {
    fn with_content(bytes: Vec<u8>) -> Self {
        Self {
            len: AtomicUsize::new(bytes.len()),
            data: RwLock::new(bytes.clone()),
            meta: Mutex::new(FileData {
                durable: bytes,
                last_unsynced: None,
            }),
        }
    }

    fn image(&self, torn: Torn) -> Vec<u8> {
        let meta = self.meta.lock();
        let mut bytes = meta.durable.clone();
        if let Some((offset, write)) = &meta.last_unsynced {
            let keep = match torn {
                Torn::No => 0,
                Torn::Prefix(n) => (write.len() * usize::from(n) / 256).max(1),
                Torn::Garbage => write.len(),
            };
            let offset = *offset as usize;
            let end = offset + keep.min(write.len());
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            for (i, b) in bytes[offset..end].iter_mut().enumerate() {
                *b = match torn {
                    Torn::Garbage => 0xA5 ^ (i as u8).wrapping_mul(31),
                    _ => write[i],
                };
            }
        }
        bytes
    }
}

#[derive(Debug)]
struct Control {
    ops: AtomicU64,
    crash_at: AtomicU64,
    crash_torn: Mutex<Torn>,
    crashed: AtomicBool,
    crash_image: Mutex<Option<SimFs>>,
    fail_ops: Mutex<HashSet<u64>>,
    fail_writes: Mutex<Option<io::ErrorKind>>,
    /// The OS error every create, rename and remove fails with (see [`SimFs::deny_names`]).
    deny_names: Mutex<Option<i32>>,
    /// Files whose open and read fail, with the OS error each fails with (see
    /// [`SimFs::deny_access`]).
    deny_access: Mutex<HashMap<PathBuf, i32>>,
    /// Files whose writes and syncs fail, with the OS error (see [`SimFs::fail_io_of`]).
    fail_io: Mutex<HashMap<PathBuf, i32>>,
    /// Times the directory was replaced (see [`SimFs::replace_dir`]).
    dir_generation: AtomicU64,
    /// Total bytes the live files may hold (`None`: unlimited).
    capacity: Mutex<Option<u64>>,
    /// While set, everything that opens a file fails with EMFILE (see
    /// [`SimFs::run_out_of_descriptors`]).
    no_descriptors: AtomicBool,
    /// How long each file sync takes (a real disk's fsync latency).
    sync_delay: Mutex<std::time::Duration>,
    /// Called with a file's bytes at each of its syncs (see [`SimFs::on_sync`]).
    on_sync: Mutex<Option<SyncHook>>,
    /// Called before each write (see [`SimFs::on_write`]).
    on_write: Mutex<Option<WriteHook>>,
}

/// What [`SimFs::on_sync`] calls with a file's bytes.
pub type SyncFn = Arc<dyn Fn(&[u8]) + Send + Sync>;

#[derive(Clone)]
struct SyncHook(SyncFn);

/// What [`SimFs::on_write`] calls before a write.
pub type WriteFn = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
struct WriteHook(WriteFn);

impl std::fmt::Debug for WriteHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteHook")
    }
}

impl std::fmt::Debug for SyncHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncHook")
    }
}

#[derive(Debug, Default)]
struct Names {
    live: HashMap<PathBuf, Arc<SimFile>>,
    durable: HashMap<PathBuf, Arc<SimFile>>,
    locks: HashSet<PathBuf>,
}

/// A simulated file system; clones share it.
#[derive(Debug, Clone)]
pub struct SimFs {
    names: Arc<Mutex<Names>>,
    control: Arc<Control>,
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash: the machine is down")
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> Self {
        Self {
            names: Arc::default(),
            control: Arc::new(Control {
                ops: AtomicU64::new(0),
                crash_at: AtomicU64::new(u64::MAX),
                crash_torn: Mutex::new(Torn::No),
                crashed: AtomicBool::new(false),
                crash_image: Mutex::new(None),
                fail_ops: Mutex::new(HashSet::new()),
                fail_writes: Mutex::new(None),
                deny_names: Mutex::new(None),
                deny_access: Mutex::new(HashMap::new()),
                fail_io: Mutex::new(HashMap::new()),
                dir_generation: AtomicU64::new(0),
                capacity: Mutex::new(None),
                no_descriptors: AtomicBool::new(false),
                sync_delay: Mutex::new(std::time::Duration::ZERO),
                on_sync: Mutex::new(None),
                on_write: Mutex::new(None),
            }),
        }
    }

    /// Mutating calls (write, set_len, sync, create, rename, remove, directory sync) so far.
    pub fn ops(&self) -> u64 {
        self.control.ops.load(Ordering::SeqCst)
    }

    /// Crash just before mutating call number `op` (0-based): the image is taken then, and
    /// that call and every later one fail.
    pub fn crash_at(&self, op: u64, torn: Torn) {
        *self.control.crash_torn.lock() = torn;
        self.control.crash_at.store(op, Ordering::SeqCst);
    }

    /// Whether the planned crash happened.
    pub fn crashed(&self) -> bool {
        self.control.crashed.load(Ordering::SeqCst)
    }

    /// The image taken at the planned crash, if it happened.
    pub fn crash_image(&self) -> Option<SimFs> {
        self.control.crash_image.lock().clone()
    }

    /// Makes mutating call number `op` fail with an I/O error (the file system goes on).
    pub fn fail_op(&self, op: u64) {
        self.control.fail_ops.lock().insert(op);
    }

    /// Makes every file sync take `delay` (as a real disk's fsync does), so that writers
    /// pile up behind one while it runs.
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        *self.control.sync_delay.lock() = delay;
    }

    /// Calls `hook` with the file's bytes at every file sync, on the syncing thread (for a
    /// test to see what the store holds while it syncs; no lock of this file system is held
    /// meanwhile). `None` removes it.
    pub fn on_sync(&self, hook: Option<SyncFn>) {
        *self.control.on_sync.lock() = hook.map(SyncHook);
    }

    /// Calls `hook` before every file write, on the writing thread, with no lock of this
    /// file system held: a hook that blocks is a write the kernel holds (a frozen file
    /// system, `fsfreeze`; a stalled device). `None` removes it.
    pub fn on_write(&self, hook: Option<WriteFn>) {
        *self.control.on_write.lock() = hook.map(WriteHook);
    }

    /// While set, every write and set_len fails with this error kind: a failing device
    /// (the store is poisoned, as by any failed write). For a full disk, which the store
    /// refuses writes for without poisoning, use [`SimFs::set_capacity`].
    pub fn fail_writes(&self, kind: Option<io::ErrorKind>) {
        *self.control.fail_writes.lock() = kind;
    }

    /// While set, every create, rename and remove fails with this OS error (`EACCES`: the
    /// data directory made read-only with `chmod`; `EROFS`), nothing changed; open files
    /// still take writes. `None` lifts it.
    pub fn deny_names(&self, errno: Option<i32>) {
        *self.control.deny_names.lock() = errno;
    }

    /// While set, every open and read of `path` fails with this OS error (`EACCES`: a file
    /// of mode 000, or owned by another user, as a server not run as root finds it; its
    /// name can still be removed, as in a directory the store may write). With `EPERM` (an
    /// immutable file, `chattr +i`) removing it fails too. The file stays as it is. `None`
    /// lifts it.
    pub fn deny_access(&self, path: impl Into<PathBuf>, errno: Option<i32>) {
        let mut denied = self.control.deny_access.lock();
        match errno {
            Some(errno) => denied.insert(path.into(), errno),
            None => denied.remove(&path.into()),
        };
    }

    /// While `out`, the process has no file descriptor left: every call that opens a file
    /// or directory (create, open, read, list, a directory sync, and taking a
    /// [`FileSystem::dir_syncer`]) fails with EMFILE, nothing changed; open files still
    /// take writes and syncs, and a syncer taken before still syncs.
    pub fn run_out_of_descriptors(&self, out: bool) {
        self.control.no_descriptors.store(out, Ordering::SeqCst);
    }

    /// A directory sync, the directory already open.
    fn sync_dir_opened(&self, dir: &Path) -> io::Result<()> {
        self.op(false)?;
        let mut names = self.names.lock();
        names.durable.retain(|p, _| p.parent() != Some(dir));
        let live: Vec<_> = names
            .live
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, f)| (p.clone(), f.clone()))
            .collect();
        names.durable.extend(live);
        Ok(())
    }

    fn check_descriptors(&self) -> io::Result<()> {
        if self.control.no_descriptors.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        Ok(())
    }

    /// While set, every write and sync of the file opened as `path` fails with this OS error
    /// (`EIO`: a failing block under that one file), nothing changed. `None` lifts it.
    pub fn fail_io_of(&self, path: impl Into<PathBuf>, errno: Option<i32>) {
        let mut failing = self.control.fail_io.lock();
        match errno {
            Some(errno) => failing.insert(path.into(), errno),
            None => failing.remove(&path.into()),
        };
    }

    /// Makes every directory name another directory from now on, as `mv data data.old;
    /// mkdir data` under a running store does ([`FileSystem::dir_identity`] changes; the
    /// files stay as they are).
    pub fn replace_dir(&self) {
        self.control.dir_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Fails with the error [`SimFs::deny_access`] set for `path`, if any.
    fn check_access(&self, path: &Path) -> io::Result<()> {
        match self.control.deny_access.lock().get(path) {
            Some(&errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    /// Fails with the error [`SimFs::deny_names`] set, if any.
    fn check_names(&self) -> io::Result<()> {
        match *self.control.deny_names.lock() {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    /// Limits the bytes all live files may hold together: growing a file past it fails with
    /// ENOSPC (nothing written), as a full disk does. `None` lifts the limit.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        *self.control.capacity.lock() = bytes;
    }

    /// Bytes held by the live files.
    pub fn used(&self) -> u64 {
        let names = self.names.lock();
        names
            .live
            .values()
            .map(|f| f.len.load(Ordering::SeqCst) as u64)
            .sum()
    }

    /// Fails with ENOSPC if `file` growing to `new_len` bytes would pass the capacity.
    fn check_growth(&self, file: &SimFile, new_len: usize) -> io::Result<()> {
        let Some(capacity) = *self.control.capacity.lock() else {
            return Ok(());
        };
        let current = file.len.load(Ordering::SeqCst);
        if new_len <= current {
            return Ok(());
        }
        let growth = (new_len - current) as u64;
        if self.used() + growth > capacity {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    /// What a machine would find after a power cut right now: a new, independent file system.
    pub fn crash_image_now(&self, torn: Torn) -> SimFs {
        let names = self.names.lock();
        let image = SimFs::new();
        {
            let mut new_names = image.names.lock();
            for (path, file) in &names.durable {
                let copy = Arc::new(SimFile::with_content(file.image(torn)));
                new_names.live.insert(path.clone(), copy.clone());
                new_names.durable.insert(path.clone(), copy);
            }
        }
        image
    }

    /// Counts a mutating call and applies the fault plan to it.
    fn op(&self, is_write: bool) -> io::Result<()> {
        let c = &self.control;
        if c.crashed.load(Ordering::SeqCst) {
            return Err(crashed_error());
        }
        let n = c.ops.fetch_add(1, Ordering::SeqCst);
        if n >= c.crash_at.load(Ordering::SeqCst) {
            if !c.crashed.swap(true, Ordering::SeqCst) {
                let torn = *c.crash_torn.lock();
                let image = self.crash_image_now(torn);
                *c.crash_image.lock() = Some(image);
            }
            return Err(crashed_error());
        }
        if c.fail_ops.lock().contains(&n) {
            return Err(io::Error::other(format!("simulated I/O error on call {n}")));
        }
        if is_write {
            if let Some(kind) = *c.fail_writes.lock() {
                return Err(io::Error::new(kind, "simulated write failure"));
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct SimHandle {
    fs: SimFs,
    file: Arc<SimFile>,
    /// The name it was opened by (see [`SimFs::fail_io_of`]).
    path: PathBuf,
}

impl SimHandle {
    /// Fails with the error [`SimFs::fail_io_of`] set for this file, if any.
    fn check_io(&self) -> io::Result<()> {
        match self.fs.control.fail_io.lock().get(&self.path) {
            Some(&errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

impl StorageFile for SimHandle {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let hook = self.fs.control.on_write.lock().clone();
        if let Some(WriteHook(hook)) = hook {
            hook();
        }
        self.check_io()?;
        self.fs.op(true)?;
        let offset = usize::try_from(offset).map_err(io::Error::other)?;
        self.fs.check_growth(&self.file, offset + buf.len())?;
        let mut data = self.file.data.write();
        let end = offset + buf.len();
        if data.len() < end {
            data.resize(end, 0);
            self.file.len.store(end, Ordering::SeqCst);
        }
        data[offset..end].copy_from_slice(buf);
        self.file.meta.lock().last_unsynced = Some((offset as u64, buf.to_vec()));
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.op(true)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.fs.check_growth(&self.file, len)?;
        let mut data = self.file.data.write();
        data.resize(len, 0);
        self.file.len.store(len, Ordering::SeqCst);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.check_io()?;
        self.fs.op(false)?;
        let delay = *self.fs.control.sync_delay.lock();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let hook = self.fs.control.on_sync.lock().clone();
        if let Some(SyncHook(hook)) = hook {
            let bytes = self.file.data.read_recursive().clone();
            hook(&bytes);
        }
        let data = self.file.data.read();
        let mut meta = self.file.meta.lock();
        meta.durable.clone_from(&data);
        meta.last_unsynced = None;
        Ok(())
    }

    // A view stands for a memory map, which never waits for a writer: it takes a recursive
    // read lock, so that a thread holding one view of a file gets another even while a
    // writer of that file waits (a plain read would queue behind the writer, which waits
    // for the first view: a deadlock no real map has).
    fn view(&self) -> View<'_> {
        View::Guard(parking_lot::RwLockReadGuard::map(
            self.file.data.read_recursive(),
            |v| v.as_slice(),
        ))
    }

    fn view_range(&self, start: usize, len: usize) -> Option<View<'_>> {
        let end = start.checked_add(len)?;
        let guard = self.file.data.read_recursive();
        let guard = parking_lot::RwLockReadGuard::try_map(guard, |v| v.get(start..end)).ok()?;
        Some(View::Guard(guard))
    }

    fn map(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl FileSystem for SimFs {
    fn free_space(&self, _dir: &Path) -> Option<u64> {
        let capacity = (*self.control.capacity.lock())?;
        Some(capacity.saturating_sub(self.used()))
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn dir_identity(&self, _dir: &Path) -> Option<(u64, u64)> {
        Some((0, self.control.dir_generation.load(Ordering::SeqCst)))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check_descriptors()?;
        let names = self.names.lock();
        Ok(names
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.check_descriptors()?;
        self.op(false)?;
        self.check_names()?;
        let mut names = self.names.lock();
        if names.live.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                path.display().to_string(),
            ));
        }
        let file = Arc::new(SimFile::default());
        names.live.insert(path.to_path_buf(), file.clone());
        Ok(Box::new(SimHandle {
            fs: self.clone(),
            file,
            path: path.to_path_buf(),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.check_descriptors()?;
        self.check_access(path)?;
        let file = self
            .names
            .lock()
            .live
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))?;
        Ok(Box::new(SimHandle {
            fs: self.clone(),
            file,
            path: path.to_path_buf(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.check_descriptors()?;
        self.check_access(path)?;
        let file = self
            .names
            .lock()
            .live
            .get(path)
            .cloned()
            .ok_or_else(|| not_found(path))?;
        let bytes = file.data.read().clone();
        Ok(bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.op(false)?;
        self.check_names()?;
        let mut names = self.names.lock();
        let file = names.live.remove(from).ok_or_else(|| not_found(from))?;
        names.live.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.op(false)?;
        self.check_names()?;
        if self.control.deny_access.lock().get(path) == Some(&libc::EPERM) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        let mut names = self.names.lock();
        names
            .live
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check_descriptors()?;
        self.sync_dir_opened(dir)
    }

    fn dir_syncer(&self, dir: &Path) -> io::Result<crate::fs::DirSyncer<'_>> {
        self.check_descriptors()?;
        let dir = dir.to_path_buf();
        Ok(Box::new(move || self.sync_dir_opened(&dir)))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        let mut names = self.names.lock();
        if !names.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            names: self.names.clone(),
            path: path.to_path_buf(),
        })))
    }
}

struct SimLock {
    names: Arc<Mutex<Names>>,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.names.lock().locks.remove(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_and_names_are_lost_in_a_crash() -> io::Result<()> {
        let fs = SimFs::new();
        let dir = Path::new("/d");
        let a = fs.create(&dir.join("a"))?;
        a.write_at(b"hello", 0)?;
        a.sync()?;
        fs.sync_dir(dir)?;
        a.write_at(b" world", 5)?;
        let b = fs.create(&dir.join("b"))?;
        b.write_at(b"x", 0)?;
        b.sync()?;
        let image = fs.crash_image_now(Torn::No);
        assert_eq!(image.read(&dir.join("a"))?, b"hello");
        assert!(
            image.read(&dir.join("b")).is_err(),
            "name never made durable"
        );
        let torn = fs.crash_image_now(Torn::Prefix(128));
        assert_eq!(torn.read(&dir.join("a"))?, b"hello wo");
        let garbage = fs.crash_image_now(Torn::Garbage);
        assert_eq!(garbage.read(&dir.join("a"))?.len(), 11);
        assert_ne!(&garbage.read(&dir.join("a"))?[5..], b" world");
        Ok(())
    }

    #[test]
    fn a_planned_crash_fails_every_later_call() -> io::Result<()> {
        let fs = SimFs::new();
        let f = fs.create(Path::new("/d/f"))?;
        fs.crash_at(2, Torn::No);
        f.write_at(b"1", 0)?;
        assert!(f.sync().is_err());
        assert!(f.write_at(b"2", 1).is_err());
        assert!(fs.crashed());
        assert!(fs.crash_image().is_some());
        Ok(())
    }
}
