//! Atomic file replacement, the one helper for files a crash must never leave half-written
//! (write fences, HAProxy slot maps): write a temp file, fsync it, rename it over the
//! target, fsync the directory.
//!
//! The temp file's name is unique to the process and the call (`.<name>.<pid>.<n>.tmp`):
//! with one shared name, two writers of the same file (two `cluster move` runs) renamed each
//! other's temp file away and one failed with "No such file" (found from outside).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically: a reader sees the old file or the new one.
///
/// # Errors
/// A message naming the file.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        NEXT_TMP.fetch_add(1, Ordering::Relaxed)
    ));
    let io = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        // A unique name is never reused, so nothing else would clean it up.
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    // The rename is durable only once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    /// Eight threads replacing one file at once all succeed, and a reader sees one whole
    /// version (with a shared temp name, one rename took another's temp file away).
    #[test]
    fn concurrent_writers_of_one_file_all_succeed() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("write.map");
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || -> Result<(), String> {
                    for _ in 0..50 {
                        super::write(&path, &[t; 4096])?;
                    }
                    Ok(())
                })
            })
            .collect();
        for t in threads {
            t.join().map_err(|_| "writer panicked")??;
        }
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        assert!(bytes.len() == 4096 && bytes.iter().all(|&b| b == bytes[0]));
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["write.map"], "temp files left behind");
        Ok(())
    }
}
