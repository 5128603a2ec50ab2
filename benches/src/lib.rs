//! Side-by-side benchmarks of `ttlcask-engine` against redb, fjall, LMDB (through heed) and
//! sled, modelled on redb's `lmdb_benchmark`: one [`BenchDatabase`] trait, one workload run
//! against every store in one process, one table of figures and ratios (`table`).
//!
//! The workload (DESIGN.md "Performance targets"): 24-byte keys, 150-byte values, `N` keys
//! (1,000,000 by default); bulk load, reopen, random point reads from 1 and 2 threads,
//! durable single writes from 1 and 64 threads, 50 % overwrites then compaction, removals.
//! The raw limits of the disk under the data directory are measured in the same run (`raw`),
//! so that every ratio compares figures taken on the same machine at the same time.
//!
//! Run it with `cargo bench -p ttlcask-bench` (options: `benches/engine.rs`).

pub mod alloc;
pub mod dbs;
pub mod raw;
pub mod table;
pub mod workload;

use std::path::Path;

/// The error type of the harness: every store has its own, and a benchmark only reports them.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// The result type of the harness.
pub type Result<T> = std::result::Result<T, Error>;

/// Key length of the workload, as in redb's benchmark and DESIGN.md.
pub const KEY_LEN: usize = 24;
/// Value length of the workload.
pub const VALUE_LEN: usize = 150;

/// How a store is opened: for a bulk phase (ttlcask may defer its fsyncs to the end of the
/// phase, as the peers do with one transaction) or for durable single writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The next phase writes in bulk and calls [`BenchDatabase::bulk_put`], which must end
    /// durable.
    Bulk,
    /// Every write is durable when it returns.
    Durable,
}

/// What compaction did, so the harness knows which files to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compacted {
    /// The store compacted itself in place: measure its directory after closing it.
    InPlace,
    /// The store wrote a compacted copy here (LMDB's `mdb_env_copy2` with compaction).
    Copy(std::path::PathBuf),
    /// The store has no compaction call.
    Unsupported,
}

/// One store under test. Every write call ends durable (fsync or fdatasync) before it returns.
pub trait BenchDatabase: Sized + Sync {
    /// The name printed in the table.
    const NAME: &'static str;

    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// The store's own open error.
    fn open(dir: &Path, mode: OpenMode) -> Result<Self>;

    /// Writes every pair in one transaction (or the store's nearest equivalent) and makes it
    /// durable before returning.
    ///
    /// # Errors
    /// The store's own write error.
    fn bulk_put(
        &self,
        pairs: &mut dyn Iterator<Item = ([u8; KEY_LEN], [u8; VALUE_LEN])>,
    ) -> Result<()>;

    /// Removes every key in one transaction (or equivalent) and makes it durable.
    ///
    /// # Errors
    /// The store's own write error.
    fn bulk_remove(&self, keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>) -> Result<()>;

    /// Writes one pair in a transaction of its own and returns once it is durable.
    ///
    /// # Errors
    /// The store's own write error.
    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()>;

    /// Looks up every key (inside one read transaction where the store has them) and hands
    /// each value found to `seen`; returns how many keys were missing.
    ///
    /// # Errors
    /// The store's own read error.
    fn read_each(
        &self,
        keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>,
        seen: &mut dyn FnMut(&[u8]),
    ) -> Result<u64>;

    /// Looks up `keys` with one call of the store's batched read, where it has one (ttlcask's
    /// `get_many`), and hands each value found to `seen`; returns how many were missing.
    fn read_batch(
        &self,
        _keys: &[[u8; KEY_LEN]],
        _seen: &mut dyn FnMut(&[u8]),
    ) -> Option<Result<u64>> {
        None
    }

    /// Compacts the store as far as it can.
    ///
    /// # Errors
    /// The store's own compaction error.
    fn compact(&mut self) -> Result<Compacted>;

    /// Store-specific figures read after the 64-thread durable test: `(writes, fsyncs)` since
    /// open, where the store counts them.
    fn write_counters(&self) -> Option<(u64, u64)> {
        None
    }

    /// Bytes of the in-memory index as the store estimates it, where it does.
    fn index_bytes(&self) -> Option<u64> {
        None
    }
}
