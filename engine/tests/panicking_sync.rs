//! An embedder's file system whose fsync panics: the writers waiting for that sync get an
//! error and the store is poisoned, as for a failed fsync; none waits forever for a sync
//! leader that is gone. (Found by review of the combined writers: a panicking sync used to
//! leave the leader flag set, and every later durable write waited for it.)

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{Durability, FileSystem, PutOptions, StorageFile, Store, View};

/// `SimFs`, but once `panic` is set every file sync panics.
#[derive(Debug, Clone)]
struct PanickyFs {
    inner: SimFs,
    panic: Arc<AtomicBool>,
}

#[derive(Debug)]
struct PanickyFile {
    inner: Box<dyn StorageFile>,
    panic: Arc<AtomicBool>,
}

impl StorageFile for PanickyFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        assert!(
            !self.panic.load(Ordering::Relaxed),
            "the disk driver panicked"
        );
        self.inner.sync()
    }
    fn view(&self) -> View<'_> {
        self.inner.view()
    }
    fn view_range(&self, start: usize, len: usize) -> Option<View<'_>> {
        self.inner.view_range(start, len)
    }
    fn map(&mut self) -> io::Result<()> {
        self.inner.map()
    }
}

impl PanickyFs {
    fn wrap(&self, inner: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        Box::new(PanickyFile {
            inner,
            panic: self.panic.clone(),
        })
    }
}

impl FileSystem for PanickyFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.wrap(self.inner.create(path)?))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.wrap(self.inner.open(path)?))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        self.inner.try_lock(path)
    }
}

#[test]
fn a_panicking_fsync_fails_the_waiting_writers_and_poisons_the_store() {
    let fs = PanickyFs {
        inner: SimFs::new(),
        panic: Arc::new(AtomicBool::new(false)),
    };
    let store = Store::builder()
        .file_system(Arc::new(fs.clone()))
        .durability(Durability::Always)
        .compaction_interval(None)
        .spare_segments(false)
        .open("/data")
        .expect("open");
    store
        .put(b"ns", b"before", b"v", PutOptions::default())
        .expect("put");
    fs.panic.store(true, Ordering::Relaxed);
    // Several writers at once, so that some wait for another's sync; a watchdog bounds it.
    let start = Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = &store;
                s.spawn(move || {
                    let key = format!("k{i}");
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        store.put(b"ns", key.as_bytes(), b"v", PutOptions::default())
                    }))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the thread itself ends"))
            .collect()
    });
    assert!(start.elapsed() < Duration::from_secs(30));
    // A panic that reached a caller is acceptable; an acknowledgement or a hang is not.
    for answer in results.into_iter().flatten() {
        assert!(answer.is_err(), "acknowledged without a sync: {answer:?}");
    }
    assert!(store.health().poisoned.is_some(), "the store is poisoned");
    // And later writes fail at once rather than wait.
    let later = store.put(b"ns", b"later", b"v", PutOptions::default());
    assert!(later.is_err());
    assert_eq!(
        &store
            .get(b"ns", b"before")
            .expect("read")
            .expect("item")
            .value[..],
        b"v"
    );
}
