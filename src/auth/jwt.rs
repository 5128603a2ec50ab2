//! Akka Cache JWT verification: the algorithm is pinned to the configured key (HS256 secret,
//! RS256 or ES256 public key), `alg: none` is never accepted, `iss` must match, `exp`/`nbf`
//! are checked when present, and `exp`/`nbf`/`iat` must be numbers (NumericDates).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AkkaConfig;

/// `jti` prefix of tokens minted by `ttlcask credential create --api akka`; such tokens are
/// accepted only while their credential is not revoked.
pub const JTI_PREFIX: &str = "ttlcask-";

/// The claims the server reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Claims {
    /// The tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The quota level.
    #[serde(
        default,
        rename = "serviceLevel",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_level: Option<String>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Issuer, as sent (any JSON value): [`JwtVerifier::verify`] takes only the configured
    /// issuer as a string (jsonwebtoken also takes an array holding it).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub iss: Option<serde_json::Value>,
    /// Expiry as sent; kept so that a cached token can be refused once it passes. Any JSON
    /// value (`null` included, as `Some(Null)`): [`JwtVerifier::verify`] refuses all but
    /// numbers.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<serde_json::Value>,
    /// Not-before, as sent (any JSON value, checked as `exp`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<serde_json::Value>,
    /// Issued-at, as sent (any JSON value, checked as `exp`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<serde_json::Value>,
}

/// A claim that is present, whatever its value: `null` stays `Some(Null)` (serde's `Option`
/// would make it `None`, i.e. absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// RFC 7519 NumericDates: `exp`, `nbf` and `iat`, when present, must be JSON numbers; a
/// negative `exp` has passed; an `nbf` too large for jsonwebtoken to read is still ahead.
/// jsonwebtoken itself takes any other type, or a negative `exp`, as absent.
fn check_time_claims(claims: &Claims, now_secs: u64) -> Result<(), String> {
    for (name, value) in [
        ("exp", &claims.exp),
        ("nbf", &claims.nbf),
        ("iat", &claims.iat),
    ] {
        match value {
            None | Some(serde_json::Value::Number(_)) => {}
            Some(other) => {
                let kind = match other {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Bool(_) => "a boolean",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Array(_) => "an array",
                    _ => "an object",
                };
                return Err(format!(
                    "invalid JWT: the {name} claim must be a number of seconds (NumericDate), not {kind}"
                ));
            }
        }
    }
    let seconds = |v: &Option<serde_json::Value>| v.as_ref().and_then(serde_json::Value::as_f64);
    if seconds(&claims.exp).is_some_and(|exp| exp < 0.0) {
        return Err("invalid JWT: ExpiredSignature".into());
    }
    if seconds(&claims.nbf).is_some_and(|nbf| nbf > now_secs as f64) {
        return Err("invalid JWT: ImmatureSignature".into());
    }
    Ok(())
}

/// Verifies bearer tokens against the configured keys.
pub struct JwtVerifier {
    issuer: String,
    hs256: Vec<DecodingKey>,
    rs256: Option<DecodingKey>,
    es256: Option<DecodingKey>,
}

impl JwtVerifier {
    /// Builds the verifier; `dev` adds the documents' sample HS256 secret.
    ///
    /// # Errors
    /// A message when a configured PEM key cannot be parsed.
    pub fn new(config: &AkkaConfig, dev: bool) -> Result<Self, String> {
        let mut hs256 = Vec::new();
        if let Some(secret) = &config.hs256_secret {
            hs256.push(DecodingKey::from_secret(secret.as_bytes()));
        }
        if dev {
            hs256.push(DecodingKey::from_secret(super::DEV_AKKA_SECRET.as_bytes()));
        }
        let rs256 = match &config.rs256_public_key_pem {
            Some(pem) => Some(
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| format!("invalid akka RS256 public key: {e}"))?,
            ),
            None => None,
        };
        let es256 = match &config.es256_public_key_pem {
            Some(pem) => Some(
                DecodingKey::from_ec_pem(pem.as_bytes())
                    .map_err(|e| format!("invalid akka ES256 public key: {e}"))?,
            ),
            None => None,
        };
        Ok(Self {
            issuer: config.issuer.clone(),
            hs256,
            rs256,
            es256,
        })
    }

    /// The verified claims of `token`, or why it was refused.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("malformed JWT: {e}"))?;
        if names_critical_extensions(token) {
            // RFC 7515 section 4.1.11: a recipient that does not understand every extension
            // `crit` lists must refuse the token, and this one understands none.
            return Err(
                "JWT header lists critical extensions (crit), which are not supported".into(),
            );
        }
        let keys: Vec<&DecodingKey> = match header.alg {
            Algorithm::HS256 => self.hs256.iter().collect(),
            Algorithm::RS256 => self.rs256.iter().collect(),
            Algorithm::ES256 => self.es256.iter().collect(),
            other => return Err(format!("JWT algorithm {other:?} is not accepted")),
        };
        if keys.is_empty() {
            return Err(format!(
                "no key is configured for JWT algorithm {:?}",
                header.alg
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["iss"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 0;
        let mut last = String::new();
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    if data.claims.iss.as_ref().and_then(serde_json::Value::as_str)
                        != Some(self.issuer.as_str())
                    {
                        // RFC 7519: `iss` is one StringOrURI (found from outside: an array
                        // holding the issuer among others was accepted).
                        return Err("invalid JWT: iss must be the issuer, as one string".into());
                    }
                    check_time_claims(&data.claims, super::unix_now_secs())?;
                    return Ok(data.claims);
                }
                Err(e) => last = format!("invalid JWT: {e}"),
            }
        }
        Err(last)
    }
}

/// Whether the token's header has a `crit` member (jsonwebtoken's `Header` drops it). A
/// header that does not decode is left to `decode_header`, which has already read it.
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine as _;
    let Some(encoded) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|json| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json).ok()
        })
        .is_some_and(|header| header.contains_key("crit"))
}

/// Mints an HS256 token for `org` (used by `ttlcask credential create --api akka`).
///
/// # Errors
/// A message if signing fails.
pub fn mint_hs256(secret: &str, issuer: &str, org: &str, jti: &str) -> Result<String, String> {
    #[derive(Serialize)]
    struct Minted<'a> {
        iss: &'a str,
        org: &'a str,
        #[serde(rename = "serviceLevel")]
        service_level: &'a str,
        jti: String,
    }
    let claims = Minted {
        iss: issuer,
        org,
        service_level: "free",
        jti: format!("{JTI_PREFIX}{jti}"),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("cannot sign JWT: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL3Nlc3Npb24uZmlyZWJhc2UuZ29vZ2xlLmNvbS9ha2thLWNhY2hlIiwib3JnIjoidHRvcmciLCJuYW1lIjoiSm9obiBEb2UiLCJzZXJ2aWNlTGV2ZWwiOiJmcmVlIn0.rds8orVxVz149ovTxxYzFIqGmSdWJUlHONem9avKBgQ";

    #[test]
    fn a_token_with_critical_extensions_or_an_issuer_list_is_refused() {
        use base64::Engine as _;
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let claims =
            b64(r#"{"iss":"https://session.firebase.google.com/akka-cache","org":"ttorg"}"#);
        let key = EncodingKey::from_secret(crate::auth::DEV_AKKA_SECRET.as_bytes());
        let sign = |header: &str| {
            let input = format!("{}.{claims}", b64(header));
            let sig =
                jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).expect("sign");
            format!("{input}.{sig}")
        };
        let dev = JwtVerifier::new(&AkkaConfig::default(), true).expect("no pem");
        let plain = sign(r#"{"alg":"HS256","typ":"JWT"}"#);
        assert!(dev.verify(&plain).is_ok(), "{:?}", dev.verify(&plain));
        // An issuer among others in an array is not the issuer.
        let listed = b64(
            r#"{"iss":["https://evil.example","https://session.firebase.google.com/akka-cache"],"org":"ttorg"}"#,
        );
        let input = format!("{}.{listed}", b64(r#"{"alg":"HS256"}"#));
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).expect("sign");
        let refused = dev
            .verify(&format!("{input}.{sig}"))
            .expect_err("an iss array is refused");
        assert!(refused.contains("iss"), "{refused}");
        let crit = sign(r#"{"alg":"HS256","crit":["x"],"x":1}"#);
        let refused = dev.verify(&crit).expect_err("crit is refused");
        assert!(refused.contains("crit"), "{refused}");
    }

    #[test]
    fn sample_token_verifies_only_in_dev() {
        let config = AkkaConfig::default();
        let dev = JwtVerifier::new(&config, true).expect("no pem");
        let claims = dev.verify(SAMPLE).expect("sample verifies");
        assert_eq!(claims.org.as_deref(), Some("ttorg"));
        assert_eq!(claims.service_level.as_deref(), Some("free"));
        let prod = JwtVerifier::new(&config, false).expect("no pem");
        assert!(prod.verify(SAMPLE).is_err());
    }

    #[test]
    fn alg_none_and_wrong_issuer_are_refused() {
        let dev = JwtVerifier::new(&AkkaConfig::default(), true).expect("no pem");
        // {"alg":"none"}.{"iss":…,"org":"ttorg"}.
        let none = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL3Nlc3Npb24uZmlyZWJhc2UuZ29vZ2xlLmNvbS9ha2thLWNhY2hlIiwib3JnIjoidHRvcmcifQ.";
        assert!(dev.verify(none).is_err());
        let wrong_iss =
            mint_hs256(super::super::DEV_AKKA_SECRET, "https://evil", "ttorg", "x").expect("sign");
        assert!(dev.verify(&wrong_iss).is_err());
        let good = mint_hs256(
            super::super::DEV_AKKA_SECRET,
            crate::config::DEFAULT_AKKA_ISSUER,
            "ttorg",
            "x",
        )
        .expect("sign");
        assert!(dev.verify(&good).is_ok());
    }

    #[test]
    fn time_claims_must_be_numbers() {
        let claims =
            |v: serde_json::Value| -> Claims { serde_json::from_value(v).expect("claims") };
        let now = 1_000_000;
        for ok in [
            serde_json::json!({}),
            serde_json::json!({"exp": now + 1, "nbf": now - 1, "iat": now}),
            serde_json::json!({"exp": 1e300, "nbf": -5, "iat": 1.5}),
        ] {
            assert_eq!(check_time_claims(&claims(ok.clone()), now), Ok(()), "{ok}");
        }
        for bad in [
            serde_json::json!({"exp": "9999999999"}),
            serde_json::json!({"exp": true}),
            serde_json::json!({"exp": ""}),
            serde_json::json!({"exp": null}),
            serde_json::json!({"exp": -1}),
            serde_json::json!({"nbf": "0"}),
            serde_json::json!({"nbf": 1e300}),
            serde_json::json!({"iat": "now"}),
            serde_json::json!({"iat": [1]}),
        ] {
            assert!(
                check_time_claims(&claims(bad.clone()), now).is_err(),
                "{bad}"
            );
        }
    }
}
