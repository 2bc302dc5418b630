//! `keyferry import` end to end from a real SoftHSM2 token (made by scripts/softhsm-setup.sh with
//! pkcs11-tool: sensitive, extractable keys) into the real `keyferry serve`: AES-256, HMAC-256,
//! EC P-256, EC P-384 and RSA-2048 imported and verified, checked independently with
//! pkcs11-tool; the token mistakes (object not found, wrong PIN, CKA_EXTRACTABLE false, a
//! mechanism the token lacks); every matching object at once; the offline wrap in the HSM.
//! Each test has its own token directory and passes SOFTHSM2_CONF to the keyferry process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod import_support;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;
use common::Server;
use import_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_keys_imported_and_verified() {
    let server = Server::start();
    let token = Token::new();
    let env = token.env();
    let env = env_refs(&env);
    let sdk = server.sdk().await;
    for (object, spec) in [
        ("aes-256", "SYMMETRIC_DEFAULT"),
        ("hmac-256", "HMAC_256"),
        ("ec-p256", "ECC_NIST_P256"),
        ("ec-p384", "ECC_NIST_P384"),
        ("rsa-2048", "RSA_2048"),
    ] {
        let uri = token.uri(object);
        let mut args = vec!["--pkcs11-uri", uri.as_str()];
        // A 32-byte generic secret could be HMAC_224 or HMAC_256: the user says which.
        if spec.starts_with("HMAC") {
            args.extend_from_slice(&["--key-spec", spec]);
        }
        let v = import_json(&server, &args, &env);
        assert_eq!(v["KeySpec"], spec, "{v}");
        let arn = v["KeyId"].as_str().unwrap();
        assert!(v["Source"].as_str().unwrap().contains(object), "{v}");
        // SoftHSM2 2.6 wraps with OAEP SHA-1 only.
        assert!(
            v["WrappingAlgorithm"].as_str().unwrap().ends_with("SHA_1"),
            "{v}"
        );
        match spec {
            "ECC_NIST_P384" => {
                // pkcs11-tool cannot export a P-384 public key ("cannot create EVP_PKEY"), so
                // the token signs and KMS verifies.
                let msg = token.dir.path().join("msg384");
                let sig = token.dir.path().join("sig384");
                std::fs::write(&msg, b"independent check").unwrap();
                // SoftHSM2 offers CKM_ECDSA only: sign the SHA-384 digest, verify as DIGEST.
                let digest = run(
                    "openssl",
                    &["dgst", "-sha384", "-binary", msg.to_str().unwrap()],
                );
                let dfile = token.dir.path().join("digest384");
                std::fs::write(&dfile, &digest).unwrap();
                token.pkcs11_tool(&[
                    "--sign",
                    "--mechanism",
                    "ECDSA",
                    "--signature-format",
                    "openssl",
                    "--id",
                    "05",
                    "--input-file",
                    dfile.to_str().unwrap(),
                    "--output-file",
                    sig.to_str().unwrap(),
                ]);
                let out = sdk
                    .verify()
                    .key_id(arn)
                    .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha384)
                    .message_type(aws_sdk_kms::types::MessageType::Digest)
                    .message(Blob::new(digest))
                    .signature(Blob::new(std::fs::read(&sig).unwrap()))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    out.signature_valid(),
                    "KMS rejects the token's P-384 signature"
                );
                assert!(v["Checks"].to_string().contains("Sign"), "{v}");
            }
            "ECC_NIST_P256" | "RSA_2048" => {
                let from_token =
                    token.pkcs11_tool(&["--read-object", "--type", "pubkey", "--label", object]);
                let pk = sdk.get_public_key().key_id(arn).send().await.unwrap();
                assert_eq!(
                    pk.public_key().unwrap().as_ref(),
                    from_token.as_slice(),
                    "{object}: KMS public key differs from the token's"
                );
                assert!(v["Checks"].to_string().contains("Sign"), "{v}");
            }
            "HMAC_256" => {
                let msg = token.dir.path().join("msg");
                std::fs::write(&msg, b"independent check").unwrap();
                let mac_file = token.dir.path().join("mac");
                // By id: pkcs11-tool's --label lookup picks the wrong object for HMAC here.
                token.pkcs11_tool(&[
                    "--sign",
                    "--mechanism",
                    "SHA256-HMAC",
                    "--id",
                    "02",
                    "--input-file",
                    msg.to_str().unwrap(),
                    "--output-file",
                    mac_file.to_str().unwrap(),
                ]);
                let mac = std::fs::read(&mac_file).unwrap();
                let out = sdk
                    .generate_mac()
                    .key_id(arn)
                    .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                    .message(Blob::new(b"independent check".to_vec()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(out.mac().unwrap().as_ref(), mac.as_slice(), "{object}");
            }
            _ => {
                assert!(
                    v["KeyMaterialId"].as_str().is_some_and(|i| !i.is_empty()),
                    "{v}"
                );
            }
        }
    }
    // The import left no temporary object (wrapping key, ephemeral AES key) in the token.
    let listing = String::from_utf8_lossy(&token.pkcs11_tool(&["--list-objects"])).to_string();
    // The setup script's 4 secret keys and 3 key pairs, nothing more.
    assert_eq!(listing.matches("Key Object").count(), 10, "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_mistakes_fail_clearly_and_create_no_key() {
    let server = Server::start();
    let token = Token::new();
    let env = token.env();
    let env = env_refs(&env);

    // Object not found.
    let r = keyferry(
        &server,
        &["import", "--pkcs11-uri", &token.uri("no-such-key")],
        &env,
    )
    .failed();
    assert!(
        r.stderr.contains("no-such-key") && r.stderr.contains("pkcs11-tool"),
        "{}",
        r.stderr
    );

    // Wrong PIN (never echoed).
    let r = keyferry(
        &server,
        &["import", "--pkcs11-uri", &token.uri("aes-256")],
        &[
            ("SOFTHSM2_CONF", token.conf.as_str()),
            ("KEYFERRY_PKCS11_PIN", "0000"),
        ],
    )
    .failed();
    assert!(r.stderr.contains("CKR_PIN_INCORRECT"), "{}", r.stderr);
    assert!(!r.stderr.contains("0000"), "{}", r.stderr);

    // No PIN at all and no terminal to prompt on.
    let r = keyferry(
        &server,
        &["import", "--pkcs11-uri", &token.uri("aes-256")],
        &[("SOFTHSM2_CONF", token.conf.as_str())],
    )
    .failed();
    assert!(r.stderr.contains("KEYFERRY_PKCS11_PIN"), "{}", r.stderr);

    // A key that may not leave the token.
    let r = keyferry(
        &server,
        &["import", "--pkcs11-uri", &token.uri("aes-256-nx")],
        &env,
    )
    .failed();
    assert!(r.stderr.contains("CKA_EXTRACTABLE"), "{}", r.stderr);

    // A mechanism the token lacks (SoftHSM2 2.6 cannot OAEP-wrap with SHA-256).
    let r = keyferry(
        &server,
        &[
            "import",
            "--pkcs11-uri",
            &token.uri("aes-256"),
            "--wrapping-algorithm",
            "RSAES_OAEP_SHA_256",
        ],
        &env,
    )
    .failed();
    assert!(
        r.stderr.contains("SHA-256") && r.stderr.contains("RSAES_OAEP_SHA_1"),
        "{}",
        r.stderr
    );

    // Token material that does not match the key spec.
    let r = keyferry(
        &server,
        &[
            "import",
            "--pkcs11-uri",
            &token.uri("ec-p256"),
            "--key-spec",
            "ECC_NIST_P384",
        ],
        &env,
    )
    .failed();
    assert!(r.stderr.contains("ECC_NIST_P384"), "{}", r.stderr);

    // A module that does not exist.
    let r = keyferry(
        &server,
        &[
            "import",
            "--pkcs11-uri",
            "pkcs11:token=keyferry;object=aes-256?module-path=/nonexistent/libpkcs11.so",
        ],
        &env,
    )
    .failed();
    assert!(
        r.stderr.contains("/nonexistent/libpkcs11.so"),
        "{}",
        r.stderr
    );

    // An empty KEYFERRY_PKCS11_PIN is not sent (it would spend a login attempt).
    let r = keyferry(
        &server,
        &["import", "--pkcs11-uri", &token.uri("aes-256")],
        &[
            ("SOFTHSM2_CONF", token.conf.as_str()),
            ("KEYFERRY_PKCS11_PIN", ""),
        ],
    )
    .failed();
    assert!(
        r.stderr.contains("KEYFERRY_PKCS11_PIN is set but empty")
            && r.stderr.contains("no PIN was sent"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("CKR_PIN_INCORRECT"), "{}", r.stderr);

    // SOFTHSM2_CONF mistyped: SoftHSM cannot start; the message names SOFTHSM2_CONF and its value.
    let r = keyferry(
        &server,
        &["import", "--pkcs11-uri", &token.uri("aes-256")],
        &[
            ("SOFTHSM2_CONF", "/nonexistent/softhsm2.conf"),
            ("KEYFERRY_PKCS11_PIN", USER_PIN),
        ],
    )
    .failed();
    assert!(
        r.stderr
            .contains("SOFTHSM2_CONF=/nonexistent/softhsm2.conf")
            && r.stderr.contains("tokendir"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("horrible"), "{}", r.stderr);

    // SOFTHSM2_CONF forgotten (the system default has no such token): the hint is there.
    let empty = tempfile::tempdir().unwrap();
    let conf = empty.path().join("softhsm2.conf");
    std::fs::create_dir(empty.path().join("tokens")).unwrap();
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\n",
            empty.path().join("tokens").display()
        ),
    )
    .unwrap();
    let r = keyferry(
        &server,
        &["import", "--pkcs11-uri", &token.uri("aes-256")],
        &[
            ("SOFTHSM2_CONF", conf.to_str().unwrap()),
            ("KEYFERRY_PKCS11_PIN", USER_PIN),
        ],
    )
    .failed();
    assert!(
        r.stderr.contains("uninitialised token") && r.stderr.contains("SOFTHSM2_CONF"),
        "{}",
        r.stderr
    );

    // An EC key with an OAEP algorithm on SoftHSM2: the first advice is the one that works.
    let r = keyferry(
        &server,
        &[
            "import",
            "--pkcs11-uri",
            &token.uri("ec-p256"),
            "--wrapping-algorithm",
            "RSAES_OAEP_SHA_256",
        ],
        &env,
    )
    .failed();
    assert!(r.stderr.contains("RSA_AES_KEY_WRAP_SHA_1"), "{}", r.stderr);
    assert!(!r.stderr.contains("use RSAES_OAEP_SHA_1"), "{}", r.stderr);

    assert!(
        key_states(&server).await.is_empty(),
        "a token mistake must not create a key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dependency_log_lines_by_default() {
    let server = Server::start();
    let token = Token::new();
    let env = token.env();
    let env = env_refs(&env);
    let r = keyferry(
        &server,
        &["import", "--pkcs11-uri", &token.uri("rsa-2048")],
        &env,
    )
    .ok();
    assert!(
        !r.stderr.contains("cryptoki") && !r.stderr.contains("ERROR"),
        "stderr:\n{}",
        r.stderr
    );
    // KEYFERRY_LOG asks for them.
    let mut with_log = env.clone();
    with_log.push(("KEYFERRY_LOG", "cryptoki=error"));
    let r = keyferry(
        &server,
        &[
            "import",
            "--pkcs11-uri",
            &token.uri("ec-p256"),
            "--allow-duplicate",
        ],
        &with_log,
    )
    .ok();
    assert!(r.stderr.contains("cryptoki"), "stderr:\n{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matching_object_at_once() {
    let server = Server::start();
    let token = Token::new();
    let env = token.env();
    let env = env_refs(&env);
    let uri = format!("pkcs11:token={TOKEN_LABEL}?module-path={}", token.module);
    let r = keyferry(
        &server,
        &[
            "import",
            "--pkcs11-uri",
            &uri,
            "--all-matching",
            "--output",
            "json",
        ],
        &env,
    )
    .failed();
    let v = r.json();
    let arr = v.as_array().unwrap();
    // Every secret and private key of the token: 7 objects.
    assert_eq!(arr.len(), 7, "{v}");
    let verified: Vec<&str> = arr
        .iter()
        .filter(|o| o["Verified"] == true)
        .map(|o| o["KeySpec"].as_str().unwrap())
        .collect();
    for s in [
        "SYMMETRIC_DEFAULT",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "RSA_2048",
    ] {
        assert!(verified.contains(&s), "{s} missing: {v}");
    }
    let errors: Vec<&str> = arr.iter().filter_map(|o| o["Error"].as_str()).collect();
    // aes-256-nx may not leave the token; the 32-byte generic secret needs --key-spec.
    assert!(errors.iter().any(|e| e.contains("CKA_EXTRACTABLE")), "{v}");
    assert!(errors.iter().any(|e| e.contains("--key-spec")), "{v}");
    assert_eq!(verified.len() + errors.len(), 7, "{v}");
    let states = key_states(&server).await;
    assert_eq!(
        states.iter().filter(|(_, s)| s == "Enabled").count(),
        verified.len(),
        "{states:?}"
    );
    assert_eq!(states.len(), verified.len(), "failed members create no key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_wrap_inside_the_hsm() {
    let server = Server::start();
    let token = Token::new();
    let env = token.env();
    let env = env_refs(&env);
    let sdk = server.sdk().await;
    let created = sdk
        .create_key()
        .origin(aws_sdk_kms::types::OriginType::External)
        .key_spec(aws_sdk_kms::types::KeySpec::Hmac256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap();
    let key_id = created.key_metadata().unwrap().key_id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("ImportParameters.zip");
    let ekm = dir.path().join("EncryptedKeyMaterial.bin");
    let import_token = dir.path().join("ImportToken.bin");
    keyferry(
        &server,
        &[
            "import",
            "fetch-parameters",
            "--key-id",
            &key_id,
            "--wrapping-algorithm",
            "RSAES_OAEP_SHA_1",
            "--out",
            zip.to_str().unwrap(),
            "--token-out",
            import_token.to_str().unwrap(),
        ],
        &[],
    )
    .ok();
    let r = keyferry(
        &server,
        &[
            "import",
            "wrap",
            "--parameters",
            zip.to_str().unwrap(),
            "--pkcs11-uri",
            &token.uri("hmac-256"),
            "--key-spec",
            "HMAC_256",
            "--out",
            ekm.to_str().unwrap(),
        ],
        &env,
    )
    .ok();
    assert!(r.stdout.contains("RSAES_OAEP_SHA_1"), "{}", r.stdout);
    sdk.import_key_material()
        .key_id(&key_id)
        .import_token(Blob::new(std::fs::read(&import_token).unwrap()))
        .encrypted_key_material(Blob::new(std::fs::read(&ekm).unwrap()))
        .expiration_model(aws_sdk_kms::types::ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .unwrap();
    let d = sdk.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        d.key_metadata().unwrap().key_state().unwrap().as_str(),
        "Enabled"
    );
    // The KMS MAC equals the token's.
    let msg = dir.path().join("msg");
    std::fs::write(&msg, b"offline check").unwrap();
    let mac_file = dir.path().join("mac");
    token.pkcs11_tool(&[
        "--sign",
        "--mechanism",
        "SHA256-HMAC",
        "--id",
        "02",
        "--input-file",
        msg.to_str().unwrap(),
        "--output-file",
        mac_file.to_str().unwrap(),
    ]);
    let mac = std::fs::read(&mac_file).unwrap();
    let out = sdk
        .generate_mac()
        .key_id(&key_id)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(b"offline check".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.mac().unwrap().as_ref(), mac.as_slice());
}

/// RFC 7512's `module-name`: `module-name=softhsm2` is the module p11-kit's configuration
/// names (Debian's softhsm2 package installs `softhsm2.module`), found without a path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_name_instead_of_a_path() {
    let server = Server::start();
    let token = Token::new();
    let env = token.env();
    let env = env_refs(&env);
    let config = std::fs::read_to_string("/usr/share/p11-kit/modules/softhsm2.module")
        .expect("the softhsm2 package's p11-kit module configuration");
    assert!(config.contains("libsofthsm2.so"), "{config}");
    let uri = format!("pkcs11:token={TOKEN_LABEL};object=aes-256?module-name=softhsm2");
    let v = import_json(&server, &["--pkcs11-uri", &uri], &env);
    assert_eq!(v["KeySpec"], "SYMMETRIC_DEFAULT", "{v}");
    assert_eq!(v["Verified"], true, "{v}");
    // A name nothing installs: a usage error naming where it looked, and no key created.
    let r = keyferry(
        &server,
        &[
            "import",
            "--pkcs11-uri",
            &format!("pkcs11:token={TOKEN_LABEL};object=aes-256?module-name=no-such-hsm"),
        ],
        &env,
    )
    .failed();
    assert!(
        r.stderr.contains("no module named \"no-such-hsm\"")
            && r.stderr.contains("/usr/share/p11-kit/modules"),
        "{}",
        r.stderr
    );
    assert_eq!(key_states(&server).await.len(), 1);
}
