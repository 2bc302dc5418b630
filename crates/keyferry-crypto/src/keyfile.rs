//! Reading private key files for the BYOK client.

use keyferry_types::KeySpec;

use crate::{CryptoError, Secret};

/// Accept PKCS#8 DER, PEM "PRIVATE KEY", PEM "RSA PRIVATE KEY" (PKCS#1), PEM "EC PRIVATE KEY" (SEC1),
/// and DER PKCS#1/SEC1; return PKCS#8 v1 DER and the KeySpec it fits (RSA_2048/3072/4096, ECC_*).
/// InvalidMaterial with a helpful message otherwise.
pub fn private_key_to_pkcs8(input: &[u8]) -> Result<(Secret, KeySpec), CryptoError> {
    let _ = input;
    Err(CryptoError::Internal)
}

/// The public key (SPKI DER) of a PKCS#8 key of the given spec.
pub fn public_key_of(spec: KeySpec, pkcs8: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let _ = (spec, pkcs8);
    Err(CryptoError::Internal)
}
