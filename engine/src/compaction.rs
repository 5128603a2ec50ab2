//! Compaction: reclaim the space of dead records, and write hint files.
//!
//! A run picks sealed segments (all with anything to reclaim when called on demand, those
//! whose dead fraction, expired items included, reaches the configured ratio in the
//! background). A segment whose records have all expired is deleted without being read. The
//! others are read in chunks; under the writer lock (so no write races the decision) each
//! record is kept (copied verbatim), turned into a tombstone, or dropped, the chunk is
//! appended to an output segment, and index entries move only if they still point at the
//! record. Outputs are synced and hinted before any input is deleted.
//!
//! A record that hides older versions (a tombstone, an expired put, a clear or drop) may
//! only be dropped when no other segment that existed when it was first written (id at or
//! below its horizon) is left: otherwise an older record could come back to life on replay.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::CompactError;
use crate::format::{
    self, EntryMeta, EntryRef, FrameNames, Op, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use crate::fs;
use crate::hint::{HintEntry, HintWriter};
use crate::index::{Entry, Location, SegmentSlot, State, NEVER};
use crate::keydir::Moved;
use crate::scan;
use crate::segment::{self, Segment};
use crate::store::Inner;
use crate::types::CompactionReport;

/// Bytes of input records handled per writer-lock hold.
const CHUNK_BYTES: usize = 256 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Copy verbatim.
    Keep,
    /// Write a tombstone in its place (it hides older versions); remove it from the index
    /// if the index still points at it.
    Tombstone,
    /// Leave it out; remove it from the index if the index still points at it (expired).
    Drop,
}

struct Output {
    segment: Arc<Segment>,
    pos: u64,
}

impl Inner {
    /// One compaction run. `ratio` None = on demand (anything reclaimable).
    pub(crate) fn compact(&self, ratio: Option<f64>) -> Result<CompactionReport, CompactError> {
        if self.options.read_only {
            return Err(CompactError::ReadOnly);
        }
        // Its outputs are made by name: not in a directory that replaced the store's.
        let _ = self.check_dir();
        if let Some(reason) = self.health.poisoned() {
            return Err(CompactError::Poisoned(reason));
        }
        let _run = self.compaction.lock();
        let now = self.now();
        let (unread, rewrite) = self.pick(ratio, now);
        let mut report = CompactionReport::default();
        if unread.is_empty() && rewrite.is_empty() {
            return Ok(report);
        }
        for id in &unread {
            report.bytes_reclaimed += self.remove_expired_segment(*id);
            report.segments_deleted_unread += 1;
        }
        let mut outputs: Vec<Output> = Vec::new();
        let mut done = Vec::new();
        let mut failure = None;
        let mut forgets = Vec::new();
        for id in rewrite {
            match self.rewrite_segment(id, now, &mut outputs, &mut forgets, &mut report) {
                Ok(true) => done.push(id),
                Ok(false) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let sealed = self.seal_outputs(&outputs);
        if let Err(e) = sealed {
            // Inputs stay: everything in the outputs is also in them.
            return Err(CompactError::Io(e.to_string()));
        }
        if let Some(e) = failure {
            // Out of room for another output (a full disk, or no inode left: one output
            // came from the reserve), the run keeps what it did: the inputs it copied whole
            // go, which gives space back. Failing the whole run kept them all, and a disk
            // out of inodes never got one back.
            if !fs::is_out_of_space(&e) || done.is_empty() {
                return Err(CompactError::Io(e.to_string()));
            }
        }
        let mut deleted = Vec::with_capacity(done.len());
        for &id in &done {
            if let Some(bytes) = self.delete_segment_files(id, &mut report.records_lost) {
                report.bytes_reclaimed += bytes;
                deleted.push(id);
            }
            report.segments_rewritten += 1;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| CompactError::Io(e.to_string()))?;
        // Only now are the dropped tombstones gone from the disk: a failed run keeps its
        // inputs, and an input whose file could not be removed is read again at the next
        // open, so the index must go on knowing what they hold.
        if !forgets.is_empty() {
            let mut st = self.state.write();
            for f in forgets.iter().filter(|f| deleted.contains(&f.segment)) {
                if let Some(ns) = st.namespaces.get_mut(&f.namespace[..]) {
                    ns.forget_tombstone(&f.key, f.version);
                }
            }
        }
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        self.counters
            .last_compaction_ms
            .store(self.now().max(1), Ordering::Relaxed);
        // The reserve is what lets the next run work on a full disk: take it back first.
        self.reserve.ensure();
        // And the full-disk flag says at once whether there is room again.
        self.recheck_disk_full();
        Ok(report)
    }

    fn pick(&self, ratio: Option<f64>, now: u64) -> (Vec<u32>, Vec<u32>) {
        let st = self.state.read();
        let mut expired: HashMap<u32, u64> = HashMap::new();
        for ns in st.namespaces.values() {
            for e in ns.items.values().filter(|e| e.is_expired(now)) {
                *expired.entry(e.segment).or_default() += u64::from(e.len);
            }
        }
        let mut unread: Vec<u32> = Vec::new();
        let mut rewrite = Vec::new();
        let mut repack = Vec::new();
        for (&id, slot) in st.segments.iter().filter(|(_, s)| s.sealed) {
            // Only puts whose expiry has passed: nothing in it can be served again. What its
            // records hide must be gone already, or be in such a segment too.
            let wholly_expired = slot.max_expiry != NEVER && slot.max_expiry <= now;
            let blocked = st
                .segments
                .range(..=slot.max_horizon)
                .any(|(&other, s)| other != id && s.has_puts && !unread.contains(&other));
            if wholly_expired && !blocked {
                unread.push(id);
                continue;
            }
            let entries = slot.data_len.saturating_sub(slot.segment.data_start());
            let hiding_droppable =
                slot.hiding > 0 && !older_exists(&st, id, slot.hiding_horizon, false);
            let dead = slot.dead
                + expired.get(&id).copied().unwrap_or(0)
                + if hiding_droppable { slot.hiding } else { 0 };
            // A damaged segment is always worth it where there is room: its intact records
            // move out and its lost keys stay lost through the evidence file (which keeps
            // its space: see `fit_to_space`).
            let worth = slot.damaged
                || slot.unlinked
                || match ratio {
                    // A full run also repacks segments of single writes, whose frames cost
                    // more than their records' headers: copied, they share large frames.
                    None => dead > 0,
                    Some(r) => dead > 0 && dead as f64 >= r * entries as f64,
                };
            // What a rewrite copies: its records' bytes less the dead ones, not its framing
            // (frame headers, trailers, summaries), which is never dead. Counted in, every
            // segment of a store whose keys were all deleted still looked like it needed an
            // output, and a full disk with no reserve left never got space back (found from
            // outside). A segment whose records were never counted (`records` 0) is
            // judged by its bytes.
            let live = if slot.records > 0 {
                slot.entry_bytes.saturating_sub(dead)
            } else {
                entries.saturating_sub(dead)
            };
            if worth {
                rewrite.push((id, live, !slot.damaged));
            } else if ratio.is_none() && sparse(slot, entries) {
                repack.push((id, entries, true));
            }
        }
        // A full run also repacks segments of single writes, whose frames cost more than
        // their records' headers: copied, they share large frames. That gives back little
        // and needs room for a whole copy first, so only while the disk has room for all of
        // them and two segments more.
        let copies: u64 = repack.iter().map(|&(_, bytes, _)| bytes).sum();
        let roomy = self
            .fs
            .free_space(&self.dir)
            .is_none_or(|free| free >= copies + 2 * self.options.segment_size);
        if roomy {
            rewrite.extend(repack);
        }
        (unread, self.fit_to_space(rewrite))
    }

    /// The segments to rewrite, `(id, live bytes, whether rewriting it frees its space)`,
    /// cut down (most dead first) to what the free space and the space reserve can hold as
    /// outputs: on a nearly full disk a run that cannot place its outputs would reclaim
    /// nothing. There, a damaged segment is left for later: it is kept as evidence once
    /// rewritten, so its outputs would spend the reserve and free nothing, and the reserve
    /// could not be made again (found from outside: a full 32 MB disk stuck for good, every
    /// delete and compaction refused, after a run rewrote a damaged segment).
    fn fit_to_space(&self, mut rewrite: Vec<(u32, u64, bool)>) -> Vec<u32> {
        let Some(free) = self.fs.free_space(&self.dir) else {
            return rewrite.into_iter().map(|(id, _, _)| id).collect();
        };
        let segment = self.options.segment_size;
        // What the reserve holds, whole or not: an output takes it (`create_output`).
        let reserve = self.reserve.output_bytes();
        if free >= 2 * segment {
            return rewrite.into_iter().map(|(id, _, _)| id).collect();
        }
        rewrite.retain(|&(_, _, frees)| frees);
        // Outputs hold the live records plus frame overhead (generously a quarter more)
        // and a header per segment.
        let budget = free + reserve;
        rewrite.sort_by_key(|&(id, live, _)| (live, id));
        // A segment with nothing live needs no output at all: it is only deleted. Counted
        // with an output's header, it never fit a disk with no byte free and no reserve
        // (found from outside: a 32 MiB ext4 wedged for good, every key deleted, 25 MB
        // dead, every write and compaction refused; `f_bavail` there is 0 while root may
        // still write).
        let mut need = 0;
        let mut chosen: Vec<u32> = rewrite
            .into_iter()
            .take_while(|&(_, live, _)| {
                if live > 0 {
                    need += live + live / 4 + SEGMENT_HEADER_LEN as u64;
                }
                need <= budget
            })
            .map(|(id, _, _)| id)
            .collect();
        chosen.sort_unstable();
        chosen
    }

    /// Deletes a segment whose every record has expired, without reading it.
    fn remove_expired_segment(&self, id: u32) -> u64 {
        {
            let mut st = self.state.write();
            let mut removed = 0u64;
            for ns in st.namespaces.values_mut() {
                let before = ns.items.len();
                ns.items.retain(|_, e| e.segment != id);
                removed += (before - ns.items.len()) as u64;
            }
            self.counters
                .expired_removed
                .fetch_add(removed, Ordering::Relaxed);
        }
        self.delete_segment_files(id, &mut 0).unwrap_or(0)
    }

    /// Drops segment `id` from the index and deletes its files (a damaged one is moved aside
    /// as evidence, and the keys whose records it lost, not known lost yet, are added to
    /// `lost`). Its bytes, or `None` if its file could not be removed and is still there
    /// (the next open reads it again).
    fn delete_segment_files(&self, id: u32, lost: &mut u64) -> Option<u64> {
        let slot = {
            let mut st = self.state.write();
            let slot = st.segments.remove(&id);
            if slot.as_ref().is_some_and(|s| s.damaged) {
                let forgotten = forget_damaged_entries(&mut st, id);
                *lost += forgotten;
                self.counters
                    .damaged_records_dropped
                    .fetch_add(forgotten, Ordering::Relaxed);
            }
            slot
        };
        // Logged first: a sealed segment the log names that is missing and not logged as
        // removed was lost outside the store (`recovery`). If the log cannot take it, it is
        // removed (`SealLog::append`), and the next open checks nothing against it.
        self.seals.append_removed(id, &self.health);
        let hint = self.dir.join(segment::hint_file_name(id));
        let damaged = slot.as_ref().is_some_and(|s| s.damaged);
        // A damaged segment's hint goes aside with it (its records are what the next open
        // marks lost where the evidence's bytes no longer hold them); else it goes.
        let hint_aside = damaged
            && self
                .fs
                .rename(&hint, &self.dir.join(segment::evidence_hint_file_name(id)))
                .is_ok();
        // The hint goes first, and its removal reaches the disk before the segment's: a hint
        // whose segment is missing then always means a segment lost outside the store, which
        // the next open reports and whose records it marks lost (`recovery`).
        let hint_gone = hint_aside
            || match self.fs.remove(&hint) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                // Still there: so is the segment (the next open reads both again).
                Err(_) => return None,
            };
        if hint_gone && self.fs.sync_dir(&self.dir).is_err() {
            return None;
        }
        let path = self.dir.join(segment::segment_file_name(id));
        if damaged {
            // Kept as evidence, and so that the next open learns again which keys it lost.
            let aside = self.dir.join(segment::evidence_file_name(id));
            if self.fs.rename(&path, &aside).is_ok() {
                return Some(0);
            }
        }
        match self.fs.remove(&path) {
            // Gone already: deleted under the store, its live records copied out (see
            // `SegmentSlot::unlinked`).
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
        Some(slot.map_or(0, |s| s.data_len))
    }

    /// Records what a scan of segment `id` found damaged: its keys are lost from here on,
    /// and the segment gets no hint and is moved aside, not deleted, once rewritten.
    fn note_damage(&self, id: u32, scanned: &scan::Scan<'_>, report: &mut CompactionReport) {
        let mut st = self.state.write();
        let mut lost = 0;
        for d in &scanned.damaged {
            for s in d.lost.iter().flatten() {
                st.mark_lost(s, id, d.offset as u64);
                lost += 1;
            }
        }
        if let Some(slot) = st.segments.get_mut(&id) {
            slot.damaged = true;
        }
        report.damaged_ranges += scanned.damaged.len() as u64 + u64::from(scanned.torn);
        report.records_lost += lost;
        self.counters
            .damaged_records_dropped
            .fetch_add(lost, Ordering::Relaxed);
    }

    /// Copies the needed records of segment `id` into outputs; false if it could not be
    /// read whole (it is then kept).
    fn rewrite_segment(
        &self,
        id: u32,
        now: u64,
        outputs: &mut Vec<Output>,
        forgets: &mut Vec<Forget>,
        report: &mut CompactionReport,
    ) -> std::io::Result<bool> {
        let Some((seg, data_len)) = self.segment_and_len(id) else {
            return Ok(false);
        };
        let view = seg.bytes();
        let bytes = &view[..(data_len as usize).min(view.len())];
        let scanned = scan::scan(bytes, &seg.header, false);
        if !scanned.is_clean() {
            if seg.unreadable() {
                // The disk failed to read part of it (it reads as zeros): kept as it is, its
                // records not marked lost, until a reopen reads it again (found from
                // outside: a passing read error during a run lost acknowledged keys for
                // good, as the segment went aside as damaged).
                return Ok(false);
            }
            self.note_damage(id, &scanned, report);
        }
        let records = scanned.records;
        let mut start = 0;
        while start < records.len() {
            let mut end = start;
            let mut size = 0;
            while end < records.len() && (end == start || size + records[end].1.len <= CHUNK_BYTES)
            {
                size += records[end].1.len;
                end += 1;
            }
            self.rewrite_chunk(id, &records[start..end], now, outputs, forgets, report)?;
            start = end;
        }
        Ok(true)
    }

    fn rewrite_chunk(
        &self,
        id: u32,
        records: &[(usize, EntryRef<'_>)],
        now: u64,
        outputs: &mut Vec<Output>,
        forgets: &mut Vec<Forget>,
        report: &mut CompactionReport,
    ) -> std::io::Result<()> {
        let mut w = self.writer.lock();
        let decisions: Vec<Decision> = {
            let st = self.state.read();
            records
                .iter()
                .map(|(at, e)| decide(&st, id, *at, e, now))
                .collect()
        };
        let mut buf = Vec::new();
        let frame_start = format::begin_frame(&mut buf);
        let mut names = FrameNames::default();
        // (index into records, offset of the written entry in the frame body)
        let mut written = Vec::new();
        for (i, ((_, e), d)) in records.iter().zip(&decisions).enumerate() {
            let body_off = buf.len() - FRAME_HEADER_LEN;
            match d {
                Decision::Keep => {
                    names.encode(&mut buf, &e.meta, e.namespace, e.key, e.value);
                    written.push((i, body_off));
                }
                Decision::Tombstone => {
                    let meta = EntryMeta {
                        op: Op::Tombstone,
                        kind: 0,
                        horizon: e.meta.horizon,
                        version: e.meta.version,
                        expires_ms: 0,
                    };
                    names.encode(&mut buf, &meta, e.namespace, e.key, b"");
                    written.push((i, body_off));
                }
                Decision::Drop => report.records_dropped += 1,
            }
        }
        let mut placed: Option<(u32, u64)> = None;
        // An output this chunk filled, sealed once the writer lock is released.
        let mut filled = None;
        if !written.is_empty() {
            format::finish_frame(&mut buf, frame_start, self.salt);
            let len = buf.len() as u64;
            let need_new = outputs
                .last()
                .is_none_or(|o| o.pos + len > o.segment.capacity());
            if need_new {
                filled = outputs.len().checked_sub(1);
                let out_id = self.free_segment_id(&mut w)?;
                let header = self.segment_header(out_id, w.next_version);
                let seg = Arc::new(self.create_output(header, len)?);
                self.state.write().segments.insert(
                    out_id,
                    SegmentSlot::new(seg.clone(), SEGMENT_HEADER_LEN as u64),
                );
                outputs.push(Output {
                    segment: seg,
                    pos: SEGMENT_HEADER_LEN as u64,
                });
            }
            let Some(out) = outputs.last_mut() else {
                return Ok(());
            };
            out.segment.write_at(&buf, out.pos)?;
            placed = Some((out.segment.id, out.pos));
            out.pos += len;
        }
        let mut st = self.state.write();
        if let Some((out_id, frame_pos)) = placed {
            let body = format::own_frame_body(&buf);
            let entries: Vec<_> = format::own_frame_entries(body, out_id).flatten().collect();
            if entries.len() != written.len() {
                // Never happens; if it did, the index could not be moved to the copies, so
                // the run fails and keeps its inputs.
                return Err(std::io::Error::other(
                    "a compaction output frame does not read back whole",
                ));
            }
            if let Some(slot) = st.segments.get_mut(&out_id) {
                slot.data_len = frame_pos + buf.len() as u64;
                for (_, e) in &entries {
                    slot.note_entry(e);
                    if matches!(
                        e.meta.op,
                        Op::Tombstone | Op::ClearNamespace | Op::DropNamespace
                    ) {
                        slot.hiding += e.len as u64;
                        slot.hiding_horizon = slot.hiding_horizon.max(e.meta.horizon);
                    }
                }
            }
            for (&(i, body_off), (_, new_e)) in written.iter().zip(&entries) {
                let at = frame_pos as usize + FRAME_HEADER_LEN + body_off;
                let at = u32::try_from(at).unwrap_or(u32::MAX);
                let old = &records[i].1;
                report.records_kept += 1;
                match (decisions[i], old.meta.op) {
                    (Decision::Keep, Op::Put) => {
                        let to = Moved {
                            segment: out_id,
                            offset: at,
                            len: u32::try_from(new_e.len).unwrap_or(u32::MAX),
                            shape: new_e.shape(),
                        };
                        move_entry(&mut st, old, to);
                    }
                    (Decision::Keep, Op::CreateNamespace) => {
                        if let Some(ns) = st.namespaces.get_mut(old.namespace) {
                            if ns.created_version == old.meta.version {
                                ns.created_at = Location {
                                    segment: out_id,
                                    offset: at,
                                    len: u32::try_from(new_e.len).unwrap_or(u32::MAX),
                                };
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        for (i, d) in decisions.iter().enumerate() {
            if *d != Decision::Keep {
                let (at, e) = &records[i];
                if remove_if_current(&mut st, id, *at, e) {
                    self.counters
                        .expired_removed
                        .fetch_add(1, Ordering::Relaxed);
                }
                note_tombstone(&mut st, id, e, *d, forgets);
            }
        }
        drop(st);
        drop(w);
        // Its fsync (a segment's worth of data) and cut (on a disk mounted with `discard`, a
        // wait for the discard) held every writer up when sealed under the writer lock. Not
        // sealed if the chunk failed: `seal_outputs` seals every output at the end of the run.
        if let Some(i) = filled {
            self.seal_output(&outputs[i])?;
        }
        Ok(())
    }

    /// An output segment for at least `len` bytes of frames: the segment size, or out of
    /// space, the space reserve given up for it, then smaller sizes down to what `len` needs
    /// (outputs are cut to their data when sealed).
    fn create_output(&self, header: format::SegmentHeader, len: u64) -> std::io::Result<Segment> {
        let floor = SEGMENT_HEADER_LEN as u64 + len;
        let mut size = self.options.segment_size.max(floor);
        let mut released = false;
        loop {
            match Segment::create(self.fs.as_ref(), &self.dir, header, size, true) {
                Ok(seg) => return Ok(seg),
                Err(e) if fs::is_out_of_space(&e) && !released => {
                    released = true;
                    self.reserve.release();
                }
                Err(e) if fs::is_out_of_space(&e) && size > floor => {
                    size = (size / 2).max(floor);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn seal_output(&self, out: &Output) -> std::io::Result<()> {
        // The output's name is made durable before its seal entry: a crash between them
        // would leave the log naming a sealed segment the directory lacks, which the next
        // open takes for one lost outside the store (the crash-point enumeration found it).
        self.fs.sync_dir(&self.dir)?;
        // Always synced: inputs are deleted on the strength of it, whatever the policy.
        self.seal_segment(&out.segment, out.pos, true, crate::writer::Trim::Now)
    }

    fn seal_outputs(&self, outputs: &[Output]) -> std::io::Result<()> {
        for out in outputs {
            self.seal_output(out)?;
            match self.write_hint(out.segment.id) {
                // A hint only saves a scan at the next open: no space for one is no failure.
                Err(e) if fs::is_out_of_space(&e) => {}
                other => other?,
            }
        }
        if !outputs.is_empty() {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Writes hint files for sealed segments that have none.
    pub(crate) fn write_missing_hints(&self) -> std::io::Result<()> {
        if self.options.read_only {
            return Ok(());
        }
        let _run = self.compaction.lock();
        let ids: Vec<u32> = self
            .state
            .read()
            .segments
            .iter()
            .filter(|(_, s)| s.sealed && !s.untrimmed && !s.hinted && !s.damaged && !s.unlinked)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.write_hint(id)?;
        }
        Ok(())
    }

    /// A segment and its data length, if it still exists.
    fn segment_and_len(&self, id: u32) -> Option<(Arc<Segment>, u64)> {
        let st = self.state.read();
        st.segments
            .get(&id)
            .map(|s| (s.segment.clone(), s.data_len))
    }

    fn write_hint(&self, id: u32) -> std::io::Result<()> {
        let Some((seg, data_len)) = self.segment_and_len(id) else {
            return Ok(());
        };
        // A hint only saves a scan at the next open: never at the cost of the reserve. On a
        // full disk each hint took blocks of what compaction had given back, before the
        // reserve was made again (one of the ways a full ext4 under kill -9 cycles ended
        // with the reserve spent and every delete refused for good, found from outside).
        if self.reserve.short() {
            return Ok(());
        }
        let Some(bytes) = build_hint(&seg, data_len) else {
            return Ok(());
        };
        let path = self.dir.join(segment::hint_file_name(id));
        fs::write_atomically(self.fs.as_ref(), &self.dir, &path, &bytes)?;
        if let Some(slot) = self.state.write().segments.get_mut(&id) {
            slot.hinted = true;
        }
        Ok(())
    }
}

/// The hint of a sealed segment, or None if anything in it is damaged (a hint would forget
/// which keys the damage holds; the segment is scanned on every open instead).
fn build_hint(seg: &Segment, data_len: u64) -> Option<Vec<u8>> {
    let view = seg.bytes();
    let bytes = view.get(..usize::try_from(data_len).ok()?)?;
    let scanned = scan::scan(bytes, &seg.header, false);
    if !scanned.is_clean() || scanned.end != bytes.len() {
        return None;
    }
    let mut w = HintWriter::new(seg.id, data_len, seg.header.entry_layout);
    for (at, e) in scanned.records {
        w.push(&HintEntry {
            offset: u32::try_from(at).ok()?,
            meta: e.meta,
            namespace: e.namespace,
            key: e.key,
            len: u32::try_from(e.len).ok()?,
            shape: e.shape(),
        });
    }
    Some(w.finish())
}

/// After a damaged segment's intact records moved out, index entries still pointing into it
/// are damaged records: they leave the index and their keys are marked lost. Returns how
/// many were not marked lost already (by the scan, which knew them from their frames):
/// those the index alone knew, from the segment's hint, went uncounted in the compaction's
/// `records_lost` (found from outside: a punched range lost 16 keys, the report said 1).
fn forget_damaged_entries(st: &mut State, id: u32) -> u64 {
    let mut gone = Vec::new();
    for (name, ns) in &st.namespaces {
        for (key, e) in ns.items.iter().filter(|(_, e)| e.segment == id) {
            gone.push((name.clone(), key.to_vec(), e.version, e.offset));
        }
    }
    let mut newly = 0;
    for (name, key, version, offset) in gone {
        if let Some(ns) = st.namespaces.get_mut(&name) {
            ns.items.remove(&key);
        }
        let (ns_hash, key_hash) = crate::index::lost_key(&name, &key);
        let s = format::Summary {
            version,
            ns_hash,
            key_hash,
            len: 0,
            op: Op::Put as u8,
        };
        let known = st
            .lost
            .get(&(ns_hash, key_hash))
            .is_some_and(|m| m.version >= version);
        st.mark_lost(&s, id, u64::from(offset));
        newly += u64::from(!known);
    }
    newly
}

/// Whether a segment other than `id`, with an id at or below `horizon`, still exists that
/// could hold what a record hides: older item versions (`items_only`), or anything.
fn older_exists(st: &State, id: u32, horizon: u32, items_only: bool) -> bool {
    st.segments
        .range(..=horizon)
        .any(|(&other, s)| other != id && (s.has_puts || !items_only))
}

/// What becomes of the record `e` at offset `at` of segment `id`.
///
/// A put or a create record is kept only where the index names it: a copy of it elsewhere
/// (the same version at another place) is what a compaction killed after writing its output
/// and before removing its inputs leaves, and keeping every copy copied them all again at
/// each run. Found from outside: 25 killed compactions left 21,000 to 80,000 records
/// (mostly 10-byte create records) for 135 items, which no compaction dropped.
fn decide(st: &State, id: u32, at: usize, e: &EntryRef<'_>, now: u64) -> Decision {
    let here = |segment: u32, offset: u64| segment == id && offset == at as u64;
    // A drop also hides older create records; everything else hides only items.
    let items_only = e.meta.op != Op::DropNamespace;
    let hides_older = |keep: Decision| {
        if older_exists(st, id, e.meta.horizon, items_only) {
            keep
        } else {
            Decision::Drop
        }
    };
    let ns = st.namespaces.get(e.namespace);
    // Hidden by a clear or a drop (the floor), or of a namespace that no longer exists. Not
    // "older than the namespace's create record": an import keeps each item's version and
    // creates a missing namespace with the store's next one, so its items can be older than
    // their namespace and are live (recovery and reads agree).
    let stale = |v: u64| ns.is_none_or(|ns| v <= ns.floor);
    match e.meta.op {
        Op::Put => {
            if stale(e.meta.version) {
                return Decision::Drop;
            }
            let current = ns.and_then(|ns| ns.items.get(e.key));
            let expired = e.meta.expires_ms != 0 && e.meta.expires_ms <= now;
            match current {
                Some(cur) if cur.version > e.meta.version => Decision::Drop,
                Some(cur) if cur.version == e.meta.version && !expired => {
                    if here(cur.segment, u64::from(cur.offset)) {
                        Decision::Keep
                    } else {
                        Decision::Drop
                    }
                }
                _ if expired => hides_older(Decision::Tombstone),
                // Not in the index and not expired: a newer tombstone deleted it.
                _ => Decision::Drop,
            }
        }
        Op::Tombstone => {
            if stale(e.meta.version) {
                return Decision::Drop;
            }
            let newer = ns
                .and_then(|ns| ns.items.get(e.key))
                .is_some_and(|cur| cur.version > e.meta.version);
            if newer {
                Decision::Drop
            } else {
                hides_older(Decision::Keep)
            }
        }
        Op::CreateNamespace => {
            let named = ns.is_some_and(|ns| {
                ns.created_version == e.meta.version
                    && here(ns.created_at.segment, u64::from(ns.created_at.offset))
            });
            if named {
                Decision::Keep
            } else {
                Decision::Drop
            }
        }
        Op::ClearNamespace | Op::DropNamespace => hides_older(Decision::Keep),
    }
}

fn move_entry(st: &mut State, old: &EntryRef<'_>, to: Moved) {
    if let Some(ns) = st.namespaces.get_mut(old.namespace) {
        ns.items.relocate(old.key, old.meta.version, to);
    }
}

/// A tombstone compaction dropped from segment `segment`: forgotten by the index once the
/// segment is deleted.
struct Forget {
    segment: u32,
    namespace: Box<[u8]>,
    key: Box<[u8]>,
    version: u64,
}

/// Keeps [`Namespace::deleted`](crate::index::Namespace) in step with the tombstones on
/// disk: a tombstone dropped from segment `id` is forgotten once the run deletes it, an
/// expired put turned into one is remembered at once (an entry older than the key's live
/// one is harmless: imports compare with the newest).
fn note_tombstone(
    st: &mut State,
    id: u32,
    e: &EntryRef<'_>,
    d: Decision,
    forgets: &mut Vec<Forget>,
) {
    let Some(ns) = st.namespaces.get_mut(e.namespace) else {
        return;
    };
    let version = e.meta.version;
    match (d, e.meta.op) {
        (Decision::Drop, Op::Tombstone) => forgets.push(Forget {
            segment: id,
            namespace: e.namespace.into(),
            key: e.key.into(),
            version,
        }),
        (Decision::Tombstone, Op::Put) => {
            ns.deleted
                .insert_if_newer(e.key, Entry::tombstone(version, 0, 0));
        }
        _ => {}
    }
}

/// Takes the put `e` (at offset `at` of segment `id`) out of the index if the index names
/// it there; true if it did. Not a copy of it elsewhere (see [`decide`]): that is dropped as
/// dead while the index keeps the record it names.
fn remove_if_current(st: &mut State, id: u32, at: usize, e: &EntryRef<'_>) -> bool {
    if e.meta.op != Op::Put {
        return false;
    }
    let Some(ns) = st.namespaces.get_mut(e.namespace) else {
        return false;
    };
    if ns.items.get(e.key).is_some_and(|cur| {
        cur.version == e.meta.version && cur.segment == id && u64::from(cur.offset) == at as u64
    }) {
        ns.items.remove(e.key);
        return true;
    }
    false
}
/// Framing bytes per record above which a full compaction run repacks a segment: a frame of
/// one record costs 32 bytes beside its summary, one of many about the summary alone (6–8).
const REPACK_FRAMING_PER_RECORD: u64 = 20;

/// Whether a segment's records sit in small frames (mostly single writes): `bytes` past its
/// header, against what its records take.
fn sparse(slot: &SegmentSlot, bytes: u64) -> bool {
    let framing = bytes.saturating_sub(slot.entry_bytes);
    slot.records > 0 && framing >= REPACK_FRAMING_PER_RECORD * slot.records
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use crate::format::{SEGMENT_HEADER_LEN, SEGMENT_MAGIC};
    use crate::{Durability, PutOptions};

    /// A compaction output that a chunk fills is sealed (fsynced and cut) only once that
    /// chunk has released the writer lock: sealed under it, its fsync of a segment's worth of
    /// data, and its cut (a wait for the disk's discard), held up every writer.
    #[test]
    fn a_filled_output_is_sealed_outside_the_writer_lock() {
        let fs = crate::sim::SimFs::new();
        let store = crate::Store::builder()
            .file_system(Arc::new(fs.clone()))
            .durability(Durability::Never)
            .segment_size(crate::options::MIN_SEGMENT_SIZE)
            .compaction_interval(None)
            .open("/outputs")
            .expect("open");
        let put = |i: u32, fill: u8| {
            store
                .put(b"ns", &i.to_le_bytes(), &[fill; 300], PutOptions::default())
                .expect("put");
        };
        // Segments of which the even keys are then overwritten: half dead, and together
        // with more live data than one output holds.
        for i in 0..200 {
            put(i, 1);
        }
        for i in (0..200).step_by(2) {
            put(i, 2);
        }
        // Each sync of a segment holding data, from here on: whether the writer was locked.
        let seals = Arc::new(Mutex::new(Vec::new()));
        let (inner, seen) = (store.inner_arc(), seals.clone());
        fs.on_sync(Some(Arc::new(move |bytes: &[u8]| {
            let segment = bytes.starts_with(&SEGMENT_MAGIC);
            if segment && bytes[SEGMENT_HEADER_LEN..].iter().any(|&b| b != 0) {
                seen.lock().push(inner.writer.is_locked());
            }
        })));
        let report = store.compact_dead_over(0.4).expect("compact");
        fs.on_sync(None);
        assert!(report.segments_rewritten >= 3, "{report:?}");
        let seals = seals.lock().clone();
        assert!(seals.len() >= 2, "outputs sealed: {seals:?}");
        assert!(
            seals.iter().all(|locked| !locked),
            "an output was sealed under the writer lock: {seals:?}"
        );
        for i in 0..200u32 {
            let item = store
                .get(b"ns", &i.to_le_bytes())
                .expect("get")
                .expect("item");
            assert_eq!(item.value[0], if i % 2 == 0 { 2 } else { 1 });
        }
    }
}
