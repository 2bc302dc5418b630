//! Several Regions in one deployment and multi-Region keys, through the router: ReplicateKey
//! (Creating → Enabled), MultiRegionConfiguration seen from every member, a ciphertext of one
//! Region decrypting in another, per-Region aliases, policy, state and tags, UpdatePrimaryRegion
//! (Updating), the deletion rules (PendingReplicaDeletion), and a Region not served.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::Api;
use http::StatusCode;
use serde_json::{Value, json};

const US: &str = "us-east-1";
const EU: &str = "eu-west-1";
const AP: &str = "ap-southeast-2";

fn arn(region: &str, id: &str) -> String {
    format!("arn:aws:kms:{region}:111122223333:key/{id}")
}

fn mrc(md: &Value) -> (String, String, Vec<String>) {
    let c = &md["MultiRegionConfiguration"];
    let replicas = c["ReplicaKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Region"].as_str().unwrap().to_string())
        .collect();
    (
        c["MultiRegionKeyType"].as_str().unwrap().to_string(),
        c["PrimaryKey"]["Region"].as_str().unwrap().to_string(),
        replicas,
    )
}

async fn describe(api: &Api, region: &str, id: &str) -> Value {
    api.call_in(region, "DescribeKey", json!({"KeyId": id}))
        .await["KeyMetadata"]
        .clone()
}

#[tokio::test]
async fn replicate_update_primary_and_delete() {
    let api = Api::with_regions(&[US, EU, AP]).await;
    let id = api
        .create(json!({"MultiRegion": true, "Description": "primary"}))
        .await;
    assert!(id.starts_with("mrk-"), "{id}");
    let md = describe(&api, US, &id).await;
    assert_eq!(mrc(&md), ("PRIMARY".into(), US.into(), vec![]));

    let pt = B64.encode(b"multi-Region plaintext");
    let ct = api
        .call_in(US, "Encrypt", json!({"KeyId": id, "Plaintext": pt}))
        .await["CiphertextBlob"]
        .clone();

    // The replica does not exist in eu-west-1 yet.
    let (code, msg) = api.error_in(EU, "DescribeKey", json!({"KeyId": id})).await;
    assert_eq!(code, "NotFoundException");
    assert_eq!(
        msg.as_deref(),
        Some(format!("Key '{}' does not exist", arn(EU, &id)).as_str())
    );

    let out = api
        .call_in(
            US,
            "ReplicateKey",
            json!({"KeyId": id, "ReplicaRegion": EU, "Description": "replica",
                   "Tags": [{"TagKey": "site", "TagValue": "dublin"}]}),
        )
        .await;
    let rmd = &out["ReplicaKeyMetadata"];
    assert_eq!(rmd["KeyId"], id);
    assert_eq!(rmd["Arn"], arn(EU, &id));
    assert_eq!(rmd["KeyState"], "Creating");
    assert_eq!(rmd["Description"], "replica");
    assert_eq!(
        mrc(rmd),
        ("REPLICA".into(), US.into(), vec![EU.to_string()])
    );
    assert_eq!(
        out["ReplicaTags"],
        json!([{"TagKey": "site", "TagValue": "dublin"}])
    );
    assert!(
        out["ReplicaPolicy"]
            .as_str()
            .unwrap()
            .contains("arn:aws:iam::111122223333:root")
    );

    // Creating: manageable, not usable.
    let (code, msg) = api
        .error_in(EU, "Decrypt", json!({"CiphertextBlob": ct}))
        .await;
    assert_eq!(code, "KMSInvalidStateException");
    assert_eq!(
        msg.as_deref(),
        Some(format!("{} is creating.", arn(EU, &id)).as_str())
    );
    api.advance(1_001);
    let rmd = describe(&api, EU, &id).await;
    assert_eq!(rmd["KeyState"], "Enabled");

    // A ciphertext made in us-east-1 decrypts with the replica in eu-west-1, and back.
    let out = api
        .call_in(EU, "Decrypt", json!({"CiphertextBlob": ct}))
        .await;
    assert_eq!(out["Plaintext"], pt);
    assert_eq!(out["KeyId"], arn(EU, &id));
    let ct_eu = api
        .call_in(EU, "Encrypt", json!({"KeyId": id, "Plaintext": pt}))
        .await["CiphertextBlob"]
        .clone();
    let out = api
        .call_in(US, "Decrypt", json!({"CiphertextBlob": ct_eu, "KeyId": id}))
        .await;
    assert_eq!(out["Plaintext"], pt);

    // Every member shows the same configuration.
    let pmd = describe(&api, US, &id).await;
    assert_eq!(
        mrc(&pmd),
        ("PRIMARY".into(), US.into(), vec![EU.to_string()])
    );
    assert_eq!(pmd["Description"], "primary");

    // Refusals.
    let (code, msg) = api
        .error_in(
            US,
            "ReplicateKey",
            json!({"KeyId": id, "ReplicaRegion": EU}),
        )
        .await;
    assert_eq!(code, "AlreadyExistsException");
    assert_eq!(
        msg.as_deref(),
        Some(format!("A key with the key ID {id} already exists in the Region {EU}.").as_str())
    );
    let (code, msg) = api
        .error_in(
            US,
            "ReplicateKey",
            json!({"KeyId": id, "ReplicaRegion": "us-west-2"}),
        )
        .await;
    assert_eq!(code, "UnsupportedOperationException");
    assert_eq!(
        msg.as_deref(),
        Some("The Region us-west-2 is not enabled for this account.")
    );
    let (code, _) = api
        .error_in(
            EU,
            "ReplicateKey",
            json!({"KeyId": id, "ReplicaRegion": AP}),
        )
        .await;
    assert_eq!(code, "UnsupportedOperationException");
    let single = api.create(json!({})).await;
    let (code, msg) = api
        .error_in(
            US,
            "ReplicateKey",
            json!({"KeyId": single, "ReplicaRegion": EU}),
        )
        .await;
    assert_eq!(code, "UnsupportedOperationException");
    assert_eq!(
        msg.as_deref(),
        Some(format!("{} is not a multi-Region key.", arn(US, &single)).as_str())
    );

    // Independent per member: state, tags, aliases.
    api.call_in(EU, "DisableKey", json!({"KeyId": id})).await;
    assert_eq!(describe(&api, US, &id).await["KeyState"], "Enabled");
    assert_eq!(describe(&api, EU, &id).await["KeyState"], "Disabled");
    api.call_in(EU, "EnableKey", json!({"KeyId": id})).await;
    let tags = api
        .call_in(US, "ListResourceTags", json!({"KeyId": id}))
        .await;
    assert_eq!(tags["Tags"], json!([]));
    api.call_in(
        US,
        "CreateAlias",
        json!({"AliasName": "alias/app", "TargetKeyId": id}),
    )
    .await;
    api.call_in(
        EU,
        "CreateAlias",
        json!({"AliasName": "alias/app", "TargetKeyId": id}),
    )
    .await;
    let aliases = api.call_in(EU, "ListAliases", json!({"KeyId": id})).await;
    assert_eq!(aliases["Aliases"][0]["TargetKeyId"], id);
    assert_eq!(
        aliases["Aliases"][0]["AliasArn"],
        "arn:aws:kms:eu-west-1:111122223333:alias/app"
    );
    let out = api
        .call_in(
            EU,
            "Encrypt",
            json!({"KeyId": "alias/app", "Plaintext": pt}),
        )
        .await;
    assert_eq!(out["KeyId"], arn(EU, &id));
    let keys = api.call_in(EU, "ListKeys", json!({})).await;
    assert_eq!(keys["Keys"], json!([{"KeyId": id, "KeyArn": arn(EU, &id)}]));
    let grant = api
        .call_in(
            EU,
            "CreateGrant",
            json!({"KeyId": id, "GranteePrincipal": "arn:aws:iam::111122223333:root",
                   "Operations": ["Decrypt"]}),
        )
        .await;
    assert!(grant["GrantId"].is_string());
    let g_us = api.call_in(US, "ListGrants", json!({"KeyId": id})).await;
    assert_eq!(g_us["Grants"], json!([]));
    let g_eu = api.call_in(EU, "ListGrants", json!({"KeyId": id})).await;
    assert_eq!(g_eu["Grants"].as_array().unwrap().len(), 1);

    // A single-Region key exists in its Region only; its ciphertext does not decrypt elsewhere.
    let (code, _) = api
        .error_in(EU, "DescribeKey", json!({"KeyId": single}))
        .await;
    assert_eq!(code, "NotFoundException");
    let ct_single = api
        .call_in(US, "Encrypt", json!({"KeyId": single, "Plaintext": pt}))
        .await["CiphertextBlob"]
        .clone();
    let (code, _) = api
        .error_in(EU, "Decrypt", json!({"CiphertextBlob": ct_single}))
        .await;
    assert_eq!(code, "NotFoundException");

    // UpdatePrimaryRegion: both keys Updating (still usable), then Enabled with roles swapped.
    let (code, _) = api
        .error_in(
            US,
            "UpdatePrimaryRegion",
            json!({"KeyId": id, "PrimaryRegion": AP}),
        )
        .await;
    assert_eq!(code, "NotFoundException");
    let out = api
        .call_in(
            US,
            "UpdatePrimaryRegion",
            json!({"KeyId": id, "PrimaryRegion": EU}),
        )
        .await;
    assert_eq!(out, json!({}));
    let us = describe(&api, US, &id).await;
    let eu = describe(&api, EU, &id).await;
    assert_eq!(us["KeyState"], "Updating");
    assert_eq!(eu["KeyState"], "Updating");
    assert_eq!(
        mrc(&us),
        ("REPLICA".into(), EU.into(), vec![US.to_string()])
    );
    assert_eq!(
        mrc(&eu),
        ("PRIMARY".into(), EU.into(), vec![US.to_string()])
    );
    let out = api
        .call_in(US, "Decrypt", json!({"CiphertextBlob": ct}))
        .await;
    assert_eq!(out["Plaintext"], pt);
    api.advance(1_001);
    assert_eq!(describe(&api, US, &id).await["KeyState"], "Enabled");
    assert_eq!(describe(&api, EU, &id).await["KeyState"], "Enabled");
    // The old primary is a replica now: it cannot be replicated.
    let (code, _) = api
        .error_in(
            US,
            "ReplicateKey",
            json!({"KeyId": id, "ReplicaRegion": AP}),
        )
        .await;
    assert_eq!(code, "UnsupportedOperationException");

    // Deletion: a primary with replicas waits in PendingReplicaDeletion, without a date.
    let out = api
        .call_in(
            EU,
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 7}),
        )
        .await;
    assert_eq!(out["KeyState"], "PendingReplicaDeletion");
    assert_eq!(out["PendingWindowInDays"], 7);
    assert!(out.get("DeletionDate").is_none(), "{out}");
    let eu = describe(&api, EU, &id).await;
    assert_eq!(eu["KeyState"], "PendingReplicaDeletion");
    assert_eq!(eu["PendingDeletionWindowInDays"], 7);
    let (code, msg) = api
        .error_in(EU, "Encrypt", json!({"KeyId": id, "Plaintext": pt}))
        .await;
    assert_eq!(code, "KMSInvalidStateException");
    assert_eq!(
        msg.as_deref(),
        Some(format!("{} is pending replica deletion.", arn(EU, &id)).as_str())
    );
    // The replica is deleted on its own schedule; then the primary's window starts.
    let out = api
        .call_in(
            US,
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 7}),
        )
        .await;
    assert_eq!(out["KeyState"], "PendingDeletion");
    assert!(out["DeletionDate"].is_number(), "{out}");
    api.advance(7 * 86_400_000 + 1);
    api.kms.sweep().await.unwrap();
    let (code, _) = api.error_in(US, "DescribeKey", json!({"KeyId": id})).await;
    assert_eq!(code, "NotFoundException");
    let eu = describe(&api, EU, &id).await;
    assert_eq!(eu["KeyState"], "PendingDeletion");
    assert!(eu["DeletionDate"].is_number(), "{eu}");
    assert_eq!(mrc(&eu), ("PRIMARY".into(), EU.into(), vec![]));
    // Cancelling leaves it Disabled, as for any key.
    api.call_in(EU, "CancelKeyDeletion", json!({"KeyId": id}))
        .await;
    assert_eq!(describe(&api, EU, &id).await["KeyState"], "Disabled");
}

#[tokio::test]
async fn external_primary_and_replicas_share_imported_material() {
    let api = Api::with_regions(&[US, EU]).await;
    let id = api
        .create(json!({"MultiRegion": true, "Origin": "EXTERNAL"}))
        .await;
    let out = api
        .call_in(
            US,
            "ReplicateKey",
            json!({"KeyId": id, "ReplicaRegion": EU}),
        )
        .await;
    assert_eq!(out["ReplicaKeyMetadata"]["Origin"], "EXTERNAL");
    api.advance(1_001);
    assert_eq!(describe(&api, EU, &id).await["KeyState"], "PendingImport");
    // A token of one member does not import into another.
    let p_us = params(&api, US, &id).await;
    let p_eu = params(&api, EU, &id).await;
    let material = [0x42u8; 32];
    let (code, msg) = import(&api, EU, &id, &p_us, &material, None)
        .await
        .unwrap_err();
    assert_eq!(code, "InvalidImportTokenException");
    assert_eq!(
        msg.as_deref(),
        Some("The import token was issued for a different KMS key.")
    );
    // New material goes into the primary, never into a replica.
    let (code, _) = import(&api, EU, &id, &p_eu, &material, None)
        .await
        .unwrap_err();
    assert_eq!(code, "UnsupportedOperationException");
    import(&api, US, &id, &p_us, &material, None).await.unwrap();
    // Different material is refused by the replica, the same material accepted.
    let p_eu = params(&api, EU, &id).await;
    let (code, msg) = import(&api, EU, &id, &p_eu, &[0x43u8; 32], None)
        .await
        .unwrap_err();
    assert_eq!(code, "IncorrectKeyMaterialException");
    assert_eq!(
        msg.as_deref(),
        Some(
            "The key material being imported is not the same key material that was previously imported into this KMS key."
        )
    );
    import(&api, EU, &id, &p_eu, &material, None).await.unwrap();
    assert_eq!(describe(&api, EU, &id).await["KeyState"], "Enabled");
    let pt = B64.encode(b"byok");
    let ct = api
        .call_in(EU, "Encrypt", json!({"KeyId": id, "Plaintext": pt}))
        .await["CiphertextBlob"]
        .clone();
    let out = api
        .call_in(US, "Decrypt", json!({"CiphertextBlob": ct}))
        .await;
    assert_eq!(out["Plaintext"], pt);

    // Rotation of imported material: new material into the primary waits for the replicas.
    let second = [0x55u8; 32];
    let p_us = params(&api, US, &id).await;
    let mid = import(&api, US, &id, &p_us, &second, Some("NEW_KEY_MATERIAL"))
        .await
        .unwrap();
    let state = |v: &Value, mid: &str| -> String {
        v["Rotations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["KeyMaterialId"] == mid)
            .map(|r| r["KeyMaterialState"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let rot = api
        .call_in(
            US,
            "ListKeyRotations",
            json!({"KeyId": id, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"}),
        )
        .await;
    assert_eq!(
        state(&rot, &mid),
        "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"
    );
    let (code, _) = api
        .error_in(US, "RotateKeyOnDemand", json!({"KeyId": id}))
        .await;
    assert_eq!(code, "KMSInvalidStateException");
    let p_eu = params(&api, EU, &id).await;
    import(&api, EU, &id, &p_eu, &second, Some("EXISTING_KEY_MATERIAL"))
        .await
        .unwrap();
    let rot = api
        .call_in(
            US,
            "ListKeyRotations",
            json!({"KeyId": id, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"}),
        )
        .await;
    assert_eq!(state(&rot, &mid), "PENDING_ROTATION");
    let (code, _) = api
        .error_in(EU, "RotateKeyOnDemand", json!({"KeyId": id}))
        .await;
    assert_eq!(code, "UnsupportedOperationException");
    api.call_in(US, "RotateKeyOnDemand", json!({"KeyId": id}))
        .await;
    for region in [US, EU] {
        let md = describe(&api, region, &id).await;
        assert_eq!(md["CurrentKeyMaterialId"], mid, "{region}");
        assert_eq!(md["KeyState"], "Enabled", "{region}");
    }
    // New ciphertexts use the new material in every Region; old ones still decrypt.
    let ct2 = api
        .call_in(EU, "Encrypt", json!({"KeyId": id, "Plaintext": pt}))
        .await["CiphertextBlob"]
        .clone();
    for c in [&ct, &ct2] {
        let out = api
            .call_in(US, "Decrypt", json!({"CiphertextBlob": c}))
            .await;
        assert_eq!(out["Plaintext"], pt);
    }
}

#[tokio::test]
async fn a_region_not_served_is_refused_as_aws_refuses_a_wrong_region() {
    let api = Api::with_regions(&[US, EU]).await;
    let (status, _, v) = api.raw_in("us-west-2", "ListKeys", b"{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["__type"], "InvalidSignatureException");
    assert_eq!(
        v["message"],
        "Credential should be scoped to a valid region, not 'us-west-2'. "
    );
    // Both served Regions answer, each with its own keys.
    let id = api.create(json!({})).await;
    let eu = api.call_in(EU, "ListKeys", json!({})).await;
    assert_eq!(eu["Keys"], json!([]));
    let us = api.call_in(US, "ListKeys", json!({})).await;
    assert_eq!(us["Keys"][0]["KeyId"], id);
}

async fn params(api: &Api, region: &str, id: &str) -> Value {
    api.call_in(
        region,
        "GetParametersForImport",
        json!({"KeyId": id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
               "WrappingKeySpec": "RSA_2048"}),
    )
    .await
}

/// Wrap `material` with the parameters' public key (RSAES_OAEP_SHA_256) and import it; the
/// key material id, or the error's type and message.
async fn import(
    api: &Api,
    region: &str,
    id: &str,
    params: &Value,
    material: &[u8],
    import_type: Option<&str>,
) -> Result<String, (String, Option<String>)> {
    let public = B64.decode(params["PublicKey"].as_str().unwrap()).unwrap();
    let wrapped = keyferry_crypto::wrap::wrap(
        keyferry_types::AlgorithmSpec::RSAES_OAEP_SHA_256,
        &public,
        material,
    )
    .unwrap();
    let mut body = json!({
        "KeyId": id,
        "ImportToken": params["ImportToken"],
        "EncryptedKeyMaterial": B64.encode(wrapped),
        "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
    });
    if let Some(t) = import_type {
        body["ImportType"] = json!(t);
    }
    let (status, _, v) = api
        .raw_in(region, "ImportKeyMaterial", body.to_string().as_bytes())
        .await;
    if status == StatusCode::OK {
        return Ok(v["KeyMaterialId"].as_str().unwrap_or_default().to_string());
    }
    Err((
        v["__type"].as_str().unwrap().to_string(),
        v.get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string),
    ))
}

/// ReplicateKey needs `kms:ReplicateKey` on the primary and `kms:CreateKey` (by IAM policy) in
/// the replica's Region; the replica gets the policy given in the request.
#[tokio::test]
async fn replicate_key_authorization() {
    const IDENTITIES: &str = r#"
[[accounts]]
id = "111122223333"
root = { access_key_id = "AKIDROOT", secret_access_key = "root-secret" }

[[accounts.users]]
name = "replicator"
access_keys = [{ access_key_id = "AKIDREPL", secret_access_key = "repl-secret" }]
policies = ['''{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["kms:ReplicateKey","kms:DescribeKey"],"Resource":"*"},
  {"Effect":"Allow","Action":"kms:CreateKey","Resource":"*"}]}''']

[[accounts.users]]
name = "nocreate"
access_keys = [{ access_key_id = "AKIDNOCR", secret_access_key = "nocr-secret" }]
policies = ['''{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["kms:ReplicateKey","kms:DescribeKey"],"Resource":"*"}]}''']

[[accounts.users]]
name = "noreplicate"
access_keys = [{ access_key_id = "AKIDNORE", secret_access_key = "nore-secret" }]
policies = ['''{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["kms:CreateKey","kms:DescribeKey"],"Resource":"*"}]}''']
"#;
    let api = Api::with_identities(&[US, EU], Some(IDENTITIES)).await;
    let root = ("AKIDROOT", "root-secret");
    let call =
        |who: (&'static str, &'static str), region: &'static str, op: &'static str, body: Value| {
            let api = &api;
            async move {
                api.raw_as(who, region, op, body.to_string().as_bytes())
                    .await
            }
        };
    let (status, _, v) = call(root, US, "CreateKey", json!({"MultiRegion": true})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let id = v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let body = json!({"KeyId": id, "ReplicaRegion": EU});

    let (status, _, v) = call(
        ("AKIDNORE", "nore-secret"),
        US,
        "ReplicateKey",
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["__type"], "AccessDeniedException");
    assert!(
        v["message"].as_str().unwrap().contains("kms:ReplicateKey"),
        "{v}"
    );
    let (status, _, v) = call(
        ("AKIDNOCR", "nocr-secret"),
        US,
        "ReplicateKey",
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["__type"], "AccessDeniedException");
    assert!(
        v["message"].as_str().unwrap().contains("kms:CreateKey"),
        "{v}"
    );
    // Nothing was created by the refused calls.
    let (_, _, v) = call(root, EU, "ListKeys", json!({})).await;
    assert_eq!(v["Keys"], json!([]));

    // The replica's policy is the request's, under the lockout check: this one would leave the
    // replicator (no kms:PutKeyPolicy in its IAM policy) unable to change it.
    let policy = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:*", "Resource": "*"}]})
    .to_string();
    let (status, _, v) = call(
        ("AKIDREPL", "repl-secret"),
        US,
        "ReplicateKey",
        json!({"KeyId": id, "ReplicaRegion": EU, "Policy": policy}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["__type"], "MalformedPolicyDocumentException");
    let (status, _, v) = call(
        ("AKIDREPL", "repl-secret"),
        US,
        "ReplicateKey",
        json!({"KeyId": id, "ReplicaRegion": EU, "Policy": policy,
               "BypassPolicyLockoutSafetyCheck": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["ReplicaPolicy"], policy);
    let (_, _, v) = call(root, EU, "GetKeyPolicy", json!({"KeyId": id})).await;
    assert_eq!(v["Policy"], policy);
}

/// Rotation of generated material is the primary's, and its replicas follow: new ciphertexts
/// in every Region use the new material, old ones keep decrypting everywhere.
#[tokio::test]
async fn rotation_of_a_primary_reaches_its_replicas() {
    let api = Api::with_regions(&[US, EU]).await;
    let id = api.create(json!({"MultiRegion": true})).await;
    api.call_in(
        US,
        "ReplicateKey",
        json!({"KeyId": id, "ReplicaRegion": EU}),
    )
    .await;
    api.advance(1_001);
    let first = describe(&api, EU, &id).await["CurrentKeyMaterialId"].clone();
    assert_eq!(describe(&api, US, &id).await["CurrentKeyMaterialId"], first);
    let pt = B64.encode(b"rotate me");
    let old = api
        .call_in(EU, "Encrypt", json!({"KeyId": id, "Plaintext": pt}))
        .await["CiphertextBlob"]
        .clone();
    let (code, _) = api
        .error_in(EU, "EnableKeyRotation", json!({"KeyId": id}))
        .await;
    assert_eq!(code, "UnsupportedOperationException");
    api.call_in(
        US,
        "EnableKeyRotation",
        json!({"KeyId": id, "RotationPeriodInDays": 90}),
    )
    .await;
    let status = api
        .call_in(EU, "GetKeyRotationStatus", json!({"KeyId": id}))
        .await;
    assert_eq!(status["KeyRotationEnabled"], true);
    assert_eq!(status["RotationPeriodInDays"], 90);
    // Automatic rotation, run by the sweeper on the primary.
    api.advance(90 * 86_400_000 + 1);
    api.kms.sweep().await.unwrap();
    let second = describe(&api, US, &id).await["CurrentKeyMaterialId"].clone();
    assert_ne!(second, first);
    assert_eq!(
        describe(&api, EU, &id).await["CurrentKeyMaterialId"],
        second
    );
    // On demand.
    api.call_in(US, "RotateKeyOnDemand", json!({"KeyId": id}))
        .await;
    let third = describe(&api, US, &id).await["CurrentKeyMaterialId"].clone();
    assert_ne!(third, second);
    assert_eq!(describe(&api, EU, &id).await["CurrentKeyMaterialId"], third);
    let new = api
        .call_in(EU, "Encrypt", json!({"KeyId": id, "Plaintext": pt}))
        .await["CiphertextBlob"]
        .clone();
    for region in [US, EU] {
        for c in [&old, &new] {
            let out = api
                .call_in(region, "Decrypt", json!({"CiphertextBlob": c}))
                .await;
            assert_eq!(out["Plaintext"], pt, "{region}");
        }
    }
    let rotations = api
        .call_in(EU, "ListKeyRotations", json!({"KeyId": id}))
        .await;
    assert_eq!(rotations["Rotations"].as_array().unwrap().len(), 2);
}

/// A replica whose row shares the primary's write lock shard: a change of the primary reaches
/// it (the copy into the replica once waited forever for the primary's own lock).
#[tokio::test]
async fn a_replica_in_the_primarys_write_lock_shard() {
    let api = Api::with_regions(&[US, EU]).await;
    let mut found = None;
    for _ in 0..2_000 {
        let id = api.create(json!({"MultiRegion": true})).await;
        let replica_row = format!("{id}@{EU}");
        if keyferry_core::write_lock_shard(&id) == keyferry_core::write_lock_shard(&replica_row) {
            found = Some(id);
            break;
        }
    }
    let id = found.expect("a multi-Region key whose replica row shares its shard");
    let within = std::time::Duration::from_secs(30);
    tokio::time::timeout(within, async {
        api.call_in(
            US,
            "ReplicateKey",
            json!({"KeyId": id, "ReplicaRegion": EU}),
        )
        .await;
        api.advance(1_001);
        api.call_in(US, "RotateKeyOnDemand", json!({"KeyId": id}))
            .await;
        let current = describe(&api, US, &id).await["CurrentKeyMaterialId"].clone();
        assert_eq!(
            describe(&api, EU, &id).await["CurrentKeyMaterialId"],
            current
        );
        api.call_in(
            US,
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 7}),
        )
        .await;
        assert_eq!(
            describe(&api, US, &id).await["KeyState"],
            "PendingReplicaDeletion"
        );
        api.call_in(
            EU,
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 7}),
        )
        .await;
        api.advance(7 * 86_400_000 + 1);
        api.kms.sweep().await.unwrap();
        assert_eq!(describe(&api, US, &id).await["KeyState"], "PendingDeletion");
    })
    .await
    .expect("no write waits for a lock its own request holds");
}
