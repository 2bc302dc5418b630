//! Issue 9 item 6 end to end: the CloudTrail-format audit trail (`--audit-log FILE`) of the real
//! binary, driven by aws-sdk-kms: events for allowed, denied and unauthenticated calls with their
//! fields, no secret anywhere in the file, what the file holds after `kill -9`, and
//! GetKeyLastUsage answered from what the trail records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyLastUsageTrackingOperation};
use base64::Engine;
use common::Server;
use serde_json::Value;

const ACCOUNT: &str = "111122223333";
const ROOT: (&str, &str) = ("AKIAAUDITROOT0000001", "audit-root-secret-value");
const DEV: (&str, &str) = ("AKIAAUDITDEV00000001", "audit-dev-secret-value");
const NOBODY: (&str, &str) = ("AKIAAUDITNOBODY00001", "audit-nobody-secret-value");

const IDENTITIES: &str = r#"
[[accounts]]
id = "111122223333"
root = { access_key_id = "AKIAAUDITROOT0000001", secret_access_key = "audit-root-secret-value" }

[[accounts.users]]
name = "dev"
access_keys = [{ access_key_id = "AKIAAUDITDEV00000001", secret_access_key = "audit-dev-secret-value" }]
policies = ['''{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey"],"Resource":"*"}]}''']

[[accounts.users]]
name = "nobody"
access_keys = [{ access_key_id = "AKIAAUDITNOBODY00001", secret_access_key = "audit-nobody-secret-value" }]
"#;

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    log: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let ids = dir.join("identities.toml");
        std::fs::write(&ids, IDENTITIES).unwrap();
        std::fs::set_permissions(&ids, std::fs::Permissions::from_mode(0o600)).unwrap();
        Setup {
            log: dir.join("audit.jsonl"),
            dir,
            _tmp: tmp,
        }
    }

    fn server(&self) -> Server {
        Server::start_in(
            &self.dir.join("data"),
            &[
                "--identities",
                self.dir.join("identities.toml").to_str().unwrap(),
                "--audit-log",
                self.log.to_str().unwrap(),
            ],
        )
    }
}

fn events(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn by_request<'a>(events: &'a [Value], request_id: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["requestID"] == request_id)
        .collect();
    assert_eq!(found.len(), 1, "one event for request {request_id}");
    found[0]
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn assert_absent(log: &Path, secret: &[u8], what: &str) {
    let text = std::fs::read(log).unwrap();
    for needle in [
        secret.to_vec(),
        b64(secret).into_bytes(),
        hex::encode(secret).into_bytes(),
    ] {
        assert!(
            !text.windows(needle.len()).any(|w| w == needle.as_slice()),
            "{what} appears in the audit log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_allowed_and_denied_calls_and_no_secret_in_the_file() {
    let setup = Setup::new();
    let server = setup.server();
    let root = common::sdk_client(&server.endpoint, ROOT.0, ROOT.1).await;
    let dev = common::sdk_client(&server.endpoint, DEV.0, DEV.1).await;
    let nobody = common::sdk_client(&server.endpoint, NOBODY.0, NOBODY.1).await;

    let created = root
        .create_key()
        .description("audited")
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata.clone().unwrap();
    let key_arn = meta.arn.clone().unwrap();

    let plaintext = b"the audited plaintext 0123456789".to_vec();
    let enc = dev
        .encrypt()
        .key_id(&meta.key_id)
        .plaintext(Blob::new(plaintext.clone()))
        .encryption_context("Department", "Engineering")
        .send()
        .await
        .unwrap();
    let ciphertext = enc.ciphertext_blob.clone().unwrap().into_inner();
    let dec = dev
        .decrypt()
        .ciphertext_blob(Blob::new(ciphertext.clone()))
        .encryption_context("Department", "Engineering")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext.clone().unwrap().into_inner(), plaintext);
    let dk = root
        .generate_data_key()
        .key_id(&key_arn)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let data_key = dk.plaintext.clone().unwrap().into_inner();
    let data_key_blob = dk.ciphertext_blob.clone().unwrap().into_inner();
    let denied = nobody
        .encrypt()
        .key_id(&key_arn)
        .plaintext(Blob::new(plaintext.clone()))
        .send()
        .await
        .unwrap_err();
    let denied_id = denied.request_id().unwrap().to_string();
    let denied_service = denied.into_service_error();
    assert_eq!(denied_service.meta().code(), Some("AccessDeniedException"));
    let forged = common::sdk_client(&server.endpoint, ROOT.0, "not-the-secret").await;
    let unauth = forged.list_keys().send().await.unwrap_err();
    let unauth_id = unauth.request_id().unwrap().to_string();
    let disabled = root
        .disable_key()
        .key_id(&meta.key_id)
        .send()
        .await
        .unwrap();

    // The events are in the file as soon as the calls were answered.
    let evs = events(&setup.log);
    let mode = std::fs::metadata(&setup.log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the audit log is private");

    let e = by_request(&evs, created.request_id().unwrap());
    assert_eq!(e["eventName"], "CreateKey");
    assert_eq!(e["readOnly"], false);
    assert_eq!(e["requestParameters"]["description"], "audited");
    assert_eq!(
        e["responseElements"]["keyMetadata"]["keyId"],
        meta.key_id.as_str()
    );
    assert_eq!(e["userIdentity"]["type"], "Root");
    assert_eq!(
        e["userIdentity"]["arn"],
        format!("arn:aws:iam::{ACCOUNT}:root")
    );

    let e = by_request(&evs, enc.request_id().unwrap());
    for (field, want) in [
        ("eventVersion", "1.11"),
        ("eventSource", "kms.amazonaws.com"),
        ("eventName", "Encrypt"),
        ("awsRegion", "us-east-1"),
        ("sourceIPAddress", "127.0.0.1"),
        ("eventType", "AwsApiCall"),
        ("recipientAccountId", ACCOUNT),
        ("eventCategory", "Management"),
    ] {
        assert_eq!(e[field], want, "{field}");
    }
    assert!(
        e["userAgent"].as_str().unwrap().contains("aws-sdk-rust"),
        "{e}"
    );
    assert_eq!(
        e["userIdentity"],
        serde_json::json!({"type": "IAMUser", "principalId": e["userIdentity"]["principalId"],
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/dev"), "accountId": ACCOUNT,
            "accessKeyId": DEV.0, "userName": "dev"})
    );
    assert!(
        e["userIdentity"]["principalId"]
            .as_str()
            .unwrap()
            .starts_with("AIDA")
    );
    assert_eq!(
        e["requestParameters"],
        serde_json::json!({"keyId": meta.key_id, "encryptionContext": {"Department": "Engineering"}})
    );
    assert_eq!(e["responseElements"], Value::Null);
    assert_eq!(e["readOnly"], true);
    assert_eq!(
        e["resources"],
        serde_json::json!([{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key_arn}])
    );
    assert!(e.get("errorCode").is_none());
    let event_time = e["eventTime"].as_str().unwrap();
    assert!(
        event_time.len() == 20 && event_time.ends_with('Z'),
        "{event_time}"
    );
    assert_eq!(e["eventID"].as_str().unwrap().len(), 36);

    let e = by_request(&evs, dec.request_id().unwrap());
    assert_eq!(e["eventName"], "Decrypt");
    assert_eq!(e["requestParameters"]["keyId"], key_arn.as_str());
    assert_eq!(
        e["requestParameters"]["encryptionAlgorithm"],
        "SYMMETRIC_DEFAULT"
    );
    assert_eq!(e["responseElements"], Value::Null);

    let e = by_request(&evs, dk.request_id().unwrap());
    assert_eq!(e["eventName"], "GenerateDataKey");
    assert_eq!(
        e["requestParameters"],
        serde_json::json!({"keyId": key_arn, "keySpec": "AES_256"})
    );
    assert_eq!(e["responseElements"], Value::Null);

    let e = by_request(&evs, &denied_id);
    assert_eq!(e["eventName"], "Encrypt");
    assert_eq!(e["errorCode"], "AccessDeniedException");
    assert_eq!(
        e["errorMessage"].as_str().unwrap(),
        denied_service.meta().message().unwrap()
    );
    assert_eq!(e["userIdentity"]["userName"], "nobody");
    assert_eq!(e["resources"][0]["ARN"], key_arn.as_str());

    let e = by_request(&evs, &unauth_id);
    assert_eq!(e["eventName"], "ListKeys");
    assert_eq!(
        e["userIdentity"],
        serde_json::json!({"type": "Unknown", "accessKeyId": ROOT.0})
    );
    assert!(
        e["errorCode"].as_str().unwrap().ends_with("Exception"),
        "{e}"
    );
    assert!(e.get("resources").is_none());

    let e = by_request(&evs, disabled.request_id().unwrap());
    assert_eq!(e["eventName"], "DisableKey");
    assert_eq!(e["readOnly"], false);

    // No secret anywhere in the file: plaintexts, data keys, ciphertexts, secret keys.
    assert_absent(&setup.log, &plaintext, "the plaintext");
    assert_absent(&setup.log, &data_key, "the data key");
    assert_absent(&setup.log, &data_key_blob, "the encrypted data key");
    assert_absent(&setup.log, &ciphertext, "the ciphertext");
    for secret in [ROOT.1, DEV.1, NOBODY.1] {
        assert_absent(&setup.log, secret.as_bytes(), "a secret access key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_file_holds_every_answered_request() {
    let setup = Setup::new();
    let mut server = setup.server();
    let root = common::sdk_client(&server.endpoint, ROOT.0, ROOT.1).await;
    let key = root
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;

    // A burst of concurrent requests; kill -9 the moment the last answer arrived.
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let c = root.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let r = c
                .encrypt()
                .key_id(key)
                .plaintext(Blob::new(format!("burst {i}").into_bytes()))
                .send()
                .await
                .unwrap();
            r.request_id().unwrap().to_string()
        }));
    }
    let mut answered = Vec::new();
    for t in tasks {
        answered.push(t.await.unwrap());
    }
    server.kill9();

    let evs = events(&setup.log);
    for id in &answered {
        let e = by_request(&evs, id);
        assert_eq!(e["eventName"], "Encrypt");
    }

    // A restarted server appends to the same file; what was there stays.
    let before = std::fs::read(&setup.log).unwrap();
    let server = setup.server();
    let root = common::sdk_client(&server.endpoint, ROOT.0, ROOT.1).await;
    let listed = root.list_keys().send().await.unwrap();
    let after = std::fs::read(&setup.log).unwrap();
    assert!(after.starts_with(&before));
    let evs = events(&setup.log);
    assert_eq!(
        by_request(&evs, listed.request_id().unwrap())["eventName"],
        "ListKeys"
    );
    assert_eq!(evs.len(), answered.len() + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_key_last_usage_from_the_trail() {
    let setup = Setup::new();
    let mut server = setup.server();
    let root = common::sdk_client(&server.endpoint, ROOT.0, ROOT.1).await;
    let nobody = common::sdk_client(&server.endpoint, NOBODY.0, NOBODY.1).await;
    let a = root
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let b = root
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();

    // Unused: empty KeyLastUsage; tracking started before the key was created.
    let u = root
        .get_key_last_usage()
        .key_id(&a.key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(u.key_id.as_deref(), Some(a.key_id.as_str()));
    let last = u.key_last_usage.clone().unwrap_or_else(|| panic!("{u:?}"));
    assert!(
        last.operation.is_none() && last.cloud_trail_event_id.is_none(),
        "{u:?}"
    );
    assert_eq!(u.key_creation_date, a.creation_date);
    assert_eq!(u.tracking_start_date, a.creation_date);

    let enc = root
        .encrypt()
        .key_id(&a.key_id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    let enc_id = enc.request_id().unwrap().to_string();
    let check = |key: &str, op: KeyLastUsageTrackingOperation, request_id: &str| {
        let evs = events(&setup.log);
        let event_id = by_request(&evs, request_id)["eventID"]
            .as_str()
            .unwrap()
            .to_string();
        let key = key.to_string();
        let root = root.clone();
        let request_id = request_id.to_string();
        async move {
            let u = root.get_key_last_usage().key_id(&key).send().await.unwrap();
            let last = u.key_last_usage.unwrap();
            assert_eq!(last.operation, Some(op));
            assert_eq!(
                last.cloud_trail_event_id.as_deref(),
                Some(event_id.as_str())
            );
            assert_eq!(last.kms_request_id.as_deref(), Some(request_id.as_str()));
            assert!(last.timestamp.is_some());
        }
    };
    check(&a.key_id, KeyLastUsageTrackingOperation::Encrypt, &enc_id).await;

    let ct = enc.ciphertext_blob.unwrap();
    let dec = root
        .decrypt()
        .ciphertext_blob(ct.clone())
        .send()
        .await
        .unwrap();
    check(
        &a.key_id,
        KeyLastUsageTrackingOperation::Decrypt,
        dec.request_id().unwrap(),
    )
    .await;

    // ReEncrypt updates both keys, with the same event.
    let re = root
        .re_encrypt()
        .ciphertext_blob(ct)
        .destination_key_id(b.arn.clone().unwrap())
        .send()
        .await
        .unwrap();
    let re_id = re.request_id().unwrap().to_string();
    check(&a.key_id, KeyLastUsageTrackingOperation::ReEncrypt, &re_id).await;
    check(&b.key_id, KeyLastUsageTrackingOperation::ReEncrypt, &re_id).await;

    // Failed calls do not count: a wrong encryption context, a denied caller, a disabled key,
    // and operations that are not cryptographic.
    let bad = root
        .decrypt()
        .ciphertext_blob(re.ciphertext_blob.clone().unwrap())
        .encryption_context("not", "it")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        bad.into_service_error().meta().code(),
        Some("InvalidCiphertextException")
    );
    let denied = nobody
        .encrypt()
        .key_id(b.arn.clone().unwrap())
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        denied.into_service_error().meta().code(),
        Some("AccessDeniedException")
    );
    root.describe_key().key_id(&b.key_id).send().await.unwrap();
    root.disable_key().key_id(&b.key_id).send().await.unwrap();
    let off = root
        .encrypt()
        .key_id(&b.key_id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        off.into_service_error().meta().code(),
        Some("DisabledException")
    );
    check(&b.key_id, KeyLastUsageTrackingOperation::ReEncrypt, &re_id).await;
    // By ARN too; aliases are not accepted.
    check(
        &b.arn.clone().unwrap(),
        KeyLastUsageTrackingOperation::ReEncrypt,
        &re_id,
    )
    .await;
    root.create_alias()
        .alias_name("alias/used")
        .target_key_id(&b.key_id)
        .send()
        .await
        .unwrap();
    let by_alias = root
        .get_key_last_usage()
        .key_id("alias/used")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        by_alias.into_service_error().meta().code(),
        Some("NotFoundException")
    );
    // Only the key policy's principals may ask.
    let refused = nobody
        .get_key_last_usage()
        .key_id(&b.key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.into_service_error().meta().code(),
        Some("AccessDeniedException")
    );

    // Usage is flushed to the database every second: it survives kill -9 after that, and the
    // tracking start is stored once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill9();
    let server = setup.server();
    let root = common::sdk_client(&server.endpoint, ROOT.0, ROOT.1).await;
    let evs = events(&setup.log);
    let re_event = by_request(&evs, &re_id)["eventID"]
        .as_str()
        .unwrap()
        .to_string();
    for key in [&a, &b] {
        let u = root
            .get_key_last_usage()
            .key_id(&key.key_id)
            .send()
            .await
            .unwrap();
        let last = u.key_last_usage.unwrap();
        assert_eq!(
            last.operation,
            Some(KeyLastUsageTrackingOperation::ReEncrypt)
        );
        assert_eq!(
            last.cloud_trail_event_id.as_deref(),
            Some(re_event.as_str())
        );
        assert_eq!(u.tracking_start_date, key.creation_date);
    }
}
