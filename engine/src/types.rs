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
    /// kept in whole seconds: it is rounded up to the next second (never early). One past
    /// 2106-02-07T06:28:15Z (`u32::MAX` seconds) is kept as never.
    pub expires_at_ms: Option<u64>,
    /// A small tag the caller can use to remember how to present the value.
    pub kind: u8,
    /// Relative expiry in milliseconds, counted from the store clock when the write is
    /// applied; used only when `expires_at_ms` is `None`.
    pub expires_in_ms: Option<u64>,
}

impl PutOptions {
    /// Options with an absolute expiry.
    pub fn expiring_at(expires_at_ms: u64) -> Self {
        Self {
            expires_at_ms: Some(expires_at_ms),
            ..Self::default()
        }
    }

    /// Options with an expiry relative to when the write is applied (by the store's clock).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use std::time::Duration;
    /// use ttlcask_engine::{ManualClock, PutOptions, Store};
    /// let clock = ManualClock::new(1_000_000);
    /// let store = Store::builder().clock(clock.clone()).open(dir.path())?;
    /// store.put(b"ns", b"k", b"v", PutOptions::expiring_in(Duration::from_secs(60)))?;
    /// assert_eq!(store.get(b"ns", b"k")?.and_then(|i| i.expires_at_ms), Some(1_060_000));
    /// clock.advance_ms(61_000);
    /// assert!(store.get(b"ns", b"k")?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expiring_in(ttl: std::time::Duration) -> Self {
        Self {
            expires_in_ms: Some(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            ..Self::default()
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
    /// Version of the record that created it (an export keeps it, so that an import can
    /// tell it from a newer drop: see [`crate::Store::import_namespace`]).
    pub created_version: u64,
}

/// One operation of a [`WriteBatch`], borrowing its bytes from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchOp<'a> {
    pub namespace: &'a [u8],
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub kind: OpKind,
}

/// What a batch operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Put(PutOptions),
    PutIf(PutOptions, Condition),
    Increment(i64, PutOptions),
    /// Options, the exported version, and whether a newer clear or drop lets it through
    /// with a new version.
    Import(PutOptions, u64, bool),
    Delete,
}

/// Where one operation's bytes are in a batch's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpSpan {
    kind: OpKind,
    namespace: std::ops::Range<usize>,
    key: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
}

/// Writes that are applied together and made durable together: all of them or, if a
/// condition of one fails, none ([`WriteError::ConditionFailed`](crate::WriteError) names it).
///
/// The bytes of every operation live in one buffer, so building a batch allocates only
/// as that buffer grows.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use ttlcask_engine::{BatchOutcome, Condition, PutOptions, Store, WriteBatch, WriteError};
/// let store = Store::open(dir.path())?;
/// let mut batch = WriteBatch::new();
/// batch.put(b"ns", b"a", b"1", PutOptions::default());
/// batch.delete(b"ns", b"missing");
/// batch.increment(b"ns", b"hits", 2, PutOptions::default());
/// let outcomes = store.write_batch(batch)?;
/// assert!(matches!(outcomes[0], BatchOutcome::Stored { .. }));
/// assert_eq!(outcomes[1], BatchOutcome::NotFound);
/// assert!(matches!(outcomes[2], BatchOutcome::Incremented { value: 2, .. }));
///
/// // A condition that fails stores nothing of the batch and names the operation.
/// let mut batch = WriteBatch::new();
/// batch.put(b"ns", b"b", b"2", PutOptions::default());
/// batch.put_if(b"ns", b"a", b"3", PutOptions::default(), Condition::Absent);
/// let err = store.write_batch(batch).unwrap_err();
/// assert!(matches!(err, WriteError::ConditionFailed { op: 1, .. }));
/// assert!(store.get(b"ns", b"b")?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    bytes: Vec<u8>,
    spans: Vec<OpSpan>,
    /// Whether later operations must see earlier ones (anything but plain puts).
    tracked: bool,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `ops` operations whose namespaces, keys and values
    /// come to `bytes` bytes in all: filled within that, it never grows (a batch of 10,000
    /// puts built with [`WriteBatch::new`] copied its bytes through a dozen doublings).
    pub fn with_capacity(ops: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(ops),
            tracked: false,
        }
    }

    fn push_bytes(&mut self, b: &[u8]) -> std::ops::Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        start..self.bytes.len()
    }

    fn push(&mut self, kind: OpKind, namespace: &[u8], key: &[u8], value: &[u8]) {
        self.tracked |= !matches!(kind, OpKind::Put(_));
        let span = OpSpan {
            kind,
            namespace: self.push_bytes(namespace),
            key: self.push_bytes(key),
            value: self.push_bytes(value),
        };
        self.spans.push(span);
    }

    /// Adds a put.
    pub fn put(&mut self, namespace: &[u8], key: &[u8], value: &[u8], options: PutOptions) {
        self.push(OpKind::Put(options), namespace, key, value);
    }

    /// Adds a put that happens only if `condition` holds (seeing the batch's earlier
    /// operations); if it does not, the whole batch is refused.
    pub fn put_if(
        &mut self,
        namespace: &[u8],
        key: &[u8],
        value: &[u8],
        options: PutOptions,
        condition: Condition,
    ) {
        self.push(OpKind::PutIf(options, condition), namespace, key, value);
    }

    /// Adds an increment of a decimal integer value (a missing key counts as 0 and gets
    /// `options`); a value that is not an integer, or an overflow, refuses the whole batch.
    pub fn increment(&mut self, namespace: &[u8], key: &[u8], delta: i64, options: PutOptions) {
        self.push(OpKind::Increment(delta, options), namespace, key, b"");
    }

    /// Adds a delete.
    pub fn delete(&mut self, namespace: &[u8], key: &[u8]) {
        self.push(OpKind::Delete, namespace, key, b"");
    }

    /// Adds an import: a put that keeps `version` (an export's `cas`), applied only if the
    /// store holds no newer record of the key (nor a newer clear or drop of its namespace),
    /// so that an interrupted import can simply be run again. The store's version counter
    /// moves past every version imported. Outcome: `Stored` with `version`, or `Kept` with
    /// the newer version the store holds.
    pub fn import(
        &mut self,
        namespace: &[u8],
        key: &[u8],
        value: &[u8],
        options: PutOptions,
        version: u64,
    ) {
        self.push(
            OpKind::Import(options, version, false),
            namespace,
            key,
            value,
        );
    }

    /// Adds an import of the owner's copy of an item: as [`WriteBatch::import`], except that
    /// a clear or drop of the namespace newer than `version` does not keep it out. It is
    /// stored with a new version instead (`Stored` names it), above the clear. A newer
    /// record of the key still keeps it out (a clear forgets the records it hides).
    ///
    /// For a store taking back data it gave away: a cluster node that dropped a slot's
    /// caches after moving them elsewhere holds drops newer than the versions the new owner
    /// wrote since, and [`WriteBatch::import`] would keep every item of the move back out.
    pub fn import_over_clears(
        &mut self,
        namespace: &[u8],
        key: &[u8],
        value: &[u8],
        options: PutOptions,
        version: u64,
    ) {
        self.push(
            OpKind::Import(options, version, true),
            namespace,
            key,
            value,
        );
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub(crate) fn is_tracked(&self) -> bool {
        self.tracked
    }

    pub(crate) fn ops(&self) -> impl Iterator<Item = BatchOp<'_>> + '_ {
        self.spans.iter().map(|s| BatchOp {
            namespace: &self.bytes[s.namespace.clone()],
            key: &self.bytes[s.key.clone()],
            value: &self.bytes[s.value.clone()],
            kind: s.kind,
        })
    }
}

/// The highest version an import may keep ([`WriteBatch::import`]); higher ones are
/// refused. A quarter of the format's version space: a store whose counter passes half of
/// it is refused at open as implausible (a crafted directory), so 2^54 writes must fit after
/// the highest import (at half, the writes after it made the store impossible to open
/// again: found from outside).
pub const MAX_IMPORT_VERSION: u64 = crate::format::VERSION_LIMIT / 4 - 1;

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
    /// The increment stored this value with this version.
    Incremented {
        /// The value after the increment.
        value: i64,
        /// The new item's version.
        version: u64,
    },
    /// The import was not applied: the store holds this newer version of the key (or of
    /// a clear or drop of its namespace).
    Kept {
        /// The newer version.
        version: u64,
    },
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
    /// Whether a pre-written spare segment is ready for the next rollover (durable stores
    /// only; `false` while the background thread is still writing it).
    pub spare_ready: bool,
    /// Sealed segments whose unused pre-allocated tail the background thread has not cut
    /// yet (a rollover leaves the cut to it). Normally 0 or 1; more means cuts fail.
    pub uncut_segments: u64,
    /// Cuts of a sealed segment's tail that failed since open (each is tried again at the
    /// background thread's next tick; nothing is lost meanwhile).
    pub failed_cuts: u64,
    /// Bytes the space reserve holds (room for a compaction output and for tombstones on a
    /// full disk; 0 while given up or not yet made).
    pub reserve_bytes: u64,
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
    /// assert_eq!(Stats::fsync_batch_bound(usize::MAX), None);
    /// ```
    pub fn fsync_batch_bound(i: usize) -> Option<u64> {
        // Not `i + 1 < …`: it overflowed at `usize::MAX` (found from outside).
        (i < FSYNC_BATCH_BUCKETS - 1).then(|| 1u64 << i)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_filled_within_its_capacity_never_moves_its_buffers() {
        let (ops, each) = (1_000, 2 + 24 + 150);
        let mut batch = WriteBatch::with_capacity(ops, ops * each);
        let (bytes, spans) = (batch.bytes.as_ptr(), batch.spans.as_ptr());
        for i in 0..ops {
            let key = format!("{i:024}");
            batch.put(b"ns", key.as_bytes(), &[7; 150], PutOptions::default());
        }
        assert_eq!(batch.len(), ops);
        assert_eq!(batch.bytes.len(), ops * each);
        assert_eq!(batch.bytes.as_ptr(), bytes, "the bytes grew");
        assert_eq!(batch.spans.as_ptr(), spans, "the operations grew");
        assert_eq!(batch, {
            let mut b = WriteBatch::new();
            for i in 0..ops {
                let key = format!("{i:024}");
                b.put(b"ns", key.as_bytes(), &[7; 150], PutOptions::default());
            }
            b
        });
    }
}
