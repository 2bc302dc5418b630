//! Keys that stay alive: `keyferry import` records where each key came from (keyferry:* tags),
//! refuses a second KMS key for the same material unless `--allow-duplicate`, and
//! `keyferry keep-alive` re-imports material that expires soon from the recorded source,
//! reporting what it renewed and what it could not reach. Against a real `keyferry serve`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod import_support;
mod ops_support;

use common::Server;
use import_support::*;
use keyferry_byok::time;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

async fn tags(server: &Server, arn: &str) -> Vec<(String, String)> {
    let sdk = server.sdk().await;
    let t = sdk.list_resource_tags().key_id(arn).send().await.unwrap();
    t.tags()
        .iter()
        .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
        .collect()
}

async fn valid_to(server: &Server, arn: &str) -> i64 {
    let sdk = server.sdk().await;
    let d = sdk.describe_key().key_id(arn).send().await.unwrap();
    d.key_metadata().unwrap().valid_to().unwrap().secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provenance_duplicates_and_keep_alive() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let ec = openssl_key(dir.path(), "ECC_NIST_P256");
    let aes = openssl_key(dir.path(), "SYMMETRIC_DEFAULT");

    // Provenance tags: the file, and the public key's fingerprint.
    let v = import_json(&server, &["--material", s(&ec), "--valid-for", "1h"], &[]);
    let ec_arn = v["KeyId"].as_str().unwrap().to_string();
    let t = tags(&server, &ec_arn).await;
    let get = |k: &str| t.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        get("keyferry:source-kind").as_deref(),
        Some("file"),
        "{t:?}"
    );
    assert_eq!(
        get("keyferry:source"),
        Some(std::fs::canonicalize(&ec).unwrap().display().to_string())
    );
    let spki = openssl_public_der(&ec);
    let fp = format!(
        "sha256:{}",
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki))
    );
    assert_eq!(get("keyferry:fingerprint"), Some(fp), "{t:?}");
    assert_eq!(get("keyferry:valid-for").as_deref(), Some("3600"), "{t:?}");

    // Symmetric: the proof of identity (re-import as EXISTING_KEY_MATERIAL), and the
    // KeyMaterialId recorded as the fingerprint.
    let v = import_json(&server, &["--material", s(&aes), "--valid-for", "2h"], &[]);
    let aes_arn = v["KeyId"].as_str().unwrap().to_string();
    assert!(
        v["Checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().contains("EXISTING_KEY_MATERIAL")),
        "{v}"
    );
    let t = tags(&server, &aes_arn).await;
    let kmid = format!("kmid:{}", v_str(&v_json_material(&server, &aes_arn).await));
    assert!(
        t.iter()
            .any(|(k, v)| k == "keyferry:fingerprint" && *v == kmid),
        "{t:?}"
    );

    // A rerun does not create a second key for the same material, unless told to.
    let r = keyferry(&server, &["import", "--material", s(&ec)], &[]).failed();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&ec_arn) && r.stderr.contains("--allow-duplicate"),
        "{}",
        r.stderr
    );
    assert_eq!(key_states(&server).await.len(), 2);
    let v = import_json(&server, &["--material", s(&ec), "--allow-duplicate"], &[]);
    assert_ne!(v["KeyId"].as_str().unwrap(), ec_arn);
    assert_eq!(key_states(&server).await.len(), 3);

    // keep-alive: the EC key (1 h left) is renewed for another hour from its file; the AES key's
    // file is gone, so it is reported unreachable and the exit code says so.
    let before = valid_to(&server, &ec_arn).await;
    std::fs::remove_file(&aes).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let r = keyferry(&server, &["keep-alive", "--renew-within", "3h"], &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("Renewed (1):") && r.stdout.contains(&ec_arn),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Source unreachable, NOT renewed (1):") && r.stdout.contains(&aes_arn),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("1 renewed, 0 about to expire, 1 unreachable"),
        "{}",
        r.stdout
    );
    let after = valid_to(&server, &ec_arn).await;
    assert!(after > before, "ValidTo {before} -> {after}");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (after - now - 3600).abs() < 60,
        "renewed for the recorded hour: {after}"
    );

    // JSON, and nothing due within 1 minute: no renewal.
    let r = keyferry(
        &server,
        &["keep-alive", "--renew-within", "1h", "--output", "json"],
        &[],
    );
    let items: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        items
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["KeyId"] == ec_arn.as_str() && i["Status"] == "renewed"),
        "{items}"
    );
}

async fn v_json_material(server: &Server, arn: &str) -> serde_json::Value {
    let sdk = server.sdk().await;
    let d = sdk.describe_key().key_id(arn).send().await.unwrap();
    serde_json::Value::String(
        d.key_metadata()
            .unwrap()
            .current_key_material_id()
            .unwrap()
            .to_string(),
    )
}

fn v_str(v: &serde_json::Value) -> String {
    v.as_str().unwrap().to_string()
}

/// Kills the process when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_every_overwrites_the_pin_in_its_environment_and_still_logs_in() {
    use std::io::BufRead;
    let server = Server::start();
    let token = Token::new();
    let env = token.env();
    let env = env_refs(&env);
    let uri = token.uri("aes-256");
    let v = import_json(&server, &["--pkcs11-uri", &uri, "--valid-for", "1h"], &env);
    let arn = v["KeyId"].as_str().unwrap().to_string();
    let before = valid_to(&server, &arn).await;
    std::thread::sleep(std::time::Duration::from_secs(2));

    // A long-running keep-alive (one pass an hour): its first pass, which logs in to the token,
    // comes after the environment copy of the PIN was overwritten.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyferry"));
    cmd.args(["keep-alive", "--renew-within", "3h", "--every", "1h"]);
    server.aws_env(&mut cmd);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut child = KillOnDrop(
        cmd.env("KEYFERRY_TEST_MARKER", "visible")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    for r in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !seen.iter().any(|l: &String| l.contains("renewed, ")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no pass reported within 60 s:\n{}", seen.join("\n")),
        }
    }
    let out = seen.join("\n");
    assert!(
        out.contains("Renewed (1):") && out.contains(&arn) && out.contains("1 renewed, "),
        "{out}"
    );
    assert!(!out.contains(USER_PIN), "{out}");
    let after = valid_to(&server, &arn).await;
    assert!(after > before, "ValidTo {before} -> {after}");

    // Its environment: the PIN reads as empty, the other variables are as they were.
    let entries = ops_support::environ_entries(&ops_support::environ_of(child.0.id()));
    let value = |name: &str| entries.get(name).map(String::as_str);
    assert_eq!(value("KEYFERRY_PKCS11_PIN"), Some(""));
    assert_eq!(value("KEYFERRY_TEST_MARKER"), Some("visible"));
    assert_eq!(value("SOFTHSM2_CONF"), Some(token.conf.as_str()));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "keep-alive --every exited"
    );
}
