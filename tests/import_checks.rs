//! What `ttlcask import` refuses, on a stopped data dir: lines that would store what no API
//! can reach or delete, registry records that are not valid tenants or credentials, and
//! versions out of range. A refused line stops the import and nothing of its batch is
//! stored, not even its cache. Found from outside in the twelfth session: a credential
//! record that was not JSON kept the server from starting again, and a bad line's cache was
//! created although the message said nothing was written.

use std::path::Path;
use std::process::{Command, Output};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

const PROJECT: &str = "4ccf2c5da3c0f1a4d1000011";

fn ttlcask(dir: &Path, args: &[&str], input: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ttlcask"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TTLCASK_") {
            command.env_remove(name);
        }
    }
    command.args(args).arg("--data-dir").arg(dir);
    if let Some(text) = input {
        let file = dir.with_extension("jsonl");
        std::fs::write(&file, text).expect("write input");
        command.arg(&file);
    }
    command.output().expect("run ttlcask")
}

fn import(dir: &Path, lines: &[String]) -> Output {
    ttlcask(dir, &["import"], Some(&(lines.join("\n") + "\n")))
}

fn export(dir: &Path) -> String {
    let out = ttlcask(dir, &["export"], None);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn iron_line(project: &str, cache: &str, key: &str, kind: u8, version: u64) -> String {
    format!(
        r#"{{"tenant":"ttorg","api":"iron","project":"{project}","cache":"{cache}","key":"{key}","value":"YWJj","expires_at_ms":null,"kind":{kind},"version":{version}}}"#
    )
}

fn registry_line(system: &str, key: &str, value: &str, version: u64) -> String {
    format!(
        r#"{{"system":"{system}","key":"{key}","value":"{}","expires_at_ms":null,"kind":0,"version":{version}}}"#,
        BASE64.encode(value)
    )
}

fn tenant(name: &str, client_id: &str) -> String {
    format!(r#"{{"name":"{name}","flash_client_id":"{client_id}","created_ms":1}}"#)
}

#[test]
fn lines_no_api_could_reach_are_refused_and_nothing_of_their_batch_is_stored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = iron_line(PROJECT, "good", "k", 0, 5);
    let bad: Vec<(String, &str)> = vec![
        (iron_line(PROJECT, "c", "k", 0, 1 << 60), "out of range"),
        (iron_line("zzzzzzzzzzzzzzzzzzzzzzzz", "c", "k", 0, 5), "hex"),
        (iron_line(PROJECT, "", "k", 0, 5), "cache is empty"),
        (iron_line(PROJECT, "c", "", 0, 5), "key is empty"),
        (iron_line(PROJECT, "c", "k", 9, 5), "kind 9"),
        (
            r#"{"tenant":"ttorg","api":"flash","cache":"default","key":"has space","value":"YWJj","expires_at_ms":null,"kind":0,"version":5}"#.into(),
            "DataKey",
        ),
        (
            r#"{"tenant":"ttorg","api":"akka","cache":"healthz","key":"k","value":"YWJj","expires_at_ms":null,"kind":0,"version":5}"#.into(),
            "reserved",
        ),
        // Keys no route names (found from outside: taken, then neither read nor deleted).
        (
            r#"{"tenant":"ttorg","api":"akka","cache":"bk","key_base64":"/w==","value":"AA==","expires_at_ms":null,"kind":0,"version":5}"#.into(),
            "not UTF-8",
        ),
        (
            iron_line(PROJECT, "c", "k", 0, 5).replace(r#""key":"k""#, r#""key_base64":"/w==""#),
            "not UTF-8",
        ),
        (
            registry_line("credentials", "deadbeef0001", "not json at all", 7),
            "not a credential record",
        ),
        (
            registry_line("tenants", "acme", &tenant("other", "v1:uid_x"), 7),
            "under key",
        ),
        (
            registry_line(
                "credentials",
                "DEADBEEF0001",
                r#"{"id":"DEADBEEF0001","tenant":"acme","api":"iron","secret_sha256":"7faf6e81abf8ea8fb8002d624a1ca2a0566f9ca391fff08ab943c8f03be96096","created_ms":1}"#,
                7,
            ),
            "lower-case hex",
        ),
    ];
    for (i, (line, why)) in bad.iter().enumerate() {
        let dir = tmp.path().join(format!("d{i}"));
        // A good line first, in the same batch: it is not stored either.
        let out = import(&dir, &[good.clone(), line.clone()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {line}: {stderr}");
        assert!(
            stderr.contains("line 2") && stderr.contains(why),
            "{line}: {stderr}"
        );
        let left = export(&dir);
        assert!(
            !left.contains("\"cache\"") && !left.contains("\"key\""),
            "{line} left {left}"
        );
    }
    // A project id in capitals is one the API reads (it lower-cases them): stored so.
    let dir = tmp.path().join("caps");
    let out = import(&dir, &[iron_line(&PROJECT.to_uppercase(), "c", "k", 1, 5)]);
    assert!(out.status.success(), "{out:?}");
    assert!(export(&dir).contains(&format!("\"project\":\"{PROJECT}\"")));
}

#[test]
fn a_tenant_with_another_tenants_client_id_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("d");
    let acme = registry_line("tenants", "acme", &tenant("acme", "v1:uid_shared"), 7);
    let out = import(&dir, std::slice::from_ref(&acme));
    assert!(out.status.success(), "{out:?}");
    // Another tenant with acme's ClientId: in a later import, and in the same batch.
    let evil = registry_line("tenants", "evil", &tenant("evil", "v1:uid_shared"), 8);
    for lines in [vec![evil.clone()], vec![acme.clone(), evil.clone()]] {
        let out = import(&dir, &lines);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("belongs to tenant \"acme\""), "{stderr}");
    }
    let list = ttlcask(&dir, &["tenant", "list"], None);
    assert!(list.status.success(), "{list:?}");
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(names.contains("acme") && !names.contains("evil"), "{names}");
    // The same tenant again (a re-run, or a copy to another node) is fine.
    assert!(import(&dir, &[acme]).status.success());
}
