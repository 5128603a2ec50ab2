//! Opening a data directory: read every segment (through its hint when one is valid), cut
//! torn tails, and rebuild the index. Loading the segments is in `load.rs`; scanning one and
//! judging its damage, in `damage.rs`.
//!
//! Replay does not depend on the order of records: compaction moves records between
//! segments, so each record is judged by its version. A put or tombstone wins over every
//! lower version of its key; a clear or drop hides every item of its namespace at or below
//! its version; a namespace exists when its newest create is newer than its newest drop.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::{self, EntryMeta, Op, Summary};
use crate::fs::FileSystem;
use crate::index::{Entry, KeyDir, Location, Namespace, SegmentSlot, State};
use crate::keydir::Bulk;
use crate::options::RecoveryPolicy;
use crate::scan;
use crate::segment::{self, Segment, SegmentOpenError};
use crate::store::{DamagedRange, RecoveryReport};

mod damage;
mod load;

use damage::{cut, damaged_range, lose_whole, not_intact, note_damaged, range_of_records};
pub(crate) use damage::{rebuild_header, replaced_records, scan_sealed, unsealed};
pub(crate) use load::hint_summaries;
use load::{load_segments, Distrust, LoadStop};

/// How the report names a segment file that was created but whose header never reached
/// the disk (a crash while starting a segment); it is removed.
pub(crate) const BLANK_SEGMENT: &str = "blank segment removed (its header never reached the disk)";

/// Why recovery did not produce an index.
#[derive(Debug)]
pub enum RecoverError {
    /// The file system refused, at `path` (the file, or the directory: the open's error
    /// names it; it named only the directory, found from outside).
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Damage that the policy does not accept.
    Damaged(String),
}

impl RecoverError {
    /// An I/O error at `path`, for `map_err`.
    fn at(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What recovery hands to the store.
#[derive(Debug)]
pub struct Recovered {
    /// The rebuilt index.
    pub state: State,
    /// Highest version seen anywhere (records and segment headers).
    pub max_version: u64,
    /// Highest segment id seen.
    pub max_segment_id: u32,
    /// What was found and repaired.
    pub report: RecoveryReport,
    /// The sealed lengths the seal log gave (`seals.rs`), of the segment files there are.
    pub seals: HashMap<u32, u64>,
    /// The seal log could not be read: the open leaves it as it is (not written anew from
    /// what this open knows, which would erase what it held).
    pub seals_unreadable: bool,
}

#[derive(Debug, Default)]
struct ReplayNamespace {
    created: Option<(u64, Location)>,
    dropped: u64,
    floor: u64,
    /// Newest put or tombstone per key, as records arrive; a tombstone is an entry of length
    /// 0 (no record is).
    arriving: Bulk,
    /// The same, once every segment is read.
    items: KeyDir,
    /// Bytes per segment of the records in `items`.
    live: LiveBytes,
    /// Lowest version among them, and whether any is a tombstone: whether `into_namespaces`
    /// has any to leave out.
    oldest: Option<u64>,
    tombstones: bool,
}

/// One entry as replay sees it, from a segment scan or a hint.
struct Seen<'a> {
    meta: EntryMeta,
    namespace: &'a [u8],
    key: &'a [u8],
    segment: u32,
    offset: u32,
    len: u32,
    shape: format::Shape,
}

#[derive(Debug, Default)]
struct Replay {
    names: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    namespaces: Vec<(Box<[u8]>, ReplayNamespace)>,
    /// Records come in runs of one namespace: remember the last one's slot.
    last: Option<usize>,
    max_version: u64,
    /// Records lost to damage: (summary, segment, offset of the damaged range).
    lost: Vec<(Summary, u32, u64)>,
    /// What every namespace's keys hash with, shared with a sibling's (see
    /// [`Bulk::absorb`]).
    hasher: foldhash::fast::RandomState,
}

impl Replay {
    /// An empty replay for another thread, to be absorbed into this one.
    fn sibling(&self) -> Self {
        Self {
            hasher: self.hasher,
            ..Self::default()
        }
    }

    /// Takes over what `other` replayed: replay is the same whatever order records come in.
    fn absorb(&mut self, other: Replay) {
        self.max_version = self.max_version.max(other.max_version);
        self.lost.extend(other.lost);
        for (name, theirs) in other.namespaces {
            let ours = self.namespace(&name);
            if theirs
                .created
                .is_some_and(|(v, _)| ours.created.is_none_or(|(o, _)| o < v))
            {
                ours.created = theirs.created;
            }
            ours.dropped = ours.dropped.max(theirs.dropped);
            ours.floor = ours.floor.max(theirs.floor);
            ours.arriving.absorb(theirs.arriving);
            ours.live.merge(theirs.live);
            ours.oldest = match (ours.oldest, theirs.oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            ours.tombstones |= theirs.tombstones;
        }
    }

    fn namespace(&mut self, name: &[u8]) -> &mut ReplayNamespace {
        let slot = match self.last {
            Some(i) if &*self.namespaces[i].0 == name => i,
            _ => {
                let next = self.namespaces.len();
                let i = *self.names.entry(name.into()).or_insert(next);
                if i == next {
                    let ns = ReplayNamespace {
                        arriving: Bulk::with_hasher(self.hasher),
                        ..ReplayNamespace::default()
                    };
                    self.namespaces.push((name.into(), ns));
                }
                self.last = Some(i);
                i
            }
        };
        &mut self.namespaces[slot].1
    }

    /// Sizes each namespace's staging for the records a hint's table says it has (at most:
    /// some are tombstones or older versions). A record takes at least a byte of the hint's
    /// `hint_len`: a count above that (a damaged table: the hint's CRC is checked only once
    /// it is all read) is not believed.
    fn reserve<'a>(
        &mut self,
        namespace_records: impl Iterator<Item = (&'a [u8], u32)>,
        hint_len: usize,
    ) {
        for (name, n) in namespace_records {
            let n = usize::try_from(n).unwrap_or(usize::MAX).min(hint_len);
            self.namespace(name).arriving.reserve(n);
        }
    }

    fn apply(&mut self, s: &Seen<'_>) {
        let v = s.meta.version;
        self.max_version = self.max_version.max(v);
        let ns = self.namespace(s.namespace);
        let loc = Location {
            segment: s.segment,
            offset: s.offset,
            len: s.len,
        };
        match s.meta.op {
            Op::Put | Op::Tombstone if v > ns.floor => {
                let entry = Entry {
                    version: v,
                    expires_ms: s.meta.expires_ms,
                    segment: s.segment,
                    offset: s.offset,
                    len: if s.meta.op == Op::Tombstone { 0 } else { s.len },
                    kind: s.meta.kind,
                    shape: s.shape,
                };
                ns.live.add(entry.segment, entry.len);
                ns.oldest = Some(ns.oldest.map_or(v, |o| o.min(v)));
                ns.tombstones |= entry.len == 0;
                ns.arriving.insert_if_newer(s.key, entry);
            }
            Op::Put | Op::Tombstone => {}
            Op::CreateNamespace => {
                if ns.created.is_none_or(|(cv, _)| cv < v) {
                    ns.created = Some((v, loc));
                }
            }
            Op::ClearNamespace => ns.floor = ns.floor.max(v),
            Op::DropNamespace => {
                ns.floor = ns.floor.max(v);
                ns.dropped = ns.dropped.max(v);
            }
        }
    }

    /// Fills each namespace's key directory from the records that arrived: once every
    /// segment is read.
    fn settle(&mut self) {
        for (_, ns) in &mut self.namespaces {
            let live = &mut ns.live;
            ns.items = std::mem::take(&mut ns.arriving).finish(|e| live.sub(e.segment, e.len));
        }
    }

    /// Turns the lost records into marks in `state`, leaving out item marks that a newer
    /// record of the same key or namespace makes moot. A lost namespace record stays marked
    /// even below the namespace's floor: a lost create older than a surviving clear is what
    /// keeps the namespace of the items written after the clear (`into_namespaces`), and
    /// such a mark never fails a read (live items are all above the floor).
    fn mark_lost(&mut self, state: &mut State) {
        for (s, segment, offset) in std::mem::take(&mut self.lost) {
            state.mark_lost(&s, segment, offset);
        }
        if state.lost.is_empty() && state.lost_namespaces.is_empty() {
            return;
        }
        for (name, rns) in &mut self.namespaces {
            let ns_hash = crc32fast::hash(name);
            let floor = rns.floor;
            state
                .lost
                .retain(|&(n, _), m| n != ns_hash || m.version > floor);
            if state.lost.keys().all(|&(n, _)| n != ns_hash) {
                continue;
            }
            let mut indexed_lost = Vec::new();
            for (key, e) in rns.items.iter() {
                let k = (ns_hash, crc32fast::hash(key));
                let Some(m) = state.lost.get(&k) else {
                    continue;
                };
                if (m.version, m.segment, m.offset) == (e.version, e.segment, u64::from(e.offset)) {
                    // The lost record itself, indexed from a hint before its range was found
                    // damaged (`damage_before_the_end`): out of the index, its mark kept.
                    indexed_lost.push((key.to_vec(), e));
                } else if m.version <= e.version {
                    // At or above the lost record's version: the same record intact
                    // elsewhere (a compaction output whose input was not yet deleted)
                    // serves the key.
                    state.lost.remove(&k);
                }
            }
            for (key, e) in indexed_lost {
                rns.items.remove(&key);
                rns.live.sub(e.segment, e.len);
            }
        }
    }

    /// The namespaces that survive, each with its live items; `live` gets their bytes per
    /// segment (every key is visited again only in a namespace with tombstones or items
    /// under a clear, which are left out).
    fn into_namespaces<'a>(
        self,
        state: &'a State,
        live: &'a mut LiveBytes,
    ) -> impl Iterator<Item = (Box<[u8]>, Namespace)> + 'a {
        self.namespaces
            .into_iter()
            .filter_map(move |(name, mut rns)| {
                if rns.created.is_none() && !rns.items.is_empty() {
                    // Its create record was lost to damage: the items that survived keep it.
                    let lost = state.lost_namespaces.get(&crc32fast::hash(&name));
                    rns.created = lost.map(|m| {
                        let at = Location {
                            segment: m.segment,
                            offset: 0,
                            len: 0,
                        };
                        (m.version, at)
                    });
                }
                let (created_version, created_at) = rns.created?;
                if created_version <= rns.dropped {
                    return None;
                }
                let mut ns = Namespace::new(created_version, created_at);
                ns.floor = rns.floor;
                let floor = rns.floor;
                ns.items = rns.items;
                let deleted = &mut ns.deleted;
                let mut rns_live = rns.live;
                if rns.tombstones || rns.oldest.is_some_and(|o| o <= floor) {
                    ns.items.retain(|key, e| {
                        if e.len == 0 && e.version > floor {
                            deleted.insert(key, *e);
                        }
                        let keep = e.len != 0 && e.version > floor;
                        if !keep {
                            rns_live.sub(e.segment, e.len);
                        }
                        keep
                    });
                }
                live.merge(rns_live);
                live.add(created_at.segment, created_at.len);
                Some((name, ns))
            })
    }
}

/// Reads every segment in `dir` and rebuilds the index.
/// Reads every segment in `dir` and rebuilds the index. Under [`RecoveryPolicy::Strict`],
/// damage other than a torn tail (of a segment being appended to) is an error, returned
/// before any file is changed.
pub fn recover(
    fs: &dyn FileSystem,
    dir: &Path,
    durable: bool,
    policy: RecoveryPolicy,
    read_only: bool,
) -> Result<Recovered, RecoverError> {
    let mut report = RecoveryReport::default();
    let mut segment_ids = Vec::new();
    let mut evidence = Vec::new();
    // Files to remove once the directory is known fit to open: an open refused (damage under
    // the strict policy, a newer format) changes nothing.
    let mut leftovers = Vec::new();
    // The log is advice: one that cannot be read (a bad sector) costs its checks, reported,
    // never the open.
    let (mut seals, seals_unreadable) = match crate::seals::read(fs, dir) {
        Ok(seals) => (seals, false),
        Err(e) => {
            report.ignored_files.push(format!(
                "{}: unreadable ({e}): the lengths segments were sealed with are unknown, so zeros over a sealed segment's end can pass for the unused tail of one being appended to; the log is left as it is and no segment is removed as blank",
                dir.join(crate::seals::SEALS_FILE).display()
            ));
            (crate::seals::Seals::default(), true)
        }
    };
    if let Some(first) = seals.damaged.first() {
        report.ignored_files.push(format!(
            "{}: {} entries fail their check, the first at offset {first} (their segments are judged by their ends)",
            dir.join(crate::seals::SEALS_FILE).display(),
            seals.damaged.len()
        ));
    }
    let mut hint_ids = Vec::new();
    let mut marked_missing = Vec::new();
    for name in fs.list(dir).map_err(RecoverError::at(dir))? {
        if let Some(id) = segment::parse_file_name(&name, "seg") {
            segment_ids.push(id);
        } else if let Some(id) = segment::parse_file_name(&name, "hint") {
            hint_ids.push(id);
        } else if let Some(id) = segment::parse_file_name(&name, segment::EVIDENCE_EXTENSION) {
            evidence.push((id, name));
        } else if let Some(id) = segment::parse_file_name(&name, segment::MISSING_EXTENSION) {
            marked_missing.push(id);
        } else if name.ends_with(".tmp") {
            let path = dir.join(&name);
            match fs.check_regular(&path) {
                // A directory (or a FIFO) under a scratch file's name is not the store's:
                // left alone and reported (removing it stopped the open, naming no file).
                Err(e) if crate::fs::is_not_regular(&e) => report.ignored_files.push(format!(
                    "{}: {e}, where the store keeps a scratch file: left alone (the store removes and reuses only regular files)",
                    path.display()
                )),
                // The space reserve is the store's to adopt.
                _ if crate::space::is_reserve_file(&name) => {}
                // A hint that was never renamed into place, or a spare segment: never
                // trusted, safe to remove.
                _ => leftovers.push(path),
            }
        }
    }
    segment_ids.sort_unstable();
    // A segment the log names as sealed that is missing was lost outside the store, where
    // the log records removals: the store logs a segment's removal before unlinking it.
    // Its records are unknown (a hint left behind names them: handled below).
    // (A segment moved aside as evidence was logged as removed first.)
    let missing =
        seals.lost_outside(|id| segment_ids.binary_search(&id).is_ok() || hint_ids.contains(&id));
    let missing_ids: Vec<u32> = missing.iter().map(|&(id, _)| id).collect();
    // Each gets a marker file once the open goes ahead (the log's entry is dropped below):
    // the loss is reported at every open and by `verify` until the operator removes it.
    // Found from outside: reported once, then every later open was clean while those keys
    // read older values.
    let mut markers = Vec::new();
    for (id, len) in missing {
        let how = match len {
            Some(len) => format!("sealed with {len} bytes"),
            None => "appended to when the store stopped".to_string(),
        };
        let problem = format!(
            "the segment file is missing ({how}, seals.log) and the store did not remove it; no hint names its records: their keys may read older values (recorded in {}; remove that file once the loss is dealt with)",
            segment::missing_file_name(id)
        );
        markers.push((id, len, problem.clone()));
        report.damaged.push(DamagedRange {
            segment: id,
            offset: 0,
            len: len.unwrap_or(0).max(1),
            records: None,
            problem,
        });
    }
    for &id in marked_missing.iter().filter(|id| !missing_ids.contains(id)) {
        report.damaged.push(missing_marked(dir, id));
    }
    // Entries of segments deleted since (compaction's inputs) are dropped here: the store
    // writes the log anew from what recovery hands back.
    seals
        .lengths
        .retain(|id, _| segment_ids.binary_search(id).is_ok());

    let mut state = State::default();
    // A hint whose segment is gone names what the segment held: the store removes a
    // segment's hint before the segment, so only a segment lost outside it leaves one. Its
    // id is never given to a new segment (the hint would seem to describe it).
    hint_ids.retain(|id| segment_ids.binary_search(id).is_err());
    let mut max_segment_id = evidence
        .iter()
        .map(|(id, _)| *id)
        .chain(hint_ids.iter().copied())
        .chain(missing_ids.iter().copied())
        .chain(marked_missing.iter().copied())
        .max()
        .unwrap_or(0);
    let mut base_version = 0;
    // Each open reads its segment's header through the map: from the disk, one page fault
    // at a time (3 ms each here), unless the disk is asked for all of them first.
    for &id in &segment_ids {
        fs.prefetch(&dir.join(segment::segment_file_name(id)), 4096);
    }
    let mut opened = Vec::new();
    let mut unreadable = Vec::new();
    // Segments with nothing readable left, and the records their hints name (marked lost).
    let mut lost_whole: Vec<(u32, Vec<(Summary, u64)>)> = Vec::new();
    let present: HashSet<u32> = segment_ids.iter().copied().collect();
    // Segments one of whose two header copies fails its check (read from the other).
    let mut header_damaged = HashSet::new();
    for id in segment_ids {
        max_segment_id = max_segment_id.max(id);
        let path = dir.join(segment::segment_file_name(id));
        let seg = match Segment::open(fs, &path, !read_only) {
            Ok(seg) if seg.id == id => seg,
            Ok(seg) if !present.contains(&seg.id) => {
                // A file renamed from another id (a careless restore): its records are that
                // segment's, in the wrong place in the order of segments. Left out.
                report.ignored_files.push(format!(
                    "{}: header names segment {}, not {id}",
                    path.display(),
                    seg.id
                ));
                continue;
            }
            Ok(seg) => {
                // A header that names another segment that is here too: a misdirected or
                // stale block write over this file's first block. Damaged, and the file
                // read with a header rebuilt from its own frames, as one that fails its
                // checks (ignored whole, its intact records were dropped, and the keys its
                // hint names read older values: found from outside).
                let why = format!("it names segment {}, not {id}", seg.id);
                drop(seg);
                match fs.read(&path) {
                    Ok(bytes) => unreadable.push((id, path, why, bytes)),
                    Err(e) => {
                        let (len, how) = cannot_read(&seals, id, &path, &e);
                        lose_whole(fs, dir, id, len, &how, &mut report, &mut lost_whole);
                    }
                }
                continue;
            }
            Err(SegmentOpenError::Io(e)) => {
                // A segment file that cannot be opened (its mode, or not a regular file: a
                // directory, a FIFO, a symlink to a device) is damage, left as it is, as
                // one whose bytes are lost: the keys its hint names are lost, else its
                // records are unknown. (It refused the open naming only the directory, or
                // hung it: found from outside.)
                let (len, how) = cannot_read(&seals, id, &path, &e);
                lose_whole(fs, dir, id, len, &how, &mut report, &mut lost_whole);
                continue;
            }
            Err(SegmentOpenError::Format(format::DecodeError::NewerFormat(v))) => {
                return Err(RecoverError::Damaged(format!(
                    "{} is in segment format version {v}, written by a newer ttlcask; this release reads format versions {} and {}: upgrade ttlcask (nothing was changed)",
                    path.display(),
                    format::FORMAT_V1,
                    format::FORMAT_VERSION
                )));
            }
            Err(SegmentOpenError::Format(format::DecodeError::UnknownEntryLayout(l))) => {
                return Err(RecoverError::Damaged(format!(
                    "{} holds entries in layout {l}, written by a newer ttlcask; this release reads entry layouts 1 to {}: upgrade ttlcask (nothing was changed)",
                    path.display(),
                    format::WRITE_LAYOUT as u16
                )));
            }
            Err(SegmentOpenError::Format(e)) => {
                // The seal log names segments that held data when sealed: never blank. An
                // unreadable log might have named it.
                // A started one had its header synced before it was logged.
                let sealed = seals_unreadable
                    || seals.started.contains(&id)
                    || seals
                        .lengths
                        .get(&id)
                        .is_some_and(|&l| l > format::SEGMENT_HEADER_LEN as u64);
                // A block the disk cannot read (EIO): the header read through the map as
                // zeros, and the whole file cannot be read to rebuild it. Damage, left in
                // place, as `verify` says (the open stopped, naming the error: found from
                // outside).
                let bytes = match fs.read(&path) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        let (len, how) = cannot_read(&seals, id, &path, &e);
                        lose_whole(fs, dir, id, len, &how, &mut report, &mut lost_whole);
                        continue;
                    }
                };
                if !sealed && bytes.iter().all(|&b| b == 0) {
                    // Created but its header never reached the disk: it holds nothing.
                    leftovers.push(path.clone());
                    report
                        .ignored_files
                        .push(format!("{}: {BLANK_SEGMENT}", path.display()));
                } else {
                    // A header that fails its checks before data: damage, never a blank
                    // segment to remove (its records may be the newest of their keys).
                    unreadable.push((id, path, format!("{e:?}"), bytes));
                }
                continue;
            }
        };
        if let Some(at) = format::damaged_header_copy(&seg.bytes()) {
            // One copy of the header fails its check: read from the other, nothing lost,
            // but the file took damage, reported (it went unreported: found from outside),
            // and the segment marked damaged so that compaction moves its records out.
            report.damaged.push(DamagedRange {
                segment: id,
                offset: at as u64,
                len: format::SEGMENT_HEADER_LEN as u64 / 2,
                records: Some(0),
                problem: "one of the two copies of the segment header fails its check; the other was read (nothing lost)".into(),
            });
            header_damaged.insert(id);
        }
        base_version = base_version.max(seg.base_version);
        opened.push(seg);
    }
    // Segments whose header fails its checks are read with a header rebuilt from their id
    // and their frames, and reported; kept in place if no frame reads.
    let mut rebuilt = HashSet::new();
    for (id, path, e, bytes) in unreadable {
        let Some(header) = rebuild_header(&bytes, id) else {
            let Some(&sealed_len) = seals.lengths.get(&id) else {
                report.ignored_files.push(format!(
                    "{}: the segment header fails its checks ({e}) and no frame after it checks: left in place, its records unknown (their keys may read older values)",
                    path.display()
                ));
                continue;
            };
            // A segment the seal log says held data, with none left (zeroed, or cut to
            // nothing): damage. Its hint, if sound, names the keys it held.
            let how = format!(
                "no frame reads in the file ({} bytes; sealed with {sealed_len}: {e})",
                bytes.len()
            );
            lose_whole(fs, dir, id, sealed_len, &how, &mut report, &mut lost_whole);
            continue;
        };
        drop(bytes);
        report.damaged.push(DamagedRange {
            segment: id,
            offset: 0,
            len: header.data_start() as u64,
            records: Some(0),
            problem: format!(
                "the segment header fails its checks ({e}); its frames were read with a header rebuilt from them"
            ),
        });
        rebuilt.insert(id);
        opened.push(
            Segment::open_rebuilt(fs, &path, header, !read_only)
                .map_err(RecoverError::at(&path))?,
        );
    }
    for id in hint_ids {
        let path = dir.join(segment::hint_file_name(id));
        let Some(lost) = hint_summaries(fs, &path, id) else {
            report.ignored_files.push(format!(
                "{}: hint of a missing segment, and it cannot be read or fails its checks (ignored)",
                path.display()
            ));
            continue;
        };
        // The records it names that no newer record covers (`Replay::mark_lost`) are lost:
        // their keys read as lost, never as the older values other segments still hold.
        report.damaged.push(DamagedRange {
            segment: id,
            offset: 0,
            len: lost.iter().map(|(s, _)| u64::from(s.len)).sum(),
            records: Some(lost.len() as u64),
            problem: format!(
                "the segment file is missing, but its hint {} is here: the records it names that no newer record covers are lost (the hint is kept; remove it once the loss is dealt with)",
                path.display()
            ),
        });
        lost_whole.push((id, lost));
    }
    opened.sort_unstable_by_key(|s| s.id);
    // Loading starts over (the segments opened again) without a hint found damaged after
    // some of its records were applied: at most once per hint.
    let opened_report = report.clone();
    // A hint of a segment with a rebuilt header is not trusted either: it is scanned.
    let mut distrusted: HashMap<u32, Distrust> =
        rebuilt.iter().map(|&id| (id, Distrust::Damaged)).collect();
    let (mut replay, loaded) = loop {
        let mut replay = Replay {
            max_version: base_version,
            ..Replay::default()
        };
        for (id, lost) in &lost_whole {
            for &(summary, offset) in lost {
                replay.lost.push((summary, *id, offset));
            }
        }
        report = opened_report.clone();
        for (id, name) in &evidence {
            load_evidence(fs, &dir.join(name), *id, &mut replay, &mut report);
        }
        match load_segments(
            fs,
            dir,
            opened,
            &distrusted,
            &seals,
            &mut replay,
            &mut report,
        ) {
            Ok(loaded) => break (replay, loaded),
            Err(LoadStop::Io(path, source)) => return Err(RecoverError::Io { path, source }),
            Err(LoadStop::Distrust(id, why, segments)) => {
                distrusted.insert(id, why);
                opened = segments;
            }
        }
    };
    if policy == RecoveryPolicy::Strict {
        // A strict open promises a directory without damage, which only reading every
        // record can tell: a hint names records without their bytes, so damage inside a
        // hinted segment passed a strict open unseen (found from outside: `verify` called
        // the directory damaged and the strict server started). Hinted segments are read
        // whole here; the index stays as their hints built it.
        for (id, seg, stats) in &loaded {
            if !stats.hinted || stats.damaged {
                continue;
            }
            let view = seg.bytes();
            let bytes = &view[..(stats.data_len as usize).min(view.len())];
            let scanned = scan::scan(bytes, &seg.header, false);
            for d in &scanned.damaged {
                let mut range = damaged_range(*id, d);
                range
                    .problem
                    .push_str(" (found reading the hinted segment whole)");
                report.damaged.push(range);
            }
        }
        let mut problems: Vec<String> = report
            .damaged
            .iter()
            .map(|d| {
                format!(
                    "segment {} at offset {} ({} bytes): {}",
                    d.segment, d.offset, d.len, d.problem
                )
            })
            .collect();
        // A segment whose header never reached the disk is what a crash while starting one
        // leaves: no damage.
        problems.extend(
            report
                .ignored_files
                .iter()
                .filter(|f| !crate::store::is_blank_removal(f))
                .cloned(),
        );
        if !problems.is_empty() {
            return Err(RecoverError::Damaged(format!(
                "recovery policy is strict and the data directory is damaged: {}",
                problems.join("; ")
            )));
        }
    }
    if !read_only {
        for path in leftovers {
            fs.remove(&path).map_err(RecoverError::at(&path))?;
        }
        for (id, len, problem) in markers {
            let path = dir.join(segment::missing_file_name(id));
            let written = crate::fs::write_atomically(fs, dir, &path, problem.as_bytes())
                .or_else(|e| place_empty_marker(fs, dir, &path).map_err(|_| e));
            if let Err(e) = written {
                // Then the log keeps telling of it (a sealed one: a segment that was being
                // appended to is told of by this open's report alone).
                report.ignored_files.push(format!(
                    "{}: could not be written ({e}); the seal log keeps the missing segment's entry instead",
                    path.display()
                ));
                if let Some(len) = len {
                    seals.lengths.insert(id, len);
                }
            }
        }
    }
    for (id, seg, slot_stats) in loaded {
        let seg = if slot_stats.cut && !read_only {
            let path = seg.path.clone();
            if seg.unreadable() {
                // Its end read as zeros where the disk failed to read it: cut there,
                // acknowledged records could go for good. The open stops, changing nothing.
                return Err(RecoverError::Damaged(format!(
                    "{}: part of this segment could not be read (the disk returned an I/O error), so where its data ends cannot be told; nothing was cut or changed: start again once the disk reads it (`ttlcask verify` names the damage)",
                    path.display()
                )));
            }
            cut(fs, seg, slot_stats.data_len, durable).map_err(RecoverError::at(&path))?
        } else {
            seg
        };
        let mut slot = SegmentSlot::new(Arc::new(seg), slot_stats.data_len);
        slot.max_expiry = slot_stats.max_expiry;
        slot.max_horizon = slot_stats.max_horizon;
        slot.has_puts = slot_stats.has_puts;
        slot.sealed = true;
        slot.hinted = slot_stats.hinted;
        slot.damaged = slot_stats.damaged || rebuilt.contains(&id) || header_damaged.contains(&id);
        slot.records = slot_stats.records;
        slot.entry_bytes = slot_stats.entry_bytes;
        state.segments.insert(id, slot);
    }

    let max_version = replay.max_version;
    replay.settle();
    replay.mark_lost(&mut state);
    for (name, rns) in &replay.namespaces {
        if rns.dropped > 0 {
            state.drop_floors.insert(name.clone(), rns.dropped);
        }
    }
    report.keys_lost = state.lost.len() as u64;
    let mut live = LiveBytes::default();
    let namespaces: Vec<_> = replay.into_namespaces(&state, &mut live).collect();
    state.namespaces.extend(namespaces);
    account_dead(&mut state, live);
    // New segments take ids above every horizon a record names, not only above the segments
    // left: an id reused after its segment was deleted would be one a record's horizon
    // already counts (and a layout 3 record copied into it would have to write that horizon
    // equal to its segment's id).
    let max_horizon = state
        .segments
        .values()
        .map(|s| s.max_horizon)
        .max()
        .unwrap_or(0);
    let max_segment_id = max_segment_id.max(max_horizon.min(format::SEGMENT_ID_LIMIT - 2));
    Ok(Recovered {
        state,
        max_version,
        max_segment_id,
        report,
        seals: seals.lengths,
        seals_unreadable,
    })
}

#[derive(Debug, Default)]
struct SlotStats {
    data_len: u64,
    max_expiry: u64,
    max_horizon: u32,
    has_puts: bool,
    hinted: bool,
    damaged: bool,
    cut: bool,
    entry_bytes: u64,
    records: u64,
}

impl SlotStats {
    fn note(&mut self, meta: &EntryMeta, len: u32) {
        let expiry = if meta.op == Op::Put && meta.expires_ms != 0 {
            meta.expires_ms
        } else {
            crate::index::NEVER
        };
        self.max_expiry = self.max_expiry.max(expiry);
        self.max_horizon = self.max_horizon.max(meta.horizon);
        self.has_puts |= meta.op == Op::Put;
        self.entry_bytes += u64::from(len);
        self.records += 1;
    }
}

/// A marker with no text at `path`, for a disk with no room for the text: its name is what
/// every later open and `verify` read. An empty file needs no data block; where no inode is
/// left either, a file of the space reserve gives its own, renamed (the reserve is made
/// again once there is room). Found from outside: on a full disk neither the marker nor the
/// seal log (which was to keep the entry instead) could be written, and from the second
/// open on the missing segment went unreported.
fn place_empty_marker(fs: &dyn FileSystem, dir: &Path, path: &Path) -> std::io::Result<()> {
    let placed = fs.create(path).map(drop).or_else(|e| {
        [
            crate::space::TOMBSTONE_RESERVE_FILE,
            crate::space::RESERVE_FILE,
        ]
        .iter()
        .find_map(|name| fs.rename(&dir.join(name), path).ok())
        .ok_or(e)
    });
    placed.and_then(|()| fs.sync_dir(dir))
}

/// The damage a missing marker (`NNNNNNNNNN.missing`) reports: the segment an earlier open
/// found missing.
fn missing_marked(dir: &Path, id: u32) -> DamagedRange {
    DamagedRange {
        segment: id,
        offset: 0,
        len: 1,
        records: None,
        problem: format!(
            "the segment file went missing before an earlier open, with no hint naming its records: their keys may read older values ({} records it; remove that file once the loss is dealt with)",
            dir.join(segment::missing_file_name(id)).display()
        ),
    }
}

/// What [`lose_whole`] is told of a segment file that cannot be read: the length its seal
/// logged (at least 1), and why.
fn cannot_read(
    seals: &crate::seals::Seals,
    id: u32,
    path: &Path,
    e: &dyn std::fmt::Display,
) -> (u64, String) {
    let len = seals.lengths.get(&id).copied().unwrap_or(0).max(1);
    (
        len,
        format!("the segment file {} cannot be read ({e})", path.display()),
    )
}

/// Reads the lost records of a damaged segment that compaction moved aside (its intact
/// records were copied out then), so that their keys stay lost. One that cannot be read (or
/// is not a regular file) is reported and left in place; its hint still names what it lost.
fn load_evidence(
    fs: &dyn FileSystem,
    path: &Path,
    id: u32,
    replay: &mut Replay,
    report: &mut RecoveryReport,
) {
    let bytes = fs.read(path);
    let ranges_before = report.damaged.len();
    // Where its scan ends (the whole file when its header is unreadable).
    let mut end = 0;
    // The offsets of the records its bytes still hold intact, in file order.
    let mut intact = Vec::new();
    // Ranges the scan reported with their records known: the hint's records there are
    // already counted (reported twice, one flipped byte made two ranges).
    let mut reported = Vec::new();
    match bytes.as_deref().map(format::decode_segment_header) {
        Ok(Ok(header)) => {
            let bytes = bytes.as_deref().unwrap_or_default();
            let scanned = scan::scan(bytes, &header, false);
            end = scanned.end as u64;
            for d in &scanned.damaged {
                note_damaged(id, d, replay, report);
                if d.lost.is_some() {
                    reported.push(d.offset as u64..(d.offset + d.len) as u64);
                }
            }
            intact.extend(
                scanned
                    .records
                    .iter()
                    .map(|(at, e)| (*at as u64, e.meta.version)),
            );
        }
        Ok(Err(e)) => report.ignored_files.push(format!(
            "{}: damaged segment kept as evidence, header unreadable ({e:?})",
            path.display()
        )),
        Err(e) => report.ignored_files.push(format!(
            "{}: damaged segment kept as evidence cannot be read ({e}): left in place",
            path.display()
        )),
    }
    // The records its hint names that its bytes no longer hold intact (zeros over its end,
    // say, where the scan sees only the end of the data; every one, if its header is gone):
    // lost. Puts compaction copied out are found at the same version elsewhere, which drops
    // their marks (`Replay::mark_lost`). Tombstones and namespace clears and drops count
    // too: compaction could not copy them out, so without their marks what they hid would
    // be served again (found from outside: a cleared cache and deleted keys came back, and
    // a revoked credential worked again, after a compaction and a reopen).
    let hint = path.with_file_name(segment::evidence_hint_file_name(id));
    if let Some(named) = hint_summaries(fs, &hint, id) {
        let lost = not_intact(named, &intact, 0, false);
        let unreported: Vec<(Summary, u64)> = lost
            .iter()
            .filter(|(_, at)| !reported.iter().any(|r| r.contains(at)))
            .copied()
            .collect();
        report.damaged.extend(range_of_records(
            id,
            &unreported,
            "records the damaged segment's hint names that its bytes no longer hold: lost, their keys known",
        ));
        for (summary, offset) in lost {
            replay.lost.push((summary, id, offset));
        }
    }
    if report.damaged.len() == ranges_before {
        // Its bytes show no damage and no hint names what it lost: zeros over its end,
        // say, where the scan sees only the end of the data, with no hint. The damage that
        // made compaction move it aside is still there: reported at every open, with its
        // records unknown (it went unreported after the compaction, and a strict open
        // accepted the directory while `verify` called it damaged: found from outside).
        report.damaged.push(DamagedRange {
            segment: id,
            offset: end,
            len: (bytes.as_ref().map_or(0, Vec::len) as u64)
                .saturating_sub(end)
                .max(1),
            records: None,
            problem: "a damaged segment that compaction moved aside: what it lost is unknown (no hint names it; those keys may read older values)".to_string(),
        });
    }
}

/// Bytes of records per segment, summed as they arrive, in runs: records come mostly in
/// segment order, and a pass over every key with a map lookup each was a quarter of a
/// reopen.
#[derive(Debug, Default)]
struct LiveBytes {
    per_segment: HashMap<u32, i64>,
    run: Option<(u32, i64)>,
}

impl LiveBytes {
    fn add(&mut self, segment: u32, len: u32) {
        let Self { per_segment, run } = self;
        match run {
            Some((s, sum)) if *s == segment => *sum += i64::from(len),
            _ => {
                if let Some((s, sum)) = run.replace((segment, i64::from(len))) {
                    *per_segment.entry(s).or_default() += sum;
                }
            }
        }
    }

    /// Takes back a record counted by `add` (one replaced, or left out).
    fn sub(&mut self, segment: u32, len: u32) {
        *self.per_segment.entry(segment).or_default() -= i64::from(len);
    }

    fn merge(&mut self, other: LiveBytes) {
        for (segment, sum) in other.per_segment.into_iter().chain(other.run) {
            *self.per_segment.entry(segment).or_default() += sum;
        }
    }

    fn into_map(mut self) -> HashMap<u32, u64> {
        if let Some((s, sum)) = self.run.take() {
            *self.per_segment.entry(s).or_default() += sum;
        }
        self.per_segment
            .into_iter()
            .map(|(s, sum)| (s, u64::try_from(sum).unwrap_or(0)))
            .collect()
    }
}

/// Dead bytes of a segment = its entry bytes minus those the index still points at.
fn account_dead(state: &mut State, live: LiveBytes) {
    let live = live.into_map();
    for (id, slot) in &mut state.segments {
        slot.dead = slot
            .entry_bytes
            .saturating_sub(live.get(id).copied().unwrap_or(0));
    }
}

#[cfg(test)]
mod tests;
