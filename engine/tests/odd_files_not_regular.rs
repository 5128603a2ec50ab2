//! A store file that is not a regular file: a FIFO, or a symlink to `/dev/zero`. Found from
//! outside: with `seals.log` or a hint made a FIFO, `verify` (read-only, safe beside a live
//! server) and the open never returned, blocked in `open(2)`; with a segment symlinked to
//! `/dev/zero`, both read it until the machine ran out of memory. Now only regular files
//! (symlinks followed) are opened or read: anything else is an unreadable file of its kind
//! (a hint or the seal log ignored, a segment damage), named in the report and by `verify`.
//! Every open and `verify` here runs on a thread and must return within 10 s.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ttlcask_engine::{OpenError, PutOptions, ReadError, RecoveryReport, Store, VerifyReport};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const KEYS: u32 = 60;

/// A closed store of several 4 KiB segments, each sealed with its hint.
fn filled_dir() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path())?;
    for i in 0..KEYS {
        store.put(b"ns", &key(i), &value(i), PutOptions::default())?;
    }
    drop(store);
    Ok(dir)
}

fn open(dir: &Path) -> std::result::Result<Store, OpenError> {
    Store::builder()
        .segment_size(4096)
        .compaction_interval(None)
        .open(dir)
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; 200]
}

/// `f`'s result, or a failure if it takes more than 10 s (left running: it is blocked).
fn within_10s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} did not return within 10 s"))
}

fn mkfifo(path: &Path) -> Result {
    let _ = std::fs::remove_file(path);
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path; mkfifo reads nothing else of ours.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

fn open_bounded(dir: &Path) -> Result<(Store, RecoveryReport)> {
    let dir = dir.to_path_buf();
    let store = within_10s("the open", move || open(&dir))?;
    let report = store.recovery_report();
    Ok((store, report))
}

fn verify_bounded(dir: &Path) -> Result<VerifyReport> {
    let dir = dir.to_path_buf();
    Ok(within_10s("verify", move || ttlcask_engine::verify(&dir))?)
}

/// Whether `verify` named `file` as damage, saying what it is.
fn verify_names(report: &VerifyReport, file: &Path, what: &str) -> bool {
    report
        .damage
        .iter()
        .any(|d| d.file == file && d.problem.contains(what))
}

/// The segment files, by id.
fn segments(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::result::Result<_, _>>()?;
    segs.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    segs.sort();
    Ok(segs)
}

fn every_key_reads_its_value(store: &Store) -> Result {
    for i in 0..KEYS {
        let item = store.get(b"ns", &key(i))?.ok_or(format!("k{i} missing"))?;
        assert_eq!(&item.value[..], &value(i)[..], "k{i}");
    }
    Ok(())
}

/// The seal log made a FIFO: ignored and reported (as an unreadable one), every key read.
#[test]
fn a_fifo_for_the_seal_log_is_reported_not_waited_on() -> Result {
    let dir = filled_dir()?;
    let seals = dir.path().join("seals.log");
    mkfifo(&seals)?;
    let verified = verify_bounded(dir.path())?;
    assert!(verify_names(&verified, &seals, "FIFO"), "{verified:?}");
    let (store, report) = open_bounded(dir.path())?;
    assert!(
        report
            .ignored_files
            .iter()
            .any(|f| f.contains("seals.log") && f.contains("FIFO")),
        "{report:?}"
    );
    every_key_reads_its_value(&store)?;
    drop(store);
    assert!(std::fs::metadata(&seals)?.file_type().is_fifo());
    Ok(())
}

/// A hint made a FIFO: ignored, its segment scanned instead.
#[test]
fn a_fifo_for_a_hint_is_ignored_and_its_segment_scanned() -> Result {
    let dir = filled_dir()?;
    let seg = segments(dir.path())?[1].clone();
    let hint = seg.with_extension("hint");
    assert!(hint.exists(), "a sealed segment has its hint");
    mkfifo(&hint)?;
    let verified = verify_bounded(dir.path())?;
    assert!(verify_names(&verified, &hint, "FIFO"), "{verified:?}");
    let (store, report) = open_bounded(dir.path())?;
    assert!(
        report
            .ignored_files
            .iter()
            .any(|f| f.contains(&*hint.to_string_lossy()) && f.contains("scanned instead")),
        "{report:?}"
    );
    assert!(report.segments_scanned >= 1, "{report:?}");
    every_key_reads_its_value(&store)?;
    Ok(())
}

/// A segment replaced by a symlink to `/dev/zero`: damage (its bytes are out of reach), its
/// hint naming the keys lost; the symlink left as it is. A FIFO in its place, the same.
#[test]
fn a_segment_replaced_by_a_device_or_a_fifo_is_damage_not_read() -> Result {
    for fifo in [false, true] {
        let dir = filled_dir()?;
        let seg = segments(dir.path())?[1].clone();
        std::fs::remove_file(&seg)?;
        let what = if fifo {
            mkfifo(&seg)?;
            "FIFO"
        } else {
            std::os::unix::fs::symlink("/dev/zero", &seg)?;
            "character device"
        };
        let verified = verify_bounded(dir.path())?;
        assert!(verify_names(&verified, &seg, what), "{verified:?}");
        let (store, report) = open_bounded(dir.path())?;
        let damaged = report
            .damaged
            .iter()
            .find(|d| d.problem.contains(&*seg.to_string_lossy()) && d.problem.contains(what))
            .ok_or(format!("{report:?}"))?;
        let lost = damaged.records.ok_or("its hint names its records")?;
        assert!(lost > 0, "{damaged:?}");
        let mut read_lost = 0;
        for i in 0..KEYS {
            match store.get(b"ns", &key(i)) {
                Ok(Some(item)) => assert_eq!(&item.value[..], &value(i)[..], "k{i}"),
                Err(ReadError::Lost { segment, .. }) if segment == damaged.segment => {
                    read_lost += 1
                }
                other => panic!("k{i}: {other:?}"),
            }
        }
        assert_eq!(read_lost, lost, "the keys its hint names read as lost");
        drop(store);
        assert!(std::fs::symlink_metadata(&seg).is_ok(), "left in place");
    }
    Ok(())
}

/// The store's other files made FIFOs: a damaged segment's evidence, the space reserve and
/// the spare segment are left alone and reported; `LOCK` refuses the open, naming it.
#[test]
fn fifos_for_the_other_store_files_neither_hang_nor_are_removed() -> Result {
    let dir = filled_dir()?;
    let others = [
        "0000000099.damaged",
        "space-reserve.tmp",
        "spare-segment.tmp",
    ];
    for name in others {
        mkfifo(&dir.path().join(name))?;
    }
    let verified = verify_bounded(dir.path())?;
    for name in others {
        assert!(
            verify_names(&verified, &dir.path().join(name), "FIFO"),
            "{name}: {verified:?}"
        );
    }
    let (store, report) = open_bounded(dir.path())?;
    for name in others {
        assert!(
            report
                .ignored_files
                .iter()
                .chain(report.damaged.iter().map(|d| &d.problem))
                .any(|f| f.contains(name)),
            "{name}: {report:?}"
        );
    }
    every_key_reads_its_value(&store)?;
    drop(store);
    for name in others {
        assert!(dir.path().join(name).exists(), "{name} left alone");
    }
    let lock = dir.path().join("LOCK");
    mkfifo(&lock)?;
    let path = dir.path().to_path_buf();
    match within_10s("the open", move || open(&path)) {
        Err(OpenError::Io { path, .. }) => assert_eq!(path, lock),
        other => panic!("{other:?}"),
    }
    Ok(())
}

/// A directory, or a file put there from outside (a segment restored from a backup), at the
/// names the store would give its next segments while it runs: skipped, never replaced, and
/// writes go on. Found from outside (thirteenth session): a directory at the next segment's
/// name made its create fail (EEXIST) and poisoned the store until a restart.
#[test]
fn names_taken_from_outside_are_skipped_by_new_segments() -> Result {
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .segment_size(4096)
        .compaction_interval(None)
        .durability(ttlcask_engine::Durability::Always)
        .open(dir.path())?;
    let newest = |dir: &Path| -> Result<u32> {
        let mut ids: Vec<u32> = std::fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        Ok(*ids.last().unwrap_or(&0))
    };
    let next = newest(dir.path())? + 1;
    let taken_dir = dir.path().join(format!("{next:010}.seg"));
    let taken_file = dir.path().join(format!("{:010}.seg", next + 1));
    std::fs::create_dir(&taken_dir)?;
    std::fs::write(&taken_file, b"restored by hand")?;
    for i in 0..KEYS * 3 {
        store.put(b"ns", &key(i), &value(i), PutOptions::default())?;
    }
    assert!(store.health().poisoned.is_none(), "{:?}", store.health());
    assert!(
        newest(dir.path())? > next + 1,
        "no segment was started past the taken names"
    );
    assert!(taken_dir.is_dir());
    assert_eq!(std::fs::read(&taken_file)?, b"restored by hand");
    for i in 0..KEYS * 3 {
        assert_eq!(
            store.get(b"ns", &key(i))?.map(|it| it.value.to_vec()),
            Some(value(i))
        );
    }
    Ok(())
}

/// `LOCK` made a symbolic link (here to the name of a segment compaction removed): the
/// open refuses, naming it, and creates nothing through it. Found from outside (fourteenth
/// session): the open made the link's target, an empty segment, which every open after
/// reported as damage.
#[test]
fn a_lock_file_that_is_a_symbolic_link_is_refused_and_nothing_made_through_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    drop(ttlcask_engine::Store::open(&dir).expect("open"));
    let lock = dir.join("LOCK");
    std::fs::remove_file(&lock).expect("remove LOCK");
    std::os::unix::fs::symlink("0000000099.seg", &lock).expect("link");
    let err = ttlcask_engine::Store::open(&dir).expect_err("a LOCK link is refused");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(
        !dir.join("0000000099.seg").exists(),
        "made through the link"
    );
}
