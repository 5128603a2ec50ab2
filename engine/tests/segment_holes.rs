//! Holes inside a segment on a full tmpfs (found from outside, twelfth session): a data dir
//! copied with `cp --sparse=always` (or `rsync -S`, `tar -S`) turns a run of zeros, such as
//! a client's 64 KiB value of zero bytes, into a hole; read through the segment's memory map
//! on a full tmpfs, the hole's page cannot be allocated and the process dies with SIGBUS, at
//! every restart, while `verify` said clean.
//!
//! As root, on a 4 MiB tmpfs: a store holding such a value is closed, every page of zeros in
//! its segments is punched out (what a sparse copy leaves), and so is one page of another
//! value (damage); the tmpfs is filled. A child process (this binary again) opens the store,
//! reads every key and compacts: it must live, read the zeros back, and read the damaged key
//! as an error. Then, with room on the tmpfs again, an open fills the holes: none is left.
//!
//! Needs root and `mount`; skips LOUDLY (a line on stderr, then passes) where it is not root
//! or mounting is refused.

mod tmpfs;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ttlcask_engine::{PutOptions, Store};

const CHILD_ENV: &str = "TTLCASK_HOLES_CHILD_DIR";
/// Set: the child compacts after reading, and reads again.
const COMPACT_ENV: &str = "TTLCASK_HOLES_CHILD_COMPACTS";
const NS: &[u8] = b"ns";
const ZEROS: usize = 64 << 10;
const PAGE: u64 = 4096;
/// Bytes of the value one page of which is punched out.
const XS: usize = 16 << 10;

fn open(dir: &Path) -> Store {
    Store::builder()
        .segment_size(1 << 20)
        .compaction_interval(None)
        .open(dir)
        .expect("open")
}

/// The child: opens the store, reads every key (compacts and reads again, if asked), and
/// says what it read, a line each. Only does something when run by the parent.
#[test]
fn holes_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = open(Path::new(&dir));
    let say = |round: &str| {
        for key in ["zeros", "hello", "xs"] {
            let got = match store.get(NS, key.as_bytes()) {
                Ok(Some(item)) if item.value.iter().all(|&b| b == 0) => {
                    format!("zeros {}", item.value.len())
                }
                Ok(Some(item)) => format!("value {}", String::from_utf8_lossy(&item.value)),
                Ok(None) => "missing".to_string(),
                Err(_) => "error".to_string(),
            };
            println!("{round} {key}: {got}");
        }
    };
    say("read");
    if std::env::var_os(COMPACT_ENV).is_some() {
        // Compaction reads the segments through their views too (its reserve gives it room
        // for an output on the full disk).
        let compacted = store.compact().map(|_| ()).map_err(|e| e.to_string());
        println!("compacted: {compacted:?}");
        say("after-compaction");
    }
    println!("done");
}

/// Runs [`holes_child`] on `dir` (at most a minute); its stdout.
fn run_child(dir: &Path, compacts: bool) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "holes_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir);
    if compacts {
        cmd.env(COMPACT_ENV, "1");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        status.success(),
        "the child died ({status}{}): {stdout}\n{}",
        match status.signal() {
            Some(libc::SIGBUS) => ", SIGBUS: a hole was read through a memory map",
            _ => "",
        },
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Punches out every page of `path` that is all zeros, as a sparse copy leaves them, and
/// the page at `extra` if given; the pages punched.
fn punch(path: &Path, extra: Option<u64>) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let bytes = std::fs::read(path)?;
    let mut punched = 0;
    for (i, page) in bytes.chunks_exact(PAGE as usize).enumerate() {
        let at = i as u64 * PAGE;
        if !page.iter().all(|&b| b == 0) && extra != Some(at) {
            continue;
        }
        #[expect(unsafe_code, reason = "fallocate has no safe wrapper in std")]
        // SAFETY: a plain system call on a descriptor that lives through it.
        let rc = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                at as libc::off_t,
                PAGE as libc::off_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        punched += 1;
    }
    Ok(punched)
}

/// Fills the file system holding `dir` with a file (a page at a time, bounded by `limit`).
fn fill(dir: &Path, limit: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = File::create(&path).expect("filler");
    let page = [0xAAu8; PAGE as usize];
    for _ in 0..limit / PAGE + 1 {
        if file.write_all(&page).is_err() {
            return path;
        }
    }
    panic!("{} did not fill within {limit} bytes", dir.display());
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

#[test]
fn holes_in_a_segment_on_a_full_tmpfs_read_as_zeros_instead_of_killing_the_process() {
    if !tmpfs::is_root() {
        eprintln!("SKIPPED segment_holes: needs root to mount a tmpfs");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = match tmpfs::mount(tmp.path(), "size=4m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("SKIPPED segment_holes: mounting a tmpfs was refused: {e}");
            return;
        }
    };
    let dir = mnt.point.join("d");
    {
        let store = open(&dir);
        let put = |key: &str, value: &[u8]| {
            store
                .put(NS, key.as_bytes(), value, PutOptions::default())
                .expect("put");
        };
        put("zeros", &[0u8; ZEROS]);
        put("hello", b"hello");
        put("xs", &[b'x'; XS]);
    }
    // Every page of zeros punched out (the 64 KiB value holds 15 whole ones at least), and
    // one page of the x's: damage, which must read as an error.
    let punched: u64 = segments(&dir)
        .iter()
        .map(|seg| {
            let bytes = std::fs::read(seg).expect("read");
            let xs = bytes
                .windows(XS)
                .position(|w| w.iter().all(|&b| b == b'x'))
                .map(|at| (at as u64).div_ceil(PAGE) * PAGE);
            punch(seg, xs).expect("punch a hole")
        })
        .sum();
    assert!(punched >= 16, "{punched} pages punched");
    let report = ttlcask_engine::verify(&dir).expect("verify");
    assert!(
        report.warnings.iter().any(|w| w.contains("hole")),
        "verify names the holes: {:?}",
        report.warnings
    );
    assert!(!report.is_clean(), "the punched x's are damage");

    // Full: the open cannot fill the holes, and reads the segment into memory instead.
    let filler = fill(&mnt.point, 8 << 20);
    let out = run_child(&dir, true);
    for round in ["read", "after-compaction"] {
        assert!(
            out.contains(&format!("{round} zeros: zeros {ZEROS}")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{round} hello: value hello")),
            "{out}"
        );
        assert!(out.contains(&format!("{round} xs: error")), "{out}");
    }
    assert!(out.contains("done"), "{out}");

    // With room again (the pages of zeros punched out again: compaction may have copied
    // the value into a new segment), the open fills the holes: none is left, and the
    // zeros read back.
    std::fs::remove_file(&filler).expect("remove filler");
    let punched: u64 = segments(&dir)
        .iter()
        .map(|seg| punch(seg, None).expect("punch a hole"))
        .sum();
    assert!(punched >= 15, "{punched} pages punched");
    let out = run_child(&dir, false);
    assert!(out.contains(&format!("read zeros: zeros {ZEROS}")), "{out}");
    assert!(out.contains("read hello: value hello"), "{out}");
    for seg in segments(&dir) {
        let meta = std::fs::metadata(&seg).expect("stat");
        assert!(
            meta.blocks() * 512 >= meta.len(),
            "{}: {} bytes allocated of {}",
            seg.display(),
            meta.blocks() * 512,
            meta.len()
        );
    }
    let report = ttlcask_engine::verify(&dir).expect("verify");
    assert!(
        !report.warnings.iter().any(|w| w.contains("hole")),
        "{:?}",
        report.warnings
    );
    drop(mnt);
}
