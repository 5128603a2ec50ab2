//! One store file the server cannot use, found from outside: a sealed segment of mode 000
//! (the server not run as root), or a directory under the name of a segment, of a damaged
//! segment's evidence or of a scratch file. The open stopped with "cannot use <data dir>:
//! Permission denied" (or "Is a directory"), naming no file, where `verify` promised that the
//! store cuts or skips such damage. Now the default (salvage) open starts: an unreadable
//! segment is damage, left in place, the keys its hint names lost (never their older
//! values); a stray directory is left alone and reported; a strict open refuses, naming the
//! file; and `verify` calls the same directories damaged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{FileSystem, OpenError, PutOptions, ReadError, RecoveryPolicy, Store};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const DIR: &str = "/data";
const KEYS: u32 = 30;

fn open_sim(fs: &SimFs, policy: RecoveryPolicy) -> std::result::Result<Store, OpenError> {
    Store::builder()
        .file_system(Arc::new(fs.clone()))
        .segment_size(4096)
        .compaction_interval(None)
        .recovery_policy(policy)
        .open(DIR)
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

fn value(round: u8, i: u32) -> Vec<u8> {
    let mut v = format!("round{round}-").into_bytes();
    v.resize(200, b'a' + (i % 26) as u8);
    v
}

/// Two rounds over the same keys, the second overwriting the first in later segments: an
/// unreadable segment of the second must not let its keys read the first round's values.
fn fill(store: &Store) -> Result {
    for round in 0..2 {
        for i in 0..KEYS {
            store.put(b"ns", &key(i), &value(round, i), PutOptions::default())?;
        }
    }
    Ok(())
}

/// Each key reads its second-round value or, if its newest record was in segment `lost_in`,
/// `Lost` (or, with `unknown`, where no hint named that segment's records, the first
/// round's value, as for a segment file lost whole); returns how many read `Lost`.
fn check_keys(store: &Store, lost_in: Option<u32>, unknown: bool) -> Result<u64> {
    let mut lost = 0;
    for i in 0..KEYS {
        match store.get(b"ns", &key(i)) {
            Ok(Some(item)) if unknown && item.value[..] == value(0, i)[..] => {}
            Ok(Some(item)) => assert_eq!(&item.value[..], &value(1, i)[..], "k{i}"),
            Err(ReadError::Lost { segment, .. }) if Some(segment) == lost_in => lost += 1,
            other => panic!("k{i}: {other:?}"),
        }
    }
    Ok(lost)
}

/// The newest segment file (all second round) and its id.
fn newest_segment(fs: &SimFs) -> Result<(u32, PathBuf)> {
    let name = fs
        .list(Path::new(DIR))?
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .max()
        .ok_or("no segment")?;
    let id = name.trim_end_matches(".seg").parse()?;
    Ok((id, Path::new(DIR).join(name)))
}

/// A sealed segment the store may not read: the salvage open starts, reports it as damage
/// naming the file, reads the keys its hint names as lost, and leaves it as it was; a
/// strict open refuses naming it; once it can be read again, every key reads its newest
/// value. Without its hint, its records are unknown (reported so). Before the fix the open
/// failed with `OpenError::Io` naming the directory.
#[test]
fn a_segment_that_cannot_be_read_is_damage_and_salvage_starts() -> Result {
    for with_hint in [true, false] {
        let fs = SimFs::new();
        fill(&open_sim(&fs, RecoveryPolicy::Salvage)?)?;
        let (id, seg) = newest_segment(&fs)?;
        let hint = seg.with_extension("hint");
        if !with_hint {
            fs.remove(&hint)?;
        }
        let before = fs.read(&seg)?;
        fs.deny_access(&seg, Some(libc::EACCES));

        match open_sim(&fs, RecoveryPolicy::Strict) {
            Err(OpenError::Damaged(why)) => {
                assert!(why.contains(&*seg.to_string_lossy()), "{why}")
            }
            other => panic!("strict: {other:?}"),
        }

        let store = open_sim(&fs, RecoveryPolicy::Salvage)?;
        let report = store.recovery_report();
        let damaged = report
            .damaged
            .iter()
            .find(|d| d.segment == id)
            .ok_or(format!("{report:?}"))?;
        assert!(
            damaged.problem.contains(&*seg.to_string_lossy())
                && damaged.problem.contains("cannot be read"),
            "{damaged:?}"
        );
        let lost = check_keys(&store, Some(id), !with_hint)?;
        if with_hint {
            assert_eq!(damaged.records, Some(lost), "{damaged:?}");
            assert!(lost > 0 && report.keys_lost == lost, "{report:?}");
        } else {
            assert_eq!(damaged.records, None, "unknown without a hint");
            assert!(damaged.problem.contains("unknown"), "{damaged:?}");
        }
        drop(store);

        fs.deny_access(&seg, None);
        assert_eq!(fs.read(&seg)?, before, "left as it was");
        let store = open_sim(&fs, RecoveryPolicy::Strict)?;
        assert_eq!(check_keys(&store, None, false)?, 0);
    }
    Ok(())
}

/// A real directory of a closed store with directories under store file names: a segment's
/// (above every segment, and in the middle), a damaged segment's evidence, the spare
/// segment's and the space reserve's.
fn dir_with_stray_directories() -> Result<(tempfile::TempDir, Vec<PathBuf>)> {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .segment_size(4096)
        .compaction_interval(None)
        .open(dir.path())?;
    fill(&store)?;
    drop(store);
    let strays: Vec<PathBuf> = [
        "0000000099.seg",
        "0000000002.damaged",
        "spare-segment.tmp",
        "space-reserve.tmp",
    ]
    .iter()
    .map(|n| dir.path().join(n))
    .collect();
    for stray in &strays {
        // (The reserve's files stay, empty, after a close.)
        let _ = std::fs::remove_file(stray);
        std::fs::create_dir(stray)?;
        std::fs::write(stray.join("keep"), b"not the store's")?;
    }
    Ok((dir, strays))
}

/// Directories under store file names: the salvage open starts (it failed with "Is a
/// directory", naming no file), reports each and leaves each as it was; every key reads its
/// newest value; a strict open refuses naming them; `verify` names each as damage (it called
/// the directory clean with a stray `spare-segment.tmp`).
#[test]
fn stray_directories_under_store_file_names_are_left_alone_and_reported() -> Result {
    let (dir, strays) = dir_with_stray_directories()?;
    let open = |policy| {
        Store::builder()
            .segment_size(4096)
            .compaction_interval(None)
            .recovery_policy(policy)
            .open(dir.path())
    };
    match open(RecoveryPolicy::Strict) {
        Err(OpenError::Damaged(why)) => {
            for stray in &strays {
                assert!(why.contains(&*stray.to_string_lossy()), "{stray:?}: {why}");
            }
        }
        other => panic!("strict: {other:?}"),
    }
    let store = open(RecoveryPolicy::Salvage)?;
    let report = store.recovery_report();
    for stray in &strays {
        let name = stray.to_string_lossy();
        assert!(
            report
                .ignored_files
                .iter()
                .chain(report.damaged.iter().map(|d| &d.problem))
                .any(|f| f.contains(&*name) && f.contains("directory")),
            "{name}: {report:?}"
        );
    }
    assert_eq!(check_keys(&store, None, false)?, 0);
    store.put(b"ns", b"after", b"written", PutOptions::default())?;
    drop(store);
    for stray in &strays {
        assert!(stray.join("keep").exists(), "{stray:?} left alone");
    }
    let verified = ttlcask_engine::verify(dir.path())?;
    for stray in &strays {
        assert!(
            verified
                .damage
                .iter()
                .any(|d| &d.file == stray && d.problem.contains("directory")),
            "{stray:?}: {verified:?}"
        );
    }
    Ok(())
}
