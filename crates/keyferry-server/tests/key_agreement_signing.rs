//! KEY_AGREEMENT keys and DeriveSharedSecret, Ed25519 and ML-DSA keys through the router
//! (`app()` + `oneshot`, real SQLite store): what CreateKey, DescribeKey and GetPublicKey show, and
//! every error with AWS's `__type`, HTTP status and message. Texts are AWS's where recorded (see
//! docs/decisions.md for the ones Keyferry chose). The cryptographic results are checked against
//! independent implementations in `crates/keyferry/tests/key_agreement_signing.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::Api;
use serde_json::{Value, json};

async fn key(api: &Api, spec: &str, usage: &str) -> (String, String) {
    let meta = api
        .call("CreateKey", json!({"KeySpec": spec, "KeyUsage": usage}))
        .await["KeyMetadata"]
        .clone();
    (
        meta["KeyId"].as_str().unwrap().to_string(),
        meta["Arn"].as_str().unwrap().to_string(),
    )
}

async fn public_key(api: &Api, id: &str) -> String {
    api.call("GetPublicKey", json!({"KeyId": id})).await["PublicKey"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn expect(api: &Api, op: &str, body: Value, code: &str, message: Option<&str>) {
    let (got_code, got_message) = api.error(op, body.clone()).await;
    assert_eq!(
        (got_code.as_str(), got_message.as_deref()),
        (code, message),
        "{op} {body}"
    );
}

#[tokio::test]
async fn key_agreement_keys_as_aws_shows_them() {
    let api = Api::new().await;
    for spec in ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"] {
        let meta = api
            .call(
                "CreateKey",
                json!({"KeySpec": spec, "KeyUsage": "KEY_AGREEMENT"}),
            )
            .await["KeyMetadata"]
            .clone();
        assert_eq!(meta["KeyAgreementAlgorithms"], json!(["ECDH"]), "{meta}");
        for absent in ["EncryptionAlgorithms", "SigningAlgorithms", "MacAlgorithms"] {
            assert!(meta.get(absent).is_none(), "{absent} in {meta}");
        }
        let id = meta["KeyId"].as_str().unwrap();
        let described = api.call("DescribeKey", json!({"KeyId": id})).await;
        assert_eq!(
            described["KeyMetadata"]["KeyAgreementAlgorithms"],
            json!(["ECDH"])
        );
        let public = api.call("GetPublicKey", json!({"KeyId": id})).await;
        assert_eq!(public["KeyAgreementAlgorithms"], json!(["ECDH"]));
        assert_eq!(public["KeyUsage"], "KEY_AGREEMENT");
        assert_eq!(public["KeySpec"], spec);
        assert_eq!(public["CustomerMasterKeySpec"], spec);
        assert!(public.get("SigningAlgorithms").is_none(), "{public}");
        assert!(public.get("EncryptionAlgorithms").is_none(), "{public}");
        // The key derives a secret with its own public key (a peer on the same curve), as
        // long as the curve's field.
        let own = public["PublicKey"].as_str().unwrap();
        let resp = api
            .call(
                "DeriveSharedSecret",
                json!({"KeyId": id, "KeyAgreementAlgorithm": "ECDH", "PublicKey": own}),
            )
            .await;
        let secret = B64.decode(resp["SharedSecret"].as_str().unwrap()).unwrap();
        let len = match spec {
            "ECC_NIST_P256" => 32,
            "ECC_NIST_P384" => 48,
            _ => 66,
        };
        assert_eq!(secret.len(), len);
        assert_eq!(resp["KeyId"], meta["Arn"]);
        assert_eq!(resp["KeyAgreementAlgorithm"], "ECDH");
        assert_eq!(resp["KeyOrigin"], "AWS_KMS");
        assert!(resp.get("CiphertextForRecipient").is_none());
        // The audit path records the use for GetKeyLastUsage.
        let usage = api.call("GetKeyLastUsage", json!({"KeyId": id})).await;
        assert_eq!(
            usage["KeyLastUsage"]["Operation"], "DeriveSharedSecret",
            "{usage}"
        );
    }
    // Ed25519 and ML-DSA keys list their signing algorithms in AWS's order.
    for (spec, algs) in [
        (
            "ECC_NIST_EDWARDS25519",
            json!(["ED25519_SHA_512", "ED25519_PH_SHA_512"]),
        ),
        ("ML_DSA_44", json!(["ML_DSA_SHAKE_256"])),
        ("ML_DSA_65", json!(["ML_DSA_SHAKE_256"])),
        ("ML_DSA_87", json!(["ML_DSA_SHAKE_256"])),
    ] {
        let (id, _) = key(&api, spec, "SIGN_VERIFY").await;
        let meta = api.call("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"].clone();
        assert_eq!(meta["SigningAlgorithms"], algs, "{spec}");
        assert_eq!(meta["KeySpec"], spec);
        assert!(meta.get("KeyAgreementAlgorithms").is_none());
        let public = api.call("GetPublicKey", json!({"KeyId": id})).await;
        assert_eq!(public["SigningAlgorithms"], algs, "{spec}");
        assert!(public.get("KeyAgreementAlgorithms").is_none());
    }
}

#[tokio::test]
async fn derive_shared_secret_errors() {
    let api = Api::new().await;
    let (p256, p256_arn) = key(&api, "ECC_NIST_P256", "KEY_AGREEMENT").await;
    let (p384, _) = key(&api, "ECC_NIST_P384", "KEY_AGREEMENT").await;
    let (sign, sign_arn) = key(&api, "ECC_NIST_P256", "SIGN_VERIFY").await;
    let sym = api.create(json!({})).await;
    let sym_arn = format!("arn:aws:kms:us-east-1:111122223333:key/{sym}");
    let (hmac, hmac_arn) = key(&api, "HMAC_256", "GENERATE_VERIFY_MAC").await;
    let (rsa, rsa_arn) = key(&api, "RSA_2048", "ENCRYPT_DECRYPT").await;
    let (off, off_arn) = key(&api, "ECC_NIST_P256", "KEY_AGREEMENT").await;
    api.call("DisableKey", json!({"KeyId": off})).await;
    let (gone, gone_arn) = key(&api, "ECC_NIST_P256", "KEY_AGREEMENT").await;
    api.call(
        "ScheduleKeyDeletion",
        json!({"KeyId": gone, "PendingWindowInDays": 7}),
    )
    .await;
    let p256_pub = public_key(&api, &p256).await;
    let p384_pub = public_key(&api, &p384).await;
    let derive = |id: &str, public: &str| json!({"KeyId": id, "KeyAgreementAlgorithm": "ECDH", "PublicKey": public});
    let usage = |arn: &str, u: &str| {
        format!("{arn} key usage is {u} which is not valid for DeriveSharedSecret.")
    };
    for (id, arn, u) in [
        (&sign, &sign_arn, "SIGN_VERIFY"),
        (&sym, &sym_arn, "ENCRYPT_DECRYPT"),
        (&hmac, &hmac_arn, "GENERATE_VERIFY_MAC"),
        (&rsa, &rsa_arn, "ENCRYPT_DECRYPT"),
    ] {
        expect(
            &api,
            "DeriveSharedSecret",
            derive(id, &p256_pub),
            "InvalidKeyUsageException",
            Some(&usage(arn, u)),
        )
        .await;
    }
    // AWS answers a public key it cannot use with an empty message (recorded); Keyferry sends
    // no message, which clients read as the same empty string.
    for bad in [
        B64.encode(b"InvalidPublicKey"),
        p384_pub.clone(),
        public_key(&api, &rsa).await,
    ] {
        expect(
            &api,
            "DeriveSharedSecret",
            derive(&p256, &bad),
            "ValidationException",
            None,
        )
        .await;
    }
    expect(
        &api,
        "DeriveSharedSecret",
        json!({"KeyId": p256, "KeyAgreementAlgorithm": "INVALID", "PublicKey": p256_pub}),
        "ValidationException",
        Some(
            "1 validation error detected: Value 'INVALID' at 'keyAgreementAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [ECDH]",
        ),
    )
    .await;
    expect(
        &api,
        "DeriveSharedSecret",
        json!({"KeyId": p256, "KeyAgreementAlgorithm": "ECDH"}),
        "ValidationException",
        Some(
            "1 validation error detected: Value null at 'publicKey' failed to satisfy constraint: Member must not be null",
        ),
    )
    .await;
    expect(
        &api,
        "DeriveSharedSecret",
        derive(&off, &p256_pub),
        "DisabledException",
        Some(&format!("{off_arn} is disabled.")),
    )
    .await;
    expect(
        &api,
        "DeriveSharedSecret",
        derive(&gone, &p256_pub),
        "KMSInvalidStateException",
        Some(&format!("{gone_arn} is pending deletion.")),
    )
    .await;
    let mut dry = derive(&p256, &p256_pub);
    dry["DryRun"] = json!(true);
    expect(
        &api,
        "DeriveSharedSecret",
        dry,
        "DryRunOperationException",
        Some("The request would have succeeded, but the DryRun option is set."),
    )
    .await;
    let mut recipient = derive(&p256, &p256_pub);
    recipient["Recipient"] =
        json!({"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": "AAAA"});
    expect(
        &api,
        "DeriveSharedSecret",
        recipient,
        "UnsupportedOperationException",
        Some("Keyferry has no Nitro Enclaves attestation (Recipient)."),
    )
    .await;
    expect(
        &api,
        "DeriveSharedSecret",
        derive("alias/none", &p256_pub),
        "NotFoundException",
        Some("Alias arn:aws:kms:us-east-1:111122223333:alias/none is not found."),
    )
    .await;
    // A KEY_AGREEMENT key does nothing else.
    expect(
        &api,
        "Sign",
        json!({"KeyId": p256, "Message": "bQ==", "SigningAlgorithm": "ECDSA_SHA_256"}),
        "InvalidKeyUsageException",
        Some(&format!(
            "{p256_arn} key usage is KEY_AGREEMENT which is not valid for Sign."
        )),
    )
    .await;
    // The key policy decides, with the kms:KeyAgreementAlgorithm condition key.
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "kms:DeriveSharedSecret", "Resource": "*",
             "Condition": {"StringEquals": {"kms:KeyAgreementAlgorithm": "ECDH"}}}
        ]
    });
    api.call(
        "PutKeyPolicy",
        json!({"KeyId": p384, "PolicyName": "default", "Policy": policy.to_string()}),
    )
    .await;
    let (code, message) = api
        .error("DeriveSharedSecret", derive(&p384, &p384_pub))
        .await;
    assert_eq!(code, "AccessDeniedException");
    let message = message.unwrap();
    assert!(
        message.contains("kms:DeriveSharedSecret") && message.contains("explicit deny"),
        "{message}"
    );
    // A grant for DeriveSharedSecret is accepted on a KEY_AGREEMENT key only.
    api.call(
        "CreateGrant",
        json!({"KeyId": p256, "GranteePrincipal": "arn:aws:iam::111122223333:root",
               "Operations": ["DeriveSharedSecret", "GetPublicKey"]}),
    )
    .await;
    let (code, _) = api
        .error(
            "CreateGrant",
            json!({"KeyId": sign, "GranteePrincipal": "arn:aws:iam::111122223333:root",
                   "Operations": ["DeriveSharedSecret"]}),
        )
        .await;
    assert_eq!(code, "ValidationException");
}

#[tokio::test]
async fn create_key_rules_for_the_newer_specs() {
    let api = Api::new().await;
    for (spec, usage) in [
        ("RSA_2048", "KEY_AGREEMENT"),
        ("ECC_SECG_P256K1", "KEY_AGREEMENT"),
        ("ECC_NIST_EDWARDS25519", "KEY_AGREEMENT"),
        ("ECC_NIST_EDWARDS25519", "ENCRYPT_DECRYPT"),
        ("ML_DSA_44", "KEY_AGREEMENT"),
        ("ML_DSA_65", "ENCRYPT_DECRYPT"),
        ("ML_DSA_87", "GENERATE_VERIFY_MAC"),
        ("SYMMETRIC_DEFAULT", "KEY_AGREEMENT"),
        ("HMAC_256", "KEY_AGREEMENT"),
    ] {
        expect(
            &api,
            "CreateKey",
            json!({"KeySpec": spec, "KeyUsage": usage}),
            "ValidationException",
            Some(&format!(
                "KeyUsage {usage} is not compatible with KeySpec {spec}"
            )),
        )
        .await;
    }
    for spec in ["ECC_NIST_EDWARDS25519", "ML_DSA_65"] {
        expect(
            &api,
            "CreateKey",
            json!({"KeySpec": spec}),
            "ValidationException",
            Some(
                "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
            ),
        )
        .await;
    }
    for spec in [
        "ECC_NIST_EDWARDS25519",
        "ML_DSA_44",
        "ML_DSA_65",
        "ML_DSA_87",
    ] {
        expect(
            &api,
            "CreateKey",
            json!({"KeySpec": spec, "KeyUsage": "SIGN_VERIFY", "Origin": "EXTERNAL"}),
            "UnsupportedOperationException",
            Some(&format!(
                "KeySpec {spec} does not support imported key material (Origin EXTERNAL)."
            )),
        )
        .await;
    }
    // KEY_AGREEMENT keys may be EXTERNAL (imported), as on AWS.
    let meta = api
        .call(
            "CreateKey",
            json!({"KeySpec": "ECC_NIST_P384", "KeyUsage": "KEY_AGREEMENT", "Origin": "EXTERNAL"}),
        )
        .await["KeyMetadata"]
        .clone();
    assert_eq!(meta["KeyState"], "PendingImport");
    assert_eq!(meta["KeyAgreementAlgorithms"], json!(["ECDH"]));
}

#[tokio::test]
async fn signing_rules_for_ed25519_and_ml_dsa() {
    let api = Api::new().await;
    let (ed, _) = key(&api, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY").await;
    let (ml, _) = key(&api, "ML_DSA_44", "SIGN_VERIFY").await;
    let (rsa, _) = key(&api, "RSA_2048", "SIGN_VERIFY").await;
    let msg = B64.encode(b"message");
    let digest64 = B64.encode([7u8; 64]);
    let sign = |id: &str, m: &str, t: &str, alg: &str| json!({"KeyId": id, "Message": m, "MessageType": t, "SigningAlgorithm": alg});
    let cases = [
        (
            sign(&ed, &msg, "DIGEST", "ED25519_SHA_512"),
            "ValidationException",
            "Message type DIGEST is incompatible with algorithm ED25519_SHA_512.".to_string(),
        ),
        (
            sign(&ed, &msg, "EXTERNAL_MU", "ED25519_SHA_512"),
            "ValidationException",
            "Message type EXTERNAL_MU is incompatible with algorithm ED25519_SHA_512.".to_string(),
        ),
        (
            sign(&ed, &msg, "RAW", "ED25519_PH_SHA_512"),
            "ValidationException",
            "Message type RAW is incompatible with algorithm ED25519_PH_SHA_512.".to_string(),
        ),
        (
            sign(&ed, &B64.encode([1u8; 32]), "DIGEST", "ED25519_PH_SHA_512"),
            "ValidationException",
            "Digest is invalid length for algorithm ED25519_PH_SHA_512.".to_string(),
        ),
        (
            sign(&ed, &msg, "RAW", "ECDSA_SHA_512"),
            "InvalidKeyUsageException",
            "Algorithm ECDSA_SHA_512 is incompatible with key spec ECC_NIST_EDWARDS25519."
                .to_string(),
        ),
        (
            sign(&ed, &msg, "RAW", "ML_DSA_SHAKE_256"),
            "InvalidKeyUsageException",
            "Algorithm ML_DSA_SHAKE_256 is incompatible with key spec ECC_NIST_EDWARDS25519."
                .to_string(),
        ),
        (
            sign(&ml, &digest64, "DIGEST", "ML_DSA_SHAKE_256"),
            "ValidationException",
            "Message type DIGEST is incompatible with key spec ML_DSA_44.".to_string(),
        ),
        (
            sign(&ml, &digest64, "EXTERNAL_MU", "ML_DSA_SHAKE_256"),
            "UnsupportedOperationException",
            "Keyferry does not implement MessageType EXTERNAL_MU (ML-DSA external mu).".to_string(),
        ),
        (
            sign(&ml, &msg, "RAW", "ED25519_SHA_512"),
            "InvalidKeyUsageException",
            "Algorithm ED25519_SHA_512 is incompatible with key spec ML_DSA_44.".to_string(),
        ),
        (
            sign(&rsa, &digest64, "EXTERNAL_MU", "RSASSA_PSS_SHA_256"),
            "ValidationException",
            "Message type EXTERNAL_MU is incompatible with key spec RSA_2048.".to_string(),
        ),
        (
            sign(&rsa, &msg, "RAW", "ED25519_SHA_512"),
            "InvalidKeyUsageException",
            "Algorithm ED25519_SHA_512 is incompatible with key spec RSA_2048.".to_string(),
        ),
        (
            sign(&ml, &B64.encode(vec![0u8; 4097]), "RAW", "ML_DSA_SHAKE_256"),
            "ValidationException",
            "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length less than or equal to 4096".to_string(),
        ),
    ];
    for (body, code, message) in cases {
        expect(&api, "Sign", body.clone(), code, Some(&message)).await;
        // Verify applies the same rules before looking at the signature.
        let mut verify = body;
        verify["Signature"] = json!(B64.encode([0u8; 64]));
        expect(&api, "Verify", verify, code, Some(&message)).await;
    }
    // What Sign makes, Verify accepts; anything else is KMSInvalidSignatureException.
    for (id, alg, m, t) in [
        (&ed, "ED25519_SHA_512", &msg, "RAW"),
        (&ed, "ED25519_PH_SHA_512", &digest64, "DIGEST"),
        (&ml, "ML_DSA_SHAKE_256", &msg, "RAW"),
    ] {
        let resp = api.call("Sign", sign(id, m, t, alg)).await;
        let arn = resp["KeyId"].as_str().unwrap();
        assert!(
            arn.starts_with("arn:aws:kms:us-east-1:111122223333:key/")
                && arn.ends_with(id.as_str())
        );
        assert_eq!(resp["SigningAlgorithm"], alg);
        let sig = resp["Signature"].as_str().unwrap().to_string();
        let mut verify = sign(id, m, t, alg);
        verify["Signature"] = json!(sig);
        let ok = api.call("Verify", verify.clone()).await;
        assert_eq!(ok["SignatureValid"], true, "{alg}");
        let mut raw = B64.decode(&sig).unwrap();
        raw[0] ^= 1;
        verify["Signature"] = json!(B64.encode(raw));
        expect(&api, "Verify", verify, "KMSInvalidSignatureException", None).await;
    }
}
