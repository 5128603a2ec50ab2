//! The status page at `/`: one self-contained HTML document (inline CSS and SVG, no
//! scripts, no external assets) with a warning in `--dev`, the durability policy, the data
//! dir with its disk use and free space, the version, uptime, engine figures, hit rate,
//! charts of the last hour ([`history`], [`chart`]), compaction state, the storage health
//! (disk full, poisoned, damaged reads, what recovery found at open) and every tenant's
//! caches with their item counts and bytes.

pub mod chart;
pub mod disk;
pub mod history;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use ttlcask_engine::{Durability, NamespaceInfo, Stats, Store};

use crate::faults::StorageState;
use crate::namespace::{self, Parsed};
use crate::server::AppState;
use chart::Chart;
use disk::DiskUse;
use history::Window;

/// The charts span [`CHART_WINDOWS`] windows of [`CHART_WINDOW`]: the last hour.
const CHART_WINDOWS: usize = 120;
const CHART_WINDOW: Duration = Duration::from_secs(30);

/// Findings of each kind listed on the page; the rest are counted (the log and `ttlcask
/// stats` have them all).
const FINDINGS_SHOWN: usize = 50;

/// What the page shows, gathered on the blocking pool.
pub struct Snapshot {
    /// Engine counters and sizes.
    pub stats: Stats,
    /// Disk full, poisoned, and what recovery found.
    pub storage: StorageState,
    /// Every tenant namespace (`T…`).
    pub namespaces: Vec<NamespaceInfo>,
    /// Time since the server started.
    pub uptime: Duration,
    /// Item lookups that hit and missed.
    pub hits: u64,
    /// See `hits`.
    pub misses: u64,
    /// Connections open now.
    pub open_connections: i64,
    /// The store clock now, in ms since the epoch.
    pub now_ms: u64,
    /// `--dev`: the documents' public sample credentials are accepted.
    pub dev: bool,
    /// The store's durability policy, when the server was told it.
    pub durability: Option<Durability>,
    /// The data dir and what it takes on disk (or why that could not be read), when the
    /// server was told where it is.
    pub data_dir: Option<(PathBuf, Result<DiskUse, String>)>,
    /// The three APIs' traffic over the last hour, oldest window first.
    pub traffic: Vec<Window>,
}

impl Snapshot {
    /// Gathers everything the page shows (on the blocking pool: it lists the data dir).
    pub fn gather(state: &AppState, store: &Store) -> Self {
        let metrics = &state.metrics;
        let (hits, misses) = metrics.hit_miss();
        let uptime = metrics.uptime();
        Self {
            stats: store.stats(),
            storage: StorageState::of(store, state.damaged_reads.count()),
            namespaces: store.namespaces(b"T"),
            uptime,
            hits,
            misses,
            open_connections: metrics.open_connections(),
            now_ms: store.now_ms(),
            dev: state.config.dev,
            durability: state.config.durability,
            data_dir: state.config.data_dir.as_ref().map(|dir| {
                let usage = DiskUse::of(dir).map_err(|e| e.to_string());
                (dir.clone(), usage)
            }),
            traffic: state.history.windows(uptime, CHART_WINDOWS, CHART_WINDOW),
        }
    }
}

/// The page for `state` and `store`.
pub fn page(state: &AppState, store: &Store) -> String {
    render(&Snapshot::gather(state, store))
}

/// `n` and the noun, singular for one.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Bytes in a human unit.
pub fn human_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {sec}s")
    } else {
        format!("{m}m {sec}s")
    }
}

/// One row of the caches table.
struct Row {
    api: &'static str,
    cache: String,
    items: u64,
    bytes: u64,
}

/// The "Storage health" section: whether writes are taken, damaged reads, and the recovery
/// report of the last open, one row per finding.
fn storage_section(st: &StorageState, s: &Stats) -> String {
    // The first that holds, most severe first.
    let h = &st.health;
    let writes = if let Some(reason) = &h.poisoned {
        format!(
            "<b class=\"bad\">refused: the store is poisoned ({}); restart after fixing the disk</b>",
            escape(reason)
        )
    } else if h.disk_full {
        "<b class=\"bad\">refused: the disk is full (507); reads and deletes go on, writes resume once space is free</b>".to_string()
    } else if let Some(reason) = &h.dir_not_writable {
        format!(
            "<b class=\"bad\">refused where they need a new segment (503): the data dir refuses new files ({}); they resume once it takes them</b>",
            escape(reason)
        )
    } else if let Some(reason) = &h.out_of_descriptors {
        format!(
            "<b class=\"bad\">refused where they need a new segment (503): no file descriptor is left ({}); they resume once one is free (close connections, or raise the open-file limit)</b>",
            escape(reason)
        )
    } else if let Some(ms) = h.disk_waiting_ms {
        format!("<b class=\"bad\">waiting: one has waited {ms} ms for the disk (a frozen file system, a stalled device); reads go on</b>")
    } else {
        "accepted".to_string()
    };
    let r = &st.recovery;
    let mut o = format!(
        "<h2>Storage health</h2>\n<p id=\"writes\">Writes: {writes}. Disk full: {disk_full}. Poisoned: {poisoned}.</p>\n<p id=\"damaged-reads\">Damaged reads answered as misses: {damaged} (engine: {lost}; {dropped} compaction could not copy).</p>\n",
        disk_full = if st.health.disk_full { "yes" } else { "no" },
        poisoned = if st.health.poisoned.is_some() { "yes" } else { "no" },
        damaged = st.damaged_reads,
        lost = count(s.lost_reads, "lost read", "lost reads"),
        dropped = count(s.damaged_records_dropped, "damaged record", "damaged records"),
    );
    let _ = writeln!(
        o,
        "<p id=\"recovery\">Recovery at open: {}. {} from hints, {} scanned, {} indexed; {}, {} lost, {} salvaged, {} cut from {}, {} ignored.</p>",
        if r.is_clean() { "clean" } else { "<b class=\"bad\">damage found</b>" },
        count(r.segments_from_hints, "segment", "segments"),
        r.segments_scanned,
        count(r.records, "record", "records"),
        count(r.damaged.len() as u64, "damaged range", "damaged ranges"),
        count(r.keys_lost, "key", "keys"),
        count(r.records_salvaged, "record", "records"),
        count(r.bytes_cut(), "byte", "bytes"),
        count(r.truncated.len() as u64, "tail", "tails"),
        count(r.ignored_files.len() as u64, "file", "files"),
    );
    if r.is_clean() {
        return o;
    }
    o.push_str("<table id=\"recovery-findings\"><tr><th>Finding</th><th>Segment</th><th>Offset</th><th>Bytes</th><th>Detail</th></tr>\n");
    let mut hidden = 0;
    for (i, d) in r.damaged.iter().enumerate() {
        if i >= FINDINGS_SHOWN {
            hidden += 1;
            continue;
        }
        let records = d
            .records
            .map_or_else(|| "records unknown".to_string(), |n| format!("{n} records"));
        let _ = writeln!(
            o,
            "<tr><td>damaged range</td><td>{:010}.seg</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}; {}</td></tr>",
            d.segment,
            d.offset,
            d.len,
            escape(&d.problem),
            records
        );
    }
    for (i, &(segment, offset, bytes)) in r.truncated.iter().enumerate() {
        if i >= FINDINGS_SHOWN {
            hidden += 1;
            continue;
        }
        let _ = writeln!(
            o,
            "<tr><td>tail cut</td><td>{segment:010}.seg</td><td class=\"n\">{offset}</td><td class=\"n\">{bytes}</td><td>torn or damaged tail dropped</td></tr>"
        );
    }
    for (i, file) in r.ignored_files.iter().enumerate() {
        if i >= FINDINGS_SHOWN {
            hidden += 1;
            continue;
        }
        let _ = writeln!(
            o,
            "<tr><td>file ignored</td><td colspan=\"3\"></td><td>{}</td></tr>",
            escape(file)
        );
    }
    o.push_str("</table>\n");
    if hidden > 0 {
        let _ = writeln!(
            o,
            "<p>{} more in the start-up log and in <code>ttlcask stats</code>.</p>",
            count(hidden, "finding", "findings")
        );
    }
    o
}

/// The warning in `--dev`, the durability policy, and the data dir with its disk use.
fn server_section(snap: &Snapshot) -> String {
    let mut o = String::new();
    if snap.dev {
        o.push_str("<p class=\"warn\" id=\"dev-warning\"><b>Development mode (<code>--dev</code>).</b> The API documents' public sample credentials are accepted (tenant <code>ttorg</code>): anyone who can reach this port can read and write that tenant's data. Do not keep real data here.</p>\n");
    }
    let durability = match snap.durability {
        Some(Durability::Always) => "<code>always</code>: a write is acknowledged once fsynced (concurrent writers share fsyncs)".to_string(),
        Some(Durability::Every(d)) => format!(
            "<code>every:{ms}</code>: fsynced in the background every {ms} ms; a crash loses at most that much of the acknowledged writes",
            ms = d.as_millis()
        ),
        Some(Durability::Never) => "<b class=\"bad\"><code>never</code></b>: the operating system decides when writes reach the disk; a crash or power cut can lose acknowledged writes".to_string(),
        None => "not given to the server".to_string(),
    };
    let _ = writeln!(o, "<p id=\"durability\">Durability: {durability}.</p>");
    let data_dir = match &snap.data_dir {
        None => "not given to the server".to_string(),
        Some((dir, Err(e))) => format!(
            "<code>{}</code> (cannot be listed: {})",
            escape(&dir.display().to_string()),
            escape(e)
        ),
        Some((dir, Ok(u))) => format!(
            "<code>{}</code>: {} taking {} on disk ({} in them); {}",
            escape(&dir.display().to_string()),
            count(u.files, "file", "files"),
            human_bytes(u.allocated),
            human_bytes(u.bytes),
            u.free.map_or_else(
                || "free space unknown".to_string(),
                |f| format!("{} free on its file system", human_bytes(f))
            ),
        ),
    };
    let _ = writeln!(o, "<p id=\"data-dir\">Data dir: {data_dir}.</p>");
    o
}

/// Charts of the three APIs' requests per second, p99 latency and hit rate.
fn charts_section(traffic: &[Window]) -> String {
    let rate: Vec<_> = traffic.iter().map(Window::rate).collect();
    let p99: Vec<_> = traffic.iter().map(Window::p99).collect();
    let hits: Vec<_> = traffic.iter().map(Window::hit_ratio).collect();
    let span = span_text(CHART_WINDOW * u32::try_from(traffic.len()).unwrap_or(u32::MAX));
    let charts = [
        Chart {
            id: "chart-requests",
            title: "Requests per second",
            span: &span,
            values: &rate,
            max: None,
            format: |v| format!("{}/s", short_number(v)),
        },
        Chart {
            id: "chart-p99",
            title: "p99 latency",
            span: &span,
            values: &p99,
            max: None,
            format: |v| format!("{} ms", short_number(v * 1000.0)),
        },
        Chart {
            id: "chart-hit-rate",
            title: "Hit rate",
            span: &span,
            values: &hits,
            max: Some(1.0),
            format: |v| format!("{:.0}%", v * 100.0),
        },
    ];
    let mut o = format!(
        "<h2>Traffic</h2>\n<p class=\"sub\">Flash Cache, IronCache and Akka Cache requests over the last {}, in steps of {}.</p>\n<div class=\"charts\">\n",
        span.strip_prefix("1 ").unwrap_or(&span),
        span_text(CHART_WINDOW)
    );
    for c in &charts {
        o.push_str(&c.render());
    }
    o.push_str("</div>\n");
    o
}

/// A whole number of hours, minutes or seconds in words.
fn span_text(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => count(s / 3600, "hour", "hours"),
        s if s >= 60 && s % 60 == 0 => count(s / 60, "minute", "minutes"),
        s => format!("{s} s"),
    }
}

/// A number with about three significant digits.
fn short_number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders the page.
pub fn render(snap: &Snapshot) -> String {
    let mut tenants: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for ns in &snap.namespaces {
        let row = match namespace::parse(&ns.name) {
            Some(Parsed::Flash { tenant, app }) => (tenant, "Flash Cache", app),
            Some(Parsed::Iron {
                tenant,
                project,
                cache,
            }) => (tenant, "IronCache", format!("{project} / {cache}")),
            Some(Parsed::Akka { tenant, cache }) => (tenant, "Akka Cache", cache),
            _ => continue,
        };
        tenants.entry(row.0).or_default().push(Row {
            api: row.1,
            cache: row.2,
            items: ns.items,
            bytes: ns.live_bytes,
        });
    }
    let s = &snap.stats;
    let lookups = snap.hits + snap.misses;
    let hit_rate = if lookups == 0 {
        "no lookups yet".to_string()
    } else {
        format!(
            "{:.1}% ({}, {})",
            snap.hits as f64 * 100.0 / lookups as f64,
            count(snap.hits, "hit", "hits"),
            count(snap.misses, "miss", "misses")
        )
    };
    let compaction = if s.compacting {
        "running now".to_string()
    } else {
        match s.last_compaction_ms {
            Some(at) => format!(
                "idle; last run {} ago",
                human_duration(Duration::from_millis(snap.now_ms.saturating_sub(at)))
            ),
            None => "idle; no run has reclaimed space since start".to_string(),
        }
    };
    let dead_pct = if s.live_bytes + s.dead_bytes == 0 {
        0.0
    } else {
        s.dead_bytes as f64 * 100.0 / (s.live_bytes + s.dead_bytes) as f64
    };
    let writes_per_fsync = if s.fsync_batches.iter().sum::<u64>() == 0 {
        "–".to_string()
    } else {
        format!(
            "{:.1}",
            s.fsync_batched_writes as f64 / s.fsync_batches.iter().sum::<u64>() as f64
        )
    };

    let mut o = String::with_capacity(8 << 10);
    let _ = write!(
        o,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ttlcask status</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1f24;background:#f6f8fa}}
h1{{margin:0 0 .2rem;font-size:1.6rem}} h2{{font-size:1.15rem;margin:1.6rem 0 .5rem}}
.sub{{color:#57606a;margin-bottom:1.2rem}}
.cards{{display:flex;flex-wrap:wrap;gap:.8rem}}
.card{{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:.7rem 1rem;min-width:10rem}}
.card b{{display:block;font-size:1.3rem}} .card span{{color:#57606a;font-size:.85rem}}
table{{border-collapse:collapse;background:#fff;border:1px solid #d0d7de;min-width:32rem}}
th,td{{padding:.35rem .8rem;border-bottom:1px solid #eaeef2;text-align:left}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}} th{{background:#f0f3f6}}
.bad{{color:#b42318}}
.warn{{background:#fff8c5;border:1px solid #d4a72c;border-radius:8px;padding:.6rem 1rem;max-width:60rem}}
.charts{{display:flex;flex-wrap:wrap;gap:.8rem}}
.chart{{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:.5rem .8rem;margin:0;width:22rem}}
.chart figcaption span{{color:#57606a;font-size:.85rem}}
.chart svg{{width:100%;height:auto;display:block;margin-top:.3rem}}
.chart text{{font-size:9px;fill:#57606a}}
.chart .line{{fill:none;stroke:#0969da;stroke-width:1.5;stroke-linecap:round;stroke-linejoin:round}}
.chart .axis{{stroke:#d0d7de}} .chart .grid{{stroke:#eaeef2;stroke-dasharray:2 3}}
</style></head><body>
<h1>ttlcask {version}</h1>
<div class="sub">up {uptime} · {conns} · <a href="/metrics">metrics</a> · <a href="/openapi.json">OpenAPI</a></div>
{server}<div class="cards">
<div class="card"><span>Items</span><b id="items">{items}</b></div>
<div class="card"><span>Hit rate</span><b id="hit-rate">{hit_rate}</b></div>
<div class="card"><span>Live data</span><b>{live}</b></div>
<div class="card"><span>Reclaimable</span><b>{dead} ({dead_pct:.0}%)</b></div>
<div class="card"><span>Segments</span><b>{segments}</b></div>
<div class="card"><span>Index memory</span><b>{index}</b></div>
<div class="card"><span>Writes / fsyncs</span><b>{writes} / {fsyncs}</b></div>
<div class="card"><span>Writes per group-commit fsync</span><b>{per_fsync}</b></div>
</div>
{charts}<h2>Compaction</h2>
<p id="compaction">Compaction: {compaction}. {compactions} reclaimed space since start; {expired} removed.</p>
{storage}<h2>Tenants</h2>
"#,
        version = env!("CARGO_PKG_VERSION"),
        uptime = human_duration(snap.uptime),
        conns = count(
            snap.open_connections.max(0).unsigned_abs(),
            "open connection",
            "open connections"
        ),
        server = server_section(snap),
        charts = charts_section(&snap.traffic),
        items = s.items,
        hit_rate = escape(&hit_rate),
        live = human_bytes(s.live_bytes),
        dead = human_bytes(s.dead_bytes),
        segments = s.segments,
        index = human_bytes(s.index_bytes),
        writes = s.writes,
        fsyncs = s.fsyncs,
        per_fsync = writes_per_fsync,
        compaction = escape(&compaction),
        compactions = count(s.compactions, "run", "runs"),
        expired = count(s.expired_removed, "expired item", "expired items"),
        storage = storage_section(&snap.storage, s),
    );
    if tenants.is_empty() {
        o.push_str("<p>No tenant has stored anything yet.</p>\n");
    }
    for (tenant, rows) in &tenants {
        let items: u64 = rows.iter().map(|r| r.items).sum();
        let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
        let _ = write!(
            o,
            "<h3 class=\"tenant\">{} <small>({}, {}, {})</small></h3>\n<table><tr><th>API</th><th>Cache</th><th>Items</th><th>Bytes</th></tr>\n",
            escape(tenant),
            count(rows.len() as u64, "cache", "caches"),
            count(items, "item", "items"),
            human_bytes(bytes)
        );
        for r in rows {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                r.api,
                escape(&r.cache),
                r.items,
                human_bytes(r.bytes)
            );
        }
        o.push_str("</table>\n");
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            stats: Stats::default(),
            storage: StorageState::default(),
            namespaces: Vec::new(),
            uptime: Duration::from_secs(1),
            hits: 0,
            misses: 0,
            open_connections: 1,
            now_ms: 0,
            dev: false,
            durability: None,
            data_dir: None,
            traffic: Vec::new(),
        }
    }

    #[test]
    fn renders_tenants_escaped_with_counts() {
        let snap = Snapshot {
            stats: Stats {
                items: 3,
                ..Stats::default()
            },
            storage: StorageState::default(),
            namespaces: vec![
                NamespaceInfo {
                    name: namespace::akka_cache("ttorg", "<script>"),
                    items: 2,
                    live_bytes: 2048,
                    created_version: 1,
                },
                NamespaceInfo {
                    name: namespace::flash("ttorg", "default"),
                    items: 1,
                    live_bytes: 10,
                    created_version: 1,
                },
                NamespaceInfo {
                    name: namespace::akka_descriptions("ttorg"),
                    items: 1,
                    live_bytes: 10,
                    created_version: 1,
                },
            ],
            uptime: Duration::from_secs(3725),
            hits: 3,
            misses: 1,
            open_connections: 2,
            ..snapshot()
        };
        let html = render(&snap);
        assert!(html.contains("ttorg <small>(2 caches, 3 items, 2.0 KiB)</small>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("75.0% (3 hits, 1 miss)"));
        assert!(html.contains("up 1h 2m 5s · 2 open connections"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(html.contains("Writes: accepted. Disk full: no. Poisoned: no."));
        assert!(html.contains("Recovery at open: clean."));
    }

    /// Found from outside: with `chattr +i` on the data dir every write got 503 while the
    /// page said "Writes: accepted".
    #[test]
    fn shows_a_data_dir_that_refuses_new_files() {
        let storage = StorageState {
            health: ttlcask_engine::Health {
                dir_not_writable: Some("Operation not permitted <os error 1>".into()),
                ..Default::default()
            },
            recovery: ttlcask_engine::RecoveryReport::default(),
            damaged_reads: 0,
        };
        let html = storage_section(&storage, &Stats::default());
        assert!(
            html.contains("Writes: <b class=\"bad\">refused where they need a new segment (503): the data dir refuses new files (Operation not permitted &lt;os error 1&gt;)"),
            "{html}"
        );
    }

    #[test]
    fn shows_a_server_out_of_file_descriptors() {
        let storage = StorageState {
            health: ttlcask_engine::Health {
                out_of_descriptors: Some("Too many open files (os error 24)".into()),
                ..Default::default()
            },
            recovery: ttlcask_engine::RecoveryReport::default(),
            damaged_reads: 0,
        };
        let html = storage_section(&storage, &Stats::default());
        assert!(
            html.contains("Writes: <b class=\"bad\">refused where they need a new segment (503): no file descriptor is left (Too many open files (os error 24))"),
            "{html}"
        );
    }

    #[test]
    fn shows_a_write_waiting_for_the_disk() {
        let storage = StorageState {
            health: ttlcask_engine::Health {
                disk_waiting_ms: Some(4200),
                ..Default::default()
            },
            recovery: ttlcask_engine::RecoveryReport::default(),
            damaged_reads: 0,
        };
        let html = storage_section(&storage, &Stats::default());
        assert!(
            html.contains("Writes: <b class=\"bad\">waiting: one has waited 4200 ms for the disk"),
            "{html}"
        );
    }

    #[test]
    fn shows_disk_full_poison_and_recovery_findings() {
        let storage = StorageState {
            health: ttlcask_engine::Health {
                poisoned: Some("fsync <EIO>".into()),
                disk_full: true,
                dir_not_writable: None,
                out_of_descriptors: None,
                disk_waiting_ms: None,
            },
            recovery: ttlcask_engine::RecoveryReport {
                truncated: vec![(7, 100, 24)],
                damaged: vec![ttlcask_engine::DamagedRange {
                    segment: 3,
                    offset: 4096,
                    len: 80,
                    records: None,
                    problem: "frame CRC mismatch".into(),
                }],
                keys_lost: 2,
                ..Default::default()
            },
            damaged_reads: 4,
        };
        let html = storage_section(&storage, &Stats::default());
        assert!(
            html.contains("the store is poisoned (fsync &lt;EIO&gt;)"),
            "{html}"
        );
        assert!(html.contains("Disk full: yes"));
        assert!(html.contains("Damaged reads answered as misses: 4"));
        assert!(html.contains("damage found"));
        assert!(html.contains("1 damaged range, 2 keys lost"), "{html}");
        assert!(
            html.contains("24 bytes cut from 1 tail, 0 files ignored"),
            "{html}"
        );
        assert!(html.contains("<td>0000000003.seg</td><td class=\"n\">4096</td>"));
        assert!(html.contains("<td>tail cut</td><td>0000000007.seg</td>"));
    }

    #[test]
    fn one_is_singular() {
        let page = render(&snapshot());
        assert!(page.contains("up 0m 1s · 1 open connection ·"), "{page}");
        assert!(page.contains("Compaction: idle; no run has reclaimed space since start. 0 runs reclaimed space since start; 0 expired items removed."));
        let one = render(&Snapshot {
            namespaces: vec![NamespaceInfo {
                name: namespace::akka_cache("ttorg", "c"),
                items: 1,
                live_bytes: 10,
                created_version: 1,
            }],
            hits: 1,
            misses: 1,
            stats: Stats {
                compactions: 1,
                expired_removed: 1,
                ..Stats::default()
            },
            ..snapshot()
        });
        assert!(
            one.contains("ttorg <small>(1 cache, 1 item, 10 B)</small>"),
            "{one}"
        );
        assert!(one.contains("50.0% (1 hit, 1 miss)"));
        assert!(one.contains("1 run reclaimed space since start; 1 expired item removed."));
    }

    #[test]
    fn warns_in_dev_and_shows_durability_and_the_data_dir() {
        let page = render(&snapshot());
        assert!(!page.contains("dev-warning"));
        assert!(page.contains("Durability: not given to the server."));
        assert!(page.contains("Data dir: not given to the server."));
        let page = render(&Snapshot {
            dev: true,
            durability: Some(Durability::Every(Duration::from_millis(100))),
            data_dir: Some((
                PathBuf::from("/var/lib/<ttlcask>"),
                Ok(DiskUse {
                    files: 3,
                    bytes: 5 << 20,
                    allocated: 64 << 20,
                    free: Some(10 << 30),
                }),
            )),
            ..snapshot()
        });
        assert!(page.contains("id=\"dev-warning\""));
        assert!(page.contains("Development mode (<code>--dev</code>)"));
        assert!(page.contains("<code>every:100</code>: fsynced in the background every 100 ms"));
        assert!(page.contains(
            "Data dir: <code>/var/lib/&lt;ttlcask&gt;</code>: 3 files taking 64.0 MiB on disk (5.0 MiB in them); 10.0 GiB free on its file system."
        ), "{page}");
        let never = render(&Snapshot {
            durability: Some(Durability::Never),
            data_dir: Some((PathBuf::from("/gone"), Err("No such file".into()))),
            ..snapshot()
        });
        assert!(never.contains("a crash or power cut can lose acknowledged writes"));
        assert!(never.contains("<code>/gone</code> (cannot be listed: No such file)"));
    }

    #[test]
    fn charts_show_the_last_hour() {
        let mut busy = Window {
            span_ms: 30_000,
            requests: 300,
            hits: 3,
            misses: 1,
            ..Window::default()
        };
        busy.latency[2] = 300;
        let mut traffic = vec![Window::default(); CHART_WINDOWS];
        traffic[CHART_WINDOWS - 1] = busy;
        let page = render(&Snapshot {
            traffic,
            ..snapshot()
        });
        assert!(
            page.contains("over the last hour, in steps of 30 s"),
            "{page}"
        );
        for id in ["chart-requests", "chart-p99", "chart-hit-rate"] {
            assert!(page.contains(&format!("<figure class=\"chart\" id=\"{id}\">")));
        }
        assert!(
            page.contains("<b>Requests per second</b> <span>now 10.0/s, highest 10.0/s</span>"),
            "{page}"
        );
        assert!(
            page.contains("<b>p99 latency</b> <span>now 2.49 ms"),
            "{page}"
        );
        assert!(page.contains("<b>Hit rate</b> <span>now 75%, highest 75%</span>"));
        assert!(page.contains(">1 hour ago</text>"));
        let quiet = render(&Snapshot {
            traffic: vec![Window::default(); CHART_WINDOWS],
            ..snapshot()
        });
        assert_eq!(quiet.matches("<span>no data yet</span>").count(), 3);
    }
}
