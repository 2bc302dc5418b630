//! Key material: generation, validation against a key spec, identity.
//!
//! Asymmetric material is always handled as PKCS#8 v1 DER as re-encoded by aws-lc, so the same key
//! always has the same bytes (and the same material id), whatever encoding it was imported in.

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsBigEndian, AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, PqdsaKeyPair,
    PqdsaSigningAlgorithm, RsaKeyPair,
};
use keyferry_types::KeySpec;

use crate::{CryptoError, Secret, der};

/// Domain-separation label of [`material_id`].
const MATERIAL_ID_LABEL: &[u8] = b"keyferry key material id v1\0";

/// The kind of key a spec describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// RSA with this modulus size in bits.
    Rsa(usize),
    /// ECDSA on this curve.
    Ec(Curve),
    /// 32-byte AES-256-GCM key.
    Symmetric,
    /// HMAC key with this minimum length in bytes.
    Hmac(usize),
    /// Ed25519 (generated only: AWS does not import ECC_NIST_EDWARDS25519 material).
    Ed25519,
    /// ML-DSA (FIPS 204) at this parameter set (44, 65, 87); generated only, as on AWS.
    MlDsa(u8),
    /// Not supported by Keyferry.
    Unsupported,
}

/// An ECDSA curve Keyferry supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
    P256K1,
}

impl Curve {
    /// The aws-lc signing algorithm (ASN.1 DER signatures) for this curve and its KMS hash.
    pub(crate) fn signing(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            Curve::P521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
            Curve::P256K1 => &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        }
    }

    /// The curve's DER OID contents.
    pub(crate) fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => der::OID_P256,
            Curve::P384 => der::OID_P384,
            Curve::P521 => der::OID_P521,
            Curve::P256K1 => der::OID_P256K1,
        }
    }

    /// The curve named by a DER OID.
    pub(crate) fn from_oid(oid: &[u8]) -> Option<Curve> {
        [Curve::P256, Curve::P384, Curve::P521, Curve::P256K1]
            .into_iter()
            .find(|c| c.oid() == oid)
    }

    /// The KMS key spec of this curve.
    pub(crate) fn spec(self) -> KeySpec {
        match self {
            Curve::P256 => KeySpec::ECC_NIST_P256,
            Curve::P384 => KeySpec::ECC_NIST_P384,
            Curve::P521 => KeySpec::ECC_NIST_P521,
            Curve::P256K1 => KeySpec::ECC_SECG_P256K1,
        }
    }

    /// A human name of the curve.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::P256K1 => "secp256k1",
        }
    }
}

/// What kind of key a spec is.
pub(crate) fn kind(spec: KeySpec) -> Kind {
    match spec {
        KeySpec::RSA_2048 => Kind::Rsa(2048),
        KeySpec::RSA_3072 => Kind::Rsa(3072),
        KeySpec::RSA_4096 => Kind::Rsa(4096),
        KeySpec::ECC_NIST_P256 => Kind::Ec(Curve::P256),
        KeySpec::ECC_NIST_P384 => Kind::Ec(Curve::P384),
        KeySpec::ECC_NIST_P521 => Kind::Ec(Curve::P521),
        KeySpec::ECC_SECG_P256K1 => Kind::Ec(Curve::P256K1),
        KeySpec::SYMMETRIC_DEFAULT => Kind::Symmetric,
        KeySpec::HMAC_224 => Kind::Hmac(28),
        KeySpec::HMAC_256 => Kind::Hmac(32),
        KeySpec::HMAC_384 => Kind::Hmac(48),
        KeySpec::HMAC_512 => Kind::Hmac(64),
        KeySpec::ECC_NIST_EDWARDS25519 => Kind::Ed25519,
        KeySpec::ML_DSA_44 => Kind::MlDsa(44),
        KeySpec::ML_DSA_65 => Kind::MlDsa(65),
        KeySpec::ML_DSA_87 => Kind::MlDsa(87),
        KeySpec::SM2 => Kind::Unsupported,
    }
}

/// The RSA key spec for a modulus size, if KMS has one.
pub(crate) fn rsa_spec(bits: usize) -> Option<KeySpec> {
    match bits {
        2048 => Some(KeySpec::RSA_2048),
        3072 => Some(KeySpec::RSA_3072),
        4096 => Some(KeySpec::RSA_4096),
        _ => None,
    }
}

/// The aws-lc signing algorithm of an ML-DSA parameter set (44, 65 or 87).
pub(crate) fn ml_dsa_signing(level: u8) -> &'static PqdsaSigningAlgorithm {
    match level {
        44 => &signature::ML_DSA_44_SIGNING,
        65 => &signature::ML_DSA_65_SIGNING,
        _ => &signature::ML_DSA_87_SIGNING,
    }
}

/// Key specs AWS creates only with AWS_KMS key material: ECC_NIST_EDWARDS25519 and ML_DSA_*.
pub fn importable(spec: KeySpec) -> bool {
    !matches!(kind(spec), Kind::Ed25519 | Kind::MlDsa(_))
}

fn not_importable(spec: KeySpec) -> CryptoError {
    CryptoError::Unsupported(format!(
        "key material for key spec {spec} cannot be imported"
    ))
}

fn unsupported(spec: KeySpec) -> CryptoError {
    CryptoError::Unsupported(format!("key spec {spec} is not supported by Keyferry"))
}

/// Fresh material for a spec: SYMMETRIC_DEFAULT 32 random bytes; HMAC_224/256/384/512: 28/32/48/64
/// random bytes; RSA_2048/3072/4096, ECC_NIST_P256/P384/P521, ECC_SECG_P256K1,
/// ECC_NIST_EDWARDS25519 and ML_DSA_44/65/87 (seed form): PKCS#8 v1 DER. SM2: Err(Unsupported).
pub fn generate(spec: KeySpec) -> Result<Secret, CryptoError> {
    match kind(spec) {
        Kind::Symmetric => Ok(crate::rng::random_bytes(32)),
        Kind::Hmac(n) => Ok(crate::rng::random_bytes(n)),
        Kind::Rsa(bits) => {
            let size = match bits {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let kp = RsaKeyPair::generate(size).map_err(|_| CryptoError::Internal)?;
            rsa_pkcs8(&kp)
        }
        Kind::Ec(curve) => {
            let kp = EcdsaKeyPair::generate(curve.signing()).map_err(|_| CryptoError::Internal)?;
            ec_pkcs8(&kp)
        }
        Kind::Ed25519 => {
            let kp = Ed25519KeyPair::generate().map_err(|_| CryptoError::Internal)?;
            let doc = kp.to_pkcs8v1().map_err(|_| CryptoError::Internal)?;
            Ok(Secret::new(doc.as_ref().to_vec()))
        }
        Kind::MlDsa(level) => {
            let kp =
                PqdsaKeyPair::generate(ml_dsa_signing(level)).map_err(|_| CryptoError::Internal)?;
            let doc = kp.to_pkcs8v1().map_err(|_| CryptoError::Internal)?;
            Ok(Secret::new(doc.as_ref().to_vec()))
        }
        Kind::Unsupported => Err(unsupported(spec)),
    }
}

/// PKCS#8 v1 DER of an RSA key pair.
pub(crate) fn rsa_pkcs8(kp: &RsaKeyPair) -> Result<Secret, CryptoError> {
    let der: Pkcs8V1Der = kp.as_der().map_err(|_| CryptoError::Internal)?;
    Ok(Secret::new(der.as_ref().to_vec()))
}

/// PKCS#8 v1 DER of an ECDSA key pair.
pub(crate) fn ec_pkcs8(kp: &EcdsaKeyPair) -> Result<Secret, CryptoError> {
    let doc = kp.to_pkcs8v1().map_err(|_| CryptoError::Internal)?;
    Ok(Secret::new(doc.as_ref().to_vec()))
}

fn invalid(msg: impl Into<String>) -> CryptoError {
    CryptoError::InvalidMaterial(msg.into())
}

/// Validate imported plaintext material against the spec and return its canonical form (used for
/// the material id and for "is this the same material" checks on re-import).
///
/// SYMMETRIC_DEFAULT exactly 32 bytes; HMAC_n between n/8 and 128 bytes (raw); RSA: PKCS#8
/// PrivateKeyInfo, two primes, modulus bits == spec → canonical = aws-lc re-encoded PKCS#8 v1;
/// ECC: PKCS#8 with named curve == spec's curve, with or without the public key → canonical =
/// aws-lc re-encoded PKCS#8 v1. Errors: InvalidMaterial("…human reason…").
pub fn canonicalize(spec: KeySpec, material: &[u8]) -> Result<Secret, CryptoError> {
    match kind(spec) {
        Kind::Symmetric => {
            if material.len() != 32 {
                return Err(invalid(format!(
                    "SYMMETRIC_DEFAULT key material must be 32 bytes, got {}",
                    material.len()
                )));
            }
            Ok(Secret::new(material.to_vec()))
        }
        Kind::Hmac(min) => {
            if material.len() < min || material.len() > 128 {
                return Err(invalid(format!(
                    "{spec} key material must be between {min} and 128 bytes, got {}",
                    material.len()
                )));
            }
            Ok(Secret::new(material.to_vec()))
        }
        Kind::Rsa(bits) => {
            canonical_rsa(spec, bits, strip_block_padding(material)).map(|(kp, _)| kp)
        }
        Kind::Ec(curve) => {
            canonical_ec(spec, curve, strip_block_padding(material)).map(|(kp, _)| kp)
        }
        Kind::Ed25519 | Kind::MlDsa(_) => Err(not_importable(spec)),
        Kind::Unsupported => Err(unsupported(spec)),
    }
}

/// A complete DER element followed by fewer than 8 zero bytes is that element. HSMs that
/// wrap with a zero-padding AES key wrap (SoftHSM2's CKM_AES_KEY_WRAP_PAD, CloudHSM's
/// CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD, which AWS documents for KMS import) pad the PKCS#8 to
/// a multiple of 8 bytes inside the RFC 5649 payload. Anything else is returned unchanged.
fn strip_block_padding(material: &[u8]) -> &[u8] {
    match der::read(material) {
        Some((_, rest)) if !rest.is_empty() && rest.len() < 8 && rest.iter().all(|&b| b == 0) => {
            &material[..material.len() - rest.len()]
        }
        _ => material,
    }
}

/// The algorithm a PKCS#8 structure names, checked against what the spec needs.
fn pkcs8_info<'a>(spec: KeySpec, material: &'a [u8]) -> Result<der::Pkcs8Info<'a>, CryptoError> {
    let info = der::pkcs8(material).ok_or_else(|| {
        invalid(format!(
            "{spec} key material must be an unencrypted PKCS#8 PrivateKeyInfo in DER \
             (convert with: openssl pkcs8 -topk8 -nocrypt -outform DER)"
        ))
    })?;
    let found = match info.algorithm {
        a if a == der::OID_RSA => "an RSA key",
        a if a == der::OID_RSA_PSS => "an RSASSA-PSS-restricted RSA key (id-RSASSA-PSS)",
        a if a == der::OID_EC => "an EC key",
        a if a == der::OID_ED25519 => "an Ed25519 key",
        _ => "a key of an unsupported algorithm",
    };
    let wanted = match kind(spec) {
        Kind::Rsa(_) => der::OID_RSA,
        _ => der::OID_EC,
    };
    if info.algorithm != wanted {
        return Err(invalid(format!(
            "the PKCS#8 material is {found}, which does not fit key spec {spec}"
        )));
    }
    Ok(info)
}

/// Validate RSA PKCS#8 material for `spec`; returns the canonical PKCS#8 v1 and the key pair.
pub(crate) fn canonical_rsa(
    spec: KeySpec,
    bits: usize,
    material: &[u8],
) -> Result<(Secret, RsaKeyPair), CryptoError> {
    let info = pkcs8_info(spec, material)?;
    match der::pkcs1_version(info.private_key) {
        Some([0]) => {}
        Some(_) => {
            return Err(invalid(
                "multi-prime RSA keys are not supported; the key must have exactly two primes",
            ));
        }
        None => return Err(invalid("the PKCS#8 RSA private key is malformed")),
    }
    let kp = RsaKeyPair::from_pkcs8(material)
        .map_err(|e| invalid(format!("the RSA private key is not valid: {e}")))?;
    let actual = PrivateDecryptingKey::from_pkcs8(material)
        .map_err(|e| invalid(format!("the RSA private key is not valid: {e}")))?
        .key_size_bits();
    if actual != bits {
        return Err(invalid(format!(
            "RSA key is {actual} bits but the key spec is {spec}"
        )));
    }
    Ok((rsa_pkcs8(&kp)?, kp))
}

/// Validate EC PKCS#8 material for `spec`; returns the canonical PKCS#8 v1 and the key pair.
pub(crate) fn canonical_ec(
    spec: KeySpec,
    curve: Curve,
    material: &[u8],
) -> Result<(Secret, EcdsaKeyPair), CryptoError> {
    let info = pkcs8_info(spec, material)?;
    let named = match info.parameters {
        Some(t) if t.tag == der::OID => t.value,
        Some(t) if t.tag == der::SEQUENCE => {
            return Err(invalid(
                "EC keys with explicit curve parameters are not supported; use a named curve \
                 (openssl ec -param_enc named_curve)",
            ));
        }
        _ => return Err(invalid("the PKCS#8 EC key does not name its curve")),
    };
    match Curve::from_oid(named) {
        Some(c) if c == curve => {}
        Some(c) => {
            return Err(invalid(format!(
                "EC key is on curve {} but the key spec is {spec}",
                c.name()
            )));
        }
        None => {
            return Err(invalid(format!(
                "EC key is on an unsupported curve; the key spec is {spec}"
            )));
        }
    }
    let parsed = EcdsaKeyPair::from_pkcs8(curve.signing(), material)
        .map_err(|e| invalid(format!("the EC private key is not valid: {e}")))?;
    // aws-lc remembers "no public key" from the parsed encoding and would re-export without it, so
    // rebuild the key from its scalar and (computed) public point to get one canonical encoding.
    let scalar = parsed
        .private_key()
        .as_be_bytes()
        .map_err(|_| CryptoError::Internal)?;
    let kp = EcdsaKeyPair::from_private_key_and_public_key(
        curve.signing(),
        scalar.as_ref(),
        parsed.public_key().as_ref(),
    )
    .map_err(|_| CryptoError::Internal)?;
    Ok((ec_pkcs8(&kp)?, kp))
}

/// 32-byte identifier: SHA-256 over a domain-separation label, the key id (length-prefixed) and the
/// canonical material. Show it as lowercase hex (64 chars) = AWS KeyMaterialId.
pub fn material_id(key_id: &str, canonical_material: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(MATERIAL_ID_LABEL);
    let len = u32::try_from(key_id.len()).unwrap_or(u32::MAX);
    ctx.update(&len.to_be_bytes());
    ctx.update(key_id.as_bytes());
    ctx.update(canonical_material);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generate_sizes_and_round_trip_through_canonicalize() {
        for (spec, len) in [
            (KeySpec::SYMMETRIC_DEFAULT, 32),
            (KeySpec::HMAC_224, 28),
            (KeySpec::HMAC_256, 32),
            (KeySpec::HMAC_384, 48),
            (KeySpec::HMAC_512, 64),
        ] {
            let m = generate(spec).unwrap();
            assert_eq!(m.len(), len, "{spec}");
            assert_eq!(*canonicalize(spec, &m).unwrap(), *m);
        }
        for spec in [
            KeySpec::RSA_2048,
            KeySpec::ECC_NIST_P256,
            KeySpec::ECC_NIST_P384,
            KeySpec::ECC_NIST_P521,
            KeySpec::ECC_SECG_P256K1,
        ] {
            let m = generate(spec).unwrap();
            // Generated material is already canonical.
            assert_eq!(*canonicalize(spec, &m).unwrap(), *m, "{spec}");
        }
        assert!(matches!(
            generate(KeySpec::SM2),
            Err(CryptoError::Unsupported(_))
        ));
        for spec in [
            KeySpec::SM2,
            KeySpec::ML_DSA_44,
            KeySpec::ML_DSA_65,
            KeySpec::ML_DSA_87,
            KeySpec::ECC_NIST_EDWARDS25519,
        ] {
            assert!(!importable(spec) || spec == KeySpec::SM2);
            assert!(matches!(
                canonicalize(spec, b"x"),
                Err(CryptoError::Unsupported(_))
            ));
        }
        // Generated Ed25519 and ML-DSA material is PKCS#8 that aws-lc reads back as that spec.
        for spec in [
            KeySpec::ECC_NIST_EDWARDS25519,
            KeySpec::ML_DSA_44,
            KeySpec::ML_DSA_65,
            KeySpec::ML_DSA_87,
        ] {
            let m = generate(spec).unwrap();
            let info = der::pkcs8(&m).unwrap();
            if spec == KeySpec::ECC_NIST_EDWARDS25519 {
                assert_eq!(info.algorithm, der::OID_ED25519);
            }
            assert!(
                crate::asymmetric::PrivateKey::from_pkcs8(spec, &m).is_ok(),
                "{spec}"
            );
            assert_ne!(*generate(spec).unwrap(), *m);
        }
    }

    #[test]
    fn raw_length_limits() {
        let e = canonicalize(KeySpec::SYMMETRIC_DEFAULT, &[0; 31]).unwrap_err();
        assert!(e.to_string().contains("32 bytes"), "{e}");
        assert!(canonicalize(KeySpec::SYMMETRIC_DEFAULT, &[0; 33]).is_err());
        assert!(canonicalize(KeySpec::HMAC_256, &[0; 31]).is_err());
        assert!(canonicalize(KeySpec::HMAC_256, &[0; 32]).is_ok());
        assert!(canonicalize(KeySpec::HMAC_256, &[0; 128]).is_ok());
        assert!(canonicalize(KeySpec::HMAC_256, &[0; 129]).is_err());
        assert!(canonicalize(KeySpec::HMAC_512, &[0; 63]).is_err());
        assert!(canonicalize(KeySpec::HMAC_224, &[0; 28]).is_ok());
    }

    #[test]
    fn wrong_spec_and_garbage() {
        let p256 = generate(KeySpec::ECC_NIST_P256).unwrap();
        let e = canonicalize(KeySpec::ECC_NIST_P384, &p256).unwrap_err();
        assert!(e.to_string().contains("P-256"), "{e}");
        let e = canonicalize(KeySpec::RSA_2048, &p256).unwrap_err();
        assert!(e.to_string().contains("EC key"), "{e}");
        let k1 = generate(KeySpec::ECC_SECG_P256K1).unwrap();
        assert!(canonicalize(KeySpec::ECC_NIST_P256, &k1).is_err());
        let rsa = generate(KeySpec::RSA_2048).unwrap();
        let e = canonicalize(KeySpec::RSA_3072, &rsa).unwrap_err();
        assert_eq!(
            e.to_string(),
            "RSA key is 2048 bits but the key spec is RSA_3072"
        );
        assert!(canonicalize(KeySpec::ECC_NIST_P256, &rsa).is_err());
        for spec in [KeySpec::RSA_2048, KeySpec::ECC_NIST_P256] {
            assert!(matches!(
                canonicalize(spec, b""),
                Err(CryptoError::InvalidMaterial(_))
            ));
            assert!(matches!(
                canonicalize(spec, &[0x30, 0x03, 2, 1, 0]),
                Err(CryptoError::InvalidMaterial(_))
            ));
            for n in 0..p256.len() {
                assert!(canonicalize(spec, &p256[..n]).is_err());
            }
        }
        // Flipping bytes inside the private key must never panic.
        for i in 0..rsa.len() {
            let mut t = rsa.to_vec();
            t[i] ^= 0x5A;
            let _ = canonicalize(KeySpec::RSA_2048, &t);
        }
    }

    #[test]
    fn openssl_keys_with_and_without_public_key_canonicalize_equal() {
        use crate::testutil::{openssl, openssl_pkcs8};
        let dir = tempfile::tempdir().unwrap();
        for (curve, spec) in [
            ("P-256", KeySpec::ECC_NIST_P256),
            ("P-384", KeySpec::ECC_NIST_P384),
            ("P-521", KeySpec::ECC_NIST_P521),
            ("secp256k1", KeySpec::ECC_SECG_P256K1),
        ] {
            let curve_opt = format!("ec_paramgen_curve:{curve}");
            let full = openssl_pkcs8(dir.path(), &["-algorithm", "EC", "-pkeyopt", &curve_opt]);
            let pem = dir.path().join("genpkey.pem");
            let np = dir.path().join("np.pem");
            let (pem, np) = (pem.to_str().unwrap(), np.to_str().unwrap());
            openssl(&["ec", "-in", pem, "-no_public", "-out", np]);
            let bare = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", np, "-outform", "DER"]);
            assert!(bare.len() < full.len(), "{spec}");
            let a = canonicalize(spec, &full).unwrap();
            let b = canonicalize(spec, &bare).unwrap();
            assert_eq!(*a, *b, "{spec}");
            assert_eq!(material_id("k", &a), material_id("k", &b));
        }
        let explicit = openssl_pkcs8(
            dir.path(),
            &[
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-pkeyopt",
                "ec_param_enc:explicit",
            ],
        );
        let e = canonicalize(KeySpec::ECC_NIST_P256, &explicit).unwrap_err();
        assert!(e.to_string().contains("explicit"), "{e}");
    }

    #[test]
    fn openssl_rsa_keys() {
        use crate::testutil::openssl_pkcs8;
        let dir = tempfile::tempdir().unwrap();
        let rsa = openssl_pkcs8(
            dir.path(),
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        );
        let c = canonicalize(KeySpec::RSA_2048, &rsa).unwrap();
        assert_eq!(*canonicalize(KeySpec::RSA_2048, &c).unwrap(), *c);
        let e = canonicalize(KeySpec::RSA_4096, &rsa).unwrap_err();
        assert_eq!(
            e.to_string(),
            "RSA key is 2048 bits but the key spec is RSA_4096"
        );
        let multi = openssl_pkcs8(
            dir.path(),
            &[
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-pkeyopt",
                "rsa_keygen_primes:3",
            ],
        );
        let e = canonicalize(KeySpec::RSA_2048, &multi).unwrap_err();
        assert!(e.to_string().contains("multi-prime"), "{e}");
        let small = openssl_pkcs8(
            dir.path(),
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        );
        assert!(matches!(
            canonicalize(KeySpec::RSA_2048, &small),
            Err(CryptoError::InvalidMaterial(_))
        ));
        let pss = openssl_pkcs8(
            dir.path(),
            &["-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048"],
        );
        let e = canonicalize(KeySpec::RSA_2048, &pss).unwrap_err();
        assert!(e.to_string().contains("RSASSA-PSS"), "{e}");
    }

    #[test]
    fn material_id_is_bound_to_key_and_material() {
        let a = material_id("key-1", b"material");
        assert_eq!(a, material_id("key-1", b"material"));
        assert_ne!(a, material_id("key-2", b"material"));
        assert_ne!(a, material_id("key-1", b"materiaL"));
        // Length prefix: moving a byte between key id and material changes the id.
        assert_ne!(material_id("key-1m", b"aterial"), a);
        assert_eq!(hex::encode(a).len(), 64);
    }

    #[test]
    fn zero_block_padding_after_pkcs8_is_accepted_and_canonical() {
        for spec in [KeySpec::ECC_NIST_P256, KeySpec::RSA_2048] {
            let m = generate(spec).unwrap();
            let canonical = canonicalize(spec, &m).unwrap();
            for pad in 1..8 {
                let mut padded = m.to_vec();
                padded.extend(std::iter::repeat_n(0u8, pad));
                assert_eq!(
                    canonicalize(spec, &padded).unwrap().as_slice(),
                    canonical.as_slice()
                );
            }
            let mut eight = m.to_vec();
            eight.extend([0u8; 8]);
            assert!(
                canonicalize(spec, &eight).is_err(),
                "8 zero bytes are not block padding"
            );
            let mut junk = m.to_vec();
            junk.push(1);
            assert!(
                canonicalize(spec, &junk).is_err(),
                "non-zero trailing bytes are refused"
            );
        }
    }
}
