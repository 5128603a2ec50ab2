//! Who is calling: each API's credentials resolved to a tenant.
//!
//! - Flash Cache: `ClientId` names the tenant, `Authorization` is an API key bound to an app.
//! - IronCache: a token in `Authorization: OAuth …` or `?oauth=`.
//! - Akka Cache: a bearer JWT whose `org` claim is the tenant ([`jwt`]).
//!
//! `--dev` adds the documents' sample credentials for tenant `ttorg`. Outside `--dev`, tenants
//! and credentials live in [`registry`], persisted in a reserved engine namespace and mirrored
//! in memory so that authentication never touches the disk.

pub mod jwt;
pub mod registry;

use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

pub use registry::{Api, CredentialRecord, Registry, TenantRecord};

/// The tenant every sample credential belongs to.
pub const DEV_TENANT: &str = "ttorg";
/// Flash Cache sample ClientId.
pub const DEV_FLASH_CLIENT_ID: &str = "v1:uid_79aec251cd938b1313d7f74611f2c0d1abf894f1";
/// Flash Cache sample API key.
pub const DEV_FLASH_API_KEY: &str = "v1:api_c1c9676fc333043a298551158a22ce64a2796d54";
/// The app of the sample Flash API key.
pub const DEV_FLASH_APP: &str = "default";
/// IronCache sample token.
pub const DEV_IRON_TOKEN: &str = "abc4c7c627376858";
/// Akka Cache sample HS256 secret.
pub const DEV_AKKA_SECRET: &str = "your-256-bit-secret";

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 of a secret, as stored.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A Flash Cache caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashCaller {
    /// The tenant (account).
    pub tenant: String,
    /// The app or campaign of the API key: the cache.
    pub app: String,
}

/// An Akka Cache caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkkaCaller {
    /// The tenant (`org`).
    pub tenant: String,
    /// The `serviceLevel` claim, lower-cased; `None` when absent.
    pub service_level: Option<String>,
}

/// Resolves credentials of all three APIs.
#[derive(Clone)]
pub struct Authenticator {
    dev: bool,
    registry: Arc<RwLock<Registry>>,
    jwt: Arc<jwt::JwtVerifier>,
}

impl Authenticator {
    /// An authenticator over `registry` and a JWT verifier.
    pub fn new(dev: bool, registry: Registry, jwt: jwt::JwtVerifier) -> Self {
        Self {
            dev,
            registry: Arc::new(RwLock::new(registry)),
            jwt: Arc::new(jwt),
        }
    }

    /// The in-memory registry, for the admin endpoint to update after it wrote the store.
    pub fn registry(&self) -> &Arc<RwLock<Registry>> {
        &self.registry
    }

    fn with_registry<T>(&self, f: impl FnOnce(&Registry) -> T) -> T {
        match self.registry.read() {
            Ok(guard) => f(&guard),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// A Flash Cache caller from the `ClientId` and `Authorization` header values.
    pub fn flash(&self, client_id: &str, api_key: &str) -> Option<FlashCaller> {
        if self.dev
            && constant_time_eq(client_id.as_bytes(), DEV_FLASH_CLIENT_ID.as_bytes())
            && constant_time_eq(api_key.as_bytes(), DEV_FLASH_API_KEY.as_bytes())
        {
            return Some(FlashCaller {
                tenant: DEV_TENANT.to_string(),
                app: DEV_FLASH_APP.to_string(),
            });
        }
        self.with_registry(|r| {
            let cred = r.verify(Api::Flash, api_key)?;
            let tenant = r.tenant(&cred.tenant)?;
            constant_time_eq(tenant.flash_client_id.as_bytes(), client_id.as_bytes()).then(|| {
                FlashCaller {
                    tenant: cred.tenant.clone(),
                    app: cred
                        .app
                        .clone()
                        .unwrap_or_else(|| DEV_FLASH_APP.to_string()),
                }
            })
        })
    }

    /// The tenant of an IronCache token.
    pub fn iron(&self, token: &str) -> Option<String> {
        if self.dev && constant_time_eq(token.as_bytes(), DEV_IRON_TOKEN.as_bytes()) {
            return Some(DEV_TENANT.to_string());
        }
        self.with_registry(|r| r.verify(Api::Iron, token).map(|c| c.tenant.clone()))
    }

    /// An Akka caller from a bearer token, or the reason it was refused.
    pub fn akka(&self, token: &str) -> Result<AkkaCaller, String> {
        let claims = self.jwt.verify(token)?;
        let org = claims
            .org
            .filter(|o| !o.is_empty())
            .ok_or("the JWT has no org claim")?;
        if !crate::namespace::valid_tenant(&org) {
            return Err("the JWT's org is not a valid tenant name".into());
        }
        self.with_registry(|r| {
            if let Some(jti) = claims
                .jti
                .as_deref()
                .and_then(|j| j.strip_prefix(jwt::JTI_PREFIX))
            {
                match r.credential(jti) {
                    Some(c) if c.api == Api::Akka && c.tenant == org => {}
                    _ => return Err("the JWT was revoked".to_string()),
                }
            }
            if r.tenant(&org).is_none() && !(self.dev && org == DEV_TENANT) {
                return Err(format!("unknown tenant {org:?}"));
            }
            Ok(())
        })?;
        Ok(AkkaCaller {
            tenant: org,
            service_level: claims.service_level.map(|s| s.to_lowercase()),
        })
    }
}
