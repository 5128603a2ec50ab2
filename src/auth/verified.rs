//! Bearer JWTs that already verified, so that a client sending the same token on every
//! request pays for the signature check and the two JSON parses once instead of each time
//! (they were 60% of an Akka GET's instructions).
//!
//! Only tokens whose signature, algorithm, issuer, `exp`/`nbf` and `org` checks passed are
//! stored, so forged tokens cannot fill the cache. An entry keeps the token's `exp` and is
//! refused once it passes. Revocation (`jti`) and the tenant's existence are not cached: the
//! caller checks them against the registry on every request, so they take effect at once.
//! Bounded: at most [`CAPACITY`] tokens of at most [`MAX_TOKEN_BYTES`]; when full, the cache is
//! emptied and refills (each token then costs one more full verification).

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::quality::RandomState;
use std::sync::{Arc, Mutex};

use super::constant_time_eq;

/// Tokens held at most.
pub const CAPACITY: usize = 4096;
/// Longer tokens are verified every time instead of being held.
pub const MAX_TOKEN_BYTES: usize = 2048;

/// What a verified token says, as the server uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// The tenant (`org`), already checked to be a valid tenant name.
    pub org: String,
    /// `serviceLevel`, lower-cased.
    pub service_level: Option<String>,
    /// `jti`, which the registry checks for revocation on every request.
    pub jti: Option<String>,
    /// `exp` in seconds since the epoch; `None` when the token has none.
    pub exp: Option<u64>,
}

/// The outcome of a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// Verified before and not expired.
    Hit(Arc<VerifiedClaims>),
    /// Verified before, but its `exp` has passed.
    Expired,
    /// Not held: verify it.
    Miss,
}

struct Entry {
    token: Box<[u8]>,
    claims: Arc<VerifiedClaims>,
}

/// A bounded map from token to its verified claims.
pub struct VerifiedTokens {
    // Keyed by a randomly seeded hash (foldhash: a third of SipHash's cost on a 200-byte
    // token), so a client cannot aim tokens at one bucket; a hit still compares the whole
    // token, in constant time, and only verified tokens are ever inserted.
    hasher: RandomState,
    entries: Mutex<HashMap<u64, Entry, foldhash::fast::RandomState>>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::new()
    }
}

impl VerifiedTokens {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            hasher: RandomState::default(),
            entries: Mutex::new(HashMap::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry, foldhash::fast::RandomState>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The claims of `token` if it verified before and its `exp` is not before `now_secs`
    /// (the JWT rule: a token is valid through its `exp` second).
    pub fn get(&self, token: &str, now_secs: u64) -> Lookup {
        if token.len() > MAX_TOKEN_BYTES {
            return Lookup::Miss;
        }
        let key = self.hasher.hash_one(token.as_bytes());
        let mut entries = self.lock();
        let Some(entry) = entries.get(&key) else {
            return Lookup::Miss;
        };
        if !constant_time_eq(&entry.token, token.as_bytes()) {
            return Lookup::Miss;
        }
        if entry.claims.exp.is_some_and(|exp| exp < now_secs) {
            entries.remove(&key);
            return Lookup::Expired;
        }
        Lookup::Hit(entry.claims.clone())
    }

    /// Holds `claims` of a token that just verified.
    pub fn insert(&self, token: &str, claims: Arc<VerifiedClaims>) {
        if token.len() > MAX_TOKEN_BYTES {
            return;
        }
        let key = self.hasher.hash_one(token.as_bytes());
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                token: token.as_bytes().into(),
                claims,
            },
        );
    }

    /// Tokens held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: Option<u64>) -> Arc<VerifiedClaims> {
        Arc::new(VerifiedClaims {
            org: "ttorg".into(),
            service_level: None,
            jti: None,
            exp,
        })
    }

    #[test]
    fn holds_until_exp_then_refuses() {
        let cache = VerifiedTokens::new();
        assert!(matches!(cache.get("a.b.c", 100), Lookup::Miss));
        cache.insert("a.b.c", claims(Some(100)));
        assert!(matches!(cache.get("a.b.c", 100), Lookup::Hit(_)));
        assert!(matches!(cache.get("a.b.c", 101), Lookup::Expired));
        // The expired entry is gone: the next request verifies again (and fails there).
        assert!(matches!(cache.get("a.b.c", 101), Lookup::Miss));
        assert!(matches!(cache.get("a.b.d", 50), Lookup::Miss));
    }

    #[test]
    fn stays_bounded() {
        let cache = VerifiedTokens::new();
        for i in 0..CAPACITY + 10 {
            cache.insert(&format!("token-{i}"), claims(None));
        }
        assert!(cache.len() <= CAPACITY);
        assert!(matches!(
            cache.get(&format!("token-{}", CAPACITY + 9), 0),
            Lookup::Hit(_)
        ));
        let long = "x".repeat(MAX_TOKEN_BYTES + 1);
        cache.insert(&long, claims(None));
        assert!(matches!(cache.get(&long, 0), Lookup::Miss));
    }
}
