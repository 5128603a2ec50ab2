//! Opening a store: the directory's locks, recovery, the first active segment (its size
//! fitted to the disk) and the seal log written anew, then the background threads.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::background::{spawn_background, spawn_syncer};
use crate::combine::Combiner;
use crate::error::OpenError;
use crate::format::{self, SEGMENT_HEADER_LEN};
use crate::fs::FileSystem;
use crate::group_commit::GroupCommit;
use crate::index::{SegmentSlot, State};
use crate::options::{Durability, StoreBuilder};
use crate::recovery;
use crate::segment::Segment;
use crate::sharded::ShardedRwLock;
use crate::signals::{DurableQueue, HealthState, Shutdown};
use crate::space::{SpaceReserve, Spare};
use crate::writer::Writer;

use super::{new_segment_header, Counters, Handle, Inner, Store};

/// Capacity of the active segment an open starts. A store that makes spares (durable ones,
/// by default) and already holds a segment's worth of data starts with a small one,
/// [`FIRST_SEGMENT_SIZE`]: appends into blocks never written cost a dearer fsync than appends
/// into a spare's zeros (64 writers made 120k writes/s against 133k), and a small first
/// segment fills, and makes the background thread write a spare, within seconds of writing,
/// where a full-size one took the first segment's worth of slower writes. A new or small
/// store starts full-size, so that it never pays for a spare it does not need.
/// The segment size for a file system with `free` bytes free beside the `stored` bytes of
/// the store's segments: `configured`, unless that is more than a sixteenth of the two
/// together; then the largest power of two within it (at least the smallest segment). The
/// active segment, a spare and the space reserve (a segment and a quarter) must leave room
/// for data: with 64 MiB segments on a 32 MB disk there was no reserve, and once the disk
/// was full every delete was refused for good (found from outside).
pub(crate) fn fitted_segment_size(configured: u64, free: Option<u64>, stored: u64) -> u64 {
    let Some(free) = free else {
        return configured;
    };
    let fitted = free.saturating_add(stored) / 16;
    if configured <= fitted {
        return configured;
    }
    let power = if fitted == 0 { 0 } else { 1 << fitted.ilog2() };
    power.max(crate::options::MIN_SEGMENT_SIZE)
}

fn first_segment_size(segment_size: u64, spares: bool, stored: u64) -> u64 {
    if spares && stored >= segment_size {
        segment_size.min(FIRST_SEGMENT_SIZE)
    } else {
        segment_size
    }
}

/// See [`first_segment_size`].
const FIRST_SEGMENT_SIZE: u64 = 4 << 20;

/// The active segment of a store being opened: `wanted` bytes, or on a full disk smaller
/// ones, or at last a detached segment with no file that the first write replaces (or is
/// refused with `DiskFull`): a full disk never keeps a store from opening. True if the disk
/// was full.
fn create_active(
    fs: &dyn FileSystem,
    dir: &Path,
    header: format::SegmentHeader,
    wanted: u64,
    durable: bool,
) -> std::io::Result<(Segment, bool)> {
    let mut size = wanted;
    loop {
        match Segment::create(fs, dir, header, size, durable) {
            Ok(seg) => return Ok((seg, size < wanted)),
            Err(e) if crate::fs::is_out_of_space(&e) => {
                if size / 2 < crate::options::MIN_SEGMENT_SIZE {
                    return Ok((Segment::detached(dir, header), true));
                }
                size /= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A salt that a client cannot predict: std's `RandomState` keys come from the operating
/// system's random source.
fn random_salt() -> u32 {
    use std::hash::BuildHasher;
    let h = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    (h ^ (h >> 32)) as u32
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    pub(crate) fn open_with(mut options: StoreBuilder, dir: &Path) -> Result<Self, OpenError> {
        let fs = options.file_system.clone();
        let read_only = options.read_only;
        let lock_path = dir.join("LOCK");
        let names = if read_only {
            // Nothing is created: the directory (and its LOCK, if a store ever ran here)
            // must be there.
            fs.list(dir).map_err(io_err(dir))?
        } else {
            fs.create_dir_all(dir).map_err(io_err(dir))?;
            vec!["LOCK".to_string()]
        };
        // The directory is locked too: `LOCK` can be deleted under a running store, and a
        // second one then made and locked a new `LOCK` and wrote into the same directory
        // (found from outside). `LOCK` stays locked for releases that lock only it. Where no
        // `LOCK` is taken (a read-only open of a directory without one), neither is this.
        let lock: Box<dyn Send + Sync> = if names.iter().any(|n| n == "LOCK") {
            let file = if read_only {
                fs.try_lock_existing(&lock_path)
            } else {
                fs.try_lock(&lock_path)
            };
            let file = match file.map_err(io_err(&lock_path))? {
                Some(lock) => lock,
                None => return Err(OpenError::Locked { path: lock_path }),
            };
            let dir_lock = match fs.try_lock_dir(dir).map_err(io_err(dir))? {
                Some(lock) => lock,
                None => return Err(OpenError::Locked { path: lock_path }),
            };
            Box::new((file, dir_lock))
        } else {
            Box::new(())
        };
        let durable = options.durability != Durability::Never && !read_only;
        let recovered = recovery::recover(
            fs.as_ref(),
            dir,
            durable,
            options.recovery_policy,
            read_only,
        )
        .map_err(|e| match e {
            recovery::RecoverError::Io { path, source } => OpenError::Io { path, source },
            recovery::RecoverError::Damaged(why) => OpenError::Damaged(why),
        })?;
        let mut state = recovered.state;
        // Headers and records above these limits were refused while reading; these checks
        // keep a crafted directory from exhausting ids or versions (found by fuzzing).
        if recovered.max_version >= format::VERSION_LIMIT / 2
            || recovered.max_segment_id >= format::SEGMENT_ID_LIMIT / 2
        {
            return Err(OpenError::Damaged(format!(
                "its highest version ({}) or segment id ({}) is implausibly large",
                recovered.max_version, recovered.max_segment_id
            )));
        }
        let next_version = recovered.max_version + 1;
        let active_id = recovered.max_segment_id + 1;
        let salt = random_salt();
        let header = new_segment_header(active_id, next_version, salt);
        let mut reserve = None;
        let (active, disk_full) = if read_only {
            // Nothing is made: the disk is full if not even the smallest segment would fit
            // (found from outside: `ttlcask stats` of a stopped dir on a full disk said
            // `disk_full: false`).
            let full = fs
                .free_space(dir)
                .is_some_and(|free| free < crate::options::MIN_SEGMENT_SIZE);
            (Segment::detached(dir, header), full)
        } else {
            let stored: u64 = state.segments.values().map(|s| s.data_len).sum();
            if !options.segment_size_chosen {
                options.segment_size =
                    fitted_segment_size(options.segment_size, fs.free_space(dir), stored);
            }
            // The space reserve before the active segment: what recovery gave back (the
            // cut tail of the segment a crash stopped, say) goes to it first where it is
            // short, as at every rollover, so that compaction has room for an output. Made
            // after, on a full disk it got nothing: a reserve a crash had spent was never
            // made again, and every delete was refused for good (found from outside).
            let made = SpaceReserve::new(fs.clone(), dir, options.segment_size);
            made.adopt();
            made.ensure();
            reserve = Some(made);
            let spares = durable && options.spare_segments;
            let size = first_segment_size(options.segment_size, spares, stored);
            create_active(fs.as_ref(), dir, header, size, durable).map_err(io_err(dir))?
        };
        if durable && active.capacity() > 0 {
            fs.sync_dir(dir).map_err(io_err(dir))?;
        }
        // After the active segment, which on a nearly full disk comes first.
        let seals = if read_only || recovered.seals_unreadable {
            crate::seals::SealLog::none(dir)
        } else {
            // A durable store's active segment is synced, and its name: logged as started.
            let started = (durable && active.capacity() > 0).then_some(active_id);
            write_seal_log(&fs, dir, &mut state, &recovered.seals, started)
        };
        let active = Arc::new(active);
        if active.capacity() > 0 {
            state.segments.insert(
                active_id,
                SegmentSlot::new(active.clone(), SEGMENT_HEADER_LEN as u64),
            );
        }
        let health = HealthState::default();
        health.set_disk_full(disk_full);
        let segment_size = options.segment_size;
        let spare = Spare::new(fs.clone(), dir, segment_size);
        let reserve = reserve.unwrap_or_else(|| SpaceReserve::new(fs.clone(), dir, segment_size));
        let always = options.durability == crate::Durability::Always;
        let dir_identity = fs.dir_identity(dir);
        let inner = Arc::new(Inner {
            salt,
            dir: dir.to_path_buf(),
            fs,
            clock: options.clock.clone(),
            options,
            state: ShardedRwLock::new(state),
            writer: Mutex::new(Writer::new(active, active_id + 1, next_version)),
            combiner: Combiner::default(),
            sync: GroupCommit::new(always),
            unsynced: Mutex::new(None),
            dir_identity,
            health,
            counters: Counters::default(),
            report: recovered.report,
            compaction: Mutex::new(()),
            space_wanted: std::sync::atomic::AtomicBool::new(false),
            shutdown: Shutdown::default(),
            _lock: lock,
            deferred: DurableQueue::default(),
            spare,
            reserve,
            seals,
        });
        // The index the open built onto huge pages, on the process's own thread for that.
        crate::huge::collapse_soon();
        let (thread, syncer) = if read_only {
            (None, None)
        } else {
            (
                spawn_background(&inner).map_err(io_err(dir))?,
                spawn_syncer(&inner).map_err(io_err(dir))?,
            )
        };
        Ok(Self {
            handle: Arc::new(Handle {
                inner,
                thread,
                syncer,
            }),
        })
    }
}

/// Writes the seal log anew for the segments recovery left (all sealed): the entries it
/// had for them, and for each segment it did not name (a data dir from before the log, a
/// `never` store's rollovers, a segment recovery cut) a new one once the segment is synced;
/// then `started`, the new active segment. The log is advice: where it cannot be written,
/// the store opens with none (and recovery judges segments by their ends, as before it).
fn write_seal_log(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    state: &mut State,
    logged: &std::collections::HashMap<u32, u64>,
    started: Option<u32>,
) -> crate::seals::SealLog {
    let mut entries = Vec::with_capacity(state.segments.len() + 1);
    // Segments recovery kept but could not read (damaged whole) keep their entries: without
    // one, a zeroed file would pass for a blank segment at the next open and be removed.
    // (`logged` names only segment files that are there.)
    for (&id, &len) in logged {
        if !state.segments.contains_key(&id) {
            entries.push((id, len));
        }
    }
    let mut listed = Vec::with_capacity(state.segments.len());
    for (&id, slot) in &state.segments {
        // A logged length stays as it was sealed, also for a segment found short of it
        // (damaged: reported again at every open until compaction moves its records).
        match logged.get(&id) {
            Some(&len) => entries.push((id, len)),
            None if slot.segment.sync().is_ok() => entries.push((id, slot.data_len)),
            None => continue,
        }
        listed.push(id);
    }
    entries.sort_unstable();
    entries.extend(started.map(|id| (id, crate::seals::STARTED)));
    match crate::seals::SealLog::write(fs, dir, &entries) {
        Ok(log) => {
            for id in listed {
                if let Some(slot) = state.segments.get_mut(&id) {
                    slot.logged = true;
                }
            }
            log
        }
        Err(_) => {
            // (A full disk.) The old log would go on naming segments this run's compactions
            // remove, unlogged, which the next open would take for segments lost outside
            // the store.
            crate::seals::stop_recording_removals(fs.as_ref(), &dir.join(crate::seals::SEALS_FILE));
            crate::seals::SealLog::none(dir)
        }
    }
}
