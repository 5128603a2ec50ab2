//! Random reads from one thread, alone and then while paced durable writes arrive: the bench
//! row "reads during writes" on its own, for profiling (`perf record -g`).
//!
//! `cargo run --release -p ttlcask-engine --example reads_during_writes -- [keys] [writes/s]`
//! (defaults 1,000,000 keys of 24 bytes with 150-byte values, 5,000 writes/s from 8 threads).
//!
//! `READER_CPU=N` keeps the reader on CPU N (the writers on any): the ratio depends on whether
//! the reader shares its CPU with the disk's interrupts. Prints how often the reader slept.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ttlcask_engine::{Durability, PutOptions, Store, WriteBatch};

const NS: &[u8] = b"bench";
const WRITERS: u64 = 8;
const PHASE: Duration = Duration::from_secs(3);

fn key(i: u64) -> [u8; 24] {
    let mut k = [b'k'; 24];
    k[..16].copy_from_slice(format!("{i:016}").as_bytes());
    k
}

/// Keeps the calling thread on `cpus` (Linux).
#[expect(unsafe_code, reason = "sched_setaffinity has no safe wrapper")]
fn pin(cpus: impl IntoIterator<Item = usize>) -> std::io::Result<()> {
    // SAFETY: a zeroed `cpu_set_t` is an empty set; the call reads it and nothing else.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The calling thread's voluntary context switches so far (0 where not known).
fn sleeps() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Reads random loaded keys for `PHASE`; returns reads per second.
fn read_for(store: &Store, keys: u64) -> f64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < PHASE {
        for _ in 0..1024 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let got = store.get(NS, &key(x % keys)).expect("read");
            assert!(got.is_some());
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.replace('_', "").parse())
        .collect::<Result<_, _>>()?;
    let keys = args.first().copied().unwrap_or(1_000_000);
    let rate = args.get(1).copied().unwrap_or(5_000);
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Always)
        .compaction_interval(None)
        .open(dir.path())?;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(10_000) {
        let mut batch = WriteBatch::new();
        for &i in chunk {
            batch.put(NS, &key(i), &[7; 150], PutOptions::default());
        }
        store.write_batch(batch)?;
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if let Ok(cpu) = std::env::var("READER_CPU") {
        // A pin that failed would measure an unpinned reader under the pinned one's name.
        pin([cpu.parse()?])?;
    }
    let alone = read_for(&store, keys);
    let slept = sleeps();
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let during = std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (store, stop, written) = (&store, &stop, &written);
            s.spawn(move || {
                pin(0..cpus).expect("a writer may run on every CPU");
                let interval = Duration::from_secs_f64(WRITERS as f64 / rate as f64);
                let mut next = Instant::now();
                let mut i = keys + w;
                while !stop.load(Ordering::Relaxed) {
                    store
                        .put(NS, &key(i), &[9; 150], PutOptions::default())
                        .expect("write");
                    written.fetch_add(1, Ordering::Relaxed);
                    i += WRITERS;
                    next += interval;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            });
        }
        let during = read_for(&store, keys);
        stop.store(true, Ordering::Relaxed);
        during
    });
    let slept = sleeps() - slept;
    let writes = written.load(Ordering::Relaxed) as f64 / PHASE.as_secs_f64();
    println!(
        "reads alone {alone:.0}/s; during {writes:.0} durable writes/s {during:.0}/s ({:.2}x); \
         the reader slept {slept} times meanwhile",
        during / alone
    );
    Ok(())
}
