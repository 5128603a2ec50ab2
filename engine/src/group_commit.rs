//! Group commit: writers that need their appends on disk share fsyncs. The appender
//! publishes how far appends have gone after each frame ([`GroupCommit::publish`]); a
//! writer that finds no sync in flight leads one for everything published so far, and the
//! others wait for it (or, if they came too late for it, for the next one, which one of them
//! leads). It owns its state and calls nothing of the store but the two parts it is given:
//! `HealthState` (a failed fsync poisons the store) and the counters.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::error::WriteError;
use crate::segment::Segment;
use crate::signals::{HealthState, Io};
use crate::store::Counters;

/// Group commit: how far appends have gone, how far they are durable, and the writers
/// waiting for a sync.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    state: Mutex<SyncProgress>,
    /// Waiters, by the parity of the sync that covers them: those covered by the sync in
    /// flight wait on one, those that came too late for it on the other. A finished sync
    /// wakes only its own, and one of the others to lead the next: waking everyone (most of
    /// 64 writers went back to sleep each time) was most of the CPU under many writers.
    done: [Condvar; 2],
    appended: Mutex<Appended>,
    /// Whether [`Appended::unsynced`] is kept (`Durability::Always`: there a write not yet
    /// synced is not acknowledged).
    track: bool,
    /// Where the frames a failed sync left in doubt begin, once known, and whether the seal
    /// log has it ([`GroupCommit::doubt_to_log`]).
    doubt: Mutex<(Option<(u32, u64)>, bool)>,
}

/// How far appends have gone, published by the appender after each frame. A sync leader
/// reads it here: under the writer lock it queued behind every appender waiting for that
/// lock, and the disk idled between fsyncs meanwhile.
#[derive(Debug, Default)]
struct Appended {
    /// The writer's `lsn` after the last frame.
    lsn: u64,
    /// Its `frames` after it.
    frames: u64,
    /// The segment it went to. Every earlier segment was synced when it was sealed, so
    /// syncing this one makes everything up to `lsn` durable.
    active: Option<Arc<Segment>>,
    /// The frames appended since the last sync that covered them (when tracked): where a
    /// failed sync leaves writes that may or may not be on disk ([`GroupCommit::unsynced`]).
    unsynced: std::collections::VecDeque<Pending>,
}

/// Where a frame is in its segment: position and length.
pub(crate) type FramePlace = (u64, u64);

/// A frame appended and not yet synced: the `lsn` after it, its segment and place.
#[derive(Debug, Clone, Copy)]
struct Pending {
    lsn: u64,
    segment: u32,
    pos: u64,
    len: u64,
}

#[derive(Debug, Default)]
struct SyncProgress {
    synced_lsn: u64,
    synced_frames: u64,
    leader: bool,
    /// What the sync in flight covers (while `leader`).
    target: u64,
    /// Syncs started: the parity of the one in flight picks its waiters' condvar.
    generation: u64,
}

impl GroupCommit {
    /// Group commit that keeps the frames not yet synced when `track` (see
    /// [`GroupCommit::unsynced`]).
    pub(crate) fn new(track: bool) -> Self {
        Self {
            track,
            ..Self::default()
        }
    }

    /// Publishes the appender's progress after a frame: `lsn` and `frames` so far, the last
    /// one in `active`, at `pos` for `len` bytes.
    pub(crate) fn publish(&self, lsn: u64, frames: u64, active: &Arc<Segment>, pos: u64, len: u64) {
        let mut a = self.appended.lock();
        a.lsn = lsn;
        a.frames = frames;
        if a.active.as_ref().is_none_or(|s| !Arc::ptr_eq(s, active)) {
            a.active = Some(active.clone());
        }
        if self.track {
            a.unsynced.push_back(Pending {
                lsn,
                segment: active.id,
                pos,
                len,
            });
        }
    }

    /// The frames of the active segment that no successful sync covered, with the segment:
    /// after a failed sync, whether they are on disk is unknown until the store is reopened
    /// (frames of earlier segments were synced when those were sealed). Kept only when
    /// tracked.
    pub(crate) fn unsynced(&self) -> Option<(Arc<Segment>, Vec<FramePlace>)> {
        let a = self.appended.lock();
        let active = a.active.clone()?;
        let frames = a
            .unsynced
            .iter()
            .filter(|p| p.segment == active.id)
            .map(|p| (p.pos, p.len))
            .collect();
        Some((active, frames))
    }

    /// Where the frames no successful sync covered begin in the active segment (its id and
    /// the first one's position), until [`GroupCommit::doubt_logged`]: once the store is
    /// poisoned, nothing past there is ever acknowledged (see `seals::IN_DOUBT`). Found at
    /// the first call that finds such frames, and kept: the seal log may fail to take it as
    /// the disk fails, and is asked again later. `None` once logged, while no frame is in
    /// doubt, or untracked.
    pub(crate) fn doubt_to_log(&self) -> Option<(u32, u64)> {
        let mut doubt = self.doubt.lock();
        if doubt.1 {
            return None;
        }
        if doubt.0.is_none() {
            let (segment, frames) = self.unsynced()?;
            let first = frames.iter().map(|&(pos, _)| pos).min()?;
            doubt.0 = Some((segment.id, first));
        }
        doubt.0
    }

    /// The seal log has the point [`GroupCommit::doubt_to_log`] gave.
    pub(crate) fn doubt_logged(&self) {
        self.doubt.lock().1 = true;
    }

    /// The sequence number up to which everything is known durable.
    pub(crate) fn synced_lsn(&self) -> u64 {
        self.state.lock().synced_lsn
    }

    /// The sequence number of everything appended so far.
    pub(crate) fn appended_lsn(&self) -> u64 {
        self.appended.lock().lsn
    }

    /// Returns once everything up to `lsn` is on disk, or `health` says the store is poisoned
    /// (a failed fsync poisons it). Whoever finds no sync in flight leads one, for everything
    /// appended so far; the others wait for it, or for the next one.
    pub(crate) fn wait(
        &self,
        lsn: u64,
        health: &HealthState,
        counters: &Counters,
    ) -> Result<(), WriteError> {
        let mut s = self.state.lock();
        loop {
            // Durable is acknowledged, whatever failed since: a write whose fsync had
            // succeeded was answered 500 when another failure poisoned the store before its
            // writer woke, and its value, on disk, was served then and after the restart
            // (found from outside).
            if s.synced_lsn >= lsn {
                return Ok(());
            }
            if let Err(poisoned) = health.check() {
                // A waiter woken to lead the next sync leaves without leading it: the others
                // would wait for it for good (found from outside: a failed append poisoned
                // the store while a sync was in flight, and half the writers hung). All of
                // them learn of the poison instead.
                for done in &self.done {
                    done.notify_all();
                }
                return Err(poisoned);
            }
            if s.leader {
                let covered = lsn <= s.target;
                let which = (s.generation + u64::from(!covered)) % 2;
                self.done[which as usize].wait(&mut s);
                continue;
            }
            // Read under the state lock: a writer waiting for the next sync registered after
            // it published its append, so the next leader's target covers it.
            let (target, frames, active) = {
                let a = self.appended.lock();
                (a.lsn, a.frames, a.active.clone())
            };
            s.leader = true;
            s.target = target;
            let sync_number = s.generation + 1;
            drop(s);
            // No segment: nothing appended since open, so nothing to wait for. A sync that
            // panics (an embedder's `FileSystem` may) fails like one that errs: the store is
            // poisoned and every waiter learns of it, rather than wait for a leader gone.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _waiting = health.begin_io(Io::Sync, sync_number);
                let Some(seg) = active else {
                    return Ok(());
                };
                seg.sync().map_err(|e| format!("fsync failed: {e}"))?;
                // The file synced must still be there for what it holds to count.
                seg.check_linked().map_err(|e| e.to_string())
            }))
            .unwrap_or_else(|_| Err("fsync failed: the sync panicked".to_string()));
            s = self.state.lock();
            s.leader = false;
            let ours = (s.generation % 2) as usize;
            s.generation += 1;
            match result {
                Ok(()) => {
                    counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                    s.synced_lsn = s.synced_lsn.max(target);
                    if self.track {
                        let mut a = self.appended.lock();
                        while a.unsynced.front().is_some_and(|p| p.lsn <= target) {
                            a.unsynced.pop_front();
                        }
                    }
                    if frames > s.synced_frames {
                        counters.record_fsync_batch(frames - s.synced_frames);
                        s.synced_frames = frames;
                    }
                }
                Err(e) => {
                    health.poison(e);
                    // Everyone learns of the poison.
                    self.done[1 - ours].notify_all();
                }
            }
            self.done[ours].notify_all();
            // Those that came too late wait for the next sync: one of them leads it.
            self.done[1 - ours].notify_one();
        }
    }
}
