//! The threads a store runs beside its callers, each named, stopped and joined when the
//! store closes: the background thread (timed fsyncs under `Durability::Every`, hint
//! writing, compaction, the residency check behind `try_get`, and the spare segment of
//! durable stores) and the sync thread that makes deferred writes durable.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::options::Durability;
use crate::store::Inner;

impl Inner {
    /// Whether the store runs a background thread: for timed fsyncs, timed compaction or
    /// spare segments. Where it does, it also cuts the tails of segments sealed by a
    /// rollover ([`Inner::trim_sealed`]).
    pub(crate) fn runs_background(&self) -> bool {
        matches!(self.options.durability, Durability::Every(_))
            || self.options.compaction_interval.is_some()
            || (self.durable() && self.options.spare_segments)
    }

    /// Writes a spare segment for the next rollover if none is ready and one is wanted: the
    /// active segment is half full, or the store has rolled over since it opened (it writes
    /// steadily: 64 writers fill a 64 MiB segment in about two seconds, and a spare begun at
    /// half of it was often not ready in time). The writer nudges this thread at both
    /// moments, so the spare is begun then rather than at the next tick. Durable stores only:
    /// it makes their fsyncs cheaper, and costs a segment's worth of zeros written, so small
    /// stores never pay it.
    ///
    /// A spare is made only while two segments plus the space reserve are free, and removed
    /// once less than a segment is left beside it: the last free space is for data.
    fn prepare_spare(&self) {
        if !self.durable() || !self.options.spare_segments {
            return;
        }
        // The writer lock is taken and released before the spare's (the lock order).
        let wanted = {
            let w = self.writer.lock();
            w.write_pos * 2 >= w.active.capacity() || w.rolled_over
        };
        let free = self.fs.free_space(&self.dir);
        let reserve_missing = self
            .options
            .segment_size
            .saturating_sub(self.reserve.output_bytes());
        self.spare.prepare(free, wanted, reserve_missing, &|| {
            self.shutdown.is_stopping()
        });
    }

    /// Marks each segment whose bytes are all in memory, for [`Store::try_get`].
    fn check_residency(&self) {
        let segments: Vec<_> = self
            .state
            .read()
            .segments
            .values()
            .map(|s| (s.segment.clone(), s.data_len))
            .collect();
        for (segment, data_len) in segments {
            segment.check_residency(data_len, RESIDENCY_VALID_MS);
        }
    }
}

/// Under concurrent load the sync thread gathers deferred writes before each fsync: once an
/// fsync covered at least this many, the next waits for as many to arrive...
const GATHER_FROM: usize = 8;
/// ...but no longer than this. An fsync taken as soon as one write waited covered about 11
/// of 64 HTTP clients' writes; gathering, 30-40, and the server answered 8-15% more durable
/// POSTs (interleaved runs, ARCHITECTURE.md "Writes and group commit"). A lone writer never
/// waits.
const GATHER_LINGER: Duration = Duration::from_micros(300);

/// How many deferred writes the sync thread gathers for after an fsync that covered `last`:
/// as many again under concurrent load, none (sync at once) below it.
fn gather_after(last: usize) -> usize {
    if last >= GATHER_FROM {
        last
    } else {
        0
    }
}

/// Starts the thread that makes deferred writes durable (`Durability::Always` only).
pub(crate) fn spawn_syncer(inner: &Arc<Inner>) -> std::io::Result<Option<JoinHandle<()>>> {
    if inner.options.durability != Durability::Always {
        return Ok(None);
    }
    let inner = inner.clone();
    std::thread::Builder::new()
        .name("ttlcask-sync".into())
        .spawn(move || {
            let mut last = 0;
            loop {
                let Some(batch) = inner.deferred.take(gather_after(last), GATHER_LINGER) else {
                    return;
                };
                last = batch.len();
                // One fsync covers every write waiting now; later ones form the next batch.
                let target = batch.iter().map(|(lsn, _)| *lsn).max().unwrap_or(0);
                let result = inner.wait_durable(target);
                let synced = inner.synced_lsn();
                for (lsn, then) in batch {
                    // One that panics must not end the thread: every later deferred write
                    // would wait for good (found from outside: a callback's `send` on a
                    // channel whose receiver had gone). The panic hook has printed it.
                    // One made durable is acknowledged, whatever failed since.
                    let result = if lsn <= synced {
                        Ok(())
                    } else {
                        result.clone()
                    };
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        then(result);
                    }));
                }
            }
        })
        .map(Some)
}

impl Inner {
    /// Clears the full-disk flag once the disk has room for a new segment of the smallest
    /// size a write may start (and an inode where the file system counts them): writes
    /// would be taken again. Set by a write the disk refused, it stayed until
    /// the next write that needed a segment: `/healthz` said full with 15.7 MB of a 16 MiB
    /// disk free after a cache was cleared (found from outside).
    pub(crate) fn recheck_disk_full(&self) {
        if !self.health.is_disk_full() {
            return;
        }
        let room = crate::options::MIN_SEGMENT_SIZE;
        let bytes = self
            .fs
            .free_space(&self.dir)
            .is_some_and(|free| free >= room);
        let inodes = self.fs.free_inodes(&self.dir).is_none_or(|free| free > 0);
        if bytes && inodes {
            self.health.set_disk_full(false);
        }
    }
}

/// How often the background thread checks which segments are wholly in memory.
const RESIDENCY_INTERVAL: Duration = Duration::from_secs(1);

/// Least time between compactions run early because deletes found the disk full
/// (`Inner::space_wanted`): a compaction that can free nothing is not retried at once.
const SPACE_WANTED_EVERY: Duration = Duration::from_secs(1);
/// How long a check is trusted (a little over the interval, so that it never lapses).
const RESIDENCY_VALID_MS: u64 = 1_500;

/// Starts the thread that runs timed fsyncs (`Durability::Every`), hint writing, background
/// compaction, spare segments and the residency check that lets `try_get` skip a system call
/// per read; none when neither fsyncs nor compaction are timed and the store makes no spares.
pub(crate) fn spawn_background(inner: &Arc<Inner>) -> std::io::Result<Option<JoinHandle<()>>> {
    if !inner.runs_background() {
        return Ok(None);
    }
    let every = match inner.options.durability {
        Durability::Every(d) => Some(d),
        _ => None,
    };
    let compaction = inner.options.compaction_interval;
    let inner = inner.clone();
    let tick = every
        .into_iter()
        .chain(compaction)
        .chain([RESIDENCY_INTERVAL])
        .min()
        .unwrap_or(RESIDENCY_INTERVAL)
        .max(Duration::from_millis(1));
    std::thread::Builder::new()
        .name("ttlcask-background".into())
        .spawn(move || {
            let mut last_compaction = Instant::now();
            let mut last_residency: Option<Instant> = None;
            let mut nudged = false;
            loop {
                let periodic = last_residency.is_none_or(|t| t.elapsed() >= RESIDENCY_INTERVAL);
                if periodic {
                    last_residency = Some(Instant::now());
                    inner.check_residency();
                    inner.check_active_linked();
                    inner.check_sealed_linked();
                    inner.reserve.ensure();
                    inner.recheck_disk_full();
                    if inner.health.is_poisoned() {
                        inner.log_doubt();
                    }
                }
                // Also as soon as the writer asks (half a segment written, or a rollover).
                // Files are made by name: none once the directory's name leads elsewhere (a
                // spare went into the new directory of a data dir replaced under the store:
                // found from outside).
                if (periodic || nudged) && inner.check_dir().is_ok() {
                    // What could not be cut is tried again at the next tick.
                    let _ = inner.trim_sealed();
                    inner.prepare_spare();
                    // Hints as soon as a sealed segment is cut, not at the next compaction
                    // run: a hint names a segment's records, so damage to the segment costs
                    // exactly its keys (read as lost) rather than an unknown number of them,
                    // whose keys could read older values. Waiting for the compaction interval
                    // left every segment sealed in the last 30 s without one after a crash.
                    let _ = inner.write_missing_hints();
                }
                let woken = inner.shutdown.sleep(tick);
                if woken.stopping {
                    return;
                }
                nudged = woken.nudged;
                if every.is_some() {
                    let lsn = inner.appended_lsn();
                    let _ = inner.wait_durable(lsn);
                }
                if let Some(interval) = compaction {
                    // Early, at most once a second, when deletes found the disk full.
                    let wanted = last_compaction.elapsed() >= interval.min(SPACE_WANTED_EVERY)
                        && inner.space_wanted.swap(false, Ordering::Relaxed);
                    if wanted || last_compaction.elapsed() >= interval {
                        last_compaction = Instant::now();
                        // Asked for by writes that found the disk full: whatever can be
                        // reclaimed, not only segments past the dead ratio. Found from
                        // outside: after a restart on a full disk, deletes got 507 for good,
                        // as no segment passed the ratio and no run started.
                        let ratio = (!wanted).then_some(inner.options.compaction_dead_ratio);
                        let _ = inner.compact(ratio);
                    }
                }
            }
        })
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_thread_gathers_only_after_a_concurrent_batch() {
        // A lone writer, and a few, are synced at once: no added wait.
        for last in 0..GATHER_FROM {
            assert_eq!(gather_after(last), 0, "after a batch of {last}");
        }
        assert_eq!(gather_after(GATHER_FROM), GATHER_FROM);
        assert_eq!(gather_after(40), 40);
    }
}
