//! The raw limits of the disk under the data directory, measured in the same run as the
//! stores: sequential write bandwidth, and how many `pwrite` + `fdatasync` rounds one
//! writer gets per second (the ceiling of a store that does not share fsyncs).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Result;

/// Writes `bytes` to a new file in 1 MiB chunks, then `fdatasync`s it; returns bytes per
/// second over the whole (the sync included, so the figure is the disk's, not the cache's).
///
/// # Errors
/// An I/O error of the scratch file.
pub fn sequential_write(dir: &Path, bytes: u64) -> Result<f64> {
    let path = dir.join("seq.raw");
    let mut file = File::create(&path)?;
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let chunks = bytes.div_ceil(chunk.len() as u64);
    let start = Instant::now();
    for _ in 0..chunks {
        file.write_all(&chunk)?;
    }
    file.sync_data()?;
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok((chunks * chunk.len() as u64) as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// 200-byte `pwrite`s at increasing offsets of a file pre-sized with `set_len` (as ttlcask
/// pre-allocates its active segment), each followed by `fdatasync`, for `time`; returns
/// rounds per second.
///
/// # Errors
/// An I/O error of the scratch file.
pub fn fdatasync_rate(dir: &Path, time: Duration) -> Result<f64> {
    fdatasync_rounds(dir, time, false)
}

/// As [`fdatasync_rate`], but into blocks written and synced beforehand, so `fdatasync` has
/// no block allocation (metadata) to commit: the ceiling of a store that pre-writes its
/// segments instead of leaving them sparse.
///
/// # Errors
/// An I/O error of the scratch file.
pub fn fdatasync_rate_prewritten(dir: &Path, time: Duration) -> Result<f64> {
    fdatasync_rounds(dir, time, true)
}

fn fdatasync_rounds(dir: &Path, time: Duration, prewrite: bool) -> Result<f64> {
    let path = dir.join("sync.raw");
    let mut file = File::create(&path)?;
    if prewrite {
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            file.write_all(&zeros)?;
        }
    } else {
        file.set_len(64 << 20)?;
    }
    file.sync_all()?;
    let record = [0x5Au8; 200];
    let mut offset = 0u64;
    let mut rounds = 0u64;
    let start = Instant::now();
    while start.elapsed() < time && offset + 200 <= 64 << 20 {
        file.write_all_at(&record, offset)?;
        file.sync_data()?;
        offset += 200;
        rounds += 1;
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rounds as f64 / elapsed.as_secs_f64().max(1e-9))
}
