//! `tenant …` and `credential …` with `--cluster FILE`: the same records on every node.
//!
//! A tenant or credential is created on the first reachable node (which makes its ids,
//! `ClientId` and secret hash), then copied as an export line through `/admin/import` into
//! every other node, so all hold the same ids and hashes. A revoke is sent to every node.
//! Any node that could not be reached is named in the error, so that a change that missed
//! one never looks done; running the command again finishes it (a tenant that exists
//! already is copied from a node that has it; a node with another record of it is named,
//! never overwritten). A credential is made only once every node holds its tenant, the same
//! record; one that then missed a node is revoked again everywhere (a re-run makes a new
//! one, with a new secret).
//!
//! [`before_move`]: `cluster move` makes sure its target holds the records of the slots'
//! owners before it switches the maps (a Flash or IronCache client is checked on whichever
//! node its slot lives). A target with no record at all (a node added to scale out) gets
//! theirs copied; one whose records differ makes the move refuse, naming the differences.

use std::collections::BTreeMap;

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

/// Tenant `name`'s record on `node`, if it has one.
fn tenant_on(node: &Node, name: &str) -> Result<Option<Value>, String> {
    let all = node.call("GET", "/admin/tenants", None)?;
    Ok(all
        .as_array()
        .and_then(|a| a.iter().find(|t| t.get("name") == Some(&json!(name))))
        .cloned())
}

/// What each node holds of tenant `name`: `(node, record)` for the nodes reached, and the
/// errors of the others.
fn tenant_everywhere<'a>(
    file: &'a ClusterFile,
    name: &str,
) -> (Vec<(&'a Node, Option<Value>)>, Vec<String>) {
    let (mut held, mut missed) = (Vec::new(), Vec::new());
    for node in &file.nodes {
        match tenant_on(node, name) {
            Ok(record) => held.push((node, record)),
            Err(e) => missed.push(e),
        }
    }
    (held, missed)
}

/// The nodes of `held` whose record of a tenant is there but not `record`, named.
fn differing(held: &[(&Node, Option<Value>)], record: &Value) -> Vec<String> {
    held.iter()
        .filter(|(_, r)| r.as_ref().is_some_and(|r| r != record))
        .map(|(node, _)| node.name.clone())
        .collect()
}

/// Creates `name` on every node; returns its record. A tenant that some node holds already
/// is copied from it to the nodes missing it; a node whose record of it differs (made there
/// on its own, with another Flash `ClientId`) is named and left as it is: replacing its
/// record cut off that node's Flash clients (found from outside).
///
/// # Errors
/// Names the nodes it did not reach, and the nodes whose record differs.
pub fn create_tenant(
    file: &ClusterFile,
    name: &str,
    flash_client_id: Option<&str>,
) -> Result<Value, String> {
    let (held, mut missed) = tenant_everywhere(file, name);
    let (record, made_on) = match held.iter().find_map(|(_, r)| r.clone()) {
        Some(record) => (record, None),
        None => {
            let (first, _) = held
                .first()
                .ok_or_else(|| format!("tenant {name} reached no node: {}", missed.join("; ")))?;
            let mut body = json!({ "name": name });
            if let Some(id) = flash_client_id {
                body["flash_client_id"] = json!(id);
            }
            let made = first.call("POST", "/admin/tenants", Some(&body))?;
            (made, Some(first.name.as_str()))
        }
    };
    let without: Vec<&Node> = held
        .iter()
        .filter(|(node, r)| r.is_none() && made_on != Some(node.name.as_str()))
        .map(|(node, _)| *node)
        .collect();
    missed.extend(copy_to(&without, &record_line("tenants", name, &record)));
    let reached = done(missed, &format!("tenant {name}"));
    let differ = differing(&held, &record);
    if differ.is_empty() {
        return reached.map(|()| record);
    }
    let differ = format!(
        "nodes {} hold another record of tenant {name} (another Flash ClientId) and were left as they are: make the nodes agree by hand (`cluster status` shows them)",
        differ.join(", ")
    );
    Err(match reached {
        Ok(()) => differ,
        Err(e) => format!("{e}; {differ}"),
    })
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
    // The tenant first, the same on every node: a node without it took the credential's
    // copy anyway, and it worked there for a tenant that node does not have (found from
    // outside); one whose tenant differs has another Flash ClientId.
    let tenant = body
        .get("tenant")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (held, missed) = tenant_everywhere(file, tenant);
    if !missed.is_empty() {
        return Err(format!(
            "could not check tenant {tenant} on every node: {}; nothing was created, run the command again once every node is up",
            missed.join("; ")
        ));
    }
    let Some(record) = held.iter().find_map(|(_, r)| r.clone()) else {
        return Err(format!("no node has a tenant {tenant:?}; create it first"));
    };
    let lacking: Vec<&str> = held
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(n, _)| n.name.as_str())
        .collect();
    if !lacking.is_empty() {
        return Err(format!(
            "tenant {tenant} is not on nodes {}: run `ttlcask tenant create {tenant} --cluster FILE` first; nothing was created",
            lacking.join(", ")
        ));
    }
    let differ = differing(&held, &record);
    if !differ.is_empty() {
        return Err(format!(
            "nodes {} hold another record of tenant {tenant} than node {}: make the nodes agree first (`cluster status`); nothing was created",
            differ.join(", "),
            held[0].0.name
        ));
    }
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
/// Names the nodes it did not reach; an id that no node has, live or revoked.
pub fn revoke(file: &ClusterFile, id: &str) -> Result<Value, String> {
    let mut missed = Vec::new();
    let mut without = Vec::new();
    for node in &file.nodes {
        match node.call("DELETE", &format!("/admin/credentials/{id}"), None) {
            Ok(_) => {}
            Err(e) if e.contains(" 404 ") => without.push(node),
            Err(e) => missed.push(e),
        }
    }
    // A node that had no live record of it (it never got the credential: down while its
    // create was undone, say) gets the record a revoke keeps, copied from a node that has
    // it: otherwise an export from before the revoke imported there brought the credential
    // back (found from outside, thirteenth session).
    if !without.is_empty() {
        let record = file.nodes.iter().find_map(|node| {
            revoked_of(node)
                .into_iter()
                .find(|(revoked, _)| revoked == id)
                .map(|(_, record)| record)
        });
        match record {
            Some(record) => {
                missed.extend(copy_to(&without, &record_line("credentials", id, &record)));
            }
            // No node has it, live or revoked, and every node answered: a mistyped id, which
            // the revoke must not report done (it did, found in a review).
            None if missed.is_empty() && without.len() == file.nodes.len() => {
                return Err(format!("no node has a credential {id:?}"));
            }
            None => {}
        }
    }
    done(missed, &format!("the revoke of {id}"))?;
    Ok(json!({ "revoked": id }))
}

/// The records revoked credentials keep on `node`, as `(id, record)`; none from a node that
/// cannot be reached or lists no such records (a release before them).
fn revoked_of(node: &Node) -> Vec<(String, Value)> {
    let Ok(listed) = node.call("GET", "/admin/credentials?revoked=true", None) else {
        return Vec::new();
    };
    listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| Some((pair[0].as_str()?.to_string(), pair.get(1)?.clone())))
        .collect()
}

/// A node's tenant and credential records, `{"tenants": [...], "credentials": [...]}` as its
/// admin API lists them (credentials with their secrets' hashes, never the secrets).
///
/// # Errors
/// The node cannot be reached.
pub fn of(node: &Node) -> Result<Value, String> {
    let tenants = node.call("GET", "/admin/tenants", None)?;
    let credentials = node.call("GET", "/admin/credentials", None)?;
    Ok(json!({ "tenants": tenants, "credentials": credentials }))
}

/// The records of `registry` (as [`of`] lists them) by kind and key: `tenants/NAME`,
/// `credentials/ID`.
fn records(registry: &Value) -> BTreeMap<String, &Value> {
    let mut out = BTreeMap::new();
    for (kind, key) in [("tenants", "name"), ("credentials", "id")] {
        for record in registry[kind].as_array().into_iter().flatten() {
            let id = record[key].as_str().unwrap_or_default();
            out.insert(format!("{kind}/{id}"), record);
        }
    }
    out
}

/// What differs between two nodes' records, one phrase per record (at most 10 named).
fn differences(a: (&str, &Value), b: (&str, &Value)) -> String {
    let (ra, rb) = (records(a.1), records(b.1));
    let mut out: Vec<String> = Vec::new();
    for (key, record) in &ra {
        match rb.get(key) {
            None => out.push(only_on(key, a.0, b.0)),
            Some(other) if other != record => out.push(format!("{key} differs")),
            Some(_) => {}
        }
    }
    out.extend(
        rb.keys()
            .filter(|k| !ra.contains_key(*k))
            .map(|k| only_on(k, b.0, a.0)),
    );
    let more = out.len().saturating_sub(10);
    out.truncate(10);
    if more > 0 {
        out.push(format!("{more} more"));
    }
    out.join(", ")
}

/// The phrase for a record `key` that node `here` lists and node `there` does not. Nodes list
/// live credentials only, so `there` may hold the credential revoked (a move refusal said
/// "only on" of a credential the other node had revoked: found from outside).
fn only_on(key: &str, here: &str, there: &str) -> String {
    if key.starts_with("credentials/") {
        format!("{key} live only on {here} ({there} has none, or has it revoked)")
    } else {
        format!("{key} only on {here}")
    }
}

/// Makes sure the move's target `to` holds the same tenant and credential records as each
/// of `sources` (the slots' owners), before anything is paused; returns the number of
/// records copied into it.
///
/// A target with no tenant and no credential record gets the first source's records,
/// copied as the `--cluster` commands copy them. That cannot bring back a credential
/// revoked on the target: a revoke deletes the credential's record, but tenants are never
/// deleted, so a node that ever held a credential of a tenant holds that tenant's record
/// (and is not empty). A target whose records differ otherwise is refused: which side is
/// right (a revoke that missed a node, a credential made while one was down) is the
/// operator's call.
///
/// # Errors
/// A node cannot be reached, the sources differ among themselves, the target differs from
/// them, or the copy failed; the message names the nodes and records.
pub fn before_move(to: &Node, sources: &[&Node]) -> Result<usize, String> {
    let Some(first) = sources.first() else {
        return Ok(0);
    };
    let theirs = of(first)?;
    for other in &sources[1..] {
        let registry = of(other)?;
        if registry != theirs {
            return Err(refusal(
                (&first.name, &theirs),
                (&other.name, &registry),
                "the slots' owners",
            ));
        }
    }
    let mut copied = 0;
    let mut mine = of(to)?;
    let empty = |r: &Value| {
        ["tenants", "credentials"]
            .iter()
            .all(|k| r[k].as_array().is_some_and(Vec::is_empty))
    };
    if mine != theirs && empty(&mine) {
        let mut lines = String::new();
        // Tenants first: a credential names its tenant.
        for (kind, key) in [("tenants", "name"), ("credentials", "id")] {
            for record in theirs[kind].as_array().into_iter().flatten() {
                let id = record[key].as_str().unwrap_or_default();
                lines.push_str(&record_line(kind, id, record));
                copied += 1;
            }
        }
        // And the records revoked credentials keep: without them, an export from before a
        // revoke imported into the new node would bring the credential back (found from
        // outside). Not compared (`of` lists live records): a node that never held a
        // credential has no revoked record of it.
        for (id, record) in revoked_of(first) {
            lines.push_str(&record_line("credentials", &id, &record));
            copied += 1;
        }
        to.client()
            .and_then(|c| c.import(&mut lines.as_bytes(), 100_000, |_| {}))
            .map_err(|e| {
                format!(
                    "copying the tenant and credential records of {} into node {}: {e}",
                    first.name, to.name
                )
            })?;
        mine = of(to)?;
    }
    if mine != theirs {
        return Err(refusal(
            (&first.name, &theirs),
            (&to.name, &mine),
            "the slots' owner and the target",
        ));
    }
    Ok(copied)
}

fn refusal(a: (&str, &Value), b: (&str, &Value), who: &str) -> String {
    format!(
        "the tenant and credential records of nodes {} and {} ({who}) differ ({}): Flash and IronCache clients of the moved slots would get 401, so this run changed nothing (no slot paused or moved). Make the registries agree first (`ttlcask cluster status` lists `registries_differ_on`): `ttlcask tenant create NAME --cluster FILE` copies a tenant to the nodes missing it, `ttlcask credential revoke ID --cluster FILE` removes a credential everywhere. A node with no tenant or credential record at all gets the records copied by the move.",
        a.0,
        b.0,
        differences(a, b)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_record_and_a_credential_only_one_node_lists_as_maybe_revoked() {
        let a = json!({
            "tenants": [{"name": "acme", "flash_client_id": "x"}, {"name": "only-a"}],
            "credentials": [{"id": "c1", "tenant": "acme"}],
        });
        let b = json!({
            "tenants": [{"name": "acme", "flash_client_id": "y"}, {"name": "only-b"}],
            "credentials": [],
        });
        let said = differences(("node1", &a), ("node2", &b));
        for phrase in [
            "credentials/c1 live only on node1 (node2 has none, or has it revoked)",
            "tenants/acme differs",
            "tenants/only-a only on node1",
            "tenants/only-b only on node2",
        ] {
            assert!(said.contains(phrase), "{phrase:?} not in {said:?}");
        }
    }
}
