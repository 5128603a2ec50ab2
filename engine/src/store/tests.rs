use super::open::fitted_segment_size;
use super::*;
use crate::sim::SimFs;

#[test]
fn the_segment_size_fits_the_file_system() {
    const MIB: u64 = 1 << 20;
    // Unknown free space, or room for sixteen: as configured.
    assert_eq!(fitted_segment_size(64 * MIB, None, 0), 64 * MIB);
    assert_eq!(fitted_segment_size(64 * MIB, Some(1024 * MIB), 0), 64 * MIB);
    assert_eq!(
        fitted_segment_size(64 * MIB, Some(512 * MIB), 512 * MIB),
        64 * MIB
    );
    // A 32 MB disk: 2 MiB segments (a sixteenth, a power of two below it).
    assert_eq!(fitted_segment_size(64 * MIB, Some(32_000_000), 0), MIB);
    assert_eq!(fitted_segment_size(64 * MIB, Some(32 * MIB), 0), 2 * MIB);
    // What the store holds counts as room; a smaller configured size stays.
    assert_eq!(fitted_segment_size(64 * MIB, Some(0), 32 * MIB), 2 * MIB);
    assert_eq!(fitted_segment_size(MIB, Some(32 * MIB), 0), MIB);
    // Never below the smallest segment.
    assert_eq!(
        fitted_segment_size(64 * MIB, Some(0), 0),
        crate::options::MIN_SEGMENT_SIZE
    );
}

fn store() -> Store {
    Store::builder()
        .file_system(Arc::new(SimFs::new()))
        .compaction_interval(None)
        .open("/s")
        .expect("open")
}

/// A deferred write never waits behind an index scan or another writer: it gives up
/// with `WouldBlock` (the async caller then writes from a thread that may block), and
/// writes nothing.
#[test]
fn a_deferred_put_gives_up_rather_than_wait_for_the_index() {
    let store = store();
    let opts = PutOptions::default();
    for hold_write in [false, true] {
        {
            let (_read, _write);
            if hold_write {
                _write = Some(store.inner().state.write());
                _read = None;
            } else {
                // A long scan holds the read lock; a writer queued behind it would make
                // the next reader wait too.
                _read = Some(store.inner().state.read());
                _write = None;
            }
            let (tx, rx) = std::sync::mpsc::channel();
            let writer = store.clone();
            std::thread::spawn(move || {
                let _ = tx.send(writer.try_put_deferred(b"ns", b"k", b"v", opts, None));
            });
            let r = rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .expect("a deferred put waited for the index lock instead of giving up");
            assert_eq!(
                r.err(),
                Some(DeferredError::WouldBlock),
                "hold_write {hold_write}"
            );
        }
        assert_eq!(
            store.get(b"ns", b"k").expect("read"),
            None,
            "nothing written"
        );
    }
    let (version, _) = store
        .try_put_deferred(b"ns", b"k", b"v", opts, None)
        .expect("free locks: written");
    assert!(version.is_some());
}
