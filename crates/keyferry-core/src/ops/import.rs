//! Bring your own key: GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial.
//! The rules follow `shared/reference/aws-kms-import.md`; Keyferry's decisions where AWS is
//! unknown are listed in `docs/decisions.md` and tested.

use std::sync::Arc;

use keyferry_crypto::{CryptoError, asymmetric, material, wrap};
use keyferry_types::*;

use super::{is_hmac, ts, validation};
use crate::KmsError;
use crate::authz::{self, Ask};
use crate::context::RequestContext;
use crate::import_token::{ImportToken, TokenCache, open_token, seal_token};
use crate::kms::{DAY_MS, Kms, state_error};
use crate::record::{KeyRecord, MaterialRecord};

/// Parameters are valid for 24 hours, as on AWS.
const PARAMETERS_VALID_MS: i64 = DAY_MS;
/// ValidTo may be at most 365 days ahead.
const MAX_VALID_TO_MS: i64 = 365 * DAY_MS;

fn unsupported_origin(rec: &KeyRecord) -> KmsError {
    KmsError::UnsupportedOperation(format!(
        "{} origin is {} which is not valid for this operation.",
        rec.arn(),
        rec.origin
    ))
}

/// Largest PKCS#8 encoding (with public key) of each importable ECC spec.
fn max_ecc_pkcs8(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::ECC_NIST_P256 => Some(138),
        KeySpec::ECC_SECG_P256K1 => Some(135),
        KeySpec::ECC_NIST_P384 => Some(185),
        KeySpec::ECC_NIST_P521 => Some(241),
        _ => None,
    }
}

/// Refuse the wrapping combinations AWS refuses, before any key pair is handed out.
fn check_wrapping(
    rec: &KeyRecord,
    alg: AlgorithmSpec,
    spec: WrappingKeySpec,
) -> Result<(), KmsError> {
    let oaep = matches!(
        alg,
        AlgorithmSpec::RSAES_OAEP_SHA_1 | AlgorithmSpec::RSAES_OAEP_SHA_256
    );
    match alg {
        AlgorithmSpec::RSAES_PKCS1_V1_5 => {
            return Err(validation(
                "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported for importing key material (since 2023-10-10). Use RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256.",
            ));
        }
        AlgorithmSpec::SM2PKE => {
            return Err(validation(
                "The SM2PKE wrapping algorithm is supported only in China Regions.",
            ));
        }
        _ => {}
    }
    if spec == WrappingKeySpec::SM2 {
        return Err(validation(
            "The SM2 wrapping key spec is supported only in China Regions.",
        ));
    }
    let key_spec = rec.key_spec;
    if matches!(
        key_spec,
        KeySpec::RSA_2048 | KeySpec::RSA_3072 | KeySpec::RSA_4096
    ) && oaep
    {
        return Err(validation(format!(
            "{alg} cannot wrap {key_spec} key material. Use RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1 for RSA private keys."
        )));
    }
    if let Some(size) = max_ecc_pkcs8(key_spec)
        && oaep
        && size > wrap::max_oaep_payload(alg, spec)
    {
        return Err(validation(format!(
            "{alg} with a {spec} wrapping key cannot carry {key_spec} key material. Use a larger wrapping key spec or RSA_AES_KEY_WRAP_SHA_256."
        )));
    }
    if !(key_spec == KeySpec::SYMMETRIC_DEFAULT
        || is_hmac(key_spec)
        || asymmetric::signing_algorithms(key_spec).len()
            + asymmetric::encryption_algorithms(key_spec).len()
            > 0)
    {
        return Err(KmsError::UnsupportedOperation(format!(
            "You can't import key material for {key_spec} KMS keys."
        )));
    }
    Ok(())
}

impl Kms {
    pub async fn get_parameters_for_import(
        &self,
        cx: &RequestContext,
        req: GetParametersForImportRequest,
    ) -> Result<GetParametersForImportResponse, KmsError> {
        let ask = Ask::none()
            .string("kms:WrappingAlgorithm", req.wrapping_algorithm)
            .string("kms:WrappingKeySpec", req.wrapping_key_spec);
        let rec = self
            .key(cx, &req.key_id, &authz::GET_PARAMETERS_FOR_IMPORT, ask)
            .await?;
        if rec.origin != OriginType::EXTERNAL {
            return Err(unsupported_origin(&rec));
        }
        if rec.state == KeyState::PendingDeletion {
            return Err(state_error(&rec, KeyState::PendingDeletion));
        }
        check_wrapping(&rec, req.wrapping_algorithm, req.wrapping_key_spec)?;
        // Reuse of a wrapping key is confined to one caller identity (`pool.rs`).
        let scope = format!("{}\n{}\n{}", cx.principal.arn, cx.region, cx.account());
        let (wrapping, source) = self
            .pool
            .take(&scope, req.wrapping_key_spec, req.wrapping_algorithm)
            .await?;
        // A hit is a pair that was ready (fresh or reused); a miss waited for a generation.
        self.cache_stats
            .wrapping_pool
            .record(!matches!(source, crate::pool::Source::Generated));
        let public = wrapping.public_key_der();
        let now = self.now_ms();
        let expires_ms = now + PARAMETERS_VALID_MS;
        let issued = Arc::new(ImportToken {
            // The row, not the key id: each member of a multi-Region key needs its own token.
            key_id: rec.row_id(),
            algorithm: req.wrapping_algorithm,
            spec: req.wrapping_key_spec,
            expires_ms,
            wrapping,
        });
        let token = seal_token(&self.token_key, &issued)?;
        self.tokens.insert(TokenCache::digest(&token), issued, now);
        Ok(GetParametersForImportResponse {
            key_id: Some(rec.arn()),
            import_token: Some(Blob::new(token)),
            public_key: Some(Blob::new(public)),
            parameters_valid_to: Some(ts(expires_ms)),
        })
    }

    pub async fn import_key_material(
        &self,
        cx: &RequestContext,
        req: ImportKeyMaterialRequest,
    ) -> Result<ImportKeyMaterialResponse, KmsError> {
        // 1. The request itself.
        let now = self.now_ms();
        let model = req
            .expiration_model
            .unwrap_or(ExpirationModelType::KEY_MATERIAL_EXPIRES);
        let valid_to_ms = match (model, req.valid_to) {
            (ExpirationModelType::KEY_MATERIAL_EXPIRES, None) => {
                return Err(validation(
                    "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
                ));
            }
            (ExpirationModelType::KEY_MATERIAL_EXPIRES, Some(t)) => {
                let t = t.millis();
                if t <= now {
                    return Err(validation("The validTo date must be in the future."));
                }
                if t > now + MAX_VALID_TO_MS {
                    return Err(validation(
                        "The validTo date must be no more than 365 days from the current date.",
                    ));
                }
                Some(t)
            }
            (ExpirationModelType::KEY_MATERIAL_DOES_NOT_EXPIRE, Some(_)) => {
                return Err(validation(
                    "A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE",
                ));
            }
            (ExpirationModelType::KEY_MATERIAL_DOES_NOT_EXPIRE, None) => None,
        };
        if let Some(d) = &req.key_material_description
            && (d.is_empty()
                || !d
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || ":/_.-".contains(c)))
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{d}' at 'keyMaterialDescription' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_\\s.-]+$"
            )));
        }
        if let Some(id) = &req.key_material_id {
            if id.len() != 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(validation(format!(
                    "1 validation error detected: Value '{id}' at 'keyMaterialId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-f0-9]+$"
                )));
            }
            if req.import_type == Some(ImportType::NEW_KEY_MATERIAL) {
                return Err(validation(
                    "KeyMaterialId cannot be specified when ImportType is NEW_KEY_MATERIAL.",
                ));
            }
        }

        // 2. The key.
        let mut ask = Ask::none().string("kms:ExpirationModel", model);
        if let Some(t) = valid_to_ms {
            ask = ask.with("kms:ValidTo", keyferry_policy::Value::Date(t));
        }
        let rec = self
            .key(cx, &req.key_id, &authz::IMPORT_KEY_MATERIAL, ask)
            .await?;
        if rec.origin != OriginType::EXTERNAL {
            return Err(unsupported_origin(&rec));
        }
        if rec.state == KeyState::PendingDeletion {
            return Err(state_error(&rec, KeyState::PendingDeletion));
        }
        let symmetric = rec.key_spec == KeySpec::SYMMETRIC_DEFAULT;
        if !symmetric
            && (req.import_type.is_some()
                || req.key_material_id.is_some()
                || req.key_material_description.is_some())
        {
            return Err(validation(
                "ImportType, KeyMaterialId and KeyMaterialDescription are supported only for symmetric encryption keys.",
            ));
        }

        // 3. Token, unwrap and material checks: CPU-heavy, off the async threads.
        let token_key_id = rec.row_id();
        let spec = rec.key_spec;
        let token_bytes = req.import_token.clone();
        let encrypted = req.encrypted_key_material.clone();
        let token_key = self.token_key.clone();
        let token_digest = TokenCache::digest(token_bytes.as_slice());
        let cached = self.tokens.get(&token_digest);
        let hit = cached.is_some();
        self.cache_stats.import_tokens.record(hit);
        let opened = tokio::task::spawn_blocking(move || -> Result<_, KmsError> {
            let token = match cached {
                Some(t) => t,
                None => Arc::new(open_token(&token_key, token_bytes.as_slice())?),
            };
            if token.key_id != token_key_id {
                return Err(KmsError::InvalidImportToken(
                    "The import token was issued for a different KMS key.".into(),
                ));
            }
            if token.expires_ms <= now {
                return Err(KmsError::ExpiredImportToken(
                    "The import token has expired. Call GetParametersForImport for a new wrapping key and import token."
                        .into(),
                ));
            }
            let plain = wrap::unwrap(token.algorithm, &token.wrapping, encrypted.as_slice())
                .map_err(|_| KmsError::InvalidCiphertext)?;
            let canonical = material::canonicalize(spec, &plain).map_err(|e| match e {
                CryptoError::InvalidMaterial(m) => KmsError::IncorrectKeyMaterial(m),
                other => KmsError::IncorrectKeyMaterial(other.to_string()),
            })?;
            let public = if symmetric || is_hmac(spec) {
                None
            } else {
                let key = asymmetric::PrivateKey::from_pkcs8(spec, &canonical)
                    .map_err(|e| KmsError::IncorrectKeyMaterial(e.to_string()))?;
                Some(key.public_key_der())
            };
            Ok((canonical, public, token))
        })
        .await
        .map_err(|e| KmsError::Internal(e.to_string()))??;
        let (canonical, public, token) = opened;
        if !hit {
            self.tokens.insert(token_digest, token, now);
        }
        let (material_id, sealed) = self.seal_material(&rec.key_id, &canonical)?;
        drop(canonical);
        // A multi-Region primary with replicas: new material stays
        // PENDING_MULTI_REGION_IMPORT_AND_ROTATION until every replica has it.
        let replicated = rec.is_primary() && !self.replicas_of(&rec).await?.is_empty();
        let replica = rec.is_replica();

        // 4. The state change, atomically.
        let (_, rec) = self
            .mutate(&rec.row_id(), |rec| {
                if rec.state == KeyState::PendingDeletion {
                    return Err(state_error(rec, KeyState::PendingDeletion));
                }
                let first = rec.materials.is_empty();
                let import_type = req.import_type.unwrap_or(if first {
                    ImportType::NEW_KEY_MATERIAL
                } else {
                    ImportType::EXISTING_KEY_MATERIAL
                });
                if replica && import_type == ImportType::NEW_KEY_MATERIAL {
                    return Err(KmsError::UnsupportedOperation(format!(
                        "{} is a multi-Region replica key: import new key material into its primary key, then the same key material into this key with ImportType EXISTING_KEY_MATERIAL.",
                        rec.arn()
                    )));
                }
                if let Some(given) = &req.key_material_id
                    && *given != material_id {
                        return Err(KmsError::IncorrectKeyMaterial(format!(
                            "The key material being imported does not have the KeyMaterialId {given}."
                        )));
                    }
                let fresh = MaterialRecord {
                    id: material_id.clone(),
                    sealed: Some(sealed.clone()),
                    state: KeyMaterialState::CURRENT,
                    created_ms: now,
                    description: req.key_material_description.clone(),
                    expiration_model: Some(model),
                    valid_to_ms,
                    rotation_ms: None,
                    rotation_type: None,
                };
                match (import_type, first) {
                    (ImportType::NEW_KEY_MATERIAL, true) => {
                        rec.materials.push(fresh);
                        rec.public_key = public.clone();
                    }
                    (ImportType::EXISTING_KEY_MATERIAL, true) => {
                        return Err(KmsError::IncorrectKeyMaterial(
                            "The key material being imported is not the same key material that was previously imported into this KMS key: no key material was imported yet."
                                .into(),
                        ));
                    }
                    (ImportType::NEW_KEY_MATERIAL, false) => {
                        if rec.material(&material_id).is_some() {
                            return Err(KmsError::IncorrectKeyMaterial(
                                "KMS expected new key material but the key material being imported is already associated with the KMS key."
                                    .into(),
                            ));
                        }
                        if let Some(p) = rec.pending_any() {
                            return Err(KmsError::InvalidState(format!(
                                "New key material (id: {material_id}) cannot be imported into KMS key {}, because another key material (id: {}) is pending rotation.",
                                rec.arn(),
                                p.id
                            )));
                        }
                        if rec.state == KeyState::PendingImport {
                            return Err(state_error(rec, KeyState::PendingImport));
                        }
                        let state = if replicated {
                            KeyMaterialState::PENDING_MULTI_REGION_IMPORT_AND_ROTATION
                        } else {
                            KeyMaterialState::PENDING_ROTATION
                        };
                        rec.materials.push(MaterialRecord { state, ..fresh });
                        return Ok(());
                    }
                    (ImportType::EXISTING_KEY_MATERIAL, false) => {
                        let Some(m) = rec.materials.iter_mut().find(|m| m.id == material_id) else {
                            return Err(KmsError::IncorrectKeyMaterial(
                                "The key material being imported is not the same key material that was previously imported into this KMS key."
                                    .into(),
                            ));
                        };
                        m.sealed = Some(sealed.clone());
                        m.expiration_model = Some(model);
                        m.valid_to_ms = valid_to_ms;
                        if req.key_material_description.is_some() {
                            m.description = req.key_material_description.clone();
                        }
                    }
                }
                if rec.state == KeyState::PendingImport && rec.all_material_present() {
                    rec.state = KeyState::Enabled;
                }
                Ok(())
            })
            .await?;
        if rec.is_replica() {
            self.settle_multi_region_import(&rec).await?;
        }
        Ok(ImportKeyMaterialResponse {
            key_id: Some(rec.arn()),
            key_material_id: symmetric.then_some(material_id),
        })
    }

    pub async fn delete_imported_key_material(
        &self,
        cx: &RequestContext,
        req: DeleteImportedKeyMaterialRequest,
    ) -> Result<DeleteImportedKeyMaterialResponse, KmsError> {
        let id = self
            .key(
                cx,
                &req.key_id,
                &authz::DELETE_IMPORTED_KEY_MATERIAL,
                Ask::none(),
            )
            .await?
            .row_id();
        let (deleted, rec) = self
            .mutate(&id, |rec| {
                if rec.origin != OriginType::EXTERNAL {
                    return Err(unsupported_origin(rec));
                }
                let target = match &req.key_material_id {
                    Some(mid) => {
                        if rec.material(mid).is_none() {
                            return Err(KmsError::NotFound(format!(
                                "Key material {mid} is not associated with {}.",
                                rec.arn()
                            )));
                        }
                        Some(mid.clone())
                    }
                    None => rec.current().map(|m| m.id.clone()),
                };
                let Some(target) = target else {
                    return Ok(None);
                };
                let pending = rec
                    .material(&target)
                    .is_some_and(|m| crate::record::is_pending(m.state));
                if pending {
                    rec.materials.retain(|m| m.id != target);
                } else if let Some(m) = rec.materials.iter_mut().find(|m| m.id == target) {
                    m.sealed = None;
                    m.expiration_model = None;
                    m.valid_to_ms = None;
                }
                if matches!(rec.state, KeyState::Enabled | KeyState::Disabled)
                    && !rec.all_material_present()
                {
                    rec.state = KeyState::PendingImport;
                }
                Ok(Some(target))
            })
            .await?;
        Ok(DeleteImportedKeyMaterialResponse {
            key_id: Some(rec.arn()),
            key_material_id: if rec.key_spec == KeySpec::SYMMETRIC_DEFAULT {
                deleted
            } else {
                None
            },
        })
    }
}
