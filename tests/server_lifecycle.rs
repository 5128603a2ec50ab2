//! The server as a process-level thing: health, restart on the same data dir, graceful
//! shutdown, `--dev` loopback rule, connection cap, header timeout, the admin endpoint and
//! the `ttlcask tenant` / `credential` commands on a stopped and on a running server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{start_on, DOC_NOW_MS, SAMPLE_JWT};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ttlcask::{Config, ServerError};
use ttlcask_engine::ManualClock;

const IRON: &str = "/1/projects/4ccf2c5da3c0f1a4d1000011/caches/c/items/k";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_data_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(DOC_NOW_MS);
    let s = start_on(dir.path(), Config::new(true), clock.clone(), |_| {}).await;
    let r = s.req("GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({ "status": "ok", "disk_full": false })
    );
    let akka = format!("Bearer {SAMPLE_JWT}");
    let iron = "OAuth abc4c7c627376858";
    assert_eq!(
        s.req(
            "POST",
            "/cacheName",
            &[("Authorization", &akka)],
            br#"{"cacheName":"keep","description":"d"}"#
        )
        .await
        .status,
        201
    );
    assert_eq!(
        s.req(
            "POST",
            "/keep/k",
            &[("Authorization", &akka)],
            b"akka value"
        )
        .await
        .status,
        201
    );
    assert_eq!(
        s.req("PUT", IRON, &[("Authorization", iron)], br#"{"value": 7}"#)
            .await
            .status,
        200
    );
    let flash = [
        (
            "ClientId",
            "v1:uid_79aec251cd938b1313d7f74611f2c0d1abf894f1",
        ),
        (
            "Authorization",
            "v1:api_c1c9676fc333043a298551158a22ce64a2796d54",
        ),
        ("DataKey", "persist"),
    ];
    assert_eq!(
        s.req("POST", "/v1/cache/add", &flash, br#"{"a":1}"#)
            .await
            .status,
        201
    );
    s.stop().await.expect("clean stop");

    let s = start_on(dir.path(), Config::new(true), clock, |_| {}).await;
    assert_eq!(
        s.req("GET", "/keep/k", &[("Authorization", &akka)], b"")
            .await
            .text(),
        "akka value"
    );
    let r = s
        .req("GET", "/cacheName/keep", &[("Authorization", &akka)], b"")
        .await;
    assert_eq!(r.json()["description"], "d");
    assert_eq!(
        s.req("GET", IRON, &[("Authorization", iron)], b"")
            .await
            .json()["value"],
        7
    );
    assert_eq!(
        s.req("GET", "/v1/cache/get", &flash, b"").await.text(),
        r#"{"a":1}"#
    );
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_refuses_a_non_loopback_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open_store(dir.path(), &ManualClock::new(DOC_NOW_MS));
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let result = ttlcask::run(
        listener,
        store,
        Config::new(true),
        std::future::pending::<()>(),
    )
    .await;
    assert!(
        matches!(result, Err(ServerError::DevNotLoopback(_))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_at_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_on(
        dir.path(),
        Config::new(true),
        ManualClock::new(DOC_NOW_MS),
        |_| {},
    )
    .await;
    // Headers sent, body still coming when shutdown starts.
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    let auth = format!("Bearer {SAMPLE_JWT}");
    let head = format!("POST /c/slow HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab");
    stream.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = s.addr;
    let stopping = tokio::spawn(s.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections once shutdown began"
    );
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the request in flight"
    );
    stream.write_all(b"cd").await.expect("finish body");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("reply")
        .expect("read");
    assert_eq!(common::parse(&buf).status, 201);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stops")
        .expect("join")
        .expect("clean");
    // The drained write is durable.
    let s = start_on(
        dir.path(),
        Config::new(true),
        ManualClock::new(DOC_NOW_MS),
        |_| {},
    )
    .await;
    assert_eq!(
        s.req("GET", "/c/slow", &[("Authorization", &auth)], b"")
            .await
            .text(),
        "abcd"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_and_header_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(true);
    config.limits.max_connections = 1;
    config.limits.header_read_timeout_ms = 300;
    let s = start_on(dir.path(), config, ManualClock::new(DOC_NOW_MS), |_| {}).await;
    // One idle connection holds the only slot; a second request waits until it goes away.
    let mut idle = TcpStream::connect(s.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial headers");
    let addr = s.addr;
    let waiting =
        tokio::spawn(async move { common::request(addr, "GET", "/healthz", &[], b"").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "the second connection waits for a slot"
    );
    // The idle one is cut by the header read timeout, which frees the slot.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "slow headers are cut off");
    let r = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served")
        .expect("join");
    assert_eq!(r.status, 200);
}

fn ttlcask(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(args)
        .env_remove("TTLCASK_CONFIG")
        .output()
        .expect("run ttlcask");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_on_a_stopped_and_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    // Stopped data dir: the command opens the store itself.
    let (ok, out, err) = ttlcask(&["tenant", "create", "acme", "--data-dir", d]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json")["name"],
        "acme"
    );
    let (ok, _, _) = ttlcask(&["tenant", "create", "acme", "--data-dir", d]);
    assert!(!ok, "a tenant is created once");
    let (ok, out, err) = ttlcask(&[
        "credential",
        "create",
        "--tenant",
        "acme",
        "--api",
        "iron",
        "--data-dir",
        d,
    ]);
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).expect("json");
    let token = created["secret"].as_str().expect("secret").to_string();
    let (ok, out, _) = ttlcask(&["credential", "list", "--data-dir", d]);
    assert!(ok);
    assert!(!out.contains(&token), "secrets are never listed");

    // Running server: the admin endpoint, through the same commands.
    let mut config = Config::new(false);
    config.admin_token_path = Some(dir.path().join("admin.token"));
    let s = start_on(dir.path(), config, ManualClock::new(DOC_NOW_MS), |_| {}).await;
    // The first answer means `run` is past start-up, which writes the token.
    assert_eq!(s.req("GET", "/healthz", &[], b"").await.status, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("admin.token"))
            .expect("token file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let auth = format!("OAuth {token}");
    assert_eq!(
        s.req(
            "PUT",
            IRON,
            &[("Authorization", &auth)],
            br#"{"value":"v"}"#
        )
        .await
        .status,
        200
    );
    assert_eq!(
        s.req("GET", "/admin/tenants", &[], b"").await.status,
        401,
        "admin needs the token"
    );

    let server = s.addr.to_string();
    let (ok, out, err) = ttlcask(&[
        "credential",
        "create",
        "--tenant",
        "acme",
        "--api",
        "flash",
        "--app",
        "promo",
        "--data-dir",
        d,
        "--server",
        &server,
    ]);
    assert!(ok, "{err}");
    let flash: Value = serde_json::from_str(&out).expect("json");
    let headers = [
        ("ClientId", flash["client_id"].as_str().expect("client id")),
        ("Authorization", flash["secret"].as_str().expect("key")),
        ("DataKey", "k"),
    ];
    assert_eq!(
        s.req("POST", "/v1/cache/add", &headers, b"{}").await.status,
        201,
        "a new key works at once"
    );

    let id = created["credential"]["id"].as_str().expect("id");
    let revoke = || {
        ttlcask(&[
            "credential",
            "revoke",
            id,
            "--data-dir",
            d,
            "--server",
            &server,
        ])
    };
    let (ok, _, err) = revoke();
    assert!(ok, "{err}");
    assert_eq!(
        s.req("GET", IRON, &[("Authorization", &auth)], b"")
            .await
            .status,
        401,
        "revoked at once"
    );
    // Again: an error that says so, not "no credential" (its record is kept).
    let (ok, _, err) = revoke();
    assert!(!ok && err.contains("already revoked"), "{err}");
    // Listed among the revoked (of its tenant only), through the server.
    let revoked = |tenant: &str| {
        let (ok, out, err) = ttlcask(&[
            "credential",
            "list",
            "--revoked",
            "--tenant",
            tenant,
            "--data-dir",
            d,
            "--server",
            &server,
        ]);
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out).expect("json")
    };
    let acme = revoked("acme");
    assert_eq!(acme[0][0], id, "{acme}");
    assert_eq!(acme[0][1]["tenant"], "acme", "{acme}");
    assert_eq!(revoked("ttorg"), serde_json::json!([]));
    let (ok, out, _) = ttlcask(&["tenant", "list", "--data-dir", d, "--server", &server]);
    assert!(ok && out.contains("acme"));
}

/// Found from outside: with standard error on a full disk (the server's log in its data
/// partition), a failed log write panicked the task of the request that logged, and the
/// client got no answer. `/dev/full` fails every write with ENOSPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_written_costs_log_lines_not_requests() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("SKIPPED: no /dev/full here");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("addr")
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(["serve", "--dev", "--log", "debug", "--listen"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(full)
        .spawn()
        .expect("spawn ttlcask serve");
    let mut up = false;
    for _ in 0..300 {
        if let Ok(r) = common::try_raw(
            addr,
            &common::request_bytes(addr, "GET", "/healthz", &[], b""),
        )
        .await
        {
            up = r.status == 200;
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the server did not come up: {:?}", child.try_wait());
    // Every request logs at debug; a refused one (405, 404) and a stored one answer.
    let iron = [("Authorization", "OAuth abc4c7c627376858")];
    for (method, body, status) in [
        ("PUT", &br#"{"value":1}"#[..], 200),
        ("GET", b"", 200),
        ("POST", b"", 405),
    ] {
        let bytes = common::request_bytes(addr, method, IRON, &iron, body);
        let r = common::try_raw(addr, &bytes).await.expect("an answer");
        assert_eq!(r.status, status, "{method}: {r:?}");
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit: {status:?}");
}

/// The store is closed once the server's future returns: a connection's task dropped its
/// handle on the server's state a moment after the drain was seen, and a restart at once
/// found the data dir locked (`admin_disk_full.rs`, once in CI). 30 stops, each right after
/// requests on several connections at once, each followed at once by an open of the dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_closed_when_the_server_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(DOC_NOW_MS);
    for round in 0..30 {
        let s = start_on(dir.path(), Config::new(true), clock.clone(), |_| {}).await;
        let addr = s.addr;
        let requests: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(
                    async move { common::request(addr, "GET", "/healthz", &[], b"").await },
                )
            })
            .collect();
        for r in requests {
            assert_eq!(r.await.expect("request task").status, 200);
        }
        s.stop().await.expect("stop");
        match ttlcask_engine::Store::open(dir.path()) {
            Ok(store) => drop(store),
            Err(e) => panic!("round {round}: the store is still open after the stop: {e}"),
        }
    }
}
