//! RSA, ECC, Ed25519 and ML-DSA private-key operations (signing; RSA encryption; ECDH key
//! agreement), the matching public-key operations (verify, encrypt), the algorithm lists AWS
//! reports per key spec, and GenerateDataKeyPair.
//!
//! Conventions, as in AWS KMS:
//! - Public keys are X.509 SubjectPublicKeyInfo DER; private keys are PKCS#8 DER.
//! - `MessageType::RAW` messages are hashed with the algorithm's hash; `MessageType::DIGEST`
//!   messages are that hash already (its length must match).
//! - RSASSA-PSS uses MGF1 with the same hash and a salt as long as the hash.
//! - ECDSA signatures are DER `Ecdsa-Sig-Value`s.
//! - RSAES-OAEP uses MGF1 with the same hash and an empty label.
//! - ED25519_SHA_512 is pure Ed25519 (RFC 8032) over a RAW message. ED25519_PH_SHA_512 takes a
//!   DIGEST and, as AWS documents, still applies Ed25519ph's SHA-512 prehash to it (the input is
//!   hashed twice: once by the caller, once here); aws-lc-rs has no Ed25519ph, so that one
//!   signature scheme is ed25519-dalek's `sign_prehashed` with an empty context.
//! - ML_DSA_SHAKE_256 is pure ML-DSA (FIPS 204) with an empty context over a RAW message.
//!   EXTERNAL_MU (signing a caller-computed μ) is not offered by aws-lc-rs and is not
//!   implemented ([`CryptoError::NotImplemented`]).
//! - ECDH (DeriveSharedSecret) returns the raw shared secret: the x-coordinate of the shared
//!   point, as many bytes as the curve's field.

use aws_lc_rs::agreement;
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, ParsedPublicKey,
    PqdsaKeyPair, RsaEncoding, RsaKeyPair, VerificationAlgorithm,
};
use ed25519_dalek::Digest as _;
use keyferry_types::{
    DataKeyPairSpec, EncryptionAlgorithmSpec, KeyAgreementAlgorithmSpec, KeySpec, MessageType,
    SigningAlgorithmSpec,
};

use crate::{CryptoError, Secret, der};

/// The private half of a key: RSA keeps a signing and a decrypting handle on the same key.
enum Inner {
    Rsa {
        signing: RsaKeyPair,
        decrypting: PrivateDecryptingKey,
    },
    Ec(EcdsaKeyPair),
    /// aws-lc for pure Ed25519; ed25519-dalek (same seed) for Ed25519ph.
    Ed25519 {
        pure: Ed25519KeyPair,
        prehash: Box<ed25519_dalek::SigningKey>,
    },
    MlDsa(PqdsaKeyPair),
}

/// An RSA, ECC, Ed25519 or ML-DSA private key of a known spec. Its `Debug` never shows the key.
pub struct PrivateKey {
    spec: KeySpec,
    inner: Inner,
    public_der: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.spec)
    }
}

/// Modulus size in bits for the RSA key specs.
fn rsa_bits(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::RSA_2048 => Some(2048),
        KeySpec::RSA_3072 => Some(3072),
        KeySpec::RSA_4096 => Some(4096),
        _ => None,
    }
}

/// The aws-lc signing algorithm (curve + hash) for the ECC key specs.
fn ecdsa_signing(spec: KeySpec) -> Option<&'static EcdsaSigningAlgorithm> {
    match spec {
        KeySpec::ECC_NIST_P256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        KeySpec::ECC_NIST_P384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
        KeySpec::ECC_NIST_P521 => Some(&signature::ECDSA_P521_SHA512_ASN1_SIGNING),
        KeySpec::ECC_SECG_P256K1 => Some(&signature::ECDSA_P256K1_SHA256_ASN1_SIGNING),
        _ => None,
    }
}

/// The aws-lc ML-DSA signing and verification algorithms of the ML_DSA key specs.
fn ml_dsa(
    spec: KeySpec,
) -> Option<(
    &'static signature::PqdsaSigningAlgorithm,
    &'static signature::PqdsaVerificationAlgorithm,
)> {
    match spec {
        KeySpec::ML_DSA_44 => Some((&signature::ML_DSA_44_SIGNING, &signature::ML_DSA_44)),
        KeySpec::ML_DSA_65 => Some((&signature::ML_DSA_65_SIGNING, &signature::ML_DSA_65)),
        KeySpec::ML_DSA_87 => Some((&signature::ML_DSA_87_SIGNING, &signature::ML_DSA_87)),
        _ => None,
    }
}

/// The ECDH algorithm of the key specs AWS allows for KEY_AGREEMENT.
fn ecdh(spec: KeySpec) -> Option<&'static agreement::Algorithm> {
    match spec {
        KeySpec::ECC_NIST_P256 => Some(&agreement::ECDH_P256),
        KeySpec::ECC_NIST_P384 => Some(&agreement::ECDH_P384),
        KeySpec::ECC_NIST_P521 => Some(&agreement::ECDH_P521),
        _ => None,
    }
}

fn unsupported_spec(spec: KeySpec) -> CryptoError {
    CryptoError::Unsupported(format!(
        "the key spec {spec} does not support asymmetric operations"
    ))
}

fn unsupported_alg(alg: impl std::fmt::Display, spec: KeySpec) -> CryptoError {
    CryptoError::Unsupported(format!("the algorithm {alg} is not valid for a {spec} key"))
}

impl PrivateKey {
    /// Parse a PKCS#8 private key of the given spec. InvalidMaterial if the key is not of that spec
    /// (other family, other curve, other modulus size, not PKCS#8); Unsupported for non-RSA/ECC specs.
    pub fn from_pkcs8(spec: KeySpec, pkcs8: &[u8]) -> Result<PrivateKey, CryptoError> {
        if let Some(bits) = rsa_bits(spec) {
            let not_rsa = || {
                CryptoError::InvalidMaterial(format!(
                    "the private key is not an RSA PKCS#8 key, but the key spec is {spec}"
                ))
            };
            let decrypting = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| not_rsa())?;
            let signing = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| not_rsa())?;
            let actual = decrypting.key_size_bits();
            if actual != bits {
                return Err(CryptoError::InvalidMaterial(format!(
                    "RSA key is {actual} bits but the key spec is {spec}"
                )));
            }
            let public_der = signing
                .public_key()
                .as_der()
                .map_err(|_| CryptoError::Internal)?
                .as_ref()
                .to_vec();
            return Ok(PrivateKey {
                spec,
                inner: Inner::Rsa {
                    signing,
                    decrypting,
                },
                public_der,
            });
        }
        if let Some(alg) = ecdsa_signing(spec) {
            let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(|_| {
                CryptoError::InvalidMaterial(format!(
                    "the private key is not a PKCS#8 EC key on the curve of {spec}"
                ))
            })?;
            let public_der = key
                .public_key()
                .as_der()
                .map_err(|_| CryptoError::Internal)?
                .as_ref()
                .to_vec();
            return Ok(PrivateKey {
                spec,
                inner: Inner::Ec(key),
                public_der,
            });
        }
        if spec == KeySpec::ECC_NIST_EDWARDS25519 {
            let not_ed25519 = || {
                CryptoError::InvalidMaterial(format!(
                    "the private key is not an Ed25519 PKCS#8 key, but the key spec is {spec}"
                ))
            };
            let pure =
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| not_ed25519())?;
            let seed = pure
                .seed()
                .map_err(|_| CryptoError::Internal)?
                .as_be_bytes()
                .map_err(|_| CryptoError::Internal)?;
            let seed: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new(
                seed.as_ref()
                    .try_into()
                    .map_err(|_| CryptoError::Internal)?,
            );
            let prehash = Box::new(ed25519_dalek::SigningKey::from_bytes(&seed));
            if prehash.verifying_key().as_bytes() != pure.public_key().as_ref() {
                return Err(CryptoError::Internal);
            }
            let public_der = pure
                .public_key()
                .as_der()
                .map_err(|_| CryptoError::Internal)?
                .as_ref()
                .to_vec();
            return Ok(PrivateKey {
                spec,
                inner: Inner::Ed25519 { pure, prehash },
                public_der,
            });
        }
        if let Some((alg, _)) = ml_dsa(spec) {
            let key = PqdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(|_| {
                CryptoError::InvalidMaterial(format!(
                    "the private key is not a PKCS#8 key of key spec {spec}"
                ))
            })?;
            let public_der = key
                .public_key()
                .as_der()
                .map_err(|_| CryptoError::Internal)?
                .as_ref()
                .to_vec();
            return Ok(PrivateKey {
                spec,
                inner: Inner::MlDsa(key),
                public_der,
            });
        }
        Err(unsupported_spec(spec))
    }

    /// The key spec this key was loaded as.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// X.509 SubjectPublicKeyInfo DER (what GetPublicKey returns).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.public_der.clone()
    }

    /// RAW: message is hashed with the algorithm's hash. DIGEST: message is the digest; its length must
    /// equal the hash length, else InvalidInput. RSASSA_PSS_* use salt length = hash length.
    /// ECDSA output is DER (as AWS). Unsupported if alg does not fit the key.
    pub fn sign(
        &self,
        alg: SigningAlgorithmSpec,
        message: &[u8],
        message_type: MessageType,
    ) -> Result<Vec<u8>, CryptoError> {
        let scheme = signing_scheme(self.spec, alg)?;
        match (&self.inner, scheme) {
            (Inner::Rsa { signing, .. }, Scheme::Rsa { encoding, hash, .. }) => {
                let digest = prehashed(self.spec, alg, hash, message, message_type)?;
                let mut sig = vec![0u8; signing.public_modulus_len()];
                match digest {
                    Some(d) => signing.sign_digest(encoding, &d, &mut sig),
                    None => signing.sign(
                        encoding,
                        &aws_lc_rs::rand::SystemRandom::new(),
                        message,
                        &mut sig,
                    ),
                }
                .map_err(|_| CryptoError::Internal)?;
                Ok(sig)
            }
            (Inner::Ec(key), Scheme::Ecdsa { hash, .. }) => {
                let digest = prehashed(self.spec, alg, hash, message, message_type)?;
                let sig = match digest {
                    Some(d) => key.sign_digest(&d),
                    None => key.sign(&aws_lc_rs::rand::SystemRandom::new(), message),
                }
                .map_err(|_| CryptoError::Internal)?;
                Ok(sig.as_ref().to_vec())
            }
            (Inner::Ed25519 { pure, .. }, Scheme::Ed25519) => {
                require_message_type(alg, MessageType::RAW, message_type)?;
                Ok(pure.sign(message).as_ref().to_vec())
            }
            (Inner::Ed25519 { prehash, .. }, Scheme::Ed25519ph) => {
                require_message_type(alg, MessageType::DIGEST, message_type)?;
                check_digest_len(alg, 64, message)?;
                ed25519ph_sign(prehash, message)
            }
            (Inner::MlDsa(key), Scheme::MlDsa { .. }) => {
                ml_dsa_message_type(self.spec, message_type)?;
                let mut sig = vec![0u8; key.algorithm().signature_len()];
                let len = key
                    .sign(message, &mut sig)
                    .map_err(|_| CryptoError::Internal)?;
                sig.truncate(len);
                Ok(sig)
            }
            _ => Err(CryptoError::Internal),
        }
    }

    /// DeriveSharedSecret with KeyAgreementAlgorithm ECDH: the raw ECDH shared secret of this key
    /// and `peer_public_key_der`, which must be an X.509 SubjectPublicKeyInfo of an EC key on this
    /// key's curve. Unsupported for specs other than ECC_NIST_P256/P384/P521; InvalidInput("")
    /// for a public key that is not such an SPKI (AWS answers an unusable public key with an
    /// empty-message ValidationException).
    pub fn derive_shared_secret(&self, peer_public_key_der: &[u8]) -> Result<Secret, CryptoError> {
        let (Some(alg), Inner::Ec(key)) = (ecdh(self.spec), &self.inner) else {
            return Err(CryptoError::Unsupported(format!(
                "the key spec {} does not support key agreement",
                self.spec
            )));
        };
        let invalid = || CryptoError::InvalidInput(String::new());
        // Only a SubjectPublicKeyInfo of an EC key on the same named curve: aws-lc would also
        // take a bare point, which AWS does not.
        let info = der::spki(peer_public_key_der).ok_or_else(invalid)?;
        let curve = match info.parameters {
            Some(t) if info.algorithm == der::OID_EC && t.tag == der::OID => t.value,
            _ => return Err(invalid()),
        };
        if crate::material::Curve::from_oid(curve).map(|c| c.spec()) != Some(self.spec) {
            return Err(invalid());
        }
        let scalar = key
            .private_key()
            .as_be_bytes()
            .map_err(|_| CryptoError::Internal)?;
        let scalar = Secret::new(scalar.as_ref().to_vec());
        let private = agreement::PrivateKey::from_private_key(alg, &scalar)
            .map_err(|_| CryptoError::Internal)?;
        let peer = agreement::UnparsedPublicKey::new(alg, peer_public_key_der);
        agreement::agree(&private, peer, invalid(), |secret| {
            Ok(Secret::new(secret.to_vec()))
        })
    }

    /// RSAES_OAEP_SHA_1 / _SHA_256 (MGF1 same hash, empty label). InvalidCiphertext on failure;
    /// Unsupported for other algorithms or an ECC key.
    pub fn decrypt(
        &self,
        alg: EncryptionAlgorithmSpec,
        ciphertext: &[u8],
    ) -> Result<Secret, CryptoError> {
        let oaep = oaep_algorithm(self.spec, alg)?;
        let Inner::Rsa { decrypting, .. } = &self.inner else {
            return Err(unsupported_alg(alg, self.spec));
        };
        let key =
            OaepPrivateDecryptingKey::new(decrypting.clone()).map_err(|_| CryptoError::Internal)?;
        if ciphertext.len() != key.key_size_bytes() {
            return Err(CryptoError::InvalidCiphertext);
        }
        let mut out = Secret::new(vec![0u8; key.min_output_size()]);
        let len = key
            .decrypt(oaep, ciphertext, &mut out, None)
            .map_err(|_| CryptoError::InvalidCiphertext)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

/// How a signing algorithm is carried out on a spec.
#[derive(Clone, Copy)]
enum Scheme {
    Rsa {
        encoding: &'static dyn RsaEncoding,
        verification: &'static signature::RsaParameters,
        hash: &'static digest::Algorithm,
    },
    Ecdsa {
        verification: &'static signature::EcdsaVerificationAlgorithm,
        hash: &'static digest::Algorithm,
    },
    /// ED25519_SHA_512: pure Ed25519, RAW messages only.
    Ed25519,
    /// ED25519_PH_SHA_512: Ed25519ph over a 64-byte DIGEST.
    Ed25519ph,
    /// ML_DSA_SHAKE_256: pure ML-DSA, RAW messages (EXTERNAL_MU not implemented).
    MlDsa {
        verification: &'static signature::PqdsaVerificationAlgorithm,
    },
}

/// The scheme for `alg` on a `spec` key, or Unsupported when AWS does not allow the combination.
fn signing_scheme(spec: KeySpec, alg: SigningAlgorithmSpec) -> Result<Scheme, CryptoError> {
    use SigningAlgorithmSpec as A;
    if rsa_bits(spec).is_some() {
        let (encoding, verification, hash): (&'static dyn RsaEncoding, _, _) = match alg {
            A::RSASSA_PSS_SHA_256 => (
                &signature::RSA_PSS_SHA256,
                &signature::RSA_PSS_2048_8192_SHA256,
                &digest::SHA256,
            ),
            A::RSASSA_PSS_SHA_384 => (
                &signature::RSA_PSS_SHA384,
                &signature::RSA_PSS_2048_8192_SHA384,
                &digest::SHA384,
            ),
            A::RSASSA_PSS_SHA_512 => (
                &signature::RSA_PSS_SHA512,
                &signature::RSA_PSS_2048_8192_SHA512,
                &digest::SHA512,
            ),
            A::RSASSA_PKCS1_V1_5_SHA_256 => (
                &signature::RSA_PKCS1_SHA256,
                &signature::RSA_PKCS1_2048_8192_SHA256,
                &digest::SHA256,
            ),
            A::RSASSA_PKCS1_V1_5_SHA_384 => (
                &signature::RSA_PKCS1_SHA384,
                &signature::RSA_PKCS1_2048_8192_SHA384,
                &digest::SHA384,
            ),
            A::RSASSA_PKCS1_V1_5_SHA_512 => (
                &signature::RSA_PKCS1_SHA512,
                &signature::RSA_PKCS1_2048_8192_SHA512,
                &digest::SHA512,
            ),
            _ => return Err(unsupported_alg(alg, spec)),
        };
        return Ok(Scheme::Rsa {
            encoding,
            verification,
            hash,
        });
    }
    let (verification, hash) = match (spec, alg) {
        (KeySpec::ECC_NIST_P256, A::ECDSA_SHA_256) => {
            (&signature::ECDSA_P256_SHA256_ASN1, &digest::SHA256)
        }
        (KeySpec::ECC_NIST_P384, A::ECDSA_SHA_384) => {
            (&signature::ECDSA_P384_SHA384_ASN1, &digest::SHA384)
        }
        (KeySpec::ECC_NIST_P521, A::ECDSA_SHA_512) => {
            (&signature::ECDSA_P521_SHA512_ASN1, &digest::SHA512)
        }
        (KeySpec::ECC_SECG_P256K1, A::ECDSA_SHA_256) => {
            (&signature::ECDSA_P256K1_SHA256_ASN1, &digest::SHA256)
        }
        (KeySpec::ECC_NIST_EDWARDS25519, A::ED25519_SHA_512) => return Ok(Scheme::Ed25519),
        (KeySpec::ECC_NIST_EDWARDS25519, A::ED25519_PH_SHA_512) => return Ok(Scheme::Ed25519ph),
        (_, A::ML_DSA_SHAKE_256) if ml_dsa(spec).is_some() => {
            let (_, verification) = ml_dsa(spec).ok_or(CryptoError::Internal)?;
            return Ok(Scheme::MlDsa { verification });
        }
        _ if ecdsa_signing(spec).is_some()
            || ml_dsa(spec).is_some()
            || spec == KeySpec::ECC_NIST_EDWARDS25519 =>
        {
            return Err(unsupported_alg(alg, spec));
        }
        _ => return Err(unsupported_spec(spec)),
    };
    Ok(Scheme::Ecdsa { verification, hash })
}

/// `Some(digest)` for MessageType::DIGEST (length-checked), `None` for RAW.
fn prehashed(
    spec: KeySpec,
    alg: SigningAlgorithmSpec,
    hash: &'static digest::Algorithm,
    message: &[u8],
    message_type: MessageType,
) -> Result<Option<Digest>, CryptoError> {
    match message_type {
        MessageType::RAW => Ok(None),
        MessageType::DIGEST => {
            check_digest_len(alg, hash.output_len(), message)?;
            Digest::import_less_safe(message, hash)
                .map(Some)
                .map_err(|_| CryptoError::Internal)
        }
        // AWS's words for DIGEST on an ML-DSA key, applied to EXTERNAL_MU elsewhere.
        MessageType::EXTERNAL_MU => Err(CryptoError::InvalidInput(format!(
            "Message type EXTERNAL_MU is incompatible with key spec {spec}."
        ))),
    }
}

/// Ed25519ph (RFC 8032 section 5.1, empty context) of `message`: the signature over
/// SHA-512(`message`).
fn ed25519ph_sign(key: &ed25519_dalek::SigningKey, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let sig = key
        .sign_prehashed(ed25519_dalek::Sha512::new().chain_update(message), None)
        .map_err(|_| CryptoError::Internal)?;
    Ok(sig.to_bytes().to_vec())
}

/// Whether `signature` is a valid Ed25519ph signature (empty context) of `message`.
fn ed25519ph_verify(key: &ed25519_dalek::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    key.verify_prehashed(
        ed25519_dalek::Sha512::new().chain_update(message),
        None,
        &sig,
    )
    .is_ok()
}

/// A DIGEST must be as long as the algorithm's hash (AWS's words, recorded responses).
fn check_digest_len(
    alg: SigningAlgorithmSpec,
    expected: usize,
    message: &[u8],
) -> Result<(), CryptoError> {
    if message.len() == expected {
        Ok(())
    } else {
        Err(CryptoError::InvalidInput(format!(
            "Digest is invalid length for algorithm {alg}."
        )))
    }
}

/// Ed25519's algorithms each take one message type (AWS's words, recorded responses).
fn require_message_type(
    alg: SigningAlgorithmSpec,
    wanted: MessageType,
    given: MessageType,
) -> Result<(), CryptoError> {
    if wanted == given {
        Ok(())
    } else {
        Err(CryptoError::InvalidInput(format!(
            "Message type {given} is incompatible with algorithm {alg}."
        )))
    }
}

/// ML-DSA takes RAW (and, on AWS, EXTERNAL_MU, which Keyferry does not implement); DIGEST is
/// refused with AWS's words (recorded responses).
fn ml_dsa_message_type(spec: KeySpec, message_type: MessageType) -> Result<(), CryptoError> {
    match message_type {
        MessageType::RAW => Ok(()),
        MessageType::DIGEST => Err(CryptoError::InvalidInput(format!(
            "Message type DIGEST is incompatible with key spec {spec}."
        ))),
        MessageType::EXTERNAL_MU => Err(CryptoError::NotImplemented(
            "Keyferry does not implement MessageType EXTERNAL_MU (ML-DSA external mu).".into(),
        )),
    }
}

/// Ok(false) when the signature does not verify (including malformed signatures).
///
/// Errors: Unsupported if `alg` does not fit `spec`; InvalidInput for a bad DIGEST length or a public
/// key that is not a `spec` SPKI.
pub fn verify(
    spec: KeySpec,
    public_key_der: &[u8],
    alg: SigningAlgorithmSpec,
    message: &[u8],
    message_type: MessageType,
    signature: &[u8],
) -> Result<bool, CryptoError> {
    let scheme = signing_scheme(spec, alg)?;
    let mismatch =
        || CryptoError::InvalidInput(format!("the public key is not a valid {spec} public key"));
    let (verification, digest): (&'static dyn VerificationAlgorithm, _) = match scheme {
        Scheme::Rsa {
            verification, hash, ..
        } => (
            verification,
            prehashed(spec, alg, hash, message, message_type)?,
        ),
        Scheme::Ecdsa { verification, hash } => (
            verification,
            prehashed(spec, alg, hash, message, message_type)?,
        ),
        Scheme::Ed25519 => {
            require_message_type(alg, MessageType::RAW, message_type)?;
            (&signature::ED25519, None)
        }
        Scheme::Ed25519ph => {
            require_message_type(alg, MessageType::DIGEST, message_type)?;
            check_digest_len(alg, 64, message)?;
            let info = der::spki(public_key_der)
                .filter(|i| i.algorithm == der::OID_ED25519 && i.parameters.is_none())
                .ok_or_else(mismatch)?;
            let raw: &[u8; 32] = info.key.try_into().map_err(|_| mismatch())?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(raw).map_err(|_| mismatch())?;
            return Ok(ed25519ph_verify(&key, message, signature));
        }
        Scheme::MlDsa { verification } => {
            ml_dsa_message_type(spec, message_type)?;
            (verification, None)
        }
    };
    check_public_key_family(spec, public_key_der)?;
    let key = ParsedPublicKey::new(verification, public_key_der).map_err(|_| mismatch())?;
    let result = match digest {
        Some(d) => key.verify_digest_sig(&d, signature),
        None => key.verify_sig(message, signature),
    };
    Ok(result.is_ok())
}

/// InvalidInput unless `public_key_der` is an SPKI of the spec's family and size (RSA) / curve (ECC).
fn check_public_key_family(spec: KeySpec, public_key_der: &[u8]) -> Result<(), CryptoError> {
    let mismatch =
        || CryptoError::InvalidInput(format!("the public key is not a valid {spec} public key"));
    if let Some(bits) = rsa_bits(spec) {
        let key = PublicEncryptingKey::from_der(public_key_der).map_err(|_| mismatch())?;
        if key.key_size_bits() != bits {
            return Err(mismatch());
        }
    }
    // ECC: ParsedPublicKey with the curve's algorithm rejects other curves and non-EC keys.
    Ok(())
}

fn oaep_algorithm(
    spec: KeySpec,
    alg: EncryptionAlgorithmSpec,
) -> Result<&'static OaepAlgorithm, CryptoError> {
    if rsa_bits(spec).is_none() {
        return Err(unsupported_alg(alg, spec));
    }
    match alg {
        EncryptionAlgorithmSpec::RSAES_OAEP_SHA_1 => Ok(&OAEP_SHA1_MGF1SHA1),
        EncryptionAlgorithmSpec::RSAES_OAEP_SHA_256 => Ok(&OAEP_SHA256_MGF1SHA256),
        EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT | EncryptionAlgorithmSpec::SM2PKE => {
            Err(unsupported_alg(alg, spec))
        }
    }
}

/// RSA-OAEP encrypt with a public key; InvalidInput if the plaintext is too long or the key is not a
/// `spec` public key; Unsupported for non-RSA specs or non-OAEP algorithms.
pub fn encrypt(
    spec: KeySpec,
    public_key_der: &[u8],
    alg: EncryptionAlgorithmSpec,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let oaep = oaep_algorithm(spec, alg)?;
    check_public_key_family(spec, public_key_der)?;
    let public = PublicEncryptingKey::from_der(public_key_der).map_err(|_| {
        CryptoError::InvalidInput(format!("the public key is not a valid {spec} public key"))
    })?;
    let public = OaepPublicEncryptingKey::new(public).map_err(|_| CryptoError::Internal)?;
    let max = public.max_plaintext_size(oaep);
    if plaintext.len() > max {
        // AWS's words (recorded responses).
        return Err(CryptoError::InvalidInput(format!(
            "Algorithm {alg} and key spec {spec} cannot encrypt data larger than {max} bytes."
        )));
    }
    let mut out = vec![0u8; public.ciphertext_size()];
    let len = public
        .encrypt(oaep, plaintext, &mut out, None)
        .map_err(|_| CryptoError::Internal)?
        .len();
    out.truncate(len);
    Ok(out)
}

const RSA_SIGNING: &[SigningAlgorithmSpec] = &[
    SigningAlgorithmSpec::RSASSA_PSS_SHA_256,
    SigningAlgorithmSpec::RSASSA_PSS_SHA_384,
    SigningAlgorithmSpec::RSASSA_PSS_SHA_512,
    SigningAlgorithmSpec::RSASSA_PKCS1_V1_5_SHA_256,
    SigningAlgorithmSpec::RSASSA_PKCS1_V1_5_SHA_384,
    SigningAlgorithmSpec::RSASSA_PKCS1_V1_5_SHA_512,
];

/// Algorithms AWS lists for a spec (DescribeKey), in AWS order: RSA_*: PSS 256/384/512 then
/// PKCS1 256/384/512; P256 and P256K1 → ECDSA_SHA_256; P384 → ECDSA_SHA_384; P521 → ECDSA_SHA_512;
/// ECC_NIST_EDWARDS25519 → ED25519_SHA_512, ED25519_PH_SHA_512; ML_DSA_* → ML_DSA_SHAKE_256;
/// other specs: empty.
pub fn signing_algorithms(spec: KeySpec) -> &'static [SigningAlgorithmSpec] {
    match spec {
        KeySpec::RSA_2048 | KeySpec::RSA_3072 | KeySpec::RSA_4096 => RSA_SIGNING,
        KeySpec::ECC_NIST_P256 | KeySpec::ECC_SECG_P256K1 => &[SigningAlgorithmSpec::ECDSA_SHA_256],
        KeySpec::ECC_NIST_P384 => &[SigningAlgorithmSpec::ECDSA_SHA_384],
        KeySpec::ECC_NIST_P521 => &[SigningAlgorithmSpec::ECDSA_SHA_512],
        KeySpec::ECC_NIST_EDWARDS25519 => &[
            SigningAlgorithmSpec::ED25519_SHA_512,
            SigningAlgorithmSpec::ED25519_PH_SHA_512,
        ],
        KeySpec::ML_DSA_44 | KeySpec::ML_DSA_65 | KeySpec::ML_DSA_87 => {
            &[SigningAlgorithmSpec::ML_DSA_SHAKE_256]
        }
        _ => &[],
    }
}

/// ECC_NIST_P256/P384/P521: [ECDH] (the specs AWS allows for KEY_AGREEMENT outside China);
/// others empty.
pub fn key_agreement_algorithms(spec: KeySpec) -> &'static [KeyAgreementAlgorithmSpec] {
    if ecdh(spec).is_some() {
        &[KeyAgreementAlgorithmSpec::ECDH]
    } else {
        &[]
    }
}

/// RSA_*: [RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256]; others empty.
pub fn encryption_algorithms(spec: KeySpec) -> &'static [EncryptionAlgorithmSpec] {
    match spec {
        KeySpec::RSA_2048 | KeySpec::RSA_3072 | KeySpec::RSA_4096 => &[
            EncryptionAlgorithmSpec::RSAES_OAEP_SHA_1,
            EncryptionAlgorithmSpec::RSAES_OAEP_SHA_256,
        ],
        _ => &[],
    }
}

/// GenerateDataKeyPair: returns (private key PKCS#8 v1 DER, public key SPKI DER).
/// SM2 → Unsupported.
pub fn generate_data_key_pair(spec: DataKeyPairSpec) -> Result<(Secret, Vec<u8>), CryptoError> {
    let key_spec = match spec {
        DataKeyPairSpec::RSA_2048 => KeySpec::RSA_2048,
        DataKeyPairSpec::RSA_3072 => KeySpec::RSA_3072,
        DataKeyPairSpec::RSA_4096 => KeySpec::RSA_4096,
        DataKeyPairSpec::ECC_NIST_P256 => KeySpec::ECC_NIST_P256,
        DataKeyPairSpec::ECC_NIST_P384 => KeySpec::ECC_NIST_P384,
        DataKeyPairSpec::ECC_NIST_P521 => KeySpec::ECC_NIST_P521,
        DataKeyPairSpec::ECC_SECG_P256K1 => KeySpec::ECC_SECG_P256K1,
        DataKeyPairSpec::ECC_NIST_EDWARDS25519 => KeySpec::ECC_NIST_EDWARDS25519,
        DataKeyPairSpec::SM2 => {
            return Err(CryptoError::Unsupported(format!(
                "the data key pair spec {spec} is not supported"
            )));
        }
    };
    let pkcs8 = if key_spec == KeySpec::ECC_NIST_EDWARDS25519 {
        crate::material::generate(key_spec)?
    } else if let Some(alg) = ecdsa_signing(key_spec) {
        let key = EcdsaKeyPair::generate(alg).map_err(|_| CryptoError::Internal)?;
        Secret::new(
            key.to_pkcs8v1()
                .map_err(|_| CryptoError::Internal)?
                .as_ref()
                .to_vec(),
        )
    } else {
        let size = match key_spec {
            KeySpec::RSA_2048 => KeySize::Rsa2048,
            KeySpec::RSA_3072 => KeySize::Rsa3072,
            _ => KeySize::Rsa4096,
        };
        let key = RsaKeyPair::generate(size).map_err(|_| CryptoError::Internal)?;
        let der: Pkcs8V1Der = key.as_der().map_err(|_| CryptoError::Internal)?;
        Secret::new(der.as_ref().to_vec())
    };
    let public = PrivateKey::from_pkcs8(key_spec, &pkcs8)?.public_key_der();
    Ok((pkcs8, public))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;

    const SPECS: [KeySpec; 7] = [
        KeySpec::RSA_2048,
        KeySpec::RSA_3072,
        KeySpec::RSA_4096,
        KeySpec::ECC_NIST_P256,
        KeySpec::ECC_NIST_P384,
        KeySpec::ECC_NIST_P521,
        KeySpec::ECC_SECG_P256K1,
    ];

    fn openssl(args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Exit status of an openssl run (for verifications expected to fail).
    fn openssl_ok(args: &[&str]) -> bool {
        Command::new("openssl")
            .args(args)
            .output()
            .unwrap()
            .status
            .success()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }

    fn genpkey_args(spec: KeySpec) -> Vec<&'static str> {
        match spec {
            KeySpec::RSA_2048 => vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeySpec::RSA_3072 => vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
            KeySpec::RSA_4096 => vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
            KeySpec::ECC_NIST_P256 => {
                vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
            }
            KeySpec::ECC_NIST_P384 => {
                vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]
            }
            KeySpec::ECC_NIST_P521 => {
                vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"]
            }
            KeySpec::ECC_SECG_P256K1 => {
                vec![
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:secp256k1",
                ]
            }
            _ => unreachable!(),
        }
    }

    /// An openssl-made key: (PKCS#8 DER, SPKI DER), generated once per spec.
    fn openssl_key(spec: KeySpec) -> &'static (Vec<u8>, Vec<u8>) {
        static KEYS: [OnceLock<(Vec<u8>, Vec<u8>)>; 7] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        let i = SPECS.iter().position(|s| *s == spec).unwrap();
        KEYS[i].get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let pem = dir.path().join("k.pem");
            let pem = pem.to_str().unwrap();
            let mut args = vec!["genpkey"];
            args.extend(genpkey_args(spec));
            args.extend(["-out", pem]);
            openssl(&args);
            let pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", pem, "-outform", "DER"]);
            let spki = openssl(&["pkey", "-in", pem, "-pubout", "-outform", "DER"]);
            (pkcs8, spki)
        })
    }

    fn private(spec: KeySpec) -> PrivateKey {
        PrivateKey::from_pkcs8(spec, &openssl_key(spec).0).unwrap()
    }

    /// The openssl digest name and our hash for a signing algorithm.
    fn hash_of(alg: SigningAlgorithmSpec) -> (&'static str, &'static digest::Algorithm) {
        match alg.as_str() {
            s if s.ends_with("256") => ("sha256", &digest::SHA256),
            s if s.ends_with("384") => ("sha384", &digest::SHA384),
            _ => ("sha512", &digest::SHA512),
        }
    }

    fn pss_opts(alg: SigningAlgorithmSpec) -> Vec<&'static str> {
        if alg.as_str().starts_with("RSASSA_PSS") {
            vec![
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
                "-sigopt",
                "rsa_mgf1_md:",
            ]
        } else {
            vec![]
        }
    }

    /// `openssl dgst -<hash> -verify pub.pem -signature sig msg` (with PSS options when needed).
    fn openssl_verifies(
        d: &Path,
        spki: &[u8],
        alg: SigningAlgorithmSpec,
        message: &[u8],
        sig: &[u8],
    ) -> bool {
        let (md, _) = hash_of(alg);
        let pubf = write(d, "pub.der", spki);
        let pem = String::from_utf8(openssl(&["pkey", "-pubin", "-inform", "DER", "-in", &pubf]))
            .unwrap();
        let pubpem = write(d, "pub.pem", pem.as_bytes());
        let msgf = write(d, "msg.bin", message);
        let sigf = write(d, "sig.bin", sig);
        let dash_md = format!("-{md}");
        let mgf1 = format!("rsa_mgf1_md:{md}");
        let mut args = vec!["dgst", &dash_md, "-verify", &pubpem, "-signature", &sigf];
        for o in pss_opts(alg) {
            args.push(if o == "rsa_mgf1_md:" { &mgf1 } else { o });
        }
        args.push(&msgf);
        openssl_ok(&args)
    }

    #[test]
    fn sign_verified_by_openssl_for_every_spec_algorithm_and_message_type() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let message = b"Keyferry signs this message for openssl to check.".repeat(7);
        for spec in SPECS {
            let key = private(spec);
            let spki = &openssl_key(spec).1;
            assert_eq!(&key.public_key_der(), spki, "{spec}");
            for &alg in signing_algorithms(spec) {
                let (_, hash) = hash_of(alg);
                let digest = digest::digest(hash, &message);
                for (mt, input) in [
                    (MessageType::RAW, &message[..]),
                    (MessageType::DIGEST, digest.as_ref()),
                ] {
                    let sig = key.sign(alg, input, mt).unwrap();
                    if spec.as_str().starts_with("RSA") {
                        assert_eq!(sig.len(), rsa_bits(spec).unwrap() / 8);
                    } else {
                        // DER SEQUENCE of two INTEGERs.
                        assert_eq!(sig[0], 0x30, "{spec} {alg}");
                    }
                    assert!(
                        openssl_verifies(d, spki, alg, &message, &sig),
                        "{spec} {alg} {mt}"
                    );
                    assert!(!openssl_verifies(d, spki, alg, b"another message", &sig));
                    // Our own verify, both message types, and a wrong message.
                    assert!(verify(spec, spki, alg, &message, MessageType::RAW, &sig).unwrap());
                    assert!(
                        verify(spec, spki, alg, digest.as_ref(), MessageType::DIGEST, &sig)
                            .unwrap()
                    );
                    assert!(!verify(spec, spki, alg, b"other", MessageType::RAW, &sig).unwrap());
                }
            }
        }
    }

    #[test]
    fn verifies_openssl_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let message = b"signed by openssl";
        let msgf = write(d, "m.bin", message);
        for spec in SPECS {
            let (pkcs8, spki) = openssl_key(spec);
            let keyf = write(d, "k.der", pkcs8);
            for &alg in signing_algorithms(spec) {
                let (md, hash) = hash_of(alg);
                let dash_md = format!("-{md}");
                let mgf1 = format!("rsa_mgf1_md:{md}");
                let mut args = vec!["dgst", &dash_md, "-keyform", "DER", "-sign", &keyf];
                for o in pss_opts(alg) {
                    args.push(if o == "rsa_mgf1_md:" { &mgf1 } else { o });
                }
                args.push(&msgf);
                let sig = openssl(&args);
                assert!(
                    verify(spec, spki, alg, message, MessageType::RAW, &sig).unwrap(),
                    "{spec} {alg}"
                );
                let digest = digest::digest(hash, message);
                assert!(
                    verify(spec, spki, alg, digest.as_ref(), MessageType::DIGEST, &sig).unwrap()
                );
                // Tampering: every kind of damage is Ok(false), never an error.
                let mut flipped = sig.clone();
                let last = flipped.len() - 1;
                flipped[last] ^= 1;
                for bad in [
                    &flipped[..],
                    &sig[..sig.len() - 1],
                    &[][..],
                    &[0x30, 0x00][..],
                ] {
                    assert!(!verify(spec, spki, alg, message, MessageType::RAW, bad).unwrap());
                }
                assert!(
                    !verify(
                        spec,
                        spki,
                        alg,
                        b"signed by openssL",
                        MessageType::RAW,
                        &sig
                    )
                    .unwrap()
                );
            }
        }
    }

    #[test]
    fn pss_salt_is_hash_length() {
        // openssl refuses a PSS signature whose salt length is not the one it is told.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let spec = KeySpec::RSA_2048;
        let key = private(spec);
        let spki = &openssl_key(spec).1;
        let sig = key
            .sign(
                SigningAlgorithmSpec::RSASSA_PSS_SHA_384,
                b"m",
                MessageType::RAW,
            )
            .unwrap();
        let pubf = write(d, "pub.der", spki);
        let pubpem = write(
            d,
            "pub.pem",
            &openssl(&["pkey", "-pubin", "-inform", "DER", "-in", &pubf]),
        );
        let msgf = write(d, "m.bin", b"m");
        let sigf = write(d, "s.bin", &sig);
        let with_salt = |salt: &str| {
            openssl_ok(&[
                "dgst",
                "-sha384",
                "-verify",
                &pubpem,
                "-signature",
                &sigf,
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                &format!("rsa_pss_saltlen:{salt}"),
                &msgf,
            ])
        };
        assert!(with_salt("48"));
        assert!(!with_salt("32"));
        assert!(!with_salt("0"));
    }

    #[test]
    fn signing_errors() {
        let rsa = private(KeySpec::RSA_2048);
        let p256 = private(KeySpec::ECC_NIST_P256);
        let p384 = private(KeySpec::ECC_NIST_P384);
        // Wrong digest length → InvalidInput, for sign and verify.
        for (key, alg) in [
            (&rsa, SigningAlgorithmSpec::RSASSA_PSS_SHA_256),
            (&rsa, SigningAlgorithmSpec::RSASSA_PKCS1_V1_5_SHA_512),
            (&p256, SigningAlgorithmSpec::ECDSA_SHA_256),
        ] {
            for len in [0, 20, 31, 33, 48] {
                if len == hash_of(alg).1.output_len() {
                    continue;
                }
                assert!(matches!(
                    key.sign(alg, &vec![1; len], MessageType::DIGEST),
                    Err(CryptoError::InvalidInput(_))
                ));
                assert!(matches!(
                    verify(
                        key.spec(),
                        &key.public_key_der(),
                        alg,
                        &vec![1; len],
                        MessageType::DIGEST,
                        &[0; 64]
                    ),
                    Err(CryptoError::InvalidInput(_))
                ));
            }
        }
        // Algorithms that do not fit the key → Unsupported.
        let cases = [
            (&rsa, SigningAlgorithmSpec::ECDSA_SHA_256),
            (&rsa, SigningAlgorithmSpec::SM2DSA),
            (&p256, SigningAlgorithmSpec::ECDSA_SHA_384),
            (&p256, SigningAlgorithmSpec::RSASSA_PSS_SHA_256),
            (&p384, SigningAlgorithmSpec::ECDSA_SHA_256),
            (&p384, SigningAlgorithmSpec::ED25519_SHA_512),
        ];
        for (key, alg) in cases {
            assert!(matches!(
                key.sign(alg, b"m", MessageType::RAW),
                Err(CryptoError::Unsupported(_))
            ));
            assert!(matches!(
                verify(
                    key.spec(),
                    &key.public_key_der(),
                    alg,
                    b"m",
                    MessageType::RAW,
                    &[0; 64]
                ),
                Err(CryptoError::Unsupported(_))
            ));
        }
        match rsa.sign(
            SigningAlgorithmSpec::RSASSA_PSS_SHA_256,
            b"m",
            MessageType::EXTERNAL_MU,
        ) {
            Err(CryptoError::InvalidInput(m)) => assert_eq!(
                m,
                "Message type EXTERNAL_MU is incompatible with key spec RSA_2048."
            ),
            other => panic!("{other:?}"),
        }
        // A public key of another spec → InvalidInput.
        let p256_spki = p256.public_key_der();
        let rsa3072_spki = &openssl_key(KeySpec::RSA_3072).1;
        for (spec, spki, alg) in [
            (
                KeySpec::RSA_2048,
                &p256_spki,
                SigningAlgorithmSpec::RSASSA_PSS_SHA_256,
            ),
            (
                KeySpec::RSA_2048,
                rsa3072_spki,
                SigningAlgorithmSpec::RSASSA_PSS_SHA_256,
            ),
            (
                KeySpec::ECC_NIST_P384,
                &p256_spki,
                SigningAlgorithmSpec::ECDSA_SHA_384,
            ),
            (
                KeySpec::ECC_NIST_P256,
                &rsa.public_key_der(),
                SigningAlgorithmSpec::ECDSA_SHA_256,
            ),
            (
                KeySpec::ECC_NIST_P256,
                &b"garbage".to_vec(),
                SigningAlgorithmSpec::ECDSA_SHA_256,
            ),
        ] {
            assert!(
                matches!(
                    verify(spec, spki, alg, b"m", MessageType::RAW, &[0; 64]),
                    Err(CryptoError::InvalidInput(_))
                ),
                "{spec} {alg}"
            );
        }
    }

    #[test]
    fn from_pkcs8_checks_the_spec() {
        let rsa2048 = &openssl_key(KeySpec::RSA_2048).0;
        let p256 = &openssl_key(KeySpec::ECC_NIST_P256).0;
        let k1 = &openssl_key(KeySpec::ECC_SECG_P256K1).0;
        let mismatches = [
            (KeySpec::RSA_3072, rsa2048),
            (KeySpec::RSA_4096, rsa2048),
            (KeySpec::RSA_2048, p256),
            (KeySpec::ECC_NIST_P384, p256),
            (KeySpec::ECC_SECG_P256K1, p256),
            (KeySpec::ECC_NIST_P256, k1),
            (KeySpec::ECC_NIST_P256, rsa2048),
        ];
        for (spec, der) in mismatches {
            assert!(
                matches!(
                    PrivateKey::from_pkcs8(spec, der),
                    Err(CryptoError::InvalidMaterial(_))
                ),
                "{spec}"
            );
        }
        match PrivateKey::from_pkcs8(KeySpec::RSA_3072, rsa2048) {
            Err(CryptoError::InvalidMaterial(m)) => {
                assert_eq!(m, "RSA key is 2048 bits but the key spec is RSA_3072")
            }
            other => panic!("{other:?}"),
        }
        for der in [&[][..], b"garbage", &rsa2048[..rsa2048.len() - 1]] {
            assert!(matches!(
                PrivateKey::from_pkcs8(KeySpec::RSA_2048, der),
                Err(CryptoError::InvalidMaterial(_))
            ));
        }
        for spec in [KeySpec::SYMMETRIC_DEFAULT, KeySpec::HMAC_256, KeySpec::SM2] {
            assert!(matches!(
                PrivateKey::from_pkcs8(spec, rsa2048),
                Err(CryptoError::Unsupported(_))
            ));
        }
        for spec in [KeySpec::ML_DSA_65, KeySpec::ECC_NIST_EDWARDS25519] {
            assert!(matches!(
                PrivateKey::from_pkcs8(spec, rsa2048),
                Err(CryptoError::InvalidMaterial(_))
            ));
        }
        let ml44 = crate::material::generate(KeySpec::ML_DSA_44).unwrap();
        assert!(matches!(
            PrivateKey::from_pkcs8(KeySpec::ML_DSA_65, &ml44),
            Err(CryptoError::InvalidMaterial(_))
        ));
        let key = private(KeySpec::ECC_NIST_P521);
        assert_eq!(format!("{key:?}"), "PrivateKey(ECC_NIST_P521)");
    }

    #[test]
    fn oaep_interop_with_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for spec in [KeySpec::RSA_2048, KeySpec::RSA_3072, KeySpec::RSA_4096] {
            let key = private(spec);
            let (pkcs8, spki) = openssl_key(spec);
            let keyf = write(d, "k.der", pkcs8);
            let pubf = write(d, "pub.der", spki);
            for &alg in encryption_algorithms(spec) {
                let md = if alg == EncryptionAlgorithmSpec::RSAES_OAEP_SHA_1 {
                    "sha1"
                } else {
                    "sha256"
                };
                let opts = [
                    "-pkeyopt".to_string(),
                    "rsa_padding_mode:oaep".into(),
                    "-pkeyopt".into(),
                    format!("rsa_oaep_md:{md}"),
                    "-pkeyopt".into(),
                    format!("rsa_mgf1_md:{md}"),
                ];
                let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
                // openssl encrypts, we decrypt.
                let plaintext = b"a plaintext for RSA-OAEP".repeat(3);
                let ptf = write(d, "pt.bin", &plaintext);
                let mut args = vec![
                    "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", &pubf, "-in",
                    &ptf,
                ];
                args.extend(&opts);
                let ct = openssl(&args);
                assert_eq!(*key.decrypt(alg, &ct).unwrap(), plaintext, "{spec} {alg}");
                // We encrypt (up to the maximum size), openssl decrypts.
                let max = rsa_bits(spec).unwrap() / 8 - 2 * if md == "sha1" { 20 } else { 32 } - 2;
                for pt in [vec![], vec![7u8; 1], vec![0xA5; max]] {
                    let ct = encrypt(spec, spki, alg, &pt).unwrap();
                    assert_eq!(*key.decrypt(alg, &ct).unwrap(), pt);
                    let ctf = write(d, "ct.bin", &ct);
                    let mut args = vec![
                        "pkeyutl", "-decrypt", "-keyform", "DER", "-inkey", &keyf, "-in", &ctf,
                    ];
                    args.extend(&opts);
                    assert_eq!(openssl(&args), pt);
                }
                assert!(matches!(
                    encrypt(spec, spki, alg, &vec![0; max + 1]),
                    Err(CryptoError::InvalidInput(_))
                ));
                // Tampered / garbage ciphertexts.
                let ct = encrypt(spec, spki, alg, b"secret").unwrap();
                let other = if alg == EncryptionAlgorithmSpec::RSAES_OAEP_SHA_1 {
                    EncryptionAlgorithmSpec::RSAES_OAEP_SHA_256
                } else {
                    EncryptionAlgorithmSpec::RSAES_OAEP_SHA_1
                };
                assert!(matches!(
                    key.decrypt(other, &ct),
                    Err(CryptoError::InvalidCiphertext)
                ));
                let mut flipped = ct.clone();
                flipped[10] ^= 0x10;
                for bad in [
                    &flipped[..],
                    &ct[1..],
                    &[][..],
                    &[0u8; 300][..],
                    &vec![0xff; ct.len()][..],
                ] {
                    assert!(matches!(
                        key.decrypt(alg, bad),
                        Err(CryptoError::InvalidCiphertext)
                    ));
                }
            }
        }
    }

    #[test]
    fn encryption_errors() {
        let rsa = private(KeySpec::RSA_2048);
        let ec = private(KeySpec::ECC_NIST_P256);
        let spki = rsa.public_key_der();
        for alg in [
            EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT,
            EncryptionAlgorithmSpec::SM2PKE,
        ] {
            assert!(matches!(
                rsa.decrypt(alg, &[0; 256]),
                Err(CryptoError::Unsupported(_))
            ));
            assert!(matches!(
                encrypt(KeySpec::RSA_2048, &spki, alg, b"x"),
                Err(CryptoError::Unsupported(_))
            ));
        }
        assert!(matches!(
            ec.decrypt(EncryptionAlgorithmSpec::RSAES_OAEP_SHA_256, &[0; 64]),
            Err(CryptoError::Unsupported(_))
        ));
        assert!(matches!(
            encrypt(
                KeySpec::ECC_NIST_P256,
                &ec.public_key_der(),
                EncryptionAlgorithmSpec::RSAES_OAEP_SHA_256,
                b"x"
            ),
            Err(CryptoError::Unsupported(_))
        ));
        for (spec, key) in [
            (KeySpec::RSA_3072, &spki),
            (KeySpec::RSA_2048, &ec.public_key_der()),
            (KeySpec::RSA_2048, &b"junk".to_vec()),
        ] {
            assert!(matches!(
                encrypt(spec, key, EncryptionAlgorithmSpec::RSAES_OAEP_SHA_1, b"x"),
                Err(CryptoError::InvalidInput(_))
            ));
        }
    }

    #[test]
    fn algorithm_lists() {
        use SigningAlgorithmSpec as S;
        for spec in [KeySpec::RSA_2048, KeySpec::RSA_3072, KeySpec::RSA_4096] {
            assert_eq!(
                signing_algorithms(spec),
                [
                    S::RSASSA_PSS_SHA_256,
                    S::RSASSA_PSS_SHA_384,
                    S::RSASSA_PSS_SHA_512,
                    S::RSASSA_PKCS1_V1_5_SHA_256,
                    S::RSASSA_PKCS1_V1_5_SHA_384,
                    S::RSASSA_PKCS1_V1_5_SHA_512
                ]
            );
            assert_eq!(
                encryption_algorithms(spec),
                [
                    EncryptionAlgorithmSpec::RSAES_OAEP_SHA_1,
                    EncryptionAlgorithmSpec::RSAES_OAEP_SHA_256
                ]
            );
        }
        assert_eq!(
            signing_algorithms(KeySpec::ECC_NIST_P256),
            [S::ECDSA_SHA_256]
        );
        assert_eq!(
            signing_algorithms(KeySpec::ECC_NIST_P384),
            [S::ECDSA_SHA_384]
        );
        assert_eq!(
            signing_algorithms(KeySpec::ECC_NIST_P521),
            [S::ECDSA_SHA_512]
        );
        assert_eq!(
            signing_algorithms(KeySpec::ECC_SECG_P256K1),
            [S::ECDSA_SHA_256]
        );
        for spec in [
            KeySpec::ECC_NIST_P256,
            KeySpec::SYMMETRIC_DEFAULT,
            KeySpec::HMAC_512,
        ] {
            assert!(encryption_algorithms(spec).is_empty());
        }
        assert!(signing_algorithms(KeySpec::SYMMETRIC_DEFAULT).is_empty());
        assert!(signing_algorithms(KeySpec::HMAC_256).is_empty());
        // Every listed algorithm is accepted by sign, and every other one is Unsupported.
        for spec in SPECS {
            for alg in SigningAlgorithmSpec::ALL {
                let listed = signing_algorithms(spec).contains(alg);
                assert_eq!(signing_scheme(spec, *alg).is_ok(), listed, "{spec} {alg}");
            }
        }
    }

    #[test]
    fn data_key_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for spec in DataKeyPairSpec::ALL {
            let result = generate_data_key_pair(*spec);
            if *spec == DataKeyPairSpec::SM2 {
                assert!(matches!(result, Err(CryptoError::Unsupported(_))), "{spec}");
                continue;
            }
            let (pkcs8, public) = result.unwrap();
            let key_spec: KeySpec = spec.as_str().parse().unwrap();
            // openssl reads the private key and derives the same public key.
            let keyf = write(d, "k.der", &pkcs8);
            let spki = openssl(&[
                "pkey", "-inform", "DER", "-in", &keyf, "-pubout", "-outform", "DER",
            ]);
            assert_eq!(spki, public, "{spec}");
            let text = String::from_utf8(openssl(&[
                "pkey", "-inform", "DER", "-in", &keyf, "-noout", "-text",
            ]))
            .unwrap();
            if let Some(bits) = rsa_bits(key_spec) {
                assert!(text.contains(&format!("({bits} bit, 2 primes)")), "{text}");
            }
            // The pair works: sign with the private key, verify with the public key.
            let key = PrivateKey::from_pkcs8(key_spec, &pkcs8).unwrap();
            let alg = signing_algorithms(key_spec)[0];
            let sig = key.sign(alg, b"data key pair", MessageType::RAW).unwrap();
            assert!(
                verify(
                    key_spec,
                    &public,
                    alg,
                    b"data key pair",
                    MessageType::RAW,
                    &sig
                )
                .unwrap()
            );
            // (openssl's Ed25519 check is in `ed25519_sign_verify_and_openssl`.)
            if key_spec != KeySpec::ECC_NIST_EDWARDS25519 {
                assert!(openssl_verifies(d, &public, alg, b"data key pair", &sig));
            }
        }
        // Fresh keys each time.
        let (a, _) = generate_data_key_pair(DataKeyPairSpec::ECC_NIST_P256).unwrap();
        let (b, _) = generate_data_key_pair(DataKeyPairSpec::ECC_NIST_P256).unwrap();
        assert_ne!(*a, *b);
    }

    /// PKCS#8 v1 of an Ed25519 seed (RFC 8410).
    fn ed25519_pkcs8(seed_hex: &str) -> Vec<u8> {
        let mut v = hex::decode("302e020100300506032b657004220420").unwrap();
        v.extend(hex::decode(seed_hex).unwrap());
        v
    }

    const ED: KeySpec = KeySpec::ECC_NIST_EDWARDS25519;

    #[test]
    fn ed25519_known_answers_from_rfc8032() {
        // RFC 8032 section 7.1, TEST 2 (pure Ed25519, one-byte message 0x72).
        let key = PrivateKey::from_pkcs8(
            ED,
            &ed25519_pkcs8("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
        )
        .unwrap();
        let spki = key.public_key_der();
        assert_eq!(spki.len(), 44);
        assert_eq!(
            hex::encode(&spki[12..]),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        );
        let sig = key
            .sign(
                SigningAlgorithmSpec::ED25519_SHA_512,
                &[0x72],
                MessageType::RAW,
            )
            .unwrap();
        assert_eq!(
            hex::encode(&sig),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        );
        // RFC 8032 section 7.3, TEST abc (Ed25519ph).
        let key = PrivateKey::from_pkcs8(
            ED,
            &ed25519_pkcs8("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42"),
        )
        .unwrap();
        let Inner::Ed25519 { prehash, .. } = &key.inner else {
            panic!("not an Ed25519 key");
        };
        let sig = ed25519ph_sign(prehash, b"abc").unwrap();
        assert_eq!(
            hex::encode(&sig),
            "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
             31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
        );
        assert!(ed25519ph_verify(&prehash.verifying_key(), b"abc", &sig));
        assert!(!ed25519ph_verify(&prehash.verifying_key(), b"abd", &sig));
    }

    #[test]
    fn ed25519_sign_verify_and_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pkcs8 = crate::material::generate(ED).unwrap();
        let key = PrivateKey::from_pkcs8(ED, &pkcs8).unwrap();
        let spki = key.public_key_der();
        let msg = b"an Ed25519 message".repeat(20);
        let sig = key
            .sign(
                SigningAlgorithmSpec::ED25519_SHA_512,
                &msg,
                MessageType::RAW,
            )
            .unwrap();
        assert_eq!(sig.len(), 64);
        let ok = |alg, m: &[u8], t, s: &[u8]| verify(ED, &spki, alg, m, t, s).unwrap();
        assert!(ok(
            SigningAlgorithmSpec::ED25519_SHA_512,
            &msg,
            MessageType::RAW,
            &sig
        ));
        assert!(!ok(
            SigningAlgorithmSpec::ED25519_SHA_512,
            b"other",
            MessageType::RAW,
            &sig
        ));
        // openssl (pure Ed25519, -rawin) verifies our signature and derives our public key.
        let keyf = write(d, "k.der", &pkcs8);
        let derived = openssl(&[
            "pkey", "-inform", "DER", "-in", &keyf, "-pubout", "-outform", "DER",
        ]);
        assert_eq!(derived, spki);
        let pubf = write(d, "pub.der", &spki);
        let msgf = write(d, "msg.bin", &msg);
        let sigf = write(d, "sig.bin", &sig);
        assert!(openssl_ok(&[
            "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", &pubf, "-rawin", "-in",
            &msgf, "-sigfile", &sigf
        ]));
        // Ed25519ph over a 64-byte digest: KMS prehashes the digest again.
        let digest = digest::digest(&digest::SHA512, &msg);
        let ph = key
            .sign(
                SigningAlgorithmSpec::ED25519_PH_SHA_512,
                digest.as_ref(),
                MessageType::DIGEST,
            )
            .unwrap();
        assert_eq!(ph.len(), 64);
        assert_ne!(ph, sig);
        assert!(ok(
            SigningAlgorithmSpec::ED25519_PH_SHA_512,
            digest.as_ref(),
            MessageType::DIGEST,
            &ph
        ));
        assert!(!ok(
            SigningAlgorithmSpec::ED25519_PH_SHA_512,
            &[0; 64],
            MessageType::DIGEST,
            &ph
        ));
        assert!(!ok(
            SigningAlgorithmSpec::ED25519_PH_SHA_512,
            digest.as_ref(),
            MessageType::DIGEST,
            &[0; 63]
        ));
        let Inner::Ed25519 { prehash, .. } = &key.inner else {
            panic!("not an Ed25519 key");
        };
        assert_eq!(ph, ed25519ph_sign(prehash, digest.as_ref()).unwrap());
        // AWS's message-type rules and words.
        let err = |alg, m: &[u8], t| match key.sign(alg, m, t) {
            Err(CryptoError::InvalidInput(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(
                SigningAlgorithmSpec::ED25519_SHA_512,
                &msg,
                MessageType::DIGEST
            ),
            "Message type DIGEST is incompatible with algorithm ED25519_SHA_512."
        );
        assert_eq!(
            err(
                SigningAlgorithmSpec::ED25519_PH_SHA_512,
                &msg,
                MessageType::RAW
            ),
            "Message type RAW is incompatible with algorithm ED25519_PH_SHA_512."
        );
        assert_eq!(
            err(
                SigningAlgorithmSpec::ED25519_PH_SHA_512,
                &[1; 32],
                MessageType::DIGEST
            ),
            "Digest is invalid length for algorithm ED25519_PH_SHA_512."
        );
        assert!(matches!(
            key.sign(SigningAlgorithmSpec::ECDSA_SHA_512, &msg, MessageType::RAW),
            Err(CryptoError::Unsupported(_))
        ));
        // A P-256 public key is not an Ed25519 one.
        let p256 = private(KeySpec::ECC_NIST_P256).public_key_der();
        for alg in [
            SigningAlgorithmSpec::ED25519_SHA_512,
            SigningAlgorithmSpec::ED25519_PH_SHA_512,
        ] {
            let (m, t): (&[u8], _) = if alg == SigningAlgorithmSpec::ED25519_SHA_512 {
                (&msg, MessageType::RAW)
            } else {
                (digest.as_ref(), MessageType::DIGEST)
            };
            assert!(matches!(
                verify(ED, &p256, alg, m, t, &sig),
                Err(CryptoError::InvalidInput(_))
            ));
        }
    }

    #[test]
    fn ml_dsa_sign_verify_and_rules() {
        for (spec, spki_len, sig_len) in [
            (KeySpec::ML_DSA_44, 1334, 2420),
            (KeySpec::ML_DSA_65, 1974, 3309),
            (KeySpec::ML_DSA_87, 2614, 4627),
        ] {
            let key =
                PrivateKey::from_pkcs8(spec, &crate::material::generate(spec).unwrap()).unwrap();
            let spki = key.public_key_der();
            assert_eq!(spki.len(), spki_len, "{spec}");
            let alg = SigningAlgorithmSpec::ML_DSA_SHAKE_256;
            for msg in [
                vec![7u8; 1],
                b"an ML-DSA message".to_vec(),
                vec![0xA5; 4096],
            ] {
                let sig = key.sign(alg, &msg, MessageType::RAW).unwrap();
                assert_eq!(sig.len(), sig_len, "{spec}");
                assert!(verify(spec, &spki, alg, &msg, MessageType::RAW, &sig).unwrap());
                let mut bad = sig.clone();
                bad[100] ^= 1;
                assert!(!verify(spec, &spki, alg, &msg, MessageType::RAW, &bad).unwrap());
                assert!(!verify(spec, &spki, alg, b"other", MessageType::RAW, &sig).unwrap());
            }
            match key.sign(alg, &[0; 64], MessageType::DIGEST) {
                Err(CryptoError::InvalidInput(m)) => assert_eq!(
                    m,
                    format!("Message type DIGEST is incompatible with key spec {spec}.")
                ),
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                key.sign(alg, &[0; 64], MessageType::EXTERNAL_MU),
                Err(CryptoError::NotImplemented(_))
            ));
            assert!(matches!(
                key.sign(SigningAlgorithmSpec::ECDSA_SHA_256, b"m", MessageType::RAW),
                Err(CryptoError::Unsupported(_))
            ));
        }
        // Another parameter set's public key does not verify as this one's.
        let k44 = PrivateKey::from_pkcs8(
            KeySpec::ML_DSA_44,
            &crate::material::generate(KeySpec::ML_DSA_44).unwrap(),
        )
        .unwrap();
        let k65 = crate::material::generate(KeySpec::ML_DSA_65).unwrap();
        let k65 = PrivateKey::from_pkcs8(KeySpec::ML_DSA_65, &k65).unwrap();
        let sig = k44
            .sign(
                SigningAlgorithmSpec::ML_DSA_SHAKE_256,
                b"m",
                MessageType::RAW,
            )
            .unwrap();
        assert!(matches!(
            verify(
                KeySpec::ML_DSA_44,
                &k65.public_key_der(),
                SigningAlgorithmSpec::ML_DSA_SHAKE_256,
                b"m",
                MessageType::RAW,
                &sig
            ),
            Err(CryptoError::InvalidInput(_)) | Ok(false)
        ));
    }

    #[test]
    fn ecdh_against_openssl_and_between_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (spec, len) in [
            (KeySpec::ECC_NIST_P256, 32),
            (KeySpec::ECC_NIST_P384, 48),
            (KeySpec::ECC_NIST_P521, 66),
        ] {
            assert_eq!(
                key_agreement_algorithms(spec),
                [KeyAgreementAlgorithmSpec::ECDH]
            );
            let ours = private(spec);
            // The peer is an openssl-made key; openssl derives the same secret from its side.
            let (peer_pkcs8, peer_spki) = openssl_key(spec);
            let secret = ours.derive_shared_secret(peer_spki).unwrap();
            assert_eq!(secret.len(), len, "{spec}");
            let keyf = write(d, "peer.der", peer_pkcs8);
            let pubf = write(d, "ours.der", &ours.public_key_der());
            let from_openssl = openssl(&[
                "pkeyutl",
                "-derive",
                "-keyform",
                "DER",
                "-inkey",
                &keyf,
                "-peerform",
                "DER",
                "-peerkey",
                &pubf,
            ]);
            assert_eq!(*secret, from_openssl, "{spec}");
            // Two of our keys agree with each other.
            let other =
                PrivateKey::from_pkcs8(spec, &crate::material::generate(spec).unwrap()).unwrap();
            assert_eq!(
                *ours.derive_shared_secret(&other.public_key_der()).unwrap(),
                *other.derive_shared_secret(&ours.public_key_der()).unwrap()
            );
        }
        // Unusable public keys: AWS's empty-message ValidationException.
        let p256 = private(KeySpec::ECC_NIST_P256);
        let p384_spki = openssl_key(KeySpec::ECC_NIST_P384).1.clone();
        let k1_spki = openssl_key(KeySpec::ECC_SECG_P256K1).1.clone();
        let rsa_spki = openssl_key(KeySpec::RSA_2048).1.clone();
        let own = p256.public_key_der();
        let bare_point = own[own.len() - 65..].to_vec();
        let mut off_curve = own.clone();
        let last = off_curve.len() - 1;
        off_curve[last] ^= 1;
        for bad in [
            p384_spki,
            k1_spki,
            rsa_spki,
            bare_point,
            off_curve,
            b"InvalidPublicKey".to_vec(),
            own[..own.len() - 1].to_vec(),
        ] {
            match p256.derive_shared_secret(&bad) {
                Err(CryptoError::InvalidInput(m)) => assert_eq!(m, ""),
                other => panic!("{other:?}"),
            }
        }
        // Keys of other specs have no key agreement.
        for spec in [KeySpec::ECC_SECG_P256K1, KeySpec::RSA_2048] {
            assert!(key_agreement_algorithms(spec).is_empty());
            assert!(matches!(
                private(spec).derive_shared_secret(&own),
                Err(CryptoError::Unsupported(_))
            ));
        }
    }
}
