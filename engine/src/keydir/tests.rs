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
        shape: Shape {
            ns: [NsKind::Inline, NsKind::Define, NsKind::ById][(v % 3) as usize],
            id_zero: !v.is_multiple_of(5),
            implied_horizon: v.is_multiple_of(2),
        },
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
                let to = Moved {
                    segment: 9,
                    offset: 99,
                    len: 77,
                    shape: Shape {
                        ns: [NsKind::Inline, NsKind::Define, NsKind::ById][(step % 3) as usize],
                        id_zero: step % 5 == 1,
                        implied_horizon: step % 2 == 1,
                    },
                };
                assert!(!dir.relocate(&key, e.version, to));
                if let Some(cur) = model.get_mut(&key) {
                    assert!(dir.relocate(&key, cur.version, to));
                    cur.segment = 9;
                    cur.offset = 99;
                    cur.len = 77;
                    cur.shape = to.shape;
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
fn of_two_copies_of_one_record_the_later_segments_is_kept_whatever_the_order() {
    let copy = |segment| Entry {
        segment,
        ..entry(42)
    };
    for (first, second) in [(3, 9), (9, 3)] {
        let mut dir = KeyDir::default();
        dir.insert_if_newer(b"k", copy(first));
        dir.insert_if_newer(b"k", copy(second));
        assert_eq!(
            dir.get(b"k").map(|e| e.segment),
            Some(9),
            "{first} then {second}"
        );
        let mut bulk = Bulk::default();
        bulk.insert_if_newer(b"k", copy(first));
        bulk.insert_if_newer(b"k", copy(second));
        let mut replaced = Vec::new();
        let dir = bulk.finish(|e| replaced.push(e.segment));
        assert_eq!(
            dir.get(b"k").map(|e| e.segment),
            Some(9),
            "{first} then {second}"
        );
        assert_eq!(replaced, [3], "the input's copy is the one replaced");
    }
    // A newer version still wins over a later segment.
    let mut dir = KeyDir::default();
    dir.insert_if_newer(
        b"k",
        Entry {
            segment: 2,
            ..entry(43)
        },
    );
    dir.insert_if_newer(
        b"k",
        Entry {
            segment: 9,
            ..entry(42)
        },
    );
    assert_eq!(dir.get(b"k").map(|e| (e.version, e.segment)), Some((43, 2)));
}

#[test]
fn bulk_keeps_the_newest_version_of_each_key_whatever_the_order() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    // Three bulks as recovery's threads fill them: two share a hasher, the third does not
    // (absorbed key by key); and enough keys to sort on two threads.
    for keys in [1u64, 7, 3_000, 60_000] {
        let mut bulk = Bulk::default();
        bulk.reserve(keys as usize / 2);
        let mut sibling = Bulk::with_hasher(bulk.dir.hasher);
        let mut stranger = Bulk::default();
        let mut model: HashMap<Vec<u8>, Entry> = HashMap::new();
        let mut given = 0u64;
        for _ in 0..keys * 3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("k{}", x % keys).into_bytes();
            let e = entry(x % 1_000_000);
            given += u64::from(e.len);
            match x % 5 {
                0 | 1 => bulk.insert_if_newer(&key, e),
                2 | 3 => sibling.insert_if_newer(&key, e),
                _ => stranger.insert_if_newer(&key, e),
            }
            let newest = model.get(&key).is_none_or(|m| m.version < e.version);
            if newest {
                model.insert(key, e);
            }
        }
        let arena_bytes = |b: &Bulk| b.dir.arena.chunks.iter().map(Chunk::len).sum::<usize>();
        let used = arena_bytes(&bulk) + arena_bytes(&sibling);
        let (own, theirs) = (bulk.staged.len(), sibling.staged.len());
        bulk.absorb(sibling);
        // The sibling shares the hasher: its keys are taken over whole, hashes and all.
        assert_eq!(
            (bulk.staged.len(), bulk.absorbed.len(), bulk.dir.arena.used),
            (own, 1, used),
            "{keys} keys"
        );
        assert_eq!(bulk.absorbed[0].len(), theirs);
        let strangers = stranger.staged.len();
        bulk.absorb(stranger);
        // Another hasher: key by key, into this bulk's own staging.
        assert_eq!(
            (bulk.staged.len(), bulk.absorbed.len()),
            (own + strangers, 1),
            "{keys} keys"
        );
        let mut replaced_len = 0u64;
        let dir = bulk.finish(|e| replaced_len += u64::from(e.len));
        assert_eq!(dir.len(), model.len(), "{keys} keys");
        for (k, e) in &model {
            assert_eq!(
                dir.get(k).map(|d| d.version),
                Some(e.version),
                "{keys} keys"
            );
        }
        let kept: u64 = model.values().map(|e| u64::from(e.len)).sum();
        assert_eq!(
            kept + replaced_len,
            given,
            "every displaced entry reported once"
        );
        assert_eq!(dir.iter().count(), model.len());
    }
}

#[test]
fn sorting_by_low_bits_orders_by_bucket_and_keeps_every_item() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut items: Vec<(u64, u32)> = (0..10_000u32)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x, i)
        })
        .collect();
    let mut expected = items.clone();
    sort_by_low_bits(&mut items, 23);
    let bucket = |h: u64| h & ((1 << 23) - 1);
    assert!(items.windows(2).all(|w| bucket(w[0].0) <= bucket(w[1].0)));
    items.sort_unstable_by_key(|&(_, i)| i);
    expected.sort_unstable_by_key(|&(_, i)| i);
    assert_eq!(items, expected);
}

#[test]
fn the_table_grows_a_few_keys_per_change_and_loses_none() {
    use std::collections::HashMap;
    let mut dir = KeyDir::default();
    let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
    let (mut growths, mut migrating_ops) = (0, 0);
    for i in 0..150_000u64 {
        let key = format!("{:024}", i.wrapping_mul(0x9e37_79b9) % 400_000).into_bytes();
        let was_migrating = dir.migrating();
        let (in_new_before, capacity_before) = (dir.table.len(), dir.table.capacity());
        if i % 7 == 3 {
            assert_eq!(dir.remove(&key).map(|e| e.version), model.remove(&key));
        } else {
            dir.insert(&key, entry(i));
            model.insert(key.clone(), i);
        }
        if !was_migrating && dir.migrating() {
            growths += 1;
            // The new table has twice the room, so it never fills while the old one
            // is emptied into it.
            assert!(dir.table.capacity() >= 2 * capacity_before, "at {i}");
        } else if was_migrating {
            migrating_ops += 1;
            assert_eq!(
                dir.table.capacity(),
                capacity_before,
                "grew while migrating"
            );
            // One change copies at most a step of keys (and adds or removes its own).
            let moved = dir.table.len().abs_diff(in_new_before);
            assert!(moved <= MIGRATE_STEP + 1, "at {i}: {moved}");
        }
        if !dir.migrating() {
            // The old table's memory goes as soon as its keys are all copied.
            assert_eq!(dir.old.allocation_size(), 0, "at {i}");
        }
        if i % 97 == 0 {
            // Mid-migration or not, every key reads back as the model has it.
            for (k, v) in model.iter().take(50) {
                assert_eq!(dir.get(k).map(|e| e.version), Some(*v));
            }
        }
    }
    assert!(growths >= 10, "{growths} growths");
    assert!(
        migrating_ops > 1_000,
        "{migrating_ops} changes during migrations"
    );
    assert_eq!(dir.len(), model.len());
    for (k, v) in &model {
        assert_eq!(dir.get(k).map(|e| e.version), Some(*v));
    }
    for i in 400_000..400_100u64 {
        assert_eq!(dir.get(format!("{i:024}").as_bytes()), None);
    }
    // Removals that rewrite the arena end any migration; nothing is lost either way.
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    for k in keys.iter().take(keys.len() / 2) {
        assert!(dir.remove(k).is_some());
        model.remove(k);
    }
    assert_eq!(dir.len(), model.len());
    for (k, v) in &model {
        assert_eq!(dir.get(k).map(|e| e.version), Some(*v));
    }
    assert_eq!(dir.iter().count(), model.len());
}

#[test]
fn every_key_removed_is_gone_whenever_its_table_grew() {
    // Among them the keys whose insert began a growth, and keys removed while one was
    // under way: a key the migration copied twice, or left in either table, reads back.
    let mut dir = KeyDir::default();
    let n = 70_000u64;
    for i in 0..n {
        dir.insert(format!("{i:024}").as_bytes(), entry(i));
        // No key is in the new table twice (a duplicate would outlive its removal).
        assert!(dir.table.len() <= dir.len(), "after key {i}");
        if i % 5 == 4 {
            let gone = i - 2;
            assert!(dir.remove(format!("{gone:024}").as_bytes()).is_some());
            assert_eq!(
                dir.get(format!("{gone:024}").as_bytes()),
                None,
                "key {gone}"
            );
        }
    }
    for i in (0..n).filter(|i| i % 5 != 2) {
        let key = format!("{i:024}");
        assert_eq!(dir.remove(key.as_bytes()).map(|e| e.version), Some(i));
        assert_eq!(dir.get(key.as_bytes()), None, "key {i}");
    }
    assert!(dir.is_empty());
    assert_eq!(dir.table.len() + dir.old.len(), 0);
}

#[test]
fn retain_and_removal_in_the_middle_of_a_migration_find_keys_in_either_table() {
    let mut dir = KeyDir::default();
    let mut i = 0u64;
    // Insert until a growth has just begun, with enough keys for its migration to take
    // many changes.
    loop {
        dir.insert(format!("{i:024}").as_bytes(), entry(i));
        i += 1;
        if i > 10_000 && dir.migrating() {
            break;
        }
    }
    let left = dir.len() - dir.table.len();
    assert!(left > 1_000, "mid-migration: {left} keys left");
    // Removals of keys copied already (the first ones) and of keys not yet copied.
    let total = i;
    // Keep every third key; the others are removed, from whichever table holds them.
    dir.retain(|_, e| e.version % 3 == 0);
    for i in 0..total {
        let got = dir.get(format!("{i:024}").as_bytes()).map(|e| e.version);
        assert_eq!(got, (i % 3 == 0).then_some(i), "key {i}");
    }
    assert_eq!(dir.len() as u64, total.div_ceil(3));
    // And single removals, mid-migration if one is still under way.
    for i in (0..total).step_by(3).take(500) {
        assert_eq!(
            dir.remove(format!("{i:024}").as_bytes()).map(|e| e.version),
            Some(i)
        );
        assert_eq!(dir.get(format!("{i:024}").as_bytes()), None);
    }
}

// Other targets read groups of 8 control bytes (and prefetch nothing).
#[cfg(target_arch = "x86_64")]
#[test]
fn the_prefetched_slots_are_where_find_finds_the_keys() {
    let mut dir = KeyDir::default();
    let n = 300_000u64;
    for i in 0..n {
        dir.insert(format!("{i:024}").as_bytes(), entry(i));
    }
    let (mut near, mut in_table) = (0, 0);
    for i in 0..n {
        let key = format!("{i:024}");
        let hash = dir.hash(key.as_bytes());
        let slots = probe_slots(&dir.table, hash).expect("a table large enough to prefetch");
        let same = |&p: &u32| dir.key_of(p) == key.as_bytes();
        // Keys still in the old table (a growth under way) are not prefetched.
        let Some(found) = dir.table.find(hash, same) else {
            continue;
        };
        in_table += 1;
        let at = std::ptr::from_ref(found) as usize;
        // Found in the probe's first group: nearly always below 7/8 load.
        if (slots.first..=slots.last).contains(&at) {
            near += 1;
        }
    }
    assert!(in_table > n / 2, "{in_table} keys in the new table");
    assert!(
        near * 10 >= in_table * 9,
        "{near} of {in_table} keys found where prefetched"
    );
    // Prefetches are hints: any address will do.
    prefetch(0);
    prefetch(usize::MAX);
}

#[test]
fn the_parts_count_every_unexpired_live_entry_once() {
    let mut dir = KeyDir::default();
    // Several arena chunks (about 40,000 slots each), removed slots among them, and
    // expiries (every third version expires at `version` seconds).
    for i in 0..150_000u64 {
        dir.insert(format!("{i:024}").as_bytes(), entry(i));
    }
    for i in (0..150_000u64).step_by(4) {
        dir.remove(format!("{i:024}").as_bytes());
    }
    assert!(dir.parts() > 2, "{} parts", dir.parts());
    for now in [0, 5_000_000, 30_000_000] {
        let want = dir.values().filter(|e| !e.is_expired(now)).count();
        let got: usize = (0..dir.parts() + 1).map(|p| dir.unexpired_in(p, now)).sum();
        assert_eq!(got, want, "at {now}");
    }
    assert!(dir.unexpired_in(0, 30_000_000) < dir.unexpired_in(0, 0));
}

#[test]
fn retain_and_rewrite_keep_the_right_keys() {
    let mut dir = KeyDir::default();
    for i in 0..50_000u64 {
        dir.insert(format!("{i:024}").as_bytes(), entry(i));
    }
    dir.retain(|_, e| e.version % 10 == 0);
    assert_eq!(dir.len(), 5_000);
    // Rewritten at the end of the retain: only the live keys' slots are left.
    assert_eq!(dir.removed_bytes, 0);
    assert_eq!(dir.arena.used, 5_000 * record_len(24));
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
        len: (1 << 27) - 1,
        kind: 255,
        shape: Shape {
            ns: NsKind::ById,
            id_zero: false,
            implied_horizon: true,
        },
    };
    dir.insert(b"k", e);
    let got = dir.get(b"k").expect("present");
    assert_eq!(got.expires_ms, 2_000, "rounded up, never earlier");
    assert_eq!(
        (got.version, got.kind, got.segment),
        (e.version, 255, u32::MAX)
    );
    assert_eq!((got.len, got.shape), (HUGE_LEN, e.shape));
    // A record longer than the length field (an older release's) keeps the marker.
    let huge = Entry {
        len: 200 << 20,
        shape: Shape::default(),
        ..e
    };
    dir.insert(b"h", huge);
    let got = dir.get(b"h").expect("present");
    assert_eq!((got.len, got.shape), (HUGE_LEN, Shape::default()));
}
