//! RSA and ECC private-key operations (signing; RSA encryption).

use keyferry_types::{
    DataKeyPairSpec, EncryptionAlgorithmSpec, KeySpec, MessageType, SigningAlgorithmSpec,
};

use crate::{CryptoError, Secret};

/// An RSA or ECC private key of a known spec. Its `Debug` never shows the key.
pub struct PrivateKey {
    spec: KeySpec,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.spec)
    }
}

impl PrivateKey {
    /// Parse a PKCS#8 private key of the given spec.
    pub fn from_pkcs8(spec: KeySpec, pkcs8: &[u8]) -> Result<PrivateKey, CryptoError> {
        let _ = (spec, pkcs8);
        Err(CryptoError::Internal)
    }

    /// X.509 SubjectPublicKeyInfo DER (what GetPublicKey returns).
    pub fn public_key_der(&self) -> Vec<u8> {
        Vec::new()
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
        let _ = (alg, message, message_type);
        Err(CryptoError::Internal)
    }

    /// RSAES_OAEP_SHA_1 / _SHA_256 (MGF1 same hash, empty label). InvalidCiphertext on failure.
    pub fn decrypt(
        &self,
        alg: EncryptionAlgorithmSpec,
        ciphertext: &[u8],
    ) -> Result<Secret, CryptoError> {
        let _ = (alg, ciphertext);
        Err(CryptoError::Internal)
    }
}

/// Ok(false) when the signature does not verify (including malformed signatures).
pub fn verify(
    spec: KeySpec,
    public_key_der: &[u8],
    alg: SigningAlgorithmSpec,
    message: &[u8],
    message_type: MessageType,
    signature: &[u8],
) -> Result<bool, CryptoError> {
    let _ = (spec, public_key_der, alg, message, message_type, signature);
    Err(CryptoError::Internal)
}

/// RSA-OAEP encrypt with a public key; InvalidInput if the plaintext is too long.
pub fn encrypt(
    spec: KeySpec,
    public_key_der: &[u8],
    alg: EncryptionAlgorithmSpec,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let _ = (spec, public_key_der, alg, plaintext);
    Err(CryptoError::Internal)
}

/// Algorithms AWS lists for a spec (DescribeKey), in AWS order.
pub fn signing_algorithms(spec: KeySpec) -> &'static [SigningAlgorithmSpec] {
    let _ = spec;
    &[]
}

/// RSA_*: [RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256]; others empty.
pub fn encryption_algorithms(spec: KeySpec) -> &'static [EncryptionAlgorithmSpec] {
    let _ = spec;
    &[]
}

/// GenerateDataKeyPair: returns (private key PKCS#8 DER, public key SPKI DER).
/// ECC_NIST_EDWARDS25519 and SM2 → Unsupported.
pub fn generate_data_key_pair(spec: DataKeyPairSpec) -> Result<(Secret, Vec<u8>), CryptoError> {
    let _ = spec;
    Err(CryptoError::Internal)
}
