//! `--root-key-pkcs11`: the root key in a real SoftHSM2 token (made by scripts/softhsm-setup.sh in
//! a temporary directory, the HSM key made with pkcs11-tool as the README says). The server seals
//! its working root key with the token's non-extractable AES key into `<data>/root.key.hsm`,
//! opens it again at the next start, and refuses a wrong PIN, an extractable key, a wrong
//! token, another HSM key, a missing `root.key.hsm` for a database holding keys, two root keys
//! at once, and (through the database's check value) a `--root-key-file` of another key. The
//! URI from the TOML config file, the module from `KEYFERRY_PKCS11_MODULE`, the PIN from
//! `pin-source`; `admin backup`/`restore` and `admin rotate-root-key` with the HSM key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ops_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ops_support::{Ops, roundtrip, signed_raw};

const LABEL: &str = "keyferry";
const PIN: &str = "5678";

fn softhsm_module() -> String {
    for m in [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ] {
        if Path::new(m).exists() {
            return m.to_string();
        }
    }
    panic!("libsofthsm2.so not found: apt-get install softhsm2 opensc");
}

struct Hsm {
    _dir: tempfile::TempDir,
    conf: String,
    module: String,
}

impl Hsm {
    /// A token with the setup script's keys, plus the root key made as the README says.
    fn new() -> Hsm {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/softhsm-setup.sh");
        let out = Command::new("sh")
            .arg(&script)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = dir
            .path()
            .join("softhsm2.conf")
            .to_str()
            .unwrap()
            .to_string();
        let hsm = Hsm {
            _dir: dir,
            conf,
            module: softhsm_module(),
        };
        hsm.tool(&[
            "--keygen",
            "--key-type",
            "AES:32",
            "--label",
            "keyferry-root",
            "--sensitive",
            "--usage-decrypt",
        ]);
        hsm
    }

    fn tool(&self, args: &[&str]) -> String {
        let out = Command::new("pkcs11-tool")
            .args([
                "--module",
                &self.module,
                "--token-label",
                LABEL,
                "--login",
                "--pin",
                PIN,
            ])
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn uri(&self, path_attrs: &str) -> String {
        format!("pkcs11:{path_attrs}?module-path={}", self.module)
    }
}

fn encrypt_under_new_key(addr: &str) -> String {
    let (st, body) = roundtrip(
        addr,
        &signed_raw(addr, "CreateKey", r#"{"Description": "hsm root"}"#),
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

fn decrypt(addr: &str, ct: &str) -> (u16, String) {
    roundtrip(
        addr,
        &signed_raw(addr, "Decrypt", &format!(r#"{{"CiphertextBlob": "{ct}"}}"#)),
    )
}

#[test]
fn root_key_sealed_in_softhsm_survives_restarts_and_wrong_keys_are_refused() {
    let hsm = Hsm::new();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let uri = hsm.uri(&format!("token={LABEL};object=keyferry-root"));
    let good_env = [
        ("SOFTHSM2_CONF", hsm.conf.as_str()),
        ("KEYFERRY_PKCS11_PIN", PIN),
    ];
    let args = |uri: &str| -> Vec<String> {
        vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--root-key-pkcs11".into(),
            uri.into(),
        ]
    };
    let start = |uri: &str, env: &[(&str, &str)]| {
        let a = args(uri);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        Ops::try_start(&data, &a, env)
    };

    // The HSM key is sensitive and non-extractable (read back from the token).
    let listing = hsm.tool(&["--list-objects", "--type", "secrkey"]);
    let block = listing
        .split("Secret Key Object")
        .find(|b| b.contains("label:      keyferry-root\n"))
        .unwrap_or_else(|| panic!("keyferry-root not listed: {listing}"));
    let access = block
        .lines()
        .find(|l| l.trim_start().starts_with("Access:"))
        .unwrap_or_else(|| panic!("no Access line: {block}"));
    assert!(access.contains("never extractable"), "{access}");
    assert!(access.contains(" sensitive"), "{access}");

    // First start: a new working root key, sealed by the token into root.key.hsm.
    let ct = {
        let s = start(&uri, &good_env).unwrap_or_else(|e| panic!("did not start: {e}"));
        assert!(
            s.wait_log("(new, HSM key pkcs11:", Duration::from_secs(2)),
            "{}",
            s.stderr_text()
        );
        encrypt_under_new_key(&s.addr)
    };
    let sealed_path = data.join("root.key.hsm");
    let sealed = std::fs::read(&sealed_path).unwrap();
    assert_eq!(sealed.len(), 68);
    assert_eq!(&sealed[..8], b"KFHSMRK1");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sealed_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        !data.join("root.key").exists(),
        "a plaintext root key file was written"
    );

    // Restart: the token opens root.key.hsm, the check value matches, old ciphertext decrypts.
    {
        let s = start(&uri, &good_env).unwrap_or_else(|e| panic!("did not restart: {e}"));
        assert!(
            s.wait_log("Matches", Duration::from_secs(2)),
            "{}",
            s.stderr_text()
        );
        let (st, body) = decrypt(&s.addr, &ct);
        assert_eq!(st, 200, "{body}");
        assert!(body.contains("aGVsbG8="), "{body}");
        // The PIN it logged in with is overwritten in its environment block (root reads it).
        if ops_support::is_root() {
            let entries = ops_support::environ_entries(&ops_support::environ_of(s.pid()));
            let value = |name: &str| entries.get(name).map(String::as_str);
            assert_eq!(value("KEYFERRY_PKCS11_PIN"), Some(""));
            assert_eq!(value("SOFTHSM2_CONF"), Some(hsm.conf.as_str()));
        }
    }

    // Wrong PIN: refused, saying what to check.
    let err = start(
        &uri,
        &[
            ("SOFTHSM2_CONF", &hsm.conf),
            ("KEYFERRY_PKCS11_PIN", "0000"),
        ],
    )
    .err()
    .expect("started with a wrong PIN");
    assert!(err.contains("the token rejected the PIN"), "{err}");
    assert!(err.contains("KEYFERRY_PKCS11_PIN"), "{err}");

    // Missing object, wrong token: refused, naming what exists.
    let err = start(
        &hsm.uri(&format!("token={LABEL};object=no-such-key")),
        &good_env,
    )
    .err()
    .expect("started without the HSM key");
    assert!(err.contains("no key with label \"no-such-key\""), "{err}");
    let err = start(&hsm.uri("token=other;object=keyferry-root"), &good_env)
        .err()
        .expect("started on the wrong token");
    assert!(err.contains("no token matches"), "{err}");

    // An extractable key (the setup script's aes-256) is refused: the HSM would not protect it.
    let err = start(
        &hsm.uri(&format!("token={LABEL};object=aes-256")),
        &good_env,
    )
    .err()
    .expect("started with an extractable HSM key");
    assert!(err.contains("CKA_EXTRACTABLE=true"), "{err}");
    assert!(err.contains("--keygen --key-type AES:32"), "{err}");

    // Another non-extractable AES key does not open root.key.hsm (GCM tag), and nothing changes.
    let err = start(&hsm.uri(&format!("token={LABEL};id=%07")), &good_env)
        .err()
        .expect("started with another HSM key");
    assert!(err.contains("does not open"), "{err}");
    assert!(err.contains("sealed by another HSM key"), "{err}");
    assert_eq!(std::fs::read(&sealed_path).unwrap(), sealed);

    // Two root keys named at once.
    let other = tmp.path().join("other.key");
    std::fs::write(&other, [5u8; 32]).unwrap();
    let mut a = args(&uri);
    a.extend(["--root-key-file".into(), other.to_str().unwrap().into()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let err = Ops::try_start(&data, &a, &good_env)
        .err()
        .expect("started with two root keys");
    assert!(err.contains("name two root keys"), "{err}");
    let err = start(
        &uri,
        &[
            ("SOFTHSM2_CONF", &hsm.conf),
            ("KEYFERRY_PKCS11_PIN", PIN),
            ("KEYFERRY_ROOT_KEY", &"22".repeat(32)),
        ],
    )
    .err()
    .expect("started with KEYFERRY_ROOT_KEY beside the HSM");
    assert!(err.contains("unset KEYFERRY_ROOT_KEY"), "{err}");

    // --root-key-file of another key on this database: refused by the check value.
    let err = Ops::try_start(
        &data,
        &[
            "--listen",
            "127.0.0.1:0",
            "--root-key-file",
            other.to_str().unwrap(),
        ],
        &[],
    )
    .err()
    .expect("started with another root key file");
    assert!(
        err.contains("is not the root key this database was sealed with"),
        "{err}"
    );

    // root.key.hsm lost: refused, and no new root key is made for a database holding keys.
    std::fs::rename(&sealed_path, tmp.path().join("saved.hsm")).unwrap();
    let err = start(&uri, &good_env)
        .err()
        .expect("started without root.key.hsm");
    assert!(err.contains("already has a root key"), "{err}");
    assert!(!sealed_path.exists());

    // Restored: everything opens again.
    std::fs::rename(tmp.path().join("saved.hsm"), &sealed_path).unwrap();
    let s = start(&uri, &good_env).unwrap_or_else(|e| panic!("did not start: {e}"));
    let (st, body) = decrypt(&s.addr, &ct);
    assert_eq!(st, 200, "{body}");
}

#[test]
fn root_key_pkcs11_from_the_config_file_and_the_module_from_the_environment() {
    let hsm = Hsm::new();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pin_file = tmp.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let config = tmp.path().join("keyferry.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nroot-key-pkcs11 = \"pkcs11:token={LABEL};object=keyferry-root?pin-source={}\"\n",
            pin_file.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    // No module anywhere: refused, saying where to put it.
    let err = Ops::try_start(&data, &["--config", cfg], &[("SOFTHSM2_CONF", &hsm.conf)])
        .err()
        .expect("started without a PKCS#11 module");
    assert!(err.contains("KEYFERRY_PKCS11_MODULE"), "{err}");
    assert!(!data.join("root.key.hsm").exists());
    let env = [
        ("SOFTHSM2_CONF", hsm.conf.as_str()),
        ("KEYFERRY_PKCS11_MODULE", hsm.module.as_str()),
    ];
    let ct = {
        let s = Ops::start(&data, &["--config", cfg], &env);
        encrypt_under_new_key(&s.addr)
    };
    assert!(data.join("root.key.hsm").exists());
    let s = Ops::start(&data, &["--config", cfg], &env);
    let (st, body) = decrypt(&s.addr, &ct);
    assert_eq!(st, 200, "{body}");
}

fn admin(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = ops_support::keyferry();
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

#[test]
fn backup_carries_root_key_hsm_and_restore_opens_it_with_the_hsm_key() {
    let hsm = Hsm::new();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let uri = hsm.uri(&format!("token={LABEL};object=keyferry-root"));
    let env = [
        ("SOFTHSM2_CONF", hsm.conf.as_str()),
        ("KEYFERRY_PKCS11_PIN", PIN),
    ];
    let serve = ["--listen", "127.0.0.1:0", "--root-key-pkcs11", &uri];
    let out = tmp.path().join("backup");
    let ct = {
        let s = Ops::start(&data, &serve, &env);
        let ct = encrypt_under_new_key(&s.addr);
        // Online backup while the server runs: root.key.hsm goes with it.
        let (ok, stdout, stderr) = admin(
            &[
                "backup",
                "--data",
                data.to_str().unwrap(),
                out.to_str().unwrap(),
            ],
            &env,
        );
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("the backup includes root.key.hsm"),
            "{stdout}"
        );
        ct
    };
    assert_eq!(
        std::fs::read(out.join("root.key.hsm")).unwrap(),
        std::fs::read(data.join("root.key.hsm")).unwrap()
    );
    assert!(!out.join("root.key").exists());
    let manifest = std::fs::read_to_string(out.join("keyferry-backup.toml")).unwrap();
    assert!(
        manifest.contains("root_key_hsm_sealed = true"),
        "{manifest}"
    );

    // Another HSM key does not open the backup's root.key.hsm: nothing is restored.
    let restored = tmp.path().join("restored");
    let other = hsm.uri(&format!("token={LABEL};id=%07"));
    let (ok, _, stderr) = admin(
        &[
            "restore",
            out.to_str().unwrap(),
            "--data",
            restored.to_str().unwrap(),
            "--root-key-pkcs11",
            &other,
        ],
        &env,
    );
    assert!(!ok, "restored with another HSM key");
    assert!(stderr.contains("sealed by another HSM key"), "{stderr}");
    assert!(!restored.join("keyferry.db").exists());

    // The right HSM key: checked against the copy's check value, root.key.hsm installed.
    let (ok, stdout, stderr) = admin(
        &[
            "restore",
            out.to_str().unwrap(),
            "--data",
            restored.to_str().unwrap(),
            "--root-key-pkcs11",
            &uri,
        ],
        &env,
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("matches its check value"), "{stdout}");
    assert!(restored.join("root.key.hsm").exists());
    let s = Ops::start(&restored, &serve, &env);
    assert!(
        s.wait_log("Matches", Duration::from_secs(2)),
        "{}",
        s.stderr_text()
    );
    let (st, body) = decrypt(&s.addr, &ct);
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("aGVsbG8="), "{body}");
}

#[test]
fn rotate_root_key_with_the_root_key_in_an_hsm() {
    let hsm = Hsm::new();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let uri = hsm.uri(&format!("token={LABEL};object=keyferry-root"));
    let env = [
        ("SOFTHSM2_CONF", hsm.conf.as_str()),
        ("KEYFERRY_PKCS11_PIN", PIN),
    ];
    let serve = ["--listen", "127.0.0.1:0", "--root-key-pkcs11", &uri];
    let new_file = tmp.path().join("root.key.hsm.new");
    let s = Ops::start(&data, &serve, &env);
    let ct = encrypt_under_new_key(&s.addr);
    // Rotation while the server runs: the new root key is created sealed by the HSM key.
    let (ok, stdout, stderr) = admin(
        &[
            "rotate-root-key",
            "--data",
            data.to_str().unwrap(),
            "--root-key-pkcs11",
            &uri,
            "--new-root-key-file",
            new_file.to_str().unwrap(),
            "--propagation-wait",
            "1500ms",
        ],
        &env,
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("sealed by the HSM key"), "{stdout}");
    assert!(stdout.contains("rotation finished"), "{stdout}");
    let new_sealed = std::fs::read(&new_file).unwrap();
    assert_eq!(new_sealed.len(), 68);
    assert_eq!(&new_sealed[..8], b"KFHSMRK1");
    assert_ne!(
        new_sealed,
        std::fs::read(data.join("root.key.hsm")).unwrap()
    );
    // The running server still answers.
    let (st, body) = decrypt(&s.addr, &ct);
    assert_eq!(st, 200, "{body}");
    drop(s);

    // The old root.key.hsm no longer opens the database; the new one does.
    let err = Ops::try_start(&data, &serve, &env)
        .err()
        .expect("started with the old root key after the rotation");
    assert!(
        err.contains("is not the root key this database was sealed with"),
        "{err}"
    );
    std::fs::rename(&new_file, data.join("root.key.hsm")).unwrap();
    let s = Ops::start(&data, &serve, &env);
    let (st, body) = decrypt(&s.addr, &ct);
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("aGVsbG8="), "{body}");
}
