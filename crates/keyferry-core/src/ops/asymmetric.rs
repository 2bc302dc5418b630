//! Sign, Verify, GetPublicKey, DeriveSharedSecret, GenerateMac, VerifyMac,
//! GenerateDataKeyPair(WithoutPlaintext).

use keyferry_crypto::{CryptoError, asymmetric, mac};
use keyferry_types::*;

use super::{is_hmac, mac_algorithm, validation};
use crate::KmsError;
use crate::authz::{self, Access, Ask};
use crate::context::RequestContext;
use crate::kms::{Kms, Unsealed, state_error};
use crate::record::KeyRecord;

fn dry_run(flag: Option<bool>) -> Result<(), KmsError> {
    if flag == Some(true) {
        Err(KmsError::DryRunOperation)
    } else {
        Ok(())
    }
}

fn crypto_to_kms(e: CryptoError) -> KmsError {
    match e {
        CryptoError::InvalidInput(m) => validation(m),
        CryptoError::Unsupported(m) => KmsError::InvalidKeyUsage(m),
        CryptoError::NotImplemented(m) => KmsError::UnsupportedOperation(m),
        other => KmsError::Internal(other.to_string()),
    }
}

fn check_signing_alg(rec: &KeyRecord, alg: SigningAlgorithmSpec) -> Result<(), KmsError> {
    if asymmetric::signing_algorithms(rec.key_spec).contains(&alg) {
        Ok(())
    } else {
        Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {alg} is incompatible with key spec {}.",
            rec.key_spec
        )))
    }
}

fn check_mac_alg(rec: &KeyRecord, alg: MacAlgorithmSpec) -> Result<(), KmsError> {
    if mac_algorithm(rec.key_spec) == Some(alg) {
        Ok(())
    } else {
        Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {alg} is incompatible with key spec {}.",
            rec.key_spec
        )))
    }
}

impl Kms {
    fn present_material(&self, rec: &KeyRecord) -> Result<std::sync::Arc<Unsealed>, KmsError> {
        let m = rec
            .current()
            .filter(|m| m.sealed.is_some())
            .ok_or_else(|| state_error(rec, KeyState::PendingImport))?;
        self.unsealed(rec, m)
    }

    pub async fn sign(
        &self,
        cx: &RequestContext,
        req: SignRequest,
    ) -> Result<SignResponse, KmsError> {
        let ask = Ask::none()
            .string("kms:SigningAlgorithm", req.signing_algorithm)
            .string(
                "kms:MessageType",
                req.message_type.unwrap_or(MessageType::RAW),
            )
            .tokens(req.grant_tokens.as_deref());
        let rec = self.key(cx, &req.key_id, &authz::SIGN, ask).await?;
        self.require_enabled(&rec)?;
        self.require_usage(&rec, KeyUsageType::SIGN_VERIFY, "Sign")?;
        check_signing_alg(&rec, req.signing_algorithm)?;
        let message_type = req.message_type.unwrap_or(MessageType::RAW);
        let Unsealed::Private(key) = &*self.present_material(&rec)? else {
            return Err(KmsError::Internal(
                "signing key holds other material".into(),
            ));
        };
        let sig = key
            .sign(req.signing_algorithm, req.message.as_slice(), message_type)
            .map_err(crypto_to_kms)?;
        dry_run(req.dry_run)?;
        Ok(SignResponse {
            key_id: Some(rec.arn()),
            signature: Some(Blob::new(sig)),
            signing_algorithm: Some(req.signing_algorithm),
        })
    }

    pub async fn verify(
        &self,
        cx: &RequestContext,
        req: VerifyRequest,
    ) -> Result<VerifyResponse, KmsError> {
        let ask = Ask::none()
            .string("kms:SigningAlgorithm", req.signing_algorithm)
            .string(
                "kms:MessageType",
                req.message_type.unwrap_or(MessageType::RAW),
            )
            .tokens(req.grant_tokens.as_deref());
        let rec = self.key(cx, &req.key_id, &authz::VERIFY, ask).await?;
        self.require_enabled(&rec)?;
        self.require_usage(&rec, KeyUsageType::SIGN_VERIFY, "Verify")?;
        check_signing_alg(&rec, req.signing_algorithm)?;
        let message_type = req.message_type.unwrap_or(MessageType::RAW);
        let public = rec
            .public_key
            .as_deref()
            .ok_or_else(|| KmsError::Internal("asymmetric key without public key".into()))?;
        let ok = asymmetric::verify(
            rec.key_spec,
            public,
            req.signing_algorithm,
            req.message.as_slice(),
            message_type,
            req.signature.as_slice(),
        )
        .map_err(crypto_to_kms)?;
        dry_run(req.dry_run)?;
        if !ok {
            return Err(KmsError::InvalidSignature);
        }
        Ok(VerifyResponse {
            key_id: Some(rec.arn()),
            signature_valid: Some(true),
            signing_algorithm: Some(req.signing_algorithm),
        })
    }

    pub async fn get_public_key(
        &self,
        cx: &RequestContext,
        req: GetPublicKeyRequest,
    ) -> Result<GetPublicKeyResponse, KmsError> {
        let ask = Ask::none().tokens(req.grant_tokens.as_deref());
        let rec = self
            .key(cx, &req.key_id, &authz::GET_PUBLIC_KEY, ask)
            .await?;
        if rec.key_spec == KeySpec::SYMMETRIC_DEFAULT || is_hmac(rec.key_spec) {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} key spec is {} which is not valid for GetPublicKey.",
                rec.arn(),
                rec.key_spec
            )));
        }
        self.require_enabled(&rec)?;
        let public = rec
            .public_key
            .clone()
            .ok_or_else(|| KmsError::Internal("asymmetric key without public key".into()))?;
        let usage = rec.key_usage;
        Ok(GetPublicKeyResponse {
            key_id: Some(rec.arn()),
            public_key: Some(Blob::new(public)),
            customer_master_key_spec: rec.key_spec.as_str().parse().ok(),
            key_spec: Some(rec.key_spec),
            key_usage: Some(usage),
            encryption_algorithms: (usage == KeyUsageType::ENCRYPT_DECRYPT)
                .then(|| asymmetric::encryption_algorithms(rec.key_spec).to_vec()),
            signing_algorithms: (usage == KeyUsageType::SIGN_VERIFY)
                .then(|| asymmetric::signing_algorithms(rec.key_spec).to_vec()),
            key_agreement_algorithms: (usage == KeyUsageType::KEY_AGREEMENT)
                .then(|| asymmetric::key_agreement_algorithms(rec.key_spec).to_vec()),
        })
    }

    pub async fn derive_shared_secret(
        &self,
        cx: &RequestContext,
        req: DeriveSharedSecretRequest,
    ) -> Result<DeriveSharedSecretResponse, KmsError> {
        let ask = Ask::none()
            .string("kms:KeyAgreementAlgorithm", req.key_agreement_algorithm)
            .tokens(req.grant_tokens.as_deref());
        let rec = self
            .key(cx, &req.key_id, &authz::DERIVE_SHARED_SECRET, ask)
            .await?;
        self.require_enabled(&rec)?;
        self.require_usage(&rec, KeyUsageType::KEY_AGREEMENT, "DeriveSharedSecret")?;
        if !asymmetric::key_agreement_algorithms(rec.key_spec)
            .contains(&req.key_agreement_algorithm)
        {
            return Err(KmsError::InvalidKeyUsage(format!(
                "Algorithm {} is incompatible with key spec {}.",
                req.key_agreement_algorithm, rec.key_spec
            )));
        }
        if req.recipient.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Keyferry has no Nitro Enclaves attestation (Recipient).".into(),
            ));
        }
        let Unsealed::Private(key) = &*self.present_material(&rec)? else {
            return Err(KmsError::Internal(
                "key agreement key holds other material".into(),
            ));
        };
        let secret = key
            .derive_shared_secret(req.public_key.as_slice())
            .map_err(crypto_to_kms)?;
        dry_run(req.dry_run)?;
        Ok(DeriveSharedSecretResponse {
            key_id: Some(rec.arn()),
            shared_secret: Some(Blob::new(secret.to_vec())),
            ciphertext_for_recipient: None,
            key_agreement_algorithm: Some(req.key_agreement_algorithm),
            key_origin: Some(rec.origin),
        })
    }

    pub async fn generate_mac(
        &self,
        cx: &RequestContext,
        req: GenerateMacRequest,
    ) -> Result<GenerateMacResponse, KmsError> {
        let ask = Ask::none()
            .string("kms:MacAlgorithm", req.mac_algorithm)
            .tokens(req.grant_tokens.as_deref());
        let rec = self.key(cx, &req.key_id, &authz::GENERATE_MAC, ask).await?;
        self.require_enabled(&rec)?;
        self.require_usage(&rec, KeyUsageType::GENERATE_VERIFY_MAC, "GenerateMac")?;
        check_mac_alg(&rec, req.mac_algorithm)?;
        let Unsealed::Hmac(key) = &*self.present_material(&rec)? else {
            return Err(KmsError::Internal("HMAC key holds other material".into()));
        };
        let tag = mac::generate(req.mac_algorithm, key, req.message.as_slice());
        dry_run(req.dry_run)?;
        Ok(GenerateMacResponse {
            mac: Some(Blob::new(tag)),
            mac_algorithm: Some(req.mac_algorithm),
            key_id: Some(rec.arn()),
        })
    }

    pub async fn verify_mac(
        &self,
        cx: &RequestContext,
        req: VerifyMacRequest,
    ) -> Result<VerifyMacResponse, KmsError> {
        let ask = Ask::none()
            .string("kms:MacAlgorithm", req.mac_algorithm)
            .tokens(req.grant_tokens.as_deref());
        let rec = self.key(cx, &req.key_id, &authz::VERIFY_MAC, ask).await?;
        self.require_enabled(&rec)?;
        self.require_usage(&rec, KeyUsageType::GENERATE_VERIFY_MAC, "VerifyMac")?;
        check_mac_alg(&rec, req.mac_algorithm)?;
        let Unsealed::Hmac(key) = &*self.present_material(&rec)? else {
            return Err(KmsError::Internal("HMAC key holds other material".into()));
        };
        let ok = mac::verify(
            req.mac_algorithm,
            key,
            req.message.as_slice(),
            req.mac.as_slice(),
        );
        dry_run(req.dry_run)?;
        if !ok {
            return Err(KmsError::InvalidMac);
        }
        Ok(VerifyMacResponse {
            key_id: Some(rec.arn()),
            mac_valid: Some(true),
            mac_algorithm: Some(req.mac_algorithm),
        })
    }

    pub async fn generate_data_key_pair(
        &self,
        cx: &RequestContext,
        req: GenerateDataKeyPairRequest,
    ) -> Result<GenerateDataKeyPairResponse, KmsError> {
        if req.recipient.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Keyferry has no Nitro Enclaves attestation (Recipient).".into(),
            ));
        }
        let (rec, private, public, blob, material) = self
            .data_key_pair(
                cx,
                &req.key_id,
                req.key_pair_spec,
                req.encryption_context.as_ref(),
                (&authz::GENERATE_DATA_KEY_PAIR, req.grant_tokens.as_deref()),
            )
            .await?;
        dry_run(req.dry_run)?;
        Ok(GenerateDataKeyPairResponse {
            private_key_ciphertext_blob: Some(Blob::new(blob)),
            private_key_plaintext: Some(Blob::new(private.to_vec())),
            public_key: Some(Blob::new(public)),
            key_id: Some(rec.arn()),
            key_pair_spec: Some(req.key_pair_spec),
            ciphertext_for_recipient: None,
            key_material_id: material,
        })
    }

    pub async fn generate_data_key_pair_without_plaintext(
        &self,
        cx: &RequestContext,
        req: GenerateDataKeyPairWithoutPlaintextRequest,
    ) -> Result<GenerateDataKeyPairWithoutPlaintextResponse, KmsError> {
        let (rec, _private, public, blob, material) = self
            .data_key_pair(
                cx,
                &req.key_id,
                req.key_pair_spec,
                req.encryption_context.as_ref(),
                (
                    &authz::GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT,
                    req.grant_tokens.as_deref(),
                ),
            )
            .await?;
        dry_run(req.dry_run)?;
        Ok(GenerateDataKeyPairWithoutPlaintextResponse {
            private_key_ciphertext_blob: Some(Blob::new(blob)),
            public_key: Some(Blob::new(public)),
            key_id: Some(rec.arn()),
            key_pair_spec: Some(req.key_pair_spec),
            key_material_id: material,
        })
    }

    #[allow(clippy::type_complexity)]
    async fn data_key_pair(
        &self,
        cx: &RequestContext,
        key_id: &str,
        spec: DataKeyPairSpec,
        ctx: Option<&std::collections::BTreeMap<String, String>>,
        (access, grant_tokens): (&Access, Option<&[String]>),
    ) -> Result<
        (
            std::sync::Arc<KeyRecord>,
            keyferry_crypto::Secret,
            Vec<u8>,
            Vec<u8>,
            Option<String>,
        ),
        KmsError,
    > {
        let op = super::symmetric::op_name(access);
        let ask = Ask::none()
            .string("kms:DataKeyPairSpec", spec)
            .string(
                "kms:EncryptionAlgorithm",
                EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT,
            )
            .context(ctx)
            .tokens(grant_tokens);
        let rec = self.key(cx, key_id, access, ask).await?;
        self.require_enabled(&rec)?;
        self.require_usage(&rec, KeyUsageType::ENCRYPT_DECRYPT, op)?;
        if rec.key_spec != KeySpec::SYMMETRIC_DEFAULT {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} key spec is {} which is not valid for {op}.",
                rec.arn(),
                rec.key_spec
            )));
        }
        let (private, public) =
            tokio::task::spawn_blocking(move || asymmetric::generate_data_key_pair(spec))
                .await
                .map_err(|e| KmsError::Internal(e.to_string()))?
                .map_err(|e| match e {
                    CryptoError::Unsupported(m) => KmsError::UnsupportedOperation(m),
                    other => KmsError::Internal(other.to_string()),
                })?;
        let (blob, material) = self.encrypt_with(
            &rec,
            EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT,
            &private,
            ctx,
            op,
        )?;
        Ok((rec, private, public, blob, material))
    }
}
