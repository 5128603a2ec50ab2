//! `ttlcask stats`, `compact`, `verify`, `export` and `import` on stopped data dirs, run as
//! the real binary.

use std::process::Command;

use ttlcask_engine::{PutOptions, Store};

/// Opens a store, waiting up to 2 s while the lock is held: a child process that another test
/// starts holds a copy of every open descriptor, the lock file's too, between its fork and
/// its exec, and with it the `flock` of a store this test has just closed.
fn open_when_free(open: impl Fn() -> Result<Store, ttlcask_engine::OpenError>) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match open() {
            Err(ttlcask_engine::OpenError::Locked { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened.expect("open"),
        }
    }
}

/// [`ttlcask`] on a data dir a store of this process just let go: the lock may still be
/// held for a moment (a child another test forks shares the lock's file until it execs), and
/// the command would take it for a running server's (it failed a CI run once).
fn ttlcask_when_free(args: &[&str]) -> std::process::Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let out = ttlcask(args);
        let locked = String::from_utf8_lossy(&out.stderr).contains("locked by a running server");
        if out.status.success() || !locked || std::time::Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn ttlcask(args: &[&str]) -> std::process::Output {
    ttlcask_in(std::path::Path::new("."), args)
}

/// Runs the binary from `cwd`, without any `TTLCASK_*` setting of the caller's environment.
fn ttlcask_in(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ttlcask"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TTLCASK_") {
            command.env_remove(name);
        }
    }
    command
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run ttlcask")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON a command that succeeded printed.
fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn maintenance_commands_work_on_a_stopped_data_dir() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let (da, db) = (a.path().join("data"), b.path().join("data"));
    {
        let store = open_when_free(|| Store::open(&da));
        let ns = ttlcask::namespace::akka_cache("ttorg", "orders");
        for i in 0..20u32 {
            store
                .put(
                    &ns,
                    format!("k{i}").as_bytes(),
                    &[i as u8; 50],
                    PutOptions::default(),
                )
                .expect("put");
        }
    }
    let da_s = da.to_str().expect("utf-8 path");
    let stats = ttlcask(&["stats", "--data-dir", da_s]);
    assert!(stats.status.success(), "{stats:?}");
    assert!(
        stderr(&stats).contains(&format!("using data dir {da_s}")),
        "says which dir it used: {stats:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("json");
    assert_eq!(v["items"], 20);

    let compact = ttlcask(&["compact", "--data-dir", da_s]);
    assert!(compact.status.success(), "{compact:?}");

    let verify = ttlcask(&["verify", "--data-dir", da_s]);
    assert!(verify.status.success(), "{verify:?}");

    let dump = a.path().join("dump.jsonl");
    let export = ttlcask(&[
        "export",
        "--data-dir",
        da_s,
        "-o",
        dump.to_str().expect("utf-8"),
    ]);
    assert!(export.status.success(), "{export:?}");
    let import = ttlcask(&[
        "import",
        "--data-dir",
        db.to_str().expect("utf-8"),
        "-i",
        dump.to_str().expect("utf-8"),
        "--batch",
        "7",
    ]);
    assert!(import.status.success(), "{import:?}");
    let again = b.path().join("again.jsonl");
    let export2 = ttlcask(&[
        "export",
        "--data-dir",
        db.to_str().expect("utf-8"),
        "-o",
        again.to_str().expect("utf-8"),
    ]);
    assert!(export2.status.success(), "{export2:?}");
    assert_eq!(
        std::fs::read(&dump).expect("dump"),
        std::fs::read(&again).expect("again"),
        "export → import → export round-trips exactly"
    );

    // Damage one byte of a segment: verify reports it and exits non-zero, changing nothing.
    let seg = std::fs::read_dir(&db)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a segment");
    let mut bytes = std::fs::read(&seg).expect("read");
    let at = bytes.len() - 30;
    bytes[at] ^= 0x55;
    std::fs::write(&seg, &bytes).expect("write");
    let verify = ttlcask(&["verify", "--data-dir", db.to_str().expect("utf-8")]);
    assert!(!verify.status.success(), "{verify:?}");
    assert!(String::from_utf8_lossy(&verify.stderr).contains("damaged"));
    assert_eq!(
        std::fs::read(&seg).expect("read"),
        bytes,
        "verify is read-only"
    );
}

// Issue 11: `tenant create acme --config /etc/ttlcask/ttlcask.toml` run from another directory
// (the sample config says `./ttlcask-data`) exited 0 and wrote into a new, empty store no
// server reads; `stats`, `export` and `tenant list --data-dir /typo` printed empty output.
#[test]
fn admin_commands_never_create_a_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("typo");
    let m = missing.to_str().expect("utf-8 path");
    let commands: [&[&str]; 10] = [
        &["tenant", "create", "acme"],
        &["tenant", "list"],
        &["credential", "create", "--tenant", "acme", "--api", "iron"],
        &["credential", "list"],
        &["credential", "revoke", "0123456789ab"],
        &["stats"],
        &["compact"],
        &["export"],
        &["verify"],
        &["export", "-o", "/dev/null"],
    ];
    for args in commands {
        let mut full = args.to_vec();
        full.extend(["--data-dir", m]);
        let out = ttlcask(&full);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(stderr(&out).contains(m), "{args:?} names the dir: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert!(!missing.exists(), "{args:?} created the dir");
    }
    // A dir that cannot be read is not called missing (found from outside: a disk that
    // failed every read was "no data dir"). Here a path through a regular file (ENOTDIR; an
    // I/O error takes the same way), and a regular file itself.
    let file = tmp.path().join("file");
    std::fs::write(&file, "").expect("file");
    let through = file.join("data");
    for (dir, says) in [
        (&through, "cannot read the data dir"),
        (&file, "is not a directory"),
    ] {
        let out = ttlcask(&["stats", "--data-dir", dir.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(stderr(&out).contains(says), "{dir:?}: {out:?}");
        assert!(!stderr(&out).contains("no data dir"), "{dir:?}: {out:?}");
    }
    // The relative default of a config file, from another working directory.
    let config = tmp.path().join("ttlcask.toml");
    std::fs::write(&config, "data_dir = \"./ttlcask-data\"\n").expect("config");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let out = ttlcask_in(
        &elsewhere,
        &[
            "tenant",
            "create",
            "acme",
            "--config",
            config.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let expected = elsewhere.join("ttlcask-data");
    assert!(
        stderr(&out).contains(expected.to_str().expect("utf-8")),
        "names the absolute dir it looked for: {out:?}"
    );
    assert!(!expected.exists());
    // import is the one admin command that creates a data dir.
    let dump = tmp.path().join("empty.jsonl");
    std::fs::write(&dump, "").expect("dump");
    let out = ttlcask(&[
        "import",
        "--data-dir",
        m,
        "-i",
        dump.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(stderr(&out).contains(m), "{out:?}");
    assert!(missing.is_dir());
}

#[test]
fn a_locked_data_dir_points_at_the_server_holding_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    // Held as a running server holds it; its admin token is there, but nothing listens on
    // the address the config gives.
    let _held = open_when_free(|| Store::open(&dir));
    std::fs::write(dir.join("admin.token"), "t").expect("token");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = tmp.path().join("ttlcask.toml");
    std::fs::write(&config, format!("listen = \"127.0.0.1:{port}\"\n")).expect("config");
    let d = dir.to_str().expect("utf-8 path");
    for args in [&["stats"][..], &["tenant", "list"], &["export"]] {
        let mut full = args.to_vec();
        full.extend(["--data-dir", d, "--config", config.to_str().expect("utf-8")]);
        let out = ttlcask(&full);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("data dir {d} is locked by a running server")),
            "{args:?}: {err}"
        );
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(err.contains("--server"), "says how to reach it: {err}");
    }
}

/// Every file of `dir` with its size, sorted by name.
fn files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut list: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            let len = e.metadata().expect("metadata").len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    list.sort();
    list
}

// Issue 11: 20 runs of `tenant list` left 21 segment and hint pairs.
#[test]
fn read_only_commands_leave_the_data_dir_as_it_was() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let d = dir.to_str().expect("utf-8 path");
    {
        let store = open_when_free(|| Store::open(&dir));
        let ns = ttlcask::namespace::akka_cache("ttorg", "orders");
        for i in 0..50u32 {
            store
                .put(&ns, format!("k{i}").as_bytes(), b"v", PutOptions::default())
                .expect("put");
        }
    }
    let created = ttlcask(&["tenant", "create", "acme", "--data-dir", d]);
    assert!(created.status.success(), "{created:?}");
    let before = files(&dir);
    for _ in 0..20 {
        let out = ttlcask(&["tenant", "list", "--data-dir", d]);
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("acme"));
        assert!(stderr(&out).contains("read-only"), "{out:?}");
    }
    let dump = tmp.path().join("dump.jsonl");
    let dump_s = dump.to_str().expect("utf-8");
    let commands: [&[&str]; 4] = [
        &["credential", "list"],
        &["stats"],
        &["export", "-o", dump_s],
        &["verify"],
    ];
    for args in commands {
        let mut full = args.to_vec();
        full.extend(["--data-dir", d]);
        let out = ttlcask(&full);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    assert_eq!(
        files(&dir),
        before,
        "no file created, removed or changed in size"
    );
    let exported = std::fs::read_to_string(&dump).expect("dump");
    assert_eq!(
        exported.lines().filter(|l| l.contains("\"key\"")).count(),
        51
    );
}

#[test]
fn import_into_a_stopped_dir_keeps_versions_and_a_rerun_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    {
        let store = open_when_free(|| Store::open(&src));
        let ns = ttlcask::namespace::akka_cache("ttorg", "orders");
        for i in 0..30u32 {
            store
                .put(&ns, format!("k{i}").as_bytes(), b"v", PutOptions::default())
                .expect("put");
        }
    }
    let dump = tmp.path().join("dump.jsonl");
    let (dump_s, dst_s) = (dump.to_str().expect("utf-8"), dst.to_str().expect("utf-8"));
    let out = ttlcask(&[
        "export",
        "--data-dir",
        src.to_str().expect("utf-8"),
        "-o",
        dump_s,
    ]);
    assert!(out.status.success(), "{out:?}");
    let import = |what: &str| {
        let out = ttlcask(&["import", "--data-dir", dst_s, dump_s, "--batch", "7"]);
        assert!(out.status.success(), "{what}: {out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("report")
    };
    // The batch sizes the admin API refuses are refused here too, before anything is
    // written (0 was taken as one line per batch, and a bad third line left two stored:
    // found from outside).
    for batch in ["0", "100001", "x"] {
        let out = ttlcask(&["import", "--data-dir", dst_s, dump_s, "--batch", batch]);
        assert!(!out.status.success(), "--batch {batch}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("use 1 to 100000"), "--batch {batch}: {err}");
        assert!(
            !dst.exists() || files(&dst).is_empty(),
            "--batch {batch} wrote"
        );
    }
    let first = import("first");
    assert_eq!(
        (first["imported"].as_u64(), first["kept"].as_u64()),
        (Some(30), Some(0))
    );
    let files_after_first = files(&dst);
    let again = import("re-run");
    assert_eq!(
        (
            again["imported"].as_u64(),
            again["kept"].as_u64(),
            again["batches"].as_u64()
        ),
        (Some(0), Some(30), Some(0)),
        "{again}"
    );
    // Opening a store for writing starts a segment; the re-run appended nothing to it.
    const SEGMENT_HEADER: u64 = 72;
    let after_rerun = files(&dst);
    // (The seal log is written anew by every open for writing, and names the segment it
    // starts.)
    for (name, len) in files_after_first.iter().filter(|(n, _)| n != "seals.log") {
        assert!(
            after_rerun.contains(&(name.clone(), *len)),
            "{name} changed"
        );
    }
    for (name, len) in &after_rerun {
        if name.ends_with(".seg") && !files_after_first.iter().any(|(n, _)| n == name) {
            assert_eq!(
                *len, SEGMENT_HEADER,
                "{name} holds records: {after_rerun:?}"
            );
        }
    }
    let store = open_when_free(|| Store::builder().read_only(true).open(&src));
    let target = open_when_free(|| Store::builder().read_only(true).open(&dst));
    let ns = ttlcask::namespace::akka_cache("ttorg", "orders");
    for i in 0..30u32 {
        let key = format!("k{i}");
        let a = store.get(&ns, key.as_bytes()).expect("get").expect("item");
        let b = target.get(&ns, key.as_bytes()).expect("get").expect("item");
        assert_eq!((a.version, a.expires_at_ms), (b.version, b.expires_at_ms));
    }
    drop(target);
    // Keys the target deleted after the import stay deleted when it is run again.
    {
        let target = open_when_free(|| Store::open(&dst));
        for i in 0..3u32 {
            assert!(target
                .delete(&ns, format!("k{i}").as_bytes())
                .expect("delete"));
        }
    }
    let third = import("after deletes");
    assert_eq!(
        (third["imported"].as_u64(), third["kept"].as_u64()),
        (Some(0), Some(30)),
        "{third}"
    );
    let target = open_when_free(|| Store::builder().read_only(true).open(&dst));
    for i in 0..3u32 {
        let key = format!("k{i}");
        assert_eq!(target.get(&ns, key.as_bytes()).expect("get"), None, "{key}");
    }
}

/// `tenant create --flash-client-id` keeps a ClientId that existing Flash clients send; a
/// ClientId another tenant has, or one with spaces, is refused and creates nothing.
#[test]
fn a_tenant_can_keep_its_flash_client_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    drop(open_when_free(|| Store::open(&data)));
    let d = data.to_str().expect("utf-8 path");
    let acme = json(&ttlcask_when_free(&[
        "tenant",
        "create",
        "acme",
        "--flash-client-id",
        "v1:uid_kept",
        "--data-dir",
        d,
    ]));
    assert_eq!(acme["flash_client_id"], "v1:uid_kept");
    let cred = json(&ttlcask(&[
        "credential",
        "create",
        "--tenant",
        "acme",
        "--api",
        "flash",
        "--data-dir",
        d,
    ]));
    assert_eq!(cred["client_id"], "v1:uid_kept");
    for (name, id, why) in [
        ("other", "v1:uid_kept", "belongs to tenant \"acme\""),
        ("spaced", "has space", "invalid Flash ClientId"),
        ("empty", "", "invalid Flash ClientId"),
    ] {
        let out = ttlcask(&[
            "tenant",
            "create",
            name,
            "--flash-client-id",
            id,
            "--data-dir",
            d,
        ]);
        assert!(!out.status.success(), "{name}: {out:?}");
        assert!(stderr(&out).contains(why), "{name}: {}", stderr(&out));
    }
    let list = json(&ttlcask(&["tenant", "list", "--data-dir", d]));
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["acme"]);
}

/// `credential list --revoked` on a stopped dir lists the records revoked credentials keep,
/// of one tenant with `--tenant` (the CLI had no way to see them).
#[test]
fn revoked_credentials_are_listed_on_a_stopped_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    drop(open_when_free(|| Store::open(&dir)));
    let d = dir.to_str().expect("utf-8 path");
    for tenant in ["acme", "beta"] {
        json(&ttlcask(&["tenant", "create", tenant, "--data-dir", d]));
    }
    let created = json(&ttlcask(&[
        "credential",
        "create",
        "--tenant",
        "acme",
        "--api",
        "iron",
        "--data-dir",
        d,
    ]));
    let id = created["credential"]["id"].as_str().expect("id");
    let listed = |args: &[&str]| {
        let mut all = vec!["credential", "list", "--data-dir", d];
        all.extend_from_slice(args);
        json(&ttlcask(&all))
    };
    assert_eq!(listed(&["--revoked"]), serde_json::json!([]));
    let out = ttlcask(&["credential", "revoke", id, "--data-dir", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let revoked = listed(&["--revoked"]);
    assert_eq!(revoked[0][0], id, "{revoked}");
    assert_eq!(revoked[0][1]["tenant"], "acme", "{revoked}");
    assert!(revoked[0][1]["revoked_ms"].as_u64().is_some(), "{revoked}");
    assert_eq!(listed(&["--revoked", "--tenant", "acme"]), revoked);
    assert_eq!(
        listed(&["--revoked", "--tenant", "beta"]),
        serde_json::json!([])
    );
    assert_eq!(
        listed(&[]),
        serde_json::json!([]),
        "no live credential left"
    );
}

/// Runs `ttlcask serve` on `dir` until it exits by itself (`Some`) or `until` holds (`None`,
/// then it is killed), for at most 20 s.
fn serve_until(dir: &std::path::Path, until: impl Fn() -> bool) -> Option<std::process::Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("TTLCASK_DATA_DIR")
        .env_remove("TTLCASK_LISTEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ttlcask serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        if until() || std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Found from outside, twelfth session: a damaged `admin.token` refused the start with
/// "invalid configuration: cannot read admin token …" while `verify` said clean.
#[test]
fn a_damaged_admin_token_is_named_by_verify_and_the_refused_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    drop(open_when_free(|| Store::open(&dir)));
    let token = dir.join("admin.token");
    std::fs::write(&token, b"0123\xff\xfe89abcdef").expect("damage the token");
    let d = dir.to_str().expect("utf-8 path");

    let verify = ttlcask(&["verify", "--data-dir", d]);
    assert_eq!(verify.status.code(), Some(1), "{verify:?}");
    let said = stderr(&verify);
    assert!(
        said.contains("admin token file") && said.contains("admin.token"),
        "{said}"
    );

    let out = serve_until(&dir, || false).expect("the start is refused");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = stderr(&out);
    for what in [
        "data dir's admin token file",
        "admin.token",
        "damaged",
        "delete it",
    ] {
        assert!(said.contains(what), "{what:?} in {said}");
    }

    // What the message says to do works: a new token, and verify is clean.
    std::fs::remove_file(&token).expect("delete");
    let new_token = || {
        std::fs::read_to_string(&token)
            .is_ok_and(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    assert!(serve_until(&dir, new_token).is_none(), "the server started");
    assert!(new_token(), "a new token was written");
    let verify = ttlcask_when_free(&["verify", "--data-dir", d]);
    assert!(verify.status.success(), "{verify:?}");
}

/// An `admin.token` that is a symbolic link to nowhere is named by `verify` and by the
/// refused start (found in a review: `verify` said clean while the start failed with "cannot
/// write admin token … No such file or directory").
#[test]
fn a_dangling_admin_token_link_is_named_by_verify_and_the_refused_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    drop(open_when_free(|| Store::open(&dir)));
    let token = dir.join("admin.token");
    let _ = std::fs::remove_file(&token);
    std::os::unix::fs::symlink(tmp.path().join("nowhere/token"), &token).expect("link");
    let d = dir.to_str().expect("utf-8 path");

    let verify = ttlcask(&["verify", "--data-dir", d]);
    assert_eq!(verify.status.code(), Some(1), "{verify:?}");
    let said = stderr(&verify);
    assert!(
        said.contains("symbolic link") && said.contains("nowhere"),
        "{said}"
    );

    let out = serve_until(&dir, || false).expect("the start is refused");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("symbolic link"), "{out:?}");
}

/// `import -` reads standard input, as `export -o -` writes standard output; a missing
/// input file is refused before anything is made (found from outside: `-` was "cannot open
/// -", and a missing file left an empty data dir behind).
#[test]
fn import_reads_stdin_from_dash_and_a_missing_file_makes_no_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let dir_s = dir.to_str().expect("utf-8");
    let missing = tmp.path().join("no-such.jsonl");
    let out = ttlcask(&[
        "import",
        "--data-dir",
        dir_s,
        missing.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("cannot open"), "{}", stderr(&out));
    assert!(
        !dir.exists(),
        "a data dir was made for an import that could not start"
    );

    let line = r#"{"tenant":"ttorg","api":"akka","cache":"orders","description":"","expires_at_ms":null,"kind":0,"version":1}"#;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(["import", "--data-dir", dir_s, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ttlcask");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{line}").expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["lines"], 1, "{report}");
}
