//! How a store is opened: durability policy, segment size, clock, compaction.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::OpenError;
use crate::fs::{FileSystem, RealFs};
use crate::Store;

/// When an acknowledged write has reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A write returns only after fsync; concurrent writers share one fsync (group commit).
    Always,
    /// A background thread fsyncs at this interval; a crash loses at most that much.
    Every(Duration),
    /// The operating system decides (benchmarks and throwaway data).
    Never,
}

/// What opening a store does about damaged segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecoveryPolicy {
    /// Keep every intact record, lose only the damaged ones (their keys read as
    /// [`ReadError::Lost`](crate::ReadError::Lost)), keep the damaged files as evidence and
    /// report everything in [`RecoveryReport`](crate::RecoveryReport). Only a torn tail of
    /// the newest segment is cut.
    #[default]
    Salvage,
    /// Refuse to open a data directory with any damage beyond a torn tail of the newest
    /// segment ([`OpenError::Damaged`] names it), for operators who restore from a backup.
    Strict,
}

/// Options of [`Store`], started by [`Store::builder`].
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use std::time::Duration;
/// use ttlcask_engine::{Durability, Store};
/// let store = Store::builder()
///     .durability(Durability::Every(Duration::from_millis(100)))
///     .segment_size(8 << 20)
///     .open(dir.path())?;
/// # drop(store);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct StoreBuilder {
    pub(crate) durability: Durability,
    pub(crate) segment_size: u64,
    /// Whether `segment_size` was chosen ([`StoreBuilder::segment_size`]); the default is
    /// fitted to the file system at open.
    pub(crate) segment_size_chosen: bool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) compaction_interval: Option<Duration>,
    pub(crate) compaction_dead_ratio: f64,
    pub(crate) max_value_size: usize,
    pub(crate) file_system: Arc<dyn FileSystem>,
    pub(crate) recovery_policy: RecoveryPolicy,
    pub(crate) read_only: bool,
    pub(crate) spare_segments: bool,
}

impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("durability", &self.durability)
            .field("segment_size", &self.segment_size)
            .field("compaction_interval", &self.compaction_interval)
            .field("compaction_dead_ratio", &self.compaction_dead_ratio)
            .field("max_value_size", &self.max_value_size)
            .finish_non_exhaustive()
    }
}

/// Default size at which the active segment is sealed: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// Smallest segment size accepted.
pub const MIN_SEGMENT_SIZE: u64 = 4 << 10;
/// Largest segment size accepted (offsets are 32-bit).
pub const MAX_SEGMENT_SIZE: u64 = 1 << 31;

impl Default for StoreBuilder {
    fn default() -> Self {
        Self {
            durability: Durability::Always,
            segment_size: DEFAULT_SEGMENT_SIZE,
            segment_size_chosen: false,
            clock: Arc::new(SystemClock),
            compaction_interval: Some(Duration::from_secs(30)),
            compaction_dead_ratio: 0.5,
            max_value_size: 64 << 20,
            file_system: Arc::new(RealFs),
            recovery_policy: RecoveryPolicy::Salvage,
            read_only: false,
            spare_segments: true,
        }
    }
}

impl StoreBuilder {
    /// The durability policy (default [`Durability::Always`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens without changing anything on disk: no new segment, no cut tail, no removed
    /// leftovers, no hints, no background threads; every write and compaction is refused
    /// with a `ReadOnly` error. The directory must exist. For tools that only read (stats,
    /// export, listing), so that running them leaves no files behind. It still takes the
    /// directory's lock: a directory another store holds (a running server) is refused with
    /// `OpenError::Locked`; read a copy from a file-system snapshot instead.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// What opening does about damaged segments (default [`RecoveryPolicy::Salvage`]).
    pub fn recovery_policy(mut self, policy: RecoveryPolicy) -> Self {
        self.recovery_policy = policy;
        self
    }

    /// Size at which the active segment is sealed (4 KiB to 2 GiB). Without it: 64 MiB, or
    /// less on a file system where that is more than a sixteenth of the room the store has
    /// (see [`Store::segment_size`](crate::Store::segment_size)); a size given here is used
    /// as it is.
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self.segment_size_chosen = true;
        self
    }

    /// The clock used for TTLs (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How often the background compactor looks for work; `None` turns it off
    /// ([`Store::compact`] still works). Default 30 s.
    pub fn compaction_interval(mut self, interval: Option<Duration>) -> Self {
        self.compaction_interval = interval;
        self
    }

    /// Whether a durable store has its background thread write the next segment ahead of
    /// need, full of zeros (default true). Appends into blocks written before cost a cheaper
    /// fsync than appends into blocks never written (no allocation to make durable with
    /// them). Off, a store whose fsyncs and compaction are not timed runs no background
    /// thread, which tests that count file system calls need.
    pub fn spare_segments(mut self, on: bool) -> Self {
        self.spare_segments = on;
        self
    }

    /// The dead fraction of a segment above which the background compactor rewrites it
    /// (default 0.5).
    pub fn compaction_dead_ratio(mut self, ratio: f64) -> Self {
        self.compaction_dead_ratio = ratio;
        self
    }

    /// Largest value accepted by a write (default 64 MiB; at most 128 MiB − 256 KiB whatever
    /// is set here, as the index keeps a record's length in 27 bits).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// The file system to use (default [`RealFs`]); tests pass a
    /// [`SimFs`](crate::sim::SimFs) to simulate crashes and I/O errors.
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.file_system = fs;
        self
    }

    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// See [`OpenError`]: the directory cannot be used, another store holds its lock, or an
    /// option is out of range.
    pub fn open(self, dir: impl AsRef<Path>) -> Result<Store, OpenError> {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&self.segment_size) {
            return Err(OpenError::InvalidOption(format!(
                "segment_size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes, got {}",
                self.segment_size
            )));
        }
        if !(self.compaction_dead_ratio > 0.0 && self.compaction_dead_ratio <= 1.0) {
            return Err(OpenError::InvalidOption(format!(
                "compaction_dead_ratio must be in (0, 1], got {}",
                self.compaction_dead_ratio
            )));
        }
        Store::open_with(self, dir.as_ref())
    }
}
