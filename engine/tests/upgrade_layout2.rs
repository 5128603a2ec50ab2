//! Data directories written by the release that first wrote entry layout 2 (main at 4f7827f)
//! open in place and read back every item, version, expiry and kind that release stored.
//!
//! The fixtures in `fixtures/layout2-4f7827f/` were written by that release with
//! `generate.rs.txt` (an example of its engine crate): `closed` after a clean close (every
//! segment has its hint), `crashed` copied while the store was open after an fsync (no hints,
//! the active segment still pre-allocated). `expected.txt` is what that release read back.
//! Layout 2 changed after that release (frame ids, left-out horizons, summaries of length
//! differences) and is written as layout 3 since; these tests keep the first one readable.

use std::path::{Path, PathBuf};

use ttlcask_engine::{ReadError, Store};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/layout2-4f7827f")
        .join(name)
}

fn expected() -> String {
    std::fs::read_to_string(fixture("expected.txt")).expect("expected.txt")
}

/// A copy of fixture `name` in a fresh directory (the tests write to it).
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir(fixture(name)).expect("fixture") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dir.path().join(e.file_name())).expect("copy");
    }
    dir
}

fn open(dir: &Path) -> Store {
    Store::builder()
        .segment_size(16 << 10)
        .compaction_interval(None)
        .open(dir)
        .expect("open")
}

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every namespace and item, in the generator's format.
fn dump(store: &Store) -> String {
    let mut out = String::new();
    let mut spaces: Vec<Vec<u8>> = store.namespaces(b"").into_iter().map(|n| n.name).collect();
    spaces.sort();
    for ns in spaces {
        let mut items: Vec<_> = store
            .items(&ns, b"")
            .collect::<Result<_, _>>()
            .expect("items");
        items.sort_by(|a, b| a.0.cmp(&b.0));
        out += &format!("ns {}\n", hex(&ns));
        for (k, it) in items {
            out += &format!(
                "{} {} {} {} {}\n",
                hex(&k),
                hex(&it.value),
                it.version,
                it.expires_at_ms.unwrap_or(0),
                it.kind
            );
        }
    }
    out
}

fn entry_layouts(dir: &Path) -> Vec<(String, u16)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            // Format 2 segment header: magic 8, format 4, id 4, base version 8, salt 4,
            // entry layout 2.
            let layout = u16::from_le_bytes([bytes[28], bytes[29]]);
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                layout,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_closed_dir_opens_from_its_hints_and_reads_back_everything() {
    let dir = copy_of("closed");
    assert!(entry_layouts(dir.path()).iter().all(|(_, l)| *l == 2));
    let store = open(dir.path());
    let report = store.recovery_report();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(dump(&store), expected());
}

#[test]
fn a_closed_dir_without_hints_scans_to_the_same_items() {
    let dir = copy_of("closed");
    for e in std::fs::read_dir(dir.path()).expect("list") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "hint") {
            std::fs::remove_file(p).expect("remove hint");
        }
    }
    let store = open(dir.path());
    let report = store.recovery_report();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.segments_from_hints, 0, "{report:?}");
    assert_eq!(dump(&store), expected());
}

#[test]
fn a_crashed_dir_recovers_every_synced_write() {
    let dir = copy_of("crashed");
    let store = open(dir.path());
    let report = store.recovery_report();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(dump(&store), expected());
}

#[test]
fn compaction_moves_the_items_into_the_written_layout_and_new_writes_sit_beside_them() {
    for name in ["closed", "crashed"] {
        let dir = copy_of(name);
        let store = open(dir.path());
        let version = store
            .put(b"after", b"k", b"new", Default::default())
            .expect("put");
        let compacted = store.compact().expect("compact");
        assert!(compacted.segments_rewritten >= 1, "{name}: {compacted:?}");
        drop(store);
        let layouts = entry_layouts(dir.path());
        assert!(layouts.iter().all(|(_, l)| *l == 3), "{name}: {layouts:?}");
        let store = open(dir.path());
        assert!(store.recovery_report().is_clean(), "{name}");
        let after = store.get(b"after", b"k").expect("read").expect("after/k");
        assert_eq!((&after.value[..], after.version), (&b"new"[..], version));
        store.drop_namespace(b"after").expect("drop");
        assert_eq!(dump(&store), expected(), "{name}");
    }
}

/// One flipped byte inside the value of a layout 2 entry is found and named, and costs only
/// that key: every other item still reads back as written.
#[test]
fn a_flipped_byte_in_a_layout_2_value_costs_only_its_key() {
    let dir = copy_of("closed");
    // key:0150 was written once ("value 150 " and 30 x's), never rewritten or deleted.
    let needle = b"value 150 xxxx";
    let (seg, at) = (1..=5)
        .find_map(|id| {
            let path = dir.path().join(format!("{id:010}.seg"));
            let bytes = std::fs::read(&path).ok()?;
            let at = bytes.windows(needle.len()).position(|w| w == needle)?;
            Some((id, at))
        })
        .expect("the value is in a segment");
    let path = dir.path().join(format!("{seg:010}.seg"));
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[at + 3] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    // Without its hint the segment is scanned, and the damage found while opening.
    std::fs::remove_file(dir.path().join(format!("{seg:010}.hint"))).expect("hint");
    let store = open(dir.path());
    let report = store.recovery_report();
    assert!(!report.damaged.is_empty(), "{report:?}");
    assert_eq!(report.keys_lost, 1, "{report:?}");
    let mut ns = Vec::new();
    let mut lost = Vec::new();
    for line in expected().lines() {
        if let Some(name) = line.strip_prefix("ns ") {
            ns = unhex(name);
            continue;
        }
        let f: Vec<&str> = line.split(' ').collect();
        let key = unhex(f[0]);
        match store.get(&ns, &key) {
            Ok(Some(item)) => {
                assert_eq!(hex(&item.value), f[1], "{line}");
                assert_eq!(item.version.to_string(), f[2], "{line}");
            }
            Err(ReadError::Lost { .. }) => lost.push(String::from_utf8_lossy(&key).into_owned()),
            other => panic!("{line}: {other:?}"),
        }
    }
    assert_eq!(lost, ["key:0150"]);
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A segment in an entry layout this release does not know (a later release's) refuses the
/// open with an error that names the layout and the ones this release reads, and changes
/// nothing on disk.
#[test]
fn a_segment_of_an_unknown_entry_layout_refuses_the_open_and_is_left_alone() {
    let dir = copy_of("closed");
    let seg = dir.path().join("0000000001.seg");
    let mut bytes = std::fs::read(&seg).expect("read");
    // Two 36-byte header copies: the layout at 28..30, the CRC of bytes 0..32 at 32..36.
    for copy in [0, 36] {
        bytes[copy + 28..copy + 30].copy_from_slice(&4u16.to_le_bytes());
        let crc = crc32fast::hash(&bytes[copy..copy + 32]);
        bytes[copy + 32..copy + 36].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(&seg, &bytes).expect("write");
    let err = Store::builder()
        .compaction_interval(None)
        .open(dir.path())
        .expect_err("a layout 4 segment");
    let msg = err.to_string();
    assert!(
        msg.contains("layout 4") && msg.contains("entry layouts 1 to 3"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&seg).expect("read"), bytes, "left as it was");
}
