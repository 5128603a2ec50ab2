//! `tenant …` and `credential …` with `--cluster FILE`: the same records on every node.
//!
//! A tenant or credential is created on the first reachable node (which makes its ids,
//! `ClientId` and secret hash), then copied as an export line through `/admin/import` into
//! every other node, so all hold the same ids and hashes. A revoke is sent to every node.
//! Any node that could not be reached is named in the error, so that a change that missed
//! one never looks done; running the command again finishes it (a tenant that exists
//! already is copied from the node that has it). A credential that missed a node is revoked
//! again everywhere instead (a re-run makes a new one, with a new secret).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{ClusterFile, Node};

fn record_line(system: &str, key: &str, record: &Value) -> String {
    let value = BASE64.encode(record.to_string());
    format!(
        "{}\n",
        json!({ "system": system, "key": key, "value": value })
    )
}

fn copy_to(nodes: &[&Node], line: &str) -> Vec<String> {
    let mut missed = Vec::new();
    for node in nodes {
        let imported = node
            .client()
            .and_then(|c| c.import(&mut line.as_bytes(), 1, |_| {}))
            .map_err(|e| format!("node {} ({}): {e}", node.name, node.address));
        if let Err(e) = imported {
            missed.push(e);
        }
    }
    missed
}

fn done(missed: Vec<String>, what: &str) -> Result<(), String> {
    if missed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what} did not reach every node: {}",
            missed.join("; ")
        ))
    }
}

/// Creates `name` on every node; returns its record.
///
/// # Errors
/// Names the nodes it did not reach.
pub fn create_tenant(
    file: &ClusterFile,
    name: &str,
    flash_client_id: Option<&str>,
) -> Result<Value, String> {
    let (first, rest) = file.nodes.split_first().ok_or("no nodes")?;
    let mut body = json!({ "name": name });
    if let Some(id) = flash_client_id {
        body["flash_client_id"] = json!(id);
    }
    let record = match first.call("POST", "/admin/tenants", Some(&body)) {
        Ok(r) => r,
        Err(e) if e.contains(" 409 ") => {
            let all = first.call("GET", "/admin/tenants", None)?;
            all.as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|t| t.get("name") == Some(&json!(name)))
                        .cloned()
                })
                .ok_or(e)?
        }
        Err(e) => return Err(e),
    };
    let others: Vec<&Node> = rest.iter().collect();
    done(
        copy_to(&others, &record_line("tenants", name, &record)),
        &format!("tenant {name}"),
    )?;
    Ok(record)
}

/// Creates a credential on the first node and copies its record to the others; returns
/// what the first node answered (with the secret, shown once).
///
/// All or nothing: if a node could not be reached, the credential is revoked again on every
/// node, so that no half-made credential works on some nodes (found from outside: it stayed
/// on the nodes reached, its secret printed in the error, and a re-run made a second one).
///
/// # Errors
/// Names the nodes it did not reach, and any node the credential could not be revoked on.
pub fn create_credential(file: &ClusterFile, body: &Value) -> Result<Value, String> {
    let (first, rest) = file.nodes.split_first().ok_or("no nodes")?;
    let created = first.call("POST", "/admin/credentials", Some(body))?;
    let record = created.get("credential").cloned().unwrap_or(Value::Null);
    let id = record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let others: Vec<&Node> = rest.iter().collect();
    let missed = copy_to(&others, &record_line("credentials", &id, &record));
    if missed.is_empty() {
        return Ok(created);
    }
    let undone = match revoke(file, &id) {
        Ok(_) => format!("credential {id} was revoked again on every node: nothing was created"),
        Err(e) => format!(
            "credential {id} could not be revoked again everywhere ({e}): run `ttlcask credential revoke {id} --cluster FILE` once every node is up"
        ),
    };
    Err(format!(
        "the credential did not reach every node: {}; {undone}; run the command again once every node is up",
        missed.join("; ")
    ))
}

/// Revokes `id` on every node (a node that no longer has it counts as done).
///
/// # Errors
/// Names the nodes it did not reach.
pub fn revoke(file: &ClusterFile, id: &str) -> Result<Value, String> {
    let mut missed = Vec::new();
    for node in &file.nodes {
        match node.call("DELETE", &format!("/admin/credentials/{id}"), None) {
            Ok(_) => {}
            Err(e) if e.contains(" 404 ") => {}
            Err(e) => missed.push(e),
        }
    }
    done(missed, &format!("the revoke of {id}"))?;
    Ok(json!({ "revoked": id }))
}
