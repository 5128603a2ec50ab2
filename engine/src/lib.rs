//! `ttlcask-engine`: a durable, log-structured key-value store with namespaces and TTL.
//!
//! Items live in namespaces (byte strings; the ttlcask server uses tenant + API + cache).
//! Every write is appended to a CRC-checked segment file and indexed in memory; reads go
//! through memory maps. A background compactor rewrites segments that are mostly dead and
//! deletes wholly expired ones. The ttlcask source tree's `ARCHITECTURE.md` has the on-disk
//! format and the crash argument.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! use ttlcask_engine::{Condition, PutOptions, Store};
//!
//! let store = Store::open(dir.path())?;
//! let version = store.put(b"tenant/cache", b"greeting", b"hello", PutOptions::default())?;
//! let item = store.get(b"tenant/cache", b"greeting")?.expect("just stored");
//! assert_eq!(&item.value[..], b"hello");
//! assert_eq!(item.version, version);
//!
//! // Conditional writes: only-if-absent fails because the key exists.
//! let added = store.put_if(b"tenant/cache", b"greeting", b"hi", PutOptions::default(), Condition::Absent)?;
//! assert_eq!(added, None);
//!
//! assert_eq!(store.increment(b"tenant/cache", b"hits", 5, PutOptions::default())?, 5);
//! assert!(store.delete(b"tenant/cache", b"greeting")?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]

mod background;
mod clock;
mod combine;
mod compaction;
mod error;
mod format;
mod fs;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod group_commit;
mod hint;
mod huge;
mod index;
mod keydir;
mod map_faults;
mod options;
mod recovery;
mod scan;
mod seals;
mod segment;
mod sharded;
mod signals;
pub mod sim;
mod space;
mod store;
mod types;
mod varint;
mod verify;
mod writer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{CompactError, IncrementError, OpenError, ReadError, TryGetError, WriteError};
pub use fs::{
    check_regular, is_out_of_space, read_regular, DirSyncer, FileSystem, RealFs, StorageFile, View,
};
pub use huge::mapped_bytes as index_mapped_bytes;
pub use map_faults::unreadable_pages;
pub use options::{
    Durability, RecoveryPolicy, StoreBuilder, DEFAULT_SEGMENT_SIZE, MAX_SEGMENT_SIZE,
    MIN_SEGMENT_SIZE,
};
pub use signals::DISK_WAIT_REPORTED;
pub use store::{DamagedRange, DeferredError, Health, RecoveryReport, Store, Ticket};
pub use types::{
    BatchOutcome, CompactionReport, Condition, Item, NamespaceInfo, PutOptions, Stats, WriteBatch,
    FSYNC_BATCH_BUCKETS, MAX_IMPORT_VERSION,
};
pub use verify::{verify, verify_with_progress, Damage, VerifyReport};
