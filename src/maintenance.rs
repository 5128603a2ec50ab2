//! Maintenance of a data dir: `stats`, `compact`, `verify`, `export` and `import`.
//!
//! Export writes one JSON object per line. An item line:
//! `{"tenant","api","cache","project"?,"key","value","expires_at_ms","kind"}` where
//! `api` is `flash`, `iron`, `akka` or `akka-descriptions`, `value` is base64, `key` is the
//! key text (or `key_base64` when the key is not UTF-8), `expires_at_ms` is the absolute
//! expiry (ms since the epoch) or null. A line without `key` records a cache that exists
//! (also when empty). The server's own tenant and credential records are lines with
//! `"system": "tenants"` or `"credentials"`. Import reads the same lines and writes them
//! with `WriteBatch`es of `batch` items: each batch is all or nothing; a bad line stops
//! the import before its batch is written. Versions are assigned anew by the target store.

use std::io::{BufRead, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use ttlcask_engine::{PutOptions, ReadError, Store, WriteBatch};

use crate::faults::StorageState;
use crate::namespace::{self, Parsed};

/// One export line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// `tenants` or `credentials` for the server's own records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Owning tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `flash`, `iron`, `akka` or `akka-descriptions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// IronCache project id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Cache, app or cacheName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    /// Key text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Key bytes in base64 when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// Value bytes in base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Absolute expiry in ms since the epoch; `None` never expires.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// The engine's value-kind tag (IronCache numbers are 1).
    #[serde(default)]
    pub kind: u8,
}

fn describe(ns: &[u8]) -> Option<Line> {
    let empty = Line {
        system: None,
        tenant: None,
        api: None,
        project: None,
        cache: None,
        key: None,
        key_base64: None,
        value: None,
        expires_at_ms: None,
        kind: 0,
    };
    Some(match namespace::parse(ns)? {
        Parsed::Flash { tenant, app } => Line {
            tenant: Some(tenant),
            api: Some("flash".into()),
            cache: Some(app),
            ..empty
        },
        Parsed::Iron {
            tenant,
            project,
            cache,
        } => Line {
            tenant: Some(tenant),
            api: Some("iron".into()),
            project: Some(project),
            cache: Some(cache),
            ..empty
        },
        Parsed::Akka { tenant, cache } => Line {
            tenant: Some(tenant),
            api: Some("akka".into()),
            cache: Some(cache),
            ..empty
        },
        Parsed::AkkaDescriptions { tenant } => Line {
            tenant: Some(tenant),
            api: Some("akka-descriptions".into()),
            ..empty
        },
        Parsed::SystemTenants => Line {
            system: Some("tenants".into()),
            ..empty
        },
        Parsed::SystemCredentials => Line {
            system: Some("credentials".into()),
            ..empty
        },
    })
}

fn namespace_of(line: &Line) -> Result<Vec<u8>, String> {
    let need = |v: &Option<String>, what: &str| {
        v.clone()
            .ok_or_else(|| format!("{what} is required for this line"))
    };
    let parsed = match (line.system.as_deref(), line.api.as_deref()) {
        (Some("tenants"), _) => Parsed::SystemTenants,
        (Some("credentials"), _) => Parsed::SystemCredentials,
        (Some(other), _) => return Err(format!("unknown system namespace {other:?}")),
        (None, Some(api)) => {
            let tenant = need(&line.tenant, "tenant")?;
            if !namespace::valid_tenant(&tenant) {
                return Err(format!("invalid tenant name {tenant:?}"));
            }
            match api {
                "flash" => Parsed::Flash {
                    tenant,
                    app: need(&line.cache, "cache")?,
                },
                "iron" => {
                    let project = need(&line.project, "project")?;
                    if project.len() != namespace::IRON_PROJECT_LEN {
                        return Err(format!("project must be 24 characters, got {project:?}"));
                    }
                    Parsed::Iron {
                        tenant,
                        project,
                        cache: need(&line.cache, "cache")?,
                    }
                }
                "akka" => Parsed::Akka {
                    tenant,
                    cache: need(&line.cache, "cache")?,
                },
                "akka-descriptions" => Parsed::AkkaDescriptions { tenant },
                other => return Err(format!("unknown api {other:?}")),
            }
        }
        (None, None) => return Err("a line needs either system or api".into()),
    };
    Ok(parsed.to_bytes())
}

/// What [`export`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExportReport {
    /// Lines written.
    pub lines: u64,
    /// Keys left out because their newest record is damaged or lost (they read as misses).
    pub lost: u64,
}

/// Writes every namespace and live item of `store` as JSON lines. A key whose record is
/// damaged or lost is left out and counted, as a read of it answers a miss. `progress(done,
/// total)` is called per namespace.
///
/// # Errors
/// A message when a read or the output fails.
pub fn export(
    store: &Store,
    out: &mut impl Write,
    mut progress: impl FnMut(u64, u64),
) -> Result<ExportReport, String> {
    let namespaces = store.namespaces(b"");
    let total = namespaces.len() as u64;
    let mut lines = 0;
    let mut lost = 0;
    for (i, info) in namespaces.iter().enumerate() {
        let Some(base) = describe(&info.name) else {
            return Err(format!(
                "namespace {:?} was not written by a ttlcask server; export covers server data dirs only",
                String::from_utf8_lossy(&info.name)
            ));
        };
        let mut emit = |line: &Line| -> Result<(), String> {
            serde_json::to_writer(&mut *out, line).map_err(|e| e.to_string())?;
            out.write_all(b"\n").map_err(|e| e.to_string())?;
            lines += 1;
            Ok(())
        };
        emit(&base)?;
        let mut keys: Vec<Vec<u8>> = store.keys(&info.name).collect();
        keys.sort();
        for key in keys {
            let item = match store.get(&info.name, &key) {
                Ok(Some(item)) => item,
                Ok(None) => continue, // expired or deleted meanwhile
                Err(ReadError::Lost { .. } | ReadError::Corrupt { .. }) => {
                    lost += 1;
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            let mut line = base.clone();
            match String::from_utf8(key) {
                Ok(text) => line.key = Some(text),
                Err(e) => line.key_base64 = Some(BASE64.encode(e.as_bytes())),
            }
            line.value = Some(BASE64.encode(&item.value));
            line.expires_at_ms = item.expires_at_ms;
            line.kind = item.kind;
            emit(&line)?;
        }
        progress(i as u64 + 1, total);
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(ExportReport { lines, lost })
}

/// What [`import`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Items written.
    pub items: u64,
    /// Caches created (lines without a key).
    pub caches: u64,
    /// Batches committed.
    pub batches: u64,
}

/// Reads export lines and writes them in batches of `batch_size` (each all or nothing).
/// `progress(bytes_read)` is called after each batch.
///
/// # Errors
/// A message naming the line that is invalid or the batch that failed; batches before
/// it stay written, nothing of its batch is.
pub fn import(
    store: &Store,
    input: impl BufRead,
    batch_size: usize,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport, String> {
    let mut report = ImportReport::default();
    let mut batch = WriteBatch::new();
    let mut creates: Vec<Vec<u8>> = Vec::new();
    let mut read = 0u64;
    let flush = |batch: &mut WriteBatch,
                 creates: &mut Vec<Vec<u8>>,
                 report: &mut ImportReport|
     -> Result<(), String> {
        for ns in creates.drain(..) {
            store.create_namespace(&ns).map_err(|e| e.to_string())?;
            report.caches += 1;
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            store
                .write_batch(std::mem::take(batch))
                .map_err(|e| format!("batch {} failed: {e}", report.batches + 1))?;
            report.items += n;
            report.batches += 1;
        }
        Ok(())
    };
    for (number, text) in input.lines().enumerate() {
        let text = text.map_err(|e| format!("cannot read line {}: {e}", number + 1))?;
        read += text.len() as u64 + 1;
        if text.trim().is_empty() {
            continue;
        }
        let bad = |e: String| format!("line {}: {e}; nothing of its batch was written", number + 1);
        let line: Line = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let ns = namespace_of(&line).map_err(bad)?;
        let key = match (&line.key, &line.key_base64) {
            (Some(k), _) => Some(k.as_bytes().to_vec()),
            (None, Some(b)) => Some(
                BASE64
                    .decode(b)
                    .map_err(|e| bad(format!("key_base64: {e}")))?,
            ),
            (None, None) => None,
        };
        match key {
            None => creates.push(ns),
            Some(key) => {
                let value = BASE64
                    .decode(line.value.as_deref().unwrap_or(""))
                    .map_err(|e| bad(format!("value: {e}")))?;
                let options = PutOptions {
                    expires_at_ms: line.expires_at_ms,
                    kind: line.kind,
                    ..PutOptions::default()
                };
                batch.put(&ns, &key, &value, options);
            }
        }
        if batch.len() >= batch_size.max(1) {
            flush(&mut batch, &mut creates, &mut report)?;
            progress(read);
        }
    }
    flush(&mut batch, &mut creates, &mut report)?;
    progress(read);
    Ok(report)
}

/// `Stats` and the storage state as JSON (what `ttlcask stats` prints and `GET /admin/stats`
/// answers): the engine's figures, `disk_full`, `poisoned`, `damaged_reads` (reads the
/// server answered as misses; 0 on a stopped data dir) and `recovery` (what the last open
/// found).
pub fn stats_json(s: &ttlcask_engine::Stats, storage: &StorageState) -> serde_json::Value {
    let mut v = serde_json::json!({
        "items": s.items,
        "namespaces": s.namespaces,
        "live_bytes": s.live_bytes,
        "dead_bytes": s.dead_bytes,
        "segments": s.segments,
        "index_bytes": s.index_bytes,
        "fsyncs": s.fsyncs,
        "writes": s.writes,
        "compactions": s.compactions,
        "expired_removed": s.expired_removed,
        "compacting": s.compacting,
        "last_compaction_ms": s.last_compaction_ms,
        "fsync_batched_writes": s.fsync_batched_writes,
        "fsync_batches": s.fsync_batches,
        "lost_reads": s.lost_reads,
        "damaged_records_dropped": s.damaged_records_dropped,
        "damaged_reads": storage.damaged_reads,
    });
    if let (Some(out), serde_json::Value::Object(more)) = (v.as_object_mut(), storage.to_json()) {
        out.extend(more);
    }
    v
}

/// A `CompactionReport` as JSON.
pub fn compaction_json(r: &ttlcask_engine::CompactionReport) -> serde_json::Value {
    serde_json::json!({
        "segments_rewritten": r.segments_rewritten,
        "segments_deleted_unread": r.segments_deleted_unread,
        "bytes_reclaimed": r.bytes_reclaimed,
        "records_kept": r.records_kept,
        "records_dropped": r.records_dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> Store {
        Store::builder()
            .durability(ttlcask_engine::Durability::Never)
            .compaction_interval(None)
            .open(dir)
            .expect("open")
    }

    #[test]
    fn export_import_round_trips_exactly() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let src = store(a.path());
        let project = "4ccf2c5da3c0f1a4d1000011";
        let later = src.now_ms() + 3_600_000;
        src.put(
            &namespace::flash("acme", "default"),
            b"k1",
            b"{\"a\":1}",
            PutOptions::expiring_at(later),
        )
        .expect("put");
        src.put(
            &namespace::iron_cache("acme", project, "c/é"),
            b"n",
            b"42",
            PutOptions::default().with_kind(1),
        )
        .expect("put");
        src.put(
            &namespace::akka_cache("ttorg", "bin"),
            &[0xff, 0x00],
            &[0, 1, 2, 255],
            PutOptions::default(),
        )
        .expect("put");
        src.create_namespace(&namespace::akka_cache("ttorg", "empty"))
            .expect("create");
        src.put(
            namespace::SYSTEM_TENANTS,
            b"acme",
            b"{}",
            PutOptions::default(),
        )
        .expect("put");
        let mut first = Vec::new();
        export(&src, &mut first, |_, _| {}).expect("export");

        let dst = store(b.path());
        let report = import(&dst, &first[..], 2, |_| {}).expect("import");
        assert_eq!(report.items, 4);
        let mut second = Vec::new();
        export(&dst, &mut second, |_, _| {}).expect("export");
        assert_eq!(
            String::from_utf8_lossy(&first),
            String::from_utf8_lossy(&second)
        );
        assert!(String::from_utf8_lossy(&first).contains("\"key_base64\":\"/wA=\""));
    }

    #[test]
    fn a_bad_line_writes_nothing_of_its_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dst = store(dir.path());
        let input = concat!(
            "{\"tenant\":\"t\",\"api\":\"akka\",\"cache\":\"c\",\"key\":\"a\",\"value\":\"AA==\"}\n",
            "{\"tenant\":\"t\",\"api\":\"akka\",\"cache\":\"c\",\"key\":\"b\",\"value\":\"AA==\"}\n",
            "{\"tenant\":\"t\",\"api\":\"akka\",\"cache\":\"c\",\"key\":\"c\",\"value\":\"AA==\"}\n",
            "{\"tenant\":\"t\",\"api\":\"nope\",\"cache\":\"c\",\"key\":\"d\",\"value\":\"AA==\"}\n",
        );
        let err = import(&dst, input.as_bytes(), 2, |_| {}).expect_err("bad api");
        assert!(err.contains("line 4"), "{err}");
        let ns = namespace::akka_cache("t", "c");
        assert!(
            dst.get(&ns, b"a").expect("get").is_some(),
            "first batch kept"
        );
        assert!(
            dst.get(&ns, b"c").expect("get").is_none(),
            "failed batch absent"
        );
    }
}
