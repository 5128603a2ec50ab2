//! Helpers shared by the `damage_*.rs` tests: a store of several small segments on the
//! simulated file system at `/damage` with its model, damage to its files, and the check that
//! every key reads its newest acknowledged value or fails, never an older value.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ttlcask_engine::sim::{SimFs, Torn};
use ttlcask_engine::{
    FileSystem, ManualClock, OpenError, PutOptions, ReadError, RecoveryPolicy, Store, WriteBatch,
};

pub const DIR: &str = "/damage";

/// Keys one damaged byte may cost in a closed store (every segment sealed): the one record
/// it touches. (Only the last frame of a segment still being appended to is lost whole,
/// since it may be a write torn in flight.)
pub const MAX_LOST: usize = 1;

pub type Model = BTreeMap<(Vec<u8>, Vec<u8>), Option<Vec<u8>>>;

pub fn open(fs: &SimFs, policy: RecoveryPolicy) -> Result<Store, OpenError> {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .segment_size(4096)
        .compaction_interval(None)
        .recovery_policy(policy)
        .clock(ManualClock::new(1_000_000))
        .open(DIR)
}

pub fn build(fs: &SimFs) -> Model {
    let store = open(fs, RecoveryPolicy::Salvage).expect("open");
    let mut model = Model::new();
    let put = |ns: &[u8], key: String, value: Vec<u8>, model: &mut Model| {
        store
            .put(ns, key.as_bytes(), &value, PutOptions::default())
            .expect("put");
        model.insert((ns.to_vec(), key.into_bytes()), Some(value));
    };
    for i in 0..40u8 {
        let ns: &[u8] = [b"alpha".as_slice(), b"beta", b"gamma"][usize::from(i % 3)];
        put(
            ns,
            format!("k{i}"),
            vec![b'a' + i % 26; 60 + usize::from(i) * 3],
            &mut model,
        );
    }
    // Overwrites and deletes land in later segments than what they hide: exactly what must
    // not come back when they are damaged.
    for i in (0..40u8).step_by(4) {
        let ns: &[u8] = [b"alpha".as_slice(), b"beta", b"gamma"][usize::from(i % 3)];
        put(ns, format!("k{i}"), vec![b'A' + i % 26; 90], &mut model);
    }
    for i in (2..40u8).step_by(6) {
        let ns: &[u8] = [b"alpha".as_slice(), b"beta", b"gamma"][usize::from(i % 3)];
        store
            .delete(ns, format!("k{i}").as_bytes())
            .expect("delete");
        model.insert((ns.to_vec(), format!("k{i}").into_bytes()), None);
    }
    let mut batch = WriteBatch::new();
    for (ns, key) in [(b"alpha", "k3"), (b"gamma", "k5"), (b"alpha", "new")] {
        batch.put(ns, key.as_bytes(), b"from the batch", PutOptions::default());
        model.insert(
            (ns.to_vec(), key.as_bytes().to_vec()),
            Some(b"from the batch".to_vec()),
        );
    }
    store.write_batch(batch).expect("batch");
    drop(store);
    model
}

/// A frame's first bytes (format 2).
pub const FRAME_MAGIC: [u8; 4] = [0xF2, b'T', b'C', 0x9A];

/// Where a frame magic stands in a segment's `bytes`, in order.
pub fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    bytes
        .windows(FRAME_MAGIC.len())
        .enumerate()
        .filter(|(_, w)| *w == FRAME_MAGIC)
        .map(|(i, _)| i)
        .collect()
}

/// Where a segment's first frame starts (the end of its header).
pub fn first_frame(bytes: &[u8]) -> usize {
    *frame_starts(bytes).first().expect("a frame")
}

/// Where a segment's last frame starts.
pub fn last_frame(bytes: &[u8]) -> usize {
    *frame_starts(bytes).last().expect("a frame")
}

/// Writes `bytes` over the start of the file at `path`, synced.
pub fn overwrite(fs: &SimFs, path: &Path, bytes: &[u8]) {
    let f = fs.open(path).expect("open file");
    f.write_at(bytes, 0).expect("write");
    f.sync().expect("sync");
}

/// A power-cut image of `fs`, its hint files removed (durably) unless `with_hints`.
pub fn image_with_hints(fs: &SimFs, with_hints: bool) -> SimFs {
    let base = fs.crash_image_now(Torn::No);
    if !with_hints {
        for h in files(&base, ".hint") {
            base.remove(&Path::new(DIR).join(h)).expect("remove hint");
        }
        base.sync_dir(Path::new(DIR)).expect("sync dir");
    }
    base
}

pub fn files(fs: &SimFs, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = fs
        .list(Path::new(DIR))
        .expect("list")
        .into_iter()
        .filter(|n| n.ends_with(ext))
        .collect();
    names.sort();
    names
}

pub fn damage(fs: &SimFs, name: &str, at: usize, zero: bool) -> bool {
    let path = Path::new(DIR).join(name);
    let mut bytes = fs.read(&path).expect("read");
    let Some(b) = bytes.get_mut(at) else {
        return false;
    };
    let before = *b;
    *b = if zero { 0 } else { before ^ 0x20 };
    if *b == before {
        return false;
    }
    overwrite(fs, &path, &bytes);
    true
}

/// Checks one damaged image; returns how many keys it lost.
pub fn check(image: &SimFs, model: &Model, what: &str) -> usize {
    check_with(image, model, what, MAX_LOST)
}

/// The records the report's damaged ranges of segment `id` from offset `from` on say they
/// lost (where they know).
pub fn records_known(report: &ttlcask_engine::RecoveryReport, id: u32, from: u64) -> u64 {
    report
        .damaged
        .iter()
        .filter(|d| d.segment == id && d.offset >= from)
        .filter_map(|d| d.records)
        .sum()
}

/// [`check`], allowing `max_lost` keys lost.
pub fn check_with(image: &SimFs, model: &Model, what: &str, max_lost: usize) -> usize {
    let segments_before = files(image, ".seg").len();
    let store =
        open(image, RecoveryPolicy::Salvage).unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
    let report = store.recovery_report();
    let mut lost = 0;
    for ((ns, key), want) in model {
        let k = String::from_utf8_lossy(key);
        match (store.get(ns, key), want) {
            (Ok(Some(item)), Some(v)) => assert!(
                item.value[..] == v[..],
                "{what}: {k} reads another (older?) value"
            ),
            (Ok(Some(_)), None) => panic!("{what}: deleted key {k} came back"),
            (Ok(None), Some(_)) => panic!("{what}: {k} silently missing"),
            (Ok(None), None) => {}
            (Err(ReadError::Lost { segment, .. }), _) => {
                lost += 1;
                assert!(
                    report.damaged.iter().any(|d| d.segment == segment),
                    "{what}: {k} lost in segment {segment}, which the report does not name: {report:?}"
                );
            }
            (Err(ReadError::Corrupt { .. }), Some(_)) => lost += 1,
            (Err(e), _) => panic!("{what}: {k}: {e}"),
        }
    }
    assert!(
        lost <= max_lost,
        "{what}: {lost} keys lost, more than the record it touched; report {report:?}"
    );
    if lost > 0 || !report.damaged.is_empty() {
        assert!(
            report.damaged.iter().all(|d| d.len > 0),
            "{what}: empty damaged range"
        );
    }
    drop(store);
    assert_eq!(
        files(image, ".seg").len(),
        segments_before,
        "{what}: a segment file went missing or was left (the active one an open adds is removed again by a close that wrote nothing)"
    );
    lost
}
