//! Atomic file replacement, the one helper for files a crash must never leave half-written
//! (write fences, HAProxy slot maps): write a temp file, fsync it, rename it over the
//! target, fsync the directory.

use std::io::Write;
use std::path::Path;

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
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let io = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    // The rename is durable only once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}
