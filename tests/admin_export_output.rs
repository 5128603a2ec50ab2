//! `ttlcask export -o PATH`: a failed export leaves an earlier file at PATH as it was; a PATH
//! that is not a regular file (a FIFO, a device node, a symlink to one) is written into, not
//! fsynced and never removed; a tenant filter that is no tenant name is refused. Found from
//! outside (twelfth session): a failed export deleted the last good backup, and as root
//! `-o /dev/null` failed its fsync (EINVAL) and unlinked `/dev/null`.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

/// Runs the binary without any `TTLCASK_*` setting of the caller's environment.
fn ttlcask(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ttlcask"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TTLCASK_") {
            command.env_remove(name);
        }
    }
    command.args(args).output().expect("run ttlcask")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A stopped data dir holding three Akka items (made by `ttlcask import` in a child process,
/// so no lock of this process can be inherited by another test's child).
fn data_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("data");
    let dump = tmp.join("in.jsonl");
    let lines: Vec<String> = (1..=3)
        .map(|i| {
            format!(
                r#"{{"tenant":"ttorg","api":"akka","cache":"c","key":"k{i}","value":"YWJj","expires_at_ms":null,"kind":0,"version":{i}}}"#
            )
        })
        .collect();
    std::fs::write(&dump, lines.join("\n") + "\n").expect("write");
    let out = ttlcask(&["import", "--data-dir", s(&dir), s(&dump)]);
    assert!(out.status.success(), "{out:?}");
    dir
}

/// Exports `dir` into `path`.
fn export(dir: &Path, path: &Path) -> Output {
    ttlcask(&["export", "--data-dir", s(dir), "-o", s(path)])
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn a_failed_export_leaves_the_earlier_file_as_it_was() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let backup = tmp.path().join("backup.jsonl");
    std::fs::write(&backup, "precious\n").expect("write");
    let server = format!("127.0.0.1:{}", closed_port());
    let out = ttlcask(&[
        "export",
        "--server",
        &server,
        "--admin-token",
        "wrong",
        "-o",
        s(&backup),
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&backup).expect("the backup is still there"),
        "precious\n"
    );
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["backup.jsonl"], "no temp file left behind");

    // A successful one replaces it, through a symlink too (the link stays a link).
    let dir = data_dir(tmp.path());
    let link = tmp.path().join("latest");
    std::os::unix::fs::symlink(&backup, &link).expect("symlink");
    let out = export(&dir, &link);
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(&backup)
            .expect("read")
            .lines()
            .count(),
        4,
        "the cache and its three items"
    );
}

#[test]
fn an_export_into_a_fifo_succeeds_and_leaves_the_fifo() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(tmp.path());
    let fifo = tmp.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let (tx, rx) = mpsc::channel();
    let reader = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(&reader));
    });
    let out = export(&dir, &fifo);
    let read = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the reader finished")
        .expect("read the fifo");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read.lines().count(), 4, "{read}");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .expect("the fifo is still there")
            .file_type()
            .is_fifo(),
        "still a fifo"
    );
}

#[test]
fn an_export_into_a_device_node_succeeds_and_leaves_the_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = tmp.path().join("mynull");
    // The null device (1, 3), made here: the test never touches /dev/null itself.
    let made = Command::new("mknod")
        .args(["-m", "666", s(&node), "c", "1", "3"])
        .output()
        .expect("run mknod");
    if !made.status.success() || std::fs::OpenOptions::new().write(true).open(&node).is_err() {
        eprintln!(
            "SKIPPED an_export_into_a_device_node_succeeds_and_leaves_the_node: cannot make or open a device node here (needs root and a mount without nodev): {}",
            String::from_utf8_lossy(&made.stderr)
        );
        return;
    }
    let dir = data_dir(tmp.path());
    let link = tmp.path().join("mystdout");
    std::os::unix::fs::symlink(&node, &link).expect("symlink");
    for path in [&node, &link] {
        let out = export(&dir, path);
        assert!(out.status.success(), "{}: {out:?}", path.display());
    }
    assert!(std::fs::symlink_metadata(&node)
        .expect("the node is still there")
        .file_type()
        .is_char_device());
    assert!(std::fs::symlink_metadata(&link)
        .expect("the link is still there")
        .file_type()
        .is_symlink());
}

#[test]
fn an_export_filter_that_is_no_tenant_name_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(tmp.path());
    let out_file = tmp.path().join("out.jsonl");
    let out = ttlcask(&[
        "export",
        "--data-dir",
        s(&dir),
        "--tenant",
        "bad name!",
        "-o",
        s(&out_file),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"invalid tenant name "bad name!""#),
        "the admin API's message: {out:?}"
    );
    assert!(!out_file.exists(), "nothing written");
}

/// `-o -` is standard output (it wrote a file named `-`: found from outside, twelfth
/// session).
#[test]
fn an_export_to_dash_goes_to_standard_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(tmp.path());
    let out = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .current_dir(tmp.path())
        .args(["export", "--data-dir", s(&dir), "-o", "-"])
        .output()
        .expect("run ttlcask");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("\"key\"")).count(),
        3,
        "{text}"
    );
    assert!(!tmp.path().join("-").exists(), "a file named - was written");
}
