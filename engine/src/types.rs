//! The values that cross the engine's public API.

use bytes::Bytes;

/// A stored item as `get` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value bytes.
    pub value: Bytes,
    /// Unique across the store and increasing with every write (IronCache's `cas`).
    pub version: u64,
    /// When the item stops being visible, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
    /// The caller's value-kind tag, stored as given.
    pub kind: u8,
}

/// Options of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Absolute expiry in milliseconds since the Unix epoch; `None` never expires. Expiry is
    /// kept in whole seconds: it is rounded up to the next second (never early).
    pub expires_at_ms: Option<u64>,
    /// A small tag the caller can use to remember how to present the value.
    pub kind: u8,
}

impl PutOptions {
    /// Options with an absolute expiry.
    pub fn expiring_at(expires_at_ms: u64) -> Self {
        Self {
            expires_at_ms: Some(expires_at_ms),
            kind: 0,
        }
    }

    /// The same options with another kind tag.
    pub fn with_kind(mut self, kind: u8) -> Self {
        self.kind = kind;
        self
    }
}

/// The condition of [`Store::put_if`](crate::Store::put_if).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Store only if no live item has the key (memcached `add`).
    Absent,
    /// Store only if a live item has the key (memcached `replace`).
    Present,
    /// Store only if the live item's version equals this one (`cas`).
    VersionIs(u64),
}

/// What a namespace holds right now (expired items are not counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// The namespace's name.
    pub name: Vec<u8>,
    /// Live items.
    pub items: u64,
    /// Key and value bytes of the live items.
    pub live_bytes: u64,
}

/// One operation of a [`WriteBatch`], borrowing its bytes from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchOp<'a> {
    Put {
        namespace: &'a [u8],
        key: &'a [u8],
        value: &'a [u8],
        options: PutOptions,
    },
    Delete {
        namespace: &'a [u8],
        key: &'a [u8],
    },
}

/// Where one operation's bytes are in a batch's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpSpan {
    /// `None` for a delete.
    put: Option<PutOptions>,
    namespace: std::ops::Range<usize>,
    key: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
}

/// Writes that are applied together and made durable together.
///
/// The bytes of every operation live in one buffer, so building a batch allocates only
/// as that buffer grows.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use ttlcask_engine::{BatchOutcome, PutOptions, Store, WriteBatch};
/// let store = Store::open(dir.path())?;
/// let mut batch = WriteBatch::new();
/// batch.put(b"ns", b"a", b"1", PutOptions::default());
/// batch.delete(b"ns", b"missing");
/// let outcomes = store.write_batch(batch)?;
/// assert!(matches!(outcomes[0], BatchOutcome::Stored { .. }));
/// assert_eq!(outcomes[1], BatchOutcome::NotFound);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    bytes: Vec<u8>,
    spans: Vec<OpSpan>,
    deletes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    fn push_bytes(&mut self, b: &[u8]) -> std::ops::Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        start..self.bytes.len()
    }

    /// Adds an unconditional put.
    pub fn put(&mut self, namespace: &[u8], key: &[u8], value: &[u8], options: PutOptions) {
        let span = OpSpan {
            put: Some(options),
            namespace: self.push_bytes(namespace),
            key: self.push_bytes(key),
            value: self.push_bytes(value),
        };
        self.spans.push(span);
    }

    /// Adds a delete.
    pub fn delete(&mut self, namespace: &[u8], key: &[u8]) {
        let span = OpSpan {
            put: None,
            namespace: self.push_bytes(namespace),
            key: self.push_bytes(key),
            value: 0..0,
        };
        self.spans.push(span);
        self.deletes += 1;
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Whether a later operation may need to see an earlier one: only deletes look at what
    /// is live (puts are unconditional).
    pub(crate) fn has_deletes(&self) -> bool {
        self.deletes > 0
    }

    /// The operations, in order.
    pub(crate) fn ops(&self) -> impl Iterator<Item = BatchOp<'_>> + '_ {
        self.spans.iter().map(|s| {
            let namespace = &self.bytes[s.namespace.clone()];
            let key = &self.bytes[s.key.clone()];
            match s.put {
                Some(options) => BatchOp::Put {
                    namespace,
                    key,
                    value: &self.bytes[s.value.clone()],
                    options,
                },
                None => BatchOp::Delete { namespace, key },
            }
        })
    }
}

/// The result of one batch operation, in the order of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// The put was stored with this version.
    Stored {
        /// The new item's version.
        version: u64,
    },
    /// The delete removed a live item.
    Deleted,
    /// The delete found no live item.
    NotFound,
}

/// Counters and sizes of a store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live items in all namespaces (expired items are not counted).
    pub items: u64,
    /// Namespaces.
    pub namespaces: u64,
    /// Bytes of records on disk that are still needed.
    pub live_bytes: u64,
    /// Bytes of records on disk that compaction can reclaim.
    pub dead_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Estimated heap bytes of the in-memory index.
    pub index_bytes: u64,
    /// fsync calls made for durability since open.
    pub fsyncs: u64,
    /// Writes acknowledged since open.
    pub writes: u64,
    /// Compaction runs since open.
    pub compactions: u64,
    /// Expired items removed by compaction since open.
    pub expired_removed: u64,
    /// Whether a compaction (or hint writing) is running right now.
    pub compacting: bool,
    /// When the last compaction run that reclaimed something ended, in ms since the epoch
    /// (store clock); `None` if none has since open.
    pub last_compaction_ms: Option<u64>,
    /// Group commit: how many fsyncs (of `Durability::Always` waiters or the
    /// `Durability::Every` timer) made how many writes durable. Bucket `i` counts fsyncs that
    /// covered at most [`Stats::fsync_batch_bound`]`(i)` writes (and more than bucket
    /// `i - 1`'s bound); the last bucket has no bound.
    pub fsync_batches: [u64; FSYNC_BATCH_BUCKETS],
    /// Writes made durable by the fsyncs counted in `fsync_batches` (their sum).
    pub fsync_batched_writes: u64,
    /// Reads since open that found a damaged or lost record (each an error, never an older
    /// value).
    pub lost_reads: u64,
    /// Records that compaction could not copy out of damaged segments since open.
    pub damaged_records_dropped: u64,
}

/// Buckets of [`Stats::fsync_batches`]: bounds 1, 2, 4, … 2^14, then unbounded.
pub const FSYNC_BATCH_BUCKETS: usize = 16;

impl Stats {
    /// Upper bound (inclusive) of writes per fsync of bucket `i` of
    /// [`Stats::fsync_batches`]: `2^i`, or `None` for the last bucket and beyond.
    ///
    /// ```
    /// use ttlcask_engine::{Stats, FSYNC_BATCH_BUCKETS};
    /// assert_eq!(Stats::fsync_batch_bound(0), Some(1));
    /// assert_eq!(Stats::fsync_batch_bound(3), Some(8));
    /// assert_eq!(Stats::fsync_batch_bound(FSYNC_BATCH_BUCKETS - 1), None);
    /// ```
    pub fn fsync_batch_bound(i: usize) -> Option<u64> {
        (i + 1 < FSYNC_BATCH_BUCKETS).then(|| 1u64 << i)
    }
}

/// What one compaction run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Segments rewritten.
    pub segments_rewritten: u64,
    /// Wholly expired segments deleted without being read.
    pub segments_deleted_unread: u64,
    /// Bytes of disk given back.
    pub bytes_reclaimed: u64,
    /// Records copied into new segments.
    pub records_kept: u64,
    /// Records dropped.
    pub records_dropped: u64,
    /// Damaged ranges found in the segments read (their intact records were copied).
    pub damaged_ranges: u64,
    /// Records known lost in those ranges (their keys read as `ReadError::Lost`).
    pub records_lost: u64,
}
