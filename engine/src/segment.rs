//! One segment file: a header and frames, appended with `write_at` and read through a
//! view (a memory map for real files).
//!
//! The active segment is pre-allocated to its capacity and mapped whole, so that readers
//! see appended frames without remapping; sealing cuts the file to the bytes written.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::{self, DecodeError, EntryRef, SegmentHeader};
use crate::fs::{FileSystem, StorageFile, View};

/// File name of segment `id`.
pub fn segment_file_name(id: u32) -> String {
    format!("{id:010}.seg")
}

/// File name of the hint file of segment `id`.
pub fn hint_file_name(id: u32) -> String {
    format!("{id:010}.hint")
}

/// Extension of a damaged segment that compaction moved aside as evidence (after copying
/// its intact records out): `0000000012.damaged`.
pub const EVIDENCE_EXTENSION: &str = "damaged";

/// File name of the evidence file of segment `id`.
pub fn evidence_file_name(id: u32) -> String {
    format!("{id:010}.{EVIDENCE_EXTENSION}")
}

/// File name of the hint of segment `id` kept beside its evidence file: what the segment
/// held, so that an open after compaction still knows which of its keys were lost where its
/// own bytes cannot say (zeros over its end).
pub fn evidence_hint_file_name(id: u32) -> String {
    format!("{id:010}.{EVIDENCE_EXTENSION}-hint")
}

/// Extension of the marker an open leaves for a sealed segment it found missing (lost
/// outside the store, with no hint naming its records): `0000000012.missing`. The seal log
/// entry that told of it is dropped at that open, so the marker is what reports the loss at
/// every later open and in `verify`, until the operator removes it.
pub const MISSING_EXTENSION: &str = "missing";

/// File name of the missing marker of segment `id`.
pub fn missing_file_name(id: u32) -> String {
    format!("{id:010}.{MISSING_EXTENSION}")
}

/// Parses `0000000012.seg` into 12.
pub fn parse_file_name(name: &str, extension: &str) -> Option<u32> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    if stem.len() != 10 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse()
        .ok()
        .filter(|&id| id < crate::format::SEGMENT_ID_LIMIT)
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
    /// The decoded header (format version, salt).
    pub header: SegmentHeader,
    file: Box<dyn StorageFile>,
    capacity: u64,
    /// Until when (monotonic ms, see [`monotonic_ms`]) the whole segment is taken to be in
    /// memory, from the background residency check.
    resident_until: AtomicU64,
    /// Sealed by this store (appends ended): from then on the store may delete the file
    /// itself (compaction), so its being unlinked is no loss ([`Segment::check_linked`]).
    sealed: std::sync::atomic::AtomicBool,
}

/// Cache lines of an entry [`Segment::prefetch`] asks for: a 24-byte key and a 150-byte
/// value with their header take three.
const PREFETCH_LINES: u32 = 4;

/// Milliseconds since this process first asked.
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    u64::try_from(
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// Bytes of zeros a spare segment is written with at a time. The page cache keeps the file
/// in folios of the writes' size, and an fsync's writeback walks each dirty folio's blocks:
/// 64 durable writers made about 6% more writes a second into a spare written 64 KiB at a
/// time than 1 MiB at a time (119k/s against 112k/s, seven runs each), and 12% fewer
/// with 2 MiB.
const SPARE_CHUNK: usize = 64 << 10;

impl Segment {
    /// Creates a new segment file of `capacity` bytes with its header written (and synced
    /// with its length when `durable`, so that a segment never exists without its header).
    pub fn create(
        fs: &dyn FileSystem,
        dir: &Path,
        header: SegmentHeader,
        capacity: u64,
        durable: bool,
    ) -> io::Result<Self> {
        let path = dir.join(segment_file_name(header.id));
        let mut file = fs.create(&path)?;
        // The pre-allocated length is synced with the header: recovery tells a segment that
        // was being appended to (zeros at its end) from a sealed one by it.
        let made = (|| {
            file.write_at(&format::encode_segment_header(&header), 0)?;
            file.set_len(capacity)?;
            if durable {
                file.sync()?;
            }
            file.map()
        })();
        if let Err(e) = made {
            // Nothing is under the segment's name unless it was made whole: a full disk
            // must not leave a sparse file behind.
            drop(file);
            let _ = fs.remove(&path);
            return Err(e);
        }
        file.advise_appending(true);
        Ok(Self {
            id: header.id,
            path,
            base_version: header.base_version,
            header,
            file,
            capacity,
            resident_until: AtomicU64::new(0),
            sealed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A segment with no file and no room (see `fs::NoFile`): every append rolls over.
    pub fn detached(dir: &Path, header: SegmentHeader) -> Self {
        Self {
            id: header.id,
            path: dir.join(segment_file_name(header.id)),
            base_version: header.base_version,
            header,
            file: Box::new(crate::fs::NoFile),
            capacity: 0,
            resident_until: AtomicU64::new(0),
            sealed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Writes a spare segment file of `capacity` zero bytes at `path` and syncs it. Appends
    /// into blocks that were written before cost a cheaper fdatasync than appends into
    /// reserved-but-unwritten ones (no extent conversion to journal), so segments are
    /// prepared this way ahead of need. Gives up (`Interrupted`) between chunks once
    /// `stopping` says so, leaving the file to its caller to remove.
    pub fn prepare_spare(
        fs: &dyn FileSystem,
        path: &Path,
        capacity: u64,
        stopping: &dyn Fn() -> bool,
    ) -> io::Result<()> {
        let _ = fs.remove(path);
        let file = fs.create(path)?;
        let zeros = vec![0u8; SPARE_CHUNK];
        let mut at = 0;
        while at < capacity {
            if stopping() {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = (capacity - at).min(zeros.len() as u64) as usize;
            file.write_at(&zeros[..n], at)?;
            at += n as u64;
        }
        file.sync()
    }

    /// Turns the spare at `spare` into segment `id`: header written and synced, renamed to
    /// its name. The caller syncs the directory.
    pub fn adopt_spare(
        fs: &dyn FileSystem,
        dir: &Path,
        spare: &Path,
        header: SegmentHeader,
    ) -> io::Result<Self> {
        Self::adopt_file(fs, dir, spare, header, true)
    }

    /// Turns the file at `from` (zeros, or blocks reserved for zeros) into segment `id` as
    /// [`Segment::adopt_spare`] does. `written`: its bytes were written whole beforehand,
    /// so appends may go through the map; otherwise they take `pwrite` (a file whose blocks
    /// may not be reserved must never be written through a map: SIGBUS on a full disk).
    pub fn adopt_file(
        fs: &dyn FileSystem,
        dir: &Path,
        from: &Path,
        header: SegmentHeader,
        written: bool,
    ) -> io::Result<Self> {
        let (id, base_version) = (header.id, header.base_version);
        // Never through a link: the store writes the file and renames it into a segment.
        let mut file = fs.open_own(from)?;
        file.write_at(&format::encode_segment_header(&header), 0)?;
        file.sync()?;
        file.map()?;
        file.advise_appending(true);
        let capacity = file.view().len() as u64;
        if written {
            file.mark_allocated(capacity);
        }
        // Last, so that a failure leaves nothing under the segment's name.
        let path = dir.join(segment_file_name(id));
        fs.rename(from, &path)?;
        Ok(Self {
            id,
            path,
            base_version,
            header,
            file,
            capacity,
            resident_until: AtomicU64::new(0),
            sealed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Opens an existing segment file and checks its header. `writable`: by a store that
    /// may change its files, which fills holes in the file first; else the file is opened
    /// for reading only ([`FileSystem::open_read_only`]) and, with holes, read into memory:
    /// see [`StorageFile::map_found`].
    pub fn open(
        fs: &dyn FileSystem,
        path: &Path,
        writable: bool,
    ) -> Result<Self, SegmentOpenError> {
        let file = Self::open_file(fs, path, writable).map_err(SegmentOpenError::Io)?;
        let header = {
            let view = file.view();
            format::decode_segment_header(&view).map_err(SegmentOpenError::Format)?
        };
        Ok(Self::with_header(file, path, header))
    }

    /// Opens a segment with a `header` known already, not read from the file: one that fails
    /// its checks, rebuilt by recovery (see `recovery::rebuild_header`), or one read before
    /// (a segment recovery cut and opens again); `writable` as for [`Segment::open`].
    pub(crate) fn open_rebuilt(
        fs: &dyn FileSystem,
        path: &Path,
        header: SegmentHeader,
        writable: bool,
    ) -> io::Result<Self> {
        let file = Self::open_file(fs, path, writable)?;
        Ok(Self::with_header(file, path, header))
    }

    fn open_file(
        fs: &dyn FileSystem,
        path: &Path,
        writable: bool,
    ) -> io::Result<Box<dyn StorageFile>> {
        let mut file = if writable {
            fs.open(path)?
        } else {
            fs.open_read_only(path)?
        };
        file.map_found(writable)?;
        Ok(file)
    }

    fn with_header(file: Box<dyn StorageFile>, path: &Path, header: SegmentHeader) -> Self {
        let len = file.view().len() as u64;
        Self {
            id: header.id,
            path: path.to_path_buf(),
            base_version: header.base_version,
            header,
            file,
            capacity: len,
            resident_until: AtomicU64::new(0),
            sealed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Says whether the segment is being appended to (created or adopted as a spare: yes;
    /// sealed: no). While it is, its map asks for no read-ahead of its own (`MADV_RANDOM`)
    /// and the appends ask for the pages a step ahead of them instead (`MADV_WILLNEED`, see
    /// `fs::READ_AHEAD_STEP`): small appends copy into the map, and the kernel took their
    /// faults for a sequential read, so that one fault zero-filled megabytes of the
    /// pre-allocated space ahead of it. Single puts into a 64 MiB segment waited 18-27 ms
    /// at two places in every segment that way (`engine/examples/put_latency.rs`). Sealed,
    /// the map gets the default read-ahead back for the sequential scans of compaction and
    /// hint writing.
    pub fn set_appending(&self, appending: bool) {
        self.file.advise_appending(appending);
        if !appending {
            // Before any deletion of it: compaction and expired-segment removal take only
            // sealed segments.
            self.sealed
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Whether a page of the file could not be read (an I/O error) and reads as zeros: its
    /// damage may be the disk's passing failure, not the file's, so it is never judged for
    /// good (cut, moved aside, its records marked lost) from this opening.
    pub(crate) fn unreadable(&self) -> bool {
        self.file.unreadable()
    }

    /// The file's bytes.
    pub fn bytes(&self) -> View<'_> {
        self.file.view()
    }

    /// Where the first frame starts.
    pub fn data_start(&self) -> u64 {
        self.header.data_start() as u64
    }

    /// Bytes the file can hold before it must be sealed.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Whether the file has no name left (deleted under the store), sealed or not.
    pub(crate) fn is_unlinked(&self) -> bool {
        self.file.is_unlinked()
    }

    /// The length the header of the entry at `offset` gives, if it can be read.
    pub(crate) fn entry_len(&self, offset: u32) -> Option<usize> {
        let head = self
            .file
            .view_range(offset as usize, 64)
            .or_else(|| self.file.view_range(offset as usize, 40))?;
        format::entry_len_at(&head, self.header.entry_layout)
    }

    /// Decodes and checks the entry at `offset`, `len` bytes long, and hands it to `f`. A
    /// `len` of [`crate::keydir::HUGE_LEN`] or more means "as long as its header says" (a
    /// record too long for the index's length field, written by an older release).
    pub fn with_entry<R>(
        &self,
        offset: u32,
        len: u32,
        f: impl FnOnce(EntryRef<'_>) -> R,
    ) -> Result<R, DecodeError> {
        let len = if len >= crate::keydir::HUGE_LEN {
            let len = self.entry_len(offset).ok_or(DecodeError::Truncated)?;
            u32::try_from(len).map_err(|_| DecodeError::BadField)?
        } else {
            len
        };
        let bytes = self
            .file
            .view_range(offset as usize, len as usize)
            .ok_or(DecodeError::Truncated)?;
        Ok(f(format::decode_entry(
            &bytes,
            self.header.entry_layout,
            self.id,
        )?))
    }

    /// Starts loading the first lines of the entry at `offset` (of `len` bytes) into the
    /// cache, for a read soon. A hint: it reads nothing and never faults.
    pub fn prefetch(&self, offset: u32, len: u32) {
        if let Some(View::Slice(bytes)) = self.file.view_range(offset as usize, 1) {
            let at = bytes.as_ptr() as usize;
            for line in (0..len.min(PREFETCH_LINES * 64) as usize).step_by(64) {
                crate::keydir::prefetch(at + line);
            }
        }
    }

    /// Whether reading the entry at `offset` would not wait for the disk: true while the
    /// last background check found the whole segment in memory, else asked of the kernel
    /// (a system call, about a microsecond on a VM).
    pub fn is_resident(&self, offset: u32, len: u32) -> bool {
        monotonic_ms() < self.resident_until.load(Ordering::Relaxed)
            || self.file.is_resident(offset as usize, len as usize)
    }

    /// Checks whether the first `data_len` bytes are all in memory and, if so, lets reads
    /// trust that for `valid_ms`. Pages evicted in that window may make a read wait.
    pub fn check_residency(&self, data_len: u64, valid_ms: u64) {
        let resident = self
            .file
            .is_resident(0, usize::try_from(data_len).unwrap_or(usize::MAX));
        let until = if resident {
            monotonic_ms() + valid_ms
        } else {
            0
        };
        self.resident_until.store(until, Ordering::Relaxed);
    }

    /// Writes `data` at `offset`.
    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_at(data, offset)
    }

    /// Writes `data` at `offset` with a system call (see
    /// [`StorageFile::write_at_unmapped`](crate::fs::StorageFile::write_at_unmapped)).
    pub fn write_at_unmapped(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_at_unmapped(data, offset)
    }

    /// Makes written data durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync()
    }

    /// An error when the file was removed from its directory while the store ran (an
    /// operator's `rm`, a cleanup job): what it holds, and every write appended to it, is
    /// gone at the next restart. Writes went on being acknowledged into a deleted active
    /// segment, and were lost at the restart (found from outside).
    ///
    /// Only while it is appended to: once sealed, the store may delete it itself (a
    /// compaction that ran while a sync of it was in flight), and the link count is read
    /// before the seal, which comes before any such deletion.
    pub fn check_linked(&self) -> io::Result<()> {
        if self.file.is_unlinked() && !self.sealed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(io::Error::other(format!(
                "the segment file {} was deleted while the store ran: what it holds is lost at the next restart, so no write is acknowledged any more (restore the file from a copy, or restart to go on without it)",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Cuts the file to `len` bytes and makes that durable when `durable`.
    pub fn truncate(&self, len: u64, durable: bool) -> io::Result<()> {
        self.file.set_len(len)?;
        if durable {
            self.file.sync()?;
        }
        Ok(())
    }
}

/// Why a segment file could not be opened.
#[derive(Debug)]
pub enum SegmentOpenError {
    /// The OS refused.
    Io(io::Error),
    /// The header is not ours, fails its checks, or is blank (never written or synced).
    Format(DecodeError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SEGMENT_HEADER_LEN;
    use crate::format::{EntryMeta, Op};
    use crate::fs::RealFs;

    fn header(id: u32, base_version: u64) -> SegmentHeader {
        SegmentHeader {
            id,
            base_version,
            format: format::FORMAT_VERSION,
            salt: 0x5a17,
            entry_layout: format::WRITE_LAYOUT,
        }
    }

    #[test]
    fn a_spare_being_written_stops_between_chunks_when_asked() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spare = dir.path().join("spare.tmp");
        let asked = std::cell::Cell::new(0);
        let stopping = || {
            asked.set(asked.get() + 1);
            asked.get() > 2
        };
        let r = Segment::prepare_spare(&RealFs, &spare, 64 << 20, &stopping);
        assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::Interrupted));
        // Two chunks written, then it stopped.
        assert_eq!(std::fs::metadata(&spare)?.len(), 2 * SPARE_CHUNK as u64);
        Ok(())
    }

    #[test]
    fn a_spare_becomes_a_segment_under_its_name() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spare = dir.path().join("spare.tmp");
        Segment::prepare_spare(&RealFs, &spare, 8192, &|| false)?;
        assert_eq!(std::fs::metadata(&spare)?.len(), 8192);
        let seg = Segment::adopt_spare(&RealFs, dir.path(), &spare, header(7, 42))?;
        assert!(!spare.exists(), "renamed");
        assert_eq!((seg.id, seg.base_version, seg.capacity()), (7, 42, 8192));
        let mut buf = Vec::new();
        let meta = EntryMeta {
            op: Op::Put,
            kind: 0,
            horizon: 7,
            version: 42,
            expires_ms: 0,
        };
        format::encode_entry_as(
            &mut buf,
            &meta,
            format::NsForm::Inline,
            7,
            b"n",
            b"k",
            b"spare",
        );
        seg.write_at(&buf, SEGMENT_HEADER_LEN as u64)?;
        drop(seg);
        let reopened = Segment::open(&RealFs, &dir.path().join(segment_file_name(7)), true)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        let value = reopened
            .with_entry(SEGMENT_HEADER_LEN as u32, buf.len() as u32, |e| {
                e.value.to_vec()
            })
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        assert_eq!(value, b"spare");
        Ok(())
    }

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
        let seg = Segment::create(&RealFs, dir.path(), header(1, 5), 4096, true)?;
        let mut buf = Vec::new();
        let meta = EntryMeta {
            op: Op::Put,
            kind: 0,
            horizon: 1,
            version: 5,
            expires_ms: 0,
        };
        format::encode_entry_as(&mut buf, &meta, format::NsForm::Inline, 1, b"n", b"k", b"v");
        seg.write_at(&buf, SEGMENT_HEADER_LEN as u64)?;
        let value = seg
            .with_entry(SEGMENT_HEADER_LEN as u32, buf.len() as u32, |e| {
                e.value.to_vec()
            })
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        assert_eq!(value, b"v");
        // The index's marker for a record too long for its length field: the record's
        // header gives the length.
        let by_header = seg
            .with_entry(SEGMENT_HEADER_LEN as u32, crate::keydir::HUGE_LEN, |e| {
                (e.value.to_vec(), e.len)
            })
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        assert_eq!(by_header, (b"v".to_vec(), buf.len()));
        assert!(seg.with_entry(4090, 100, |_| ()).is_err());
        drop(seg);
        let reopened = Segment::open(&RealFs, &dir.path().join(segment_file_name(1)), true)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        assert_eq!((reopened.id, reopened.base_version), (1, 5));
        Ok(())
    }
}
