//! Frames: the namespace ids a frame gives its entries, building and checking a frame's
//! header and trailer (format 1 and 2), the summaries its trailer keeps, and iterating over
//! the entries of a checked body. The layout constants and the entry codec are the parent's
//! (`format.rs`).

use super::*;

/// Gives the namespaces of one frame ids, so that most of its entries name theirs in one
/// byte: a namespace's first entry in the frame carries its name, the second and third carry
/// the name and the id (two definitions, so that one damaged entry never orphans the rest),
/// and later ones only the id. Ids never cross frames: a frame decodes on its own.
#[derive(Debug)]
pub struct FrameNames {
    /// The segment the frame is meant for (see [`encode_entry_as`]).
    segment: u32,
    /// Names in the order of first use, with their entries so far.
    seen: Vec<(Vec<u8>, u32)>,
    /// Index into `seen` of the last name used: most frames have one namespace.
    last: usize,
    /// Whether every entry so far frees space (tombstones, clears, drops).
    frees_only: bool,
}

impl Default for FrameNames {
    fn default() -> Self {
        Self::for_segment(NO_SEGMENT)
    }
}

impl FrameNames {
    /// Names for a frame meant for segment `segment`.
    pub fn for_segment(segment: u32) -> Self {
        Self {
            segment,
            seen: Vec::new(),
            last: 0,
            frees_only: true,
        }
    }

    /// Whether every entry encoded so far frees space (tombstones, clears and drops): a
    /// frame of only those may use the reserves.
    pub fn frees_only(&self) -> bool {
        self.frees_only
    }

    /// Appends one entry to `out` (layout 2), naming its namespace as this frame's entries
    /// before it allow.
    pub fn encode(
        &mut self,
        out: &mut Vec<u8>,
        meta: &EntryMeta,
        namespace: &[u8],
        key: &[u8],
        value: &[u8],
    ) {
        self.frees_only &= matches!(
            meta.op,
            Op::Tombstone | Op::ClearNamespace | Op::DropNamespace
        );
        let form = self.form_for(namespace);
        encode_entry_as(out, meta, form, self.segment, namespace, key, value);
    }

    pub(super) fn form_for(&mut self, namespace: &[u8]) -> NsForm {
        let found = match self.seen.get(self.last) {
            Some((name, _)) if name == namespace => Some(self.last),
            _ => self.seen.iter().position(|(name, _)| name == namespace),
        };
        let Some(i) = found else {
            if self.seen.len() < FRAME_NS_IDS {
                self.seen.push((namespace.to_vec(), 1));
                self.last = self.seen.len() - 1;
            }
            return NsForm::Inline;
        };
        self.last = i;
        let uses = &mut self.seen[i].1;
        *uses = uses.saturating_add(1);
        let id = i as u32;
        if *uses <= 3 {
            NsForm::Define(id)
        } else {
            NsForm::Id(id)
        }
    }
}

/// The namespace ids an intact frame's entries defined so far, read in entry order.
#[derive(Debug, Default)]
pub struct FrameIds<'a> {
    names: Vec<Option<&'a [u8]>>,
}

impl<'a> FrameIds<'a> {
    /// Takes the next entry of the frame: notes the id it defines, or fills in the name of
    /// the id it uses. False if it uses an id no earlier intact entry defined, or defines one
    /// again under another name: its namespace is unknown, as if it were damaged.
    pub fn resolve(&mut self, e: &mut EntryRef<'a>) -> bool {
        let Some(id) = e.ns_id else {
            return true;
        };
        let id = id as usize;
        if self.names.len() <= id {
            self.names.resize(id + 1, None);
        }
        match (&mut self.names[id], e.ns_inline) {
            (slot @ None, true) => {
                *slot = Some(e.namespace);
                true
            }
            (Some(name), true) => *name == e.namespace,
            (Some(name), false) => {
                e.namespace = name;
                true
            }
            (None, false) => false,
        }
    }
}

/// Starts a frame in `out`; finish it with [`finish_frame`] after appending entries.
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    start
}

/// Fills in the header of the frame begun at `start` and appends its trailer. `salt` is the
/// store's (see [`SegmentHeader::salt`]): it seeds both checksums, so bytes that a client
/// stored inside a value can never pass for a frame when a scan resynchronises.
pub fn finish_frame(out: &mut Vec<u8>, start: usize, salt: u32) {
    finish_frame_in(out, start, salt, WRITE_LAYOUT);
}

/// [`finish_frame`] for entries in `layout` (2 or 3; layout 2 only for tests of the upgrade
/// path).
pub(crate) fn finish_frame_in(out: &mut Vec<u8>, start: usize, salt: u32, layout: EntryLayout) {
    let body_start = start + FRAME_HEADER_LEN;
    let body_len = len_u32(out.len() - body_start);
    let trailer_start = out.len();
    let mut count = 0u32;
    let mut at = body_start;
    let mut prev = SummaryCursor::default();
    let mut ids = FrameIds::default();
    let mut summaries = Vec::new();
    while at < trailer_start {
        let Ok(mut e) = decode_v2_entry(&out[at..trailer_start], layout, NO_SEGMENT, false) else {
            break;
        };
        ids.resolve(&mut e);
        summaries.push(Summary::of(&e));
        at += e.len;
    }
    for summary in summaries {
        summary.encode_v2(out, &mut prev, layout);
        count += 1;
    }
    let summaries_len = len_u32(out.len() - trailer_start);
    out[start..start + V2_LEN_OFFSET].copy_from_slice(&FRAME_MAGIC);
    out[start + V2_LEN_OFFSET..start + V2_SUMMARIES_LEN_OFFSET]
        .copy_from_slice(&body_len.to_le_bytes());
    out[start + V2_SUMMARIES_LEN_OFFSET..start + FRAME_HEADER_LEN - 4]
        .copy_from_slice(&summaries_len.to_le_bytes());
    let crc = v2_frame_crc(&out[start..], salt, layout).unwrap_or(0);
    out[start + FRAME_HEADER_LEN - 4..body_start].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&summaries_len.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    let crc = salted_crc(salt, &[&out[trailer_start..]]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// A frame with no entries in `header`'s layout (`None` for format 1, which has no frame
/// trailer): the *seal frame* that a durable store writes right after the data of a segment
/// it seals but leaves to the background thread to cut (see `Inner::seal_segment`). Until
/// the cut, the segment ends in zeros like one still being appended to; the seal frame
/// makes its last data frame not the last frame, so that a scan never takes damage there
/// for a write torn in flight. A scan ends the data where it starts, and recovery cuts the
/// file there. (Releases before it took it for a torn tail, and cut it as such.)
pub fn seal_frame(header: &SegmentHeader) -> Option<Vec<u8>> {
    // (Format 1 segments have layout 1.)
    if header.entry_layout == EntryLayout::V1 {
        return None;
    }
    let mut out = Vec::with_capacity(2 * FRAME_HEADER_LEN);
    let start = begin_frame(&mut out);
    finish_frame_in(&mut out, start, header.salt, header.entry_layout);
    Some(out)
}

/// The salt under which the format 2 frame at the start of `frame`, in `layout`, checks
/// (header and trailer), if one does: for a segment whose header, which holds the salt, is
/// damaged. A CRC is affine in its initial value, so exactly one salt gives the header's
/// stored CRC: it is solved for by running the CRC register back over the bytes the CRC
/// covers, then confirmed by the trailer's CRC, which it did not choose (a wrong salt passes
/// one time in 2^32).
pub(crate) fn solve_frame_salt(frame: &[u8], layout: EntryLayout) -> Option<u32> {
    /// CRC-32's polynomial, bit-reversed (crc32fast's register runs reflected).
    const POLY: u32 = 0xEDB8_8320;
    let header_len = layout.frame_header_len();
    let head = frame.get(..header_len)?;
    let stored = read_u32(head, header_len - 4);
    let body_len = read_u32(head, V2_LEN_OFFSET) as usize;
    let body = frame.get(header_len..header_len.checked_add(body_len)?)?;
    // The CRC covers the header before its own field, then each entry's CRC.
    let covered = header_len - 4 + (ENTRY_OP_OFFSET - ENTRY_CRC_OFFSET) * entries_in(body, layout);
    // crc32fast's CRC from `init` over bytes b is !R(!init, b), where R runs the register;
    // R(s, b) = A(s) ^ R(0, b) with A linear and invertible (a step back per bit below).
    let r0 = !v2_frame_crc(frame, u32::MAX, layout)?;
    let mut s = !stored ^ r0;
    for _ in 0..8 * covered {
        s = if s & 0x8000_0000 != 0 {
            ((s ^ POLY) << 1) | 1
        } else {
            s << 1
        };
    }
    let salt = !s;
    decode_v2_frame(frame, salt, layout)
        .ok()
        .filter(|f| f.trailer.is_some())
        .map(|_| salt)
}

/// The entries of a frame built by this process (as [`finish_frame`] left it).
pub(crate) fn own_frame_body(frame: &[u8]) -> &[u8] {
    let body_len = read_u32(frame, V2_LEN_OFFSET) as usize;
    &frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + body_len]
}

pub(super) fn salted_crc(salt: u32, parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(salt);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// CRC of a format 1 frame's length field and its entries' CRCs; `None` if the entries do
/// not tile the body exactly. `bytes` starts at the length field and ends with the body.
pub(super) fn frame_crc(bytes: &[u8]) -> Option<u32> {
    let (len_field, body) = bytes.split_at_checked(V1_FRAME_HEADER_LEN - FRAME_LEN_OFFSET)?;
    entry_crcs(crc32fast::Hasher::new(), len_field, body, EntryLayout::V1)
}

/// CRC (seeded with `salt`) of a format 2 frame's header fields before the CRC and its
/// entries' CRCs; `None` if the entries do not tile the body. `frame` starts at the magic.
pub(super) fn v2_frame_crc(frame: &[u8], salt: u32, layout: EntryLayout) -> Option<u32> {
    let header_len = layout.frame_header_len();
    let body_len = read_u32(frame.get(..header_len)?, V2_LEN_OFFSET) as usize;
    let body = frame.get(header_len..header_len.checked_add(body_len)?)?;
    entry_crcs(
        crc32fast::Hasher::new_with_initial(salt),
        &frame[..header_len - 4],
        body,
        layout,
    )
}

fn entry_crcs(
    mut hasher: crc32fast::Hasher,
    head: &[u8],
    body: &[u8],
    layout: EntryLayout,
) -> Option<u32> {
    hasher.update(head);
    let mut at = 0;
    while at < body.len() {
        let len = entry_len_at(&body[at..], layout)?;
        let entry = body.get(at..at.checked_add(len)?)?;
        hasher.update(entry.get(ENTRY_CRC_OFFSET..ENTRY_OP_OFFSET)?);
        at += len;
    }
    (at == body.len()).then(|| hasher.finalize())
}

/// Checks the format 1 frame at the start of `bytes` and returns its body and total length.
///
/// # Errors
/// [`DecodeError::End`] for a zero length (no more data), [`DecodeError::Truncated`] or
/// [`DecodeError::BadChecksum`] for a torn or damaged frame.
pub fn decode_v1_frame(bytes: &[u8]) -> Result<(&[u8], usize), DecodeError> {
    if bytes.len() < V1_FRAME_HEADER_LEN {
        return Err(if bytes.iter().all(|&b| b == 0) {
            DecodeError::End
        } else {
            DecodeError::Truncated
        });
    }
    let body_len = read_u32(bytes, FRAME_LEN_OFFSET) as usize;
    let crc = read_u32(bytes, FRAME_CRC_OFFSET);
    if body_len == 0 {
        return Err(if crc == 0 {
            DecodeError::End
        } else {
            DecodeError::BadField
        });
    }
    let total = V1_FRAME_HEADER_LEN
        .checked_add(body_len)
        .ok_or(DecodeError::BadField)?;
    if bytes.len() < total {
        return Err(DecodeError::Truncated);
    }
    match frame_crc(&bytes[FRAME_LEN_OFFSET..total]) {
        Some(c) if c == crc => Ok((&bytes[V1_FRAME_HEADER_LEN..total], total)),
        Some(_) => Err(DecodeError::BadChecksum),
        None => Err(DecodeError::BadField),
    }
}

/// A format 2 frame whose header checked.
#[derive(Debug, Clone, Copy)]
pub struct V2Frame<'a> {
    /// The entries (each still to be checked against its own CRC).
    pub body: &'a [u8],
    /// The record summaries, if the trailer checked too.
    pub trailer: Option<Trailer<'a>>,
    /// Bytes of the whole frame, header to trailer.
    pub total: usize,
}

/// Checks the format 2 frame at the start of `bytes`, whose entries are in `layout`.
///
/// # Errors
/// [`DecodeError::End`] where four zero bytes stand instead of the magic,
/// [`DecodeError::Truncated`], [`DecodeError::BadHeader`] (no magic) or
/// [`DecodeError::BadChecksum`] for a torn or damaged frame header.
pub fn decode_v2_frame(
    bytes: &[u8],
    salt: u32,
    layout: EntryLayout,
) -> Result<V2Frame<'_>, DecodeError> {
    let Some(magic) = bytes.get(..FRAME_MAGIC.len()) else {
        return Err(if bytes.iter().all(|&b| b == 0) {
            DecodeError::End
        } else {
            DecodeError::Truncated
        });
    };
    if magic != FRAME_MAGIC {
        return Err(if magic == [0; 4] {
            DecodeError::End
        } else {
            DecodeError::BadHeader
        });
    }
    let header_len = layout.frame_header_len();
    let head = bytes.get(..header_len).ok_or(DecodeError::Truncated)?;
    let body_len = read_u32(head, V2_LEN_OFFSET) as usize;
    let body_end = header_len
        .checked_add(body_len)
        .ok_or(DecodeError::BadField)?;
    // An empty body only in the seal frame ([`seal_frame`]: layout 2 or 3, no summaries).
    let empty_ok = layout != EntryLayout::V1 && read_u32(head, V2_SUMMARIES_LEN_OFFSET) == 0;
    if (body_len == 0 && !empty_ok) || body_end > bytes.len() {
        return Err(DecodeError::Truncated);
    }
    if v2_frame_crc(bytes, salt, layout) != Some(read_u32(head, header_len - 4)) {
        return Err(DecodeError::BadChecksum);
    }
    let body = &bytes[header_len..body_end];
    // Where the trailer ends: the header gives the summaries' length (layout 2), or there
    // is one fixed-size summary per entry of the body (layout 1).
    let count = entries_in(body, layout);
    let summaries_len = match layout {
        EntryLayout::V1 => count * V1_SUMMARY_LEN,
        EntryLayout::V2 | EntryLayout::V3 => read_u32(head, V2_SUMMARIES_LEN_OFFSET) as usize,
    };
    let total = body_end
        .checked_add(summaries_len)
        .and_then(|n| n.checked_add(layout.tail_len()))
        .ok_or(DecodeError::BadField)?;
    let trailer = bytes
        .get(..total)
        .and_then(|b| trailer_ending_at(b, total, salt, layout))
        .filter(|t| t.body_len == body_len && t.count == count && t.frame_len == total);
    Ok(V2Frame {
        body,
        trailer,
        total,
    })
}

/// Entries in a body whose header checked (they tile it).
fn entries_in(body: &[u8], layout: EntryLayout) -> usize {
    let mut n = 0;
    let mut at = 0;
    while let Some(len) = body.get(at..).and_then(|b| entry_len_at(b, layout)) {
        if at >= body.len() {
            break;
        }
        n += 1;
        at += len;
    }
    n
}

/// What a frame trailer says about its frame: enough to find every entry and to know which
/// keys and versions it held when the entries themselves are damaged.
#[derive(Debug, Clone, Copy)]
pub struct Trailer<'a> {
    summaries: &'a [u8],
    layout: EntryLayout,
    /// Entries in the frame.
    pub count: usize,
    /// Bytes of the frame's body.
    pub body_len: usize,
    /// Bytes of the whole frame, header to trailer.
    pub frame_len: usize,
}

impl Trailer<'_> {
    /// The record summaries, in entry order (layout 2 and 3 summaries that do not parse end the
    /// list: the trailer's CRC checked, so only a forged trailer has them).
    pub fn summaries(&self) -> impl Iterator<Item = Summary> + '_ {
        let mut rest = self.summaries;
        let mut prev = SummaryCursor::default();
        let layout = self.layout;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            match layout {
                EntryLayout::V1 => {
                    let (one, more) = rest.split_at_checked(V1_SUMMARY_LEN)?;
                    rest = more;
                    Some(Summary::decode_v1(one))
                }
                EntryLayout::V2 | EntryLayout::V3 => {
                    Summary::decode_v2(&mut rest, &mut prev, layout).ok()
                }
            }
        })
    }
}

/// The trailer of a format 2 frame in `layout` that ends at `end` in `bytes`, if one checks
/// there.
pub fn trailer_ending_at(
    bytes: &[u8],
    end: usize,
    salt: u32,
    layout: EntryLayout,
) -> Option<Trailer<'_>> {
    let tail_len = layout.tail_len();
    let tail = bytes.get(end.checked_sub(tail_len)?..end)?;
    let count = read_u32(tail, 0) as usize;
    let (summaries_len, body_len) = match layout {
        EntryLayout::V1 => (count.checked_mul(V1_SUMMARY_LEN)?, read_u32(tail, 4)),
        EntryLayout::V2 | EntryLayout::V3 => (read_u32(tail, 4) as usize, read_u32(tail, 8)),
    };
    let body_len = body_len as usize;
    let start = end.checked_sub(tail_len.checked_add(summaries_len)?)?;
    let trailer = &bytes[start..end - 4];
    if salted_crc(salt, &[trailer]) != read_u32(tail, tail_len - 4) || count == 0 {
        return None;
    }
    let frame_len = layout
        .frame_header_len()
        .checked_add(body_len)?
        .checked_add(summaries_len + tail_len)?;
    (frame_len <= end).then_some(Trailer {
        summaries: &bytes[start..start + summaries_len],
        layout,
        count,
        body_len,
        frame_len,
    })
}

/// One record as its frame's trailer describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The record's version.
    pub version: u64,
    /// CRC32 of its namespace.
    pub ns_hash: u32,
    /// CRC32 of its key.
    pub key_hash: u32,
    /// Encoded length of the entry.
    pub len: u32,
    /// The entry's op byte (see [`Op`]).
    pub op: u8,
}

/// What a layout 2 or 3 summary is encoded against: the summary before it in the trailer.
#[derive(Default)]
struct SummaryCursor {
    version: u64,
    ns_hash: Option<u32>,
    len: u32,
}

/// Layout 2 summary: the low three bits of its first varint hold the op, the next bit says
/// the namespace is the one of the summary before; the rest is the entry's length as a
/// zigzag difference to the length before (entries of a batch are often alike).
const L2_SUMMARY_SAME_NS: u64 = 0x08;
const L2_SUMMARY_LEN_SHIFT: u32 = 4;

impl Summary {
    /// The summary of an entry.
    pub fn of(e: &EntryRef<'_>) -> Self {
        Self {
            version: e.meta.version,
            ns_hash: crc32fast::hash(e.namespace),
            key_hash: crc32fast::hash(e.key),
            len: len_u32(e.len),
            op: e.meta.op as u8,
        }
    }

    /// Encodes a layout 2 or 3 summary (see [`Summary::decode_v2`]).
    fn encode_v2(&self, out: &mut Vec<u8>, prev: &mut SummaryCursor, layout: EntryLayout) {
        let same_ns = prev.ns_hash == Some(self.ns_hash);
        let len = if layout == EntryLayout::V2 {
            u64::from(self.len)
        } else {
            varint::zigzag(i64::from(self.len) - i64::from(prev.len))
        };
        let head = (len << L2_SUMMARY_LEN_SHIFT)
            | if same_ns { L2_SUMMARY_SAME_NS } else { 0 }
            | u64::from(self.op & L2_OP_MASK);
        varint::put(out, head);
        if !same_ns {
            out.extend_from_slice(&self.ns_hash.to_le_bytes());
        }
        out.extend_from_slice(&self.key_hash.to_le_bytes());
        varint::put(
            out,
            varint::zigzag(self.version.wrapping_sub(prev.version) as i64),
        );
        prev.version = self.version;
        prev.ns_hash = Some(self.ns_hash);
        prev.len = self.len;
    }

    /// Decodes a layout 2 or 3 summary (layout 2 keeps the entry's whole length, layout 3
    /// its difference to the length before).
    fn decode_v2(
        b: &mut &[u8],
        prev: &mut SummaryCursor,
        layout: EntryLayout,
    ) -> Result<Self, DecodeError> {
        let head = varint::take(b)?;
        let len = if layout == EntryLayout::V2 {
            Some(head >> L2_SUMMARY_LEN_SHIFT)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or(DecodeError::BadField)?
        } else {
            let len_delta = varint::unzigzag(head >> L2_SUMMARY_LEN_SHIFT);
            i64::from(prev.len)
                .checked_add(len_delta)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or(DecodeError::BadField)?
        };
        let ns_hash = if head & L2_SUMMARY_SAME_NS != 0 {
            prev.ns_hash.ok_or(DecodeError::BadField)?
        } else {
            read_u32(varint::take_bytes(b, 4)?, 0)
        };
        let key_hash = read_u32(varint::take_bytes(b, 4)?, 0);
        let delta = varint::unzigzag(varint::take(b)?);
        let version = prev.version.wrapping_add(delta as u64);
        prev.version = version;
        prev.ns_hash = Some(ns_hash);
        prev.len = len;
        Ok(Self {
            version,
            ns_hash,
            key_hash,
            len,
            op: (head & u64::from(L2_OP_MASK)) as u8,
        })
    }

    fn decode_v1(b: &[u8]) -> Self {
        Self {
            version: read_u64(b, 0),
            ns_hash: read_u32(b, 8),
            key_hash: read_u32(b, 12),
            len: read_u32(b, 16),
            op: b[20],
        }
    }

    /// Whether the record is about one key (a put or tombstone), not a whole namespace.
    pub fn is_item(&self) -> bool {
        self.op == Op::Put as u8 || self.op == Op::Tombstone as u8
    }
}

/// A format 2 frame in entry layout 1 around `entries` (layout 1 entries, back to back), as
/// the release before entry layout 2 wrote it (tests and fuzzing of the upgrade path).
#[cfg(any(test, feature = "fuzzing"))]
pub fn encode_layout1_frame(entries: &[u8], salt: u32) -> Vec<u8> {
    let mut out = FRAME_MAGIC.to_vec();
    let body_len = len_u32(entries.len());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(entries);
    let crc = v2_frame_crc(&out, salt, EntryLayout::V1).unwrap_or(0);
    out[V1_LAYOUT_FRAME_HEADER_LEN - 4..V1_LAYOUT_FRAME_HEADER_LEN]
        .copy_from_slice(&crc.to_le_bytes());
    let trailer_start = out.len();
    let mut count = 0u32;
    for e in entries_with(entries, decode_v1_entry) {
        let Ok((_, e)) = e else { break };
        let s = Summary::of(&e);
        out.extend_from_slice(&s.version.to_le_bytes());
        out.extend_from_slice(&s.ns_hash.to_le_bytes());
        out.extend_from_slice(&s.key_hash.to_le_bytes());
        out.extend_from_slice(&s.len.to_le_bytes());
        out.push(s.op);
        count += 1;
    }
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    let crc = salted_crc(salt, &[&out[trailer_start..]]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Iterates over the entries of a checked frame body in `layout`, in segment `segment`, with
/// their offsets in the body.
#[cfg(any(test, feature = "fuzzing"))]
pub fn frame_entries(
    body: &[u8],
    layout: EntryLayout,
    segment: u32,
) -> impl Iterator<Item = Result<(usize, EntryRef<'_>), DecodeError>> {
    entries_with(body, move |b| decode_entry(b, layout, segment))
}

/// The entries of a frame body this process has just built, as they read in segment
/// `segment`, without the CRC pass.
pub(crate) fn own_frame_entries(
    body: &[u8],
    segment: u32,
) -> impl Iterator<Item = Result<(usize, EntryRef<'_>), DecodeError>> {
    entries_with(body, move |b| decode_own_entry(b, segment))
}

/// The entries of a body in order, namespaces resolved; an entry that does not decode, or
/// whose namespace id no earlier entry defined, ends the iteration with an error.
fn entries_with<'a>(
    body: &'a [u8],
    decode: impl Fn(&'a [u8]) -> Result<EntryRef<'a>, DecodeError>,
) -> impl Iterator<Item = Result<(usize, EntryRef<'a>), DecodeError>> {
    let mut at = 0;
    let mut ids = FrameIds::default();
    std::iter::from_fn(move || {
        if at >= body.len() {
            return None;
        }
        match decode(&body[at..]) {
            Ok(mut e) => {
                if !ids.resolve(&mut e) {
                    at = body.len();
                    return Some(Err(DecodeError::BadField));
                }
                let here = at;
                at += e.len;
                Some(Ok((here, e)))
            }
            Err(err) => {
                at = body.len();
                Some(Err(err))
            }
        }
    })
}

/// A format 1 frame around `entries` (tests of the upgrade path: this release writes only
/// format 2).
#[cfg(test)]
pub(crate) fn encode_v1_frame(entries: &[u8]) -> Vec<u8> {
    let mut out = vec![0; V1_FRAME_HEADER_LEN];
    out.extend_from_slice(entries);
    let body_len = len_u32(entries.len());
    out[FRAME_LEN_OFFSET..V1_FRAME_HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
    let crc = frame_crc(&out[FRAME_LEN_OFFSET..]).unwrap_or(0);
    out[..FRAME_LEN_OFFSET].copy_from_slice(&crc.to_le_bytes());
    out
}
