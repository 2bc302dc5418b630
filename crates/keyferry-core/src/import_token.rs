//! Import tokens: self-contained and sealed (AES-256-GCM under the root key's import-token
//! subkey), so any node sharing the root key and the database accepts them; nothing is stored.
//!
//! Plaintext layout (version 1): `0x01` ‖ wrapping algorithm (u8 index into `AlgorithmSpec::ALL`)
//! ‖ wrapping key spec (u8 index into `WrappingKeySpec::ALL`) ‖ expiry (i64 BE, epoch ms) ‖
//! key id length (u8) ‖ key id ‖ wrapping private key (PKCS#8 DER, the rest).
//! The AAD is the label `keyferry-import-token-v1`. Decisions (AWS leaves them open): a token
//! stays valid until it expires, may be used more than once, and a later GetParametersForImport
//! does not revoke earlier tokens.

use keyferry_crypto::seal::RootKey;
use keyferry_crypto::wrap::WrappingKeyPair;
use keyferry_types::{AlgorithmSpec, WrappingKeySpec};
use zeroize::Zeroizing;

use crate::KmsError;

const AAD: &[u8] = b"keyferry-import-token-v1";
const VERSION: u8 = 1;

/// What an import token carries.
pub(crate) struct ImportToken {
    pub key_id: String,
    pub algorithm: AlgorithmSpec,
    pub spec: WrappingKeySpec,
    pub expires_ms: i64,
    pub wrapping: WrappingKeyPair,
}

fn index_of<T: PartialEq>(all: &[T], v: &T) -> Result<u8, KmsError> {
    all.iter()
        .position(|x| x == v)
        .and_then(|i| u8::try_from(i).ok())
        .ok_or_else(|| KmsError::Internal("enum value out of range".into()))
}

pub(crate) fn seal_token(key: &RootKey, t: &ImportToken) -> Result<Vec<u8>, KmsError> {
    let pkcs8 = t
        .wrapping
        .to_pkcs8()
        .map_err(|e| KmsError::Internal(e.to_string()))?;
    let id_len =
        u8::try_from(t.key_id.len()).map_err(|_| KmsError::Internal("key id too long".into()))?;
    let mut plain = Zeroizing::new(Vec::with_capacity(12 + t.key_id.len() + pkcs8.len()));
    plain.push(VERSION);
    plain.push(index_of(AlgorithmSpec::ALL, &t.algorithm)?);
    plain.push(index_of(WrappingKeySpec::ALL, &t.spec)?);
    plain.extend_from_slice(&t.expires_ms.to_be_bytes());
    plain.push(id_len);
    plain.extend_from_slice(t.key_id.as_bytes());
    plain.extend_from_slice(&pkcs8);
    key.seal(&plain, AAD)
        .map_err(|e| KmsError::Internal(e.to_string()))
}

/// Open a token. Anything that is not a token of ours is `InvalidImportTokenException`.
pub(crate) fn open_token(key: &RootKey, sealed: &[u8]) -> Result<ImportToken, KmsError> {
    let invalid = || KmsError::InvalidImportToken("The import token is not valid.".into());
    let plain = key.open(sealed, AAD).map_err(|_| invalid())?;
    let p: &[u8] = &plain;
    if p.len() < 12 || p[0] != VERSION {
        return Err(invalid());
    }
    let algorithm = *AlgorithmSpec::ALL.get(p[1] as usize).ok_or_else(invalid)?;
    let spec = *WrappingKeySpec::ALL
        .get(p[2] as usize)
        .ok_or_else(invalid)?;
    let mut exp = [0u8; 8];
    exp.copy_from_slice(&p[3..11]);
    let id_len = p[11] as usize;
    let rest = &p[12..];
    if rest.len() < id_len {
        return Err(invalid());
    }
    let key_id = std::str::from_utf8(&rest[..id_len])
        .map_err(|_| invalid())?
        .to_string();
    let wrapping = WrappingKeyPair::from_pkcs8(&rest[id_len..]).map_err(|_| invalid())?;
    Ok(ImportToken {
        key_id,
        algorithm,
        spec,
        expires_ms: i64::from_be_bytes(exp),
        wrapping,
    })
}
