//! Hint files: for a sealed segment, every entry's header fields and key without the value,
//! so that opening the store does not read values.
//!
//! Version 2 (written since format 2's entry layout 1; about a fifth of the size of
//! version 1):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"TTLCHNT\0"` |
//! | 8 | 4 | hint version (2) |
//! | 12 | 4 | segment id |
//! | 16 | 8 | data length of the segment the hint describes |
//! | 24 | 4 | records |
//! | 28 | 4 | namespaces in the table |
//! | 32 | … | namespace table: per namespace a varint length, its bytes and a varint count of its records |
//! | … | … | records, back to back |
//! | end−4 | 4 | CRC32 of every byte before it |
//!
//! A record (varints are LEB128; "delta" fields are zigzag varints of the difference to the
//! same field of the record before, wrapping, so any value round-trips):
//!
//! | field | encoding |
//! |---|---|
//! | flags | one byte: op (bits 0–2), has expiry (bit 3), kind (bits 4–7; 15 = a kind byte follows) |
//! | kind | one byte, only if the flags say so |
//! | offset | delta to the end of the record before's entry (0 for entries back to back) |
//! | namespace | varint index into the table |
//! | key length, key | varint, bytes |
//! | value length | varint |
//! | version | delta to the version of the record before |
//! | horizon | zigzag varint of horizon − segment id (wrapping, 32 bits) |
//! | expiry | delta to the last expiry before (0 at the start), only if the flags say so |
//!
//! Version 3 is version 2 for a segment whose entries are in entry layout 2 (written by one
//! release, main at 4f7827f): the records are alike, but an entry's length (which places
//! the next record's offset) follows that layout.
//!
//! Version 4 is version 2 for a segment whose entries are in entry layout 3, with two
//! changes: the record keeps the entry's whole length instead of the value's (a layout 3
//! entry's length depends on its shape), and the flags give bits 4–5 to how the entry names
//! its namespace (0 its name, 1 its name and a frame id, 2 the id only), bit 6 to "its frame
//! id is above 0" and bit 7 to "a kind byte follows"; whether the entry left its horizon out
//! follows from the horizon (it does exactly when that is the segment's id).
//!
//! A hint says its version, so a hint and its segment never disagree on the layout.
//!
//! Version 1 (read, never written any more) had a fixed 36-byte record header
//! (offset u32, op u8, kind u8, namespace length u16, key length u32, value length u32,
//! horizon u32, version u64, expiry u64) followed by the namespace and the key, after a
//! 24-byte file header without the record and namespace counts.
//!
//! A hint is written to a temporary file, synced and renamed into place, so a half-written
//! hint is never seen under its real name; one whose CRC, data length or record count does
//! not match is ignored and the segment is scanned instead.

use std::collections::HashMap;
use std::mem::size_of;

use crate::format::{
    self, read_u16, read_u32, read_u64, DecodeError, EntryLayout, EntryMeta, NsKind, Op, Shape,
};
use crate::varint;

/// Layout version of the hint files written for segments in entry layout 1 (format 1 and 2
/// segments of that layout have the same entries, so their hints are alike). Version 1 is
/// still read.
pub const HINT_VERSION: u32 = 2;
const HINT_V1: u32 = 1;
/// Layout version of the hint files of segments in entry layout 2.
pub const HINT_V3: u32 = 3;
/// Layout version of the hint files written for segments in entry layout 3.
pub const HINT_V4: u32 = 4;
const HINT_MAGIC: [u8; 8] = *b"TTLCHNT\0";
const FORMAT_OFFSET: usize = HINT_MAGIC.len();
const SEGMENT_ID_OFFSET: usize = FORMAT_OFFSET + size_of::<u32>();
const DATA_LEN_OFFSET: usize = SEGMENT_ID_OFFSET + size_of::<u32>();
const V1_HEADER_LEN: usize = DATA_LEN_OFFSET + size_of::<u64>();
const RECORDS_OFFSET: usize = V1_HEADER_LEN;
const NAMESPACES_OFFSET: usize = RECORDS_OFFSET + size_of::<u32>();
const HINT_HEADER_LEN: usize = NAMESPACES_OFFSET + size_of::<u32>();
const CRC_LEN: usize = size_of::<u32>();

const REC_OFFSET: usize = 0;
const REC_OP: usize = REC_OFFSET + size_of::<u32>();
const REC_KIND: usize = REC_OP + size_of::<u8>();
const REC_NS_LEN: usize = REC_KIND + size_of::<u8>();
const REC_KEY_LEN: usize = REC_NS_LEN + size_of::<u16>();
const REC_VALUE_LEN: usize = REC_KEY_LEN + size_of::<u32>();
const REC_HORIZON: usize = REC_VALUE_LEN + size_of::<u32>();
const REC_VERSION: usize = REC_HORIZON + size_of::<u32>();
const REC_EXPIRES: usize = REC_VERSION + size_of::<u64>();
const REC_HEADER_LEN: usize = REC_EXPIRES + size_of::<u64>();

const FLAG_OP: u8 = 0b0111;
const FLAG_EXPIRES: u8 = 0b1000;
/// Version 2: the kind in the top four bits; 15 means a kind byte follows.
const KIND_SHIFT: u32 = 4;
const KIND_FOLLOWS: u8 = 0x0f;
/// Version 4: bits 4–5 say how the entry names its namespace ([`NsKind`]: 0 the name, 1 the
/// name and a frame id, 2 the id only), bit 6 that its frame id is above 0, bit 7 that a kind
/// byte follows (the kind is not 0).
const V3_NS_SHIFT: u32 = 4;
const V3_ID_ABOVE_ZERO: u8 = 1 << 6;
const V3_KIND_SHIFT: u32 = 7;
const V3_KIND_FOLLOWS: u8 = 0x01;

/// One entry as a hint describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintEntry<'a> {
    /// Offset of the entry in the segment.
    pub offset: u32,
    /// The entry's header fields.
    pub meta: EntryMeta,
    /// Namespace.
    pub namespace: &'a [u8],
    /// Key.
    pub key: &'a [u8],
    /// Encoded length of the entry in the segment.
    pub len: u32,
    /// How the entry is shaped (a layout 3 entry may name its namespace by the id its frame
    /// gave it, and leave out its horizon when it is the segment's id).
    pub shape: Shape,
}

impl HintEntry<'_> {
    /// Where the entry ends in the segment.
    fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.len)
    }

    /// A layout 1 or 2 entry's value length (versions 1 to 3 keep that instead of the
    /// length).
    fn value_len(&self, layout: EntryLayout) -> u32 {
        let (ns, key) = (self.namespace.len(), self.key.len());
        let value = match layout {
            EntryLayout::V2 => {
                let head = format::layout2_entry_len(&self.meta, ns, key, 0);
                format::compact_value_len(self.len as usize, head).unwrap_or(0)
            }
            _ => {
                let head = format::entry_len(EntryLayout::V1, &self.meta, ns, key, 0);
                (self.len as usize).saturating_sub(head)
            }
        };
        u32::try_from(value).unwrap_or(u32::MAX)
    }
}

/// The length of a layout 1 entry from a version 1 or 2 hint's fields.
fn v1_entry_len(ns_len: usize, key_len: usize, value_len: u32) -> Result<u32, DecodeError> {
    format::V1_ENTRY_HEADER_LEN
        .checked_add(ns_len)
        .and_then(|n| n.checked_add(key_len))
        .and_then(|n| n.checked_add(value_len as usize))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(DecodeError::BadField)
}

/// What each record is encoded against: the same fields of the record before.
#[derive(Debug, Default, Clone, Copy)]
struct Previous {
    end: u64,
    version: u64,
    expires_ms: u64,
}

/// Builds the bytes of a hint file.
#[derive(Debug)]
pub struct HintWriter {
    segment_id: u32,
    layout: EntryLayout,
    data_len: u64,
    records: u32,
    /// Names in the order they were first used, with their record counts; a record names
    /// its namespace's index.
    namespaces: Vec<(Vec<u8>, u32)>,
    ids: HashMap<Vec<u8>, u32>,
    /// The namespace of the record before, the usual one of the next.
    last_namespace: Option<u32>,
    prev: Previous,
    body: Vec<u8>,
}

impl HintWriter {
    /// Starts the hint of segment `segment_id` whose data is `data_len` bytes long and whose
    /// entries are in `layout`.
    pub fn new(segment_id: u32, data_len: u64, layout: EntryLayout) -> Self {
        Self {
            segment_id,
            layout,
            data_len,
            records: 0,
            namespaces: Vec::new(),
            ids: HashMap::new(),
            last_namespace: None,
            prev: Previous::default(),
            body: Vec::with_capacity(4096),
        }
    }

    fn namespace_id(&mut self, name: &[u8]) -> u32 {
        let id = match self.last_namespace {
            Some(id) if self.namespaces[id as usize].0 == name => id,
            _ => {
                let next = u32::try_from(self.namespaces.len()).unwrap_or(u32::MAX);
                let id = *self.ids.entry(name.to_vec()).or_insert(next);
                if id == next {
                    self.namespaces.push((name.to_vec(), 0));
                }
                self.last_namespace = Some(id);
                id
            }
        };
        let count = &mut self.namespaces[id as usize].1;
        *count = count.saturating_add(1);
        id
    }

    /// Adds one entry.
    pub fn push(&mut self, e: &HintEntry<'_>) {
        let ns = self.namespace_id(e.namespace);
        let meta = &e.meta;
        let b = &mut self.body;
        let has_expiry = meta.expires_ms != 0;
        let (shift, follows, by_id) = match self.layout {
            EntryLayout::V1 | EntryLayout::V2 => (KIND_SHIFT, KIND_FOLLOWS, 0),
            EntryLayout::V3 => (
                V3_KIND_SHIFT,
                V3_KIND_FOLLOWS,
                (e.shape.ns as u8) << V3_NS_SHIFT
                    | if e.shape.id_zero { 0 } else { V3_ID_ABOVE_ZERO },
            ),
        };
        let kind_bits = meta.kind.min(follows);
        b.push(
            meta.op as u8 | if has_expiry { FLAG_EXPIRES } else { 0 } | by_id | kind_bits << shift,
        );
        if kind_bits == follows {
            b.push(meta.kind);
        }
        varint::put(
            b,
            varint::zigzag(u64::from(e.offset).wrapping_sub(self.prev.end) as i64),
        );
        varint::put(b, u64::from(ns));
        varint::put(b, e.key.len() as u64);
        b.extend_from_slice(e.key);
        // Layout 1 and 2 entries' length follows from the value's; layout 3 ones are kept
        // whole.
        let len = match self.layout {
            EntryLayout::V1 | EntryLayout::V2 => e.value_len(self.layout),
            EntryLayout::V3 => e.len,
        };
        varint::put(b, u64::from(len));
        varint::put(
            b,
            varint::zigzag(meta.version.wrapping_sub(self.prev.version) as i64),
        );
        varint::put(
            b,
            varint::zigzag(i64::from(meta.horizon.wrapping_sub(self.segment_id) as i32)),
        );
        if has_expiry {
            varint::put(
                b,
                varint::zigzag(meta.expires_ms.wrapping_sub(self.prev.expires_ms) as i64),
            );
            self.prev.expires_ms = meta.expires_ms;
        }
        self.prev.end = e.end();
        self.prev.version = meta.version;
        self.records = self.records.saturating_add(1);
    }

    /// The finished bytes, CRC appended.
    pub fn finish(self) -> Vec<u8> {
        let table: usize = self.namespaces.iter().map(|(n, _)| n.len() + 8).sum();
        let mut buf = Vec::with_capacity(HINT_HEADER_LEN + table + self.body.len() + CRC_LEN);
        buf.extend_from_slice(&HINT_MAGIC);
        let version = match self.layout {
            EntryLayout::V1 => HINT_VERSION,
            EntryLayout::V2 => HINT_V3,
            EntryLayout::V3 => HINT_V4,
        };
        buf.extend_from_slice(&version.to_le_bytes());
        buf.extend_from_slice(&self.segment_id.to_le_bytes());
        buf.extend_from_slice(&self.data_len.to_le_bytes());
        buf.extend_from_slice(&self.records.to_le_bytes());
        let namespaces = u32::try_from(self.namespaces.len()).unwrap_or(u32::MAX);
        buf.extend_from_slice(&namespaces.to_le_bytes());
        for (name, records) in &self.namespaces {
            varint::put(&mut buf, name.len() as u64);
            buf.extend_from_slice(name);
            varint::put(&mut buf, u64::from(*records));
        }
        buf.extend_from_slice(&self.body);
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        buf
    }
}

/// What a hint's header and namespace table say.
#[derive(Debug, Clone)]
pub struct HintHeader {
    /// Segment id it describes.
    pub segment_id: u32,
    /// Data length of that segment.
    pub data_len: u64,
    /// Records it holds (version 2 and later; `None` for version 1, which does not say).
    pub records: Option<u32>,
    /// The entry layout of the segment it describes.
    pub layout: EntryLayout,
    /// The namespace table: where each name is in the file, and how many records it has.
    namespaces: Vec<(std::ops::Range<usize>, u32)>,
    /// Where the records start.
    body_start: usize,
}

/// Reads a hint file as its bytes arrive: the header once its bytes are in, then each record
/// once all of its bytes are; the CRC (the file's last four bytes) is checked last, by
/// [`HintReader::finish`]. Nothing read is to be trusted before `finish` says so.
#[derive(Debug)]
pub struct HintReader {
    /// Bytes of the whole file.
    total: usize,
    header: Option<HintHeader>,
    at: usize,
    /// Records still to come (version 2 and later).
    left: Option<u32>,
    prev: Previous,
    /// Records seen per namespace of the table.
    seen: Vec<u32>,
    failed: bool,
}

impl HintReader {
    /// A reader of a hint file of `total` bytes.
    pub fn new(total: usize) -> Self {
        Self {
            total,
            header: None,
            at: 0,
            left: None,
            prev: Previous::default(),
            seen: Vec::new(),
            failed: false,
        }
    }

    /// Where the records end: before the CRC.
    fn body_end(&self) -> usize {
        self.total.saturating_sub(CRC_LEN)
    }

    /// The header, once `bytes` (the file's first bytes) hold it: `Ok(None)` until then.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] or [`DecodeError::BadHeader`] for a file that is not a
    /// hint of a version this release reads.
    pub fn header(&mut self, bytes: &[u8]) -> Result<Option<&HintHeader>, DecodeError> {
        if self.header.is_none() {
            let Some(h) = self.parse_header(bytes)? else {
                return Ok(None);
            };
            self.start(h);
        }
        Ok(self.header.as_ref())
    }

    /// Reads the records after `header`.
    fn start(&mut self, header: HintHeader) {
        self.at = header.body_start;
        self.left = header.records;
        self.seen = vec![0; header.namespaces.len()];
        self.header = Some(header);
    }

    fn parse_header(&self, bytes: &[u8]) -> Result<Option<HintHeader>, DecodeError> {
        let bytes = &bytes[..bytes.len().min(self.body_end())];
        if self.total < V1_HEADER_LEN + CRC_LEN {
            return Err(DecodeError::Truncated);
        }
        if bytes.len() < V1_HEADER_LEN {
            return Ok(None);
        }
        let version = read_u32(bytes, FORMAT_OFFSET);
        if bytes[..FORMAT_OFFSET] != HINT_MAGIC
            || !matches!(version, HINT_V1 | HINT_VERSION | HINT_V3 | HINT_V4)
        {
            return Err(DecodeError::BadHeader);
        }
        let mut header = HintHeader {
            segment_id: read_u32(bytes, SEGMENT_ID_OFFSET),
            data_len: read_u64(bytes, DATA_LEN_OFFSET),
            records: None,
            layout: match version {
                HINT_V3 => EntryLayout::V2,
                HINT_V4 => EntryLayout::V3,
                _ => EntryLayout::V1,
            },
            namespaces: Vec::new(),
            body_start: V1_HEADER_LEN,
        };
        if version == HINT_V1 {
            return Ok(Some(header));
        }
        if self.body_end() < HINT_HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        if bytes.len() < HINT_HEADER_LEN {
            return Ok(None);
        }
        header.records = Some(read_u32(bytes, RECORDS_OFFSET));
        let namespaces = read_u32(bytes, NAMESPACES_OFFSET) as usize;
        // Each name takes at least its length byte: a count beyond the bytes left is damage.
        if namespaces > self.body_end() - HINT_HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        let mut rest = &bytes[HINT_HEADER_LEN..];
        header.namespaces.reserve_exact(namespaces);
        for _ in 0..namespaces {
            let table = (|| {
                let len = varint::take(&mut rest)?;
                let start = bytes.len() - rest.len();
                varint::take_bytes(&mut rest, len)?;
                let end = bytes.len() - rest.len();
                let records = varint::take(&mut rest)?;
                Ok((start..end, records))
            })();
            match table {
                Ok((name, records)) => {
                    let records = u32::try_from(records).map_err(|_| DecodeError::BadField)?;
                    header.namespaces.push((name, records));
                }
                // The table is not all in yet.
                Err(DecodeError::Truncated) if bytes.len() < self.body_end() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        header.body_start = bytes.len() - rest.len();
        Ok(Some(header))
    }

    /// The next record, once all of its bytes are in `bytes` (the file's first bytes, the
    /// header among them); `None` when it needs more bytes, or when every record is read.
    /// An error ends the records (the caller then distrusts the hint).
    pub fn next<'a>(&mut self, bytes: &'a [u8]) -> Option<Result<HintEntry<'a>, DecodeError>> {
        let header = self.header.as_ref()?;
        if self.failed {
            return None;
        }
        let complete = bytes.len() >= self.body_end();
        let bytes = &bytes[..bytes.len().min(self.body_end())];
        let rest = &bytes[self.at..];
        let parsed = match self.left {
            // Version 1 reads to the end of the records.
            None if rest.is_empty() => return None,
            None => parse_v1_record(rest).map(|(entry, used)| (entry, used, None)),
            // More bytes than the records the header counts.
            Some(0) if !rest.is_empty() => Err(DecodeError::BadField),
            Some(0) => return None,
            Some(_) => {
                let namespaces = &header.namespaces;
                let mut b = rest;
                parse_record(
                    &mut b,
                    |i| namespaces.get(i).map(|(r, _)| &bytes[r.clone()]),
                    header.segment_id,
                    header.layout,
                    &self.prev,
                )
                .map(|(entry, ns, prev)| (entry, rest.len() - b.len(), Some((ns, prev))))
            }
        };
        match parsed {
            Err(DecodeError::Truncated) if !complete => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
            Ok((entry, used, counted)) => {
                self.at += used;
                if let Some((ns, prev)) = counted {
                    self.prev = prev;
                    self.seen[ns] += 1;
                    self.left = self.left.map(|n| n - 1);
                }
                Some(Ok(entry))
            }
        }
    }

    /// Checks, once every byte is in `bytes` and every record read, that the records are all
    /// there (as many per namespace as the table says) and the CRC matches.
    ///
    /// # Errors
    /// [`DecodeError::BadField`] for records missing or left over, [`DecodeError::BadChecksum`]
    /// for a CRC that does not match.
    pub fn finish(&self, bytes: &[u8]) -> Result<(), DecodeError> {
        let header = self.header.as_ref().ok_or(DecodeError::Truncated)?;
        if self.failed || bytes.len() != self.total {
            return Err(DecodeError::Truncated);
        }
        let all_read = match self.left {
            None => self.at == self.body_end(),
            Some(n) => {
                n == 0
                    && self.at == self.body_end()
                    && self
                        .seen
                        .iter()
                        .zip(&header.namespaces)
                        .all(|(s, (_, n))| s == n)
            }
        };
        if !all_read {
            return Err(DecodeError::BadField);
        }
        check_crc(bytes)
    }
}

fn check_crc(bytes: &[u8]) -> Result<(), DecodeError> {
    let body_end = bytes.len() - CRC_LEN;
    if crc32fast::hash(&bytes[..body_end]) == read_u32(bytes, body_end) {
        Ok(())
    } else {
        Err(DecodeError::BadChecksum)
    }
}

/// A hint file whose header and CRC checked.
#[derive(Debug)]
pub struct Hint<'a> {
    /// Segment id it describes.
    pub segment_id: u32,
    /// Data length of that segment.
    pub data_len: u64,
    /// The entry layout of the segment it describes.
    #[cfg_attr(
        not(any(test, feature = "fuzzing")),
        expect(dead_code, reason = "read by the fuzzing harness and tests")
    )]
    pub layout: EntryLayout,
    header: HintHeader,
    bytes: &'a [u8],
}

/// Checks the header and CRC of hint bytes.
///
/// # Errors
/// [`DecodeError::Truncated`], [`DecodeError::BadHeader`] or [`DecodeError::BadChecksum`].
pub fn decode(bytes: &[u8]) -> Result<Hint<'_>, DecodeError> {
    let mut reader = HintReader::new(bytes.len());
    let header = reader.header(bytes)?.ok_or(DecodeError::Truncated)?.clone();
    check_crc(bytes)?;
    Ok(Hint {
        segment_id: header.segment_id,
        data_len: header.data_len,
        layout: header.layout,
        header,
        bytes,
    })
}

impl<'a> Hint<'a> {
    /// Every entry; an error ends the iteration (the caller then distrusts the hint).
    pub fn entries(&self) -> impl Iterator<Item = Result<HintEntry<'a>, DecodeError>> + 'a {
        let bytes = self.bytes;
        let mut reader = HintReader::new(bytes.len());
        reader.start(self.header.clone());
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            match reader.next(bytes) {
                Some(r) => Some(r),
                None => {
                    done = true;
                    // Every record is there, as many per namespace as the table says.
                    reader
                        .finish(bytes)
                        .err()
                        .filter(|&e| e != DecodeError::BadChecksum)
                        .map(Err)
                }
            }
        })
    }
}

impl HintHeader {
    /// The namespace table's names (in `bytes`, the file's first bytes) and record counts.
    pub fn namespace_records<'s, 'a: 's>(
        &'s self,
        bytes: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], u32)> + 's {
        self.namespaces
            .iter()
            .map(move |(range, n)| (&bytes[range.clone()], *n))
    }
}

fn op_from(byte: u8) -> Result<Op, DecodeError> {
    Ok(match byte {
        1 => Op::Put,
        2 => Op::Tombstone,
        3 => Op::CreateNamespace,
        4 => Op::ClearNamespace,
        5 => Op::DropNamespace,
        _ => return Err(DecodeError::BadField),
    })
}

/// One record of version 2 and later, the index of its namespace in the table, and what the
/// next record is encoded against.
fn parse_record<'a>(
    b: &mut &'a [u8],
    namespace: impl Fn(usize) -> Option<&'a [u8]>,
    segment_id: u32,
    layout: EntryLayout,
    prev: &Previous,
) -> Result<(HintEntry<'a>, usize, Previous), DecodeError> {
    let mut prev = *prev;
    let (&flags, rest) = b.split_first().ok_or(DecodeError::Truncated)?;
    *b = rest;
    let op = op_from(flags & FLAG_OP)?;
    let (shift, follows, ns_kind) = match layout {
        EntryLayout::V1 | EntryLayout::V2 => (KIND_SHIFT, KIND_FOLLOWS, NsKind::Inline),
        EntryLayout::V3 => (
            V3_KIND_SHIFT,
            V3_KIND_FOLLOWS,
            match (flags >> V3_NS_SHIFT) & 0b11 {
                0 => NsKind::Inline,
                1 => NsKind::Define,
                2 => NsKind::ById,
                _ => return Err(DecodeError::BadField),
            },
        ),
    };
    let id_zero = layout != EntryLayout::V3 || flags & V3_ID_ABOVE_ZERO == 0;
    let mut kind = flags >> shift;
    if kind == follows {
        kind = varint::take_bytes(b, 1)?[0];
    }
    let offset = prev
        .end
        .wrapping_add(varint::unzigzag(varint::take(b)?) as u64);
    let offset = u32::try_from(offset).map_err(|_| DecodeError::BadField)?;
    let ns = usize::try_from(varint::take(b)?).map_err(|_| DecodeError::BadField)?;
    let namespace = namespace(ns).ok_or(DecodeError::BadField)?;
    let key_len = varint::take(b)?;
    let key = varint::take_bytes(b, key_len)?;
    let len = u32::try_from(varint::take(b)?).map_err(|_| DecodeError::BadField)?;
    let version = prev
        .version
        .wrapping_add(varint::unzigzag(varint::take(b)?) as u64);
    if version >= format::VERSION_LIMIT {
        return Err(DecodeError::BadField);
    }
    let horizon =
        i32::try_from(varint::unzigzag(varint::take(b)?)).map_err(|_| DecodeError::BadField)?;
    let expires_ms = if flags & FLAG_EXPIRES != 0 {
        prev.expires_ms
            .wrapping_add(varint::unzigzag(varint::take(b)?) as u64)
    } else {
        0
    };
    let meta = EntryMeta {
        op,
        kind,
        horizon: segment_id.wrapping_add(horizon as u32),
        version,
        expires_ms,
    };
    // Versions 2 and 3 keep the value's length, version 4 the entry's.
    let len = match layout {
        EntryLayout::V1 => v1_entry_len(namespace.len(), key.len(), len)?,
        EntryLayout::V2 => u32::try_from(format::layout2_entry_len(
            &meta,
            namespace.len(),
            key.len(),
            len as usize,
        ))
        .map_err(|_| DecodeError::BadField)?,
        EntryLayout::V3 => len,
    };
    let entry = HintEntry {
        offset,
        meta,
        namespace,
        key,
        len,
        shape: Shape {
            ns: ns_kind,
            id_zero,
            // A layout 3 entry leaves its horizon out exactly when it is its segment's id.
            implied_horizon: layout == EntryLayout::V3 && horizon == 0,
        },
    };
    prev.end = entry.end();
    prev.version = version;
    if expires_ms != 0 {
        prev.expires_ms = expires_ms;
    }
    Ok((entry, ns, prev))
}

fn parse_v1_record(b: &[u8]) -> Result<(HintEntry<'_>, usize), DecodeError> {
    if b.len() < REC_HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let ns_len = usize::from(read_u16(b, REC_NS_LEN));
    let key_len = read_u32(b, REC_KEY_LEN) as usize;
    let end = REC_HEADER_LEN
        .checked_add(ns_len)
        .and_then(|n| n.checked_add(key_len))
        .ok_or(DecodeError::BadField)?;
    if b.len() < end {
        return Err(DecodeError::Truncated);
    }
    let op = op_from(b[REC_OP])?;
    if read_u64(b, REC_VERSION) >= format::VERSION_LIMIT {
        return Err(DecodeError::BadField);
    }
    let entry = HintEntry {
        offset: read_u32(b, REC_OFFSET),
        meta: EntryMeta {
            op,
            kind: b[REC_KIND],
            horizon: read_u32(b, REC_HORIZON),
            version: read_u64(b, REC_VERSION),
            expires_ms: read_u64(b, REC_EXPIRES),
        },
        namespace: &b[REC_HEADER_LEN..REC_HEADER_LEN + ns_len],
        key: &b[REC_HEADER_LEN + ns_len..end],
        len: v1_entry_len(ns_len, key_len, read_u32(b, REC_VALUE_LEN))?,
        shape: Shape::default(),
    };
    Ok((entry, end))
}

/// Tests: rewrites the one hint file in `dir` with its records changed by `edit` (given the
/// segment's data length too), under a valid CRC (a hint written wrong, or forged).
#[cfg(test)]
pub(crate) fn rewrite_the_hint(
    fs: &crate::sim::SimFs,
    dir: &std::path::Path,
    edit: impl FnOnce(&mut Vec<HintEntry<'_>>, u64),
) {
    use crate::fs::FileSystem;
    let name = fs
        .list(dir)
        .expect("list")
        .into_iter()
        .find(|n| n.ends_with(".hint"))
        .expect("a hint");
    let path = dir.join(&name);
    let bytes = fs.read(&path).expect("read hint");
    let hint = decode(&bytes).expect("hint");
    let mut entries: Vec<HintEntry<'_>> =
        hint.entries().collect::<Result<_, _>>().expect("records");
    edit(&mut entries, hint.data_len);
    let mut w = HintWriter::new(hint.segment_id, hint.data_len, hint.layout);
    for e in &entries {
        w.push(e);
    }
    let rewritten = w.finish();
    fs.remove(&path).expect("remove hint");
    let f = fs.create(&path).expect("create hint");
    f.write_at(&rewritten, 0).expect("write");
    f.sync().expect("sync");
    fs.sync_dir(dir).expect("sync dir");
}

/// Version 1 hint bytes (no longer written by stores): for tests of older data dirs.
#[cfg(any(test, feature = "fuzzing"))]
pub fn encode_v1(segment_id: u32, data_len: u64, entries: &[HintEntry<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&HINT_MAGIC);
    b.extend_from_slice(&HINT_V1.to_le_bytes());
    b.extend_from_slice(&segment_id.to_le_bytes());
    b.extend_from_slice(&data_len.to_le_bytes());
    for e in entries {
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.push(e.meta.op as u8);
        b.push(e.meta.kind);
        let ns_len = u16::try_from(e.namespace.len()).unwrap_or(u16::MAX);
        b.extend_from_slice(&ns_len.to_le_bytes());
        b.extend_from_slice(&u32::try_from(e.key.len()).unwrap_or(u32::MAX).to_le_bytes());
        b.extend_from_slice(&e.value_len(EntryLayout::V1).to_le_bytes());
        b.extend_from_slice(&e.meta.horizon.to_le_bytes());
        b.extend_from_slice(&e.meta.version.to_le_bytes());
        b.extend_from_slice(&e.meta.expires_ms.to_le_bytes());
        b.extend_from_slice(e.namespace);
        b.extend_from_slice(e.key);
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

#[cfg(test)]
mod tests;
