//! Rolling over: starting the next active segment (from a spare, or a new file), sealing
//! the one before it (its seal frame, the seal log, its unused tail cut) and trimming sealed
//! segments at close.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::WriteError;
use crate::format::{self, SEGMENT_HEADER_LEN};
use crate::index::SegmentSlot;
use crate::segment::Segment;
use crate::signals::Refused;
use crate::store::Inner;

use super::{Trim, Writer};

/// How long a store that found no space waits before trying to start a segment again, where
/// the file system cannot say how much is free.
const OUT_OF_SPACE_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

impl Inner {
    /// Starts a new segment big enough for `needed` bytes, then seals the active one and
    /// switches to it. Out of space, nothing changes: the active segment keeps taking what
    /// fits (its reserve is for writes that free space), and the write gets
    /// [`WriteError::DiskFull`] without poisoning the store; so does a directory that
    /// refuses new files, with [`WriteError::DirNotWritable`].
    pub(super) fn roll_over(
        &self,
        w: &mut Writer,
        needed: u64,
        frees: bool,
    ) -> Result<(), WriteError> {
        self.check_dir()?;
        // Everything that opens a file comes before anything changes, the directory sync
        // below too (`FileSystem::dir_syncer`).
        let dir_sync = if self.durable() {
            match self.fs.dir_syncer(&self.dir) {
                Ok(sync) => Some(sync),
                Err(e) => return Err(self.segment_refused(e)),
            }
        } else {
            None
        };
        let (seg, from_reserve) = match self.start_segment(w, needed, frees) {
            Ok(started) => started,
            Err(e) if crate::fs::is_out_of_space(&e) => {
                self.health.set_disk_full(true);
                // Dead records only become free space through compaction: ask for one now
                // (at most once a second), for a refused write as for a refused delete. A
                // run started by the first deletes of a burst frees little; the writes
                // refused after the rest went through waited for the 30 s run (found from
                // outside).
                self.want_space();
                return Err(WriteError::DiskFull(e.to_string()));
            }
            Err(e) => return Err(self.segment_refused(e)),
        };
        w.out_of_space_at = None;
        // The tombstone part of the reserve is no sign the disk has room (writes other than
        // deletes are still refused): the flag stays, and a compaction is asked for.
        // Cleared by such a rollover, the flag said 0 with no byte free, and deletes taken
        // after it no longer asked for one: the space came back at the 30 s run (found
        // from outside).
        self.health.set_disk_full(from_reserve);
        if from_reserve {
            self.want_space();
        }
        self.health.set_segment_refused(None);
        let seg = Arc::new(seg);
        self.seal_active(w).map_err(|e| self.fail(e))?;
        let id = seg.id;
        if let Some(sync) = dir_sync {
            sync().map_err(|e| self.fail(e))?;
            // Its name and header are durable: from here the seal log knows it is the one
            // appended to, and a crash that leaves it missing is damage, not a clean open.
            // (An append of its own, not one write with the seal entry above: the log takes
            // only its last entry failing its check for a torn append, and a torn write of
            // two entries can garble the first; the crash-point enumeration showed it.)
            self.seals.append_started(id, &self.health);
        }
        self.state
            .write()
            .segments
            .insert(id, SegmentSlot::new(seg.clone(), SEGMENT_HEADER_LEN as u64));
        w.active = seg;
        w.write_pos = SEGMENT_HEADER_LEN as u64;
        w.rolled_over = true;
        w.space_refused = false;
        // The background thread writes the next spare now rather than at its next tick.
        self.shutdown.nudge();
        Ok(())
    }

    /// Poisons the store when its data directory's name now names another directory
    /// (moved, or moved and replaced: `mv data data.old; mkdir data`). Its open files go on
    /// in the directory it locked, but new segments and hints are made by name: they went
    /// into the new directory, which holds no lock, and a second server started there
    /// (found from outside). Checked before every new segment and once a second by the
    /// background thread.
    pub(crate) fn check_dir(&self) -> Result<(), WriteError> {
        let Some(opened) = self.dir_identity else {
            return Ok(());
        };
        if self.fs.dir_identity(&self.dir) == Some(opened) {
            return Ok(());
        }
        Err(self.fail(std::io::Error::other(format!(
            "the data directory {} was moved or replaced while the store ran (the name no longer leads to the directory it locked): restart on the right directory",
            self.dir.display()
        ))))
    }

    /// Poisons the store when its active segment was deleted under it (see
    /// [`Segment::check_linked`]; a sync checks it too, before its writes are acknowledged).
    /// Once a second, by the background thread; a writer holding the lock meanwhile puts it
    /// off to the next tick.
    pub(crate) fn check_active_linked(&self) {
        let Some(w) = self.writer.try_lock() else {
            return;
        };
        let active = w.active.clone();
        drop(w);
        if let Err(e) = active.check_linked() {
            if !self.health.is_poisoned() {
                let _ = self.fail(e);
            }
        }
    }

    /// Marks sealed segments whose files were deleted under the store (an operator's `rm`
    /// of old segments, `rm data/*`) and asks for a compaction now: their open files still
    /// hold the records, which it copies into new segments, so that nothing acknowledged is
    /// lost at the next restart (a deleted sealed segment's live keys were, and the open
    /// reported them missing). Once a second, by the background thread. The store deletes
    /// a segment's files only once it is out of the index, so none of its own is seen here.
    pub(crate) fn check_sealed_linked(&self) {
        let sealed: Vec<(u32, Arc<Segment>)> = {
            let st = self.state.read();
            st.segments
                .iter()
                .filter(|(_, s)| s.sealed && !s.unlinked)
                .map(|(&id, s)| (id, s.segment.clone()))
                .collect()
        };
        let gone: Vec<u32> = sealed
            .into_iter()
            .filter(|(_, seg)| seg.is_unlinked())
            .map(|(id, _)| id)
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut st = self.state.write();
        for id in gone {
            if let Some(slot) = st.segments.get_mut(&id) {
                slot.unlinked = true;
            }
        }
        drop(st);
        self.space_wanted.store(true, Ordering::Relaxed);
        self.shutdown.nudge();
    }

    /// The error of a rollover that changed nothing: nothing was written (`Segment::create`
    /// leaves no file behind), so an operator's `chmod` or read-only remount, or a process
    /// out of file descriptors, is a passing state, as a full disk is, and the next write
    /// that needs a segment tries again. Poisoned, the store needed a restart (each found
    /// from outside). Any other error poisons.
    fn segment_refused(&self, e: std::io::Error) -> WriteError {
        let (refused, error): (_, fn(String) -> WriteError) = if crate::fs::is_denied(&e) {
            (Refused::Dir, WriteError::DirNotWritable)
        } else if crate::fs::is_out_of_descriptors(&e) {
            (Refused::Descriptors, WriteError::OutOfDescriptors)
        } else {
            return self.fail(e);
        };
        self.health
            .set_segment_refused(Some((refused, e.to_string())));
        error(e.to_string())
    }

    /// A new segment file for at least `needed` bytes: the spare if one is ready, else a new
    /// file of the segment size, else (out of space) smaller ones down to what the write
    /// needs. A write that frees space may then take the tombstone part of the space reserve
    /// (the rest is for a compaction output: it is what turns deletes into free space).
    /// The next segment id that no file in the directory is named for: a directory or a file
    /// put there from outside (a segment restored from a backup, say) is skipped, never
    /// replaced or taken for the store's own. Found from outside: a directory at the next
    /// segment's name poisoned the store (its create failed with EEXIST), and a file there
    /// would have been replaced by the adopted spare's rename.
    pub(crate) fn free_segment_id(&self, w: &mut Writer) -> std::io::Result<u32> {
        let names = self.fs.list(&self.dir)?;
        loop {
            let id = w.allocate_segment_id()?;
            let prefix = format!("{id:010}.");
            if !names.iter().any(|n| n.starts_with(&prefix)) {
                return Ok(id);
            }
        }
    }

    /// The new segment, and whether it is the tombstone part of the reserve (the disk had
    /// no room for one).
    fn start_segment(
        &self,
        w: &mut Writer,
        needed: u64,
        frees: bool,
    ) -> std::io::Result<(Segment, bool)> {
        let floor = (SEGMENT_HEADER_LEN as u64 + needed).max(crate::options::MIN_SEGMENT_SIZE);
        let capacity = self.options.segment_size.max(floor);
        if let Some(at) = w.out_of_space_at {
            // Out of space a moment ago: ask the file system before trying again, or, where
            // it cannot tell, wait a little between attempts.
            let retry = match self.fs.free_space(&self.dir) {
                Some(free) => free >= floor,
                None => at.elapsed() >= OUT_OF_SPACE_RETRY,
            };
            if !retry && !frees {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
        }
        // The reserve before data: one spent by a compaction on a full disk is made again,
        // where the space allows, before a write takes the space that compaction gave back.
        // Found from outside: under four busy writers the freed space went to new segments
        // before the run's end made the reserve again, and once the disk filled again no
        // compaction had room for an output (a 32 MiB ext4 wedged for good). Where the space
        // is short of the reserve, the reserve takes what there is and the write is refused
        // for want of space (`SpaceReserve::ensure`), deletes included: their segments took
        // the bytes the output part needed, and with it spent no compaction could turn
        // their tombstones into space (kill -9 cycles under puts and deletes on a full ext4
        // wedged for good). A delete refused so takes the tombstone part instead, below.
        // (A whole reserve costs `ensure` a lock and no system call.)
        self.reserve.ensure();
        let id = self.free_segment_id(w)?;
        let header = self.segment_header(id, w.next_version);
        // A ready spare is adopted unless the background thread is busy writing it.
        if capacity == self.options.segment_size {
            if let Some(seg) = self.spare.adopt(header) {
                return Ok((seg, false));
            }
        }
        let durable = self.durable();
        let mut size = capacity;
        loop {
            match Segment::create(self.fs.as_ref(), &self.dir, header, size, durable) {
                Ok(seg) => return Ok((seg, false)),
                Err(e) if crate::fs::is_out_of_space(&e) && size > floor => {
                    size = (size / 2).max(floor);
                }
                Err(e) => {
                    if crate::fs::is_out_of_space(&e) {
                        // Deletes, clears and drops may take the tombstone part of the
                        // reserve: a file of its own that becomes their segment, so it
                        // needs neither a new inode nor new blocks (a file system out of
                        // inodes refuses the create even with bytes free).
                        if frees {
                            if let Some(seg) = self.reserve.take_tombstones(header, floor) {
                                return Ok((seg, true));
                            }
                        }
                        // Only a real attempt restarts the wait: refusals in between do not.
                        w.out_of_space_at = Some(std::time::Instant::now());
                    }
                    return Err(e);
                }
            }
        }
    }

    fn seal_active(&self, w: &mut Writer) -> std::io::Result<()> {
        if w.active.capacity() == 0 {
            // The placeholder an open on a full disk left (`Segment::detached`): no file, so
            // nothing to seal. Sealed, it was logged as a segment of 72 bytes, and the next
            // open reported it missing, as if lost outside the store (found as a CI run).
            return Ok(());
        }
        let durable = self.durable();
        // A background thread cuts the sealed segment's tail later, off the writers' path;
        // now where a refused append may have left bytes past the data (a seal frame there
        // would leave them after it, which an open takes for damage).
        let trim = if self.runs_background() && !w.space_refused {
            Trim::Later
        } else {
            Trim::Now
        };
        self.seal_segment(&w.active, w.write_pos, durable, trim)?;
        if durable {
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Seals the active segment when the store closes (a new one is created on open).
    pub(crate) fn seal_active_on_close(&self) -> std::io::Result<()> {
        let w = self.writer.lock();
        if w.active.capacity() == 0 {
            // A placeholder with no file (see `seal_active`).
            return Ok(());
        }
        if w.write_pos == SEGMENT_HEADER_LEN as u64 {
            // Nothing appended since open: the segment is removed, not sealed, so that
            // opening and closing leaves no file behind (every open made one, and a store
            // opened often piled up empty segments that each open read again). No record
            // names its id: it holds none, and segments made since have higher ids. The
            // seal log, which says it was started, hears of the removal first.
            self.state.write().segments.remove(&w.active.id);
            if self.durable() {
                self.seals.append_removed(w.active.id, &self.health);
            }
            return self.fs.remove(&w.active.path);
        }
        // Closing always syncs, whatever the policy: a clean close loses nothing.
        self.seal_segment(&w.active, w.write_pos, true, Trim::Now)
    }

    /// Ends appends to `segment` at `data_len`: synced first when `durable`, cut to its data,
    /// and marked sealed in the index.
    pub(crate) fn seal_segment(
        &self,
        segment: &Segment,
        data_len: u64,
        durable: bool,
        trim: Trim,
    ) -> std::io::Result<()> {
        if durable {
            segment.sync()?;
        }
        segment.set_appending(false);
        // Left uncut, a durable store's segment gets its seal frame; where that cannot be
        // written, it is cut now instead.
        let trim = if trim == Trim::Later && durable && !self.end_with_seal_frame(segment, data_len)
        {
            Trim::Now
        } else {
            trim
        };
        if trim == Trim::Now {
            segment.truncate(data_len, durable)?;
        }
        // Its data is synced: from here the seal log vouches for its length.
        let logged = durable && self.seals.append(segment.id, data_len, &self.health);
        if let Some(slot) = self.state.write().segments.get_mut(&segment.id) {
            slot.logged = logged;
            slot.sealed = true;
            slot.untrimmed = trim == Trim::Later;
            slot.data_len = data_len;
        }
        Ok(())
    }

    /// Writes the seal frame ([`format::seal_frame`]) right after the `data_len` bytes of data
    /// of a sealed `segment` whose unused tail is left for later, and syncs it; false if it
    /// could not (no room, format 1, or an I/O error).
    ///
    /// Why: until the background thread cuts it, the segment ends in the zeros of its
    /// pre-allocated space, which is how recovery recognises a segment being appended to, whose
    /// last frame may be a write torn in flight: one with no intact header and trailer is cut
    /// as such, unreported. The data of this one was synced at the seal, so damage there is
    /// damage; with the seal frame after it, the scan reports it (and salvages what checks)
    /// as in any sealed segment. Written after the data's sync, so that a seal frame on disk
    /// always follows synced data (were both in one sync, a power cut could keep the seal frame
    /// and lose the data before it, which a scan would then report as damage).
    fn end_with_seal_frame(&self, segment: &Segment, data_len: u64) -> bool {
        let Some(frame) = format::seal_frame(&segment.header) else {
            return false;
        };
        if data_len + frame.len() as u64 > segment.capacity() {
            return false;
        }
        let written = segment
            .write_at(&frame, data_len)
            .and_then(|()| segment.sync())
            .is_ok();
        if written {
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        written
    }

    /// Cuts each sealed segment a rollover left at its created length to its data (see
    /// `SegmentSlot::untrimmed`); synced when the store is durable. A segment that cannot be
    /// cut stays as it is, to be tried again at the next call, and the store is not
    /// poisoned: its data was synced (if the store is durable) when it was sealed, and an
    /// uncut tail is zeros, which a reopen cuts.
    pub(crate) fn trim_sealed(&self) -> std::io::Result<()> {
        let durable = self.durable();
        let pending: Vec<(Arc<Segment>, u64)> = self
            .state
            .read()
            .segments
            .values()
            .filter(|s| s.untrimmed)
            .map(|s| (s.segment.clone(), s.data_len))
            .collect();
        for (segment, data_len) in pending {
            if let Err(e) = segment.truncate(data_len, durable) {
                self.counters.failed_cuts.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            if let Some(slot) = self.state.write().segments.get_mut(&segment.id) {
                slot.untrimmed = false;
            }
        }
        Ok(())
    }
}
