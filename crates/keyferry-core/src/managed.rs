//! AWS managed keys: the predefined `alias/aws/<service>` aliases, and the key AWS creates behind
//! one the first time it is used (DescribeKey, or any operation that accepts an alias, names it).
//!
//! What AWS documents and what recordings of real accounts show: the key is a symmetric
//! encryption key with `KeyManager` `AWS`, the description "Default key that protects my
//! <resources> when no other key is defined", automatic rotation every year that cannot be turned
//! off, and a key policy of two statements: every principal of the account may use the key
//! through the service (`kms:ViaService` `<service>.<region>.amazonaws.com` and
//! `kms:CallerAccount`), and the account may read it (`kms:Describe*`, `kms:Get*`, `kms:List*`,
//! `kms:RevokeGrant`). Nothing else is allowed, so DisableKey, ScheduleKeyDeletion, PutKeyPolicy,
//! rotation changes, tags, aliases and direct cryptographic use by a caller answer
//! `AccessDeniedException` from the one authorizer, as on AWS. Until it is used, a predefined
//! alias is listed by ListAliases without a `TargetKeyId`.

use keyferry_crypto::material;
use keyferry_types::{KeyMaterialState, KeySpec, KeyState, KeyUsageType, OriginType};

use crate::KmsError;
use crate::kms::{DAY_MS, Kms};
use crate::record::{KeyRecord, MaterialRecord, RECORD_FORMAT};
use crate::store::{AliasRow, StoreError};

/// AWS rotates AWS managed keys every year.
const ROTATION_DAYS: i64 = 365;

/// One predefined alias: `alias/aws/<name>`.
pub(crate) struct ManagedService {
    /// The part after `alias/aws/`.
    pub name: &'static str,
    /// What the description says the key protects.
    pub protects: &'static str,
    /// The service that calls KMS (`kms:ViaService` is `<via>.<region>.amazonaws.com`).
    pub via: &'static str,
    /// The service's short name in the policy's statement id.
    pub label: &'static str,
}

/// The services whose AWS managed key Keyferry creates: those whose description is recorded from
/// real accounts (docs/decisions.md, M1). Sorted by alias name (ListAliases order).
pub(crate) const SERVICES: &[ManagedService] = &[
    ManagedService {
        name: "acm",
        protects: "ACM private keys",
        via: "acm",
        label: "ACM",
    },
    ManagedService {
        name: "backup",
        protects: "Backup data",
        via: "backup",
        label: "Backup",
    },
    ManagedService {
        name: "dynamodb",
        protects: "DynamoDB data",
        via: "dynamodb",
        label: "DynamoDB",
    },
    ManagedService {
        name: "ebs",
        protects: "EBS volumes",
        via: "ec2",
        label: "EBS",
    },
    ManagedService {
        name: "elasticfilesystem",
        protects: "EFS filesystems",
        via: "elasticfilesystem",
        label: "EFS",
    },
    ManagedService {
        name: "lambda",
        protects: "Lambda functions",
        via: "lambda",
        label: "Lambda",
    },
    ManagedService {
        name: "rds",
        protects: "RDS database volumes",
        via: "rds",
        label: "RDS",
    },
    ManagedService {
        name: "s3",
        protects: "S3 objects",
        via: "s3",
        label: "S3",
    },
    ManagedService {
        name: "ssm",
        protects: "SSM parameters",
        via: "ssm",
        label: "SSM",
    },
];

/// The predefined alias this name is, if any (`alias/aws/ebs` → EBS).
pub(crate) fn service_of(alias: &str) -> Option<&'static ManagedService> {
    let name = alias.strip_prefix("alias/aws/")?;
    SERVICES.iter().find(|s| s.name == name)
}

impl ManagedService {
    pub fn alias(&self) -> String {
        format!("alias/aws/{}", self.name)
    }

    pub fn description(&self) -> String {
        format!(
            "Default key that protects my {} when no other key is defined",
            self.protects
        )
    }

    /// The key policy AWS attaches to the managed key of this service in `account`/`region`.
    pub fn policy(&self, account: &str, region: &str) -> String {
        let (label, via, name) = (self.label, self.via, self.name);
        format!(
            r#"{{
  "Version" : "2012-10-17",
  "Id" : "auto-{name}-1",
  "Statement" : [ {{
    "Sid" : "Allow access through {label} for all principals in the account that are authorized to use {label}",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "*"
    }},
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {{
      "StringEquals" : {{
        "kms:CallerAccount" : "{account}",
        "kms:ViaService" : "{via}.{region}.amazonaws.com"
      }}
    }}
  }}, {{
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "arn:aws:iam::{account}:root"
    }},
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant" ],
    "Resource" : "*"
  }} ]
}}"#
        )
    }
}

impl Kms {
    /// Create the AWS managed key behind the predefined `alias` in `account`/`region` and point
    /// the alias at it; the key id. When another request (or node) created it first, its key
    /// wins and ours is removed.
    pub(crate) async fn create_managed_key(
        &self,
        account: &str,
        region: &str,
        alias: &str,
    ) -> Result<String, KmsError> {
        let svc = service_of(alias)
            .ok_or_else(|| KmsError::Internal(format!("{alias} is not predefined")))?;
        let key_id = uuid::Uuid::new_v4().hyphenated().to_string();
        let now = self.now_ms();
        let fresh = material::generate(KeySpec::SYMMETRIC_DEFAULT)
            .map_err(|e| KmsError::Internal(e.to_string()))?;
        let (material_id, sealed) = self.seal_material(&key_id, &fresh)?;
        let rec = KeyRecord {
            format: RECORD_FORMAT,
            key_id: key_id.clone(),
            account: account.to_string(),
            region: region.to_string(),
            creation_ms: now,
            description: svc.description(),
            key_spec: KeySpec::SYMMETRIC_DEFAULT,
            key_usage: KeyUsageType::ENCRYPT_DECRYPT,
            origin: OriginType::AWS_KMS,
            state: KeyState::Enabled,
            multi_region: false,
            deletion_ms: None,
            pending_window_days: None,
            policy: svc.policy(account, region),
            tags: Default::default(),
            rotation_enabled: true,
            rotation_period_days: Some(ROTATION_DAYS),
            next_rotation_ms: Some(now + ROTATION_DAYS * DAY_MS),
            on_demand_rotations: 0,
            public_key: None,
            materials: vec![MaterialRecord {
                id: material_id,
                sealed: Some(sealed),
                state: KeyMaterialState::CURRENT,
                created_ms: now,
                description: None,
                expiration_model: None,
                valid_to_ms: None,
                rotation_ms: None,
                rotation_type: None,
            }],
            aws_managed: Some(svc.name.to_string()),
            row: None,
            primary_region: None,
            settle_ms: None,
            settle_state: None,
            compiled: Default::default(),
            arn_cache: Default::default(),
        };
        self.insert(rec).await?;
        let row = AliasRow {
            account: account.to_string(),
            region: region.to_string(),
            name: alias.to_string(),
            target_key_id: key_id.clone(),
            creation_ms: now,
            last_updated_ms: now,
        };
        match self.store.insert_alias(&row).await {
            Ok(()) => Ok(key_id),
            Err(StoreError::AlreadyExists) => {
                // Lost the race: use the key the alias already names, drop ours.
                self.store.delete_key(&key_id).await?;
                self.forget(&key_id);
                match self.store.get_alias(account, region, alias).await? {
                    Some(existing) => Ok(existing.target_key_id),
                    None => Err(KmsError::DependencyTimeout(format!(
                        "alias {alias} changed while its AWS managed key was created"
                    ))),
                }
            }
            Err(e) => {
                let _ = self.store.delete_key(&key_id).await;
                self.forget(&key_id);
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn services_are_sorted_and_policies_parse() {
        let names: Vec<String> = SERVICES.iter().map(|s| s.alias()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for s in SERVICES {
            let p = s.policy("111122223333", "us-east-1");
            keyferry_policy::Policy::parse(&p, keyferry_policy::PolicyKind::Resource)
                .unwrap_or_else(|e| panic!("{}: {}", s.name, e.message));
        }
        assert!(service_of("alias/aws/ebs").is_some());
        assert!(service_of("alias/aws/nosuch").is_none());
        assert!(service_of("alias/ebs").is_none());
    }
}
