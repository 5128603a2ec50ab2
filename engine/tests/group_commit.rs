//! Group commit under `Durability::Always` with many writers: a power cut at any moment keeps
//! every write acknowledged before it. The sync leader reads how far appends have gone from
//! what the appender publishes, not under the writer lock; this is the test that a leader
//! never claims a frame it did not sync (the segment it syncs, after a rollover, included).

use std::sync::Arc;

use parking_lot::Mutex;
use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{Durability, FileSystem, PutOptions, Store};

fn open(fs: &SimFs) -> Store {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .durability(Durability::Always)
        // Small segments: writers roll over to new ones while others wait on fsyncs.
        .segment_size(8192)
        .compaction_interval(None)
        .open("/data")
        .expect("open")
}

/// (key, which of its writer's puts) of every acknowledged write, in order.
type Acked = Vec<(String, usize)>;

#[test]
fn a_power_cut_keeps_every_write_acknowledged_before_it() {
    const WRITERS: usize = 8;
    const PUTS: usize = 150;
    /// Writer 0 cuts the power after every this many of its own puts, while the others
    /// write (a count, not a timer: the number of cuts never depends on the machine's speed).
    const CUT_EVERY: usize = 25;
    let fs = SimFs::new();
    let store = open(&fs);
    let acked: Mutex<Acked> = Mutex::new(Vec::new());
    let images: Mutex<Vec<(Acked, SimFs)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (store, acked, images, fs) = (&store, &acked, &images, &fs);
            s.spawn(move || {
                for i in 0..PUTS {
                    let key = format!("w{w}-k{}", i % 40);
                    let value = format!("{w}:{i}");
                    store
                        .put(
                            b"ns",
                            key.as_bytes(),
                            value.as_bytes(),
                            PutOptions::default(),
                        )
                        .expect("put");
                    acked.lock().push((key, i));
                    if w == 0 && i % CUT_EVERY == CUT_EVERY - 1 {
                        // Everything acknowledged so far, then the power cut.
                        let before = acked.lock().clone();
                        images.lock().push((before, fs.crash_image_now(Torn::No)));
                    }
                }
            });
        }
    });
    let images = images.into_inner();
    assert_eq!(images.len(), PUTS / CUT_EVERY);
    let names = fs.list(std::path::Path::new("/data")).expect("list");
    let segments = names.iter().filter(|n| n.ends_with(".seg")).count();
    assert!(segments > 3, "writers rolled over segments: {segments}");
    for (n, (before, image)) in images.iter().enumerate() {
        let reopened = open(image);
        // The newest acknowledged write of each key (per writer, later i is newer).
        let mut newest = std::collections::HashMap::new();
        for (key, i) in before {
            let e = newest.entry(key.clone()).or_insert(*i);
            *e = (*e).max(*i);
        }
        for (key, i) in newest {
            let item = reopened
                .get(b"ns", key.as_bytes())
                .expect("read")
                .unwrap_or_else(|| panic!("cut {n}: acknowledged {key} missing"));
            let value = String::from_utf8(item.value.to_vec()).expect("utf-8");
            let got: usize = value.split(':').nth(1).expect("i").parse().expect("i");
            assert!(got >= i, "cut {n}: {key} went back from write {i} to {got}");
        }
    }
}

/// With fsyncs that take a while (1 ms, as a disk's), writers pile up behind each one: some
/// covered by the sync in flight, some too late for it. Every one must be woken, including
/// the last ones when no write follows; a lost wake-up hangs its writer, which the watchdog
/// turns into a failure. Also checks that fsyncs were shared.
#[test]
fn every_waiting_writer_is_woken_when_fsyncs_are_slow() {
    const WRITERS: usize = 16;
    const PUTS: usize = 30;
    let fs = SimFs::new();
    fs.set_sync_delay(std::time::Duration::from_millis(1));
    let store = Arc::new(open(&fs));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    // Rounds in lockstep: every writer puts at once, so each sync has writers it covers and
    // writers too late for it, and no later write wakes a writer that was forgotten.
    let round = Arc::new(std::sync::Barrier::new(WRITERS));
    for w in 0..WRITERS {
        let (store, done_tx, round) = (store.clone(), done_tx.clone(), round.clone());
        std::thread::spawn(move || {
            for i in 0..PUTS {
                round.wait();
                let key = format!("w{w}-{i}");
                store
                    .put(b"ns", key.as_bytes(), b"v", PutOptions::default())
                    .expect("put");
            }
            let _ = done_tx.send(w);
        });
    }
    drop(done_tx);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut finished = 0;
    while finished < WRITERS {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(_) => finished += 1,
            Err(e) => panic!(
                "{} writers never returned ({e:?}): a lost wake-up",
                WRITERS - finished
            ),
        }
    }
    let stats = store.stats();
    let writes = (WRITERS * PUTS) as u64;
    assert!(
        stats.fsyncs < writes / 2,
        "fsyncs shared among writers: {} for {writes} writes",
        stats.fsyncs
    );
}

/// Found from outside (seventeenth session): writers waiting for the next sync while a
/// failed append poisoned the store. The sync in flight ended and woke one of them to lead
/// the next; it saw the poison and returned, and the others slept for good (2 of 4 writers
/// hung in 3 of 3 tries). Each must return, with the poison or its own acknowledgement.
#[test]
fn writers_waiting_for_the_next_sync_return_when_an_append_poisons_the_store() {
    for round in 0..3 {
        let fs = SimFs::new();
        let store = Store::builder()
            .file_system(Arc::new(fs.clone()))
            .durability(Durability::Always)
            .spare_segments(false)
            .compaction_interval(None)
            .open("/data")
            .expect("open");
        store
            .put(b"ns", b"warm", b"v", PutOptions::default())
            .expect("put");
        fs.set_sync_delay(std::time::Duration::from_millis(300));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let spawn = |key: &'static str| {
            let (store, done_tx) = (store.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let r = store.put(b"ns", key.as_bytes(), b"v", PutOptions::default());
                let _ = done_tx.send((key, r));
            });
        };
        // The leader's sync takes 300 ms; three writers come too late for it.
        spawn("leader");
        std::thread::sleep(std::time::Duration::from_millis(50));
        for key in ["w1", "w2", "w3"] {
            spawn(key);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
        fs.fail_op(fs.ops());
        let failed = store.put(b"ns", b"failing", b"v", PutOptions::default());
        assert!(failed.is_err(), "round {round}: {failed:?}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for n in 0..4 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if let Err(e) = done_rx.recv_timeout(left) {
                panic!(
                    "round {round}: {} of 4 writers never returned ({e:?})",
                    4 - n
                );
            }
        }
        assert!(store.health().poisoned.is_some());
    }
}

/// Found from outside: a write whose fsync had succeeded was answered 500 because another
/// failure poisoned the store before its writer woke; its value, on disk, was then served,
/// and again after the restart. A write made durable is acknowledged, whatever failed
/// since; one that is not is refused.
#[test]
fn a_write_made_durable_is_acknowledged_though_the_store_was_poisoned_since() {
    let fs = SimFs::new();
    let store = open(&fs);
    let (_, durable) = store
        .try_put_deferred(b"ns", b"a", b"1", PutOptions::default(), None)
        .expect("append");
    store.sync().expect("synced");
    let (_, not_durable) = store
        .try_put_deferred(b"ns", b"b", b"2", PutOptions::default(), None)
        .expect("append");
    // The next write fails: the store is poisoned.
    fs.fail_writes(Some(std::io::ErrorKind::Other));
    assert!(store
        .put(b"ns", b"c", &[3; 100], PutOptions::default())
        .is_err());
    fs.fail_writes(None);
    assert!(store.health().poisoned.is_some());
    let answer = |ticket| {
        let (tx, rx) = std::sync::mpsc::channel();
        store.when_durable(ticket, move |r| {
            let _ = tx.send(r.is_ok());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("answered")
    };
    assert!(answer(durable), "durable before the store was poisoned");
    assert!(!answer(not_durable), "never synced: refused");
}
