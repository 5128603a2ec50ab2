//! Atomic file replacement, the one helper for files a crash or a failure must never leave
//! half-written (write fences, HAProxy slot maps, `export -o`): write a temp file in the same
//! directory, fsync it, rename it over the target, fsync the directory.
//!
//! The temp file's name is unique to the process and the call (`.<name>.<pid>.<n>.tmp`,
//! created new): with one shared name, two writers of the same file (two `cluster move`
//! runs) renamed each other's temp file away and one failed with "No such file" (found from
//! outside). A failed write removes its temp file (a unique name is never reused, so
//! nothing else would).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically: a reader sees the old file or the new one.
///
/// # Errors
/// The I/O error, its kind kept (a full disk is answered 507 by the admin API) and its
/// message naming the file.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(
        path,
        |out| out.write_all(bytes).map_err(|e| with_path(path, &e)),
        |p, e| with_path(p, &e),
    )
}

/// Replaces `path` with what `fill` writes, streamed (an export may be larger than memory):
/// into a temp file of its own, fsynced and renamed over `path` only if `fill` succeeds. On
/// any failure the temp file is removed and `path` is left as it was. An existing file keeps
/// its permissions.
///
/// # Errors
/// `fill`'s error, or a message naming the file.
pub fn write_streamed<T>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<T, String>,
) -> Result<T, String> {
    replace(path, fill, |p, e| with_path(p, &e).to_string())
}

/// `e` with a message that names `path`, its kind kept.
fn with_path(path: &Path, e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
}

/// [`write_streamed`] for any error type: `io` turns an I/O error on `path` into one.
fn replace<T, E>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<T, E>,
    io: impl Fn(&Path, std::io::Error) -> E,
) -> Result<T, E> {
    let unique = format!(
        "{}.{}.tmp",
        std::process::id(),
        NEXT_TMP.fetch_add(1, Ordering::Relaxed)
    );
    let tmp = sibling(path, &unique).map_err(|e| {
        io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        )
    })?;
    let file = std::fs::File::create_new(&tmp).map_err(|e| {
        io(
            path,
            std::io::Error::new(e.kind(), format!("cannot create {}: {e}", tmp.display())),
        )
    })?;
    let done = (|| {
        if let Ok(old) = std::fs::metadata(path) {
            file.set_permissions(old.permissions())
                .map_err(|e| io(path, e))?;
        }
        let mut out = std::io::BufWriter::new(file);
        let t = fill(&mut out)?;
        let file = out.into_inner().map_err(|e| io(path, e.into_error()))?;
        commit(path, &tmp, file).map_err(|e| io(path, e))?;
        Ok(t)
    })();
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// `.NAME.SUFFIX` beside `path`.
fn sibling(path: &Path, suffix: &str) -> Result<PathBuf, String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    Ok(dir_of(path).join(format!(".{}.{suffix}", name.to_string_lossy())))
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Fsyncs `file` (written at `tmp`), renames it over `path` and fsyncs the directory.
fn commit(path: &Path, tmp: &Path, file: std::fs::File) -> std::io::Result<()> {
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)?;
    // The rename is durable only once the directory is.
    std::fs::File::open(dir_of(path)).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_streamed_write_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("backup.jsonl");
        std::fs::write(&path, b"precious").expect("write");
        let failed: Result<(), String> = write_streamed(&path, |out| {
            out.write_all(b"half").map_err(|e| e.to_string())?;
            Err("the server went away".into())
        });
        assert_eq!(failed, Err("the server went away".into()));
        assert_eq!(std::fs::read(&path).expect("read"), b"precious");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["backup.jsonl"], "no temp file left");

        write_streamed(&path, |out| {
            out.write_all(b"new").map_err(|e| e.to_string())
        })
        .expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
    }

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
                        super::write(&path, &[t; 4096]).map_err(|e| e.to_string())?;
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
