//! `ttlcask`: one server speaking the Flash Cache, IronCache and Akka Cache HTTP APIs over
//! the `ttlcask-engine` store.
//!
//! [`server::run`] is the whole server; `main.rs` parses the command line and calls
//! [`cli::main`]. A request goes: [`server`] (accept, connection cap, hyper HTTP/1) →
//! [`router`] (which API) → [`flash`] / [`iron`] / [`akka`] (auth, parse, validate) →
//! the engine on the blocking pool ([`http::blocking`]) → a response in that API's shape.
//! [`faults`] holds what every API shares when the disk misbehaves.

// Handlers return `Result<_, Resp>` so that `?` can carry a finished error response out of
// validation; the response is built once per request, so boxing it would only add noise.
#![allow(clippy::result_large_err)]
#![deny(clippy::unwrap_used)]

pub mod admin;
pub mod admin_client;
pub mod akka;
pub mod atomic_file;
pub mod auth;
pub mod body;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod faults;
pub mod flash;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod head_timeout;
pub mod http;
pub mod iron;
pub mod linger;
pub mod maintenance;
pub mod maintenance_cli;
pub mod metrics;
pub mod namespace;
pub mod rlimit;
pub mod router;
pub mod routes;
pub mod server;
pub mod slot;
pub mod status;
pub mod time;

pub use config::Config;
pub use server::{run, AppState, ServerError};
