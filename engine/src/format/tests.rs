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
    let f =
        decode_v2_frame(&buf[..body_end], SALT, WRITE_LAYOUT).expect("the header and body check");
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
        bytes[copy + FORMAT_OFFSET..copy + SEGMENT_ID_OFFSET].copy_from_slice(&3u32.to_le_bytes());
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

#[test]
fn a_damaged_header_copy_is_found_unless_the_segment_holds_nothing() {
    let mut file = encode_segment_header(&header(7, 100)).to_vec();
    file.extend_from_slice(&[1; 64]);
    assert_eq!(damaged_header_copy(&file), None, "intact");
    for (at, copy) in [(0, 0), (20, 0), (35, 0), (36, 36), (50, 36), (71, 36)] {
        let mut bad = file.clone();
        bad[at] ^= 0x10;
        assert_eq!(damaged_header_copy(&bad), Some(copy), "byte {at} flipped");
        assert!(
            decode_segment_header(&bad).is_ok(),
            "read from the other copy"
        );
    }
    let mut both = file.clone();
    both[3] ^= 1;
    both[40] ^= 1;
    assert_eq!(
        damaged_header_copy(&both),
        None,
        "no sound copy: not this check's"
    );
    // A second copy of zeros: damage where data follows, a torn creation where none does.
    let mut zeroed = file.clone();
    zeroed[V2_HEADER_COPY_LEN..SEGMENT_HEADER_LEN].fill(0);
    assert_eq!(damaged_header_copy(&zeroed), Some(V2_HEADER_COPY_LEN));
    zeroed[SEGMENT_HEADER_LEN..].fill(0);
    assert_eq!(damaged_header_copy(&zeroed), None);
}
