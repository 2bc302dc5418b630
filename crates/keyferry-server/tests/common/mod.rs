//! The router test harness shared by `api.rs` and `errors.rs`: `app()` + `oneshot` on a real
//! SQLite store, signed with SigV4 as the account root, with a clock the test controls.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use keyferry_core::clock::Clock;
use keyferry_core::{Config, Kms};
use keyferry_crypto::seal::RootKey;
use keyferry_server::{AppState, Identities, app};
use keyferry_sigv4::{Credentials, SecretKey};
use serde_json::Value;
use tower::ServiceExt;

pub struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct Api {
    pub router: axum::Router,
    pub clock: Arc<TestClock>,
    pub kms: Arc<Kms>,
    _dir: tempfile::TempDir,
}

impl Api {
    pub async fn new() -> Api {
        Api::with_regions(&["us-east-1"]).await
    }

    /// A server for these Regions (the first is the default Region).
    pub async fn with_regions(regions: &[&str]) -> Api {
        Api::with_identities(regions, None).await
    }

    /// A server for these Regions with an identities file's accounts, users and roles (besides
    /// the root access key `AKIDTEST` of 111122223333 when `identities` is `None`).
    pub async fn with_identities(regions: &[&str], identities_toml: Option<&str>) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = keyferry_store::open_store(dir.path().join("kf.db").to_str().unwrap())
            .await
            .unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(1_800_000_000_000)));
        let root = RootKey::from_bytes(&[7u8; 32]).unwrap();
        let mut identities = Identities::new();
        match identities_toml {
            Some(text) => identities.load_str(text).unwrap(),
            None => identities
                .add_root("111122223333", "AKIDTEST", SecretKey::new("s3cret"))
                .unwrap(),
        }
        let directory = if identities_toml.is_some() {
            identities.directory().clone()
        } else {
            keyferry_core::Directory::single("111122223333")
        };
        let cfg = Config {
            directory,
            region: regions[0].to_string(),
            regions: regions.iter().map(|r| r.to_string()).collect(),
            cache_ttl: Duration::from_secs(3600),
            wrapping_pool_size: 0,
            ..Config::default()
        };
        let kms = Kms::new(cfg, store, &root, clock.clone());
        let state = Arc::new(AppState::new(kms.clone(), identities, &root));
        Api {
            router: app(state),
            clock,
            kms,
            _dir: dir,
        }
    }

    pub fn advance(&self, ms: i64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub async fn raw(&self, op: &str, body: &[u8]) -> (StatusCode, http::HeaderMap, Value) {
        self.raw_in("us-east-1", op, body).await
    }

    /// A request signed for `region` (its credential scope).
    pub async fn raw_in(
        &self,
        region: &str,
        op: &str,
        body: &[u8],
    ) -> (StatusCode, http::HeaderMap, Value) {
        self.raw_as(("AKIDTEST", "s3cret"), region, op, body).await
    }

    /// A request signed with this access key for `region`.
    pub async fn raw_as(
        &self,
        (akid, secret): (&str, &str),
        region: &str,
        op: &str,
        body: &[u8],
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("http://kms.{region}.amazonaws.com/"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("TrentService.{op}"))
            .body(body.to_vec())
            .unwrap();
        keyferry_sigv4::sign(
            &mut req,
            &Credentials::new(akid, secret),
            region,
            "kms",
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
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, headers, v)
    }

    pub async fn call(&self, op: &str, body: Value) -> Value {
        let (status, _, v) = self.raw(op, body.to_string().as_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{op}: {v}");
        v
    }

    pub async fn call_in(&self, region: &str, op: &str, body: Value) -> Value {
        let (status, _, v) = self.raw_in(region, op, body.to_string().as_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{op} in {region}: {v}");
        v
    }

    pub async fn error_in(&self, region: &str, op: &str, body: Value) -> (String, Option<String>) {
        let (status, _, v) = self.raw_in(region, op, body.to_string().as_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{op} in {region}: {v}");
        (
            v["__type"].as_str().unwrap().to_string(),
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string),
        )
    }

    pub async fn error(&self, op: &str, body: Value) -> (String, Option<String>) {
        let (status, _, v) = self.raw(op, body.to_string().as_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{op}: {v}");
        (
            v["__type"].as_str().unwrap().to_string(),
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string),
        )
    }

    pub async fn create(&self, body: Value) -> String {
        self.call("CreateKey", body).await["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string()
    }
}
