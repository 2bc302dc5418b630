//! Multi-Region keys: ReplicateKey, UpdatePrimaryRegion, the `MultiRegionConfiguration` of
//! DescribeKey, and keeping what a primary shares with its replicas in step.
//!
//! Storage: every member of a set has the same key id (`mrk-…`). The member CreateKey made is
//! stored under the bare key id; a replica made by ReplicateKey under `mrk-…@<region>`
//! (`KeyRecord::row`). `Kms::load_member` finds a Region's member; `Kms::members` the whole set
//! (one lookup per served Region: replicas can only be in Regions this deployment serves).
//!
//! Shared (copied from the primary whenever it changes, `Kms::sync_replicas`, run by `mutate`):
//! the primary's Region, rotation settings and the list of key materials (ids, states, rotation
//! dates). For AWS_KMS keys the sealed material is copied too (it is sealed under the key id,
//! which the members share, so a ciphertext of one member decrypts with any other). For
//! imported (EXTERNAL) keys each member keeps only what was imported into it: the same
//! material must be imported into every member. Independent: policy, grants, aliases, tags,
//! description, enabled state, deletion.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keyferry_types::*;

use crate::KmsError;
use crate::authz::{self, Ask};
use crate::context::RequestContext;
use crate::kms::{DAY_MS, Kms, state_error};
use crate::record::{KeyRecord, key_arn, replica_row};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Kms {
    pub async fn replicate_key(
        &self,
        cx: &RequestContext,
        req: ReplicateKeyRequest,
    ) -> Result<ReplicateKeyResponse, KmsError> {
        super::policy_tags::validate_tag_list(req.tags.as_deref().unwrap_or(&[]))?;
        let region = req.replica_region.clone();
        let ask = Ask::none().string("kms:ReplicaRegion", &region);
        let primary = self
            .key(cx, &req.key_id, &authz::REPLICATE_KEY, ask)
            .await?;
        if !primary.multi_region {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} is not a multi-Region key.",
                primary.arn()
            )));
        }
        if primary.is_replica() {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} is a replica key. Only a multi-Region primary key can be replicated.",
                primary.arn()
            )));
        }
        match primary.state {
            KeyState::Enabled | KeyState::PendingImport => {}
            KeyState::Disabled => {
                return Err(KmsError::Disabled(format!(
                    "{} is disabled.",
                    primary.arn()
                )));
            }
            other => return Err(state_error(&primary, other)),
        }
        if !self.serves(&region) {
            return Err(unserved_region(&region));
        }
        let members = self.members(&primary.account, &primary.key_id).await?;
        if members.iter().any(|m| m.region == region) {
            return Err(already_replicated(&primary, &region));
        }
        // AWS: kms:CreateKey (and kms:TagResource for tags) in the replica's Region, by the
        // caller's identity policies.
        let rcx = cx.in_region(&region);
        let tags_given = req.tags.as_deref().unwrap_or(&[]);
        let create_ask = super::policy_tags::tag_conditions(
            Ask::none()
                .string("kms:KeySpec", primary.key_spec)
                .string("kms:KeyUsage", primary.key_usage)
                .string("kms:KeyOrigin", primary.origin)
                .with("kms:MultiRegion", keyferry_policy::Value::Bool(true))
                .string("kms:MultiRegionKeyType", "REPLICA"),
            tags_given,
        );
        self.authorize_account(&rcx, "kms:CreateKey", create_ask)?;
        if !tags_given.is_empty() {
            let tag_ask = super::policy_tags::tag_conditions(Ask::none(), tags_given);
            self.authorize_account(&rcx, "kms:TagResource", tag_ask)?;
        }
        let tags = super::policy_tags::check_tags(tags_given, Default::default())?;
        let replica_arn = key_arn(&region, &primary.account, &primary.key_id);
        let policy = match req.policy {
            Some(p) => {
                let compiled = self.parse_key_policy(&p)?;
                if !req.bypass_policy_lockout_safety_check.unwrap_or(false) {
                    self.check_lockout(&rcx, &compiled, &replica_arn)?;
                }
                p
            }
            None => super::default_policy_for(&primary.account),
        };
        let now = self.now_ms();
        let external = primary.origin == OriginType::EXTERNAL;
        let mut rec = KeyRecord::clone(&primary);
        rec.compiled = Default::default();
        rec.region = region.clone();
        rec.row = Some(replica_row(&primary.key_id, &region));
        rec.primary_region = Some(primary.region.clone());
        rec.creation_ms = now;
        rec.description = req.description.unwrap_or_default();
        rec.policy = policy;
        rec.tags = tags;
        rec.deletion_ms = None;
        rec.pending_window_days = None;
        rec.state = KeyState::Creating;
        rec.settle_ms = Some(now + self.cfg.settle.as_millis() as i64);
        rec.settle_state = Some(KeyState::Enabled);
        if external {
            // Imported material is never copied: each replica imports the same material.
            for m in rec.materials.iter_mut() {
                m.sealed = None;
                m.expiration_model = None;
                m.valid_to_ms = None;
            }
        }
        let rec = match self.insert(rec).await {
            Ok(r) => r,
            Err(KmsError::AlreadyExists(_)) => {
                return Err(already_replicated(&primary, &region));
            }
            Err(e) => return Err(e),
        };
        rcx.touch(rec.arn());
        let metadata = self.full_metadata(&rec).await?;
        Ok(ReplicateKeyResponse {
            replica_key_metadata: Some(metadata),
            replica_policy: Some(rec.policy.clone()),
            replica_tags: Some(
                rec.tags
                    .iter()
                    .map(|(k, v)| Tag {
                        tag_key: k.clone(),
                        tag_value: v.clone(),
                    })
                    .collect(),
            ),
        })
    }

    pub async fn update_primary_region(
        &self,
        cx: &RequestContext,
        req: UpdatePrimaryRegionRequest,
    ) -> Result<(), KmsError> {
        let region = req.primary_region.clone();
        let ask = Ask::none().string("kms:PrimaryRegion", &region);
        let primary = self
            .key(cx, &req.key_id, &authz::UPDATE_PRIMARY_REGION, ask)
            .await?;
        if !primary.multi_region {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} is not a multi-Region key.",
                primary.arn()
            )));
        }
        if primary.is_replica() {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} is not the primary key. Call UpdatePrimaryRegion on the primary key.",
                primary.arn()
            )));
        }
        if !self.serves(&region) {
            return Err(unserved_region(&region));
        }
        if region == primary.region {
            return Err(KmsError::InvalidState(format!(
                "{} is already the primary key in {region}.",
                primary.arn()
            )));
        }
        let rcx = cx.in_region(&region);
        let target = match self.load_member(&region, &primary.key_id).await {
            Ok(t) if t.account == primary.account && t.region == region => t,
            Ok(_) | Err(KmsError::NotFound(_)) => {
                return Err(KmsError::NotFound(format!(
                    "Key '{}' does not exist",
                    key_arn(&region, &primary.account, &primary.key_id)
                )));
            }
            Err(e) => return Err(e),
        };
        // AWS: kms:UpdatePrimaryRegion on both the current primary and the new one.
        let ask = Ask::none().string("kms:PrimaryRegion", &region);
        self.authorize(&rcx, &target, &authz::UPDATE_PRIMARY_REGION, &ask)
            .await?;
        for k in [&primary, &target] {
            match k.state {
                KeyState::Enabled => {}
                KeyState::Disabled => {
                    return Err(KmsError::Disabled(format!("{} is disabled.", k.arn())));
                }
                other => return Err(state_error(k, other)),
            }
        }
        let now = self.now_ms();
        let until = now + self.cfg.settle.as_millis() as i64;
        let enter_updating = |rec: &mut KeyRecord| -> Result<(), KmsError> {
            if rec.state != KeyState::Enabled {
                return Err(state_error(rec, rec.state));
            }
            rec.primary_region = Some(region.clone());
            rec.state = KeyState::Updating;
            rec.settle_ms = Some(until);
            rec.settle_state = Some(KeyState::Enabled);
            Ok(())
        };
        // The old primary first (it becomes a replica and syncs nothing), then the new one,
        // whose write copies the new primary Region into every other member.
        self.mutate(&primary.row_id(), enter_updating).await?;
        self.mutate(&target.row_id(), enter_updating).await?;
        Ok(())
    }

    /// KeyMetadata with the set's `MultiRegionConfiguration` (the same for every member).
    pub(crate) async fn full_metadata(&self, rec: &KeyRecord) -> Result<KeyMetadata, KmsError> {
        let mut md = self.metadata(rec);
        if rec.multi_region {
            let primary_region = rec
                .primary_region
                .clone()
                .unwrap_or_else(|| rec.region.clone());
            let members = self.members(&rec.account, &rec.key_id).await?;
            let replicas = members
                .iter()
                .filter(|m| m.region != primary_region)
                .map(|m| MultiRegionKey {
                    arn: Some(m.arn()),
                    region: Some(m.region.clone()),
                })
                .collect();
            md.multi_region_configuration = Some(MultiRegionConfiguration {
                multi_region_key_type: Some(if rec.is_replica() {
                    MultiRegionKeyType::REPLICA
                } else {
                    MultiRegionKeyType::PRIMARY
                }),
                primary_key: Some(MultiRegionKey {
                    arn: Some(key_arn(&primary_region, &rec.account, &rec.key_id)),
                    region: Some(primary_region),
                }),
                replica_keys: Some(replicas),
            });
        }
        Ok(md)
    }

    /// The primary's replicas (members in other Regions).
    pub(crate) async fn replicas_of(
        &self,
        primary: &KeyRecord,
    ) -> Result<Vec<Arc<KeyRecord>>, KmsError> {
        Ok(self
            .members(&primary.account, &primary.key_id)
            .await?
            .into_iter()
            .filter(|m| m.region != primary.region)
            .collect())
    }

    /// Copy what `primary` shares into each of its replicas. Runs after the primary's write
    /// lock is released, so it copies the primary as stored now (a later write's sync may have
    /// run first; copying the older snapshot would undo it).
    pub(crate) fn sync_replicas(
        &self,
        primary: Arc<KeyRecord>,
    ) -> BoxFuture<'_, Result<(), KmsError>> {
        Box::pin(async move {
            let primary = match self.store.get_key(&primary.row_id()).await? {
                Some(stored) => Arc::new(KeyRecord::decode(&stored.doc)?),
                None => return Ok(()),
            };
            if !primary.is_primary() {
                return Ok(());
            }
            for replica in self.replicas_of(&primary).await? {
                let result = self
                    .mutate(&replica.row_id(), |r| {
                        copy_shared(&primary, r);
                        Ok(())
                    })
                    .await;
                match result {
                    Ok(_) | Err(KmsError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// A member of a multi-Region key was deleted: a primary waiting in
    /// `PendingReplicaDeletion` whose last replica this was starts its own waiting period.
    pub(crate) fn member_deleted(
        &self,
        account: String,
        key_id: String,
    ) -> BoxFuture<'_, Result<(), KmsError>> {
        Box::pin(async move {
            let members = self.members(&account, &key_id).await?;
            if members.len() != 1 || members[0].state != KeyState::PendingReplicaDeletion {
                return Ok(());
            }
            let now = self.now_ms();
            self.mutate(&members[0].row_id(), |r| {
                if r.state == KeyState::PendingReplicaDeletion {
                    let days = r.pending_window_days.unwrap_or(30);
                    r.state = KeyState::PendingDeletion;
                    r.deletion_ms = Some(now + days * DAY_MS);
                }
                Ok(())
            })
            .await?;
            Ok(())
        })
    }

    /// After material was imported into a replica: once every replica holds the material the
    /// primary has pending in `PENDING_MULTI_REGION_IMPORT_AND_ROTATION`, it becomes
    /// `PENDING_ROTATION` (RotateKeyOnDemand on the primary may then make it current).
    pub(crate) async fn settle_multi_region_import(
        &self,
        replica: &KeyRecord,
    ) -> Result<(), KmsError> {
        let members = self.members(&replica.account, &replica.key_id).await?;
        let Some(primary) = members.iter().find(|m| m.is_primary()) else {
            return Ok(());
        };
        let Some(pending) = primary
            .materials
            .iter()
            .find(|m| m.state == KeyMaterialState::PENDING_MULTI_REGION_IMPORT_AND_ROTATION)
            .map(|m| m.id.clone())
        else {
            return Ok(());
        };
        let everywhere = members
            .iter()
            .filter(|m| m.region != primary.region)
            .all(|m| m.material(&pending).is_some_and(|x| x.sealed.is_some()));
        if !everywhere {
            return Ok(());
        }
        self.mutate(&primary.row_id(), |r| {
            for m in r.materials.iter_mut() {
                if m.id == pending
                    && m.state == KeyMaterialState::PENDING_MULTI_REGION_IMPORT_AND_ROTATION
                {
                    m.state = KeyMaterialState::PENDING_ROTATION;
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}

/// Copy the shared properties of `primary` into the replica `r` (see the module docs).
fn copy_shared(primary: &KeyRecord, r: &mut KeyRecord) {
    r.primary_region = Some(
        primary
            .primary_region
            .clone()
            .unwrap_or_else(|| primary.region.clone()),
    );
    r.rotation_enabled = primary.rotation_enabled;
    r.rotation_period_days = primary.rotation_period_days;
    r.next_rotation_ms = primary.next_rotation_ms;
    r.on_demand_rotations = primary.on_demand_rotations;
    if r.public_key.is_none() {
        r.public_key = primary.public_key.clone();
    }
    let external = r.origin == OriginType::EXTERNAL;
    let merged = primary
        .materials
        .iter()
        .map(|pm| {
            let mut m = pm.clone();
            if external {
                let own = r.material(&pm.id);
                m.sealed = own.and_then(|o| o.sealed.clone());
                m.expiration_model = own.and_then(|o| o.expiration_model);
                m.valid_to_ms = own.and_then(|o| o.valid_to_ms);
            }
            m
        })
        .collect();
    r.materials = merged;
    if external
        && matches!(r.state, KeyState::Enabled | KeyState::Disabled)
        && !r.all_material_present()
    {
        r.state = KeyState::PendingImport;
    }
}

/// A Region this deployment does not serve (see docs/decisions.md: AWS's text for a Region
/// that is not enabled is not published).
fn unserved_region(region: &str) -> KmsError {
    KmsError::UnsupportedOperation(format!(
        "The Region {region} is not enabled for this account."
    ))
}

fn already_replicated(primary: &KeyRecord, region: &str) -> KmsError {
    KmsError::AlreadyExists(format!(
        "A key with the key ID {} already exists in the Region {region}.",
        primary.key_id
    ))
}
