//! Test support: start `ttlcask::run` on 127.0.0.1:0 over a temp data dir, and a raw
//! HTTP/1.1 client over `TcpStream` (exact bytes, `Connection: close`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use ttlcask::{Config, ServerError};
use ttlcask_engine::{ManualClock, Store};

/// 2026-03-11T09:38:52Z: 30 days before the Flash document's `ExpiresUtc: 10/04/2026 09:38:52`.
pub const DOC_NOW_MS: u64 = 1_773_221_932_000;

/// The Akka document's sample JWT.
pub const SAMPLE_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL3Nlc3Npb24uZmlyZWJhc2UuZ29vZ2xlLmNvbS9ha2thLWNhY2hlIiwib3JnIjoidHRvcmciLCJuYW1lIjoiSm9obiBEb2UiLCJzZXJ2aWNlTGV2ZWwiOiJmcmVlIn0.rds8orVxVz149ovTxxYzFIqGmSdWJUlHONem9avKBgQ";

/// How long any single request may take before the test fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub clock: ManualClock,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
}

/// Opens a store on `dir` with a manual clock. `Locked` is tried again for up to 10 s: a
/// test of the same binary that starts a process (`mount`, the CLI) forks while this one's
/// earlier store holds its lock files, and the child holds the same `flock`s until its
/// `exec` closes them, so a reopen right after a stop found the dir locked (twice, once in
/// CI, in `admin_disk_full.rs`, whose other tests run `mount`).
pub fn open_store(dir: &Path, clock: &ManualClock) -> Store {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let opened = Store::builder()
            .clock(clock.clone())
            .compaction_interval(None)
            .open(dir);
        match opened {
            Err(ttlcask_engine::OpenError::Locked { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => return opened.expect("open store"),
        }
    }
}

/// Starts a server on `dir` with `config`, after `setup` ran on the store.
pub async fn start_on(
    dir: &Path,
    config: Config,
    clock: ManualClock,
    setup: impl FnOnce(&Store),
) -> TestServer {
    let store = open_store(dir, &clock);
    setup(&store);
    start_with(store, dir, config, clock).await
}

/// Starts a server on an open `store` (for example one on a `SimFs`); `dir` is only recorded.
pub async fn start_with(
    store: Store,
    dir: &Path,
    config: Config,
    clock: ManualClock,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(ttlcask::run(listener, store, config, async move {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        dir: dir.to_path_buf(),
        clock,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

/// A `--dev` server on a fresh temp dir, its clock at [`DOC_NOW_MS`].
pub async fn start_dev() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_on(
        dir.path(),
        Config::new(true),
        ManualClock::new(DOC_NOW_MS),
        |_| {},
    )
    .await;
    (server, dir)
}

impl TestServer {
    /// Stops the server (graceful) and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let handle = self.handle.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("server stops in time")
            .expect("server task")
    }

    /// Sends one request.
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        request(self.addr, method, path, headers, body).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes and parses the response (the server closes after it).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    parse(&raw_bytes(addr, bytes).await)
}

/// Sends raw bytes and returns every byte the server sends until it closes.
pub async fn raw_bytes(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let run = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(bytes).await.expect("write");
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.expect("read");
        buf
    };
    tokio::time::timeout(REQUEST_TIMEOUT, run)
        .await
        .expect("request timed out")
}

/// Like [`raw`], for a server that may die meanwhile: any I/O error, a timeout or a response
/// that is cut short is an `Err`.
pub async fn try_raw(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<Resp> {
    let run = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(bytes).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(REQUEST_TIMEOUT, run).await??;
    let cut = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "response cut short");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(cut)?;
    let resp = parse(&buf);
    let declared = resp
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    if buf.len() - split - 4 < declared {
        return Err(cut());
    }
    Ok(resp)
}

/// Parses one HTTP/1.1 response with a Content-Length body.
pub fn parse(buf: &[u8]) -> Resp {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if let Some((_, len)) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        body.truncate(len.parse().expect("content-length"));
    } else if headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    }) {
        body = dechunk(&body).unwrap_or_else(|| {
            panic!(
                "chunked body without its last chunk: {:?}",
                String::from_utf8_lossy(&body)
            )
        });
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// The bytes of a chunked body; `None` if it lacks its last (zero-size) chunk.
pub fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// Sends one request with `Connection: close` and a Content-Length.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    raw(addr, &request_bytes(addr, method, path, headers, body)).await
}

/// The bytes of one request with `Connection: close` and a Content-Length.
pub fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Asserts a `RequestId` of `v1:req_` + 40 lowercase hex digits.
pub fn assert_request_id(resp: &Resp) {
    let id = resp.header("RequestId").expect("RequestId header");
    let hex = id.strip_prefix("v1:req_").expect("v1:req_ prefix");
    assert_eq!(hex.len(), 40, "{id}");
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}

/// A file system mounted for a test: unmounted (and so freed) when dropped, even when the
/// test fails (lazily, where a server that did not die yet keeps it busy).
pub struct Mount {
    pub point: PathBuf,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut cmd = std::process::Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(&self.point).status().is_ok_and(|s| s.success())
        };
        if !umount(false) {
            umount(true);
        }
    }
}

/// Runs `mount` with `args` then `point`; `Err` is its message.
fn mount_command(args: &[&str], point: &Path) -> Result<(), String> {
    let out = std::process::Command::new("mount")
        .args(args)
        .arg(point)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A tmpfs with mount `options` (`size=64k`, …) at `point` (made if missing), unmounted
/// when the returned guard is dropped; `Err` is `mount`'s message.
pub fn mount_tmpfs(point: &Path, options: &str) -> Result<Mount, String> {
    std::fs::create_dir_all(point).map_err(|e| e.to_string())?;
    mount_command(&["-t", "tmpfs", "-o", options, "tmpfs"], point)?;
    Ok(Mount {
        point: point.to_path_buf(),
    })
}

/// Runs `cmd` to its end (no stdin); `Err` names it with its status and stderr.
pub fn run_command(cmd: &mut std::process::Command) -> Result<(), String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A `ttlcask serve` process and its address, killed when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loop-mounted ext4 of `megabytes` at `<dir>/mnt`, its image `<dir>/ext4.img`, unmounted
/// when the returned guard is dropped; `Err` says which step was refused.
pub fn mount_ext4(dir: &Path, megabytes: u32) -> Result<Mount, String> {
    let point = dir.join("mnt");
    std::fs::create_dir_all(&point).map_err(|e| e.to_string())?;
    let image = dir.join("ext4.img");
    run_command(
        std::process::Command::new("truncate")
            .arg("-s")
            .arg(format!("{megabytes}M"))
            .arg(&image),
    )?;
    run_command(
        std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image),
    )?;
    mount_command(
        &["-o", "loop", image.to_str().ok_or("non-UTF-8 path")?],
        &point,
    )?;
    Ok(Mount { point })
}

/// [`mount_tmpfs`] as root, else `None` after a SKIPPED line on stderr naming `test` (not
/// root, or mounting refused).
pub fn tmpfs_or_skip(test: &str, point: &Path, options: &str) -> Option<Mount> {
    if !is_root() {
        eprintln!("SKIPPED {test}: needs root to mount a tmpfs");
        return None;
    }
    mount_tmpfs(point, options)
        .map_err(|e| eprintln!("SKIPPED {test}: mounting a tmpfs was refused: {e}"))
        .ok()
}

/// Remounts `mount` with `options` (`ro`, `rw`); `Err` is `mount`'s message.
pub fn remount(mount: &Mount, options: &str) -> Result<(), String> {
    mount_command(&["-o", &format!("remount,{options}")], &mount.point)
}

/// Whether the tests run as root (mounting needs it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}
