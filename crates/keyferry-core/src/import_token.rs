//! Import tokens: self-contained and sealed (AES-256-GCM under the root key's import-token
//! subkey), so any node sharing the root key and the database accepts them; nothing is stored.
//!
//! Plaintext layout (version 1): `0x01` ‖ wrapping algorithm (u8 index into `AlgorithmSpec::ALL`)
//! ‖ wrapping key spec (u8 index into `WrappingKeySpec::ALL`) ‖ expiry (i64 BE, epoch ms) ‖
//! key id length (u8) ‖ key id ‖ wrapping private key (PKCS#8 DER, the rest).
//! The AAD is the label `keyferry-import-token-v1`. Decisions (AWS leaves them open): a token
//! stays valid until it expires, may be used more than once, and a later GetParametersForImport
//! does not revoke earlier tokens.
//!
//! [`TokenCache`] keeps the tokens this node issued or opened recently, parsed, keyed by the
//! SHA-256 of the sealed bytes: ImportKeyMaterial on the node that answered GetParametersForImport
//! skips opening the token and parsing its RSA key (the parse costs about as much as the unwrap).
//! A hit means the presented bytes are the bytes this node sealed or opened, so the result is the
//! same as opening them; every check after opening (key id, expiry) still runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

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
    pub wrapping: Arc<WrappingKeyPair>,
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
    let wrapping = Arc::new(WrappingKeyPair::from_pkcs8(&rest[id_len..]).map_err(|_| invalid())?);
    Ok(ImportToken {
        key_id,
        algorithm,
        spec,
        expires_ms: i64::from_be_bytes(exp),
        wrapping,
    })
}

/// Parsed tokens by SHA-256 of their sealed bytes; bounded, oldest out first, expired out first.
pub(crate) struct TokenCache {
    cap: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<[u8; 32], Arc<ImportToken>>,
    order: VecDeque<[u8; 32]>,
}

impl TokenCache {
    pub(crate) fn new(cap: usize) -> Self {
        TokenCache {
            cap,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The cache key of a sealed token (compute once, use for `get` and `insert`).
    pub(crate) fn digest(sealed: &[u8]) -> [u8; 32] {
        keyferry_crypto::sha256(sealed)
    }

    pub(crate) fn get(&self, digest: &[u8; 32]) -> Option<Arc<ImportToken>> {
        if self.cap == 0 {
            return None;
        }
        self.inner.lock().ok()?.map.get(digest).cloned()
    }

    /// Remember a token; drops expired entries and, over the bound, the oldest ones.
    pub(crate) fn insert(&self, digest: [u8; 32], token: Arc<ImportToken>, now_ms: i64) {
        if self.cap == 0 {
            return;
        }
        let Ok(mut c) = self.inner.lock() else {
            return;
        };
        if c.map.insert(digest, token).is_none() {
            c.order.push_back(digest);
        }
        while let Some(front) = c.order.front().copied() {
            let expired = c.map.get(&front).is_none_or(|t| t.expires_ms <= now_ms);
            if !expired && c.order.len() <= self.cap {
                break;
            }
            c.order.pop_front();
            c.map.remove(&front);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map(|c| c.map.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn token(expires_ms: i64) -> Arc<ImportToken> {
        Arc::new(ImportToken {
            key_id: "k".into(),
            algorithm: AlgorithmSpec::RSAES_OAEP_SHA_256,
            spec: WrappingKeySpec::RSA_2048,
            expires_ms,
            wrapping: Arc::new(WrappingKeyPair::generate(WrappingKeySpec::RSA_2048).unwrap()),
        })
    }

    #[test]
    fn bounded_oldest_out_and_exact_bytes_only() {
        let cache = TokenCache::new(2);
        let t = token(1_000);
        cache.insert(TokenCache::digest(b"one"), t.clone(), 0);
        cache.insert(TokenCache::digest(b"two"), t.clone(), 0);
        cache.insert(TokenCache::digest(b"three"), t.clone(), 0);
        assert_eq!(cache.len(), 2);
        assert!(
            cache.get(&TokenCache::digest(b"one")).is_none(),
            "the oldest entry goes first"
        );
        assert!(cache.get(&TokenCache::digest(b"two")).is_some());
        assert!(cache.get(&TokenCache::digest(b"three")).is_some());
        assert!(
            cache.get(&TokenCache::digest(b"thre")).is_none(),
            "only the exact sealed bytes hit"
        );
    }

    #[test]
    fn expired_entries_leave_on_insert() {
        let cache = TokenCache::new(10);
        cache.insert(TokenCache::digest(b"old"), token(100), 0);
        cache.insert(TokenCache::digest(b"new"), token(10_000), 500);
        assert!(cache.get(&TokenCache::digest(b"old")).is_none());
        assert!(cache.get(&TokenCache::digest(b"new")).is_some());
        let off = TokenCache::new(0);
        off.insert(TokenCache::digest(b"x"), token(10_000), 0);
        assert!(off.get(&TokenCache::digest(b"x")).is_none());
    }

    #[test]
    fn sealed_token_opens_to_what_was_sealed() {
        let root = RootKey::from_bytes(&[7u8; 32]).unwrap();
        let t = token(1_234);
        let sealed = seal_token(&root, &t).unwrap();
        let opened = open_token(&root, &sealed).unwrap();
        assert_eq!(opened.key_id, "k");
        assert_eq!(opened.expires_ms, 1_234);
        assert_eq!(
            opened.wrapping.public_key_der(),
            t.wrapping.public_key_der()
        );
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(matches!(
            open_token(&root, &bad),
            Err(KmsError::InvalidImportToken(_))
        ));
    }
}
