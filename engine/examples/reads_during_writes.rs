//! Random reads from one thread, alone and then while paced durable writes arrive: the bench
//! row "reads during writes" on its own, for profiling (`perf record -g`).
//!
//! `cargo run --release -p ttlcask-engine --example reads_during_writes -- [keys] [writes/s]`
//! (defaults 1,000,000 keys of 24 bytes with 150-byte values, 5,000 writes/s from 8 threads).

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
    let alone = read_for(&store, keys);
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let during = std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (store, stop, written) = (&store, &stop, &written);
            s.spawn(move || {
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
    let writes = written.load(Ordering::Relaxed) as f64 / PHASE.as_secs_f64();
    println!(
        "reads alone {alone:.0}/s; during {writes:.0} durable writes/s {during:.0}/s ({:.2}x)",
        during / alone
    );
    Ok(())
}
