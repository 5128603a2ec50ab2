//! Random point reads of loaded keys from one thread: the bench's read row on its own, for
//! profiling (`valgrind --tool=callgrind`, `perf record`).
//!
//! `cargo run --release -p ttlcask-engine --example point_reads -- [keys] [reads] [batch]`
//! (defaults 1,000,000 keys of 24 bytes with 150-byte values, 2,000,000 reads, batch 0:
//! one `get` per key; a batch above 0 reads that many keys per `get_many`). With few keys
//! every read is served from the CPU's caches, which leaves the read's own work.

use std::time::Instant;

use ttlcask_engine::{Durability, PutOptions, Store, WriteBatch};

const NS: &[u8] = b"bench";

/// Key `i`: 24 bytes spread by a multiplicative hash, as the bench's keys are.
fn key(i: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    for (n, chunk) in k.chunks_mut(8).enumerate() {
        let x = (i ^ (n as u64) << 56).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        chunk.copy_from_slice(&(x ^ x >> 29).to_le_bytes());
    }
    k
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.replace('_', "").parse())
        .collect::<Result<_, _>>()?;
    let keys = args.first().copied().unwrap_or(1_000_000);
    let reads = args.get(1).copied().unwrap_or(2_000_000);
    let batch = args.get(2).copied().unwrap_or(0) as usize;
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(Durability::Never)
        .compaction_interval(None)
        .open(dir.path())?;
    for start in (0..keys).step_by(10_000) {
        let mut batch = WriteBatch::new();
        for i in start..(start + 10_000).min(keys) {
            batch.put(NS, &key(i), &[7; 150], PutOptions::default());
        }
        store.write_batch(batch)?;
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        key(x % keys)
    };
    let mut bytes = 0usize;
    let start = Instant::now();
    if batch == 0 {
        for _ in 0..reads {
            let item = store.get(NS, &next())?.ok_or("a loaded key is missing")?;
            bytes += item.value.len();
        }
    } else {
        for _ in 0..reads / batch as u64 {
            let wanted: Vec<[u8; 24]> = (0..batch).map(|_| next()).collect();
            for got in store.get_many(NS, &wanted) {
                bytes += got?.ok_or("a loaded key is missing")?.value.len();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{reads} reads of {keys} keys: {:.0}/s ({:.0} ns each, {bytes} bytes)",
        reads as f64 / secs,
        secs * 1e9 / reads as f64
    );
    Ok(())
}
