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
/// Name of the space reserve. It stays with the data directory after a crash, and after a
/// close on a nearly full disk; an open adopts it (see [`SpaceReserve::adopt`]).
pub(crate) const RESERVE_FILE: &str = "space-reserve.tmp";

/// The space reserve file: a segment's worth for a compaction output, and a quarter more for
/// tombstones (deletes, clears, drops) on a full disk.
pub(crate) struct SpaceReserve {
    fs: Arc<dyn FileSystem>,
    /// The data directory: the file lives there, and its free space decides.
    dir: PathBuf,
    segment_size: u64,
    /// Bytes the file holds; 0 = none.
    held: Mutex<u64>,
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
            held: Mutex::new(0),
        }
    }

    /// Bytes it holds.
    pub(crate) fn bytes(&self) -> u64 {
        *self.held.lock()
    }

    /// Whether it holds a compaction output's worth.
    pub(crate) fn held(&self) -> bool {
        *self.held.lock() >= self.segment_size
    }

    /// Bytes the full reserve holds.
    fn full_size(&self) -> u64 {
        self.segment_size + self.tombstone_allowance()
    }

    /// The part of the reserve that writes freeing space may take.
    pub(crate) fn tombstone_allowance(&self) -> u64 {
        self.segment_size / 4
    }

    fn path(&self) -> PathBuf {
        self.dir.join(RESERVE_FILE)
    }

    /// Takes over the reserve file a run before left (cut to the full size if it is larger):
    /// on a disk that filled, the space it holds is what lets compaction give space back
    /// after a restart. Deleted and made again at every open, it could not be made again on
    /// the full disk, and compaction then had no room for an output.
    pub(crate) fn adopt(&self) {
        let mut held = self.held.lock();
        let Ok(mut file) = self.fs.open(&self.path()) else {
            return;
        };
        // Its length, from a map (nothing is read).
        let len = file.map().map_or(0, |()| file.view().len() as u64);
        let full = self.full_size();
        *held = if len > full && file.set_len(full).is_ok() {
            full
        } else {
            len.min(full)
        };
    }

    /// Makes (or refills) the reserve when it fits in the directory's free space: it comes
    /// before data.
    pub(crate) fn ensure(&self) {
        let mut held = self.held.lock();
        let full = self.full_size();
        if *held >= full {
            return;
        }
        let Some(free) = self.fs.free_space(&self.dir) else {
            return;
        };
        if free < full - *held {
            return;
        }
        let path = self.path();
        let made = if *held == 0 {
            let _ = self.fs.remove(&path);
            self.fs.create(&path)
        } else {
            self.fs.open(&path)
        }
        .and_then(|f| {
            f.set_len(full)?;
            f.sync()
        });
        match made {
            Ok(()) => *held = full,
            Err(_) if *held == 0 => {
                let _ = self.fs.remove(&path);
            }
            Err(_) => {}
        }
    }

    /// Gives the whole reserve back to the file system (for a compaction output); false if
    /// there was none.
    pub(crate) fn release(&self) -> bool {
        let mut held = self.held.lock();
        if *held == 0 {
            return false;
        }
        *held = 0;
        self.fs.remove(&self.path()).is_ok()
    }

    /// At close: gives the reserve back where the disk has room for it and the next open's
    /// segment four times over (a closed store holds no space it does not need: the bench's
    /// disk use after a bulk load counted its 1.25 segments), and keeps it where not, or
    /// where the free space is unknown: on a full disk the next open could not make it
    /// again (the new active segment takes what freeing it gives), and compaction there
    /// would have no room for an output.
    pub(crate) fn release_if_roomy(&self) {
        let roomy = self
            .fs
            .free_space(&self.dir)
            .is_some_and(|free| free >= 4 * (self.full_size() + self.segment_size));
        if roomy {
            self.release();
        }
    }

    /// Gives the tombstone part back, keeping a compaction output's worth; false if it was
    /// already taken.
    pub(crate) fn release_tombstone_allowance(&self) -> bool {
        let mut held = self.held.lock();
        let keep = self.segment_size;
        if *held <= keep {
            return false;
        }
        let shrunk = self.fs.open(&self.path()).and_then(|f| f.set_len(keep));
        if shrunk.is_ok() {
            *held = keep;
        }
        shrunk.is_ok()
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
