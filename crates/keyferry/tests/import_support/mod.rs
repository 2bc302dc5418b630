//! Helpers for the `keyferry import` end-to-end tests: run the built binary as a user would
//! (AWS environment pointing at a real `keyferry serve`), make key files with openssl, make
//! SoftHSM2 tokens with scripts/softhsm-setup.sh, and inspect the server's keys with aws-sdk-kms.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Server;

/// What a `keyferry` run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "keyferry failed:\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn failed(self) -> Self {
        assert_ne!(
            self.code, 0,
            "keyferry should have failed:\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "keyferry panicked:\n{}",
            self.stderr
        );
        self
    }
}

/// Run the built `keyferry` with `args`, the AWS environment of `server`, and extra variables.
pub fn keyferry(server: &Server, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyferry"));
    cmd.args(args).env_remove("KEYFERRY_PKCS11_PIN");
    server.aws_env(&mut cmd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run keyferry");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `keyferry import ARGS --output json`, which must succeed with Verified true.
pub fn import_json(server: &Server, args: &[&str], envs: &[(&str, &str)]) -> serde_json::Value {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", "json"]);
    let v = keyferry(server, &all, envs).ok().json();
    assert_eq!(v["Verified"], serde_json::Value::Bool(true), "{v}");
    assert!(
        v["KeyId"].as_str().unwrap().starts_with("arn:aws:kms:"),
        "{v}"
    );
    v
}

/// Run a tool; panics with its output on failure.
pub fn run(tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Make a key file with openssl for `spec` in `dir`; returns the path.
pub fn openssl_key(dir: &Path, spec: &str) -> PathBuf {
    let p = |name: &str| dir.join(name);
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let raw = |n: &str, file: &str| {
        let path = p(file);
        run("openssl", &["rand", "-out", &s(&path), n]);
        path
    };
    match spec {
        "SYMMETRIC_DEFAULT" => raw("32", "aes-256.bin"),
        "HMAC_224" => raw("28", "hmac-224.bin"),
        "HMAC_256" => raw("32", "hmac-256.bin"),
        "HMAC_384" => raw("48", "hmac-384.bin"),
        "HMAC_512" => raw("64", "hmac-512.bin"),
        "RSA_2048" | "RSA_3072" | "RSA_4096" => {
            let bits = &spec[4..];
            let path = p(&format!("rsa-{bits}.pem"));
            let bits_opt = format!("rsa_keygen_bits:{bits}");
            run(
                "openssl",
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    &bits_opt,
                    "-out",
                    &s(&path),
                ],
            );
            if spec == "RSA_3072" {
                // Traditional PKCS#1 PEM too.
                let trad = p("rsa-3072-trad.pem");
                run(
                    "openssl",
                    &["rsa", "-in", &s(&path), "-traditional", "-out", &s(&trad)],
                );
                return trad;
            }
            path
        }
        _ => {
            let curve = match spec {
                "ECC_NIST_P256" => "prime256v1",
                "ECC_NIST_P384" => "secp384r1",
                "ECC_NIST_P521" => "secp521r1",
                "ECC_SECG_P256K1" => "secp256k1",
                other => panic!("no openssl recipe for {other}"),
            };
            let pem = p(&format!("{curve}.pem"));
            run(
                "openssl",
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    &format!("ec_paramgen_curve:{curve}"),
                    "-out",
                    &s(&pem),
                ],
            );
            if spec == "ECC_NIST_P384" {
                // PKCS#8 DER for this one.
                let der = p(&format!("{curve}.p8.der"));
                run(
                    "openssl",
                    &[
                        "pkcs8",
                        "-topk8",
                        "-nocrypt",
                        "-in",
                        &s(&pem),
                        "-outform",
                        "DER",
                        "-out",
                        &s(&der),
                    ],
                );
                return der;
            }
            if spec == "ECC_NIST_P521" {
                // Traditional SEC1 PEM.
                let trad = p(&format!("{curve}-sec1.pem"));
                run("openssl", &["ec", "-in", &s(&pem), "-out", &s(&trad)]);
                return trad;
            }
            pem
        }
    }
}

/// The DER SPKI of a private key file, by openssl.
pub fn openssl_public_der(key: &Path) -> Vec<u8> {
    run(
        "openssl",
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ],
    )
}

/// Every key on the server with its state.
pub async fn key_states(server: &Server) -> Vec<(String, String)> {
    let sdk = server.sdk().await;
    let list = sdk.list_keys().limit(1000).send().await.unwrap();
    let mut out = Vec::new();
    for k in list.keys() {
        let id = k.key_id().unwrap().to_string();
        let d = sdk.describe_key().key_id(&id).send().await.unwrap();
        let m = d.key_metadata().unwrap();
        out.push((
            m.arn().unwrap().to_string(),
            m.key_state().unwrap().as_str().to_string(),
        ));
    }
    out
}

/// Assert no key on the server is Enabled (after a failed import on an empty server).
pub async fn assert_none_enabled(server: &Server, context: &str) {
    let states = key_states(server).await;
    assert!(
        states.iter().all(|(_, s)| s != "Enabled"),
        "{context}: a key was left Enabled: {states:?}"
    );
}

/// The SoftHSM2 module path on this machine.
pub fn softhsm_module() -> String {
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

/// A SoftHSM2 token made by scripts/softhsm-setup.sh in its own temporary directory.
pub struct Token {
    pub dir: tempfile::TempDir,
    pub conf: String,
    pub module: String,
}

pub const TOKEN_LABEL: &str = "keyferry";
pub const USER_PIN: &str = "5678";

impl Token {
    pub fn new() -> Token {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/softhsm-setup.sh");
        run(
            "sh",
            &[script.to_str().unwrap(), dir.path().to_str().unwrap()],
        );
        let conf = dir
            .path()
            .join("softhsm2.conf")
            .to_str()
            .unwrap()
            .to_string();
        Token {
            dir,
            conf,
            module: softhsm_module(),
        }
    }

    /// A URI for `object` (no PIN: it comes from KEYFERRY_PKCS11_PIN in [`Token::env`]).
    pub fn uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token={TOKEN_LABEL};object={object}?module-path={}",
            self.module
        )
    }

    /// Environment for keyferry with this token and the right PIN.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SOFTHSM2_CONF", self.conf.clone()),
            ("KEYFERRY_PKCS11_PIN", USER_PIN.to_string()),
        ]
    }

    /// pkcs11-tool against this token (logged in).
    pub fn pkcs11_tool(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("pkcs11-tool")
            .args([
                "--module",
                &self.module,
                "--token-label",
                TOKEN_LABEL,
                "--login",
                "--pin",
                USER_PIN,
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
        out.stdout
    }
}

/// Borrowed form of an owned environment list.
pub fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
