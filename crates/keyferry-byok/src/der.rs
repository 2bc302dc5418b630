//! Minimal DER encoding for rebuilding a token key's SubjectPublicKeyInfo from its PKCS#11
//! attributes (CKA_MODULUS/CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS/CKA_EC_POINT). Encoding only public
//! values; no cryptography happens here.

use keyferry_types::KeySpec;

use crate::error::{Error, ErrorKind, Result};

const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// DER OID of NIST P-256 (prime256v1), as CKA_EC_PARAMS holds it.
pub const OID_P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// DER OID of NIST P-384 (secp384r1).
pub const OID_P384: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];
/// DER OID of NIST P-521 (secp521r1).
pub const OID_P521: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23];
/// DER OID of secp256k1.
pub const OID_SECP256K1: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x0A];

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

fn integer(be: &[u8]) -> Vec<u8> {
    let skip = be.iter().take_while(|b| **b == 0).count();
    let mut v = Vec::with_capacity(be.len() + 1);
    match be.get(skip) {
        None => v.push(0),
        Some(first) => {
            if first & 0x80 != 0 {
                v.push(0);
            }
            v.extend_from_slice(&be[skip..]);
        }
    }
    tlv(0x02, &v)
}

fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(content.len() + 1);
    v.push(0);
    v.extend_from_slice(content);
    tlv(0x03, &v)
}

/// SubjectPublicKeyInfo DER of an RSA public key given big-endian modulus and exponent.
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut alg = OID_RSA_ENCRYPTION.to_vec();
    alg.extend_from_slice(&[0x05, 0x00]);
    let mut key = integer(modulus);
    key.extend_from_slice(&integer(exponent));
    let mut body = tlv(0x30, &alg);
    body.extend_from_slice(&bit_string(&tlv(0x30, &key)));
    tlv(0x30, &body)
}

/// The key spec of an EC key from its CKA_EC_PARAMS (a DER named-curve OID).
pub fn ec_spec_from_params(params: &[u8]) -> Result<KeySpec> {
    match params {
        p if p == OID_P256 => Ok(KeySpec::ECC_NIST_P256),
        p if p == OID_P384 => Ok(KeySpec::ECC_NIST_P384),
        p if p == OID_P521 => Ok(KeySpec::ECC_NIST_P521),
        p if p == OID_SECP256K1 => Ok(KeySpec::ECC_SECG_P256K1),
        _ => Err(Error::new(
            ErrorKind::Material,
            format!(
                "the EC key's curve (CKA_EC_PARAMS {}) is not one KMS imports; supported: P-256, P-384, P-521, secp256k1",
                hex::encode(params)
            ),
        )),
    }
}

fn coordinate_len(spec: KeySpec) -> usize {
    match spec {
        KeySpec::ECC_NIST_P384 => 48,
        KeySpec::ECC_NIST_P521 => 66,
        _ => 32,
    }
}

/// The raw EC point from CKA_EC_POINT, which PKCS#11 defines as a DER OCTET STRING (some tokens
/// return the bare point instead; both are accepted).
pub fn ec_point_from_attribute(spec: KeySpec, attr: &[u8]) -> Result<Vec<u8>> {
    let c = coordinate_len(spec);
    let bare_ok = |p: &[u8]| {
        (p.len() == 2 * c + 1 && p[0] == 0x04) || (p.len() == c + 1 && (p[0] == 2 || p[0] == 3))
    };
    if bare_ok(attr) {
        return Ok(attr.to_vec());
    }
    // DER OCTET STRING: 0x04 len content
    if attr.first() == Some(&0x04) && attr.len() >= 2 {
        let (len, hdr) = if attr[1] < 0x80 {
            (attr[1] as usize, 2)
        } else if attr[1] == 0x81 && attr.len() >= 3 {
            (attr[2] as usize, 3)
        } else {
            (usize::MAX, 0)
        };
        if hdr > 0 && attr.len() == hdr + len && bare_ok(&attr[hdr..]) {
            return Ok(attr[hdr..].to_vec());
        }
    }
    Err(Error::new(
        ErrorKind::Internal,
        "the token returned a CKA_EC_POINT that is neither a DER OCTET STRING nor a bare point for the key's curve",
    ))
}

/// SubjectPublicKeyInfo DER of an EC public key from CKA_EC_PARAMS and the raw point.
pub fn ec_spki(params: &[u8], point: &[u8]) -> Vec<u8> {
    let mut alg = OID_EC_PUBLIC_KEY.to_vec();
    alg.extend_from_slice(params);
    let mut body = tlv(0x30, &alg);
    body.extend_from_slice(&bit_string(point));
    tlv(0x30, &body)
}

/// A PKCS#8 key as SoftHSM2 wraps it with CKM_AES_KEY_WRAP_PAD, without its padding.
///
/// SoftHSM2 2.6 zero-pads a private key's PKCS#8 DER to a multiple of 8 bytes *before* the RFC 5649
/// wrap, so the unwrapped bytes are the DER followed by up to 7 zero bytes (the RFC 5649 length
/// field counts them). When `bytes` is one complete DER SEQUENCE followed only by fewer than 8
/// zero bytes, the SEQUENCE alone is returned; otherwise `bytes` unchanged.
pub fn strip_block_zero_padding(bytes: &[u8]) -> &[u8] {
    let Some(len) = der_sequence_len(bytes) else {
        return bytes;
    };
    match bytes.get(len..) {
        Some(rest) if !rest.is_empty() && rest.len() < 8 && rest.iter().all(|b| *b == 0) => {
            &bytes[..len]
        }
        _ => bytes,
    }
}

/// Total length (header + content) of the DER SEQUENCE at the start of `bytes`.
fn der_sequence_len(bytes: &[u8]) -> Option<usize> {
    if bytes.first() != Some(&0x30) {
        return None;
    }
    let first = *bytes.get(1)?;
    if first < 0x80 {
        return Some(2 + first as usize);
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for b in bytes.get(2..2 + n)? {
        len = (len << 8) | *b as usize;
    }
    Some(2 + n + len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rsa_spki_matches_openssl_probe_key() {
        let der = include_bytes!("../data/probe-rsa2048-public.der");
        // modulus starts after the fixed 2048-bit SPKI header; rebuild and compare.
        let (n, e) = keyferry_crypto::wrap::rsa_public_components(der).unwrap();
        assert_eq!(rsa_spki(&n, &e), der.to_vec());
    }

    #[test]
    fn ec_point_forms() {
        let mut point = vec![4u8];
        point.extend_from_slice(&[0x3f; 64]);
        assert_eq!(
            ec_point_from_attribute(KeySpec::ECC_NIST_P256, &point).unwrap(),
            point
        );
        let mut wrapped = vec![0x04, 65];
        wrapped.extend_from_slice(&point);
        assert_eq!(
            ec_point_from_attribute(KeySpec::ECC_NIST_P256, &wrapped).unwrap(),
            point
        );
        assert!(ec_point_from_attribute(KeySpec::ECC_NIST_P384, &wrapped).is_err());
        let mut p521 = vec![4u8];
        p521.extend_from_slice(&[1; 132]);
        let mut w521 = vec![0x04, 0x81, 133];
        w521.extend_from_slice(&p521);
        assert_eq!(
            ec_point_from_attribute(KeySpec::ECC_NIST_P521, &w521).unwrap(),
            p521
        );
    }

    #[test]
    fn strips_softhsm_padding_only() {
        let mut der = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        assert_eq!(strip_block_zero_padding(&der), &der[..]);
        let exact = der.clone();
        der.extend_from_slice(&[0, 0, 0]);
        assert_eq!(strip_block_zero_padding(&der), &exact[..]);
        der.push(1);
        assert_eq!(strip_block_zero_padding(&der), &der[..]);
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend_from_slice(&[5; 256]);
        let exact = long.clone();
        long.extend_from_slice(&[0; 4]);
        assert_eq!(strip_block_zero_padding(&long), &exact[..]);
        long.extend_from_slice(&[0; 4]);
        assert_eq!(strip_block_zero_padding(&long).len(), long.len());
        assert_eq!(strip_block_zero_padding(&[0x30, 0x85, 1]), &[0x30, 0x85, 1]);
        // RFC 5649 itself carries the exact length: no padding appears for data wrapped in software.
        let kek = [9u8; 32];
        let w = keyferry_crypto::wrap::kwp_wrap(&kek, &[1u8; 67]).unwrap();
        assert_eq!(
            keyferry_crypto::wrap::kwp_unwrap(&kek, &w).unwrap().len(),
            67
        );
    }

    #[test]
    fn curves() {
        assert_eq!(
            ec_spec_from_params(OID_P384).unwrap(),
            KeySpec::ECC_NIST_P384
        );
        assert_eq!(
            ec_spec_from_params(&[6, 1, 1]).unwrap_err().kind(),
            ErrorKind::Material
        );
    }
}
