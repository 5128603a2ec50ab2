//! Records of a batch, or of a compaction output, name their namespace by an id their frame
//! gives it (entry layout 2). These tests check the store through every path that reads
//! such records: reads, the hint files written at close, a scan when the hints are gone,
//! compaction moving them, and the per-namespace byte counts, which must not depend on how
//! a record names its namespace.

use std::collections::BTreeMap;

use ttlcask_engine::{Durability, ManualClock, PutOptions, Store, WriteBatch};

type Items = BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>>;

fn open(dir: &std::path::Path, clock: &ManualClock) -> Store {
    Store::builder()
        .durability(Durability::Never)
        .segment_size(64 << 10)
        .clock(clock.clone())
        .compaction_interval(None)
        .open(dir)
        .expect("open")
}

/// Batches of puts in three interleaved namespaces of different name lengths, values of
/// many lengths; and a few single puts.
fn load(store: &Store) -> Items {
    let names: [&[u8]; 3] = [b"a", b"tenant/with-a-longer-name", b"x/y"];
    let mut items = Items::new();
    for b in 0..40u32 {
        let mut batch = WriteBatch::new();
        for i in 0..25u32 {
            let ns = names[((b + i) % 3) as usize];
            let key = format!("k{b}-{i}").into_bytes();
            let value = vec![(b * 25 + i) as u8; ((b * 7 + i * 13) % 300) as usize];
            batch.put(ns, &key, &value, PutOptions::default());
            items.insert((ns.to_vec(), key), value);
        }
        store.write_batch(batch).expect("batch");
    }
    for i in 0..5u32 {
        let key = format!("single-{i}").into_bytes();
        store
            .put(names[1], &key, b"one", PutOptions::default())
            .expect("put");
        items.insert((names[1].to_vec(), key), b"one".to_vec());
    }
    items
}

fn check(store: &Store, items: &Items, when: &str) {
    for ((ns, key), value) in items {
        let got = store
            .get(ns, key)
            .unwrap_or_else(|e| panic!("{when}: read {key:?}: {e}"))
            .unwrap_or_else(|| panic!("{when}: {key:?} missing"));
        assert_eq!(&got.value[..], &value[..], "{when}: {key:?}");
    }
    // Live bytes are the keys' and values' bytes, however the records name the namespace.
    let mut want: BTreeMap<Vec<u8>, (u64, u64)> = BTreeMap::new();
    for ((ns, key), value) in items {
        let w = want.entry(ns.clone()).or_default();
        w.0 += 1;
        w.1 += (key.len() + value.len()) as u64;
    }
    let got: BTreeMap<Vec<u8>, (u64, u64)> = store
        .namespaces(b"")
        .into_iter()
        .map(|n| (n.name, (n.items, n.live_bytes)))
        .collect();
    assert_eq!(got, want, "{when}: items and live bytes per namespace");
}

#[test]
fn batched_records_read_back_through_hints_scans_and_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let store = open(dir.path(), &clock);
    let items = load(&store);
    check(&store, &items, "written");
    drop(store);

    let store = open(dir.path(), &clock);
    assert!(store.recovery_report().segments_from_hints > 0);
    assert!(store.recovery_report().is_clean());
    check(&store, &items, "reopened from hints");
    drop(store);

    for e in std::fs::read_dir(dir.path()).expect("list").flatten() {
        if e.path().extension().is_some_and(|x| x == "hint") {
            std::fs::remove_file(e.path()).expect("remove hint");
        }
    }
    let store = open(dir.path(), &clock);
    assert_eq!(store.recovery_report().segments_from_hints, 0);
    assert!(store.recovery_report().is_clean());
    check(&store, &items, "reopened by scanning");

    // Overwrite a third of the keys so that compaction has segments to rewrite, then move
    // every record it keeps into new frames (namespaces interned again, per output frame).
    let mut items = items;
    let keys: Vec<_> = items.keys().cloned().collect();
    for (ns, key) in keys.iter().step_by(3) {
        store
            .put(ns, key, b"overwritten", PutOptions::default())
            .expect("put");
        items.insert((ns.clone(), key.clone()), b"overwritten".to_vec());
    }
    let report = store.compact().expect("compact");
    assert!(report.segments_rewritten > 0, "{report:?}");
    check(&store, &items, "compacted");
    drop(store);
    let store = open(dir.path(), &clock);
    assert!(store.recovery_report().is_clean());
    check(&store, &items, "reopened after compaction");
}
