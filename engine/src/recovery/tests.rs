use std::path::Path;
use std::sync::Arc;

use crate::format::{self, EntryMeta, Op};
use crate::fs::FileSystem;
use crate::sim::SimFs;
use crate::{PutOptions, Store};

fn entry(out: &mut Vec<u8>, op: Op, ns: &[u8], key: &[u8], value: &[u8], version: u64) {
    let meta = EntryMeta {
        op,
        kind: 0,
        horizon: 1,
        version,
        expires_ms: 0,
    };
    format::encode_v1_entry(out, &meta, ns, key, value);
}

/// A store on `fs` in `dir`, without background compaction; `what` names a failed open.
fn open_store(fs: &SimFs, dir: impl AsRef<Path>, what: &str) -> Store {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .compaction_interval(None)
        .open(dir.as_ref())
        .expect(what)
}

fn write(fs: &SimFs, path: &Path, bytes: &[u8]) {
    let f = fs.create(path).expect("create");
    f.write_at(bytes, 0).expect("write");
    f.sync().expect("sync");
    fs.sync_dir(path.parent().expect("in a dir"))
        .expect("sync dir");
}

#[test]
fn segments_are_split_in_two_shares_of_about_equal_size() {
    let (a, b) = super::load::split_by_size(vec![9u64, 9, 9, 2, 1, 1], |&x| x);
    assert_eq!((a, b), (vec![9, 9], vec![9, 2, 1, 1]));
    let (a, b) = super::load::split_by_size(vec![5u64, 1, 4, 2, 3], |&x| x);
    let (sa, sb): (u64, u64) = (a.iter().sum(), b.iter().sum());
    assert_eq!((sa, sb, a.len() + b.len()), (8, 7, 5));
    let (a, b) = super::load::split_by_size(vec![7u64], |&x| x);
    assert_eq!((a, b), (vec![7], vec![]));
}

/// Every namespace's items (key, value, version) and the store's byte counts.
type Snapshot = (Vec<(Vec<u8>, Vec<u8>, Vec<u8>, u64)>, u64, u64, u64);

fn snapshot(store: &Store) -> Snapshot {
    let mut items = Vec::new();
    for ns in store.namespaces(b"") {
        for key in store.keys(&ns.name) {
            let item = store.get(&ns.name, &key).expect("read").expect("listed");
            items.push((ns.name.clone(), key, item.value.to_vec(), item.version));
        }
    }
    items.sort();
    let stats = store.stats();
    (items, stats.items, stats.live_bytes, stats.dead_bytes)
}

/// Hinted segments are split between two threads, whose replays are merged; what that
/// gives must be what one thread scanning every segment gives: the same items, versions
/// and live and dead bytes. The store has overwrites and removals across segments, a
/// cleared and a dropped namespace, and some hints damaged (those segments are scanned,
/// mixed with hinted ones).
#[test]
fn reopening_from_hints_on_two_threads_matches_scanning_every_segment() {
    let fs = SimFs::new();
    let dir = Path::new("/split");
    let open = || {
        Store::builder()
            .file_system(Arc::new(fs.clone()))
            .compaction_interval(None)
            .segment_size(4096)
            .open(dir)
            .expect("opens")
    };
    {
        let store = open();
        for i in 0..3_000u64 {
            let ns: &[u8] = [b"a", b"b", b"c"][(i % 3) as usize];
            let key = format!("k{}", i % 700);
            if i % 11 == 0 {
                store.delete(ns, key.as_bytes()).expect("delete");
            } else {
                let value = format!("v{i}").repeat((i % 5 + 1) as usize);
                let options = PutOptions::default();
                store
                    .put(ns, key.as_bytes(), value.as_bytes(), options)
                    .expect("put");
            }
            if i == 1_500 {
                store.clear_namespace(b"b").expect("clear");
            }
            if i == 2_000 {
                store.drop_namespace(b"c").expect("drop");
            }
        }
    }
    let hints = |fs: &SimFs| -> Vec<String> {
        let mut names = fs.list(dir).expect("list");
        names.retain(|n| n.ends_with(".hint"));
        names.sort();
        names
    };
    let from_hints = {
        let store = open();
        let report = store.recovery_report();
        assert!(report.segments_from_hints >= 20, "{report:?}");
        assert_eq!(report.segments_scanned, 0, "{report:?}");
        snapshot(&store)
    };
    assert!(
        from_hints.0.len() > 600,
        "items survive: {}",
        from_hints.0.len()
    );
    // Some hints damaged: their segments are scanned, the others still hinted.
    for name in hints(&fs).iter().step_by(5) {
        let path = dir.join(name);
        let mut bytes = fs.read(&path).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x20;
        fs.remove(&path).expect("remove");
        write(&fs, &path, &bytes);
    }
    let mixed = {
        let store = open();
        let report = store.recovery_report();
        assert!(report.segments_scanned >= 4, "{report:?}");
        assert!(report.segments_from_hints >= 16, "{report:?}");
        snapshot(&store)
    };
    assert_eq!(mixed, from_hints);
    for name in hints(&fs) {
        fs.remove(&dir.join(name)).expect("remove hint");
    }
    let scanned = {
        let store = open();
        let report = store.recovery_report();
        assert_eq!(report.segments_from_hints, 0, "{report:?}");
        snapshot(&store)
    };
    assert_eq!(scanned, from_hints);
}

/// A data directory written by the format 1 release opens in place, keeps every item and
/// version, and compaction rewrites it in format 2.
#[test]
fn a_format_1_dir_opens_in_place_and_compaction_upgrades_it() {
    let fs = SimFs::new();
    let mut seg = format::encode_v1_segment_header(1, 1);
    let mut frame = Vec::new();
    entry(&mut frame, Op::CreateNamespace, b"ns", b"", b"", 1);
    entry(&mut frame, Op::Put, b"ns", b"a", b"old", 2);
    seg.extend_from_slice(&format::encode_v1_frame(&frame));
    let mut frame = Vec::new();
    entry(&mut frame, Op::Put, b"ns", b"b", b"kept", 3);
    entry(&mut frame, Op::Put, b"ns", b"a", b"new", 4);
    seg.extend_from_slice(&format::encode_v1_frame(&frame));
    write(&fs, Path::new("/v1/0000000001.seg"), &seg);
    let open = || open_store(&fs, "/v1", "a format 1 dir opens");
    let store = open();
    assert!(store.recovery_report().is_clean());
    let a = store.get(b"ns", b"a").expect("read").expect("a");
    assert_eq!((&a.value[..], a.version), (&b"new"[..], 4));
    let b = store.get(b"ns", b"b").expect("read").expect("b");
    assert_eq!((&b.value[..], b.version), (&b"kept"[..], 3));
    assert!(
        store
            .put(b"ns", b"c", b"v5", PutOptions::default())
            .expect("put")
            > 4
    );
    let report = store.compact().expect("compact");
    assert_eq!(report.segments_rewritten, 1, "{report:?}");
    drop(store);
    let names = fs.list(Path::new("/v1")).expect("list");
    assert!(!names.iter().any(|n| n == "0000000001.seg"), "{names:?}");
    for name in names.iter().filter(|n| n.ends_with(".seg")) {
        let bytes = fs.read(&Path::new("/v1").join(name)).expect("read");
        let h = format::decode_segment_header(&bytes).expect("header");
        assert_eq!(
            h.format,
            format::FORMAT_VERSION,
            "{name} rewritten in format 2"
        );
    }
    let store = open();
    assert_eq!(
        &store.get(b"ns", b"a").expect("read").expect("a").value[..],
        b"new"
    );
    assert_eq!(store.get(b"ns", b"b").expect("read").expect("b").version, 3);
    assert_eq!(
        &store.get(b"ns", b"c").expect("read").expect("c").value[..],
        b"v5"
    );
}

/// A data directory as the release before entry layout 2 left it: format 2 segments in
/// entry layout 1, with hints of version 1 and 2. It opens in place from its hints,
/// reads back, takes writes in layout 2 beside it, and compaction moves its records into
/// layout 2 segments that read back after a reopen.
#[test]
fn an_entry_layout_1_dir_opens_in_place_from_its_hints_and_compaction_upgrades_it() {
    use crate::format::{EntryLayout, SegmentHeader};
    use crate::hint::{HintEntry, HintWriter};
    let fs = SimFs::new();
    let dir = Path::new("/l1");
    let salt = 0x0BAD_5EED;
    let mut version = 1;
    for id in 1..=3u32 {
        let mut seg = format::encode_segment_header(&SegmentHeader {
            id,
            base_version: version,
            format: format::FORMAT_VERSION,
            salt,
            entry_layout: EntryLayout::V1,
        })
        .to_vec();
        let mut records = Vec::new();
        for frame in 0..4u32 {
            let mut body = Vec::new();
            if id == 1 && frame == 0 {
                entry(&mut body, Op::CreateNamespace, b"ns", b"", b"", version);
                version += 1;
            }
            for k in 0..5u32 {
                let key = (id * 100 + frame * 10 + k).to_be_bytes();
                let value = vec![id as u8; 30 + k as usize];
                entry(&mut body, Op::Put, b"ns", &key, &value, version);
                version += 1;
            }
            // Keys of segment 1 are written again in segment 3: compaction has dead
            // records to drop there.
            if id == 3 {
                let key = (100 + frame * 10).to_be_bytes();
                entry(&mut body, Op::Put, b"ns", &key, b"newer", version);
                version += 1;
            }
            let at = seg.len() + 12;
            seg.extend_from_slice(&format::encode_layout1_frame(&body, salt));
            let mut off = 0;
            while off < body.len() {
                let e = format::decode_entry(&body[off..], EntryLayout::V1, id).expect("entry");
                records.push((at + off, e.meta, e.key.to_vec(), e.len));
                off += e.len;
            }
        }
        write(&fs, &dir.join(crate::segment::segment_file_name(id)), &seg);
        if id < 3 {
            let entries: Vec<HintEntry<'_>> = records
                .iter()
                .map(|(at, meta, key, len)| HintEntry {
                    offset: *at as u32,
                    meta: *meta,
                    namespace: b"ns",
                    key,
                    len: *len as u32,
                    shape: format::Shape::default(),
                })
                .collect();
            let hint = if id == 1 {
                crate::hint::encode_v1(id, seg.len() as u64, &entries)
            } else {
                let mut w = HintWriter::new(id, seg.len() as u64, EntryLayout::V1);
                for e in &entries {
                    w.push(e);
                }
                w.finish()
            };
            write(&fs, &dir.join(crate::segment::hint_file_name(id)), &hint);
        }
    }
    let open = || open_store(&fs, dir, "a layout 1 dir opens");
    let check = |store: &Store| {
        for id in 1..=3u32 {
            for frame in 0..4u32 {
                for k in 0..5u32 {
                    let key = (id * 100 + frame * 10 + k).to_be_bytes();
                    let item = store.get(b"ns", &key).expect("read").expect("item");
                    let want = if id == 1 && k == 0 {
                        b"newer".to_vec()
                    } else {
                        vec![id as u8; 30 + k as usize]
                    };
                    assert_eq!(item.value.to_vec(), want, "key {key:?}");
                }
            }
        }
    };
    let store = open();
    let report = store.recovery_report();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.segments_from_hints, 2, "{report:?}");
    check(&store);
    store
        .put(b"ns", b"fresh", b"in layout 2", PutOptions::default())
        .expect("put");
    let compacted = store.compact().expect("compact");
    assert!(compacted.segments_rewritten >= 1, "{compacted:?}");
    check(&store);
    drop(store);
    let layouts: Vec<_> = fs
        .list(dir)
        .expect("list")
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .map(|n| {
            let bytes = fs.read(&dir.join(&n)).expect("read");
            (
                n,
                format::decode_segment_header(&bytes)
                    .expect("header")
                    .entry_layout,
            )
        })
        .collect();
    assert!(
        layouts.iter().any(|(_, l)| *l == EntryLayout::V3),
        "{layouts:?}"
    );
    let store = open();
    assert!(store.recovery_report().is_clean());
    check(&store);
    assert_eq!(
        &store
            .get(b"ns", b"fresh")
            .expect("read")
            .expect("fresh")
            .value[..],
        b"in layout 2"
    );
}

/// Segment ids are never reused for a horizon a record names: a record written when
/// segment 5 existed keeps horizon 5 after segments 2 to 5 are gone, so the next open
/// starts above it (an output segment 5 would hold a copy whose written horizon is its
/// own id; the model test found that reuse).
#[test]
fn new_segments_take_ids_above_every_horizon() {
    let fs = SimFs::new();
    let dir = Path::new("/h");
    let mut seg = format::encode_segment_header(&format::SegmentHeader {
        id: 1,
        base_version: 1,
        format: format::FORMAT_VERSION,
        salt: 7,
        entry_layout: format::WRITE_LAYOUT,
    })
    .to_vec();
    let mut frame = Vec::new();
    let start = format::begin_frame(&mut frame);
    let meta = |op, version| EntryMeta {
        op,
        kind: 0,
        horizon: 5,
        version,
        expires_ms: 0,
    };
    let mut names = format::FrameNames::for_segment(1);
    names.encode(&mut frame, &meta(Op::CreateNamespace, 1), b"ns", b"", b"");
    names.encode(&mut frame, &meta(Op::Put, 2), b"ns", b"k", b"kept");
    format::finish_frame(&mut frame, start, 7);
    seg.extend_from_slice(&frame);
    write(&fs, &dir.join(crate::segment::segment_file_name(1)), &seg);
    let open = || open_store(&fs, dir, "open");
    let store = open();
    store
        .put(b"ns", b"new", b"v", PutOptions::default())
        .expect("put");
    store.compact().expect("compact");
    drop(store);
    let ids: Vec<u32> = fs
        .list(dir)
        .expect("list")
        .iter()
        .filter_map(|n| n.strip_suffix(".seg")?.parse().ok())
        .collect();
    assert!(ids.iter().all(|&id| id == 1 || id > 5), "{ids:?}");
    let store = open();
    assert_eq!(
        &store.get(b"ns", b"k").expect("read").expect("k").value[..],
        b"kept"
    );
    assert_eq!(
        &store.get(b"ns", b"new").expect("read").expect("new").value[..],
        b"v"
    );
}

/// Versions are never given twice, even when no record holding the newest ones is left:
/// a segment's header keeps the store's next version when it was made, and a reopen
/// starts above it (a client's old `cas` must never match another write).
#[test]
fn versions_stay_above_every_segment_base_after_the_records_are_gone() {
    let fs = SimFs::new();
    let dir = Path::new("/v");
    let base = 1_000;
    let seg = format::encode_segment_header(&format::SegmentHeader {
        id: 1,
        base_version: base,
        format: format::FORMAT_VERSION,
        salt: 7,
        entry_layout: format::WRITE_LAYOUT,
    });
    write(&fs, &dir.join(crate::segment::segment_file_name(1)), &seg);
    let store = open_store(&fs, dir, "open");
    let version = store
        .put(b"ns", b"k", b"v", PutOptions::default())
        .expect("put");
    assert!(version > base, "version {version} after base {base}");
}

/// A hint whose CRC checks but whose last record points past its segment's data (a hint
/// written wrong, or forged) is not used: its segment is scanned, so no record is left
/// out of the index.
#[test]
fn a_hint_with_a_record_past_its_segment_is_not_used_even_with_a_good_crc() {
    let fs = SimFs::new();
    let dir = Path::new("/past");
    {
        let store = open_store(&fs, dir, "open");
        for i in 0..20u8 {
            store
                .put(b"ns", &[b'k', i], &[i; 50], PutOptions::default())
                .expect("put");
        }
    }
    crate::hint::rewrite_the_hint(&fs, dir, |entries, data_len| {
        let last = entries.last_mut().expect("records");
        last.offset = u32::try_from(data_len).expect("small");
    });
    let store = open_store(&fs, dir, "reopen");
    let report = store.recovery_report();
    assert_eq!(report.segments_from_hints, 0, "{report:?}");
    for i in 0..20u8 {
        let item = store.get(b"ns", &[b'k', i]).expect("read").expect("item");
        assert_eq!(item.value[..], [i; 50]);
    }
}

/// A hint whose CRC, segment id and length check but whose first or last record names
/// another intact entry than the one its segment holds there (a hint of another data dir's
/// segment) is not used: its segment is scanned, and every key reads its value. Taken at
/// its word, the keys it did not name read as misses and compaction dropped them.
#[test]
fn a_hint_naming_other_records_than_its_segments_is_not_used() {
    type Edit = fn(&mut Vec<crate::hint::HintEntry<'_>>);
    let edits: [(&str, Edit); 5] = [
        // Another store's puts after the same namespace record: that record is applied
        // before the first put is found to be another's, and the hint must still be
        // ignored as a whole, not distrusted as damaged (which marks what it names lost).
        ("versions of the puts", |entries| {
            for e in entries.iter_mut().filter(|e| !e.key.is_empty()) {
                e.meta.version += 1000;
            }
        }),
        // Read at the hint's length, the longer entry there failed its check and told
        // nothing.
        ("first length", |entries| {
            let first = entries
                .iter_mut()
                .find(|e| !e.key.is_empty())
                .expect("a put");
            first.len -= 10;
        }),
        ("first key", |entries| {
            let first = entries
                .iter_mut()
                .find(|e| !e.key.is_empty())
                .expect("a put");
            first.key = b"kX";
        }),
        ("last key", |entries| {
            entries.last_mut().expect("records").key = b"kY";
        }),
        ("last version", |entries| {
            entries.last_mut().expect("records").meta.version += 1000;
        }),
    ];
    for (what, edit) in edits {
        let fs = SimFs::new();
        let dir = Path::new("/foreign");
        {
            let store = open_store(&fs, dir, "open");
            for i in 0..20u8 {
                store
                    .put(b"ns", &[b'k', i], &[i; 50], PutOptions::default())
                    .expect("put");
            }
        }
        crate::hint::rewrite_the_hint(&fs, dir, |entries, _| edit(entries));
        let store = open_store(&fs, dir, "reopen");
        let report = store.recovery_report();
        assert_eq!(report.segments_from_hints, 0, "{what}: {report:?}");
        assert!(
            report.ignored_files.iter().any(|f| f.contains(".hint")),
            "{what}: the ignored hint is reported: {report:?}"
        );
        assert!(report.damaged.is_empty(), "{what}: {report:?}");
        assert_eq!(report.keys_lost, 0, "{what}: {report:?}");
        for i in 0..20u8 {
            let item = store.get(b"ns", &[b'k', i]).expect("read").expect(what);
            assert_eq!(item.value[..], [i; 50]);
        }
    }
}

/// The same record in two segments (a compaction output whose input a crash kept), and
/// the copy in the older one damaged: the intact copy serves the key, it is not lost.
#[test]
fn an_intact_copy_of_a_damaged_record_serves_its_key() {
    let fs = SimFs::new();
    let dir = Path::new("/dup");
    let open = || open_store(&fs, dir, "open");
    {
        let store = open();
        store
            .put(b"ns", b"a", &[0xAB; 100], PutOptions::default())
            .expect("put");
        store
            .put(b"ns", b"b", &[0xCD; 100], PutOptions::default())
            .expect("put");
    }
    let names = fs.list(dir).expect("list");
    let (name, mut bytes) = names
        .iter()
        .filter(|n| n.ends_with(".seg"))
        .map(|n| (n.clone(), fs.read(&dir.join(n)).expect("read")))
        .find(|(_, b)| b.windows(100).any(|w| w == [0xAB; 100]))
        .expect("the segment holding a");
    for n in names.iter().filter(|n| n.ends_with(".hint")) {
        fs.remove(&dir.join(n)).expect("remove hint");
    }
    // The copy: the same bytes under a later id.
    let mut header = format::decode_segment_header(&bytes).expect("header");
    header.id = 50;
    let mut copy = bytes.clone();
    copy[..format::SEGMENT_HEADER_LEN].copy_from_slice(&format::encode_segment_header(&header));
    let copy_path = dir.join(crate::segment::segment_file_name(50));
    let f = fs.create(&copy_path).expect("create");
    f.write_at(&copy, 0).expect("write");
    f.sync().expect("sync");
    // One flipped byte in a's value in the original.
    let at = bytes
        .windows(100)
        .position(|w| w == [0xAB; 100])
        .expect("a's value");
    bytes[at + 50] ^= 0x01;
    let f = fs.open(&dir.join(&name)).expect("open segment");
    f.write_at(&bytes, 0).expect("write");
    f.sync().expect("sync");
    fs.sync_dir(dir).expect("sync dir");

    let store = open();
    let report = store.recovery_report();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.keys_lost, 0, "{report:?}");
    let a = store.get(b"ns", b"a").expect("a is not lost").expect("a");
    assert_eq!(&a.value[..], &[0xAB; 100][..]);
    let b = store.get(b"ns", b"b").expect("read").expect("b");
    assert_eq!(&b.value[..], &[0xCD; 100][..]);
}
