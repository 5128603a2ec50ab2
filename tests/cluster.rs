//! A cluster on loopback: three `ttlcask serve --dev` nodes behind a real HAProxy, driven by
//! `ttlcask cluster`. Skips loudly (and passes) when `haproxy` is not installed.
//!
//! Each test starts its own cluster (the harness runs them side by side).
//! - Routing: 2,000 seeded keys per API for the slot agreement, 60 Iron projects and 60 Akka
//!   orgs, a stopped node; then 100 slots moved under a writer and a reader, 100 more with the
//!   `cluster move` process killed at a seeded step (`TTLCASK_CLUSTER_SEED`) and run again,
//!   and HAProxy reloaded (SIGUSR2, master-worker) with the moved slots staying moved.
//! - Conditional operations through the proxy: 8 x 25 IronCache increments of one key sum
//!   exactly; 16 concurrent Flash `add`s of one DataKey have one winner.
//! - Balance and Flash: 300 tenants (100 Flash tenants made with `tenant`/`credential create
//!   --cluster`, with seeded `--flash-client-id`s; 100 Iron projects, 100 Akka orgs; seeded
//!   names), 2 items each, each on exactly the map's node; slots per node differ by at most
//!   one, items per node within ±25% of the mean (the same on every run: nothing is random);
//!   a stopped node's Flash tenants get 503 in Flash's shape; no node holds an item of
//!   a slot it does not own (asked on each node with `/admin/export?slot=…`).
//! - Moving slots back and forth, and the tools' guards: `cluster_moves.rs`.

mod cluster_support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ttlcask::auth::{DEV_FLASH_API_KEY, DEV_FLASH_CLIENT_ID};
use ttlcask::cluster::ClusterFile;
use ttlcask::slot;

use cluster_support::*;

#[test]
fn a_cluster_routes_by_slot_survives_a_stopped_node_and_moves_slots_online() {
    let Some(mut c) = start() else { return };
    let started = Instant::now();

    // 1. HAProxy's slot equals ttlcask's, for all three shard keys.
    for i in 0..2000u32 {
        let key = format!("k{}", i.wrapping_mul(2_654_435_761));
        let r = http(
            &c.proxy,
            "GET",
            "/v1/cache/get",
            &[("ClientId", &key), ("DataKey", "x")],
            "",
        );
        assert_eq!(
            r.header("X-Ttlcask-Slot"),
            Some(slot::of_key(key.as_bytes()).to_string())
        );
        let r = http(
            &c.proxy,
            "GET",
            "/c/x",
            &[(
                "Authorization",
                &format!("Bearer {}", akka_token(&format!("org{i}"))),
            )],
            "",
        );
        assert_eq!(
            r.header("X-Ttlcask-Slot"),
            Some(slot::of_key(format!("org{i}").as_bytes()).to_string())
        );
        let p = project(i as usize);
        let upper = p.to_ascii_uppercase();
        let encoded: String = upper
            .chars()
            .map(|ch| format!("%{:02X}", ch as u32))
            .collect();
        for form in [&p, &upper, &encoded] {
            let r = http(
                &c.proxy,
                "GET",
                &format!("/1/projects/{form}/caches/c/items/x"),
                &[("Authorization", &iron_auth())],
                "",
            );
            assert_eq!(
                r.header("X-Ttlcask-Slot"),
                Some(slot::of_key(p.as_bytes()).to_string()),
                "{form}"
            );
        }
    }
    eprintln!(
        "slot agreement: 2000 keys x 3 APIs (+2 Iron forms) in {:?}",
        started.elapsed()
    );

    // Items land on exactly the node the map names.
    let map = c.read_map();
    let mut per_node = std::collections::BTreeMap::new();
    for i in 0..60 {
        let p = project(i);
        assert_eq!(iron_put(&c.proxy, &p, "k", "v").status, 200);
        let owner = map.get(slot::of_key(p.as_bytes())).to_string();
        *per_node.entry(owner.clone()).or_insert(0) += 1;
        for (name, _, _) in &c.nodes {
            let direct = iron_get(&c.node_addr(name), &p, "k").status;
            assert_eq!(direct == 200, *name == owner, "project {p} on {name}");
        }
        let org = format!("org{i}");
        let auth = format!("Bearer {}", akka_token(&org));
        let r = http(
            &c.proxy,
            "POST",
            "/c/k",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/octet-stream"),
            ],
            "v",
        );
        assert!(r.status < 300, "akka put {}: {}", r.status, r.body);
        let owner = map.get(slot::of_key(org.as_bytes()));
        for (name, _, _) in &c.nodes {
            let direct = http(
                &c.node_addr(name),
                "GET",
                "/c/k",
                &[("Authorization", &auth)],
                "",
            );
            assert_eq!(direct.status == 200, name == owner, "org {org} on {name}");
        }
    }
    eprintln!("items per node (Iron projects): {per_node:?}");

    // 2. Stop node2: its slots answer 503 in the API's shape, the others still work.
    let node2_port = c.nodes[1].1;
    c.nodes[1].2 = None;
    std::thread::sleep(Duration::from_millis(1200));
    let (mut down, mut up) = (0, 0);
    for i in 0..60 {
        let p = project(i);
        let r = iron_put(&c.proxy, &p, "k2", "v");
        if map.get(slot::of_key(p.as_bytes())) == "node2" {
            assert_eq!(r.status, 503, "{}", r.body);
            assert!(r.body.contains("\"msg\""), "iron shape: {}", r.body);
            assert!(r.header("Retry-After").is_some());
            down += 1;
        } else {
            assert_eq!(r.status, 200);
            up += 1;
        }
    }
    let node2_org = (0..)
        .map(|i| format!("org{i}"))
        .find(|o| map.get(slot::of_key(o.as_bytes())) == "node2")
        .unwrap_or_default();
    let r = http(
        &c.proxy,
        "GET",
        "/c/k",
        &[(
            "Authorization",
            &format!("Bearer {}", akka_token(&node2_org)),
        )],
        "",
    );
    assert_eq!(r.status, 503);
    assert!(r
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/plain")));
    eprintln!("node2 stopped: {down} projects got 503, {up} still written");
    c.nodes[1].2 = Some(start_node(c.dir.path(), "node2", node2_port));
    std::thread::sleep(Duration::from_millis(800));
    for i in 0..60 {
        let p = project(i);
        assert_eq!(
            iron_get(&c.proxy, &p, "k").status,
            200,
            "after restart: {p}"
        );
    }

    // 3. Move 100 of node1's slots to node3 under a writer and a reader; then 100 more to
    // node2, the `cluster move` process killed at a seeded step and run again.
    move_under_load(&c, 0..=99, "node3", None);
    let seed = std::env::var("TTLCASK_CLUSTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b11_5eed_u64);
    move_under_load(&c, 100..=199, "node2", Some(seed));

    // 4. Reload HAProxy (SIGUSR2 to the master): it reads the map files again, and the moved
    // slots stay moved. A slot changed only through the runtime API comes back as the file
    // says, which shows the reload happened.
    let cluster = ClusterFile::load(&c.file).expect("cluster file");
    let socket = &cluster.haproxy_socket;
    let read_map = cluster.read_map.display().to_string();
    let runtime = |cmd: &str| ttlcask::cluster::runtime::send(socket, cmd).expect("runtime");
    runtime(&format!("set map {read_map} 1000 paused"));
    assert!(runtime(&format!("show map {read_map}")).contains(" 1000 paused"));
    let status = Command::new("kill")
        .args(["-USR2", &c.haproxy.0.id().to_string()])
        .status()
        .expect("kill -USR2");
    assert!(status.success());
    let reloaded = Instant::now();
    loop {
        let shown = ttlcask::cluster::runtime::send(socket, &format!("show map {read_map}"))
            .unwrap_or_default();
        if shown.contains(" 1000 node3") {
            assert!(
                shown.contains(" 0 node3") && shown.contains(" 150 node2"),
                "{shown}"
            );
            break;
        }
        assert!(
            reloaded.elapsed() < Duration::from_secs(10),
            "HAProxy did not reload: {shown}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let map = c.read_map();
    assert!((0..100).all(|s| map.get(s) == "node3") && (100..200).all(|s| map.get(s) == "node2"));
    for i in (0..4000)
        .filter(|&i| slot::of_key(project(i).as_bytes()) < 200)
        .take(40)
    {
        let p = project(i);
        let owner = map.get(slot::of_key(p.as_bytes()));
        let mut r = iron_put(&c.proxy, &p, "after-reload", "v");
        for _ in 0..50 {
            if r.status == 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            r = iron_put(&c.proxy, &p, "after-reload", "v");
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            iron_get(&c.node_addr(owner), &p, "after-reload").status,
            200
        );
        assert_eq!(
            iron_get(&c.node_addr("node1"), &p, "after-reload").status,
            404
        );
    }
    let stray = strays(&c);
    assert!(stray.is_empty(), "items off their slot's node: {stray:?}");
    eprintln!(
        "reload: moved slots stayed, nothing off its node, {:?} in all",
        started.elapsed()
    );

    // Registries agree, and `cluster status` says so.
    let cluster = ClusterFile::load(&c.file).expect("cluster file");
    ttlcask::cluster::registry::create_tenant(&cluster, "acme", None)
        .expect("tenant on every node");
    let status = ttlcask::cluster::status::collect(&cluster).expect("status");
    assert_eq!(status["registries_agree"], true, "{status}");
}

#[test]
fn conditional_operations_stay_atomic_through_the_proxy() {
    let Some(c) = start() else { return };
    let started = Instant::now();
    // 8 tasks x 25 IronCache increments of one key.
    let p = project(7);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (proxy, p) = (c.proxy.clone(), p.clone());
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let r = http(
                        &proxy,
                        "POST",
                        &format!("/1/projects/{p}/caches/c/items/n/increment"),
                        &[
                            ("Authorization", &iron_auth()),
                            ("Content-Type", "application/json"),
                        ],
                        "{\"amount\":1}",
                    );
                    assert_eq!(r.status, 200, "increment: {}", r.body);
                }
            })
        })
        .collect();
    for t in tasks {
        t.join().expect("increment task");
    }
    let r = iron_get(&c.proxy, &p, "n");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v["value"], serde_json::json!(200), "{}", r.body);

    // 16 tasks race to `add` one Flash DataKey: exactly one wins.
    let who = (DEV_FLASH_CLIENT_ID, DEV_FLASH_API_KEY);
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (proxy, barrier) = (c.proxy.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                flash(
                    &proxy,
                    "POST",
                    "add",
                    who,
                    "race",
                    &format!("{{\"v\":{i}}}"),
                )
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = tasks
        .into_iter()
        .map(|t| t.join().expect("add task"))
        .collect();
    let won = statuses.iter().filter(|&&s| s == 201 || s == 200).count();
    let lost = statuses.iter().filter(|&&s| s == 409).count();
    assert_eq!((won, lost), (1, 15), "{statuses:?}");
    let owner = c
        .read_map()
        .get(slot::of_key(DEV_FLASH_CLIENT_ID.as_bytes()))
        .to_string();
    for (name, _, _) in &c.nodes {
        let direct = flash(&c.node_addr(name), "GET", "get", who, "race", "").status;
        assert_eq!(direct == 200, *name == owner, "race key on {name}");
    }
    eprintln!(
        "atomic: 8x25 increments sum to 200, 16 adds -> 1 winner and 15 x 409, in {:?}",
        started.elapsed()
    );
}

#[test]
fn three_hundred_tenants_spread_evenly_and_flash_routes_by_client_id() {
    let Some(mut c) = start() else { return };
    let started = Instant::now();
    let file = c.file.to_string_lossy().into_owned();
    let mut rng = Seeded(0x5eed_c1a5_7e12);
    // 100 Flash tenants, made on every node as an operator does: same ClientId everywhere.
    let mut flash_tenants = Vec::new();
    let mut flash_tenants_names = Vec::new();
    for _ in 0..100 {
        let name = format!("f{:010x}", rng.next() >> 24);
        // Seeded ClientIds (as an operator keeps the ones existing Flash clients send), so
        // the Flash tenants' slots, and the balance, are the same on every run.
        let client_id = format!("v1:uid_{:020x}", rng.next());
        cli(&[
            "tenant",
            "create",
            &name,
            "--cluster",
            &file,
            "--flash-client-id",
            &client_id,
        ]);
        let cred = cli(&[
            "credential",
            "create",
            "--tenant",
            &name,
            "--api",
            "flash",
            "--cluster",
            &file,
        ]);
        let id = cred["client_id"].as_str().expect("client_id").to_string();
        assert_eq!(
            id, client_id,
            "the credential carries the tenant's ClientId"
        );
        let key = cred["secret"].as_str().expect("secret").to_string();
        flash_tenants.push((id, key));
        flash_tenants_names.push(name);
    }
    eprintln!("100 Flash tenants on 3 nodes in {:?}", started.elapsed());
    let projects: Vec<String> = (0..100).map(|_| format!("{:024x}", rng.next())).collect();
    let orgs: Vec<String> = (0..100)
        .map(|_| format!("org-{:08x}", rng.next() >> 32))
        .collect();
    let map = c.read_map();
    let counts: Vec<usize> = c.nodes.iter().map(|n| map.count(&n.0)).collect();
    assert!(
        counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) <= 1,
        "slots per node {counts:?}"
    );

    // Two items per tenant through the proxy, read back through it, and found directly on
    // exactly the node the map names.
    let mut items: std::collections::BTreeMap<String, usize> =
        c.nodes.iter().map(|n| (n.0.clone(), 0)).collect();
    let mut place = |shard_key: &str, direct: &dyn Fn(&str) -> u16| {
        let owner = map.get(slot::of_key(shard_key.as_bytes())).to_string();
        for (name, _, _) in &c.nodes {
            let status = direct(&c.node_addr(name));
            assert_eq!(
                status == 200,
                *name == owner,
                "{shard_key} on {name}: {status}"
            );
        }
        *items.entry(owner).or_default() += 2;
    };
    for (id, key) in &flash_tenants {
        for k in ["a", "b"] {
            let r = flash(&c.proxy, "POST", "add", (id, key), k, "{\"n\":1}");
            assert_eq!(r.status, 201, "flash add {id}: {}", r.head);
            assert_eq!(flash(&c.proxy, "GET", "get", (id, key), k, "").status, 200);
        }
        place(id, &|addr| {
            flash(addr, "GET", "get", (id, key), "b", "").status
        });
    }
    for p in &projects {
        for k in ["a", "b"] {
            assert_eq!(iron_put(&c.proxy, p, k, "v").status, 200);
            assert_eq!(iron_get(&c.proxy, p, k).status, 200);
        }
        place(p, &|addr| iron_get(addr, p, "b").status);
    }
    for org in &orgs {
        let auth = format!("Bearer {}", akka_token(org));
        let h = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/octet-stream"),
        ];
        for k in ["a", "b"] {
            let r = http(&c.proxy, "POST", &format!("/c/{k}"), &h, "v");
            assert!(r.status < 300, "akka put {}: {}", r.status, r.body);
            assert_eq!(
                http(&c.proxy, "GET", &format!("/c/{k}"), &h, "").status,
                200
            );
        }
        place(org, &|addr| http(addr, "GET", "/c/b", &h, "").status);
    }
    let mean = items.values().sum::<usize>() as f64 / items.len() as f64;
    for (node, n) in &items {
        assert!(
            (*n as f64 - mean).abs() <= 0.25 * mean,
            "{node} holds {n} items, mean {mean}: {items:?}"
        );
    }
    eprintln!(
        "300 tenants x 2 items: slots per node {counts:?}, items per node {items:?} (mean {mean:.0}), in {:?}",
        started.elapsed()
    );

    // Stop node2: its Flash tenants get 503 in Flash's shape, the others go on.
    let port = c.nodes[1].1;
    c.nodes[1].2 = None;
    std::thread::sleep(Duration::from_millis(1200));
    let (mut down, mut up) = (0, 0);
    let mut id_tails = std::collections::HashSet::new();
    for (i, (id, key)) in flash_tenants.iter().enumerate() {
        let r = flash(&c.proxy, "POST", "add", (id, key), &format!("c{i}"), "{}");
        if map.get(slot::of_key(id.as_bytes())) == "node2" {
            assert_eq!(r.status, 503, "{}", r.head);
            assert_eq!(r.header("Success").as_deref(), Some("false"), "{}", r.head);
            assert_eq!(r.header("Count").as_deref(), Some("0"));
            let request_id = r.header("RequestId").unwrap_or_default();
            let hex = request_id.strip_prefix("v1:req_").unwrap_or_default();
            // Lower case, as the nodes write it (its tail was upper case: found from outside).
            assert!(
                hex.len() == 40
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{request_id}"
            );
            // The DataKey is echoed, as by the nodes (found from outside).
            assert_eq!(r.header("DataKey"), Some(format!("c{i}")), "{}", r.head);
            // Its last 8 digits are random too (they were always 0: found from outside).
            id_tails.insert(hex[32..].to_string());
            assert!(r
                .header("ResponseMessage")
                .is_some_and(|m| m.contains("unavailable")));
            assert!(r.header("Retry-After").is_some());
            down += 1;
        } else {
            assert_eq!(r.status, 201, "{}", r.head);
            up += 1;
        }
    }
    assert!(down > 0 && up > 0);
    assert!(
        down < 2 || id_tails.len() > 1 || !id_tails.contains("00000000"),
        "{id_tails:?}"
    );
    // An Akka tenant on node2 gets the 503 with the CORS header the nodes send, so that a
    // browser can read it (found from outside).
    let org = orgs
        .iter()
        .find(|org| map.get(slot::of_key(org.as_bytes())) == "node2")
        .expect("an Akka tenant on node2");
    let auth = format!("Bearer {}", akka_token(org));
    let r = http(
        &c.proxy,
        "GET",
        "/c/a",
        &[("Authorization", auth.as_str())],
        "",
    );
    assert_eq!(r.status, 503, "{}", r.head);
    assert_eq!(
        r.header("Access-Control-Allow-Origin").as_deref(),
        Some("*"),
        "{}",
        r.head
    );
    // A credential made while a node is down is made nowhere (found from outside: it stayed
    // on the nodes reached, and a re-run made a second one): the tenant check that comes
    // first does not reach node2, and nothing is made.
    let tenant = &flash_tenants_names[0];
    let cluster = ClusterFile::load(&c.file).expect("cluster file");
    let count = |node: usize| {
        cluster.nodes[node]
            .call("GET", &format!("/admin/credentials?tenant={tenant}"), None)
            .expect("credentials")
            .as_array()
            .map_or(0, Vec::len)
    };
    let before = (count(0), count(2));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args([
            "credential",
            "create",
            "--tenant",
            tenant,
            "--api",
            "iron",
            "--cluster",
            &file,
        ])
        .output()
        .expect("ttlcask");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("node2"), "{err}");
    assert!(err.contains("nothing was created"), "{err}");
    assert_eq!((count(0), count(2)), before, "{err}");
    for p in projects
        .iter()
        .filter(|p| map.get(slot::of_key(p.as_bytes())) != "node2")
    {
        assert_eq!(iron_put(&c.proxy, p, "c", "v").status, 200);
    }
    c.nodes[1].2 = Some(start_node(c.dir.path(), "node2", port));
    let stray = strays(&c);
    assert!(stray.is_empty(), "items off their slot's node: {stray:?}");
    std::thread::sleep(Duration::from_millis(800));
    for (id, key) in &flash_tenants {
        for k in ["a", "b"] {
            assert_eq!(flash(&c.proxy, "GET", "get", (id, key), k, "").status, 200);
        }
    }
    eprintln!(
        "node2 stopped: {down} Flash tenants got 503 in Flash's shape, {up} still written; nothing off its node; back with all its data, in {:?}",
        started.elapsed()
    );
}

/// An Akka JWT signed with the dev secret over `payload` exactly as given (so that a claim
/// name can be spelled with a JSON escape).
fn raw_akka_token(payload: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload);
    let message = format!("{head}.{body}");
    let key = jsonwebtoken::EncodingKey::from_secret(ttlcask::auth::DEV_AKKA_SECRET.as_bytes());
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .expect("sign");
    format!("{message}.{signature}")
}

/// Found from outside (fourteenth session): an Akka JWT whose payload spells the claim name
/// `"o\u0072g"` (valid JSON for `org`) went round-robin (HAProxy's `jwt_payload_query('$.org')`
/// finds no such key), while the node decoded the org and stored the write: one org's items
/// on several nodes. The proxy now tells the node the slot it routed by, and the node refuses
/// (400) a request whose slot it reads otherwise; a node reached directly is unchanged.
#[test]
fn an_akka_token_whose_org_the_proxy_cannot_read_is_refused() {
    let Some(c) = start() else { return };
    let iss = "https://session.firebase.google.com/akka-cache";
    let escaped = format!(
        "Bearer {}",
        raw_akka_token(&format!(r#"{{"iss":"{iss}","o\u0072g":"zorg"}}"#))
    );
    let plain = format!(
        "Bearer {}",
        raw_akka_token(&format!(r#"{{"iss":"{iss}","org":"zorg"}}"#))
    );
    let put = |addr: &str, auth: &str, key: &str, extra: &[(&str, &str)]| {
        let mut h = vec![
            ("Authorization", auth),
            ("Content-Type", "application/octet-stream"),
        ];
        h.extend_from_slice(extra);
        http(addr, "POST", &format!("/cA/{key}"), &h, "v")
    };
    let held_by = |key: &str| -> Vec<String> {
        c.nodes
            .iter()
            .filter(|(name, _, _)| {
                let h = [("Authorization", plain.as_str())];
                http(&c.node_addr(name), "GET", &format!("/cA/{key}"), &h, "").status == 200
            })
            .map(|(name, _, _)| name.clone())
            .collect()
    };
    for i in 0..6 {
        let key = format!("k{i}");
        let r = put(&c.proxy, &escaped, &key, &[]);
        assert_eq!(r.status, 400, "escaped org through the proxy: {}", r.body);
        assert!(r.body.contains("\"org\""), "{}", r.body);
        // A client's own slot header is replaced by the proxy's.
        let s = slot::of_key(b"zorg").to_string();
        let r = put(&c.proxy, &escaped, &key, &[("X-Ttlcask-Slot", &s)]);
        assert_eq!(r.status, 400, "with a forged slot header: {}", r.body);
        assert_eq!(held_by(&key), Vec::<String>::new(), "{key} was stored");
    }
    // The plain spelling goes to the org's node; Flash and Iron requests are not refused.
    let r = put(&c.proxy, &plain, "ok", &[]);
    assert!(r.status < 300, "{}: {}", r.status, r.body);
    let owner = c.read_map().get(slot::of_key(b"zorg")).to_string();
    assert_eq!(held_by("ok"), vec![owner]);
    assert_eq!(iron_put(&c.proxy, &project(1), "k", "v").status, 200);
    let r = flash(
        &c.proxy,
        "GET",
        "get",
        (
            ttlcask::auth::DEV_FLASH_CLIENT_ID,
            ttlcask::auth::DEV_FLASH_API_KEY,
        ),
        "missing",
        "",
    );
    assert_eq!(r.status, 404, "{}", r.head);
    // A node reached directly (as a single node is) takes the escaped spelling as before.
    let r = put(&c.node_addr("node1"), &escaped, "direct", &[]);
    assert!(r.status < 300, "{}: {}", r.status, r.body);
}
