//! What the data dir takes on disk and what its file system has left, for the status page
//! and `/metrics`. Read when asked (a directory listing and one `statvfs`), never cached.

use std::fmt::Write as _;
use std::path::Path;

use ttlcask_engine::{FileSystem, RealFs};

/// The data dir's files and the free space beside them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUse {
    /// Regular files directly in the data dir (segments, hints, lock, token, …).
    pub files: u64,
    /// Bytes those files hold (their lengths).
    pub bytes: u64,
    /// Bytes the file system allocated for them: what they take from free space (segments
    /// are allocated whole before they fill).
    pub allocated: u64,
    /// Bytes free for new data on the file system (`statvfs`), if it can tell.
    pub free: Option<u64>,
}

impl DiskUse {
    /// Lists `dir`.
    ///
    /// # Errors
    /// When `dir` cannot be listed.
    pub fn of(dir: &Path) -> std::io::Result<Self> {
        let mut out = Self {
            free: RealFs.free_space(dir),
            ..Self::default()
        };
        for entry in std::fs::read_dir(dir)? {
            // A file removed meanwhile (compaction, a hint replaced) is simply not counted.
            let Ok(meta) = entry.and_then(|e| e.metadata()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            out.files += 1;
            out.bytes += meta.len();
            out.allocated += allocated(&meta);
        }
        Ok(out)
    }

    /// `ttlcask_data_dir_*` gauges in the Prometheus text format.
    pub fn write_prometheus(&self, o: &mut String) {
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "ttlcask_data_dir_files",
            "Files in the data dir.",
            self.files,
        );
        gauge(
            "ttlcask_data_dir_bytes",
            "Bytes the data dir's files take on disk (allocated).",
            self.allocated,
        );
        if let Some(free) = self.free {
            gauge(
                "ttlcask_data_dir_free_bytes",
                "Bytes free for new data on the data dir's file system.",
                free,
            );
        }
    }
}

#[cfg(unix)]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks().saturating_mul(512)
}

#[cfg(not(unix))]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_files_of_a_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), vec![1u8; 10_000]).expect("write");
        std::fs::write(dir.path().join("b"), b"xy").expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let u = DiskUse::of(dir.path()).expect("list");
        assert_eq!((u.files, u.bytes), (2, 10_002));
        assert!(u.free.is_some_and(|f| f > 0));
        let mut text = String::new();
        u.write_prometheus(&mut text);
        assert!(text.contains("ttlcask_data_dir_files 2\n"), "{text}");
        assert!(text.contains("# TYPE ttlcask_data_dir_free_bytes gauge"));
        assert!(DiskUse::of(&dir.path().join("missing")).is_err());
    }
}
