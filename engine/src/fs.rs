//! The engine's file I/O, behind a small trait so that tests can swap in a simulated file
//! system that loses unsynced data on a "crash" or fails the N-th call (see [`crate::sim`]).
//!
//! [`RealFs`] is the default: `pwrite` for appends, a memory map for reads, `flock` for
//! the directory lock.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::Path;

use memmap2::Mmap;

/// Read access to a file's bytes; see [`StorageFile::view`].
pub enum View<'a> {
    /// Borrowed from a memory map.
    Slice(&'a [u8]),
    /// Borrowed from a simulated file under its lock.
    Guard(parking_lot::RwLockReadGuard<'a, Vec<u8>>),
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
    /// Grows or cuts the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes written data (and the length) durable: `fdatasync`.
    fn sync(&self) -> io::Result<()>;
    /// The file's bytes as of the last [`StorageFile::map`] (a real file) or now (a simulated
    /// one). Readers only use bytes of complete, checked frames, which never change.
    fn view(&self) -> View<'_>;
    /// (Re)maps the file at its current length.
    fn map(&mut self) -> io::Result<()>;
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
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames a file (atomically replacing `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` for as long as the returned guard lives; `None`
    /// if someone else holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Send + Sync>>>;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile {
    file: File,
    map: Option<Mmap>,
}

impl StorageFile for RealFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn view(&self) -> View<'_> {
        View::Slice(self.map.as_deref().unwrap_or(&[]))
    }

    fn map(&mut self) -> io::Result<()> {
        if self.file.metadata()?.len() == 0 {
            self.map = None;
            return Ok(());
        }
        #[expect(
            unsafe_code,
            reason = "segment files are only written by this store (the lock file keeps other \
                      stores out), appended past the bytes readers use, and never cut below them"
        )]
        // SAFETY: see the reason above; readers only touch bytes of complete, checked frames.
        let map = unsafe { Mmap::map(&self.file)? };
        self.map = Some(map);
        Ok(())
    }
}

impl FileSystem for RealFs {
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
        Ok(Box::new(RealFile { file, map: None }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(RealFile { file, map: None }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
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
    {
        let f = fs.create(&tmp)?;
        f.write_at(bytes, 0)?;
        f.sync()?;
    }
    fs.rename(&tmp, path)?;
    fs.sync_dir(dir)
}
