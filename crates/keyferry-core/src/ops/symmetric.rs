//! Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext), GenerateRandom.
//! Symmetric keys use Keyferry's ciphertext blob (`keyferry_crypto::symmetric`); RSA
//! ENCRYPT_DECRYPT keys use raw RSAES-OAEP ciphertexts, as AWS does.

use std::collections::BTreeMap;

use keyferry_crypto::{CryptoError, asymmetric, rng, symmetric};
use keyferry_types::*;

use super::validation;
use crate::KmsError;
use crate::authz::{self, Access, Ask};
use crate::context::RequestContext;
use crate::kms::{Kms, Unsealed};
use crate::record::KeyRecord;
use keyferry_policy::Value;

type Context = BTreeMap<String, String>;

fn incorrect_key() -> KmsError {
    KmsError::IncorrectKey(
        "The key ID in the request does not identify a CMK that can perform this operation.".into(),
    )
}

fn missing_blob() -> KmsError {
    validation(
        "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy constraint: Member must not be null",
    )
}

fn dry_run(flag: Option<bool>) -> Result<(), KmsError> {
    if flag == Some(true) {
        Err(KmsError::DryRunOperation)
    } else {
        Ok(())
    }
}

fn material_id_bytes(id: &str) -> Result<[u8; 32], KmsError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(id, &mut out).map_err(|_| KmsError::Internal("bad material id".into()))?;
    Ok(out)
}

impl Kms {
    pub async fn encrypt(
        &self,
        cx: &RequestContext,
        req: EncryptRequest,
    ) -> Result<EncryptResponse, KmsError> {
        let alg = req
            .encryption_algorithm
            .unwrap_or(EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT);
        let ask = Ask::none()
            .string("kms:EncryptionAlgorithm", alg)
            .context(req.encryption_context.as_ref())
            .tokens(req.grant_tokens.as_deref());
        let rec = self.key(cx, &req.key_id, &authz::ENCRYPT, ask).await?;
        let (blob, _) = self.encrypt_with(
            &rec,
            alg,
            req.plaintext.as_slice(),
            req.encryption_context.as_ref(),
            "Encrypt",
        )?;
        dry_run(req.dry_run)?;
        Ok(EncryptResponse {
            ciphertext_blob: Some(Blob::new(blob)),
            key_id: Some(rec.arn()),
            encryption_algorithm: Some(alg),
        })
    }

    pub async fn decrypt(
        &self,
        cx: &RequestContext,
        req: DecryptRequest,
    ) -> Result<DecryptResponse, KmsError> {
        if req.recipient.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Keyferry has no Nitro Enclaves attestation (Recipient).".into(),
            ));
        }
        let Some(blob) = req.ciphertext_blob.as_ref() else {
            return Err(missing_blob());
        };
        let alg = req
            .encryption_algorithm
            .unwrap_or(EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT);
        let (rec, plain, material) = self
            .decrypt_blob(
                cx,
                req.key_id.as_deref(),
                blob.as_slice(),
                req.encryption_context.as_ref(),
                alg,
                (&authz::DECRYPT, req.grant_tokens.as_deref()),
            )
            .await?;
        dry_run(req.dry_run)?;
        Ok(DecryptResponse {
            key_id: Some(rec.arn()),
            plaintext: Some(Blob::new(plain.to_vec())),
            encryption_algorithm: Some(alg),
            ciphertext_for_recipient: None,
            key_material_id: material,
        })
    }

    pub async fn re_encrypt(
        &self,
        cx: &RequestContext,
        req: ReEncryptRequest,
    ) -> Result<ReEncryptResponse, KmsError> {
        let Some(blob) = req.ciphertext_blob.as_ref() else {
            return Err(missing_blob());
        };
        let src_alg = req
            .source_encryption_algorithm
            .unwrap_or(EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT);
        let dst_alg = req
            .destination_encryption_algorithm
            .unwrap_or(EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT);
        let (src, plain, src_material) = self
            .decrypt_blob(
                cx,
                req.source_key_id.as_deref(),
                blob.as_slice(),
                req.source_encryption_context.as_ref(),
                src_alg,
                (&authz::RE_ENCRYPT_FROM, req.grant_tokens.as_deref()),
            )
            .await?;
        let same_key = Value::Bool(false);
        let ask = Ask::none()
            .string("kms:EncryptionAlgorithm", dst_alg)
            .with("kms:ReEncryptOnSameKey", same_key)
            .context(req.destination_encryption_context.as_ref())
            .tokens(req.grant_tokens.as_deref());
        let dst = self
            .key(cx, &req.destination_key_id, &authz::RE_ENCRYPT_TO, ask)
            .await?;
        let (out, dst_material) = self.encrypt_with(
            &dst,
            dst_alg,
            &plain,
            req.destination_encryption_context.as_ref(),
            "ReEncryptTo",
        )?;
        dry_run(req.dry_run)?;
        Ok(ReEncryptResponse {
            ciphertext_blob: Some(Blob::new(out)),
            source_key_id: Some(src.arn()),
            key_id: Some(dst.arn()),
            source_encryption_algorithm: Some(src_alg),
            destination_encryption_algorithm: Some(dst_alg),
            source_key_material_id: src_material,
            destination_key_material_id: dst_material,
        })
    }

    pub async fn generate_data_key(
        &self,
        cx: &RequestContext,
        req: GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse, KmsError> {
        if req.recipient.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Keyferry has no Nitro Enclaves attestation (Recipient).".into(),
            ));
        }
        let (rec, plain, blob, material) = self
            .data_key(
                cx,
                &req.key_id,
                req.key_spec,
                req.number_of_bytes,
                req.encryption_context.as_ref(),
                (&authz::GENERATE_DATA_KEY, req.grant_tokens.as_deref()),
            )
            .await?;
        dry_run(req.dry_run)?;
        Ok(GenerateDataKeyResponse {
            ciphertext_blob: Some(Blob::new(blob)),
            plaintext: Some(Blob::new(plain.to_vec())),
            key_id: Some(rec.arn()),
            ciphertext_for_recipient: None,
            key_material_id: material,
        })
    }

    pub async fn generate_data_key_without_plaintext(
        &self,
        cx: &RequestContext,
        req: GenerateDataKeyWithoutPlaintextRequest,
    ) -> Result<GenerateDataKeyWithoutPlaintextResponse, KmsError> {
        let (rec, _plain, blob, material) = self
            .data_key(
                cx,
                &req.key_id,
                req.key_spec,
                req.number_of_bytes,
                req.encryption_context.as_ref(),
                (
                    &authz::GENERATE_DATA_KEY_WITHOUT_PLAINTEXT,
                    req.grant_tokens.as_deref(),
                ),
            )
            .await?;
        dry_run(req.dry_run)?;
        Ok(GenerateDataKeyWithoutPlaintextResponse {
            ciphertext_blob: Some(Blob::new(blob)),
            key_id: Some(rec.arn()),
            key_material_id: material,
        })
    }

    pub async fn generate_random(
        &self,
        cx: &RequestContext,
        req: GenerateRandomRequest,
    ) -> Result<GenerateRandomResponse, KmsError> {
        if let Some(store) = &req.custom_key_store_id {
            return Err(super::custom_key_stores::not_found(store));
        }
        if req.recipient.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Keyferry has no Nitro Enclaves attestation (Recipient).".into(),
            ));
        }
        let Some(n) = req.number_of_bytes else {
            return Err(validation("NumberOfBytes is required."));
        };
        self.authorize_account(cx, "kms:GenerateRandom", Ask::none())?;
        Ok(GenerateRandomResponse {
            plaintext: Some(Blob::new(rng::random_bytes(n as usize).to_vec())),
            ciphertext_for_recipient: None,
        })
    }

    async fn data_key(
        &self,
        cx: &RequestContext,
        key_id: &str,
        spec: Option<DataKeySpec>,
        number_of_bytes: Option<i64>,
        ctx: Option<&Context>,
        (access, grant_tokens): (&Access, Option<&[String]>),
    ) -> Result<
        (
            std::sync::Arc<KeyRecord>,
            keyferry_crypto::Secret,
            Vec<u8>,
            Option<String>,
        ),
        KmsError,
    > {
        let n = match (spec, number_of_bytes) {
            (Some(_), Some(_)) => {
                return Err(validation(
                    "Please specify either number of bytes or key spec, not both.",
                ));
            }
            (None, None) => {
                return Err(validation(
                    "Please specify either number of bytes or key spec.",
                ));
            }
            (Some(DataKeySpec::AES_256), None) => 32,
            (Some(DataKeySpec::AES_128), None) => 16,
            (None, Some(n)) => n as usize,
        };
        let op = op_name(access);
        let mut ask = Ask::none().context(ctx).tokens(grant_tokens);
        if let Some(spec) = spec {
            ask = ask.string("kms:DataKeySpec", spec);
        }
        let ask = ask.string(
            "kms:EncryptionAlgorithm",
            EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT,
        );
        let rec = self.key(cx, key_id, access, ask).await?;
        if rec.key_spec != KeySpec::SYMMETRIC_DEFAULT {
            self.require_enabled(&rec)?;
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} key spec is {} which is not valid for {op}.",
                rec.arn(),
                rec.key_spec
            )));
        }
        let plain = rng::random_bytes(n);
        let (blob, material) = self.encrypt_with(
            &rec,
            EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT,
            &plain,
            ctx,
            op,
        )?;
        Ok((rec, plain, blob, material))
    }

    /// Encrypt under a key's current material; returns the ciphertext and, for symmetric keys,
    /// the key material id used.
    pub(crate) fn encrypt_with(
        &self,
        rec: &KeyRecord,
        alg: EncryptionAlgorithmSpec,
        plaintext: &[u8],
        ctx: Option<&Context>,
        op: &str,
    ) -> Result<(Vec<u8>, Option<String>), KmsError> {
        self.require_enabled(rec)?;
        self.require_usage(rec, KeyUsageType::ENCRYPT_DECRYPT, op)?;
        check_algorithm(rec, alg)?;
        if rec.key_spec == KeySpec::SYMMETRIC_DEFAULT {
            let m = rec
                .current()
                .filter(|m| m.sealed.is_some())
                .ok_or_else(|| crate::kms::state_error(rec, KeyState::PendingImport))?;
            let Unsealed::Symmetric(key) = &*self.unsealed(rec, m)? else {
                return Err(KmsError::Internal(
                    "symmetric key holds other material".into(),
                ));
            };
            let aad = symmetric::context_aad(ctx);
            let blob = symmetric::encrypt(
                key,
                &rec.key_id,
                &material_id_bytes(&m.id)?,
                plaintext,
                &aad,
            )
            .map_err(|e| KmsError::Internal(e.to_string()))?;
            return Ok((blob, Some(m.id.clone())));
        }
        if ctx.is_some_and(|c| !c.is_empty()) {
            return Err(validation(
                "EncryptionContext is not supported with asymmetric KMS keys.",
            ));
        }
        let public = rec
            .public_key
            .as_deref()
            .ok_or_else(|| KmsError::Internal("asymmetric key without public key".into()))?;
        let ct =
            asymmetric::encrypt(rec.key_spec, public, alg, plaintext).map_err(|e| match e {
                CryptoError::InvalidInput(m) => validation(m),
                other => KmsError::Internal(other.to_string()),
            })?;
        Ok((ct, None))
    }

    /// Decrypt a ciphertext; returns the key, the plaintext and (symmetric) the material id.
    pub(crate) async fn decrypt_blob(
        &self,
        cx: &RequestContext,
        key_hint: Option<&str>,
        blob: &[u8],
        ctx: Option<&Context>,
        alg: EncryptionAlgorithmSpec,
        (access, grant_tokens): (&Access, Option<&[String]>),
    ) -> Result<
        (
            std::sync::Arc<KeyRecord>,
            keyferry_crypto::Secret,
            Option<String>,
        ),
        KmsError,
    > {
        let op = op_name(access);
        if alg == EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT {
            let (key_id, material_id) =
                symmetric::parse_header(blob).map_err(|_| KmsError::InvalidCiphertext)?;
            let mut request_alias = None;
            if let Some(hint) = key_hint {
                let (hinted, _) = self.resolve_id(cx, hint, true).await?;
                if hinted != key_id {
                    return Err(incorrect_key());
                }
                request_alias = hint.find("alias/").map(|i| hint[i..].to_string());
            }
            // The member of the key in the request's Region: a ciphertext of a multi-Region
            // key decrypts with any member (they share id and material).
            let rec = self.load_member(&cx.region, &key_id).await?;
            if rec.region != cx.region {
                return Err(KmsError::NotFound(format!(
                    "Key '{}' does not exist",
                    crate::record::key_arn(&cx.region, &rec.account, &key_id)
                )));
            }
            let mut ask = Ask::none()
                .string("kms:EncryptionAlgorithm", alg)
                .context(ctx)
                .tokens(grant_tokens);
            ask.request_alias = request_alias;
            self.authorize(cx, &rec, access, &ask).await?;
            self.require_enabled(&rec)?;
            self.require_usage(&rec, KeyUsageType::ENCRYPT_DECRYPT, op)?;
            if rec.key_spec != KeySpec::SYMMETRIC_DEFAULT {
                return Err(incorrect_key());
            }
            let id = hex::encode(material_id);
            let m = rec
                .material(&id)
                .filter(|m| m.sealed.is_some() && !crate::record::is_pending(m.state))
                .ok_or(KmsError::InvalidCiphertext)?;
            let Unsealed::Symmetric(key) = &*self.unsealed(&rec, m)? else {
                return Err(KmsError::Internal(
                    "symmetric key holds other material".into(),
                ));
            };
            let aad = symmetric::context_aad(ctx);
            let plain =
                symmetric::decrypt(key, blob, &aad).map_err(|_| KmsError::InvalidCiphertext)?;
            return Ok((rec, plain, Some(id)));
        }
        let Some(hint) = key_hint else {
            return Err(validation(
                "KeyId is required when decrypting with an asymmetric KMS key.",
            ));
        };
        let ask = Ask::none()
            .string("kms:EncryptionAlgorithm", alg)
            .context(ctx)
            .tokens(grant_tokens);
        let rec = self.key(cx, hint, access, ask).await?;
        self.require_enabled(&rec)?;
        self.require_usage(&rec, KeyUsageType::ENCRYPT_DECRYPT, op)?;
        check_algorithm(&rec, alg)?;
        let m = rec
            .current()
            .filter(|m| m.sealed.is_some())
            .ok_or_else(|| crate::kms::state_error(&rec, KeyState::PendingImport))?;
        let Unsealed::Private(key) = &*self.unsealed(&rec, m)? else {
            return Err(KmsError::Internal(
                "asymmetric key holds other material".into(),
            ));
        };
        let plain = key
            .decrypt(alg, blob)
            .map_err(|_| KmsError::InvalidCiphertext)?;
        Ok((rec, plain, None))
    }
}

/// The operation's name in messages ("… not valid for Decrypt."): its IAM action without `kms:`.
pub(crate) fn op_name(access: &Access) -> &'static str {
    access.action.strip_prefix("kms:").unwrap_or(access.action)
}

/// The encryption algorithm must be one the key supports.
fn check_algorithm(rec: &KeyRecord, alg: EncryptionAlgorithmSpec) -> Result<(), KmsError> {
    let ok = if rec.key_spec == KeySpec::SYMMETRIC_DEFAULT {
        alg == EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT
    } else {
        asymmetric::encryption_algorithms(rec.key_spec).contains(&alg)
    };
    if ok {
        Ok(())
    } else {
        Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {alg} is incompatible with key spec {}.",
            rec.key_spec
        )))
    }
}
