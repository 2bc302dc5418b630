//! `keyferry import` end to end with file sources, against the real `keyferry serve`, run as a
//! user runs the built binary: every key spec (files made by openssl), re-import after
//! DeleteImportedKeyMaterial, different material refused, the user mistakes (no key left
//! Enabled), a batch, the offline path with the aws CLI, and `keyferry demo`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod import_support;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;
use common::Server;
use import_support::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

async fn check_mac(server: &Server, arn: &str, key: &[u8], spec: &str) {
    use aws_lc_rs::hmac;
    let (alg, kms_alg) = match spec {
        "HMAC_224" => (hmac::HMAC_SHA224, MacAlgorithmSpec::HmacSha224),
        "HMAC_256" => (hmac::HMAC_SHA256, MacAlgorithmSpec::HmacSha256),
        "HMAC_384" => (hmac::HMAC_SHA384, MacAlgorithmSpec::HmacSha384),
        _ => (hmac::HMAC_SHA512, MacAlgorithmSpec::HmacSha512),
    };
    let msg = b"independent check";
    let sdk = server.sdk().await;
    let out = sdk
        .generate_mac()
        .key_id(arn)
        .mac_algorithm(kms_alg)
        .message(Blob::new(msg.to_vec()))
        .send()
        .await
        .unwrap();
    let local = hmac::sign(&hmac::Key::new(alg, key), msg);
    assert_eq!(out.mac().unwrap().as_ref(), local.as_ref(), "{spec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_spec_from_files() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        "SYMMETRIC_DEFAULT",
        "HMAC_224",
        "HMAC_256",
        "HMAC_384",
        "HMAC_512",
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
    ];
    let sdk = server.sdk().await;
    for spec in specs {
        let file = openssl_key(dir.path(), spec);
        let mut args = vec!["--material", s(&file)];
        // Raw HMAC material needs its spec; the rest is inferred and checked.
        if spec.starts_with("HMAC") {
            args.extend_from_slice(&["--key-spec", spec]);
        }
        let v = import_json(&server, &args, &[]);
        assert_eq!(v["KeySpec"], spec, "{v}");
        let arn = v["KeyId"].as_str().unwrap();
        let d = sdk.describe_key().key_id(arn).send().await.unwrap();
        let m = d.key_metadata().unwrap();
        assert_eq!(m.key_state().unwrap().as_str(), "Enabled", "{spec}");
        assert_eq!(m.origin().unwrap().as_str(), "EXTERNAL", "{spec}");
        if spec.starts_with("RSA") || spec.starts_with("ECC") {
            let pk = sdk.get_public_key().key_id(arn).send().await.unwrap();
            assert_eq!(
                pk.public_key().unwrap().as_ref(),
                openssl_public_der(&file).as_slice(),
                "{spec}: KMS public key differs from openssl's"
            );
            let checks = v["Checks"].to_string();
            assert!(checks.contains("Sign"), "{v}");
        } else if spec.starts_with("HMAC") {
            check_mac(&server, arn, &std::fs::read(&file).unwrap(), spec).await;
        } else {
            assert!(
                v["KeyMaterialId"].as_str().is_some_and(|i| !i.is_empty()),
                "{v}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reimport_after_delete_and_different_material_refused() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let a = openssl_key(dir.path(), "ECC_NIST_P256");
    let valid_to = String::from_utf8(run(
        "date",
        &["-u", "-d", "+30 days", "+%Y-%m-%dT%H:%M:%SZ"],
    ))
    .unwrap()
    .trim()
    .to_string();
    let v = import_json(
        &server,
        &["--material", s(&a), "--valid-to", &valid_to],
        &[],
    );
    let arn = v["KeyId"].as_str().unwrap().to_string();
    assert_eq!(v["ValidTo"], valid_to.as_str());
    let sdk = server.sdk().await;
    sdk.delete_imported_key_material()
        .key_id(&arn)
        .send()
        .await
        .unwrap();
    let state = |sdk: aws_sdk_kms::Client, arn: String| async move {
        sdk.describe_key()
            .key_id(arn)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_state()
            .unwrap()
            .as_str()
            .to_string()
    };
    assert_eq!(state(sdk.clone(), arn.clone()).await, "PendingImport");

    // Different material into that key: refused with AWS's reason; the key stays PendingImport.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let b = openssl_key(&other, "ECC_NIST_P256");
    let r = keyferry(
        &server,
        &["import", "--key-id", &arn, "--material", s(&b)],
        &[],
    )
    .failed();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("IncorrectKeyMaterialException"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("create a new key"), "{}", r.stderr);
    assert_eq!(state(sdk.clone(), arn.clone()).await, "PendingImport");

    // The same material again: accepted, verified, same key.
    let v2 = import_json(
        &server,
        &["--key-id", &arn, "--material", s(&a), "--no-expiry"],
        &[],
    );
    assert_eq!(v2["KeyId"], arn.as_str());
    assert_eq!(v2["Created"], false);
    assert_eq!(state(sdk.clone(), arn.clone()).await, "Enabled");

    // A key spec that does not match the existing key: refused before anything is sent.
    let rsa = openssl_key(dir.path(), "RSA_2048");
    let r = keyferry(
        &server,
        &["import", "--key-id", &arn, "--material", s(&rsa)],
        &[],
    )
    .failed();
    assert!(
        r.stderr.contains("RSA_2048") && r.stderr.contains("ECC_NIST_P256"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_mistakes_fail_clearly_and_leave_no_enabled_key() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let ec = openssl_key(dir.path(), "ECC_NIST_P256");
    let aes = openssl_key(dir.path(), "SYMMETRIC_DEFAULT");

    // Material that does not match the key spec.
    let r = keyferry(
        &server,
        &["import", "--material", s(&ec), "--key-spec", "RSA_2048"],
        &[],
    )
    .failed();
    assert!(
        r.stderr.contains("ECC_NIST_P256") && r.stderr.contains("RSA_2048"),
        "{}",
        r.stderr
    );
    let r = keyferry(
        &server,
        &["import", "--material", s(&aes), "--key-spec", "HMAC_512"],
        &[],
    )
    .failed();
    assert!(r.stderr.contains("HMAC_512"), "{}", r.stderr);

    // A wrapping algorithm that cannot carry the material.
    let rsa = openssl_key(dir.path(), "RSA_2048");
    let r = keyferry(
        &server,
        &[
            "import",
            "--material",
            s(&rsa),
            "--wrapping-algorithm",
            "RSAES_OAEP_SHA_256",
        ],
        &[],
    )
    .failed();
    assert!(
        r.stderr.contains("RSA_AES_KEY_WRAP_SHA_256"),
        "{}",
        r.stderr
    );

    // Missing file, no source, expiry in the past, a key that does not exist.
    let r = keyferry(
        &server,
        &["import", "--material", "/nonexistent/key.pem"],
        &[],
    )
    .failed();
    assert!(r.stderr.contains("/nonexistent/key.pem"), "{}", r.stderr);
    let r = keyferry(&server, &["import"], &[]).failed();
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--material"), "{}", r.stderr);
    let r = keyferry(
        &server,
        &[
            "import",
            "--material",
            s(&aes),
            "--valid-to",
            "2001-01-01T00:00:00Z",
        ],
        &[],
    )
    .failed();
    assert!(r.stderr.contains("in the past"), "{}", r.stderr);
    let r = keyferry(
        &server,
        &[
            "import",
            "--material",
            s(&aes),
            "--valid-to",
            "2999-01-01T00:00:00Z",
        ],
        &[],
    )
    .failed();
    assert!(r.stderr.contains("365 days"), "{}", r.stderr);
    let r = keyferry(
        &server,
        &["import", "--material", s(&aes), "--key-id", "alias/nope"],
        &[],
    )
    .failed();
    assert!(r.stderr.contains("NotFoundException"), "{}", r.stderr);
    // A wrong endpoint: a network error with the hint.
    let r = keyferry(
        &server,
        &[
            "import",
            "--material",
            s(&aes),
            "--endpoint-url",
            "http://127.0.0.1:9",
        ],
        &[],
    )
    .failed();
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("--endpoint-url"), "{}", r.stderr);
    assert!(
        key_states(&server).await.is_empty(),
        "no key may be created by a mistake caught locally"
    );

    // A taken alias is found before CreateKey: no second key.
    import_json(&server, &["--material", s(&aes), "--alias", "taken"], &[]);
    let r = keyferry(
        &server,
        &["import", "--material", s(&ec), "--alias", "alias/taken"],
        &[],
    )
    .failed();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("alias/taken already exists")
            && r.stderr.contains("no key was created")
            && r.stderr.contains("--key-id alias/taken"),
        "{}",
        r.stderr
    );
    let states = key_states(&server).await;
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(states[0].1, "Enabled", "{states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_of_files() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    openssl_key(&keys, "SYMMETRIC_DEFAULT");
    openssl_key(&keys, "ECC_NIST_P256");
    openssl_key(&keys, "ECC_SECG_P256K1");
    let extra = openssl_key(dir.path(), "RSA_2048");
    let r = keyferry(
        &server,
        &[
            "import",
            "--material",
            s(&keys),
            "--material",
            s(&extra),
            "--output",
            "json",
        ],
        &[],
    )
    .ok();
    let v = r.json();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 4, "{v}");
    assert!(arr.iter().all(|o| o["Verified"] == true), "{v}");
    let states = key_states(&server).await;
    assert_eq!(states.iter().filter(|(_, s)| s == "Enabled").count(), 4);

    // Text output: a table, and a failing member makes the exit code non-zero.
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, b"not key material").unwrap();
    let aes = keys.join("aes-256.bin");
    let r = keyferry(
        &server,
        // aes-256.bin was imported above: --allow-duplicate (else it is refused as a duplicate).
        &[
            "import",
            "--material",
            s(&aes),
            "--material",
            s(&bad),
            "--allow-duplicate",
        ],
        &[],
    )
    .failed();
    assert!(r.stdout.starts_with("SOURCE"), "{}", r.stdout);
    assert!(r.stdout.contains("imported, verified"), "{}", r.stdout);
    assert!(r.stdout.contains("FAILED"), "{}", r.stdout);
    assert!(r.stderr.contains("1 of 2 imports failed"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_fetch_wrap_then_aws_cli_import() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let ec = openssl_key(dir.path(), "ECC_NIST_P384");
    let aws = |args: &[&str]| -> serde_json::Value {
        let mut cmd = std::process::Command::new("aws");
        cmd.args(args).args(["--output", "json"]);
        server.aws_env(&mut cmd);
        let out = cmd.output().expect("aws CLI");
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    let created = aws(&[
        "kms",
        "create-key",
        "--origin",
        "EXTERNAL",
        "--key-spec",
        "ECC_NIST_P384",
        "--key-usage",
        "SIGN_VERIFY",
    ]);
    let key_id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let zip = dir.path().join("ImportParameters.zip");
    let token = dir.path().join("ImportToken.bin");
    let ekm = dir.path().join("EncryptedKeyMaterial.bin");
    let r = keyferry(
        &server,
        &[
            "import",
            "fetch-parameters",
            "--key-id",
            &key_id,
            "--out",
            s(&zip),
            "--token-out",
            s(&token),
        ],
        &[],
    )
    .ok();
    assert!(r.stdout.contains("RSAES_OAEP_SHA_256"), "{}", r.stdout);
    // The wrap step needs no network: no AWS environment at all.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyferry"))
        .args([
            "import",
            "wrap",
            "--parameters",
            s(&zip),
            "--material",
            s(&ec),
            "--out",
            s(&ekm),
        ])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("RSAES_OAEP_SHA_256"));
    aws(&[
        "kms",
        "import-key-material",
        "--key-id",
        &key_id,
        "--encrypted-key-material",
        &format!("fileb://{}", s(&ekm)),
        "--import-token",
        &format!("fileb://{}", s(&token)),
        "--expiration-model",
        "KEY_MATERIAL_DOES_NOT_EXPIRE",
    ]);
    let d = aws(&["kms", "describe-key", "--key-id", &key_id]);
    assert_eq!(d["KeyMetadata"]["KeyState"], "Enabled", "{d}");
    let pk = server
        .sdk()
        .await
        .get_public_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        pk.public_key().unwrap().as_ref(),
        openssl_public_der(&ec).as_slice()
    );

    // Wrapping against parameters of the wrong algorithm for the material is refused locally.
    let rsa = openssl_key(dir.path(), "RSA_2048");
    let r = keyferry(
        &server,
        &[
            "import",
            "wrap",
            "--parameters",
            s(&zip),
            "--material",
            s(&rsa),
            "--out",
            s(&ekm),
        ],
        &[],
    )
    .failed();
    assert!(r.stderr.contains("RSA_AES_KEY_WRAP"), "{}", r.stderr);
}

#[test]
fn demo_runs_end_to_end() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyferry"))
        .arg("demo")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("KEYFERRY_ACCESS_KEY_ID")
        .env_remove("KEYFERRY_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("Imported and verified: arn:").count(),
        4,
        "{stdout}"
    );
    for spec in ["SYMMETRIC_DEFAULT", "HMAC_256", "ECC_NIST_P256", "RSA_2048"] {
        assert!(stdout.contains(spec), "{spec}: {stdout}");
    }
    assert!(stdout.contains("KMS Sign (RSASSA_PSS_SHA_256) verified locally"));
    assert!(stdout.contains("KMS GenerateMac (HMAC_SHA_256) equals"));
}
