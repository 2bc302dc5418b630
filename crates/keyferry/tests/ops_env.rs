//! Secrets off the environment: once `keyferry serve` has read its configuration, the values of
//! the secret-bearing variables are overwritten with NUL bytes in the process's own environment
//! block, so `/proc/<pid>/environ` no longer shows them, while the server keeps working with the
//! copies it took.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ops_support;

use std::time::{Duration, Instant};

use ops_support::{
    Ops, OwnPg, contains_bytes, environ_entries, environ_of, is_root, psql, roundtrip,
    signed_raw_as,
};

const AKID: &str = "AKIAENVSCRUBTEST0001";
const SECRET: &str = "env-scrub-secret-access-key-3f9c1d";
const PIN: &str = "pin-from-the-environment-7261";
const DB_PASSWORD: &str = "pg-password-from-the-environment-5150";

fn signed(addr: &str, target: &str, body: &str) -> Vec<u8> {
    signed_raw_as(addr, target, body, AKID, SECRET)
}

/// A signed call that must answer 200: its JSON.
fn ok(addr: &str, target: &str, body: &str) -> serde_json::Value {
    let (st, body) = roundtrip(addr, &signed(addr, target, body));
    assert_eq!(st, 200, "{target}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn serve_overwrites_its_secret_environment_values_and_keeps_working() {
    if !is_root() {
        // keyferry serve is not dumpable: only root reads its /proc/<pid>/environ.
        eprintln!("skipped: needs root to read a non-dumpable process's /proc/<pid>/environ");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root_hex = "c3".repeat(32);
    let secrets = [
        ("KEYFERRY_SECRET_ACCESS_KEY", SECRET),
        ("KEYFERRY_ROOT_KEY", root_hex.as_str()),
        // Not used without --root-key-pkcs11, but a PIN in the environment is scrubbed anyway
        // (the HSM test in ops_rootkey_pkcs11.rs has one the server uses).
        ("KEYFERRY_PKCS11_PIN", PIN),
        // sqlx reads it only for a PostgreSQL store; scrubbed whoever reads it.
        ("PGPASSWORD", DB_PASSWORD),
    ];
    let mut env: Vec<(&str, &str)> = secrets.to_vec();
    env.push(("KEYFERRY_ACCESS_KEY_ID", AKID));
    env.push(("KEYFERRY_TEST_MARKER", "visible"));
    let server = Ops::start(&tmp.path().join("data"), &["--listen", "127.0.0.1:0"], &env);
    let addr = server.addr.clone();
    // It answers, with the credential from the environment.
    let (st, body) = roundtrip(&addr, &signed(&addr, "ListKeys", "{}"));
    assert_eq!(st, 200, "{body}");

    let block = environ_of(server.pid());
    let entries = environ_entries(&block);
    let value = |name: &str| entries.get(name).map(String::as_str);
    // The block read is the server's own: the variables that are not secret are still there.
    assert_eq!(value("KEYFERRY_TEST_MARKER"), Some("visible"));
    assert_eq!(value("KEYFERRY_ACCESS_KEY_ID"), Some(AKID));
    for (name, secret) in secrets {
        // The name stays, its value reads as empty, and the value is nowhere in the block.
        assert_eq!(value(name), Some(""), "{name} was not overwritten");
        assert!(
            !contains_bytes(&block, secret.as_bytes()),
            "the value of {name} is still in /proc/<pid>/environ"
        );
    }
    // Said once in the log, by name only.
    assert!(
        server.wait_log(
            "secret environment values overwritten",
            Duration::from_secs(5)
        ),
        "{}",
        server.stderr_text()
    );
    let log = server.stderr_text();
    for (name, secret) in secrets {
        assert!(log.contains(name), "{log}");
        assert!(!log.contains(secret), "the log shows the value of {name}");
    }

    // The server still signs with the secret key and seals with the root key it read.
    let v = ok(&addr, "CreateKey", "{}");
    let key = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let v = ok(
        &addr,
        "Encrypt",
        &format!(r#"{{"KeyId": "{key}", "Plaintext": "aGVsbG8="}}"#),
    );
    let ct = v["CiphertextBlob"].as_str().unwrap().to_string();
    let decrypt = format!(r#"{{"CiphertextBlob": "{ct}"}}"#);
    assert_eq!(ok(&addr, "Decrypt", &decrypt)["Plaintext"], "aGVsbG8=");
    drop(server);

    // A restart with the same environment opens what the first run sealed: the root key the
    // server used was KEYFERRY_ROOT_KEY's value, not an empty or a new one.
    let server = Ops::start(&tmp.path().join("data"), &["--listen", "127.0.0.1:0"], &env);
    assert_eq!(
        ok(&server.addr, "Decrypt", &decrypt)["Plaintext"],
        "aGVsbG8="
    );
    assert!(!tmp.path().join("data/root.key").exists());
}

#[test]
fn serve_on_postgresql_reconnects_with_the_password_it_overwrote() {
    if !is_root() {
        eprintln!("skipped: needs root to read a non-dumpable process's /proc/<pid>/environ");
        return;
    }
    let (pg, url) = OwnPg::start();
    pg.require_password(&url, DB_PASSWORD);
    let with_password = url.replacen(
        "postgres://kms@",
        &format!("postgres://kms:{DB_PASSWORD}@"),
        1,
    );
    assert_ne!(with_password, url);
    let tmp = tempfile::tempdir().unwrap();
    // The password in the URL, then in PGPASSWORD (which sqlx reads when it parses the URL).
    let runs: [(&str, Vec<(&str, &str)>); 2] = [
        (
            "KEYFERRY_DATABASE_URL",
            vec![("KEYFERRY_DATABASE_URL", with_password.as_str())],
        ),
        (
            "PGPASSWORD",
            vec![
                ("KEYFERRY_DATABASE_URL", url.as_str()),
                ("PGPASSWORD", DB_PASSWORD),
            ],
        ),
    ];
    for (holder, mut env) in runs {
        env.extend([
            ("KEYFERRY_ACCESS_KEY_ID", AKID),
            ("KEYFERRY_SECRET_ACCESS_KEY", SECRET),
        ]);
        let server = Ops::start(&tmp.path().join("data"), &["--listen", "127.0.0.1:0"], &env);
        let addr = server.addr.clone();
        let (st, body) = roundtrip(&addr, &signed(&addr, "CreateKey", "{}"));
        assert_eq!(st, 200, "{holder}: {body}");

        let block = environ_of(server.pid());
        assert!(
            !contains_bytes(&block, DB_PASSWORD.as_bytes()),
            "{holder}: the database password is still in /proc/<pid>/environ"
        );
        let entries = environ_entries(&block);
        let value = |name: &str| entries.get(name).map(String::as_str);
        assert_eq!(value(holder), Some(""), "{holder}");
        if holder == "PGPASSWORD" {
            // A URL without a password is not a secret: it stays readable.
            assert_eq!(value("KEYFERRY_DATABASE_URL"), Some(url.as_str()));
        }

        // Every connection of the server ended: the next request needs a new one, which
        // authenticates with the password the server kept, not the environment's.
        let ended = psql(
            &with_password,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE usename = 'kms' AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        );
        assert_ne!(ended, "0", "{holder}: the server had no connection to end");
        let t = Instant::now();
        loop {
            let (st, body) = roundtrip(&addr, &signed(&addr, "CreateKey", "{}"));
            if st == 200 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "{holder}: no new database connection: {st} {body}\n{}",
                server.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = server.stderr_text();
        assert!(
            !log.contains(DB_PASSWORD),
            "{holder}: the log shows the password"
        );
    }
}
