//! Indexing a segment by scanning it, and judging what is damaged in it: a header rebuilt
//! from its frames, a tail cut against the seal log, records a hint names that the scan did
//! not find intact; each damaged range reported, and its records' keys marked lost.

use std::collections::HashSet;
use std::path::Path;

use crate::format::{self, Op, Summary};
use crate::fs::FileSystem;
use crate::scan;
use crate::segment::{self, Segment};
use crate::store::{DamagedRange, RecoveryReport};

use super::load::hint_summaries;
use super::{Replay, Seen, SlotStats};

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

/// What the seal log says of a segment's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Logged {
    /// Nothing: the segment is judged by its end.
    Nothing,
    /// It was sealed with this length.
    Sealed(u64),
    /// It was being appended to when a failed sync poisoned the store, and its
    /// acknowledged data ends at this length (`seals::IN_DOUBT`): what follows was never
    /// acknowledged.
    AcknowledgedTo(u64),
}

/// Indexes one segment by reading it record by record, judged by what the seal log says of
/// its length.
pub(super) fn scan_segment(
    fs: &dyn FileSystem,
    seg: Segment,
    logged: Logged,
    distrusted_hint: bool,
    replay: &mut Replay,
    report: &mut RecoveryReport,
) -> std::io::Result<(Segment, SlotStats)> {
    let id = seg.id;
    report.segments_scanned += 1;
    let mut stats = SlotStats::default();
    // Read with read(2), not through the map: a sparse tail on a full tmpfs reads as zeros
    // here, where a page fault on the map would raise SIGBUS.
    let mut bytes = fs.read(&seg.path)?;
    let file_len = bytes.len() as u64;
    // Frames a failed sync left in doubt were never acknowledged: dropped as a write torn in
    // flight is, and what comes before is judged as a segment sealed there (a failed
    // write-back in their midst, frames intact after it, read as damage before: found from
    // outside). Only what the file holds past that length (not its pre-allocated zeros) is
    // reported cut.
    let mut doubted = None;
    let sealed_len = match logged {
        Logged::Nothing => None,
        Logged::Sealed(len) => Some(len),
        Logged::AcknowledgedTo(len) => {
            let at = usize::try_from(len).unwrap_or(usize::MAX).min(bytes.len());
            if bytes[at..].iter().any(|&b| b != 0) {
                doubted = Some((at as u64, file_len - at as u64));
            }
            bytes.truncate(at);
            Some(len)
        }
    };
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
    // A segment that looks as if it was being appended to, whose hint names records past
    // where its data ends, was sealed with them (a hint is written only for a sealed
    // segment): what follows is lost data, not a write torn in flight. Found from outside:
    // a copy of a live data dir took this file while it was written and its hint after the
    // seal, and an overwritten value came back, reported nowhere.
    let sealed_by_hint =
        appending && named_in(fs, &seg, scanned.end, bytes.len() - scanned.end).is_some();
    // What is wrong at the end of the data, if anything: kept byte for byte, reported. Only
    // a segment being appended to can hold a write that was in flight.
    let torn = ((scanned.torn && !appending) || sealed_by_hint).then(|| scan::Damaged {
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
        // Kept byte for byte, up to what was never acknowledged.
        valid = bytes.len() as u64;
    } else if scanned.torn {
        report.truncated.push((id, valid, file_len - valid));
    }
    report
        .truncated
        .extend(doubted.map(|(at, len)| (id, at, len)));
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

/// Cuts `seg` to `len` bytes and opens it again (its map covered the old length), with the
/// header it was read with: a header rebuilt from the frames is not the file's, whose
/// bytes fail their checks (opened by them, the segment a crash left being appended to
/// with a zeroed header failed the whole open with `BadHeader`: found from outside).
pub(super) fn cut(
    fs: &dyn FileSystem,
    seg: Segment,
    len: u64,
    durable: bool,
) -> std::io::Result<Segment> {
    seg.truncate(len, durable)?;
    let (path, header) = (seg.path.clone(), seg.header);
    drop(seg);
    Segment::open_rebuilt(fs, &path, header, true)
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
pub(super) fn not_intact(
    named: Vec<(Summary, u64)>,
    intact: &[Held],
    from: u64,
    puts_only: bool,
) -> Vec<(Summary, u64)> {
    // Intact at the same place is not enough: the record there must be the one named, of
    // the same version (found from outside: a segment copied over another held, at the
    // same offset, an older record of the same key, and after a compaction that older
    // value was served).
    let holds = |at: &u64, version: u64| {
        intact
            .binary_search_by_key(at, |&(offset, _)| offset)
            .is_ok_and(|i| intact[i].1 == version)
    };
    named
        .into_iter()
        .filter(|(s, at)| {
            (s.op == Op::Put as u8 || !puts_only)
                && at + u64::from(s.len) > from
                && !holds(at, s.version)
        })
        .collect()
}

/// A record a scan found intact: its offset and version.
pub(super) type Held = (u64, u64);

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
pub(super) fn range_of_records(
    id: u32,
    records: &[(Summary, u64)],
    problem: &str,
) -> Option<DamagedRange> {
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
pub(super) fn note_damaged(
    id: u32,
    d: &scan::Damaged,
    replay: &mut Replay,
    report: &mut RecoveryReport,
) {
    if let Some(lost) = &d.lost {
        for s in lost {
            replay.lost.push((*s, id, d.offset as u64));
        }
    }
    report.damaged.push(damaged_range(id, d));
}

/// The report's range for what a scan of segment `id` found damaged.
pub(super) fn damaged_range(id: u32, d: &scan::Damaged) -> DamagedRange {
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
pub(super) fn lose_whole(
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
