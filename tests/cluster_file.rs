//! The cluster file's checks that need no HAProxy (found from outside, sixteenth session):
//! a file given by a relative name made a config HAProxy refused (relative paths in it), and
//! one server named twice (two addresses) passed, so that `cluster move` "moved" a slot from
//! it to itself and dropped the slot's items.

mod common;

use std::process::{Command, Stdio};

use common::{start_on, DOC_NOW_MS};
use ttlcask::cluster::{moving, Node};
use ttlcask::Config;
use ttlcask_engine::ManualClock;

#[test]
fn a_cluster_file_given_by_a_relative_name_gives_a_config_with_absolute_paths() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("cluster.toml"),
        "bind = \"127.0.0.1:18080\"\nhaproxy_socket = \"h.sock\"\nread_map = \"r.map\"\nwrite_map = \"w.map\"\n\
         [[nodes]]\nname = \"a\"\naddress = \"127.0.0.1:19001\"\nadmin_token = \"t\"\n\
         [[nodes]]\nname = \"b\"\naddress = \"127.0.0.1:19002\"\nadmin_token = \"t\"\n",
    )
    .expect("write the cluster file");
    let out = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(["cluster", "haproxy", "cluster.toml"])
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .output()
        .expect("cluster haproxy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = String::from_utf8_lossy(&out.stdout);
    let dir = tmp.path().canonicalize().expect("canonical temp dir");
    for file in ["h.sock", "r.map", "w.map"] {
        let absolute = dir.join(file).display().to_string();
        assert!(
            config.contains(&absolute),
            "{file} not as {absolute} in\n{config}"
        );
    }
    assert!(!config.contains(" h.sock"), "{config}");
}

/// A node of the cluster file that reaches `server` (no file check: the addresses a file
/// cannot tell apart are the point).
fn node(name: &str, server: &common::TestServer, token: &str) -> Node {
    Node {
        name: name.into(),
        address: server.addr.to_string(),
        admin_token: Some(token.into()),
        admin_token_file: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_between_two_names_of_one_server_is_refused() {
    let mut servers = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(true);
        config.admin_token_path = Some(dir.path().join("admin.token"));
        let s = start_on(dir.path(), config, ManualClock::new(DOC_NOW_MS), |_| {}).await;
        assert_eq!(s.req("GET", "/healthz", &[], b"").await.status, 200);
        let token = std::fs::read_to_string(dir.path().join("admin.token")).expect("token");
        servers.push((s, token.trim().to_string(), dir));
    }
    let one = node("one", &servers[0].0, &servers[0].1);
    let again = node("again", &servers[0].0, &servers[0].1);
    let other = node("other", &servers[1].0, &servers[1].1);
    let (same, different) = tokio::task::spawn_blocking(move || {
        (
            moving::one_server_each(&again, &[&other, &one]),
            moving::one_server_each(&other, &[&one]),
        )
    })
    .await
    .expect("join");
    let said = same.expect_err("one server under two names is refused");
    assert!(said.contains("are one server"), "{said}");
    assert_eq!(different, Ok(()), "two servers are two");
}
