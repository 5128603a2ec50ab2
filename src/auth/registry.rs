//! Tenants and credentials: persisted as JSON records in reserved engine namespaces
//! ([`SYSTEM_TENANTS`], [`SYSTEM_CREDENTIALS`]) and mirrored in memory.
//!
//! A secret is `<12-hex id><28-hex secret>` (Flash keys add the `v1:api_` prefix, Akka
//! credentials are JWTs carrying the id in `jti`). Only its SHA-256 is stored; the id finds
//! the record and the hash is compared in constant time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ttlcask_engine::{Condition, Item, PutOptions, ReadError, Store, WriteError};

use super::{constant_time_eq, secret_hash};
use crate::http::{hex, random_hex, secret_hex};
use crate::namespace::{valid_tenant, SYSTEM_CREDENTIALS, SYSTEM_TENANTS};

const ID_HEX: usize = 12;
const SECRET_HEX: usize = 40;
const FLASH_KEY_PREFIX: &str = "v1:api_";

/// Which API a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// Flash Cache API key.
    Flash,
    /// IronCache token.
    Iron,
    /// Akka Cache JWT.
    Akka,
}

impl std::str::FromStr for Api {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "flash" => Ok(Self::Flash),
            "iron" => Ok(Self::Iron),
            "akka" => Ok(Self::Akka),
            other => Err(format!("unknown api {other:?}: use flash, iron or akka")),
        }
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// Name (also the Akka `org`).
    pub name: String,
    /// The Flash Cache `ClientId` of this tenant.
    pub flash_client_id: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
}

/// A credential (never holds the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Public id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// API.
    pub api: Api,
    /// Flash Cache app (the cache its key writes to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
}

/// Why a registry change failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// Bad input (name, api, app); the message says what is accepted.
    Invalid(String),
    /// The tenant or credential exists already / does not exist.
    Conflict(String),
    /// Not found.
    NotFound(String),
    /// The store failed.
    Store(String),
    /// The disk is full: nothing was stored (507 in the admin API, as in the data APIs).
    DiskFull(String),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(m)
            | Self::Conflict(m)
            | Self::NotFound(m)
            | Self::Store(m)
            | Self::DiskFull(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RegistryError {}

fn store_err(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Store(e.to_string())
}

/// A refused write: a full disk stays a full disk (found from outside, twelfth session:
/// `credential create` on a full disk answered 500).
fn write_err(e: WriteError) -> RegistryError {
    match e {
        WriteError::DiskFull(_) => RegistryError::DiskFull(e.to_string()),
        e => store_err(e),
    }
}

/// The in-memory mirror of the persisted records.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    tenants: BTreeMap<String, TenantRecord>,
    credentials: BTreeMap<String, CredentialRecord>,
}

/// A newly created credential: the record and the secret, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewCredential {
    /// The record as stored.
    pub credential: CredentialRecord,
    /// The secret (API key, token or JWT).
    pub secret: String,
    /// For Flash: the tenant's ClientId to send with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Registry {
    /// Reads every record from the store. A record lost to disk damage, or one that is not
    /// valid, is left out with a warning (a lost credential stops working, which fails
    /// closed), so that one such record does not keep the server from starting.
    ///
    /// # Errors
    /// A read failed for another reason.
    pub fn load(store: &Store) -> Result<Self, RegistryError> {
        let mut registry = Self::default();
        for key in store.keys(SYSTEM_TENANTS) {
            if let Some(item) = read_record(store, SYSTEM_TENANTS, &key)? {
                match check_tenant_record(&key, &item.value) {
                    Ok(t) => drop(registry.tenants.insert(t.name.clone(), t)),
                    Err(e) => unusable(&key, &e),
                }
            }
        }
        for key in store.keys(SYSTEM_CREDENTIALS) {
            if let Some(item) = read_record(store, SYSTEM_CREDENTIALS, &key)? {
                if is_revoked_record(&item.value) {
                    continue;
                }
                match check_credential_record(&key, &item.value) {
                    Ok(c) => drop(registry.credentials.insert(c.id.clone(), c)),
                    Err(e) => unusable(&key, &e),
                }
            }
        }
        Ok(registry)
    }

    /// A tenant by name.
    pub fn tenant(&self, name: &str) -> Option<&TenantRecord> {
        self.tenants.get(name)
    }

    /// Every tenant, by name.
    pub fn tenants(&self) -> impl Iterator<Item = &TenantRecord> {
        self.tenants.values()
    }

    /// A credential by id.
    pub fn credential(&self, id: &str) -> Option<&CredentialRecord> {
        self.credentials.get(id)
    }

    /// Every credential, optionally of one tenant.
    pub fn credentials<'a>(
        &'a self,
        tenant: Option<&'a str>,
    ) -> impl Iterator<Item = &'a CredentialRecord> {
        self.credentials
            .values()
            .filter(move |c| tenant.is_none_or(|t| c.tenant == t))
    }

    /// The credential `secret` belongs to, if it is live, of `api`, and its hash matches.
    pub fn verify(&self, api: Api, secret: &str) -> Option<&CredentialRecord> {
        let body = match api {
            Api::Flash => secret.strip_prefix(FLASH_KEY_PREFIX)?,
            _ => secret,
        };
        let cred = self.credentials.get(body.get(..ID_HEX)?)?;
        let hash = hex_digest(&secret_hash(secret));
        (cred.api == api && constant_time_eq(&hash, cred.secret_sha256.as_bytes())).then_some(cred)
    }

    /// Applies a change made to the store (used by the admin endpoint).
    pub fn upsert_tenant(&mut self, t: TenantRecord) {
        self.tenants.insert(t.name.clone(), t);
    }

    /// Applies a change made to the store.
    pub fn upsert_credential(&mut self, c: CredentialRecord) {
        self.credentials.insert(c.id.clone(), c);
    }

    /// Applies a revocation made to the store.
    pub fn remove_credential(&mut self, id: &str) {
        self.credentials.remove(id);
    }
}

/// Lowercase hex of a SHA-256, on the stack: this runs on every IronCache and Flash request
/// outside `--dev` (with `http::hex`, a `String` pushed char by char, it cost more than the
/// hash itself on CPUs with SHA instructions).
fn hex_digest(hash: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(hash) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
    out
}

/// A record that is not a valid tenant or credential (written by an import before imports
/// checked them) is left out, as a lost one is: one bad record must not keep every tenant
/// of the node offline.
fn unusable(key: &[u8], why: &str) {
    tracing::error!(
        key = %String::from_utf8_lossy(key),
        error = %why,
        "a tenant or credential record is not valid and is left out; import a valid record for the same key with a higher version to replace it"
    );
}

/// One record; `None` if it is gone or lost to disk damage (logged).
fn read_record(store: &Store, ns: &[u8], key: &[u8]) -> Result<Option<Item>, RegistryError> {
    match store.get(ns, key) {
        Ok(found) => Ok(found),
        Err(e @ (ReadError::Lost { .. } | ReadError::Corrupt { .. })) => {
            tracing::warn!(
                key = %String::from_utf8_lossy(key),
                error = %e,
                "a tenant or credential record was lost to disk damage and is left out; create it again"
            );
            Ok(None)
        }
        Err(e) => Err(store_err(e)),
    }
}

fn put_record(
    store: &Store,
    ns: &[u8],
    key: &str,
    value: &impl Serialize,
    cond: Option<Condition>,
) -> Result<bool, RegistryError> {
    let bytes = serde_json::to_vec(value).map_err(store_err)?;
    match cond {
        Some(c) => Ok(store
            .put_if(ns, key.as_bytes(), &bytes, PutOptions::default(), c)
            .map_err(write_err)?
            .is_some()),
        None => store
            .put(ns, key.as_bytes(), &bytes, PutOptions::default())
            .map(|_| true)
            .map_err(write_err),
    }
}

/// Creates a tenant.
///
/// # Errors
/// Invalid name, existing tenant, or a store failure.
pub fn create_tenant(store: &Store, name: &str) -> Result<TenantRecord, RegistryError> {
    create_tenant_with(store, name, None)
}

/// A tenant record as an import brings it (`key`, the JSON `value`): it must parse, be
/// stored under its own name and follow `tenant create`'s rules. A record that does not
/// parse kept every server on the data dir from starting (found from outside).
///
/// # Errors
/// What is wrong with it.
pub fn check_tenant_record(key: &[u8], value: &[u8]) -> Result<TenantRecord, String> {
    let t: TenantRecord = serde_json::from_slice(value)
        .map_err(|e| format!("not a tenant record (name, flash_client_id, created_ms): {e}"))?;
    if key != t.name.as_bytes() {
        return Err(format!(
            "tenant record {:?} under key {:?}",
            t.name,
            String::from_utf8_lossy(key)
        ));
    }
    if !valid_tenant(&t.name) {
        return Err(format!("invalid tenant name {:?}", t.name));
    }
    if !valid_client_id(&t.flash_client_id) {
        return Err(format!("invalid Flash ClientId {:?}", t.flash_client_id));
    }
    Ok(t)
}

/// A credential record as an import brings it: it must parse, be stored under its own id
/// and follow `credential create`'s rules (an id of 12 hex digits, a valid tenant name, a
/// hex SHA-256, an app for Flash credentials only).
///
/// # Errors
/// What is wrong with it.
pub fn check_credential_record(key: &[u8], value: &[u8]) -> Result<CredentialRecord, String> {
    let c: CredentialRecord = serde_json::from_slice(value).map_err(|e| {
        format!("not a credential record (id, tenant, api, secret_sha256, created_ms): {e}")
    })?;
    // Lower-case, as `credential create` makes them (an id is looked up as the secret's
    // first digits, which are lower-case).
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if key != c.id.as_bytes() {
        return Err(format!(
            "credential record {:?} under key {:?}",
            c.id,
            String::from_utf8_lossy(key)
        ));
    }
    if !hex(&c.id, ID_HEX) {
        return Err(format!(
            "invalid credential id {:?}: 12 lower-case hex digits",
            c.id
        ));
    }
    if !valid_tenant(&c.tenant) {
        return Err(format!("invalid tenant name {:?}", c.tenant));
    }
    if !hex(&c.secret_sha256, 64) {
        return Err("secret_sha256 must be 64 lower-case hex digits".into());
    }
    match (c.api, &c.app) {
        (Api::Flash, Some(app)) if !valid_tenant(app) => Err(format!("invalid app name {app:?}")),
        (Api::Flash, _) | (_, None) => Ok(c),
        (_, Some(_)) => Err("only Flash credentials have an app".into()),
    }
}

/// Whether `id` may be a Flash `ClientId`: 1 to 128 printable ASCII characters, no spaces.
fn valid_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Creates a tenant whose Flash `ClientId` is `flash_client_id` (one an existing Flash
/// client already sends, kept when moving to ttlcask) or, if `None`, a new random one.
///
/// # Errors
/// Invalid name or ClientId, existing tenant, a ClientId another tenant has, or a store
/// failure.
pub fn create_tenant_with(
    store: &Store,
    name: &str,
    flash_client_id: Option<&str>,
) -> Result<TenantRecord, RegistryError> {
    if !valid_tenant(name) {
        return Err(RegistryError::Invalid(format!(
            "invalid tenant name {name:?}: use 1 to 64 of A-Z a-z 0-9 . _ -"
        )));
    }
    let flash_client_id = match flash_client_id {
        Some(id) if !valid_client_id(id) => {
            return Err(RegistryError::Invalid(format!(
                "invalid Flash ClientId {id:?}: use 1 to 128 printable ASCII characters without spaces"
            )));
        }
        Some(id) => {
            let taken = Registry::load(store)?
                .tenants()
                .find(|t| t.flash_client_id == id)
                .map(|t| t.name.clone());
            if let Some(owner) = taken {
                return Err(RegistryError::Conflict(format!(
                    "Flash ClientId {id:?} belongs to tenant {owner:?} already"
                )));
            }
            id.to_string()
        }
        None => format!("v1:uid_{}", random_hex(20)),
    };
    let record = TenantRecord {
        name: name.to_string(),
        flash_client_id,
        created_ms: store.now_ms(),
    };
    if !put_record(
        store,
        SYSTEM_TENANTS,
        name,
        &record,
        Some(Condition::Absent),
    )? {
        return Err(RegistryError::Conflict(format!(
            "tenant {name:?} exists already"
        )));
    }
    Ok(record)
}

/// Reads one tenant from the store.
///
/// # Errors
/// A store failure or a record that does not parse.
pub fn read_tenant(store: &Store, name: &str) -> Result<Option<TenantRecord>, RegistryError> {
    match store
        .get(SYSTEM_TENANTS, name.as_bytes())
        .map_err(store_err)?
    {
        Some(item) => serde_json::from_slice(&item.value)
            .map(Some)
            .map_err(store_err),
        None => Ok(None),
    }
}

/// Creates a credential; `akka_signer` is `(hs256 secret, issuer)` used to mint Akka JWTs.
///
/// # Errors
/// Unknown tenant, an `--app` where none applies, no HS256 secret for Akka, or a store failure.
pub fn create_credential(
    store: &Store,
    tenant: &str,
    api: Api,
    app: Option<&str>,
    akka_signer: Option<(&str, &str)>,
) -> Result<NewCredential, RegistryError> {
    let record = read_tenant(store, tenant)?
        .ok_or_else(|| RegistryError::NotFound(format!("no tenant {tenant:?}; create it first")))?;
    let app = match (api, app) {
        (Api::Flash, Some(a)) if valid_tenant(a) => Some(a.to_string()),
        (Api::Flash, Some(a)) => {
            return Err(RegistryError::Invalid(format!(
                "invalid app name {a:?}: use 1 to 64 of A-Z a-z 0-9 . _ -"
            )))
        }
        (Api::Flash, None) => Some(super::DEV_FLASH_APP.to_string()),
        (_, Some(_)) => {
            return Err(RegistryError::Invalid(
                "--app applies to flash credentials only".into(),
            ))
        }
        (_, None) => None,
    };
    let token = secret_hex(SECRET_HEX / 2).map_err(RegistryError::Store)?;
    let id = token[..ID_HEX].to_string();
    let secret = match api {
        Api::Flash => format!("{FLASH_KEY_PREFIX}{token}"),
        Api::Iron => token,
        Api::Akka => {
            let (key, issuer) = akka_signer.ok_or_else(|| {
                RegistryError::Invalid(
                    "akka credentials are JWTs signed with [akka] hs256_secret: configure it or give --akka-hs256-secret (a --dev server with no secret of its own signs with the documents' sample secret), or sign tokens with your own RS256/ES256 key".into(),
                )
            })?;
            super::jwt::mint_hs256(key, issuer, tenant, &id).map_err(RegistryError::Invalid)?
        }
    };
    let credential = CredentialRecord {
        id: id.clone(),
        tenant: tenant.to_string(),
        api,
        app,
        secret_sha256: hex(&secret_hash(&secret)),
        created_ms: store.now_ms(),
    };
    if !put_record(
        store,
        SYSTEM_CREDENTIALS,
        &id,
        &credential,
        Some(Condition::Absent),
    )? {
        return Err(RegistryError::Conflict(
            "credential id collision; try again".into(),
        ));
    }
    Ok(NewCredential {
        credential,
        secret,
        client_id: (api == Api::Flash).then_some(record.flash_client_id),
    })
}

/// The fields of the record a revoked credential keeps under its id: when, and whose (so that
/// `export --tenant` carries it with the tenant's other records; found from outside).
const REVOKED_MS: &str = "revoked_ms";
const REVOKED_TENANT: &str = "tenant";

/// Whether `value` is the record a revoked credential keeps: `{"revoked_ms": N, "tenant":
/// T}`. Not a credential record to any release (an older one leaves it out as unusable, or
/// refuses to start; never takes it for a live credential).
pub fn is_revoked_record(value: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(value).is_ok_and(|m| {
        m.len() == 2
            && m.get(REVOKED_MS).is_some_and(serde_json::Value::is_u64)
            && m.get(REVOKED_TENANT)
                .is_some_and(serde_json::Value::is_string)
    })
}

/// Every revoked credential's record, as `(id, record)`: `{"revoked_ms", "tenant"}`.
///
/// # Errors
/// A store failure.
pub fn revoked_records(store: &Store) -> Result<Vec<(String, serde_json::Value)>, RegistryError> {
    let mut out = Vec::new();
    for key in store.keys(SYSTEM_CREDENTIALS) {
        if let Some(item) = read_record(store, SYSTEM_CREDENTIALS, &key)? {
            if is_revoked_record(&item.value) {
                let record = serde_json::from_slice(&item.value).map_err(store_err)?;
                out.push((String::from_utf8_lossy(&key).into_owned(), record));
            }
        }
    }
    Ok(out)
}

/// The records of [`revoked_records`] that are `tenant`'s (all of them for `None`).
pub fn of_tenant(
    records: Vec<(String, serde_json::Value)>,
    tenant: Option<&str>,
) -> Vec<(String, serde_json::Value)> {
    records
        .into_iter()
        .filter(|(_, record)| tenant.is_none_or(|t| record["tenant"] == t))
        .collect()
}

/// Revokes a credential: its record is overwritten with a revoked one (`{"revoked_ms": N,
/// "tenant": T}`),
/// kept for good, not deleted. A delete's tombstone goes at a compaction once nothing older
/// of the key is left, and an export taken before the revoke, imported again after that,
/// brought the credential back to life (found from outside, thirteenth session); a newer
/// record is never overwritten by an import, and an export carries the revocation to the
/// store it is imported into.
///
/// # Errors
/// Unknown (or already revoked) id, or a store failure.
pub fn revoke_credential(store: &Store, id: &str) -> Result<(), RegistryError> {
    let missing = || RegistryError::NotFound(format!("no credential {id:?}"));
    let Some(current) = read_record(store, SYSTEM_CREDENTIALS, id.as_bytes())? else {
        return Err(missing());
    };
    if is_revoked_record(&current.value) {
        return Err(RegistryError::NotFound(format!(
            "credential {id:?} is already revoked"
        )));
    }
    let tenant = check_credential_record(id.as_bytes(), &current.value)
        .map(|c| c.tenant)
        .unwrap_or_default();
    let revoked = serde_json::json!({ REVOKED_MS: store.now_ms(), REVOKED_TENANT: tenant });
    if put_record(
        store,
        SYSTEM_CREDENTIALS,
        id,
        &revoked,
        Some(Condition::VersionIs(current.version)),
    )? {
        Ok(())
    } else {
        // Revoked (or changed) meanwhile by another caller.
        Err(missing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_hex_matches_http_hex() {
        let hash = secret_hash("abc");
        assert_eq!(&hex_digest(&hash)[..], hex(&hash).as_bytes());
    }

    // An import before imports checked records could store one that is not a credential:
    // the server then refused to start, taking every tenant offline (found from outside).
    #[test]
    fn a_record_that_is_not_valid_is_left_out_and_the_rest_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        create_tenant(&store, "acme").expect("tenant");
        let good = create_credential(&store, "acme", Api::Iron, None, None).expect("credential");
        for (ns, key, value) in [
            (SYSTEM_CREDENTIALS, "deadbeef0001", &b"not json at all"[..]),
            (
                SYSTEM_TENANTS,
                "other",
                br#"{"name":"acme","flash_client_id":"x","created_ms":1}"#,
            ),
        ] {
            store
                .put(ns, key.as_bytes(), value, PutOptions::default())
                .expect("put");
        }
        let registry = Registry::load(&store).expect("loads");
        assert_eq!(registry.tenants().count(), 1);
        assert!(registry.credential(&good.credential.id).is_some());
        assert!(registry.credential("deadbeef0001").is_none());
    }
}
