//! Import: export [`Line`]s into a store, keeping each item's version and expiry.
//!
//! Each item goes in as `WriteBatch::import`: applied only if the store holds no newer record
//! of the key (nor a newer clear or drop of its namespace), so an interrupted import can be
//! run again and changes nothing the second time; the store's version counter moves past
//! every imported version. A line without `version` (an older export) is a plain put with a
//! new version. Items whose expiry has passed are skipped.
//!
//! Lines go in batches of at most `batch_size` items and [`MAX_BATCH_BYTES`], each all or
//! nothing; a bad line stops the import and nothing of its batch is written. The same
//! [`Importer`] serves `ttlcask import` on a stopped data dir ([`import`]) and
//! `POST /admin/import` on a running server, which feeds it lines as they arrive.

use std::collections::HashMap;
use std::io::{BufRead, Read};

use serde::{Deserialize, Serialize};
use ttlcask_engine::{BatchOutcome, PutOptions, Store, WriteBatch, WriteError};

use super::line::Line;
use crate::auth::registry::TenantRecord;
use crate::namespace::Parsed;

/// A batch is written once its keys and values reach this many bytes, whatever its length.
pub const MAX_BATCH_BYTES: usize = 16 << 20;

/// The most lines a batch may be asked to hold (`--batch`, `?batch=`).
pub const MAX_BATCH: usize = 100_000;

/// A batch size as asked for (`--batch`, `?batch=`): 1 to [`MAX_BATCH`].
///
/// # Errors
/// Anything else, in the words both the CLI and the admin API answer.
pub fn parse_batch(text: &str) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|n| (1..=MAX_BATCH).contains(n))
        .ok_or_else(|| format!("batch={text:?}: use 1 to {MAX_BATCH}"))
}

/// The longest line accepted: the base64 of the engine's largest value (64 MiB) and a key.
pub const MAX_LINE_BYTES: usize = 96 << 20;

/// What an import did. Every line with a key counts once in `imported`, `kept` or
/// `expired`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Lines read (blank lines not counted).
    pub lines: u64,
    /// Items written, with their exported versions (or new ones, see `unversioned`).
    pub imported: u64,
    /// Items not written because the store holds a newer record of the key or a newer clear
    /// or drop of its cache (a re-run of the same import keeps everything).
    pub kept: u64,
    /// Items skipped because their expiry had passed.
    pub expired: u64,
    /// Of `imported`, the lines without a version (older exports), stored as plain puts.
    pub unversioned: u64,
    /// Caches created.
    pub caches: u64,
    /// Batches written (a batch whose items were all kept writes nothing and is not counted).
    pub batches: u64,
    /// Of `imported`, tenant and credential records (a running server reloads its registry).
    pub registry_records: u64,
    /// Of `imported`, items stored with a new version because the store had cleared or
    /// dropped their cache after the line's version (imports over clears only: the lines are
    /// the owner's copy, which `cluster move` sends).
    #[serde(default)]
    pub renumbered: u64,
}

/// Why an import stopped. Batches before the failed one stay written; nothing of it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportError {
    /// Line `line` (counting from 1) is not a valid export line.
    Line {
        /// Line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// The store refused batch `batch` (counting from 1).
    Write {
        /// Batch number.
        batch: u64,
        /// The store's error.
        error: WriteError,
    },
    /// The input could not be read.
    Read(String),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line { line, message } => write!(
                f,
                "line {line}: {message}; nothing of its batch was written"
            ),
            Self::Write { batch, error } => write!(f, "batch {batch} failed: {error}"),
            Self::Read(e) => write!(f, "cannot read the input: {e}"),
        }
    }
}

impl std::error::Error for ImportError {}

/// Where one operation of the pending batch came from.
#[derive(Debug, Clone, Copy)]
struct Op {
    line: u64,
    version: Option<u64>,
    registry: bool,
}

/// Reads lines one at a time and writes them in batches.
#[derive(Debug)]
pub struct Importer {
    batch_size: usize,
    batch: WriteBatch,
    ops: Vec<Op>,
    batch_bytes: usize,
    /// Namespaces the pending batch needs, created before it is written (in first-seen
    /// order): an import into a namespace created in the same batch would be kept against
    /// the creation. Each with its cache line's version (the creation's, 0 if none) and the
    /// newest version its lines carry (`u64::MAX` for a line that is stored whatever the
    /// store holds: a plain put, or any item with `over_clears`), so that a cache the store
    /// dropped since is not made again for lines the drop keeps out
    /// ([`Store::import_namespace`]).
    namespaces: Vec<(Vec<u8>, u64, u64)>,
    seen: HashMap<Vec<u8>, usize>,
    report: ImportReport,
    over_clears: bool,
    /// The pending batch's tenant records, by line.
    tenants: Vec<(u64, TenantRecord)>,
}

impl Importer {
    /// An importer writing batches of at most `batch_size` items.
    pub fn new(batch_size: usize) -> Self {
        Self {
            over_clears: false,
            tenants: Vec::new(),
            batch_size: batch_size.max(1),
            batch: WriteBatch::new(),
            ops: Vec::new(),
            batch_bytes: 0,
            namespaces: Vec::new(),
            seen: HashMap::new(),
            report: ImportReport::default(),
        }
    }

    /// Lets items in over a newer clear or drop of their cache, with new versions
    /// ([`WriteBatch::import_over_clears`]): the lines are the owner's copy, and whatever
    /// this store cleared or dropped of them is stale. `cluster move` imports this way, so
    /// that slots moved back to a node that gave them away are not kept out by its drops.
    pub fn over_clears(mut self, yes: bool) -> Self {
        self.over_clears = yes;
        self
    }

    /// What was done so far.
    pub fn report(&self) -> &ImportReport {
        &self.report
    }

    fn discard_batch(&mut self) {
        self.batch = WriteBatch::new();
        self.ops.clear();
        self.batch_bytes = 0;
        self.namespaces.clear();
        self.seen.clear();
        self.tenants.clear();
    }

    /// Takes one line (without its newline); writes the batch when it is full.
    ///
    /// # Errors
    /// The line is invalid (the pending batch is dropped), or a batch write failed.
    pub fn line(&mut self, store: &Store, text: &[u8]) -> Result<(), ImportError> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.report.lines += 1;
        let number = self.report.lines;
        let parsed = parse_line(text).map_err(|message| {
            self.discard_batch();
            ImportError::Line {
                line: number,
                message,
            }
        })?;
        let Entry {
            ns,
            registry,
            record,
            version,
            description_of,
        } = parsed;
        // A cache's description goes with the cache: kept out of a target that dropped the
        // cache since, as the cache is. Found from outside: its tombstone gone at a
        // compaction, an older export brought the description back, and the cache made
        // again by a write wore it.
        if let (Some(cache), Some(v), false) = (&description_of, version, self.over_clears) {
            if store.namespace(cache).is_none()
                && store.namespace_dropped_at(cache).is_some_and(|d| d >= v)
            {
                self.report.kept += 1;
                return Ok(());
            }
        }
        let (created, newest) = match (&record, version) {
            (Some(_), Some(v)) if !self.over_clears => (0, v),
            (Some(_), _) => (0, u64::MAX),
            // Over clears, a cache line is the owner's copy, as its items are.
            (None, v) if self.over_clears => (v.unwrap_or(0), u64::MAX),
            // A cache line of an export before caches had versions: no drop is older.
            (None, v) => (v.unwrap_or(0), v.unwrap_or(0)),
        };
        let at = *self.seen.entry(ns.clone()).or_insert_with(|| {
            self.namespaces.push((ns.clone(), 0, 0));
            self.namespaces.len() - 1
        });
        let pending = &mut self.namespaces[at];
        pending.1 = pending.1.max(created);
        pending.2 = pending.2.max(newest);
        let Some(item) = record else {
            return Ok(());
        };
        if item
            .options
            .expires_at_ms
            .is_some_and(|at| at <= store.now_ms())
        {
            self.report.expired += 1;
            return Ok(());
        }
        if let Some(t) = item.tenant {
            self.tenants.push((number, t));
        }
        match item.version {
            Some(v) if self.over_clears => {
                self.batch
                    .import_over_clears(&ns, &item.key, &item.value, item.options, v);
            }
            Some(v) => self
                .batch
                .import(&ns, &item.key, &item.value, item.options, v),
            None => self.batch.put(&ns, &item.key, &item.value, item.options),
        }
        self.ops.push(Op {
            line: number,
            version: item.version,
            registry,
        });
        self.batch_bytes += ns.len() + item.key.len() + item.value.len();
        if self.batch.len() >= self.batch_size || self.batch_bytes >= MAX_BATCH_BYTES {
            self.flush(store)?;
        }
        Ok(())
    }

    /// Writes the pending batch (after creating the namespaces it needs).
    ///
    /// # Errors
    /// The store refused it; nothing of it was written (namespaces may have been created).
    pub fn flush(&mut self, store: &Store) -> Result<(), ImportError> {
        let number = self.report.batches + 1;
        let failed = |error| ImportError::Write {
            batch: number,
            error,
        };
        if let Err((line, message)) = self.check_client_ids(store) {
            self.discard_batch();
            return Err(ImportError::Line { line, message });
        }
        self.tenants.clear();
        for (ns, created, newest) in std::mem::take(&mut self.namespaces) {
            if store.namespace(&ns).is_none()
                && store
                    .import_namespace(&ns, created, newest)
                    .map_err(failed)?
            {
                self.report.caches += 1;
            }
        }
        self.seen.clear();
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let ops = std::mem::take(&mut self.ops);
        self.batch_bytes = 0;
        let outcomes = store.write_batch(batch).map_err(|error| match error {
            // Only an out-of-range version makes an import's condition fail.
            WriteError::ConditionFailed { op, reason } => ImportError::Line {
                line: ops.get(op).map_or(0, |o| o.line),
                message: reason,
            },
            error => failed(error),
        })?;
        let imported = self.report.imported;
        for (op, outcome) in ops.iter().zip(outcomes) {
            match outcome {
                BatchOutcome::Kept { .. } => self.report.kept += 1,
                BatchOutcome::Stored { version } => {
                    self.report.imported += 1;
                    self.report.unversioned += u64::from(op.version.is_none());
                    self.report.renumbered += u64::from(op.version.is_some_and(|v| v != version));
                    self.report.registry_records += u64::from(op.registry);
                }
                // Imports and puts answer only `Stored` or `Kept`.
                _ => self.report.imported += 1,
            }
        }
        // A batch whose every item was kept writes nothing to disk.
        self.report.batches += u64::from(self.report.imported > imported);
        Ok(())
    }

    /// Whether the pending batch's tenant records keep every Flash `ClientId` to one tenant,
    /// as `tenant create` does (an imported tenant with another's ClientId could never use
    /// its Flash keys); `Err` names the line and the tenants.
    fn check_client_ids(&self, store: &Store) -> Result<(), (u64, String)> {
        use crate::auth::registry::Registry;
        let Some(&(first, _)) = self.tenants.first() else {
            return Ok(());
        };
        let mut owners: std::collections::HashMap<String, String> = Registry::load(store)
            .map_err(|e| (first, e.to_string()))?
            .tenants()
            .map(|t| (t.flash_client_id.clone(), t.name.clone()))
            .collect();
        for (line, t) in &self.tenants {
            let line = *line;
            match owners.insert(t.flash_client_id.clone(), t.name.clone()) {
                Some(other) if other != t.name => {
                    return Err((
                        line,
                        format!(
                        "tenant {:?} has Flash ClientId {:?}, which belongs to tenant {other:?}",
                        t.name, t.flash_client_id
                    ),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes what is pending and returns the report.
    ///
    /// # Errors
    /// See [`Importer::flush`].
    pub fn finish(mut self, store: &Store) -> Result<ImportReport, ImportError> {
        self.flush(store)?;
        Ok(self.report)
    }
}

/// What one line asks for: a namespace, and an item in it unless the line records a cache.
struct Entry {
    ns: Vec<u8>,
    registry: bool,
    record: Option<Record>,
    /// For an Akka cacheName's description, the cache's namespace.
    description_of: Option<Vec<u8>>,
    /// The line's version: an item's, or the version that created a cache.
    version: Option<u64>,
}

struct Record {
    key: Vec<u8>,
    value: Vec<u8>,
    options: PutOptions,
    version: Option<u64>,
    /// The tenant a tenant record holds, checked (for [`Importer::check_client_ids`]).
    tenant: Option<TenantRecord>,
}

fn parse_line(text: &[u8]) -> Result<Entry, String> {
    let line: Line = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let parsed = line.namespace()?;
    let registry = matches!(parsed, Parsed::SystemTenants | Parsed::SystemCredentials);
    if let Some(v) = line.version {
        if !(1..=ttlcask_engine::MAX_IMPORT_VERSION).contains(&v) {
            return Err(format!(
                "version {v} is out of range (1 to {})",
                ttlcask_engine::MAX_IMPORT_VERSION
            ));
        }
    }
    let record = match line.key_bytes()? {
        None => None,
        Some(key) => {
            let value = line.value_bytes()?;
            let tenant = check_item(&parsed, &key, &value, line.kind)?;
            Some(Record {
                tenant,
                key,
                value,
                options: PutOptions {
                    expires_at_ms: line.expires_at_ms,
                    kind: line.kind,
                    ..PutOptions::default()
                },
                version: line.version,
            })
        }
    };
    let description_of = match (&parsed, &record) {
        (Parsed::AkkaDescriptions { tenant }, Some(r)) => std::str::from_utf8(&r.key)
            .ok()
            .map(|cache| crate::namespace::akka_cache(tenant, cache)),
        _ => None,
    };
    Ok(Entry {
        ns: parsed.to_bytes(),
        registry,
        record,
        version: line.version,
        description_of,
    })
}

/// Whether an item line holds what its API can store, read and delete (sizes are the
/// server's settings and are not checked): a non-empty key, a Flash `DataKey` of URL-safe
/// characters, an Akka description named by a usable cacheName, a value kind its API
/// writes, and tenant and credential records that follow `tenant create` and `credential
/// create`. Found from outside: a credential record that was not JSON kept the server from
/// starting, and items were imported that no API could reach. A tenant record's tenant is
/// handed back.
fn check_item(
    parsed: &Parsed,
    key: &[u8],
    value: &[u8],
    kind: u8,
) -> Result<Option<TenantRecord>, String> {
    use crate::auth::registry;
    if key.is_empty() {
        return Err("key is empty".into());
    }
    let kinds: &[u8] = match parsed {
        Parsed::Iron { .. } => &[crate::iron::KIND_STRING, crate::iron::KIND_NUMBER],
        _ => &[0],
    };
    if !kinds.contains(&kind) {
        return Err(format!("kind {kind} is not one this line's API writes"));
    }
    let text = || std::str::from_utf8(key).map_err(|_| "the key is not UTF-8".to_string());
    // Every API names its keys in UTF-8 (a path segment, a JSON string, a header): a key
    // that is not would be stored where no route reads or deletes it (found from outside:
    // an Akka or IronCache line with `"key_base64": "/w=="` was taken).
    if parsed.tenant().is_some() {
        text()?;
    }
    match parsed {
        Parsed::Flash { .. } if !crate::flash::valid_data_key(text()?, usize::MAX) => Err(format!(
            "invalid Flash DataKey {:?}: use A-Z a-z 0-9 - _ . ~",
            text()?
        )),
        Parsed::AkkaDescriptions { .. }
            if crate::routes::RESERVED_FIRST_SEGMENTS.contains(&text()?) =>
        {
            Err(format!(
                "cacheName {:?} is reserved by another route",
                text()?
            ))
        }
        Parsed::SystemTenants => registry::check_tenant_record(key, value).map(Some),
        Parsed::SystemCredentials if registry::is_revoked_record(value) => Ok(None),
        Parsed::SystemCredentials => registry::check_credential_record(key, value).map(|_| None),
        _ => Ok(None),
    }
}

/// Reads export lines from `input` into `store`. `progress(bytes_read)` is called after
/// each batch.
///
/// # Errors
/// The first bad line, a line longer than [`MAX_LINE_BYTES`], or a failed batch; batches
/// before it stay written, nothing of its batch is.
pub fn import(
    store: &Store,
    mut input: impl BufRead,
    batch_size: usize,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport, ImportError> {
    let mut importer = Importer::new(batch_size);
    let mut read = 0u64;
    let mut text = Vec::new();
    loop {
        text.clear();
        let n = (&mut input)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut text)
            .map_err(|e| ImportError::Read(e.to_string()))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if text.last() == Some(&b'\n') {
            text.pop();
        } else if text.len() > MAX_LINE_BYTES {
            return Err(ImportError::Line {
                line: importer.report().lines + 1,
                message: format!("longer than {MAX_LINE_BYTES} bytes"),
            });
        }
        let batches = importer.report().batches;
        importer.line(store, &text)?;
        if importer.report().batches != batches {
            progress(read);
        }
    }
    let report = importer.finish(store)?;
    progress(read);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::{export, ExportFilter};
    use crate::namespace;
    use ttlcask_engine::ManualClock;

    const NOW: u64 = 1_773_221_932_000;

    fn store(dir: &std::path::Path, clock: &ManualClock) -> Store {
        Store::builder()
            .durability(ttlcask_engine::Durability::Never)
            .compaction_interval(None)
            .clock(clock.clone())
            .open(dir)
            .expect("open")
    }

    fn dump(store: &Store) -> String {
        let mut out = Vec::new();
        export(store, &mut out, &ExportFilter::default(), |_, _| {}).expect("export");
        String::from_utf8(out).expect("utf-8")
    }

    /// A source store with items of every API, a non-UTF-8 key, an expiry, an empty cache
    /// and registry records.
    fn source(dir: &std::path::Path, clock: &ManualClock) -> Store {
        let src = store(dir, clock);
        let project = "4ccf2c5da3c0f1a4d1000011";
        src.put(
            &namespace::flash("acme", "default"),
            b"k1",
            b"{\"a\":1}",
            PutOptions::expiring_at(NOW + 3_600_000),
        )
        .expect("put");
        src.put(
            &namespace::iron_cache("acme", project, "c/\u{e9}"),
            b"n",
            b"42",
            PutOptions::default().with_kind(1),
        )
        .expect("put");
        let ns = namespace::akka_cache("ttorg", "bin");
        src.put(
            &ns,
            "\u{ff}\u{0}".as_bytes(),
            &[0, 1, 2, 255],
            PutOptions::default(),
        )
        .expect("put");
        for i in 0..10u8 {
            src.put(&ns, &[b'k', i], &[i], PutOptions::default())
                .expect("put");
        }
        src.create_namespace(&namespace::akka_cache("ttorg", "empty"))
            .expect("create");
        src.put(
            namespace::SYSTEM_TENANTS,
            b"acme",
            br#"{"name":"acme","flash_client_id":"v1:uid_acme","created_ms":1}"#,
            PutOptions::default(),
        )
        .expect("put");
        src
    }

    #[test]
    fn export_import_round_trips_exactly_with_versions_and_expiries() {
        let (a, b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let clock = ManualClock::new(NOW);
        let src = source(a.path(), &clock);
        let first = dump(&src);
        assert!(first.contains("\"key\":\"\u{ff}\\u0000\""), "{first}");
        assert!(first.contains("\"version\":"));

        let dst = store(b.path(), &clock);
        let report = import(&dst, first.as_bytes(), 4, |_| {}).expect("import");
        assert_eq!(report.imported, 14, "{report:?}");
        assert_eq!((report.kept, report.expired, report.unversioned), (0, 0, 0));
        assert_eq!(report.registry_records, 1);
        assert_eq!(report.caches, 5);
        assert_eq!(dump(&dst), first, "versions and expiries are kept");
        let item = dst
            .get(&namespace::flash("acme", "default"), b"k1")
            .expect("get")
            .expect("item");
        assert_eq!(item.expires_at_ms, Some(NOW + 3_600_000));

        // The target's counter moved past every imported version.
        let max = first
            .lines()
            .filter_map(|l| serde_json::from_str::<Line>(l).ok()?.version)
            .max()
            .expect("versions");
        let next = dst
            .put(
                &namespace::akka_cache("t", "c"),
                b"after",
                b"z",
                PutOptions::default(),
            )
            .expect("put");
        assert!(next > max, "{next} > {max}");
    }

    // Found from outside (seventeenth session): a key that is not UTF-8, which no API names,
    // was imported where nothing could read or delete it. A store holding one (an embedder's,
    // or an import from before the check) exports it as `key_base64`; import refuses that
    // line, and nothing of its batch is stored.
    #[test]
    fn a_key_no_api_names_is_exported_as_base64_and_refused_on_import() {
        let (a, b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let clock = ManualClock::new(NOW);
        let src = store(a.path(), &clock);
        let ns = namespace::akka_cache("ttorg", "bin");
        src.put(&ns, b"fine", b"1", PutOptions::default())
            .expect("put");
        src.put(&ns, &[0xff, 0x00], b"2", PutOptions::default())
            .expect("put");
        let lines = dump(&src);
        assert!(lines.contains("\"key_base64\":\"/wA=\""), "{lines}");
        let dst = store(b.path(), &clock);
        let err = import(&dst, lines.as_bytes(), 100, |_| {}).expect_err("refused");
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        assert!(dst.get(&ns, b"fine").expect("get").is_none(), "its batch");
    }

    #[test]
    fn a_rerun_changes_nothing_and_keeps_newer_records() {
        let (a, b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let clock = ManualClock::new(NOW);
        let src = source(a.path(), &clock);
        let lines = dump(&src);
        let dst = store(b.path(), &clock);
        // Interrupted: only the first half of the lines made it.
        let half: Vec<&str> = lines.lines().take(6).collect();
        import(&dst, half.join("\n").as_bytes(), 3, |_| {}).expect("first half");
        let all = import(&dst, lines.as_bytes(), 3, |_| {}).expect("re-run");
        assert!(all.kept > 0 && all.imported > 0, "{all:?}");
        assert_eq!(dump(&dst), lines);
        let again = import(&dst, lines.as_bytes(), 3, |_| {}).expect("again");
        assert_eq!((again.imported, again.kept, again.caches), (0, 14, 0));
        assert_eq!(again.batches, 0, "nothing written: {again:?}");
        assert_eq!(dump(&dst), lines);

        // A newer write on the target wins over the export.
        let ns = namespace::akka_cache("ttorg", "bin");
        let newer = dst
            .put(&ns, b"k\x01", b"mine", PutOptions::default())
            .expect("put");
        let r = import(&dst, lines.as_bytes(), 100, |_| {}).expect("import");
        assert_eq!(r.kept, 14);
        let item = dst.get(&ns, b"k\x01").expect("get").expect("item");
        assert_eq!((item.version, &item.value[..]), (newer, &b"mine"[..]));
    }

    // Found from outside (thirteenth session): run again after the target deleted caches,
    // an import kept their items out (the drops were newer) but made the caches again, empty:
    // cache lines carried no version to hold against the drop.
    #[test]
    fn a_rerun_does_not_bring_back_caches_dropped_since() {
        let (a, b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let clock = ManualClock::new(NOW);
        let src = source(a.path(), &clock);
        let lines = dump(&src);
        let dst = store(b.path(), &clock);
        import(&dst, lines.as_bytes(), 3, |_| {}).expect("import");
        let empty = namespace::akka_cache("ttorg", "empty");
        let iron = namespace::iron_cache("acme", "4ccf2c5da3c0f1a4d1000011", "c/\u{e9}");
        for ns in [&empty, &iron] {
            assert!(dst.drop_namespace(ns).expect("drop"), "{ns:?}");
        }
        let again = import(&dst, lines.as_bytes(), 3, |_| {}).expect("again");
        assert_eq!((again.imported, again.caches), (0, 0), "{again:?}");
        assert!(dst.namespace(&empty).is_none() && dst.namespace(&iron).is_none());
        drop(dst);
        // The drops are known after a reopen too (from their records).
        let dst = store(b.path(), &clock);
        let again = import(&dst, lines.as_bytes(), 3, |_| {}).expect("after reopen");
        assert_eq!((again.imported, again.caches), (0, 0), "{again:?}");
        assert!(dst.namespace(&empty).is_none() && dst.namespace(&iron).is_none());

        // A cache made again on the target after the drop is its own: left as it is.
        dst.create_namespace(&empty).expect("create");
        let made = dst.namespace(&empty).expect("made").created_version;
        import(&dst, lines.as_bytes(), 3, |_| {}).expect("import");
        assert_eq!(dst.namespace(&empty).map(|n| n.created_version), Some(made));

        // `cluster move` imports over drops (the lines are the owner's copy): back, with
        // the item renumbered.
        let mut importer = Importer::new(3).over_clears(true);
        for line in lines.lines() {
            importer.line(&dst, line.as_bytes()).expect("line");
        }
        let moved = importer.finish(&dst).expect("finish");
        assert_eq!((moved.caches, moved.renumbered), (1, 1), "{moved:?}");
        let item = dst.get(&iron, b"n").expect("get").expect("item");
        assert_eq!(&item.value[..], b"42");
        // An empty cache too (found from outside: slots moved away and back lost their empty
        // caches), and it stays after a reopen (its creation renumbered above the drop).
        dst.drop_namespace(&empty).expect("drop");
        let mut importer = Importer::new(3).over_clears(true);
        for line in lines.lines() {
            importer.line(&dst, line.as_bytes()).expect("line");
        }
        assert_eq!(importer.finish(&dst).expect("finish").caches, 1);
        drop(dst);
        let dst = store(b.path(), &clock);
        assert!(
            dst.namespace(&empty).is_some(),
            "an empty cache moved back stays"
        );
    }

    /// A store of 4 KiB segments, so that a compaction rewrites what a few writes left.
    fn small_segments(dir: &std::path::Path, clock: &ManualClock) -> Store {
        Store::builder()
            .durability(ttlcask_engine::Durability::Never)
            .compaction_interval(None)
            .segment_size(4096)
            .clock(clock.clone())
            .open(dir)
            .expect("open")
    }

    /// `store` after enough later writes, a reopen and three compactions that the segments
    /// of its earlier records are rewritten (dropping the tombstones nothing older needs).
    fn compacted_after_filler(store: Store, dir: &std::path::Path, clock: &ManualClock) -> Store {
        let filler = namespace::akka_cache("ttorg", "filler");
        for i in 0..200u32 {
            store
                .put(&filler, &i.to_be_bytes(), &[1; 100], PutOptions::default())
                .expect("put");
        }
        drop(store);
        let store = small_segments(dir, clock);
        for _ in 0..3 {
            store.compact().expect("compact");
        }
        store
    }

    // Found from outside (thirteenth session): an export taken before a revoke, imported
    // again after a compaction had dropped the revoke's tombstone, brought the credential
    // back to life. A revoke now keeps a revoked record, which no older line overwrites.
    #[test]
    fn a_revoked_credential_stays_revoked_when_an_older_export_is_imported_after_compaction() {
        use crate::auth::registry::{self, Api, Registry};
        let dir = tempfile::tempdir().expect("dir");
        let clock = ManualClock::new(NOW);
        let store = small_segments(dir.path(), &clock);
        registry::create_tenant(&store, "acme").expect("tenant");
        let id = registry::create_credential(&store, "acme", Api::Iron, None, None)
            .expect("credential")
            .credential
            .id;
        let lines = dump(&store);
        registry::revoke_credential(&store, &id).expect("revoke");
        assert!(
            registry::revoke_credential(&store, &id).is_err(),
            "revoked once"
        );
        let store = compacted_after_filler(store, dir.path(), &clock);
        let report = import(&store, lines.as_bytes(), 10, |_| {}).expect("import");
        assert_eq!(report.registry_records, 0, "{report:?}");
        let loaded = Registry::load(&store).expect("registry");
        assert!(
            loaded.credential(&id).is_none(),
            "the revoked credential came back"
        );
        assert!(loaded.tenant("acme").is_some());
        // Its export carries the revocation, also one of the tenant alone: imported into a
        // store that holds the credential, it revokes it there.
        let mut revoked = Vec::new();
        let filter = ExportFilter {
            tenant: Some("acme".into()),
            ..ExportFilter::default()
        };
        export(&store, &mut revoked, &filter, |_, _| {}).expect("export");
        let revoked = String::from_utf8(revoked).expect("utf-8");
        assert!(revoked.contains("\"credentials\""), "{revoked}");
        let other_dir = tempfile::tempdir().expect("dir");
        let other = super::tests::store(other_dir.path(), &clock);
        import(&other, lines.as_bytes(), 10, |_| {}).expect("import");
        assert!(Registry::load(&other)
            .expect("registry")
            .credential(&id)
            .is_some());
        import(&other, revoked.as_bytes(), 10, |_| {}).expect("import");
        assert!(Registry::load(&other)
            .expect("registry")
            .credential(&id)
            .is_none());
    }

    // Found from outside (thirteenth session): after a compaction had dropped the tombstone
    // of a dropped Akka cache's description, an older export brought the description back,
    // and the cache, made again by a write, wore it. A description goes with its cache.
    #[test]
    fn a_dropped_caches_description_stays_dropped_when_an_older_export_is_imported() {
        let dir = tempfile::tempdir().expect("dir");
        let clock = ManualClock::new(NOW);
        let store = small_segments(dir.path(), &clock);
        let cache = namespace::akka_cache("ttorg", "orders");
        let descriptions = namespace::akka_descriptions("ttorg");
        store.create_namespace(&cache).expect("create");
        store
            .put(&cache, b"k", b"v", PutOptions::default())
            .expect("put");
        store
            .put(
                &descriptions,
                b"orders",
                b"order cache",
                PutOptions::default(),
            )
            .expect("describe");
        let lines = dump(&store);
        // DELETE /cacheName/orders: the cache and its description.
        assert!(store.drop_namespace(&cache).expect("drop"));
        assert!(store.delete(&descriptions, b"orders").expect("delete"));
        let store = compacted_after_filler(store, dir.path(), &clock);
        let report = import(&store, lines.as_bytes(), 10, |_| {}).expect("import");
        assert_eq!(report.imported, 0, "{report:?}");
        assert!(store.namespace(&cache).is_none());
        assert!(
            store.get(&descriptions, b"orders").expect("read").is_none(),
            "the dropped cache's description came back"
        );
        // Over clears (`cluster move`: the lines are the owner's copy) it comes back with
        // its cache.
        let mut importer = Importer::new(10).over_clears(true);
        for line in lines.lines() {
            importer.line(&store, line.as_bytes()).expect("line");
        }
        importer.finish(&store).expect("finish");
        assert!(store.namespace(&cache).is_some());
        assert!(store.get(&descriptions, b"orders").expect("read").is_some());
    }

    #[test]
    fn old_lines_without_version_are_plain_puts_and_expired_lines_are_skipped() {
        let dir = tempfile::tempdir().expect("dir");
        let clock = ManualClock::new(NOW);
        let dst = store(dir.path(), &clock);
        let input = format!(
            "{}\n\n{}\n{}\n",
            r#"{"tenant":"t","api":"akka","cache":"c"}"#,
            r#"{"tenant":"t","api":"akka","cache":"c","key":"old","value":"AA==","expires_at_ms":null,"kind":0}"#,
            format_args!(
                r#"{{"tenant":"t","api":"akka","cache":"c","key":"gone","value":"AA==","expires_at_ms":{},"kind":0,"version":9}}"#,
                NOW - 1000
            ),
        );
        let r = import(&dst, input.as_bytes(), 10, |_| {}).expect("import");
        assert_eq!(
            (r.lines, r.imported, r.unversioned, r.expired, r.caches),
            (3, 1, 1, 1, 1)
        );
        let ns = namespace::akka_cache("t", "c");
        assert!(dst.get(&ns, b"old").expect("get").is_some());
        assert!(dst.get(&ns, b"gone").expect("get").is_none());
    }

    #[test]
    fn a_bad_line_writes_nothing_of_its_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dst = store(dir.path(), &ManualClock::new(NOW));
        let input = concat!(
            "{\"tenant\":\"t\",\"api\":\"akka\",\"cache\":\"c\",\"key\":\"a\",\"value\":\"AA==\"}\n",
            "{\"tenant\":\"t\",\"api\":\"akka\",\"cache\":\"c\",\"key\":\"b\",\"value\":\"AA==\"}\n",
            "{\"tenant\":\"t\",\"api\":\"akka\",\"cache\":\"c\",\"key\":\"c\",\"value\":\"AA==\"}\n",
            "{\"tenant\":\"t\",\"api\":\"nope\",\"cache\":\"c\",\"key\":\"d\",\"value\":\"AA==\"}\n",
        );
        let err = import(&dst, input.as_bytes(), 2, |_| {}).expect_err("bad api");
        assert!(err.to_string().contains("line 4"), "{err}");
        let ns = namespace::akka_cache("t", "c");
        assert!(
            dst.get(&ns, b"a").expect("get").is_some(),
            "first batch kept"
        );
        assert!(
            dst.get(&ns, b"c").expect("get").is_none(),
            "failed batch absent"
        );
        // A version the engine cannot hold names its line too.
        let huge = format!(
            "{}\n",
            r#"{"tenant":"t","api":"akka","cache":"c","key":"z","value":"","version":18446744073709551615}"#
        );
        let err = import(&dst, huge.as_bytes(), 2, |_| {}).expect_err("huge version");
        assert!(matches!(err, ImportError::Line { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn a_line_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dst = store(dir.path(), &ManualClock::new(NOW));
        let long = std::io::repeat(b'x').take(MAX_LINE_BYTES as u64 + 10);
        let err = import(&dst, std::io::BufReader::new(long), 2, |_| {}).expect_err("long");
        assert!(err.to_string().contains("longer than"), "{err}");
    }
}
