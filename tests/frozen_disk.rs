//! A frozen file system (`fsfreeze`, as snapshot tools hold one; a stalled device does the
//! same to a write): the writes wait, and everything else goes on. Found from outside: with
//! one durable PUT held in its `pwrite`, every GET of the server hung until the file system
//! was thawed, because the write held the index lock while it wrote. And nothing said that
//! writes waited: `/healthz` and `/metrics` now do, once a write has waited a second.
//!
//! As root, on a loop-mounted ext4 (tmpfs cannot be frozen) holding the data dir of the real
//! `ttlcask serve` binary; skips LOUDLY (a line on stderr, then passes) where it is not root
//! or mounting or freezing is refused. The file system is always thawed before the server is
//! stopped and the disk unmounted, also when the test fails.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{request_bytes, try_raw, Resp, SAMPLE_JWT};

/// How long a read may take while a write waits before the test calls it hung.
const READ_PATIENCE: Duration = Duration::from_secs(5);

use common::ServerProcess as Server;

/// Thaws the file system when dropped (a process blocked on a frozen file system cannot be
/// killed, so this guard is dropped before the server's).
struct Frozen(PathBuf);

impl Frozen {
    fn freeze(point: &Path) -> Result<Self, String> {
        let out = Command::new("fsfreeze")
            .arg("-f")
            .arg(point)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("fsfreeze: {e}"))?;
        if out.status.success() {
            Ok(Self(point.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0).status();
    }
}

async fn start(data: &Path) -> Server {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let child = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(["serve", "--dev", "--durability", "always", "--listen"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ttlcask serve");
    let mut server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(send(addr, "GET", "/healthz", b"").await, Ok(r) if r.status == 200) {
        assert!(
            server.child.try_wait().expect("try_wait").is_none(),
            "the server exited while starting"
        );
        assert!(Instant::now() < deadline, "server not healthy within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

/// One Akka request on cache `frozen` with the sample token.
async fn send(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> std::io::Result<Resp> {
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/octet-stream"),
    ];
    try_raw(addr, &request_bytes(addr, method, path, &headers, body)).await
}

/// A server on a fresh 32 MiB ext4 (dropped in the order server, mount, directory); `None`
/// after a SKIPPED line where that cannot be had (not root, mounting refused).
async fn mounted_server() -> Option<(tempfile::TempDir, common::Mount, Server)> {
    if !common::is_root() {
        eprintln!("SKIPPED frozen_disk: needs root to mount and freeze a file system");
        return None;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = common::mount_ext4(tmp.path(), 32)
        .map_err(|e| eprintln!("SKIPPED frozen_disk: mounting an ext4 image was refused: {e}"))
        .ok()?;
    let server = start(&mnt.point.join("data")).await;
    Some((tmp, mnt, server))
}

/// `send` that must answer within [`READ_PATIENCE`].
async fn answered(addr: SocketAddr, method: &str, path: &str) -> Resp {
    match tokio::time::timeout(READ_PATIENCE, send(addr, method, path, b"")).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("{method} {path} failed while a write waited: {e}"),
        Err(_) => panic!("{method} {path} hung while a write waited on the frozen disk"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_while_a_durable_write_waits_on_a_frozen_file_system() {
    let Some((_tmp, mnt, server)) = mounted_server().await else {
        return;
    };
    let addr = server.addr;
    let put = send(addr, "POST", "/frozen/a", b"old")
        .await
        .expect("PUT a");
    assert_eq!(put.status, 201, "{}", put.text());

    let frozen = match Frozen::freeze(&mnt.point) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("SKIPPED frozen_disk: fsfreeze was refused: {e}");
            return;
        }
    };
    let waiting = tokio::spawn(async move { send(addr, "POST", "/frozen/a", b"new").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a durable write on a frozen file system must wait: {:?}",
        waiting.await
    );

    let get = answered(addr, "GET", "/frozen/a").await;
    assert_eq!(
        (get.status, get.body.as_slice()),
        (200, b"old".as_slice()),
        "a read while the write waits answers the value before it"
    );
    let other = answered(addr, "GET", "/frozen/missing").await;
    assert_eq!(other.status, 404, "{}", other.text());
    let health = answered(addr, "GET", "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.text());
    // The wait is reported once it has lasted a second (polled for up to 5 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    let waited = loop {
        let health = answered(addr, "GET", "/healthz").await;
        assert_eq!(health.status, 200, "{}", health.text());
        let waited = health.json()["disk_waiting_ms"].as_u64();
        if waited.is_some() || Instant::now() > deadline {
            break waited;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        waited.is_some_and(|ms| ms >= 1000),
        "/healthz reports the write waiting: {waited:?}"
    );
    let metrics = answered(addr, "GET", "/metrics").await.text();
    assert!(
        !metrics.contains("ttlcask_disk_waiting_milliseconds 0\n"),
        "/metrics reports it too: {metrics}"
    );

    drop(frozen);
    let put = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the write answers once the file system is thawed")
        .expect("the request task")
        .expect("the write's answer");
    assert!(
        matches!(put.status, 200 | 201),
        "{} {}",
        put.status,
        put.text()
    );
    let get = answered(addr, "GET", "/frozen/a").await;
    assert_eq!(get.body, b"new", "the write that waited is stored");
    let health = answered(addr, "GET", "/healthz").await.json();
    assert_eq!(health.get("disk_waiting_ms"), None, "{health}");
    drop(server);
    drop(mnt);
}

/// Found from outside: with four durable PUTs arriving at once on the frozen file system,
/// every request (`/healthz`, GETs, even the shutdown signal) hung until the thaw in about a
/// third of the tries: the runtime thread held in `pwrite` had been the one polling the
/// sockets, and the other slept until a task came, which none could (`faults::StallWatch`
/// now wakes it). Cycles of freeze, four PUTs, a read and `/healthz`, thaw; without the
/// watch a run of these cycles hung in 3 of 10 (outside) and 1 of 10 to 1 of 40 (here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_while_several_durable_writes_wait_on_a_frozen_file_system() {
    const CYCLES: usize = 20;
    let Some((_tmp, mnt, server)) = mounted_server().await else {
        return;
    };
    let addr = server.addr;
    let put = send(addr, "POST", "/frozen/pre", b"pre")
        .await
        .expect("PUT pre");
    assert_eq!(put.status, 201, "{}", put.text());
    for cycle in 0..CYCLES {
        let frozen = match Frozen::freeze(&mnt.point) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("SKIPPED frozen_disk: fsfreeze was refused: {e}");
                return;
            }
        };
        let puts: Vec<_> = (0..4)
            .map(|i| {
                let path = format!("/frozen/k{cycle}-{i}");
                tokio::spawn(async move { send(addr, "POST", &path, b"v").await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let health = answered(addr, "GET", "/healthz").await;
        assert_eq!(health.status, 200, "cycle {cycle}: {}", health.text());
        let get = answered(addr, "GET", "/frozen/pre").await;
        assert_eq!(get.body, b"pre", "cycle {cycle}");
        drop(frozen);
        for put in puts {
            let r = tokio::time::timeout(Duration::from_secs(20), put)
                .await
                .expect("the write answers once the file system is thawed")
                .expect("the request task")
                .expect("the write's answer");
            assert_eq!(r.status, 201, "cycle {cycle}: {}", r.text());
        }
    }
    drop(server);
    drop(mnt);
}
