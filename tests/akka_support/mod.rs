//! Helpers shared by `akka.rs` and `akka_tenants.rs`: Akka Cache requests with the sample
//! JWT, and HS256 tokens of the tests' own claims.
#![allow(dead_code)]

use crate::common::{self, TestServer, SAMPLE_JWT};
use serde_json::Value;

pub fn bearer() -> String {
    format!("Bearer {SAMPLE_JWT}")
}

pub async fn akka(
    s: &TestServer,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> common::Resp {
    let auth = bearer();
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct));
    }
    let r = s.req(method, path, &headers, body.as_bytes()).await;
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("*"),
        "{method} {path}: {r:?}"
    );
    r
}

pub fn token(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}
