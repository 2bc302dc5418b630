//! Request quotas (opt-in, `--request-quotas aws|FILE`): AWS KMS's per-account, per-Region
//! request rates, enforced at the edge before an operation runs. Over a quota the request is
//! refused with `ThrottlingException` (HTTP 400) and AWS's message, which AWS SDKs retry.
//!
//! A quota is a token bucket per (caller's account, Region, quota): it holds at most one
//! second's worth of requests (at least one) and refills continuously. Cryptographic operations
//! share one quota per kind of key (symmetric, RSA, ECC, ML-DSA), as AWS's table says; every
//! other operation has its own. Buckets live in shards, each behind its own mutex held for a few
//! arithmetic operations: no lock is shared by all requests. With quotas off (`None` in
//! `AppState`) the edge does not call into this module at all.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, bail};
use keyferry_core::{Kms, RequestContext};
use serde::Deserialize;

use crate::error::ApiError;

/// AWS's text (the developer guide's *Request quotas* and *Throttling* pages).
pub const THROTTLED: &str =
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.";

/// The shared quotas of cryptographic operations, by the kind of key in the request.
pub const SHARED: [&str; 4] = ["symmetric", "rsa", "ecc", "ml_dsa"];

/// The operations that count against the shared cryptographic quotas.
const CRYPTO_OPS: [&str; 13] = [
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "ReEncrypt",
    "VerifyMac",
    "Sign",
    "Verify",
    "DeriveSharedSecret",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
];

/// AWS's per-operation request quotas (requests per second, per account and Region).
const AWS_OPERATIONS: &[(&str, f64)] = &[
    ("CancelKeyDeletion", 5.0),
    ("ConnectCustomKeyStore", 5.0),
    ("CreateAlias", 5.0),
    ("CreateCustomKeyStore", 5.0),
    ("CreateGrant", 50.0),
    ("CreateKey", 5.0),
    ("DeleteAlias", 15.0),
    ("DeleteCustomKeyStore", 5.0),
    ("DeleteImportedKeyMaterial", 15.0),
    ("DescribeCustomKeyStores", 5.0),
    ("DescribeKey", 2000.0),
    ("DisableKey", 5.0),
    ("DisableKeyRotation", 5.0),
    ("DisconnectCustomKeyStore", 5.0),
    ("EnableKey", 5.0),
    ("EnableKeyRotation", 15.0),
    ("GetKeyPolicy", 1000.0),
    ("GetKeyRotationStatus", 1000.0),
    ("GetParametersForImport", 0.25),
    ("GetPublicKey", 5.0),
    ("ImportKeyMaterial", 5.0),
    ("ListAliases", 100.0),
    ("ListGrants", 100.0),
    ("ListKeyPolicies", 100.0),
    ("ListKeys", 100.0),
    ("ListResourceTags", 100.0),
    ("ListRetirableGrants", 5.0),
    ("PutKeyPolicy", 5.0),
    ("RetireGrant", 15.0),
    ("RevokeGrant", 15.0),
    ("ScheduleKeyDeletion", 5.0),
    ("TagResource", 5.0),
    ("UntagResource", 5.0),
    ("UpdateAlias", 5.0),
    ("UpdateCustomKeyStore", 5.0),
    ("UpdateKeyDescription", 5.0),
];

/// GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext share a quota per key pair spec.
const AWS_KEY_PAIRS: &[(&str, f64)] = &[
    ("RSA_2048", 1.0),
    ("RSA_3072", 0.5),
    ("RSA_4096", 0.1),
    ("ECC_NIST_P256", 25.0),
    ("ECC_NIST_P384", 10.0),
    ("ECC_NIST_P521", 5.0),
    ("ECC_SECG_P256K1", 25.0),
];

/// The shared symmetric quota differs by Region.
fn aws_symmetric(region: &str) -> f64 {
    match region {
        "us-east-1" | "us-west-2" | "eu-west-1" => 100_000.0,
        "us-east-2" | "ap-southeast-1" | "ap-southeast-2" | "ap-northeast-1" | "eu-central-1"
        | "eu-west-2" => 20_000.0,
        _ => 10_000.0,
    }
}

/// The quotas file (`--request-quotas FILE`), TOML:
///
/// ```toml
/// base = "aws"          # optional: start from AWS's quotas, then apply [rates]
/// [rates]               # requests per second, per account and Region
/// CreateKey = 1         # an operation's own quota
/// symmetric = 20        # a shared quota: symmetric, rsa, ecc, ml_dsa
/// "GenerateDataKeyPair RSA_2048" = 0.5
/// ```
///
/// Without `base`, only what `[rates]` names is limited.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    base: Option<String>,
    #[serde(default)]
    rates: HashMap<String, f64>,
}

/// Which quotas apply: names (an operation, a shared quota, or
/// `GenerateDataKeyPair <spec>`) and their rates.
#[derive(Debug, Clone)]
pub struct QuotaTable {
    /// AWS's table, with the symmetric rate of the server's Region.
    aws: bool,
    rates: HashMap<String, f64>,
}

impl QuotaTable {
    /// AWS's documented quotas.
    pub fn aws() -> QuotaTable {
        QuotaTable {
            aws: true,
            rates: HashMap::new(),
        }
    }

    /// `aws` or a TOML file.
    pub fn load(spec: &str) -> anyhow::Result<QuotaTable> {
        if spec == "aws" {
            return Ok(QuotaTable::aws());
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the request quotas file {}", path.display()))?;
        QuotaTable::parse(&text).with_context(|| format!("request quotas file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<QuotaTable> {
        let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let aws = match file.base.as_deref() {
            None => false,
            Some("aws") => true,
            Some(other) => bail!("base = \"{other}\": the only base is \"aws\""),
        };
        for (name, rate) in &file.rates {
            let known = SHARED.contains(&name.as_str())
                || keyferry_types::OPERATIONS.contains(&name.as_str())
                || name
                    .strip_prefix("GenerateDataKeyPair ")
                    .is_some_and(|spec| !spec.is_empty());
            if !known {
                bail!(
                    "[rates] {name}: not a KMS operation, a shared quota ({}) or \"GenerateDataKeyPair <KeyPairSpec>\"",
                    SHARED.join(", ")
                );
            }
            if !(rate.is_finite() && *rate > 0.0) {
                bail!("[rates] {name} = {rate}: a rate is a number of requests per second above 0");
            }
        }
        Ok(QuotaTable {
            aws,
            rates: file.rates,
        })
    }

    fn rate(&self, name: &str, region: &str) -> Option<f64> {
        if let Some(r) = self.rates.get(name) {
            return Some(*r);
        }
        if !self.aws {
            return None;
        }
        match name {
            "symmetric" => Some(aws_symmetric(region)),
            "rsa" | "ecc" | "ml_dsa" => Some(1000.0),
            _ => {
                if let Some(spec) = name.strip_prefix("GenerateDataKeyPair ") {
                    return AWS_KEY_PAIRS
                        .iter()
                        .find(|(s, _)| *s == spec)
                        .map(|(_, r)| *r);
                }
                AWS_OPERATIONS
                    .iter()
                    .find(|(op, _)| *op == name)
                    .map(|(_, r)| *r)
            }
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

const SHARDS: usize = 64;

type Shard = HashMap<String, HashMap<String, HashMap<String, Bucket>>>;

/// The buckets of one server.
pub struct Quotas {
    table: QuotaTable,
    shards: Vec<Mutex<Shard>>,
}

/// The members of a request that choose its quota.
#[derive(Deserialize, Default)]
struct QuotaMembers {
    #[serde(rename = "KeyId")]
    key_id: Option<String>,
    #[serde(rename = "DestinationKeyId")]
    destination_key_id: Option<String>,
    #[serde(rename = "KeyPairSpec")]
    key_pair_spec: Option<String>,
}

impl Quotas {
    pub fn new(table: QuotaTable) -> Quotas {
        Quotas {
            table,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Admit one request of `op` or refuse it with `ThrottlingException`.
    pub async fn admit(
        &self,
        kms: &Kms,
        cx: &RequestContext,
        op: &str,
        body: &[u8],
    ) -> Result<(), ApiError> {
        let name = self.quota_of(kms, cx, op, body).await;
        let Some(rate) = self.table.rate(&name, &cx.region) else {
            return Ok(());
        };
        if self.take(cx.account(), &cx.region, &name, rate) {
            Ok(())
        } else {
            Err(ApiError::client("ThrottlingException", THROTTLED))
        }
    }

    /// The quota a request counts against.
    async fn quota_of(&self, kms: &Kms, cx: &RequestContext, op: &str, body: &[u8]) -> String {
        if !CRYPTO_OPS.contains(&op) {
            return op.to_string();
        }
        let members: QuotaMembers = serde_json::from_slice(body).unwrap_or_default();
        let key = match op {
            "GenerateDataKeyPair" | "GenerateDataKeyPairWithoutPlaintext" => {
                return format!(
                    "GenerateDataKeyPair {}",
                    members.key_pair_spec.unwrap_or_default()
                );
            }
            // Only symmetric keys (HMAC keys count as symmetric), or no key at all.
            "GenerateDataKey"
            | "GenerateDataKeyWithoutPlaintext"
            | "GenerateMac"
            | "VerifyMac"
            | "GenerateRandom" => return "symmetric".into(),
            "ReEncrypt" => members.destination_key_id,
            _ => members.key_id,
        };
        // Decrypt without a KeyId is symmetric (an asymmetric ciphertext needs one); a key that
        // does not resolve counts as symmetric and the operation reports why.
        let spec = match key {
            Some(k) => kms.key_spec_of(cx, &k).await,
            None => None,
        };
        match spec.as_ref().map(|s| s.as_str()) {
            Some(s) if s.starts_with("RSA_") => "rsa".into(),
            Some(s) if s.starts_with("ECC_") || s.starts_with("SM2") => "ecc".into(),
            Some(s) if s.starts_with("ML_DSA") => "ml_dsa".into(),
            _ => "symmetric".into(),
        }
    }

    /// Take a token from the bucket of (account, region, quota); false if it is empty.
    fn take(&self, account: &str, region: &str, quota: &str, rate: f64) -> bool {
        let shard = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (account, region, quota).hash(&mut h);
            (h.finish() as usize) % SHARDS
        };
        let capacity = rate.max(1.0);
        let now = Instant::now();
        let Ok(mut map) = self.shards[shard].lock() else {
            // A poisoned shard (a panic while holding it) admits rather than failing requests.
            return true;
        };
        let by_region = match map.get_mut(account) {
            Some(m) => m,
            None => map.entry(account.to_string()).or_default(),
        };
        let by_quota = match by_region.get_mut(region) {
            Some(m) => m,
            None => by_region.entry(region.to_string()).or_default(),
        };
        let bucket = match by_quota.get_mut(quota) {
            Some(b) => b,
            None => by_quota.entry(quota.to_string()).or_insert(Bucket {
                tokens: capacity,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn aws_table_and_files() {
        let aws = QuotaTable::aws();
        assert_eq!(aws.rate("CreateKey", "us-east-1"), Some(5.0));
        assert_eq!(aws.rate("symmetric", "eu-north-1"), Some(10_000.0));
        assert_eq!(
            aws.rate("GenerateDataKeyPair RSA_4096", "us-east-1"),
            Some(0.1)
        );
        assert_eq!(aws.rate("GenerateRandomNot", "us-east-1"), None);
        let f = QuotaTable::parse("[rates]\nCreateKey = 2\nsymmetric = 3\n").unwrap();
        assert_eq!(f.rate("CreateKey", "us-east-1"), Some(2.0));
        assert_eq!(f.rate("ListKeys", "us-east-1"), None);
        let f = QuotaTable::parse("base = \"aws\"\n[rates]\nCreateKey = 2\n").unwrap();
        assert_eq!(f.rate("CreateKey", "us-east-1"), Some(2.0));
        assert_eq!(f.rate("ListKeys", "us-east-1"), Some(100.0));
        assert!(QuotaTable::parse("[rates]\nCreateKeys = 2\n").is_err());
        assert!(QuotaTable::parse("[rates]\nCreateKey = 0\n").is_err());
        assert!(QuotaTable::parse("base = \"gcp\"\n").is_err());
    }

    #[test]
    fn buckets_refill_and_are_per_account_region_and_quota() {
        let q = Quotas::new(QuotaTable::aws());
        for _ in 0..5 {
            assert!(q.take("1", "us-east-1", "CreateKey", 5.0));
        }
        assert!(!q.take("1", "us-east-1", "CreateKey", 5.0));
        assert!(q.take("2", "us-east-1", "CreateKey", 5.0));
        assert!(q.take("1", "eu-west-1", "CreateKey", 5.0));
        assert!(q.take("1", "us-east-1", "CreateAlias", 5.0));
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(q.take("1", "us-east-1", "CreateKey", 5.0));
        // A fractional rate still admits one request, then waits.
        assert!(q.take("1", "us-east-1", "GetParametersForImport", 0.25));
        assert!(!q.take("1", "us-east-1", "GetParametersForImport", 0.25));
    }
}
