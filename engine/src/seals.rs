//! The seal log (`seals.log`): the length each sealed segment was synced with.
//!
//! Recovery otherwise tells a segment that was being appended to (whose last frame may be a
//! write torn in flight, cut without a report) from a sealed one by its end: the zeros of
//! pre-allocated space, or a frame trailer. Zeros over the last frames of a sealed segment
//! (a lost sector, a bad block read back as zeros) made it look like the former: its last
//! records vanished unreported, and the values they had overwritten came back (found by an
//! outside test). With the length it was sealed with, recovery reports every byte of data
//! missing before it.
//!
//! Each entry is 16 bytes: segment id (u32), data length (u64), CRC32 of both (u32), all
//! little-endian. An entry is appended, and synced, once a segment's data is synced at its
//! seal (durable stores; compaction outputs and closes always). Every open (not read-only)
//! writes the log anew with exactly the segments left, syncing first each segment it had no
//! entry for, after a layout entry (id `u32::MAX`, length 1) that says the log records
//! removals: the store appends an entry of length [`REMOVED`] before it unlinks a segment,
//! so a sealed segment that is missing and not removed was lost outside the store. A durable
//! store also logs each segment it starts appending to (length [`STARTED`]), once its file
//! is durable and before anything in it is acknowledged, so the segment a crash left
//! unsealed is known too. When a failed sync poisons a durable store, it logs where in the
//! active segment the frames no sync covered begin ([`IN_DOUBT`]): none of them was
//! acknowledged, and the next open drops them, as a write torn in flight is dropped. The
//! log is advice: a segment without an entry is judged by its
//! end as before, and a failed append stops appends until the next open (and, the log no
//! longer recording removals, overwrites the layout entry in place: see
//! [`stop_recording_removals`]).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::fs::{FileSystem, StorageFile};
use crate::signals::HealthState;

/// The file's name in the data directory.
pub(crate) const SEALS_FILE: &str = "seals.log";
const ENTRY_LEN: usize = 16;
/// The length of an entry that says the store removed the segment (compaction's inputs, an
/// expired segment), appended before it unlinks the files.
pub(crate) const REMOVED: u64 = u64::MAX;
/// The length of an entry that says the segment became the one appended to (a durable
/// store's active segment, logged once its file and header are durable, before anything in
/// it is acknowledged): missing later, without a seal or removal entry, it was lost outside
/// the store, with whatever it held (found from outside: after a crash, the newest segment
/// deleted by hand brought back overwritten values, deleted keys and a revoked credential,
/// and every check said clean).
pub(crate) const STARTED: u64 = u64::MAX - 1;
/// The flag of a length that says where, in the segment being appended to, the frames a
/// failed sync left in doubt begin (`IN_DOUBT | offset`): logged once, when a failed sync
/// poisons a durable store, whose writes are acknowledged only once synced. What follows was
/// never acknowledged and the next open drops it. Without it, the failed write-back left a
/// bad range in the middle of the segment, with intact frames after it, which the open
/// could only take for damage: the key whose refused write lay there read as lost, not as
/// its acknowledged value (found from outside, with EIO injected under ext4). Lengths below
/// [`STARTED`] never reach this bit.
pub(crate) const IN_DOUBT: u64 = 1 << 62;
/// The id of the first entry of a log that records removals (its length is the log's
/// layout, 1): only such a log can tell a segment the store removed from one lost outside
/// it. Logs written before removals were recorded lack it (and name, until their next open,
/// segments compaction removed).
const LAYOUT_ID: u32 = u32::MAX;
const LAYOUT_REMOVALS: u64 = 1;

fn encode(id: u32, data_len: u64) -> [u8; ENTRY_LEN] {
    let mut e = [0; ENTRY_LEN];
    e[..4].copy_from_slice(&id.to_le_bytes());
    e[4..12].copy_from_slice(&data_len.to_le_bytes());
    let crc = crc32fast::hash(&e[..12]);
    e[12..].copy_from_slice(&crc.to_le_bytes());
    e
}

/// What a seal log holds: the sealed length of each segment it names (the last entry of an
/// id wins), and its entries that fail their check. A partial or failing last entry is an
/// append torn in flight, not damage.
#[derive(Debug, Default)]
pub(crate) struct Seals {
    pub lengths: HashMap<u32, u64>,
    /// Segments the store logged as removed.
    pub removed: std::collections::HashSet<u32>,
    /// Segments the store logged as started (appended to); a sealed one is in `lengths` too.
    pub started: std::collections::HashSet<u32>,
    /// Segments a failed sync left in doubt ([`IN_DOUBT`]), with the length their
    /// acknowledged data ends at: what follows it was never acknowledged.
    pub acknowledged: HashMap<u32, u64>,
    /// Whether the log records removals (see [`LAYOUT_ID`]): a segment it names as sealed,
    /// not removed, and missing was lost outside the store.
    pub records_removals: bool,
    /// Offsets of damaged entries.
    pub damaged: Vec<u64>,
}

impl Seals {
    /// The segments this log names as sealed (with their lengths) or started (`None`: the
    /// length it reached is unknown) and never removed by the store, for which `present`
    /// finds no file (its segment, or a hint naming its records): lost outside the store.
    /// Empty for a log that does not record removals. In id order.
    pub(crate) fn lost_outside(&self, present: impl Fn(u32) -> bool) -> Vec<(u32, Option<u64>)> {
        if !self.records_removals {
            return Vec::new();
        }
        let started = self
            .started
            .iter()
            .filter(|id| !self.lengths.contains_key(id))
            .map(|&id| (id, None));
        let mut missing: Vec<(u32, Option<u64>)> = self
            .lengths
            .iter()
            .map(|(&id, &len)| (id, Some(len)))
            .chain(started)
            .filter(|&(id, _)| !self.removed.contains(&id) && !present(id))
            .collect();
        missing.sort_unstable();
        missing
    }
}

/// Reads the seal log of `dir` (none: empty).
pub(crate) fn read(fs: &dyn FileSystem, dir: &Path) -> io::Result<Seals> {
    let bytes = match fs.read(&dir.join(SEALS_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Seals::default()),
        Err(e) => return Err(e),
    };
    Ok(parse(&bytes))
}

fn parse(bytes: &[u8]) -> Seals {
    let mut seals = Seals::default();
    let whole = bytes.len() / ENTRY_LEN;
    for (i, e) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
        let crc = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
        if crc32fast::hash(&e[..12]) != crc {
            if i + 1 < whole {
                seals.damaged.push((i * ENTRY_LEN) as u64);
            }
            continue;
        }
        let id = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let mut len = [0; 8];
        len.copy_from_slice(&e[4..12]);
        let len = u64::from_le_bytes(len);
        match (id, len) {
            (LAYOUT_ID, LAYOUT_REMOVALS) if i == 0 => seals.records_removals = true,
            (LAYOUT_ID, _) => {}
            (_, REMOVED) => {
                seals.removed.insert(id);
            }
            (_, STARTED) => {
                seals.started.insert(id);
            }
            (_, len) if len & IN_DOUBT != 0 => {
                seals.acknowledged.insert(id, len & !IN_DOUBT);
            }
            _ => {
                seals.lengths.insert(id, len);
            }
        }
    }
    seals
}

/// Makes the log at `path` one that does not record removals, so that the next open checks
/// no missing segment against it: its first entry (the layout) is overwritten in place,
/// which needs no space on a full disk, and the sealed lengths stay; where even that fails,
/// the log goes.
pub(crate) fn stop_recording_removals(fs: &dyn FileSystem, path: &Path) {
    let claims = fs
        .read(path)
        .is_ok_and(|b| b.starts_with(&encode(LAYOUT_ID, LAYOUT_REMOVALS)));
    if !claims {
        return;
    }
    let overwritten = fs.open(path).and_then(|f| {
        f.write_at_unmapped(&encode(LAYOUT_ID, 0), 0)?;
        f.sync()
    });
    if overwritten.is_err() {
        let _ = fs.remove(path);
    }
}

/// The open seal log of a store, appended to at each seal.
pub(crate) struct SealLog {
    path: PathBuf,
    /// Where the file lives, to remove it when an append fails (`None`: a log that takes no
    /// appends).
    fs: Option<Arc<dyn FileSystem>>,
    /// The file and its length; `None` once an append failed (or the store is read-only):
    /// no more appends until the next open writes the log anew.
    file: Mutex<Option<(Box<dyn StorageFile>, u64)>>,
    /// The log's length when an append failed (where the failed entry began).
    failed_at: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SealLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SealLog {
    /// A log that takes no appends (a read-only store).
    pub(crate) fn none(dir: &Path) -> Self {
        Self {
            path: dir.join(SEALS_FILE),
            fs: None,
            file: Mutex::new(None),
            failed_at: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Writes the log of `dir` anew with `entries` (written beside it, synced, renamed into
    /// place, the directory synced) and opens it for appends.
    pub(crate) fn write(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        entries: &[(u32, u64)],
    ) -> io::Result<Self> {
        let path = dir.join(SEALS_FILE);
        let bytes: Vec<u8> = std::iter::once((LAYOUT_ID, LAYOUT_REMOVALS))
            .chain(entries.iter().copied())
            .flat_map(|(id, len)| encode(id, len))
            .collect();
        crate::fs::write_atomically(fs.as_ref(), dir, &path, &bytes)?;
        let file = fs.open(&path)?;
        Ok(Self {
            path,
            fs: Some(fs.clone()),
            file: Mutex::new(Some((file, bytes.len() as u64))),
            failed_at: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Appends (and syncs) the sealed length of segment `id`, whose data is synced; false if
    /// it could not. A failure stops appends until the next open and is not an error of the
    /// seal: without an entry, recovery judges the segment by its end, as before the log.
    /// One that is not for space (an EIO on the write or the fsync) poisons the store through
    /// `health`, as a failed fsync of a segment does (the log was dropped in silence: found
    /// from outside); out of space, the log is advice the store goes on without.
    pub(crate) fn append(&self, id: u32, data_len: u64, health: &HealthState) -> bool {
        let mut file = self.file.lock();
        let Some((f, len)) = file.as_mut() else {
            return false;
        };
        let entry = encode(id, data_len);
        let Err(e) = f.write_at_unmapped(&entry, *len).and_then(|()| f.sync()) else {
            *len += ENTRY_LEN as u64;
            return true;
        };
        if !crate::fs::is_out_of_space(&e) {
            health.poison(format!("writing the seal log ({SEALS_FILE}) failed: {e}"));
        }
        // A partial entry may be on disk: a later one after it would make it look like
        // damage in the middle of the log. And the removals it can no longer record would
        // make the next open take segments the store removed for lost: the log goes (the
        // next open writes it anew; removing a file needs no space).
        self.failed_at
            .store(*len, std::sync::atomic::Ordering::Relaxed);
        *file = None;
        if let Some(fs) = &self.fs {
            stop_recording_removals(fs.as_ref(), &self.path);
        }
        false
    }

    /// Appends (and syncs) that the store removes segment `id` now; false if it could not
    /// (the log is then gone, see [`SealLog::append`]).
    pub(crate) fn append_removed(&self, id: u32, health: &HealthState) -> bool {
        self.append(id, REMOVED, health)
    }

    /// Appends (and syncs) that a failed sync left in doubt what segment `id` holds past
    /// `acknowledged` bytes ([`IN_DOUBT`]); false if it could not (then the next open takes
    /// what it finds there for damage, as before).
    pub(crate) fn append_in_doubt(&self, id: u32, acknowledged: u64, health: &HealthState) -> bool {
        let len = IN_DOUBT | acknowledged;
        let Some(fs) = self.fs.as_ref() else {
            return false;
        };
        if self.file.lock().is_some() {
            return self.append(id, len, health);
        }
        // An append failed before (the disk failed every write for a moment, this one's
        // first try included), and the log takes no more: the entry goes where that append
        // began, over whatever part of it stands there, or, where the log went, into a log
        // of its own (one that records no removals). The store is poisoned already.
        let entry = encode(id, len);
        let written = match fs.open(&self.path) {
            Ok(f) => f
                .write_at_unmapped(
                    &entry,
                    self.failed_at.load(std::sync::atomic::Ordering::Relaxed),
                )
                .and_then(|()| f.sync()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self
                .path
                .parent()
                .ok_or_else(|| io::Error::other("the seal log has no directory"))
                .and_then(|dir| crate::fs::write_atomically(fs.as_ref(), dir, &self.path, &entry)),
            Err(e) => Err(e),
        };
        written.is_ok()
    }

    /// Appends (and syncs) that segment `id`, whose file and header are durable, is the one
    /// appended to from now on ([`STARTED`]); false if it could not.
    pub(crate) fn append_started(&self, id: u32, health: &HealthState) -> bool {
        self.append(id, STARTED, health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_are_recorded_only_by_a_log_that_says_so() {
        let log = |entries: &[(u32, u64)]| -> Vec<u8> {
            entries
                .iter()
                .flat_map(|&(id, len)| encode(id, len))
                .collect()
        };
        let seals = parse(&log(&[
            (LAYOUT_ID, LAYOUT_REMOVALS),
            (1, 100),
            (2, 200),
            (1, REMOVED),
            (3, STARTED),
            (3, IN_DOUBT | 4096),
        ]));
        assert!(seals.records_removals);
        assert_eq!(seals.lengths, HashMap::from([(1, 100), (2, 200)]));
        assert_eq!(seals.removed, std::collections::HashSet::from([1]));
        assert_eq!(seals.started, std::collections::HashSet::from([3]));
        assert_eq!(seals.acknowledged, HashMap::from([(3, 4096)]));
        // The layout only counts as the first entry; an old log has none.
        assert!(!parse(&log(&[(1, 100), (LAYOUT_ID, LAYOUT_REMOVALS)])).records_removals);
        assert!(!parse(&log(&[(1, 100)])).records_removals);
        // A log that cannot go on recording them stops saying so and keeps its lengths.
        let fs: Arc<dyn FileSystem> = Arc::new(crate::sim::SimFs::new());
        let dir = Path::new("/s");
        let written = SealLog::write(&fs, dir, &[(3, 300)]).expect("write");
        assert!(read(fs.as_ref(), dir).expect("read").records_removals);
        drop(written);
        stop_recording_removals(fs.as_ref(), &dir.join(SEALS_FILE));
        let seals = read(fs.as_ref(), dir).expect("read");
        assert!(!seals.records_removals);
        assert_eq!(seals.lengths, HashMap::from([(3, 300)]));
        assert!(seals.damaged.is_empty());
    }

    #[test]
    fn entries_round_trip_and_a_torn_last_entry_is_no_damage() {
        let mut bytes: Vec<u8> = [(1, 100), (2, 200), (1, 150)]
            .iter()
            .flat_map(|&(id, len)| encode(id, len))
            .collect();
        let seals = parse(&bytes);
        assert_eq!(seals.lengths, HashMap::from([(1, 150), (2, 200)]));
        assert!(seals.damaged.is_empty());
        // A torn append: a partial entry, or a whole one that fails its check.
        bytes.extend_from_slice(&encode(3, 300)[..7]);
        assert!(parse(&bytes).damaged.is_empty());
        bytes.truncate(3 * ENTRY_LEN);
        bytes.extend_from_slice(&[0xA5; ENTRY_LEN]);
        let seals = parse(&bytes);
        assert!(seals.damaged.is_empty());
        assert_eq!(seals.lengths.len(), 2);
        // A damaged entry before the last: reported, the others kept.
        bytes[ENTRY_LEN + 5] ^= 1;
        let seals = parse(&bytes);
        assert_eq!(seals.damaged, vec![ENTRY_LEN as u64]);
        assert_eq!(seals.lengths, HashMap::from([(1, 150)]));
    }
}
