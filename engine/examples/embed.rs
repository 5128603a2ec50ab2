//! Embedding `ttlcask-engine` in a program of your own, with no server: open a store, write
//! with TTLs and conditions, batch, read back, look at the stats, compact and verify.
//!
//! ```sh
//! cargo run -p ttlcask-engine --example embed -- /tmp/embed-data
//! ```

use std::error::Error;
use std::time::Duration;

use ttlcask_engine::{BatchOutcome, Condition, Durability, PutOptions, Store, WriteBatch};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = match std::env::args_os().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("ttlcask-embed-{}", std::process::id())),
    };
    println!("data dir: {}", dir.display());
    {
        // Every write is fsynced before it returns; concurrent writers share fsyncs.
        let store = Store::builder()
            .durability(Durability::Always)
            .compaction_interval(Some(Duration::from_secs(60)))
            .open(&dir)?;

        let sessions: &[u8] = b"app/sessions";
        let in_an_hour = store.now_ms() + 3_600_000;
        let v1 = store.put(
            sessions,
            b"user:42",
            b"{\"cart\":3}",
            PutOptions::expiring_at(in_an_hour),
        )?;

        // Compare-and-set on the version `put` returned.
        let v2 = store.put_if(
            sessions,
            b"user:42",
            b"{\"cart\":4}",
            PutOptions::expiring_at(in_an_hour),
            Condition::VersionIs(v1),
        )?;
        println!("cas from version {v1} -> {v2:?}");

        // A batch is one record on disk: all of it survives a crash, or none of it.
        let mut batch = WriteBatch::new();
        batch.put(b"app/counters", b"visits", b"0", PutOptions::default());
        batch.delete(sessions, b"user:7");
        for outcome in store.write_batch(batch)? {
            if let BatchOutcome::Stored { version } = outcome {
                println!("batch stored version {version}");
            }
        }
        let visits = store.increment(b"app/counters", b"visits", 1, PutOptions::default())?;
        println!("visits = {visits}");

        if let Some(item) = store.get(sessions, b"user:42")? {
            println!(
                "user:42 = {} (version {}, expires at {:?} ms)",
                String::from_utf8_lossy(&item.value),
                item.version,
                item.expires_at_ms
            );
        }
        for ns in store.namespaces(b"app/") {
            println!(
                "namespace {}: {} items, {} bytes",
                String::from_utf8_lossy(&ns.name),
                ns.items,
                ns.live_bytes
            );
        }
        let report = store.compact()?;
        let stats = store.stats();
        println!(
            "compaction reclaimed {} bytes; {} items, {} writes, {} fsyncs",
            report.bytes_reclaimed, stats.items, stats.writes, stats.fsyncs
        );
    } // the last handle closes the store: seal, write hints, release the lock

    // Read-only check of every CRC in the directory.
    let verified = ttlcask_engine::verify(&dir)?;
    println!(
        "verify: {} segments, {} records, clean = {}",
        verified.segments,
        verified.records,
        verified.is_clean()
    );
    if std::env::args_os().nth(1).is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
