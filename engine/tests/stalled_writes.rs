//! A write the kernel holds (a frozen file system, `fsfreeze`; a stalled device) must stall
//! writes only: reads, `stats` and the status of the store go on meanwhile, and the status
//! says a write waits for the disk once it has for a second. Found from
//! outside: with one PUT frozen in its `pwrite`, every GET of the server hung, because the
//! non-blocking write path took the index lock before writing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{DeferredError, Durability, PutOptions, Store, DISK_WAIT_REPORTED};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long a read may take while a write is stalled before the test calls it hung.
const READ_PATIENCE: Duration = Duration::from_secs(5);

/// Holds the next file write until released: `entered` hears when a write is held.
struct Stall {
    entered: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

/// Arms `fs` to hold its next write (one only; later writes pass) for at most 30 s.
fn stall_next_write(fs: &SimFs) -> Stall {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let armed = AtomicBool::new(true);
    let gate = Mutex::new((entered_tx, release_rx));
    fs.on_write(Some(Arc::new(move || {
        if armed.swap(false, Ordering::SeqCst) {
            let gate = gate.lock().expect("the gate's lock");
            let _ = gate.0.send(());
            let _ = gate.1.recv_timeout(Duration::from_secs(30));
        }
    })));
    Stall { entered, release }
}

fn open(fs: &SimFs) -> Result<Store, ttlcask_engine::OpenError> {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .durability(Durability::Always)
        .segment_size(1 << 20)
        .compaction_interval(None)
        .open("/data")
}

/// Reads `key` on another thread; `None` if that takes longer than [`READ_PATIENCE`].
fn read_within_patience(store: &Store, key: &'static [u8]) -> Option<Option<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    let store = store.clone();
    std::thread::spawn(move || {
        let got = store.get(b"ns", key).expect("the read");
        let _ = store.stats();
        let _ = tx.send(got.map(|item| item.value.to_vec()));
    });
    rx.recv_timeout(READ_PATIENCE).ok()
}

/// Stalls the write `write` makes of `new` over `old` under key `a`, reads `a` meanwhile, and
/// checks the read answered (with the value before the write) and the write landed once let go.
fn reads_go_on_while(write: fn(&Store) -> bool) -> TestResult {
    let fs = SimFs::new();
    let store = open(&fs)?;
    store.put(b"ns", b"a", b"old", PutOptions::default())?;
    let stall = stall_next_write(&fs);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || write(&store))
    };
    stall
        .entered
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the write never reached the file system")?;
    let during = read_within_patience(&store, b"a");
    // The wait is reported once it has lasted a second (polled for up to 5 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    let reported = loop {
        let waiting = store.health().disk_waiting_ms;
        if waiting.is_some() || Instant::now() > deadline {
            break waiting;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = stall.release.send(());
    let written = writer.join().map_err(|_| "the writer panicked")?;
    fs.on_write(None);
    assert_eq!(
        during,
        Some(Some(b"old".to_vec())),
        "a read while a write was stalled must answer, with the value before the write"
    );
    assert!(
        written,
        "the stalled write must land once the file system lets it go"
    );
    assert!(
        reported.is_some_and(|ms| ms >= DISK_WAIT_REPORTED.as_millis() as u64),
        "a write held for a second is reported by health(): {reported:?}"
    );
    assert_eq!(
        store.health().disk_waiting_ms,
        None,
        "and no longer once done"
    );
    let after = store.get(b"ns", b"a")?.map(|item| item.value.to_vec());
    assert_eq!(after, Some(b"new".to_vec()));
    Ok(())
}

#[test]
fn reads_go_on_while_a_deferred_write_is_stalled() -> TestResult {
    reads_go_on_while(|store| {
        // The path an async server takes on its runtime threads; tried again while the
        // writer lock is busy (the background thread may hold it a moment), bounded.
        for _ in 0..10_000 {
            match store.try_put_deferred(b"ns", b"a", b"new", PutOptions::default(), None) {
                Err(DeferredError::WouldBlock) => std::thread::sleep(Duration::from_millis(1)),
                Ok(_) => return true,
                Err(_) => return false,
            }
        }
        false
    })
}

#[test]
fn reads_go_on_while_a_blocking_write_is_stalled() -> TestResult {
    reads_go_on_while(|store| {
        store
            .put(b"ns", b"a", b"new", PutOptions::default())
            .is_ok()
    })
}
