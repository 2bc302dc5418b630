//! Import wrapping (GetParametersForImport / ImportKeyMaterial), both the server (unwrap) and
//! client (wrap) sides.

use keyferry_types::{AlgorithmSpec, WrappingKeySpec};

use crate::{CryptoError, Secret};

/// An RSA wrapping key pair (private key for unwrapping). Its `Debug` never shows the key.
pub struct WrappingKeyPair {
    spec: WrappingKeySpec,
}

impl std::fmt::Debug for WrappingKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappingKeyPair({})", self.spec)
    }
}

impl WrappingKeyPair {
    /// A fresh RSA_2048/3072/4096 wrapping key pair; SM2 → Unsupported.
    pub fn generate(spec: WrappingKeySpec) -> Result<WrappingKeyPair, CryptoError> {
        let _ = spec;
        Err(CryptoError::Internal)
    }

    /// Load a wrapping key pair from PKCS#8 DER.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<WrappingKeyPair, CryptoError> {
        let _ = pkcs8;
        Err(CryptoError::Internal)
    }

    /// The private key as PKCS#8 v1 DER.
    pub fn to_pkcs8(&self) -> Result<Secret, CryptoError> {
        Err(CryptoError::Internal)
    }

    /// The public key as SPKI DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        Vec::new()
    }

    /// The wrapping key spec (RSA size).
    pub fn spec(&self) -> WrappingKeySpec {
        self.spec
    }
}

/// Server side: unwrap imported key material (see module docs for the algorithms).
pub fn unwrap(
    alg: AlgorithmSpec,
    key: &WrappingKeyPair,
    encrypted: &[u8],
) -> Result<Secret, CryptoError> {
    let _ = (alg, key, encrypted);
    Err(CryptoError::Internal)
}

/// Client side, the exact inverse of [`unwrap`].
pub fn wrap(
    alg: AlgorithmSpec,
    wrapping_public_key_der: &[u8],
    material: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let _ = (alg, wrapping_public_key_der, material);
    Err(CryptoError::Internal)
}

/// Largest material RSAES_OAEP_* can carry with this key size: k - 2*hLen - 2.
pub fn max_oaep_payload(alg: AlgorithmSpec, spec: WrappingKeySpec) -> usize {
    let _ = (alg, spec);
    0
}

/// The public key's modulus and public exponent (big-endian), for creating the key object in a PKCS#11 token.
pub fn rsa_public_components(public_key_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let _ = public_key_der;
    Err(CryptoError::Internal)
}

/// RSA key size in bytes of an SPKI DER RSA key.
pub fn rsa_public_key_len(public_key_der: &[u8]) -> Result<usize, CryptoError> {
    let _ = public_key_der;
    Err(CryptoError::Internal)
}

/// AES-KWP (RFC 5649) wrap with a 32-byte KEK.
pub fn kwp_wrap(kek: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let _ = (kek, data);
    Err(CryptoError::Internal)
}

/// AES-KWP (RFC 5649) unwrap with a 32-byte KEK.
pub fn kwp_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Secret, CryptoError> {
    let _ = (kek, wrapped);
    Err(CryptoError::Internal)
}
