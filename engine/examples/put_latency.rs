//! Latency of single puts of new keys from one thread (`Durability::Never` unless
//! `DURABILITY=always`), for finding the slow ones: prints a histogram, the slowest puts with
//! when they happened (seconds from the start and MiB of keys and values written), and when
//! the segment count changed (sampled every 1,024 puts). `SHOW_START=1` prints the start as
//! a monotonic time, to line the slow puts up with `perf record -k CLOCK_MONOTONIC`.
//! `KEYS=N` overwrites N keys in turn instead (with `COMPACT_MS=M`, compaction every M ms):
//! the puts then run beside compaction.
//! `cargo run --release -p ttlcask-engine --example put_latency -- [SECS] [DIR]` (default 12 s,
//! a temporary directory).
use std::time::{Duration, Instant};

use ttlcask_engine::{Durability, PutOptions, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(12);
    let tmp;
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir_in(".")?;
            tmp.path().to_path_buf()
        }
    };
    let durability = match std::env::var("DURABILITY").as_deref() {
        Ok("always") => Durability::Always,
        _ => Durability::Never,
    };
    // The default builder otherwise: its background thread (timed compaction) is what a
    // server runs, and it takes work off the writers' path.
    // `NO_BACKGROUND=1`: no background thread (no timed compaction), so that a rollover also
    // cuts the sealed segment's tail on the writer's path.
    let mut builder = Store::builder().durability(durability);
    if std::env::var_os("NO_BACKGROUND").is_some() {
        builder = builder.compaction_interval(None);
    }
    let env_u64 = |name: &str| -> Result<Option<u64>, std::num::ParseIntError> {
        std::env::var(name).ok().map(|s| s.parse()).transpose()
    };
    if let Some(ms) = env_u64("COMPACT_MS")? {
        builder = builder.compaction_interval(Some(Duration::from_millis(ms)));
    }
    let keys = env_u64("KEYS")?.unwrap_or(u64::MAX).max(1);
    let store = builder.open(&dir)?;
    let value = [b'v'; 150];
    let start = Instant::now();
    if std::env::var_os("SHOW_START").is_some() {
        // Instant is CLOCK_MONOTONIC here: lines the slow puts up with `perf record -k mono`.
        println!("start {start:?}");
    }
    let stop = Duration::from_secs(secs);
    // Buckets: < 10 µs, < 100 µs, < 1 ms, < 10 ms, < 100 ms, more.
    let mut buckets = [0u64; 6];
    let mut slow: Vec<(Duration, f64, f64)> = Vec::new();
    let mut segments = store.stats().segments;
    let mut rollovers = Vec::new();
    let mut i = 0u64;
    while start.elapsed() < stop {
        let key = format!("{:016}kkkkkkkk", i % keys);
        let t = Instant::now();
        store.put(b"bench", key.as_bytes(), &value, PutOptions::default())?;
        let took = t.elapsed();
        let at = start.elapsed().as_secs_f64();
        let mib = (i * (24 + 150)) as f64 / f64::from(1 << 20);
        let b = match took.as_micros() {
            0..10 => 0,
            10..100 => 1,
            100..1_000 => 2,
            1_000..10_000 => 3,
            10_000..100_000 => 4,
            _ => 5,
        };
        buckets[b] += 1;
        if took >= Duration::from_millis(1) {
            slow.push((took, at, mib));
        }
        if i.is_multiple_of(1024) {
            let now = store.stats().segments;
            if now != segments {
                rollovers.push((at, mib));
                segments = now;
            }
        }
        i += 1;
    }
    println!(
        "{i} puts in {secs} s; <10us {} <100us {} <1ms {} <10ms {} <100ms {} more {}",
        buckets[0], buckets[1], buckets[2], buckets[3], buckets[4], buckets[5]
    );
    slow.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (took, at, mib) in slow.iter().take(25) {
        println!(
            "  {:>8.2} ms at {at:>6.3} s, {mib:>7.1} MiB",
            took.as_secs_f64() * 1e3
        );
    }
    let rolls: Vec<String> = rollovers
        .iter()
        .map(|(at, mib)| format!("{at:.2}s/{mib:.0}MiB"))
        .collect();
    println!("segment count changed at: {}", rolls.join(" "));
    Ok(())
}
