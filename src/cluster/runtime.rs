//! HAProxy's runtime API over its stats socket (a unix socket, `level admin`): `set map`
//! changes a slot's backend at once, with no reload. Commands go in batches separated by
//! `;` on one line; HAProxy answers nothing for a `set map` that worked, so any text back is
//! an error.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Commands per connection (the line must fit HAProxy's buffer).
const BATCH: usize = 64;

/// Sends `commands` and returns what HAProxy answered.
///
/// # Errors
/// The socket cannot be reached.
pub fn send(socket: &Path, command: &str) -> Result<String, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach HAProxy's runtime socket {}: {e}",
            socket.display()
        )
    })?;
    let io = |e: std::io::Error| format!("HAProxy runtime socket {}: {e}", socket.display());
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(io)?;
    let mut out = String::new();
    stream.read_to_string(&mut out).map_err(io)?;
    Ok(out)
}

/// Points each of `slots` at `backend` in the map HAProxy loaded from `map`.
///
/// # Errors
/// The socket cannot be reached, or HAProxy refused a command (its answer).
pub fn set_map(socket: &Path, map: &Path, slots: &[u16], backend: &str) -> Result<(), String> {
    for chunk in slots.chunks(BATCH) {
        let line: Vec<String> = chunk
            .iter()
            .map(|s| format!("set map {} {s} {backend}", map.display()))
            .collect();
        let answer = send(socket, &line.join(";"))?;
        if !answer.trim().is_empty() {
            return Err(format!(
                "HAProxy refused `set map {}`: {}",
                map.display(),
                answer.trim()
            ));
        }
    }
    Ok(())
}
