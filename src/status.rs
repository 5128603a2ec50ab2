//! The status page at `/`: one self-contained HTML document (inline CSS, no scripts, no
//! external assets) with the version, uptime, engine figures, hit rate, compaction state,
//! the storage health (disk full, poisoned, damaged reads, what recovery found at open) and
//! every tenant's caches with their item counts and bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use ttlcask_engine::{NamespaceInfo, Stats};

use crate::faults::StorageState;
use crate::namespace::{self, Parsed};

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
    let writes = match (&st.health.poisoned, st.health.disk_full) {
        (Some(reason), _) => format!(
            "<b class=\"bad\">refused: the store is poisoned ({}); restart after fixing the disk</b>",
            escape(reason)
        ),
        (None, true) => "<b class=\"bad\">refused: the disk is full (507); reads and deletes go on, writes resume once space is free</b>".to_string(),
        (None, false) => "accepted".to_string(),
    };
    let r = &st.recovery;
    let mut o = format!(
        "<h2>Storage health</h2>\n<p id=\"writes\">Writes: {writes}. Disk full: {disk_full}. Poisoned: {poisoned}.</p>\n<p id=\"damaged-reads\">Damaged reads answered as misses: {damaged} (engine: {lost} lost reads; {dropped} damaged records compaction could not copy).</p>\n",
        disk_full = if st.health.disk_full { "yes" } else { "no" },
        poisoned = if st.health.poisoned.is_some() { "yes" } else { "no" },
        damaged = st.damaged_reads,
        lost = s.lost_reads,
        dropped = s.damaged_records_dropped,
    );
    let _ = writeln!(
        o,
        "<p id=\"recovery\">Recovery at open: {}. {} segments from hints, {} scanned, {} records indexed; {} damaged ranges, {} keys lost, {} records salvaged, {} bytes cut from {} tails, {} files ignored.</p>",
        if r.is_clean() { "clean" } else { "<b class=\"bad\">damage found</b>" },
        r.segments_from_hints,
        r.segments_scanned,
        r.records,
        r.damaged.len(),
        r.keys_lost,
        r.records_salvaged,
        r.bytes_cut(),
        r.truncated.len(),
        r.ignored_files.len(),
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
            "<p>{hidden} more findings are in the start-up log and in <code>ttlcask stats</code>.</p>"
        );
    }
    o
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
            "{:.1}% ({} hits, {} misses)",
            snap.hits as f64 * 100.0 / lookups as f64,
            snap.hits,
            snap.misses
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
</style></head><body>
<h1>ttlcask {version}</h1>
<div class="sub">up {uptime} · {conns} open connections · <a href="/metrics">metrics</a> · <a href="/openapi.json">OpenAPI</a></div>
<div class="cards">
<div class="card"><span>Items</span><b id="items">{items}</b></div>
<div class="card"><span>Hit rate</span><b id="hit-rate">{hit_rate}</b></div>
<div class="card"><span>Live data</span><b>{live}</b></div>
<div class="card"><span>Reclaimable</span><b>{dead} ({dead_pct:.0}%)</b></div>
<div class="card"><span>Segments</span><b>{segments}</b></div>
<div class="card"><span>Index memory</span><b>{index}</b></div>
<div class="card"><span>Writes / fsyncs</span><b>{writes} / {fsyncs}</b></div>
<div class="card"><span>Writes per group-commit fsync</span><b>{per_fsync}</b></div>
</div>
<h2>Compaction</h2>
<p id="compaction">Compaction: {compaction}. {compactions} runs reclaimed space since start; {expired} expired items removed.</p>
{storage}<h2>Tenants</h2>
"#,
        version = env!("CARGO_PKG_VERSION"),
        uptime = human_duration(snap.uptime),
        conns = snap.open_connections,
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
        compactions = s.compactions,
        expired = s.expired_removed,
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
            "<h3 class=\"tenant\">{} <small>({} caches, {} items, {})</small></h3>\n<table><tr><th>API</th><th>Cache</th><th>Items</th><th>Bytes</th></tr>\n",
            escape(tenant),
            rows.len(),
            items,
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
                },
                NamespaceInfo {
                    name: namespace::flash("ttorg", "default"),
                    items: 1,
                    live_bytes: 10,
                },
                NamespaceInfo {
                    name: namespace::akka_descriptions("ttorg"),
                    items: 1,
                    live_bytes: 10,
                },
            ],
            uptime: Duration::from_secs(3725),
            hits: 3,
            misses: 1,
            open_connections: 2,
            now_ms: 0,
        };
        let html = render(&snap);
        assert!(html.contains("ttorg <small>(2 caches, 3 items, 2.0 KiB)</small>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("75.0% (3 hits, 1 misses)"));
        assert!(html.contains("up 1h 2m 5s"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(html.contains("Writes: accepted. Disk full: no. Poisoned: no."));
        assert!(html.contains("Recovery at open: clean."));
    }

    #[test]
    fn shows_disk_full_poison_and_recovery_findings() {
        let storage = StorageState {
            health: ttlcask_engine::Health {
                poisoned: Some("fsync <EIO>".into()),
                disk_full: true,
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
        assert!(html.contains("1 damaged ranges, 2 keys lost"));
        assert!(html.contains("<td>0000000003.seg</td><td class=\"n\">4096</td>"));
        assert!(html.contains("<td>tail cut</td><td>0000000007.seg</td>"));
    }
}
