//! KMS symmetric ciphertext blobs: our own versioned, authenticated format.
//!
//! Blob format v1 (also in `BLOB-FORMAT.md`):
//!
//! ```text
//! 0x4B 0x46 ("KF") || 0x01 (version) || key-id length (u8) || key id (ASCII, 1..=255 bytes)
//! || material id (32 bytes) || nonce (12 random bytes) || AES-256-GCM ciphertext || tag (16 bytes)
//! ```
//!
//! The GCM additional data is every header byte (magic through nonce) followed by
//! [`context_aad`] of the encryption context, so the key id, material id and context are all
//! authenticated. The overhead is `3 + 1 + len(key id) + 32 + 12 + 16` bytes (≤ 319), so 4096 bytes
//! of plaintext always fit in 6144 bytes of ciphertext.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};

use crate::{CryptoError, Secret};

const MAGIC: [u8; 2] = [0x4B, 0x46];
const VERSION: u8 = 0x01;
const TAG_LEN: usize = 16;
const MATERIAL_ID_LEN: usize = 32;

/// An AES-256-GCM key made from 32 bytes of key material. Its `Debug` never shows the key.
pub struct SymmetricKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

impl SymmetricKey {
    /// A key from 32 bytes of material; `InvalidMaterial` otherwise.
    pub fn new(material: &[u8]) -> Result<SymmetricKey, CryptoError> {
        if material.len() != 32 {
            return Err(CryptoError::InvalidMaterial(format!(
                "symmetric key material must be 32 bytes, got {}",
                material.len()
            )));
        }
        Ok(SymmetricKey {
            key: crate::seal::gcm_key(material)?,
        })
    }
}

fn push_len_prefixed(out: &mut Vec<u8>, s: &str) {
    // Strings longer than 4 GiB cannot arrive in a request; saturate rather than panic.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Canonical, unambiguous encoding of an encryption context (sorted by key, each key and value
/// length-prefixed u32 BE). `None` and an empty map encode the same (empty).
pub fn context_aad(context: Option<&BTreeMap<String, String>>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(map) = context {
        for (k, v) in map {
            push_len_prefixed(&mut out, k);
            push_len_prefixed(&mut out, v);
        }
    }
    out
}

/// A parsed header: the key id, material id, nonce and where the header ends.
struct Header<'a> {
    key_id: &'a str,
    material_id: [u8; 32],
    nonce: [u8; NONCE_LEN],
    len: usize,
}

fn parse(blob: &[u8]) -> Result<Header<'_>, CryptoError> {
    let bad = || CryptoError::InvalidCiphertext;
    if blob.len() < 4 || blob[0..2] != MAGIC || blob[2] != VERSION {
        return Err(bad());
    }
    let id_len = usize::from(blob[3]);
    let id_end = 4 + id_len;
    let mid_end = id_end + MATERIAL_ID_LEN;
    let header_end = mid_end + NONCE_LEN;
    if id_len == 0 || blob.len() < header_end + TAG_LEN {
        return Err(bad());
    }
    let id_bytes = blob.get(4..id_end).ok_or_else(bad)?;
    if !id_bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    let key_id = std::str::from_utf8(id_bytes).map_err(|_| bad())?;
    let mut material_id = [0u8; 32];
    material_id.copy_from_slice(blob.get(id_end..mid_end).ok_or_else(bad)?);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(blob.get(mid_end..header_end).ok_or_else(bad)?);
    Ok(Header {
        key_id,
        material_id,
        nonce,
        len: header_end,
    })
}

/// The key id and key material id named in a blob's header. InvalidCiphertext if not our format.
pub fn parse_header(blob: &[u8]) -> Result<(String, [u8; 32]), CryptoError> {
    let h = parse(blob)?;
    Ok((h.key_id.to_owned(), h.material_id))
}

/// Encrypt `plaintext` into a v1 blob naming `key_id` and `material_id`.
///
/// `key_id` must be 1..=255 printable ASCII bytes (`InvalidInput` otherwise).
pub fn encrypt(
    key: &SymmetricKey,
    key_id: &str,
    material_id: &[u8; 32],
    plaintext: &[u8],
    context_aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let id_len = u8::try_from(key_id.len())
        .ok()
        .filter(|n| *n > 0 && key_id.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            CryptoError::InvalidInput(
                "the key id must be 1 to 255 printable ASCII characters".into(),
            )
        })?;
    let nonce: [u8; NONCE_LEN] = crate::rng::nonce();
    let header_len = 4 + key_id.len() + MATERIAL_ID_LEN + NONCE_LEN;
    let mut out = Vec::with_capacity(header_len + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(id_len);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(material_id);
    out.extend_from_slice(&nonce);
    // The plaintext is sealed where it lands in the blob (no second buffer holding a copy).
    out.extend_from_slice(plaintext);
    let (header, body) = out.split_at_mut(header_len);
    let joined;
    let aad: &[u8] = if context_aad.is_empty() {
        header
    } else {
        joined = [&*header, context_aad].concat();
        &joined
    };
    let sealed = key.key.seal_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        body,
    );
    match sealed {
        Ok(tag) => {
            out.extend_from_slice(tag.as_ref());
            Ok(out)
        }
        Err(_) => {
            // The plaintext may still be there (a data key, for GenerateDataKey).
            zeroize::Zeroize::zeroize(&mut out);
            Err(CryptoError::Internal)
        }
    }
}

/// Authenticates header + context; InvalidCiphertext on any mismatch.
pub fn decrypt(key: &SymmetricKey, blob: &[u8], context_aad: &[u8]) -> Result<Secret, CryptoError> {
    let h = parse(blob)?;
    let aad = [&blob[..h.len], context_aad].concat();
    let mut body = Secret::new(blob[h.len..].to_vec());
    let len = key
        .key
        .open_in_place(
            Nonce::assume_unique_for_key(h.nonce),
            Aad::from(&aad),
            &mut body,
        )
        .map_err(|_| CryptoError::InvalidCiphertext)?
        .len();
    body.truncate(len);
    Ok(body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key() -> SymmetricKey {
        SymmetricKey::new(&crate::rng::random_bytes(32)).unwrap()
    }

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn round_trip_and_header() {
        let k = key();
        let mid = [9u8; 32];
        let c = ctx(&[("purpose", "test"), ("a", "b")]);
        let aad = context_aad(Some(&c));
        let blob = encrypt(
            &k,
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            &mid,
            b"hello",
            &aad,
        )
        .unwrap();
        assert_eq!(&blob[..3], &[0x4B, 0x46, 0x01]);
        assert_eq!(blob.len(), 4 + 36 + 32 + 12 + 5 + 16);
        let (id, m) = parse_header(&blob).unwrap();
        assert_eq!(id, "1234abcd-12ab-34cd-56ef-1234567890ab");
        assert_eq!(m, mid);
        assert_eq!(&decrypt(&k, &blob, &aad).unwrap()[..], b"hello");
        assert!(matches!(
            decrypt(&k, &blob, b""),
            Err(CryptoError::InvalidCiphertext)
        ));
        assert!(matches!(
            decrypt(&key(), &blob, &aad),
            Err(CryptoError::InvalidCiphertext)
        ));
    }

    #[test]
    fn size_limit_for_4096_bytes() {
        let k = key();
        let id = "a".repeat(255);
        let blob = encrypt(&k, &id, &[0u8; 32], &[1u8; 4096], &[]).unwrap();
        assert!(blob.len() <= 6144, "{}", blob.len());
        assert_eq!(decrypt(&k, &blob, &[]).unwrap().len(), 4096);
        assert!(matches!(
            encrypt(&k, &"a".repeat(256), &[0u8; 32], b"x", &[]),
            Err(CryptoError::InvalidInput(_))
        ));
        assert!(matches!(
            encrypt(&k, "", &[0u8; 32], b"x", &[]),
            Err(CryptoError::InvalidInput(_))
        ));
        assert!(matches!(
            encrypt(&k, "ké", &[0u8; 32], b"x", &[]),
            Err(CryptoError::InvalidInput(_))
        ));
    }

    #[test]
    fn context_encoding() {
        assert!(context_aad(None).is_empty());
        assert!(context_aad(Some(&BTreeMap::new())).is_empty());
        let enc = context_aad(Some(&ctx(&[("b", "2"), ("a", "1")])));
        assert_eq!(
            enc,
            [
                &[0, 0, 0, 1][..],
                b"a",
                &[0, 0, 0, 1],
                b"1",
                &[0, 0, 0, 1],
                b"b",
                &[0, 0, 0, 1],
                b"2"
            ]
            .concat()
        );
        // Unambiguous: moving bytes between key and value changes the encoding.
        assert_ne!(
            context_aad(Some(&ctx(&[("ab", "c")]))),
            context_aad(Some(&ctx(&[("a", "bc")])))
        );
    }

    #[test]
    fn tampered_truncated_and_garbage_never_panic() {
        let k = key();
        let aad = context_aad(Some(&ctx(&[("k", "v")])));
        let blob = encrypt(&k, "key-1", &[3u8; 32], b"some plaintext", &aad).unwrap();
        for i in 0..blob.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = blob.clone();
                t[i] ^= bit;
                assert!(matches!(
                    decrypt(&k, &t, &aad),
                    Err(CryptoError::InvalidCiphertext)
                ));
                let _ = parse_header(&t);
            }
        }
        for n in 0..blob.len() {
            assert!(matches!(
                decrypt(&k, &blob[..n], &aad),
                Err(CryptoError::InvalidCiphertext)
            ));
            let _ = parse_header(&blob[..n]);
        }
        let mut extended = blob.clone();
        extended.push(0);
        assert!(decrypt(&k, &extended, &aad).is_err());
        // Pseudo-random garbage, some of it with a valid-looking prefix.
        let mut state = 0x1234_5678_u32;
        for round in 0..2000 {
            let len = (round * 7) % 200;
            let mut g: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (state >> 16) as u8
                })
                .collect();
            if round % 2 == 0 && g.len() >= 3 {
                g[..3].copy_from_slice(&[0x4B, 0x46, 0x01]);
            }
            let _ = parse_header(&g);
            assert!(decrypt(&k, &g, &[]).is_err());
        }
        assert!(matches!(
            parse_header(b""),
            Err(CryptoError::InvalidCiphertext)
        ));
    }

    #[test]
    fn key_length_checked_and_debug_redacted() {
        assert!(matches!(
            SymmetricKey::new(&[0u8; 16]),
            Err(CryptoError::InvalidMaterial(_))
        ));
        assert_eq!(format!("{:?}", key()), "SymmetricKey(..)");
    }
}
