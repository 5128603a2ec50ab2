//! Injected I/O errors through the simulated file system: a failed write or fsync poisons
//! the store (later writes refused, reads keep working, nothing acknowledged that was not
//! durable), ENOSPC during compaction leaves the store usable, and reopening recovers.

use std::io::ErrorKind;
use std::sync::Arc;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{
    CompactError, Durability, FileSystem, PutOptions, ReadError, Store, StoreBuilder, TryGetError,
    WriteError,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn builder(fs: &SimFs) -> StoreBuilder {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .durability(Durability::Always)
        .segment_size(4096)
        .compaction_interval(None)
}

fn try_open(fs: &SimFs) -> Result<Store, ttlcask_engine::OpenError> {
    builder(fs).open("/data")
}

fn open(fs: &SimFs) -> Store {
    try_open(fs).expect("open")
}

#[test]
fn a_failed_write_poisons_the_store_until_reopen() -> TestResult {
    let fs = SimFs::new();
    let store = open(&fs);
    store.put(b"ns", b"a", b"1", PutOptions::default())?;
    fs.fail_op(fs.ops()); // the next call is the append of the next put
    let err = store
        .put(b"ns", b"b", b"2", PutOptions::default())
        .expect_err("write fails");
    assert!(matches!(err, WriteError::Io(_)), "{err}");
    let later = store
        .put(b"ns", b"c", b"3", PutOptions::default())
        .expect_err("poisoned");
    assert!(matches!(later, WriteError::Poisoned(_)), "{later}");
    assert!(
        later.to_string().contains("reopen"),
        "says what to do: {later}"
    );
    assert!(store.delete(b"ns", b"a").is_err(), "every write is refused");
    assert_eq!(
        &store.get(b"ns", b"a")?.expect("reads keep working").value[..],
        b"1"
    );
    assert_eq!(
        store.get(b"ns", b"b")?,
        None,
        "the failed write is not visible"
    );
    assert!(matches!(store.compact(), Err(CompactError::Poisoned(_))));
    drop(store);
    let store = open(&fs);
    assert_eq!(&store.get(b"ns", b"a")?.expect("kept").value[..], b"1");
    store.put(b"ns", b"c", b"3", PutOptions::default())?;
    Ok(())
}

#[test]
fn a_failed_fsync_poisons_and_the_write_is_not_acknowledged() -> TestResult {
    let fs = SimFs::new();
    let store = open(&fs);
    store.put(b"ns", b"a", b"1", PutOptions::default())?;
    fs.fail_op(fs.ops() + 1); // append succeeds, its fsync fails
    let err = store
        .put(b"ns", b"b", b"2", PutOptions::default())
        .expect_err("fsync fails");
    assert!(err.to_string().contains("fsync"), "{err}");
    // Its own fsync failed, not an earlier one's (found from outside: it said "earlier").
    assert!(!err.to_string().contains("earlier"), "{err}");
    assert!(store.put(b"ns", b"c", b"3", PutOptions::default()).is_err());
    // After a power cut only durable data is there: the unacknowledged write is not.
    let image = fs.crash_image_now(Torn::No);
    drop(store);
    let store = open(&image);
    assert_eq!(
        &store.get(b"ns", b"a")?.expect("acknowledged").value[..],
        b"1"
    );
    assert_eq!(store.get(b"ns", b"b")?, None);
    Ok(())
}

/// Found from outside (seventeenth session): a PUT whose fsync failed was refused (500), yet
/// read back as stored while the store was poisoned, and after a restart the older value
/// came back; a refused DELETE read as gone, then came back. Reads of what a failed sync
/// left in doubt now answer `ReadError::Unsynced` until the store is reopened; the rest
/// reads as before.
#[test]
fn a_write_whose_fsync_failed_is_never_read_back_meanwhile() -> TestResult {
    for (what, op) in [("put", 0), ("delete", 1), ("clear", 2)] {
        let fs = SimFs::new();
        let store = open(&fs);
        store.put(b"ns", b"k", b"old", PutOptions::default())?;
        store.put(b"ns", b"other", b"kept", PutOptions::default())?;
        store.put(b"ns2", b"x", b"kept", PutOptions::default())?;
        fs.fail_op(fs.ops() + 1); // the append succeeds, its fsync fails
        let refused = match op {
            0 => store
                .put(b"ns", b"k", b"new", PutOptions::default())
                .map(|_| ()),
            1 => store.delete(b"ns", b"k").map(|_| ()),
            _ => store.clear_namespace(b"ns").map(|_| ()),
        };
        assert!(refused.is_err(), "{what}: {refused:?}");
        assert!(store.health().poisoned.is_some());
        assert_eq!(
            store.get(b"ns", b"k"),
            Err(ReadError::Unsynced),
            "{what}: neither the refused write nor the value before it"
        );
        assert!(matches!(
            store.try_get(b"ns", b"k"),
            Err(TryGetError::Read(ReadError::Unsynced))
        ));
        assert_eq!(
            store.get_many(b"ns", &[b"k"]),
            vec![Err(ReadError::Unsynced)]
        );
        let other = store.get(b"ns", b"other");
        if op == 2 {
            assert_eq!(
                other,
                Err(ReadError::Unsynced),
                "{what}: the cleared namespace"
            );
        } else {
            assert_eq!(&other?.expect("synced before").value[..], b"kept");
        }
        assert_eq!(&store.get(b"ns2", b"x")?.expect("kept").value[..], b"kept");
        // Reopened on what the disk kept (here, after a power cut: the synced bytes).
        let image = fs.crash_image_now(Torn::No);
        drop(store);
        let store = open(&image);
        assert_eq!(
            &store.get(b"ns", b"k")?.expect("old").value[..],
            b"old",
            "{what}"
        );
    }
    Ok(())
}

/// Found from outside (seventeenth session, EIO injected under ext4): writes appended
/// together, whose fsync failed, were refused; the write-back of the first of them failed and
/// the others reached the disk. After kill -9 the open found a bad range in the middle of
/// the segment with intact frames after it, took it for damage, and the key whose refused
/// write lay there read as lost, not as its acknowledged value. The seal log now hears
/// where the writes a failed sync left in doubt begin, and the open drops them: every key
/// reads its acknowledged value, and nothing is reported damaged.
#[test]
fn writes_a_failed_fsync_left_in_doubt_never_hide_an_acknowledged_value() -> TestResult {
    doubt_round(false)?;
    // Found from outside the next round: the disk failed every write for a moment, the
    // log's append of where the doubt begins too; after the disk came back, a clean
    // restart still read a key as lost. The close (as the background thread would, every
    // second) gives the log the entry again.
    doubt_round(true)
}

fn doubt_round(log_fails: bool) -> TestResult {
    let fs = SimFs::new();
    let store = open(&fs);
    let keys: [&[u8]; 3] = [b"a", b"b", b"c"];
    for k in keys {
        store.put(b"ns", k, b"acknowledged", PutOptions::default())?;
    }
    let synced = fs.crash_image_now(Torn::No);
    // Appended, not synced: never acknowledged.
    for k in keys {
        store.try_put_deferred(b"ns", k, b"refused", PutOptions::default(), None)?;
    }
    fs.fail_op(fs.ops()); // the fsync that would cover them fails
    let log = "/data/seals.log";
    if log_fails {
        fs.fail_io_of(log, Some(libc::EIO));
    }
    assert!(store.sync().is_err());
    assert!(store.health().poisoned.is_some());
    fs.fail_io_of(log, None);
    drop(store);
    // What the disk kept: the synced bytes, and of the three frames the first gone (its
    // write-back failed: the zeros of pre-allocated space stayed), the other two whole.
    let image = fs.crash_image_now(Torn::No);
    let dir = std::path::Path::new("/data");
    let active = fs
        .list(dir)?
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .max()
        .expect("a segment");
    let path = dir.join(&active);
    let live = fs.read(&path)?;
    let kept = synced.read(&path)?;
    let from = (0..live.len())
        .find(|&i| kept.get(i) != live.get(i))
        .expect("unsynced frames");
    let kept = image.read(&path)?;
    let end = live.iter().rposition(|&b| b != 0).expect("data") + 1;
    let mut disk = live[..end].to_vec();
    // The three frames are alike: the first a third of what they took.
    disk[from..from + (end - from) / 3].fill(0);
    let file = image.open(&path)?;
    file.write_at_unmapped(&disk[from..], from as u64)?;
    file.sync()?;
    drop(file);
    // `verify` judges the directory as the open will: no damage, the writes in doubt named.
    let copy = tempfile::tempdir()?;
    for name in image.list(dir)? {
        std::fs::write(copy.path().join(&name), image.read(&dir.join(&name))?)?;
    }
    let verified = ttlcask_engine::verify(copy.path())?;
    assert!(verified.damage.is_empty(), "{verified:?}");
    assert!(
        verified
            .warnings
            .iter()
            .any(|w| w.contains(&format!("from offset {from}")) && w.contains("in doubt")),
        "{verified:?}"
    );
    let store = open(&image);
    for k in keys {
        assert_eq!(
            &store.get(b"ns", k)?.expect("acknowledged").value[..],
            b"acknowledged",
            "{}",
            String::from_utf8_lossy(k)
        );
    }
    let report = store.recovery_report();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.keys_lost, 0);
    assert_eq!(
        report.truncated,
        vec![(
            active.trim_end_matches(".seg").parse()?,
            from as u64,
            kept.len().max(end) as u64 - from as u64
        )],
        "the writes in doubt are cut, as a torn write is"
    );
    // Written again, and reopened: the cut held.
    store.put(b"ns", b"a", b"again", PutOptions::default())?;
    drop(store);
    let store = open(&image);
    assert_eq!(&store.get(b"ns", b"a")?.expect("kept").value[..], b"again");
    assert_eq!(
        &store.get(b"ns", b"b")?.expect("kept").value[..],
        b"acknowledged"
    );
    Ok(())
}

/// Found from outside (about 1 trial in 20): a write appended while a failed sync poisoned
/// the store, after the first read that looked for writes left in doubt, was refused all
/// the same, and its refused value was read back: what was in doubt had been decoded once.
/// It is decoded again whenever more frames joined it, and looked at after the entry is
/// read.
#[test]
fn a_write_appended_as_the_store_was_poisoned_is_never_read_back() -> TestResult {
    let fs = SimFs::new();
    let store = Arc::new(open(&fs));
    store.put(b"ns", b"a", b"old", PutOptions::default())?;
    store.put(b"ns", b"b", b"old", PutOptions::default())?;
    store.try_put_deferred(b"ns", b"a", b"refused", PutOptions::default(), None)?;
    // The next append is held in the file system until the store is poisoned.
    let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = Arc::new(std::sync::Mutex::new(Some(go_rx)));
    let entered_tx = std::sync::Mutex::new(Some(entered_tx));
    fs.on_write(Some(Arc::new(move || {
        if std::thread::current().name() != Some("held writer") {
            return;
        }
        if let Some(rx) = go_rx.lock().expect("lock").take() {
            if let Some(tx) = entered_tx.lock().expect("lock").take() {
                let _ = tx.send(());
            }
            let _ = rx.recv();
        }
    })));
    let writer = {
        let store = store.clone();
        std::thread::Builder::new()
            .name("held writer".into())
            .spawn(move || {
                store
                    .try_put_deferred(b"ns", b"b", b"refused", PutOptions::default(), None)
                    .map(|_| ())
            })?
    };
    entered.recv_timeout(std::time::Duration::from_secs(10))?;
    fs.fail_op(fs.ops()); // the sync of the first write fails
    assert!(store.sync().is_err());
    assert_eq!(store.get(b"ns", b"a"), Err(ReadError::Unsynced));
    go.send(())?;
    let appended = writer.join().expect("writer");
    fs.on_write(None);
    if appended.is_ok() {
        for read in [
            store.get(b"ns", b"b"),
            store.get_many(b"ns", &[b"b"]).remove(0),
        ] {
            assert_eq!(read, Err(ReadError::Unsynced), "never the refused value");
        }
        assert!(matches!(
            store.try_get(b"ns", b"b"),
            Err(TryGetError::Read(ReadError::Unsynced)) | Err(TryGetError::WouldBlock)
        ));
    } else {
        assert_eq!(&store.get(b"ns", b"b")?.expect("old").value[..], b"old");
    }
    Ok(())
}

/// Puts 200 bytes under `0u32.to_be_bytes()`, `1u32…`, … until one is refused; how many
/// were taken, and the refusal.
fn put_until_refused(store: &Store) -> (u32, WriteError) {
    for i in 0..200u32 {
        if let Err(e) = store.put(b"ns", &i.to_be_bytes(), &[7; 200], PutOptions::default()) {
            return (i, e);
        }
    }
    panic!("200 writes and none refused");
}

/// Found from outside (seventeenth session): an EIO on the fsync of `seals.log` at a seal was
/// swallowed, the log removed, and nothing said so (`/healthz` 200). A disk that fails a
/// write or an fsync poisons the store, whichever file it was.
#[test]
fn an_io_error_on_the_seal_log_poisons_the_store() -> TestResult {
    let fs = SimFs::new();
    let store = open(&fs);
    store.put(b"ns", b"a", b"1", PutOptions::default())?;
    fs.fail_io_of("/data/seals.log", Some(libc::EIO));
    let (acked, err) = put_until_refused(&store);
    let reason = store.health().poisoned.expect("poisoned");
    assert!(reason.contains("seal log"), "{reason}");
    assert!(err.to_string().contains("seal log"), "{err}");
    assert_eq!(&store.get(b"ns", b"a")?.expect("read").value[..], b"1");
    // Reopened once the disk is sound, everything acknowledged is there.
    fs.fail_io_of("/data/seals.log", None);
    drop(store);
    let store = open(&fs);
    for i in 0..acked {
        assert!(store.get(b"ns", &i.to_be_bytes())?.is_some(), "{i}");
    }
    Ok(())
}

/// Found from outside (seventeenth session): `mv data data.old; mkdir data` under a running
/// server went unnoticed; new segments and hints went into the new `data`, which held no
/// lock, and a second server started there. The store now notices before its next segment
/// and within a second or so (its background thread), and stops taking writes.
#[test]
fn a_data_dir_moved_or_replaced_under_the_store_stops_its_writes() -> TestResult {
    // Noticed by the background thread, with no write.
    let fs = SimFs::new();
    let store = open(&fs);
    store.put(b"ns", b"a", b"1", PutOptions::default())?;
    fs.replace_dir();
    let since = std::time::Instant::now();
    while store.health().poisoned.is_none() {
        assert!(since.elapsed().as_secs() < 10, "not noticed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let reason = store.health().poisoned.expect("poisoned");
    assert!(reason.contains("moved or replaced"), "{reason}");
    assert!(store.put(b"ns", b"b", b"2", PutOptions::default()).is_err());
    assert_eq!(&store.get(b"ns", b"a")?.expect("read").value[..], b"1");
    // Noticed before the next segment, where no background thread runs.
    let fs = SimFs::new();
    let store = builder(&fs).spare_segments(false).open("/data")?;
    store.put(b"ns", b"a", b"1", PutOptions::default())?;
    fs.replace_dir();
    let (_, err) = put_until_refused(&store);
    assert!(err.to_string().contains("moved or replaced"), "{err}");
    let segments = fs.list(std::path::Path::new("/data"))?;
    assert_eq!(
        segments.iter().filter(|n| n.ends_with(".seg")).count(),
        1,
        "no new segment made: {segments:?}"
    );
    Ok(())
}

#[test]
fn enospc_during_compaction_leaves_the_store_usable() -> TestResult {
    let fs = SimFs::new();
    let store = open(&fs);
    for round in 0..4u8 {
        for i in 0..60u8 {
            store.put(b"ns", &[i], &[round; 100], PutOptions::default())?;
        }
    }
    let dead_before = store.stats().dead_bytes;
    fs.fail_writes(Some(ErrorKind::StorageFull));
    let err = store.compact().expect_err("disk full");
    assert!(err.to_string().contains("free disk space"), "{err}");
    fs.fail_writes(None);
    for i in 0..60u8 {
        assert_eq!(store.get(b"ns", &[i])?.expect("readable").value[0], 3);
    }
    store.put(b"ns", b"after", b"ok", PutOptions::default())?;
    let report = store.compact()?;
    assert!(report.bytes_reclaimed > 0 && store.stats().dead_bytes < dead_before);
    drop(store);
    let store = open(&fs);
    for i in 0..60u8 {
        assert_eq!(store.get(b"ns", &[i])?.expect("readable").value[0], 3);
    }
    assert_eq!(&store.get(b"ns", b"after")?.expect("kept").value[..], b"ok");
    Ok(())
}

#[test]
fn failing_every_call_in_turn_never_loses_an_acknowledged_write() -> TestResult {
    // One failed call anywhere in a workload: whatever was acknowledged before it must be
    // readable after reopening, and the store must never panic.
    let total = {
        let fs = SimFs::new();
        let store = open(&fs);
        workload(&store).map_err(|(e, _, _)| e)?;
        fs.ops()
    };
    for failing in 0..total {
        let fs = SimFs::new();
        fs.fail_op(failing);
        // Opening may be the call that fails: then nothing was acknowledged.
        let (acked, in_flight) = match try_open(&fs) {
            Ok(store) => match workload(&store) {
                Ok(acked) => (acked, None),
                Err((_, acked, in_flight)) => (acked, in_flight),
            },
            Err(_) => (Vec::new(), None),
        };
        // The call numbered `failing` may come after the workload (the background thread's
        // calls make the count vary from run to run), in the close or in this reopen: the
        // reopen then fails on it, and the next one must find everything.
        let store = try_open(&fs).or_else(|e| {
            let injected = format!("simulated I/O error on call {failing}");
            assert!(e.to_string().contains(&injected), "call {failing}: {e}");
            try_open(&fs)
        })?;
        for (key, value) in &acked {
            let got = store.get(b"ns", key)?.map(|i| i.value.to_vec());
            // The write that failed may or may not have reached the file; nothing else.
            let failed_one = in_flight.as_ref().filter(|(k, _)| k == key).map(|(_, v)| v);
            assert!(
                got.as_ref() == Some(value) || (got.is_some() && got.as_ref() == failed_one),
                "call {failing} failed: lost {key:?}"
            );
        }
    }
    println!("{total} single-call failures checked");
    Ok(())
}

type Acked = Vec<(Vec<u8>, Vec<u8>)>;
type Failure = (
    Box<dyn std::error::Error>,
    Acked,
    Option<(Vec<u8>, Vec<u8>)>,
);

fn workload(store: &Store) -> Result<Acked, Failure> {
    let mut acked = Vec::new();
    for i in 0..40u8 {
        let value = vec![i; 150];
        if let Err(e) = store.put(b"ns", &[i % 15], &value, PutOptions::default()) {
            return Err((e.into(), acked, Some((vec![i % 15], value))));
        }
        acked.retain(|(k, _): &(Vec<u8>, Vec<u8>)| k != &[i % 15]);
        acked.push((vec![i % 15], value));
        if i == 25 {
            if let Err(e) = store.compact() {
                return Err((e.into(), acked, None));
            }
        }
    }
    Ok(acked)
}
