//! The workload run against every store, and the figures it records.
//!
//! Keys and values are derived from an index by splitmix64, so no phase stores the key set
//! and every reader can check the value it gets (its first bytes name the generation).

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::{alloc, raw, BenchDatabase, Compacted, OpenMode, Result, KEY_LEN, VALUE_LEN};

/// Sizes and time caps of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Keys bulk-loaded (N).
    pub keys: u64,
    /// Time cap of each durable-write test.
    pub durable_time: Duration,
    /// Count cap of the single-thread durable-write test.
    pub durable_ops_1: u64,
    /// Count cap of the 64-thread durable-write test.
    pub durable_ops_64: u64,
    /// Writer threads of the concurrent durable-write test.
    pub durable_threads: usize,
    /// Point reads per read test (spread over the threads).
    pub reads: u64,
    /// Durable writes per second, in all, during the reads-during-writes phase.
    pub paced_writes: f64,
    /// Writer threads of that phase (each durable write waits for its fsync).
    pub paced_writers: usize,
    /// Length of that phase.
    pub paced_time: Duration,
}

/// Generations of values: the first value byte, so readers can check what they got.
const GEN_LOAD: u8 = 1;
const GEN_OVERWRITE: u8 = 2;
const GEN_DURABLE: u8 = 3;
/// Key spaces: bulk-loaded keys and durable-write keys never collide.
const SPACE_LOAD: u64 = 0;
const SPACE_DURABLE: u64 = 1 << 40;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of index `i`: 24 pseudo-random bytes.
pub fn key(i: u64) -> [u8; KEY_LEN] {
    let mut s = i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED;
    let mut k = [0u8; KEY_LEN];
    for chunk in k.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix(&mut s).to_le_bytes());
    }
    k
}

/// The value of index `i` in generation `generation`: 150 bytes, the first one the generation.
pub fn value(i: u64, generation: u8) -> [u8; VALUE_LEN] {
    let mut s = i ^ (u64::from(generation) << 56);
    let mut v = [0u8; VALUE_LEN];
    for chunk in v.chunks_mut(8) {
        let bytes = splitmix(&mut s).to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    v[0] = generation;
    v
}

/// A small deterministic random number generator for read orders.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        splitmix(&mut self.0) % bound.max(1)
    }
}

/// Disk bytes under `path`: allocated blocks (`du`), so sparse pre-allocation is not counted.
pub fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| disk_bytes(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.blocks() * 512
    }
}

/// Everything measured for one store. Rates are per second; `None` where not measured.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Store name.
    pub name: &'static str,
    /// Bulk load: keys per second.
    pub bulk_load: f64,
    /// Disk bytes after the bulk load (store closed).
    pub disk_after_load: u64,
    /// Seconds to reopen the loaded store (open + first read).
    pub reopen_secs: f64,
    /// The same with the store's files dropped from the page cache first.
    pub reopen_cold_secs: f64,
    /// Random point reads per second, 1 thread.
    pub reads_1: f64,
    /// Random point reads per second, 2 threads.
    pub reads_2: f64,
    /// Random reads per second, 1 thread, [`BATCH`] keys per call of the store's batched
    /// read (ttlcask's `get_many`); `None` for stores without one.
    pub reads_batched: Option<f64>,
    /// Random point reads per second, 1 thread, while durable writes arrive at
    /// [`Config::paced_writes`] per second in all (the same rate for every store).
    pub reads_during_writes: f64,
    /// Durable writes per second the paced writers achieved meanwhile.
    pub paced_writes: f64,
    /// Durable single writes per second, 1 thread.
    pub durable_1: f64,
    /// Durable single writes per second, `durable_threads` threads.
    pub durable_64: f64,
    /// Acknowledged writes per fsync in the concurrent durable test, where counted.
    pub writes_per_fsync: Option<f64>,
    /// Removals per second.
    pub removals: f64,
    /// Disk bytes after 50 % overwrites and compaction (store closed); `None` without compaction.
    pub disk_after_compaction: Option<u64>,
    /// Disk bytes after 50 % overwrites without compaction (store closed).
    pub disk_after_overwrites: u64,
    /// Key and value bytes live when the compacted size was taken.
    pub live_bytes: u64,
    /// Heap bytes held after reopen, per live key, from the counting allocator.
    pub heap_per_key: f64,
    /// The store's own estimate of its index, per live key.
    pub index_per_key: Option<f64>,
    /// Seconds to read the hint files (ttlcask only), the floor of its reopen time.
    pub hint_read_secs: Option<f64>,
    /// Bytes of the hint files after the bulk load (ttlcask only).
    pub hint_bytes: Option<u64>,
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn say(name: &str, what: &str) {
    eprintln!("[{:>7}] {what}", name);
}

/// Runs the workload against `T` in a fresh directory under `base` and returns its figures.
///
/// # Errors
/// Any store error; the run stops at the first one.
pub fn run<T: BenchDatabase>(base: &Path, cfg: &Config) -> Result<Figures> {
    let root = tempfile::Builder::new()
        .prefix(&format!("bench-{}-", T::NAME))
        .tempdir_in(base)?;
    let dir = root.path().join("db");
    fs::create_dir_all(&dir)?;
    let n = cfg.keys;
    let mut f = Figures {
        name: T::NAME,
        ..Figures::default()
    };

    // Bulk load.
    {
        let db = T::open(&dir, OpenMode::Bulk)?;
        let start = Instant::now();
        db.bulk_put(&mut (0..n).map(|i| (key(SPACE_LOAD + i), value(i, GEN_LOAD))))?;
        f.bulk_load = rate(n, start.elapsed());
        say(T::NAME, &format!("bulk load: {:.0} keys/s", f.bulk_load));
    }
    f.disk_after_load = disk_bytes(&dir);
    (f.hint_read_secs, f.hint_bytes) = read_hints(&dir).unzip();

    // Reopen, and the heap it holds (the index, for ttlcask).
    // The engine maps its large index blocks itself (huge pages), out of the allocator's sight.
    let heap = || alloc::allocated() + ttlcask_engine::index_mapped_bytes();
    let heap_before = heap();
    let start = Instant::now();
    let db = T::open(&dir, OpenMode::Durable)?;
    db.read_each(&mut std::iter::once(key(SPACE_LOAD)), &mut |_| {})?;
    f.reopen_secs = start.elapsed().as_secs_f64();
    f.heap_per_key = (heap().saturating_sub(heap_before)) as f64 / n.max(1) as f64;
    f.index_per_key = db.index_bytes().map(|b| b as f64 / n.max(1) as f64);
    say(T::NAME, &format!("reopen: {:.3} s", f.reopen_secs));
    drop(db);

    // Reopen from the disk: every file dropped from the page cache first, then read back
    // into it so that the reads below are measured warm, as before.
    evict(&dir)?;
    let start = Instant::now();
    let db = T::open(&dir, OpenMode::Durable)?;
    db.read_each(&mut std::iter::once(key(SPACE_LOAD)), &mut |_| {})?;
    f.reopen_cold_secs = start.elapsed().as_secs_f64();
    say(
        T::NAME,
        &format!("reopen, cold: {:.3} s", f.reopen_cold_secs),
    );
    for file in fs::read_dir(&dir)?.flatten() {
        if file.path().is_file() {
            std::hint::black_box(fs::read(file.path())?.len());
        }
    }

    // Random point reads.
    f.reads_1 = reads(&db, n, cfg.reads, 1)?;
    say(T::NAME, &format!("reads, 1 thread: {:.0}/s", f.reads_1));
    f.reads_2 = reads(&db, n, cfg.reads, 2)?;
    say(T::NAME, &format!("reads, 2 threads: {:.0}/s", f.reads_2));
    f.reads_batched = reads_batched(&db, n, cfg.reads)?;
    if let Some(r) = f.reads_batched {
        say(T::NAME, &format!("reads, {BATCH} keys per call: {r:.0}/s"));
    }

    // Reads while paced durable writes arrive.
    let next = AtomicU64::new(0);
    (f.reads_during_writes, f.paced_writes) = reads_during_writes(&db, n, &next, cfg)?;
    say(
        T::NAME,
        &format!(
            "reads during {:.0} durable writes/s: {:.0}/s",
            f.paced_writes, f.reads_during_writes
        ),
    );

    // Durable single writes.
    f.durable_1 = durable_writes(&db, &next, 1, cfg.durable_ops_1, cfg.durable_time)?;
    say(
        T::NAME,
        &format!("durable writes, 1 thread: {:.0}/s", f.durable_1),
    );
    let before = db.write_counters();
    f.durable_64 = durable_writes(
        &db,
        &next,
        cfg.durable_threads,
        cfg.durable_ops_64,
        cfg.durable_time,
    )?;
    if let (Some((w0, s0)), Some((w1, s1))) = (before, db.write_counters()) {
        f.writes_per_fsync = Some((w1 - w0) as f64 / (s1 - s0).max(1) as f64);
    }
    say(
        T::NAME,
        &format!(
            "durable writes, {} threads: {:.0}/s",
            cfg.durable_threads, f.durable_64
        ),
    );
    let durable_keys = next.load(Ordering::Relaxed);

    // 50 % overwrites, then compaction; sizes taken with the store closed.
    db.bulk_put(&mut (0..n / 2).map(|i| (key(SPACE_LOAD + i * 2), value(i * 2, GEN_OVERWRITE))))?;
    drop(db);
    f.disk_after_overwrites = disk_bytes(&dir);
    f.live_bytes = (n + durable_keys) * (KEY_LEN + VALUE_LEN) as u64;
    let mut db = T::open(&dir, OpenMode::Durable)?;
    let compacted = db.compact()?;
    drop(db);
    f.disk_after_compaction = match compacted {
        Compacted::InPlace => Some(disk_bytes(&dir)),
        Compacted::Copy(path) => Some(disk_bytes(&path)),
        Compacted::Unsupported => None,
    };
    say(T::NAME, "overwrites and compaction done");

    // Removals: half of the loaded keys, in one transaction.
    let db = T::open(&dir, OpenMode::Bulk)?;
    let start = Instant::now();
    db.bulk_remove(&mut (0..n / 2).map(|i| key(SPACE_LOAD + i)))?;
    f.removals = rate(n / 2, start.elapsed());
    say(T::NAME, &format!("removals: {:.0}/s", f.removals));
    let missing = db.read_each(&mut std::iter::once(key(SPACE_LOAD)), &mut |_| {})?;
    if missing != 1 {
        return Err(format!("{}: a removed key is still there", T::NAME).into());
    }
    drop(db);
    Ok(f)
}

/// Drops every file in `dir` from the page cache (`posix_fadvise(DONTNEED)` after an fsync,
/// so that no page is dirty).
fn evict(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    for file in fs::read_dir(dir)?.flatten() {
        if !file.path().is_file() {
            continue;
        }
        let f = fs::File::open(file.path())?;
        f.sync_all()?;
        // SAFETY: a plain system call on a descriptor this function owns.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(format!("posix_fadvise: error {rc}").into());
        }
    }
    Ok(())
}

/// Reads every `*.hint` file in `dir` and returns how long it took (ttlcask's reopen floor)
/// and how many bytes they hold.
fn read_hints(dir: &Path) -> Option<(f64, u64)> {
    let hints: Vec<_> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "hint"))
        .collect();
    if hints.is_empty() {
        return None;
    }
    let start = Instant::now();
    let mut total = 0usize;
    for p in &hints {
        total += fs::read(p).map(|b| b.len()).unwrap_or(0);
    }
    let secs = start.elapsed().as_secs_f64();
    Some((secs, std::hint::black_box(total) as u64))
}

/// `count` random point reads of loaded keys from `threads` threads; every value is checked.
fn reads<T: BenchDatabase>(db: &T, n: u64, count: u64, threads: usize) -> Result<f64> {
    let per_thread = count / threads as u64;
    let barrier = Barrier::new(threads);
    let start = Instant::now();
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || -> Result<()> {
                    let mut rng = Rng::new(0xBEEF + t as u64);
                    barrier.wait();
                    let mut bad = 0u64;
                    let missing = db.read_each(
                        &mut (0..per_thread).map(|_| key(SPACE_LOAD + rng.below(n))),
                        &mut |v| {
                            if v.len() != VALUE_LEN || v[0] != GEN_LOAD {
                                bad += 1;
                            }
                        },
                    )?;
                    if missing + bad > 0 {
                        return Err(format!("{} reads missing, {bad} wrong", missing).into());
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("reader panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(rate(per_thread * threads as u64, elapsed))
}

/// Keys per call of the batched read row.
pub const BATCH: usize = 16;

/// `count` random reads of loaded keys from one thread, [`BATCH`] keys per call of the
/// store's batched read (the same keys as [`reads`] with one thread); `None` if it has none.
fn reads_batched<T: BenchDatabase>(db: &T, n: u64, count: u64) -> Result<Option<f64>> {
    let mut rng = Rng::new(0xBEEF);
    let mut keys = [[0u8; KEY_LEN]; BATCH];
    let (mut missing, mut bad) = (0u64, 0u64);
    let start = Instant::now();
    for _ in 0..count / BATCH as u64 {
        for k in &mut keys {
            *k = key(SPACE_LOAD + rng.below(n));
        }
        let Some(read) = db.read_batch(&keys, &mut |v| {
            if v.len() != VALUE_LEN || v[0] != GEN_LOAD {
                bad += 1;
            }
        }) else {
            return Ok(None);
        };
        missing += read?;
    }
    let elapsed = start.elapsed();
    if missing + bad > 0 {
        return Err(format!("{missing} batched reads missing, {bad} wrong").into());
    }
    Ok(Some(rate(count / BATCH as u64 * BATCH as u64, elapsed)))
}

/// Random point reads from one thread for `cfg.paced_time` while `cfg.paced_writers` threads
/// make durable writes of new keys on a fixed schedule, `cfg.paced_writes` per second in all
/// (a writer that falls behind catches up without sleeping, so a store too slow for the
/// rate shows it as fewer writes). Returns (reads per second, writes per second achieved).
fn reads_during_writes<T: BenchDatabase>(
    db: &T,
    n: u64,
    next: &AtomicU64,
    cfg: &Config,
) -> Result<(f64, f64)> {
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let writers = cfg.paced_writers.max(1);
    let interval = Duration::from_secs_f64(writers as f64 / cfg.paced_writes.max(1.0));
    let barrier = Barrier::new(writers + 1);
    let mut reads = 0u64;
    let start = Instant::now();
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (barrier, stop, writes) = (&barrier, &stop, &writes);
                s.spawn(move || -> Result<()> {
                    barrier.wait();
                    let begin = Instant::now() + interval.mul_f64(w as f64 / writers as f64);
                    let mut due = begin;
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        db.durable_put(&key(SPACE_DURABLE + i), &value(i, GEN_DURABLE))?;
                        writes.fetch_add(1, Ordering::Relaxed);
                        due += interval;
                    }
                    Ok(())
                })
            })
            .collect();
        let mut reader = || -> Result<()> {
            barrier.wait();
            let mut rng = Rng::new(0xFEED);
            let deadline = Instant::now() + cfg.paced_time;
            let mut bad = 0u64;
            let mut keys = std::iter::from_fn(|| {
                // The clock is read every 256 keys, not on every read.
                if reads.is_multiple_of(256) && Instant::now() >= deadline {
                    return None;
                }
                reads += 1;
                Some(key(SPACE_LOAD + rng.below(n)))
            });
            let missing = db.read_each(&mut keys, &mut |v| {
                if v.len() != VALUE_LEN || v[0] != GEN_LOAD {
                    bad += 1;
                }
            })?;
            if missing + bad > 0 {
                return Err(format!("{missing} reads missing, {bad} wrong").into());
            }
            Ok(())
        };
        let read = reader();
        stop.store(true, Ordering::Relaxed);
        std::iter::once(read)
            .chain(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("writer panicked".into()))),
            )
            .collect()
    });
    let elapsed = start.elapsed();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok((
        rate(reads, elapsed),
        rate(writes.load(Ordering::Relaxed), elapsed),
    ))
}

/// Durable single writes of new keys from `threads` threads until `max_ops` or `max_time`.
fn durable_writes<T: BenchDatabase>(
    db: &T,
    next: &AtomicU64,
    threads: usize,
    max_ops: u64,
    max_time: Duration,
) -> Result<f64> {
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads);
    let start = Instant::now();
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (barrier, done, stop) = (&barrier, &done, &stop);
                s.spawn(move || -> Result<()> {
                    barrier.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        db.durable_put(&key(SPACE_DURABLE + i), &value(i, GEN_DURABLE))?;
                        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if d >= max_ops || start.elapsed() >= max_time {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("writer panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(rate(done.load(Ordering::Relaxed), elapsed))
}

/// The raw limits of the disk under `base`, measured in the same run.
#[derive(Debug, Clone, Copy)]
pub struct RawLimits {
    /// Sequential write bandwidth, bytes per second (written, then fdatasync).
    pub seq_write: f64,
    /// Single-writer `pwrite` + `fdatasync` rounds per second.
    pub fdatasync_rate: f64,
    /// The same into blocks written beforehand (no allocation for `fdatasync` to commit).
    pub fdatasync_rate_prewritten: f64,
}

/// Measures [`RawLimits`] under `base`.
///
/// # Errors
/// An I/O error of the scratch files.
pub fn raw_limits(base: &Path, seq_bytes: u64, sync_time: Duration) -> Result<RawLimits> {
    let dir = tempfile::Builder::new()
        .prefix("bench-raw-")
        .tempdir_in(base)?;
    Ok(RawLimits {
        seq_write: raw::sequential_write(dir.path(), seq_bytes)?,
        fdatasync_rate: raw::fdatasync_rate(dir.path(), sync_time)?,
        fdatasync_rate_prewritten: raw::fdatasync_rate_prewritten(dir.path(), sync_time)?,
    })
}
