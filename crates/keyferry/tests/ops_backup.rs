//! The README's SQLite backup procedures, followed as an operator would: `keyferry admin backup`
//! (and the `sqlite3 … ".backup …"` alternative) while the server runs and writes, restored into
//! a fresh directory with `keyferry admin restore` (which refuses a non-empty directory and a
//! root key that does not match), and every ciphertext made before the copy still decrypts there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ops_support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ops_support::{Ops, keyferry, roundtrip, signed_raw};

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

/// `keyferry admin ARGS…`: (success, stdout, stderr).
fn admin(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = keyferry();
    cmd.arg("admin").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn b64(s: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s)
}

/// CreateKey then Encrypt: (key id, ciphertext, base64 plaintext).
fn key_and_ciphertext(addr: &str, label: &str) -> (String, String, String) {
    let (st, body) = roundtrip(addr, &signed_raw(addr, "CreateKey", "{}"));
    assert_eq!(st, 200, "{body}");
    let key = field(&body, &["KeyMetadata", "KeyId"]);
    let pt = b64(label);
    let (st, body) = roundtrip(
        addr,
        &signed_raw(
            addr,
            "Encrypt",
            &format!(r#"{{"KeyId":"{key}","Plaintext":"{pt}"}}"#),
        ),
    );
    assert_eq!(st, 200, "{body}");
    (key, field(&body, &["CiphertextBlob"]), pt)
}

fn decrypt(addr: &str, ct: &str) -> (u16, String) {
    roundtrip(
        addr,
        &signed_raw(addr, "Decrypt", &format!(r#"{{"CiphertextBlob":"{ct}"}}"#)),
    )
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn admin_backup_under_load_and_restore_into_a_fresh_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_arg = data.to_str().unwrap();
    let root = data.join("root.key");
    let root_arg = root.to_str().unwrap().to_owned();
    let server = Ops::start(&data, &["--listen", "127.0.0.1:0"], &[]);
    let addr = server.addr.clone();
    let before: Vec<_> = (0..8)
        .map(|i| key_and_ciphertext(&addr, &format!("before the backup {i}")))
        .collect();

    // Two clients keep creating keys and encrypting while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (addr, stop, during) = (addr.clone(), stop.clone(), during.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let made = key_and_ciphertext(&addr, &format!("writer {w} #{i}"));
                    during.lock().unwrap().push(made);
                    i += 1;
                }
            })
        })
        .collect();
    while during.lock().unwrap().len() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = tmp.path().join("backup");
    let out_arg = out.to_str().unwrap();
    let (ok, stdout, stderr) = admin(&["backup", "--data-dir", data_arg, out_arg], &[]);
    assert!(ok, "backup failed: {stdout}\n{stderr}");
    assert!(
        stdout.contains("the root key is not in the backup"),
        "{stdout}"
    );
    // Writes went on during and after the copy.
    let seen = during.lock().unwrap().len();
    while during.lock().unwrap().len() < seen + 5 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let during = during.lock().unwrap().clone();

    // The backup: the database and its manifest, private, and no root key.
    assert!(out.join("keyferry.db").is_file());
    assert!(
        !out.join("root.key").exists(),
        "root key copied without being asked"
    );
    assert_eq!(mode(&out), 0o700);
    assert_eq!(mode(&out.join("keyferry.db")), 0o600);
    let manifest = std::fs::read_to_string(out.join("keyferry-backup.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&manifest).unwrap();
    assert_eq!(manifest["root_key_included"].as_bool(), Some(false));
    let keys_in_backup = manifest["keys"].as_integer().unwrap();
    assert!(
        (18..=(8 + during.len()) as i64).contains(&keys_in_backup),
        "{keys_in_backup} keys in the backup, {} made",
        8 + during.len()
    );
    assert!(!manifest["root_key_check"].as_str().unwrap().is_empty());
    // A backup never writes into a directory that holds something.
    let (ok, _, stderr) = admin(&["backup", "--data-dir", data_arg, out_arg], &[]);
    assert!(!ok);
    assert!(stderr.contains("is not empty"), "{stderr}");
    drop(server);

    // Restore refuses: no root key; a wrong root key; a directory that is not empty.
    let fresh = tmp.path().join("restored");
    let fresh_arg = fresh.to_str().unwrap();
    let (ok, _, stderr) = admin(&["restore", out_arg, "--data-dir", fresh_arg], &[]);
    assert!(!ok);
    assert!(stderr.contains("holds no root key"), "{stderr}");
    assert!(!fresh.exists());
    let wrong = tmp.path().join("wrong.key");
    std::fs::write(&wrong, [7u8; 32]).unwrap();
    let (ok, _, stderr) = admin(
        &[
            "restore",
            out_arg,
            "--data-dir",
            fresh_arg,
            "--root-key-file",
            wrong.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        stderr.contains("does not open the root key check value"),
        "{stderr}"
    );
    assert!(!fresh.exists(), "a refused restore left {fresh:?} behind");
    let (ok, _, stderr) = admin(
        &[
            "restore",
            out_arg,
            "--data-dir",
            data_arg,
            "--root-key-file",
            &root_arg,
        ],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("is not empty"), "{stderr}");

    // Restore with the root key kept apart, and serve the restored directory with it.
    let (ok, stdout, stderr) = admin(
        &[
            "restore",
            out_arg,
            "--data-dir",
            fresh_arg,
            "--root-key-file",
            &root_arg,
        ],
        &[],
    );
    assert!(ok, "restore failed: {stdout}\n{stderr}");
    assert!(stdout.contains("matches its check value"), "{stdout}");
    assert!(!fresh.join("root.key").exists());
    let server = Ops::start(
        &fresh,
        &["--listen", "127.0.0.1:0", "--root-key-file", &root_arg],
        &[],
    );
    let addr = server.addr.clone();
    for (_, ct, pt) in &before {
        let (st, body) = decrypt(&addr, ct);
        assert_eq!(st, 200, "{body}");
        assert_eq!(&field(&body, &["Plaintext"]), pt);
    }
    // What was written during the copy: in the snapshot (decrypts) or not (its key is unknown),
    // and the snapshot holds every key made before the copy began.
    let mut restored = 0;
    for (key, ct, pt) in &during {
        let (st, body) = decrypt(&addr, ct);
        if st == 200 {
            assert_eq!(&field(&body, &["Plaintext"]), pt);
            restored += 1;
        } else {
            assert_eq!(st, 400, "{body}");
            assert!(body.contains("NotFoundException"), "{key}: {body}");
        }
    }
    assert_eq!(8 + restored, keys_in_backup as usize);
    assert!(restored >= 10, "{restored}");
    drop(server);

    // A backup with its root key restores on its own (the key is installed in the directory).
    let out2 = tmp.path().join("backup-with-key");
    let (ok, stdout, stderr) = admin(
        &[
            "backup",
            "--data",
            data_arg,
            "--include-root-key",
            out2.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("includes the root key"), "{stdout}");
    assert_eq!(mode(&out2.join("root.key")), 0o600);
    assert_eq!(
        std::fs::read(out2.join("root.key")).unwrap(),
        std::fs::read(&root).unwrap()
    );
    let fresh2 = tmp.path().join("restored2");
    std::fs::create_dir(&fresh2).unwrap(); // empty is fine
    let (ok, stdout, stderr) = admin(
        &[
            "restore",
            out2.to_str().unwrap(),
            "--data",
            fresh2.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("root key installed"), "{stdout}");
    let server = Ops::start(&fresh2, &["--listen", "127.0.0.1:0"], &[]);
    let (st, body) = decrypt(&server.addr, &before[0].1);
    assert_eq!(st, 200, "{body}");
    // A backup with a root key that does not match is refused before anything is written.
    drop(server);
    let out3 = tmp.path().join("backup-wrong-key");
    let (ok, _, stderr) = admin(
        &[
            "backup",
            "--data",
            data_arg,
            "--include-root-key",
            "--root-key-file",
            wrong.to_str().unwrap(),
            out3.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("does not open"), "{stderr}");
    assert!(!out3.exists());
}

/// The README's PostgreSQL procedure: `pg_dump --format=custom` while a node writes, `pg_restore`
/// into an empty database, and a node on the restored database (with the root key kept apart)
/// decrypts every ciphertext made before the dump.
#[test]
fn postgres_pg_dump_under_load_restores_into_an_empty_database() {
    if std::env::var("KEYFERRY_TEST_POSTGRES_URL").is_err() {
        println!("skipped: KEYFERRY_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)");
        return;
    }
    let (pg, url) = ops_support::OwnPg::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root.key");
    std::fs::write(&root, [3u8; 32]).unwrap();
    let root_arg = root.to_str().unwrap();
    let server = Ops::start(
        &tmp.path().join("a"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--root-key-file",
            root_arg,
        ],
        &[],
    );
    let addr = server.addr.clone();
    let before: Vec<_> = (0..5)
        .map(|i| key_and_ciphertext(&addr, &format!("before the dump {i}")))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (addr, stop) = (addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                key_and_ciphertext(&addr, &format!("during the dump {i}"));
                i += 1;
            }
        })
    };
    let dump = tmp.path().join("keyferry.dump");
    let out = Command::new("pg_dump")
        .args(["--format=custom", "--dbname", &url, "--file"])
        .arg(&dump)
        .output()
        .expect("pg_dump (apt-get install postgresql-client)");
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);

    let restored_url = url.replace("/postgres", "/restored");
    let out = Command::new("psql")
        .args([
            &url,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE DATABASE restored",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("pg_restore")
        .args(["--exit-on-error", "--dbname", &restored_url])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Ops::start(
        &tmp.path().join("b"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &restored_url,
            "--root-key-file",
            root_arg,
        ],
        &[],
    );
    for (_, ct, pt) in &before {
        let (st, body) = decrypt(&server.addr, ct);
        assert_eq!(st, 200, "{body}");
        assert_eq!(&field(&body, &["Plaintext"]), pt);
    }
    drop(server);
    // The restored database keeps its root key check: another root key is refused.
    let wrong = tmp.path().join("wrong.key");
    std::fs::write(&wrong, [4u8; 32]).unwrap();
    let err = Ops::try_start(
        &tmp.path().join("c"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &restored_url,
            "--root-key-file",
            wrong.to_str().unwrap(),
        ],
        &[],
    )
    .err()
    .unwrap();
    assert!(err.contains("does not open"), "{err}");
    drop(pg);
}
