//! Fuzz harnesses: one plain function per target of the `fuzz/` crate, so that the fuzzer
//! and `cargo test` (which replays `fuzz/corpus/<target>/*` through the same functions, on
//! stable) run the same code. Compiled for tests and with the `fuzzing` feature; not a
//! stable API.
//!
//! Each harness panics only on a real bug: a decoder that panics or accepts bytes it would
//! not have written, a recovery that panics, or a store that disagrees with its model.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::format::{self, EntryLayout, SEGMENT_HEADER_LEN, V1_ENTRY_HEADER_LEN};
use crate::hint::{HintEntry, HintWriter};
use crate::segment;
use crate::sim::{SimFs, Torn};
use crate::{Condition, IncrementError, ManualClock, PutOptions, Store, WriteBatch};

pub use crate::format::{
    decode_entry, decode_segment_header, decode_v1_frame, decode_v2_frame, frame_entries,
    DecodeError,
};
pub use crate::hint::decode as decode_hint_file;

/// The data directory harnesses use on a [`SimFs`].
const DIR: &str = "/data";
/// A fixed clock: the harnesses do not test expiry.
const NOW_MS: u64 = 1_700_000_000_000;

/// Reads bytes off the fuzzer's input; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The salt of the segments the harnesses build (a store's own segments use a random one).
const FUZZ_SALT: u32 = 0;

/// Rewrites the CRCs of the entries laid back to back in `body` (as far as their lengths
/// reach), so that the fuzzer gets past the checksums to the fields.
fn fix_entry_crcs(body: &mut [u8], layout: EntryLayout) {
    let mut at = 0;
    while body.len() - at >= V1_ENTRY_HEADER_LEN.min(8) {
        let Some(len) = format::entry_len_at(&body[at..], layout) else {
            return;
        };
        if len > body.len() - at || len < 4 {
            return;
        }
        let crc = crc32fast::hash(&body[at + 4..at + len]);
        body[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        at += len;
    }
}

/// Wraps `body` in a frame of `layout` with a correct length and CRC, after fixing its
/// entries' CRCs.
fn frame_around(body: &[u8], layout: EntryLayout) -> Vec<u8> {
    let mut body = body.to_vec();
    fix_entry_crcs(&mut body, layout);
    match layout {
        EntryLayout::V1 => format::encode_layout1_frame(&body, FUZZ_SALT),
        EntryLayout::V2 | EntryLayout::V3 => {
            let mut out = Vec::with_capacity(format::FRAME_HEADER_LEN + body.len());
            let start = format::begin_frame(&mut out);
            out.extend_from_slice(&body);
            format::finish_frame_in(&mut out, start, FUZZ_SALT, layout);
            out
        }
    }
}

/// The segment id the harnesses decode entries in (a layout 3 entry may leave its horizon
/// to it).
const FUZZ_SEGMENT: u32 = 1;

/// Checks that a decoded entry is exactly what encoding its fields gives back.
fn check_entry_round_trip(bytes: &[u8], e: &format::EntryRef<'_>, layout: EntryLayout) {
    let mut again = Vec::new();
    match layout {
        EntryLayout::V1 => {
            format::encode_v1_entry(&mut again, &e.meta, e.namespace, e.key, e.value)
        }
        EntryLayout::V2 => {
            format::encode_layout2_entry(&mut again, &e.meta, e.namespace, e.key, e.value)
        }
        EntryLayout::V3 => {
            let form = match (e.ns_id, e.ns_inline) {
                (None, _) => format::NsForm::Inline,
                (Some(id), true) => format::NsForm::Define(id),
                (Some(id), false) => format::NsForm::Id(id),
            };
            // The same choice of horizon: left out, or written (any other segment id).
            let segment = if e.implied_horizon {
                FUZZ_SEGMENT
            } else {
                e.meta.horizon.wrapping_add(1)
            };
            format::encode_entry_as(
                &mut again,
                &e.meta,
                form,
                segment,
                e.namespace,
                e.key,
                e.value,
            );
        }
    }
    assert_eq!(again.len(), e.len, "entry length");
    let from_fields = match layout {
        EntryLayout::V1 => format::entry_len(
            layout,
            &e.meta,
            e.namespace.len(),
            e.key.len(),
            e.value.len(),
        ),
        EntryLayout::V2 => {
            format::layout2_entry_len(&e.meta, e.namespace.len(), e.key.len(), e.value.len())
        }
        // An id-only entry's namespace is empty when it is decoded alone; its shape says so.
        EntryLayout::V3 => format::v2_entry_len(
            &e.meta,
            e.shape(),
            e.namespace.len(),
            e.key.len(),
            e.value.len(),
        ),
    };
    assert_eq!(from_fields, e.len, "entry length from its fields and shape");
    let decoded =
        format::decode_entry(&again, layout, FUZZ_SEGMENT).expect("a re-encoded entry decodes");
    assert_eq!(decoded.meta, e.meta);
    assert_eq!(
        (decoded.key, decoded.value, decoded.shape()),
        (e.key, e.value, e.shape())
    );
    // In layout 1 the reserved field is the only one decoding does not look at; layouts 2
    // and 3 have one encoding per entry.
    if layout != EntryLayout::V1 || bytes[20..24] == [0; 4] {
        assert_eq!(&again[..], &bytes[..e.len], "entry bytes round trip");
    }
}

/// The entry layout a harness's mode byte picks: layout 1 for 0 to 2 and every other three
/// after; else layout 2 from 128 up, layout 3 below.
fn layout_of(mode: u8) -> EntryLayout {
    if (mode / 3).is_multiple_of(2) {
        EntryLayout::V1
    } else if mode >= 0x80 {
        EntryLayout::V2
    } else {
        EntryLayout::V3
    }
}

/// Target `decode_record`: segment header, frame and entry decoding of arbitrary bytes. The
/// first byte picks raw bytes, or bytes whose entry and frame CRCs the harness fixes (modulo
/// 3), and the entry layout ([`layout_of`]).
pub fn decode_record(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if let Ok(h) = format::decode_segment_header(rest) {
        if h.format == format::FORMAT_VERSION {
            // One of the two copies checked, and both are the same when written.
            let again = format::encode_segment_header(&h);
            assert!(
                rest.len() < SEGMENT_HEADER_LEN
                    || again[..SEGMENT_HEADER_LEN / 2] == rest[..SEGMENT_HEADER_LEN / 2]
                    || again[SEGMENT_HEADER_LEN / 2..]
                        == rest[SEGMENT_HEADER_LEN / 2..SEGMENT_HEADER_LEN]
            );
        }
    }
    let layout = layout_of(mode);
    let fixed;
    let bytes = match mode % 3 {
        0 => rest,
        1 => {
            fixed = {
                let mut b = rest.to_vec();
                fix_entry_crcs(&mut b, layout);
                b
            };
            &fixed[..]
        }
        _ => {
            fixed = frame_around(rest, layout);
            &fixed[..]
        }
    };
    if let Ok(e) = format::decode_entry(bytes, layout, FUZZ_SEGMENT) {
        assert!(e.len <= bytes.len());
        check_entry_round_trip(bytes, &e, layout);
    }
    match format::decode_v2_frame(bytes, FUZZ_SALT, layout) {
        Ok(frame) => {
            assert!(frame.total >= layout.frame_header_len() + frame.body.len());
            let mut end = 0;
            for item in format::frame_entries(frame.body, layout, FUZZ_SEGMENT) {
                let Ok((at, e)) = item else { break };
                assert_eq!(at, end, "entries are back to back");
                assert!(at + e.len <= frame.body.len());
                check_entry_round_trip(&frame.body[at..], &e, layout);
                end = at + e.len;
            }
        }
        Err(DecodeError::End) => assert!(bytes.len() < 4 || bytes[..4] == [0; 4]),
        Err(_) => {}
    }
    if let Ok((body, total)) = format::decode_v1_frame(bytes) {
        assert!(total <= bytes.len() && total == format::V1_FRAME_HEADER_LEN + body.len());
    }
    // The damage scan of the same bytes as a segment body: never panics, never reads past.
    for (format, entry_layout, newest) in [
        (format::FORMAT_VERSION, layout, true),
        (format::FORMAT_VERSION, layout, false),
        (format::FORMAT_V1, EntryLayout::V1, false),
    ] {
        let header = format::SegmentHeader {
            id: 1,
            base_version: 1,
            format,
            salt: FUZZ_SALT,
            entry_layout,
        };
        let scanned = crate::scan::scan(bytes, &header, newest);
        assert!(scanned.end <= bytes.len());
        for (at, e) in &scanned.records {
            assert!(at + e.len <= bytes.len());
        }
    }
}

/// Target `decode_hint`: hint-file decoding. The first byte picks raw bytes, or bytes the
/// harness gives a valid header (version 1, or the version of the layout [`layout_of`]
/// picks) and CRC. A hint that decodes must read back
/// the same entries once written again.
pub fn decode_hint(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 3 == 0 {
        rest.to_vec()
    } else {
        // A real header (segment id and data length from the input; for version 2 also the
        // record and namespace counts), then the table and records from the input.
        let mut input = Input(rest);
        let id = u32::from(input.u16());
        let data_len = u64::from(input.u16());
        let mut b = if mode % 3 == 1 {
            crate::hint::encode_v1(id, data_len, &[])
        } else {
            HintWriter::new(id, data_len, layout_of(mode)).finish()
        };
        b.truncate(b.len() - 4);
        if mode % 3 == 2 {
            let records = u32::from(input.u16());
            let namespaces = u32::from(input.u8());
            let at = b.len() - 8;
            b[at..at + 4].copy_from_slice(&records.to_le_bytes());
            b[at + 4..].copy_from_slice(&namespaces.to_le_bytes());
        }
        b.extend_from_slice(input.0);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    };
    let Ok(hint) = crate::hint::decode(&bytes) else {
        return;
    };
    let entries: Result<Vec<HintEntry<'_>>, _> = hint.entries().collect();
    let Ok(entries) = entries else { return };
    let mut again = HintWriter::new(hint.segment_id, hint.data_len, hint.layout);
    for e in &entries {
        again.push(e);
    }
    // Written again (as the current version), the hint reads back the same entries.
    let again = again.finish();
    let reread = crate::hint::decode(&again).expect("a written hint decodes");
    assert_eq!(
        (reread.segment_id, reread.data_len),
        (hint.segment_id, hint.data_len)
    );
    let reread: Vec<HintEntry<'_>> = reread
        .entries()
        .collect::<Result<_, _>>()
        .expect("a written hint's entries decode");
    assert_eq!(reread, entries, "hint round trip");
}

/// Target `recover_image`: the input is a data directory image (segment, hint and tmp files
/// written into a [`SimFs`]); opening it must not panic, and every listed key must read
/// without panicking. A store that opens must also take a write and reopen with it.
pub fn recover_image(data: &[u8]) {
    let fs = SimFs::new();
    let dir = Path::new(DIR);
    let mut input = Input(data);
    let mut files = 0;
    while !input.is_empty() && files < 8 {
        files += 1;
        let tag = input.u8();
        let id = u32::from(tag & 0x0f);
        let name = match (tag >> 4) & 0x3 {
            0 | 1 => segment::segment_file_name(id),
            2 => segment::hint_file_name(id),
            _ => format!("{id:010}.tmp"),
        };
        let fixups = tag & 0x40 != 0;
        let len = usize::from(input.u16());
        let body = input.take(len);
        let mut bytes = Vec::new();
        if fixups && name.ends_with(".seg") {
            // A valid header and CRC-correct frames, so recovery reads the entries.
            bytes.extend_from_slice(&format::encode_segment_header(&format::SegmentHeader {
                id,
                base_version: 1,
                format: format::FORMAT_VERSION,
                salt: FUZZ_SALT,
                entry_layout: format::WRITE_LAYOUT,
            }));
            let mut chunks = Input(body);
            while !chunks.is_empty() {
                let n = usize::from(chunks.u8()) + 1;
                bytes.extend_from_slice(&frame_around(chunks.take(n), format::WRITE_LAYOUT));
            }
        } else if fixups && name.ends_with(".hint") {
            bytes = HintWriter::new(id, u64::from(tag), format::WRITE_LAYOUT).finish();
            bytes.truncate(bytes.len() - 4);
            bytes.extend_from_slice(body);
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
        } else {
            bytes.extend_from_slice(body);
        }
        write_file(&fs, &dir.join(name), &bytes);
    }
    let Ok(store) = open_sim(&fs) else { return };
    read_everything(&store);
    let version = store.put(b"fuzz", b"after", b"recovery", PutOptions::default());
    drop(store);
    let store = open_sim(&fs).expect("a store that opened reopens after a clean close");
    read_everything(&store);
    if let Ok(version) = version {
        let item = store
            .get(b"fuzz", b"after")
            .expect("read")
            .expect("the acknowledged write");
        assert_eq!((&item.value[..], item.version), (&b"recovery"[..], version));
    }
}

fn write_file(fs: &SimFs, path: &Path, bytes: &[u8]) {
    use crate::fs::FileSystem;
    if let Ok(f) = fs.create(path) {
        let _ = f.write_at(bytes, 0);
        let _ = f.sync();
    }
    let _ = fs.sync_dir(Path::new(DIR));
}

fn open_sim(fs: &SimFs) -> Result<Store, crate::OpenError> {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .segment_size(crate::MIN_SEGMENT_SIZE)
        .compaction_interval(None)
        .clock(ManualClock::new(NOW_MS))
        .open(DIR)
}

fn read_everything(store: &Store) {
    for info in store.namespaces(b"") {
        for key in store.keys(&info.name) {
            let _ = store.get(&info.name, &key);
        }
    }
    let _ = store.stats();
}

/// The model: namespace → key → (value, kind).
type Model = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, (Vec<u8>, u8)>>;

const NAMESPACES: [&[u8]; 3] = [b"alpha", b"beta", b"gamma"];

/// One operation of the model target.
#[derive(Debug, Clone)]
enum ModelOp {
    Put(usize, Vec<u8>, Vec<u8>, u8),
    PutIfAbsent(usize, Vec<u8>, Vec<u8>),
    Delete(usize, Vec<u8>),
    Increment(usize, Vec<u8>, i64),
    Clear(usize),
    Drop(usize),
    Batch(usize, Vec<u8>, Vec<u8>, Vec<u8>),
    Compact,
    Reopen,
}

fn next_op(input: &mut Input<'_>) -> ModelOp {
    let op = input.u8();
    let ns = usize::from(input.u8()) % NAMESPACES.len();
    let key = format!("k{}", input.u8() % 12).into_bytes();
    let value = |input: &mut Input<'_>| {
        let b = input.u8();
        if b.is_multiple_of(4) {
            format!("{}", b / 4).into_bytes() // a number, for increments
        } else {
            vec![b; usize::from(b) * 3] // long enough to roll 4 KiB segments over
        }
    };
    match op % 10 {
        0 | 1 => ModelOp::Put(ns, key, value(input), op >> 7),
        2 => ModelOp::PutIfAbsent(ns, key, value(input)),
        3 => ModelOp::Delete(ns, key),
        4 => ModelOp::Increment(ns, key, i64::from(input.u8() as i8)),
        5 => ModelOp::Clear(ns),
        6 => ModelOp::Drop(ns),
        7 => {
            let other = format!("k{}", input.u8() % 12).into_bytes();
            ModelOp::Batch(ns, key, value(input), other)
        }
        8 => ModelOp::Compact,
        _ => ModelOp::Reopen,
    }
}

/// Applies `op` to the model; returns what the store must answer where it is decided.
fn apply(model: &mut Model, op: &ModelOp) -> Option<Result<i64, ()>> {
    fn ns_map(model: &mut Model, ns: usize) -> &mut BTreeMap<Vec<u8>, (Vec<u8>, u8)> {
        model.entry(NAMESPACES[ns].to_vec()).or_default()
    }
    match op {
        ModelOp::Put(ns, k, v, kind) => {
            ns_map(model, *ns).insert(k.clone(), (v.clone(), *kind));
        }
        ModelOp::PutIfAbsent(ns, k, v) => {
            let m = ns_map(model, *ns);
            let absent = !m.contains_key(k);
            if absent {
                m.insert(k.clone(), (v.clone(), 0));
            }
            return Some(if absent { Ok(1) } else { Ok(0) });
        }
        ModelOp::Delete(ns, k) => {
            return Some(Ok(i64::from(ns_map(model, *ns).remove(k).is_some())));
        }
        ModelOp::Increment(ns, k, delta) => {
            let m = ns_map(model, *ns);
            let (current, kind) = match m.get(k) {
                Some((v, kind)) => {
                    let s = std::str::from_utf8(v).ok();
                    let digits = s.map(|s| s.strip_prefix('-').unwrap_or(s));
                    match (s, digits) {
                        (Some(s), Some(d))
                            if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            (s.parse::<i64>().map_err(|_| ()), *kind)
                        }
                        _ => return Some(Err(())),
                    }
                }
                None => (Ok(0), 0),
            };
            let next = current.and_then(|c| c.checked_add(*delta).ok_or(()));
            if let Ok(n) = next {
                m.insert(k.clone(), (n.to_string().into_bytes(), kind));
            }
            return Some(next);
        }
        ModelOp::Clear(ns) | ModelOp::Drop(ns) => {
            ns_map(model, *ns).clear();
        }
        ModelOp::Batch(ns, k, v, other) => {
            let m = ns_map(model, *ns);
            m.insert(k.clone(), (v.clone(), 0));
            m.remove(other);
        }
        ModelOp::Compact | ModelOp::Reopen => {}
    }
    None
}

/// Runs `op` on the store; `Err(())` when it failed for a reason other than one the model
/// decides (the simulated crash, after which the file system refuses everything).
fn run(store: &mut Store, fs: &SimFs, op: &ModelOp) -> Result<Option<Result<i64, ()>>, ()> {
    let ns = |i: &usize| NAMESPACES[*i];
    let io = |_| ();
    Ok(match op {
        ModelOp::Put(n, k, v, kind) => {
            store
                .put(ns(n), k, v, PutOptions::default().with_kind(*kind))
                .map_err(io)?;
            None
        }
        ModelOp::PutIfAbsent(n, k, v) => {
            let r = store.put_if(ns(n), k, v, PutOptions::default(), Condition::Absent);
            Some(Ok(i64::from(r.map_err(io)?.is_some())))
        }
        ModelOp::Delete(n, k) => Some(Ok(i64::from(store.delete(ns(n), k).map_err(io)?))),
        ModelOp::Increment(n, k, d) => match store.increment(ns(n), k, *d, PutOptions::default()) {
            Ok(v) => Some(Ok(v)),
            Err(IncrementError::NotAnInteger | IncrementError::Overflow) => Some(Err(())),
            Err(_) => return Err(()),
        },
        ModelOp::Clear(n) => {
            store.clear_namespace(ns(n)).map_err(io)?;
            None
        }
        ModelOp::Drop(n) => {
            store.drop_namespace(ns(n)).map_err(io)?;
            None
        }
        ModelOp::Batch(n, k, v, other) => {
            let mut b = WriteBatch::new();
            b.put(ns(n), k, v, PutOptions::default());
            b.delete(ns(n), other);
            store.write_batch(b).map_err(io)?;
            None
        }
        ModelOp::Compact => {
            store.compact().map_err(|_| ())?;
            None
        }
        ModelOp::Reopen => {
            let placeholder = open_sim(&SimFs::new()).map_err(|_| ())?;
            drop(std::mem::replace(store, placeholder));
            *store = open_sim(fs).map_err(|_| ())?;
            None
        }
    })
}

/// The store's items in the model's namespaces.
fn snapshot(store: &Store) -> Model {
    let mut out = Model::new();
    for ns in NAMESPACES {
        let mut items = BTreeMap::new();
        for key in store.keys(ns) {
            let item = store
                .get(ns, &key)
                .expect("read")
                .expect("a listed key reads");
            items.insert(key, (item.value.to_vec(), item.kind));
        }
        out.insert(ns.to_vec(), items);
    }
    out
}

fn normalized(model: &Model) -> Model {
    NAMESPACES
        .iter()
        .map(|ns| (ns.to_vec(), model.get(*ns).cloned().unwrap_or_default()))
        .collect()
}

/// Target `engine_model`: operations from the input run against the store (on a [`SimFs`],
/// `Durability::Always`, 4 KiB segments) and a `BTreeMap` model; the file system crashes
/// before its N-th mutating call (N from the input). The crash image must reopen holding
/// exactly the acknowledged state, or that plus the operation in flight.
pub fn engine_model(data: &[u8]) {
    let mut input = Input(data);
    let crash_after = input.u16();
    let torn = match input.u8() % 3 {
        0 => Torn::No,
        1 => Torn::Prefix(input.u8()),
        _ => Torn::Garbage,
    };
    let fs = SimFs::new();
    let mut store = open_sim(&fs).expect("open an empty store");
    if crash_after != u16::MAX {
        fs.crash_at(fs.ops() + u64::from(crash_after), torn);
    }
    let mut acked = Model::new();
    let mut in_flight = None;
    for _ in 0..64 {
        if input.is_empty() {
            break;
        }
        let op = next_op(&mut input);
        let mut after = acked.clone();
        let expected = apply(&mut after, &op);
        match run(&mut store, &fs, &op) {
            Ok(answer) => {
                assert_eq!(answer, expected, "{op:?} answered against the model");
                acked = after;
            }
            Err(()) => {
                assert!(fs.crashed(), "{op:?} failed without a crash");
                in_flight = Some(after);
                break;
            }
        }
    }
    if !fs.crashed() {
        assert_eq!(
            normalized(&snapshot(&store)),
            normalized(&acked),
            "live state"
        );
    }
    let image = fs.crash_image().unwrap_or_else(|| fs.crash_image_now(torn));
    drop(store);
    let store = open_sim(&image).expect("a crash image opens");
    let got = normalized(&snapshot(&store));
    let acked = normalized(&acked);
    let ok = got == acked || in_flight.as_ref().is_some_and(|m| got == normalized(m));
    assert!(
        ok,
        "after the crash: got {got:?}, acknowledged {acked:?}, in flight {in_flight:?}"
    );
}

#[cfg(test)]
mod corpus_replay {
    //! Replays the seed corpus in `fuzz/corpus/<target>/` through the harnesses, and (when
    //! asked) writes the seeds that come from real encodings.
    use super::*;
    use crate::format::EntryMeta;
    use std::path::PathBuf;

    fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "empty corpus {}", dir.display());
        files
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).expect("read corpus file");
                (p, bytes)
            })
            .collect()
    }

    fn replay(target: &str, harness: fn(&[u8])) {
        for (path, bytes) in corpus(target) {
            if let Err(panic) = std::panic::catch_unwind(|| harness(&bytes)) {
                panic!("{}: {panic:?}", path.display());
            }
        }
    }

    #[test]
    fn decode_record_corpus() {
        replay("decode_record", decode_record);
    }

    #[test]
    fn decode_hint_corpus() {
        replay("decode_hint", decode_hint);
    }

    #[test]
    fn recover_image_corpus() {
        replay("recover_image", recover_image);
    }

    #[test]
    fn engine_model_corpus() {
        replay("engine_model", engine_model);
    }

    /// Six entries, one of each op, in `layout` (2 or 3), with their seed names.
    fn entries(layout: EntryLayout) -> [(&'static str, Vec<u8>); 6] {
        use format::Op;
        let entry = |op, ns: &[u8], key: &[u8], value: &[u8], version| {
            let meta = EntryMeta {
                op,
                kind: 1,
                horizon: 2,
                version,
                expires_ms: 0,
            };
            let mut out = Vec::new();
            if layout == EntryLayout::V2 {
                format::encode_layout2_entry(&mut out, &meta, ns, key, value);
            } else {
                format::encode_entry(&mut out, &meta, ns, key, value);
            }
            out
        };
        [
            ("put", entry(Op::Put, b"ns", b"key", b"value", 7)),
            ("put-empty", entry(Op::Put, b"", b"", b"", 1)),
            ("tombstone", entry(Op::Tombstone, b"ns", b"key", b"", 8)),
            ("create", entry(Op::CreateNamespace, b"ns", b"", b"", 2)),
            ("clear", entry(Op::ClearNamespace, b"ns", b"", b"", 9)),
            ("drop", entry(Op::DropNamespace, b"ns", b"", b"", 10)),
        ]
    }

    /// `decode_record`'s first byte for raw bytes, and for a body it frames, in entry layout 3
    /// (written) and 2 (read only).
    const L3_RAW: u8 = 3;
    const L3_FRAMED: u8 = 5;
    const L2_RAW: u8 = 129;
    const L2_FRAMED: u8 = 131;

    /// A data directory's segment and hint files in `recover_image`'s framing (the first
    /// eight by name, each cut at 64 KiB).
    fn image_of(mut files: Vec<(String, Vec<u8>)>) -> Vec<u8> {
        files.sort();
        let mut image = Vec::new();
        for (name, bytes) in files.iter().take(8) {
            let kind = if name.ends_with(".seg") {
                0
            } else if name.ends_with(".hint") {
                2
            } else {
                continue;
            };
            let Some(id) = name.split('.').next().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
            image.push((kind << 4) | (id as u8 & 0x0f));
            image.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            image.extend_from_slice(bytes);
        }
        image
    }

    /// Writes seeds built from real encodings: `TTLCASK_WRITE_SEEDS=1 cargo test -p
    /// ttlcask-engine fuzzing::corpus_replay::write_seeds`.
    #[test]
    fn write_seeds() {
        if std::env::var_os("TTLCASK_WRITE_SEEDS").is_none() {
            return;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let write = |target: &str, name: &str, bytes: &[u8]| {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join(name), bytes).expect("write seed");
        };
        let framed = |layout: EntryLayout, entries: &[&[u8]]| {
            let mut frame = Vec::new();
            let start = format::begin_frame(&mut frame);
            for e in entries {
                frame.extend_from_slice(e);
            }
            format::finish_frame_in(&mut frame, start, FUZZ_SALT, layout);
            frame
        };
        for (layout, prefix, raw, framed_body) in [
            (EntryLayout::V3, "l3", L3_RAW, L3_FRAMED),
            (EntryLayout::V2, "l2", L2_RAW, L2_FRAMED),
        ] {
            let entries = entries(layout);
            let header = format::encode_segment_header(&format::SegmentHeader {
                id: 3,
                base_version: 5,
                format: format::FORMAT_VERSION,
                salt: FUZZ_SALT,
                entry_layout: layout,
            });
            let seed = |name: &str, bytes: &[u8]| {
                write(
                    "decode_record",
                    &format!("{prefix}-{name}"),
                    &[&[raw][..], bytes].concat(),
                );
            };
            seed("segment-header", &header);
            for (name, e) in &entries {
                seed(&format!("entry-{name}"), e);
                seed(&format!("frame-{name}"), &framed(layout, &[e]));
                write(
                    "decode_record",
                    &format!("{prefix}-body-{name}"),
                    &[&[framed_body][..], e].concat(),
                );
            }
            let batch = framed(layout, &[&entries[0].1, &entries[2].1]);
            seed("frame-batch", &batch);
            seed("frame-end", &[0; 8]);
            seed("truncated", &batch[..batch.len() - 3]);
        }

        // Real hint files.
        let mut hints = Vec::new();
        for (layout, prefix) in [(EntryLayout::V3, "l3"), (EntryLayout::V2, "l2")] {
            let entries = entries(layout);
            for n in 0..4u32 {
                let mut w = HintWriter::new(n, u64::from(n) * 100, layout);
                for (i, (_, e)) in entries.iter().enumerate().take(n as usize * 2) {
                    let d = format::decode_entry(e, layout, format::NO_SEGMENT).expect("decode");
                    w.push(&HintEntry {
                        offset: 24 + i as u32 * 64,
                        meta: d.meta,
                        namespace: d.namespace,
                        key: d.key,
                        len: d.len as u32,
                        shape: d.shape(),
                    });
                }
                let bytes = w.finish();
                write(
                    "decode_hint",
                    &format!("{prefix}-hint-{n}"),
                    &[&[0u8][..], &bytes].concat(),
                );
                hints.push(bytes);
            }
        }
        write(
            "decode_hint",
            "l3-records-fixed",
            &[&[1u8, 3, 0, 100, 0][..], &hints[3][24..hints[3].len() - 4]].concat(),
        );

        // Real data directories: a store's files, in the recovery harness's framing.
        for (n, ops) in [8usize, 40, 120].iter().enumerate() {
            let fs = SimFs::new();
            let store = open_sim(&fs).expect("open");
            for i in 0..*ops {
                let ns = NAMESPACES[i % 3];
                let key = format!("k{}", i % 17);
                let _ = store.put(
                    ns,
                    key.as_bytes(),
                    &vec![b'v'; i * 7 % 300],
                    PutOptions::default(),
                );
                if i % 5 == 4 {
                    let _ = store.delete(ns, format!("k{}", i % 3).as_bytes());
                }
                if i % 31 == 30 {
                    let _ = store.clear_namespace(ns);
                }
            }
            let _ = store.compact();
            drop(store);
            use crate::fs::FileSystem;
            let files = fs
                .list(Path::new(DIR))
                .expect("list")
                .into_iter()
                .map(|name| {
                    let bytes = fs.read(&Path::new(DIR).join(&name)).expect("read");
                    (name, bytes)
                })
                .collect();
            write("recover_image", &format!("l3-store-{n}"), &image_of(files));
        }
        // Data directories the release that wrote entry layout 2 left (engine/tests/fixtures).
        for name in ["closed", "crashed"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/layout2-4f7827f")
                .join(name);
            let files = std::fs::read_dir(&dir)
                .expect("fixture")
                .map(|e| {
                    let e = e.expect("entry");
                    let bytes = std::fs::read(e.path()).expect("read");
                    (e.file_name().to_string_lossy().into_owned(), bytes)
                })
                .collect();
            write("recover_image", &format!("l2-{name}"), &image_of(files));
        }
        write(
            "recover_image",
            "fixup-frames",
            &[0x41, 12, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        );
        write("recover_image", "empty", b"");

        // Model runs: no crash, and crashes at a few points with each torn kind.
        let ops: Vec<u8> = (0u8..120)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        write(
            "engine_model",
            "no-crash",
            &[&[0xff, 0xff, 0][..], &ops].concat(),
        );
        for (i, crash) in [0u16, 3, 10, 25, 60].iter().enumerate() {
            let c = crash.to_le_bytes();
            let torn = (i % 3) as u8;
            write(
                "engine_model",
                &format!("crash-{crash}"),
                &[&[c[0], c[1], torn, 128][..], &ops].concat(),
            );
        }
    }
}
