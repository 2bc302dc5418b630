//! KMS symmetric ciphertext blobs (our own versioned, authenticated format; see `BLOB-FORMAT.md`).

use std::collections::BTreeMap;

use crate::{CryptoError, Secret};

/// An AES-256-GCM key made from 32 bytes of key material. Its `Debug` never shows the key.
pub struct SymmetricKey {
    material: Secret,
}

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

impl SymmetricKey {
    /// A key from 32 bytes of material; `InvalidMaterial` otherwise.
    pub fn new(material: &[u8]) -> Result<SymmetricKey, CryptoError> {
        Ok(SymmetricKey {
            material: Secret::new(material.to_vec()),
        })
    }
}

/// Canonical, unambiguous encoding of an encryption context (sorted by key, each key and value
/// length-prefixed u32 BE). `None` and an empty map encode the same (empty).
pub fn context_aad(context: Option<&BTreeMap<String, String>>) -> Vec<u8> {
    let _ = context;
    Vec::new()
}

/// The key id and key material id named in a blob's header. InvalidCiphertext if not our format.
pub fn parse_header(blob: &[u8]) -> Result<(String, [u8; 32]), CryptoError> {
    let _ = blob;
    Err(CryptoError::Internal)
}

/// Encrypt `plaintext` into a v1 blob naming `key_id` and `material_id`.
pub fn encrypt(
    key: &SymmetricKey,
    key_id: &str,
    material_id: &[u8; 32],
    plaintext: &[u8],
    context_aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let _ = (&key.material, key_id, material_id, plaintext, context_aad);
    Err(CryptoError::Internal)
}

/// Authenticates header + context; InvalidCiphertext on any mismatch.
pub fn decrypt(key: &SymmetricKey, blob: &[u8], context_aad: &[u8]) -> Result<Secret, CryptoError> {
    let _ = (key, blob, context_aad);
    Err(CryptoError::Internal)
}
