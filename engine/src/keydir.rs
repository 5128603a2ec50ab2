//! The per-namespace key directory: key → where its live record is.
//!
//! Memory is the point of this file (the target is at most 40 bytes per key beyond the key
//! bytes). Each key's metadata and the key itself sit back to back in one byte arena:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | version (low 56 bits) and kind tag (high 8 bits) |
//! | 8 | 4 | expiry in whole seconds since the Unix epoch, 0 = never |
//! | 12 | 4 | segment id |
//! | 16 | 4 | offset of the record in the segment |
//! | 20 | 4 | record length; the top bit marks a removed slot |
//! | 24 | 2 | key length |
//! | 26 | n | key |
//!
//! A `hashbrown::HashTable<u32>` maps the key's hash to the record's place in the arena. The
//! arena is a list of chunks of at most 2 MiB (a record never straddles two), so it grows
//! without ever copying what it holds; a place is the chunk number (12 bits) and the offset
//! in two-byte units (20 bits), so an arena may reach 8 GiB. The table and the full-size
//! chunks go onto huge pages (`huge.rs`): a read misses the cache in both. Removing a key
//! marks its slot; the arena is rewritten once removed slots make up a quarter of it.
//!
//! The table grows incrementally: when it is full, a table of twice the size takes its place
//! and the keys of the old one are copied into it [`MIGRATE_STEP`] keys per change, walking
//! the arena in order up to where it ended when the growth began; lookups meanwhile try the
//! new table, then the old, and a removal takes the key out of both. Growing in one go
//! rehashed every key (reading each from the arena) under the index's write lock: 400 ms at
//! 3.7M keys, with every reader and writer waiting. The old table is dropped whole once the
//! walk is done: it is never searched for the keys it copies, as every live slot before the
//! growth's mark is in it, and the copies' buckets in the new table are prefetched a step at
//! a time. Finding and erasing each key in the old table (a cache miss each) had been a
//! sixth of a bulk load's time.

use std::mem::size_of;

use foldhash::fast::RandomState;

use crate::format::{
    self, read_u16, read_u32, read_u64, EntryLayout, EntryMeta, NsKind, Op, Shape,
};
use crate::huge::{HugePages, Recording};
use hashbrown::HashTable;

/// An arena chunk: on a mapping of its own once full-size, for huge pages (see `huge.rs`).
type Chunk = allocator_api2::vec::Vec<u8, HugePages>;
/// The key hash → arena place table; its allocator notes where it lives, for prefetching.
type Table = HashTable<u32, Recording>;

/// Keys moved from the old table to the new per change while the table grows (see the
/// module doc). Growing from N keys leaves room for about N more before the new table is
/// full; any step above 1 finishes first.
const MIGRATE_STEP: usize = 16;

/// Longest key the directory holds.
pub const MAX_KEY_LEN: usize = u16::MAX as usize;

const VERSION_AT: usize = 0;
const EXPIRES_AT: usize = VERSION_AT + size_of::<u64>();
const SEGMENT_AT: usize = EXPIRES_AT + size_of::<u32>();
const OFFSET_AT: usize = SEGMENT_AT + size_of::<u32>();
const LEN_AT: usize = OFFSET_AT + size_of::<u32>();
const KEY_LEN_AT: usize = LEN_AT + size_of::<u32>();
const HEADER: usize = KEY_LEN_AT + size_of::<u16>();
const REMOVED: u32 = 1 << 31;
/// In the length field, the record's [`Shape`] (what a layout 3 record's value length needs
/// beside its length): two bits for how it names its namespace ([`NsKind`]: 0 the name, 1
/// the name and a frame id, 2 a frame id only), one for a frame id above 0, one for an
/// implied horizon.
const NS_SHIFT: u32 = 29;
const NS_BITS: u32 = 0b11 << NS_SHIFT;
const ID_ABOVE_ZERO: u32 = 1 << 28;
const IMPLIED_HORIZON: u32 = 1 << 27;
const SHAPE_BITS: u32 = NS_BITS | ID_ABOVE_ZERO | IMPLIED_HORIZON;
/// Records the store writes are shorter than this (the length field's top five bits are
/// flags).
pub const MAX_RECORD_LEN: usize = HUGE_LEN as usize;
/// The length field of a longer record (only an older release, whose index kept 31 bits,
/// could write one): its reader takes the length from the record's header.
pub const HUGE_LEN: u32 = IMPLIED_HORIZON - 1;
const VERSION_BITS: u32 = 56;
const VERSION_MASK: u64 = (1 << VERSION_BITS) - 1;
/// Arena offsets count two-byte units.
const UNIT: usize = 2;
/// Bits of a place that give the offset in its chunk (in units).
const OFFSET_BITS: u32 = 20;
/// Bytes of a full chunk.
const CHUNK: usize = UNIT << OFFSET_BITS;
/// Chunks an arena may have.
const MAX_CHUNKS: usize = 1 << (32 - OFFSET_BITS);

/// Records in chunks that are never reallocated once full.
#[derive(Clone, Default)]
struct Arena {
    chunks: Vec<Chunk>,
    /// Bytes of records, removed ones included.
    used: usize,
}

impl Arena {
    fn locate(place: u32) -> (usize, usize) {
        (
            (place >> OFFSET_BITS) as usize,
            (place & ((1 << OFFSET_BITS) - 1)) as usize * UNIT,
        )
    }

    fn slot(&self, place: u32) -> &[u8] {
        let (c, at) = Self::locate(place);
        &self.chunks[c][at..]
    }

    fn slot_mut(&mut self, place: u32) -> &mut [u8] {
        let (c, at) = Self::locate(place);
        &mut self.chunks[c][at..]
    }

    /// Room for a record of `len` bytes; `None` when the arena is full.
    fn push(&mut self, len: usize) -> Option<u32> {
        let fits = self.chunks.last().is_some_and(|c| c.len() + len <= CHUNK);
        if !fits {
            if self.chunks.len() >= MAX_CHUNKS {
                return None;
            }
            // After a full chunk the next is made full-size at once: a large directory
            // (a reopen's) otherwise copied every chunk through eleven doublings.
            let capacity = if self.chunks.is_empty() { 0 } else { CHUNK };
            self.chunks
                .push(Chunk::with_capacity_in(capacity, HugePages));
        }
        let c = self.chunks.len() - 1;
        let chunk = &mut self.chunks[c];
        let at = chunk.len();
        if chunk.capacity() < at + len {
            // Small arenas double; a chunk never grows past CHUNK, so full ones never move.
            let want = (at + len).next_power_of_two().clamp(256, CHUNK);
            chunk.reserve_exact(want - at);
        }
        chunk.resize(at + len, 0);
        self.used += len;
        Some(((c as u32) << OFFSET_BITS) | (at / UNIT) as u32)
    }

    /// Places of every record, removed ones included, in order.
    fn places(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.chunks.len()).flat_map(|c| self.chunk_places(c))
    }

    /// Places of every record of chunk `c` (none past the last chunk), in order.
    fn chunk_places(&self, c: usize) -> impl Iterator<Item = u32> + '_ {
        let chunk = self.chunks.get(c).map_or(&[][..], |chunk| &chunk[..]);
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= chunk.len() {
                return None;
            }
            let here = at;
            at += record_len(usize::from(read_u16(chunk, here + KEY_LEN_AT)));
            Some(((c as u32) << OFFSET_BITS) | (here / UNIT) as u32)
        })
    }

    fn heap_bytes(&self) -> usize {
        self.chunks.iter().map(Chunk::capacity).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }
}

/// Where a live record is and what the index needs to answer without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Store-wide version (below 2^56).
    pub version: u64,
    /// Expiry in ms (a whole second), 0 = never.
    pub expires_ms: u64,
    /// Segment id.
    pub segment: u32,
    /// Offset of the entry in the segment.
    pub offset: u32,
    /// Encoded length of the entry.
    pub len: u32,
    /// The caller's kind tag.
    pub kind: u8,
    /// What sets the record's header length beside its fields.
    pub shape: Shape,
}

impl Entry {
    /// The entry of a tombstone of `version` at (`segment`, `offset`): length 0, as no
    /// record has.
    pub fn tombstone(version: u64, segment: u32, offset: u32) -> Self {
        Self {
            version,
            expires_ms: 0,
            segment,
            offset,
            len: 0,
            kind: 0,
            shape: Shape::default(),
        }
    }

    /// Whether the entry is expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms != 0 && self.expires_ms <= now_ms
    }

    /// Length of the value, given the entry layout of its segment and the namespace and key
    /// lengths. In layouts 2 and 3 the header's horizon is not in the index: the segment id stands
    /// in for it (they differ in varint length only across 2^7, 2^14, … boundaries), so the
    /// figure can be off by a few bytes for records compaction moved.
    pub fn value_len(&self, layout: EntryLayout, namespace_len: usize, key_len: usize) -> usize {
        let meta = EntryMeta {
            op: Op::Put,
            kind: self.kind,
            horizon: self.segment,
            version: self.version,
            expires_ms: self.expires_ms,
        };
        let head = match layout {
            EntryLayout::V1 => {
                let head = format::entry_len(layout, &meta, namespace_len, key_len, 0);
                return (self.len as usize).saturating_sub(head);
            }
            EntryLayout::V2 => format::layout2_entry_len(&meta, namespace_len, key_len, 0),
            // Frame ids are below 128: one byte.
            EntryLayout::V3 => format::v2_entry_len(&meta, self.shape, namespace_len, key_len, 0),
        };
        format::compact_value_len(self.len as usize, head).unwrap_or(0)
    }
}

/// Where compaction wrote a record's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Segment of the copy.
    pub segment: u32,
    /// Its offset there.
    pub offset: u32,
    /// Its encoded length.
    pub len: u32,
    /// What sets its header length beside its fields.
    pub shape: Shape,
}

/// Key → [`Entry`] for one namespace.
#[derive(Clone, Default)]
pub struct KeyDir {
    table: Table,
    /// The table being copied into `table` after it grew, a few keys per change (see
    /// [`KeyDir::migrate`]); empty otherwise.
    old: Table,
    /// Where in the arena migration goes on: (chunk, byte offset).
    cursor: (usize, usize),
    /// Where the arena ended when the table last grew: every live slot before it is in `old`
    /// (and, once the cursor passed it, in `table` too); every slot after it is in `table`
    /// only. Migration is under way while `cursor < mark`.
    mark: (usize, usize),
    arena: Arena,
    live: usize,
    removed_bytes: usize,
    hasher: RandomState,
}

impl std::fmt::Debug for KeyDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDir")
            .field("len", &self.live)
            .finish_non_exhaustive()
    }
}

fn record_len(key_len: usize) -> usize {
    (HEADER + key_len).next_multiple_of(UNIT)
}

fn write_meta(slot: &mut [u8], e: &Entry) {
    let version = (e.version & VERSION_MASK) | (u64::from(e.kind) << VERSION_BITS);
    slot[VERSION_AT..EXPIRES_AT].copy_from_slice(&version.to_le_bytes());
    let secs = u32::try_from(e.expires_ms.div_ceil(1000)).unwrap_or(u32::MAX);
    slot[EXPIRES_AT..SEGMENT_AT].copy_from_slice(&secs.to_le_bytes());
    slot[SEGMENT_AT..OFFSET_AT].copy_from_slice(&e.segment.to_le_bytes());
    slot[OFFSET_AT..LEN_AT].copy_from_slice(&e.offset.to_le_bytes());
    let implied = if e.shape.implied_horizon {
        IMPLIED_HORIZON
    } else {
        0
    };
    let above_zero = if e.shape.id_zero { 0 } else { ID_ABOVE_ZERO };
    let shape = (e.shape.ns as u32) << NS_SHIFT | implied | above_zero;
    let len = e.len.min(HUGE_LEN) | shape;
    slot[LEN_AT..KEY_LEN_AT].copy_from_slice(&len.to_le_bytes());
}

fn read_meta(slot: &[u8]) -> Entry {
    let version = read_u64(slot, VERSION_AT);
    let len = read_u32(slot, LEN_AT);
    Entry {
        version: version & VERSION_MASK,
        expires_ms: u64::from(read_u32(slot, EXPIRES_AT)) * 1000,
        segment: read_u32(slot, SEGMENT_AT),
        offset: read_u32(slot, OFFSET_AT),
        len: len & !(REMOVED | SHAPE_BITS),
        kind: (version >> VERSION_BITS) as u8,
        shape: Shape {
            ns: match (len & NS_BITS) >> NS_SHIFT {
                0 => NsKind::Inline,
                1 => NsKind::Define,
                _ => NsKind::ById,
            },
            id_zero: len & ID_ABOVE_ZERO == 0,
            implied_horizon: len & IMPLIED_HORIZON != 0,
        },
    }
}

/// The key stored in the slot at `place`.
fn slot_key(arena: &Arena, place: u32) -> &[u8] {
    let slot = arena.slot(place);
    let n = usize::from(read_u16(slot, KEY_LEN_AT));
    &slot[HEADER..HEADER + n]
}

/// The table's hash of the key in the slot at `place` (for rehashing on growth).
fn hash_slot(hasher: &RandomState, arena: &Arena, place: u32) -> u64 {
    use std::hash::BuildHasher;
    hasher.hash_one(slot_key(arena, place))
}

/// Keys [`KeyDir::get_many`] looks up together.
pub const MANY: usize = 16;

/// Tables smaller than this stay in the cache; their lookups are not prefetched.
const PREFETCH_FROM: usize = 1 << 20;
/// Control bytes hashbrown reads at once (its SSE2 group): slots prefetched per lookup.
const GROUP: usize = 16;
/// Bytes of a slot (a place).
const SLOT: usize = size_of::<u32>();

/// Where a lookup of `hash` in a hashbrown table starts: the address of its first control
/// byte, and of the first and last bytes of the slots of the group it reads there.
/// hashbrown 0.16 lays a table out as its slots, last bucket first, then its control bytes
/// (one per bucket, plus a group); a probe starts at bucket `hash & (buckets - 1)`. A test
/// checks this against where `find` finds keys, so a hashbrown that lays tables out
/// otherwise fails it; addresses only ever feed prefetches, which never fault.
#[derive(Debug, Clone, Copy)]
struct ProbeSlots {
    ctrl: usize,
    first: usize,
    last: usize,
}

fn probe_slots(table: &Table, hash: u64) -> Option<ProbeSlots> {
    let size = table.allocation_size();
    if size < PREFETCH_FROM {
        return None;
    }
    // size = SLOT × buckets + buckets + the group width (16 with SSE2, 8 elsewhere), and
    // buckets is a power of two.
    let buckets = 1 << (size / (SLOT + 1)).ilog2();
    let ctrl = table.allocator().latest() + SLOT * buckets;
    let pos = hash as usize & (buckets - 1);
    Some(ProbeSlots {
        ctrl: ctrl + pos,
        first: ctrl.wrapping_sub((pos + GROUP) * SLOT),
        last: ctrl.wrapping_sub((pos + 1) * SLOT),
    })
}

/// Starts loading where a lookup (or insert) of `hash` in `table` begins: the bucket's
/// control bytes and its slots, together, as the table's code reads the slot only once the
/// control bytes named it, a second wait on memory. Nothing for a table small enough to
/// stay in the cache.
fn prefetch_probe(table: &Table, hash: u64) {
    if let Some(slots) = probe_slots(table, hash) {
        prefetch(slots.ctrl);
        prefetch(slots.first);
        prefetch(slots.last);
    }
}

/// Asks the CPU to start loading the cache line at `at` (a hint: any address will do).
#[inline]
pub(crate) fn prefetch(at: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of x86-64, and a prefetch reads nothing the program sees: it
        // never faults, whatever the address.
        #[expect(unsafe_code, reason = "the prefetch intrinsic is unsafe to call")]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(at as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Inserts `place` (of a key not in `table`) under `hash`; a growth rehashes from the arena.
fn insert_place(table: &mut Table, arena: &Arena, hasher: &RandomState, hash: u64, place: u32) {
    table.insert_unique(hash, place, |&p| hash_slot(hasher, arena, p));
}

/// Removes the place under `hash` for which `same` holds from `table` and from `old` (the
/// table being copied while the directory grows: a key already copied is in both, under
/// the same place); the place, if either held it.
fn take_place(
    table: &mut Table,
    old: &mut Table,
    hash: u64,
    same: impl Fn(&u32) -> bool,
) -> Option<u32> {
    let new = table.find_entry(hash, &same).ok().map(|e| e.remove().0);
    let old = old.find_entry(hash, same).ok().map(|e| e.remove().0);
    new.or(old)
}

impl KeyDir {
    /// Live keys.
    pub fn len(&self) -> usize {
        self.live
    }

    /// No live keys.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn hash(&self, key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }

    fn slot(&self, place: u32) -> &[u8] {
        self.arena.slot(place)
    }

    fn key_of(&self, place: u32) -> &[u8] {
        slot_key(&self.arena, place)
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hash(key);
        prefetch_probe(&self.table, hash);
        let same = |&p: &u32| self.key_of(p) == key;
        self.table
            .find(hash, same)
            .or_else(|| self.old.find(hash, same))
            .copied()
    }

    /// Starts loading the table's bucket for `key` into the cache, for a lookup soon: a
    /// batch's keys are prefetched together, and their misses overlap.
    pub fn prefetch(&self, key: &[u8]) {
        prefetch_probe(&self.table, self.hash(key));
    }

    /// The entry of `key`.
    pub fn get(&self, key: &[u8]) -> Option<Entry> {
        self.find(key).map(|p| read_meta(self.slot(p)))
    }

    /// The entries of `keys` (at most [`MANY`]) into `out`, looked up together: each step's
    /// loads are started for every key before the first is used, so that their cache misses
    /// overlap, where a lone lookup waits for the bucket, then the key's slot, one after the
    /// other.
    pub fn get_many(&self, keys: &[&[u8]], out: &mut [Option<Entry>]) {
        debug_assert!(keys.len() <= MANY && out.len() >= keys.len());
        let mut hashes = [0u64; MANY];
        for (h, key) in hashes.iter_mut().zip(keys) {
            *h = self.hash(key);
            prefetch_probe(&self.table, *h);
        }
        // The slots of every key the buckets name (almost always one: the control byte
        // matched seven bits of the hash).
        for &h in &hashes[..keys.len()] {
            let old = self
                .migrating()
                .then(|| self.old.iter_hash(h))
                .into_iter()
                .flatten();
            for &p in self.table.iter_hash(h).chain(old) {
                prefetch(self.slot(p).as_ptr() as usize);
            }
        }
        for ((key, &h), out) in keys.iter().zip(&hashes).zip(out.iter_mut()) {
            let same = |&p: &u32| self.key_of(p) == *key;
            *out = self
                .table
                .find(h, same)
                .or_else(|| self.old.find(h, same))
                .map(|&p| read_meta(self.slot(p)));
        }
    }

    /// Moves the record of `key` if its version is still `version`, to its copy at `to`
    /// (which may be encoded apart: another layout, or its namespace by id); true if it was.
    pub fn relocate(&mut self, key: &[u8], version: u64, to: Moved) -> bool {
        let Some(p) = self.find(key) else {
            return false;
        };
        let slot = self.arena.slot_mut(p);
        let mut e = read_meta(slot);
        if e.version != version {
            return false;
        }
        e.segment = to.segment;
        e.offset = to.offset;
        e.len = to.len;
        e.shape = to.shape;
        write_meta(slot, &e);
        true
    }

    /// Sets the entry of `key`; returns the one it replaced.
    pub fn insert(&mut self, key: &[u8], entry: Entry) -> Option<Entry> {
        if let Some(p) = self.find(key) {
            let slot = self.arena.slot_mut(p);
            let old = read_meta(slot);
            write_meta(slot, &entry);
            return Some(old);
        }
        self.append(key, entry);
        None
    }

    /// Sets the entry of `key` unless the present one has a version at least as new (replay,
    /// where records arrive in any order).
    pub fn insert_if_newer(&mut self, key: &[u8], entry: Entry) {
        if let Some(p) = self.find(key) {
            let slot = self.arena.slot_mut(p);
            if supersedes(&entry, &read_meta(slot)) {
                write_meta(slot, &entry);
            }
            return;
        }
        self.append(key, entry);
    }

    /// Adds a key that is not present. Keys longer than [`MAX_KEY_LEN`] (which the store
    /// refuses before writing) are cut to it; when the arena is full (see
    /// [`KeyDir::has_room`], checked before writing) the key is not indexed.
    fn append(&mut self, key: &[u8], entry: Entry) {
        // Before the slot is written: the growth's mark must not cover it, as it goes into
        // the new table here, not through the migration.
        if self.table.len() == self.table.capacity() {
            self.start_growing();
        }
        let Some((hash, place)) = self.push_slot(key, entry) else {
            return;
        };
        insert_place(&mut self.table, &self.arena, &self.hasher, hash, place);
        self.live += 1;
        self.migrate(MIGRATE_STEP);
    }

    /// The table is full: a table of twice its size takes its place, and the keys of the
    /// full one are copied into it as changes come (a migration still under way is finished
    /// first; it never is, as each step moves more keys than a change adds).
    fn start_growing(&mut self) {
        self.migrate(usize::MAX);
        let capacity = (self.table.capacity() * 2).max(16);
        self.old = std::mem::replace(
            &mut self.table,
            Table::with_capacity_in(capacity, Recording::default()),
        );
        self.cursor = (0, 0);
        self.mark = self
            .arena
            .chunks
            .last()
            .map_or((0, 0), |c| (self.arena.chunks.len() - 1, c.len()));
        self.migrate(0);
    }

    /// Whether the table is growing: `old` still holds keys not yet in `table`.
    fn migrating(&self) -> bool {
        self.cursor < self.mark
    }

    /// Copies up to `step` keys (rounded up to a whole batch) of the old table into the new
    /// one, walking the arena from the cursor; frees the old table once the walk reaches the
    /// mark. Every live slot before the mark is in the old table and not yet in the new:
    /// removals take keys out of both, and keys added since the growth began come after it.
    fn migrate(&mut self, step: usize) {
        let mut moved = 0;
        while self.migrating() && moved < step {
            // A batch of slots, their new buckets prefetched as they are found, then
            // inserted: their cache misses overlap instead of coming one after another.
            let mut batch = [(0u64, 0u32); MIGRATE_STEP];
            let mut n = 0;
            while n < MIGRATE_STEP && self.migrating() {
                let (c, at) = self.cursor;
                let chunk = &self.arena.chunks[c];
                if at >= chunk.len() {
                    self.cursor = (c + 1, 0);
                    continue;
                }
                let key_len = usize::from(read_u16(chunk, at + KEY_LEN_AT));
                self.cursor = (c, at + record_len(key_len));
                if read_u32(chunk, at + LEN_AT) & REMOVED != 0 {
                    continue;
                }
                let place = ((c as u32) << OFFSET_BITS) | (at / UNIT) as u32;
                let hash = hash_slot(&self.hasher, &self.arena, place);
                prefetch_probe(&self.table, hash);
                batch[n] = (hash, place);
                n += 1;
            }
            for &(hash, place) in &batch[..n] {
                insert_place(&mut self.table, &self.arena, &self.hasher, hash, place);
            }
            moved += n;
        }
        if !self.migrating() && self.old.capacity() > 0 {
            self.old = Table::default();
        }
    }

    /// Writes a slot for `key` into the arena (cut to [`MAX_KEY_LEN`]), not yet in the table;
    /// its hash and place, or `None` when the arena is full.
    fn push_slot(&mut self, key: &[u8], entry: Entry) -> Option<(u64, u32)> {
        let key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        let key = &key[..usize::from(key_len)];
        let place = self.arena.push(record_len(key.len()))?;
        let slot = self.arena.slot_mut(place);
        write_meta(slot, &entry);
        slot[KEY_LEN_AT..HEADER].copy_from_slice(&key_len.to_le_bytes());
        slot[HEADER..HEADER + key.len()].copy_from_slice(key);
        Some((self.hash(key), place))
    }

    /// Makes room for `additional` more keys without growing the table on the way (growing
    /// rehashes every key, reading each from the arena).
    pub fn reserve(&mut self, additional: usize) {
        self.migrate(usize::MAX);
        let (table, arena, hasher) = (&mut self.table, &self.arena, &self.hasher);
        table.reserve(additional, |&p| hash_slot(hasher, arena, p));
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = self.hash(key);
        let arena = &self.arena;
        let same = |&p: &u32| slot_key(arena, p) == key;
        let place = take_place(&mut self.table, &mut self.old, hash, same)?;
        let old = self.mark_slot(place);
        self.migrate(MIGRATE_STEP);
        self.maybe_rewrite();
        Some(old)
    }

    /// Flags the slot at `place` as removed (the table no longer points at it).
    fn mark_slot(&mut self, place: u32) -> Entry {
        let slot = self.arena.slot_mut(place);
        let old = read_meta(slot);
        let len = read_u32(slot, LEN_AT) | REMOVED;
        slot[LEN_AT..KEY_LEN_AT].copy_from_slice(&len.to_le_bytes());
        let key_len = usize::from(read_u16(slot, KEY_LEN_AT));
        self.live -= 1;
        self.removed_bytes += record_len(key_len);
        old
    }

    fn maybe_rewrite(&mut self) {
        if self.removed_bytes > (1 << 20).max(self.arena.used / 4) {
            self.rewrite();
        }
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &Entry) -> bool) {
        let doomed: Vec<u32> = self
            .places()
            .filter(|&p| !keep(self.key_of(p), &read_meta(self.slot(p))))
            .collect();
        for place in doomed {
            let hash = self.hash(self.key_of(place));
            if take_place(&mut self.table, &mut self.old, hash, |&p| p == place).is_some() {
                self.mark_slot(place);
            }
        }
        self.maybe_rewrite();
    }

    /// Places of the live slots, in arena order.
    fn places(&self) -> impl Iterator<Item = u32> + '_ {
        self.arena
            .places()
            .filter(|&p| read_u32(self.arena.slot(p), LEN_AT) & REMOVED == 0)
    }

    /// Every live (key, entry).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Entry)> + '_ {
        self.places()
            .map(|p| (self.key_of(p), read_meta(self.slot(p))))
    }

    /// Every live entry.
    pub fn values(&self) -> impl Iterator<Item = Entry> + '_ {
        self.places().map(|p| read_meta(self.slot(p)))
    }

    /// Parts the directory's keys are kept in, for walks that let go of the index's lock
    /// between parts ([`KeyDir::unexpired_in`]).
    pub fn parts(&self) -> usize {
        self.arena.chunks.len()
    }

    /// Live entries of part `part` (see [`KeyDir::parts`]; 0 past the last) unexpired at
    /// `now_ms`. Summed over the parts it is the count of unexpired entries, if nothing
    /// changed between the calls.
    pub fn unexpired_in(&self, part: usize, now_ms: u64) -> usize {
        self.arena
            .chunk_places(part)
            .filter(|&p| {
                let slot = self.arena.slot(p);
                read_u32(slot, LEN_AT) & REMOVED == 0 && !read_meta(slot).is_expired(now_ms)
            })
            .count()
    }

    /// Whether a key of `key_len` bytes still fits.
    pub fn has_room(&self, key_len: usize) -> bool {
        key_len <= MAX_KEY_LEN
            && (self.arena.chunks.len() < MAX_CHUNKS
                || self
                    .arena
                    .chunks
                    .last()
                    .is_some_and(|c| c.len() + record_len(key_len) <= CHUNK))
    }

    /// Compacts the arena, dropping removed slots, and rebuilds the table.
    fn rewrite(&mut self) {
        let mut arena = Arena::default();
        for place in self.places() {
            let slot = self.arena.slot(place);
            let len = record_len(usize::from(read_u16(slot, KEY_LEN_AT)));
            if let Some(new) = arena.push(len) {
                arena.slot_mut(new)[..len].copy_from_slice(&slot[..len]);
            }
        }
        self.arena = arena;
        self.removed_bytes = 0;
        // Every live key goes into the new table below: a migration under way ends here.
        self.old = Table::default();
        self.cursor = (0, 0);
        self.mark = (0, 0);
        let mut table = Table::with_capacity_in(self.live, Recording::default());
        let places: Vec<u32> = self.arena.places().collect();
        for place in places {
            let hash = self.hash(self.key_of(place));
            insert_place(&mut table, &self.arena, &self.hasher, hash, place);
        }
        self.table = table;
    }

    /// Heap bytes in use (table and arena, capacity included).
    pub fn heap_bytes(&self) -> usize {
        self.table.allocation_size() + self.old.allocation_size() + self.arena.heap_bytes()
    }

    /// Buckets of the table as it is now allocated: where a hash's probe starts is its low
    /// bits under this count (hashbrown keeps an eighth of its buckets empty).
    fn buckets(&self) -> usize {
        let capacity = self.table.capacity();
        if capacity < 8 {
            return (capacity + 1).next_power_of_two();
        }
        (capacity / 7 * 8).next_power_of_two()
    }
}

/// Fills a [`KeyDir`] with many keys, keeping the newest version of each whatever the order
/// they arrive in (replay). Keys go into the arena as they come; the table is filled once, in
/// [`Bulk::finish`], in the order of its own buckets. Inserted in arrival order, every key of
/// a large directory missed the cache twice (its bucket, then the arena to compare keys): most
/// of a reopen's time. In bucket order the inserts walk the table from one end to the other.
#[derive(Debug, Default)]
pub struct Bulk {
    dir: KeyDir,
    /// (hash, place) of every slot not yet in the table: those given to this bulk, and
    /// those of each bulk it absorbed (sorted apart, on two threads).
    staged: Vec<(u64, u32)>,
    absorbed: Vec<Vec<(u64, u32)>>,
}

impl Bulk {
    /// An empty one whose keys hash with `hasher`: bulks that [`Bulk::absorb`] one another
    /// share one, so that the hashes already taken stay valid.
    pub fn with_hasher(hasher: RandomState) -> Self {
        Self {
            dir: KeyDir {
                hasher,
                ..KeyDir::default()
            },
            ..Self::default()
        }
    }

    /// Makes room for `additional` more keys (the table is sized once, in `finish`).
    pub fn reserve(&mut self, additional: usize) {
        self.staged.reserve(additional);
    }

    /// Sets the entry of `key` unless one already given has a version at least as new. A key
    /// that does not fit (see [`KeyDir::append`]) is not indexed.
    pub fn insert_if_newer(&mut self, key: &[u8], entry: Entry) {
        if let Some(staged) = self.dir.push_slot(key, entry) {
            self.staged.push(staged);
        }
    }

    /// Takes over the keys given to `other` (filled on another thread), as if they had been
    /// given to this one after its own.
    pub fn absorb(&mut self, other: Bulk) {
        use std::hash::BuildHasher;
        let probe = |h: &RandomState| h.hash_one(0x5eed_u64);
        let base = self.dir.arena.chunks.len();
        let fits = base + other.dir.arena.chunks.len() <= MAX_CHUNKS;
        let parts = std::iter::once(other.staged).chain(other.absorbed);
        if !fits || probe(&self.dir.hasher) != probe(&other.dir.hasher) {
            // Key by key: the hashes are taken again, and a full arena leaves keys out as
            // `insert_if_newer` does.
            for (_, place) in parts.flatten() {
                let slot = other.dir.arena.slot(place);
                self.insert_if_newer(slot_key(&other.dir.arena, place), read_meta(slot));
            }
            return;
        }
        // Its chunks follow ours: a place moves by the chunks before it. Our last chunk
        // takes no more keys then, so it gives back the room it has left (up to 2 MiB).
        if let Some(last) = self.dir.arena.chunks.last_mut() {
            last.shrink_to_fit();
        }
        let shift = u32::try_from(base).unwrap_or(u32::MAX) << OFFSET_BITS;
        self.dir.arena.used += other.dir.arena.used;
        self.dir.arena.chunks.extend(other.dir.arena.chunks);
        for mut part in parts {
            for (_, place) in &mut part {
                *place += shift;
            }
            self.absorbed.push(part);
        }
    }

    /// The directory, every key in its table; `replaced` sees each entry that a newer one
    /// of its key displaced.
    pub fn finish(mut self, mut replaced: impl FnMut(&Entry)) -> KeyDir {
        let mut own = std::mem::take(&mut self.staged);
        let mut absorbed: Vec<(u64, u32)> = match self.absorbed.len() {
            0 | 1 => self.absorbed.pop().unwrap_or_default(),
            _ => self.absorbed.concat(),
        };
        let dir = &mut self.dir;
        dir.reserve(own.len() + absorbed.len());
        let bits = dir.buckets().trailing_zeros();
        let bucket = |h: u64| h & ((1 << bits) - 1);
        if own.len() + absorbed.len() < PARALLEL_SORT {
            sort_by_low_bits(&mut own, bits);
            sort_by_low_bits(&mut absorbed, bits);
        } else {
            std::thread::scope(|scope| {
                scope.spawn(|| sort_by_low_bits(&mut absorbed, bits));
                sort_by_low_bits(&mut own, bits);
            });
        }
        // Hashes of the items of the current bucket so far. Every key in the table came from
        // these items (only `finish` fills it): a key can be there already only if an
        // earlier item of its bucket has its hash.
        let mut run = [0u64; MAX_RUN];
        let mut run_len = 0;
        let mut run_bucket = u64::MAX;
        let (mut i, mut j) = (0, 0);
        while i < own.len() || j < absorbed.len() {
            // The next item in bucket order, from whichever part holds it.
            let from_own =
                j == absorbed.len() || (i < own.len() && bucket(own[i].0) <= bucket(absorbed[j].0));
            let (hash, place) = if from_own {
                i += 1;
                own[i - 1]
            } else {
                j += 1;
                absorbed[j - 1]
            };
            if run_bucket != bucket(hash) {
                run_bucket = bucket(hash);
                run_len = 0;
            }
            let maybe_there = run_len == MAX_RUN || run[..run_len].contains(&hash);
            if run_len < MAX_RUN {
                run[run_len] = hash;
                run_len += 1;
            }
            let KeyDir {
                table,
                arena,
                hasher,
                ..
            } = &mut *dir;
            let same = |&q: &u32| slot_key(arena, q) == slot_key(arena, place);
            let present = if maybe_there {
                table.find_mut(hash, same)
            } else {
                None
            };
            let Some(present) = present else {
                insert_place(table, arena, hasher, hash, place);
                dir.live += 1;
                continue;
            };
            let newer = supersedes(
                &read_meta(arena.slot(place)),
                &read_meta(arena.slot(*present)),
            );
            let loser = if newer {
                std::mem::replace(present, place)
            } else {
                place
            };
            // `mark_slot` counts a live key out: the loser was counted in only if it was
            // the one in the table.
            dir.live += 1;
            replaced(&dir.mark_slot(loser));
        }
        dir.maybe_rewrite();
        self.dir
    }
}

/// Whether `new` takes the place of `old` for their key when a store is read back: the
/// higher version, and of two copies of one record (the same version: a compaction's output
/// and its input, both found after a crash mid-compaction) the later segment's, the copy
/// that outlives its input. Which copy came first used to decide, so the index could keep
/// an input's damaged copy over the output's intact one, and read the key as lost.
fn supersedes(new: &Entry, old: &Entry) -> bool {
    (new.version, new.segment) > (old.version, old.segment)
}

/// Items of one bucket that [`Bulk::finish`] compares hashes with before it asks the table.
const MAX_RUN: usize = 16;

/// Bulks at least this large sort what they absorbed on a second thread.
const PARALLEL_SORT: usize = 1 << 16;

/// Sorts `items` by the low `bits` bits of their hash (least significant digit first, eleven
/// bits a pass): the order of a table of 2^`bits` buckets.
fn sort_by_low_bits(items: &mut Vec<(u64, u32)>, bits: u32) {
    const DIGIT: u32 = 11;
    let mut scratch = vec![(0u64, 0u32); items.len()];
    let mut shift = 0;
    while shift < bits {
        let width = DIGIT.min(bits - shift);
        let mask = (1u64 << width) - 1;
        let digit = |h: u64| ((h >> shift) & mask) as usize;
        let mut starts = vec![0usize; 1 << width];
        for &(h, _) in items.iter() {
            starts[digit(h)] += 1;
        }
        let mut sum = 0;
        for s in &mut starts {
            sum += std::mem::replace(s, sum);
        }
        for &item in items.iter() {
            let d = digit(item.0);
            scratch[starts[d]] = item;
            starts[d] += 1;
        }
        std::mem::swap(items, &mut scratch);
        shift += width;
    }
}

#[cfg(test)]
mod tests;

/// Random changes across many growths of the table, against a `HashMap`.
#[cfg(test)]
mod growth_model;
