//! Key material: generation, validation against a key spec, identity.

use keyferry_types::KeySpec;

use crate::{CryptoError, Secret};

/// Fresh material for a spec: SYMMETRIC_DEFAULT 32 random bytes; HMAC_224/256/384/512: 28/32/48/64
/// random bytes; RSA_2048/3072/4096 and ECC_NIST_P256/P384/P521, ECC_SECG_P256K1: PKCS#8 v1 DER.
/// Other specs (SM2, ML_DSA_*, ECC_NIST_EDWARDS25519): Err(Unsupported).
pub fn generate(spec: KeySpec) -> Result<Secret, CryptoError> {
    let _ = spec;
    Err(CryptoError::Internal)
}

/// Validate imported plaintext material against the spec and return its canonical form (used for
/// the material id and for "is this the same material" checks on re-import).
///
/// SYMMETRIC_DEFAULT exactly 32 bytes; HMAC_n between n/8 and 128 bytes (raw); RSA: PKCS#8
/// PrivateKeyInfo, two primes, modulus bits == spec → canonical = aws-lc re-encoded PKCS#8 v1;
/// ECC: PKCS#8 with named curve == spec's curve, with or without the public key → canonical =
/// aws-lc re-encoded PKCS#8 v1. Errors: InvalidMaterial("…human reason…").
pub fn canonicalize(spec: KeySpec, material: &[u8]) -> Result<Secret, CryptoError> {
    let _ = (spec, material);
    Err(CryptoError::Internal)
}

/// 32-byte identifier: SHA-256 over a domain-separation label, the key id (length-prefixed) and the
/// canonical material. Show it as lowercase hex (64 chars) = AWS KeyMaterialId.
pub fn material_id(key_id: &str, canonical_material: &[u8]) -> [u8; 32] {
    let _ = (key_id, canonical_material);
    [0u8; 32]
}
