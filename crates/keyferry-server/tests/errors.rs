//! AWS's words for every error: a table of requests through the router (`app()` + `oneshot`,
//! real SQLite store) and the exact `__type`, HTTP status and message AWS answers with. Texts come
//! from AWS's API reference and published recordings of real AWS responses; the few Keyferry had to
//! choose are listed in docs/decisions.md ("Issue 13").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Api;
use http::StatusCode;
use serde_json::{Value, json};

/// One row: an operation, its body (JSON text in which `{name}` is replaced by the id and
/// `{name_arn}` by the ARN of a key set up below), and AWS's answer. `None`: AWS sends no message.
struct Case {
    op: &'static str,
    body: String,
    code: &'static str,
    message: Option<String>,
}

fn case(op: &'static str, body: &str, code: &'static str, message: Option<&str>) -> Case {
    Case {
        op,
        body: body.to_string(),
        code,
        message: message.map(str::to_string),
    }
}

fn tags_json(n: usize) -> String {
    let tags: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"TagKey":"key{i}","TagValue":"value{i}"}}"#))
        .collect();
    format!("[{}]", tags.join(","))
}

struct Keys(Vec<(String, String, String)>);

impl Keys {
    fn fill(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (name, id, arn) in &self.0 {
            out = out.replace(&format!("{{{name}_arn}}"), arn);
            out = out.replace(&format!("{{{name}}}"), id);
        }
        out
    }
}

async fn setup(api: &Api) -> Keys {
    let mut keys = Vec::new();
    let specs = [
        ("sym", json!({})),
        (
            "rsa",
            json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}),
        ),
        (
            "ecc",
            json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
        ),
        (
            "hmac",
            json!({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}),
        ),
        (
            "rsaoff",
            json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}),
        ),
        ("symoff", json!({})),
        ("external", json!({"Origin": "EXTERNAL"})),
    ];
    for (name, body) in specs {
        let meta = api.call("CreateKey", body).await["KeyMetadata"].clone();
        keys.push((
            name.to_string(),
            meta["KeyId"].as_str().unwrap().to_string(),
            meta["Arn"].as_str().unwrap().to_string(),
        ));
    }
    let keys = Keys(keys);
    for off in ["rsaoff", "symoff"] {
        api.call(
            "DisableKey",
            json!({"KeyId": keys.fill(&format!("{{{off}}}"))}),
        )
        .await;
    }
    keys
}

async fn check(api: &Api, keys: &Keys, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let body = keys.fill(&c.body);
        let (status, _, v) = api.raw(c.op, body.as_bytes()).await;
        let code = v["__type"].as_str().unwrap_or("");
        let message = v
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string);
        let want = c.message.as_deref().map(|m| keys.fill(m));
        if status != StatusCode::BAD_REQUEST || code != c.code || message != want {
            let short: String = body.chars().take(120).collect();
            failures.push(format!(
                "{} {short}\n   got  {status} {code} {message:?}\n   want 400 {} {want:?}",
                c.op, c.code
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

const RESERVED: &str = "Tags beginning with aws: are reserved";

#[tokio::test]
async fn tag_rules_as_aws_validates_them() {
    let api = Api::new().await;
    let keys = setup(&api).await;
    let long_key = "a".repeat(129);
    let long_value = "v".repeat(257);
    let cases = vec![
        case(
            "CreateKey",
            r#"{"Tags":[{"TagKey":"aws:key1","TagValue":"v"}]}"#,
            "TagException",
            Some(RESERVED),
        ),
        case(
            "CreateKey",
            r#"{"Tags":[{"TagKey":"AWS:key1","TagValue":"v"}]}"#,
            "TagException",
            Some(RESERVED),
        ),
        case(
            "CreateKey",
            r#"{"Tags":[{"TagKey":"ok","TagValue":"v"},{"TagKey":"aWs:x","TagValue":"v"}]}"#,
            "TagException",
            Some(RESERVED),
        ),
        case(
            "CreateKey",
            &format!(r#"{{"Tags":[{{"TagKey":"{long_key}","TagValue":"v"}}]}}"#),
            "ValidationException",
            Some(&format!(
                "1 validation error detected: Value '{long_key}' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128"
            )),
        ),
        case(
            "CreateKey",
            &format!(r#"{{"Tags":[{{"TagKey":"tag1","TagValue":"{long_value}"}}]}}"#),
            "ValidationException",
            Some(&format!(
                "1 validation error detected: Value '{long_value}' at 'tags.1.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256"
            )),
        ),
        case(
            "CreateKey",
            r#"{"Tags":[{"TagKey":"","TagValue":"v"}]}"#,
            "ValidationException",
            Some(
                "1 validation error detected: Value '' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ),
        ),
        case(
            "CreateKey",
            &format!(
                r#"{{"Tags":[{{"TagKey":"ok","TagValue":"v"}},{{"TagKey":"{long_key}","TagValue":"v"}},{{"TagKey":"k3","TagValue":"{long_value}"}}]}}"#
            ),
            "ValidationException",
            Some(&format!(
                "2 validation errors detected: Value '{long_key}' at 'tags.2.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128; Value '{long_value}' at 'tags.3.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256"
            )),
        ),
        // Model validation comes before the tag rules.
        case(
            "CreateKey",
            &format!(r#"{{"Tags":[{{"TagKey":"aws:x","TagValue":"{long_value}"}}]}}"#),
            "ValidationException",
            Some(&format!(
                "1 validation error detected: Value '{long_value}' at 'tags.1.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256"
            )),
        ),
        case(
            "CreateKey",
            &format!(r#"{{"Tags":{}}}"#, tags_json(51)),
            "TagException",
            Some("Too many tags"),
        ),
        case(
            "CreateKey",
            r#"{"Tags":[{"TagKey":"tag1","TagValue":"value1"},{"TagKey":"tag1","TagValue":"another-value1"}]}"#,
            "TagException",
            Some("Duplicate tag keys"),
        ),
        case(
            "TagResource",
            r#"{"KeyId":"{sym}","Tags":[{"TagKey":"tag1","TagValue":"value1"},{"TagKey":"tag1","TagValue":"another-value1"}]}"#,
            "TagException",
            Some("Duplicate tag keys"),
        ),
        case(
            "TagResource",
            r#"{"KeyId":"{sym}","Tags":[{"TagKey":"aws:key1","TagValue":"value1"}]}"#,
            "TagException",
            Some(RESERVED),
        ),
        case(
            "TagResource",
            &format!(r#"{{"KeyId":"{{sym}}","Tags":{}}}"#, tags_json(51)),
            "TagException",
            Some("Too many tags"),
        ),
        case(
            "TagResource",
            &format!(r#"{{"KeyId":"{{sym}}","Tags":[{{"TagKey":"{long_key}","TagValue":"v"}}]}}"#),
            "ValidationException",
            Some(&format!(
                "1 validation error detected: Value '{long_key}' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128"
            )),
        ),
        case(
            "UntagResource",
            r#"{"KeyId":"{sym}","TagKeys":["ok",""]}"#,
            "ValidationException",
            Some(
                "1 validation error detected: Value '' at 'tagKeys.2.member' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ),
        ),
    ];
    check(&api, &keys, &cases).await;

    // What the rules allow: 50 tags, keys that merely start with "aws", an empty value.
    let fifty = serde_json::from_str::<Value>(&tags_json(50)).unwrap();
    let id = api.create(json!({"Tags": fifty})).await;
    let listed = api.call("ListResourceTags", json!({"KeyId": id})).await;
    assert_eq!(listed["Tags"].as_array().unwrap().len(), 50);
    let sym = keys.fill("{sym}");
    api.call(
        "TagResource",
        json!({"KeyId": sym, "Tags": [{"TagKey": "awsome", "TagValue": ""}, {"TagKey": "aws-team", "TagValue": "x"}]}),
    )
    .await;
    // The limit counts the tags a key would have: 48 more fit, 49 do not, and a refused
    // request changes nothing.
    let more: Vec<Value> = (0..49)
        .map(|i| json!({"TagKey": format!("more{i:02}"), "TagValue": "v"}))
        .collect();
    let (code, message) = api
        .error("TagResource", json!({"KeyId": sym, "Tags": more}))
        .await;
    assert_eq!(
        (code.as_str(), message.as_deref()),
        ("TagException", Some("Too many tags"))
    );
    let listed = api.call("ListResourceTags", json!({"KeyId": sym})).await;
    assert_eq!(listed["Tags"].as_array().unwrap().len(), 2, "{listed}");
    api.call("TagResource", json!({"KeyId": sym, "Tags": more[..48]}))
        .await;
    // Re-tagging an existing key replaces its value and does not count twice.
    api.call(
        "TagResource",
        json!({"KeyId": sym, "Tags": [{"TagKey": "awsome", "TagValue": "new"}]}),
    )
    .await;
    let listed = api
        .call("ListResourceTags", json!({"KeyId": sym, "Limit": 50}))
        .await;
    let tags = listed["Tags"].as_array().unwrap();
    assert_eq!(tags.len(), 50);
    assert!(tags.contains(&json!({"TagKey": "awsome", "TagValue": "new"})));
}

const NO_STORE: &str = "The request was rejected because KMS cannot find a custom key store with the specified key store name or ID.";

#[tokio::test]
async fn custom_key_stores_answer_as_an_account_without_any() {
    let api = Api::new().await;
    let keys = setup(&api).await;
    let v = api.call("DescribeCustomKeyStores", json!({})).await;
    assert_eq!(v, json!({"CustomKeyStores": [], "Truncated": false}));
    let v = api
        .call("DescribeCustomKeyStores", json!({"Limit": 5}))
        .await;
    assert_eq!(v["CustomKeyStores"], json!([]));
    let cks = r#""CustomKeyStoreId":"cks-1234567890abcdef0""#;
    let cases = vec![
        case(
            "DescribeCustomKeyStores",
            &format!("{{{cks}}}"),
            "CustomKeyStoreNotFoundException",
            Some(NO_STORE),
        ),
        case(
            "DescribeCustomKeyStores",
            r#"{"CustomKeyStoreName":"ExampleKeyStore"}"#,
            "CustomKeyStoreNotFoundException",
            Some(NO_STORE),
        ),
        case(
            "ConnectCustomKeyStore",
            &format!("{{{cks}}}"),
            "CustomKeyStoreNotFoundException",
            Some(NO_STORE),
        ),
        case(
            "DisconnectCustomKeyStore",
            &format!("{{{cks}}}"),
            "CustomKeyStoreNotFoundException",
            Some(NO_STORE),
        ),
        case(
            "DeleteCustomKeyStore",
            &format!("{{{cks}}}"),
            "CustomKeyStoreNotFoundException",
            Some(NO_STORE),
        ),
        case(
            "UpdateCustomKeyStore",
            &format!(r#"{{{cks},"NewCustomKeyStoreName":"Other"}}"#),
            "CustomKeyStoreNotFoundException",
            Some(NO_STORE),
        ),
        case(
            "CreateCustomKeyStore",
            r#"{"CustomKeyStoreName":"ExampleKeyStore","CloudHsmClusterId":"cluster-1234567890a","TrustAnchorCertificate":"-----BEGIN CERTIFICATE-----","KeyStorePassword":"kmsPswd1"}"#,
            "CloudHsmClusterNotFoundException",
            Some(
                "The request was rejected because KMS cannot find the CloudHSM cluster with the specified cluster ID. Retry the request with a different cluster ID.",
            ),
        ),
        case(
            "CreateKey",
            &format!(r#"{{{cks},"Origin":"AWS_CLOUDHSM"}}"#),
            "CustomKeyStoreNotFoundException",
            Some(NO_STORE),
        ),
        case(
            "CreateKey",
            &format!("{{{cks}}}"),
            "CustomKeyStoreNotFoundException",
            Some(NO_STORE),
        ),
        case(
            "GenerateRandom",
            &format!(r#"{{{cks},"NumberOfBytes":16}}"#),
            "CustomKeyStoreNotFoundException",
            Some(NO_STORE),
        ),
        // The model's constraints still come first.
        case(
            "ConnectCustomKeyStore",
            r#"{"CustomKeyStoreId":""}"#,
            "ValidationException",
            Some(
                "1 validation error detected: Value '' at 'customKeyStoreId' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ),
        ),
    ];
    check(&api, &keys, &cases).await;
    // Nothing was created on the way.
    let listed = api.call("ListKeys", json!({})).await;
    assert_eq!(listed["Keys"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn rotation_checks_the_key_state_first() {
    let api = Api::new().await;
    let keys = setup(&api).await;
    let cases = vec![
        case(
            "EnableKeyRotation",
            r#"{"KeyId":"{rsaoff}"}"#,
            "DisabledException",
            Some("{rsaoff_arn} is disabled."),
        ),
        case(
            "DisableKeyRotation",
            r#"{"KeyId":"{rsaoff}"}"#,
            "DisabledException",
            Some("{rsaoff_arn} is disabled."),
        ),
        case(
            "RotateKeyOnDemand",
            r#"{"KeyId":"{rsaoff}"}"#,
            "DisabledException",
            Some("{rsaoff_arn} is disabled."),
        ),
        case(
            "EnableKeyRotation",
            r#"{"KeyId":"{symoff}"}"#,
            "DisabledException",
            Some("{symoff_arn} is disabled."),
        ),
        case(
            "RotateKeyOnDemand",
            r#"{"KeyId":"{symoff}"}"#,
            "DisabledException",
            Some("{symoff_arn} is disabled."),
        ),
        case(
            "EnableKeyRotation",
            r#"{"KeyId":"{rsa}"}"#,
            "UnsupportedOperationException",
            None,
        ),
        case(
            "RotateKeyOnDemand",
            r#"{"KeyId":"{rsa}"}"#,
            "UnsupportedOperationException",
            None,
        ),
        case(
            "EnableKeyRotation",
            r#"{"KeyId":"{external}"}"#,
            "KMSInvalidStateException",
            Some("{external_arn} is pending import."),
        ),
        case(
            "RotateKeyOnDemand",
            r#"{"KeyId":"{external}"}"#,
            "KMSInvalidStateException",
            Some("{external_arn} is pending import."),
        ),
    ];
    check(&api, &keys, &cases).await;
}

#[tokio::test]
async fn validation_and_crypto_errors_in_aws_words() {
    let api = Api::new().await;
    let keys = setup(&api).await;
    let b64 = |n: usize| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
    };
    let unknown = "0b7fd7a4-2d62-4e5e-b2a7-0d5c9a4a5f11";
    let cases = vec![
        case(
            "GenerateRandom",
            "{}",
            "ValidationException",
            Some("NumberOfBytes is required."),
        ),
        case(
            "GenerateRandom",
            r#"{"NumberOfBytes":0}"#,
            "ValidationException",
            Some(
                "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: Member must have value greater than or equal to 1",
            ),
        ),
        case(
            "GenerateRandom",
            r#"{"NumberOfBytes":1025}"#,
            "ValidationException",
            Some(
                "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024",
            ),
        ),
        case(
            "Sign",
            &format!(
                r#"{{"KeyId":"{{ecc}}","Message":"{}","MessageType":"DIGEST","SigningAlgorithm":"ECDSA_SHA_256"}}"#,
                b64(20)
            ),
            "ValidationException",
            Some("Digest is invalid length for algorithm ECDSA_SHA_256."),
        ),
        case(
            "Verify",
            &format!(
                r#"{{"KeyId":"{{ecc}}","Message":"{}","MessageType":"DIGEST","SigningAlgorithm":"ECDSA_SHA_256","Signature":"{}"}}"#,
                b64(31),
                b64(64)
            ),
            "ValidationException",
            Some("Digest is invalid length for algorithm ECDSA_SHA_256."),
        ),
        case(
            "Encrypt",
            &format!(
                r#"{{"KeyId":"{{rsa}}","Plaintext":"{}","EncryptionAlgorithm":"RSAES_OAEP_SHA_256"}}"#,
                b64(191)
            ),
            "ValidationException",
            Some(
                "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes.",
            ),
        ),
        case(
            "Encrypt",
            &format!(
                r#"{{"KeyId":"{{rsa}}","Plaintext":"{}","EncryptionAlgorithm":"RSAES_OAEP_SHA_1"}}"#,
                b64(215)
            ),
            "ValidationException",
            Some(
                "Algorithm RSAES_OAEP_SHA_1 and key spec RSA_2048 cannot encrypt data larger than 214 bytes.",
            ),
        ),
        case(
            "Encrypt",
            &format!(r#"{{"KeyId":"{{sym}}","Plaintext":"{}"}}"#, b64(4097)),
            "ValidationException",
            Some(
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096",
            ),
        ),
        case(
            "GenerateMac",
            &format!(
                r#"{{"KeyId":"{{hmac}}","Message":"{}","MacAlgorithm":"HMAC_SHA_512"}}"#,
                b64(8)
            ),
            "InvalidKeyUsageException",
            Some("Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_256."),
        ),
        case(
            "GenerateMac",
            &format!(
                r#"{{"KeyId":"{{sym}}","Message":"{}","MacAlgorithm":"HMAC_SHA_256"}}"#,
                b64(8)
            ),
            "InvalidKeyUsageException",
            Some("{sym_arn} key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac."),
        ),
        case(
            "Encrypt",
            &format!(r#"{{"KeyId":"{{ecc}}","Plaintext":"{}"}}"#, b64(8)),
            "InvalidKeyUsageException",
            Some("{ecc_arn} key usage is SIGN_VERIFY which is not valid for Encrypt."),
        ),
        case(
            "Sign",
            &format!(
                r#"{{"KeyId":"{{hmac}}","Message":"{}","SigningAlgorithm":"ECDSA_SHA_256"}}"#,
                b64(8)
            ),
            "InvalidKeyUsageException",
            Some("{hmac_arn} key usage is GENERATE_VERIFY_MAC which is not valid for Sign."),
        ),
        case(
            "DescribeKey",
            r#"{"KeyId":"fake-key-id"}"#,
            "NotFoundException",
            Some("Invalid keyId 'fake-key-id'"),
        ),
        case(
            "DescribeKey",
            &format!(r#"{{"KeyId":"{unknown}"}}"#),
            "NotFoundException",
            Some(&format!(
                "Key 'arn:aws:kms:us-east-1:111122223333:key/{unknown}' does not exist"
            )),
        ),
        case(
            "CreateKey",
            r#"{"KeySpec":"HMAC_256"}"#,
            "ValidationException",
            Some(
                "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
            ),
        ),
        case(
            "CreateAlias",
            r#"{"AliasName":"foo","TargetKeyId":"{sym}"}"#,
            "ValidationException",
            Some(
                "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
            ),
        ),
        case(
            "GetParametersForImport",
            r#"{"KeyId":"{sym}","WrappingAlgorithm":"RSAES_OAEP_SHA_256","WrappingKeySpec":"RSA_2048"}"#,
            "UnsupportedOperationException",
            Some("{sym_arn} origin is AWS_KMS which is not valid for this operation."),
        ),
        case(
            "Encrypt",
            &format!(r#"{{"KeyId":"{{external}}","Plaintext":"{}"}}"#, b64(8)),
            "KMSInvalidStateException",
            Some("{external_arn} is pending import."),
        ),
        case(
            "Encrypt",
            &format!(r#"{{"KeyId":"{{symoff}}","Plaintext":"{}"}}"#, b64(8)),
            "DisabledException",
            Some("{symoff_arn} is disabled."),
        ),
    ];
    check(&api, &keys, &cases).await;
}

/// The size rules of asymmetric keys for every key spec and algorithm: RSA plaintext limits
/// (OAEP with SHA-1: modulus bytes − 42; SHA-256: − 66) and digest lengths for MessageType DIGEST.
#[tokio::test]
async fn rsa_plaintext_and_digest_sizes_for_every_spec() {
    let api = Api::new().await;
    let b64 = |n: usize| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
    };
    let mut keys = Vec::new();
    for (name, spec, usage) in [
        ("rsa3072", "RSA_3072", "ENCRYPT_DECRYPT"),
        ("rsa4096", "RSA_4096", "ENCRYPT_DECRYPT"),
        ("rsasign", "RSA_2048", "SIGN_VERIFY"),
        ("p384", "ECC_NIST_P384", "SIGN_VERIFY"),
        ("p521", "ECC_NIST_P521", "SIGN_VERIFY"),
        ("k256", "ECC_SECG_P256K1", "SIGN_VERIFY"),
    ] {
        let meta = api
            .call("CreateKey", json!({"KeySpec": spec, "KeyUsage": usage}))
            .await["KeyMetadata"]
            .clone();
        keys.push((
            name.to_string(),
            meta["KeyId"].as_str().unwrap().to_string(),
            meta["Arn"].as_str().unwrap().to_string(),
        ));
    }
    let keys = Keys(keys);
    let mut cases = Vec::new();
    for (key, spec, bytes) in [("rsa3072", "RSA_3072", 384), ("rsa4096", "RSA_4096", 512)] {
        for (alg, overhead) in [("RSAES_OAEP_SHA_1", 42), ("RSAES_OAEP_SHA_256", 66)] {
            let max = bytes - overhead;
            // Within the model's 4096-byte plaintext limit, one byte too many.
            cases.push(case(
                "Encrypt",
                &format!(
                    r#"{{"KeyId":"{{{key}}}","Plaintext":"{}","EncryptionAlgorithm":"{alg}"}}"#,
                    b64(max + 1)
                ),
                "ValidationException",
                Some(&format!(
                    "Algorithm {alg} and key spec {spec} cannot encrypt data larger than {max} bytes."
                )),
            ));
        }
    }
    let digests = [
        ("rsasign", "RSASSA_PKCS1_V1_5_SHA_256", 32),
        ("rsasign", "RSASSA_PKCS1_V1_5_SHA_384", 48),
        ("rsasign", "RSASSA_PKCS1_V1_5_SHA_512", 64),
        ("rsasign", "RSASSA_PSS_SHA_256", 32),
        ("rsasign", "RSASSA_PSS_SHA_384", 48),
        ("rsasign", "RSASSA_PSS_SHA_512", 64),
        ("p384", "ECDSA_SHA_384", 48),
        ("p521", "ECDSA_SHA_512", 64),
        ("k256", "ECDSA_SHA_256", 32),
    ];
    for (key, alg, len) in digests {
        for n in [len - 1, len + 1] {
            cases.push(case(
                "Sign",
                &format!(
                    r#"{{"KeyId":"{{{key}}}","Message":"{}","MessageType":"DIGEST","SigningAlgorithm":"{alg}"}}"#,
                    b64(n)
                ),
                "ValidationException",
                Some(&format!("Digest is invalid length for algorithm {alg}.")),
            ));
        }
        cases.push(case(
            "Verify",
            &format!(
                r#"{{"KeyId":"{{{key}}}","Message":"{}","MessageType":"DIGEST","SigningAlgorithm":"{alg}","Signature":"{}"}}"#,
                b64(len + 1),
                b64(64)
            ),
            "ValidationException",
            Some(&format!("Digest is invalid length for algorithm {alg}.")),
        ));
    }
    check(&api, &keys, &cases).await;
    // The limits themselves are accepted: the largest plaintext encrypts, the right digest signs.
    for (key, alg, max) in [
        ("rsa3072", "RSAES_OAEP_SHA_256", 318),
        ("rsa4096", "RSAES_OAEP_SHA_1", 470),
    ] {
        api.call(
            "Encrypt",
            serde_json::from_str::<Value>(&keys.fill(&format!(
                r#"{{"KeyId":"{{{key}}}","Plaintext":"{}","EncryptionAlgorithm":"{alg}"}}"#,
                b64(max)
            )))
            .unwrap(),
        )
        .await;
    }
    for (key, alg, len) in digests {
        api.call(
            "Sign",
            serde_json::from_str::<Value>(&keys.fill(&format!(
                r#"{{"KeyId":"{{{key}}}","Message":"{}","MessageType":"DIGEST","SigningAlgorithm":"{alg}"}}"#,
                b64(len)
            )))
            .unwrap(),
        )
        .await;
    }
}

/// An enum value outside the set names the set in the model's order, also for two-value enums
/// (recorded for DataKeySpec: "[AES_256, AES_128]").
#[tokio::test]
async fn enum_sets_in_the_models_order() {
    let api = Api::new().await;
    let keys = setup(&api).await;
    let cases = vec![
        case(
            "GenerateDataKey",
            r#"{"KeyId":"{sym}","KeySpec":"AES_512"}"#,
            "ValidationException",
            Some(
                "1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]",
            ),
        ),
        case(
            "ImportKeyMaterial",
            r#"{"KeyId":"{external}","ImportToken":"AA==","EncryptedKeyMaterial":"AA==","ExpirationModel":"NEVER"}"#,
            "ValidationException",
            Some(
                "1 validation error detected: Value 'NEVER' at 'expirationModel' failed to satisfy constraint: Member must satisfy enum value set: [KEY_MATERIAL_EXPIRES, KEY_MATERIAL_DOES_NOT_EXPIRE]",
            ),
        ),
        case(
            "Sign",
            r#"{"KeyId":"{ecc}","Message":"AA==","MessageType":"HASHED","SigningAlgorithm":"ECDSA_SHA_256"}"#,
            "ValidationException",
            Some(
                "1 validation error detected: Value 'HASHED' at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]",
            ),
        ),
    ];
    check(&api, &keys, &cases).await;
}
