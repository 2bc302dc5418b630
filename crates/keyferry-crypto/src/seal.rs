//! At-rest protection of key material and import tokens under the root key (AES-256-GCM).
//!
//! Sealed format (version 1): `0x01` (version) || 12-byte random nonce || ciphertext || 16-byte tag.
//! The GCM additional data is the version byte followed by the caller's `aad`, so a sealed value
//! only opens in the context (e.g. key id and purpose) it was sealed for.
//!
//! Subkeys for separate purposes come from [`RootKey::derive`]: HKDF-SHA256 (RFC 5869) with the
//! salt `"keyferry root key derivation v1"`, the root key as input keying material and the purpose
//! label as info, 32 bytes of output.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;

use crate::{CryptoError, Secret};

const VERSION: u8 = 0x01;
const TAG_LEN: usize = 16;
const DERIVE_SALT: &[u8] = b"keyferry root key derivation v1";

/// The root key (or a subkey derived from it). Its `Debug` never shows the key.
pub struct RootKey {
    key: Secret,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(..)")
    }
}

/// Build an AES-256-GCM key from 32 bytes.
pub(crate) fn gcm_key(key: &[u8]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Internal)
}

impl RootKey {
    /// Length of a root key in bytes.
    pub const LEN: usize = 32;

    /// 32 fresh random bytes for a new root key.
    pub fn generate() -> Secret {
        crate::rng::random_bytes(Self::LEN)
    }

    /// A root key from exactly 32 bytes (`InvalidMaterial` otherwise).
    pub fn from_bytes(bytes: &[u8]) -> Result<RootKey, CryptoError> {
        if bytes.len() != Self::LEN {
            return Err(CryptoError::InvalidMaterial(format!(
                "the root key must be {} bytes, got {}",
                Self::LEN,
                bytes.len()
            )));
        }
        Ok(RootKey {
            key: Secret::new(bytes.to_vec()),
        })
    }

    /// An HKDF-SHA256 subkey for a purpose label.
    ///
    /// With a 32-byte output HKDF-Expand is a single HMAC block, `T(1) = HMAC(PRK, info || 0x01)`,
    /// computed here directly so the derivation cannot fail.
    pub fn derive(&self, purpose: &str) -> RootKey {
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, DERIVE_SALT), &self.key);
        let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()));
        ctx.update(purpose.as_bytes());
        ctx.update(&[0x01]);
        let okm = ctx.sign();
        RootKey {
            key: Secret::new(okm.as_ref().to_vec()),
        }
    }

    /// Seal `plaintext`, binding `aad`; returns `version || nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = gcm_key(&self.key)?;
        let mut nonce = [0u8; NONCE_LEN];
        crate::rng::fill(&mut nonce);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        let full_aad = [&[VERSION][..], aad].concat();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&full_aad),
            &mut body,
        )
        .map_err(|_| CryptoError::Internal)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Seal another root key under this one (the root-key rotation publishes the new root key
    /// this way to the nodes that hold the old one); its bytes never leave this crate.
    pub fn seal_root_key(&self, other: &RootKey, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal(&other.key, aad)
    }

    /// Open a root key sealed by [`RootKey::seal_root_key`].
    pub fn open_root_key(&self, sealed: &[u8], aad: &[u8]) -> Result<RootKey, CryptoError> {
        let bytes = self.open(sealed, aad)?;
        RootKey::from_bytes(&bytes).map_err(|_| CryptoError::InvalidCiphertext)
    }

    /// Open a sealed value; `InvalidCiphertext` on any failure (format, key, aad or tampering).
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Secret, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(CryptoError::InvalidCiphertext);
        }
        let key = gcm_key(&self.key)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let mut body = Secret::new(sealed[1 + NONCE_LEN..].to_vec());
        let full_aad = [&[VERSION][..], aad].concat();
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&full_aad),
                &mut body,
            )
            .map_err(|_| CryptoError::InvalidCiphertext)?
            .len();
        body.truncate(len);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_lc_rs::hkdf;

    fn root() -> RootKey {
        RootKey::from_bytes(&RootKey::generate()).unwrap()
    }

    #[test]
    fn round_trip_and_format() {
        let k = root();
        let sealed = k.seal(b"secret material", b"key-1").unwrap();
        assert_eq!(sealed.len(), 1 + 12 + 15 + 16);
        assert_eq!(sealed[0], 1);
        assert_eq!(&k.open(&sealed, b"key-1").unwrap()[..], b"secret material");
        // Fresh nonce per call.
        assert_ne!(sealed, k.seal(b"secret material", b"key-1").unwrap());
        // Empty plaintext works too.
        let e = k.seal(b"", b"").unwrap();
        assert!(k.open(&e, b"").unwrap().is_empty());
    }

    #[test]
    fn wrong_aad_key_or_tamper_fail() {
        let k = root();
        let sealed = k.seal(b"data", b"aad").unwrap();
        assert!(matches!(
            k.open(&sealed, b"other"),
            Err(CryptoError::InvalidCiphertext)
        ));
        assert!(matches!(
            root().open(&sealed, b"aad"),
            Err(CryptoError::InvalidCiphertext)
        ));
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(matches!(
                k.open(&t, b"aad"),
                Err(CryptoError::InvalidCiphertext)
            ));
        }
        for n in 0..sealed.len() {
            assert!(matches!(
                k.open(&sealed[..n], b"aad"),
                Err(CryptoError::InvalidCiphertext)
            ));
        }
    }

    #[test]
    fn a_sealed_root_key_opens_to_the_same_key() {
        let (a, b) = (root(), root());
        let sealed = a.seal_root_key(&b, b"next").unwrap();
        let b2 = a.open_root_key(&sealed, b"next").unwrap();
        assert_eq!(*b.key, *b2.key);
        assert!(b.open_root_key(&sealed, b"next").is_err());
        assert!(a.open_root_key(&sealed, b"other").is_err());
    }

    #[test]
    fn from_bytes_length() {
        assert!(matches!(
            RootKey::from_bytes(&[0u8; 31]),
            Err(CryptoError::InvalidMaterial(_))
        ));
        assert!(matches!(
            RootKey::from_bytes(&[0u8; 33]),
            Err(CryptoError::InvalidMaterial(_))
        ));
        assert_eq!(RootKey::generate().len(), 32);
        assert_eq!(format!("{:?}", root()), "RootKey(..)");
    }

    #[test]
    fn derive_matches_hkdf_and_separates_purposes() {
        let raw = [7u8; 32];
        let k = RootKey::from_bytes(&raw).unwrap();
        let a = k.derive("import-token");
        let b = k.derive("key-material");
        assert_ne!(*a.key, *b.key);
        assert_eq!(*a.key, *k.derive("import-token").key);
        // Cross-check against aws-lc's HKDF.
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, DERIVE_SALT).extract(&raw);
        let info = [b"import-token".as_slice()];
        let okm = prk.expand(&info, hkdf::HKDF_SHA256).unwrap();
        let mut expect = [0u8; 32];
        okm.fill(&mut expect).unwrap();
        assert_eq!(&a.key[..], &expect);
        // A value sealed under one subkey does not open under another.
        let s = a.seal(b"x", b"").unwrap();
        assert!(b.open(&s, b"").is_err());
        assert!(k.open(&s, b"").is_err());
    }
}
