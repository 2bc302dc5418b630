//! `keyferry import` end to end from a real Kryoptic token (the Rust soft token from crates.io,
//! built by `KEYFERRY_WITH_KRYOPTIC=1 scripts/tokens/install.sh`; keys made by
//! scripts/tokens/kryoptic-setup.sh with pkcs11-tool) into the real `keyferry serve`: every key
//! type it makes (AES-256, HMAC-256, EC P-256/P-384, RSA-2048/3072/4096) imported with SHA-256
//! wrapping and verified from outside: the token signs or MACs and KMS verifies, public keys
//! compared, and the AES value re-imported with the aws CLI + openssl as EXISTING_KEY_MATERIAL
//! (which KMS accepts only for the same material). RSA keys go through RSA_AES_KEY_WRAP_SHA_256,
//! whose AES key wrap is Kryoptic's standard CKM_AES_KEY_WRAP_KWP (0x210B), sent with a raw
//! C_WrapKey after the known-answer probe vouched for it. Each test has its own token
//! database and passes KRYOPTIC_CONF to the keyferry process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod import_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MacAlgorithmSpec, MessageType, SigningAlgorithmSpec};
use common::Server;
use import_support::*;

const LABEL: &str = "kf-kryoptic";

/// libkryoptic_pkcs11.so: $KRYOPTIC_MODULE, else in $KRYOPTIC_DIR, else where
/// scripts/tokens/install.sh puts it (~/.cache/keyferry/kryoptic).
fn kryoptic_module() -> PathBuf {
    let module = match (
        std::env::var_os("KRYOPTIC_MODULE"),
        std::env::var_os("KRYOPTIC_DIR"),
    ) {
        (Some(m), _) => PathBuf::from(m),
        (None, Some(d)) => PathBuf::from(d).join("libkryoptic_pkcs11.so"),
        (None, None) => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
            })
            .join("keyferry/kryoptic/libkryoptic_pkcs11.so"),
    };
    assert!(
        module.exists(),
        "Kryoptic is not installed ({} is missing): run KEYFERRY_WITH_KRYOPTIC=1 scripts/tokens/install.sh",
        module.display()
    );
    module
}

/// A Kryoptic token made by scripts/tokens/kryoptic-setup.sh in its own temporary directory.
struct Kryoptic {
    dir: tempfile::TempDir,
    conf: String,
    module: String,
}

impl Kryoptic {
    fn new() -> Kryoptic {
        let module = kryoptic_module();
        let dir = tempfile::tempdir().unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/tokens/kryoptic-setup.sh");
        let out = Command::new("sh")
            .arg(&script)
            .args([dir.path().to_str().unwrap(), LABEL, USER_PIN])
            .env("KRYOPTIC_MODULE", &module)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kryoptic-setup.sh: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = dir.path().join("kryoptic.conf");
        Kryoptic {
            conf: conf.to_str().unwrap().to_string(),
            dir,
            module: module.to_str().unwrap().to_string(),
        }
    }

    fn uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token={LABEL};object={object}?module-path={}",
            self.module
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KRYOPTIC_CONF", self.conf.clone()),
            ("KEYFERRY_PKCS11_PIN", USER_PIN.to_string()),
        ]
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// pkcs11-tool against this token (logged in).
    fn pkcs11_tool(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("pkcs11-tool")
            .args([
                "--module",
                &self.module,
                "--token-label",
                LABEL,
                "--login",
                "--pin",
                USER_PIN,
            ])
            .args(args)
            .env("KRYOPTIC_CONF", &self.conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Sign `input` in the token with `mechanism` (pkcs11-tool names), by CKA_ID.
    fn sign(&self, id: &str, mechanism: &str, input: &[u8]) -> Vec<u8> {
        let (i, o) = (self.path("sign.in"), self.path("sign.out"));
        std::fs::write(&i, input).unwrap();
        let mut args = vec![
            "--sign",
            "--mechanism",
            mechanism,
            "--id",
            id,
            "--input-file",
            i.to_str().unwrap(),
            "--output-file",
            o.to_str().unwrap(),
        ];
        if mechanism == "ECDSA" {
            args.extend_from_slice(&["--signature-format", "openssl"]);
        }
        self.pkcs11_tool(&args);
        std::fs::read(&o).unwrap()
    }
}

/// The aws CLI against `server`; returns (exit code, stdout, stderr).
fn aws(server: &Server, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new("aws");
    cmd.args(args);
    server.aws_env(&mut cmd);
    let out = cmd.output().expect("run aws");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Re-import `material` into `arn` as EXISTING_KEY_MATERIAL `material_id` the way the AWS
/// documentation does it: GetParametersForImport with the aws CLI, RSA-OAEP SHA-256 with openssl,
/// ImportKeyMaterial with the aws CLI. KMS accepts it only when `material` is the key it holds.
fn reimport_with_aws_cli(
    server: &Server,
    dir: &Path,
    arn: &str,
    material_id: &str,
    material: &[u8],
) -> (i32, String, String) {
    let (code, out, err) = aws(
        server,
        &[
            "kms",
            "get-parameters-for-import",
            "--key-id",
            arn,
            "--wrapping-algorithm",
            "RSAES_OAEP_SHA_256",
            "--wrapping-key-spec",
            "RSA_2048",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "get-parameters-for-import: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let b64 = |f: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(v[f].as_str().unwrap())
            .unwrap()
    };
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    std::fs::write(p("wk.der"), b64("PublicKey")).unwrap();
    std::fs::write(p("token.bin"), b64("ImportToken")).unwrap();
    std::fs::write(p("material.bin"), material).unwrap();
    run(
        "openssl",
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            &p("wk.der"),
            "-in",
            &p("material.bin"),
            "-out",
            &p("wrapped.bin"),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
    );
    aws(
        server,
        &[
            "kms",
            "import-key-material",
            "--key-id",
            arn,
            "--encrypted-key-material",
            &format!("fileb://{}", p("wrapped.bin")),
            "--import-token",
            &format!("fileb://{}", p("token.bin")),
            "--expiration-model",
            "KEY_MATERIAL_DOES_NOT_EXPIRE",
            "--import-type",
            "EXISTING_KEY_MATERIAL",
            "--key-material-id",
            material_id,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kryoptic_keys_imported_and_verified() {
    let server = Server::start();
    let token = Kryoptic::new();
    let env = token.env();
    let env = env_refs(&env);
    let sdk = server.sdk().await;
    let msg = b"independent check of a Kryoptic key".to_vec();
    for (object, id, spec) in [
        ("aes-256", "01", "SYMMETRIC_DEFAULT"),
        ("hmac-256", "02", "HMAC_256"),
        ("ec-p256", "04", "ECC_NIST_P256"),
        ("ec-p384", "05", "ECC_NIST_P384"),
        ("rsa-2048", "06", "RSA_2048"),
        ("rsa-3072", "07", "RSA_3072"),
        ("rsa-4096", "08", "RSA_4096"),
    ] {
        let uri = token.uri(object);
        let mut args = vec!["--pkcs11-uri", uri.as_str()];
        // A 32-byte generic secret could be HMAC_224 or HMAC_256: the user says which.
        if spec.starts_with("HMAC") {
            args.extend_from_slice(&["--key-spec", spec]);
        }
        let v = import_json(&server, &args, &env);
        assert_eq!(v["KeySpec"], spec, "{v}");
        assert!(v["Source"].as_str().unwrap().contains(object), "{v}");
        let arn = v["KeyId"].as_str().unwrap();
        // Kryoptic OAEP-wraps with SHA-256; RSA keys need RSA_AES_KEY_WRAP, i.e. its 0x210B.
        let expected = if spec.starts_with("RSA") {
            "RSA_AES_KEY_WRAP_SHA_256"
        } else {
            "RSAES_OAEP_SHA_256"
        };
        assert_eq!(v["WrappingAlgorithm"], expected, "{v}");
        match spec {
            "SYMMETRIC_DEFAULT" => {
                let checks = v["Checks"].to_string();
                assert!(checks.contains("EXISTING_KEY_MATERIAL"), "{v}");
                let mid = v["KeyMaterialId"].as_str().unwrap();
                let value = std::fs::read(token.path("aes-256.bin")).unwrap();
                // The token's AES value, wrapped by openssl: KMS takes it as the same material.
                let (code, _, err) =
                    reimport_with_aws_cli(&server, token.dir.path(), arn, mid, &value);
                assert_eq!(code, 0, "KMS does not hold the token's AES key: {err}");
                // Any other value is refused, so the check above can fail.
                let mut other = value.clone();
                other[0] ^= 1;
                let (code, _, err) =
                    reimport_with_aws_cli(&server, token.dir.path(), arn, mid, &other);
                assert_ne!(code, 0, "KMS accepted different material");
                assert!(err.contains("IncorrectKeyMaterialException"), "{err}");
            }
            "HMAC_256" => {
                let mac = token.sign(id, "SHA256-HMAC", &msg);
                let out = sdk
                    .generate_mac()
                    .key_id(arn)
                    .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                    .message(Blob::new(msg.clone()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(out.mac().unwrap().as_ref(), mac.as_slice(), "{object}");
            }
            _ => {
                let (signature, alg, message, kind) = match spec {
                    "ECC_NIST_P256" | "ECC_NIST_P384" => {
                        // The token signs the digest (CKM_ECDSA); KMS verifies it as DIGEST.
                        let (dgst, alg) = if spec == "ECC_NIST_P256" {
                            ("-sha256", SigningAlgorithmSpec::EcdsaSha256)
                        } else {
                            ("-sha384", SigningAlgorithmSpec::EcdsaSha384)
                        };
                        let m = token.path("msg");
                        std::fs::write(&m, &msg).unwrap();
                        let digest =
                            run("openssl", &["dgst", dgst, "-binary", m.to_str().unwrap()]);
                        (
                            token.sign(id, "ECDSA", &digest),
                            alg,
                            digest,
                            MessageType::Digest,
                        )
                    }
                    _ => (
                        token.sign(id, "SHA256-RSA-PKCS", &msg),
                        SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
                        msg.clone(),
                        MessageType::Raw,
                    ),
                };
                let out = sdk
                    .verify()
                    .key_id(arn)
                    .signing_algorithm(alg)
                    .message_type(kind)
                    .message(Blob::new(message))
                    .signature(Blob::new(signature))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    out.signature_valid(),
                    "KMS rejects the token's {spec} signature"
                );
                // pkcs11-tool cannot export a P-384 public key ("cannot create EVP_PKEY").
                if spec != "ECC_NIST_P384" {
                    let from_token = token.pkcs11_tool(&[
                        "--read-object",
                        "--type",
                        "pubkey",
                        "--label",
                        object,
                    ]);
                    let pk = sdk.get_public_key().key_id(arn).send().await.unwrap();
                    assert_eq!(
                        pk.public_key().unwrap().as_ref(),
                        from_token.as_slice(),
                        "{object}: KMS public key differs from the token's"
                    );
                }
                assert!(v["Checks"].to_string().contains("Sign"), "{v}");
            }
        }
        println!("kryoptic {object}: imported with {expected} and verified");
    }
    // The import left no temporary object (wrapping key, ephemeral AES key, probe keys).
    let listing = String::from_utf8_lossy(&token.pkcs11_tool(&["--list-objects"])).to_string();
    // The setup script's 2 secret keys and 5 key pairs, nothing more.
    assert_eq!(listing.matches("Key Object").count(), 12, "{listing}");
}

/// The known-answer probe picks 0x210B on Kryoptic even when told 0x210A (which Kryoptic does
/// not implement), says so, and the RSA key imports with it; stderr has no dependency log line
/// (Kryoptic lists mechanisms the cryptoki crate has no name for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kryoptic_probe_prefers_what_works_over_the_hint() {
    let server = Server::start();
    let token = Kryoptic::new();
    let env = token.env();
    let env = env_refs(&env);
    let uri = token.uri("rsa-2048");
    let r = keyferry(
        &server,
        &[
            "import",
            "--pkcs11-uri",
            &uri,
            "--kwp-mechanism",
            "0x210A",
            "--output",
            "json",
        ],
        &env,
    )
    .ok();
    assert!(
        !r.stderr.contains("cryptoki") && !r.stderr.contains("ERROR"),
        "stderr:\n{}",
        r.stderr
    );
    let v = r.json();
    assert_eq!(v["Verified"], true, "{v}");
    assert_eq!(v["WrappingAlgorithm"], "RSA_AES_KEY_WRAP_SHA_256", "{v}");
    let notes = v["Notes"].to_string();
    assert!(
        notes.contains("CKM_AES_KEY_WRAP_PAD (0x210A)")
            && notes.contains("did not give RFC 5649")
            && notes.contains("CKM_AES_KEY_WRAP_KWP (0x210B) did and is used"),
        "{v}"
    );
}

/// Kryoptic's configuration forgotten, mistyped, or naming a database without a token: each
/// message names KRYOPTIC_CONF with its value (not SoftHSM's variable), and no KMS key exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kryoptic_configuration_mistakes_name_kryoptic_conf() {
    let server = Server::start();
    let token = Kryoptic::new();
    let uri = token.uri("aes-256");
    let empty = tempfile::tempdir().unwrap();
    let fresh = empty.path().join("fresh.conf");
    std::fs::write(
        &fresh,
        format!(
            "[[slots]]\nslot = 42\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n",
            empty.path().join("fresh.sql").display()
        ),
    )
    .unwrap();
    let mistyped = token.conf.replace("kryoptic.conf", "kryoptc.conf");
    let cases: [(&str, Option<&str>, &str); 3] = [
        ("forgotten", None, "KRYOPTIC_CONF is not set"),
        ("mistyped", Some(mistyped.as_str()), "KRYOPTIC_CONF="),
        (
            "no token in the database",
            Some(fresh.to_str().unwrap()),
            "an uninitialised token",
        ),
    ];
    for (what, conf, expected) in cases {
        let mut cmd_env = vec![
            ("KEYFERRY_PKCS11_PIN", USER_PIN),
            // Kryoptic's fallback (~/.config/kryoptic/token.conf) must not exist either.
            ("XDG_CONFIG_HOME", empty.path().to_str().unwrap()),
        ];
        if let Some(c) = conf {
            cmd_env.push(("KRYOPTIC_CONF", c));
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyferry"));
        cmd.args(["import", "--pkcs11-uri", &uri])
            .env_remove("KRYOPTIC_CONF")
            .env_remove("SOFTHSM2_CONF");
        server.aws_env(&mut cmd);
        cmd.envs(cmd_env);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: {stderr}");
        assert!(
            stderr.contains(expected)
                && stderr.contains("Kryoptic reads its token database from KRYOPTIC_CONF")
                && !stderr.contains("SOFTHSM2_CONF")
                && !stderr.contains("panicked"),
            "{what}: {stderr}"
        );
        if let Some(c) = conf {
            assert!(stderr.contains(c), "{what}: {stderr}");
        }
        assert!(
            key_states(&server).await.is_empty(),
            "{what}: a KMS key was created"
        );
    }
}
