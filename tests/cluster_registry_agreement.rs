//! `tenant create` and `credential create` with `--cluster` never make the nodes' tenant
//! records disagree (found from outside, fourteenth session), on three nodes behind a real
//! HAProxy (`cluster_support`; skips loudly without `haproxy`):
//! - a tenant made on one node alone, then `tenant create --cluster`, is copied to the
//!   others; a node that made its own record of that tenant (another Flash ClientId) keeps
//!   it and is named, with exit 1 (its record was replaced, and that node's Flash clients
//!   got 401);
//! - `credential create --cluster` for a tenant missing on a node, or differing there, is
//!   refused with nothing made (the copy made a working credential on a node without the
//!   tenant).

mod cluster_support;

use std::process::Command;

use serde_json::{json, Value};
use ttlcask::cluster::ClusterFile;

use cluster_support::*;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(args)
        .output()
        .expect("ttlcask");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cluster_tenant_and_credential_creates_keep_the_nodes_agreeing() {
    let Some(c) = start() else { return };
    let file = c.file.to_string_lossy().into_owned();
    let cluster = ClusterFile::load(&c.file).expect("cluster file");
    let node = |name: &str| cluster.node(name).expect("node");
    let tenant_on = |name: &str, tenant: &str| -> Option<Value> {
        node(name)
            .call("GET", "/admin/tenants", None)
            .expect("tenants")
            .as_array()
            .and_then(|a| a.iter().find(|t| t["name"] == json!(tenant)).cloned())
    };
    let credentials_on = |name: &str, tenant: &str| {
        node(name)
            .call("GET", &format!("/admin/credentials?tenant={tenant}"), None)
            .expect("credentials")
            .as_array()
            .map_or(0, Vec::len)
    };
    let make_on = |name: &str, tenant: &str| {
        node(name)
            .call("POST", "/admin/tenants", Some(&json!({ "name": tenant })))
            .expect("tenant on one node")
    };
    let credential = |tenant: &str| {
        run(&[
            "credential",
            "create",
            "--tenant",
            tenant,
            "--api",
            "iron",
            "--cluster",
            &file,
        ])
    };

    // On node2 alone: a credential is refused, naming the nodes without the tenant.
    let only = make_on("node2", "only2");
    let (ok, err) = credential("only2");
    assert!(
        !ok && err.contains("node1") && err.contains("node3"),
        "{err}"
    );
    assert!(err.contains("nothing was created"), "{err}");
    assert_eq!(credentials_on("node2", "only2"), 0, "{err}");
    // Copied from node2 by `tenant create --cluster`, as it is; then a credential works.
    let (ok, err) = run(&["tenant", "create", "only2", "--cluster", &file]);
    assert!(ok, "{err}");
    for name in ["node1", "node2", "node3"] {
        assert_eq!(tenant_on(name, "only2").as_ref(), Some(&only), "{name}");
    }
    let (ok, err) = credential("only2");
    assert!(ok, "{err}");
    for name in ["node1", "node2", "node3"] {
        assert_eq!(credentials_on(name, "only2"), 1, "{name}");
    }

    // Made on node1 and node3 apart (another ClientId each): node3's is kept and named.
    let first = make_on("node1", "twice");
    let own = make_on("node3", "twice");
    assert_ne!(first["flash_client_id"], own["flash_client_id"]);
    let (ok, err) = run(&["tenant", "create", "twice", "--cluster", &file]);
    assert!(!ok && err.contains("node3"), "{err}");
    assert!(!err.contains("node2"), "node2 got the copy: {err}");
    assert_eq!(tenant_on("node3", "twice").as_ref(), Some(&own), "replaced");
    assert_eq!(tenant_on("node2", "twice").as_ref(), Some(&first));
    // And a credential for it is refused, with nothing made anywhere.
    let (ok, err) = credential("twice");
    assert!(
        !ok && err.contains("node3") && err.contains("nothing was created"),
        "{err}"
    );
    for name in ["node1", "node2", "node3"] {
        assert_eq!(credentials_on(name, "twice"), 0, "{name}");
    }
}
