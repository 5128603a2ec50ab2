//! The client side of the admin endpoint, as the CLI (and later `ttlcask cluster`) uses it:
//! blocking HTTP/1.1 over one `TcpStream` per call (`Connection: close`), JSON calls, an
//! export streamed into a writer, and an import streamed from a reader as a chunked upload.
//!
//! Responses are read with `Content-Length` or chunked transfer coding; a chunked body that
//! ends before its last chunk (the server aborted an export) is an error, never a short file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use crate::maintenance::{ExportFilter, ImportReport};

/// How long a reply may keep the client waiting between two reads (and a request between
/// two writes).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connection may take. Without a limit, a node whose host is down (no answer
/// at all, not a refusal) kept each call of a `--cluster` command waiting for the kernel's
/// two minutes of retries, and `cluster status` makes five calls per node (found in a
/// review).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes per chunk of an import upload.
const UPLOAD_CHUNK: usize = 64 << 10;

/// A running server's admin endpoint.
#[derive(Debug, Clone)]
pub struct AdminClient {
    host: String,
    token: String,
}

/// The head of a response.
struct Head {
    status: u16,
    chunked: bool,
    length: Option<u64>,
}

impl AdminClient {
    /// A client of the server at `server` (`HOST:PORT`, optionally with `http://`).
    pub fn new(server: &str, token: &str) -> Self {
        Self {
            host: server
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            token: token.to_string(),
        }
    }

    fn connect(&self) -> Result<TcpStream, String> {
        let failed = |e: &dyn std::fmt::Display| format!("cannot connect to {}: {e}", self.host);
        let addrs = self.host.to_socket_addrs().map_err(|e| failed(&e))?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(READ_TIMEOUT))
                        .and_then(|()| stream.set_write_timeout(Some(READ_TIMEOUT)))
                        .map_err(|e| e.to_string())?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => failed(&e),
            None => failed(&"the name has no address"),
        })
    }

    fn head(&self, method: &str, path: &str, framing: &str) -> String {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n{framing}Connection: close\r\n\r\n",
            self.host, self.token
        )
    }

    /// One JSON call: the status and the body as JSON (`Null` if it is not JSON).
    ///
    /// # Errors
    /// The connection failed or the answer is not HTTP.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = self.connect()?;
        let framing = format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        let mut request = self.head(method, path, &framing).into_bytes();
        request.extend_from_slice(body.as_bytes());
        stream.write_all(&request).map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let head = read_head(&mut reader)?;
        let mut payload = Vec::new();
        read_body(&mut reader, &head, &mut payload)?;
        Ok((
            head.status,
            serde_json::from_slice(&payload).unwrap_or(Value::Null),
        ))
    }

    /// `GET /admin/export?<filter>`, written into `out` as it arrives; `progress(bytes)`
    /// is called per piece. Returns the bytes written.
    ///
    /// # Errors
    /// The server refused (its message), or the export was cut short.
    pub fn export(
        &self,
        filter: &ExportFilter,
        out: &mut impl Write,
        progress: impl FnMut(u64),
    ) -> Result<u64, String> {
        let query = filter.to_query();
        let path = if query.is_empty() {
            "/admin/export".to_string()
        } else {
            format!("/admin/export?{query}")
        };
        let mut stream = self.connect()?;
        stream
            .write_all(self.head("GET", &path, "").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let head = read_head(&mut reader)?;
        if head.status != 200 {
            let mut payload = Vec::new();
            read_body(&mut reader, &head, &mut payload)?;
            return Err(refusal(head.status, &payload));
        }
        let mut counted = Counted {
            inner: out,
            bytes: 0,
            progress,
        };
        read_body(&mut reader, &head, &mut counted)?;
        counted.inner.flush().map_err(|e| e.to_string())?;
        Ok(counted.bytes)
    }

    /// `POST /admin/import?batch=N` with `input` as a chunked body; `progress(bytes)` is
    /// called per chunk sent. Returns the server's report.
    ///
    /// # Errors
    /// The server refused or stopped the import (its message and what it did before), or
    /// the connection failed.
    pub fn import(
        &self,
        input: &mut impl Read,
        batch: usize,
        progress: impl FnMut(u64),
    ) -> Result<ImportReport, String> {
        self.send_import(&format!("/admin/import?batch={batch}"), input, progress)
    }

    /// As [`AdminClient::import`], with `over_clears=true`: the input is the owner's copy, let
    /// in over clears and drops the server made after it (`cluster move`; see
    /// [`crate::maintenance::Importer::over_clears`]).
    ///
    /// # Errors
    /// As [`AdminClient::import`].
    pub fn import_over_clears(
        &self,
        input: &mut impl Read,
        batch: usize,
        progress: impl FnMut(u64),
    ) -> Result<ImportReport, String> {
        self.send_import(
            &format!("/admin/import?batch={batch}&over_clears=true"),
            input,
            progress,
        )
    }

    fn send_import(
        &self,
        target: &str,
        input: &mut impl Read,
        mut progress: impl FnMut(u64),
    ) -> Result<ImportReport, String> {
        let mut stream = self.connect()?;
        let head = self.head(
            "POST",
            target,
            "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n",
        );
        // A server that stops early (a bad line) answers before reading the rest; its
        // answer says why, so a failed send is reported only if no answer comes.
        let sent = send_chunked(&mut stream, head.as_bytes(), input, &mut progress);
        let mut reader = BufReader::new(stream);
        let reply = read_head(&mut reader).and_then(|head| {
            let mut payload = Vec::new();
            read_body(&mut reader, &head, &mut payload)?;
            Ok((head.status, payload))
        });
        let (status, payload) = match (reply, sent) {
            (Ok(reply), _) => reply,
            (Err(_), Err(e)) | (Err(e), Ok(())) => return Err(e),
        };
        if status != 200 {
            return Err(refusal(status, &payload));
        }
        serde_json::from_slice(&payload).map_err(|e| format!("unexpected import answer: {e}"))
    }
}

fn send_chunked(
    stream: &mut TcpStream,
    head: &[u8],
    input: &mut impl Read,
    progress: &mut impl FnMut(u64),
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("cannot send the import: {e}");
    stream.write_all(head).map_err(io)?;
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    let mut sent = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read the input: {e}")),
        };
        let mut chunk = format!("{n:x}\r\n").into_bytes();
        chunk.extend_from_slice(&buf[..n]);
        chunk.extend_from_slice(b"\r\n");
        stream.write_all(&chunk).map_err(io)?;
        sent += n as u64;
        progress(sent);
    }
    stream.write_all(b"0\r\n\r\n").map_err(io)?;
    stream.flush().map_err(io)
}

/// The server's `{"error": …}` (and an import's report so far) as one message.
fn refusal(status: u16, payload: &[u8]) -> String {
    let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let msg = v.get("error").and_then(Value::as_str).map_or_else(
        || String::from_utf8_lossy(payload).into_owned(),
        str::to_string,
    );
    match v.get("report") {
        Some(report) => format!("server answered {status}: {msg} (done before: {report})"),
        None => format!("server answered {status}: {msg}"),
    }
}

/// A writer that counts what passes and reports it.
struct Counted<'a, W, F> {
    inner: &'a mut W,
    bytes: u64,
    progress: F,
}

impl<W: Write, F: FnMut(u64)> Write for Counted<'_, W, F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        (self.progress)(self.bytes);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn read_line(reader: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_head(reader: &mut impl BufRead) -> Result<Head, String> {
    let status_line = read_line(reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("malformed HTTP status line {status_line:?}"))?;
    let mut head = Head {
        status,
        chunked: false,
        length: None,
    };
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            return Ok(head);
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed HTTP header {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            head.length = value.parse().ok();
        }
    }
}

/// Copies the body into `out`: chunked, by length, or to the end of the connection.
fn read_body(reader: &mut impl BufRead, head: &Head, out: &mut impl Write) -> Result<(), String> {
    let cut = || "the answer was cut short (the server stopped before the end)".to_string();
    let write = |e: std::io::Error| format!("cannot write the output: {e}");
    if head.chunked {
        loop {
            let size_line = read_line(reader)?;
            let size = size_line.split(';').next().unwrap_or("").trim();
            if size.is_empty() {
                return Err(cut());
            }
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| format!("malformed chunk size {size_line:?}"))?;
            if size == 0 {
                // Trailers, then the empty line.
                while !read_line(reader)?.is_empty() {}
                return Ok(());
            }
            let copied = std::io::copy(&mut reader.take(size), out).map_err(write)?;
            if copied != size || !read_line(reader)?.is_empty() {
                return Err(cut());
            }
        }
    }
    match head.length {
        Some(length) => {
            let copied = std::io::copy(&mut reader.take(length), out).map_err(write)?;
            if copied == length {
                Ok(())
            } else {
                Err(cut())
            }
        }
        None => std::io::copy(reader, out).map(|_| ()).map_err(write),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let mut reader = BufReader::new(raw);
        let head = read_head(&mut reader)?;
        let mut out = Vec::new();
        read_body(&mut reader, &head, &mut out)?;
        Ok((head.status, out))
    }

    #[test]
    fn reads_chunked_and_sized_bodies() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(body(chunked), Ok((200, b"abcde".to_vec())));
        let sized = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(body(sized), Ok((400, b"{}".to_vec())));
    }

    #[test]
    fn a_chunked_body_without_its_last_chunk_is_cut_short() {
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
        assert!(body(cut).is_err_and(|e| e.contains("cut short")));
        let short = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc";
        assert!(body(short).is_err_and(|e| e.contains("cut short")));
    }
}
