//! Key lifecycle: CreateKey, DescribeKey, ListKeys, Enable/DisableKey, Schedule/CancelKeyDeletion,
//! UpdateKeyDescription.

use std::collections::BTreeMap;

use keyferry_crypto::{asymmetric, material};
use keyferry_types::*;

use super::{is_hmac, mac_algorithm, not_pending_deletion, ts, validation};
use crate::KmsError;
use crate::authz::{self, Ask};
use crate::context::RequestContext;
use crate::kms::{DAY_MS, Kms, is_key_id, state_error};
use crate::record::{KeyRecord, MaterialRecord, RECORD_FORMAT};
use keyferry_policy::Value;

impl Kms {
    pub async fn create_key(
        &self,
        cx: &RequestContext,
        req: CreateKeyRequest,
    ) -> Result<CreateKeyResponse, KmsError> {
        // The model's constraints on the tag list come first, as AWS's request validation.
        super::policy_tags::validate_tag_list(req.tags.as_deref().unwrap_or(&[]))?;
        let spec = match (req.key_spec, req.customer_master_key_spec) {
            (Some(_), Some(_)) => {
                return Err(validation(
                    "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec parameter is deprecated. Use KeySpec parameter instead.",
                ));
            }
            (Some(s), None) => s,
            (None, Some(c)) => c
                .as_str()
                .parse::<KeySpec>()
                .map_err(|_| validation(format!("Unsupported CustomerMasterKeySpec {c}")))?,
            (None, None) => KeySpec::SYMMETRIC_DEFAULT,
        };
        let usage = match req.key_usage {
            Some(u) => u,
            None if spec == KeySpec::SYMMETRIC_DEFAULT => KeyUsageType::ENCRYPT_DECRYPT,
            None => {
                return Err(validation(
                    "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
                ));
            }
        };
        check_spec_usage(spec, usage)?;
        if let Some(store) = &req.custom_key_store_id {
            // This deployment has no custom key stores: every id names none (see
            // `ops/custom_key_stores.rs`).
            return Err(super::custom_key_stores::not_found(store));
        }
        if req.xks_key_id.is_some() {
            return Err(validation(
                "XksKeyId is valid only for a KMS key in an external key store.",
            ));
        }
        let origin = req.origin.unwrap_or(OriginType::AWS_KMS);
        if origin == OriginType::EXTERNAL && !material::importable(spec) {
            // AWS documents that ML-DSA and Ed25519 key material cannot be imported; which call
            // refuses it and with which words is not recorded (docs/decisions.md).
            return Err(KmsError::UnsupportedOperation(format!(
                "KeySpec {spec} does not support imported key material (Origin EXTERNAL)."
            )));
        }
        match origin {
            OriginType::AWS_KMS | OriginType::EXTERNAL => {}
            other => {
                return Err(KmsError::UnsupportedOperation(format!(
                    "Origin {other} needs a custom key store, which Keyferry does not provide."
                )));
            }
        }
        let tags =
            super::policy_tags::check_tags(req.tags.as_deref().unwrap_or(&[]), BTreeMap::new())?;
        let multi_region = req.multi_region.unwrap_or(false);
        let bypass = req.bypass_policy_lockout_safety_check.unwrap_or(false);
        let mut ask = Ask::none()
            .string("kms:KeySpec", spec)
            .string("kms:CustomerMasterKeySpec", spec)
            .string("kms:KeyUsage", usage)
            .string("kms:CustomerMasterKeyUsage", usage)
            .string("kms:KeyOrigin", origin)
            .with("kms:MultiRegion", Value::Bool(multi_region))
            .with("kms:BypassPolicyLockoutSafetyCheck", Value::Bool(bypass));
        if multi_region {
            ask = ask.string("kms:MultiRegionKeyType", "PRIMARY");
        }
        let tags_asked =
            super::policy_tags::tag_conditions(ask, req.tags.as_deref().unwrap_or(&[]));
        self.authorize_account(cx, "kms:CreateKey", tags_asked)?;
        let key_id = new_key_id(multi_region);
        let account = cx.account().to_string();
        let policy = match req.policy {
            Some(p) => {
                let compiled = self.parse_key_policy(&p)?;
                if !bypass {
                    self.check_lockout(
                        cx,
                        &compiled,
                        &crate::record::key_arn(&cx.region, &account, &key_id),
                    )?;
                }
                p
            }
            None => default_policy_for(&account),
        };
        let now = self.now_ms();

        let mut rec = KeyRecord {
            format: RECORD_FORMAT,
            key_id: key_id.clone(),
            account,
            region: cx.region.clone(),
            creation_ms: now,
            description: req.description.unwrap_or_default(),
            key_spec: spec,
            key_usage: usage,
            origin,
            state: KeyState::Enabled,
            multi_region,
            deletion_ms: None,
            pending_window_days: None,
            policy,
            tags,
            rotation_enabled: false,
            rotation_period_days: None,
            next_rotation_ms: None,
            on_demand_rotations: 0,
            public_key: None,
            materials: Vec::new(),
            aws_managed: None,
            row: None,
            primary_region: multi_region.then(|| cx.region.clone()),
            settle_ms: None,
            settle_state: None,
            compiled: Default::default(),
            arn_cache: Default::default(),
        };
        if origin == OriginType::EXTERNAL {
            rec.state = KeyState::PendingImport;
        } else {
            let fresh = tokio::task::spawn_blocking(move || material::generate(spec))
                .await
                .map_err(|e| KmsError::Internal(e.to_string()))?
                .map_err(|e| KmsError::UnsupportedOperation(e.to_string()))?;
            if !(spec == KeySpec::SYMMETRIC_DEFAULT || is_hmac(spec)) {
                let pk = asymmetric::PrivateKey::from_pkcs8(spec, &fresh)
                    .map_err(|e| KmsError::Internal(e.to_string()))?;
                rec.public_key = Some(pk.public_key_der());
            }
            let (id, sealed) = self.seal_material(&key_id, &fresh)?;
            rec.materials.push(MaterialRecord {
                id,
                sealed: Some(sealed),
                state: KeyMaterialState::CURRENT,
                created_ms: now,
                description: None,
                expiration_model: None,
                valid_to_ms: None,
                rotation_ms: None,
                rotation_type: None,
            });
        }
        let rec = self.insert(rec).await?;
        Ok(CreateKeyResponse {
            key_metadata: Some(self.full_metadata(&rec).await?),
        })
    }

    pub async fn describe_key(
        &self,
        cx: &RequestContext,
        req: DescribeKeyRequest,
    ) -> Result<DescribeKeyResponse, KmsError> {
        let rec = self
            .key(cx, &req.key_id, &authz::DESCRIBE_KEY, Ask::none())
            .await?;
        Ok(DescribeKeyResponse {
            key_metadata: Some(self.full_metadata(&rec).await?),
        })
    }

    pub async fn list_keys(
        &self,
        cx: &RequestContext,
        req: ListKeysRequest,
    ) -> Result<ListKeysResponse, KmsError> {
        let limit = req.limit.unwrap_or(100) as u32;
        if let Some(m) = &req.marker
            && !is_key_id(m)
        {
            return Err(KmsError::InvalidMarker(
                "Could not deserialize marker".into(),
            ));
        }
        self.authorize_account(cx, "kms:ListKeys", Ask::none())?;
        // Replica rows are `mrk-…@<region>`: after the marker `mrk-…` comes its own replica
        // row, so page from just past every row of that key id (`~` sorts after `@`).
        let after = req.marker.as_ref().map(|m| {
            if m.starts_with("mrk-") {
                format!("{m}~")
            } else {
                m.clone()
            }
        });
        let mut ids: Vec<String> = self
            .store
            .list_key_ids(cx.account(), &cx.region, after.as_deref(), limit + 1)
            .await?
            .into_iter()
            .map(|row| crate::record::key_id_of_row(&row).to_string())
            .collect();
        let truncated = ids.len() > limit as usize;
        ids.truncate(limit as usize);
        let next = if truncated { ids.last().cloned() } else { None };
        Ok(ListKeysResponse {
            keys: Some(
                ids.into_iter()
                    .map(|id| KeyListEntry {
                        key_arn: Some(crate::record::key_arn(&cx.region, cx.account(), &id)),
                        key_id: Some(id),
                    })
                    .collect(),
            ),
            next_marker: next,
            truncated: Some(truncated),
        })
    }

    pub async fn enable_key(
        &self,
        cx: &RequestContext,
        req: EnableKeyRequest,
    ) -> Result<(), KmsError> {
        let id = self
            .key(cx, &req.key_id, &authz::ENABLE_KEY, Ask::none())
            .await?
            .row_id();
        self.mutate(&id, |rec| match rec.state {
            KeyState::Enabled | KeyState::Disabled => {
                rec.state = KeyState::Enabled;
                Ok(())
            }
            other => Err(state_error(rec, other)),
        })
        .await?;
        Ok(())
    }

    pub async fn disable_key(
        &self,
        cx: &RequestContext,
        req: DisableKeyRequest,
    ) -> Result<(), KmsError> {
        let id = self
            .key(cx, &req.key_id, &authz::DISABLE_KEY, Ask::none())
            .await?
            .row_id();
        self.mutate(&id, |rec| match rec.state {
            KeyState::Enabled | KeyState::Disabled => {
                rec.state = KeyState::Disabled;
                Ok(())
            }
            other => Err(state_error(rec, other)),
        })
        .await?;
        Ok(())
    }

    pub async fn schedule_key_deletion(
        &self,
        cx: &RequestContext,
        req: ScheduleKeyDeletionRequest,
    ) -> Result<ScheduleKeyDeletionResponse, KmsError> {
        let days = req.pending_window_in_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(validation(format!(
                "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30"
            )));
        }
        let ask = Ask::none().with(
            "kms:ScheduleKeyDeletionPendingWindowInDays",
            Value::Number(days as f64),
        );
        let id = self
            .key(cx, &req.key_id, &authz::SCHEDULE_KEY_DELETION, ask)
            .await?
            .row_id();
        let now = self.now_ms();
        // AWS: a multi-Region primary with replicas waits in PendingReplicaDeletion until its
        // last replica is deleted; only then does its waiting period start.
        let has_replicas = {
            let rec = self.load(&id).await?;
            rec.is_primary() && !self.replicas_of(&rec).await?.is_empty()
        };
        let (_, rec) = self
            .mutate(&id, |rec| {
                not_pending_deletion(rec)?;
                if rec.state == KeyState::PendingReplicaDeletion {
                    return Err(state_error(rec, KeyState::PendingReplicaDeletion));
                }
                if has_replicas && rec.is_primary() {
                    rec.state = KeyState::PendingReplicaDeletion;
                    rec.deletion_ms = None;
                } else {
                    rec.state = KeyState::PendingDeletion;
                    rec.deletion_ms = Some(now + days * DAY_MS);
                }
                rec.pending_window_days = Some(days);
                Ok(())
            })
            .await?;
        Ok(ScheduleKeyDeletionResponse {
            key_id: Some(rec.arn()),
            deletion_date: rec.deletion_ms.map(ts),
            key_state: Some(rec.state),
            pending_window_in_days: Some(days),
        })
    }

    pub async fn cancel_key_deletion(
        &self,
        cx: &RequestContext,
        req: CancelKeyDeletionRequest,
    ) -> Result<CancelKeyDeletionResponse, KmsError> {
        let id = self
            .key(cx, &req.key_id, &authz::CANCEL_KEY_DELETION, Ask::none())
            .await?
            .row_id();
        let (_, rec) = self
            .mutate(&id, |rec| {
                if !matches!(
                    rec.state,
                    KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
                ) {
                    return Err(KmsError::InvalidState(format!(
                        "{} is not pending deletion.",
                        rec.arn()
                    )));
                }
                // AWS leaves a cancelled key Disabled; a key without its material cannot be
                // Disabled, so it returns to PendingImport (Keyferry's documented choice).
                rec.state = if rec.all_material_present() {
                    KeyState::Disabled
                } else {
                    KeyState::PendingImport
                };
                rec.deletion_ms = None;
                rec.pending_window_days = None;
                Ok(())
            })
            .await?;
        Ok(CancelKeyDeletionResponse {
            key_id: Some(rec.arn()),
        })
    }

    pub async fn update_key_description(
        &self,
        cx: &RequestContext,
        req: UpdateKeyDescriptionRequest,
    ) -> Result<(), KmsError> {
        let id = self
            .key(cx, &req.key_id, &authz::UPDATE_KEY_DESCRIPTION, Ask::none())
            .await?
            .row_id();
        self.mutate(&id, |rec| {
            not_pending_deletion(rec)?;
            rec.description = req.description.clone();
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// KeyMetadata as DescribeKey/CreateKey show it.
    pub(crate) fn metadata(&self, rec: &KeyRecord) -> KeyMetadata {
        let spec = rec.key_spec;
        let agreement = (rec.key_usage == KeyUsageType::KEY_AGREEMENT)
            .then(|| asymmetric::key_agreement_algorithms(spec).to_vec());
        let (enc, sig, mac) = match rec.key_usage {
            KeyUsageType::ENCRYPT_DECRYPT if spec == KeySpec::SYMMETRIC_DEFAULT => (
                Some(vec![EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT]),
                None,
                None,
            ),
            KeyUsageType::ENCRYPT_DECRYPT => (
                Some(asymmetric::encryption_algorithms(spec).to_vec()),
                None,
                None,
            ),
            KeyUsageType::SIGN_VERIFY => (
                None,
                Some(asymmetric::signing_algorithms(spec).to_vec()),
                None,
            ),
            KeyUsageType::GENERATE_VERIFY_MAC => (None, None, mac_algorithm(spec).map(|m| vec![m])),
            KeyUsageType::KEY_AGREEMENT => (None, None, None),
        };
        let imported = rec.origin == OriginType::EXTERNAL;
        let current = rec.current().filter(|m| m.sealed.is_some());
        let expiration_model = if imported {
            current.and_then(|m| m.expiration_model)
        } else {
            None
        };
        KeyMetadata {
            aws_account_id: Some(rec.account.clone()),
            key_id: rec.key_id.clone(),
            arn: Some(rec.arn()),
            creation_date: Some(ts(rec.creation_ms)),
            enabled: Some(rec.state == KeyState::Enabled),
            description: Some(rec.description.clone()),
            key_usage: Some(rec.key_usage),
            key_state: Some(rec.state),
            deletion_date: rec.deletion_ms.map(ts),
            valid_to: if imported
                && expiration_model == Some(ExpirationModelType::KEY_MATERIAL_EXPIRES)
            {
                rec.valid_to_ms().map(ts)
            } else {
                None
            },
            origin: Some(rec.origin),
            expiration_model,
            key_manager: Some(if rec.aws_managed.is_some() {
                KeyManagerType::AWS
            } else {
                KeyManagerType::CUSTOMER
            }),
            customer_master_key_spec: spec.as_str().parse().ok(),
            key_spec: Some(spec),
            encryption_algorithms: enc,
            signing_algorithms: sig,
            mac_algorithms: mac,
            key_agreement_algorithms: agreement,
            multi_region: Some(rec.multi_region),
            // Filled in by `full_metadata` (it reads the other members).
            multi_region_configuration: None,
            pending_deletion_window_in_days: rec.pending_window_days,
            current_key_material_id: if spec == KeySpec::SYMMETRIC_DEFAULT {
                rec.current().map(|m| m.id.clone())
            } else {
                None
            },
            ..Default::default()
        }
    }
}

/// The key policy CreateKey attaches when none is given: the account principal may do
/// everything, which delegates access to the account's IAM policies.
pub(crate) fn default_policy_for(account: &str) -> String {
    {
        format!(
            r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "arn:aws:iam::{}:root"
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#,
            account
        )
    }
}

fn new_key_id(multi_region: bool) -> String {
    let u = uuid::Uuid::new_v4();
    if multi_region {
        format!("mrk-{}", u.simple())
    } else {
        u.hyphenated().to_string()
    }
}

/// The KeySpec × KeyUsage combinations AWS allows, limited to what Keyferry implements.
fn check_spec_usage(spec: KeySpec, usage: KeyUsageType) -> Result<(), KmsError> {
    use KeySpec as S;
    use KeyUsageType as U;
    let allowed: &[U] = match spec {
        S::SYMMETRIC_DEFAULT => &[U::ENCRYPT_DECRYPT],
        S::HMAC_224 | S::HMAC_256 | S::HMAC_384 | S::HMAC_512 => &[U::GENERATE_VERIFY_MAC],
        S::RSA_2048 | S::RSA_3072 | S::RSA_4096 => &[U::ENCRYPT_DECRYPT, U::SIGN_VERIFY],
        S::ECC_NIST_P256 | S::ECC_NIST_P384 | S::ECC_NIST_P521 => {
            &[U::SIGN_VERIFY, U::KEY_AGREEMENT]
        }
        S::ECC_SECG_P256K1 | S::ECC_NIST_EDWARDS25519 => &[U::SIGN_VERIFY],
        S::ML_DSA_44 | S::ML_DSA_65 | S::ML_DSA_87 => &[U::SIGN_VERIFY],
        other => {
            return Err(KmsError::UnsupportedOperation(format!(
                "Keyferry does not support KeySpec {other}."
            )));
        }
    };
    if !allowed.contains(&usage) {
        return Err(validation(format!(
            "KeyUsage {usage} is not compatible with KeySpec {spec}"
        )));
    }
    Ok(())
}
