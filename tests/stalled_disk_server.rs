//! The server over a store whose disk holds a write (a `SimFs` write hook that blocks, as a
//! frozen file system or a stalled device does), with several durable PUTs arriving at once:
//! reads and `/healthz` must go on answering. Runs without root (no real file system is
//! frozen: `frozen_disk.rs` does that, as root). It fails on the code that held the index
//! lock across the `pwrite`; the runtime stall found from outside on a frozen ext4 (four
//! PUTs at once, every request hung until the thaw: `faults::StallWatch`) never showed here
//! in 40 rounds without the fix, and is tested by `frozen_disk.rs`.
//!
//! The server has its own runtime of two workers, as `ttlcask serve` on this machine, on a
//! thread of its own, so that the test's client and its timeouts never wait on it.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::{request_bytes, try_raw, Resp};
use ttlcask_engine::sim::SimFs;
use ttlcask_engine::{Durability, Store};

const TOKEN: &str = "OAuth abc4c7c627376858";
const PROJECT: &str = "4ccf2c5da3c0f1a4d1000011";
/// How long a read may take while writes wait before the test calls it hung.
const PATIENCE: Duration = Duration::from_secs(3);

/// Holds every write once armed, until released (at most 30 s each).
struct Gate {
    armed: AtomicBool,
    released: Mutex<bool>,
    open: std::sync::Condvar,
}

impl Gate {
    fn hold(&self) {
        if !self.armed.load(Ordering::SeqCst) {
            return;
        }
        let released = self.released.lock().expect("gate");
        let _ = self
            .open
            .wait_timeout_while(released, Duration::from_secs(30), |r| !*r);
    }

    fn release(&self) {
        *self.released.lock().expect("gate") = true;
        self.armed.store(false, Ordering::SeqCst);
        self.open.notify_all();
    }
}

/// Starts the dev server over `store` on a runtime of two workers on its own thread; the
/// sender stops it.
fn start(store: Store) -> (SocketAddr, mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            ready_tx
                .send(listener.local_addr().expect("addr"))
                .expect("ready");
            let stop = async move {
                let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            };
            let _ = ttlcask::run(listener, store, ttlcask::Config::new(true), stop).await;
        });
        runtime.shutdown_timeout(Duration::from_secs(5));
    });
    let addr = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server up");
    (addr, stop_tx, thread)
}

async fn iron(addr: SocketAddr, method: &str, key: &str, body: &[u8]) -> std::io::Result<Resp> {
    let path = format!("/1/projects/{PROJECT}/caches/c/items/{key}");
    let headers = [
        ("Authorization", TOKEN),
        ("Content-Type", "application/json"),
    ];
    try_raw(addr, &request_bytes(addr, method, &path, &headers, body)).await
}

async fn within_patience(
    what: &str,
    request: impl std::future::Future<Output = std::io::Result<Resp>>,
) -> Resp {
    match tokio::time::timeout(PATIENCE, request).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("{what} failed while writes waited: {e}"),
        Err(_) => panic!("{what} hung while writes waited for the disk"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_while_several_durable_puts_wait_for_the_disk() {
    let fs = SimFs::new();
    let gate = Arc::new(Gate {
        armed: AtomicBool::new(false),
        released: Mutex::new(false),
        open: std::sync::Condvar::new(),
    });
    let hook = Arc::clone(&gate);
    fs.on_write(Some(Arc::new(move || hook.hold())));
    let store = Store::builder()
        .file_system(Arc::new(fs.clone()))
        .durability(Durability::Always)
        .segment_size(1 << 20)
        .compaction_interval(None)
        .open("/data")
        .expect("open");
    let (addr, stop, thread) = start(store);
    let r = iron(addr, "PUT", "pre", br#"{"value":"pre"}"#)
        .await
        .expect("PUT pre");
    assert_eq!(r.status, 200, "{r:?}");

    // Rounds of four PUTs at once, each round with its own hold.
    for round in 0..4 {
        *gate.released.lock().expect("gate") = false;
        gate.armed.store(true, Ordering::SeqCst);
        let puts: Vec<_> = (0..4)
            .map(|i| {
                let body = format!("{{\"value\":\"v{round}-{i}\"}}");
                tokio::spawn(async move {
                    iron(addr, "PUT", &format!("k{round}-{i}"), body.as_bytes()).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let health = within_patience("/healthz", async {
            try_raw(addr, &request_bytes(addr, "GET", "/healthz", &[], b"")).await
        })
        .await;
        let get = within_patience("GET pre", iron(addr, "GET", "pre", b"")).await;
        gate.release();
        assert_eq!(health.status, 200, "round {round}: {health:?}");
        assert_eq!(get.status, 200, "round {round}: {get:?}");
        for put in puts {
            let r = tokio::time::timeout(Duration::from_secs(20), put)
                .await
                .expect("the PUT answers once the disk does")
                .expect("task")
                .expect("answer");
            assert_eq!(r.status, 200, "round {round}: {r:?}");
        }
    }
    let _ = stop.send(());
    thread.join().expect("server thread");
}
