//! The status page at `/`: one self-contained HTML document (inline CSS, no scripts, no
//! external assets) with the version, uptime, engine figures, hit rate, compaction state
//! and every tenant's caches with their item counts and bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use ttlcask_engine::{NamespaceInfo, Stats};

use crate::namespace::{self, Parsed};

/// What the page shows, gathered on the blocking pool.
pub struct Snapshot {
    /// Engine counters and sizes.
    pub stats: Stats,
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
<h2>Tenants</h2>
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
    }
}
