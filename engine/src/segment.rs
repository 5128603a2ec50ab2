//! One segment file: a header and frames, appended through `pwrite` and read through a
//! memory map.
//!
//! The active segment is pre-allocated to its capacity and mapped whole, so that readers
//! see appended frames without remapping; sealing cuts the file to the bytes written.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::format::{self, DecodeError, EntryRef, SegmentHeader, SEGMENT_HEADER_LEN};

/// File name of segment `id`.
pub fn segment_file_name(id: u32) -> String {
    format!("{id:010}.seg")
}

/// File name of the hint file of segment `id`.
pub fn hint_file_name(id: u32) -> String {
    format!("{id:010}.hint")
}

/// Parses `0000000012.seg` into 12.
pub fn parse_file_name(name: &str, extension: &str) -> Option<u32> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    if stem.len() != 10 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// An open segment file and its map.
#[derive(Debug)]
pub struct Segment {
    /// Segment id.
    pub id: u32,
    /// Path of the file.
    pub path: PathBuf,
    /// The store's next version when the segment was created.
    pub base_version: u64,
    file: File,
    map: Mmap,
}

fn map_file(file: &File) -> io::Result<Mmap> {
    #[expect(
        unsafe_code,
        reason = "segment files are only written by this store (the lock file keeps others out), \
                  are appended past the bytes readers use, and are never shrunk below them"
    )]
    // SAFETY: see the reason above; readers only touch bytes of complete, checked frames.
    unsafe {
        Mmap::map(file)
    }
}

impl Segment {
    /// Creates a new segment file of `capacity` bytes with its header written.
    pub fn create(dir: &Path, id: u32, base_version: u64, capacity: u64) -> io::Result<Self> {
        let path = dir.join(segment_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        file.write_all_at(
            &format::encode_segment_header(&SegmentHeader { id, base_version }),
            0,
        )?;
        file.set_len(capacity)?;
        let map = map_file(&file)?;
        Ok(Self {
            id,
            path,
            base_version,
            file,
            map,
        })
    }

    /// Opens an existing segment file and checks its header.
    pub fn open(path: &Path) -> Result<Self, SegmentOpenError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(SegmentOpenError::Io)?;
        let len = file.metadata().map_err(SegmentOpenError::Io)?.len();
        if len < SEGMENT_HEADER_LEN as u64 {
            return Err(SegmentOpenError::Format(DecodeError::Truncated));
        }
        let map = map_file(&file).map_err(SegmentOpenError::Io)?;
        let header = format::decode_segment_header(&map).map_err(SegmentOpenError::Format)?;
        Ok(Self {
            id: header.id,
            path: path.to_path_buf(),
            base_version: header.base_version,
            file,
            map,
        })
    }

    /// The mapped bytes (the whole file as it was when mapped).
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Bytes the file can hold before it must be sealed.
    pub fn capacity(&self) -> u64 {
        self.map.len() as u64
    }

    /// Decodes and checks the entry at `offset`, `len` bytes long.
    pub fn entry(&self, offset: u32, len: u32) -> Result<EntryRef<'_>, DecodeError> {
        let start = offset as usize;
        let end = start
            .checked_add(len as usize)
            .ok_or(DecodeError::BadField)?;
        let bytes = self.map.get(start..end).ok_or(DecodeError::Truncated)?;
        format::decode_entry(bytes)
    }

    /// Writes `data` at `offset`.
    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    /// Makes written data durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Cuts the file to `len` bytes and makes that durable when `durable`.
    pub fn truncate(&self, len: u64, durable: bool) -> io::Result<()> {
        self.file.set_len(len)?;
        if durable {
            self.file.sync_all()?;
        }
        Ok(())
    }
}

/// Why a segment file could not be opened.
#[derive(Debug)]
pub enum SegmentOpenError {
    /// The OS refused.
    Io(io::Error),
    /// The header is not ours.
    Format(DecodeError),
}

/// Makes a directory entry change (create, rename, unlink) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{EntryMeta, Op};

    #[test]
    fn file_names_round_trip() {
        assert_eq!(parse_file_name(&segment_file_name(42), "seg"), Some(42));
        assert_eq!(parse_file_name(&hint_file_name(7), "hint"), Some(7));
        assert_eq!(parse_file_name("12.seg", "seg"), None);
        assert_eq!(parse_file_name("000000001x.seg", "seg"), None);
    }

    #[test]
    fn written_entries_are_readable_through_the_map() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let seg = Segment::create(dir.path(), 1, 5, 4096)?;
        let mut buf = Vec::new();
        let meta = EntryMeta {
            op: Op::Put,
            kind: 0,
            horizon: 1,
            version: 5,
            expires_ms: 0,
        };
        format::encode_entry(&mut buf, &meta, b"n", b"k", b"v");
        seg.write_at(&buf, SEGMENT_HEADER_LEN as u64)?;
        let e = seg
            .entry(SEGMENT_HEADER_LEN as u32, buf.len() as u32)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        assert_eq!(e.value, b"v");
        assert!(seg.entry(4090, 100).is_err());
        drop(seg);
        let reopened = Segment::open(&dir.path().join(segment_file_name(1)))
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        assert_eq!((reopened.id, reopened.base_version), (1, 5));
        Ok(())
    }
}
