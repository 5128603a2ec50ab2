//! `Store::get_many` answers what a `get` of each key answers: hits, misses, expired items,
//! large values (copied outside the index lock), keys asked twice, a namespace that does not
//! exist, and keys looked up while the key directory grows (its old table still searched).
//! The model test (`model.rs`) and the damage tests (`damage_*.rs`, lost keys) check it too.

use ttlcask_engine::{Durability, ManualClock, PutOptions, Store};

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    // Every 97th value is above the size copied under the index lock (16 KiB).
    let len = if i.is_multiple_of(97) {
        20_000
    } else {
        1 + (i as usize * 7) % 300
    };
    (0..len).map(|j| (i as usize + j) as u8).collect()
}

/// Every key of `0..wanted` (and a few never written) read together and alone.
fn check(store: &Store, ns: &[u8], wanted: u32) {
    let mut keys: Vec<Vec<u8>> = (0..wanted).map(key).collect();
    keys.extend((wanted..wanted + 20).map(key));
    keys.extend((0..wanted).step_by(13).map(key));
    for len in [0, 1, 15, 16, 17, 33, keys.len()] {
        let keys = &keys[..len.min(keys.len())];
        let alone: Vec<_> = keys.iter().map(|k| store.get(ns, k)).collect();
        assert_eq!(
            store.get_many(ns, keys),
            alone,
            "{len} keys of {wanted} written"
        );
    }
}

#[test]
fn get_many_answers_what_get_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let store = Store::builder()
        .durability(Durability::Never)
        .clock(clock.clone())
        .compaction_interval(None)
        .open(dir.path())
        .expect("open");
    let ns = b"ns".as_slice();
    let mut written = 0;
    // While the key directory grows, some keys are only in its old table: after each of
    // the first 2,500 writes (the table grows at 1,793), the last 200 keys and every 50th are
    // read both ways.
    while written < 2_500 {
        store
            .put(ns, &key(written), &value(written), PutOptions::default())
            .expect("put");
        written += 1;
        let keys: Vec<Vec<u8>> = (written.saturating_sub(200)..written)
            .chain((0..written).step_by(50))
            .map(key)
            .collect();
        let alone: Vec<_> = keys.iter().map(|k| store.get(ns, k)).collect();
        assert_eq!(store.get_many(ns, &keys), alone, "{written} keys written");
    }
    // Checked at sizes where the key directory's table is full, growing, and grown.
    for target in [2_501, 7_300, 15_000] {
        while written < target {
            let options = PutOptions {
                // Every fifth item expires at 1,000,500 ms.
                expires_at_ms: written.is_multiple_of(5).then_some(1_000_500),
                kind: (written % 3) as u8,
                ..PutOptions::default()
            };
            store
                .put(ns, &key(written), &value(written), options)
                .expect("put");
            if written.is_multiple_of(11) {
                store.delete(ns, &key(written / 2)).expect("delete");
            }
            written += 1;
        }
        check(&store, ns, written);
    }
    clock.advance_ms(1_000);
    check(&store, ns, written);
    let hits = store
        .get_many(ns, &(0..written).map(key).collect::<Vec<_>>())
        .into_iter()
        .filter(|r| matches!(r, Ok(Some(_))))
        .count();
    assert!(
        hits > written as usize / 2,
        "most keys are live: {hits} of {written}"
    );
    assert_eq!(
        store.get_many(b"none", &[key(1), key(2)]),
        vec![Ok(None), Ok(None)],
        "a namespace that does not exist has no items"
    );
}
