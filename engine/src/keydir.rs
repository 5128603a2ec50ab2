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
//! A `hashbrown::HashTable<u32>` maps the key's hash to the record's arena offset (in
//! two-byte units, so an arena may reach 8 GiB). Removing a key marks its slot; the arena is
//! rewritten once removed slots make up a quarter of it. The arena grows by 1/32 at a time:
//! large reallocations are page remaps, not copies.

use std::mem::size_of;

use foldhash::fast::RandomState;

use crate::format::{read_u16, read_u32, read_u64};
use hashbrown::HashTable;

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
const VERSION_BITS: u32 = 56;
const VERSION_MASK: u64 = (1 << VERSION_BITS) - 1;
/// Arena offsets count two-byte units.
const UNIT: usize = 2;

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
}

impl Entry {
    /// Whether the entry is expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms != 0 && self.expires_ms <= now_ms
    }

    /// Length of the value, given the namespace and key lengths.
    pub fn value_len(&self, namespace_len: usize, key_len: usize) -> usize {
        (self.len as usize).saturating_sub(crate::format::entry_len(namespace_len, key_len, 0))
    }
}

/// Key → [`Entry`] for one namespace.
#[derive(Clone, Default)]
pub struct KeyDir {
    table: HashTable<u32>,
    arena: Vec<u8>,
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
    slot[LEN_AT..KEY_LEN_AT].copy_from_slice(&(e.len & !REMOVED).to_le_bytes());
}

fn read_meta(slot: &[u8]) -> Entry {
    let version = read_u64(slot, VERSION_AT);
    Entry {
        version: version & VERSION_MASK,
        expires_ms: u64::from(read_u32(slot, EXPIRES_AT)) * 1000,
        segment: read_u32(slot, SEGMENT_AT),
        offset: read_u32(slot, OFFSET_AT),
        len: read_u32(slot, LEN_AT) & !REMOVED,
        kind: (version >> VERSION_BITS) as u8,
    }
}

/// The key stored in the slot at `unit`.
fn slot_key(arena: &[u8], unit: u32) -> &[u8] {
    let slot = &arena[unit as usize * UNIT..];
    let n = usize::from(read_u16(slot, KEY_LEN_AT));
    &slot[HEADER..HEADER + n]
}

/// The table's hash of the key in the slot at `unit` (for rehashing on growth).
fn hash_slot(hasher: &RandomState, arena: &[u8], unit: u32) -> u64 {
    use std::hash::BuildHasher;
    hasher.hash_one(slot_key(arena, unit))
}

impl KeyDir {
    /// Live keys.
    pub fn len(&self) -> usize {
        self.live
    }

    fn hash(&self, key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }

    fn slot(&self, unit: u32) -> &[u8] {
        &self.arena[unit as usize * UNIT..]
    }

    fn key_of(&self, unit: u32) -> &[u8] {
        slot_key(&self.arena, unit)
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hash(key);
        self.table.find(hash, |&u| self.key_of(u) == key).copied()
    }

    /// The entry of `key`.
    pub fn get(&self, key: &[u8]) -> Option<Entry> {
        self.find(key).map(|u| read_meta(self.slot(u)))
    }

    /// Moves the record of `key` if its version is still `version`; true if it was.
    pub fn relocate(&mut self, key: &[u8], version: u64, segment: u32, offset: u32) -> bool {
        let Some(u) = self.find(key) else {
            return false;
        };
        let at = u as usize * UNIT;
        let mut e = read_meta(&self.arena[at..]);
        if e.version != version {
            return false;
        }
        e.segment = segment;
        e.offset = offset;
        write_meta(&mut self.arena[at..], &e);
        true
    }

    /// Sets the entry of `key`; returns the one it replaced.
    pub fn insert(&mut self, key: &[u8], entry: Entry) -> Option<Entry> {
        if let Some(u) = self.find(key) {
            let at = u as usize * UNIT;
            let old = read_meta(&self.arena[at..]);
            write_meta(&mut self.arena[at..], &entry);
            return Some(old);
        }
        self.append(key, entry);
        None
    }

    /// Sets the entry of `key` unless the present one has a version at least as new (replay,
    /// where records arrive in any order).
    pub fn insert_if_newer(&mut self, key: &[u8], entry: Entry) {
        if let Some(u) = self.find(key) {
            let at = u as usize * UNIT;
            if read_meta(&self.arena[at..]).version < entry.version {
                write_meta(&mut self.arena[at..], &entry);
            }
            return;
        }
        self.append(key, entry);
    }

    /// Adds a key that is not present. Keys longer than [`MAX_KEY_LEN`] (which the store
    /// refuses before writing) are cut to it.
    fn append(&mut self, key: &[u8], entry: Entry) {
        let key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        let key = &key[..usize::from(key_len)];
        let start = self.arena.len();
        let len = record_len(key.len());
        if self.arena.capacity() - start < len {
            self.arena.reserve_exact((start / 32).max(4096).max(len));
        }
        self.arena.resize(start + len, 0);
        let slot = &mut self.arena[start..];
        write_meta(slot, &entry);
        slot[KEY_LEN_AT..HEADER].copy_from_slice(&key_len.to_le_bytes());
        slot[HEADER..HEADER + key.len()].copy_from_slice(key);
        let unit = u32::try_from(start / UNIT).unwrap_or(u32::MAX);
        let hash = self.hash(key);
        let (table, arena, hasher) = (&mut self.table, &self.arena, &self.hasher);
        table.insert_unique(hash, unit, |&u| hash_slot(hasher, arena, u));
        self.live += 1;
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = self.hash(key);
        let arena = &self.arena;
        let found = self
            .table
            .find_entry(hash, |&u| slot_key(arena, u) == key)
            .ok()?;
        let (unit, _) = found.remove();
        Some(self.mark_removed(unit))
    }

    fn mark_removed(&mut self, unit: u32) -> Entry {
        let old = self.mark_slot(unit);
        self.maybe_rewrite();
        old
    }

    /// Flags the slot at `unit` as removed (the table no longer points at it).
    fn mark_slot(&mut self, unit: u32) -> Entry {
        let at = unit as usize * UNIT;
        let old = read_meta(&self.arena[at..]);
        let len = read_u32(&self.arena, at + LEN_AT) | REMOVED;
        self.arena[at + LEN_AT..at + KEY_LEN_AT].copy_from_slice(&len.to_le_bytes());
        let key_len = usize::from(read_u16(&self.arena, at + KEY_LEN_AT));
        self.live -= 1;
        self.removed_bytes += record_len(key_len);
        old
    }

    fn maybe_rewrite(&mut self) {
        if self.removed_bytes > (1 << 20).max(self.arena.len() / 4) {
            self.rewrite();
        }
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &Entry) -> bool) {
        let doomed: Vec<u32> = self
            .units()
            .filter(|&u| !keep(self.key_of(u), &read_meta(self.slot(u))))
            .collect();
        for unit in doomed {
            let hash = self.hash(self.key_of(unit));
            if let Ok(found) = self.table.find_entry(hash, |&u| u == unit) {
                found.remove();
                self.mark_slot(unit);
            }
        }
        self.maybe_rewrite();
    }

    /// Arena offsets of the live slots, in arena order.
    fn units(&self) -> impl Iterator<Item = u32> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            while at < self.arena.len() {
                let here = at;
                let key_len = usize::from(read_u16(&self.arena, at + KEY_LEN_AT));
                at += record_len(key_len);
                if read_u32(&self.arena, here + LEN_AT) & REMOVED == 0 {
                    return Some((here / UNIT) as u32);
                }
            }
            None
        })
    }

    /// Every live (key, entry).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Entry)> + '_ {
        self.units()
            .map(|u| (self.key_of(u), read_meta(self.slot(u))))
    }

    /// Every live entry.
    pub fn values(&self) -> impl Iterator<Item = Entry> + '_ {
        self.units().map(|u| read_meta(self.slot(u)))
    }

    /// Whether a key of `key_len` bytes still fits (arena offsets are 32-bit units).
    pub fn has_room(&self, key_len: usize) -> bool {
        key_len <= MAX_KEY_LEN
            && (self.arena.len() - self.removed_bytes + record_len(key_len)) / UNIT
                < u32::MAX as usize
    }

    /// Compacts the arena, dropping removed slots, and rebuilds the table.
    fn rewrite(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.removed_bytes);
        for unit in self.units() {
            let at = unit as usize * UNIT;
            let key_len = usize::from(read_u16(&self.arena, at + KEY_LEN_AT));
            arena.extend_from_slice(&self.arena[at..at + record_len(key_len)]);
        }
        self.arena = arena;
        self.removed_bytes = 0;
        let mut table = HashTable::with_capacity(self.live);
        for unit in self.units() {
            let hash = self.hash(self.key_of(unit));
            let (arena, hasher) = (&self.arena, &self.hasher);
            table.insert_unique(hash, unit, |&u| hash_slot(hasher, arena, u));
        }
        self.table = table;
    }

    /// Heap bytes in use (table and arena, capacity included).
    pub fn heap_bytes(&self) -> usize {
        self.table.allocation_size() + self.arena.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn entry(v: u64) -> Entry {
        Entry {
            version: v,
            expires_ms: if v.is_multiple_of(3) { v * 1000 } else { 0 },
            segment: (v % 7) as u32,
            offset: (v * 13) as u32,
            len: (v % 500) as u32 + 40,
            kind: (v % 5) as u8,
        }
    }

    #[test]
    fn behaves_like_a_hash_map_through_inserts_overwrites_and_removals() {
        let mut dir = KeyDir::default();
        let mut model: HashMap<Vec<u8>, Entry> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..60_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("key-{}", x % 5_000).into_bytes();
            match x % 4 {
                0 => assert_eq!(dir.remove(&key), model.remove(&key), "remove at {step}"),
                1 => {
                    let e = entry(step);
                    assert!(!dir.relocate(&key, e.version, 1, 2));
                    if let Some(cur) = model.get_mut(&key) {
                        assert!(dir.relocate(&key, cur.version, 9, 99));
                        cur.segment = 9;
                        cur.offset = 99;
                    }
                }
                _ => assert_eq!(
                    dir.insert(&key, entry(step)),
                    model.insert(key.clone(), entry(step)),
                    "insert at {step}"
                ),
            }
            assert_eq!(dir.len(), model.len());
        }
        for (k, v) in &model {
            assert_eq!(dir.get(k), Some(*v));
        }
        let mut listed: Vec<_> = dir.iter().map(|(k, e)| (k.to_vec(), e)).collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut expected: Vec<_> = model.into_iter().collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(listed, expected);
    }

    #[test]
    fn retain_and_rewrite_keep_the_right_keys() {
        let mut dir = KeyDir::default();
        for i in 0..50_000u64 {
            dir.insert(format!("{i:024}").as_bytes(), entry(i));
        }
        dir.retain(|_, e| e.version % 10 == 0);
        assert_eq!(dir.len(), 5_000);
        assert!(
            dir.removed_bytes < dir.arena.len(),
            "rewritten along the way"
        );
        for i in 0..50_000u64 {
            let got = dir.get(format!("{i:024}").as_bytes());
            assert_eq!(got.is_some(), i % 10 == 0, "key {i}");
        }
    }

    #[test]
    fn expiry_is_kept_in_whole_seconds_and_kind_beside_the_version() {
        let mut dir = KeyDir::default();
        let e = Entry {
            version: (1 << 56) - 1,
            expires_ms: 1_500,
            segment: u32::MAX,
            offset: 7,
            len: 40,
            kind: 255,
        };
        dir.insert(b"k", e);
        let got = dir.get(b"k").expect("present");
        assert_eq!(got.expires_ms, 2_000, "rounded up, never earlier");
        assert_eq!(
            (got.version, got.kind, got.segment),
            (e.version, 255, u32::MAX)
        );
    }
}
