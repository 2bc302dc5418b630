//! Key material sources: a file (`--material FILE`) wrapped in software, or a PKCS#11 object
//! wrapped inside the HSM. Each source knows its key spec, can wrap itself for a KMS wrapping
//! public key, and gives what verification needs (public key, HMAC).
//!
//! [`choose_wrapping`] picks the strongest wrapping algorithm and wrapping key spec valid for a
//! key spec and what the source can do; [`validate_wrapping`] rejects combinations KMS refuses.

use std::path::Path;

use keyferry_crypto::Secret;
use keyferry_types::{AlgorithmSpec, KeySpec, MacAlgorithmSpec, WrappingKeySpec};
use zeroize::Zeroizing;

use crate::der;
use crate::error::{Error, ErrorKind, Result};
use crate::pkcs11::{KeyObject, OaepHash, ObjectQuery, TokenCapabilities, TokenSession};

/// Wrapped key material ready for ImportKeyMaterial (`EncryptedKeyMaterial`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedKeyMaterial {
    /// The wrapping algorithm used.
    pub algorithm: AlgorithmSpec,
    /// The wrapped bytes (OAEP ciphertext, or OAEP(k) ‖ KWP(material)).
    pub bytes: Vec<u8>,
}

/// The chosen wrapping parameters for GetParametersForImport, with explanation lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappingChoice {
    /// `WrappingAlgorithm`.
    pub algorithm: AlgorithmSpec,
    /// `WrappingKeySpec`.
    pub wrapping_key_spec: WrappingKeySpec,
    /// Why this choice, when it is not the obvious one (e.g. SHA-1 because of the token).
    pub notes: Vec<String>,
}

fn is_symmetric_or_hmac(spec: KeySpec) -> bool {
    matches!(
        spec,
        KeySpec::SYMMETRIC_DEFAULT
            | KeySpec::HMAC_224
            | KeySpec::HMAC_256
            | KeySpec::HMAC_384
            | KeySpec::HMAC_512
    )
}

fn is_rsa(spec: KeySpec) -> bool {
    matches!(
        spec,
        KeySpec::RSA_2048 | KeySpec::RSA_3072 | KeySpec::RSA_4096
    )
}

fn is_ecc(spec: KeySpec) -> bool {
    matches!(
        spec,
        KeySpec::ECC_NIST_P256
            | KeySpec::ECC_NIST_P384
            | KeySpec::ECC_NIST_P521
            | KeySpec::ECC_SECG_P256K1
    )
}

fn oaep_hash(alg: AlgorithmSpec) -> Result<OaepHash> {
    match alg {
        AlgorithmSpec::RSAES_OAEP_SHA_1 | AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1 => {
            Ok(OaepHash::Sha1)
        }
        AlgorithmSpec::RSAES_OAEP_SHA_256 | AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256 => {
            Ok(OaepHash::Sha256)
        }
        other => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "wrapping algorithm {other} is not supported (RSAES_PKCS1_V1_5 is no longer accepted by KMS; SM2PKE is China-only)"
            ),
        )),
    }
}

fn is_hybrid(alg: AlgorithmSpec) -> bool {
    matches!(
        alg,
        AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1 | AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256
    )
}

/// Reject combinations of key spec, wrapping algorithm and wrapping key spec that KMS refuses.
pub fn validate_wrapping(spec: KeySpec, alg: AlgorithmSpec, wks: WrappingKeySpec) -> Result<()> {
    oaep_hash(alg)?;
    if wks == WrappingKeySpec::SM2 {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "wrapping key spec SM2 is China-only and not supported; use RSA_4096",
        ));
    }
    if !(is_symmetric_or_hmac(spec) || is_rsa(spec) || is_ecc(spec)) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("key spec {spec} cannot be imported by this client (supported: SYMMETRIC_DEFAULT, HMAC_*, RSA_*, ECC_NIST_P256/P384/P521, ECC_SECG_P256K1)"),
        ));
    }
    if is_rsa(spec) && !is_hybrid(alg) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("an {spec} private key is too large for {alg}; use RSA_AES_KEY_WRAP_SHA_256 (or RSA_AES_KEY_WRAP_SHA_1)"),
        ));
    }
    if is_symmetric_or_hmac(spec) && is_hybrid(alg) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("KMS accepts {spec} key material wrapped with RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1 only, not {alg}"),
        ));
    }
    if spec == KeySpec::ECC_NIST_P521 && wks == WrappingKeySpec::RSA_2048 && !is_hybrid(alg) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("an ECC_NIST_P521 key does not fit in {alg} with an RSA_2048 wrapping key; use RSA_3072/RSA_4096 or RSA_AES_KEY_WRAP_SHA_256"),
        ));
    }
    Ok(())
}

/// The strongest valid wrapping for `spec` given what the source can do: RSA_4096 with
/// RSAES_OAEP_SHA_256 for symmetric, HMAC and EC keys; RSA_AES_KEY_WRAP_SHA_256 for RSA keys (and
/// for EC keys when the token cannot RSA-OAEP-wrap private keys); the SHA-1 variants when the
/// token can only do OAEP with SHA-1, with a note saying so.
pub fn choose_wrapping(spec: KeySpec, caps: &TokenCapabilities) -> Result<WrappingChoice> {
    let wks = WrappingKeySpec::RSA_4096;
    let mut notes = Vec::new();
    let sha256 = if caps.oaep_sha256 {
        true
    } else if caps.oaep_sha1 {
        notes.extend(caps.notes.iter().cloned());
        false
    } else {
        return Err(Error::new(
            ErrorKind::MechanismMissing,
            "the token cannot wrap with CKM_RSA_PKCS_OAEP (neither SHA-256 nor SHA-1 worked); KMS import needs RSA-OAEP wrapping. Check the mechanism list with `pkcs11-tool -M`, or export the key under another mechanism and use --material",
        ));
    };
    let hybrid = if is_rsa(spec) {
        true
    } else if is_ecc(spec) {
        if caps.oaep_wraps_private_keys {
            false
        } else {
            notes.push(
                "the token cannot RSA-OAEP-wrap private keys, so the EC key is wrapped with RSA_AES_KEY_WRAP (an ephemeral AES-256 key made in the token)".to_string(),
            );
            true
        }
    } else if is_symmetric_or_hmac(spec) {
        false
    } else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("key spec {spec} cannot be imported by this client"),
        ));
    };
    if hybrid && !(caps.kwp && caps.aes_keygen) {
        return Err(Error::new(
            ErrorKind::MechanismMissing,
            format!(
                "{spec} keys need RSA_AES_KEY_WRAP, which needs AES key generation and AES key wrap with padding (RFC 5649) in the token; it lacks one of them. Set the vendor's mechanism with --hsm-profile or --kwp-mechanism"
            ),
        ));
    }
    let algorithm = match (hybrid, sha256) {
        (true, true) => AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256,
        (true, false) => AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1,
        (false, true) => AlgorithmSpec::RSAES_OAEP_SHA_256,
        (false, false) => AlgorithmSpec::RSAES_OAEP_SHA_1,
    };
    validate_wrapping(spec, algorithm, wks)?;
    Ok(WrappingChoice {
        algorithm,
        wrapping_key_spec: wks,
        notes,
    })
}

fn hmac_alg(spec: KeySpec) -> Option<MacAlgorithmSpec> {
    match spec {
        KeySpec::HMAC_224 => Some(MacAlgorithmSpec::HMAC_SHA_224),
        KeySpec::HMAC_256 => Some(MacAlgorithmSpec::HMAC_SHA_256),
        KeySpec::HMAC_384 => Some(MacAlgorithmSpec::HMAC_SHA_384),
        KeySpec::HMAC_512 => Some(MacAlgorithmSpec::HMAC_SHA_512),
        _ => None,
    }
}

/// The MAC algorithm KMS uses with an HMAC key spec.
pub fn mac_algorithm_for(spec: KeySpec) -> Option<MacAlgorithmSpec> {
    hmac_alg(spec)
}

fn hmac_specs_for_len(len: usize) -> Vec<KeySpec> {
    [
        (KeySpec::HMAC_224, 28),
        (KeySpec::HMAC_256, 32),
        (KeySpec::HMAC_384, 48),
        (KeySpec::HMAC_512, 64),
    ]
    .into_iter()
    .filter(|(_, min)| len >= *min && len <= 128)
    .map(|(s, _)| s)
    .collect()
}

fn check_hmac_len(spec: KeySpec, len: usize, what: &str) -> Result<()> {
    if !hmac_specs_for_len(len).contains(&spec) {
        let valid = hmac_specs_for_len(len);
        return Err(Error::new(
            ErrorKind::Material,
            format!(
                "{what} is {len} bytes, which does not fit {spec} (HMAC_n needs n/8 to 128 bytes){}",
                if valid.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; it fits {}",
                        valid.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    )
                }
            ),
        ));
    }
    Ok(())
}

/// Key material read from a file; wrapped in software.
pub struct FileSource {
    material: Secret,
    spec: KeySpec,
    notes: Vec<String>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("spec", &self.spec)
            .field("material", &"<redacted>")
            .finish()
    }
}

impl FileSource {
    /// Read `path`: raw bytes for SYMMETRIC_DEFAULT/HMAC, a private key (PKCS#8 DER/PEM or
    /// traditional PEM) for RSA/EC. Without `spec`, a private key's spec is inferred and exactly
    /// 32 raw bytes are taken as SYMMETRIC_DEFAULT; other raw lengths need `--key-spec HMAC_*`.
    pub fn load(path: &Path, spec: Option<KeySpec>) -> Result<Self> {
        let bytes = Zeroizing::new(
            std::fs::read(path).map_err(|e| Error::io("read the key material file", path, e))?,
        );
        Self::from_bytes(&bytes, spec).map_err(|e| {
            let msg = format!("{}: {}", path.display(), e.message());
            Error::new(e.kind(), msg)
        })
    }

    /// As [`FileSource::load`], from bytes already in memory.
    pub fn from_bytes(bytes: &[u8], spec: Option<KeySpec>) -> Result<Self> {
        let mut notes = Vec::new();
        let (material, spec) = match spec {
            Some(s) if is_symmetric_or_hmac(s) => {
                if s == KeySpec::SYMMETRIC_DEFAULT && bytes.len() != 32 {
                    return Err(Error::new(
                        ErrorKind::Material,
                        format!(
                            "SYMMETRIC_DEFAULT key material must be exactly 32 raw bytes (AES-256); the file has {} bytes",
                            bytes.len()
                        ),
                    ));
                }
                if s != KeySpec::SYMMETRIC_DEFAULT {
                    check_hmac_len(s, bytes.len(), "the key material")?;
                }
                (Zeroizing::new(bytes.to_vec()), s)
            }
            Some(s) if is_rsa(s) || is_ecc(s) => {
                let (pkcs8, found) = keyferry_crypto::keyfile::private_key_to_pkcs8(bytes)?;
                if found != s {
                    return Err(Error::new(
                        ErrorKind::Material,
                        format!("the private key is {found} but the key spec is {s}"),
                    ));
                }
                (pkcs8, s)
            }
            Some(s) => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("key spec {s} cannot be imported by this client"),
                ));
            }
            None => match keyferry_crypto::keyfile::private_key_to_pkcs8(bytes) {
                Ok((pkcs8, s)) => (pkcs8, s),
                Err(key_err) => {
                    if bytes.len() == 32 {
                        notes.push("32 raw bytes taken as SYMMETRIC_DEFAULT (AES-256) key material; give --key-spec HMAC_256 for an HMAC key".to_string());
                        (Zeroizing::new(bytes.to_vec()), KeySpec::SYMMETRIC_DEFAULT)
                    } else {
                        let hmac = hmac_specs_for_len(bytes.len());
                        return Err(Error::new(
                            ErrorKind::Material,
                            if hmac.is_empty() {
                                format!(
                                    "the file is neither a private key ({key_err}) nor raw symmetric material (32 bytes for SYMMETRIC_DEFAULT, 28–128 bytes for HMAC)"
                                )
                            } else {
                                format!(
                                    "the file holds {} raw bytes, which could be an HMAC key; give --key-spec ({})",
                                    bytes.len(),
                                    hmac.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
                                )
                            },
                        ));
                    }
                }
            },
        };
        // Final check with the server's own validation rules.
        keyferry_crypto::material::canonicalize(spec, &material)?;
        Ok(Self {
            material,
            spec,
            notes,
        })
    }
}

/// A key in a PKCS#11 token; wrapped inside the HSM.
pub struct Pkcs11Source<'s> {
    session: &'s TokenSession,
    key: KeyObject,
    spec: KeySpec,
    caps: TokenCapabilities,
}

impl std::fmt::Debug for Pkcs11Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Source")
            .field("token", &self.session.token_label())
            .field("key", &self.key.describe())
            .field("spec", &self.spec)
            .finish()
    }
}

impl<'s> Pkcs11Source<'s> {
    /// Find the key `query` names, infer (or check) its key spec, check it is extractable, and
    /// probe the token's capabilities.
    pub fn open(
        session: &'s TokenSession,
        query: &ObjectQuery,
        spec: Option<KeySpec>,
    ) -> Result<Self> {
        let key = session.find_key(query)?;
        let spec = infer_token_spec(&key, spec)?;
        session.check_extractable(&key)?;
        let caps = session.capabilities()?;
        Ok(Self {
            session,
            key,
            spec,
            caps,
        })
    }

    /// The key object in the token.
    pub fn key(&self) -> &KeyObject {
        &self.key
    }

    /// What the token can do.
    pub fn capabilities(&self) -> &TokenCapabilities {
        &self.caps
    }
}

/// The KMS key spec of a token key, inferred from its attributes or checked against `given`.
pub fn infer_token_spec(key: &KeyObject, given: Option<KeySpec>) -> Result<KeySpec> {
    use cryptoki::object::{KeyType, ObjectClass};
    let kt = key.key_type;
    let desc = key.describe();
    if key.class == ObjectClass::PUBLIC_KEY {
        return Err(Error::new(
            ErrorKind::ObjectNotFound,
            format!("{desc} is a public key; point the URI at the private key (type=private)"),
        ));
    }
    let inferred: Option<KeySpec> = if key.class == ObjectClass::SECRET_KEY {
        let len = key.value_len.unwrap_or(0);
        match kt {
            Some(k) if k == KeyType::AES => {
                if len != 32 {
                    return Err(Error::new(
                        ErrorKind::Material,
                        format!("{desc} is an AES-{} key; KMS SYMMETRIC_DEFAULT keys are AES-256 (32 bytes)", len * 8),
                    ));
                }
                Some(KeySpec::SYMMETRIC_DEFAULT)
            }
            Some(k) if k == KeyType::SHA224_HMAC => Some(KeySpec::HMAC_224),
            Some(k) if k == KeyType::SHA256_HMAC => Some(KeySpec::HMAC_256),
            Some(k) if k == KeyType::SHA384_HMAC => Some(KeySpec::HMAC_384),
            Some(k) if k == KeyType::SHA512_HMAC => Some(KeySpec::HMAC_512),
            Some(k) if k == KeyType::GENERIC_SECRET => None,
            _ => {
                return Err(Error::new(
                    ErrorKind::Material,
                    format!("{desc} is a secret key of a type KMS cannot import (AES-256 and generic secret/HMAC keys can be imported)"),
                ));
            }
        }
    } else if key.class == ObjectClass::PRIVATE_KEY {
        match kt {
            Some(k) if k == KeyType::RSA => Some(crate::pkcs11::rsa_spec(
                key.modulus.as_deref().unwrap_or(&[]),
            )?),
            Some(k) if k == KeyType::EC => Some(der::ec_spec_from_params(
                key.ec_params.as_deref().unwrap_or(&[]),
            )?),
            _ => {
                return Err(Error::new(
                    ErrorKind::Material,
                    format!("{desc} is neither an RSA nor an EC private key"),
                ));
            }
        }
    } else {
        return Err(Error::new(
            ErrorKind::ObjectNotFound,
            format!("{desc} is not a key"),
        ));
    };
    let len = key.value_len.unwrap_or(0);
    match (inferred, given) {
        (Some(i), None) => {
            if hmac_alg(i).is_some() {
                check_hmac_len(i, len, &desc)?;
            }
            Ok(i)
        }
        (Some(i), Some(g)) if i == g => Ok(i),
        (Some(i), Some(g)) => Err(Error::new(
            ErrorKind::Material,
            format!("{desc} is {i} but the key spec given is {g}"),
        )),
        (None, Some(g)) if hmac_alg(g).is_some() => {
            check_hmac_len(g, len, &desc)?;
            Ok(g)
        }
        (None, Some(KeySpec::SYMMETRIC_DEFAULT)) if len == 32 => Ok(KeySpec::SYMMETRIC_DEFAULT),
        (None, Some(g)) => Err(Error::new(
            ErrorKind::Material,
            format!("{desc} is a generic secret of {len} bytes, which does not fit {g}"),
        )),
        (None, None) => {
            let fits = hmac_specs_for_len(len);
            Err(Error::new(
                ErrorKind::Material,
                format!(
                    "{desc} is a generic secret of {len} bytes; its key spec cannot be inferred: give --key-spec{}",
                    if fits.is_empty() {
                        " (no HMAC key spec fits this length: HMAC keys are 28 to 128 bytes)".to_string()
                    } else {
                        format!(
                            " {}",
                            fits.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
                        )
                    }
                ),
            ))
        }
    }
}

/// A key material source.
#[derive(Debug)]
pub enum KeySource<'s> {
    /// `--material FILE`.
    File(FileSource),
    /// `--pkcs11-uri URI`.
    Pkcs11(Pkcs11Source<'s>),
}

impl KeySource<'_> {
    /// The key spec of the material.
    pub fn key_spec(&self) -> KeySpec {
        match self {
            Self::File(f) => f.spec,
            Self::Pkcs11(p) => p.spec,
        }
    }

    /// What this source can do (software sources can do everything).
    pub fn capabilities(&self) -> TokenCapabilities {
        match self {
            Self::File(_) => TokenCapabilities::software(),
            Self::Pkcs11(p) => p.caps.clone(),
        }
    }

    /// Explanation lines about the source (inferences, fallbacks).
    pub fn notes(&self) -> Vec<String> {
        match self {
            Self::File(f) => f.notes.clone(),
            Self::Pkcs11(p) => p.caps.notes.clone(),
        }
    }

    /// The strongest valid wrapping for this source.
    pub fn choose_wrapping(&self) -> Result<WrappingChoice> {
        choose_wrapping(self.key_spec(), &self.capabilities())
    }

    /// Wrap the material for the KMS wrapping public key (SPKI DER) with `alg`. For a token the
    /// wrap happens inside the HSM: CKM_RSA_PKCS_OAEP, or for RSA_AES_KEY_WRAP an ephemeral AES-256
    /// key OAEP-wrapped followed by the key KWP-wrapped; all temporary objects are destroyed.
    pub fn wrap(&self, alg: AlgorithmSpec, wrapping_spki: &[u8]) -> Result<EncryptedKeyMaterial> {
        let wks = wrapping_key_spec_of(wrapping_spki)?;
        validate_wrapping(self.key_spec(), alg, wks)?;
        let bytes = match self {
            Self::File(f) => keyferry_crypto::wrap::wrap(alg, wrapping_spki, &f.material)?,
            Self::Pkcs11(p) => {
                let hash = oaep_hash(alg)?;
                let s = p.session;
                let wrapping = s.import_rsa_public_key(wrapping_spki)?;
                if is_hybrid(alg) {
                    let kek = s.generate_ephemeral_aes256()?;
                    let mut out = s.wrap_oaep(hash, wrapping.handle(), kek.handle())?;
                    out.extend_from_slice(&s.wrap_kwp(kek.handle(), p.key.handle)?);
                    out
                } else {
                    s.wrap_oaep(hash, wrapping.handle(), p.key.handle)?
                }
            }
        };
        Ok(EncryptedKeyMaterial {
            algorithm: alg,
            bytes,
        })
    }

    /// The public key (SPKI DER) of an asymmetric source, to compare with KMS GetPublicKey.
    pub fn public_key(&self) -> Result<Vec<u8>> {
        let spec = self.key_spec();
        if !(is_rsa(spec) || is_ecc(spec)) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{spec} keys have no public key"),
            ));
        }
        match self {
            Self::File(f) => Ok(keyferry_crypto::keyfile::public_key_of(spec, &f.material)?),
            Self::Pkcs11(p) => Ok(p.session.public_key_spki(&p.key)?.1),
        }
    }

    /// The HMAC of `message` with an HMAC source (in the token for PKCS#11 sources).
    pub fn mac(&self, alg: MacAlgorithmSpec, message: &[u8]) -> Result<Vec<u8>> {
        if hmac_alg(self.key_spec()).is_none() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{} keys cannot compute a MAC", self.key_spec()),
            ));
        }
        match self {
            Self::File(f) => Ok(keyferry_crypto::mac::generate(alg, &f.material, message)),
            Self::Pkcs11(p) => p.session.hmac(alg, p.key.handle, message),
        }
    }
}

/// The WrappingKeySpec of a KMS wrapping public key (SPKI DER), from its modulus size.
pub fn wrapping_key_spec_of(spki: &[u8]) -> Result<WrappingKeySpec> {
    let len = keyferry_crypto::wrap::rsa_public_key_len(spki).map_err(|_| {
        Error::new(
            ErrorKind::Io,
            "the wrapping public key is not a DER RSA SubjectPublicKeyInfo",
        )
    })?;
    match len {
        256 => Ok(WrappingKeySpec::RSA_2048),
        384 => Ok(WrappingKeySpec::RSA_3072),
        512 => Ok(WrappingKeySpec::RSA_4096),
        other => Err(Error::new(
            ErrorKind::Unsupported,
            format!("the wrapping public key has {} bits; KMS uses RSA 2048, 3072 or 4096", other * 8),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sha1_only() -> TokenCapabilities {
        TokenCapabilities {
            oaep_sha256: false,
            oaep_wraps_private_keys: false,
            notes: vec!["SHA-1 only".into()],
            ..TokenCapabilities::software()
        }
    }

    #[test]
    fn choice_for_software() {
        let caps = TokenCapabilities::software();
        for spec in [
            KeySpec::SYMMETRIC_DEFAULT,
            KeySpec::HMAC_224,
            KeySpec::HMAC_512,
            KeySpec::ECC_NIST_P256,
            KeySpec::ECC_NIST_P521,
            KeySpec::ECC_SECG_P256K1,
        ] {
            let c = choose_wrapping(spec, &caps).unwrap();
            assert_eq!(c.algorithm, AlgorithmSpec::RSAES_OAEP_SHA_256, "{spec}");
            assert_eq!(c.wrapping_key_spec, WrappingKeySpec::RSA_4096);
            assert!(c.notes.is_empty());
        }
        for spec in [KeySpec::RSA_2048, KeySpec::RSA_3072, KeySpec::RSA_4096] {
            let c = choose_wrapping(spec, &caps).unwrap();
            assert_eq!(c.algorithm, AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256);
        }
        assert_eq!(
            choose_wrapping(KeySpec::ML_DSA_44, &caps).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
    }

    #[test]
    fn choice_for_sha1_only_token() {
        let caps = sha1_only();
        let c = choose_wrapping(KeySpec::SYMMETRIC_DEFAULT, &caps).unwrap();
        assert_eq!(c.algorithm, AlgorithmSpec::RSAES_OAEP_SHA_1);
        assert!(c.notes.iter().any(|n| n.contains("SHA-1")));
        let c = choose_wrapping(KeySpec::ECC_NIST_P384, &caps).unwrap();
        assert_eq!(c.algorithm, AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1);
        let c = choose_wrapping(KeySpec::RSA_2048, &caps).unwrap();
        assert_eq!(c.algorithm, AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1);
        let none = TokenCapabilities {
            oaep_sha1: false,
            ..caps.clone()
        };
        assert_eq!(
            choose_wrapping(KeySpec::HMAC_256, &none).unwrap_err().kind(),
            ErrorKind::MechanismMissing
        );
        let no_kwp = TokenCapabilities { kwp: false, ..caps };
        assert_eq!(
            choose_wrapping(KeySpec::RSA_2048, &no_kwp).unwrap_err().kind(),
            ErrorKind::MechanismMissing
        );
        assert!(choose_wrapping(KeySpec::SYMMETRIC_DEFAULT, &no_kwp).is_ok());
    }

    #[test]
    fn validation_rules() {
        use AlgorithmSpec as A;
        use WrappingKeySpec as W;
        assert!(validate_wrapping(KeySpec::RSA_2048, A::RSAES_OAEP_SHA_256, W::RSA_4096).is_err());
        assert!(validate_wrapping(KeySpec::ECC_NIST_P521, A::RSAES_OAEP_SHA_1, W::RSA_2048).is_err());
        assert!(validate_wrapping(KeySpec::ECC_NIST_P521, A::RSAES_OAEP_SHA_1, W::RSA_3072).is_ok());
        assert!(validate_wrapping(KeySpec::ECC_NIST_P521, A::RSA_AES_KEY_WRAP_SHA_1, W::RSA_2048).is_ok());
        assert!(validate_wrapping(KeySpec::SYMMETRIC_DEFAULT, A::RSAES_PKCS1_V1_5, W::RSA_2048).is_err());
        assert!(validate_wrapping(KeySpec::HMAC_256, A::RSA_AES_KEY_WRAP_SHA_256, W::RSA_2048).is_err());
        assert!(validate_wrapping(KeySpec::HMAC_256, A::RSAES_OAEP_SHA_256, W::SM2).is_err());
    }

    #[test]
    fn raw_file_material_inference() {
        let s = FileSource::from_bytes(&[7u8; 32], None).unwrap();
        assert_eq!(s.spec, KeySpec::SYMMETRIC_DEFAULT);
        assert_eq!(s.notes.len(), 1);
        let e = FileSource::from_bytes(&[7u8; 48], None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Material);
        assert!(e.message().contains("HMAC_384"), "{e}");
        assert!(!e.message().contains("HMAC_512"), "{e}");
        let e = FileSource::from_bytes(&[7u8; 31], Some(KeySpec::SYMMETRIC_DEFAULT)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Material);
        let e = FileSource::from_bytes(&[7u8; 32], Some(KeySpec::HMAC_384)).unwrap_err();
        assert!(e.message().contains("HMAC_224, HMAC_256"), "{e}");
        let e = FileSource::from_bytes(&[7u8; 10], None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Material);
    }

    #[test]
    fn hmac_lengths() {
        assert_eq!(hmac_specs_for_len(28), vec![KeySpec::HMAC_224]);
        assert_eq!(hmac_specs_for_len(64).len(), 4);
        assert!(hmac_specs_for_len(129).is_empty());
    }
}
