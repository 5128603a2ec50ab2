//! The on-disk encoding of segments: the segment header, frames and entries.
//!
//! ARCHITECTURE.md ("On-disk format") has the tables; in short, a segment file is a header
//! (two copies, each with its CRC) followed by frames, written append-only. A frame is one
//! atomic append (a single write, a whole batch, or a chunk of compaction output): a magic,
//! the body length, a salted CRC of the header and every entry's CRC, the entries back to
//! back, and a trailer that summarises each entry (length, op, namespace and key hashes,
//! version) so that a scan can place and name the records of a frame whose header is
//! damaged. Each entry carries its own CRC, so that a read can check it alone.
//!
//! Three *entry layouts* exist, named per segment in its header:
//! - layout 1 (read only): a fixed 40-byte entry header, fixed 21-byte summaries, a 12-byte
//!   frame header and a 12-byte trailer end;
//! - layout 2 (read only; written by one release, main at 4f7827f): varint entry headers
//!   with the expiry in whole seconds and optional fields left out, the namespace inline and
//!   the horizon always written; varint summaries (the version as a delta to the summary
//!   before, the namespace hash only when it changes, the entry's whole length), a 16-byte
//!   frame header and trailer end that both give the summaries' length;
//! - layout 3 (written): layout 2 with namespaces interned per frame, the horizon left out
//!   when it is the segment's id (both said in a flags varint that also carries the frame
//!   id), and summaries that keep the difference of each entry's length to the one before.
//!
//! All integers are little-endian. Four zero bytes where a frame's magic would be mark the
//! end of the data (an active segment is pre-allocated with zeros).

use std::mem::size_of;

use crate::varint;

/// Identifies a segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"TTLCSEG\0";
/// Version of the segment and frame layout that this release writes.
pub const FORMAT_VERSION: u32 = 2;
/// The first layout (no frame magic, no trailer, header without a checksum), still read.
pub const FORMAT_V1: u32 = 1;
/// Versions are below this (the index keeps 56 bits); a record or header claiming more is
/// damaged, however its checksum reads.
pub const VERSION_LIMIT: u64 = 1 << 56;
/// Segment ids are below this, so that the next id always exists.
pub const SEGMENT_ID_LIMIT: u32 = u32::MAX - 1;

/// How the entries (and the frame header and trailer around them) of a segment are laid
/// out. A segment names its layout, so layouts are read side by side in one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryLayout {
    /// The fixed 40-byte entry header (format 1, and format 2 as first released).
    V1 = 1,
    /// Compact entries: varint fields, optional fields left out, the namespace inline and
    /// the horizon written (read only: one release wrote it).
    V2 = 2,
    /// Layout 2 with interned namespaces, left-out horizons and summaries of length
    /// differences (written).
    V3 = 3,
}

/// The entry layout this release writes.
pub const WRITE_LAYOUT: EntryLayout = EntryLayout::V3;

impl EntryLayout {
    fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            3 => Some(Self::V3),
            _ => None,
        }
    }

    /// Bytes of a format 2 frame header in this layout.
    pub fn frame_header_len(self) -> usize {
        match self {
            Self::V1 => V1_LAYOUT_FRAME_HEADER_LEN,
            Self::V2 | Self::V3 => FRAME_HEADER_LEN,
        }
    }

    /// Bytes of the fixed end of a frame trailer (after the summaries) in this layout.
    fn tail_len(self) -> usize {
        match self {
            Self::V1 => V1_LAYOUT_TRAILER_END_LEN,
            Self::V2 | Self::V3 => TRAILER_END_LEN,
        }
    }
}

const MAGIC_OFFSET: usize = 0;
const FORMAT_OFFSET: usize = MAGIC_OFFSET + SEGMENT_MAGIC.len();
const SEGMENT_ID_OFFSET: usize = FORMAT_OFFSET + size_of::<u32>();
const BASE_VERSION_OFFSET: usize = SEGMENT_ID_OFFSET + size_of::<u32>();
/// Bytes of a format 1 segment header (the fields above).
pub const V1_SEGMENT_HEADER_LEN: usize = BASE_VERSION_OFFSET + size_of::<u64>();
const SALT_OFFSET: usize = V1_SEGMENT_HEADER_LEN;
const ENTRY_LAYOUT_OFFSET: usize = SALT_OFFSET + size_of::<u32>();
const HEADER_RESERVED_OFFSET: usize = ENTRY_LAYOUT_OFFSET + size_of::<u16>();
const HEADER_CRC_OFFSET: usize = HEADER_RESERVED_OFFSET + size_of::<u16>();
/// Bytes of one copy of a format 2 segment header.
const V2_HEADER_COPY_LEN: usize = HEADER_CRC_OFFSET + size_of::<u32>();
/// Bytes of a format 2 segment header: two identical copies.
pub const SEGMENT_HEADER_LEN: usize = 2 * V2_HEADER_COPY_LEN;

const FRAME_CRC_OFFSET: usize = 0;
const FRAME_LEN_OFFSET: usize = FRAME_CRC_OFFSET + size_of::<u32>();
/// Bytes of a format 1 frame header: CRC and body length.
pub const V1_FRAME_HEADER_LEN: usize = FRAME_LEN_OFFSET + size_of::<u32>();

/// Starts every format 2 frame: what a scan searches for to resynchronise after damage.
pub const FRAME_MAGIC: [u8; 4] = [0xF2, b'T', b'C', 0x9A];
const V2_LEN_OFFSET: usize = FRAME_MAGIC.len();
/// Layout 2: where the frame header gives the summaries' length.
const V2_SUMMARIES_LEN_OFFSET: usize = V2_LEN_OFFSET + size_of::<u32>();
/// Bytes of the frame header of entry layout 1: magic, body length, CRC.
const V1_LAYOUT_FRAME_HEADER_LEN: usize = V2_LEN_OFFSET + 2 * size_of::<u32>();
/// Bytes of the frame header this release writes (entry layout 2): magic, body length,
/// summaries length, CRC.
pub const FRAME_HEADER_LEN: usize = V2_SUMMARIES_LEN_OFFSET + 2 * size_of::<u32>();
/// Bytes of one summary in a layout 1 trailer.
const V1_SUMMARY_LEN: usize = 8 + 4 + 4 + 4 + 1;
/// Bytes after the summaries of a layout 1 trailer: count, body length, CRC.
const V1_LAYOUT_TRAILER_END_LEN: usize = 12;
/// Bytes after the summaries of a layout 2 or 3 trailer: count, summaries length, body length,
/// CRC (the body length last before the CRC: it is never 0, so at most seven zero bytes
/// end a frame).
pub const TRAILER_END_LEN: usize = 16;

/// Layout 1 entry header fields.
const ENTRY_CRC_OFFSET: usize = 0;
const ENTRY_OP_OFFSET: usize = ENTRY_CRC_OFFSET + size_of::<u32>();
const ENTRY_KIND_OFFSET: usize = ENTRY_OP_OFFSET + size_of::<u8>();
const ENTRY_NS_LEN_OFFSET: usize = ENTRY_KIND_OFFSET + size_of::<u8>();
const ENTRY_KEY_LEN_OFFSET: usize = ENTRY_NS_LEN_OFFSET + size_of::<u16>();
const ENTRY_VALUE_LEN_OFFSET: usize = ENTRY_KEY_LEN_OFFSET + size_of::<u32>();
const ENTRY_HORIZON_OFFSET: usize = ENTRY_VALUE_LEN_OFFSET + size_of::<u32>();
const ENTRY_RESERVED_OFFSET: usize = ENTRY_HORIZON_OFFSET + size_of::<u32>();
const ENTRY_VERSION_OFFSET: usize = ENTRY_RESERVED_OFFSET + size_of::<u32>();
const ENTRY_EXPIRES_OFFSET: usize = ENTRY_VERSION_OFFSET + size_of::<u64>();
/// Bytes of a layout 1 entry header.
pub const V1_ENTRY_HEADER_LEN: usize = ENTRY_EXPIRES_OFFSET + size_of::<u64>();

/// Layout 2 entries start (after the CRC) with one varint: eight flag bits, and above them
/// the namespace's frame id when the entry has one. The flags: the op in the low three bits,
/// then whether an expiry and a kind byte follow, whether the entry names its namespace by an
/// id its frame gives it, whether the name itself is in the entry (an entry with both
/// defines the id for the entries after it in the frame), and whether the horizon is written
/// (else it is the id of the segment the entry is in).
const L2_OP_MASK: u8 = 0x07;
const L2_HAS_EXPIRY: u8 = 0x08;
const L2_HAS_KIND: u8 = 0x10;
const L2_HAS_NS_ID: u8 = 0x20;
const L2_NS_INLINE: u8 = 0x40;
const L2_HAS_HORIZON: u8 = 0x80;
const L2_ID_SHIFT: u32 = 8;
/// Namespace ids of a frame are below this, so that the flags varint takes two bytes at most
/// (one for id 0 without a written horizon); a frame's later namespaces are written inline.
const FRAME_NS_IDS: usize = 64;
/// Bytes of a layout 2 or 3 entry before its varints: its CRC.
const L2_FIXED_LEN: usize = size_of::<u32>();

/// Longest namespace name.
pub const MAX_NAMESPACE_LEN: usize = u16::MAX as usize;
/// Longest key.
pub const MAX_KEY_LEN: usize = crate::keydir::MAX_KEY_LEN;

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Stores a value.
    Put = 1,
    /// Deletes a key (shadows older puts).
    Tombstone = 2,
    /// Creates a namespace.
    CreateNamespace = 3,
    /// Removes every item of a namespace older than this entry.
    ClearNamespace = 4,
    /// Removes a namespace and every item older than this entry.
    DropNamespace = 5,
}

impl Op {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Put,
            2 => Self::Tombstone,
            3 => Self::CreateNamespace,
            4 => Self::ClearNamespace,
            5 => Self::DropNamespace,
            _ => return None,
        })
    }
}

/// Why bytes did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the structure needs.
    Truncated,
    /// A checksum did not match.
    BadChecksum,
    /// A magic number or format version is not ours.
    BadHeader,
    /// A field holds a value the format does not allow.
    BadField,
    /// A zero-length frame: the end of written data.
    End,
    /// A segment written by a newer release, in this format version.
    NewerFormat(u32),
    /// A format 2 segment whose entries are in a layout this release does not know.
    UnknownEntryLayout(u16),
}

/// The fields of an entry header; `ns`, `key` and `value` follow it on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// What the entry does.
    pub op: Op,
    /// The caller's value-kind tag.
    pub kind: u8,
    /// Highest segment id allocated when first written.
    pub horizon: u32,
    /// Store-wide version.
    pub version: u64,
    /// Expiry in ms, 0 = never (layouts 2 and 3 keep whole seconds, rounded up).
    pub expires_ms: u64,
}

/// A decoded entry borrowing from the segment bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Header fields.
    pub meta: EntryMeta,
    /// Namespace name.
    pub namespace: &'a [u8],
    /// Key (empty for namespace ops).
    pub key: &'a [u8],
    /// Value (empty but for puts).
    pub value: &'a [u8],
    /// Total encoded length of the entry.
    pub len: usize,
    /// Layout 2: the id its frame gives the namespace, if the entry uses one.
    pub ns_id: Option<u32>,
    /// Whether the namespace's name is in the entry itself (else `namespace` is empty until
    /// [`FrameIds::resolve`] fills it from an earlier entry of the frame).
    pub ns_inline: bool,
    /// Layout 2: the horizon is not written; it is the id of the entry's segment.
    pub implied_horizon: bool,
}

/// How a layout 3 entry names its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsForm {
    /// The name, in the entry.
    Inline,
    /// The name, and the id that later entries of the frame use for it.
    Define(u32),
    /// Only the id an earlier entry of the frame defined.
    Id(u32),
}

/// How a record names its namespace, as the index and hint files keep it (frame ids are one
/// byte, so this and the name's length give the record's header length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NsKind {
    /// The name only (and every layout 1 entry).
    #[default]
    Inline,
    /// The name and a frame id.
    Define,
    /// A frame id only.
    ById,
}

/// What, beside its fields, sets the length of a layout 3 entry: how it names its
/// namespace, whether its frame id is 0, and whether its horizon is implied by its segment.
/// The index keeps it, so a record's value length follows from the record's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// How the entry names its namespace.
    pub ns: NsKind,
    /// Whether its frame id, if it has one, is 0 (the flags varint is then one byte shorter).
    pub id_zero: bool,
    /// Whether the horizon is left out (it is the segment's id).
    pub implied_horizon: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            ns: NsKind::Inline,
            id_zero: true,
            implied_horizon: false,
        }
    }
}

impl EntryRef<'_> {
    /// How the entry names its namespace.
    pub fn ns_kind(&self) -> NsKind {
        match (self.ns_id.is_some(), self.ns_inline) {
            (false, _) => NsKind::Inline,
            (true, true) => NsKind::Define,
            (true, false) => NsKind::ById,
        }
    }

    /// The entry's shape.
    pub fn shape(&self) -> Shape {
        Shape {
            ns: self.ns_kind(),
            id_zero: self.ns_id.is_none_or(|id| id == 0),
            implied_horizon: self.implied_horizon,
        }
    }
}

/// Encoded length of an entry in `layout` (layout 3: with its namespace inline and its
/// horizon written).
#[inline]
pub fn entry_len(
    layout: EntryLayout,
    meta: &EntryMeta,
    namespace_len: usize,
    key_len: usize,
    value_len: usize,
) -> usize {
    let head = match layout {
        EntryLayout::V1 => V1_ENTRY_HEADER_LEN,
        EntryLayout::V2 => return layout2_entry_len(meta, namespace_len, key_len, value_len),
        EntryLayout::V3 => {
            return v2_entry_len(meta, Shape::default(), namespace_len, key_len, value_len)
        }
    };
    head + namespace_len + key_len + value_len
}

/// Encoded length of a layout 2 entry: a layout 3 entry with its namespace inline and its
/// horizon written, but whose flags are one byte (they have no "horizon written" bit).
#[inline]
pub fn layout2_entry_len(
    meta: &EntryMeta,
    namespace_len: usize,
    key_len: usize,
    value_len: usize,
) -> usize {
    v2_entry_len(meta, Shape::default(), namespace_len, key_len, value_len) - 1
}

/// The value length of a layout 2 or 3 entry that is `len` bytes long, where `head` is the
/// length the same entry has with an empty value (its value length then takes one byte).
/// `None` if no value length gives `len`.
pub fn compact_value_len(len: usize, head: usize) -> Option<usize> {
    // `rest` counts the value and the bytes its length takes beyond the one of a 0.
    let rest = len.checked_sub(head)?;
    (0..10)
        .filter_map(|extra| rest.checked_sub(extra))
        .find(|&v| varint::len(v as u64) - 1 + v == rest)
}

/// Encoded length of a layout 3 entry of `shape` (frame ids below 128, as the encoder
/// gives them) whose namespace is `namespace_len` bytes long.
#[inline]
pub fn v2_entry_len(
    meta: &EntryMeta,
    shape: Shape,
    namespace_len: usize,
    key_len: usize,
    value_len: usize,
) -> usize {
    let expiry = expiry_secs(meta.expires_ms);
    let name = match shape.ns {
        NsKind::Inline | NsKind::Define => varint::len(namespace_len as u64) + namespace_len,
        NsKind::ById => 0,
    };
    // The flags varint: the top flag is "horizon written"; a frame id sits above the flags.
    let id_above_zero = shape.ns != NsKind::Inline && !shape.id_zero;
    let head = 1 + usize::from(!shape.implied_horizon || id_above_zero);
    let horizon = if shape.implied_horizon {
        0
    } else {
        varint::len(u64::from(meta.horizon))
    };
    L2_FIXED_LEN
        + head
        + usize::from(meta.kind != 0)
        + name
        + varint::len(key_len as u64)
        + varint::len(value_len as u64)
        + horizon
        + varint::len(meta.version)
        + if expiry == 0 { 0 } else { varint::len(expiry) }
        + key_len
        + value_len
}

/// An expiry in ms as layouts 2 and 3 keep it: whole seconds, rounded up (never early), at most
/// `u32::MAX` (the year 2106; the index keeps no more either). A layout 1 record from a
/// release that did not round may hold more; compaction copies it with this.
#[inline]
fn expiry_secs(expires_ms: u64) -> u64 {
    expires_ms.div_ceil(1000).min(u64::from(u32::MAX))
}

/// Appends one entry to `out`, in the layout this release writes, its namespace inline (the
/// store's writers intern namespaces with [`FrameNames`]; tests use this).
#[cfg(test)]
pub fn encode_entry(
    out: &mut Vec<u8>,
    meta: &EntryMeta,
    namespace: &[u8],
    key: &[u8],
    value: &[u8],
) {
    encode_entry_as(out, meta, NsForm::Inline, NO_SEGMENT, namespace, key, value);
}

/// No segment id: an entry encoded for it always writes its horizon.
pub const NO_SEGMENT: u32 = u32::MAX;

/// Appends one layout 3 entry to `out`, naming its namespace in `form`, for segment
/// `segment` (its horizon is left out if it is that segment's id; an entry that ends up in a
/// later segment then reads a larger horizon, which only keeps tombstones longer).
pub fn encode_entry_as(
    out: &mut Vec<u8>,
    meta: &EntryMeta,
    form: NsForm,
    segment: u32,
    namespace: &[u8],
    key: &[u8],
    value: &[u8],
) {
    let start = out.len();
    let (mut flags, expiry) = op_flags(meta);
    let (id, inline) = match form {
        NsForm::Inline => (None, true),
        NsForm::Define(id) => (Some(id), true),
        NsForm::Id(id) => (Some(id), false),
    };
    if id.is_some() {
        flags |= L2_HAS_NS_ID;
    }
    if inline {
        flags |= L2_NS_INLINE;
    }
    let horizon = meta.horizon != segment;
    if horizon {
        flags |= L2_HAS_HORIZON;
    }
    out.extend_from_slice(&[0; 4]);
    varint::put(
        out,
        u64::from(flags) | u64::from(id.unwrap_or(0)) << L2_ID_SHIFT,
    );
    if meta.kind != 0 {
        out.push(meta.kind);
    }
    if inline {
        varint::put(out, namespace.len() as u64);
    }
    varint::put(out, key.len() as u64);
    varint::put(out, value.len() as u64);
    if horizon {
        varint::put(out, u64::from(meta.horizon));
    }
    varint::put(out, meta.version);
    if expiry != 0 {
        varint::put(out, expiry);
    }
    if inline {
        out.extend_from_slice(namespace);
    }
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    seal_entry(out, start);
}

/// The flags of a layout 2 or 3 entry that its fields set (the op, whether an expiry and a
/// kind byte follow), and its expiry in whole seconds.
fn op_flags(meta: &EntryMeta) -> (u8, u64) {
    let expiry = expiry_secs(meta.expires_ms);
    let mut flags = meta.op as u8;
    if expiry != 0 {
        flags |= L2_HAS_EXPIRY;
    }
    if meta.kind != 0 {
        flags |= L2_HAS_KIND;
    }
    (flags, expiry)
}

/// Appends one entry in layout 2 (tests and fuzzing of the upgrade path: no release writes
/// it any more): one flags byte, the namespace inline and the horizon always written.
#[cfg(any(test, feature = "fuzzing"))]
pub fn encode_layout2_entry(
    out: &mut Vec<u8>,
    meta: &EntryMeta,
    namespace: &[u8],
    key: &[u8],
    value: &[u8],
) {
    let start = out.len();
    let (flags, expiry) = op_flags(meta);
    out.extend_from_slice(&[0; 4]);
    out.push(flags);
    if meta.kind != 0 {
        out.push(meta.kind);
    }
    for n in [namespace.len(), key.len(), value.len()] {
        varint::put(out, n as u64);
    }
    varint::put(out, u64::from(meta.horizon));
    varint::put(out, meta.version);
    if expiry != 0 {
        varint::put(out, expiry);
    }
    for part in [namespace, key, value] {
        out.extend_from_slice(part);
    }
    seal_entry(out, start);
}

/// Fills in the CRC of the entry that starts at `start` and ends `out` (both layouts: the
/// CRC covers every byte of the entry after it).
fn seal_entry(out: &mut [u8], start: usize) {
    let crc = crc32fast::hash(&out[start + ENTRY_OP_OFFSET..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one entry in layout 1 (tests of the upgrade path: this release writes layout 3).
#[cfg(any(test, feature = "fuzzing"))]
pub fn encode_v1_entry(
    out: &mut Vec<u8>,
    meta: &EntryMeta,
    namespace: &[u8],
    key: &[u8],
    value: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(meta.op as u8);
    out.push(meta.kind);
    out.extend_from_slice(&len_u16(namespace.len()).to_le_bytes());
    out.extend_from_slice(&len_u32(key.len()).to_le_bytes());
    out.extend_from_slice(&len_u32(value.len()).to_le_bytes());
    out.extend_from_slice(&meta.horizon.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&meta.version.to_le_bytes());
    out.extend_from_slice(&meta.expires_ms.to_le_bytes());
    out.extend_from_slice(namespace);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    seal_entry(out, start);
}

#[cfg(any(test, feature = "fuzzing"))]
fn len_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Little-endian u16 at `at` (the caller checked the bounds).
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}

/// Little-endian u32 at `at` (the caller checked the bounds).
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Little-endian u64 at `at` (the caller checked the bounds).
pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The header fields of a layout 2 or 3 entry, parsed but not checked against its CRC.
struct V2Head {
    flags: u8,
    /// The varint's bits above the flags: the frame id, or 0.
    id_bits: u64,
    kind: u8,
    horizon: Option<u64>,
    version: u64,
    expiry_secs: u64,
    ns_len: usize,
    key_len: usize,
    /// Bytes of the header: where the namespace starts.
    head_len: usize,
    /// Bytes of the whole entry.
    len: usize,
}

/// Parses the head of a layout 2 or 3 entry. A layout 2 entry's flags byte has only the op,
/// expiry and kind bits: it is read as a layout 3 entry whose namespace is inline and whose
/// horizon is written (its length differs: see [`layout2_entry_len`]).
fn parse_v2_head(bytes: &[u8], layout: EntryLayout) -> Result<V2Head, DecodeError> {
    let mut b = bytes.get(L2_FIXED_LEN..).ok_or(DecodeError::Truncated)?;
    let head = varint::take(&mut b)?;
    let (flags, id_bits) = if layout == EntryLayout::V2 {
        let flags = u8::try_from(head).map_err(|_| DecodeError::BadField)?;
        if flags & !(L2_OP_MASK | L2_HAS_EXPIRY | L2_HAS_KIND) != 0 {
            return Err(DecodeError::BadField);
        }
        (flags | L2_NS_INLINE | L2_HAS_HORIZON, 0)
    } else {
        (head as u8, head >> L2_ID_SHIFT)
    };
    let kind = if flags & L2_HAS_KIND != 0 {
        varint::take_bytes(&mut b, 1)?[0]
    } else {
        0
    };
    let ns_len = if flags & L2_NS_INLINE != 0 {
        varint::take(&mut b)?
    } else {
        0
    };
    let key_len = varint::take(&mut b)?;
    let value_len = varint::take(&mut b)?;
    let horizon = if flags & L2_HAS_HORIZON != 0 {
        Some(varint::take(&mut b)?)
    } else {
        None
    };
    let version = varint::take(&mut b)?;
    let expiry_secs = if flags & L2_HAS_EXPIRY != 0 {
        varint::take(&mut b)?
    } else {
        0
    };
    let head_len = bytes.len() - b.len();
    let usize_of = |v: u64| usize::try_from(v).map_err(|_| DecodeError::BadField);
    let (ns_len, key_len) = (usize_of(ns_len)?, usize_of(key_len)?);
    let len = head_len
        .checked_add(ns_len)
        .and_then(|n| n.checked_add(key_len))
        .and_then(|n| n.checked_add(usize::try_from(value_len).ok()?))
        .ok_or(DecodeError::BadField)?;
    Ok(V2Head {
        flags,
        id_bits,
        kind,
        horizon,
        version,
        expiry_secs,
        ns_len,
        key_len,
        head_len,
        len,
    })
}

/// Encoded length of the entry at the start of `bytes` as its header says, unchecked.
pub(crate) fn entry_len_at(bytes: &[u8], layout: EntryLayout) -> Option<usize> {
    match layout {
        EntryLayout::V1 => {
            let h = bytes.get(..V1_ENTRY_HEADER_LEN)?;
            V1_ENTRY_HEADER_LEN
                .checked_add(usize::from(read_u16(h, ENTRY_NS_LEN_OFFSET)))?
                .checked_add(read_u32(h, ENTRY_KEY_LEN_OFFSET) as usize)?
                .checked_add(read_u32(h, ENTRY_VALUE_LEN_OFFSET) as usize)
        }
        EntryLayout::V2 | EntryLayout::V3 => parse_v2_head(bytes, layout).ok().map(|h| h.len),
    }
}

/// Decodes the entry at the start of `bytes`, in `layout`, checking its CRC. `segment`: the
/// id of the segment it is in (a layout 3 entry may leave its horizon to it).
///
/// # Errors
/// [`DecodeError::Truncated`], [`DecodeError::BadChecksum`] or [`DecodeError::BadField`].
pub fn decode_entry(
    bytes: &[u8],
    layout: EntryLayout,
    segment: u32,
) -> Result<EntryRef<'_>, DecodeError> {
    match layout {
        EntryLayout::V1 => decode_v1_entry(bytes),
        EntryLayout::V2 | EntryLayout::V3 => decode_v2_entry(bytes, layout, segment, true),
    }
}

/// Decodes an entry that this process has just encoded itself, for segment `segment`,
/// without the CRC pass.
pub(crate) fn decode_own_entry(bytes: &[u8], segment: u32) -> Result<EntryRef<'_>, DecodeError> {
    decode_v2_entry(bytes, WRITE_LAYOUT, segment, false)
}

fn decode_v2_entry(
    bytes: &[u8],
    layout: EntryLayout,
    segment: u32,
    check: bool,
) -> Result<EntryRef<'_>, DecodeError> {
    let h = parse_v2_head(bytes, layout)?;
    if bytes.len() < h.len {
        return Err(DecodeError::Truncated);
    }
    let crc = read_u32(bytes, ENTRY_CRC_OFFSET);
    if check && crc32fast::hash(&bytes[ENTRY_OP_OFFSET..h.len]) != crc {
        return Err(DecodeError::BadChecksum);
    }
    let op = Op::from_byte(h.flags & L2_OP_MASK).ok_or(DecodeError::BadField)?;
    // The writer leaves out a horizon equal to the segment's id; a written one equal to it
    // is read as written (a record copied into a segment keeps its horizon written).
    let horizon = match h.horizon {
        Some(v) => u32::try_from(v).map_err(|_| DecodeError::BadField)?,
        None => segment,
    };
    let has_id = h.flags & L2_HAS_NS_ID != 0;
    if h.version >= VERSION_LIMIT
        || h.ns_len > MAX_NAMESPACE_LEN
        || h.expiry_secs > u64::from(u32::MAX)
        || (h.flags & L2_HAS_EXPIRY != 0 && h.expiry_secs == 0)
        || (h.flags & L2_HAS_KIND != 0 && h.kind == 0)
        || h.flags & (L2_HAS_NS_ID | L2_NS_INLINE) == 0
        || h.id_bits >= FRAME_NS_IDS as u64
        || (!has_id && h.id_bits != 0)
    {
        return Err(DecodeError::BadField);
    }
    let meta = EntryMeta {
        op,
        kind: h.kind,
        horizon,
        version: h.version,
        expires_ms: h.expiry_secs * 1000,
    };
    let key_start = h.head_len + h.ns_len;
    let value_start = key_start + h.key_len;
    Ok(EntryRef {
        meta,
        namespace: &bytes[h.head_len..key_start],
        key: &bytes[key_start..value_start],
        value: &bytes[value_start..h.len],
        len: h.len,
        ns_id: has_id.then_some(h.id_bits as u32),
        ns_inline: h.flags & L2_NS_INLINE != 0,
        implied_horizon: h.horizon.is_none(),
    })
}

fn decode_v1_entry(bytes: &[u8]) -> Result<EntryRef<'_>, DecodeError> {
    if bytes.len() < V1_ENTRY_HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let ns_len = usize::from(read_u16(bytes, ENTRY_NS_LEN_OFFSET));
    let key_len = read_u32(bytes, ENTRY_KEY_LEN_OFFSET) as usize;
    let value_len = read_u32(bytes, ENTRY_VALUE_LEN_OFFSET) as usize;
    let len = V1_ENTRY_HEADER_LEN
        .checked_add(ns_len)
        .and_then(|n| n.checked_add(key_len))
        .and_then(|n| n.checked_add(value_len))
        .ok_or(DecodeError::BadField)?;
    if bytes.len() < len {
        return Err(DecodeError::Truncated);
    }
    let crc = read_u32(bytes, ENTRY_CRC_OFFSET);
    if crc32fast::hash(&bytes[ENTRY_OP_OFFSET..len]) != crc {
        return Err(DecodeError::BadChecksum);
    }
    let op = Op::from_byte(bytes[ENTRY_OP_OFFSET]).ok_or(DecodeError::BadField)?;
    if read_u64(bytes, ENTRY_VERSION_OFFSET) >= VERSION_LIMIT {
        return Err(DecodeError::BadField);
    }
    let meta = EntryMeta {
        op,
        kind: bytes[ENTRY_KIND_OFFSET],
        horizon: read_u32(bytes, ENTRY_HORIZON_OFFSET),
        version: read_u64(bytes, ENTRY_VERSION_OFFSET),
        expires_ms: read_u64(bytes, ENTRY_EXPIRES_OFFSET),
    };
    let ns_start = V1_ENTRY_HEADER_LEN;
    let key_start = ns_start + ns_len;
    let value_start = key_start + key_len;
    Ok(EntryRef {
        meta,
        namespace: &bytes[ns_start..key_start],
        key: &bytes[key_start..value_start],
        value: &bytes[value_start..len],
        len,
        ns_id: None,
        ns_inline: true,
        implied_horizon: false,
    })
}

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

    fn form_for(&mut self, namespace: &[u8]) -> NsForm {
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

fn salted_crc(salt: u32, parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(salt);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// CRC of a format 1 frame's length field and its entries' CRCs; `None` if the entries do
/// not tile the body exactly. `bytes` starts at the length field and ends with the body.
fn frame_crc(bytes: &[u8]) -> Option<u32> {
    let (len_field, body) = bytes.split_at_checked(V1_FRAME_HEADER_LEN - FRAME_LEN_OFFSET)?;
    entry_crcs(crc32fast::Hasher::new(), len_field, body, EntryLayout::V1)
}

/// CRC (seeded with `salt`) of a format 2 frame's header fields before the CRC and its
/// entries' CRCs; `None` if the entries do not tile the body. `frame` starts at the magic.
fn v2_frame_crc(frame: &[u8], salt: u32, layout: EntryLayout) -> Option<u32> {
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

/// The header of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment id (also in the file name).
    pub id: u32,
    /// The store's next version when the segment was created.
    pub base_version: u64,
    /// Layout of the segment: [`FORMAT_V1`] or [`FORMAT_VERSION`].
    pub format: u32,
    /// Seeds the frame checksums of a format 2 segment (random per store opening).
    pub salt: u32,
    /// Layout of its entries (format 1 segments have layout 1).
    pub entry_layout: EntryLayout,
}

impl SegmentHeader {
    /// Where the first frame starts.
    pub fn data_start(&self) -> usize {
        if self.format == FORMAT_V1 {
            V1_SEGMENT_HEADER_LEN
        } else {
            SEGMENT_HEADER_LEN
        }
    }
}

/// Encodes a format 2 segment header: two identical copies, each with its own CRC.
pub fn encode_segment_header(h: &SegmentHeader) -> [u8; SEGMENT_HEADER_LEN] {
    let mut copy = [0; V2_HEADER_COPY_LEN];
    copy[MAGIC_OFFSET..FORMAT_OFFSET].copy_from_slice(&SEGMENT_MAGIC);
    copy[FORMAT_OFFSET..SEGMENT_ID_OFFSET].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    copy[SEGMENT_ID_OFFSET..BASE_VERSION_OFFSET].copy_from_slice(&h.id.to_le_bytes());
    copy[BASE_VERSION_OFFSET..SALT_OFFSET].copy_from_slice(&h.base_version.to_le_bytes());
    copy[SALT_OFFSET..ENTRY_LAYOUT_OFFSET].copy_from_slice(&h.salt.to_le_bytes());
    copy[ENTRY_LAYOUT_OFFSET..HEADER_RESERVED_OFFSET]
        .copy_from_slice(&(h.entry_layout as u16).to_le_bytes());
    let crc = crc32fast::hash(&copy[..HEADER_CRC_OFFSET]);
    copy[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
    let mut out = [0; SEGMENT_HEADER_LEN];
    out[..V2_HEADER_COPY_LEN].copy_from_slice(&copy);
    out[V2_HEADER_COPY_LEN..].copy_from_slice(&copy);
    out
}
/// Decodes a segment header of format 1 or 2 (for format 2, the first copy whose CRC
/// checks).
///
/// # Errors
/// [`DecodeError::Truncated`], [`DecodeError::BadHeader`], or
/// [`DecodeError::NewerFormat`] for a segment written by a newer release.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, DecodeError> {
    if bytes.len() < V1_SEGMENT_HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let mut newer = None;
    for copy in [0, V2_HEADER_COPY_LEN] {
        let Some(b) = bytes.get(copy..copy + V2_HEADER_COPY_LEN) else {
            continue;
        };
        if b[..FORMAT_OFFSET] != SEGMENT_MAGIC
            || crc32fast::hash(&b[..HEADER_CRC_OFFSET]) != read_u32(b, HEADER_CRC_OFFSET)
        {
            continue;
        }
        let format = read_u32(b, FORMAT_OFFSET);
        if format > FORMAT_VERSION {
            newer = Some(format);
            continue;
        }
        if format != FORMAT_VERSION {
            continue;
        }
        let layout = read_u16(b, ENTRY_LAYOUT_OFFSET);
        let entry_layout =
            EntryLayout::from_u16(layout).ok_or(DecodeError::UnknownEntryLayout(layout))?;
        return plausible(SegmentHeader {
            id: read_u32(b, SEGMENT_ID_OFFSET),
            base_version: read_u64(b, BASE_VERSION_OFFSET),
            format,
            salt: read_u32(b, SALT_OFFSET),
            entry_layout,
        });
    }
    if let Some(format) = newer {
        return Err(DecodeError::NewerFormat(format));
    }
    if bytes[MAGIC_OFFSET..FORMAT_OFFSET] != SEGMENT_MAGIC
        || read_u32(bytes, FORMAT_OFFSET) != FORMAT_V1
    {
        if bytes.len() < SEGMENT_HEADER_LEN && read_u32(bytes, FORMAT_OFFSET) == FORMAT_VERSION {
            return Err(DecodeError::Truncated);
        }
        return Err(DecodeError::BadHeader);
    }
    // Format 1 headers have no checksum: fields that would break version or id allocation
    // are refused outright (found by fuzzing recovery).
    plausible(SegmentHeader {
        id: read_u32(bytes, SEGMENT_ID_OFFSET),
        base_version: read_u64(bytes, BASE_VERSION_OFFSET),
        format: FORMAT_V1,
        salt: 0,
        entry_layout: EntryLayout::V1,
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

/// A format 1 segment header (tests of the upgrade path).
#[cfg(test)]
pub(crate) fn encode_v1_segment_header(id: u32, base_version: u64) -> Vec<u8> {
    let mut out = vec![0; V1_SEGMENT_HEADER_LEN];
    out[..FORMAT_OFFSET].copy_from_slice(&SEGMENT_MAGIC);
    out[FORMAT_OFFSET..SEGMENT_ID_OFFSET].copy_from_slice(&FORMAT_V1.to_le_bytes());
    out[SEGMENT_ID_OFFSET..BASE_VERSION_OFFSET].copy_from_slice(&id.to_le_bytes());
    out[BASE_VERSION_OFFSET..].copy_from_slice(&base_version.to_le_bytes());
    out
}

fn plausible(header: SegmentHeader) -> Result<SegmentHeader, DecodeError> {
    if header.base_version >= VERSION_LIMIT || header.id >= SEGMENT_ID_LIMIT {
        return Err(DecodeError::BadHeader);
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The segment id test entries are decoded in (their horizon, 3, is never it).
    const SEG: u32 = 7;

    fn meta(op: Op) -> EntryMeta {
        EntryMeta {
            op,
            kind: 7,
            horizon: 3,
            version: 42,
            expires_ms: 99_000,
        }
    }

    #[test]
    fn entry_round_trips() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, &meta(Op::Put), b"ns", b"key", b"value");
        assert_eq!(buf.len(), entry_len(WRITE_LAYOUT, &meta(Op::Put), 2, 3, 5));
        let mut v1 = Vec::new();
        encode_v1_entry(&mut v1, &meta(Op::Put), b"ns", b"key", b"value");
        assert_eq!(
            v1.len(),
            entry_len(EntryLayout::V1, &meta(Op::Put), 2, 3, 5)
        );
        assert_eq!(
            decode_entry(&v1, EntryLayout::V1, SEG).expect("v1").meta,
            meta(Op::Put)
        );
        let e = decode_entry(&buf, WRITE_LAYOUT, SEG).expect("decodes");
        assert_eq!(e.meta, meta(Op::Put));
        assert_eq!(
            (e.namespace, e.key, e.value),
            (&b"ns"[..], &b"key"[..], &b"value"[..])
        );
        assert_eq!(e.len, buf.len());
    }

    #[test]
    fn truncated_entry_is_a_typed_error() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, &meta(Op::Put), b"ns", b"key", b"value");
        for cut in 0..buf.len() {
            assert_eq!(
                decode_entry(&buf[..cut], WRITE_LAYOUT, SEG),
                Err(DecodeError::Truncated),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn flipped_bit_fails_the_checksum() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, &meta(Op::Tombstone), b"ns", b"key", b"");
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_entry(&bad, WRITE_LAYOUT, SEG).is_err(),
                "flip at byte {i} accepted"
            );
        }
    }

    #[test]
    fn bad_op_is_a_typed_error() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, &meta(Op::Put), b"n", b"k", b"v");
        buf[ENTRY_OP_OFFSET] |= L2_OP_MASK;
        let crc = crc32fast::hash(&buf[ENTRY_OP_OFFSET..]);
        buf[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_entry(&buf, WRITE_LAYOUT, SEG),
            Err(DecodeError::BadField)
        );
    }

    const SALT: u32 = 0xC0FFEE;

    fn two_entry_frame() -> Vec<u8> {
        let mut buf = Vec::new();
        let start = begin_frame(&mut buf);
        encode_entry(&mut buf, &meta(Op::Put), b"ns", b"a", b"1");
        encode_entry(&mut buf, &meta(Op::Tombstone), b"ns", b"b", b"");
        finish_frame(&mut buf, start, SALT);
        buf
    }

    #[test]
    fn frame_round_trips_and_detects_tears() {
        let buf = two_entry_frame();
        let frame = decode_v2_frame(&buf, SALT, WRITE_LAYOUT).expect("frame");
        assert_eq!(frame.total, buf.len());
        let keys: Vec<_> = frame_entries(frame.body, WRITE_LAYOUT, SEG)
            .map(|e| e.expect("entry").1.key.to_vec())
            .collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        let trailer = frame.trailer.expect("the trailer checks");
        let versions: Vec<_> = trailer
            .summaries()
            .map(|s| (s.version, s.key_hash))
            .collect();
        assert_eq!(
            versions,
            vec![(42, crc32fast::hash(b"a")), (42, crc32fast::hash(b"b"))]
        );
        let body_end = FRAME_HEADER_LEN + frame.body.len();
        for cut in 1..body_end {
            assert!(
                decode_v2_frame(&buf[..cut], SALT, WRITE_LAYOUT).is_err(),
                "torn frame of {cut} bytes accepted"
            );
        }
        assert_eq!(
            decode_v2_frame(&[0; 16], SALT, WRITE_LAYOUT).err(),
            Some(DecodeError::End)
        );
        // Another store's salt: the header does not check.
        assert_eq!(
            decode_v2_frame(&buf, SALT ^ 1, WRITE_LAYOUT).err(),
            Some(DecodeError::BadChecksum)
        );
    }

    #[test]
    fn the_trailer_alone_places_the_frame() {
        let buf = two_entry_frame();
        let mut bad = buf.clone();
        bad[V2_LEN_OFFSET] ^= 0x40;
        assert!(
            decode_v2_frame(&bad, SALT, WRITE_LAYOUT).is_err(),
            "damaged length"
        );
        let t = trailer_ending_at(&bad, bad.len(), SALT, WRITE_LAYOUT).expect("trailer checks");
        assert_eq!((t.count, t.frame_len), (2, buf.len()));
        assert!(trailer_ending_at(&bad, bad.len() - 1, SALT, WRITE_LAYOUT).is_none());
        let mut bad_trailer = buf.clone();
        let n = bad_trailer.len();
        bad_trailer[n - 20] ^= 1;
        let frame = decode_v2_frame(&bad_trailer, SALT, WRITE_LAYOUT).expect("header still checks");
        assert!(frame.trailer.is_none());
        assert_eq!(frame.total, buf.len());
    }

    /// A trailer whose own checksum holds but whose count or body length disagrees with the
    /// frame it ends: not this frame's trailer.
    #[test]
    fn a_trailer_that_disagrees_with_its_frame_is_not_used() {
        let buf = two_entry_frame();
        let n = buf.len();
        let retrailer = |edit: &dyn Fn(&mut [u8])| {
            let mut bad = buf.clone();
            edit(&mut bad[n - TRAILER_END_LEN..n - 4]);
            let summaries_len = read_u32(&bad, n - TRAILER_END_LEN + 4) as usize;
            let start = n - TRAILER_END_LEN - summaries_len;
            let crc = salted_crc(SALT, &[&bad[start..n - 4]]);
            bad[n - 4..].copy_from_slice(&crc.to_le_bytes());
            bad
        };
        let wrong_len = retrailer(&|t| {
            let len = read_u32(t, 8) - 1;
            t[8..12].copy_from_slice(&len.to_le_bytes());
        });
        assert!(
            trailer_ending_at(&wrong_len, n, SALT, WRITE_LAYOUT).is_some(),
            "it checks alone"
        );
        let f = decode_v2_frame(&wrong_len, SALT, WRITE_LAYOUT).expect("the header checks");
        assert!(f.trailer.is_none());
        assert_eq!(f.total, n);
        let wrong_count = retrailer(&|t| t[..4].copy_from_slice(&1u32.to_le_bytes()));
        assert!(
            trailer_ending_at(&wrong_count, n, SALT, WRITE_LAYOUT).is_some(),
            "it checks alone"
        );
        let f = decode_v2_frame(&wrong_count, SALT, WRITE_LAYOUT).expect("the header checks");
        assert!(f.trailer.is_none());
        assert_eq!(f.total, n);
    }

    #[test]
    fn v1_frames_still_decode() {
        let mut buf = vec![0; V1_FRAME_HEADER_LEN];
        encode_v1_entry(&mut buf, &meta(Op::Put), b"ns", b"a", b"1");
        let body_len = len_u32(buf.len() - V1_FRAME_HEADER_LEN);
        buf[FRAME_LEN_OFFSET..V1_FRAME_HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
        let crc = frame_crc(&buf[FRAME_LEN_OFFSET..]).expect("tiles");
        buf[..FRAME_LEN_OFFSET].copy_from_slice(&crc.to_le_bytes());
        let (body, total) = decode_v1_frame(&buf).expect("v1 frame");
        assert_eq!((body.len(), total), (buf.len() - 8, buf.len()));
        buf[0] ^= 1;
        assert_eq!(decode_v1_frame(&buf), Err(DecodeError::BadChecksum));
    }

    /// A format 1 frame of one entry, its CRC computed here from the layout (not by the
    /// code under test): CRC32 of the length field followed by each entry's CRC.
    fn v1_frame() -> Vec<u8> {
        let mut entry = Vec::new();
        encode_v1_entry(&mut entry, &meta(Op::Put), b"ns", b"a", b"1");
        let len_field = len_u32(entry.len()).to_le_bytes();
        let mut h = crc32fast::Hasher::new();
        h.update(&len_field);
        h.update(&entry[..4]);
        let mut buf = h.finalize().to_le_bytes().to_vec();
        buf.extend_from_slice(&len_field);
        buf.extend_from_slice(&entry);
        buf
    }

    #[test]
    fn v1_frame_checksums_follow_the_layout() {
        let buf = v1_frame();
        let (body, total) = decode_v1_frame(&buf).expect("a correct v1 frame");
        assert_eq!((body.len(), total), (buf.len() - 8, buf.len()));
        let mut bad = buf.clone();
        bad[0] ^= 1;
        assert_eq!(decode_v1_frame(&bad), Err(DecodeError::BadChecksum));
    }

    /// The error of each kind of bad or missing v1 frame (scans and `verify` report them).
    #[test]
    fn v1_frame_errors_are_typed() {
        // Zeros where a frame would start: the end of the data, however few are left.
        for n in [0, 3, 7, 8, 20] {
            assert_eq!(
                decode_v1_frame(&vec![0; n]),
                Err(DecodeError::End),
                "{n} zeros"
            );
        }
        // Fewer bytes than a frame header, not all zero: cut short.
        assert_eq!(decode_v1_frame(&[0, 0, 1]), Err(DecodeError::Truncated));
        // A zero length with a checksum: not the end marker.
        assert_eq!(
            decode_v1_frame(&[1, 0, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::BadField)
        );
        // A length running past the end.
        let buf = v1_frame();
        assert_eq!(
            decode_v1_frame(&buf[..buf.len() - 1]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn v2_frame_errors_are_typed() {
        for n in [0, 1, 3, 4, 16] {
            assert_eq!(
                decode_v2_frame(&vec![0; n], SALT, WRITE_LAYOUT).err(),
                Some(DecodeError::End),
                "{n} zeros"
            );
        }
        assert_eq!(
            decode_v2_frame(&[0, 0, 1], SALT, WRITE_LAYOUT).err(),
            Some(DecodeError::Truncated)
        );
        assert_eq!(
            decode_v2_frame(&[1, 2, 3, 4, 5], SALT, WRITE_LAYOUT).err(),
            Some(DecodeError::BadHeader)
        );
        let buf = two_entry_frame();
        // Cut inside the header or the body: cut short, whatever the checksum would say.
        let body_end = FRAME_HEADER_LEN + read_u32(&buf, V2_LEN_OFFSET) as usize;
        for cut in [FRAME_MAGIC.len() + 1, FRAME_HEADER_LEN, body_end - 1] {
            assert_eq!(
                decode_v2_frame(&buf[..cut], SALT, WRITE_LAYOUT).err(),
                Some(DecodeError::Truncated),
                "cut at {cut}"
            );
        }
        // The salt of a frame is found from the frame alone, and a frame whose trailer
        // does not check gives none.
        for salt in [0, 1, 0x8000_0000, 0xDEAD_BEEF, u32::MAX] {
            let mut frame = Vec::new();
            let start = begin_frame(&mut frame);
            for i in 0..3u8 {
                encode_entry(&mut frame, &meta(Op::Put), b"ns", &[i; 5], b"value");
            }
            finish_frame(&mut frame, start, salt);
            assert_eq!(solve_frame_salt(&frame, WRITE_LAYOUT), Some(salt));
            let last = frame.len() - 1;
            frame[last] ^= 1;
            assert_eq!(solve_frame_salt(&frame, WRITE_LAYOUT), None);
        }
        // A header claiming an empty body, with a checksum that matches it: the seal frame
        // if it claims no summaries either, else never a frame.
        let mut empty = Vec::new();
        let start = begin_frame(&mut empty);
        finish_frame(&mut empty, start, SALT);
        assert_eq!(read_u32(&empty, V2_LEN_OFFSET), 0);
        let seal = decode_v2_frame(&empty, SALT, WRITE_LAYOUT).expect("the seal frame");
        // Its trailer names no record, so it is never taken for one (nor found by a scan
        // that resynchronises on trailers).
        assert!(seal.body.is_empty() && seal.trailer.is_none());
        assert_eq!(seal.total, empty.len());
        empty[V2_SUMMARIES_LEN_OFFSET] = 1;
        let crc = v2_frame_crc(&empty, SALT, WRITE_LAYOUT).expect("crc");
        empty[FRAME_HEADER_LEN - 4..FRAME_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_v2_frame(&empty, SALT, WRITE_LAYOUT).err(),
            Some(DecodeError::Truncated)
        );
        // Cut right after the body: the frame checks, its trailer is missing.
        let f = decode_v2_frame(&buf[..body_end], SALT, WRITE_LAYOUT)
            .expect("the header and body check");
        assert!(f.trailer.is_none());
        assert_eq!(
            (f.body.len(), f.total),
            (body_end - FRAME_HEADER_LEN, buf.len())
        );
    }

    fn header(id: u32, base_version: u64) -> SegmentHeader {
        SegmentHeader {
            id,
            base_version,
            format: FORMAT_VERSION,
            salt: SALT,
            entry_layout: WRITE_LAYOUT,
        }
    }

    #[test]
    fn segment_header_round_trips_and_survives_one_damaged_copy() {
        let h = header(12, 1 << 40);
        let bytes = encode_segment_header(&h);
        assert_eq!(decode_segment_header(&bytes), Ok(h));
        for i in 0..SEGMENT_HEADER_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x08;
            assert_eq!(decode_segment_header(&bad), Ok(h), "byte {i} flipped");
        }
        let mut both = bytes;
        both[9] ^= 1;
        both[V2_HEADER_COPY_LEN + 9] ^= 1;
        assert!(decode_segment_header(&both).is_err());
        assert_eq!(
            decode_segment_header(&bytes[..5]),
            Err(DecodeError::Truncated)
        );
        let huge = encode_segment_header(&header(1, u64::MAX));
        assert_eq!(decode_segment_header(&huge), Err(DecodeError::BadHeader));
    }

    /// Which error a bad segment header gets (recovery and `verify` name it): cut short
    /// only when fewer bytes than the two copies are there and the format field says 2.
    #[test]
    fn segment_header_errors_are_typed() {
        let bytes = encode_segment_header(&header(4, 9));
        for len in [V1_SEGMENT_HEADER_LEN, V2_HEADER_COPY_LEN - 1] {
            assert_eq!(
                decode_segment_header(&bytes[..len]),
                Err(DecodeError::Truncated),
                "{len} bytes"
            );
        }
        // One whole copy is enough.
        assert_eq!(
            decode_segment_header(&bytes[..V2_HEADER_COPY_LEN]),
            Ok(header(4, 9))
        );
        // Both copies damaged, all bytes there: a bad header, not a short one.
        let mut both = bytes;
        both[SEGMENT_ID_OFFSET] ^= 1;
        both[V2_HEADER_COPY_LEN + SEGMENT_ID_OFFSET] ^= 1;
        assert_eq!(decode_segment_header(&both), Err(DecodeError::BadHeader));
        // Short, but not ours: a bad header.
        let mut foreign = bytes;
        foreign[FORMAT_OFFSET] = 7;
        assert_eq!(
            decode_segment_header(&foreign[..V2_HEADER_COPY_LEN - 1]),
            Err(DecodeError::BadHeader)
        );
        let mut no_magic = bytes;
        no_magic[0] ^= 1;
        no_magic[V2_HEADER_COPY_LEN] ^= 1;
        assert_eq!(
            decode_segment_header(&no_magic[..V2_HEADER_COPY_LEN - 1]),
            Err(DecodeError::Truncated),
            "format 2 says the rest is missing"
        );
        assert_eq!(
            decode_segment_header(&no_magic),
            Err(DecodeError::BadHeader)
        );
    }

    #[test]
    fn segment_ids_stop_short_of_the_last_two() {
        let last_usable = u32::MAX - 2;
        let h = header(last_usable, 5);
        assert_eq!(decode_segment_header(&encode_segment_header(&h)), Ok(h));
        for id in [u32::MAX - 1, u32::MAX] {
            assert_eq!(
                decode_segment_header(&encode_segment_header(&header(id, 5))),
                Err(DecodeError::BadHeader),
                "segment id {id}"
            );
        }
        let at_limit = header(7, VERSION_LIMIT - 1);
        assert_eq!(
            decode_segment_header(&encode_segment_header(&at_limit)),
            Ok(at_limit)
        );
    }

    /// A put of an empty namespace, key and value: an entry that is its header alone.
    #[test]
    fn an_entry_made_only_of_a_header_round_trips() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, &meta(Op::Put), b"", b"", b"");
        let head_len = entry_len(WRITE_LAYOUT, &meta(Op::Put), 0, 0, 0);
        assert_eq!(buf.len(), head_len);
        let e = decode_entry(&buf, WRITE_LAYOUT, SEG).expect("decodes");
        assert_eq!((e.len, e.meta), (head_len, meta(Op::Put)));
        assert!(e.namespace.is_empty() && e.key.is_empty() && e.value.is_empty());
        let mut frame = Vec::new();
        let start = begin_frame(&mut frame);
        encode_entry(&mut frame, &meta(Op::CreateNamespace), b"", b"", b"");
        encode_entry(&mut frame, &meta(Op::Put), b"", b"", b"");
        finish_frame(&mut frame, start, SALT);
        let f = decode_v2_frame(&frame, SALT, WRITE_LAYOUT).expect("frame");
        assert_eq!(f.total, frame.len());
        assert_eq!(f.trailer.expect("trailer").count, 2);
        assert_eq!(frame_entries(f.body, WRITE_LAYOUT, SEG).count(), 2);
        assert_eq!(own_frame_entries(own_frame_body(&frame), SEG).count(), 2);
    }

    /// The forms a frame's entries take: a namespace's first entry inline, its next two
    /// defining its id, then the id alone; ids in order of first use; after 128 namespaces
    /// the rest stay inline. Each decodes alone and resolves in frame order.
    #[test]
    fn frame_names_give_ids_after_the_first_use_and_resolve_in_order() {
        let mut names = FrameNames::default();
        let forms: Vec<_> = [&b"a"[..], b"a", b"b", b"a", b"a", b"b", b"b", b"b", b"a"]
            .iter()
            .map(|ns| names.form_for(ns))
            .collect();
        use NsForm::{Define, Id, Inline};
        assert_eq!(
            forms,
            [
                Inline,
                Define(0),
                Inline,
                Define(0),
                Id(0),
                Define(1),
                Define(1),
                Id(1),
                Id(0)
            ]
        );
        let mut many = FrameNames::default();
        for i in 0..FRAME_NS_IDS {
            assert_eq!(many.form_for(&i.to_le_bytes()), Inline);
        }
        let extra = 999usize.to_le_bytes();
        for _ in 0..5 {
            assert_eq!(many.form_for(&extra), Inline, "no id left");
        }
        assert_eq!(many.form_for(&0usize.to_le_bytes()), Define(0));

        let mut frame = Vec::new();
        let start = begin_frame(&mut frame);
        let mut names = FrameNames::default();
        for (i, ns) in [
            &b"xx"[..],
            b"yyy",
            b"xx",
            b"xx",
            b"xx",
            b"yyy",
            b"yyy",
            b"yyy",
        ]
        .iter()
        .enumerate()
        {
            let mut m = meta(Op::Put);
            m.version = 100 + i as u64;
            names.encode(&mut frame, &m, ns, &[i as u8], b"v");
        }
        finish_frame(&mut frame, start, SALT);
        let f = decode_v2_frame(&frame, SALT, WRITE_LAYOUT).expect("frame");
        let got: Vec<_> = frame_entries(f.body, WRITE_LAYOUT, SEG)
            .map(|e| e.expect("resolves").1.namespace.to_vec())
            .collect();
        assert_eq!(got[4], b"xx", "an id-only entry gets its name");
        assert_eq!(got[7], b"yyy");
        let summaries: Vec<_> = f.trailer.expect("trailer").summaries().collect();
        assert!(summaries
            .iter()
            .zip(&got)
            .all(|(s, ns)| s.ns_hash == crc32fast::hash(ns)));
        // Alone, an id-only entry decodes without its name.
        let (off, e) = frame_entries(f.body, WRITE_LAYOUT, SEG)
            .nth(4)
            .expect("5th")
            .expect("ok");
        let alone = decode_entry(&f.body[off..], WRITE_LAYOUT, SEG).expect("decodes alone");
        assert_eq!(
            (alone.namespace, alone.ns_id, alone.ns_inline),
            (&b""[..], Some(0), false)
        );
        assert_eq!(alone.len, e.len);
        assert_eq!(
            alone.len,
            v2_entry_len(&alone.meta, alone.shape(), 0, 1, 1),
            "the length its fields give"
        );
    }

    /// The header fields of a hand-built layout 3 put of key `k` and value `v`; `raw_v2`
    /// writes them with a correct CRC, whatever they say.
    struct Raw {
        flags: u64,
        kind: Option<u8>,
        ns: Option<Vec<u8>>,
        horizon: Option<u64>,
        version: u64,
        expiry: Option<u64>,
    }

    fn raw_v2(r: &Raw) -> Vec<u8> {
        let mut out = vec![0; 4];
        varint::put(&mut out, r.flags);
        out.extend(r.kind);
        if let Some(ns) = &r.ns {
            varint::put(&mut out, ns.len() as u64);
        }
        varint::put(&mut out, 1);
        varint::put(&mut out, 1);
        if let Some(h) = r.horizon {
            varint::put(&mut out, h);
        }
        varint::put(&mut out, r.version);
        if let Some(e) = r.expiry {
            varint::put(&mut out, e);
        }
        out.extend(r.ns.iter().flatten());
        out.extend_from_slice(b"kv");
        let crc = crc32fast::hash(&out[4..]);
        out[..4].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Each rule of a layout 3 entry, broken alone in an entry whose CRC checks, is a bad
    /// field; the same entry with every rule kept decodes (so the builder is right).
    #[test]
    fn each_layout_3_rule_broken_alone_is_a_bad_field() {
        let put = u64::from(Op::Put as u8);
        let inline = u64::from(L2_NS_INLINE);
        let good = || Raw {
            flags: put | inline | u64::from(L2_HAS_HORIZON | L2_HAS_EXPIRY | L2_HAS_KIND),
            kind: Some(4),
            ns: Some(b"ns".to_vec()),
            horizon: Some(3),
            version: 9,
            expiry: Some(5),
        };
        let bytes = raw_v2(&good());
        let e = decode_entry(&bytes, WRITE_LAYOUT, SEG).expect("every rule kept");
        assert_eq!(
            (e.namespace, e.key, e.value, e.meta.kind, e.meta.horizon),
            (&b"ns"[..], &b"k"[..], &b"v"[..], 4, 3)
        );
        assert_eq!((e.meta.version, e.meta.expires_ms), (9, 5000));
        let id = |i: u64| i << L2_ID_SHIFT | u64::from(L2_HAS_NS_ID);
        let broken: Vec<(&str, Raw)> = vec![
            (
                "a version at the limit",
                Raw {
                    version: VERSION_LIMIT,
                    ..good()
                },
            ),
            (
                "a namespace longer than the limit",
                Raw {
                    ns: Some(vec![b'n'; MAX_NAMESPACE_LEN + 1]),
                    ..good()
                },
            ),
            (
                "an expiry past u32::MAX seconds",
                Raw {
                    expiry: Some(u64::from(u32::MAX) + 1),
                    ..good()
                },
            ),
            (
                "an expiry flag with an expiry of 0",
                Raw {
                    expiry: Some(0),
                    ..good()
                },
            ),
            (
                "a kind flag with a kind of 0",
                Raw {
                    kind: Some(0),
                    ..good()
                },
            ),
            (
                "neither a name nor an id",
                Raw {
                    flags: good().flags & !inline,
                    ns: None,
                    ..good()
                },
            ),
            (
                "id bits without the id flag",
                Raw {
                    flags: good().flags | 1 << L2_ID_SHIFT,
                    ..good()
                },
            ),
            (
                "an id of 64",
                Raw {
                    flags: good().flags | id(64),
                    ..good()
                },
            ),
        ];
        for (what, raw) in &broken {
            assert_eq!(
                decode_entry(&raw_v2(raw), WRITE_LAYOUT, SEG).err(),
                Some(DecodeError::BadField),
                "{what}"
            );
        }
        let max_ns = Raw {
            ns: Some(vec![b'n'; MAX_NAMESPACE_LEN]),
            ..good()
        };
        assert!(decode_entry(&raw_v2(&max_ns), WRITE_LAYOUT, SEG).is_ok());
        let max_expiry = Raw {
            expiry: Some(u64::from(u32::MAX)),
            ..good()
        };
        assert!(decode_entry(&raw_v2(&max_expiry), WRITE_LAYOUT, SEG).is_ok());
        let written = Raw {
            horizon: Some(u64::from(SEG)),
            ..good()
        };
        let bytes = raw_v2(&written);
        let e = decode_entry(&bytes, WRITE_LAYOUT, SEG).expect("a written horizon is read");
        assert_eq!((e.meta.horizon, e.implied_horizon), (SEG, false));
        let id_63 = Raw {
            flags: good().flags | id(63),
            ..good()
        };
        assert!(decode_entry(&raw_v2(&id_63), WRITE_LAYOUT, SEG).is_ok());
    }

    /// A layout 1 entry's expiry beyond what layouts 2 and 3 keep (no release rounded it before
    /// format 2) re-encodes as the largest one, which decodes: compaction never writes a
    /// record it cannot read back.
    #[test]
    fn an_expiry_beyond_the_year_2106_is_kept_as_the_last_second() {
        let mut m = meta(Op::Put);
        m.expires_ms = u64::MAX;
        let mut buf = Vec::new();
        encode_entry(&mut buf, &m, b"ns", b"k", b"v");
        let e = decode_entry(&buf, WRITE_LAYOUT, SEG).expect("decodes");
        assert_eq!(e.meta.expires_ms, u64::from(u32::MAX) * 1000);
        assert_eq!(e.len, entry_len(WRITE_LAYOUT, &m, 2, 1, 1));
    }

    /// An id-only entry whose id no earlier entry defined, or a second definition of an id
    /// under another name, does not resolve.
    #[test]
    fn an_undefined_or_redefined_id_does_not_resolve() {
        let put_as = |form, ns: &[u8]| {
            let mut out = Vec::new();
            encode_entry_as(&mut out, &meta(Op::Put), form, SEG, ns, b"k", b"v");
            out
        };
        let body = put_as(NsForm::Id(3), b"ns");
        let mut e = decode_entry(&body, WRITE_LAYOUT, SEG).expect("decodes");
        assert!(!FrameIds::default().resolve(&mut e));
        let mut ids = FrameIds::default();
        let d = put_as(NsForm::Define(3), b"ns");
        let mut first = decode_entry(&d, WRITE_LAYOUT, SEG).expect("decodes");
        assert!(ids.resolve(&mut first));
        assert!(ids.resolve(&mut e));
        assert_eq!(e.namespace, b"ns");
        let other = put_as(NsForm::Define(3), b"zz");
        let mut again = decode_entry(&other, WRITE_LAYOUT, SEG).expect("decodes");
        assert!(!ids.resolve(&mut again), "redefined under another name");
        // An id beyond a frame's ids, or neither a name nor an id, is a bad field.
        let big = put_as(NsForm::Id(200), b"ns");
        assert_eq!(
            decode_entry(&big, WRITE_LAYOUT, SEG),
            Err(DecodeError::BadField)
        );
        let mut none = Vec::new();
        encode_entry(&mut none, &meta(Op::Put), b"ns", b"k", b"v");
        none[ENTRY_OP_OFFSET] &= !L2_NS_INLINE;
        let crc = crc32fast::hash(&none[ENTRY_OP_OFFSET..]);
        none[..4].copy_from_slice(&crc.to_le_bytes());
        assert!(decode_entry(&none, WRITE_LAYOUT, SEG).is_err());
    }

    #[test]
    fn a_newer_format_is_named() {
        let mut bytes = encode_segment_header(&header(3, 5));
        for copy in [0, V2_HEADER_COPY_LEN] {
            bytes[copy + FORMAT_OFFSET..copy + SEGMENT_ID_OFFSET]
                .copy_from_slice(&3u32.to_le_bytes());
            let crc = crc32fast::hash(&bytes[copy..copy + HEADER_CRC_OFFSET]);
            bytes[copy + HEADER_CRC_OFFSET..copy + V2_HEADER_COPY_LEN]
                .copy_from_slice(&crc.to_le_bytes());
        }
        assert_eq!(
            decode_segment_header(&bytes),
            Err(DecodeError::NewerFormat(3))
        );
    }

    #[test]
    fn an_unknown_entry_layout_is_named() {
        let mut bytes = encode_segment_header(&header(3, 5));
        for copy in [0, V2_HEADER_COPY_LEN] {
            bytes[copy + ENTRY_LAYOUT_OFFSET..copy + HEADER_RESERVED_OFFSET]
                .copy_from_slice(&4u16.to_le_bytes());
            let crc = crc32fast::hash(&bytes[copy..copy + HEADER_CRC_OFFSET]);
            bytes[copy + HEADER_CRC_OFFSET..copy + V2_HEADER_COPY_LEN]
                .copy_from_slice(&crc.to_le_bytes());
        }
        assert_eq!(
            decode_segment_header(&bytes),
            Err(DecodeError::UnknownEntryLayout(4))
        );
        let mut v1 = header(3, 5);
        v1.entry_layout = EntryLayout::V1;
        assert_eq!(decode_segment_header(&encode_segment_header(&v1)), Ok(v1));
    }

    #[test]
    fn v1_segment_headers_still_decode() {
        let mut v1 = [0u8; V1_SEGMENT_HEADER_LEN];
        v1[..8].copy_from_slice(&SEGMENT_MAGIC);
        v1[FORMAT_OFFSET..SEGMENT_ID_OFFSET].copy_from_slice(&FORMAT_V1.to_le_bytes());
        v1[SEGMENT_ID_OFFSET..BASE_VERSION_OFFSET].copy_from_slice(&9u32.to_le_bytes());
        v1[BASE_VERSION_OFFSET..].copy_from_slice(&77u64.to_le_bytes());
        let h = decode_segment_header(&v1).expect("v1 header");
        assert_eq!((h.id, h.base_version, h.format), (9, 77, FORMAT_V1));
        assert_eq!(h.data_start(), V1_SEGMENT_HEADER_LEN);
    }
}
