//! The root key bound to its database: a missing root key file is never replaced by a new one
//! when the database holds keys, a wrong root key is refused at start with a message saying what
//! to do, and the right one still opens everything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ops_support;

use ops_support::{Ops, roundtrip, signed_raw};

fn create_and_encrypt(addr: &str) -> String {
    let (st, body) = roundtrip(
        addr,
        &signed_raw(addr, "CreateKey", r#"{"Description": "bound"}"#),
    );
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let (st, body) = roundtrip(
        addr,
        &signed_raw(
            addr,
            "Encrypt",
            &format!(r#"{{"KeyId": "{key}", "Plaintext": "aGVsbG8="}}"#),
        ),
    );
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["CiphertextBlob"].as_str().unwrap().to_string()
}

#[test]
fn missing_or_wrong_root_key_is_refused_and_the_right_one_opens_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let listen = ["--listen", "127.0.0.1:0"];
    let ct = {
        let s = Ops::start(&data, &listen, &[]);
        create_and_encrypt(&s.addr)
    };
    let root = data.join("root.key");
    let saved = std::fs::read(&root).unwrap();

    // Missing: refused, and no new root key is written.
    std::fs::remove_file(&root).unwrap();
    let err = Ops::try_start(&data, &listen, &[])
        .err()
        .expect("started without its root key");
    assert!(err.contains("does not exist, but the database"), "{err}");
    assert!(err.contains("already has a root key"), "{err}");
    assert!(err.contains("Restore that root key"), "{err}");
    assert!(
        !root.exists(),
        "a new root key was created for a database holding keys"
    );

    // Wrong (another key file, or KEYFERRY_ROOT_KEY): refused, naming the key it could not open.
    std::fs::write(&root, [7u8; 32]).unwrap();
    let err = Ops::try_start(&data, &listen, &[])
        .err()
        .expect("started with a wrong root key");
    assert!(
        err.contains("is not the root key this database was sealed with"),
        "{err}"
    );
    let err = Ops::try_start(&data, &listen, &[("KEYFERRY_ROOT_KEY", &"11".repeat(32))])
        .err()
        .expect("started with a wrong KEYFERRY_ROOT_KEY");
    assert!(
        err.contains("the root key from KEYFERRY_ROOT_KEY does not open"),
        "{err}"
    );

    // The right one: starts, and the old ciphertext decrypts.
    std::fs::write(&root, &saved).unwrap();
    let s = Ops::start(&data, &listen, &[]);
    let (st, body) = roundtrip(
        &s.addr,
        &signed_raw(
            &s.addr,
            "Decrypt",
            &format!(r#"{{"CiphertextBlob": "{ct}"}}"#),
        ),
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("aGVsbG8="), "{body}");
    assert!(s.wait_log(
        "root key checked against the database",
        std::time::Duration::from_secs(2)
    ));
}

#[test]
fn an_empty_database_gets_a_new_root_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let _s = Ops::start(&data, &["--listen", "127.0.0.1:0"], &[]);
    let meta = std::fs::metadata(data.join("root.key")).unwrap();
    assert_eq!(meta.len(), 32);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn an_initialised_database_without_keys_is_bound_to_its_root_key_too() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let listen = ["--listen", "127.0.0.1:0"];
    // First start: a new root key, and its check value stored in the database.
    drop(Ops::start(&data, &listen, &[]));
    let root = data.join("root.key");
    let saved = std::fs::read(&root).unwrap();

    // No keys at all, but a different root key is still refused (the check value).
    std::fs::write(&root, [9u8; 32]).unwrap();
    let err = Ops::try_start(&data, &listen, &[])
        .err()
        .expect("started with another root key");
    assert!(
        err.contains("does not open the root key check value"),
        "{err}"
    );
    // And a missing one is not silently replaced.
    std::fs::remove_file(&root).unwrap();
    let err = Ops::try_start(&data, &listen, &[])
        .err()
        .expect("started without its root key");
    assert!(err.contains("already has a root key"), "{err}");
    assert!(!root.exists());
    std::fs::write(&root, &saved).unwrap();
    let s = Ops::start(&data, &listen, &[]);
    assert!(
        s.wait_log("Matches", std::time::Duration::from_secs(2)),
        "{}",
        s.stderr_text()
    );
}
