//! `keyferry admin rotate-root-key`: all material re-sealed under a new root key while a client
//! keeps decrypting (no error), then the old root key refused and the new one opening every
//! ciphertext; a wrong current key refused; a rotation stopped half-way (--limit) and resumed;
//! the same on a PostgreSQL database shared by two servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ops_support;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ops_support::{Ops, keyferry, roundtrip, signed_raw};

fn call(addr: &str, target: &str, body: &str) -> serde_json::Value {
    let (st, text) = roundtrip(addr, &signed_raw(addr, target, body));
    assert_eq!(st, 200, "{target}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// A new symmetric key and a ciphertext of "hello" under it.
fn key_and_ciphertext(addr: &str) -> String {
    let v = call(addr, "CreateKey", "{}");
    let key = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let v = call(
        addr,
        "Encrypt",
        &format!(r#"{{"KeyId": "{key}", "Plaintext": "aGVsbG8="}}"#),
    );
    v["CiphertextBlob"].as_str().unwrap().to_string()
}

fn decrypts(addr: &str, ct: &str) -> Result<(), String> {
    let (st, text) = roundtrip(
        addr,
        &signed_raw(addr, "Decrypt", &format!(r#"{{"CiphertextBlob": "{ct}"}}"#)),
    );
    if st == 200 && text.contains(r#""Plaintext":"aGVsbG8=""#) {
        Ok(())
    } else {
        Err(format!("{st} {text}"))
    }
}

fn rotate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = keyferry();
    c.args(["admin", "rotate-root-key"]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run keyferry admin rotate-root-key")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Decrypt the ciphertexts round-robin on every server until stopped; a CreateKey + Encrypt
/// every tenth round (new material sealed while the rotation runs) adds to the set.
struct Load {
    stop: Arc<AtomicBool>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    done: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(addrs: &[String], cts: &[String]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let done = Arc::new(AtomicUsize::new(0));
        let threads = addrs
            .iter()
            .map(|addr| {
                let (addr, mut cts) = (addr.clone(), cts.to_vec());
                let (stop, errors, done) = (stop.clone(), errors.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut made = Vec::new();
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        if i % 10 == 9 {
                            let ct = key_and_ciphertext(&addr);
                            made.push(ct.clone());
                            cts.push(ct);
                        }
                        if let Err(e) = decrypts(&addr, &cts[i % cts.len()]) {
                            errors.lock().unwrap().push(e);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                    made
                })
            })
            .collect();
        Load {
            stop,
            errors,
            done,
            threads,
        }
    }

    /// Stop; the ciphertexts made meanwhile.
    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let made = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let errors = self.errors.lock().unwrap();
        assert!(
            errors.is_empty(),
            "{} errors: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        assert!(
            self.done.load(Ordering::Relaxed) > 20,
            "the load did not run"
        );
        made
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn rotation_under_load_then_the_old_root_key_is_refused_and_the_new_one_opens_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let new_key = tmp.path().join("new.key");
    let listen = ["--listen", "127.0.0.1:0"];
    let s = Ops::start(&data, &listen, &[]);
    let mut cts: Vec<String> = (0..12).map(|_| key_and_ciphertext(&s.addr)).collect();
    // An HMAC key too: its material is sealed like the others.
    let v = call(
        &s.addr,
        "CreateKey",
        r#"{"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}"#,
    );
    let hmac = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let mac = call(
        &s.addr,
        "GenerateMac",
        &format!(r#"{{"KeyId": "{hmac}", "Message": "aGk=", "MacAlgorithm": "HMAC_SHA_256"}}"#),
    )["Mac"]
        .as_str()
        .unwrap()
        .to_string();

    let load = Load::start(std::slice::from_ref(&s.addr), &cts);
    std::thread::sleep(Duration::from_millis(300));
    let data_arg = path(&data);
    let o = rotate(
        &[
            "--data",
            data_arg,
            "--new-root-key-file",
            path(&new_key),
            "--propagation-wait",
            "1500ms",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("new root key created in"), "{out}");
    assert!(out.contains("re-sealed key"), "{out}");
    assert!(out.contains("done: "), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    cts.extend(load.finish());
    assert!(
        s.wait_log(
            "sealing new material under the new root key",
            Duration::from_secs(1)
        ),
        "{}",
        s.stderr_text()
    );
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&new_key).unwrap();
    assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (32, 0o600));

    // Idempotent: a second run has nothing to do.
    let o = rotate(
        &["--data", data_arg, "--new-root-key-file", path(&new_key)],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("already is this database's root key"),
        "{}",
        text(&o)
    );
    drop(s);

    // The old root key (still in <data>/root.key) no longer starts a server.
    let err = Ops::try_start(&data, &listen, &[])
        .err()
        .expect("started with the old root key after the rotation");
    assert!(
        err.contains("is not the root key this database was sealed with"),
        "{err}"
    );
    assert!(err.contains("rotate-root-key"), "{err}");

    // The new one opens every ciphertext, old and made during the rotation, and the HMAC key.
    let s = Ops::start(
        &data,
        &["--listen", "127.0.0.1:0", "--root-key-file", path(&new_key)],
        &[],
    );
    for ct in &cts {
        decrypts(&s.addr, ct).unwrap();
    }
    let v = call(
        &s.addr,
        "VerifyMac",
        &format!(
            r#"{{"KeyId": "{hmac}", "Message": "aGk=", "MacAlgorithm": "HMAC_SHA_256", "Mac": "{mac}"}}"#
        ),
    );
    assert_eq!(v["MacValid"], true);
}

#[test]
fn a_wrong_current_key_is_refused_and_an_interrupted_rotation_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let new_key = tmp.path().join("new.key");
    let other_key = tmp.path().join("other.key");
    std::fs::write(&other_key, [5u8; 32]).unwrap();
    let listen = ["--listen", "127.0.0.1:0"];
    let s = Ops::start(&data, &listen, &[]);
    let cts: Vec<String> = (0..6).map(|_| key_and_ciphertext(&s.addr)).collect();
    let data_arg = path(&data);
    let base = [
        "--data",
        data_arg,
        "--new-root-key-file",
        path(&new_key),
        "--propagation-wait",
        "0s",
    ];

    // A wrong current root key: refused, and nothing published or created.
    let o = rotate(&base, &[("KEYFERRY_ROOT_KEY", &"11".repeat(32))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not this database's root key"),
        "{}",
        text(&o)
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("published"),
        "{}",
        text(&o)
    );

    // Stopped after two keys (exit status 3: under way).
    let o = rotate(&[&base[..], &["--limit", "2"]].concat(), &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(out.matches("re-sealed key").count(), 2, "{out}");
    assert!(out.contains("run the same command again"), "{out}");
    // The running server holds both keys: everything decrypts, and new keys work.
    for ct in &cts {
        decrypts(&s.addr, ct).unwrap();
    }
    // Once the server has seen the new root key (it looks every second), new material is
    // sealed under it.
    assert!(s.wait_log(
        "sealing new material under the new root key",
        Duration::from_secs(3)
    ));
    let during = key_and_ciphertext(&s.addr);
    drop(s);

    // Mid-rotation, the new root key alone does not start a server; the current one does
    // (and opens material under both).
    let err = Ops::try_start(
        &data,
        &["--listen", "127.0.0.1:0", "--root-key-file", path(&new_key)],
        &[],
    )
    .err()
    .expect("started with the new root key mid-rotation");
    assert!(err.contains("rotation still under way"), "{err}");
    let s = Ops::start(&data, &listen, &[]);
    for ct in cts.iter().chain([&during]) {
        decrypts(&s.addr, ct).unwrap();
    }

    // Another new root key while this rotation is under way: refused.
    let o = rotate(
        &[
            "--data",
            data_arg,
            "--new-root-key-file",
            path(&other_key),
            "--propagation-wait",
            "0s",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("another rotation, to a different new root key"),
        "{}",
        text(&o)
    );

    // Resumed: the rest is re-sealed (the keys done before are left alone).
    let o = rotate(&base, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("resuming the rotation"), "{out}");
    assert!(out.contains("new root key from"), "{out}");
    assert_eq!(out.matches("re-sealed key").count(), 4, "{out}");
    assert!(out.contains("done: 7 keys, 4 re-sealed"), "{out}");
    drop(s);
    let s = Ops::start(
        &data,
        &["--listen", "127.0.0.1:0", "--root-key-file", path(&new_key)],
        &[],
    );
    for ct in cts.iter().chain([&during]) {
        decrypts(&s.addr, ct).unwrap();
    }
}

#[test]
fn rotation_on_postgresql_while_two_servers_answer() {
    let Ok(url) = std::env::var("KEYFERRY_TEST_POSTGRES_URL") else {
        println!("skipped: KEYFERRY_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)");
        return;
    };
    // A database of its own (the rotation changes the database's root key).
    let db = format!("rotate_{}", std::process::id());
    let st = std::process::Command::new("psql")
        .args([url.as_str(), "-qc", &format!("CREATE DATABASE {db}")])
        .status()
        .unwrap();
    assert!(st.success());
    let (base, _) = url.rsplit_once('/').unwrap();
    let db_url = format!("{base}/{db}");
    let tmp = tempfile::tempdir().unwrap();
    let old_key = tmp.path().join("old.key");
    std::fs::write(&old_key, [3u8; 32]).unwrap();
    let new_key = tmp.path().join("new.key");
    let flags = |key: &Path| {
        vec![
            "--listen".to_string(),
            "127.0.0.1:0".into(),
            "--database-url".into(),
            db_url.clone(),
            "--root-key-file".into(),
            path(key).to_string(),
            "--cache-ttl-ms".into(),
            "200".into(),
        ]
    };
    let start = |dir: &str, key: &Path| {
        let f = flags(key);
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        Ops::try_start(&tmp.path().join(dir), &f, &[])
    };
    let a = start("a", &old_key).unwrap();
    let b = start("b", &old_key).unwrap();
    let mut cts: Vec<String> = (0..8).map(|_| key_and_ciphertext(&a.addr)).collect();
    let load = Load::start(&[a.addr.clone(), b.addr.clone()], &cts);
    std::thread::sleep(Duration::from_millis(300));
    let o = rotate(
        &[
            "--data",
            path(tmp.path()),
            "--database-url",
            &db_url,
            "--root-key-file",
            path(&old_key),
            "--new-root-key-file",
            path(&new_key),
            "--propagation-wait",
            "1500ms",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    std::thread::sleep(Duration::from_millis(500));
    cts.extend(load.finish());
    drop((a, b));
    let err = start("c", &old_key)
        .err()
        .expect("the old root key started a node");
    assert!(
        err.contains("is not the root key this database was sealed with"),
        "{err}"
    );
    let c = start("c", &new_key).unwrap();
    for ct in &cts {
        decrypts(&c.addr, ct).unwrap();
    }
    drop(c);
    let _ = std::process::Command::new("psql")
        .args([
            url.as_str(),
            "-qc",
            &format!("DROP DATABASE {db} WITH (FORCE)"),
        ])
        .status();
}
