//! The environment's place in the settings (README "Options": flags win over `TTLCASK_*`
//! variables, which win over the TOML file), for the two settings found wrong from outside:
//! `TTLCASK_DEV=false` left a file's `dev = true` on (the sample token stayed accepted), and
//! admin commands looked for the server at the file's `listen` where `TTLCASK_LISTEN` had
//! moved it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::ServerProcess as Server;

/// The IronCache document's sample token and project, accepted only by a `dev` server.
const DEV_IRON: &str = "OAuth abc4c7c627376858";
const PROJECT: &str = "4ccf2c5da3c0f1a4d1000011";

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// `ttlcask` with `args` and `env`, none of the caller's `TTLCASK_*` variables.
fn ttlcask(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ttlcask"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TTLCASK_") {
            command.env_remove(name);
        }
    }
    command.args(args).envs(env.iter().copied());
    command.stdin(Stdio::null());
    command
}

/// The status of `GET path` with `authorization`, or `None` if nothing answers.
fn status(addr: SocketAddr, path: &str, authorization: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// Starts `serve --config config` with `env` (and `extra` flags), listening on `addr`;
/// waits (up to 30 s) until it answers.
fn serve(config: &Path, addr: SocketAddr, env: &[(&str, &str)], extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--config", config.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let child = ttlcask(&args, env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ttlcask serve");
    let mut server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(addr, "/healthz", "") != Some(200) {
        assert!(
            server.child.try_wait().expect("try_wait").is_none(),
            "the server exited while starting"
        );
        assert!(Instant::now() < deadline, "server not healthy within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// A config file in `dir` with `dev = true`, its data dir in `dir`, listening on `listen`.
fn dev_config(dir: &Path, listen: SocketAddr) -> std::path::PathBuf {
    let config = dir.join("ttlcask.toml");
    let data = dir.join("data");
    std::fs::write(
        &config,
        format!(
            "dev = true\nlisten = \"{listen}\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .expect("write the config");
    config
}

#[test]
fn dev_false_in_the_environment_or_a_flag_turns_off_the_files_dev() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let config = dev_config(tmp.path(), addr);
    let caches = format!("/1/projects/{PROJECT}/caches");
    for (env, flags, accepted) in [
        (&[][..], &[][..], true),
        (&[("TTLCASK_DEV", "false")][..], &[][..], false),
        (&[][..], &["--dev=false"][..], false),
        (&[("TTLCASK_DEV", "false")][..], &["--dev"][..], true),
    ] {
        let server = serve(&config, addr, env, flags);
        let got = status(addr, &caches, DEV_IRON);
        drop(server);
        let expected = if accepted { 200 } else { 401 };
        assert_eq!(
            got,
            Some(expected),
            "env {env:?} flags {flags:?}: the sample token"
        );
    }
}

#[test]
fn admin_commands_find_the_server_where_ttlcask_listen_put_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The file names an address nothing listens on; the environment moves the server.
    let file_addr = free_addr();
    let config = dev_config(tmp.path(), file_addr);
    let addr = free_addr();
    let listen = addr.to_string();
    let env = [("TTLCASK_LISTEN", listen.as_str())];
    let server = serve(&config, addr, &env, &[]);
    let out: Output = ttlcask(
        &[
            "tenant",
            "list",
            "--config",
            config.to_str().expect("utf-8"),
        ],
        &env,
    )
    .output()
    .expect("run tenant list");
    drop(server);
    assert!(
        out.status.success(),
        "tenant list with the server's environment: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&listen),
        "it says which server it used: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
