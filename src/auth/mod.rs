//! Who is calling: each API's credentials resolved to a tenant.
//!
//! - Flash Cache: `ClientId` names the tenant, `Authorization` is an API key bound to an app.
//! - IronCache: a token in `Authorization: OAuth …` or `?oauth=`.
//! - Akka Cache: a bearer JWT whose `org` claim is the tenant ([`jwt`]), registered or not
//!   (the token's issuer is the authority on orgs) unless `registered_tenants_only` is set.
//!
//! `--dev` adds the documents' sample credentials for tenant `ttorg`. Outside `--dev`, tenants
//! and credentials live in [`registry`], persisted in a reserved engine namespace and mirrored
//! in memory so that authentication never touches the disk.

pub mod jwt;
pub mod registry;
pub mod verified;

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
    // The verified token's claims, shared with the verified-token cache: no copy per request.
    claims: Arc<verified::VerifiedClaims>,
}

impl AkkaCaller {
    /// The tenant (`org`).
    pub fn tenant(&self) -> &str {
        &self.claims.org
    }

    /// The `serviceLevel` claim, lower-cased; `None` when absent.
    pub fn service_level(&self) -> Option<&str> {
        self.claims.service_level.as_deref()
    }
}

/// Seconds since the Unix epoch, the clock JWT `exp`/`nbf` are checked against.
pub fn unix_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Resolves credentials of all three APIs.
#[derive(Clone)]
pub struct Authenticator {
    dev: bool,
    registry: Arc<RwLock<Registry>>,
    jwt: Arc<jwt::JwtVerifier>,
    verified: Arc<verified::VerifiedTokens>,
    clock: fn() -> u64,
    registered_only: bool,
}

impl Authenticator {
    /// An authenticator over `registry` and a JWT verifier.
    pub fn new(dev: bool, registry: Registry, jwt: jwt::JwtVerifier) -> Self {
        Self {
            dev,
            registry: Arc::new(RwLock::new(registry)),
            jwt: Arc::new(jwt),
            verified: Arc::new(verified::VerifiedTokens::new()),
            clock: unix_now_secs,
            registered_only: false,
        }
    }

    /// The same authenticator refusing Akka tokens whose `org` is not a registered tenant
    /// (`[akka] registered_tenants_only`); `--dev`'s `ttorg` stays accepted.
    #[must_use]
    pub fn registered_tenants_only(mut self, on: bool) -> Self {
        self.registered_only = on;
        self
    }

    /// The same authenticator with another clock for cached JWTs' `exp` (tests move it
    /// forward instead of sleeping).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
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
    ///
    /// A token that verifies names its tenant by `org`, registered or not; a tenant seen only
    /// in tokens gets no registry record. With `registered_tenants_only` the `org` must be
    /// registered. Tokens that ttlcask minted (`jti` with [`jwt::JTI_PREFIX`]) are accepted
    /// only while their credential exists, so they stay revocable.
    ///
    /// The signature and claims of a token are verified once and then held in
    /// [`verified::VerifiedTokens`] until its `exp`; revocation and the tenant are checked
    /// against the registry on every request.
    pub fn akka(&self, token: &str) -> Result<AkkaCaller, String> {
        let claims = match self.verified.get(token, (self.clock)()) {
            verified::Lookup::Hit(claims) => claims,
            verified::Lookup::Expired => return Err("invalid JWT: ExpiredSignature".into()),
            verified::Lookup::Miss => {
                let (claims, cacheable) = self.verify_jwt(token)?;
                let claims = Arc::new(claims);
                if cacheable {
                    self.verified.insert(token, claims.clone());
                }
                claims
            }
        };
        self.with_registry(|r| {
            if let Some(jti) = claims
                .jti
                .as_deref()
                .and_then(|j| j.strip_prefix(jwt::JTI_PREFIX))
            {
                // A revoke deletes the record, so a revoked credential and one never issued
                // look the same here; the message says only what is known.
                match r.credential(jti) {
                    Some(c) if c.api == Api::Akka && c.tenant == claims.org => {}
                    _ => {
                        return Err(format!(
                            "the JWT's jti {}{jti} names no Akka credential of tenant {:?}: it was revoked, or never issued to that org",
                            jwt::JTI_PREFIX,
                            claims.org
                        ))
                    }
                }
            }
            if self.registered_only
                && r.tenant(&claims.org).is_none()
                && !(self.dev && claims.org == DEV_TENANT)
            {
                return Err(format!(
                    "unknown tenant {:?}: this server accepts only registered tenants (registered_tenants_only)",
                    claims.org
                ));
            }
            Ok(())
        })?;
        Ok(AkkaCaller { claims })
    }

    /// The full check of a token: signature and claims, then `org`. The flag says whether
    /// the result may be cached: only when `exp` is absent or a whole number of seconds.
    fn verify_jwt(&self, token: &str) -> Result<(verified::VerifiedClaims, bool), String> {
        let claims = self.jwt.verify(token)?;
        let org = claims
            .org
            .filter(|o| !o.is_empty())
            .ok_or("the JWT has no org claim")?;
        if !crate::namespace::valid_tenant(&org) {
            const RULE: &str = "a tenant name is 1 to 64 of A-Z a-z 0-9 . _ -";
            return Err(if org.len() > crate::namespace::MAX_TENANT_LEN {
                format!("the JWT's org is {} bytes long: {RULE}", org.len())
            } else {
                format!("the JWT's org {org:?} is not a valid tenant name: {RULE}")
            });
        }
        let (exp, cacheable) = match &claims.exp {
            None => (None, true),
            Some(v) => (v.as_u64(), v.as_u64().is_some()),
        };
        Ok((
            verified::VerifiedClaims {
                org,
                service_level: claims.service_level.map(|s| s.to_lowercase()),
                jti: claims.jti,
                exp,
            },
            cacheable,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    use super::*;
    use crate::config::{AkkaConfig, DEFAULT_AKKA_ISSUER};

    const SECRET: &str = "a-test-secret-of-some-length";
    const CRED_ID: &str = "0123456789ab";

    fn authenticator() -> Authenticator {
        let mut registry = Registry::default();
        registry.upsert_tenant(TenantRecord {
            name: "acme".into(),
            flash_client_id: "v1:uid_x".into(),
            created_ms: 0,
        });
        registry.upsert_credential(CredentialRecord {
            id: CRED_ID.into(),
            tenant: "acme".into(),
            api: Api::Akka,
            app: None,
            secret_sha256: String::new(),
            created_ms: 0,
        });
        let config = AkkaConfig {
            hs256_secret: Some(SECRET.into()),
            ..AkkaConfig::default()
        };
        let verifier = jwt::JwtVerifier::new(&config, false).expect("no pem");
        Authenticator::new(false, registry, verifier)
    }

    fn token(exp: Option<u64>) -> String {
        token_of("acme", CRED_ID, exp)
    }

    fn token_of(org: &str, credential: &str, exp: Option<u64>) -> String {
        let mut claims = serde_json::json!({
            "iss": DEFAULT_AKKA_ISSUER,
            "org": org,
            "jti": format!("{}{credential}", jwt::JTI_PREFIX),
        });
        if let Some(exp) = exp {
            claims["exp"] = exp.into();
        }
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("sign")
    }

    // Found by the review of the verified-token cache (issue 6): a cached token must obey
    // revocation at once and its exp even though its signature is not checked again.
    #[test]
    fn revoked_jwt_is_refused_at_once_even_when_cached() {
        let auth = authenticator();
        let jwt = token(None);
        assert_eq!(auth.akka(&jwt).expect("valid").tenant(), "acme");
        assert_eq!(auth.akka(&jwt).expect("cached").tenant(), "acme");
        assert_eq!(auth.verified.len(), 1);
        auth.registry()
            .write()
            .expect("lock")
            .remove_credential(CRED_ID);
        assert_eq!(
            auth.akka(&jwt),
            Err(format!("the JWT's jti ttlcask-{CRED_ID} names no Akka credential of tenant \"acme\": it was revoked, or never issued to that org"))
        );
    }

    // Found from outside (twelfth session): a jti that was never a credential, or another
    // tenant's, was answered "the JWT was revoked" although nothing was revoked.
    #[test]
    fn a_jti_of_no_credential_of_the_org_is_refused_saying_so() {
        let auth = authenticator();
        for (org, jti) in [("beta", CRED_ID), ("acme", "000000000000")] {
            let e = auth
                .akka(&token_of(org, jti, None))
                .expect_err("not this org's credential");
            assert_eq!(
                e,
                format!("the JWT's jti ttlcask-{jti} names no Akka credential of tenant {org:?}: it was revoked, or never issued to that org")
            );
        }
    }

    static NOW: AtomicU64 = AtomicU64::new(0);

    #[test]
    fn expired_jwt_is_refused_even_when_cached() {
        let now = unix_now_secs();
        NOW.store(now, Ordering::SeqCst);
        let auth = authenticator().with_clock(|| NOW.load(Ordering::SeqCst));
        let jwt = token(Some(now + 60));
        assert!(auth.akka(&jwt).is_ok());
        assert!(auth.akka(&jwt).is_ok(), "cached");
        NOW.store(now + 60, Ordering::SeqCst);
        assert!(auth.akka(&jwt).is_ok(), "valid through its exp second");
        NOW.store(now + 61, Ordering::SeqCst);
        assert_eq!(
            auth.akka(&jwt),
            Err("invalid JWT: ExpiredSignature".to_string())
        );
        // An already expired token is refused by the full check and never cached.
        let old = token(Some(now - 10));
        assert!(auth.akka(&old).is_err());
        assert!(auth.akka(&old).is_err());
    }

    #[test]
    fn forged_jwt_is_never_cached() {
        let auth = authenticator();
        let good = token(None);
        // The same header and claims with another signature.
        let sig = good.rfind('.').expect("three parts") + 1;
        let flipped = if good.as_bytes()[sig] == b'A' {
            "B"
        } else {
            "A"
        };
        let forged = format!("{}{flipped}{}", &good[..sig], &good[sig + 1..]);
        for _ in 0..2 {
            assert!(auth.akka(&forged).is_err());
        }
        assert!(auth.verified.is_empty());
    }
}
