//! The on-disk encoding of segments: the segment header, frames and entries.
//!
//! A segment file is a header followed by frames, written append-only:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"TTLCSEG\0"` |
//! | 8 | 4 | format version (`FORMAT_VERSION`) |
//! | 12 | 4 | segment id |
//! | 16 | 8 | base version: the store's next version when the segment was created |
//!
//! A frame is one atomic append (a single write or a whole batch):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | CRC32 of the body length followed by every entry's CRC, in order |
//! | 4 | 4 | body length `n` (> 0) |
//! | 8 | n | entries, back to back |
//!
//! The frame CRC binds the length and the entries together without hashing the payload a
//! second time: each entry's own CRC covers its bytes, so a frame is valid only if every
//! entry is, and a torn frame is rejected whole.
//!
//! An entry is one operation, with its own CRC so that a read can check it alone:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | CRC32 of bytes 4..entry end |
//! | 4 | 1 | op: 1 put, 2 tombstone, 3 create namespace, 4 clear namespace, 5 drop namespace |
//! | 5 | 1 | value kind (the caller's tag) |
//! | 6 | 2 | namespace length |
//! | 8 | 4 | key length |
//! | 12 | 4 | value length |
//! | 16 | 4 | horizon: the highest segment id allocated when the entry was first written |
//! | 20 | 4 | reserved, zero |
//! | 24 | 8 | version |
//! | 32 | 8 | expiry, ms since the Unix epoch, 0 = never |
//! | 40 | … | namespace, key, value |
//!
//! All integers are little-endian. A frame whose length is zero marks the end of the data
//! (an active segment is pre-allocated with zeros).

use std::mem::size_of;

/// Identifies a segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"TTLCSEG\0";
/// Version of the segment, frame and entry layout.
pub const FORMAT_VERSION: u32 = 1;
/// Versions are below this (the index keeps 56 bits); a record or header claiming more is
/// damaged, however its checksum reads.
pub const VERSION_LIMIT: u64 = 1 << 56;
/// Segment ids are below this, so that the next id always exists.
pub const SEGMENT_ID_LIMIT: u32 = u32::MAX - 1;

const MAGIC_OFFSET: usize = 0;
const FORMAT_OFFSET: usize = MAGIC_OFFSET + SEGMENT_MAGIC.len();
const SEGMENT_ID_OFFSET: usize = FORMAT_OFFSET + size_of::<u32>();
const BASE_VERSION_OFFSET: usize = SEGMENT_ID_OFFSET + size_of::<u32>();
/// Bytes of the segment header.
pub const SEGMENT_HEADER_LEN: usize = BASE_VERSION_OFFSET + size_of::<u64>();

const FRAME_CRC_OFFSET: usize = 0;
const FRAME_LEN_OFFSET: usize = FRAME_CRC_OFFSET + size_of::<u32>();
/// Bytes of a frame header.
pub const FRAME_HEADER_LEN: usize = FRAME_LEN_OFFSET + size_of::<u32>();

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
/// Bytes of an entry header.
pub const ENTRY_HEADER_LEN: usize = ENTRY_EXPIRES_OFFSET + size_of::<u64>();

/// Largest namespace name.
pub const MAX_NAMESPACE_LEN: usize = u16::MAX as usize;
/// Largest key.
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
    /// Expiry in ms, 0 = never.
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
}

/// Encoded length of an entry.
pub fn entry_len(namespace_len: usize, key_len: usize, value_len: usize) -> usize {
    ENTRY_HEADER_LEN + namespace_len + key_len + value_len
}

/// Appends one entry to `out`.
pub fn encode_entry(
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
    let crc = crc32fast::hash(&out[start + ENTRY_OP_OFFSET..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

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

/// Decodes the entry at the start of `bytes`, checking its CRC.
///
/// # Errors
/// [`DecodeError::Truncated`], [`DecodeError::BadChecksum`] or [`DecodeError::BadField`].
pub fn decode_entry(bytes: &[u8]) -> Result<EntryRef<'_>, DecodeError> {
    decode_entry_checked(bytes, true)
}

/// Decodes an entry that this process has just encoded itself, without the CRC pass.
pub(crate) fn decode_own_entry(bytes: &[u8]) -> Result<EntryRef<'_>, DecodeError> {
    decode_entry_checked(bytes, false)
}

fn decode_entry_checked(bytes: &[u8], check: bool) -> Result<EntryRef<'_>, DecodeError> {
    if bytes.len() < ENTRY_HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let ns_len = usize::from(read_u16(bytes, ENTRY_NS_LEN_OFFSET));
    let key_len = read_u32(bytes, ENTRY_KEY_LEN_OFFSET) as usize;
    let value_len = read_u32(bytes, ENTRY_VALUE_LEN_OFFSET) as usize;
    let len = ENTRY_HEADER_LEN
        .checked_add(ns_len)
        .and_then(|n| n.checked_add(key_len))
        .and_then(|n| n.checked_add(value_len))
        .ok_or(DecodeError::BadField)?;
    if bytes.len() < len {
        return Err(DecodeError::Truncated);
    }
    let crc = read_u32(bytes, ENTRY_CRC_OFFSET);
    if check && crc32fast::hash(&bytes[ENTRY_OP_OFFSET..len]) != crc {
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
    let ns_start = ENTRY_HEADER_LEN;
    let key_start = ns_start + ns_len;
    let value_start = key_start + key_len;
    Ok(EntryRef {
        meta,
        namespace: &bytes[ns_start..key_start],
        key: &bytes[key_start..value_start],
        value: &bytes[value_start..len],
        len,
    })
}

/// Starts a frame in `out`; finish it with [`finish_frame`] after appending entries.
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    start
}

/// Fills in the length and CRC of the frame begun at `start`.
pub fn finish_frame(out: &mut [u8], start: usize) {
    let body_len = len_u32(out.len() - start - FRAME_HEADER_LEN);
    out[start + FRAME_LEN_OFFSET..start + FRAME_HEADER_LEN]
        .copy_from_slice(&body_len.to_le_bytes());
    let crc = frame_crc(&out[start + FRAME_LEN_OFFSET..]).unwrap_or(0);
    out[start..start + FRAME_LEN_OFFSET].copy_from_slice(&crc.to_le_bytes());
}

/// CRC of a frame's length field and its entries' CRCs; `None` if the entries do not tile
/// the body exactly. `bytes` starts at the length field and ends with the body.
fn frame_crc(bytes: &[u8]) -> Option<u32> {
    let (len_field, body) = bytes.split_at_checked(FRAME_HEADER_LEN - FRAME_LEN_OFFSET)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len_field);
    let mut at = 0;
    while at < body.len() {
        let entry = body.get(at..at + ENTRY_HEADER_LEN)?;
        let len = ENTRY_HEADER_LEN
            .checked_add(usize::from(read_u16(entry, ENTRY_NS_LEN_OFFSET)))?
            .checked_add(read_u32(entry, ENTRY_KEY_LEN_OFFSET) as usize)?
            .checked_add(read_u32(entry, ENTRY_VALUE_LEN_OFFSET) as usize)?;
        hasher.update(&entry[ENTRY_CRC_OFFSET..ENTRY_OP_OFFSET]);
        at = at.checked_add(len)?;
    }
    (at == body.len()).then(|| hasher.finalize())
}

/// Checks the frame at the start of `bytes` and returns its body and total length.
///
/// # Errors
/// [`DecodeError::End`] for a zero length (no more data), [`DecodeError::Truncated`] or
/// [`DecodeError::BadChecksum`] for a torn or damaged frame.
pub fn decode_frame(bytes: &[u8]) -> Result<(&[u8], usize), DecodeError> {
    if bytes.len() < FRAME_HEADER_LEN {
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
    let total = FRAME_HEADER_LEN
        .checked_add(body_len)
        .ok_or(DecodeError::BadField)?;
    if bytes.len() < total {
        return Err(DecodeError::Truncated);
    }
    match frame_crc(&bytes[FRAME_LEN_OFFSET..total]) {
        Some(c) if c == crc => Ok((&bytes[FRAME_HEADER_LEN..total], total)),
        Some(_) => Err(DecodeError::BadChecksum),
        None => Err(DecodeError::BadField),
    }
}

/// Iterates over the entries of a checked frame body with their offsets in the body.
pub fn frame_entries(
    body: &[u8],
) -> impl Iterator<Item = Result<(usize, EntryRef<'_>), DecodeError>> {
    entries_with(body, decode_entry)
}

/// [`frame_entries`] of a frame this process has just built, without the CRC pass.
pub(crate) fn own_frame_entries(
    body: &[u8],
) -> impl Iterator<Item = Result<(usize, EntryRef<'_>), DecodeError>> {
    entries_with(body, decode_own_entry)
}

fn entries_with(
    body: &[u8],
    decode: fn(&[u8]) -> Result<EntryRef<'_>, DecodeError>,
) -> impl Iterator<Item = Result<(usize, EntryRef<'_>), DecodeError>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= body.len() {
            return None;
        }
        match decode(&body[at..]) {
            Ok(e) => {
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
}

/// Encodes a segment header.
pub fn encode_segment_header(h: &SegmentHeader) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0; SEGMENT_HEADER_LEN];
    out[MAGIC_OFFSET..FORMAT_OFFSET].copy_from_slice(&SEGMENT_MAGIC);
    out[FORMAT_OFFSET..SEGMENT_ID_OFFSET].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[SEGMENT_ID_OFFSET..BASE_VERSION_OFFSET].copy_from_slice(&h.id.to_le_bytes());
    out[BASE_VERSION_OFFSET..SEGMENT_HEADER_LEN].copy_from_slice(&h.base_version.to_le_bytes());
    out
}

/// Decodes a segment header.
///
/// # Errors
/// [`DecodeError::Truncated`] or [`DecodeError::BadHeader`].
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, DecodeError> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    if bytes[MAGIC_OFFSET..FORMAT_OFFSET] != SEGMENT_MAGIC
        || read_u32(bytes, FORMAT_OFFSET) != FORMAT_VERSION
    {
        return Err(DecodeError::BadHeader);
    }
    let header = SegmentHeader {
        id: read_u32(bytes, SEGMENT_ID_OFFSET),
        base_version: read_u64(bytes, BASE_VERSION_OFFSET),
    };
    // The header has no checksum: fields that would break version or id allocation are
    // refused outright (found by fuzzing recovery).
    if header.base_version >= VERSION_LIMIT || header.id >= SEGMENT_ID_LIMIT {
        return Err(DecodeError::BadHeader);
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(op: Op) -> EntryMeta {
        EntryMeta {
            op,
            kind: 7,
            horizon: 3,
            version: 42,
            expires_ms: 99,
        }
    }

    #[test]
    fn entry_round_trips() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, &meta(Op::Put), b"ns", b"key", b"value");
        assert_eq!(buf.len(), entry_len(2, 3, 5));
        let e = decode_entry(&buf).expect("decodes");
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
                decode_entry(&buf[..cut]),
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
            assert!(decode_entry(&bad).is_err(), "flip at byte {i} accepted");
        }
    }

    #[test]
    fn bad_op_is_a_typed_error() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, &meta(Op::Put), b"n", b"k", b"v");
        buf[ENTRY_OP_OFFSET] = 9;
        let crc = crc32fast::hash(&buf[ENTRY_OP_OFFSET..]);
        buf[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_entry(&buf), Err(DecodeError::BadField));
    }

    #[test]
    fn frame_round_trips_and_detects_tears() {
        let mut buf = Vec::new();
        let start = begin_frame(&mut buf);
        encode_entry(&mut buf, &meta(Op::Put), b"ns", b"a", b"1");
        encode_entry(&mut buf, &meta(Op::Tombstone), b"ns", b"b", b"");
        finish_frame(&mut buf, start);
        let (body, total) = decode_frame(&buf).expect("frame");
        assert_eq!(total, buf.len());
        let keys: Vec<_> = frame_entries(body)
            .map(|e| e.expect("entry").1.key.to_vec())
            .collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        for cut in 1..buf.len() {
            assert!(
                decode_frame(&buf[..cut]).is_err(),
                "torn frame of {cut} bytes accepted"
            );
        }
        assert_eq!(decode_frame(&[0; 16]), Err(DecodeError::End));
    }

    #[test]
    fn segment_header_round_trips() {
        let h = SegmentHeader {
            id: 12,
            base_version: 1 << 40,
        };
        let bytes = encode_segment_header(&h);
        assert_eq!(decode_segment_header(&bytes), Ok(h));
        let mut bad = bytes;
        bad[0] = b'X';
        assert_eq!(decode_segment_header(&bad), Err(DecodeError::BadHeader));
        assert_eq!(
            decode_segment_header(&bytes[..5]),
            Err(DecodeError::Truncated)
        );
        // No checksum covers the header, so implausible ids and versions are refused.
        let huge = encode_segment_header(&SegmentHeader {
            id: 1,
            base_version: u64::MAX,
        });
        assert_eq!(decode_segment_header(&huge), Err(DecodeError::BadHeader));
    }
}
