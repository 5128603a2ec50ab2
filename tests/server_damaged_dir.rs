//! Data dirs damaged while the server was stopped. First: items written with small segments, the
//! hint files deleted and one byte flipped in the middle of a sealed segment. The server
//! starts, logs the recovery report at warn, shows it in `/metrics`, on the status page and
//! in `/admin/stats`, and answers every key either with its value or as a miss (never a 5xx).
//! Second: one flipped byte inside a value (hints kept): every read of that key is a miss,
//! counted in `/metrics` and on the status page, logged once, and left out of an export.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use common::{start_on, DOC_NOW_MS, SAMPLE_JWT};
use ttlcask::namespace;
use ttlcask::Config;
use ttlcask_engine::{ManualClock, PutOptions, Store};

const KEYS: usize = 120;

/// The tests of this file, one at a time: they share the process's log.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every log line of this test process, captured by a global subscriber.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buf
    })
    .clone()
}

/// What was logged since `logs()` held `from` bytes.
fn logged_since(from: usize) -> String {
    let logs = logs();
    let all = logs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    String::from_utf8_lossy(all.get(from..).unwrap_or_default()).into_owned()
}

fn log_len() -> usize {
    logs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .len()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i:04}-{}", "x".repeat(200)).into_bytes()
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read data dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// Writes `KEYS` Akka items in 4 KiB segments, closes the store, deletes every hint file and
/// flips one byte in the middle of the oldest segment; returns that segment's file name.
fn damage(dir: &Path, clock: &ManualClock) -> String {
    let store = Store::builder()
        .segment_size(4096)
        .compaction_interval(None)
        .clock(clock.clone())
        .open(dir)
        .expect("open");
    let ns = namespace::akka_cache("ttorg", "c");
    for i in 0..KEYS {
        store
            .put(
                &ns,
                format!("k{i}").as_bytes(),
                &value(i),
                PutOptions::default(),
            )
            .expect("put");
    }
    drop(store);
    for hint in files(dir, "hint") {
        std::fs::remove_file(hint).expect("remove hint");
    }
    let segments = files(dir, "seg");
    assert!(segments.len() >= 3, "several sealed segments: {segments:?}");
    let victim = &segments[0];
    let mut bytes = std::fs::read(victim).expect("read segment");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(victim, &bytes).expect("write segment");
    victim
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

#[tokio::test]
async fn a_damaged_data_dir_is_reported_at_start_and_in_every_view() {
    let _serial = SERIAL.lock().await;
    let log_start = log_len();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(DOC_NOW_MS);
    let victim = damage(dir.path(), &clock);
    let mut config = Config::new(true);
    config.admin_token_path = Some(dir.path().join("admin.token"));
    let server = start_on(dir.path(), config, clock, |_| {}).await;

    // Every key is its value or a miss, never a server error.
    let auth = format!("Bearer {SAMPLE_JWT}");
    let (mut found, mut missed) = (0, 0);
    for i in 0..KEYS {
        let r = server
            .req("GET", &format!("/c/k{i}"), &[("Authorization", &auth)], b"")
            .await;
        match r.status {
            200 => {
                assert_eq!(r.body, value(i), "k{i} reads its own value");
                found += 1;
            }
            404 => missed += 1,
            other => panic!("k{i}: {other} {}", r.text()),
        }
        let json = server
            .req(
                "GET",
                &format!("/get/c/k{i}"),
                &[("Authorization", &auth)],
                b"",
            )
            .await;
        assert_eq!(json.status, 200, "{}", json.text());
        assert_eq!(json.json()["success"], r.status == 200);
    }
    eprintln!("{found} keys read back, {missed} lost to the flipped byte");
    assert!(found > 0, "the intact segments still serve");

    let text = logged_since(log_start);
    let warn_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("recovery"))
        .collect();
    eprintln!("recovery log:\n{}", warn_lines.join("\n"));
    assert!(
        warn_lines
            .iter()
            .any(|l| l.contains("recovery found damage")),
        "a summary at warn in\n{text}"
    );
    assert!(
        warn_lines.iter().any(|l| l.contains(&victim)),
        "a line naming {victim} in\n{text}"
    );

    let metrics = server.req("GET", "/metrics", &[], b"").await.text();
    assert_eq!(sample(&metrics, "ttlcask_recovery_clean"), 0);
    assert!(sample(&metrics, "ttlcask_recovery_segments_scanned") >= 3);
    let ranges = sample(&metrics, "ttlcask_recovery_damaged_ranges");
    let cut = sample(&metrics, "ttlcask_recovery_bytes_cut");
    assert!(ranges + cut > 0, "damage shows in /metrics:\n{metrics}");
    if sample(&metrics, "ttlcask_recovery_keys_lost") > 0 {
        // Keys known to be lost read as counted misses.
        assert!(
            sample(&metrics, "ttlcask_damaged_reads_total") > 0,
            "{metrics}"
        );
    }

    let page = server.req("GET", "/", &[], b"").await.text();
    assert!(
        page.contains("Recovery at open: <b class=\"bad\">damage found</b>"),
        "{page}"
    );
    assert!(
        page.contains(&victim),
        "the finding names the segment:\n{page}"
    );

    let token = std::fs::read_to_string(dir.path().join("admin.token")).expect("token");
    let bearer = format!("Bearer {}", token.trim());
    let stats = server
        .req("GET", "/admin/stats", &[("Authorization", &bearer)], b"")
        .await
        .json();
    assert_eq!(stats["recovery"]["clean"], false, "{stats}");
    assert_eq!(stats["disk_full"], false);
    assert!(stats["poisoned"].is_null());
}

/// Flips a byte inside the value of `key` (written by [`damage`]'s layout, hints kept): the
/// index still points at the record, whose CRC now fails on every read.
fn flip_value_of(dir: &Path, i: usize) {
    let needle = format!("value-{i:04}-");
    for seg in files(dir, "seg") {
        let mut bytes = std::fs::read(&seg).expect("read segment");
        if let Some(at) = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
        {
            bytes[at + needle.len() + 10] ^= 0x01;
            std::fs::write(&seg, &bytes).expect("write segment");
            return;
        }
    }
    panic!("value of k{i} not found");
}

#[tokio::test]
async fn a_damaged_value_reads_as_a_counted_miss_in_every_read() {
    let _serial = SERIAL.lock().await;
    let log_start = log_len();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(DOC_NOW_MS);
    let store = Store::builder()
        .segment_size(4096)
        .compaction_interval(None)
        .clock(clock.clone())
        .open(dir.path())
        .expect("open");
    let ns = namespace::akka_cache("ttorg", "c");
    for i in 0..40 {
        store
            .put(
                &ns,
                format!("k{i}").as_bytes(),
                &value(i),
                PutOptions::default(),
            )
            .expect("put");
    }
    drop(store);
    flip_value_of(dir.path(), 5);
    let mut config = Config::new(true);
    config.admin_token_path = Some(dir.path().join("admin.token"));
    let server = start_on(dir.path(), config, clock, |_| {}).await;
    let auth = format!("Bearer {SAMPLE_JWT}");
    let akka = [("Authorization", auth.as_str())];

    let binary = server.req("GET", "/c/k5", &akka, b"").await;
    assert_eq!(
        (binary.status, binary.body.len()),
        (404, 0),
        "{}",
        binary.text()
    );
    let json = server.req("GET", "/get/c/k5", &akka, b"").await;
    assert_eq!(json.status, 200);
    assert_eq!(json.json()["success"], false);
    let batch = server
        .req(
            "POST",
            "/batch/get",
            &akka,
            br#"{"getCachedBatch":[{"cacheName":"c","key":"k5"},{"cacheName":"c","key":"k6"}]}"#,
        )
        .await;
    assert_eq!(batch.status, 200, "{}", batch.text());
    assert_eq!(batch.json()["results"][0]["success"], false);
    assert_eq!(batch.json()["results"][1]["success"], true);
    let neighbour = server.req("GET", "/c/k6", &akka, b"").await;
    assert_eq!((neighbour.status, neighbour.body), (200, value(6)));

    let metrics = server.req("GET", "/metrics", &[], b"").await.text();
    assert_eq!(
        sample(&metrics, "ttlcask_damaged_reads_total"),
        3,
        "{metrics}"
    );
    let text = logged_since(log_start);
    let logged = text
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("answered as a miss"))
        .count();
    assert_eq!(logged, 1, "one warn line per damaged place:\n{text}");
    let page = server.req("GET", "/", &[], b"").await.text();
    assert!(
        page.contains("Damaged reads answered as misses: 3"),
        "{page}"
    );

    // Export leaves the damaged key out instead of failing.
    let token = std::fs::read_to_string(dir.path().join("admin.token")).expect("token");
    let bearer = format!("Bearer {}", token.trim());
    let export = server
        .req("GET", "/admin/export", &[("Authorization", &bearer)], b"")
        .await;
    assert_eq!(export.status, 200, "{}", export.text());
    let lines = export.text();
    assert!(lines.contains("\"key\":\"k6\"") && !lines.contains("\"key\":\"k5\""));

    // Compaction copies the intact records out of the damaged segment, reports the damage,
    // and moves the segment aside as evidence; the damaged key stays a miss.
    let compact = server
        .req("POST", "/admin/compact", &[("Authorization", &bearer)], b"")
        .await;
    assert_eq!(compact.status, 200, "{}", compact.text());
    let report = compact.json();
    assert!(report["damaged_ranges"].as_u64() >= Some(1), "{report}");
    assert!(report["records_lost"].as_u64() >= Some(1), "{report}");
    assert_eq!(
        files(dir.path(), "damaged").len(),
        1,
        "kept aside as evidence"
    );
    assert_eq!(server.req("GET", "/c/k5", &akka, b"").await.status, 404);
    let neighbour = server.req("GET", "/c/k6", &akka, b"").await;
    assert_eq!((neighbour.status, neighbour.body), (200, value(6)));
}
