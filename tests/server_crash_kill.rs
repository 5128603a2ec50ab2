//! Kill -9 the real `ttlcask serve` binary while four connections write through all three
//! APIs (IronCache PUT, Akka binary POST, Flash add), restart it on the same data dir, and
//! check that every write that got its 2xx is readable with its value.
//!
//! Durability is the default (`always`), so a 2xx means the write was fsynced. Trials:
//! `TTLCASK_SERVER_CRASH_TRIALS` (default 5); each writes for a random 50–1500 ms.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{request_bytes, try_raw, Resp, SAMPLE_JWT};

const WRITERS: usize = 4;
const PROJECT: &str = "0123456789abcdef01234567";
const IRON_AUTH: &str = "OAuth abc4c7c627376858";
const FLASH_CLIENT_ID: &str = "v1:uid_79aec251cd938b1313d7f74611f2c0d1abf894f1";
const FLASH_API_KEY: &str = "v1:api_c1c9676fc333043a298551158a22ce64a2796d54";

/// Which API a write went through; each is read back through the same API.
#[derive(Debug, Clone, Copy)]
enum Api {
    Iron,
    Akka,
    Flash,
}

#[derive(Debug, Clone)]
struct Write {
    api: Api,
    key: String,
    value: String,
}

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("addr")
}

fn start(dir: &std::path::Path, addr: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(["serve", "--dev", "--log", "warn", "--listen"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ttlcask serve")
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    try_raw(addr, &request_bytes(addr, method, path, headers, body)).await
}

async fn wait_healthy(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = send(addr, "GET", "/healthz", &[], b"").await {
            if r.status == 200 {
                return;
            }
        }
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "server exited before it was healthy"
        );
        assert!(Instant::now() < deadline, "server not healthy within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn flash_headers(key: &str) -> [(&'static str, &str); 4] {
    [
        ("ClientId", FLASH_CLIENT_ID),
        ("Authorization", FLASH_API_KEY),
        ("DataKey", key),
        ("Content-Type", "application/json"),
    ]
}

/// Sends `w`; `Ok(true)` when the server acknowledged it with a 2xx.
async fn write(addr: SocketAddr, w: &Write) -> std::io::Result<bool> {
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let r = match w.api {
        Api::Iron => {
            let body = serde_json::json!({ "value": w.value }).to_string();
            let path = format!("/1/projects/{PROJECT}/caches/crash/items/{}", w.key);
            let h = [
                ("Authorization", IRON_AUTH),
                ("Content-Type", "application/json"),
            ];
            send(addr, "PUT", &path, &h, body.as_bytes()).await?
        }
        Api::Akka => {
            let h = [
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/octet-stream"),
            ];
            let path = format!("/crash/{}", w.key);
            send(addr, "POST", &path, &h, w.value.as_bytes()).await?
        }
        Api::Flash => {
            let h = flash_headers(&w.key);
            send(addr, "POST", "/v1/cache/add", &h, w.value.as_bytes()).await?
        }
    };
    Ok((200..300).contains(&r.status))
}

/// Reads `w` back through its API; `None` when it is missing.
async fn read(addr: SocketAddr, w: &Write) -> Option<String> {
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let r = match w.api {
        Api::Iron => {
            let path = format!("/1/projects/{PROJECT}/caches/crash/items/{}", w.key);
            send(addr, "GET", &path, &[("Authorization", IRON_AUTH)], b"").await
        }
        Api::Akka => {
            let path = format!("/crash/{}", w.key);
            send(
                addr,
                "GET",
                &path,
                &[("Authorization", bearer.as_str())],
                b"",
            )
            .await
        }
        Api::Flash => {
            let h = flash_headers(&w.key);
            send(addr, "GET", "/v1/cache/get", &h[..3], b"").await
        }
    }
    .expect("read after restart");
    if r.status == 404 {
        return None;
    }
    assert_eq!(r.status, 200, "{w:?}: {r:?}");
    Some(match w.api {
        Api::Iron => r.json()["value"]
            .as_str()
            .expect("string value")
            .to_string(),
        Api::Akka | Api::Flash => r.text(),
    })
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn trial(n: usize, seed: &mut u64) -> usize {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let mut child = start(dir.path(), addr);
    wait_healthy(addr, &mut child).await;

    let acked: Arc<Mutex<Vec<Write>>> = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let acked = acked.clone();
            tokio::spawn(async move {
                for i in 0u64.. {
                    let api = [Api::Iron, Api::Akka, Api::Flash][(i as usize + t) % 3];
                    let key = format!("t{t}-{i}");
                    // Flash bodies must be JSON; the others are any bytes.
                    let value = format!("{{\"k\":\"{}\"}}", key.repeat(1 + i as usize % 5));
                    let w = Write { api, key, value };
                    match write(addr, &w).await {
                        Ok(true) => acked.lock().expect("lock").push(w),
                        Ok(false) => panic!("write refused while the server was up: {w:?}"),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    let kill_after = Duration::from_millis(50 + xorshift(seed) % 1450);
    tokio::time::sleep(kill_after).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    for w in writers {
        w.await.expect("writer task");
    }

    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    let addr = free_addr();
    let mut child = start(dir.path(), addr);
    wait_healthy(addr, &mut child).await;
    let acked = Arc::new(acked);
    let readers: Vec<_> = (0..WRITERS)
        .map(|r| {
            let acked = acked.clone();
            tokio::spawn(async move {
                for w in acked.iter().skip(r).step_by(WRITERS) {
                    let got = read(addr, w).await;
                    assert_eq!(
                        got.as_deref(),
                        Some(w.value.as_str()),
                        "trial {n}: acknowledged write lost after kill -9: {w:?}"
                    );
                }
            })
        })
        .collect();
    for r in readers {
        r.await.expect("reader task");
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    acked.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    let trials: usize = std::env::var("TTLCASK_SERVER_CRASH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        | 1;
    println!("server kill -9: seed {seed}");
    let started = Instant::now();
    let mut total = 0;
    for n in 0..trials {
        total += trial(n, &mut seed).await;
    }
    println!(
        "server kill -9: {trials} trials, {total} acknowledged writes checked, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(total > 0 || trials == 0, "no write was acknowledged at all");
}
