//! Export: every namespace and live item of a store as [`Line`]s, each item with its version
//! and expiry, optionally only one tenant's or a range of slots' data ([`ExportFilter`]).
//!
//! Namespaces come in name order and keys sorted within each, so the same store exports to
//! the same bytes. Only one namespace's keys are held at a time; values are read one by one.

use std::io::Write;
use std::ops::RangeInclusive;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ttlcask_engine::{ReadError, Store};

use super::line::Line;
use crate::auth::registry::Registry;
use crate::http::{check_param_names, query_params, ParamProblem};
use crate::namespace::{self, Parsed};
use crate::slot::{self, ClientIds};

/// Which part of a store an export covers. The default is everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Only this tenant's caches (and of the registry only its tenant record and
    /// credentials).
    pub tenant: Option<String>,
    /// Only caches whose slot ([`crate::slot`]) is in this range.
    pub slots: Option<RangeInclusive<u16>>,
    /// Whether the tenant and credential records are written. Default: yes, unless `slots`
    /// is given (every node of a cluster holds the same registry, and records are in no
    /// slot).
    pub registry: Option<bool>,
}

impl ExportFilter {
    /// Reads `tenant=NAME`, `slot=A..B` (or `slot=A`) and `registry=true|false` from a URL
    /// query. Any other parameter is refused, so that a filter this server does not know
    /// never silently exports everything.
    ///
    /// # Errors
    /// A message naming the parameter.
    pub fn from_query(query: Option<&str>) -> Result<Self, String> {
        let mut filter = Self::default();
        check_param_names(query, &["tenant", "slot", "registry"]).map_err(|p| match p {
            ParamProblem::Unknown(name) => {
                format!("unknown export parameter {name:?}: use tenant=, slot=A..B, registry=")
            }
            ParamProblem::Repeated(name) => format!("give {name}= once"),
        })?;
        if let Some(t) = query_params(query, "tenant").next() {
            check_tenant(&t)?;
            filter.tenant = Some(t);
        }
        if let Some(s) = query_params(query, "slot").next() {
            filter.slots = Some(slot::parse_range(&s)?);
        }
        if let Some(r) = query_params(query, "registry").next() {
            filter.registry = Some(match r.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(format!("registry={r:?}: use true or false")),
            });
        }
        Ok(filter)
    }

    /// The query string [`Self::from_query`] reads back (empty for no filter).
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.tenant {
            // Tenant names are URL-safe (`A-Z a-z 0-9 . _ -`).
            parts.push(format!("tenant={t}"));
        }
        if let Some(s) = &self.slots {
            parts.push(format!("slot={}..{}", s.start(), s.end()));
        }
        if let Some(r) = self.registry {
            parts.push(format!("registry={r}"));
        }
        parts.join("&")
    }

    fn wants_registry(&self) -> bool {
        self.registry.unwrap_or(self.slots.is_none())
    }

    fn wants(&self, ns: &Parsed, client_ids: &ClientIds) -> bool {
        match ns {
            Parsed::SystemTenants | Parsed::SystemCredentials => self.wants_registry(),
            _ => {
                self.tenant
                    .as_deref()
                    .is_none_or(|t| ns.tenant() == Some(t))
                    && self.slots.as_ref().is_none_or(|range| {
                        slot::of_namespace(ns, client_ids).is_some_and(|s| range.contains(&s))
                    })
            }
        }
    }

    /// Whether a registry record (a tenant or credential as JSON) belongs in the export.
    fn wants_record(&self, value: &[u8]) -> bool {
        let Some(tenant) = &self.tenant else {
            return true;
        };
        let record: serde_json::Value = serde_json::from_slice(value).unwrap_or_default();
        // A tenant record names itself by `name`, a credential its owner by `tenant`.
        record.get("tenant").or_else(|| record.get("name")) == Some(&tenant.as_str().into())
    }
}

/// Refuses a tenant filter that is no tenant name (the admin API and the CLI say the same),
/// rather than exporting nothing as if the tenant had no data.
///
/// # Errors
/// `invalid tenant name "…"`.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    if namespace::valid_tenant(tenant) {
        Ok(())
    } else {
        Err(format!("invalid tenant name {tenant:?}"))
    }
}

/// What [`export`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExportReport {
    /// Lines written.
    pub lines: u64,
    /// Items written (lines with a key).
    pub items: u64,
    /// Keys left out because their newest record is damaged or lost (they read as misses).
    pub lost: u64,
    /// Flash caches left out of a slot filter because their tenant has no `ClientId` (no
    /// registry record), so no request reaches them and they are in no slot.
    pub unplaced: u64,
}

/// Writes the namespaces and live items of `store` that `filter` selects as JSON lines. A
/// key whose record is damaged or lost is left out and counted, as a read of it answers a
/// miss. `progress(done, total)` is called per namespace.
///
/// # Errors
/// A message when a read or the output fails.
pub fn export<W: Write + ?Sized>(
    store: &Store,
    out: &mut W,
    filter: &ExportFilter,
    mut progress: impl FnMut(u64, u64),
) -> Result<ExportReport, String> {
    let client_ids = if filter.slots.is_some() {
        ClientIds::from_registry(&Registry::load(store).map_err(|e| e.to_string())?)
    } else {
        ClientIds::default()
    };
    let namespaces = store.namespaces(b"");
    let total = namespaces.len() as u64;
    let mut report = ExportReport::default();
    for (i, info) in namespaces.iter().enumerate() {
        let Some(parsed) = namespace::parse(&info.name) else {
            return Err(format!(
                "namespace {:?} was not written by a ttlcask server; export covers server data dirs only",
                String::from_utf8_lossy(&info.name)
            ));
        };
        if !filter.wants(&parsed, &client_ids) {
            if filter.slots.is_some()
                && matches!(parsed, Parsed::Flash { .. })
                && slot::of_namespace(&parsed, &client_ids).is_none()
            {
                report.unplaced += 1;
            }
            progress(i as u64 + 1, total);
            continue;
        }
        let system = matches!(parsed, Parsed::SystemTenants | Parsed::SystemCredentials);
        let base = Line::of_namespace(&parsed);
        // The cache line carries the version that created the cache: an import into a store
        // that dropped the cache since keeps it out, as it keeps out its items.
        let cache = Line {
            version: Some(info.created_version),
            ..base.clone()
        };
        let mut emit = |line: &Line| -> Result<(), String> {
            serde_json::to_writer(&mut *out, line).map_err(|e| e.to_string())?;
            out.write_all(b"\n").map_err(|e| e.to_string())?;
            report.lines += 1;
            Ok(())
        };
        emit(&cache)?;
        let mut keys: Vec<Vec<u8>> = store.keys(&info.name).collect();
        keys.sort();
        for key in keys {
            let item = match store.get(&info.name, &key) {
                Ok(Some(item)) => item,
                Ok(None) => continue, // expired or deleted meanwhile
                Err(ReadError::Lost { .. } | ReadError::Corrupt { .. }) => {
                    report.lost += 1;
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            if system && !filter.wants_record(&item.value) {
                continue;
            }
            let mut line = base.clone();
            line.set_key(key);
            line.value = Some(BASE64.encode(&item.value));
            line.expires_at_ms = item.expires_at_ms;
            line.kind = item.kind;
            line.version = Some(item.version);
            emit(&line)?;
            report.items += 1;
        }
        progress(i as u64 + 1, total);
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_back_from_their_query() {
        for f in [
            ExportFilter::default(),
            ExportFilter {
                tenant: Some("acme".into()),
                slots: Some(3..=700),
                registry: Some(true),
            },
        ] {
            assert_eq!(ExportFilter::from_query(Some(&f.to_query())), Ok(f));
        }
        assert_eq!(
            ExportFilter::from_query(Some("slot=9")).map(|f| f.slots),
            Ok(Some(9..=9))
        );
        for bad in [
            "project=abc",
            "tenant=a/b",
            "slot=1024",
            "registry=yes",
            "tenant=a&tenant=b",
        ] {
            assert!(ExportFilter::from_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_slot_filter_leaves_the_registry_out_unless_asked() {
        let slots = ExportFilter {
            slots: Some(0..=1023),
            ..ExportFilter::default()
        };
        assert!(!slots.wants_registry());
        assert!(ExportFilter {
            registry: Some(true),
            ..slots
        }
        .wants_registry());
        assert!(ExportFilter::default().wants_registry());
    }

    fn exported(store: &Store, filter: &ExportFilter) -> Vec<Line> {
        let mut out = Vec::new();
        export(store, &mut out, filter, |_, _| {}).expect("export");
        String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("line"))
            .collect()
    }

    #[test]
    fn tenant_and_slot_filters_pick_their_caches() {
        use ttlcask_engine::PutOptions;
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        let project = "4ccf2c5da3c0f1a4d1000011";
        for tenant in ["acme", "bob"] {
            for ns in [
                namespace::flash(tenant, "default"),
                namespace::iron_cache(tenant, project, "c"),
                namespace::akka_cache(tenant, "c"),
            ] {
                store
                    .put(&ns, b"k", b"v", PutOptions::default())
                    .expect("put");
            }
        }
        let record = br#"{"name":"acme","flash_client_id":"v1:uid_acme","created_ms":1}"#;
        store
            .put(
                namespace::SYSTEM_TENANTS,
                b"acme",
                record,
                PutOptions::default(),
            )
            .expect("put");
        let credential = br#"{"id":"0123456789ab","tenant":"bob","api":"iron","secret_sha256":"00","created_ms":1}"#;
        store
            .put(
                namespace::SYSTEM_CREDENTIALS,
                b"0123456789ab",
                credential,
                PutOptions::default(),
            )
            .expect("put");

        let acme = exported(
            &store,
            &ExportFilter {
                tenant: Some("acme".into()),
                ..ExportFilter::default()
            },
        );
        assert!(acme
            .iter()
            .all(|l| l.tenant.as_deref() == Some("acme") || l.system.is_some()));
        assert_eq!(
            acme.iter().filter(|l| l.key.is_some()).count(),
            4,
            "{acme:?}"
        );
        assert!(
            acme.iter().any(|l| l.key.as_deref() == Some("acme")),
            "its record"
        );
        assert!(!acme
            .iter()
            .any(|l| l.key.as_deref() == Some("0123456789ab")));

        // A slot range that holds only acme's Akka cache (its org's slot).
        let akka_slot = slot::of_key(b"acme");
        let flash_slot = slot::of_key(b"v1:uid_acme");
        let iron_slot = slot::of_key(project.as_bytes());
        let bob_slot = slot::of_key(b"bob");
        assert!(![flash_slot, iron_slot, bob_slot].contains(&akka_slot));
        let one = |s: u16| ExportFilter {
            slots: Some(s..=s),
            ..ExportFilter::default()
        };
        let akka = exported(&store, &one(akka_slot));
        assert_eq!(
            akka.len(),
            2,
            "the cache and its item, no registry: {akka:?}"
        );
        assert_eq!(akka[0].api.as_deref(), Some("akka"));
        let flash = exported(&store, &one(flash_slot));
        assert_eq!(flash[0].api.as_deref(), Some("flash"), "{flash:?}");
        assert_eq!(
            flash[0].tenant.as_deref(),
            Some("acme"),
            "bob has no ClientId"
        );
        let iron = exported(&store, &one(iron_slot));
        assert_eq!(
            iron.iter().filter(|l| l.key.is_some()).count(),
            2,
            "one project, both tenants"
        );
        let mut out = Vec::new();
        let all = export(
            &store,
            &mut out,
            &ExportFilter {
                slots: Some(0..=1023),
                ..ExportFilter::default()
            },
            |_, _| {},
        )
        .expect("export");
        assert_eq!(
            (all.items, all.unplaced),
            (5, 1),
            "bob's Flash cache is in no slot"
        );
    }
}
