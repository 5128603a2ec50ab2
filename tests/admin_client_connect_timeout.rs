//! The admin client (the CLI's `--server` and every `--cluster` command) gives up on a
//! connection that gets no answer at all, as to a host that is down, within seconds: it
//! waited for the kernel's two minutes of retries per call (found in a review).

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ttlcask::admin_client::AdminClient;

#[test]
fn a_connection_that_gets_no_answer_fails_within_seconds() {
    // A listener that never accepts, its backlog filled: the next connection's SYN gets no
    // answer, as from a host that is down.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut held = Vec::new();
    let silent =
        (0..1000).any(
            |_| match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => {
                    held.push(s);
                    false
                }
                Err(_) => true,
            },
        );
    if !silent {
        eprintln!("SKIPPED: the kernel answered every connection (backlog never filled)");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let result = AdminClient::new(&addr.to_string(), "token").call("GET", "/healthz", None);
        let _ = tx.send(result.map(|(status, _)| status));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the call still waits after 30 s");
    let err = result.expect_err("no answer is an error");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(listener);
}
