//! The public handle: [`Store`].

use std::path::Path;
use std::sync::Arc;

use crate::error::{CompactError, IncrementError, OpenError, ReadError, WriteError};
use crate::options::StoreBuilder;
use crate::types::{
    BatchOutcome, CompactionReport, Condition, Item, NamespaceInfo, PutOptions, Stats, WriteBatch,
};

/// What opening the store found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments whose index came from a hint file.
    pub segments_from_hints: u64,
    /// Segments that were read record by record.
    pub segments_scanned: u64,
    /// Records indexed.
    pub records: u64,
    /// Torn or corrupt tails cut off: (segment id, offset of the cut, bytes dropped).
    pub truncated: Vec<(u32, u64, u64)>,
    /// Files that were not usable at all and were ignored, with the reason.
    pub ignored_files: Vec<String>,
}

/// A handle to an open store; clones share it. The store closes when the last clone drops.
#[derive(Clone)]
pub struct Store {
    inner: Arc<()>,
}

impl Store {
    /// Opens (or creates) a store in `dir` with default options.
    ///
    /// # Errors
    /// See [`OpenError`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::builder().open(dir)
    }

    /// A builder for other options.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    pub(crate) fn open_with(_options: StoreBuilder, _dir: &Path) -> Result<Self, OpenError> {
        let _ = &Self { inner: Arc::new(()) }.inner;
        todo!()
    }

    /// What opening the store found and repaired.
    pub fn recovery_report(&self) -> RecoveryReport {
        todo!()
    }

    /// The store clock's current time in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        todo!()
    }

    /// Creates a namespace; `Ok(false)` if it already exists.
    ///
    /// # Errors
    /// See [`WriteError`].
    pub fn create_namespace(&self, _namespace: &[u8]) -> Result<bool, WriteError> {
        todo!()
    }

    /// A namespace's item count and bytes, or `None` if it does not exist.
    pub fn namespace(&self, _namespace: &[u8]) -> Option<NamespaceInfo> {
        todo!()
    }

    /// All namespaces whose name starts with `prefix`, sorted by name.
    pub fn namespaces(&self, _prefix: &[u8]) -> Vec<NamespaceInfo> {
        todo!()
    }

    /// Removes every item of a namespace with one record; `Ok(false)` if it does not exist.
    ///
    /// # Errors
    /// See [`WriteError`].
    pub fn clear_namespace(&self, _namespace: &[u8]) -> Result<bool, WriteError> {
        todo!()
    }

    /// Removes a namespace and its items with one record; `Ok(false)` if it does not exist.
    ///
    /// # Errors
    /// See [`WriteError`].
    pub fn drop_namespace(&self, _namespace: &[u8]) -> Result<bool, WriteError> {
        todo!()
    }

    /// The live item under `key`, or `None` (also for expired items).
    ///
    /// # Errors
    /// [`ReadError::Corrupt`] if the record fails its checksum.
    pub fn get(&self, _namespace: &[u8], _key: &[u8]) -> Result<Option<Item>, ReadError> {
        todo!()
    }

    /// Stores `value` under `key`, creating the namespace if needed; returns the new version.
    ///
    /// # Errors
    /// See [`WriteError`].
    pub fn put(
        &self,
        _namespace: &[u8],
        _key: &[u8],
        _value: &[u8],
        _options: PutOptions,
    ) -> Result<u64, WriteError> {
        todo!()
    }

    /// Stores `value` only if `condition` holds; `Ok(None)` (and nothing stored) otherwise.
    ///
    /// # Errors
    /// See [`WriteError`].
    pub fn put_if(
        &self,
        _namespace: &[u8],
        _key: &[u8],
        _value: &[u8],
        _options: PutOptions,
        _condition: Condition,
    ) -> Result<Option<u64>, WriteError> {
        todo!()
    }

    /// Deletes `key`; `Ok(false)` if no live item had it.
    ///
    /// # Errors
    /// See [`WriteError`].
    pub fn delete(&self, _namespace: &[u8], _key: &[u8]) -> Result<bool, WriteError> {
        todo!()
    }

    /// Adds `delta` to the decimal integer stored under `key` and returns the result. A missing
    /// key is created with `delta` and `options`; an existing item keeps its expiry and kind.
    ///
    /// # Errors
    /// [`IncrementError::NotAnInteger`], [`IncrementError::Overflow`], or a read/write error.
    pub fn increment(
        &self,
        _namespace: &[u8],
        _key: &[u8],
        _delta: i64,
        _options: PutOptions,
    ) -> Result<i64, IncrementError> {
        todo!()
    }

    /// The live keys of a namespace (a snapshot; no order is promised).
    pub fn keys(&self, _namespace: &[u8]) -> std::vec::IntoIter<Vec<u8>> {
        todo!()
    }

    /// Applies every operation of `batch` in one record and makes it durable together.
    ///
    /// # Errors
    /// See [`WriteError`]; on error none of the batch is acknowledged.
    pub fn write_batch(&self, _batch: WriteBatch) -> Result<Vec<BatchOutcome>, WriteError> {
        todo!()
    }

    /// Makes every acknowledged write durable now, whatever the durability policy.
    ///
    /// # Errors
    /// See [`WriteError`].
    pub fn sync(&self) -> Result<(), WriteError> {
        todo!()
    }

    /// Runs one compaction over every sealed segment that has something to reclaim.
    ///
    /// # Errors
    /// See [`CompactError`].
    pub fn compact(&self) -> Result<CompactionReport, CompactError> {
        todo!()
    }

    /// Counters and sizes.
    pub fn stats(&self) -> Stats {
        todo!()
    }
}
