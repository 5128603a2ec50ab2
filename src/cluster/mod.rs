//! `ttlcask cluster`: several ordinary nodes behind HAProxy (DESIGN.md "More than one
//! machine"). Nothing here runs inside a node: these are operator commands that read a
//! cluster file, talk to each node's admin API and to HAProxy's runtime socket, and write
//! HAProxy's configuration and slot maps.
//!
//! - [`file`]: the cluster file (TOML) and its nodes.
//! - [`maps`]: the slot → backend maps HAProxy reads (one for reads, one for writes).
//! - [`haproxy`]: the generated HAProxy configuration.
//! - [`runtime`]: `set map` through HAProxy's stats socket.
//! - [`moving`]: `cluster move`, online and re-runnable.
//! - [`status`]: `cluster status`.
//! - [`registry`]: tenants and credentials on every node at once.

pub mod file;
pub mod haproxy;
pub mod maps;
pub mod moving;
pub mod registry;
pub mod runtime;
pub mod status;

pub use file::{ClusterFile, Node};

/// Name of the backend that answers 503 for paused slots.
pub const PAUSED: &str = "paused";
/// Name of the backend for requests that carry no shard key (they get 401 or `/version`).
pub const ANY: &str = "any";
