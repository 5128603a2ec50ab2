use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

/// Keys drawn from this many: enough for the table to grow from 28 to 4,096 buckets.
const KEYS: u16 = 3_000;

#[derive(Debug, Clone)]
enum DirOp {
    Insert(u16),
    /// A replay's insert, `u8` versions older than the newest given so far.
    InsertIfNewer(u16, u8),
    Remove(u16),
    /// Keeps the entries whose version is not a multiple of this (2 or more).
    Retain(u8),
    Reserve(u16),
    Relocate(u16),
    /// Inserts this many new keys in a row (each one past the last given).
    Burst(u16),
}

fn dir_op() -> impl Strategy<Value = DirOp> {
    // Retains and reserves end a growth under way (a rewrite, or the rest copied at
    // once): rare, so that most growths see many single changes while they last.
    prop_oneof![
        80 => (0..KEYS).prop_map(DirOp::Insert),
        20 => (0..KEYS, any::<u8>()).prop_map(|(k, d)| DirOp::InsertIfNewer(k, d)),
        40 => (0..KEYS).prop_map(DirOp::Remove),
        1 => (2..12u8).prop_map(DirOp::Retain),
        1 => (0..2_000u16).prop_map(DirOp::Reserve),
        20 => (0..KEYS).prop_map(DirOp::Relocate),
        4 => (1..600u16).prop_map(DirOp::Burst),
    ]
}

fn entry(version: u64) -> Entry {
    Entry {
        version,
        expires_ms: 0,
        segment: (version % 11) as u32,
        offset: (version * 7) as u32,
        len: 100,
        kind: 0,
        shape: Shape {
            ns: NsKind::Inline,
            id_zero: true,
            implied_horizon: false,
        },
    }
}

fn key(k: u16) -> Vec<u8> {
    format!("{k:024}").into_bytes()
}

fn check_all(dir: &KeyDir, model: &HashMap<u16, Entry>, at: usize) {
    for k in 0..KEYS + 600 {
        assert_eq!(
            dir.get(&key(k)),
            model.get(&k).copied(),
            "key {k} after op {at}"
        );
    }
    assert_eq!(dir.iter().count(), model.len(), "listed after op {at}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_key_directory_reads_back_as_a_map_whatever_changes_come_mid_growth(
        ops in proptest::collection::vec(dir_op(), 200..1_500)
    ) {
        let mut dir = KeyDir::default();
        let mut model: HashMap<u16, Entry> = HashMap::new();
        let mut version = 0u64;
        let mut fresh = KEYS;
        for (at, op) in ops.iter().enumerate() {
            version += 1;
            match *op {
                DirOp::Insert(k) => {
                    let e = entry(version);
                    prop_assert_eq!(dir.insert(&key(k), e), model.insert(k, e));
                }
                DirOp::InsertIfNewer(k, older) => {
                    let e = entry(version.saturating_sub(u64::from(older)));
                    dir.insert_if_newer(&key(k), e);
                    let present = model.get(&k).map(|p| p.version);
                    if present.is_none_or(|v| v < e.version) {
                        model.insert(k, e);
                    }
                }
                DirOp::Remove(k) => {
                    prop_assert_eq!(dir.remove(&key(k)), model.remove(&k));
                    prop_assert_eq!(dir.get(&key(k)), None);
                }
                DirOp::Retain(m) => {
                    let keep = |e: &Entry| !e.version.is_multiple_of(u64::from(m));
                    dir.retain(|_, e| keep(e));
                    model.retain(|_, e| keep(e));
                }
                DirOp::Reserve(n) => dir.reserve(usize::from(n)),
                DirOp::Relocate(k) => {
                    let to = Moved {
                        segment: 3,
                        offset: 33,
                        len: 120,
                        shape: entry(0).shape,
                    };
                    let current = model.get(&k).map(|e| e.version);
                    let moved = dir.relocate(&key(k), current.unwrap_or(0), to);
                    prop_assert_eq!(moved, current.is_some());
                    if let Some(e) = model.get_mut(&k) {
                        (e.segment, e.offset, e.len) = (3, 33, 120);
                    }
                }
                DirOp::Burst(n) => {
                    for _ in 0..n {
                        let k = fresh % (KEYS + 600);
                        fresh = fresh.wrapping_add(1);
                        version += 1;
                        let e = entry(version);
                        prop_assert_eq!(dir.insert(&key(k), e), model.insert(k, e));
                    }
                }
            }
            // No key is in the new table twice, nor in neither table.
            prop_assert!(dir.table.len() <= dir.len(), "after op {}", at);
            prop_assert_eq!(dir.len(), model.len(), "after op {}", at);
            if at % 200 == 199 {
                check_all(&dir, &model, at);
            }
        }
        check_all(&dir, &model, ops.len());
    }
}
