//! Loading the opened segments: split between this thread and one more, each segment
//! indexed from its hint where the hint is usable (applied as its bytes arrive), the rest
//! left to scan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::format::{self, Summary};
use crate::fs::FileSystem;
use crate::hint::{HintEntry, HintReader};
use crate::scan;
use crate::segment::{self, Segment};
use crate::store::{DamagedRange, RecoveryReport};

use super::damage::{not_intact, scan_segment, Logged};
use super::{Replay, Seen, SlotStats};

/// Indexes every opened segment: from its hint where that is usable, else by scanning it.
/// The segments are split between this thread and one more, by size (replay gives the same
/// index whatever order records come in); each reads and applies the hints of its share;
/// then this thread scans the segments left. Returns each segment with what was learnt of
/// it, in id order.
pub(super) fn load_segments(
    fs: &dyn FileSystem,
    dir: &Path,
    opened: Vec<Segment>,
    distrusted: &HashMap<u32, Distrust>,
    seals: &crate::seals::Seals,
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
        let logged = match (seals.lengths.get(&id), seals.acknowledged.get(&id)) {
            (Some(&len), _) => Logged::Sealed(len),
            (None, Some(&len)) => Logged::AcknowledgedTo(len),
            (None, None) => Logged::Nothing,
        };
        let distrusted_hint = distrusted.get(&id) == Some(&Distrust::Damaged);
        let path = seg.path.clone();
        let (seg, stats) = scan_segment(fs, seg, logged, distrusted_hint, replay, report)
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
            Err(LoadStop::Distrust(id, why, all)) => {
                distrust.get_or_insert((id, why));
                segments.extend(all);
            }
        }
    }
    // One of the two stopped, and not for I/O: for a hint.
    let (id, why) = distrust.unwrap_or((0, Distrust::Damaged));
    LoadStop::Distrust(id, why, segments)
}

/// Splits `items` in two shares of about equal `size`: largest first, each to the lighter
/// share (the first when they weigh the same).
pub(super) fn split_by_size<T>(mut items: Vec<T>, size: impl Fn(&T) -> u64) -> (Vec<T>, Vec<T>) {
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
    distrusted: &HashMap<u32, Distrust>,
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
        if let Some(why) = distrusted.get(&seg.id) {
            let why = match why {
                Distrust::Damaged => "damaged hint (or segment header)",
                Distrust::Foreign => FOREIGN_HINT,
            };
            report.ignored_files.push(format!(
                "{}: {why}, segment scanned instead",
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
            HintOutcome::AfterApplying(why) => {
                let id = seg.id;
                let all = loaded
                    .into_iter()
                    .map(|(_, seg, _)| seg)
                    .chain(rescan)
                    .chain(std::iter::once(seg))
                    .chain(segments.map(|(_, seg)| seg))
                    .collect();
                return Err(LoadStop::Distrust(id, why, all));
            }
        }
    }
    Ok((loaded, rescan))
}

/// The segments a thread loaded from hints, and those left to scan.
type HintedLoad = (Vec<(u32, Segment, SlotStats)>, Vec<Segment>);

/// Why loading the segments stopped.
pub(super) enum LoadStop {
    /// The file, and what the file system said.
    Io(PathBuf, std::io::Error),
    /// The hint of this segment was found damaged (or another segment's) after some of its
    /// records were applied: loading starts over without it, with every segment (here)
    /// again.
    Distrust(u32, Distrust, Vec<Segment>),
}

/// Why a segment's hint is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Distrust {
    /// Damaged (or its segment's header rebuilt): the segment is scanned, and the records
    /// the hint names that the scan does not find are lost, their keys known.
    Damaged,
    /// It names records its segment does not hold ([`Checked`]): the segment is scanned as
    /// if it had no hint.
    Foreign,
}

enum HintOutcome {
    Loaded(SlotStats),
    /// No hint (`None`: no file), or one found unusable before any record was applied.
    Unusable(Option<&'static str>),
    /// Found unusable after some of its records were applied.
    AfterApplying(Distrust),
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
    // How many of the hint's first records were looked for in the segment, and whether one
    // with a key was found there (then no more are); its last record so far (looked for
    // once the hint is whole). See [`Checked`].
    let mut first_looked = 0;
    let mut first_found = false;
    let mut last = None;
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
            if !first_found
                && first_looked < FIRST_LOOKED
                && u64::from(e.offset) + u64::from(e.len) <= seg.capacity()
            {
                first_looked += 1;
                match Checked::of(&e).in_segment(seg, e.key) {
                    Found::Other => {
                        unusable = Some(FOREIGN_HINT);
                        return;
                    }
                    // Up to the first record with a key: namespace records alone may
                    // match another store's, made in the same order.
                    Found::Same => first_found = !e.key.is_empty(),
                    Found::Unknown => {}
                }
            }
            if short {
                if u64::from(e.offset) + u64::from(e.len) > seg.capacity() {
                    beyond.push((hint_summary(&e), u64::from(e.offset)));
                }
                continue;
            }
            stats.note(&e.meta, e.len);
            applied += 1;
            // Where its key lies in the hint's bytes (they only grow), not a copy of each.
            last = Some((
                Checked::of(&e),
                (e.key.as_ptr() as usize).wrapping_sub(bytes.as_ptr() as usize),
            ));
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
    let last_matches = || {
        let Some((last, key_at)) = &last else {
            return true;
        };
        let key = (read.as_ref().ok())
            .zip(key_at.checked_add(last.key_len))
            .and_then(|(bytes, end)| bytes.get(*key_at..end));
        !key.is_some_and(|key| last.in_segment(seg, key) == Found::Other)
    };
    if sound && !last_matches() {
        // Its first record matched (or could not be read), its last is another intact
        // record: a hint of another segment all the same. Loading starts over without it.
        return HintOutcome::AfterApplying(Distrust::Foreign);
    }
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
        // Namespace records applied before a record with a key was found to be another's.
        let why = if unusable == Some(FOREIGN_HINT) {
            Distrust::Foreign
        } else {
            Distrust::Damaged
        };
        return HintOutcome::AfterApplying(why);
    }
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HintOutcome::Unusable(None),
        Err(_) => HintOutcome::Unusable(Some("unreadable hint")),
        Ok(_) => HintOutcome::Unusable(Some(unusable.unwrap_or("damaged hint"))),
    }
}

/// Why a hint whose records are not its segment's is not used.
const FOREIGN_HINT: &str =
    "hint names records its segment does not hold (a hint of another segment or data dir)";

/// The hint's first records looked for in its segment, at most, until one with a key is
/// found there (each may be unknown: damaged, or too long to read at the open).
const FIRST_LOOKED: u32 = 8;

/// Entries longer than this are not read to be looked for (their CRC covers the whole
/// value): a store of large values would read a value per segment at every open.
const LOOKED_UP_TO: usize = 64 << 10;

/// What the segment holds where a hint record names an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// That entry: the same key, operation, version and length.
    Same,
    /// Another intact entry: the hint is not this segment's.
    Other,
    /// Nothing that can tell: no intact entry there (the segment's damage, which the hint
    /// is there to name: its keys are then known lost rather than read as older values),
    /// or one too long to read at the open.
    Unknown,
}

/// A hint record, as looked for in the segment. A hint names only its segment's id and
/// length, and a hint of another data dir's segment of that id and length (a restore from
/// the wrong node's backup) was taken at its word: the keys it did not name read as misses,
/// nothing was reported, and compaction then dropped their records for good (found from
/// outside). The open looks its first records up to one with a key (one or two reads, as a
/// rule) and its last; `verify` compares every one. The entry's length is taken from its
/// own header: read at the hint's, a longer entry of another store failed its check and
/// told nothing.
struct Checked {
    offset: u32,
    len: u32,
    op: format::Op,
    version: u64,
    key_len: usize,
}

impl Checked {
    fn of(e: &HintEntry<'_>) -> Self {
        Self {
            offset: e.offset,
            len: e.len,
            op: e.meta.op,
            version: e.meta.version,
            key_len: e.key.len(),
        }
    }

    fn in_segment(&self, seg: &Segment, key: &[u8]) -> Found {
        let Some(len) = seg.entry_len(self.offset) else {
            return Found::Unknown;
        };
        if len > LOOKED_UP_TO {
            return Found::Unknown;
        }
        let Ok(len32) = u32::try_from(len) else {
            return Found::Unknown;
        };
        seg.with_entry(self.offset, len32, |found| {
            let same = found.meta.op == self.op
                && found.meta.version == self.version
                && found.key == key
                && (self.len >= crate::keydir::HUGE_LEN || found.len == self.len as usize);
            if same {
                Found::Same
            } else {
                Found::Other
            }
        })
        .unwrap_or(Found::Unknown)
    }
}

/// For a segment indexed from its hint, which names its length: damage where its data
/// should end. Its last frame's trailer must check there (one read of its last bytes; format
/// 1 segments have no trailer); if it does not, say zeros over its last frames, the segment
/// is scanned to find where its data stops being intact, and that range is reported (the
/// caller marks the records the hint names there lost).
/// Also returns the offsets and versions of the records the scan found intact from the
/// range's start on (damage in the middle as well as at the end: the range spans intact
/// records).
fn damage_before_the_end(
    fs: &dyn FileSystem,
    seg: &Segment,
    data_len: u64,
) -> std::io::Result<Option<(DamagedRange, Vec<super::damage::Held>)>> {
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
        .map(|(at, e)| (*at as u64, e.meta.version))
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
