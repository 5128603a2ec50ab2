//! `cargo bench -p ttlcask-bench`: ttlcask-engine, redb, fjall, LMDB and sled side by side in
//! one process, one table (see the crate docs).
//!
//! Options (flag or environment variable):
//! - `--keys N` / `TTLCASK_BENCH_KEYS`: keys bulk-loaded (default 1,000,000; CI smoke: 10,000)
//! - `--durable-secs S` / `TTLCASK_BENCH_DURABLE_SECS`: time cap of each durable-write test (5)
//! - `--only a,b` / `TTLCASK_BENCH_ONLY`: stores to run (default all; ttlcask always runs)
//! - `--dir PATH` / `TTLCASK_BENCH_DIR`: where the stores live (default the temp directory)
//! - `TTLCASK_BENCH_NO_SPARES=1`: ttlcask without spare segments (what writing them costs)

use std::path::PathBuf;
use std::time::Duration;

use ttlcask_bench::dbs::{Fjall, Lmdb, Redb, Sled, Ttlcask};
use ttlcask_bench::workload::{self, Config};
use ttlcask_bench::{alloc::Counting, table, Result};

#[global_allocator]
static ALLOC: Counting = Counting;

fn option(args: &[String], flag: &str, env: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var(env).ok())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let keys: u64 = option(&args, "--keys", "TTLCASK_BENCH_KEYS")
        .map(|s| s.replace('_', "").parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let durable_secs: f64 = option(&args, "--durable-secs", "TTLCASK_BENCH_DURABLE_SECS")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5.0);
    let only = option(&args, "--only", "TTLCASK_BENCH_ONLY");
    let dir = option(&args, "--dir", "TTLCASK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let wanted = |name: &str| {
        name == "ttlcask"
            || only
                .as_deref()
                .is_none_or(|o| o.split(',').any(|x| x == name))
    };
    let threads = 64;
    let cfg = Config {
        keys,
        durable_time: Duration::from_secs_f64(durable_secs),
        durable_ops_1: 100_000,
        durable_ops_64: 1_000_000,
        durable_threads: threads,
        reads: keys.max(10_000),
        paced_writes: 5_000.0,
        paced_writers: 8,
        paced_time: Duration::from_secs(3),
    };

    eprintln!("raw limits of the disk under {}", dir.display());
    let seq_bytes = if keys >= 100_000 { 1 << 30 } else { 64 << 20 };
    let raw = workload::raw_limits(&dir, seq_bytes, Duration::from_secs(3))?;

    let mut all = vec![workload::run::<Ttlcask>(&dir, &cfg)?];
    if wanted("lmdb") {
        all.push(workload::run::<Lmdb>(&dir, &cfg)?);
    }
    if wanted("redb") {
        all.push(workload::run::<Redb>(&dir, &cfg)?);
    }
    if wanted("fjall") {
        all.push(workload::run::<Fjall>(&dir, &cfg)?);
    }
    if wanted("sled") {
        all.push(workload::run::<Sled>(&dir, &cfg)?);
    }
    println!("{}", table::render(&all, &raw, keys, threads));
    Ok(())
}
