//! Request bodies in flight share one memory budget (`[limits] body_budget_bytes`), one
//! tenant at most half of it: past it a body waits briefly, then gets 503 with
//! `Retry-After` in its API's error shape, and nothing of it is stored. The budget comes
//! back when a body is done with. A body limit above one tenant's half is refused at start.

mod common;

use std::time::Duration;

use common::{open_store, start_with, DOC_NOW_MS, SAMPLE_JWT};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use ttlcask::Config;
use ttlcask_engine::ManualClock;

const BUDGET: u64 = 100_000;

fn token_for(org: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "https://session.firebase.google.com/akka-cache", "org": org}),
        &jsonwebtoken::EncodingKey::from_secret(b"your-256-bit-secret"),
    )
    .expect("sign")
}

fn post_head(path: &str, jwt: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {jwt}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_flight_share_one_budget_and_one_tenant_gets_half() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(DOC_NOW_MS);
    let store = open_store(dir.path(), &clock);
    let mut config = Config::new(true);
    config.limits.body_budget_bytes = BUDGET;
    // Every body limit must fit one tenant's half (a larger one is refused at start).
    config.limits.akka_value_bytes = (BUDGET / 2) as usize;
    config.limits.akka_json_body_bytes = (BUDGET / 2) as usize;
    config.limits.iron_body_bytes = (BUDGET / 2) as usize;
    let s = start_with(store, dir.path(), config, clock).await;
    let other = token_for("otherorg");
    let third = token_for("thirdorg");

    // Tenant ttorg starts a 40 kB upload and stalls half-way: it holds 40 kB of the budget.
    let mut stalled = TcpStream::connect(s.addr).await.expect("connect");
    stalled
        .write_all(post_head("/c/slow", SAMPLE_JWT, 40_000).as_bytes())
        .await
        .expect("head");
    stalled.write_all(&[b'a'; 10_000]).await.expect("part");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The same tenant cannot take more than half (50 kB): 40 + 20 is refused.
    let auth = format!("Bearer {SAMPLE_JWT}");
    let octet = ("Content-Type", "application/octet-stream");
    let r = s
        .req(
            "POST",
            "/c/more",
            &[("Authorization", &auth), octet],
            &[b'b'; 20_000],
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert!(r.text().contains("retry"), "{}", r.text());
    // Another tenant can use its own half: 40 + 50 = 90 kB of 100.
    let other_auth = format!("Bearer {other}");
    let r = s
        .req(
            "POST",
            "/c/big",
            &[("Authorization", &other_auth), octet],
            &[b'c'; 50_000],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // ... but only while the whole budget lasts, in every API's shape: IronCache and Flash
    // bodies count too (a 20 kB Iron body from a third tenant: 40 + 20 + 50 > 100 while
    // a second stalled upload of the other tenant holds 50 kB).
    let mut stalled2 = TcpStream::connect(s.addr).await.expect("connect");
    stalled2
        .write_all(post_head("/c/slow2", &other, 50_000).as_bytes())
        .await
        .expect("head");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third_auth = format!("Bearer {third}");
    let r = s
        .req(
            "POST",
            "/c/third",
            &[("Authorization", &third_auth), octet],
            &[b'd'; 20_000],
        )
        .await;
    assert_eq!(r.status, 503, "the whole budget is held: {}", r.text());
    let iron = json!({"value": "x".repeat(15_000)}).to_string();
    let r = s
        .req(
            "PUT",
            "/1/projects/4ccf2c5da3c0f1a4d1000011/caches/c/items/k",
            &[("Authorization", "OAuth abc4c7c627376858")],
            iron.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.json()["msg"].as_str().is_some(),
        "IronCache's error shape"
    );
    assert_eq!(r.header("Retry-After"), Some("1"));

    // A small body (declared, at most 4 KiB) is not counted: the other tenant, which holds
    // its whole half, still stores one.
    let r = s
        .req(
            "POST",
            "/c/small",
            &[("Authorization", &other_auth), octet],
            &[b's'; 4096],
        )
        .await;
    assert_eq!(r.status, 201, "a small body is not held back: {}", r.text());
    let r = s
        .req("GET", "/c/small", &[("Authorization", &other_auth)], b"")
        .await;
    assert_eq!(r.body.len(), 4096);

    // Nothing of the refused bodies was stored.
    for (path, auth) in [("/c/more", &auth), ("/c/third", &third_auth)] {
        let r = s.req("GET", path, &[("Authorization", auth)], b"").await;
        assert_eq!(r.status, 404, "{path}");
    }

    // The stalled uploads end (one finishes, one is abandoned): the budget comes back.
    stalled.write_all(&[b'a'; 30_000]).await.expect("rest");
    let mut answer = vec![0; 12];
    tokio::io::AsyncReadExt::read_exact(&mut stalled, &mut answer)
        .await
        .expect("answer");
    assert_eq!(&answer, b"HTTP/1.1 201");
    drop(stalled);
    drop(stalled2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s
        .req(
            "POST",
            "/c/more",
            &[("Authorization", &auth), octet],
            &[b'b'; 20_000],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s
        .req(
            "PUT",
            "/1/projects/4ccf2c5da3c0f1a4d1000011/caches/c/items/k",
            &[("Authorization", "OAuth abc4c7c627376858")],
            iron.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

// Found from outside (twelfth session): with `body_budget_bytes = 1048576` and the default
// limits, a 524289-byte Akka body got 503 `Retry-After: 1` for ever (it can never fit one
// tenant's half), and the server started without a word.
#[test]
fn a_body_limit_above_one_tenants_half_of_the_budget_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ttlcask.toml");
    std::fs::write(
        &config,
        "dev = true\nlisten = \"127.0.0.1:0\"\n[limits]\nbody_budget_bytes = 1048576\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ttlcask"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TTLCASK_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started with body limits its budget can never hold");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("akka_value_bytes = 8388608")
            && stderr.contains("above half of body_budget_bytes = 1048576")
            && stderr.contains("at least 33554432"),
        "{stderr}"
    );
    assert!(
        !data.exists(),
        "no data dir is created for a refused config"
    );
}
