//! Hint files: for a sealed segment, every entry's header and key without the value, so
//! that opening the store does not read values.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"TTLCHNT\0"` |
//! | 8 | 4 | format version |
//! | 12 | 4 | segment id |
//! | 16 | 8 | data length of the segment the hint describes |
//! | 24 | … | records, back to back |
//! | end−4 | 4 | CRC32 of every byte before it |
//!
//! A record:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | entry offset in the segment |
//! | 4 | 1 | op |
//! | 5 | 1 | value kind |
//! | 6 | 2 | namespace length |
//! | 8 | 4 | key length |
//! | 12 | 4 | value length |
//! | 16 | 4 | horizon |
//! | 20 | 8 | version |
//! | 28 | 8 | expiry (ms, 0 = never) |
//! | 36 | … | namespace, key |
//!
//! A hint is written to a temporary file, synced and renamed into place, so a half-written
//! hint is never seen under its real name; one whose CRC or data length does not match is
//! ignored and the segment is scanned instead.

use std::mem::size_of;

use crate::format::{self, read_u16, read_u32, read_u64, DecodeError, EntryMeta, Op};

/// Layout version of hint files (independent of the segment format: segments of format 1
/// and 2 have the same entries, so their hints are alike).
pub const HINT_VERSION: u32 = 1;
const HINT_MAGIC: [u8; 8] = *b"TTLCHNT\0";
const FORMAT_OFFSET: usize = HINT_MAGIC.len();
const SEGMENT_ID_OFFSET: usize = FORMAT_OFFSET + size_of::<u32>();
const DATA_LEN_OFFSET: usize = SEGMENT_ID_OFFSET + size_of::<u32>();
const HINT_HEADER_LEN: usize = DATA_LEN_OFFSET + size_of::<u64>();
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
    /// Length of the value on disk.
    pub value_len: u32,
}

impl HintEntry<'_> {
    /// Encoded length of the entry in the segment.
    pub fn entry_len(&self) -> usize {
        format::entry_len(
            self.namespace.len(),
            self.key.len(),
            self.value_len as usize,
        )
    }
}

/// Builds the bytes of a hint file.
#[derive(Debug)]
pub struct HintWriter {
    buf: Vec<u8>,
}

impl HintWriter {
    /// Starts the hint of segment `segment_id` whose data is `data_len` bytes long.
    pub fn new(segment_id: u32, data_len: u64) -> Self {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(&HINT_MAGIC);
        buf.extend_from_slice(&HINT_VERSION.to_le_bytes());
        buf.extend_from_slice(&segment_id.to_le_bytes());
        buf.extend_from_slice(&data_len.to_le_bytes());
        Self { buf }
    }

    /// Adds one entry.
    pub fn push(&mut self, e: &HintEntry<'_>) {
        let b = &mut self.buf;
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.push(e.meta.op as u8);
        b.push(e.meta.kind);
        b.extend_from_slice(
            &u16::try_from(e.namespace.len())
                .unwrap_or(u16::MAX)
                .to_le_bytes(),
        );
        b.extend_from_slice(&u32::try_from(e.key.len()).unwrap_or(u32::MAX).to_le_bytes());
        b.extend_from_slice(&e.value_len.to_le_bytes());
        b.extend_from_slice(&e.meta.horizon.to_le_bytes());
        b.extend_from_slice(&e.meta.version.to_le_bytes());
        b.extend_from_slice(&e.meta.expires_ms.to_le_bytes());
        b.extend_from_slice(e.namespace);
        b.extend_from_slice(e.key);
    }

    /// The finished bytes, CRC appended.
    pub fn finish(mut self) -> Vec<u8> {
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

/// A checked hint file.
#[derive(Debug)]
pub struct Hint<'a> {
    /// Segment id it describes.
    pub segment_id: u32,
    /// Data length of that segment.
    pub data_len: u64,
    records: &'a [u8],
}

/// Checks the header and CRC of hint bytes.
///
/// # Errors
/// [`DecodeError::Truncated`], [`DecodeError::BadHeader`] or [`DecodeError::BadChecksum`].
pub fn decode(bytes: &[u8]) -> Result<Hint<'_>, DecodeError> {
    if bytes.len() < HINT_HEADER_LEN + CRC_LEN {
        return Err(DecodeError::Truncated);
    }
    if bytes[..FORMAT_OFFSET] != HINT_MAGIC || read_u32(bytes, FORMAT_OFFSET) != HINT_VERSION {
        return Err(DecodeError::BadHeader);
    }
    let body_end = bytes.len() - CRC_LEN;
    if crc32fast::hash(&bytes[..body_end]) != read_u32(bytes, body_end) {
        return Err(DecodeError::BadChecksum);
    }
    Ok(Hint {
        segment_id: read_u32(bytes, SEGMENT_ID_OFFSET),
        data_len: read_u64(bytes, DATA_LEN_OFFSET),
        records: &bytes[HINT_HEADER_LEN..body_end],
    })
}

impl<'a> Hint<'a> {
    /// Every entry; an error ends the iteration (the caller then distrusts the hint).
    pub fn entries(&self) -> impl Iterator<Item = Result<HintEntry<'a>, DecodeError>> + 'a {
        let mut rest = self.records;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let parsed = parse_record(rest);
            match parsed {
                Ok((entry, used)) => {
                    rest = &rest[used..];
                    Some(Ok(entry))
                }
                Err(e) => {
                    rest = &[];
                    Some(Err(e))
                }
            }
        })
    }
}

fn parse_record(b: &[u8]) -> Result<(HintEntry<'_>, usize), DecodeError> {
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
    let op = match b[REC_OP] {
        1 => Op::Put,
        2 => Op::Tombstone,
        3 => Op::CreateNamespace,
        4 => Op::ClearNamespace,
        5 => Op::DropNamespace,
        _ => return Err(DecodeError::BadField),
    };
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
        value_len: read_u32(b, REC_VALUE_LEN),
    };
    Ok((entry, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = HintWriter::new(3, 1000);
        for (i, key) in [&b"a"[..], b"bb", b""].iter().enumerate() {
            w.push(&HintEntry {
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
                value_len: 7,
            });
        }
        w.finish()
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
        assert_eq!(entries[0].entry_len(), format::entry_len(2, 1, 7));
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
        let mut w = HintWriter::new(0x0102_0304, 0x0A0B_0C0D_0E0F);
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
                value_len: 0x6666 + i,
            });
        }
        for e in &want {
            w.push(e);
        }
        let bytes = w.finish();
        let hint = decode(&bytes).expect("valid hint");
        assert_eq!(
            (hint.segment_id, hint.data_len),
            (0x0102_0304, 0x0A0B_0C0D_0E0F)
        );
        let got: Vec<_> = hint.entries().collect::<Result<_, _>>().expect("records");
        assert_eq!(got, want);
        assert_eq!(got[4].entry_len(), format::entry_len(6, 5, 0x666A));
    }

    /// A record of a header-only entry (empty namespace and key) as the last record: exactly
    /// a record header's worth of bytes is left for it.
    #[test]
    fn a_last_record_without_namespace_or_key_parses() {
        let mut w = HintWriter::new(1, 100);
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
            value_len: 0,
        };
        w.push(&e);
        let bytes = w.finish();
        assert_eq!(bytes.len(), HINT_HEADER_LEN + REC_HEADER_LEN + CRC_LEN);
        let hint = decode(&bytes).expect("valid hint");
        let got: Vec<_> = hint.entries().collect::<Result<_, _>>().expect("records");
        assert_eq!(got, vec![e]);
    }

    /// Fewer bytes than a header and a CRC, whatever the CRC says: a typed error, never a
    /// read past the end.
    #[test]
    fn a_short_hint_with_a_valid_crc_is_truncated() {
        for len in FORMAT_OFFSET + 4..HINT_HEADER_LEN {
            let mut bytes = HintWriter::new(1, 2).finish();
            bytes.truncate(len);
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            assert_eq!(decode(&bytes).err(), Some(DecodeError::Truncated), "{len}");
        }
    }

    #[test]
    fn a_hint_without_records_is_valid() {
        let bytes = HintWriter::new(7, 24).finish();
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
        let other_version = with_valid_crc(sample(), |b| {
            b[FORMAT_OFFSET..SEGMENT_ID_OFFSET].copy_from_slice(&(HINT_VERSION + 1).to_le_bytes());
        });
        assert_eq!(decode(&other_version).err(), Some(DecodeError::BadHeader));
        let other_magic = with_valid_crc(sample(), |b| b[0] ^= 0x01);
        assert_eq!(decode(&other_magic).err(), Some(DecodeError::BadHeader));
    }

    /// Records that a valid CRC covers but that do not parse: a typed error, never a panic
    /// (the caller then scans the segment).
    #[test]
    fn malformed_records_with_a_valid_crc_are_typed_errors() {
        let one = |edit: &dyn Fn(&mut Vec<u8>)| {
            let bytes = with_valid_crc(sample(), |b| edit(b));
            let hint = decode(&bytes).expect("header and CRC check");
            let mut errors = hint.entries().filter_map(Result::err);
            errors.next()
        };
        let first = HINT_HEADER_LEN;
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
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "truncation at {cut} accepted"
            );
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "flip at {i} accepted");
        }
    }
}
