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
                expires_ms: [0, u64::MAX, 1, u64::MAX - 1, 0, 1_800_000_000_000][i as usize % 6],
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
