//! RSA and ECC private-key operations (signing; RSA encryption), the matching public-key
//! operations (verify, encrypt), the algorithm lists AWS reports per key spec, and
//! GenerateDataKeyPair.
//!
//! Conventions, as in AWS KMS:
//! - Public keys are X.509 SubjectPublicKeyInfo DER; private keys are PKCS#8 DER.
//! - `MessageType::RAW` messages are hashed with the algorithm's hash; `MessageType::DIGEST`
//!   messages are that hash already (its length must match).
//! - RSASSA-PSS uses MGF1 with the same hash and a salt as long as the hash.
//! - ECDSA signatures are DER `Ecdsa-Sig-Value`s.
//! - RSAES-OAEP uses MGF1 with the same hash and an empty label.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, ParsedPublicKey, RsaEncoding, RsaKeyPair,
    VerificationAlgorithm,
};
use keyferry_types::{
    DataKeyPairSpec, EncryptionAlgorithmSpec, KeySpec, MessageType, SigningAlgorithmSpec,
};

use crate::{CryptoError, Secret};

/// The private half of a key: RSA keeps a signing and a decrypting handle on the same key.
enum Inner {
    Rsa {
        signing: RsaKeyPair,
        decrypting: PrivateDecryptingKey,
    },
    Ec(EcdsaKeyPair),
}

/// An RSA or ECC private key of a known spec. Its `Debug` never shows the key.
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
        let digest = prehashed(alg, scheme.hash(), message, message_type)?;
        match (&self.inner, scheme) {
            (Inner::Rsa { signing, .. }, Scheme::Rsa { encoding, .. }) => {
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
            (Inner::Ec(key), Scheme::Ecdsa { .. }) => {
                let sig = match digest {
                    Some(d) => key.sign_digest(&d),
                    None => key.sign(&aws_lc_rs::rand::SystemRandom::new(), message),
                }
                .map_err(|_| CryptoError::Internal)?;
                Ok(sig.as_ref().to_vec())
            }
            _ => Err(CryptoError::Internal),
        }
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
}

impl Scheme {
    fn hash(self) -> &'static digest::Algorithm {
        match self {
            Scheme::Rsa { hash, .. } | Scheme::Ecdsa { hash, .. } => hash,
        }
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Scheme::Rsa { verification, .. } => verification,
            Scheme::Ecdsa { verification, .. } => verification,
        }
    }
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
        _ if ecdsa_signing(spec).is_some() => return Err(unsupported_alg(alg, spec)),
        _ => return Err(unsupported_spec(spec)),
    };
    Ok(Scheme::Ecdsa { verification, hash })
}

/// `Some(digest)` for MessageType::DIGEST (length-checked), `None` for RAW.
fn prehashed(
    alg: SigningAlgorithmSpec,
    hash: &'static digest::Algorithm,
    message: &[u8],
    message_type: MessageType,
) -> Result<Option<Digest>, CryptoError> {
    match message_type {
        MessageType::RAW => Ok(None),
        MessageType::DIGEST => {
            let expected = hash.output_len();
            if message.len() != expected {
                // AWS's words (recorded responses).
                return Err(CryptoError::InvalidInput(format!(
                    "Digest is invalid length for algorithm {alg}."
                )));
            }
            Digest::import_less_safe(message, hash)
                .map(Some)
                .map_err(|_| CryptoError::Internal)
        }
        MessageType::EXTERNAL_MU => Err(CryptoError::Unsupported(format!(
            "the message type EXTERNAL_MU is not valid with {alg}"
        ))),
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
    let digest = prehashed(alg, scheme.hash(), message, message_type)?;
    check_public_key_family(spec, public_key_der)?;
    let key = ParsedPublicKey::new(scheme.verification(), public_key_der).map_err(|_| {
        CryptoError::InvalidInput(format!("the public key is not a valid {spec} public key"))
    })?;
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
/// other specs: empty.
pub fn signing_algorithms(spec: KeySpec) -> &'static [SigningAlgorithmSpec] {
    match spec {
        KeySpec::RSA_2048 | KeySpec::RSA_3072 | KeySpec::RSA_4096 => RSA_SIGNING,
        KeySpec::ECC_NIST_P256 | KeySpec::ECC_SECG_P256K1 => &[SigningAlgorithmSpec::ECDSA_SHA_256],
        KeySpec::ECC_NIST_P384 => &[SigningAlgorithmSpec::ECDSA_SHA_384],
        KeySpec::ECC_NIST_P521 => &[SigningAlgorithmSpec::ECDSA_SHA_512],
        _ => &[],
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
/// ECC_NIST_EDWARDS25519 and SM2 → Unsupported.
pub fn generate_data_key_pair(spec: DataKeyPairSpec) -> Result<(Secret, Vec<u8>), CryptoError> {
    let key_spec = match spec {
        DataKeyPairSpec::RSA_2048 => KeySpec::RSA_2048,
        DataKeyPairSpec::RSA_3072 => KeySpec::RSA_3072,
        DataKeyPairSpec::RSA_4096 => KeySpec::RSA_4096,
        DataKeyPairSpec::ECC_NIST_P256 => KeySpec::ECC_NIST_P256,
        DataKeyPairSpec::ECC_NIST_P384 => KeySpec::ECC_NIST_P384,
        DataKeyPairSpec::ECC_NIST_P521 => KeySpec::ECC_NIST_P521,
        DataKeyPairSpec::ECC_SECG_P256K1 => KeySpec::ECC_SECG_P256K1,
        DataKeyPairSpec::SM2 | DataKeyPairSpec::ECC_NIST_EDWARDS25519 => {
            return Err(CryptoError::Unsupported(format!(
                "the data key pair spec {spec} is not supported"
            )));
        }
    };
    let pkcs8 = if let Some(alg) = ecdsa_signing(key_spec) {
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
        assert!(matches!(
            rsa.sign(
                SigningAlgorithmSpec::RSASSA_PSS_SHA_256,
                b"m",
                MessageType::EXTERNAL_MU
            ),
            Err(CryptoError::Unsupported(_))
        ));
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
        for spec in [
            KeySpec::SYMMETRIC_DEFAULT,
            KeySpec::HMAC_256,
            KeySpec::SM2,
            KeySpec::ML_DSA_65,
        ] {
            assert!(matches!(
                PrivateKey::from_pkcs8(spec, rsa2048),
                Err(CryptoError::Unsupported(_))
            ));
        }
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
            if matches!(
                spec,
                DataKeyPairSpec::SM2 | DataKeyPairSpec::ECC_NIST_EDWARDS25519
            ) {
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
            assert!(openssl_verifies(d, &public, alg, b"data key pair", &sig));
        }
        // Fresh keys each time.
        let (a, _) = generate_data_key_pair(DataKeyPairSpec::ECC_NIST_P256).unwrap();
        let (b, _) = generate_data_key_pair(DataKeyPairSpec::ECC_NIST_P256).unwrap();
        assert_ne!(*a, *b);
    }
}
