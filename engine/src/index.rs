//! The in-memory index ("keydir"): per namespace, a hash map from key to where the live
//! record is, plus per-segment accounting of live and dead bytes.

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::format::{EntryRef, Op};
use crate::segment::Segment;

/// Expiry value meaning "never".
pub const NEVER: u64 = u64::MAX;

pub use crate::keydir::{Entry, KeyDir};

/// Location of a namespace's create record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Segment id.
    pub segment: u32,
    /// Offset in the segment.
    pub offset: u32,
    /// Encoded length.
    pub len: u32,
}

/// One namespace.
#[derive(Debug)]
pub struct Namespace {
    /// Version of the record that created it.
    pub created_version: u64,
    /// Where that record is.
    pub created_at: Location,
    /// Items with a version at or below this were cleared.
    pub floor: u64,
    /// Key → live record.
    pub items: KeyDir,
    /// Key → the tombstone that deleted it (length 0), for as long as the tombstone is on
    /// disk: an import must not bring back an older record of a key deleted after it. A
    /// reopen rebuilds it from the tombstones it finds.
    pub deleted: KeyDir,
}

impl Namespace {
    /// An empty namespace created by the record at `created_at`.
    pub fn new(created_version: u64, created_at: Location) -> Self {
        Self {
            created_version,
            created_at,
            floor: 0,
            items: KeyDir::default(),
            deleted: KeyDir::default(),
        }
    }

    /// Version of the newest record of `key` the index knows: its entry (expired or not)
    /// or the tombstone that deleted it.
    pub fn newest(&self, key: &[u8]) -> Option<u64> {
        let put = self.items.get(key).map(|e| e.version);
        let deleted = if self.deleted.is_empty() {
            None
        } else {
            self.deleted.get(key).map(|e| e.version)
        };
        put.max(deleted)
    }

    /// Forgets the tombstone of `key` with `version` (compaction dropped it).
    pub fn forget_tombstone(&mut self, key: &[u8], version: u64) {
        if self.deleted.get(key).is_some_and(|e| e.version == version) {
            self.deleted.remove(key);
        }
    }
}

/// A segment known to the index and its accounting.
#[derive(Debug)]
pub struct SegmentSlot {
    /// The file.
    pub segment: Arc<Segment>,
    /// Bytes written (header and frames).
    pub data_len: u64,
    /// Bytes of entries no longer needed by the index.
    pub dead: u64,
    /// Latest expiry of any entry, `NEVER` if some entry never expires.
    pub max_expiry: u64,
    /// Highest horizon of any entry.
    pub max_horizon: u32,
    /// Holds at least one put: an older version that could come back if what hides it went.
    pub has_puts: bool,
    /// Bytes of hiding records (tombstones, clears, drops) compaction kept here because an
    /// older segment still existed; reclaimable once no such segment is left.
    pub hiding: u64,
    /// Highest horizon of those records.
    pub hiding_horizon: u32,
    /// No more appends (not the active segment, not a compaction output being written).
    pub sealed: bool,
    /// Sealed, but not yet cut to `data_len`: a rollover leaves the file at its created
    /// length for the background thread to cut ([`crate::store::Inner::trim_sealed`]), so
    /// that no writer waits while the file system frees the tail (18-25 ms on a disk that
    /// discards freed blocks as they go). It gets no hint until then: a hint names the
    /// file's length. Its tail is zeros, which recovery cuts as it does an unsealed tail.
    pub untrimmed: bool,
    /// A valid hint file exists.
    pub hinted: bool,
    /// Synced, and its length in the seal log (`seals.rs`).
    pub logged: bool,
    /// Damage was found in it: it gets no hint (every open scans it, to learn again which
    /// keys are lost), and compaction moves it aside as evidence instead of deleting it.
    pub damaged: bool,
    /// Records in it, and their bytes: the rest of `data_len` past the header is framing
    /// (frame headers, trailers, summaries), which a rewrite into large frames mostly saves.
    pub records: u64,
    /// See `records`.
    pub entry_bytes: u64,
    /// Its file was deleted under the store (sealed segments only): the open file still
    /// holds its records, so compaction copies the live ones out at once
    /// ([`crate::store::Inner::check_sealed_linked`]); it gets no hint.
    pub unlinked: bool,
}

impl SegmentSlot {
    /// A fresh slot for a segment with `data_len` bytes written.
    pub fn new(segment: Arc<Segment>, data_len: u64) -> Self {
        Self {
            segment,
            data_len,
            dead: 0,
            max_expiry: 0,
            max_horizon: 0,
            has_puts: false,
            hiding: 0,
            hiding_horizon: 0,
            sealed: false,
            untrimmed: false,
            hinted: false,
            logged: false,
            damaged: false,
            records: 0,
            entry_bytes: 0,
            unlinked: false,
        }
    }

    /// Accounts for one entry written to this segment.
    pub fn note_entry(&mut self, e: &EntryRef<'_>) {
        let expiry = if e.meta.op == Op::Put && e.meta.expires_ms != 0 {
            e.meta.expires_ms
        } else {
            NEVER
        };
        self.max_expiry = self.max_expiry.max(expiry);
        self.max_horizon = self.max_horizon.max(e.meta.horizon);
        self.has_puts |= e.meta.op == Op::Put;
        self.records += 1;
        self.entry_bytes += e.len as u64;
    }
}

/// Where a record that damage destroyed was, and its version: reads of its key (or, for a
/// namespace record, of the namespace's older items) are errors until something newer is
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostMark {
    /// Version of the damaged record.
    pub version: u64,
    /// Segment that held it.
    pub segment: u32,
    /// Offset of the damaged range.
    pub offset: u64,
}

/// Everything readers need, behind the store's read-write lock.
#[derive(Debug, Default)]
pub struct State {
    /// Namespace name → namespace.
    pub namespaces: HashMap<Box<[u8]>, Namespace, RandomState>,
    /// Segment id → segment.
    pub segments: BTreeMap<u32, SegmentSlot>,
    /// Items lost to damage, by (CRC32 of namespace, CRC32 of key): empty unless a damaged
    /// segment was found, so reads pay one emptiness check.
    pub lost: HashMap<(u32, u32), LostMark, RandomState>,
    /// Namespace records (create, clear, drop) lost to damage, by CRC32 of the namespace.
    pub lost_namespaces: HashMap<u32, LostMark, RandomState>,
    /// Version of the last drop of each dropped namespace: replay hides every item at or
    /// below it, even after the namespace is created again, so the index does too.
    pub drop_floors: HashMap<Box<[u8]>, u64, RandomState>,
}

/// Hashes under which [`State::lost`] names a key.
pub fn lost_key(namespace: &[u8], key: &[u8]) -> (u32, u32) {
    (crc32fast::hash(namespace), crc32fast::hash(key))
}

impl State {
    /// Items of `namespace` at or below this version are hidden (by a clear or a drop).
    pub fn floor(&self, namespace: &[u8]) -> u64 {
        let live = self.namespaces.get(namespace).map_or(0, |ns| ns.floor);
        live.max(self.drop_floors.get(namespace).copied().unwrap_or(0))
    }

    /// Records that damage destroyed the record `s` (kept if newer than a mark it replaces).
    pub fn mark_lost(&mut self, s: &crate::format::Summary, segment: u32, offset: u64) {
        let mark = LostMark {
            version: s.version,
            segment,
            offset,
        };
        let slot = if s.is_item() {
            self.lost.entry((s.ns_hash, s.key_hash)).or_insert(mark)
        } else {
            self.lost_namespaces.entry(s.ns_hash).or_insert(mark)
        };
        if slot.version < mark.version {
            *slot = mark;
        }
    }

    /// Whether reading `key` (whose live entry, if any, has version `live`) must fail
    /// because a newer record of it, or of its namespace, was lost to damage.
    pub fn lost_check(
        &self,
        namespace: &[u8],
        key: &[u8],
        live: Option<u64>,
    ) -> Result<(), crate::error::ReadError> {
        if self.lost.is_empty() && self.lost_namespaces.is_empty() {
            return Ok(());
        }
        let (ns_hash, key_hash) = lost_key(namespace, key);
        let newer = |m: &&LostMark| live.is_none_or(|v| m.version > v);
        let item = self.lost.get(&(ns_hash, key_hash)).filter(newer);
        // A lost clear or drop may have hidden a live item; a missing item it cannot bring.
        let ns = self
            .lost_namespaces
            .get(&ns_hash)
            .filter(|m| live.is_some_and(|v| m.version > v));
        match item.or(ns) {
            Some(m) => Err(crate::error::ReadError::Lost {
                segment: m.segment,
                offset: m.offset,
            }),
            None => Ok(()),
        }
    }

    /// Forgets lost marks that a newer record of the key (or namespace) makes moot.
    fn supersede_lost(&mut self, e: &EntryRef<'_>) {
        if self.lost.is_empty() && self.lost_namespaces.is_empty() {
            return;
        }
        let (ns_hash, key_hash) = lost_key(e.namespace, e.key);
        match e.meta.op {
            Op::Put | Op::Tombstone => {
                self.lost.remove(&(ns_hash, key_hash));
            }
            Op::ClearNamespace | Op::DropNamespace => {
                self.lost.retain(|&(n, _), _| n != ns_hash);
                self.lost_namespaces.remove(&ns_hash);
            }
            Op::CreateNamespace => {}
        }
    }

    /// Marks `len` bytes of segment `id` as dead.
    pub fn mark_dead(&mut self, id: u32, len: u32) {
        if let Some(slot) = self.segments.get_mut(&id) {
            slot.dead = (slot.dead + u64::from(len)).min(slot.data_len);
        }
    }

    /// Starts loading what applying `e` will look up (its key's bucket in its namespace's
    /// key directory), for an entry a few places ahead in a batch.
    pub fn prefetch(&self, e: &EntryRef<'_>) {
        if matches!(e.meta.op, Op::Put | Op::Tombstone) {
            if let Some(ns) = self.namespaces.get(e.namespace) {
                ns.items.prefetch(e.key);
            }
        }
    }

    /// Applies one entry just appended at (`segment`, `offset`), in write order.
    pub fn apply(&mut self, segment: u32, offset: u32, e: &EntryRef<'_>) {
        self.supersede_lost(e);
        let len = u32::try_from(e.len).unwrap_or(u32::MAX);
        if let Some(slot) = self.segments.get_mut(&segment) {
            slot.note_entry(e);
        }
        match e.meta.op {
            Op::Put => {
                let entry = Entry {
                    version: e.meta.version,
                    expires_ms: e.meta.expires_ms,
                    segment,
                    offset,
                    len,
                    kind: e.meta.kind,
                    shape: e.shape(),
                };
                // `deleted` keeps the key's tombstone: it is still on disk, and would hide
                // an older import again if this put went (expired, compacted away).
                let old = self
                    .namespaces
                    .get_mut(e.namespace)
                    .and_then(|ns| ns.items.insert(e.key, entry));
                if let Some(old) = old {
                    self.mark_dead(old.segment, old.len);
                }
            }
            Op::Tombstone => {
                let tombstone = Entry::tombstone(e.meta.version, segment, offset);
                let old = self.namespaces.get_mut(e.namespace).and_then(|ns| {
                    ns.deleted.insert_if_newer(e.key, tombstone);
                    ns.items.remove(e.key)
                });
                if let Some(old) = old {
                    self.mark_dead(old.segment, old.len);
                }
                self.mark_dead(segment, len);
            }
            Op::CreateNamespace => {
                let at = Location {
                    segment,
                    offset,
                    len,
                };
                let mut ns = Namespace::new(e.meta.version, at);
                ns.floor = self.drop_floors.get(e.namespace).copied().unwrap_or(0);
                self.namespaces.insert(e.namespace.into(), ns);
            }
            Op::ClearNamespace => {
                if let Some(ns) = self.namespaces.get_mut(e.namespace) {
                    ns.floor = e.meta.version;
                    ns.deleted = KeyDir::default();
                    let items = std::mem::take(&mut ns.items);
                    self.mark_all_dead(items.values());
                }
                self.mark_dead(segment, len);
            }
            Op::DropNamespace => {
                let floor = self.drop_floors.entry(e.namespace.into()).or_insert(0);
                *floor = (*floor).max(e.meta.version);
                if let Some(ns) = self.namespaces.remove(e.namespace) {
                    self.mark_dead(ns.created_at.segment, ns.created_at.len);
                    self.mark_all_dead(ns.items.values());
                }
                self.mark_dead(segment, len);
            }
        }
    }

    fn mark_all_dead(&mut self, entries: impl Iterator<Item = Entry>) {
        for old in entries {
            self.mark_dead(old.segment, old.len);
        }
    }

    /// The live entry of `key`, if any.
    /// `now_ms` is only called for an entry that has an expiry: reading the clock costs more
    /// than the lookup.
    pub fn live(
        &self,
        namespace: &[u8],
        key: &[u8],
        now_ms: impl FnOnce() -> u64,
    ) -> Option<Entry> {
        self.namespaces
            .get(namespace)?
            .items
            .get(key)
            .filter(|e| e.expires_ms == 0 || !e.is_expired(now_ms()))
    }

    /// Estimated heap bytes of the index.
    pub fn heap_bytes(&self) -> u64 {
        let mut total = 0usize;
        for (name, ns) in &self.namespaces {
            total += name.len() + size_of::<(Box<[u8]>, Namespace)>() + 1;
            total += ns.items.heap_bytes() + ns.deleted.heap_bytes();
        }
        total as u64
    }
}
