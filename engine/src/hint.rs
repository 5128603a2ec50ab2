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
mod tests {
    use super::*;

    /// A layout 1 entry's length from the lengths of its parts.
    fn v1_len(ns: usize, key: usize, value: u32) -> u32 {
        v1_entry_len(ns, key, value).expect("fits")
    }

    fn sample_entries() -> Vec<HintEntry<'static>> {
        [&b"a"[..], b"bb", b""]
            .iter()
            .enumerate()
            .map(|(i, key)| HintEntry {
                offset: 24 + i as u32 * 100,
                meta: EntryMeta {
                    op: if key.is_empty() {
                        Op::ClearNamespace
                    } else {
                        Op::Put
                    },
                    kind: 1,
                    horizon: 3,
                    version: 10 + i as u64,
                    expires_ms: 0,
                },
                namespace: b"ns",
                key,
                len: v1_len(2, key.len(), 7),
                shape: Shape::default(),
            })
            .collect()
    }

    fn sample() -> Vec<u8> {
        let mut w = HintWriter::new(3, 1000, EntryLayout::V1);
        for e in &sample_entries() {
            w.push(e);
        }
        w.finish()
    }

    fn sample_v1() -> Vec<u8> {
        encode_v1(3, 1000, &sample_entries())
    }

    #[test]
    fn hint_round_trips() {
        let bytes = sample();
        let hint = decode(&bytes).expect("valid hint");
        assert_eq!((hint.segment_id, hint.data_len), (3, 1000));
        let entries: Vec<_> = hint.entries().collect::<Result<_, _>>().expect("records");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].key, b"bb");
        assert_eq!(entries[2].meta.op, Op::ClearNamespace);
        assert_eq!(entries[0].len, v1_len(2, 1, 7));
    }

    /// Every field distinct and non-zero, every op: a reader that takes a field from the
    /// wrong offset, or drops an op, cannot round-trip this.
    #[test]
    fn every_field_and_op_round_trips() {
        let ops = [
            Op::Put,
            Op::Tombstone,
            Op::CreateNamespace,
            Op::ClearNamespace,
            Op::DropNamespace,
        ];
        let mut w = HintWriter::new(0x0102_0304, 0x0A0B_0C0D_0E0F, EntryLayout::V1);
        let mut want = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            let i = i as u32;
            want.push(HintEntry {
                offset: 0x1111_0000 + i,
                meta: EntryMeta {
                    op,
                    kind: 0x20 + i as u8,
                    horizon: 0x3333_0000 + i,
                    version: 0x0044_4444_0000 + u64::from(i),
                    expires_ms: 0x5555_5555_0000 + u64::from(i),
                },
                namespace: &b"namespace"[..2 + i as usize],
                key: &b"the key"[..1 + i as usize],
                len: v1_len(2 + i as usize, 1 + i as usize, 0x6666 + i),
                shape: Shape::default(),
            });
        }
        // Version 3 (layout 2): any length, and namespaces named by id or inline.
        let want3: Vec<_> = want
            .iter()
            .enumerate()
            .map(|(i, e)| HintEntry {
                len: 0x7777 + i as u32,
                shape: Shape {
                    ns: [NsKind::Inline, NsKind::Define, NsKind::ById][i % 3],
                    id_zero: i % 4 != 1,
                    implied_horizon: false,
                },
                ..e.clone()
            })
            .collect();
        let mut w3 = HintWriter::new(0x0102_0304, 0x0A0B_0C0D_0E0F, EntryLayout::V3);
        for (e, e3) in want.iter().zip(&want3) {
            w.push(e);
            w3.push(e3);
        }
        let v3 = w3.finish();
        for (bytes, want, layout) in [
            (w.finish(), &want, EntryLayout::V1),
            (v3, &want3, EntryLayout::V3),
            (
                encode_v1(0x0102_0304, 0x0A0B_0C0D_0E0F, &want),
                &want,
                EntryLayout::V1,
            ),
        ] {
            let hint = decode(&bytes).expect("valid hint");
            assert_eq!(
                (hint.segment_id, hint.data_len, hint.layout),
                (0x0102_0304, 0x0A0B_0C0D_0E0F, layout)
            );
            let got: Vec<_> = hint.entries().collect::<Result<_, _>>().expect("records");
            assert_eq!(&got, want);
        }
    }

    /// A record of a header-only entry (empty namespace and key) as the last record: exactly
    /// a record header's worth of bytes is left for it.
    #[test]
    fn a_last_record_without_namespace_or_key_parses() {
        let e = HintEntry {
            offset: 48,
            meta: EntryMeta {
                op: Op::Put,
                kind: 0,
                horizon: 0,
                version: 2,
                expires_ms: 0,
            },
            namespace: b"",
            key: b"",
            len: v1_len(0, 0, 0),
            shape: Shape::default(),
        };
        let bytes = encode_v1(1, 100, std::slice::from_ref(&e));
        assert_eq!(bytes.len(), V1_HEADER_LEN + REC_HEADER_LEN + CRC_LEN);
        let mut w = HintWriter::new(1, 100, EntryLayout::V1);
        w.push(&e);
        for bytes in [bytes, w.finish()] {
            let hint = decode(&bytes).expect("valid hint");
            let got: Vec<_> = hint.entries().collect::<Result<_, _>>().expect("records");
            assert_eq!(got, vec![e.clone()]);
        }
    }

    /// Fewer bytes than a header and a CRC, whatever the CRC says: a typed error, never a
    /// read past the end.
    #[test]
    fn a_short_hint_with_a_valid_crc_is_truncated() {
        for len in FORMAT_OFFSET + 4..HINT_HEADER_LEN {
            let mut bytes = HintWriter::new(1, 2, EntryLayout::V1).finish();
            bytes.truncate(len);
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            assert_eq!(decode(&bytes).err(), Some(DecodeError::Truncated), "{len}");
        }
    }

    /// A version 1 hint without records is exactly a header and a CRC.
    #[test]
    fn a_version_1_hint_without_records_is_valid() {
        let bytes = encode_v1(7, 24, &[]);
        assert_eq!(bytes.len(), V1_HEADER_LEN + CRC_LEN);
        let hint = decode(&bytes).expect("an empty segment's hint");
        assert_eq!(
            (hint.segment_id, hint.data_len, hint.header.records),
            (7, 24, None)
        );
        assert_eq!(hint.entries().count(), 0);
    }

    #[test]
    fn a_hint_without_records_is_valid() {
        let bytes = HintWriter::new(7, 24, EntryLayout::V1).finish();
        assert_eq!(bytes.len(), HINT_HEADER_LEN + CRC_LEN);
        let hint = decode(&bytes).expect("an empty segment's hint");
        assert_eq!((hint.segment_id, hint.data_len), (7, 24));
        assert_eq!(hint.entries().count(), 0);
    }

    /// `bytes` with its CRC recomputed after `edit`, so that only the field check can
    /// refuse it.
    fn with_valid_crc(mut bytes: Vec<u8>, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        bytes.truncate(bytes.len() - CRC_LEN);
        edit(&mut bytes);
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn another_hint_version_or_magic_is_refused_even_with_a_valid_crc() {
        for version in [0, HINT_V4 + 1] {
            let other_version = with_valid_crc(sample(), |b| {
                b[FORMAT_OFFSET..SEGMENT_ID_OFFSET].copy_from_slice(&version.to_le_bytes());
            });
            assert_eq!(decode(&other_version).err(), Some(DecodeError::BadHeader));
        }
        let other_magic = with_valid_crc(sample(), |b| b[0] ^= 0x01);
        assert_eq!(decode(&other_magic).err(), Some(DecodeError::BadHeader));
    }

    /// Records that a valid CRC covers but that do not parse: a typed error, never a panic
    /// (the caller then scans the segment).
    #[test]
    fn malformed_v1_records_with_a_valid_crc_are_typed_errors() {
        let one = |edit: &dyn Fn(&mut Vec<u8>)| {
            let bytes = with_valid_crc(sample_v1(), |b| edit(b));
            let hint = decode(&bytes).expect("header and CRC check");
            let mut errors = hint.entries().filter_map(Result::err);
            errors.next()
        };
        let first = V1_HEADER_LEN;
        // A record header cut short, down to a few bytes.
        assert_eq!(
            one(&|b| b.truncate(first + 5)),
            Some(DecodeError::Truncated)
        );
        assert_eq!(
            one(&|b| b.truncate(first + REC_HEADER_LEN - 1)),
            Some(DecodeError::Truncated)
        );
        // A record header alone, exactly: its namespace and key are missing.
        assert_eq!(
            one(&|b| b.truncate(first + REC_HEADER_LEN)),
            Some(DecodeError::Truncated)
        );
        // The last record one byte short of its key.
        assert_eq!(
            one(&|b| {
                b.pop();
            }),
            Some(DecodeError::Truncated)
        );
        // A key length that runs far past the end.
        assert_eq!(
            one(&|b| b[first + REC_KEY_LEN..first + REC_VALUE_LEN]
                .copy_from_slice(&u32::MAX.to_le_bytes())),
            Some(DecodeError::Truncated)
        );
        // An unknown op.
        assert_eq!(one(&|b| b[first + REC_OP] = 6), Some(DecodeError::BadField));
        assert_eq!(one(&|b| b[first + REC_OP] = 0), Some(DecodeError::BadField));
        // A version at the limit the index can hold.
        assert_eq!(
            one(&|b| b[first + REC_VERSION..first + REC_EXPIRES]
                .copy_from_slice(&format::VERSION_LIMIT.to_le_bytes())),
            Some(DecodeError::BadField)
        );
        // Just under the limit is fine.
        assert_eq!(
            one(&|b| b[first + REC_VERSION..first + REC_EXPIRES]
                .copy_from_slice(&(format::VERSION_LIMIT - 1).to_le_bytes())),
            None
        );
        // The last record exactly complete: fine.
        assert_eq!(one(&|_| ()), None);
    }

    #[test]
    fn any_damage_is_detected() {
        for bytes in [sample(), sample_v1()] {
            any_damage_of(&bytes);
        }
    }

    fn any_damage_of(bytes: &[u8]) {
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "truncation at {cut} accepted"
            );
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "flip at {i} accepted");
        }
    }

    /// A store-like segment: 1,000 entries of 24-byte keys and 150-byte values in one
    /// namespace, back to back in frames of 50, with sequential versions and expiries a few
    /// ms apart. Version 2 must stay near the key bytes (the reopen and disk targets of
    /// ARCHITECTURE.md "Hints") and round-trip.
    #[test]
    fn version_2_records_are_compact() {
        let keys: Vec<Vec<u8>> = (0..1000u32)
            .map(|i| format!("user:{i:019}").into_bytes())
            .collect();
        let mut at = 72u32;
        let entries: Vec<HintEntry<'_>> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                if i % 50 == 0 {
                    at += 12;
                }
                let e = HintEntry {
                    offset: at,
                    meta: EntryMeta {
                        op: Op::Put,
                        kind: 0,
                        horizon: 9,
                        version: 1_000_000 + i as u64,
                        expires_ms: if i % 3 == 0 {
                            0
                        } else {
                            1_800_000_000_000 + 3 * i as u64
                        },
                    },
                    namespace: b"tenant-acme",
                    key,
                    len: v1_len(11, key.len(), 150),
                    shape: Shape::default(),
                };
                at += e.len;
                e
            })
            .collect();
        let mut w = HintWriter::new(9, u64::from(at), EntryLayout::V1);
        for e in &entries {
            w.push(e);
        }
        let bytes = w.finish();
        let per_record = bytes.len() as f64 / 1000.0;
        assert!(per_record <= 24.0 + 12.0, "{per_record} bytes per record");
        let v1 = encode_v1(9, u64::from(at), &entries);
        assert!(
            bytes.len() * 2 < v1.len(),
            "{} vs {}",
            bytes.len(),
            v1.len()
        );
        let hint = decode(&bytes).expect("valid");
        assert_eq!(hint.header.records, Some(1000));
        assert_eq!(
            hint.header
                .namespace_records(hint.bytes)
                .collect::<Vec<_>>(),
            [(&b"tenant-acme"[..], 1000)]
        );
        let got: Vec<_> = hint.entries().collect::<Result<_, _>>().expect("records");
        assert_eq!(got, entries);
    }

    /// Read as its bytes arrive (any chunk size, down to one byte at a time), a hint gives
    /// the same records as read whole, each once, and `finish` checks it; one flipped byte
    /// anywhere makes `finish` (or a record) fail.
    #[test]
    fn a_hint_read_as_it_arrives_gives_the_records_of_the_whole() {
        let keys: Vec<Vec<u8>> = (0..300u32)
            .map(|i| format!("key-{i}").into_bytes())
            .collect();
        let spaces: [&[u8]; 3] = [b"a", b"bb", b""];
        let entries: Vec<HintEntry<'_>> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| HintEntry {
                offset: 24 + i as u32 * 200,
                meta: EntryMeta {
                    op: Op::Put,
                    kind: (i % 20) as u8,
                    horizon: 9,
                    version: 1000 + i as u64,
                    expires_ms: if i % 3 == 0 { 0 } else { 5000 + i as u64 },
                },
                namespace: spaces[i % 3],
                key,
                len: 200,
                shape: Shape::default(),
            })
            .collect();
        let mut written = Vec::new();
        for layout in [EntryLayout::V1, EntryLayout::V2, EntryLayout::V3] {
            let mut w = HintWriter::new(9, 24 + 300 * 200, layout);
            for e in &entries {
                w.push(e);
            }
            written.push(w.finish());
        }
        written.push(encode_v1(9, 24 + 300 * 200, &entries));
        for bytes in &written {
            let whole: Vec<_> = decode(bytes)
                .expect("valid")
                .entries()
                .collect::<Result<_, _>>()
                .expect("records");
            assert_eq!(whole.len(), entries.len());
            for chunk in [1, 2, 7, 64, 1000, bytes.len()] {
                let mut reader = HintReader::new(bytes.len());
                let mut got = Vec::new();
                let mut filled = 0;
                while filled < bytes.len() {
                    filled = (filled + chunk).min(bytes.len());
                    let prefix = &bytes[..filled];
                    if reader.header(prefix).expect("header").is_none() {
                        continue;
                    }
                    while let Some(e) = reader.next(prefix) {
                        got.push(e.expect("record"));
                    }
                }
                assert_eq!(got, whole, "chunks of {chunk}");
                reader.finish(bytes).expect("sound");
            }
            for at in [bytes.len() / 3, bytes.len() - 5, bytes.len() - 1] {
                let mut bad = bytes.clone();
                bad[at] ^= 0x10;
                let mut reader = HintReader::new(bad.len());
                let ok = reader.header(&bad).is_ok_and(|h| h.is_some())
                    && std::iter::from_fn(|| reader.next(&bad)).all(|e| e.is_ok())
                    && reader.finish(&bad).is_ok();
                assert!(!ok, "a flipped byte at {at} goes unnoticed");
            }
        }
    }

    /// Values at the edges of every delta: offsets going backwards, versions jumping both
    /// ways across the whole range, horizons far on either side of the segment id, every
    /// kind, expiries near the top and coming and going, namespaces interleaved.
    #[test]
    fn version_2_round_trips_values_at_the_edges() {
        let spaces: [&[u8]; 4] = [b"a", b"", b"bb", &[0xff; 300]];
        let entries: Vec<HintEntry<'_>> = (0..40u32)
            .map(|i| HintEntry {
                offset: [0, u32::MAX, 7, 1 << 31][i as usize % 4] ^ i,
                meta: EntryMeta {
                    op: [
                        Op::Put,
                        Op::Tombstone,
                        Op::CreateNamespace,
                        Op::ClearNamespace,
                        Op::DropNamespace,
                    ][i as usize % 5],
                    kind: [0, 14, 15, 16, 255, 1][i as usize % 6],
                    horizon: [0, u32::MAX, 5, 1 << 31, 6][i as usize % 5],
                    version: [0, format::VERSION_LIMIT - 3, 3, 1 << 40][i as usize % 4]
                        + u64::from(i % 3),
                    expires_ms: [0, u64::MAX, 1, u64::MAX - 1, 0, 1_800_000_000_000]
                        [i as usize % 6],
                },
                namespace: spaces[(i as usize * 7 / 3) % 4],
                key: &[0x80; 200][..(i as usize * 13) % 200],
                len: v1_len(
                    spaces[(i as usize * 7 / 3) % 4].len(),
                    (i as usize * 13) % 200,
                    [0, u32::MAX - 600, 127, 128][i as usize % 4],
                ),
                shape: Shape::default(),
            })
            .collect();
        let entries3: Vec<_> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| HintEntry {
                len: [0, u32::MAX, 127, 128][i % 4],
                shape: Shape {
                    ns: [NsKind::ById, NsKind::Inline, NsKind::Define][i % 3],
                    id_zero: i % 4 != 2,
                    implied_horizon: e.meta.horizon == 6,
                },
                ..e.clone()
            })
            .collect();
        // Version 3 (layout 2): lengths that a layout 2 entry of these fields has.
        let entries2: Vec<_> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| HintEntry {
                len: format::layout2_entry_len(
                    &e.meta,
                    e.namespace.len(),
                    e.key.len(),
                    [0, 1 << 28, 127, 128][i % 4],
                ) as u32,
                ..e.clone()
            })
            .collect();
        for (layout, entries) in [
            (EntryLayout::V1, &entries),
            (EntryLayout::V2, &entries2),
            (EntryLayout::V3, &entries3),
        ] {
            let mut w = HintWriter::new(6, u64::MAX, layout);
            for e in entries {
                w.push(e);
            }
            let bytes = w.finish();
            let hint = decode(&bytes).expect("valid");
            assert_eq!(
                (hint.segment_id, hint.data_len, hint.layout),
                (6, u64::MAX, layout)
            );
            let got: Vec<_> = hint.entries().collect::<Result<_, _>>().expect("records");
            assert_eq!(&got, entries);
        }
    }

    /// One record in namespace `n` with one-byte fields, so each field's place is known:
    /// flags, offset delta, namespace index, key length, key `k`, value length, version
    /// delta, horizon, expiry delta.
    fn one_record() -> Vec<u8> {
        let mut w = HintWriter::new(5, 100, EntryLayout::V1);
        w.push(&HintEntry {
            offset: 3,
            meta: EntryMeta {
                op: Op::Put,
                kind: 2,
                horizon: 5,
                version: 4,
                expires_ms: 9,
            },
            namespace: b"n",
            key: b"k",
            len: v1_len(1, 1, 1),
            shape: Shape::default(),
        });
        w.finish()
    }

    #[test]
    fn malformed_v2_hints_with_a_valid_crc_are_typed_errors() {
        let first = HINT_HEADER_LEN + 3;
        let body = one_record();
        assert_eq!(
            body[HINT_HEADER_LEN..first],
            [1, b'n', 1],
            "the namespace table"
        );
        assert_eq!(
            body[first..body.len() - CRC_LEN],
            [0x21 | FLAG_EXPIRES, 6, 0, 1, b'k', 1, 8, 0, 18]
        );
        let entries = |edit: &dyn Fn(&mut Vec<u8>)| {
            let bytes = with_valid_crc(one_record(), |b| edit(b));
            decode(&bytes).map(|h| h.entries().collect::<Result<Vec<_>, _>>().map(|v| v.len()))
        };
        assert_eq!(entries(&|_| ()), Ok(Ok(1)));
        // The header counts more records than there are, or fewer.
        let count = |n: u32| {
            move |b: &mut Vec<u8>| {
                b[RECORDS_OFFSET..NAMESPACES_OFFSET].copy_from_slice(&n.to_le_bytes())
            }
        };
        assert_eq!(entries(&count(2)), Ok(Err(DecodeError::Truncated)));
        assert_eq!(entries(&count(0)), Ok(Err(DecodeError::BadField)));
        // A namespace table longer than the file, or a name running past it.
        let spaces = |n: u32| {
            move |b: &mut Vec<u8>| {
                b[NAMESPACES_OFFSET..HINT_HEADER_LEN].copy_from_slice(&n.to_le_bytes())
            }
        };
        assert_eq!(
            entries(&spaces(u32::MAX)).err(),
            Some(DecodeError::Truncated)
        );
        assert_eq!(
            entries(&|b| b[HINT_HEADER_LEN] = 100).err(),
            Some(DecodeError::Truncated)
        );
        // Two names in the table where there is one: the second runs into the record.
        assert_ne!(entries(&spaces(2)), Ok(Ok(1)));
        // A table whose record count for the namespace disagrees with the records.
        for count in [0, 2] {
            assert_eq!(
                entries(&|b| b[first - 1] = count),
                Ok(Err(DecodeError::BadField))
            );
        }
        // A namespace index outside the table, an unknown op, a kind byte missing.
        assert_eq!(
            entries(&|b| b[first + 2] = 1),
            Ok(Err(DecodeError::BadField))
        );
        for op in [0, 6, 7] {
            assert_eq!(
                entries(&|b| b[first] = (b[first] & !FLAG_OP) | op),
                Ok(Err(DecodeError::BadField))
            );
        }
        assert_eq!(
            entries(&|b| {
                b[first] |= KIND_FOLLOWS << KIND_SHIFT;
                b.truncate(first + 1);
            }),
            Ok(Err(DecodeError::Truncated))
        );
        // A key longer than what is left; the record cut anywhere.
        assert_eq!(
            entries(&|b| b[first + 3] = 50),
            Ok(Err(DecodeError::Truncated))
        );
        for cut in first..body.len() - CRC_LEN {
            assert_eq!(
                entries(&|b| b.truncate(cut)),
                Ok(Err(DecodeError::Truncated)),
                "cut at {cut}"
            );
        }
        // A version at the limit the index can hold; an offset past 32 bits; a horizon
        // past 32 bits; a varint longer than 64 bits.
        // The one-byte field at `at` replaced by `encoded`.
        let raw = |at: usize, encoded: Vec<u8>| {
            move |b: &mut Vec<u8>| {
                let tail = b.split_off(first + at);
                b.extend_from_slice(&encoded);
                b.extend_from_slice(&tail[1..]);
            }
        };
        let field = |at: usize, v: u64| {
            let mut encoded = Vec::new();
            varint::put(&mut encoded, v);
            raw(at, encoded)
        };
        let at_limit = varint::zigzag(format::VERSION_LIMIT as i64);
        assert_eq!(entries(&field(6, at_limit)), Ok(Err(DecodeError::BadField)));
        let below_limit = varint::zigzag(format::VERSION_LIMIT as i64 - 1);
        assert_eq!(entries(&field(6, below_limit)), Ok(Ok(1)));
        assert_eq!(
            entries(&field(1, varint::zigzag(1 << 32))),
            Ok(Err(DecodeError::BadField))
        );
        assert_eq!(
            entries(&field(7, varint::zigzag(1 << 31))),
            Ok(Err(DecodeError::BadField))
        );
        assert_eq!(entries(&field(5, 1 << 32)), Ok(Err(DecodeError::BadField)));
        // Ten bytes carrying more than 64 bits.
        let mut overlong = vec![0xff; 9];
        overlong.push(0x02);
        assert_eq!(entries(&raw(1, overlong)), Ok(Err(DecodeError::BadField)));
        // 2^63 as an offset delta: 10 bytes, valid as a varint, too far as an offset.
        let mut ten_bytes = vec![0x80; 9];
        ten_bytes.push(0x01);
        assert_eq!(entries(&raw(1, ten_bytes)), Ok(Err(DecodeError::BadField)));
    }

    #[test]
    fn varints_round_trip_and_refuse_bad_encodings() {
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut b = Vec::new();
            varint::put(&mut b, v);
            let mut rest = &b[..];
            assert_eq!(varint::take(&mut rest), Ok(v));
            assert!(rest.is_empty());
            let mut short = &b[..b.len() - 1];
            assert_eq!(varint::take(&mut short), Err(DecodeError::Truncated));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(varint::unzigzag(varint::zigzag(v)), v);
        }
        assert_eq!((varint::zigzag(-1), varint::zigzag(1)), (1, 2));
        let mut eleven = &[0x80u8; 11][..];
        assert_eq!(varint::take(&mut eleven), Err(DecodeError::BadField));
        // The tenth byte may carry only the 64th bit.
        let tenth = |last: u8| {
            let mut b = vec![0xffu8; 9];
            b.push(last);
            varint::take(&mut &b[..])
        };
        assert_eq!(tenth(0x01), Ok(u64::MAX));
        assert_eq!(tenth(0x02), Err(DecodeError::BadField));
        assert_eq!(tenth(0x7f), Err(DecodeError::BadField));
    }
}
