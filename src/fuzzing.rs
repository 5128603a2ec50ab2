//! Fuzz harness for request handling: one request built from the fuzzer's bytes is served by
//! the whole server ([`crate::run`], `--dev`) on loopback, against a fresh store on the
//! engine's simulated file system. The `fuzz/` targets call [`request`], and
//! `tests/fuzz_corpus.rs` replays `fuzz/corpus/<dialect>_request/` through it on stable.
//!
//! A bug is a panic or a 5xx answer (a handler that panicked, or an engine error on a file
//! system that never fails).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{ManualClock, Store};

use crate::Config;

/// Which API the fuzzed request is aimed at: it sets the path prefix and the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/v1/cache/…` with the sample ClientId and API key.
    Flash,
    /// `/1/projects/<id>/…` with the sample OAuth token.
    Iron,
    /// `/…` with the sample JWT.
    Akka,
}

const METHODS: [&str; 8] = [
    "GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "GET",
];
const SAMPLE_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL3Nlc3Npb24uZmlyZWJhc2UuZ29vZ2xlLmNvbS9ha2thLWNhY2hlIiwib3JnIjoidHRvcmciLCJuYW1lIjoiSm9obiBEb2UiLCJzZXJ2aWNlTGV2ZWwiOiJmcmVlIn0.rds8orVxVz149ovTxxYzFIqGmSdWJUlHONem9avKBgQ";

impl Dialect {
    fn prefix(self) -> &'static str {
        match self {
            Self::Flash => "/v1/cache/",
            Self::Iron => "/1/projects/0123456789abcdef01234567/",
            Self::Akka => "/",
        }
    }

    fn credentials(self) -> String {
        match self {
            Self::Flash => format!(
                "ClientId: {}\r\nAuthorization: {}\r\n",
                crate::auth::DEV_FLASH_CLIENT_ID,
                crate::auth::DEV_FLASH_API_KEY
            ),
            Self::Iron => format!("Authorization: OAuth {}\r\n", crate::auth::DEV_IRON_TOKEN),
            Self::Akka => format!("Authorization: Bearer {SAMPLE_JWT}\r\n"),
        }
    }

    /// A request that stores an item, so that reads, deletes and increments find one.
    fn setup(self) -> Vec<u8> {
        let (head, body): (String, &str) = match self {
            Self::Flash => ("POST /v1/cache/add".into(), "{\"a\":1}"),
            Self::Iron => (
                format!("PUT {}caches/c/items/k", self.prefix()),
                "{\"value\":7}",
            ),
            Self::Akka => ("POST /c/k".into(), "v"),
        };
        let extra = if self == Self::Flash {
            "DataKey: k\r\n"
        } else {
            ""
        };
        format!(
            "{head} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n{}{extra}Content-Length: {}\r\n\r\n{body}",
            self.credentials(),
            body.len()
        )
        .into_bytes()
    }
}

/// Builds the request from `data`: byte 0 picks the method (bit 3 set: no credentials),
/// then the path after the dialect's prefix up to `\n`, then header lines up to an empty
/// line, then the body.
pub fn request_bytes(dialect: Dialect, data: &[u8]) -> Vec<u8> {
    let Some((&sel, rest)) = data.split_first() else {
        return Vec::new();
    };
    let (path, rest) = split_line(rest);
    let mut headers = Vec::new();
    let mut rest = rest;
    loop {
        let (line, after) = split_line(rest);
        rest = after;
        if line.is_empty() {
            break;
        }
        headers.extend_from_slice(line);
        headers.extend_from_slice(b"\r\n");
    }
    let mut out = Vec::with_capacity(data.len() + 256);
    out.extend_from_slice(METHODS[usize::from(sel & 7)].as_bytes());
    out.push(b' ');
    out.extend_from_slice(dialect.prefix().as_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
    if sel & 8 == 0 {
        out.extend_from_slice(dialect.credentials().as_bytes());
    }
    out.extend_from_slice(&headers);
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", rest.len()).as_bytes());
    out.extend_from_slice(rest);
    out
}

fn split_line(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&c| c == b'\n') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
}

/// Starts [`crate::run`] (`--dev`) on a fresh store on loopback, serves the setup request,
/// then the request built from `data`; panics on a 5xx answer or a server that does not
/// stop cleanly.
pub fn request(dialect: Dialect, data: &[u8]) {
    let raw = request_bytes(dialect, data);
    if raw.is_empty() {
        return;
    }
    let store = Store::builder()
        .file_system(Arc::new(SimFs::new()))
        .segment_size(ttlcask_engine::MIN_SEGMENT_SIZE)
        .compaction_interval(None)
        .clock(ManualClock::new(1_773_221_932_000))
        .open("/data")
        .expect("open a store on SimFs");
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback");
            let addr = listener.local_addr().expect("local addr");
            let (stop, stopped) = oneshot::channel::<()>();
            let server = tokio::spawn(crate::run(listener, store, Config::new(true), async {
                let _ = stopped.await;
            }));
            let setup = send(addr, &dialect.setup()).await;
            assert!(setup.starts_with(b"HTTP/1.1 20"), "setup failed: {setup:?}");
            let resp = send(addr, &raw).await;
            let status = resp.get(9..12).unwrap_or_default();
            assert!(
                !status.starts_with(b"5"),
                "5xx for {:?}: {:?}",
                String::from_utf8_lossy(&raw),
                String::from_utf8_lossy(&resp)
            );
            let _ = stop.send(());
            server
                .await
                .expect("server task")
                .expect("the server stops cleanly");
        });
    });
}

/// One connection: writes `raw` (which asks the server to close after its answer) and
/// returns what the server answered. A request the fuzzer made incomplete (its own
/// `Transfer-Encoding`, say) gets no answer; the wait for it is cut short.
async fn send(addr: std::net::SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut client = TcpStream::connect(addr).await.expect("connect");
    // No half-close: hyper drops a connection whose client shuts its write side early.
    // The server may answer and close before reading everything (a body over a limit).
    let _ = client.write_all(raw).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut out)).await;
    out
}
