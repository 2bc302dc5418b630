//! Grants through the router (`app()` + `oneshot`), on a real SQLite store, with several
//! identities from an identities file: CreateGrant, grant tokens, constraints, ListGrants,
//! ListRetirableGrants, RetireGrant, RevokeGrant, grants through grants, cross-account use,
//! and the EBS-like flow of a service-acting identity.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use keyferry_core::clock::Clock;
use keyferry_core::{Config, Kms};
use keyferry_crypto::seal::RootKey;
use keyferry_server::{AppState, Identities, app};
use keyferry_sigv4::Credentials;
use serde_json::{Value, json};
use tower::ServiceExt;

const A: &str = "111122223333";
const B: &str = "444455556666";
const DAY: i64 = 86_400_000;

const IDENTITIES: &str = r#"
[[accounts]]
id = "111122223333"
root = { access_key_id = "AKIAROOTA00000000001", secret_access_key = "root-a" }

[[accounts.users]]
name = "admin"
access_keys = [{ access_key_id = "AKIAADMIN00000000001", secret_access_key = "admin" }]

[[accounts.users]]
name = "storage-svc"
service = "ec2.amazonaws.com"
access_keys = [{ access_key_id = "AKIASTORSVC000000001", secret_access_key = "svc" }]
policies = ['''{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:ListRetirableGrants","Resource":"*"}]}''']

[[accounts.users]]
name = "storage"
access_keys = [{ access_key_id = "AKIASTORAGE000000001", secret_access_key = "storage" }]

[[accounts.users]]
name = "dev"
access_keys = [{ access_key_id = "AKIADEV0000000000001", secret_access_key = "dev" }]

[[accounts.users]]
name = "carol"
access_keys = [{ access_key_id = "AKIACAROL00000000001", secret_access_key = "carol" }]

[[accounts.roles]]
name = "app"
trust_policy = '''{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/dev"},"Action":"sts:AssumeRole"}]}'''

[[accounts]]
id = "444455556666"
root = { access_key_id = "AKIAROOTB00000000001", secret_access_key = "root-b" }

[[accounts.users]]
name = "bob"
access_keys = [{ access_key_id = "AKIABOB0000000000001", secret_access_key = "bob" }]
"#;

fn root_a() -> Credentials {
    Credentials::new("AKIAROOTA00000000001", "root-a")
}
fn admin() -> Credentials {
    Credentials::new("AKIAADMIN00000000001", "admin")
}
fn storage_svc() -> Credentials {
    Credentials::new("AKIASTORSVC000000001", "svc")
}
fn storage() -> Credentials {
    Credentials::new("AKIASTORAGE000000001", "storage")
}
fn dev() -> Credentials {
    Credentials::new("AKIADEV0000000000001", "dev")
}
fn carol() -> Credentials {
    Credentials::new("AKIACAROL00000000001", "carol")
}
fn bob() -> Credentials {
    Credentials::new("AKIABOB0000000000001", "bob")
}

fn arn(account: &str, what: &str) -> String {
    format!("arn:aws:iam::{account}:{what}")
}

/// The console's policy for a symmetric key: root delegation, key administrators, key users,
/// and "Allow attachment of persistent resources" for the storage users.
fn console_policy() -> String {
    let users = json!([arn(A, "user/storage"), arn(A, "user/storage-svc")]);
    json!({
        "Version": "2012-10-17",
        "Id": "key-consolepolicy-3",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": arn(A, "root")}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow access for Key Administrators", "Effect": "Allow",
             "Principal": {"AWS": [arn(A, "user/admin")]},
             "Action": ["kms:Create*","kms:Describe*","kms:Enable*","kms:List*","kms:Put*","kms:Update*",
                        "kms:Revoke*","kms:Disable*","kms:Get*","kms:Delete*","kms:TagResource",
                        "kms:UntagResource","kms:ScheduleKeyDeletion","kms:CancelKeyDeletion"],
             "Resource": "*"},
            {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": users},
             "Action": ["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],
             "Resource": "*"},
            {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
             "Principal": {"AWS": users},
             "Action": ["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"], "Resource": "*",
             "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
        ]
    })
    .to_string()
}

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Api {
    router: axum::Router,
    clock: Arc<TestClock>,
    store: Arc<dyn keyferry_core::store::Store>,
    _dir: tempfile::TempDir,
}

/// Who signs a request: long-term keys, or a role session.
#[derive(Clone)]
struct As {
    creds: Credentials,
    token: Option<String>,
}

impl From<Credentials> for As {
    fn from(creds: Credentials) -> As {
        As { creds, token: None }
    }
}

impl Api {
    async fn new() -> Api {
        Api::new_in(tempfile::tempdir().unwrap()).await
    }

    async fn new_in(dir: tempfile::TempDir) -> Api {
        let store = keyferry_store::open_store(dir.path().join("kf.db").to_str().unwrap())
            .await
            .unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(
            time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
        )));
        let root = RootKey::from_bytes(&[7u8; 32]).unwrap();
        let mut identities = Identities::new();
        identities.load_str(IDENTITIES).unwrap();
        let cfg = Config {
            account_id: A.into(),
            cache_ttl: Duration::from_secs(3600),
            wrapping_pool_size: 0,
            directory: identities.directory().clone(),
            ..Config::default()
        };
        let kms = Kms::new(cfg, store.clone(), &root, clock.clone());
        let state = Arc::new(AppState::new(kms, identities, &root));
        Api {
            router: app(state),
            clock,
            store,
            _dir: dir,
        }
    }

    async fn send(
        &self,
        who: &As,
        service: &str,
        target: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut b = Request::builder()
            .method("POST")
            .uri(format!("http://{service}.us-east-1.amazonaws.com/"));
        b = match target {
            Some(op) => b
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amz-target", format!("TrentService.{op}")),
            None => b.header("content-type", "application/x-www-form-urlencoded"),
        };
        if let Some(t) = &who.token {
            b = b.header("x-amz-security-token", t.as_str());
        }
        let mut req = b.body(body).unwrap();
        keyferry_sigv4::sign(
            &mut req,
            &who.creds,
            "us-east-1",
            service,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let resp = self
            .router
            .clone()
            .oneshot(req.map(Body::from))
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    async fn raw(&self, who: impl Into<As>, op: &str, body: Value) -> (StatusCode, Value) {
        let (status, bytes) = self
            .send(&who.into(), "kms", Some(op), body.to_string().into_bytes())
            .await;
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, v)
    }

    async fn call(&self, who: impl Into<As>, op: &str, body: Value) -> Value {
        let (status, v) = self.raw(who, op, body).await;
        assert_eq!(status, StatusCode::OK, "{op}: {v}");
        v
    }

    async fn error(&self, who: impl Into<As>, op: &str, body: Value) -> (String, String) {
        let (status, v) = self.raw(who, op, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{op}: {v}");
        (
            v["__type"].as_str().unwrap().to_string(),
            v.get("message")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string(),
        )
    }

    async fn denied(&self, who: impl Into<As>, op: &str, body: Value) -> String {
        let (code, msg) = self.error(who, op, body).await;
        assert_eq!(code, "AccessDeniedException", "{op}: {msg}");
        msg
    }

    /// A role session of `app`, assumed by `dev` through STS on the same endpoint.
    async fn assume_app(&self) -> As {
        let form = format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=vol-attach",
            arn(A, "role/app").replace(':', "%3A").replace('/', "%2F")
        );
        let (status, body) = self
            .send(&dev().into(), "sts", None, form.into_bytes())
            .await;
        let xml = String::from_utf8(body).unwrap();
        assert_eq!(status, StatusCode::OK, "{xml}");
        let field = |name: &str| {
            let start = xml.find(&format!("<{name}>")).unwrap() + name.len() + 2;
            let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
            xml[start..end].to_string()
        };
        As {
            creds: Credentials::new(field("AccessKeyId"), field("SecretAccessKey")),
            token: Some(field("SessionToken")),
        }
    }

    async fn key(&self, body: Value) -> (String, String) {
        let v = self.call(root_a(), "CreateKey", body).await;
        (
            v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string(),
            v["KeyMetadata"]["Arn"].as_str().unwrap().to_string(),
        )
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn ebs_like_flow_service_grant_token_constraint_retire_revoke() {
    let api = Api::new().await;
    let (id, key_arn) = api.key(json!({"Policy": console_policy()})).await;
    let role = arn(A, "role/app");
    let svc = arn(A, "user/storage-svc");
    let create = json!({
        "KeyId": key_arn,
        "GranteePrincipal": role,
        "RetiringPrincipal": svc,
        "Operations": ["Decrypt", "Encrypt", "GenerateDataKeyWithoutPlaintext", "DescribeKey"],
        "Constraints": {"EncryptionContextSubset": {"aws:ebs:id": "vol-0123"}},
    });
    // The same key user, not acting for a service, may not create the grant.
    let msg = api.denied(storage(), "CreateGrant", create.clone()).await;
    assert_eq!(
        msg,
        format!(
            "User: {} is not authorized to perform: kms:CreateGrant on resource: {key_arn} because no identity-based policy allows the kms:CreateGrant action",
            arn(A, "user/storage")
        )
    );
    api.denied(storage(), "ListGrants", json!({"KeyId": id}))
        .await;
    // Acting for EC2, it may.
    let g = api.call(storage_svc(), "CreateGrant", create.clone()).await;
    let grant_id = g["GrantId"].as_str().unwrap().to_string();
    let token = g["GrantToken"].as_str().unwrap().to_string();
    assert_eq!(grant_id.len(), 64);

    // The grantee uses the grant at once, with the token.
    let session = api.assume_app().await;
    let ec = json!({"aws:ebs:id": "vol-0123", "extra": "pair"});
    let enc = api
        .call(
            session.clone(),
            "Encrypt",
            json!({"KeyId": key_arn, "Plaintext": b64("block"), "EncryptionContext": ec, "GrantTokens": [token]}),
        )
        .await;
    let blob = enc["CiphertextBlob"].as_str().unwrap().to_string();
    let dec = api
        .call(
            session.clone(),
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": ec}),
        )
        .await;
    assert_eq!(dec["Plaintext"], b64("block"));
    api.call(session.clone(), "DescribeKey", json!({"KeyId": key_arn}))
        .await;
    // Outside the constraint, or outside the operations: refused.
    let msg = api
        .denied(
            session.clone(),
            "Encrypt",
            json!({"KeyId": key_arn, "Plaintext": b64("x"), "EncryptionContext": {"aws:ebs:id": "vol-9999"}}),
        )
        .await;
    assert!(
        msg.starts_with(&format!(
            "User: arn:aws:sts::{A}:assumed-role/app/vol-attach is not authorized to perform: kms:Encrypt on resource: {key_arn}"
        )),
        "{msg}"
    );
    api.denied(
        session.clone(),
        "Encrypt",
        json!({"KeyId": key_arn, "Plaintext": b64("x")}),
    )
    .await;
    api.denied(
        session.clone(),
        "GenerateDataKey",
        json!({"KeyId": key_arn, "KeySpec": "AES_256", "EncryptionContext": ec}),
    )
    .await;

    // ListGrants for the service identity, ListRetirableGrants for the retiring principal.
    let list = api
        .call(storage_svc(), "ListGrants", json!({"KeyId": key_arn}))
        .await;
    let grants = list["Grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["GrantId"], grant_id);
    assert_eq!(grants[0]["KeyId"], key_arn);
    assert_eq!(grants[0]["GranteePrincipal"], role);
    assert_eq!(grants[0]["RetiringPrincipal"], svc);
    assert_eq!(grants[0]["IssuingAccount"], arn(A, "root"));
    assert_eq!(
        grants[0]["Constraints"],
        json!({"EncryptionContextSubset": {"aws:ebs:id": "vol-0123"}})
    );
    assert_eq!(list["Truncated"], false);
    let retirable = api
        .call(
            storage_svc(),
            "ListRetirableGrants",
            json!({"RetiringPrincipal": svc}),
        )
        .await;
    assert_eq!(retirable["Grants"][0]["GrantId"], grant_id);

    // The grantee may not retire it (no RetireGrant in the grant); the retiring principal may.
    api.denied(session.clone(), "RetireGrant", json!({"GrantToken": token}))
        .await;
    api.call(storage_svc(), "RetireGrant", json!({"GrantToken": token}))
        .await;
    api.denied(
        session.clone(),
        "Encrypt",
        json!({"KeyId": key_arn, "Plaintext": b64("x"), "EncryptionContext": ec}),
    )
    .await;
    let (code, _) = api
        .error(
            storage_svc(),
            "RetireGrant",
            json!({"KeyId": key_arn, "GrantId": grant_id}),
        )
        .await;
    assert_eq!(code, "NotFoundException");

    // A new grant, revoked by the key administrator (kms:Revoke*); the key user without the
    // service may not revoke.
    let g = api.call(storage_svc(), "CreateGrant", create.clone()).await;
    let second = g["GrantId"].as_str().unwrap().to_string();
    api.call(
        session.clone(),
        "Encrypt",
        json!({"KeyId": key_arn, "Plaintext": b64("x"), "EncryptionContext": ec}),
    )
    .await;
    api.denied(
        storage(),
        "RevokeGrant",
        json!({"KeyId": key_arn, "GrantId": second}),
    )
    .await;
    api.call(
        admin(),
        "RevokeGrant",
        json!({"KeyId": key_arn, "GrantId": second}),
    )
    .await;
    api.denied(
        session,
        "Encrypt",
        json!({"KeyId": key_arn, "Plaintext": b64("x"), "EncryptionContext": ec}),
    )
    .await;
    let list = api.call(admin(), "ListGrants", json!({"KeyId": id})).await;
    assert_eq!(list["Grants"], json!([]));
}

#[tokio::test]
async fn create_grant_validation_tokens_dry_run_and_names() {
    let api = Api::new().await;
    let (id, key_arn) = api.key(json!({})).await;
    let carol_arn = arn(A, "user/carol");
    let (code, msg) = api
        .error(
            root_a(),
            "CreateGrant",
            json!({"KeyId": id, "GranteePrincipal": carol_arn, "Operations": ["Sign"]}),
        )
        .await;
    assert_eq!(code, "ValidationException");
    assert!(msg.contains("Sign"), "{msg}");
    let (code, msg) = api
        .error(
            root_a(),
            "CreateGrant",
            json!({"KeyId": id, "GranteePrincipal": carol_arn, "Operations": ["CreateGrant"]}),
        )
        .await;
    assert_eq!(
        (code.as_str(), msg.as_str()),
        (
            "ValidationException",
            "Grants must not contain only the CreateGrant operation."
        )
    );
    let (code, msg) = api
        .error(
            root_a(),
            "CreateGrant",
            json!({"KeyId": id, "GranteePrincipal": "not a principal", "Operations": ["Encrypt"]}),
        )
        .await;
    assert_eq!(code, "ValidationException");
    assert!(msg.contains("at 'granteePrincipal' failed to satisfy constraint: Member must satisfy regular expression pattern"), "{msg}");
    let (code, _) = api
        .error(root_a(), "CreateGrant", json!({"KeyId": id, "GranteePrincipal": carol_arn, "Operations": ["Encrypt"], "GrantTokens": ["bm90LWEtdG9rZW4"]}))
        .await;
    assert_eq!(code, "InvalidGrantTokenException");
    let (code, _) = api
        .error(root_a(), "CreateGrant", json!({"KeyId": id, "GranteePrincipal": carol_arn, "Operations": ["Encrypt"], "DryRun": true}))
        .await;
    assert_eq!(code, "DryRunOperationException");
    assert_eq!(
        api.call(root_a(), "ListGrants", json!({"KeyId": id})).await["Grants"],
        json!([])
    );

    // Constraints are refused for asymmetric and HMAC keys; operations must fit the key type.
    let (rsa, _) = api
        .key(json!({"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}))
        .await;
    let (code, _) = api
        .error(
            root_a(),
            "CreateGrant",
            json!({"KeyId": rsa, "GranteePrincipal": carol_arn, "Operations": ["Sign"],
            "Constraints": {"EncryptionContextEquals": {"a": "1"}}}),
        )
        .await;
    assert_eq!(code, "ValidationException");
    let (code, _) = api
        .error(
            root_a(),
            "CreateGrant",
            json!({"KeyId": rsa, "GranteePrincipal": carol_arn, "Operations": ["Encrypt"]}),
        )
        .await;
    assert_eq!(code, "ValidationException");
    api.call(root_a(), "CreateGrant", json!({"KeyId": rsa, "GranteePrincipal": carol_arn, "Operations": ["Sign", "Verify", "GetPublicKey"]}))
        .await;
    let (hmac, _) = api
        .key(json!({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}))
        .await;
    let (code, _) = api
        .error(
            root_a(),
            "CreateGrant",
            json!({"KeyId": hmac, "GranteePrincipal": carol_arn, "Operations": ["Decrypt"]}),
        )
        .await;
    assert_eq!(code, "ValidationException");

    // Name: the same parameters answer the same grant id with a new token; both tokens work.
    let named = json!({"KeyId": id, "GranteePrincipal": carol_arn, "Operations": ["Encrypt", "Decrypt"], "Name": "backup-job"});
    let g1 = api.call(root_a(), "CreateGrant", named.clone()).await;
    let g2 = api.call(root_a(), "CreateGrant", named.clone()).await;
    assert_eq!(g1["GrantId"], g2["GrantId"]);
    assert_ne!(g1["GrantToken"], g2["GrantToken"]);
    for g in [&g1, &g2] {
        api.call(
            carol(),
            "Encrypt",
            json!({"KeyId": key_arn, "Plaintext": b64("x"), "GrantTokens": [g["GrantToken"]]}),
        )
        .await;
    }
    let list = api.call(root_a(), "ListGrants", json!({"KeyId": id})).await;
    assert_eq!(list["Grants"].as_array().unwrap().len(), 1);
    assert_eq!(list["Grants"][0]["Name"], "backup-job");
    // Other parameters under the same name make another grant.
    let mut other = named.clone();
    other["Operations"] = json!(["Encrypt"]);
    let g3 = api.call(root_a(), "CreateGrant", other).await;
    assert_ne!(g3["GrantId"], g1["GrantId"]);

    // A malformed token is refused on any operation, whoever calls; carol has no DescribeKey.
    let (code, _) = api
        .error(
            root_a(),
            "Encrypt",
            json!({"KeyId": id, "Plaintext": b64("x"), "GrantTokens": ["garbage!"]}),
        )
        .await;
    assert_eq!(code, "InvalidGrantTokenException");
    api.denied(carol(), "DescribeKey", json!({"KeyId": key_arn}))
        .await;

    // Revoke: unknown and malformed grant ids.
    let (code, _) = api
        .error(
            root_a(),
            "RevokeGrant",
            json!({"KeyId": id, "GrantId": "0".repeat(64)}),
        )
        .await;
    assert_eq!(code, "NotFoundException");
    let (code, _) = api
        .error(
            root_a(),
            "RevokeGrant",
            json!({"KeyId": id, "GrantId": "nope"}),
        )
        .await;
    assert_eq!(code, "InvalidGrantIdException");
    let (code, _) = api
        .error(
            root_a(),
            "RevokeGrant",
            json!({"KeyId": id, "GrantId": g1["GrantId"], "DryRun": true}),
        )
        .await;
    assert_eq!(code, "DryRunOperationException");
    let blob = api
        .call(
            root_a(),
            "Encrypt",
            json!({"KeyId": id, "Plaintext": b64("x")}),
        )
        .await["CiphertextBlob"]
        .clone();
    api.call(carol(), "Decrypt", json!({"CiphertextBlob": blob}))
        .await;
    api.call(
        root_a(),
        "RevokeGrant",
        json!({"KeyId": id, "GrantId": g1["GrantId"]}),
    )
    .await;
    api.denied(carol(), "Decrypt", json!({"CiphertextBlob": blob}))
        .await;
}

#[tokio::test]
async fn list_grants_filters_and_paging() {
    let api = Api::new().await;
    let (id, _) = api.key(json!({})).await;
    let mut ids = Vec::new();
    for who in [
        "user/carol",
        "user/carol",
        "user/dev",
        "user/carol",
        "role/app",
    ] {
        let g = api
            .call(
                root_a(),
                "CreateGrant",
                json!({"KeyId": id, "GranteePrincipal": arn(A, who), "Operations": ["Encrypt"]}),
            )
            .await;
        ids.push(g["GrantId"].as_str().unwrap().to_string());
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut req = json!({"KeyId": id, "Limit": 2});
        if let Some(m) = &marker {
            req["Marker"] = json!(m);
        }
        let page = api.call(root_a(), "ListGrants", req).await;
        let grants = page["Grants"].as_array().unwrap();
        assert!(grants.len() <= 2);
        seen.extend(
            grants
                .iter()
                .map(|g| g["GrantId"].as_str().unwrap().to_string()),
        );
        if page["Truncated"] == true {
            marker = Some(page["NextMarker"].as_str().unwrap().to_string());
        } else {
            assert!(page.get("NextMarker").is_none());
            break;
        }
    }
    assert_eq!(seen, ids);
    let carols = api
        .call(
            root_a(),
            "ListGrants",
            json!({"KeyId": id, "GranteePrincipal": arn(A, "user/carol")}),
        )
        .await;
    assert_eq!(carols["Grants"].as_array().unwrap().len(), 3);
    let one = api
        .call(
            root_a(),
            "ListGrants",
            json!({"KeyId": id, "GrantId": ids[2]}),
        )
        .await;
    assert_eq!(one["Grants"].as_array().unwrap().len(), 1);
    assert_eq!(one["Grants"][0]["GrantId"], ids[2]);
    let (code, _) = api
        .error(
            root_a(),
            "ListGrants",
            json!({"KeyId": id, "Marker": "not-a-marker"}),
        )
        .await;
    assert_eq!(code, "InvalidMarkerException");
    // ListRetirableGrants: identity-policy authorized; the retiring principal must be in the
    // caller's account.
    api.denied(
        carol(),
        "ListRetirableGrants",
        json!({"RetiringPrincipal": arn(A, "user/carol")}),
    )
    .await;
    api.denied(
        root_a(),
        "ListRetirableGrants",
        json!({"RetiringPrincipal": arn(B, "user/bob")}),
    )
    .await;
    let none = api
        .call(
            root_a(),
            "ListRetirableGrants",
            json!({"RetiringPrincipal": arn(A, "user/carol")}),
        )
        .await;
    assert_eq!(none["Grants"], json!([]));
}

#[tokio::test]
async fn create_grant_through_a_grant_is_limited_to_its_operations_and_constraints() {
    let api = Api::new().await;
    let (id, key_arn) = api.key(json!({})).await;
    let parent = json!({"KeyId": id, "GranteePrincipal": arn(A, "user/carol"),
        "Operations": ["CreateGrant", "Encrypt", "Decrypt"],
        "Constraints": {"EncryptionContextSubset": {"app": "billing"}}});
    api.call(root_a(), "CreateGrant", parent).await;
    let dev_arn = arn(A, "user/dev");
    // Stricter constraint, subset of operations: allowed.
    let child = api
        .call(
            carol(),
            "CreateGrant",
            json!({"KeyId": key_arn, "GranteePrincipal": dev_arn, "Operations": ["Encrypt"],
            "Constraints": {"EncryptionContextSubset": {"app": "billing", "env": "prod"}}}),
        )
        .await;
    api.call(dev(), "Encrypt", json!({"KeyId": key_arn, "Plaintext": b64("x"), "EncryptionContext": {"app": "billing", "env": "prod"},
        "GrantTokens": [child["GrantToken"]]}))
        .await;
    api.denied(
        dev(),
        "Encrypt",
        json!({"KeyId": key_arn, "Plaintext": b64("x"), "EncryptionContext": {"app": "billing"}}),
    )
    .await;
    // An operation the parent grant lacks, or a weaker constraint: refused.
    api.denied(
        carol(),
        "CreateGrant",
        json!({"KeyId": key_arn, "GranteePrincipal": dev_arn, "Operations": ["GenerateDataKey"],
        "Constraints": {"EncryptionContextSubset": {"app": "billing"}}}),
    )
    .await;
    api.denied(
        carol(),
        "CreateGrant",
        json!({"KeyId": key_arn, "GranteePrincipal": dev_arn, "Operations": ["Encrypt"]}),
    )
    .await;
    api.denied(
        carol(),
        "CreateGrant",
        json!({"KeyId": key_arn, "GranteePrincipal": dev_arn, "Operations": ["Encrypt"],
        "Constraints": {"EncryptionContextSubset": {"env": "prod"}}}),
    )
    .await;
    // dev's grant has no CreateGrant: dev cannot pass it on.
    api.denied(dev(), "CreateGrant", json!({"KeyId": key_arn, "GranteePrincipal": arn(A, "user/carol"), "Operations": ["Encrypt"],
        "Constraints": {"EncryptionContextSubset": {"app": "billing", "env": "prod"}}}))
        .await;
}

#[tokio::test]
async fn grants_work_across_accounts_and_die_with_their_key() {
    let api = Api::new().await;
    let (id, key_arn) = api.key(json!({})).await;
    let bob_arn = arn(B, "user/bob");
    let g = api
        .call(root_a(), "CreateGrant", json!({"KeyId": id, "GranteePrincipal": bob_arn, "Operations": ["Encrypt", "DescribeKey", "RetireGrant"],
            "RetiringPrincipal": arn(A, "user/carol")}))
        .await;
    let grant_id = g["GrantId"].as_str().unwrap().to_string();
    // bob, in another account, uses the grant by key ARN without any policy of his own.
    api.call(
        bob(),
        "Encrypt",
        json!({"KeyId": key_arn, "Plaintext": b64("x")}),
    )
    .await;
    api.call(bob(), "DescribeKey", json!({"KeyId": key_arn}))
        .await;
    let (code, _) = api
        .error(
            bob(),
            "Encrypt",
            json!({"KeyId": id, "Plaintext": b64("x")}),
        )
        .await;
    assert_eq!(code, "NotFoundException");
    api.denied(bob(), "ListGrants", json!({"KeyId": key_arn}))
        .await;
    let retirable = api
        .call(
            root_a(),
            "ListRetirableGrants",
            json!({"RetiringPrincipal": arn(A, "user/carol")}),
        )
        .await;
    assert_eq!(retirable["Grants"][0]["GrantId"], grant_id);
    assert_eq!(retirable["Grants"][0]["KeyId"], key_arn);

    // A grantee whose grant has RetireGrant may retire it, across accounts, by key ARN + id.
    api.call(
        bob(),
        "RetireGrant",
        json!({"KeyId": key_arn, "GrantId": grant_id}),
    )
    .await;
    api.denied(
        bob(),
        "Encrypt",
        json!({"KeyId": key_arn, "Plaintext": b64("x")}),
    )
    .await;

    // Grants are deleted with their key.
    api.call(
        root_a(),
        "CreateGrant",
        json!({"KeyId": id, "GranteePrincipal": bob_arn, "Operations": ["Encrypt"],
        "RetiringPrincipal": arn(A, "user/carol")}),
    )
    .await;
    api.call(
        root_a(),
        "ScheduleKeyDeletion",
        json!({"KeyId": id, "PendingWindowInDays": 7}),
    )
    .await;
    api.clock.0.fetch_add(8 * DAY, Ordering::SeqCst);
    let (code, _) = api
        .error(root_a(), "DescribeKey", json!({"KeyId": id}))
        .await;
    assert_eq!(code, "NotFoundException");
    let retirable = api
        .call(
            root_a(),
            "ListRetirableGrants",
            json!({"RetiringPrincipal": arn(A, "user/carol")}),
        )
        .await;
    assert_eq!(retirable["Grants"], json!([]));
}

/// 50,000 grants per key: the next CreateGrant is LimitExceededException until one is revoked.
/// The first 49,999 rows go straight into the store (on tmpfs, to keep the test fast).
#[tokio::test]
async fn fifty_thousand_grants_per_key() {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let api = Api::new_in(dir).await;
    let (id, key_arn) = api.key(json!({})).await;
    let first = api
        .call(root_a(), "CreateGrant", json!({"KeyId": id, "GranteePrincipal": arn(A, "user/carol"), "Operations": ["Encrypt"]}))
        .await;
    let doc =
        serde_json::to_vec(&json!({"format": 1, "key_arn": key_arn, "operations": ["Encrypt"]}))
            .unwrap();
    for i in 1..50_000u32 {
        api.store
            .insert_grant(&keyferry_core::store::GrantRow {
                grant_id: format!("{i:064x}"),
                key_id: id.clone(),
                grantee_principal: arn(A, "user/dev"),
                retiring_principal: None,
                name: None,
                issuing_account: A.into(),
                creation_ms: 0,
                doc: doc.clone(),
            })
            .await
            .unwrap();
    }
    let (code, msg) = api
        .error(root_a(), "CreateGrant", json!({"KeyId": id, "GranteePrincipal": arn(A, "user/carol"), "Operations": ["Decrypt"]}))
        .await;
    assert_eq!(code, "LimitExceededException", "{msg}");
    api.call(
        root_a(),
        "RevokeGrant",
        json!({"KeyId": id, "GrantId": first["GrantId"]}),
    )
    .await;
    api.call(
        root_a(),
        "CreateGrant",
        json!({"KeyId": id, "GranteePrincipal": arn(A, "user/carol"), "Operations": ["Decrypt"]}),
    )
    .await;
}
