use super::*;
use crate::format::{
    begin_frame, encode_entry, encode_segment_header, finish_frame, EntryMeta, Op, FORMAT_VERSION,
    FRAME_HEADER_LEN, WRITE_LAYOUT,
};

const SALT: u32 = 0x5EED_1234;

/// Where a frame of an image lies, in file offsets.
#[derive(Debug, Clone)]
struct At {
    start: usize,
    /// (offset, length) of each entry.
    entries: Vec<(usize, usize)>,
    trailer: usize,
    end: usize,
}

struct Image {
    bytes: Vec<u8>,
    header: SegmentHeader,
    frames: Vec<At>,
    /// Where the frames end (padding zeros follow).
    data_end: usize,
}

/// A frame of puts of `keys` in namespace `ns`, versions from `*version` on.
fn frame(keys: &[&str], version: &mut u64, salt: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let start = begin_frame(&mut out);
    for key in keys {
        let meta = EntryMeta {
            op: Op::Put,
            kind: 0,
            horizon: 1,
            version: *version,
            expires_ms: 0,
        };
        *version += 1;
        encode_entry(&mut out, &meta, b"ns", key.as_bytes(), b"a value");
    }
    finish_frame(&mut out, start, salt);
    out
}

/// A segment of `frames` (each a list of keys), with `junk` bytes before frame
/// `junk_before` and `pad` zero bytes after the data.
fn image_with(frames: &[&[&str]], junk: Option<(usize, &[u8])>, pad: usize, salt: u32) -> Image {
    let header = SegmentHeader {
        id: 3,
        base_version: 1,
        format: FORMAT_VERSION,
        salt,
        entry_layout: WRITE_LAYOUT,
    };
    let mut bytes = encode_segment_header(&header).to_vec();
    let mut version = 1;
    let mut ats = Vec::new();
    for (i, keys) in frames.iter().enumerate() {
        if let Some((before, j)) = junk {
            if before == i {
                bytes.extend_from_slice(j);
            }
        }
        let f = frame(keys, &mut version, salt);
        let start = bytes.len();
        let body = format::own_frame_body(&f);
        let entries: Vec<_> = format::own_frame_entries(body, 3)
            .flatten()
            .map(|(off, e)| (start + FRAME_HEADER_LEN + off, e.len))
            .collect();
        assert_eq!(entries.len(), keys.len());
        let trailer = start + FRAME_HEADER_LEN + body.len();
        bytes.extend_from_slice(&f);
        ats.push(At {
            start,
            entries,
            trailer,
            end: bytes.len(),
        });
    }
    let data_end = bytes.len();
    bytes.resize(data_end + pad, 0);
    Image {
        bytes,
        header,
        frames: ats,
        data_end,
    }
}

fn image(frames: &[&[&str]], pad: usize) -> Image {
    image_with(frames, None, pad, SALT)
}

const FOUR: &[&[&str]] = &[&["a", "b"], &["c"], &["d", "e", "f"], &["g"]];

/// (offset, key) of every record a scan took.
fn taken(scan: &Scan<'_>) -> Vec<(usize, String)> {
    scan.records
        .iter()
        .map(|(at, e)| (*at, String::from_utf8_lossy(e.key).into_owned()))
        .collect()
}

/// (offset, key) of every entry of the image, but those of `skip` frames.
fn expected(img: &Image, keys: &[&[&str]], skip: &[usize]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, (at, keys)) in img.frames.iter().zip(keys).enumerate() {
        if skip.contains(&i) {
            continue;
        }
        for ((off, _), key) in at.entries.iter().zip(keys.iter()) {
            out.push((*off, key.to_string()));
        }
    }
    out
}

fn key_hashes(lost: &Option<Vec<Summary>>) -> Option<Vec<u32>> {
    lost.as_ref()
        .map(|l| l.iter().map(|s| s.key_hash).collect())
}

fn hashes(keys: &[&str]) -> Option<Vec<u32>> {
    Some(keys.iter().map(|k| crc32fast::hash(k.as_bytes())).collect())
}

/// Rewrites the trailer CRC of frame `at` after an edit of its summaries.
fn fix_trailer_crc(bytes: &mut [u8], at: &At, salt: u32) {
    let mut h = crc32fast::Hasher::new_with_initial(salt);
    h.update(&bytes[at.trailer..at.end - 4]);
    let crc = h.finalize();
    bytes[at.end - 4..at.end].copy_from_slice(&crc.to_le_bytes());
}

const HEADER_CRC: usize = FRAME_HEADER_LEN - 4;

/// One frame of puts of `keys` in namespace "tenant-ns", built as the writer builds
/// batches (ids for the namespace after its first entry), in a segment; the entries'
/// places; and `pad` zeros after it.
fn interned_image(keys: &[&str], pad: usize) -> (Vec<u8>, SegmentHeader, Vec<(usize, usize)>) {
    let header = SegmentHeader {
        id: 3,
        base_version: 1,
        format: FORMAT_VERSION,
        salt: SALT,
        entry_layout: WRITE_LAYOUT,
    };
    let mut bytes = encode_segment_header(&header).to_vec();
    let mut names = format::FrameNames::for_segment(3);
    let mut frame = Vec::new();
    let start = begin_frame(&mut frame);
    for (i, key) in keys.iter().enumerate() {
        // The segment's own id: the horizon is left out.
        let meta = EntryMeta {
            op: Op::Put,
            kind: 0,
            horizon: 3,
            version: 1 + i as u64,
            expires_ms: 0,
        };
        names.encode(&mut frame, &meta, b"tenant-ns", key.as_bytes(), b"a value");
    }
    finish_frame(&mut frame, start, SALT);
    let at = bytes.len() + FRAME_HEADER_LEN;
    let entries = format::own_frame_entries(format::own_frame_body(&frame), 3)
        .map(|e| e.expect("entry"))
        .map(|(off, e)| (at + off, e.len))
        .collect();
    bytes.extend_from_slice(&frame);
    bytes.resize(bytes.len() + pad, 0);
    (bytes, header, entries)
}

const SIX: &[&str] = &["a", "b", "c", "d", "e", "f"];

/// The namespace of a batch is in its first three entries (the second and third also
/// give its id); the rest name it by id, one byte instead of its ten.
#[test]
fn a_batch_names_its_namespace_three_times_then_by_id() {
    let (bytes, header, entries) = interned_image(SIX, 10);
    let s = scan(&bytes, &header, false);
    assert!(s.is_clean(), "{:?}", s.damaged);
    let got: Vec<_> = s
        .records
        .iter()
        .map(|(at, e)| (*at, e.namespace, e.key, e.ns_id, e.ns_inline))
        .collect();
    let want: Vec<_> = entries
        .iter()
        .zip(SIX)
        .enumerate()
        .map(|(i, ((at, _), key))| {
            let id = (i > 0).then_some(0);
            (*at, &b"tenant-ns"[..], key.as_bytes(), id, i < 3)
        })
        .collect();
    assert_eq!(got, want);
    // The name (9 bytes) and its length byte: id 0 rides in the flags' byte.
    assert_eq!(entries[0].1 - entries[3].1, 10);
    assert!(s
        .records
        .iter()
        .all(|(_, e)| e.implied_horizon && e.meta.horizon == 3));
}

/// One damaged byte in an entry that defines the namespace's id costs that entry: the
/// other definition names the rest. Both damaged (two bytes): the entries that use the
/// id are lost too, their keys known from the trailer, and nothing else is.
#[test]
fn a_damaged_definition_costs_only_its_entry_unless_both_are_damaged() {
    for (damaged, lost) in [
        (&[1][..], &["b"][..]),
        (&[2], &["c"]),
        (&[0], &["a"]),
        (&[1, 2], &["b", "c", "d", "e", "f"]),
    ] {
        let (mut bytes, header, entries) = interned_image(SIX, 10);
        for &i in damaged {
            let (at, len) = entries[i];
            bytes[at + len - 1] ^= 0x20;
        }
        let s = scan(&bytes, &header, false);
        let kept: Vec<_> = s.records.iter().map(|(_, e)| e.key).collect();
        let want: Vec<_> = SIX
            .iter()
            .filter(|k| !lost.contains(k))
            .map(|k| k.as_bytes())
            .collect();
        assert_eq!(kept, want, "damaged {damaged:?}");
        assert!(s.records.iter().all(|(_, e)| e.namespace == b"tenant-ns"));
        let named: Vec<u32> = s
            .damaged
            .iter()
            .flat_map(|d| d.lost.clone().expect("known"))
            .map(|summary| summary.key_hash)
            .collect();
        assert_eq!(Some(named), hashes(lost), "damaged {damaged:?}");
    }
}

#[test]
fn a_clean_segment_scans_to_the_end_of_its_data() {
    for pad in [0, 2, 3, 100] {
        let img = image(FOUR, pad);
        for newest in [false, true] {
            let s = scan(&img.bytes, &img.header, newest);
            assert_eq!(taken(&s), expected(&img, FOUR, &[]), "pad {pad}");
            assert!(s.damaged.is_empty(), "pad {pad}: {:?}", s.damaged);
            assert_eq!((s.end, s.torn), (img.data_end, false), "pad {pad}");
            assert!(s.is_clean());
        }
    }
}

#[test]
fn a_damaged_frame_header_is_salvaged_from_its_trailer() {
    let mut img = image(FOUR, 100);
    let f = img.frames[1].clone();
    img.bytes[f.start + HEADER_CRC] ^= 0x01;
    for newest in [false, true] {
        let s = scan(&img.bytes, &img.header, newest);
        assert_eq!(taken(&s), expected(&img, FOUR, &[]), "newest {newest}");
        assert_eq!(
            s.damaged,
            vec![Damaged {
                offset: f.start,
                len: FRAME_HEADER_LEN,
                lost: Some(Vec::new()),
                problem: "a frame header fails its checksum",
            }],
            "newest {newest}"
        );
        assert_eq!((s.end, s.torn), (img.data_end, false));
        assert!(!s.is_clean());
    }
}

#[test]
fn a_damaged_header_of_the_last_frame() {
    let mut img = image(FOUR, 100);
    let f = img.frames[3].clone();
    img.bytes[f.start + HEADER_CRC] ^= 0x01;
    // A sealed segment: the frame is placed by its trailer and salvaged.
    let s = scan(&img.bytes, &img.header, false);
    assert_eq!(taken(&s), expected(&img, FOUR, &[]));
    assert_eq!(
        s.damaged,
        vec![Damaged {
            offset: f.start,
            len: FRAME_HEADER_LEN,
            lost: Some(Vec::new()),
            problem: "a frame header fails its checksum",
        }]
    );
    assert_eq!((s.end, s.torn), (img.data_end, false));
    // The newest segment: perhaps a write torn in flight, so none of it is applied, but
    // its keys are known lost.
    let s = scan(&img.bytes, &img.header, true);
    assert_eq!(taken(&s), expected(&img, FOUR, &[3]));
    assert_eq!(s.damaged.len(), 1);
    assert_eq!(
        (s.damaged[0].offset, s.damaged[0].len),
        (f.start, f.end - f.start)
    );
    assert_eq!(key_hashes(&s.damaged[0].lost), hashes(&["g"]));
    assert_eq!((s.end, s.torn), (img.data_end, false));
}

#[test]
fn a_damaged_record_is_named_by_its_trailer() {
    let mut img = image(FOUR, 100);
    let (e_at, e_len) = img.frames[2].entries[1];
    img.bytes[e_at + e_len - 1] ^= 0x01;
    for newest in [false, true] {
        let s = scan(&img.bytes, &img.header, newest);
        let mut want = expected(&img, FOUR, &[]);
        want.retain(|(_, k)| k != "e");
        assert_eq!(taken(&s), want, "newest {newest}");
        assert_eq!(s.damaged.len(), 1);
        let d = &s.damaged[0];
        assert_eq!(
            (d.offset, d.len, d.problem),
            (e_at, e_len, "a record fails its checksum")
        );
        assert_eq!(key_hashes(&d.lost), hashes(&["e"]));
        assert_eq!((s.end, s.torn), (img.data_end, false));
    }
}

#[test]
fn a_damaged_record_of_the_newest_segments_last_frame_loses_the_frame() {
    let mut img = image(&[&["a"], &["b", "c"]], 100);
    let f = img.frames[1].clone();
    let (e_at, e_len) = f.entries[0];
    img.bytes[e_at + e_len - 1] ^= 0x01;
    let s = scan(&img.bytes, &img.header, true);
    assert_eq!(taken(&s), vec![(img.frames[0].entries[0].0, "a".into())]);
    assert_eq!(s.damaged.len(), 1);
    let d = &s.damaged[0];
    assert_eq!(
        (d.offset, d.len, d.problem),
        (
            f.start,
            f.end - f.start,
            "a record of the last frame fails its checksum"
        )
    );
    assert_eq!(key_hashes(&d.lost), hashes(&["b", "c"]));
    assert_eq!((s.end, s.torn), (img.data_end, false));
    // Its trailer damaged too: nothing names its keys, so it is a torn tail.
    img.bytes[f.trailer] ^= 0x01;
    let s = scan(&img.bytes, &img.header, true);
    assert!(s.damaged.is_empty(), "{:?}", s.damaged);
    assert_eq!((s.end, s.torn), (f.start, true));
}

#[test]
fn a_damaged_trailer_alone_costs_no_record() {
    let mut img = image(FOUR, 100);
    let f = img.frames[1].clone();
    img.bytes[f.trailer] ^= 0x01;
    for newest in [false, true] {
        let s = scan(&img.bytes, &img.header, newest);
        assert_eq!(taken(&s), expected(&img, FOUR, &[]));
        assert_eq!(
            s.damaged,
            vec![Damaged {
                offset: f.trailer,
                len: f.end - f.trailer,
                lost: Some(Vec::new()),
                problem: "a frame trailer fails its checksum (the frame's records are intact)",
            }]
        );
    }
    // The last frame's trailer: damage in a sealed segment, a torn write's tail in the
    // newest (its records checked, so they are kept either way).
    let mut img = image(FOUR, 100);
    let f = img.frames[3].clone();
    img.bytes[f.trailer + 1] ^= 0x01;
    let s = scan(&img.bytes, &img.header, false);
    assert_eq!(taken(&s), expected(&img, FOUR, &[]));
    assert_eq!(s.damaged.len(), 1);
    assert_eq!(
        (s.damaged[0].offset, s.damaged[0].len),
        (f.trailer, f.end - f.trailer)
    );
    let s = scan(&img.bytes, &img.header, true);
    assert_eq!(taken(&s), expected(&img, FOUR, &[]));
    assert!(s.damaged.is_empty(), "{:?}", s.damaged);
}

#[test]
fn a_header_and_a_record_damaged_in_one_frame() {
    let mut img = image(FOUR, 100);
    let f = img.frames[2].clone();
    img.bytes[f.start + HEADER_CRC] ^= 0x01;
    let (e_at, e_len) = f.entries[1];
    img.bytes[e_at + e_len - 1] ^= 0x01;
    let s = scan(&img.bytes, &img.header, false);
    let mut want = expected(&img, FOUR, &[]);
    want.retain(|(_, k)| k != "e");
    assert_eq!(taken(&s), want);
    assert_eq!(s.damaged.len(), 1);
    let d = &s.damaged[0];
    assert_eq!((d.offset, d.len), (f.start, FRAME_HEADER_LEN));
    assert_eq!(key_hashes(&d.lost), hashes(&["e"]));
}

/// An intact entry whose trailer summary names another version (the trailer checks) is
/// not the record the trailer describes: it is not salvaged.
#[test]
fn an_entry_that_disagrees_with_its_summary_is_not_salvaged() {
    let mut img = image(FOUR, 100);
    let f = img.frames[2].clone();
    img.bytes[f.start + HEADER_CRC] ^= 0x01;
    // The version of the last summary (its last field, a one-byte delta).
    img.bytes[f.end - format::TRAILER_END_LEN - 1] ^= 0x40;
    fix_trailer_crc(&mut img.bytes, &f, SALT);
    let s = scan(&img.bytes, &img.header, false);
    let mut want = expected(&img, FOUR, &[]);
    want.retain(|(_, k)| k != "f");
    assert_eq!(taken(&s), want);
    assert_eq!(s.damaged.len(), 1);
    assert_eq!(key_hashes(&s.damaged[0].lost), hashes(&["f"]));
}

#[test]
fn garbage_where_a_frame_was_is_one_damaged_range() {
    let mut img = image(FOUR, 100);
    let f = img.frames[1].clone();
    img.bytes[f.start..f.end].fill(0xAA);
    for newest in [false, true] {
        let s = scan(&img.bytes, &img.header, newest);
        assert_eq!(taken(&s), expected(&img, FOUR, &[1]));
        assert_eq!(
            s.damaged,
            vec![Damaged {
                offset: f.start,
                len: f.end - f.start,
                lost: None,
                problem: "no frame starts here",
            }]
        );
        assert_eq!((s.end, s.torn), (img.data_end, false));
    }
}

#[test]
fn junk_before_a_frame_with_a_damaged_header_is_its_own_range() {
    let junk = [0x11u8; 7];
    let mut img = image_with(FOUR, Some((1, &junk)), 100, SALT);
    let f = img.frames[1].clone();
    img.bytes[f.start + HEADER_CRC] ^= 0x01;
    let s = scan(&img.bytes, &img.header, false);
    assert_eq!(taken(&s), expected(&img, FOUR, &[]));
    assert_eq!(
        s.damaged,
        vec![
            Damaged {
                offset: f.start - junk.len(),
                len: junk.len(),
                lost: None,
                problem: "no frame starts here",
            },
            Damaged {
                offset: f.start,
                len: FRAME_HEADER_LEN,
                lost: Some(Vec::new()),
                problem: "no frame starts here",
            },
        ]
    );
}

/// A trailer that checks but describes a frame reaching back over bytes already taken
/// (here: one claiming a longer body) never places a frame: the range is damage.
#[test]
fn a_trailer_reaching_back_before_the_damage_is_not_used() {
    let mut img = image(FOUR, 100);
    let (f0, f1) = (img.frames[0].clone(), img.frames[1].clone());
    img.bytes[f1.start + HEADER_CRC] ^= 0x01;
    let body_len_at = f1.end - 8;
    let longer = format::read_u32(&img.bytes, body_len_at) as usize + (f0.end - f0.start);
    img.bytes[body_len_at..body_len_at + 4].copy_from_slice(&(longer as u32).to_le_bytes());
    fix_trailer_crc(&mut img.bytes, &f1, SALT);
    assert!(format::trailer_ending_at(&img.bytes, f1.end, SALT, WRITE_LAYOUT).is_some());
    let s = scan(&img.bytes, &img.header, false);
    assert_eq!(taken(&s), expected(&img, FOUR, &[1]));
    assert_eq!(
        s.damaged,
        vec![Damaged {
            offset: f1.start,
            len: f1.end - f1.start,
            lost: None,
            problem: "a frame header fails its checksum",
        }]
    );
}

#[test]
fn non_zero_bytes_after_the_end_of_the_data_are_not_the_end() {
    let mut img = image(FOUR, 100);
    let at = img.data_end + 8;
    img.bytes[at..at + 5].fill(0x55);
    let s = scan(&img.bytes, &img.header, true);
    assert_eq!(taken(&s), expected(&img, FOUR, &[]));
    assert!(s.damaged.is_empty());
    assert_eq!((s.end, s.torn), (img.data_end, true));
}

#[test]
fn a_frame_cut_short_is_a_torn_tail() {
    let img = image(FOUR, 0);
    let f = img.frames[3].clone();
    let cut = &img.bytes[..f.entries[0].0 + 3];
    for newest in [false, true] {
        let s = scan(cut, &img.header, newest);
        assert_eq!(taken(&s), expected(&img, FOUR, &[3]));
        assert!(s.damaged.is_empty());
        assert_eq!((s.end, s.torn), (f.start, true));
    }
}

/// The salt for which the trailer CRC of a frame of `keys` (after `before`) is `target`:
/// CRC-32 run backwards over the trailer bytes (they do not depend on the salt).
fn salt_for_trailer_crc(before: &[&[&str]], keys: &[&str], target: u32) -> u32 {
    let img = image(&[before, &[keys]].concat(), 0);
    let f = img.frames.last().expect("a frame").clone();
    let data = &img.bytes[f.trailer..f.end - 4];
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    // The register after the last byte, then one byte back at a time: the table entry
    // used is the one whose top byte matches.
    let mut reg = !target;
    for &b in data.iter().rev() {
        let idx = table
            .iter()
            .position(|t| t >> 24 == reg >> 24)
            .expect("top bytes are unique") as u32;
        reg = ((reg ^ table[idx as usize]) << 8) | (idx ^ u32::from(b));
    }
    !reg
}

/// Damages the header of the last of two frames whose trailer CRC is `crc`, checks that
/// the trailer ends in `zeros` zero bytes (and not one more), and that the scan still finds
/// it: every record kept, one damaged range (the header), not torn.
fn damaged_last_frame_with_trailer_crc(crc: u32, zeros: usize) {
    let before: &[&[&str]] = &[&["a", "b"]];
    let salt = salt_for_trailer_crc(before, &["c"], crc);
    let mut img = image_with(&[&["a", "b"], &["c"]], None, 100, salt);
    let f = img.frames[1].clone();
    assert_eq!(
        img.bytes[f.end - 4..f.end],
        crc.to_le_bytes(),
        "the trailer CRC"
    );
    assert_eq!(
        img.bytes[f.end - zeros..f.end],
        vec![0; zeros][..],
        "{zeros} zero bytes end the trailer"
    );
    assert_ne!(img.bytes[f.end - zeros - 1], 0);
    img.bytes[f.start + HEADER_CRC] ^= 0x01;
    let s = scan(&img.bytes, &img.header, false);
    assert_eq!(taken(&s), expected(&img, &[&["a", "b"], &["c"]], &[]));
    assert_eq!(s.damaged.len(), 1);
    assert_eq!(
        (s.damaged[0].offset, s.damaged[0].len),
        (f.start, FRAME_HEADER_LEN)
    );
    assert_eq!((s.end, s.torn), (img.data_end, false));
}

/// The trailer of a damaged last frame ends where the non-zero bytes end, or a few
/// bytes later when its CRC ends in zero bytes.
#[test]
fn the_trailer_of_a_damaged_last_frame_is_found_when_its_crc_ends_in_zeros() {
    damaged_last_frame_with_trailer_crc(0x0000_00A7, 3);
}

/// A trailer whose CRC is 0: its last seven bytes are zeros (the CRC and the top three
/// bytes of a short frame's body length), and it is still found.
#[test]
fn the_trailer_of_a_damaged_last_frame_is_found_when_its_crc_is_zero() {
    damaged_last_frame_with_trailer_crc(0, 7);
}

/// A format 1 segment: a 24-byte header without checksum, frames of CRC, length and
/// entries (no magic, no trailer). Returns the bytes and each frame's (start, entries).
fn v1_image(frames: &[&[&str]], pad: usize) -> (Vec<u8>, SegmentHeader, Vec<At>) {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&format::SEGMENT_MAGIC);
    bytes.extend_from_slice(&FORMAT_V1.to_le_bytes());
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    let header = format::decode_segment_header(&bytes).expect("a v1 header");
    let mut version = 1;
    let mut ats = Vec::new();
    for keys in frames {
        let mut body = Vec::new();
        let mut entries = Vec::new();
        let start = bytes.len();
        for key in keys.iter() {
            let meta = EntryMeta {
                op: Op::Put,
                kind: 0,
                horizon: 1,
                version,
                expires_ms: 0,
            };
            version += 1;
            let at = body.len();
            format::encode_v1_entry(&mut body, &meta, b"ns", key.as_bytes(), b"a value");
            entries.push((start + format::V1_FRAME_HEADER_LEN + at, body.len() - at));
        }
        let len_field = (body.len() as u32).to_le_bytes();
        let mut h = crc32fast::Hasher::new();
        h.update(&len_field);
        for (at, _) in &entries {
            let at = at - start - format::V1_FRAME_HEADER_LEN;
            h.update(&body[at..at + 4]);
        }
        bytes.extend_from_slice(&h.finalize().to_le_bytes());
        bytes.extend_from_slice(&len_field);
        bytes.extend_from_slice(&body);
        ats.push(At {
            start,
            entries,
            trailer: bytes.len(),
            end: bytes.len(),
        });
    }
    bytes.resize(bytes.len() + pad, 0);
    (bytes, header, ats)
}

fn v1_expected(frames: &[At], keys: &[&[&str]], skip: &[usize]) -> Vec<(usize, String)> {
    let img = Image {
        bytes: Vec::new(),
        header: SegmentHeader {
            id: 0,
            base_version: 0,
            format: FORMAT_V1,
            salt: 0,
            entry_layout: format::EntryLayout::V1,
        },
        frames: frames.to_vec(),
        data_end: 0,
    };
    expected(&img, keys, skip)
}

#[test]
fn a_clean_v1_segment_scans_to_the_end_of_its_data() {
    for pad in [0, 3, 100] {
        let (bytes, header, frames) = v1_image(FOUR, pad);
        let s = scan(&bytes, &header, false);
        assert_eq!(taken(&s), v1_expected(&frames, FOUR, &[]), "pad {pad}");
        assert!(s.damaged.is_empty());
        assert_eq!((s.end, s.torn), (frames[3].end, false), "pad {pad}");
    }
}

#[test]
fn a_damaged_v1_record_costs_that_record() {
    let (mut bytes, header, frames) = v1_image(FOUR, 100);
    let (e_at, e_len) = frames[2].entries[1];
    bytes[e_at + e_len - 1] ^= 0x01;
    let s = scan(&bytes, &header, false);
    let mut want = v1_expected(&frames, FOUR, &[]);
    want.retain(|(_, k)| k != "e");
    assert_eq!(taken(&s), want);
    assert_eq!(
        s.damaged,
        vec![Damaged {
            offset: e_at,
            len: e_len,
            lost: None,
            problem: "a record fails its checksum",
        }]
    );
    assert_eq!((s.end, s.torn), (frames[3].end, false));
}

#[test]
fn a_damaged_v1_frame_costs_the_bytes_up_to_the_next_frame() {
    let (mut bytes, header, frames) = v1_image(FOUR, 100);
    bytes[frames[1].start] ^= 0x01;
    let s = scan(&bytes, &header, false);
    assert_eq!(taken(&s), v1_expected(&frames, FOUR, &[1]));
    assert_eq!(
        s.damaged,
        vec![Damaged {
            offset: frames[1].start,
            len: frames[1].end - frames[1].start,
            lost: None,
            problem: "a frame fails its checksum",
        }]
    );
    assert_eq!((s.end, s.torn), (frames[3].end, false));
    // The last frame: nothing valid follows, a torn tail.
    let (mut bytes, header, frames) = v1_image(FOUR, 100);
    bytes[frames[3].start] ^= 0x01;
    let s = scan(&bytes, &header, false);
    assert_eq!(taken(&s), v1_expected(&frames, FOUR, &[3]));
    assert!(s.damaged.is_empty());
    assert_eq!((s.end, s.torn), (frames[3].start, true));
}

#[test]
fn non_zero_bytes_after_the_end_of_v1_data_are_not_the_end() {
    let (mut bytes, header, frames) = v1_image(FOUR, 100);
    let at = frames[3].end + 10;
    bytes[at] = 0x55;
    let s = scan(&bytes, &header, false);
    assert_eq!(taken(&s), v1_expected(&frames, FOUR, &[]));
    assert_eq!((s.end, s.torn), (frames[3].end, true));
}
