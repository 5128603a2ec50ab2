//! Kill -9 a writer process at a random moment, reopen, and check that every write the
//! child reported as acknowledged is there with its value.
//!
//! The child is this same test binary, re-run with `TTLCASK_CRASH_CHILD_DIR` set: several
//! threads write in `Durability::Always` and print `ack <key>` after each `Ok`. Trials:
//! `TTLCASK_CRASH_TRIALS` (default 20).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ttlcask_engine::{Durability, PutOptions, Store, WriteBatch};

const CHILD_ENV: &str = "TTLCASK_CRASH_CHILD_DIR";
const WRITERS: usize = 4;

fn value_for(key: &str) -> Vec<u8> {
    key.repeat(1 + key.len() % 7).into_bytes()
}

/// The child: only does something when run by the parent.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::builder()
        .durability(Durability::Always)
        .segment_size(64 << 10)
        .open(&dir)
        .expect("child open");
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = store.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let key = format!("t{t}-{i}");
                    let acked = if i % 10 == 9 {
                        // Every tenth write is a two-key batch: both or neither.
                        let mut batch = WriteBatch::new();
                        batch.put(
                            b"crash",
                            key.as_bytes(),
                            &value_for(&key),
                            PutOptions::default(),
                        );
                        let twin = format!("{key}-twin");
                        batch.put(
                            b"crash",
                            twin.as_bytes(),
                            &value_for(&twin),
                            PutOptions::default(),
                        );
                        store.write_batch(batch).map(|_| vec![key, twin])
                    } else {
                        store
                            .put(
                                b"crash",
                                key.as_bytes(),
                                &value_for(&key),
                                PutOptions::default(),
                            )
                            .map(|_| vec![key])
                    };
                    let keys = acked.expect("write");
                    let mut out = out.lock().expect("stdout");
                    for k in keys {
                        writeln!(out, "ack {k}").expect("print");
                    }
                    out.flush().expect("flush");
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn trial(rng: &mut u64) -> usize {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("pipe");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        while lines.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(key) = line.trim_end().strip_prefix("ack ") {
                acked.push(key.to_string());
                if acked.len() == 1 {
                    let _ = tx.send(());
                }
            }
            line.clear();
        }
        let mut rest = Vec::new();
        let _ = lines.read_to_end(&mut rest);
        acked
    });
    // Wait for the first ack (the store is open), then let it run a random while.
    let _ = rx.recv_timeout(Duration::from_secs(60));
    let delay = Duration::from_millis(next(rng) % 300);
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let acked = reader.join().expect("reader");

    let store = Store::open(dir.path()).expect("reopen after kill");
    let mut missing = HashMap::new();
    for key in &acked {
        match store.get(b"crash", key.as_bytes()).expect("read") {
            Some(item) => assert_eq!(&item.value[..], &value_for(key)[..], "value of {key}"),
            None => {
                missing.insert(key.clone(), ());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        missing.keys().next()
    );
    // A batch is all or nothing, acknowledged or not.
    for key in store.keys(b"crash") {
        let key = String::from_utf8(key).expect("utf8");
        if let Some(base) = key.strip_suffix("-twin") {
            assert!(
                store
                    .get(b"crash", base.as_bytes())
                    .expect("read")
                    .is_some(),
                "half a batch: {key}"
            );
        }
    }
    acked.len()
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let trials: usize = std::env::var("TTLCASK_CRASH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut rng = seed();
    let started = Instant::now();
    let mut total = 0;
    for _ in 0..trials {
        total += trial(&mut rng);
    }
    println!(
        "{trials} kill -9 trials, {total} acknowledged writes checked, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(total > 0, "the child never acknowledged a write");
}
