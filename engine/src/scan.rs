//! Reading a segment record by record, around damage: the one scan that recovery,
//! compaction, hint writing and `verify` share.
//!
//! A format 2 segment resynchronises after damage: a frame that fails its header check is
//! skipped by searching for the next frame magic whose salted header CRC checks, and the
//! damaged frame's trailer (which ends where the next frame starts) says where each of its
//! entries lies and which key and version each held. So one damaged byte costs at most the
//! records it touches, and those records' keys are known (see [`Damaged::lost`]).
//!
//! A format 1 segment has no magic and no trailer: after damage the scan tries every later
//! offset for a frame whose CRC checks; what the skipped range held is unknown.

use crate::format::{
    self, DecodeError, EntryLayout, EntryRef, FrameIds, SegmentHeader, Summary, FORMAT_V1,
    FRAME_MAGIC,
};

/// A damaged range found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// Offset of the range in the segment file.
    pub offset: usize,
    /// Its length.
    pub len: usize,
    /// The records it held, from the frame's trailer; `None` if unknown.
    pub lost: Option<Vec<Summary>>,
    /// What was wrong.
    pub problem: &'static str,
}

/// The outcome of scanning one segment.
#[derive(Debug, Default)]
pub struct Scan<'a> {
    /// Intact records with their offsets in the file, in file order.
    pub records: Vec<(usize, EntryRef<'a>)>,
    /// Damaged ranges that valid data follows (or whose frame is known from its trailer).
    pub damaged: Vec<Damaged>,
    /// End of the data: where the zeros, a torn tail or the seal frame
    /// ([`format::seal_frame`]) begin.
    pub end: usize,
    /// Set when non-zero bytes after `end` form nothing valid: a torn tail, if the segment
    /// was being appended to when the process stopped.
    pub torn: bool,
}

impl Scan<'_> {
    /// Whether anything was damaged or torn.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && !self.torn
    }
}

/// Scans `bytes`, a segment file with header `header`. `newest`: the segment was being
/// appended to when the process stopped (it is not sealed), so its last frame may be a torn
/// write.
pub fn scan<'a>(bytes: &'a [u8], header: &SegmentHeader, newest: bool) -> Scan<'a> {
    if header.format == FORMAT_V1 {
        scan_v1(bytes, header.data_start())
    } else {
        scan_v2(bytes, header, newest)
    }
}

/// Where the non-zero bytes of `bytes` end.
fn nonzero_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

fn scan_v2<'a>(bytes: &'a [u8], header: &SegmentHeader, newest: bool) -> Scan<'a> {
    let (salt, layout) = (header.salt, header.entry_layout);
    let header_len = layout.frame_header_len();
    let mut scan = Scan::default();
    let mut at = header.data_start().min(bytes.len());
    loop {
        let bad = match format::decode_v2_frame(&bytes[at..], salt, layout) {
            Ok(frame) if frame.body.is_empty() => {
                // The seal frame: the data ended before it (`format::seal_frame`).
                scan.end = at;
                return scan;
            }
            Ok(frame) => {
                let end = at + frame.total;
                let intact = body_intact(frame.body, header);
                if !intact
                    && newest
                    && next_v2_frame(bytes, end.min(bytes.len()), salt, layout).is_none()
                {
                    // The last frame of an unsealed segment, with a record that fails its
                    // CRC: possibly a write torn in flight, so none of it is applied (a
                    // batch stays all or nothing); if its trailer checks, its keys are
                    // known lost.
                    match frame.trailer {
                        Some(t) => scan.damaged.push(Damaged {
                            offset: at,
                            len: frame.total,
                            lost: Some(t.summaries().collect()),
                            problem: "a record of the last frame fails its checksum",
                        }),
                        None => {
                            scan.end = at;
                            scan.torn = true;
                            return scan;
                        }
                    }
                } else {
                    take_frame(
                        &mut scan,
                        at + header_len,
                        frame.body,
                        frame.trailer,
                        header,
                    );
                    let tail = newest
                        && next_v2_frame(bytes, end.min(bytes.len()), salt, layout).is_none();
                    if frame.trailer.is_none() && !tail {
                        // Only redundancy is lost (the records checked), but it is damage.
                        let trailer_at = at + header_len + frame.body.len();
                        scan.damaged.push(Damaged {
                            offset: trailer_at,
                            len: end.min(bytes.len()) - trailer_at,
                            lost: Some(Vec::new()),
                            problem: "a frame trailer fails its checksum (the frame's records are intact)",
                        });
                    }
                }
                at = end.min(bytes.len());
                continue;
            }
            Err(DecodeError::End) if bytes[at..].iter().all(|&b| b == 0) => {
                scan.end = at;
                return scan;
            }
            Err(DecodeError::End) => "zeros where a frame should start, with data after them (a zeroed range, not the end of the data)",
            Err(DecodeError::Truncated) => "a frame runs past the end of the file",
            Err(DecodeError::BadChecksum) => "a frame header fails its checksum",
            Err(_) => "no frame starts here",
        };
        let next = next_v2_frame(bytes, at + 1, salt, layout);
        let region_end = next.unwrap_or_else(|| nonzero_end(bytes).max(at));
        // The damaged frame's trailer ends where the next frame starts (or the data ends;
        // its last bytes may be zeros: the CRC's, and when the CRC is 0, the top bytes of
        // the body length before it, which is never 0: seven at most).
        let candidates = if next.is_some() {
            region_end..=region_end
        } else {
            region_end..=(region_end + 7).min(bytes.len())
        };
        let trailer = candidates
            .filter_map(|end| format::trailer_ending_at(bytes, end, salt, layout).map(|t| (end, t)))
            .find(|(end, t)| end - t.frame_len >= at);
        match trailer {
            Some((end, t)) => {
                let frame_start = end - t.frame_len;
                if frame_start > at {
                    scan.damaged.push(Damaged {
                        offset: at,
                        len: frame_start - at,
                        lost: None,
                        problem: bad,
                    });
                }
                if next.is_none() && newest {
                    // The last frame of an unsealed segment: its header never checked, so it
                    // may be a write that was in flight and torn. Its trailer checks, so its
                    // records are not applied (a batch stays all or nothing) but their keys
                    // are known lost (never answered with older values).
                    scan.damaged.push(Damaged {
                        offset: frame_start,
                        len: t.frame_len,
                        lost: Some(t.summaries().collect()),
                        problem: bad,
                    });
                } else {
                    salvage(&mut scan, bytes, frame_start, &t, bad, header);
                }
                at = end;
            }
            None if next.is_none() => {
                scan.end = at;
                scan.torn = true;
                return scan;
            }
            None => {
                scan.damaged.push(Damaged {
                    offset: at,
                    len: region_end - at,
                    lost: None,
                    problem: bad,
                });
                at = region_end;
            }
        }
    }
}

/// Takes the entries of a frame whose header checked; entries that fail their own CRC are
/// damaged, and the trailer (if it checks) names them.
fn take_frame<'a>(
    scan: &mut Scan<'a>,
    body_at: usize,
    body: &'a [u8],
    trailer: Option<format::Trailer<'a>>,
    header: &SegmentHeader,
) {
    let (layout, segment) = (header.entry_layout, header.id);
    let mut off = 0;
    let summaries: Vec<Summary> = trailer.map(|t| t.summaries().collect()).unwrap_or_default();
    let mut summaries = summaries.into_iter();
    let mut ids = FrameIds::default();
    while off < body.len() {
        let summary = summaries.next();
        // The header checked, so the entries tile the body: lengths can be trusted.
        let len = entry_len_at(&body[off..], layout);
        let problem = match format::decode_entry(&body[off..off + len], layout, segment) {
            Ok(mut e) => {
                if ids.resolve(&mut e) {
                    scan.records.push((body_at + off, e));
                    None
                } else {
                    Some("a record names its namespace by an id that no intact record defined")
                }
            }
            Err(_) => Some("a record fails its checksum"),
        };
        if let Some(problem) = problem {
            scan.damaged.push(Damaged {
                offset: body_at + off,
                len,
                lost: summary.map(|s| vec![s]),
                problem,
            });
        }
        off += len;
    }
}

/// Whether every entry of a body whose header checked passes its own CRC.
fn body_intact(body: &[u8], header: &SegmentHeader) -> bool {
    let (layout, segment) = (header.entry_layout, header.id);
    let mut off = 0;
    while off < body.len() {
        let len = entry_len_at(&body[off..], layout);
        if format::decode_entry(&body[off..off + len], layout, segment).is_err() {
            return false;
        }
        off += len;
    }
    true
}

fn entry_len_at(bytes: &[u8], layout: EntryLayout) -> usize {
    match format::entry_len_at(bytes, layout) {
        Some(len) => len.min(bytes.len()),
        None => bytes.len(),
    }
}

/// Takes the entries of a frame whose header is damaged, placed by its trailer.
fn salvage<'a>(
    scan: &mut Scan<'a>,
    bytes: &'a [u8],
    frame_start: usize,
    t: &format::Trailer<'a>,
    problem: &'static str,
    header: &SegmentHeader,
) {
    let (layout, segment) = (header.entry_layout, header.id);
    let mut pos = frame_start + layout.frame_header_len();
    let mut lost = Vec::new();
    let mut ids = FrameIds::default();
    for s in t.summaries() {
        let len = s.len as usize;
        let entry = bytes
            .get(pos..pos + len)
            .and_then(|b| format::decode_entry(b, layout, segment).ok())
            .filter(|e| e.len == len && e.meta.version == s.version)
            .and_then(|mut e| ids.resolve(&mut e).then_some(e));
        match entry {
            Some(e) => scan.records.push((pos, e)),
            None => lost.push(s),
        }
        pos += len;
    }
    scan.damaged.push(Damaged {
        offset: frame_start,
        len: layout.frame_header_len(),
        lost: Some(lost),
        problem,
    });
}

/// The first offset at or after `from` where a format 2 frame's header checks.
fn next_v2_frame(bytes: &[u8], from: usize, salt: u32, layout: EntryLayout) -> Option<usize> {
    let mut at = from;
    while at < bytes.len() {
        let i = bytes[at..].iter().position(|&b| b == FRAME_MAGIC[0])?;
        at += i;
        if format::decode_v2_frame(&bytes[at..], salt, layout).is_ok() {
            return Some(at);
        }
        at += 1;
    }
    None
}

fn scan_v1(bytes: &[u8], start: usize) -> Scan<'_> {
    let mut scan = Scan::default();
    let mut at = start.min(bytes.len());
    loop {
        let bad = match format::decode_v1_frame(&bytes[at..]) {
            Ok((body, total)) => {
                let body_at = at + format::V1_FRAME_HEADER_LEN;
                let mut off = 0;
                while off < body.len() {
                    let len = entry_len_at(&body[off..], EntryLayout::V1);
                    match format::decode_entry(&body[off..off + len], EntryLayout::V1, 0) {
                        Ok(e) => scan.records.push((body_at + off, e)),
                        Err(_) => scan.damaged.push(Damaged {
                            offset: body_at + off,
                            len,
                            lost: None,
                            problem: "a record fails its checksum",
                        }),
                    }
                    off += len;
                }
                at += total;
                continue;
            }
            Err(DecodeError::End) if bytes[at..].iter().all(|&b| b == 0) => {
                scan.end = at;
                return scan;
            }
            Err(DecodeError::End) => "zeros where a frame should start, with data after them (a zeroed range, not the end of the data)",
            Err(_) => "a frame fails its checksum",
        };
        let next = (at + 1..bytes.len()).find(|&p| format::decode_v1_frame(&bytes[p..]).is_ok());
        match next {
            None => {
                scan.end = at;
                scan.torn = true;
                return scan;
            }
            Some(q) => {
                scan.damaged.push(Damaged {
                    offset: at,
                    len: q - at,
                    lost: None,
                    problem: bad,
                });
                at = q;
            }
        }
    }
}

#[cfg(test)]
mod tests;
