//! API tests through the router (`app()` + `oneshot`), on a real SQLite store, with a clock the
//! test controls: protocol details, and time-driven behaviour (deletion, rotation, expiry).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::Api;
use http::StatusCode;
use keyferry_core::clock::Clock;
use serde_json::json;

const DAY: i64 = 86_400_000;

#[tokio::test]
async fn protocol_headers_and_unit_responses() {
    let api = Api::new().await;
    let id = api.create(json!({})).await;
    let (status, headers, v) = api
        .raw("EnableKey", json!({"KeyId": id}).to_string().as_bytes())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, json!({}));
    assert_eq!(headers["content-type"], "application/x-amz-json-1.1");
    assert_eq!(headers["x-amzn-requestid"].len(), 36);
    let (status, _, v) = api.raw("ListKeys", b"").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "empty body is an empty request: {v}"
    );
    // Every operation of botocore's model is implemented; DeriveSharedSecret on a symmetric key
    // is the wrong key usage.
    assert_eq!(
        api.error(
            "DeriveSharedSecret",
            json!({"KeyId": id, "KeyAgreementAlgorithm": "ECDH",
                   "PublicKey": "AAAA"})
        )
        .await
        .0,
        "InvalidKeyUsageException"
    );
    assert_eq!(
        api.error("Frobnicate", json!({})).await.0,
        "UnknownOperationException"
    );
    let (code, msg) = api.error("DescribeKey", json!({"KeyId": 5})).await;
    assert_eq!(code, "ValidationException", "{msg:?}");
    let (code, _) = api
        .error(
            "Encrypt",
            json!({"KeyId": id, "Plaintext": "***not base64***"}),
        )
        .await;
    assert_eq!(code, "ValidationException");
}

#[tokio::test]
async fn encryption_context_is_bound_and_dry_run_changes_nothing() {
    let api = Api::new().await;
    let id = api.create(json!({})).await;
    let ct = api
        .call(
            "Encrypt",
            json!({"KeyId": id, "Plaintext": "aGk=", "EncryptionContext": {"a": "1", "b": "2"}}),
        )
        .await;
    let blob = ct["CiphertextBlob"].as_str().unwrap();
    // Same context in another order decrypts; a subset does not.
    let pt = api
        .call(
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": {"b": "2", "a": "1"}}),
        )
        .await;
    assert_eq!(pt["Plaintext"], "aGk=");
    assert_eq!(
        api.error(
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": {"a": "1"}})
        )
        .await,
        ("InvalidCiphertextException".into(), None)
    );
    assert_eq!(
        api.error(
            "Encrypt",
            json!({"KeyId": id, "Plaintext": "aGk=", "DryRun": true})
        )
        .await
        .0,
        "DryRunOperationException"
    );
}

#[tokio::test]
async fn scheduled_deletion_really_deletes_when_the_window_ends() {
    let api = Api::new().await;
    let id = api.create(json!({})).await;
    api.call(
        "CreateAlias",
        json!({"AliasName": "alias/doomed", "TargetKeyId": id}),
    )
    .await;
    let r = api
        .call(
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 7}),
        )
        .await;
    assert_eq!(
        r["DeletionDate"].as_f64().unwrap() as i64 * 1000,
        api.clock.now_ms() + 7 * DAY
    );
    api.advance(7 * DAY - 1000);
    assert_eq!(
        api.call("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"]["KeyState"],
        "PendingDeletion"
    );
    api.advance(2000);
    // The sweeper removes it from the store; a read before that already says NotFound.
    assert!(api.kms.sweep().await.unwrap() >= 1);
    assert_eq!(
        api.error("DescribeKey", json!({"KeyId": id})).await.0,
        "NotFoundException"
    );
    assert_eq!(
        api.error("DescribeKey", json!({"KeyId": "alias/doomed"}))
            .await
            .0,
        "NotFoundException"
    );
    let keys = api.call("ListKeys", json!({})).await;
    assert_eq!(keys["Keys"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn automatic_rotation_happens_on_schedule_and_old_material_decrypts() {
    let api = Api::new().await;
    let id = api.create(json!({})).await;
    let old = api
        .call("Encrypt", json!({"KeyId": id, "Plaintext": "b2xk"}))
        .await["CiphertextBlob"]
        .clone();
    api.call(
        "EnableKeyRotation",
        json!({"KeyId": id, "RotationPeriodInDays": 90}),
    )
    .await;
    let before =
        api.call("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"]["CurrentKeyMaterialId"]
            .clone();
    api.advance(90 * DAY + 1);
    api.kms.sweep().await.unwrap();
    let after =
        api.call("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"]["CurrentKeyMaterialId"]
            .clone();
    assert_ne!(before, after);
    let rots = api.call("ListKeyRotations", json!({"KeyId": id})).await;
    assert_eq!(rots["Rotations"][0]["RotationType"], "AUTOMATIC");
    assert_eq!(
        api.call("Decrypt", json!({"CiphertextBlob": old})).await["Plaintext"],
        "b2xk"
    );
    let status = api.call("GetKeyRotationStatus", json!({"KeyId": id})).await;
    assert!(status["NextRotationDate"].as_f64().unwrap() * 1000.0 > api.clock.now_ms() as f64);
}

#[tokio::test]
async fn multi_region_keys_and_data_key_pairs() {
    let api = Api::new().await;
    let meta = api.call("CreateKey", json!({"MultiRegion": true})).await["KeyMetadata"].clone();
    let id = meta["KeyId"].as_str().unwrap();
    assert!(id.starts_with("mrk-") && id.len() == 36, "{id}");
    assert_eq!(
        meta["MultiRegionConfiguration"]["MultiRegionKeyType"],
        "PRIMARY"
    );
    let pair = api
        .call(
            "GenerateDataKeyPair",
            json!({"KeyId": id, "KeyPairSpec": "ECC_NIST_P256"}),
        )
        .await;
    let private = pair["PrivateKeyPlaintext"].as_str().unwrap();
    let dec = api
        .call(
            "Decrypt",
            json!({"CiphertextBlob": pair["PrivateKeyCiphertextBlob"]}),
        )
        .await;
    assert_eq!(dec["Plaintext"].as_str().unwrap(), private);
    let signing = api
        .create(json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}))
        .await;
    let (code, msg) = api
        .error("Encrypt", json!({"KeyId": signing, "Plaintext": "eA=="}))
        .await;
    assert_eq!(code, "InvalidKeyUsageException");
    assert!(
        msg.unwrap()
            .ends_with("key usage is SIGN_VERIFY which is not valid for Encrypt.")
    );
    assert_eq!(
        api.error(
            "GenerateDataKeyPair",
            json!({"KeyId": id, "KeyPairSpec": "SM2"})
        )
        .await
        .0,
        "UnsupportedOperationException"
    );
}

#[tokio::test]
async fn import_tokens_expire_after_24_hours_and_change_nothing() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let api = Api::new().await;
    let id = api.create(json!({"Origin": "EXTERNAL"})).await;
    let p = api
        .call("GetParametersForImport", json!({"KeyId": id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}))
        .await;
    let valid_to = p["ParametersValidTo"].as_f64().unwrap() * 1000.0;
    assert_eq!(valid_to as i64, api.clock.now_ms() + DAY);
    let public = b64.decode(p["PublicKey"].as_str().unwrap()).unwrap();
    let wrapped = keyferry_crypto::wrap::wrap(
        keyferry_types::AlgorithmSpec::RSAES_OAEP_SHA_256,
        &public,
        &[5u8; 32],
    )
    .unwrap();
    let body = json!({
        "KeyId": id,
        "ImportToken": p["ImportToken"],
        "EncryptedKeyMaterial": b64.encode(&wrapped),
        "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
    });
    api.advance(DAY + 1);
    let (code, msg) = api.error("ImportKeyMaterial", body.clone()).await;
    assert_eq!(code, "ExpiredImportTokenException", "{msg:?}");
    assert_eq!(
        api.call("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"]["KeyState"],
        "PendingImport"
    );
    // Within the validity window the same request succeeds.
    api.advance(-2);
    api.call("ImportKeyMaterial", body).await;
    assert_eq!(
        api.call("DescribeKey", json!({"KeyId": id})).await["KeyMetadata"]["KeyState"],
        "Enabled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_key_all_succeed() {
    let api = Arc::new(Api::new().await);
    let id = api.create(json!({})).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let api = api.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            api.call(
                "TagResource",
                json!({"KeyId": id, "Tags": [{"TagKey": format!("k{i:02}"), "TagValue": "v"}]}),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let tags = api.call("ListResourceTags", json!({"KeyId": id})).await;
    assert_eq!(
        tags["Tags"].as_array().unwrap().len(),
        40,
        "every concurrent write landed"
    );
    assert_eq!(tags["Truncated"], false);
}
