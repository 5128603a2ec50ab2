//! Shared by the cluster tests (`cluster.rs`, `cluster_moves.rs`): three `ttlcask serve
//! --dev` nodes behind a real HAProxy on loopback, driven by `ttlcask cluster`, and the
//! clients the tests speak through.
#![allow(dead_code, reason = "each test binary uses part of it")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ttlcask::auth::{DEV_AKKA_SECRET, DEV_IRON_TOKEN};
use ttlcask::cluster::{maps::SlotMap, ClusterFile};
use ttlcask::slot;

const ISSUER: &str = "https://session.firebase.google.com/akka-cache";

pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// HAProxy's master: SIGTERM first, so that it stops its workers too, then SIGKILL.
pub struct HaProxy(pub Child);
impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: String,
}
impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let fail = |e: String| Resp {
        status: 0,
        head: String::new(),
        body: e,
    };
    let Ok(mut s) = TcpStream::connect(addr) else {
        return fail("connect".into());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: ttlcask\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    if s.write_all(req.as_bytes()).is_err() {
        return fail("write".into());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Resp {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

pub fn iron_auth() -> String {
    format!("OAuth {DEV_IRON_TOKEN}")
}

pub fn project(i: usize) -> String {
    format!("{:024x}", 0x5eed_0000_u64 + i as u64 * 7919)
}

pub fn akka_token(org: &str) -> String {
    // No `jti`: a token of the org's own issuer, not a ttlcask credential.
    let claims = serde_json::json!({ "iss": ISSUER, "org": org });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(DEV_AKKA_SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<(String, u16, Option<Proc>)>,
    pub proxy: String,
    pub haproxy: HaProxy,
    pub file: PathBuf,
}

pub fn start_node(dir: &Path, name: &str, port: u16) -> Proc {
    let data = dir.join(name);
    let child = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args([
            "serve",
            "--dev",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env("TTLCASK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node");
    let started = Instant::now();
    while http(&format!("127.0.0.1:{port}"), "GET", "/healthz", &[], "").status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "node {name} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Proc(child)
}

pub fn start() -> Option<Cluster> {
    if Command::new("haproxy").arg("-v").output().is_err() {
        eprintln!(
            "\n!!! SKIPPED tests/cluster.rs: no `haproxy` binary (apt-get install haproxy) !!!\n"
        );
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = Vec::new();
    let mut toml = String::new();
    let proxy_port = free_port();
    toml.push_str(&format!(
        "bind = \"127.0.0.1:{proxy_port}\"\nhaproxy_socket = \"haproxy.sock\"\nread_map = \"read.map\"\nwrite_map = \"write.map\"\ncheck_interval_ms = 300\n"
    ));
    for i in 1..=3 {
        let name = format!("node{i}");
        let port = free_port();
        let proc = start_node(dir.path(), &name, port);
        toml.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\nadmin_token_file = \"{name}/admin.token\"\n"
        ));
        nodes.push((name, port, Some(proc)));
    }
    let file = dir.path().join("cluster.toml");
    std::fs::write(&file, toml).expect("write cluster file");
    let out = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(["cluster", "haproxy"])
        .arg(&file)
        .output()
        .expect("cluster haproxy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, &out.stdout).expect("write cfg");
    // Master-worker mode (`-W`), so that SIGUSR2 reloads it as systemd's `reload` does.
    let haproxy = HaProxy(
        Command::new("haproxy")
            .args(["-W", "-db"])
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn haproxy"),
    );
    let proxy = format!("127.0.0.1:{proxy_port}");
    let started = Instant::now();
    while http(&proxy, "GET", "/version", &[], "").status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "haproxy did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Cluster {
        dir,
        nodes,
        proxy,
        haproxy,
        file,
    })
}

impl Cluster {
    /// Adds a node as an operator scales out: starts it (empty), appends it to the cluster
    /// file, writes HAProxy's config again (the maps are kept) and reloads HAProxy (SIGUSR2
    /// to the master), waiting until the runtime API knows the new backend.
    pub fn add_node(&mut self, name: &str) {
        let port = free_port();
        let proc = start_node(self.dir.path(), name, port);
        let mut toml = std::fs::read_to_string(&self.file).expect("cluster file");
        toml.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\nadmin_token_file = \"{name}/admin.token\"\n"
        ));
        std::fs::write(&self.file, toml).expect("write cluster file");
        self.nodes.push((name.to_string(), port, Some(proc)));
        let (ok, cfg, err) = cluster_cmd(self, &["haproxy"]);
        assert!(ok, "cluster haproxy: {err}");
        std::fs::write(self.dir.path().join("haproxy.cfg"), cfg).expect("write cfg");
        let status = Command::new("kill")
            .args(["-USR2", &self.haproxy.0.id().to_string()])
            .status()
            .expect("kill -USR2");
        assert!(status.success());
        let socket = ClusterFile::load(&self.file)
            .expect("cluster file")
            .haproxy_socket;
        let started = Instant::now();
        while !ttlcask::cluster::runtime::send(&socket, "show backend")
            .unwrap_or_default()
            .lines()
            .any(|l| l.trim() == name)
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "haproxy did not reload with {name}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    pub fn node_addr(&self, name: &str) -> String {
        let port = self.nodes.iter().find(|n| n.0 == name).map_or(0, |n| n.1);
        format!("127.0.0.1:{port}")
    }
    pub fn read_map(&self) -> SlotMap {
        SlotMap::read(&self.dir.path().join("read.map")).expect("read map")
    }
}

pub fn iron_put(addr: &str, proj: &str, key: &str, value: &str) -> Resp {
    http(
        addr,
        "PUT",
        &format!("/1/projects/{proj}/caches/c/items/{key}"),
        &[
            ("Authorization", &iron_auth()),
            ("Content-Type", "application/json"),
        ],
        &format!("{{\"value\":\"{value}\"}}"),
    )
}

pub fn iron_get(addr: &str, proj: &str, key: &str) -> Resp {
    http(
        addr,
        "GET",
        &format!("/1/projects/{proj}/caches/c/items/{key}"),
        &[("Authorization", &iron_auth())],
        "",
    )
}

pub fn flash(
    addr: &str,
    method: &str,
    op: &str,
    who: (&str, &str),
    data_key: &str,
    body: &str,
) -> Resp {
    http(
        addr,
        method,
        &format!("/v1/cache/{op}"),
        &[
            ("ClientId", who.0),
            ("Authorization", who.1),
            ("DataKey", data_key),
        ],
        body,
    )
}

/// A fixed pseudo-random sequence (xorshift64*), so names and kill points are the same
/// every run.
pub struct Seeded(pub u64);
impl Seeded {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The items each node holds in slots its read map does not give it, asked directly on the
/// node (`/admin/export?slot=…`, without registry records): must be none.
pub fn strays(c: &Cluster) -> Vec<String> {
    let cluster = ClusterFile::load(&c.file).expect("cluster file");
    let map = c.read_map();
    let mut out = Vec::new();
    for node in &cluster.nodes {
        let foreign: Vec<u16> = (0..slot::SLOTS)
            .filter(|&s| map.get(s) != node.name)
            .collect();
        for r in ttlcask::cluster::moving::ranges(&foreign) {
            let filter = ttlcask::maintenance::ExportFilter {
                tenant: None,
                slots: Some(r.clone()),
                registry: Some(false),
            };
            let mut lines = Vec::new();
            node.client()
                .and_then(|cl| cl.export(&filter, &mut lines, |_| {}))
                .unwrap_or_else(|e| panic!("export from {}: {e}", node.name));
            for line in String::from_utf8_lossy(&lines).lines() {
                out.push(format!("{} slots {r:?}: {line}", node.name));
            }
        }
    }
    out
}

pub fn cli(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(args)
        .output()
        .expect("ttlcask");
    assert!(
        out.status.success(),
        "ttlcask {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from ttlcask")
}

/// Moves `slots` (all node1's) to `to` while a writer writes to Iron projects in them
/// (retrying on 503) and a reader reads them (never seeing 503). With `kill_seed`, a first
/// `cluster move` is killed at a seeded step (after 0 to all of its progress lines, plus a
/// seeded delay) and the command is run again. Afterwards every acknowledged write reads
/// back through the proxy with its `cas`, node1 holds none of the moved projects' items,
/// and no node holds an item of a slot it does not own.
pub fn move_under_load(c: &Cluster, slots: RangeInclusive<u16>, to: &str, kill_seed: Option<u64>) {
    let started = Instant::now();
    let moved: Vec<usize> = (0..4000)
        .filter(|&i| slots.contains(&slot::of_key(project(i).as_bytes())))
        .take(64)
        .collect();
    assert!(moved.len() > 10);
    let map = c.read_map();
    assert!(slots.clone().all(|s| map.get(s) == "node1"));
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, String, u64)>>> = Arc::default();
    let tag = format!("{}-", slots.start());
    let writer = {
        let (stop, acked, proxy, moved) =
            (stop.clone(), acked.clone(), c.proxy.clone(), moved.clone());
        std::thread::spawn(move || {
            let (mut n, mut refused) = (0u64, 0u64);
            let until = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                let p = project(moved[n as usize % moved.len()]);
                let key = format!("w{tag}{n}");
                let r = iron_put(&proxy, &p, &key, &key);
                if r.status == 200 {
                    let got = iron_get(&proxy, &p, &key);
                    let cas = serde_json::from_str::<serde_json::Value>(&got.body)
                        .ok()
                        .and_then(|v| v["cas"].as_u64())
                        .unwrap_or(0);
                    acked.lock().expect("lock").push((p, key, cas));
                    n += 1;
                } else {
                    assert_eq!(r.status, 503, "writer: {}", r.body);
                    refused += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            refused
        })
    };
    let reader = {
        let (stop, proxy, moved) = (stop.clone(), c.proxy.clone(), moved.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            let until = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                let r = iron_get(&proxy, &project(moved[reads % moved.len()]), "k");
                assert_ne!(r.status, 503, "a read saw 503 during the move");
                reads += 1;
            }
            reads
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let range = format!("{}..{}", slots.start(), slots.end());
    let move_cmd = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ttlcask"));
        cmd.args(["cluster", "move"])
            .arg(&c.file)
            .args(["--slots", &range, "--to", to]);
        cmd
    };
    let mut killed_at = String::from("not killed");
    if let Some(seed) = kill_seed {
        let mut rng = Seeded(seed | 1);
        // pausing, dropping on the target, fencing, copying, switching, and a drop on each
        // of the two other nodes.
        let steps = 7;
        let after = rng.next() % (steps + 1);
        let delay = Duration::from_millis(rng.next() % 40);
        let mut child = move_cmd()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("move");
        let mut seen = Vec::new();
        if let Some(err) = child.stderr.take() {
            let mut lines = std::io::BufRead::lines(std::io::BufReader::new(err));
            while (seen.len() as u64) < after {
                match lines.next() {
                    Some(Ok(l)) => seen.push(l),
                    _ => break,
                }
            }
            std::thread::sleep(delay);
            let _ = child.kill();
            let _ = child.wait();
        }
        let finished = child.wait().map(|s| s.success()).unwrap_or(false);
        killed_at = format!(
            "killed {delay:?} after {} progress lines (seed {seed:#x}: {:?}){}",
            seen.len(),
            seen.last()
                .map(|l| l.trim_start_matches("ttlcask: cluster move: ")),
            if finished {
                ", had already finished"
            } else {
                ""
            }
        );
    }
    let out = move_cmd().output().expect("move");
    assert!(
        out.status.success(),
        "move: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let refused = writer.join().expect("writer");
    let reads = reader.join().expect("reader");
    let acked = acked.lock().expect("lock").clone();
    assert!(!acked.is_empty());
    for (p, key, cas) in &acked {
        let r = iron_get(&c.proxy, p, key);
        assert_eq!(r.status, 200, "acknowledged {p}/{key} lost");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!(v["cas"].as_u64(), Some(*cas));
        assert_eq!(
            iron_get(&c.node_addr("node1"), p, key).status,
            404,
            "old node kept {p}/{key}"
        );
    }
    for &i in &moved {
        assert_eq!(
            iron_get(&c.node_addr("node1"), &project(i), "k").status,
            404
        );
    }
    let map = c.read_map();
    assert!(slots.clone().all(|s| map.get(s) == to));
    let stray = strays(c);
    assert!(stray.is_empty(), "items off their slot's node: {stray:?}");
    eprintln!(
        "move {range} to {to} ({killed_at}): {} acknowledged writes ({refused} paused 503s retried), {reads} reads without 503, nothing off its node, in {:?}",
        acked.len(),
        started.elapsed()
    );
}

pub fn cluster_move(c: &Cluster, slots: &str, to: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .args(["cluster", "move"])
        .arg(&c.file)
        .args(["--slots", slots, "--to", to])
        .output()
        .expect("move");
    assert!(
        out.status.success(),
        "move {slots} to {to}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("move report")
}

/// Runs `ttlcask cluster <args>` on the cluster file: (exit code 0?, stdout, stderr).
pub fn cluster_cmd(c: &Cluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ttlcask"))
        .arg("cluster")
        .arg(args[0])
        .arg(&c.file)
        .args(&args[1..])
        .output()
        .expect("ttlcask cluster");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
