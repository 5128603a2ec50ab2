//! `cluster status`: each node's health, slots, items and bytes, whether the tenant and
//! credential registries of all nodes agree, and any map value that names no node of the
//! cluster file (`maps_name_unknown_nodes`: those slots have no owner and answer 503).

use serde_json::{json, Value};

use super::maps::SlotMap;
use super::ClusterFile;

/// The status as JSON; `Ok` even when nodes are down (they are reported).
///
/// # Errors
/// The maps cannot be read.
pub fn collect(file: &ClusterFile) -> Result<Value, String> {
    let read = SlotMap::read(&file.read_map)?;
    let write = SlotMap::read(&file.write_map)?;
    let names: Vec<&str> = file.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut unknown_names = super::maps::unknown_names_report(&read, &file.read_map, &names);
    unknown_names.extend(super::maps::unknown_names_report(
        &write,
        &file.write_map,
        &names,
    ));
    let mut nodes = Vec::new();
    let mut registries: Vec<(String, Value)> = Vec::new();
    for node in &file.nodes {
        let health = node
            .client()
            .and_then(|c| c.call("GET", "/healthz", None))
            .map(|(status, body)| {
                if status == 200 {
                    "ok".to_string()
                } else {
                    format!("{status} {body}")
                }
            })
            .unwrap_or_else(|e| format!("unreachable: {e}"));
        let stats = node.call("GET", "/admin/stats", None).ok();
        let registry = super::registry::of(node);
        if let Ok(r) = &registry {
            registries.push((node.name.clone(), r.clone()));
        }
        let fenced = node
            .call("GET", "/admin/fence", None)
            .ok()
            .and_then(|v| v.get("fenced").and_then(Value::as_array).map(Vec::len));
        nodes.push(json!({
            "name": node.name,
            "address": node.address,
            "health": health,
            "slots": read.count(&node.name),
            "write_slots": write.count(&node.name),
            "fenced_slots": fenced,
            // Cache items only: the engine's `items` counts registry records too.
            "items": stats.as_ref().and_then(|s| s.get("cache_items")).cloned(),
            "registry_records": stats.as_ref().and_then(|s| s.get("registry_items")).cloned(),
            "live_bytes": stats.as_ref().and_then(|s| s.get("live_bytes")).cloned(),
        }));
    }
    let differing: Vec<&str> = registries
        .iter()
        .skip(1)
        .filter(|(_, r)| Some(r) != registries.first().map(|(_, f)| f))
        .map(|(n, _)| n.as_str())
        .collect();
    let unknown: Vec<&str> = file
        .nodes
        .iter()
        .filter(|n| !registries.iter().any(|(r, _)| *r == n.name))
        .map(|n| n.name.as_str())
        .collect();
    Ok(json!({
        "nodes": nodes,
        "paused_slots": write.count(super::PAUSED),
        "maps_name_unknown_nodes": unknown_names,
        "registries_agree": differing.is_empty() && unknown.is_empty(),
        "registries_differ_on": differing,
        "registries_unknown_on": unknown,
    }))
}
