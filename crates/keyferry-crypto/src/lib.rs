//! All of Keyferry's cryptography, in one place, on aws-lc-rs (and ed25519-dalek for the one
//! scheme aws-lc-rs lacks, Ed25519ph).
//!
//! The key server (keyferry-core) and the BYOK import client (keyferry-byok) both call this crate,
//! so that every primitive, encoding and error mapping is written and reviewed exactly once.
//!
//! Modules:
//! - [`rng`]: random bytes.
//! - [`seal`]: at-rest protection of key material and import tokens under the root key (AES-256-GCM).
//! - [`symmetric`]: KMS symmetric ciphertext blobs (format in `BLOB-FORMAT.md`).
//! - [`material`]: key material generation, validation against a key spec, and material ids.
//! - [`mac`]: HMAC generate/verify.
//! - [`asymmetric`]: RSA/ECC/Ed25519/ML-DSA signing, RSA-OAEP encryption, ECDH key agreement,
//!   data key pairs.
//! - [`wrap`]: import wrapping (RSA-OAEP and RSA + AES-KWP hybrid), both sides.
//! - [`keyfile`]: reading private key files (PEM/DER, PKCS#8/PKCS#1/SEC1) for the BYOK client.

pub mod asymmetric;
mod der;
pub mod keyfile;
pub mod mac;
pub mod material;
mod pem;
pub mod rng;
pub mod seal;
pub mod symmetric;
#[cfg(test)]
mod testutil;
pub mod wrap;

/// SHA-256 of `data` (for identifiers and cache keys, never for secrets' storage).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A secret byte buffer that is zeroized when dropped.
pub type Secret = zeroize::Zeroizing<Vec<u8>>;

/// Errors of this crate. Messages never contain secret bytes.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Any parse or authentication failure of a blob or wrapped key.
    #[error("the ciphertext is not valid")]
    InvalidCiphertext,
    /// Key material does not fit the key spec (human-readable reason).
    #[error("{0}")]
    InvalidMaterial(String),
    /// Bad input, e.g. wrong digest length or plaintext too long for RSA-OAEP.
    #[error("{0}")]
    InvalidInput(String),
    /// Algorithm not valid for this key spec / wrapping combination.
    #[error("{0}")]
    Unsupported(String),
    /// A variant AWS offers that Keyferry does not implement (e.g. ML-DSA external mu).
    #[error("{0}")]
    NotImplemented(String),
    /// An unexpected failure inside the cryptographic library.
    #[error("internal cryptographic failure")]
    Internal,
}
