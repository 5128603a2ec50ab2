//! The cluster file: where the nodes are, their admin tokens, and HAProxy's files.
//!
//! ```toml
//! bind = "0.0.0.0:8080"                        # HAProxy's frontend
//! haproxy_socket = "/run/haproxy/ttlcask.sock" # runtime API (stats socket, level admin)
//! read_map = "/etc/haproxy/ttlcask-read.map"
//! write_map = "/etc/haproxy/ttlcask-write.map"
//! check_interval_ms = 1000                     # health checks of /healthz
//!
//! [[nodes]]
//! name = "node1"
//! address = "10.0.0.1:9001"
//! admin_token_file = "/etc/ttlcask/node1.token" # or admin_token = "…"
//! ```
//! Relative paths are read from the cluster file's directory. README "The cluster file"
//! documents every key with its default (a unit test holds it to the keys accepted here).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::admin_client::AdminClient;

/// A parsed cluster file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// HAProxy frontend address.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// HAProxy's stats socket (runtime API, `level admin`).
    pub haproxy_socket: PathBuf,
    /// Slot → backend map for reads.
    pub read_map: PathBuf,
    /// Slot → backend map for writes.
    pub write_map: PathBuf,
    /// Milliseconds between health checks.
    #[serde(default = "default_check_interval")]
    pub check_interval_ms: u64,
    /// Seconds a client is told to wait (`Retry-After`) on a paused or down slot.
    #[serde(default = "default_retry_after")]
    pub retry_after_s: u32,
    /// `Access-Control-Allow-Origin` of the proxy's own Akka errors (the nodes' `[akka]
    /// cors_allow_origin`; empty: none).
    #[serde(default = "default_cors_origin")]
    pub akka_cors_allow_origin: String,
    /// The nodes, in order (the initial maps spread slots over them in this order).
    pub nodes: Vec<Node>,
}

/// One ttlcask node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Backend name in HAProxy and the maps (`A-Z a-z 0-9 _ -`).
    pub name: String,
    /// `HOST:PORT` of its listener.
    pub address: String,
    /// Its admin token.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// A file holding its admin token (`<data-dir>/admin.token`).
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
}

fn default_bind() -> String {
    "0.0.0.0:8080".into()
}
fn default_check_interval() -> u64 {
    1000
}
fn default_retry_after() -> u32 {
    1
}
fn default_cors_origin() -> String {
    "*".into()
}

impl ClusterFile {
    /// Reads and checks a cluster file.
    ///
    /// # Errors
    /// A message naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read cluster file {}: {e}", path.display()))?;
        let mut file: Self = toml::from_str(&text)
            .map_err(|e| format!("invalid cluster file {}: {e}", path.display()))?;
        // Absolute, so that the paths pasted into the HAProxy config (which HAProxy reads
        // from its own working directory) and compared below are too: `cluster haproxy
        // cluster.toml` printed `stats socket h.sock`, which HAProxy refused (found from
        // outside).
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let base = absolute.parent().unwrap_or(Path::new("."));
        for p in [
            &mut file.haproxy_socket,
            &mut file.read_map,
            &mut file.write_map,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for node in &mut file.nodes {
            if let Some(p) = node.admin_token_file.as_mut().filter(|p| p.is_relative()) {
                *p = base.join(&*p);
            }
        }
        file.check()
            .map_err(|e| format!("cluster file {}: {e}", path.display()))?;
        Ok(file)
    }

    /// Refuses what would make a broken or unsafe HAProxy config (each found from outside,
    /// twelfth session, where `cluster haproxy` printed it with exit 0): a port that is not a
    /// number, `check_interval_ms = 0`, one file for both maps (a move's write pause would
    /// pause reads too), two nodes at one address; and text that would break the config's
    /// syntax (spaces, `#`, control characters) where it is pasted in.
    fn check(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("no [[nodes]]".into());
        }
        // HAProxy's `:PORT` and `*:PORT` listen on every address; a bind without a port
        // was printed into a config HAProxy refused (found from outside).
        let bind = match self.bind.strip_prefix(':') {
            Some(port) => format!("*:{port}"),
            None => self.bind.clone(),
        };
        check_address("bind", &bind)?;
        if self.check_interval_ms == 0 {
            return Err(
                "check_interval_ms must be at least 1 (HAProxy refuses `inter 0ms`)".into(),
            );
        }
        for (key, p) in [
            ("haproxy_socket", &self.haproxy_socket),
            ("read_map", &self.read_map),
            ("write_map", &self.write_map),
        ] {
            let text = p.to_string_lossy();
            if text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "#,()".contains(c))
            {
                return Err(format!(
                    "{key} {text:?}: a path pasted into the HAProxy config cannot hold spaces, control characters, #, comma or parentheses"
                ));
            }
        }
        // Pasted into a quoted header value, where `%` starts an expression.
        crate::config::check_cors_origin("akka_cors_allow_origin", &self.akka_cors_allow_origin)?;
        if same_file(&self.read_map, &self.write_map) {
            return Err(format!(
                "read_map and write_map are the same file ({}): a move pauses the write map while reads go on through the read map, so they must be two files",
                self.read_map.display()
            ));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let valid = !n.name.is_empty()
                && n.name.len() <= 64
                && n.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid || n.name == super::PAUSED || n.name == super::ANY {
                return Err(format!(
                    "invalid node name {:?}: use A-Z a-z 0-9 _ - (not {} or {})",
                    n.name,
                    super::PAUSED,
                    super::ANY
                ));
            }
            if self.nodes[..i].iter().any(|m| m.name == n.name) {
                return Err(format!("node {:?} is listed twice", n.name));
            }
            check_address(&format!("node {:?}: address", n.name), &n.address)?;
            if let Some(m) = self.nodes[..i]
                .iter()
                .find(|m| same_server_address(&m.address, &n.address))
            {
                return Err(format!(
                    "nodes {:?} ({}) and {:?} ({}) have the same address: each node is its own server (a slot moved between them would be dropped from both)",
                    m.name, m.address, n.name, n.address
                ));
            }
            if n.admin_token.is_some() == n.admin_token_file.is_some() {
                return Err(format!(
                    "node {:?}: give admin_token or admin_token_file (one of them)",
                    n.name
                ));
            }
        }
        Ok(())
    }

    /// A node by name.
    ///
    /// # Errors
    /// No such node (the message lists them).
    pub fn node(&self, name: &str) -> Result<&Node, String> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
            let names: Vec<_> = self.nodes.iter().map(|n| n.name.as_str()).collect();
            format!(
                "no node {name:?} in the cluster file (nodes: {})",
                names.join(", ")
            )
        })
    }
}

/// Whether `a` and `b` name one file: the same path once `.` and `..` are read, or, where
/// the directory exists, the same file once links are followed (`r.map` and `./r.map` were
/// taken for two: found from outside).
fn same_file(a: &Path, b: &Path) -> bool {
    let resolved = |p: &Path| -> Option<PathBuf> {
        if let Ok(p) = p.canonicalize() {
            return Some(p);
        }
        Some(p.parent()?.canonicalize().ok()?.join(p.file_name()?))
    };
    a == b || matches!((resolved(a), resolved(b)), (Some(x), Some(y)) if x == y)
}

/// The socket addresses `address` (checked by [`check_address`]) names without a name
/// lookup: an IP address, or `localhost` (both loopback addresses); `None` for another name.
fn literal_addresses(address: &str) -> Option<Vec<std::net::SocketAddr>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ips = if host.eq_ignore_ascii_case("localhost") {
        vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
    } else {
        vec![host.parse::<IpAddr>().ok()?.to_canonical()]
    };
    Some(
        ips.into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
    )
}

/// Whether two node addresses reach one server as far as the file can tell: the same text,
/// or addresses that share a socket address (`127.0.0.1:P` and `localhost:P` passed the
/// check, and a slot moved "between" them was dropped: found from outside; `cluster move`
/// also asks each server who it is).
fn same_server_address(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || matches!(
            (literal_addresses(a), literal_addresses(b)),
            (Some(x), Some(y)) if x.iter().any(|s| y.contains(s))
        )
}

/// `HOST:PORT` (`[v6]:PORT` too) with a port of 1 to 65535.
fn check_address(what: &str, address: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "{what} {address:?}: {why} (expected HOST:PORT, e.g. 10.0.0.1:9001)"
        ))
    };
    if address
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return bad("no spaces, control characters or # here");
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return bad("no port");
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) || !matches!(port.parse::<u16>(), Ok(1..)) {
        return bad("the port must be a number from 1 to 65535");
    }
    if host.is_empty() {
        return bad("no host");
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return bad("an IPv6 address goes in brackets");
    }
    Ok(())
}

impl Node {
    /// An admin client of this node.
    ///
    /// # Errors
    /// The token file cannot be read.
    pub fn client(&self) -> Result<AdminClient, String> {
        let token = match (&self.admin_token, &self.admin_token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(p)) => std::fs::read_to_string(p)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("node {}: cannot read {}: {e}", self.name, p.display()))?,
            (None, None) => return Err(format!("node {}: no admin token", self.name)),
        };
        Ok(AdminClient::new(&self.address, &token))
    }

    /// One admin call that must answer 2xx: its JSON body.
    ///
    /// # Errors
    /// Unreachable, or the node's refusal, prefixed with the node's name.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let (status, reply) = self
            .client()?
            .call(method, path, body)
            .map_err(|e| format!("node {} ({}): {e}", self.name, self.address))?;
        if (200..300).contains(&status) {
            return Ok(reply);
        }
        let msg = reply.get("error").and_then(|e| e.as_str()).unwrap_or("");
        Err(format!(
            "node {} ({}) answered {status} to {method} {path}: {msg}",
            self.name, self.address
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterFile;

    /// The keys serde accepts where `table` is (its `unknown field` error lists them).
    fn accepted_keys(text: &str) -> Vec<String> {
        let error = toml::from_str::<ClusterFile>(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let listed = error.split("expected one of").nth(1).unwrap_or_default();
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// Found from outside (fourteenth session): the README never said what a cluster file
    /// holds (the tester had the binary, not `deploy/cluster/cluster.toml`). Every key
    /// accepted, top level and in `[[nodes]]`, has a row in README's table, and the README's
    /// example loads.
    #[test]
    fn the_readme_documents_every_key_of_the_cluster_file() -> Result<(), String> {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### The cluster file")
            .nth(1)
            .and_then(|s| s.split("\n### ").next())
            .ok_or("README has no \"### The cluster file\" section")?;
        let top = accepted_keys("no_such_key = 1");
        let node = accepted_keys(
            "haproxy_socket = \"s\"\nread_map = \"r\"\nwrite_map = \"w\"\n[[nodes]]\nno_such_key = 1",
        );
        assert!(top.contains(&"retry_after_s".to_string()), "{top:?}");
        assert!(node.contains(&"admin_token_file".to_string()), "{node:?}");
        for key in top.iter().chain(&node) {
            let row = if key == "nodes" {
                "| `[[nodes]]` |".to_string()
            } else {
                format!("| `{key}`")
            };
            assert!(
                section.lines().any(|l| l.starts_with(&row)
                    || (l.starts_with("| `") && l.contains(&format!("`{key}`")))),
                "README's cluster file table has no row for {key}"
            );
        }
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|s| s.split("```").next())
            .ok_or("no toml example")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, example).map_err(|e| e.to_string())?;
        let file = ClusterFile::load(&path)?;
        assert_eq!(file.nodes.len(), 2);
        Ok(())
    }

    const NODES: &str =
        "[[nodes]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\nadmin_token = \"t\"\n";

    /// Loads `head` + two nodes (the second at `address`) from a file in a temp dir.
    fn load(head: &str, address: &str) -> Result<ClusterFile, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("cluster.toml");
        let text = format!(
            "haproxy_socket = \"s.sock\"\n{head}\n{NODES}[[nodes]]\nname = \"b\"\naddress = \"{address}\"\nadmin_token = \"t\"\n"
        );
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        ClusterFile::load(&path)
    }

    const MAPS: &str = "read_map = \"read.map\"\nwrite_map = \"write.map\"";

    /// Found from outside (twelfth session): each of these gave a config HAProxy refuses
    /// or an unsafe cluster, and `cluster haproxy` printed it with exit 0.
    #[test]
    fn files_that_make_a_broken_or_unsafe_config_are_refused() {
        assert!(load(MAPS, "127.0.0.1:9002").is_ok());
        assert!(load(MAPS, "[::1]:9002").is_ok());
        assert!(load(MAPS, "node-b.example:9002").is_ok());
        assert!(load(MAPS, "localhost:9002").is_ok(), "another port");
        for origin in ["", "*", "https://app.example.com:8443"] {
            let head = format!("{MAPS}\nakka_cors_allow_origin = \"{origin}\"");
            assert!(load(&head, "127.0.0.1:9002").is_ok(), "{origin}");
        }
        for bind in [":8080", "*:8080", "[::]:8080", "10.0.0.1:80"] {
            let head = format!("{MAPS}\nbind = \"{bind}\"");
            assert!(load(&head, "127.0.0.1:9002").is_ok(), "{bind}");
        }
        let refused = [
            (
                MAPS.to_string(),
                "localhost:notaport",
                "port must be a number",
            ),
            (MAPS.to_string(), "localhost:0", "port must be a number"),
            (MAPS.to_string(), "localhost:65536", "port must be a number"),
            (MAPS.to_string(), "localhost", "no port"),
            (MAPS.to_string(), ":9002", "no host"),
            (MAPS.to_string(), "::1:9002", "IPv6"),
            (MAPS.to_string(), "127.0.0.1:9002 backup", "no spaces"),
            (MAPS.to_string(), "127.0.0.1:9001", "same address"),
            (MAPS.to_string(), "localhost:9001", "same address"),
            (MAPS.to_string(), "LOCALHOST:9001", "same address"),
            (MAPS.to_string(), "[::ffff:127.0.0.1]:9001", "same address"),
            (
                format!("{MAPS}\nbind = \"nonsense\""),
                "127.0.0.1:9002",
                "bind",
            ),
            (
                format!("{MAPS}\nbind = \":http\""),
                "127.0.0.1:9002",
                "bind",
            ),
            (
                format!("{MAPS}\nakka_cors_allow_origin = \"https://a.example %[env(X)]\""),
                "127.0.0.1:9002",
                "akka_cors_allow_origin",
            ),
            (
                format!("{MAPS}\nakka_cors_allow_origin = \"x\\\"\""),
                "127.0.0.1:9002",
                "akka_cors_allow_origin",
            ),
            (
                format!("{MAPS}\ncheck_interval_ms = 0"),
                "127.0.0.1:9002",
                "check_interval_ms",
            ),
            (
                "read_map = \"m.map\"\nwrite_map = \"./m.map\"".into(),
                "127.0.0.1:9002",
                "same file",
            ),
            (
                "read_map = \"my read.map\"\nwrite_map = \"write.map\"".into(),
                "127.0.0.1:9002",
                "read_map",
            ),
            (
                format!("{MAPS}\nbind = \":80 #\""),
                "127.0.0.1:9002",
                "bind",
            ),
        ];
        for (head, address, says) in refused {
            match load(&head, address) {
                Ok(_) => panic!("accepted {head:?} with address {address:?}"),
                Err(e) => assert!(e.contains(says), "{head:?} {address:?}: {e}"),
            }
        }
    }
}
