//! How long a store of N keys takes to open, and what its files cost on disk:
//! `cargo run --release -p ttlcask-engine --example reopen -- [N] [DIR]`.
//!
//! Loads N items into DIR unless it holds a store already (24-byte keys, 150-byte values, one namespace) in batches (or single puts with
//! `TTLCASK_SINGLE_PUTS=1`), closes the store
//! (hints are written on close), then opens it five times and prints each open's time, the
//! recovery report's counts and the bytes of segments and hints ÷ the payload. `perf record`
//! on this example is how the reopen profile in ARCHITECTURE.md was taken.

use std::time::Instant;

use ttlcask_engine::{Durability, PutOptions, Store, WriteBatch};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let tmp;
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let open = || {
        Store::builder()
            .durability(Durability::Never)
            .compaction_interval(None)
            .open(&dir)
    };
    // `TTLCASK_SINGLE_PUTS=1`: load with one put per item (one frame each) instead.
    let single = std::env::var_os("TTLCASK_SINGLE_PUTS").is_some();
    let loaded = std::fs::read_dir(&dir)?
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "seg"));
    if !loaded {
        let store = open()?;
        let start = Instant::now();
        if single {
            for i in 0..n {
                store.put(b"bench", &key(i), &[i as u8; 150], PutOptions::default())?;
            }
        }
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000).filter(|_| !single) {
            let mut batch = WriteBatch::with_capacity(chunk.len(), chunk.len() * (5 + 24 + 150));
            for &i in chunk {
                batch.put(b"bench", &key(i), &[i as u8; 150], PutOptions::default());
            }
            store.write_batch(batch)?;
        }
        eprintln!("loaded {n} items in {:.2} s", start.elapsed().as_secs_f64());
    }
    let (mut segments, mut hints) = (0u64, 0u64);
    for e in std::fs::read_dir(&dir)?.flatten() {
        let len = e.metadata()?.len();
        match e.path().extension().and_then(|x| x.to_str()) {
            Some("seg") => segments += len,
            Some("hint") => hints += len,
            _ => {}
        }
    }
    let payload = n as f64 * (24.0 + 150.0);
    println!(
        "segments {:.3}× payload, hints {:.3}× payload",
        segments as f64 / payload,
        hints as f64 / payload
    );
    // `TTLCASK_COLD=1`: drop the files from the page cache before each open.
    let cold = std::env::var_os("TTLCASK_COLD").is_some();
    for round in 0..5 {
        if cold {
            evict(&dir)?;
        }
        let start = Instant::now();
        let store = open()?;
        let secs = start.elapsed().as_secs_f64();
        let r = store.recovery_report();
        println!(
            "open {round}: {:.3} s ({} segments from hints, {} scanned, {} records)",
            secs, r.segments_from_hints, r.segments_scanned, r.records
        );
        assert!(store.get(b"bench", &key(n / 2))?.is_some());
    }
    Ok(())
}

fn key(i: u64) -> [u8; 24] {
    let mut k = [b'k'; 24];
    k[..20].copy_from_slice(format!("{i:020}").as_bytes());
    k
}

/// Drops every file in `dir` from the page cache (synced first, so no page is dirty).
fn evict(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    for e in std::fs::read_dir(dir)?.flatten() {
        let f = std::fs::File::open(e.path())?;
        f.sync_all()?;
        // SAFETY: a plain system call on a descriptor that lives through it.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}
