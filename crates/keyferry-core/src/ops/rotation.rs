//! Automatic and on-demand rotation: Enable/DisableKeyRotation, GetKeyRotationStatus,
//! RotateKeyOnDemand, ListKeyRotations. Old material keeps decrypting.

use keyferry_types::*;

use super::{ts, validation};
use crate::KmsError;
use crate::authz::{self, Ask};
use crate::context::RequestContext;
use crate::kms::{DAY_MS, Kms, state_error};
use crate::record::KeyRecord;

/// AWS's limit of on-demand rotations per key.
const ON_DEMAND_LIMIT: u32 = 25;

fn origin_error(rec: &KeyRecord) -> KmsError {
    KmsError::UnsupportedOperation(format!(
        "{} origin is {} which is not valid for this operation.",
        rec.arn(),
        rec.origin
    ))
}

/// Automatic rotation exists only for symmetric keys whose material KMS generated.
/// AWS's order: the key's state first (a disabled key is `DisabledException`, a key pending
/// import or deletion `KMSInvalidStateException`), then its origin, then its spec.
fn check_auto_rotatable(rec: &KeyRecord) -> Result<(), KmsError> {
    check_enabled(rec)?;
    not_replica(rec)?;
    if rec.origin != OriginType::AWS_KMS {
        return Err(origin_error(rec));
    }
    if rec.key_spec != KeySpec::SYMMETRIC_DEFAULT {
        return Err(KmsError::UnsupportedOperation(String::new()));
    }
    Ok(())
}

/// Rotation of a multi-Region key is managed on its primary only (AWS).
fn not_replica(rec: &KeyRecord) -> Result<(), KmsError> {
    if rec.is_replica() {
        return Err(KmsError::UnsupportedOperation(format!(
            "{} is a multi-Region replica key. Rotation is managed on its primary key.",
            rec.arn()
        )));
    }
    Ok(())
}

fn check_enabled(rec: &KeyRecord) -> Result<(), KmsError> {
    match rec.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled(format!("{} is disabled.", rec.arn()))),
        other => Err(state_error(rec, other)),
    }
}

impl Kms {
    pub async fn enable_key_rotation(
        &self,
        cx: &RequestContext,
        req: EnableKeyRotationRequest,
    ) -> Result<(), KmsError> {
        let period = req.rotation_period_in_days.unwrap_or(365);
        let ask = Ask::none().with(
            "kms:RotationPeriodInDays",
            keyferry_policy::Value::Number(period as f64),
        );
        let id = self
            .key(cx, &req.key_id, &authz::ENABLE_KEY_ROTATION, ask)
            .await?
            .row_id();
        let now = self.now_ms();
        self.mutate(&id, |rec| {
            check_auto_rotatable(rec)?;
            rec.rotation_enabled = true;
            rec.rotation_period_days = Some(period);
            rec.next_rotation_ms = Some(now + period * DAY_MS);
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn disable_key_rotation(
        &self,
        cx: &RequestContext,
        req: DisableKeyRotationRequest,
    ) -> Result<(), KmsError> {
        let id = self
            .key(cx, &req.key_id, &authz::DISABLE_KEY_ROTATION, Ask::none())
            .await?
            .row_id();
        self.mutate(&id, |rec| {
            check_auto_rotatable(rec)?;
            rec.rotation_enabled = false;
            rec.next_rotation_ms = None;
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn get_key_rotation_status(
        &self,
        cx: &RequestContext,
        req: GetKeyRotationStatusRequest,
    ) -> Result<GetKeyRotationStatusResponse, KmsError> {
        let rec = self
            .key(
                cx,
                &req.key_id,
                &authz::GET_KEY_ROTATION_STATUS,
                Ask::none(),
            )
            .await?;
        if rec.origin == OriginType::EXTERNAL && rec.state == KeyState::PendingImport {
            return Err(origin_error(&rec));
        }
        if rec.key_spec != KeySpec::SYMMETRIC_DEFAULT {
            return Err(KmsError::UnsupportedOperation(String::new()));
        }
        if rec.state == KeyState::PendingDeletion {
            return Err(state_error(&rec, KeyState::PendingDeletion));
        }
        Ok(GetKeyRotationStatusResponse {
            key_rotation_enabled: Some(rec.rotation_enabled),
            key_id: Some(rec.arn()),
            rotation_period_in_days: if rec.rotation_enabled {
                rec.rotation_period_days
            } else {
                None
            },
            next_rotation_date: if rec.rotation_enabled {
                rec.next_rotation_ms.map(ts)
            } else {
                None
            },
            on_demand_rotation_start_date: None,
        })
    }

    pub async fn rotate_key_on_demand(
        &self,
        cx: &RequestContext,
        req: RotateKeyOnDemandRequest,
    ) -> Result<RotateKeyOnDemandResponse, KmsError> {
        let id = self
            .key(cx, &req.key_id, &authz::ROTATE_KEY_ON_DEMAND, Ask::none())
            .await?
            .row_id();
        let now = self.now_ms();
        let (_, rec) = self
            .mutate(&id, |rec| {
                check_enabled(rec)?;
                not_replica(rec)?;
                if rec.key_spec != KeySpec::SYMMETRIC_DEFAULT {
                    return Err(KmsError::UnsupportedOperation(String::new()));
                }
                if rec.on_demand_rotations >= ON_DEMAND_LIMIT {
                    return Err(KmsError::LimitExceeded(format!(
                        "The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for this key: {}",
                        rec.arn()
                    )));
                }
                if rec.origin == OriginType::EXTERNAL {
                    if let Some(m) = rec.materials.iter().find(|m| {
                        m.state == KeyMaterialState::PENDING_MULTI_REGION_IMPORT_AND_ROTATION
                    }) {
                        return Err(KmsError::InvalidState(format!(
                            "Key material (id: {}) of {} is not yet imported into every replica key.",
                            m.id,
                            rec.arn()
                        )));
                    }
                    let Some(pending) = rec.pending_rotation().map(|m| m.id.clone()) else {
                        return Err(KmsError::InvalidState(format!(
                            "No available key material pending rotation for the key: {}.",
                            rec.arn()
                        )));
                    };
                    for m in rec.materials.iter_mut() {
                        if m.state == KeyMaterialState::CURRENT {
                            m.state = KeyMaterialState::NON_CURRENT;
                        } else if m.id == pending {
                            m.state = KeyMaterialState::CURRENT;
                            m.rotation_ms = Some(now);
                            m.rotation_type = Some(RotationType::ON_DEMAND);
                        }
                    }
                } else {
                    self.rotate_generated(rec, now, RotationType::ON_DEMAND)?;
                }
                rec.on_demand_rotations += 1;
                Ok(())
            })
            .await?;
        Ok(RotateKeyOnDemandResponse {
            key_id: Some(rec.arn()),
        })
    }

    pub async fn list_key_rotations(
        &self,
        cx: &RequestContext,
        req: ListKeyRotationsRequest,
    ) -> Result<ListKeyRotationsResponse, KmsError> {
        let rec = self
            .key(cx, &req.key_id, &authz::LIST_KEY_ROTATIONS, Ask::none())
            .await?;
        if rec.key_spec != KeySpec::SYMMETRIC_DEFAULT {
            return Err(KmsError::UnsupportedOperation(String::new()));
        }
        let all = req.include_key_material == Some(IncludeKeyMaterial::ALL_KEY_MATERIAL);
        let limit = req.limit.unwrap_or(100) as usize;
        let start = match &req.marker {
            Some(m) => m
                .parse::<usize>()
                .map_err(|_| KmsError::InvalidMarker("Could not deserialize marker".into()))?,
            None => 0,
        };
        let external = rec.origin == OriginType::EXTERNAL;
        let entries: Vec<RotationsListEntry> = rec
            .materials
            .iter()
            .filter(|m| all || (m.rotation_ms.is_some() && !crate::record::is_pending(m.state)))
            .map(|m| RotationsListEntry {
                key_id: Some(rec.key_id.clone()),
                key_material_id: Some(m.id.clone()),
                key_material_description: if external {
                    m.description.clone()
                } else {
                    None
                },
                import_state: external.then(|| {
                    if m.sealed.is_some() {
                        ImportState::IMPORTED
                    } else {
                        ImportState::PENDING_IMPORT
                    }
                }),
                key_material_state: Some(m.state),
                expiration_model: if external { m.expiration_model } else { None },
                valid_to: if external {
                    m.valid_to_ms.map(ts)
                } else {
                    None
                },
                rotation_date: m.rotation_ms.map(ts),
                rotation_type: m.rotation_type,
            })
            .collect();
        if start > entries.len() {
            return Err(validation("Marker is out of range."));
        }
        let end = (start + limit).min(entries.len());
        let truncated = end < entries.len();
        Ok(ListKeyRotationsResponse {
            rotations: Some(entries[start..end].to_vec()),
            next_marker: truncated.then(|| end.to_string()),
            truncated: Some(truncated),
        })
    }
}
