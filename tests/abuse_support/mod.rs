//! Helpers shared by the `abuse_*.rs` tests: a server with a tenant of each API, raw TCP
//! requests, and the check that the server still answers `/healthz`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::{self, start_on, Resp, TestServer, DOC_NOW_MS, SAMPLE_JWT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ttlcask::auth::registry::{create_credential, create_tenant, Api};
use ttlcask::Config;
use ttlcask_engine::ManualClock;

pub const P: &str = "0123456789abcdef01234567";

pub const IRON: &str = "OAuth abc4c7c627376858";

pub const FLASH_ID: &str = "v1:uid_79aec251cd938b1313d7f74611f2c0d1abf894f1";

pub const FLASH_KEY: &str = "v1:api_c1c9676fc333043a298551158a22ce64a2796d54";

pub const ISSUER: &str = "https://session.firebase.google.com/akka-cache";

pub const BOUND: Duration = Duration::from_secs(20);

pub struct Abuse {
    pub s: TestServer,
    _dir: tempfile::TempDir,
    /// tenant `acme`: an IronCache token and an Akka JWT.
    pub acme_iron: String,
    pub acme_jwt: String,
}

pub async fn start() -> Abuse {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(true);
    config.limits.max_connections = 4;
    config.limits.header_read_timeout_ms = 300;
    config.limits.body_idle_timeout_ms = 1000;
    config.limits.akka_value_bytes = 4096;
    config.akka.hs256_secret = Some("acme-secret".into());
    let mut creds = Vec::new();
    let s = start_on(dir.path(), config, ManualClock::new(DOC_NOW_MS), |store| {
        create_tenant(store, "acme").expect("tenant");
        let iron = create_credential(store, "acme", Api::Iron, None, None).expect("iron");
        creds.push(iron.secret);
        let akka = create_credential(
            store,
            "acme",
            Api::Akka,
            None,
            Some(("acme-secret", ISSUER)),
        )
        .expect("akka");
        creds.push(akka.secret);
    })
    .await;
    Abuse {
        s,
        _dir: dir,
        acme_iron: format!("OAuth {}", creds[0]),
        acme_jwt: format!("Bearer {}", creds[1]),
    }
}

/// Sends `bytes` and reads until the server closes; a server that stops reading early
/// (a refused body) must not fail the test. `None` when it closed without an answer.
pub async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Option<Resp> {
    let run = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.write_all(bytes).await;
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf).await;
        buf
    };
    let buf = tokio::time::timeout(BOUND, run)
        .await
        .expect("server answers in time");
    (!buf.is_empty()).then(|| common::parse(&buf))
}

pub async fn req(
    a: &Abuse,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let bytes = common::request_bytes(a.s.addr, method, path, headers, body);
    send_raw(a.s.addr, &bytes).await.expect("an answer")
}

/// The server still serves other clients.
pub async fn alive(a: &Abuse) {
    let r = a.s.req("GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200, "healthz after abuse: {r:?}");
}

pub async fn iron_get(a: &Abuse, auth: &str, path: &str) -> Resp {
    req(
        a,
        "GET",
        &format!("/1/projects/{P}/caches/{path}"),
        &[("Authorization", auth)],
        b"",
    )
    .await
}

pub async fn akka_get(a: &Abuse, path: &str) -> Resp {
    let bearer = format!("Bearer {SAMPLE_JWT}");
    req(a, "GET", path, &[("Authorization", &bearer)], b"").await
}

pub fn flash_headers(key: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("ClientId", FLASH_ID),
        ("Authorization", FLASH_KEY),
        ("DataKey", key),
    ]
}

/// A chunked request whose body is `total` bytes of `fill`, in 1 KiB chunks.
pub fn chunked(head: &str, total: usize, fill: u8) -> Vec<u8> {
    let mut out =
        format!("{head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    let mut left = total;
    while left > 0 {
        let n = left.min(1024);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(fill, n));
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Request headers, as name and value.
pub type Headers<'a> = Vec<(&'a str, &'a str)>;
