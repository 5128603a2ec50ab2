//! The files that keep room for later, each owning its file and a lock over what it holds,
//! and depending on nothing else of the store: the space reserve (room for a compaction
//! output, and for tombstones, on a full disk) and the spare segment (written ahead for the
//! next rollover of a durable store).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::format::SegmentHeader;
use crate::fs::FileSystem;
use crate::segment::Segment;

/// Name of the pre-written spare segment (a `.tmp`: recovery deletes a leftover one).
pub(crate) const SPARE_FILE: &str = "spare-segment.tmp";
/// Name of the space reserve's output part: a compaction output's worth. It stays with the
/// data directory after a crash, and after a close (empty on a roomy disk); an open adopts
/// it (see [`SpaceReserve::adopt`]).
pub(crate) const RESERVE_FILE: &str = "space-reserve.tmp";
/// Name of the space reserve's tombstone part: a file that becomes the segment of deletes,
/// clears and drops on a full disk, as it is (see [`SpaceReserve::take_tombstones`]).
pub(crate) const TOMBSTONE_RESERVE_FILE: &str = "tombstone-reserve.tmp";

/// The smallest growth of a reserve part tried after the file system refused a larger one
/// for space.
const RESERVE_STEP: u64 = 4096;

/// Whether `name` is a file of the space reserve: the store's to adopt, never a leftover.
pub(crate) fn is_reserve_file(name: &str) -> bool {
    name == RESERVE_FILE || name == TOMBSTONE_RESERVE_FILE
}

/// One file of the reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A segment's worth, given up for a compaction output.
    Output,
    /// A quarter segment (at least the smallest segment), taken whole as a segment by
    /// writes that free space.
    Tombstones,
}

impl Part {
    const ALL: [Self; 2] = [Self::Output, Self::Tombstones];

    fn file_name(self) -> &'static str {
        match self {
            Self::Output => RESERVE_FILE,
            Self::Tombstones => TOMBSTONE_RESERVE_FILE,
        }
    }
}

/// The space reserve: two files, each holding blocks and an inode that a full disk would
/// not give. A segment's worth for a compaction output (given back to the file system just
/// before the output is created), and a quarter segment that becomes the segment of deletes,
/// clears and drops (renamed into place: a file system out of inodes but not of bytes
/// refuses to create a file, so freeing bytes alone would not help). Each file stays when
/// its bytes are given back at a roomy close, so the next open has its inodes.
pub(crate) struct SpaceReserve {
    fs: Arc<dyn FileSystem>,
    /// The data directory: the files live there, and its free space decides.
    dir: PathBuf,
    segment_size: u64,
    /// Bytes each part holds ([`Part`] order); 0 = none (its file may be there, empty).
    held: Mutex<[u64; 2]>,
}

impl std::fmt::Debug for SpaceReserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceReserve")
            .field("held", &*self.held.lock())
            .finish_non_exhaustive()
    }
}

impl SpaceReserve {
    pub(crate) fn new(fs: Arc<dyn FileSystem>, dir: &Path, segment_size: u64) -> Self {
        Self {
            fs,
            dir: dir.to_path_buf(),
            segment_size,
            held: Mutex::new([0; 2]),
        }
    }

    /// Bytes it holds.
    pub(crate) fn bytes(&self) -> u64 {
        self.held.lock().iter().sum()
    }

    /// Bytes the output part holds (a compaction output may take them, whole or not).
    pub(crate) fn output_bytes(&self) -> u64 {
        self.held.lock()[Part::Output as usize]
    }

    /// Bytes the full part holds.
    fn size(&self, part: Part) -> u64 {
        match part {
            Part::Output => self.segment_size,
            Part::Tombstones => self.tombstone_allowance(),
        }
    }

    /// The part of the reserve that writes freeing space may take: a quarter segment, but
    /// never less than the smallest segment, which is what such a write asks for. With
    /// 8 KiB segments the quarter (2 KiB) had to grow when taken, on a disk with no room
    /// for that, and after a restart that left no active segment every delete was refused
    /// for good (found as a flaky CI run).
    fn tombstone_allowance(&self) -> u64 {
        (self.segment_size / 4).max(crate::options::MIN_SEGMENT_SIZE)
    }

    fn path(&self, part: Part) -> PathBuf {
        self.dir.join(part.file_name())
    }

    /// Takes over the reserve files a run before left (each cut to its full size if larger:
    /// a release before this one kept the whole reserve in one file of a segment and a
    /// quarter): on a disk that filled, the space they hold is what lets compaction give
    /// space back after a restart. Deleted and made again at every open, they could not be
    /// made again on the full disk, and compaction then had no room for an output.
    pub(crate) fn adopt(&self) {
        let mut held = self.held.lock();
        for part in Part::ALL {
            let Ok(mut file) = self.fs.open_own(&self.path(part)) else {
                continue;
            };
            // Its length, from a map (nothing is read).
            let len = file.map().map_or(0, |()| file.view().len() as u64);
            let full = self.size(part);
            held[part as usize] = if len > full && file.set_len(full).is_ok() {
                full
            } else {
                len.min(full)
            };
        }
    }

    /// Makes (or refills) each part from the directory's free space, the output part first:
    /// it comes before data. A part grows by what there is, up to its size: all or nothing,
    /// a reserve spent on a nearly full disk (a compaction output, the tombstones' segment,
    /// both lost to a crash before they were made again) was never made again once less
    /// than a part was free, new segments took each byte compaction gave back, and once the
    /// disk filled no compaction had room for an output and every delete was refused for
    /// good (found from outside: kill -9 cycles under writes and deletes on a full 32 MiB
    /// ext4). An existing file is grown, not made again: it holds an inode.
    pub(crate) fn ensure(&self) {
        let mut held = self.held.lock();
        for part in Part::ALL {
            let full = self.size(part);
            let had = held[part as usize];
            if had >= full {
                continue;
            }
            // Where the free space is unknown, nothing is made (a file system that cannot
            // tell is not one the store can fill with care).
            if self.fs.free_space(&self.dir).is_none() {
                return;
            }
            // What the file system takes, tried rather than read from `statvfs`: on ext4 a
            // process of root may write into the blocks kept for root, which `f_bavail`
            // leaves out, so the reserve saw no byte free where every new segment still
            // found room, and those took the last of the disk (found from outside: a full
            // 32 MiB ext4 under kill -9 cycles, the reserve at 0 for good). A grow refused
            // for space is tried again smaller.
            let mut target = full;
            let path = self.path(part);
            // A name the store cannot take as its own (a hard link: another name of a
            // file) is removed, which leaves the file to its other names, and made anew.
            // A symbolic link is not removed (`remove` refuses one): no reserve then.
            let made = self
                .fs
                .open_own(&path)
                .or_else(|_| self.fs.create(&path))
                .or_else(|_| {
                    self.fs.remove(&path)?;
                    self.fs.create(&path)
                })
                .and_then(|f| {
                    loop {
                        match f.set_len(target) {
                            Err(e)
                                if crate::fs::is_out_of_space(&e)
                                    && target - had > RESERVE_STEP =>
                            {
                                target = had + (target - had) / 2;
                            }
                            other => break other,
                        }
                    }?;
                    f.sync()
                });
            // A file left empty by a failure holds its inode for the next try.
            if made.is_ok() {
                held[part as usize] = target;
            }
            // The tombstone part only once the output part is whole.
            if held[part as usize] < full {
                return;
            }
        }
    }

    /// Makes the reserve where it is short ([`SpaceReserve::ensure`]), and says whether it
    /// still is for want of room: then what is optional (a hint) waits. False where the
    /// free space is unknown.
    pub(crate) fn short(&self) -> bool {
        self.ensure();
        let short = {
            let held = self.held.lock();
            Part::ALL.iter().any(|&p| held[p as usize] < self.size(p))
        };
        short && self.fs.free_space(&self.dir).is_some()
    }

    /// Gives the output part back to the file system, its file removed (for a compaction
    /// output: that frees its blocks and its inode); false if there was none.
    pub(crate) fn release(&self) -> bool {
        let mut held = self.held.lock();
        let had = std::mem::take(&mut held[Part::Output as usize]);
        self.fs.remove(&self.path(Part::Output)).is_ok() && had > 0
    }

    /// At close: gives the reserve's bytes back where the disk has room for it and the next
    /// open's segment four times over (a closed store holds no space it does not need: the
    /// bench's disk use after a bulk load counted its 1.25 segments), and keeps them where
    /// not, or where the free space is unknown: on a full disk the next open could not make
    /// them again (the new active segment takes what freeing them gives), and compaction
    /// there would have no room for an output. The files stay, empty: a file system whose
    /// inodes run out while the store is closed still lets the next open make the reserve.
    pub(crate) fn release_if_roomy(&self) {
        let full: u64 = Part::ALL.iter().map(|&p| self.size(p)).sum();
        let roomy = self
            .fs
            .free_space(&self.dir)
            .is_some_and(|free| free >= 4 * (full + self.segment_size));
        if !roomy {
            return;
        }
        let mut held = self.held.lock();
        for part in Part::ALL {
            if self
                .fs
                .open_own(&self.path(part))
                .and_then(|f| f.set_len(0))
                .is_ok()
            {
                held[part as usize] = 0;
            }
        }
    }

    /// The tombstone part as a new segment with `header`, for a write that frees space and
    /// found no room for a segment of `needed` bytes; `None` if there is no file to take or
    /// it cannot hold `needed` bytes. An empty file (given back at a roomy close) is grown
    /// first: on a file system out of inodes but not of bytes that works.
    pub(crate) fn take_tombstones(&self, header: SegmentHeader, needed: u64) -> Option<Segment> {
        let mut held = self.held.lock();
        let path = self.path(Part::Tombstones);
        if held[Part::Tombstones as usize] < needed {
            let size = self.tombstone_allowance().max(needed);
            let grown = self.fs.open_own(&path).and_then(|f| {
                f.set_len(size)?;
                f.sync()
            });
            grown.ok()?;
        }
        held[Part::Tombstones as usize] = 0;
        // Its blocks were reserved with `set_len`, or not at all where the file system
        // cannot: appends to it go through `pwrite`, never the map.
        Segment::adopt_file(self.fs.as_ref(), &self.dir, &path, header, false).ok()
    }
}

/// The spare segment: a file of the segment size, written ahead so that a rollover of a
/// durable store renames it instead of creating and filling one.
pub(crate) struct Spare {
    fs: Arc<dyn FileSystem>,
    /// The data directory: the spare lives there, and becomes a segment of it.
    dir: PathBuf,
    segment_size: u64,
    /// Whether the file is ready. Held while it is written and while it is adopted, so the
    /// two never overlap.
    ready: Mutex<bool>,
}

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spare")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl Spare {
    pub(crate) fn new(fs: Arc<dyn FileSystem>, dir: &Path, segment_size: u64) -> Self {
        Self {
            fs,
            dir: dir.to_path_buf(),
            segment_size,
            ready: Mutex::new(false),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(SPARE_FILE)
    }

    /// Whether a spare is ready; never waits (one being written is not).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.try_lock().is_some_and(|ready| *ready)
    }

    /// Writes the spare if none is ready, one is `wanted` and `free` holds two segments plus
    /// `also_needed`; removes a ready one once less than a segment is left beside it (the
    /// last free space is for data).
    pub(crate) fn prepare(
        &self,
        free: Option<u64>,
        wanted: bool,
        also_needed: u64,
        stopping: &dyn Fn() -> bool,
    ) {
        let segment = self.segment_size;
        let mut ready = self.ready.lock();
        if *ready {
            if free.is_some_and(|f| f < segment) {
                *ready = false;
                let _ = self.fs.remove(&self.path());
            }
            return;
        }
        if free.is_some_and(|f| f < 2 * segment + also_needed) || !wanted {
            return;
        }
        *ready = Segment::prepare_spare(self.fs.as_ref(), &self.path(), segment, stopping).is_ok();
        if !*ready {
            // Never keep a partial spare: it would hold the space it could not fill.
            let _ = self.fs.remove(&self.path());
        }
    }

    /// Removes the spare, ready or not (the store is closing: a closed store holds no space
    /// it does not need).
    pub(crate) fn release(&self) {
        let mut ready = self.ready.lock();
        *ready = false;
        let _ = self.fs.remove(&self.path());
    }

    /// The spare as a new segment with `header`, if one is ready and not being written
    /// right now.
    pub(crate) fn adopt(&self, header: SegmentHeader) -> Option<Segment> {
        let mut ready = self.ready.try_lock()?;
        if !*ready {
            return None;
        }
        *ready = false;
        Segment::adopt_spare(self.fs.as_ref(), &self.dir, &self.path(), header).ok()
    }
}
