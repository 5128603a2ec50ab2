//! Crash-point enumeration on the simulated file system: a fixed workload (puts,
//! overwrites, deletes, increments, a batch, clear, drop, TTL expiry, compaction, segment
//! rollover, hint writing, reopen) is crashed before each mutating file-system call in turn,
//! with the last unsynced write lost, torn, or replaced by garbage. Each crash image must
//! open, and hold exactly the acknowledged state, or that state plus the one operation that
//! was in flight (never half of it), with the acknowledged versions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{
    Clock, Durability, ManualClock, PutOptions, RecoveryPolicy, Store, WriteBatch,
};

#[derive(Debug, Clone)]
enum Step {
    Put(&'static str, String, Vec<u8>, Option<u64>),
    Delete(&'static str, String),
    Incr(&'static str, String, i64),
    Batch(Vec<(&'static str, String, Option<Vec<u8>>)>),
    Clear(&'static str),
    Drop(&'static str),
    Create(&'static str),
    Advance(u64),
    Compact,
    Reopen,
}

fn workload() -> Vec<Step> {
    let mut steps = Vec::new();
    let value = |i: usize, n: usize| vec![b'a' + (i % 26) as u8; n];
    for i in 0..12 {
        steps.push(Step::Put(
            "a",
            format!("k{i}"),
            value(i, 100 + i * 20),
            None,
        ));
    }
    steps.push(Step::Put("c", "only".into(), value(1, 10), None));
    steps.push(Step::Put("b", "short".into(), value(2, 50), Some(500)));
    for i in [0, 3, 5] {
        steps.push(Step::Put("a", format!("k{i}"), value(i + 7, 200), None));
    }
    steps.push(Step::Delete("a", "k1".into()));
    steps.push(Step::Delete("a", "k4".into()));
    steps.push(Step::Incr("a", "ctr".into(), 5));
    steps.push(Step::Incr("a", "ctr".into(), -2));
    steps.push(Step::Batch(vec![
        ("b", "x".into(), Some(value(3, 120))),
        ("a", "k2".into(), None),
        ("b", "y".into(), Some(value(4, 80))),
    ]));
    steps.push(Step::Advance(1_000));
    steps.push(Step::Compact);
    steps.push(Step::Clear("b"));
    steps.push(Step::Put("b", "z".into(), value(5, 60), None));
    steps.push(Step::Drop("c"));
    steps.push(Step::Create("d"));
    steps.push(Step::Reopen);
    for i in 6..10 {
        steps.push(Step::Put("a", format!("k{i}"), value(i + 3, 250), None));
    }
    steps.push(Step::Delete("a", "k0".into()));
    steps.push(Step::Compact);
    steps.push(Step::Incr("a", "ctr".into(), 10));
    steps.push(Step::Reopen);
    steps.push(Step::Put("a", "last".into(), value(9, 30), None));
    steps
}

/// Key → (value, expiry).
type Items = BTreeMap<String, (Vec<u8>, Option<u64>)>;
/// (namespace, key).
type ItemKey = (String, String);
/// Namespace names and (value, version) of every live item.
type Recovered = (BTreeSet<String>, BTreeMap<ItemKey, (Vec<u8>, u64)>);
/// Namespace names and visible values.
type Visible = (BTreeSet<String>, BTreeMap<ItemKey, Vec<u8>>);

#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    namespaces: BTreeMap<&'static str, Items>,
}

impl Model {
    fn apply(&mut self, step: &Step, now: u64) {
        match step {
            Step::Put(ns, k, v, ttl) => {
                self.namespaces.entry(ns).or_default().insert(
                    k.clone(),
                    (v.clone(), ttl.map(|t| (now + t).div_ceil(1000) * 1000)),
                );
            }
            Step::Delete(ns, k) => {
                if let Some(items) = self.namespaces.get_mut(ns) {
                    items.remove(k);
                }
            }
            Step::Incr(ns, k, d) => {
                let items = self.namespaces.entry(ns).or_default();
                let cur = items
                    .get(k)
                    .and_then(|(v, _)| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
                    .unwrap_or(0);
                items.insert(k.clone(), ((cur + d).to_string().into_bytes(), None));
            }
            Step::Batch(ops) => {
                for (ns, k, v) in ops {
                    match v {
                        Some(v) => self.apply(&Step::Put(ns, k.clone(), v.clone(), None), now),
                        None => self.apply(&Step::Delete(ns, k.clone()), now),
                    }
                }
            }
            Step::Clear(ns) => {
                if let Some(items) = self.namespaces.get_mut(ns) {
                    items.clear();
                }
            }
            Step::Drop(ns) => {
                self.namespaces.remove(ns);
            }
            Step::Create(ns) => {
                self.namespaces.entry(ns).or_default();
            }
            Step::Advance(_) | Step::Compact | Step::Reopen => {}
        }
    }

    fn visible(&self, now: u64) -> Visible {
        let names = self.namespaces.keys().map(|n| n.to_string()).collect();
        let mut items = BTreeMap::new();
        for (ns, map) in &self.namespaces {
            for (k, (v, exp)) in map {
                if exp.is_none_or(|e| e > now) {
                    items.insert((ns.to_string(), k.clone()), v.clone());
                }
            }
        }
        (names, items)
    }
}

fn open(fs: &SimFs, clock: &ManualClock) -> Result<Store, ttlcask_engine::OpenError> {
    open_with(fs, clock, RecoveryPolicy::Salvage)
}

fn open_with(
    fs: &SimFs,
    clock: &ManualClock,
    policy: RecoveryPolicy,
) -> Result<Store, ttlcask_engine::OpenError> {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .durability(Durability::Always)
        .segment_size(4096)
        .clock(clock.clone())
        .compaction_interval(None)
        // The background thread writes spare segments whenever the writer nudges it, so its
        // file-system calls would interleave with the workload's differently in each run and
        // no call number would name the same crash twice. `spare_crash_points.rs` crashes
        // a store while its spares are written and adopted.
        .spare_segments(false)
        .recovery_policy(policy)
        .open("/data")
}

/// Runs the workload until it ends or a call fails; returns the acknowledged model, the
/// model had the failing step succeeded, and the acknowledged versions.
fn run(fs: &SimFs, clock: &ManualClock) -> (Model, Model, BTreeMap<ItemKey, u64>) {
    let mut acked = Model::default();
    let mut versions = BTreeMap::new();
    let Ok(mut store) = open(fs, clock) else {
        return (acked.clone(), acked, versions);
    };
    for step in workload() {
        let now = clock.now_ms();
        let ok = match &step {
            Step::Put(ns, k, v, ttl) => {
                let opts = PutOptions {
                    expires_at_ms: ttl.map(|t| now + t),
                    kind: 0,
                    ..PutOptions::default()
                };
                store.put(ns.as_bytes(), k.as_bytes(), v, opts).is_ok()
            }
            Step::Delete(ns, k) => store.delete(ns.as_bytes(), k.as_bytes()).is_ok(),
            Step::Incr(ns, k, d) => store
                .increment(ns.as_bytes(), k.as_bytes(), *d, PutOptions::default())
                .is_ok(),
            Step::Batch(ops) => {
                let mut batch = WriteBatch::new();
                for (ns, k, v) in ops {
                    match v {
                        Some(v) => batch.put(ns.as_bytes(), k.as_bytes(), v, PutOptions::default()),
                        None => batch.delete(ns.as_bytes(), k.as_bytes()),
                    }
                }
                store.write_batch(batch).is_ok()
            }
            Step::Clear(ns) => store.clear_namespace(ns.as_bytes()).is_ok(),
            Step::Drop(ns) => store.drop_namespace(ns.as_bytes()).is_ok(),
            Step::Create(ns) => store.create_namespace(ns.as_bytes()).is_ok(),
            Step::Advance(ms) => {
                clock.advance_ms(*ms);
                true
            }
            Step::Compact => store.compact().is_ok(),
            Step::Reopen => {
                drop(store);
                match open(fs, clock) {
                    Ok(s) => {
                        store = s;
                        true
                    }
                    Err(_) => {
                        return (acked.clone(), acked, versions);
                    }
                }
            }
        };
        let mut after = acked.clone();
        after.apply(&step, now);
        if !ok || fs.crashed() {
            return (acked, after, versions);
        }
        acked = after;
        // Record the versions the store acknowledged (reads do no file-system calls).
        for (ns, map) in &acked.namespaces {
            for k in map.keys() {
                if let Ok(Some(item)) = store.get(ns.as_bytes(), k.as_bytes()) {
                    versions.insert((ns.to_string(), k.clone()), item.version);
                }
            }
        }
    }
    (acked.clone(), acked, versions)
}

fn recovered(store: &Store) -> Recovered {
    let mut names = BTreeSet::new();
    let mut items = BTreeMap::new();
    for info in store.namespaces(b"") {
        let ns = String::from_utf8(info.name).expect("utf8");
        for key in store.keys(ns.as_bytes()) {
            let item = store
                .get(ns.as_bytes(), &key)
                .expect("no corrupt record is served")
                .expect("listed");
            let key = String::from_utf8(key).expect("utf8");
            items.insert((ns.clone(), key), (item.value.to_vec(), item.version));
        }
        names.insert(ns);
    }
    (names, items)
}

#[test]
fn every_crash_point_recovers_the_acknowledged_state() {
    let total = {
        let fs = SimFs::new();
        let clock = ManualClock::new(1_000_000);
        run(&fs, &clock);
        fs.ops()
    };
    let mut checked = 0;
    let mut truncations = 0;
    for point in 0..total {
        for torn in [Torn::No, Torn::Prefix(100), Torn::Garbage] {
            let fs = SimFs::new();
            fs.crash_at(point, torn);
            let clock = ManualClock::new(1_000_000);
            let (acked, in_flight, versions) = run(&fs, &clock);
            let image = fs
                .crash_image()
                .unwrap_or_else(|| panic!("no crash at call {point}"));
            // A crash is no damage: even the strict policy opens every crash image.
            let strict = open_with(
                &image.crash_image_now(Torn::No),
                &clock,
                RecoveryPolicy::Strict,
            );
            if let Err(e) = strict {
                panic!("crash at call {point} ({torn:?}): a strict open refused it: {e}");
            }
            let store = open(&image, &clock)
                .unwrap_or_else(|e| panic!("crash at call {point} ({torn:?}): reopen failed: {e}"));
            truncations += store.recovery_report().truncated.len();
            let (names, items) = recovered(&store);
            let now = clock.now_ms();
            let values: BTreeMap<_, _> = items
                .iter()
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect();
            let matches = |m: &Model| m.visible(now) == (names.clone(), values.clone());
            assert!(
                matches(&acked) || matches(&in_flight),
                "crash at call {point} ({torn:?}): recovered {names:?} {values:?}\nacknowledged {:?}\nin flight {:?}",
                acked.visible(now),
                in_flight.visible(now)
            );
            for (key, (_, version)) in &items {
                if let Some(want) = versions.get(key) {
                    if acked.visible(now).1.get(key) == values.get(key) && matches(&acked) {
                        assert_eq!(version, want, "crash at call {point}: version of {key:?}");
                    }
                }
            }
            checked += 1;
        }
    }
    println!("{checked} crash images checked ({total} crash points x 3 tear modes), {truncations} torn tails cut");
    assert!(
        total > 100,
        "the workload should exercise many calls, got {total}"
    );
}
