//! Opening a data directory: read every segment (through its hint when one is valid), cut
//! torn tails, and rebuild the index.
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
use crate::hint::{HintEntry, HintReader};
use crate::index::{Entry, KeyDir, Location, Namespace, SegmentSlot, State};
use crate::keydir::Bulk;
use crate::options::RecoveryPolicy;
use crate::scan;
use crate::segment::{self, Segment, SegmentOpenError};
use crate::store::{DamagedRange, RecoveryReport};

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
                let bytes = fs.read(&path).map_err(RecoverError::at(&path))?;
                unreadable.push((id, path, why, bytes));
                continue;
            }
            Err(SegmentOpenError::Io(e)) => {
                // A segment file that cannot be opened (its mode, or not a regular file: a
                // directory, a FIFO, a symlink to a device) is damage, left as it is, as
                // one whose bytes are lost: the keys its hint names are lost, else its
                // records are unknown. (It refused the open naming only the directory, or
                // hung it: found from outside.)
                let len = seals.lengths.get(&id).copied().unwrap_or(0).max(1);
                let how = format!("the segment file {} cannot be read ({e})", path.display());
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
                let bytes = fs.read(&path).map_err(RecoverError::at(&path))?;
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
    let mut distrusted = rebuilt.clone();
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
            &seals.lengths,
            &mut replay,
            &mut report,
        ) {
            Ok(loaded) => break (replay, loaded),
            Err(LoadStop::Io(path, source)) => return Err(RecoverError::Io { path, source }),
            Err(LoadStop::Distrust(id, segments)) => {
                distrusted.insert(id);
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
            if let Err(e) = crate::fs::write_atomically(fs, dir, &path, problem.as_bytes()) {
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
        slot.damaged = slot_stats.damaged || rebuilt.contains(&id);
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

/// Indexes every opened segment: from its hint where that is usable, else by scanning it.
/// The segments are split between this thread and one more, by size (replay gives the same
/// index whatever order records come in); each reads and applies the hints of its share;
/// then this thread scans the segments left. Returns each segment with what was learnt of
/// it, in id order.
fn load_segments(
    fs: &dyn FileSystem,
    dir: &Path,
    opened: Vec<Segment>,
    distrusted: &HashSet<u32>,
    sealed: &HashMap<u32, u64>,
    replay: &mut Replay,
    report: &mut RecoveryReport,
) -> Result<Vec<(u32, Segment, SlotStats)>, LoadStop> {
    let (mine, theirs) = split_by_size(opened, Segment::capacity);
    let mut sibling = replay.sibling();
    let mut sibling_report = RecoveryReport::default();
    let (mine, theirs) = std::thread::scope(|scope| {
        let helper = (!theirs.is_empty()).then(|| {
            let (sibling, sibling_report) = (&mut sibling, &mut sibling_report);
            scope.spawn(move || load_hinted(fs, dir, theirs, distrusted, sibling, sibling_report))
        });
        let mine = load_hinted(fs, dir, mine, distrusted, replay, report);
        let theirs = helper.map(|h| h.join().expect("hint loading does not panic"));
        (mine, theirs)
    });
    let (mut loaded, mut rescan, theirs) = match (mine, theirs) {
        (Ok((loaded, rescan)), theirs @ (None | Some(Ok(_)))) => {
            (loaded, rescan, theirs.and_then(Result::ok))
        }
        (mine, theirs) => return Err(stop_with_every_segment(mine, theirs)),
    };
    if let Some((their_loaded, mut their_rescan)) = theirs {
        loaded.extend(their_loaded);
        rescan.append(&mut their_rescan);
        replay.absorb(sibling);
        report.records += sibling_report.records;
        report.segments_from_hints += sibling_report.segments_from_hints;
        report.ignored_files.extend(sibling_report.ignored_files);
        report.damaged.extend(sibling_report.damaged);
    }
    rescan.sort_unstable_by_key(|seg| seg.id);
    for seg in rescan {
        let id = seg.id;
        let sealed_len = sealed.get(&id).copied();
        let distrusted_hint = distrusted.contains(&id);
        let path = seg.path.clone();
        let (seg, stats) = scan_segment(fs, seg, sealed_len, distrusted_hint, replay, report)
            .map_err(|e| LoadStop::Io(path, e))?;
        loaded.push((id, seg, stats));
    }
    loaded.sort_unstable_by_key(|(id, _, _)| *id);
    Ok(loaded)
}

/// Why loading stopped, when one of the two threads stopped: an I/O error, or a hint to
/// distrust, with every segment of both threads back for the next attempt.
fn stop_with_every_segment(
    mine: Result<HintedLoad, LoadStop>,
    theirs: Option<Result<HintedLoad, LoadStop>>,
) -> LoadStop {
    let mut segments = Vec::new();
    let mut distrust = None;
    for part in std::iter::once(mine).chain(theirs) {
        match part {
            Ok((loaded, rescan)) => {
                segments.extend(loaded.into_iter().map(|(_, seg, _)| seg));
                segments.extend(rescan);
            }
            Err(LoadStop::Io(path, e)) => return LoadStop::Io(path, e),
            Err(LoadStop::Distrust(id, all)) => {
                distrust.get_or_insert(id);
                segments.extend(all);
            }
        }
    }
    // One of the two stopped, and not for I/O: for a hint.
    LoadStop::Distrust(distrust.unwrap_or_default(), segments)
}

/// Splits `items` in two shares of about equal `size`: largest first, each to the lighter
/// share (the first when they weigh the same).
fn split_by_size<T>(mut items: Vec<T>, size: impl Fn(&T) -> u64) -> (Vec<T>, Vec<T>) {
    items.sort_unstable_by_key(|item| std::cmp::Reverse(size(item)));
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let (mut first_size, mut second_size) = (0, 0);
    for item in items {
        if first_size <= second_size {
            first_size += size(&item);
            first.push(item);
        } else {
            second_size += size(&item);
            second.push(item);
        }
    }
    (first, second)
}

/// Indexes `segments` from their hints, one by one: the disk is asked for the next hint file
/// before this thread reads one, and each hint's records are applied as its bytes arrive, so
/// that the disk reads while this thread works. A hint is only known to be sound once its
/// last bytes (the CRC) are in: one found damaged after records of it were applied is
/// returned as `Err` (the caller starts over without it, see [`load_all`]). Returns the
/// segments loaded, and those to scan instead (without a usable hint, or whose hint was found
/// damaged before anything of it was applied).
fn load_hinted(
    fs: &dyn FileSystem,
    dir: &Path,
    segments: Vec<Segment>,
    distrusted: &HashSet<u32>,
    replay: &mut Replay,
    report: &mut RecoveryReport,
) -> Result<HintedLoad, LoadStop> {
    let paths: Vec<_> = segments
        .iter()
        .map(|seg| dir.join(segment::hint_file_name(seg.id)))
        .collect();
    let mut loaded = Vec::new();
    let mut rescan = Vec::new();
    if let Some(first) = paths.first() {
        fs.prefetch(first, u64::MAX);
    }
    let mut segments = segments.into_iter().enumerate();
    while let Some((i, seg)) = segments.next() {
        let path = &paths[i];
        if let Some(next) = paths.get(i + 1) {
            fs.prefetch(next, u64::MAX);
        }
        if distrusted.contains(&seg.id) {
            report.ignored_files.push(format!(
                "{}: damaged hint (or segment header), segment scanned instead",
                path.display()
            ));
            rescan.push(seg);
            continue;
        }
        match load_from_hint(fs, path, &seg, replay, report) {
            HintOutcome::Loaded(mut stats) => {
                if let Some((mut damaged, intact)) = damage_before_the_end(fs, &seg, stats.data_len)
                    .map_err(|e| LoadStop::Io(seg.path.clone(), e))?
                {
                    // The hint indexed records in the damaged range: each put the scan did
                    // not find intact there is marked lost, and `mark_lost` takes it out of
                    // the index, so that its key reads as lost (and is counted) rather than
                    // failing its check at every read. Tombstones and namespace records are
                    // whole in the hint: they stay as it indexed them.
                    if let Some(named) = hint_summaries(fs, path, seg.id) {
                        let lost = not_intact(named, &intact, damaged.offset, true);
                        damaged.records = Some(lost.len() as u64);
                        for (summary, offset) in lost {
                            replay.lost.push((summary, seg.id, offset));
                        }
                        damaged.problem = "the data fails its checks before the length its hint names: the records the hint names there are lost, their keys known".to_string();
                    }
                    report.damaged.push(damaged);
                    stats.damaged = true;
                }
                loaded.push((seg.id, seg, stats));
            }
            HintOutcome::Unusable(why) => {
                if let Some(why) = why {
                    report.ignored_files.push(format!(
                        "{}: {why}, segment scanned instead",
                        path.display()
                    ));
                }
                rescan.push(seg);
            }
            HintOutcome::DamagedAfterApplying => {
                let id = seg.id;
                let all = loaded
                    .into_iter()
                    .map(|(_, seg, _)| seg)
                    .chain(rescan)
                    .chain(std::iter::once(seg))
                    .chain(segments.map(|(_, seg)| seg))
                    .collect();
                return Err(LoadStop::Distrust(id, all));
            }
        }
    }
    Ok((loaded, rescan))
}

/// The segments a thread loaded from hints, and those left to scan.
type HintedLoad = (Vec<(u32, Segment, SlotStats)>, Vec<Segment>);

/// Why loading the segments stopped.
enum LoadStop {
    /// The file, and what the file system said.
    Io(PathBuf, std::io::Error),
    /// The hint of this segment was found damaged after some of its records were applied:
    /// loading starts over without it, with every segment (here) again.
    Distrust(u32, Vec<Segment>),
}

enum HintOutcome {
    Loaded(SlotStats),
    /// No hint (`None`: no file), or one found unusable before any record was applied.
    Unusable(Option<&'static str>),
    DamagedAfterApplying,
}

/// Reads the hint of `seg` at `path` and applies its records as they arrive.
fn load_from_hint(
    fs: &dyn FileSystem,
    path: &Path,
    seg: &Segment,
    replay: &mut Replay,
    report: &mut RecoveryReport,
) -> HintOutcome {
    let mut reader = None;
    let mut stats = SlotStats {
        hinted: true,
        ..SlotStats::default()
    };
    let mut applied = 0u64;
    // Whether the header was found to be this segment's (checked once, when it arrives).
    let mut checked = false;
    // Why the hint stopped being read, if it did.
    let mut unusable = None;
    // Set when the hint names a longer segment than the file (cut short by damage: a sealed
    // segment never shrinks): its records are not applied (the segment is scanned), and
    // those past the file's end are kept to be marked lost, so that their keys never read
    // the older values they had overwritten.
    let mut short = false;
    let mut beyond = Vec::new();
    let read = fs.read_arriving(path, &mut |bytes, total| {
        if unusable.is_some() {
            return;
        }
        let reader = reader.get_or_insert_with(|| HintReader::new(total));
        let header = match reader.header(bytes) {
            Ok(None) => return,
            Ok(Some(header)) => header,
            Err(_) => {
                unusable = Some("damaged hint");
                return;
            }
        };
        if !checked {
            if header.segment_id != seg.id
                || header.data_len < seg.capacity()
                || header.layout != seg.header.entry_layout
            {
                unusable = Some("stale hint");
                return;
            }
            checked = true;
            short = header.data_len > seg.capacity();
            stats.data_len = header.data_len;
            // Each namespace's staging grows once per hint, by the hint's record count.
            if !short {
                replay.reserve(header.namespace_records(bytes), total);
            }
        }
        while let Some(e) = reader.next(bytes) {
            let in_bounds = e.as_ref().is_ok_and(|e: &HintEntry<'_>| {
                u64::from(e.offset) + u64::from(e.len) <= stats.data_len
            });
            let (Ok(e), true) = (e, in_bounds) else {
                unusable = Some("damaged hint record");
                return;
            };
            if short {
                if u64::from(e.offset) + u64::from(e.len) > seg.capacity() {
                    beyond.push((hint_summary(&e), u64::from(e.offset)));
                }
                continue;
            }
            stats.note(&e.meta, e.len);
            applied += 1;
            replay.apply(&Seen {
                meta: e.meta,
                namespace: e.namespace,
                key: e.key,
                segment: seg.id,
                offset: e.offset,
                len: e.len,
                shape: e.shape,
            });
        }
    });
    let sound = match (&read, &reader) {
        (Ok(bytes), Some(reader)) if unusable.is_none() => reader.finish(bytes).is_ok(),
        _ => false,
    };
    if sound && short {
        report.damaged.push(DamagedRange {
            segment: seg.id,
            offset: seg.capacity(),
            len: stats.data_len - seg.capacity(),
            records: Some(beyond.len() as u64),
            problem: "the segment file ends before the length its hint names: the records the hint names past its end are lost, their keys known".to_string(),
        });
        for (summary, offset) in beyond {
            replay.lost.push((summary, seg.id, offset));
        }
        return HintOutcome::Unusable(Some("stale hint (its segment is shorter than it names)"));
    }
    if sound {
        report.records += applied;
        report.segments_from_hints += 1;
        return HintOutcome::Loaded(stats);
    }
    if applied > 0 {
        return HintOutcome::DamagedAfterApplying;
    }
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HintOutcome::Unusable(None),
        Err(_) => HintOutcome::Unusable(Some("unreadable hint")),
        Ok(_) => HintOutcome::Unusable(Some(unusable.unwrap_or("damaged hint"))),
    }
}

/// For a segment indexed from its hint, which names its length: damage where its data
/// should end. Its last frame's trailer must check there (one read of its last bytes; format
/// 1 segments have no trailer); if it does not, say zeros over its last frames, the segment
/// is scanned to find where its data stops being intact, and that range is reported (the
/// caller marks the records the hint names there lost).
/// Also returns the offsets of the records the scan found intact from the range's start on
/// (damage in the middle as well as at the end: the range spans intact records).
fn damage_before_the_end(
    fs: &dyn FileSystem,
    seg: &Segment,
    data_len: u64,
) -> std::io::Result<Option<(DamagedRange, Vec<u64>)>> {
    let (header, end) = (&seg.header, usize::try_from(data_len).unwrap_or(usize::MAX));
    if header.format == format::FORMAT_V1 || end <= header.data_start() {
        return Ok(None);
    }
    // Through the map: only the trailer's own bytes are read.
    let view = seg.bytes();
    let ends_well = view.len() >= end
        && format::trailer_ending_at(&view, end, header.salt, header.entry_layout).is_some();
    drop(view);
    if ends_well {
        return Ok(None);
    }
    let bytes = fs.read(&seg.path)?;
    let scanned = scan::scan(&bytes[..end.min(bytes.len())], header, false);
    let offset = scanned
        .damaged
        .first()
        .map_or(scanned.end, |d| d.offset)
        .min(end);
    let intact = scanned
        .records
        .iter()
        .filter(|(at, _)| *at >= offset)
        .map(|(at, _)| *at as u64)
        .collect();
    Ok(Some((
        DamagedRange {
            segment: seg.id,
            offset: offset as u64,
            len: (end - offset).max(1) as u64,
            records: None,
            problem: "the data fails its checks before the length its hint names (the records the hint indexed there read as errors)".to_string(),
        },
        intact,
    )))
}

/// What a frame trailer would say of the record a hint entry names.
fn hint_summary(e: &HintEntry<'_>) -> Summary {
    Summary {
        version: e.meta.version,
        ns_hash: crc32fast::hash(e.namespace),
        key_hash: crc32fast::hash(e.key),
        len: e.len,
        op: e.meta.op as u8,
    }
}

/// The records a sound hint of segment `id` names, as summaries with their offsets; `None`
/// if there is no such hint.
pub(crate) fn hint_summaries(
    fs: &dyn FileSystem,
    path: &Path,
    id: u32,
) -> Option<Vec<(Summary, u64)>> {
    let bytes = fs.read(path).ok()?;
    let mut reader = HintReader::new(bytes.len());
    if reader.header(&bytes).ok()??.segment_id != id {
        return None;
    }
    let mut out = Vec::new();
    while let Some(e) = reader.next(&bytes) {
        let e = e.ok()?;
        out.push((hint_summary(&e), u64::from(e.offset)));
    }
    reader.finish(&bytes).ok()?;
    Some(out)
}

/// Frame magics tried per file by [`rebuild_header`].
const REBUILD_TRIES: usize = 16;

/// A header for segment `id`, whose own fails its checks: format 2, with the entry layout
/// and the salt under which a frame checks at one of the first [`REBUILD_TRIES`] places a
/// frame magic stands after the header (the salt solved from the frame's CRCs: each
/// opening of a store draws its own); else format 1 if a format 1 frame checks right after
/// its header. `None` if nothing reads.
pub(crate) fn rebuild_header(bytes: &[u8], id: u32) -> Option<format::SegmentHeader> {
    let header = |format, salt, entry_layout| format::SegmentHeader {
        id,
        base_version: 0,
        format,
        salt,
        entry_layout,
    };
    let magic = format::FRAME_MAGIC;
    let start = format::SEGMENT_HEADER_LEN.min(bytes.len());
    let places = bytes[start..]
        .windows(magic.len())
        .enumerate()
        .filter(|(_, w)| *w == magic)
        .map(|(i, _)| start + i)
        .take(REBUILD_TRIES);
    for at in places {
        for layout in [
            format::EntryLayout::V3,
            format::EntryLayout::V2,
            format::EntryLayout::V1,
        ] {
            if let Some(salt) = format::solve_frame_salt(&bytes[at..], layout) {
                return Some(header(format::FORMAT_VERSION, salt, layout));
            }
        }
    }
    let v1 = bytes.get(format::V1_SEGMENT_HEADER_LEN..)?;
    format::decode_v1_frame(v1)
        .is_ok()
        .then(|| header(format::FORMAT_V1, 0, format::EntryLayout::V1))
}

/// Indexes one segment by reading it record by record. `sealed_len`: the length the seal
/// log says it was sealed with, if it names it.
fn scan_segment(
    fs: &dyn FileSystem,
    seg: Segment,
    sealed_len: Option<u64>,
    distrusted_hint: bool,
    replay: &mut Replay,
    report: &mut RecoveryReport,
) -> std::io::Result<(Segment, SlotStats)> {
    let id = seg.id;
    report.segments_scanned += 1;
    let mut stats = SlotStats::default();
    // Read with read(2), not through the map: a sparse tail on a full tmpfs reads as zeros
    // here, where a page fault on the map would raise SIGBUS.
    let bytes = fs.read(&seg.path)?;
    let file_len = bytes.len() as u64;
    // A segment still being appended to when the process stopped (the active one, or a
    // compaction output) has the zeros of its pre-allocated space at its end; a sealed one
    // was cut to its data, which ends with a frame trailer. Only the former can hold a
    // write torn in flight. (A durable store's segment sealed but not cut yet also ends in
    // zeros, but its data ends with the seal frame, so its last data frame is not a tail.)
    // The seal log, where it names the segment, says which it is, and where its data ends.
    let appending = sealed_len.is_none() && unsealed(&bytes);
    let (scanned, sealed_damage) = scan_sealed(&bytes, &seg.header, sealed_len, appending);
    for (offset, e) in &scanned.records {
        let len = u32::try_from(e.len).unwrap_or(u32::MAX);
        stats.note(&e.meta, len);
        report.records += 1;
        replay.apply(&Seen {
            meta: e.meta,
            namespace: e.namespace,
            key: e.key,
            segment: id,
            offset: u32::try_from(*offset).unwrap_or(u32::MAX),
            len,
            shape: e.shape(),
        });
    }
    if !scanned.damaged.is_empty() {
        report.records_salvaged += scanned.records.len() as u64;
        stats.damaged = true;
    }
    for d in &scanned.damaged {
        // A range whose frames do not say what they held: the segment's hint, where it
        // checks whole, does (a zeroed first block, say, header and first frames: the
        // keys it named read older values, found from outside).
        let named = d
            .lost
            .is_none()
            .then(|| named_in(fs, &seg, d.offset, d.len))
            .flatten();
        match named {
            Some(lost) => {
                let d = scan::Damaged {
                    lost: Some(lost),
                    problem: "the data fails its checks here: the records the segment's hint names there are lost, their keys known",
                    ..d.clone()
                };
                note_damaged(id, &d, replay, report);
            }
            None => note_damaged(id, d, replay, report),
        }
    }
    if distrusted_hint {
        foreign_frames(fs, &seg, &scanned, replay, report);
    }
    let mut valid = scanned.end as u64;
    // What is wrong at the end of the data, if anything: kept byte for byte, reported. Only
    // a segment being appended to can hold a write that was in flight.
    let torn = (scanned.torn && !appending).then(|| scan::Damaged {
        offset: scanned.end,
        len: sealed_len.map_or(bytes.len(), |l| usize::try_from(l).unwrap_or(usize::MAX))
            - scanned.end,
        lost: None,
        problem: "nothing valid follows this offset",
    });
    if let Some(mut damaged) = torn.or(sealed_damage) {
        if damaged.lost.is_none() {
            // Only what the file still spans: records past its end (a file cut short) are
            // the short hint's to report.
            let len = damaged.len.min(bytes.len().saturating_sub(damaged.offset));
            damaged.lost = named_in(fs, &seg, damaged.offset, len);
            if damaged.lost.is_some() {
                damaged.problem = "the data ends here, before its length: the records the segment's hint names there are lost, their keys known";
            }
        }
        note_damaged(id, &damaged, replay, report);
        stats.damaged = true;
        valid = file_len;
    } else if scanned.torn {
        report.truncated.push((id, valid, file_len - valid));
    }
    drop(bytes);
    stats.data_len = valid;
    // A torn tail of a segment being appended to, the zeros of its pre-allocated space, or
    // a sealed segment's uncut tail (the seal frame and zeros): cut once the policy has
    // accepted what was found.
    stats.cut = file_len > valid;
    Ok((seg, stats))
}

/// Scans a segment's `bytes` (`newest`: it may end in a write torn in flight, see
/// [`scan::scan`]), up to `sealed_len` where the seal log gives one, and judges the end
/// against it: the data ending (in zeros, or at the end of the file) before the length it
/// was sealed with lost what stood there; after that length only the uncut tail (the seal
/// frame, zeros) may stand. Recovery and `verify` both judge segments so. A torn scan is
/// left to the caller.
pub(crate) fn scan_sealed<'a>(
    bytes: &'a [u8],
    header: &format::SegmentHeader,
    sealed_len: Option<u64>,
    newest: bool,
) -> (scan::Scan<'a>, Option<scan::Damaged>) {
    let end = sealed_len.map_or(bytes.len(), |l| {
        usize::try_from(l).unwrap_or(usize::MAX).min(bytes.len())
    });
    let scanned = scan::scan(&bytes[..end], header, newest);
    let damaged = match sealed_len {
        _ if scanned.torn => None,
        Some(l) if scanned.end as u64 != l => Some(scan::Damaged {
            offset: scanned.end,
            len: usize::try_from(l).unwrap_or(usize::MAX) - scanned.end,
            lost: None,
            problem: "the data ends here, before the length the segment was sealed with (seals.log): what stood there is unknown",
        }),
        Some(_) => garbage_after(&bytes[end..], header).map(|len| scan::Damaged {
            offset: end,
            len,
            lost: None,
            problem: "non-zero bytes after the length the segment was sealed with (seals.log)",
        }),
        None => None,
    };
    (scanned, damaged)
}

/// Bytes of `tail` (what follows a segment's sealed length) up to its last non-zero byte,
/// past a seal frame at its start (`format::seal_frame`): `None` if nothing else is there.
fn garbage_after(tail: &[u8], header: &format::SegmentHeader) -> Option<usize> {
    let skip = format::seal_frame(header)
        .filter(|seal| tail.starts_with(seal))
        .map_or(0, |seal| seal.len());
    tail[skip..]
        .iter()
        .rposition(|&b| b != 0)
        .map(|i| skip + i + 1)
}

/// Whether a segment file ends in the zeros of pre-allocated space (it was being appended
/// to). A sealed format 2 segment ends with a trailer whose body length and CRC are never
/// all zero.
pub(crate) fn unsealed(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[bytes.len() - 8..].iter().all(|&b| b == 0)
}

/// Cuts `seg` to `len` bytes and opens it again (its map covered the old length).
fn cut(fs: &dyn FileSystem, seg: Segment, len: u64, durable: bool) -> std::io::Result<Segment> {
    seg.truncate(len, durable)?;
    let path = seg.path.clone();
    drop(seg);
    Segment::open(fs, &path, true).map_err(|e| match e {
        SegmentOpenError::Io(e) => e,
        SegmentOpenError::Format(e) => std::io::Error::other(format!("{e:?}")),
    })
}

/// The records that the sound hint of `seg`, if it has one, names in the `len` bytes at
/// `offset`: what a damaged range at a segment's end lost, where its own bytes cannot say
/// (zeros over its last frames). The hint was not used to index the segment (a damaged
/// header, or one that did not match), but it is this segment's and checks whole.
fn named_in(fs: &dyn FileSystem, seg: &Segment, offset: usize, len: usize) -> Option<Vec<Summary>> {
    let hint = seg.path.with_file_name(segment::hint_file_name(seg.id));
    let (from, to) = (offset as u64, offset.saturating_add(len) as u64);
    let named = hint_summaries(fs, &hint, seg.id)?;
    let lost: Vec<Summary> = named
        .into_iter()
        .filter(|(s, at)| *at < to && at + u64::from(s.len) > from)
        .map(|(s, _)| s)
        .collect();
    (!lost.is_empty()).then_some(lost)
}

/// Of the records a hint names (`named`, with their offsets), those that end past `from`
/// and that a scan did not find intact (`intact`: offsets in file order): lost. With
/// `puts_only`, for a segment indexed from that hint, where its tombstones and namespace
/// records are applied whole from the hint; without, for a segment compaction moved aside,
/// whose tombstones and clears nothing else holds any more.
fn not_intact(
    named: Vec<(Summary, u64)>,
    intact: &[u64],
    from: u64,
    puts_only: bool,
) -> Vec<(Summary, u64)> {
    named
        .into_iter()
        .filter(|(s, at)| {
            (s.op == Op::Put as u8 || !puts_only)
                && at + u64::from(s.len) > from
                && intact.binary_search(at).is_err()
        })
        .collect()
}

/// A segment whose hint was not trusted (its header rebuilt, say) may hold, where its hint
/// names records of its own, frames of another segment that check (a misdirected block
/// write carries that segment's header and frames): the records the hint names at offsets
/// where the scan found no intact record, outside the damaged ranges already reported, are
/// lost. The other segment's records found there are the same versions as its own, and the
/// marks keep its older values of those keys from being served (found from outside: one
/// read an older value, three vanished, `keys_lost` 0).
fn foreign_frames(
    fs: &dyn FileSystem,
    seg: &Segment,
    scanned: &scan::Scan<'_>,
    replay: &mut Replay,
    report: &mut RecoveryReport,
) {
    let hint = seg.path.with_file_name(segment::hint_file_name(seg.id));
    let Some(named) = hint_summaries(fs, &hint, seg.id) else {
        return;
    };
    let lost = replaced_records(named, scanned);
    report.damaged.extend(range_of_records(
        seg.id,
        &lost,
        "records the segment's hint names that its bytes no longer hold (other frames stand there): lost, their keys known",
    ));
    for (summary, offset) in lost {
        replay.lost.push((summary, seg.id, offset));
    }
}

/// Of the records a hint names (`named`), those a scan found neither intact at their offset
/// (the same version there: another segment's record can stand at the same offset) nor
/// inside a damaged range it reports, before the end of the data it scanned (past it is the
/// tail's to report: damage there, or a file cut short). Recovery and `verify` both judge
/// a segment whose header was rebuilt so.
pub(crate) fn replaced_records(
    named: Vec<(Summary, u64)>,
    scanned: &scan::Scan<'_>,
) -> Vec<(Summary, u64)> {
    let intact: HashSet<(u64, u64)> = scanned
        .records
        .iter()
        .map(|(at, e)| (*at as u64, e.meta.version))
        .collect();
    let reported: Vec<std::ops::Range<u64>> = scanned
        .damaged
        .iter()
        .map(|d| d.offset as u64..(d.offset + d.len) as u64)
        .collect();
    let end = scanned.end as u64;
    named
        .into_iter()
        .filter(|(s, at)| {
            *at < end
                && !intact.contains(&(*at, s.version))
                && !reported.iter().any(|r| r.contains(at))
        })
        .collect()
}

/// The report's range of segment `id` from the first of `records` (a hint's, in file order,
/// with their offsets) to the end of the last, counting them; `None` for none.
fn range_of_records(id: u32, records: &[(Summary, u64)], problem: &str) -> Option<DamagedRange> {
    let (first, last) = (records.first()?, records.last()?);
    Some(DamagedRange {
        segment: id,
        offset: first.1,
        len: (last.1 + u64::from(last.0.len))
            .saturating_sub(first.1)
            .max(1),
        records: Some(records.len() as u64),
        problem: problem.to_string(),
    })
}

/// Reports a damaged range and remembers the records it held, to mark their keys lost.
fn note_damaged(id: u32, d: &scan::Damaged, replay: &mut Replay, report: &mut RecoveryReport) {
    if let Some(lost) = &d.lost {
        for s in lost {
            replay.lost.push((*s, id, d.offset as u64));
        }
    }
    report.damaged.push(damaged_range(id, d));
}

/// The report's range for what a scan of segment `id` found damaged.
fn damaged_range(id: u32, d: &scan::Damaged) -> DamagedRange {
    DamagedRange {
        segment: id,
        offset: d.offset as u64,
        len: d.len as u64,
        records: d.lost.as_ref().map(|l| l.len() as u64),
        problem: d.problem.to_string(),
    }
}

/// Segment `id` (of `len` bytes) lost whole, `how` says why: reported and left in place; the
/// records its hint names, if the hint is sound, are marked lost, and unknown otherwise.
fn lose_whole(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u32,
    len: u64,
    how: &str,
    report: &mut RecoveryReport,
    lost_whole: &mut Vec<(u32, Vec<(Summary, u64)>)>,
) {
    let lost = hint_summaries(fs, &dir.join(segment::hint_file_name(id)), id);
    let keys = if lost.is_some() {
        "the keys its hint names are lost"
    } else {
        "its records are unknown (their keys may read older values)"
    };
    report.damaged.push(DamagedRange {
        segment: id,
        offset: 0,
        len,
        records: lost.as_ref().map(|l| l.len() as u64),
        problem: format!("{how}; left in place; {keys}"),
    });
    lost_whole.push((id, lost.unwrap_or_default()));
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
            intact.extend(scanned.records.iter().map(|(at, _)| *at as u64));
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
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use crate::format::{self, EntryMeta, Op};
    use crate::fs::FileSystem;
    use crate::sim::SimFs;
    use crate::{PutOptions, Store};

    fn entry(out: &mut Vec<u8>, op: Op, ns: &[u8], key: &[u8], value: &[u8], version: u64) {
        let meta = EntryMeta {
            op,
            kind: 0,
            horizon: 1,
            version,
            expires_ms: 0,
        };
        format::encode_v1_entry(out, &meta, ns, key, value);
    }

    /// A store on `fs` in `dir`, without background compaction; `what` names a failed open.
    fn open_store(fs: &SimFs, dir: impl AsRef<Path>, what: &str) -> Store {
        Store::builder()
            .file_system(Arc::new(fs.clone()))
            .compaction_interval(None)
            .open(dir.as_ref())
            .expect(what)
    }

    fn write(fs: &SimFs, path: &Path, bytes: &[u8]) {
        let f = fs.create(path).expect("create");
        f.write_at(bytes, 0).expect("write");
        f.sync().expect("sync");
        fs.sync_dir(path.parent().expect("in a dir"))
            .expect("sync dir");
    }

    #[test]
    fn segments_are_split_in_two_shares_of_about_equal_size() {
        let (a, b) = super::split_by_size(vec![9u64, 9, 9, 2, 1, 1], |&x| x);
        assert_eq!((a, b), (vec![9, 9], vec![9, 2, 1, 1]));
        let (a, b) = super::split_by_size(vec![5u64, 1, 4, 2, 3], |&x| x);
        let (sa, sb): (u64, u64) = (a.iter().sum(), b.iter().sum());
        assert_eq!((sa, sb, a.len() + b.len()), (8, 7, 5));
        let (a, b) = super::split_by_size(vec![7u64], |&x| x);
        assert_eq!((a, b), (vec![7], vec![]));
    }

    /// Every namespace's items (key, value, version) and the store's byte counts.
    type Snapshot = (Vec<(Vec<u8>, Vec<u8>, Vec<u8>, u64)>, u64, u64, u64);

    fn snapshot(store: &Store) -> Snapshot {
        let mut items = Vec::new();
        for ns in store.namespaces(b"") {
            for key in store.keys(&ns.name) {
                let item = store.get(&ns.name, &key).expect("read").expect("listed");
                items.push((ns.name.clone(), key, item.value.to_vec(), item.version));
            }
        }
        items.sort();
        let stats = store.stats();
        (items, stats.items, stats.live_bytes, stats.dead_bytes)
    }

    /// Hinted segments are split between two threads, whose replays are merged; what that
    /// gives must be what one thread scanning every segment gives: the same items, versions
    /// and live and dead bytes. The store has overwrites and removals across segments, a
    /// cleared and a dropped namespace, and some hints damaged (those segments are scanned,
    /// mixed with hinted ones).
    #[test]
    fn reopening_from_hints_on_two_threads_matches_scanning_every_segment() {
        let fs = SimFs::new();
        let dir = Path::new("/split");
        let open = || {
            Store::builder()
                .file_system(Arc::new(fs.clone()))
                .compaction_interval(None)
                .segment_size(4096)
                .open(dir)
                .expect("opens")
        };
        {
            let store = open();
            for i in 0..3_000u64 {
                let ns: &[u8] = [b"a", b"b", b"c"][(i % 3) as usize];
                let key = format!("k{}", i % 700);
                if i % 11 == 0 {
                    store.delete(ns, key.as_bytes()).expect("delete");
                } else {
                    let value = format!("v{i}").repeat((i % 5 + 1) as usize);
                    let options = PutOptions::default();
                    store
                        .put(ns, key.as_bytes(), value.as_bytes(), options)
                        .expect("put");
                }
                if i == 1_500 {
                    store.clear_namespace(b"b").expect("clear");
                }
                if i == 2_000 {
                    store.drop_namespace(b"c").expect("drop");
                }
            }
        }
        let hints = |fs: &SimFs| -> Vec<String> {
            let mut names = fs.list(dir).expect("list");
            names.retain(|n| n.ends_with(".hint"));
            names.sort();
            names
        };
        let from_hints = {
            let store = open();
            let report = store.recovery_report();
            assert!(report.segments_from_hints >= 20, "{report:?}");
            assert_eq!(report.segments_scanned, 0, "{report:?}");
            snapshot(&store)
        };
        assert!(
            from_hints.0.len() > 600,
            "items survive: {}",
            from_hints.0.len()
        );
        // Some hints damaged: their segments are scanned, the others still hinted.
        for name in hints(&fs).iter().step_by(5) {
            let path = dir.join(name);
            let mut bytes = fs.read(&path).expect("read");
            let at = bytes.len() / 2;
            bytes[at] ^= 0x20;
            fs.remove(&path).expect("remove");
            write(&fs, &path, &bytes);
        }
        let mixed = {
            let store = open();
            let report = store.recovery_report();
            assert!(report.segments_scanned >= 4, "{report:?}");
            assert!(report.segments_from_hints >= 16, "{report:?}");
            snapshot(&store)
        };
        assert_eq!(mixed, from_hints);
        for name in hints(&fs) {
            fs.remove(&dir.join(name)).expect("remove hint");
        }
        let scanned = {
            let store = open();
            let report = store.recovery_report();
            assert_eq!(report.segments_from_hints, 0, "{report:?}");
            snapshot(&store)
        };
        assert_eq!(scanned, from_hints);
    }

    /// A data directory written by the format 1 release opens in place, keeps every item and
    /// version, and compaction rewrites it in format 2.
    #[test]
    fn a_format_1_dir_opens_in_place_and_compaction_upgrades_it() {
        let fs = SimFs::new();
        let mut seg = format::encode_v1_segment_header(1, 1);
        let mut frame = Vec::new();
        entry(&mut frame, Op::CreateNamespace, b"ns", b"", b"", 1);
        entry(&mut frame, Op::Put, b"ns", b"a", b"old", 2);
        seg.extend_from_slice(&format::encode_v1_frame(&frame));
        let mut frame = Vec::new();
        entry(&mut frame, Op::Put, b"ns", b"b", b"kept", 3);
        entry(&mut frame, Op::Put, b"ns", b"a", b"new", 4);
        seg.extend_from_slice(&format::encode_v1_frame(&frame));
        write(&fs, Path::new("/v1/0000000001.seg"), &seg);
        let open = || open_store(&fs, "/v1", "a format 1 dir opens");
        let store = open();
        assert!(store.recovery_report().is_clean());
        let a = store.get(b"ns", b"a").expect("read").expect("a");
        assert_eq!((&a.value[..], a.version), (&b"new"[..], 4));
        let b = store.get(b"ns", b"b").expect("read").expect("b");
        assert_eq!((&b.value[..], b.version), (&b"kept"[..], 3));
        assert!(
            store
                .put(b"ns", b"c", b"v5", PutOptions::default())
                .expect("put")
                > 4
        );
        let report = store.compact().expect("compact");
        assert_eq!(report.segments_rewritten, 1, "{report:?}");
        drop(store);
        let names = fs.list(Path::new("/v1")).expect("list");
        assert!(!names.iter().any(|n| n == "0000000001.seg"), "{names:?}");
        for name in names.iter().filter(|n| n.ends_with(".seg")) {
            let bytes = fs.read(&Path::new("/v1").join(name)).expect("read");
            let h = format::decode_segment_header(&bytes).expect("header");
            assert_eq!(
                h.format,
                format::FORMAT_VERSION,
                "{name} rewritten in format 2"
            );
        }
        let store = open();
        assert_eq!(
            &store.get(b"ns", b"a").expect("read").expect("a").value[..],
            b"new"
        );
        assert_eq!(store.get(b"ns", b"b").expect("read").expect("b").version, 3);
        assert_eq!(
            &store.get(b"ns", b"c").expect("read").expect("c").value[..],
            b"v5"
        );
    }

    /// A data directory as the release before entry layout 2 left it: format 2 segments in
    /// entry layout 1, with hints of version 1 and 2. It opens in place from its hints,
    /// reads back, takes writes in layout 2 beside it, and compaction moves its records into
    /// layout 2 segments that read back after a reopen.
    #[test]
    fn an_entry_layout_1_dir_opens_in_place_from_its_hints_and_compaction_upgrades_it() {
        use crate::format::{EntryLayout, SegmentHeader};
        use crate::hint::{HintEntry, HintWriter};
        let fs = SimFs::new();
        let dir = Path::new("/l1");
        let salt = 0x0BAD_5EED;
        let mut version = 1;
        for id in 1..=3u32 {
            let mut seg = format::encode_segment_header(&SegmentHeader {
                id,
                base_version: version,
                format: format::FORMAT_VERSION,
                salt,
                entry_layout: EntryLayout::V1,
            })
            .to_vec();
            let mut records = Vec::new();
            for frame in 0..4u32 {
                let mut body = Vec::new();
                if id == 1 && frame == 0 {
                    entry(&mut body, Op::CreateNamespace, b"ns", b"", b"", version);
                    version += 1;
                }
                for k in 0..5u32 {
                    let key = (id * 100 + frame * 10 + k).to_be_bytes();
                    let value = vec![id as u8; 30 + k as usize];
                    entry(&mut body, Op::Put, b"ns", &key, &value, version);
                    version += 1;
                }
                // Keys of segment 1 are written again in segment 3: compaction has dead
                // records to drop there.
                if id == 3 {
                    let key = (100 + frame * 10).to_be_bytes();
                    entry(&mut body, Op::Put, b"ns", &key, b"newer", version);
                    version += 1;
                }
                let at = seg.len() + 12;
                seg.extend_from_slice(&format::encode_layout1_frame(&body, salt));
                let mut off = 0;
                while off < body.len() {
                    let e = format::decode_entry(&body[off..], EntryLayout::V1, id).expect("entry");
                    records.push((at + off, e.meta, e.key.to_vec(), e.len));
                    off += e.len;
                }
            }
            write(&fs, &dir.join(crate::segment::segment_file_name(id)), &seg);
            if id < 3 {
                let entries: Vec<HintEntry<'_>> = records
                    .iter()
                    .map(|(at, meta, key, len)| HintEntry {
                        offset: *at as u32,
                        meta: *meta,
                        namespace: b"ns",
                        key,
                        len: *len as u32,
                        shape: format::Shape::default(),
                    })
                    .collect();
                let hint = if id == 1 {
                    crate::hint::encode_v1(id, seg.len() as u64, &entries)
                } else {
                    let mut w = HintWriter::new(id, seg.len() as u64, EntryLayout::V1);
                    for e in &entries {
                        w.push(e);
                    }
                    w.finish()
                };
                write(&fs, &dir.join(crate::segment::hint_file_name(id)), &hint);
            }
        }
        let open = || open_store(&fs, dir, "a layout 1 dir opens");
        let check = |store: &Store| {
            for id in 1..=3u32 {
                for frame in 0..4u32 {
                    for k in 0..5u32 {
                        let key = (id * 100 + frame * 10 + k).to_be_bytes();
                        let item = store.get(b"ns", &key).expect("read").expect("item");
                        let want = if id == 1 && k == 0 {
                            b"newer".to_vec()
                        } else {
                            vec![id as u8; 30 + k as usize]
                        };
                        assert_eq!(item.value.to_vec(), want, "key {key:?}");
                    }
                }
            }
        };
        let store = open();
        let report = store.recovery_report();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.segments_from_hints, 2, "{report:?}");
        check(&store);
        store
            .put(b"ns", b"fresh", b"in layout 2", PutOptions::default())
            .expect("put");
        let compacted = store.compact().expect("compact");
        assert!(compacted.segments_rewritten >= 1, "{compacted:?}");
        check(&store);
        drop(store);
        let layouts: Vec<_> = fs
            .list(dir)
            .expect("list")
            .into_iter()
            .filter(|n| n.ends_with(".seg"))
            .map(|n| {
                let bytes = fs.read(&dir.join(&n)).expect("read");
                (
                    n,
                    format::decode_segment_header(&bytes)
                        .expect("header")
                        .entry_layout,
                )
            })
            .collect();
        assert!(
            layouts.iter().any(|(_, l)| *l == EntryLayout::V3),
            "{layouts:?}"
        );
        let store = open();
        assert!(store.recovery_report().is_clean());
        check(&store);
        assert_eq!(
            &store
                .get(b"ns", b"fresh")
                .expect("read")
                .expect("fresh")
                .value[..],
            b"in layout 2"
        );
    }

    /// Segment ids are never reused for a horizon a record names: a record written when
    /// segment 5 existed keeps horizon 5 after segments 2 to 5 are gone, so the next open
    /// starts above it (an output segment 5 would hold a copy whose written horizon is its
    /// own id; the model test found that reuse).
    #[test]
    fn new_segments_take_ids_above_every_horizon() {
        let fs = SimFs::new();
        let dir = Path::new("/h");
        let mut seg = format::encode_segment_header(&format::SegmentHeader {
            id: 1,
            base_version: 1,
            format: format::FORMAT_VERSION,
            salt: 7,
            entry_layout: format::WRITE_LAYOUT,
        })
        .to_vec();
        let mut frame = Vec::new();
        let start = format::begin_frame(&mut frame);
        let meta = |op, version| EntryMeta {
            op,
            kind: 0,
            horizon: 5,
            version,
            expires_ms: 0,
        };
        let mut names = format::FrameNames::for_segment(1);
        names.encode(&mut frame, &meta(Op::CreateNamespace, 1), b"ns", b"", b"");
        names.encode(&mut frame, &meta(Op::Put, 2), b"ns", b"k", b"kept");
        format::finish_frame(&mut frame, start, 7);
        seg.extend_from_slice(&frame);
        write(&fs, &dir.join(crate::segment::segment_file_name(1)), &seg);
        let open = || open_store(&fs, dir, "open");
        let store = open();
        store
            .put(b"ns", b"new", b"v", PutOptions::default())
            .expect("put");
        store.compact().expect("compact");
        drop(store);
        let ids: Vec<u32> = fs
            .list(dir)
            .expect("list")
            .iter()
            .filter_map(|n| n.strip_suffix(".seg")?.parse().ok())
            .collect();
        assert!(ids.iter().all(|&id| id == 1 || id > 5), "{ids:?}");
        let store = open();
        assert_eq!(
            &store.get(b"ns", b"k").expect("read").expect("k").value[..],
            b"kept"
        );
        assert_eq!(
            &store.get(b"ns", b"new").expect("read").expect("new").value[..],
            b"v"
        );
    }

    /// Versions are never given twice, even when no record holding the newest ones is left:
    /// a segment's header keeps the store's next version when it was made, and a reopen
    /// starts above it (a client's old `cas` must never match another write).
    #[test]
    fn versions_stay_above_every_segment_base_after_the_records_are_gone() {
        let fs = SimFs::new();
        let dir = Path::new("/v");
        let base = 1_000;
        let seg = format::encode_segment_header(&format::SegmentHeader {
            id: 1,
            base_version: base,
            format: format::FORMAT_VERSION,
            salt: 7,
            entry_layout: format::WRITE_LAYOUT,
        });
        write(&fs, &dir.join(crate::segment::segment_file_name(1)), &seg);
        let store = open_store(&fs, dir, "open");
        let version = store
            .put(b"ns", b"k", b"v", PutOptions::default())
            .expect("put");
        assert!(version > base, "version {version} after base {base}");
    }

    /// A hint whose CRC checks but whose last record points past its segment's data (a hint
    /// written wrong, or forged) is not used: its segment is scanned, so no record is left
    /// out of the index.
    #[test]
    fn a_hint_with_a_record_past_its_segment_is_not_used_even_with_a_good_crc() {
        let fs = SimFs::new();
        let dir = Path::new("/past");
        {
            let store = open_store(&fs, dir, "open");
            for i in 0..20u8 {
                store
                    .put(b"ns", &[b'k', i], &[i; 50], PutOptions::default())
                    .expect("put");
            }
        }
        crate::hint::rewrite_the_hint(&fs, dir, |entries, data_len| {
            let last = entries.last_mut().expect("records");
            last.offset = u32::try_from(data_len).expect("small");
        });
        let store = open_store(&fs, dir, "reopen");
        let report = store.recovery_report();
        assert_eq!(report.segments_from_hints, 0, "{report:?}");
        for i in 0..20u8 {
            let item = store.get(b"ns", &[b'k', i]).expect("read").expect("item");
            assert_eq!(item.value[..], [i; 50]);
        }
    }

    /// The same record in two segments (a compaction output whose input a crash kept), and
    /// the copy in the older one damaged: the intact copy serves the key, it is not lost.
    #[test]
    fn an_intact_copy_of_a_damaged_record_serves_its_key() {
        let fs = SimFs::new();
        let dir = Path::new("/dup");
        let open = || open_store(&fs, dir, "open");
        {
            let store = open();
            store
                .put(b"ns", b"a", &[0xAB; 100], PutOptions::default())
                .expect("put");
            store
                .put(b"ns", b"b", &[0xCD; 100], PutOptions::default())
                .expect("put");
        }
        let names = fs.list(dir).expect("list");
        let (name, mut bytes) = names
            .iter()
            .filter(|n| n.ends_with(".seg"))
            .map(|n| (n.clone(), fs.read(&dir.join(n)).expect("read")))
            .find(|(_, b)| b.windows(100).any(|w| w == [0xAB; 100]))
            .expect("the segment holding a");
        for n in names.iter().filter(|n| n.ends_with(".hint")) {
            fs.remove(&dir.join(n)).expect("remove hint");
        }
        // The copy: the same bytes under a later id.
        let mut header = format::decode_segment_header(&bytes).expect("header");
        header.id = 50;
        let mut copy = bytes.clone();
        copy[..format::SEGMENT_HEADER_LEN].copy_from_slice(&format::encode_segment_header(&header));
        let copy_path = dir.join(crate::segment::segment_file_name(50));
        let f = fs.create(&copy_path).expect("create");
        f.write_at(&copy, 0).expect("write");
        f.sync().expect("sync");
        // One flipped byte in a's value in the original.
        let at = bytes
            .windows(100)
            .position(|w| w == [0xAB; 100])
            .expect("a's value");
        bytes[at + 50] ^= 0x01;
        let f = fs.open(&dir.join(&name)).expect("open segment");
        f.write_at(&bytes, 0).expect("write");
        f.sync().expect("sync");
        fs.sync_dir(dir).expect("sync dir");

        let store = open();
        let report = store.recovery_report();
        assert_eq!(report.damaged.len(), 1, "{report:?}");
        assert_eq!(report.keys_lost, 0, "{report:?}");
        let a = store.get(b"ns", b"a").expect("a is not lost").expect("a");
        assert_eq!(&a.value[..], &[0xAB; 100][..]);
        let b = store.get(b"ns", b"b").expect("read").expect("b");
        assert_eq!(&b.value[..], &[0xCD; 100][..]);
    }
}
