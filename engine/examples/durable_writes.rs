//! Durable writes (`Durability::Always`) of 24-byte keys and 150-byte values from T threads
//! (default 1) for 3 s, as the bench rows "durable writes, 1 / 64 threads", for A/B runs:
//! `cargo run --release -p ttlcask-engine --example durable_writes -- [T]`.
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
    let store = Store::builder()
        .durability(Durability::Always)
        .compaction_interval(None)
        .open(dir.path())?;
    let n = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (store, n) = (&store, &n);
            s.spawn(move || {
                let mut i = 0u64;
                while start.elapsed() < Duration::from_secs(3) {
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
    Ok(())
}
