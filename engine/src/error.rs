//! Errors, one enum per operation, each message saying what to do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Opening a store failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// A file of the data directory could not be created, read or written.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// Another `Store` (in this or another process) has the directory open.
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A builder option is out of range.
    InvalidOption(String),
    /// The directory's contents cannot be used as they are.
    Damaged(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // An I/O error is the disk's, not the directory's set-up (found from outside: one
            // was met with advice on permissions and space).
            Self::Io { path, source } if source.raw_os_error() == Some(libc::EIO) => write!(
                f,
                "cannot use {}: {source}; the disk failed to read or write it: check the disk (its kernel log), then start again (nothing was changed)",
                path.display()
            ),
            Self::Io { path, source } => write!(
                f,
                "cannot use {}: {source}; check that the data directory exists, that its files are regular files its user can read and write, and that the disk has free space",
                path.display()
            ),
            Self::Locked { path } => write!(
                f,
                "the data directory is in use by another ttlcask store (lock {} is held); stop the other process or use another directory",
                path.display()
            ),
            Self::InvalidOption(msg) => write!(f, "invalid store option: {msg}"),
            Self::Damaged(why) => write!(
                f,
                "the data directory cannot be opened: {why}; run `ttlcask verify` on it"
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A read failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// The record on disk failed its checksum; it is never returned.
    Corrupt {
        /// Segment id.
        segment: u32,
        /// Offset of the record in the segment.
        offset: u32,
    },
    /// The index points at a segment that is no longer there (a bug; please report it).
    MissingSegment(u32),
    /// The key's newest record may lie in a damaged range of segment `segment` at `offset`
    /// (found on open or by compaction): its value is lost, and an older one is never
    /// returned instead. Writing the key again ends this.
    Lost {
        /// Segment id.
        segment: u32,
        /// Offset of the damaged range.
        offset: u64,
    },
    /// The record could not be read: the disk failed to read its page (an I/O error), which
    /// reads as zeros until the store is reopened (see [`crate::unreadable_pages`]). Nothing
    /// is judged lost from it: reopen once the disk is sound.
    Unreadable {
        /// Segment id.
        segment: u32,
        /// Offset of the record in the segment.
        offset: u32,
    },
    /// The key's newest record was written after the store's last good fsync, and the next
    /// one failed (the store is poisoned): whether it is on disk is unknown until the store
    /// is reopened, which reads what the disk kept. Neither it nor an older value is
    /// returned meanwhile.
    Unsynced,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt { segment, offset } => write!(
                f,
                "record at segment {segment} offset {offset} failed its checksum; the disk may be damaged, run `ttlcask verify`"
            ),
            Self::MissingSegment(id) => write!(f, "segment {id} is missing; this is a bug in ttlcask-engine"),
            Self::Unreadable { segment, offset } => write!(
                f,
                "record at segment {segment} offset {offset} could not be read (the disk returned an I/O error); reopen the store once the disk is sound"
            ),
            Self::Unsynced => f.write_str("the key was written after the last good fsync, and the next one failed: whether it is on disk is unknown until the store is reopened (fix the disk and restart)"),
            Self::Lost { segment, offset } => write!(
                f,
                "the key's newest record was in a damaged range of segment {segment} at offset {offset} and is lost; write the key again"
            ),
        }
    }
}

impl std::error::Error for ReadError {}

/// A write was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// An earlier write or fsync failed; the store refuses writes until it is reopened.
    Poisoned(String),
    /// Writing or syncing failed just now; the store is poisoned from here on.
    Io(String),
    /// The disk is full: nothing of the write was stored. Deletes, clears and drops still
    /// work while the space kept for them lasts (an eighth of each segment, and a reserve
    /// file of a quarter segment), then get this too until compaction or the operator frees
    /// space; writes are taken again once space is free.
    DiskFull(String),
    /// The data directory refused a new segment file (permission denied, or a read-only
    /// file system): nothing of the write was stored and the store is not poisoned; writes
    /// are taken again once the directory accepts files, with no reopen.
    DirNotWritable(String),
    /// The process had no file descriptor left for a new segment file (its open-file limit,
    /// or the system's): nothing of the write was stored and the store is not poisoned;
    /// writes are taken again once a descriptor is free, with no reopen.
    OutOfDescriptors(String),
    /// The store was opened read-only.
    ReadOnly,
    /// A condition of a batch operation did not hold (or an increment found no integer):
    /// nothing of the batch was stored.
    ConditionFailed {
        /// Index of the operation in the batch.
        op: usize,
        /// What did not hold.
        reason: String,
    },
    /// A key, namespace or value is larger than the store accepts.
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Also what the writer whose own fsync failed is told: "earlier" was wrong there
            // (found from outside).
            Self::Poisoned(cause) => write!(
                f,
                "the store refuses writes since an I/O failure ({cause}), and this one was not acknowledged; fix the disk and reopen the store"
            ),
            Self::Io(cause) => write!(
                f,
                "write failed: {cause}; the write may not be durable and the store refuses further writes until reopened"
            ),
            Self::ReadOnly => f.write_str("the store was opened read-only; open it without `read_only` to write"),
            Self::ConditionFailed { op, reason } => write!(
                f,
                "operation {op} of the batch failed its condition ({reason}); nothing of the batch was stored"
            ),
            Self::DiskFull(cause) => write!(
                f,
                "the disk is full ({cause}); nothing was written: retry shortly (deletes taken on a full disk start a compaction that gives space back), or free space on the disk"
            ),
            Self::DirNotWritable(cause) => write!(
                f,
                "the data directory refused a new segment file ({cause}); nothing was written: make the directory writable again (its permissions, its mount), and writes go on by themselves"
            ),
            Self::OutOfDescriptors(cause) => write!(
                f,
                "no file descriptor is left for a new segment file ({cause}); nothing was written: close files or connections, or raise the open-file limit (`ulimit -n`), and writes go on by themselves"
            ),
            Self::TooLarge { what, size, limit } => {
                write!(f, "{what} of {size} bytes is larger than the limit of {limit} bytes")
            }
        }
    }
}

impl std::error::Error for WriteError {}

/// A [`Store::try_get`](crate::Store::try_get) did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryGetError {
    /// Answering would wait for the disk (or for a long-held lock); use `get` on a thread
    /// that may block.
    WouldBlock,
    /// The read failed.
    Read(ReadError),
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WouldBlock => f.write_str(
                "the record is not in memory; read it with `get` on a thread that may block",
            ),
            Self::Read(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TryGetError {}

impl From<ReadError> for TryGetError {
    fn from(e: ReadError) -> Self {
        Self::Read(e)
    }
}

/// An increment failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IncrementError {
    /// The stored value is not a decimal integer.
    NotAnInteger,
    /// The result does not fit in a signed 64-bit integer.
    Overflow,
    /// Reading the current value failed.
    Read(ReadError),
    /// Writing the new value failed.
    Write(WriteError),
}

impl fmt::Display for IncrementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnInteger => {
                f.write_str("cannot increment a value that is not a decimal integer")
            }
            Self::Overflow => f.write_str("the result does not fit in a signed 64-bit integer"),
            Self::Read(e) => e.fmt(f),
            Self::Write(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for IncrementError {}

impl From<ReadError> for IncrementError {
    fn from(e: ReadError) -> Self {
        Self::Read(e)
    }
}

impl From<WriteError> for IncrementError {
    fn from(e: WriteError) -> Self {
        Self::Write(e)
    }
}

/// A compaction run failed; the store keeps working on its old segments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompactError {
    /// Writing the new segment failed (for example the disk is full); nothing was removed.
    Io(String),
    /// The store is poisoned by an earlier write failure.
    Poisoned(String),
    /// The store was opened read-only.
    ReadOnly,
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(cause) => write!(
                f,
                "compaction failed: {cause}; the old segments were kept, nothing was lost: free disk space if it is full, check the disk if it failed a read or write, and try again"
            ),
            Self::Poisoned(cause) => write!(f, "compaction refused: the store is poisoned ({cause}); reopen it"),
            Self::ReadOnly => f.write_str("compaction refused: the store was opened read-only"),
        }
    }
}

impl std::error::Error for CompactError {}
