//! One line of an export: a JSON object, written by [`super::export`] and read by
//! [`super::import`].
//!
//! | field | meaning |
//! |---|---|
//! | `system` | `tenants` or `credentials`: the server's own records (no `tenant`/`api`) |
//! | `tenant` | owning tenant |
//! | `api` | `flash`, `iron`, `akka` or `akka-descriptions` |
//! | `project` | IronCache project id (24 lowercase hex digits) |
//! | `cache` | Flash app, IronCache cache or Akka cacheName |
//! | `key` / `key_base64` | the key as text, or as base64 when it is not UTF-8; absent: the line records that the cache exists (also when empty) |
//! | `value` | base64 |
//! | `expires_at_ms` | absolute expiry in ms since the epoch, `null` never |
//! | `kind` | the engine's value-kind tag (IronCache numbers are 1) |
//! | `version` | the item's version (IronCache's `cas`), or on a line that records a cache the version that created it; absent in exports before versions were kept, and such an item line is imported as a plain put with a new version |
//!
//! Unknown fields are ignored, so an older ttlcask imports a newer export (as plain puts).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::namespace::{self, Parsed};

/// One export line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The item's version (IronCache's `cas`), kept by import; on a line that records a cache,
    /// the version that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl Line {
    /// The line that records a namespace (no key); item lines start from it.
    pub fn of_namespace(parsed: &Parsed) -> Self {
        let empty = Self::default();
        match parsed.clone() {
            Parsed::Flash { tenant, app } => Self {
                tenant: Some(tenant),
                api: Some("flash".into()),
                cache: Some(app),
                ..empty
            },
            Parsed::Iron {
                tenant,
                project,
                cache,
            } => Self {
                tenant: Some(tenant),
                api: Some("iron".into()),
                project: Some(project),
                cache: Some(cache),
                ..empty
            },
            Parsed::Akka { tenant, cache } => Self {
                tenant: Some(tenant),
                api: Some("akka".into()),
                cache: Some(cache),
                ..empty
            },
            Parsed::AkkaDescriptions { tenant } => Self {
                tenant: Some(tenant),
                api: Some("akka-descriptions".into()),
                ..empty
            },
            Parsed::SystemTenants => Self {
                system: Some("tenants".into()),
                ..empty
            },
            Parsed::SystemCredentials => Self {
                system: Some("credentials".into()),
                ..empty
            },
        }
    }

    /// Sets the key, as text when it is UTF-8.
    pub fn set_key(&mut self, key: Vec<u8>) {
        match String::from_utf8(key) {
            Ok(text) => self.key = Some(text),
            Err(e) => self.key_base64 = Some(BASE64.encode(e.as_bytes())),
        }
    }

    /// The key bytes, or `None` for a line that records a cache.
    ///
    /// # Errors
    /// `key_base64` is not base64, or the line has both `key` and `key_base64` (which one
    /// it meant is a guess: `key` was taken, found from outside).
    pub fn key_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        match (&self.key, &self.key_base64) {
            (Some(_), Some(_)) => {
                Err("a line has key or key_base64, not both (which key it means is a guess)".into())
            }
            (Some(k), None) => Ok(Some(k.as_bytes().to_vec())),
            (None, Some(b)) => BASE64
                .decode(b)
                .map(Some)
                .map_err(|e| format!("key_base64: {e}")),
            (None, None) => Ok(None),
        }
    }

    /// The value bytes (empty when absent).
    ///
    /// # Errors
    /// `value` is not base64.
    pub fn value_bytes(&self) -> Result<Vec<u8>, String> {
        BASE64
            .decode(self.value.as_deref().unwrap_or(""))
            .map_err(|e| format!("value: {e}"))
    }

    /// What the line's namespace is.
    ///
    /// # Errors
    /// A message naming the missing or invalid field.
    pub fn namespace(&self) -> Result<Parsed, String> {
        let need = |v: &Option<String>, what: &str| {
            v.clone()
                .ok_or_else(|| format!("{what} is required for this line"))
        };
        Ok(match (self.system.as_deref(), self.api.as_deref()) {
            (Some("tenants"), _) => Parsed::SystemTenants,
            (Some("credentials"), _) => Parsed::SystemCredentials,
            (Some(other), _) => return Err(format!("unknown system namespace {other:?}")),
            (None, Some(api)) => {
                let tenant = need(&self.tenant, "tenant")?;
                if !namespace::valid_tenant(&tenant) {
                    return Err(format!("invalid tenant name {tenant:?}"));
                }
                // The names each API can reach (sizes are the server's settings, not
                // checked here): a line that breaks them would store what no API reads
                // or deletes.
                let cache = || {
                    need(&self.cache, "cache")
                        .and_then(|c| (!c.is_empty()).then_some(c).ok_or("cache is empty".into()))
                };
                match api {
                    "flash" => {
                        let app = cache()?;
                        if !namespace::valid_tenant(&app) {
                            return Err(format!(
                                "invalid Flash app {app:?}: use 1 to 64 of A-Z a-z 0-9 . _ -"
                            ));
                        }
                        Parsed::Flash { tenant, app }
                    }
                    "iron" => {
                        // The API reads project ids in any case and keeps them lower-case.
                        let project = need(&self.project, "project")?.to_ascii_lowercase();
                        if project.len() != namespace::IRON_PROJECT_LEN
                            || !project.bytes().all(|b| b.is_ascii_hexdigit())
                        {
                            return Err(format!("project must be 24 hex digits, got {project:?}"));
                        }
                        Parsed::Iron {
                            tenant,
                            project,
                            cache: cache()?,
                        }
                    }
                    "akka" => {
                        let cache = cache()?;
                        if crate::routes::RESERVED_FIRST_SEGMENTS.contains(&cache.as_str()) {
                            return Err(format!(
                                "cacheName {cache:?} is reserved by another route"
                            ));
                        }
                        Parsed::Akka { tenant, cache }
                    }
                    "akka-descriptions" => Parsed::AkkaDescriptions { tenant },
                    other => return Err(format!("unknown api {other:?}")),
                }
            }
            (None, None) => return Err("a line needs either system or api".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_without_version_still_reads() {
        let old = r#"{"tenant":"t","api":"akka","cache":"c","key":"k","value":"AA==","expires_at_ms":null,"kind":0}"#;
        let line: Line = serde_json::from_str(old).expect("parse");
        assert_eq!(line.version, None);
        assert_eq!(line.key_bytes(), Ok(Some(b"k".to_vec())));
        assert_eq!(line.value_bytes(), Ok(vec![0]));
        assert_eq!(
            line.namespace().map(|p| p.to_bytes()),
            Ok(namespace::akka_cache("t", "c"))
        );
    }

    #[test]
    fn every_namespace_round_trips_through_a_line() {
        for p in [
            Parsed::Flash {
                tenant: "t".into(),
                app: "a".into(),
            },
            Parsed::Iron {
                tenant: "t".into(),
                project: "4ccf2c5da3c0f1a4d1000011".into(),
                cache: "c/é".into(),
            },
            Parsed::Akka {
                tenant: "t".into(),
                cache: "c".into(),
            },
            Parsed::AkkaDescriptions { tenant: "t".into() },
            Parsed::SystemTenants,
            Parsed::SystemCredentials,
        ] {
            assert_eq!(Line::of_namespace(&p).namespace(), Ok(p));
        }
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let line = |json: &str| serde_json::from_str::<Line>(json).expect("parse");
        assert!(line(r#"{"api":"nope","tenant":"t","cache":"c"}"#)
            .namespace()
            .is_err_and(|e| e.contains("unknown api")));
        assert!(
            line(r#"{"api":"iron","tenant":"t","cache":"c","project":"x"}"#)
                .namespace()
                .is_err_and(|e| e.contains("24 hex digits"))
        );
        assert!(line(r#"{"key":"k"}"#)
            .namespace()
            .is_err_and(|e| e.contains("system or api")));
        assert!(line(r#"{"key_base64":"!!"}"#).key_bytes().is_err());
        assert!(line(r#"{"key":"k","key_base64":"aw=="}"#)
            .key_bytes()
            .is_err_and(|e| e.contains("not both")));
        assert_eq!(
            line(r#"{"key_base64":"aw=="}"#).key_bytes(),
            Ok(Some(b"k".to_vec()))
        );
    }
}
