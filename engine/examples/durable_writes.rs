//! Durable writes (`Durability::Always`) of 24-byte keys and 150-byte values from T threads
//! (default 1) for 3 s, as the bench rows "durable writes, 1 / 64 threads", for A/B runs:
//! `cargo run --release -p ttlcask-engine --example durable_writes -- [T]`. Prints writes/s,
//! fsyncs/s and writes per fsync. `SECS=N` runs N seconds; `PRELOAD_MB=N` writes N MiB and
//! reopens the store first, as the bench's store is (a reopened store that holds data starts
//! on a small segment and moves to spares).
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use ttlcask_engine::{Durability, PutOptions, Store};
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1);
    let dir = tempfile::tempdir_in(".")?;
    // PRELOAD_MB=N: N MiB written (no fsyncs) and the store reopened first, as the bench's
    // store is: a reopened store holding data starts on a small segment and moves to spares.
    let preload_mb: usize = std::env::var("PRELOAD_MB")
        .ok()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(0);
    if preload_mb > 0 {
        let store = Store::builder()
            .durability(Durability::Never)
            .compaction_interval(None)
            .open(dir.path())?;
        for i in 0..preload_mb * 4096 {
            store.put(
                b"bench",
                format!("preload-{i:016}").as_bytes(),
                &[1; 230],
                PutOptions::default(),
            )?;
        }
    }
    let store = Store::builder()
        .durability(Durability::Always)
        .compaction_interval(None)
        .open(dir.path())?;
    // SECS=N: run for N seconds (default 3).
    let secs = Duration::from_secs(
        std::env::var("SECS")
            .ok()
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(3),
    );
    let n = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (store, n, secs) = (&store, &n, secs);
            s.spawn(move || {
                let mut i = 0u64;
                while start.elapsed() < secs {
                    store
                        .put(
                            b"bench",
                            format!("{t:04}-{i:019}").as_bytes(),
                            &[7; 150],
                            PutOptions::default(),
                        )
                        .expect("put");
                    i += 1;
                    n.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let stats = store.stats();
    println!(
        "{:.0} durable writes/s, {:.0} fsyncs/s, {:.1} writes per fsync",
        n.load(Ordering::Relaxed) as f64 / secs,
        stats.fsyncs as f64 / secs,
        n.load(Ordering::Relaxed) as f64 / stats.fsyncs.max(1) as f64
    );
    println!("{} segments", stats.segments);
    Ok(())
}
