//! A minimal, non-panicking DER reader: just enough to classify private keys (PKCS#8, PKCS#1, SEC1)
//! and give precise error messages before handing the bytes to aws-lc.

/// DER tag of INTEGER.
pub(crate) const INTEGER: u8 = 0x02;
/// DER tag of OCTET STRING.
pub(crate) const OCTET_STRING: u8 = 0x04;
/// DER tag of OBJECT IDENTIFIER.
pub(crate) const OID: u8 = 0x06;
/// DER tag of SEQUENCE.
pub(crate) const SEQUENCE: u8 = 0x30;
/// Context-specific constructed [0].
pub(crate) const CONTEXT_0: u8 = 0xA0;

/// rsaEncryption (1.2.840.113549.1.1.1).
pub(crate) const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
/// id-RSASSA-PSS (1.2.840.113549.1.1.10).
pub(crate) const OID_RSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
/// id-ecPublicKey (1.2.840.10045.2.1).
pub(crate) const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// id-Ed25519 (1.3.101.112).
pub(crate) const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];
/// prime256v1 / P-256 (1.2.840.10045.3.1.7).
pub(crate) const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// secp384r1 / P-384 (1.3.132.0.34).
pub(crate) const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
/// secp521r1 / P-521 (1.3.132.0.35).
pub(crate) const OID_P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];
/// secp256k1 (1.3.132.0.10).
pub(crate) const OID_P256K1: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x0A];

/// One tag-length-value element.
#[derive(Clone, Copy)]
pub(crate) struct Tlv<'a> {
    /// The (single-byte) tag.
    pub tag: u8,
    /// The content octets.
    pub value: &'a [u8],
}

/// Read one DER element from the front of `input`; returns it and the rest. `None` if malformed.
pub(crate) fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None; // high tag numbers are never used in the structures we read
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    Some((Tlv { tag, value }, rest))
}

/// Read one element with the expected tag.
pub(crate) fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (tlv, rest) = read(input)?;
    (tlv.tag == tag).then_some((tlv.value, rest))
}

/// The contents of `input` if it is exactly one SEQUENCE with nothing after it.
pub(crate) fn sequence(input: &[u8]) -> Option<&[u8]> {
    match expect(input, SEQUENCE)? {
        (value, []) => Some(value),
        _ => None,
    }
}

/// BIT STRING.
pub(crate) const BIT_STRING: u8 = 0x03;

/// What an X.509 SubjectPublicKeyInfo says about its key.
pub(crate) struct SpkiInfo<'a> {
    /// The algorithm OID (content octets).
    pub algorithm: &'a [u8],
    /// The algorithm parameters element, if any.
    pub parameters: Option<Tlv<'a>>,
    /// The subjectPublicKey BIT STRING contents after the unused-bits octet.
    pub key: &'a [u8],
}

/// Parse a SubjectPublicKeyInfo (exactly one SEQUENCE, a whole-octet BIT STRING).
pub(crate) fn spki(input: &[u8]) -> Option<SpkiInfo<'_>> {
    let body = sequence(input)?;
    let (alg_id, body) = expect(body, SEQUENCE)?;
    let (algorithm, params) = expect(alg_id, OID)?;
    let parameters = match read(params) {
        Some((tlv, [])) => Some(tlv),
        _ if params.is_empty() => None,
        _ => return None,
    };
    let (bits, rest) = expect(body, BIT_STRING)?;
    if !rest.is_empty() {
        return None;
    }
    match bits.split_first() {
        Some((0, key)) => Some(SpkiInfo {
            algorithm,
            parameters,
            key,
        }),
        _ => None,
    }
}

/// What a PKCS#8 PrivateKeyInfo says about its key.
pub(crate) struct Pkcs8Info<'a> {
    /// The algorithm OID (content octets).
    pub algorithm: &'a [u8],
    /// The algorithm parameters element, if any.
    pub parameters: Option<Tlv<'a>>,
    /// The privateKey OCTET STRING contents (PKCS#1 RSAPrivateKey or SEC1 ECPrivateKey).
    pub private_key: &'a [u8],
}

/// Parse the outer layers of PKCS#8 PrivateKeyInfo (v1 or v2).
pub(crate) fn pkcs8(input: &[u8]) -> Option<Pkcs8Info<'_>> {
    let body = sequence(input)?;
    let (version, body) = expect(body, INTEGER)?;
    if version != [0] && version != [1] {
        return None;
    }
    let (alg_id, body) = expect(body, SEQUENCE)?;
    let (algorithm, params) = expect(alg_id, OID)?;
    let parameters = match read(params) {
        Some((tlv, [])) => Some(tlv),
        _ if params.is_empty() => None,
        _ => return None,
    };
    let (private_key, _attributes_and_public_key) = expect(body, OCTET_STRING)?;
    Some(Pkcs8Info {
        algorithm,
        parameters,
        private_key,
    })
}

/// The version INTEGER of a PKCS#1 RSAPrivateKey (0 = two primes, 1 = multi-prime).
pub(crate) fn pkcs1_version(input: &[u8]) -> Option<&[u8]> {
    let body = sequence(input)?;
    let (version, _) = expect(body, INTEGER)?;
    Some(version)
}

/// The modulus size in bits of a PKCS#1 RSAPrivateKey.
pub(crate) fn pkcs1_modulus_bits(input: &[u8]) -> Option<usize> {
    let body = sequence(input)?;
    let (_version, body) = expect(body, INTEGER)?;
    let (modulus, _) = expect(body, INTEGER)?;
    integer_bits(modulus)
}

/// The bit length of a non-negative DER INTEGER's content octets.
fn integer_bits(value: &[u8]) -> Option<usize> {
    let first = value.iter().position(|&b| b != 0)?;
    let top = value[first];
    Some((value.len() - first - 1) * 8 + (8 - top.leading_zeros() as usize))
}

/// Whether `input` has the shape of a PKCS#8 EncryptedPrivateKeyInfo
/// (SEQUENCE { AlgorithmIdentifier, OCTET STRING }).
pub(crate) fn is_encrypted_pkcs8(input: &[u8]) -> bool {
    let Some(body) = sequence(input) else {
        return false;
    };
    let Some((alg_id, rest)) = expect(body, SEQUENCE) else {
        return false;
    };
    expect(alg_id, OID).is_some() && matches!(expect(rest, OCTET_STRING), Some((_, [])))
}

/// The curve OID named in a SEC1 ECPrivateKey's `[0] parameters`, if present and a named curve.
/// `Some(None)` if the structure parses but names no curve (or uses explicit parameters).
pub(crate) fn sec1_curve(input: &[u8]) -> Option<Option<&[u8]>> {
    let body = sequence(input)?;
    let (version, body) = expect(body, INTEGER)?;
    if version != [1] {
        return None;
    }
    let (_key, mut body) = expect(body, OCTET_STRING)?;
    while let Some((tlv, rest)) = read(body) {
        if tlv.tag == CONTEXT_0 {
            return Some(expect(tlv.value, OID).map(|(oid, _)| oid));
        }
        body = rest;
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_short_and_long_lengths_and_rejects_truncation() {
        let (tlv, rest) = read(&[0x04, 0x02, 0xAA, 0xBB, 0x01]).unwrap();
        assert_eq!(
            (tlv.tag, tlv.value, rest),
            (0x04, &[0xAA, 0xBB][..], &[0x01][..])
        );
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        assert_eq!(read(&long).unwrap().0.value.len(), 256);
        assert!(read(&long[..100]).is_none());
        assert!(read(&[0x04]).is_none());
        assert!(read(&[0x04, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(read(&[0x1F, 0x01, 0x00]).is_none());
        assert!(read(&[]).is_none());
    }

    #[test]
    fn integer_bit_lengths() {
        assert_eq!(integer_bits(&[0x00, 0x80, 0x00]), Some(16));
        assert_eq!(integer_bits(&[0x01]), Some(1));
        assert_eq!(integer_bits(&[0x7F, 0xFF]), Some(15));
        assert_eq!(integer_bits(&[0x00]), None);
        assert_eq!(integer_bits(&[]), None);
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut x: u32 = 12345;
        for len in 0..200 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = pkcs8(&data);
            let _ = sec1_curve(&data);
            let _ = pkcs1_version(&data);
            let _ = pkcs1_modulus_bits(&data);
            let _ = is_encrypted_pkcs8(&data);
        }
    }
}
