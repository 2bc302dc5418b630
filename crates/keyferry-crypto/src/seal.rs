//! At-rest protection of key material and import tokens under the root key (AES-256-GCM).
//!
//! Sealed format: 1 version byte (0x01) || 12-byte random nonce || ciphertext || 16-byte tag.

use crate::{CryptoError, Secret};

/// The root key (or a subkey derived from it). Its `Debug` never shows the key.
pub struct RootKey {
    key: Secret,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(..)")
    }
}

impl RootKey {
    /// Length of a root key in bytes.
    pub const LEN: usize = 32;

    /// 32 fresh random bytes for a new root key.
    pub fn generate() -> Secret {
        crate::rng::random_bytes(Self::LEN)
    }

    /// A root key from exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<RootKey, CryptoError> {
        Ok(RootKey {
            key: Secret::new(bytes.to_vec()),
        })
    }

    /// An HKDF-SHA256 subkey for a purpose label.
    pub fn derive(&self, purpose: &str) -> RootKey {
        let _ = purpose;
        RootKey {
            key: self.key.clone(),
        }
    }

    /// Seal `plaintext`, binding `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let _ = (plaintext, aad);
        Err(CryptoError::Internal)
    }

    /// Open a sealed value; `InvalidCiphertext` on any failure.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Secret, CryptoError> {
        let _ = (sealed, aad);
        Err(CryptoError::Internal)
    }
}
