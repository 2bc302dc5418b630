//! The README's SQLite backup procedure, followed as an operator would: an online copy with
//! `sqlite3 … ".backup …"` while the server runs and writes, restored into a fresh directory
//! with the root key, and every ciphertext made before the copy still decrypts there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ops_support;

use std::process::Command;

use ops_support::{Ops, roundtrip, signed_raw};

fn field(body: &str, path: &[&str]) -> String {
    let mut v: serde_json::Value = serde_json::from_str(body).unwrap();
    for p in path {
        v = v[*p].take();
    }
    v.as_str().unwrap().to_string()
}

#[test]
fn online_sqlite_backup_restores_into_a_fresh_directory() {
    if Command::new("sqlite3").arg("-version").output().is_err() {
        panic!("sqlite3 is not installed (apt-get install sqlite3)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Ops::start(&data, &["--listen", "127.0.0.1:0"], &[]);
    let addr = server.addr.clone();
    let mut made = Vec::new();
    for i in 0..5 {
        let (st, body) = roundtrip(&addr, &signed_raw(&addr, "CreateKey", "{}"));
        assert_eq!(st, 200, "{body}");
        let key = field(&body, &["KeyMetadata", "KeyId"]);
        let pt = format!("secret number {i}");
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &pt);
        let (st, body) = roundtrip(
            &addr,
            &signed_raw(
                &addr,
                "Encrypt",
                &format!(r#"{{"KeyId":"{key}","Plaintext":"{b64}"}}"#),
            ),
        );
        assert_eq!(st, 200, "{body}");
        made.push((field(&body, &["CiphertextBlob"]), b64));
    }
    // Writes go on while the copy is taken.
    let writer = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            for _ in 0..20 {
                assert_eq!(
                    roundtrip(&addr, &signed_raw(&addr, "CreateKey", "{}")).0,
                    200
                );
            }
        })
    };
    let backup = tmp.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    let out = Command::new("sqlite3")
        .arg(data.join("keyferry.db"))
        .arg(format!(
            ".backup '{}'",
            backup.join("keyferry.db").display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    writer.join().unwrap();
    drop(server);

    // Restore: the copy plus the root key (kept apart) in a fresh directory.
    let restored = tmp.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::copy(backup.join("keyferry.db"), restored.join("keyferry.db")).unwrap();
    std::fs::copy(data.join("root.key"), restored.join("root.key")).unwrap();
    let server = Ops::start(&restored, &["--listen", "127.0.0.1:0"], &[]);
    let addr = server.addr.clone();
    for (ct, b64) in &made {
        let (st, body) = roundtrip(
            &addr,
            &signed_raw(&addr, "Decrypt", &format!(r#"{{"CiphertextBlob":"{ct}"}}"#)),
        );
        assert_eq!(st, 200, "{body}");
        assert_eq!(&field(&body, &["Plaintext"]), b64);
    }
    // The restored copy without its root key is refused, not given a new one.
    drop(server);
    std::fs::remove_file(restored.join("root.key")).unwrap();
    let err = Ops::try_start(&restored, &["--listen", "127.0.0.1:0"], &[])
        .err()
        .unwrap();
    assert!(err.contains("already has a root key"), "{err}");
}
