//! Random operation sequences against a simple in-memory model, with clock moves,
//! compactions and reopens; every read is checked.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use ttlcask_engine::{
    BatchOutcome, Condition, Durability, IncrementError, ManualClock, PutOptions, Store, WriteBatch,
};

const NAMESPACES: usize = 3;
const KEYS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Put {
        ns: usize,
        key: usize,
        value: Vec<u8>,
        ttl: Option<u64>,
    },
    PutIf {
        ns: usize,
        key: usize,
        value: Vec<u8>,
        cond: u8,
    },
    Delete {
        ns: usize,
        key: usize,
    },
    Increment {
        ns: usize,
        key: usize,
        delta: i64,
    },
    Batch {
        ops: Vec<(usize, usize, Option<Vec<u8>>)>,
    },
    Create {
        ns: usize,
    },
    Clear {
        ns: usize,
    },
    Drop {
        ns: usize,
    },
    Advance {
        ms: u64,
    },
    Compact,
    CompactOver {
        percent: u8,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let ns = 0..NAMESPACES;
    let key = 0..KEYS;
    let value = prop::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        8 => (ns.clone(), key.clone(), value.clone(), prop::option::of(1u64..5_000))
            .prop_map(|(ns, key, value, ttl)| Op::Put { ns, key, value, ttl }),
        3 => (ns.clone(), key.clone(), value.clone(), 0u8..4)
            .prop_map(|(ns, key, value, cond)| Op::PutIf { ns, key, value, cond }),
        4 => (ns.clone(), key.clone()).prop_map(|(ns, key)| Op::Delete { ns, key }),
        2 => (ns.clone(), key.clone(), -5i64..5).prop_map(|(ns, key, delta)| Op::Increment { ns, key, delta }),
        2 => prop::collection::vec((ns.clone(), key.clone(), prop::option::of(prop::collection::vec(any::<u8>(), 0..40))), 1..5)
            .prop_map(|ops| Op::Batch { ops }),
        1 => ns.clone().prop_map(|ns| Op::Create { ns }),
        1 => ns.clone().prop_map(|ns| Op::Clear { ns }),
        1 => ns.prop_map(|ns| Op::Drop { ns }),
        2 => (1u64..3_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Compact),
        2 => (1u8..100).prop_map(|percent| Op::CompactOver { percent }),
        2 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelItem {
    value: Vec<u8>,
    version: u64,
    expires: Option<u64>,
    kind: u8,
}

#[derive(Default)]
struct Model {
    namespaces: BTreeMap<usize, BTreeMap<usize, ModelItem>>,
}

impl Model {
    fn live(&self, ns: usize, key: usize, now: u64) -> Option<&ModelItem> {
        self.namespaces
            .get(&ns)?
            .get(&key)
            .filter(|it| it.expires.is_none_or(|e| e > now))
    }

    fn put(&mut self, ns: usize, key: usize, item: ModelItem) {
        self.namespaces.entry(ns).or_default().insert(key, item);
    }

    fn remove(&mut self, ns: usize, key: usize) {
        if let Some(items) = self.namespaces.get_mut(&ns) {
            items.remove(&key);
        }
    }
}

fn ns_name(ns: usize) -> Vec<u8> {
    format!("ns-{ns}").into_bytes()
}

fn key_name(key: usize) -> Vec<u8> {
    format!("key-{key}").into_bytes()
}

fn open(dir: &std::path::Path, clock: &ManualClock) -> Store {
    Store::builder()
        .durability(Durability::Never)
        .segment_size(4096)
        .clock(clock.clone())
        .compaction_interval(None)
        .open(dir)
        .expect("open")
}

fn check_all(store: &Store, model: &Model, now: u64) {
    for ns in 0..NAMESPACES {
        let info = store.namespace(&ns_name(ns));
        assert_eq!(
            info.is_some(),
            model.namespaces.contains_key(&ns),
            "namespace {ns} existence"
        );
        let mut expected_keys = Vec::new();
        for key in 0..KEYS {
            let got = store.get(&ns_name(ns), &key_name(key)).expect("read");
            let want = model.live(ns, key, now);
            match (got, want) {
                (None, None) => {}
                (Some(item), Some(want)) => {
                    assert_eq!(&item.value[..], &want.value[..], "value of {ns}/{key}");
                    assert_eq!(item.version, want.version, "version of {ns}/{key}");
                    assert_eq!(item.expires_at_ms, want.expires, "expiry of {ns}/{key}");
                    assert_eq!(item.kind, want.kind, "kind of {ns}/{key}");
                    expected_keys.push(key_name(key));
                }
                (got, want) => panic!("{ns}/{key}: store has {got:?}, model has {want:?}"),
            }
        }
        // Read together, every key twice: what each read alone answers.
        let names: Vec<Vec<u8>> = (0..KEYS).chain(0..KEYS).map(key_name).collect();
        let alone: Vec<_> = names.iter().map(|k| store.get(&ns_name(ns), k)).collect();
        assert_eq!(
            store.get_many(&ns_name(ns), &names),
            alone,
            "get_many of {ns}"
        );
        let mut keys: Vec<_> = store.keys(&ns_name(ns)).collect();
        keys.sort();
        expected_keys.sort();
        assert_eq!(keys, expected_keys, "keys of {ns}");
        if let Some(info) = info {
            assert_eq!(info.items, expected_keys.len() as u64, "count of {ns}");
        }
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let mut store = open(dir.path(), &clock);
    let mut model = Model::default();
    let mut last_version = 0;
    for op in ops {
        let now = clock.now_ms_value();
        match op {
            Op::Put {
                ns,
                key,
                value,
                ttl,
            } => {
                // The store keeps expiries in whole seconds, rounded up.
                let expires = ttl.map(|t| (now + t).div_ceil(1000) * 1000);
                let opts = PutOptions {
                    expires_at_ms: expires,
                    kind: (key % 3) as u8,
                    ..PutOptions::default()
                };
                let v = store
                    .put(&ns_name(ns), &key_name(key), &value, opts)
                    .expect("put");
                assert!(v > last_version, "versions increase");
                last_version = v;
                model.put(
                    ns,
                    key,
                    ModelItem {
                        value,
                        version: v,
                        expires,
                        kind: opts.kind,
                    },
                );
            }
            Op::PutIf {
                ns,
                key,
                value,
                cond,
            } => {
                let current = model.live(ns, key, now).map(|it| it.version);
                let (condition, holds) = match cond {
                    0 => (Condition::Absent, current.is_none()),
                    1 => (Condition::Present, current.is_some()),
                    2 => (
                        Condition::VersionIs(current.unwrap_or(1)),
                        current.is_some(),
                    ),
                    _ => (Condition::VersionIs(last_version + 100), false),
                };
                let got = store
                    .put_if(
                        &ns_name(ns),
                        &key_name(key),
                        &value,
                        PutOptions::default(),
                        condition,
                    )
                    .expect("put_if");
                assert_eq!(
                    got.is_some(),
                    holds,
                    "condition {condition:?} on {ns}/{key}"
                );
                if let Some(v) = got {
                    last_version = v;
                    model.put(
                        ns,
                        key,
                        ModelItem {
                            value,
                            version: v,
                            expires: None,
                            kind: 0,
                        },
                    );
                }
            }
            Op::Delete { ns, key } => {
                let existed = model.live(ns, key, now).is_some();
                assert_eq!(
                    store.delete(&ns_name(ns), &key_name(key)).expect("delete"),
                    existed
                );
                model.remove(ns, key);
            }
            Op::Increment { ns, key, delta } => {
                let current = model.live(ns, key, now).cloned();
                let got =
                    store.increment(&ns_name(ns), &key_name(key), delta, PutOptions::default());
                let parsed = current.as_ref().map(|it| {
                    std::str::from_utf8(&it.value)
                        .ok()
                        .filter(|s| {
                            !s.is_empty()
                                && s.trim_start_matches('-')
                                    .bytes()
                                    .all(|b| b.is_ascii_digit())
                        })
                        .and_then(|s| s.parse::<i64>().ok())
                });
                match (parsed, got) {
                    (Some(None), Err(IncrementError::NotAnInteger | IncrementError::Overflow)) => {}
                    (Some(Some(n)), Ok(got)) => {
                        assert_eq!(got, n + delta);
                        let it = current.expect("present");
                        let item = store
                            .get(&ns_name(ns), &key_name(key))
                            .expect("read")
                            .expect("kept");
                        last_version = item.version;
                        model.put(
                            ns,
                            key,
                            ModelItem {
                                value: got.to_string().into_bytes(),
                                version: item.version,
                                ..it
                            },
                        );
                    }
                    (None, Ok(got)) => {
                        assert_eq!(got, delta);
                        let item = store
                            .get(&ns_name(ns), &key_name(key))
                            .expect("read")
                            .expect("created");
                        last_version = item.version;
                        model.put(
                            ns,
                            key,
                            ModelItem {
                                value: got.to_string().into_bytes(),
                                version: item.version,
                                expires: None,
                                kind: 0,
                            },
                        );
                    }
                    (want, got) => panic!("increment {ns}/{key}: model {want:?}, store {got:?}"),
                }
            }
            Op::Batch { ops } => {
                let mut batch = WriteBatch::new();
                for (ns, key, value) in &ops {
                    match value {
                        Some(v) => {
                            batch.put(&ns_name(*ns), &key_name(*key), v, PutOptions::default())
                        }
                        None => batch.delete(&ns_name(*ns), &key_name(*key)),
                    }
                }
                let outcomes = store.write_batch(batch).expect("batch");
                for ((ns, key, value), outcome) in ops.into_iter().zip(outcomes) {
                    match (value, outcome) {
                        (Some(value), BatchOutcome::Stored { version }) => {
                            assert!(version > last_version);
                            last_version = version;
                            model.put(
                                ns,
                                key,
                                ModelItem {
                                    value,
                                    version,
                                    expires: None,
                                    kind: 0,
                                },
                            );
                        }
                        (None, outcome) => {
                            let existed = model.live(ns, key, now).is_some();
                            let want = if existed {
                                BatchOutcome::Deleted
                            } else {
                                BatchOutcome::NotFound
                            };
                            assert_eq!(outcome, want, "batch delete {ns}/{key}");
                            model.remove(ns, key);
                        }
                        (value, outcome) => panic!("batch put {value:?} gave {outcome:?}"),
                    }
                }
            }
            Op::Create { ns } => {
                let created = store.create_namespace(&ns_name(ns)).expect("create");
                assert_eq!(created, !model.namespaces.contains_key(&ns));
                model.namespaces.entry(ns).or_default();
            }
            Op::Clear { ns } => {
                let existed = store.clear_namespace(&ns_name(ns)).expect("clear");
                assert_eq!(existed, model.namespaces.contains_key(&ns));
                if let Some(items) = model.namespaces.get_mut(&ns) {
                    items.clear();
                }
            }
            Op::Drop { ns } => {
                let existed = store.drop_namespace(&ns_name(ns)).expect("drop");
                assert_eq!(existed, model.namespaces.remove(&ns).is_some());
            }
            Op::Advance { ms } => clock.advance_ms(ms),
            Op::Compact => {
                store.compact().expect("compact");
            }
            Op::CompactOver { percent } => {
                store
                    .compact_dead_over(f64::from(percent) / 100.0)
                    .expect("compact");
            }
            Op::Reopen => {
                drop(store);
                store = open(dir.path(), &clock);
                assert!(
                    store.recovery_report().truncated.is_empty(),
                    "clean close leaves no torn tail"
                );
            }
        }
        check_all(&store, &model, clock.now_ms_value());
    }
    // A final compaction and reopen must not change anything, expired items included.
    store.compact().expect("compact");
    drop(store);
    let store = open(dir.path(), &clock);
    check_all(&store, &model, clock.now_ms_value());
}

trait NowValue {
    fn now_ms_value(&self) -> u64;
}

impl NowValue for ManualClock {
    fn now_ms_value(&self) -> u64 {
        use ttlcask_engine::Clock;
        self.now_ms()
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("TTLCASK_MODEL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64),
        max_shrink_iters: 2_000,
        timeout: 60_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops);
    }
}

#[test]
fn background_compaction_thread_starts_and_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::builder()
        .durability(Durability::Every(Duration::from_millis(5)))
        .compaction_interval(Some(Duration::from_millis(5)))
        .segment_size(4096)
        .open(dir.path())
        .expect("open");
    for i in 0..200u32 {
        store
            .put(b"ns", b"k", &i.to_le_bytes(), PutOptions::default())
            .expect("put");
    }
    std::thread::sleep(Duration::from_millis(50));
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        &store
            .get(b"ns", b"k")
            .expect("read")
            .expect("present")
            .value[..],
        &199u32.to_le_bytes()
    );
}
