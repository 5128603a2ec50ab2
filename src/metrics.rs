//! Request metrics and the Prometheus text rendering of `GET /metrics`.
//!
//! Everything on the request path is a relaxed atomic add into fixed arrays indexed by
//! route template, method and status, so recording takes no lock and the label set is
//! bounded (raw paths never become labels). Engine figures come from `Store::stats()` at
//! scrape time; the storage health and recovery gauges are appended by
//! [`StorageState::write_prometheus`](crate::faults::StorageState::write_prometheus), the
//! data dir's disk use by [`DiskUse`](crate::status::disk::DiskUse) ([`scrape`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use ttlcask_engine::{Stats, FSYNC_BATCH_BUCKETS};

use crate::routes::{self, Api};

/// Route templates, as `(api, route)` labels: one per row of [`routes::ROUTES`], in its
/// order. [`classify`] returns an index into this.
pub const ROUTES: [(&str, &str); routes::ROUTES.len()] = {
    let mut labels = [("", ""); routes::ROUTES.len()];
    let mut i = 0;
    while i < labels.len() {
        let r = &routes::ROUTES[i];
        labels[i] = (r.api.label(), r.label());
        i += 1;
    }
    labels
};

/// The API labels, in the order of the latency histograms ([`Api::index`]).
pub const APIS: [&str; Api::ALL.len()] = {
    let mut labels = [""; Api::ALL.len()];
    let mut i = 0;
    while i < labels.len() {
        labels[i] = Api::ALL[i].label();
        i += 1;
    }
    labels
};

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "other"];
/// The status codes labelled by their number: every code a handler answers (a unit test
/// checks the sources against this list), plus a few a limit may answer. Anything else
/// counts as `status="other"`, so the label set stays bounded.
pub const STATUSES: &[u16] = &[
    200, 201, 202, 204, 400, 401, 403, 404, 405, 406, 408, 409, 413, 415, 429, 500, 501, 503, 507,
];
const STATUS_SLOTS: usize = STATUSES.len() + 1;
/// Latency bucket bounds in seconds (`+Inf` follows).
pub const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Latency buckets: one per bound and `+Inf`.
pub const LATENCY_SLOTS: usize = LATENCY_BOUNDS.len() + 1;

/// Which [`ROUTES`] entry a raw request path belongs to: [`routes::classify`].
pub fn classify(path: &str) -> usize {
    routes::classify(path)
}

/// The methods route `route` accepts, for the `Allow` header of a 405 (`None` for a route
/// that answers its own 405s or none).
pub fn allowed_methods(route: usize) -> Option<&'static str> {
    Some(routes::ROUTES.get(route)?.allow).filter(|a| !a.is_empty())
}

/// Whether a request on route `route` answered with `status` was a cache lookup, and if
/// so whether it hit. The Akka JSON and batch reads report themselves with
/// [`Metrics::lookups`], because they answer 200 either way.
fn lookup_of(route: usize, method: &Method, status: u16) -> Option<bool> {
    match (routes::get(route).is_item_read(method), status) {
        (true, 200) => Some(true),
        (true, 404) => Some(false),
        _ => None,
    }
}

const REQUEST_SLOTS: usize = ROUTES.len() * METHODS.len() * STATUS_SLOTS;
/// Request counter sets; each thread that records requests writes one of them.
const SHARDS: usize = 8;

/// One set of request counters, on cache lines of its own: two runtime workers adding to the
/// same counters on every request would bounce those lines between cores.
#[repr(align(128))]
struct Counters {
    requests: [AtomicU64; REQUEST_SLOTS],
    latency: [AtomicU64; APIS.len() * LATENCY_SLOTS],
    latency_sum_us: [AtomicU64; APIS.len()],
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Counters {
    fn new() -> Box<Self> {
        Box::new(Self {
            requests: [const { AtomicU64::new(0) }; REQUEST_SLOTS],
            latency: [const { AtomicU64::new(0) }; APIS.len() * LATENCY_SLOTS],
            latency_sum_us: [const { AtomicU64::new(0) }; APIS.len()],
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }
}

/// Running totals of the three cache APIs' requests (the service and admin routes left
/// out), read by the status page's sampler; see [`Metrics::api_totals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiTotals {
    /// Requests answered.
    pub requests: u64,
    /// Requests by latency bucket ([`LATENCY_BOUNDS`], then `+Inf`).
    pub latency: [u64; LATENCY_SLOTS],
    /// Item lookups that found their item.
    pub hits: u64,
    /// Item lookups that did not.
    pub misses: u64,
}

/// The server's counters, shared by every connection.
pub struct Metrics {
    shards: Box<[Box<Counters>]>,
    open_connections: AtomicI64,
    connections: AtomicU64,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty counters; uptime starts now.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Counters::new()).collect(),
            open_connections: AtomicI64::new(0),
            connections: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// The counter set of the calling thread (threads are dealt sets in turn).
    fn mine(&self) -> &Counters {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        }
        &self.shards[SHARD.with(|s| *s)]
    }

    /// The sum over every counter set of the counter `pick` selects.
    fn total(&self, pick: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|c| pick(c).load(Ordering::Relaxed))
            .sum()
    }

    /// Time since the server started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts one finished request.
    pub fn record(&self, route: usize, method: &Method, status: u16, elapsed: Duration) {
        // Positions in METHODS.
        let m = match *method {
            Method::GET => 0,
            Method::POST => 1,
            Method::PUT => 2,
            Method::DELETE => 3,
            Method::HEAD => 4,
            Method::OPTIONS => 5,
            _ => METHODS.len() - 1,
        };
        let s = STATUSES
            .iter()
            .position(|&x| x == status)
            .unwrap_or(STATUSES.len());
        let route = route.min(ROUTES.len() - 1);
        let slot = (route * METHODS.len() + m) * STATUS_SLOTS + s;
        let mine = self.mine();
        mine.requests[slot].fetch_add(1, Ordering::Relaxed);
        let api = routes::get(route).api.index();
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        mine.latency[api * LATENCY_SLOTS + bucket].fetch_add(1, Ordering::Relaxed);
        mine.latency_sum_us[api].fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if let Some(hit) = lookup_of(route, method, status) {
            self.lookups(u64::from(hit), u64::from(!hit));
        }
    }

    /// Counts cache lookups that found (`hits`) or missed (`misses`) their item.
    pub fn lookups(&self, hits: u64, misses: u64) {
        let mine = self.mine();
        mine.hits.fetch_add(hits, Ordering::Relaxed);
        mine.misses.fetch_add(misses, Ordering::Relaxed);
    }

    /// Lookups so far: (hits, misses).
    pub fn hit_miss(&self) -> (u64, u64) {
        (self.total(|c| &c.hits), self.total(|c| &c.misses))
    }

    /// The totals so far of the Flash, IronCache and Akka requests: a few hundred relaxed
    /// loads, for a once-a-second sampler (the request path is not involved).
    pub fn api_totals(&self) -> ApiTotals {
        let mut t = ApiTotals::default();
        for (a, api) in APIS.iter().enumerate() {
            if matches!(*api, "service" | "admin") {
                continue;
            }
            for (b, n) in t.latency.iter_mut().enumerate() {
                *n += self.total(|c| &c.latency[a * LATENCY_SLOTS + b]);
            }
        }
        t.requests = t.latency.iter().sum();
        (t.hits, t.misses) = self.hit_miss();
        t
    }

    /// A connection was accepted; the guard counts it as open until dropped.
    pub fn connection_opened(self: &std::sync::Arc<Self>) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> i64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4) of these counters and `stats`.
    pub fn render(&self, stats: &Stats) -> String {
        let mut out = String::with_capacity(16 << 10);
        let o = &mut out;
        header(
            o,
            "ttlcask_build_info",
            "gauge",
            "Version of the running server.",
        );
        line(
            o,
            "ttlcask_build_info",
            &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
            1,
        );
        header(
            o,
            "ttlcask_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
        );
        let _ = writeln!(
            o,
            "ttlcask_uptime_seconds {:.3}",
            self.uptime().as_secs_f64()
        );

        header(
            o,
            "ttlcask_http_requests_total",
            "counter",
            "HTTP requests answered, by API, route template, method and status.",
        );
        for slot in 0..REQUEST_SLOTS {
            let n = self.total(|c| &c.requests[slot]);
            if n == 0 {
                continue;
            }
            let s = slot % STATUS_SLOTS;
            let m = (slot / STATUS_SLOTS) % METHODS.len();
            let (api, route) = ROUTES[slot / STATUS_SLOTS / METHODS.len()];
            let status = STATUSES
                .get(s)
                .map_or_else(|| "other".to_string(), u16::to_string);
            line(
                o,
                "ttlcask_http_requests_total",
                &format!(
                    "api=\"{api}\",route=\"{route}\",method=\"{}\",status=\"{status}\"",
                    METHODS[m]
                ),
                n,
            );
        }
        header(
            o,
            "ttlcask_http_request_duration_seconds",
            "histogram",
            "Time from routing a request to its response, by API.",
        );
        for (a, api) in APIS.iter().enumerate() {
            let mut cumulative = 0;
            for b in 0..LATENCY_SLOTS {
                cumulative += self.total(|c| &c.latency[a * LATENCY_SLOTS + b]);
                let le = LATENCY_BOUNDS
                    .get(b)
                    .map_or_else(|| "+Inf".to_string(), f64::to_string);
                line(
                    o,
                    "ttlcask_http_request_duration_seconds_bucket",
                    &format!("api=\"{api}\",le=\"{le}\""),
                    cumulative,
                );
            }
            let sum = self.total(|c| &c.latency_sum_us[a]) as f64 / 1e6;
            let _ = writeln!(
                o,
                "ttlcask_http_request_duration_seconds_sum{{api=\"{api}\"}} {sum}"
            );
            line(
                o,
                "ttlcask_http_request_duration_seconds_count",
                &format!("api=\"{api}\""),
                cumulative,
            );
        }
        header(
            o,
            "ttlcask_http_open_connections",
            "gauge",
            "Connections open now.",
        );
        let _ = writeln!(
            o,
            "ttlcask_http_open_connections {}",
            self.open_connections()
        );
        header(
            o,
            "ttlcask_http_connections_total",
            "counter",
            "Connections accepted.",
        );
        let _ = writeln!(
            o,
            "ttlcask_http_connections_total {}",
            self.connections.load(Ordering::Relaxed)
        );
        header(
            o,
            "ttlcask_cache_lookups_total",
            "counter",
            "Item reads of the three APIs, by whether the item was found.",
        );
        let (hits, misses) = self.hit_miss();
        line(o, "ttlcask_cache_lookups_total", "result=\"hit\"", hits);
        line(o, "ttlcask_cache_lookups_total", "result=\"miss\"", misses);

        let gauges: [(&str, &str, u64); 8] = [
            (
                "items",
                "Live items (expired ones not counted).",
                stats.items,
            ),
            (
                "namespaces",
                "Engine namespaces (caches and apps).",
                stats.namespaces,
            ),
            (
                "live_bytes",
                "Bytes of records on disk still needed.",
                stats.live_bytes,
            ),
            (
                "dead_bytes",
                "Bytes on disk that compaction can reclaim.",
                stats.dead_bytes,
            ),
            ("segments", "Segment files.", stats.segments),
            (
                "space_reserve_bytes",
                "Bytes the space reserve holds (room for compaction on a full disk).",
                stats.reserve_bytes,
            ),
            (
                "uncut_segments",
                "Sealed segments whose unused tail is not cut yet (more than 1: cuts fail).",
                stats.uncut_segments,
            ),
            (
                "index_bytes",
                "Estimated heap bytes of the in-memory index.",
                stats.index_bytes,
            ),
        ];
        for (name, help, v) in gauges {
            let name = format!("ttlcask_engine_{name}");
            header(o, &name, "gauge", help);
            let _ = writeln!(o, "{name} {v}");
        }
        let counters: [(&str, &str, u64); 7] = [
            (
                "fsyncs_total",
                "fsync calls for durability since open.",
                stats.fsyncs,
            ),
            (
                "writes_total",
                "Writes acknowledged since open.",
                stats.writes,
            ),
            (
                "compactions_total",
                "Compaction runs that reclaimed space.",
                stats.compactions,
            ),
            (
                "expired_removed_total",
                "Expired items removed by compaction.",
                stats.expired_removed,
            ),
            (
                "lost_reads_total",
                "Reads that found a damaged or lost record (an error, never an older value).",
                stats.lost_reads,
            ),
            (
                "failed_cuts_total",
                "Cuts of a sealed segment's unused tail that failed (each is retried).",
                stats.failed_cuts,
            ),
            (
                "damaged_records_dropped_total",
                "Records compaction could not copy out of damaged segments.",
                stats.damaged_records_dropped,
            ),
        ];
        for (name, help, v) in counters {
            let name = format!("ttlcask_engine_{name}");
            header(o, &name, "counter", help);
            let _ = writeln!(o, "{name} {v}");
        }
        header(
            o,
            "ttlcask_engine_compacting",
            "gauge",
            "1 while a compaction or hint writing runs.",
        );
        let _ = writeln!(
            o,
            "ttlcask_engine_compacting {}",
            u8::from(stats.compacting)
        );
        header(
            o,
            "ttlcask_engine_last_compaction_timestamp_seconds",
            "gauge",
            "When the last compaction that reclaimed space ended (0: none since start).",
        );
        let _ = writeln!(
            o,
            "ttlcask_engine_last_compaction_timestamp_seconds {}",
            stats.last_compaction_ms.unwrap_or(0) as f64 / 1000.0
        );
        header(
            o,
            "ttlcask_engine_fsync_batch_writes",
            "histogram",
            "Group commit: writes made durable by each fsync.",
        );
        let mut cumulative = 0;
        for i in 0..FSYNC_BATCH_BUCKETS {
            cumulative += stats.fsync_batches[i];
            let le =
                Stats::fsync_batch_bound(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            line(
                o,
                "ttlcask_engine_fsync_batch_writes_bucket",
                &format!("le=\"{le}\""),
                cumulative,
            );
        }
        let _ = writeln!(
            o,
            "ttlcask_engine_fsync_batch_writes_sum {}",
            stats.fsync_batched_writes
        );
        let _ = writeln!(o, "ttlcask_engine_fsync_batch_writes_count {cumulative}");
        out
    }
}

/// The whole `/metrics` text: the server's counters, the engine's figures, the storage
/// health and the data dir's disk use (run it on the blocking pool: it lists the data dir).
pub fn scrape(state: &crate::server::AppState, store: &ttlcask_engine::Store) -> String {
    let mut text = state.metrics.render(&store.stats());
    crate::faults::StorageState::of(store, state.damaged_reads.count()).write_prometheus(&mut text);
    if let Some(dir) = &state.config.data_dir {
        // A data dir that cannot be listed leaves its gauges out rather than failing the scrape.
        if let Ok(usage) = crate::status::disk::DiskUse::of(dir) {
            usage.write_prometheus(&mut text);
        }
    }
    text
}

/// Keeps a connection counted as open; see [`Metrics::connection_opened`].
pub struct ConnectionGuard(std::sync::Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn line(o: &mut String, name: &str, labels: &str, value: u64) {
    let _ = writeln!(o, "{name}{{{labels}}} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> (&'static str, &'static str) {
        ROUTES[classify(path)]
    }

    #[test]
    fn paths_map_to_bounded_templates() {
        assert_eq!(route("/v1/cache/get"), ("flash", "/v1/cache/get"));
        assert_eq!(route("/v1/cache/zzz"), ("flash", "other"));
        assert_eq!(route("/version"), ("iron", "/1/version"));
        assert_eq!(
            route("/1/projects/4ccf2c5da3c0f1a4d1000011/caches/c/items/k"),
            ("iron", "/1/projects/{project}/caches/{cache}/items/{key}")
        );
        assert_eq!(route("/cacheName/list"), ("akka", "/cacheName/list"));
        assert_eq!(route("/c/k"), ("akka", "/{cacheName}/{key}"));
        assert_eq!(
            route("/c/k/60"),
            ("akka", "/{cacheName}/{key}/{ttlSeconds}")
        );
        assert_eq!(route("/metrics"), ("service", "/metrics"));
        assert_eq!(route("/"), ("service", "/"));
        assert_eq!(route("/admin/tenants"), ("admin", "/admin/..."));
        assert_eq!(route("/a/b/c/d"), ("akka", "other"));
        assert_eq!(route("/healthz/x"), ("akka", "other"));
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let m = std::sync::Arc::new(Metrics::new());
        let get = classify("/c/k");
        let threads = SHARDS + 3;
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        m.record(get, &Method::DELETE, 204, Duration::ZERO);
                    }
                    m.lookups(1, 2);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("recording thread");
        }
        let text = m.render(&Stats::default());
        let expected = format!(
            "route=\"/{{cacheName}}/{{key}}\",method=\"DELETE\",status=\"204\"}} {}",
            threads * 100
        );
        assert!(text.contains(&expected), "missing {expected} in\n{text}");
        assert_eq!(m.hit_miss(), (threads as u64, 2 * threads as u64));
    }

    #[test]
    fn every_status_a_handler_answers_is_labelled_by_its_code() {
        use hyper::StatusCode as S;
        // Every status constant the server's sources name: a new one fails here
        // until it is added to this table and to STATUSES.
        let known = [
            ("OK", S::OK),
            ("CREATED", S::CREATED),
            ("ACCEPTED", S::ACCEPTED),
            ("NO_CONTENT", S::NO_CONTENT),
            ("BAD_REQUEST", S::BAD_REQUEST),
            ("UNAUTHORIZED", S::UNAUTHORIZED),
            ("FORBIDDEN", S::FORBIDDEN),
            ("NOT_FOUND", S::NOT_FOUND),
            ("METHOD_NOT_ALLOWED", S::METHOD_NOT_ALLOWED),
            ("NOT_ACCEPTABLE", S::NOT_ACCEPTABLE),
            ("REQUEST_TIMEOUT", S::REQUEST_TIMEOUT),
            ("CONFLICT", S::CONFLICT),
            ("PAYLOAD_TOO_LARGE", S::PAYLOAD_TOO_LARGE),
            ("UNSUPPORTED_MEDIA_TYPE", S::UNSUPPORTED_MEDIA_TYPE),
            ("TOO_MANY_REQUESTS", S::TOO_MANY_REQUESTS),
            ("INTERNAL_SERVER_ERROR", S::INTERNAL_SERVER_ERROR),
            ("NOT_IMPLEMENTED", S::NOT_IMPLEMENTED),
            ("SERVICE_UNAVAILABLE", S::SERVICE_UNAVAILABLE),
            ("INSUFFICIENT_STORAGE", S::INSUFFICIENT_STORAGE),
        ];
        for (_, code) in known {
            assert!(STATUSES.contains(&code.as_u16()), "{code} is not labelled");
        }
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        let mut seen = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("read source");
                assert!(
                    !text.contains(concat!("StatusCode::", "from_u16")),
                    "{}: a computed status may escape the labelled set",
                    path.display()
                );
                for (i, _) in text.match_indices("StatusCode::") {
                    let name: String = text[i + "StatusCode::".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                        .collect();
                    if name.is_empty() {
                        continue;
                    }
                    seen += 1;
                    assert!(
                        known.iter().any(|(n, _)| *n == name),
                        "{} answers StatusCode::{name}: add it to STATUSES and to this test",
                        path.display()
                    );
                }
            }
        }
        assert!(seen > 100, "found only {seen} status codes in src/");
    }

    #[test]
    fn renders_counters_histograms_and_hits() {
        let m = Metrics::new();
        let get = classify("/c/k");
        m.record(get, &Method::GET, 200, Duration::from_micros(300));
        m.record(get, &Method::GET, 404, Duration::from_millis(3));
        m.record(get, &Method::POST, 418, Duration::from_secs(9));
        m.record(get, &Method::DELETE, 202, Duration::from_micros(300));
        m.record(get, &Method::POST, 507, Duration::from_micros(300));
        let mut stats = Stats::default();
        stats.fsync_batches[0] = 2;
        stats.fsync_batches[3] = 1;
        stats.fsync_batched_writes = 9;
        let text = m.render(&stats);
        for expected in [
            "ttlcask_http_requests_total{api=\"akka\",route=\"/{cacheName}/{key}\",method=\"GET\",status=\"200\"} 1",
            "ttlcask_http_requests_total{api=\"akka\",route=\"/{cacheName}/{key}\",method=\"POST\",status=\"other\"} 1",
            "ttlcask_http_requests_total{api=\"akka\",route=\"/{cacheName}/{key}\",method=\"DELETE\",status=\"202\"} 1",
            "ttlcask_http_requests_total{api=\"akka\",route=\"/{cacheName}/{key}\",method=\"POST\",status=\"507\"} 1",
            "ttlcask_http_request_duration_seconds_bucket{api=\"akka\",le=\"0.0005\"} 3",
            "ttlcask_http_request_duration_seconds_bucket{api=\"akka\",le=\"0.005\"} 4",
            "ttlcask_http_request_duration_seconds_bucket{api=\"akka\",le=\"+Inf\"} 5",
            "ttlcask_http_request_duration_seconds_count{api=\"akka\"} 5",
            "ttlcask_cache_lookups_total{result=\"hit\"} 1",
            "ttlcask_cache_lookups_total{result=\"miss\"} 1",
            "ttlcask_engine_fsync_batch_writes_bucket{le=\"4\"} 2",
            "ttlcask_engine_fsync_batch_writes_bucket{le=\"8\"} 3",
            "ttlcask_engine_fsync_batch_writes_bucket{le=\"+Inf\"} 3",
            "ttlcask_engine_fsync_batch_writes_sum 9",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        // Every sample line is `name{labels} value` or `name value`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let value = l.rsplit(' ').next().unwrap_or("");
            assert!(value.parse::<f64>().is_ok(), "bad sample line {l}");
        }
    }
}
