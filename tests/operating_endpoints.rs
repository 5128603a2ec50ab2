//! The operator's endpoints: `/metrics` (Prometheus text, access rule), the status page at
//! `/`, `/openapi.json`, and the request id echo.

mod common;

use common::{start_dev, start_on, DOC_NOW_MS, SAMPLE_JWT};
use ttlcask::config::MetricsAccess;
use ttlcask::Config;
use ttlcask_engine::{Durability, ManualClock};

const AKKA: (&str, &str) = ("Authorization", "");

fn bearer() -> String {
    format!("Bearer {SAMPLE_JWT}")
}

#[tokio::test]
async fn metrics_count_requests_lookups_and_engine_figures() {
    let (server, _dir) = start_dev().await;
    let auth = bearer();
    let h = [(AKKA.0, auth.as_str())];
    let put = server
        .req(
            "POST",
            "/c1/k1",
            &[h[0], ("Content-Type", "application/octet-stream")],
            b"v",
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(server.req("GET", "/c1/k1", &h, b"").await.status, 200);
    assert_eq!(server.req("GET", "/c1/nope", &h, b"").await.status, 404);
    let m = server.req("GET", "/metrics", &[], b"").await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")));
    let text = m.text();
    for expected in [
        "ttlcask_http_requests_total{api=\"akka\",route=\"/{cacheName}/{key}\",method=\"POST\",status=\"201\"} 1",
        "ttlcask_http_requests_total{api=\"akka\",route=\"/{cacheName}/{key}\",method=\"GET\",status=\"404\"} 1",
        "ttlcask_cache_lookups_total{result=\"hit\"} 1",
        "ttlcask_cache_lookups_total{result=\"miss\"} 1",
        "ttlcask_engine_items 1",
        "ttlcask_http_open_connections 1",
        "ttlcask_engine_fsync_batch_writes_bucket{le=\"+Inf\"}",
        "ttlcask_http_request_duration_seconds_count{api=\"akka\"} 3",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert_eq!(server.req("POST", "/metrics", &[], b"").await.status, 405);
}

#[tokio::test]
async fn metrics_label_each_status_by_its_code() {
    // Akka answers 202 to a delete; it used to be counted as status="other".
    let (server, _dir) = start_dev().await;
    let auth = bearer();
    let h = [(AKKA.0, auth.as_str())];
    let put = server
        .req(
            "POST",
            "/c1/k1",
            &[h[0], ("Content-Type", "application/octet-stream")],
            b"v",
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(server.req("DELETE", "/c1/k1", &h, b"").await.status, 202);
    assert_eq!(server.req("DELETE", "/c1/k1", &h, b"").await.status, 400);
    let text = server.req("GET", "/metrics", &[], b"").await.text();
    for expected in [
        "ttlcask_http_requests_total{api=\"akka\",route=\"/{cacheName}/{key}\",method=\"DELETE\",status=\"202\"} 1",
        "ttlcask_http_requests_total{api=\"akka\",route=\"/{cacheName}/{key}\",method=\"DELETE\",status=\"400\"} 1",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert!(!text.contains("status=\"other\""), "{text}");
}

#[tokio::test]
async fn metrics_and_status_need_the_admin_token_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(true);
    config.metrics_access = MetricsAccess::Token;
    config.admin_token_path = Some(dir.path().join("admin.token"));
    let server = start_on(dir.path(), config, ManualClock::new(DOC_NOW_MS), |_| {}).await;
    // The token file is written before the first connection is served.
    assert_eq!(server.req("GET", "/healthz", &[], b"").await.status, 200);
    let token = std::fs::read_to_string(dir.path().join("admin.token")).expect("token");
    for path in ["/metrics", "/"] {
        let denied = server.req("GET", path, &[], b"").await;
        assert_eq!(denied.status, 401, "{path}");
        assert!(denied.text().contains("admin token"));
        let wrong = server
            .req("GET", path, &[("Authorization", "Bearer nope")], b"")
            .await;
        assert_eq!(wrong.status, 401, "{path}");
        let auth = format!("Bearer {}", token.trim());
        let ok = server
            .req("GET", path, &[("Authorization", auth.as_str())], b"")
            .await;
        assert_eq!(ok.status, 200, "{path}");
    }
    // The health check stays open.
    assert_eq!(server.req("GET", "/healthz", &[], b"").await.status, 200);
}

#[tokio::test]
async fn status_page_lists_tenants_caches_and_hit_rate() {
    let (server, _dir) = start_dev().await;
    let auth = bearer();
    let h = [(AKKA.0, auth.as_str())];
    for key in ["a", "b"] {
        let put = server
            .req(
                "POST",
                &format!("/orders/{key}"),
                &[h[0], ("Content-Type", "application/octet-stream")],
                b"0123456789",
            )
            .await;
        assert_eq!(put.status, 201);
    }
    assert_eq!(server.req("GET", "/orders/a", &h, b"").await.status, 200);
    let page = server.req("GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(concat!("ttlcask ", env!("CARGO_PKG_VERSION"))));
    assert!(html.contains("ttorg <small>(1 cache, 2 items"), "{html}");
    assert!(html.contains("<td>Akka Cache</td><td>orders</td><td class=\"n\">2</td>"));
    assert!(html.contains("100.0% (1 hit, 0 misses)"));
    assert!(html.contains("Compaction: idle"));
    assert!(!html.contains("src=\"http"), "no external assets");
}

#[tokio::test]
async fn status_page_shows_dev_mode_durability_data_dir_and_traffic_charts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(true);
    config.data_dir = Some(dir.path().to_path_buf());
    config.durability = Some(Durability::Always);
    let server = start_on(dir.path(), config, ManualClock::new(DOC_NOW_MS), |_| {}).await;
    let auth = bearer();
    let h = [(AKKA.0, auth.as_str())];
    let put = server
        .req(
            "POST",
            "/orders/a",
            &[h[0], ("Content-Type", "application/octet-stream")],
            b"0123456789",
        )
        .await;
    assert_eq!(put.status, 201);
    assert_eq!(server.req("GET", "/orders/a", &h, b"").await.status, 200);
    // A timer samples the counters once a second: wait for the charts to show the requests.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let html = loop {
        let html = server.req("GET", "/", &[], b"").await.text();
        if html.contains("<b>Hit rate</b> <span>now 100%") {
            break html;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no traffic in the charts:\n{html}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for expected in [
        "<p class=\"warn\" id=\"dev-warning\"><b>Development mode (<code>--dev</code>).</b>",
        "<p id=\"durability\">Durability: <code>always</code>: a write is acknowledged once fsynced",
        &format!("<p id=\"data-dir\">Data dir: <code>{}</code>: ", dir.path().display()),
        "free on its file system.</p>",
        "Storage health",
        "Recovery at open: clean.",
        "<figure class=\"chart\" id=\"chart-requests\"><figcaption><b>Requests per second</b> <span>now ",
        "<figure class=\"chart\" id=\"chart-p99\"><figcaption><b>p99 latency</b> <span>now ",
        "<svg viewBox=",
        "<path class=\"line\" d=\"M",
    ] {
        assert!(html.contains(expected), "missing {expected} in\n{html}");
    }
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external assets"
    );
    let metrics = server.req("GET", "/metrics", &[], b"").await.text();
    for series in [
        "ttlcask_data_dir_files ",
        "ttlcask_data_dir_bytes ",
        "ttlcask_data_dir_free_bytes ",
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
    // The sampler stops with the server: `run` awaits it before it returns.
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn openapi_document_is_served_and_valid_json() {
    let (server, _dir) = start_dev().await;
    let resp = server.req("GET", "/openapi.json", &[], b"").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let doc = resp.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/v1/cache/add",
        "/1/projects/{project_id}/caches/{cache_name}/items/{key}",
        "/cacheName",
        "/{cacheName}/{key}",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
}

#[tokio::test]
async fn a_client_request_id_is_echoed() {
    let (server, _dir) = start_dev().await;
    let resp = server
        .req("GET", "/healthz", &[("X-Request-Id", "abc-123")], b"")
        .await;
    assert_eq!(resp.header("x-request-id"), Some("abc-123"));
    let plain = server.req("GET", "/healthz", &[], b"").await;
    assert_eq!(plain.header("x-request-id"), None);
}
