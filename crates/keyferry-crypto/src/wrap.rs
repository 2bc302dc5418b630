//! Import wrapping (GetParametersForImport / ImportKeyMaterial), both the server (unwrap) and
//! client (wrap) sides.
//!
//! The wrapping algorithms are the ones AWS KMS offers for importing key material:
//!
//! - `RSAES_OAEP_SHA_1` / `RSAES_OAEP_SHA_256`: the material is RSA-OAEP encrypted directly under the
//!   wrapping public key (MGF1 with the same hash, empty label). The material must fit in one OAEP
//!   block, see [`max_oaep_payload`].
//! - `RSA_AES_KEY_WRAP_SHA_1` / `RSA_AES_KEY_WRAP_SHA_256`: a fresh AES-256 key is RSA-OAEP encrypted
//!   under the wrapping public key, and the material is wrapped under that AES key with AES key wrap
//!   with padding (RFC 5649, "KWP"). The wrapped blob is `OAEP(aes key) || KWP(material)`, the first
//!   part being exactly as long as the RSA modulus. This is what
//!   `openssl pkeyutl … rsa_padding_mode:oaep` followed by `openssl enc -id-aes256-wrap-pad -iv A65959A6`
//!   produces, and what PKCS#11 `CKM_RSA_AES_KEY_WRAP` produces.
//! - `RSAES_PKCS1_V1_5` and `SM2PKE` are not supported (`Unsupported`).
//!
//! Every failure to unwrap (wrong key, tampered or truncated blob, wrong inner key size) is reported
//! as the single, uninformative [`CryptoError::InvalidCiphertext`].

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use keyferry_types::{AlgorithmSpec, WrappingKeySpec};

use crate::{CryptoError, Secret};

/// Length of the ephemeral AES key used by `RSA_AES_KEY_WRAP_*`.
const AES_KEY_LEN: usize = 32;

/// An RSA wrapping key pair (private key for unwrapping). Its `Debug` never shows the key.
pub struct WrappingKeyPair {
    spec: WrappingKeySpec,
    key: PrivateDecryptingKey,
    public_der: Vec<u8>,
}

impl std::fmt::Debug for WrappingKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappingKeyPair({})", self.spec)
    }
}

impl WrappingKeyPair {
    /// A fresh RSA_2048/3072/4096 wrapping key pair; SM2 → Unsupported.
    pub fn generate(spec: WrappingKeySpec) -> Result<WrappingKeyPair, CryptoError> {
        let size = match spec {
            WrappingKeySpec::RSA_2048 => KeySize::Rsa2048,
            WrappingKeySpec::RSA_3072 => KeySize::Rsa3072,
            WrappingKeySpec::RSA_4096 => KeySize::Rsa4096,
            WrappingKeySpec::SM2 => {
                return Err(CryptoError::Unsupported(
                    "the SM2 wrapping key spec is not supported".into(),
                ));
            }
        };
        let key = PrivateDecryptingKey::generate(size).map_err(|_| CryptoError::Internal)?;
        Self::from_key(key)
    }

    /// Load a wrapping key pair from PKCS#8 DER (RSA 2048, 3072 or 4096 bits).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<WrappingKeyPair, CryptoError> {
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| {
            CryptoError::InvalidMaterial("the wrapping key is not an RSA PKCS#8 private key".into())
        })?;
        Self::from_key(key)
    }

    fn from_key(key: PrivateDecryptingKey) -> Result<WrappingKeyPair, CryptoError> {
        let spec = match key.key_size_bits() {
            2048 => WrappingKeySpec::RSA_2048,
            3072 => WrappingKeySpec::RSA_3072,
            4096 => WrappingKeySpec::RSA_4096,
            bits => {
                return Err(CryptoError::InvalidMaterial(format!(
                    "the wrapping key is {bits} bits; it must be 2048, 3072 or 4096 bits"
                )));
            }
        };
        let public_der = key
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::Internal)?
            .as_ref()
            .to_vec();
        Ok(WrappingKeyPair {
            spec,
            key,
            public_der,
        })
    }

    /// The private key as PKCS#8 v1 DER.
    pub fn to_pkcs8(&self) -> Result<Secret, CryptoError> {
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&self.key)
            .map_err(|_| CryptoError::Internal)?;
        Ok(Secret::new(der.as_ref().to_vec()))
    }

    /// The public key as SPKI DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.public_der.clone()
    }

    /// The wrapping key spec (RSA size).
    pub fn spec(&self) -> WrappingKeySpec {
        self.spec
    }
}

/// How an [`AlgorithmSpec`] wraps: directly with OAEP, or OAEP of an AES key + KWP.
#[derive(Clone, Copy)]
enum Scheme {
    Oaep(&'static OaepAlgorithm),
    RsaAes(&'static OaepAlgorithm),
}

fn scheme(alg: AlgorithmSpec) -> Result<Scheme, CryptoError> {
    match alg {
        AlgorithmSpec::RSAES_OAEP_SHA_1 => Ok(Scheme::Oaep(&OAEP_SHA1_MGF1SHA1)),
        AlgorithmSpec::RSAES_OAEP_SHA_256 => Ok(Scheme::Oaep(&OAEP_SHA256_MGF1SHA256)),
        AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1 => Ok(Scheme::RsaAes(&OAEP_SHA1_MGF1SHA1)),
        AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256 => Ok(Scheme::RsaAes(&OAEP_SHA256_MGF1SHA256)),
        AlgorithmSpec::RSAES_PKCS1_V1_5 | AlgorithmSpec::SM2PKE => Err(CryptoError::Unsupported(
            format!("the wrapping algorithm {alg} is not supported"),
        )),
    }
}

/// RSA-OAEP decrypt one block; any failure → InvalidCiphertext.
fn oaep_decrypt(
    key: &WrappingKeyPair,
    oaep: &'static OaepAlgorithm,
    block: &[u8],
) -> Result<Secret, CryptoError> {
    let decrypting =
        OaepPrivateDecryptingKey::new(key.key.clone()).map_err(|_| CryptoError::Internal)?;
    if block.len() != decrypting.key_size_bytes() {
        return Err(CryptoError::InvalidCiphertext);
    }
    let mut out = Secret::new(vec![0u8; decrypting.min_output_size()]);
    let len = decrypting
        .decrypt(oaep, block, &mut out, None)
        .map_err(|_| CryptoError::InvalidCiphertext)?
        .len();
    out.truncate(len);
    Ok(out)
}

/// Server side: unwrap imported key material (see the module docs for the algorithms).
///
/// RSAES_OAEP_SHA_1/256: RSA-OAEP decrypt. RSA_AES_KEY_WRAP_SHA_1/256: split at the modulus length,
/// OAEP-decrypt the head to a 32-byte AES key and KWP-unwrap the tail. RSAES_PKCS1_V1_5 / SM2PKE →
/// Unsupported; every other failure → InvalidCiphertext.
pub fn unwrap(
    alg: AlgorithmSpec,
    key: &WrappingKeyPair,
    encrypted: &[u8],
) -> Result<Secret, CryptoError> {
    match scheme(alg)? {
        Scheme::Oaep(oaep) => oaep_decrypt(key, oaep, encrypted),
        Scheme::RsaAes(oaep) => {
            let k = key.key.key_size_bytes();
            if encrypted.len() <= k {
                return Err(CryptoError::InvalidCiphertext);
            }
            let (head, tail) = encrypted.split_at(k);
            let aes_key = oaep_decrypt(key, oaep, head)?;
            if aes_key.len() != AES_KEY_LEN {
                return Err(CryptoError::InvalidCiphertext);
            }
            kwp_unwrap(&aes_key, tail)
        }
    }
}

fn parse_public_key(public_key_der: &[u8]) -> Result<PublicEncryptingKey, CryptoError> {
    PublicEncryptingKey::from_der(public_key_der).map_err(|_| {
        CryptoError::InvalidInput(
            "the wrapping public key is not an RSA SubjectPublicKeyInfo (DER)".into(),
        )
    })
}

fn oaep_encrypt(
    public: &OaepPublicEncryptingKey,
    oaep: &'static OaepAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut out = vec![0u8; public.ciphertext_size()];
    let len = public
        .encrypt(oaep, plaintext, &mut out, None)
        .map_err(|_| CryptoError::Internal)?
        .len();
    out.truncate(len);
    Ok(out)
}

/// Client side, the exact inverse of [`unwrap`]: RSAES_OAEP_* encrypt the material directly;
/// RSA_AES_KEY_WRAP_* use a fresh random AES-256 key per call and output `OAEP(key) || KWP(material)`.
///
/// InvalidInput for an unusable public key, empty material, or material too long for RSAES_OAEP_*;
/// Unsupported for RSAES_PKCS1_V1_5 / SM2PKE.
pub fn wrap(
    alg: AlgorithmSpec,
    wrapping_public_key_der: &[u8],
    material: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let scheme = scheme(alg)?;
    let public = OaepPublicEncryptingKey::new(parse_public_key(wrapping_public_key_der)?)
        .map_err(|_| CryptoError::Internal)?;
    if material.is_empty() {
        return Err(CryptoError::InvalidInput(
            "the key material to wrap is empty".into(),
        ));
    }
    match scheme {
        Scheme::Oaep(oaep) => {
            let max = public.max_plaintext_size(oaep);
            if material.len() > max {
                return Err(CryptoError::InvalidInput(format!(
                    "the key material is {} bytes but {alg} with a {}-bit wrapping key carries at most \
                     {max} bytes; use RSA_AES_KEY_WRAP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256",
                    material.len(),
                    public.key_size_bits()
                )));
            }
            oaep_encrypt(&public, oaep, material)
        }
        Scheme::RsaAes(oaep) => {
            let aes_key = crate::rng::random_bytes(AES_KEY_LEN);
            let mut out = oaep_encrypt(&public, oaep, &aes_key)?;
            out.extend_from_slice(&kwp_wrap(&aes_key, material)?);
            Ok(out)
        }
    }
}

/// Largest material RSAES_OAEP_* can carry with this key size: k - 2*hLen - 2.
///
/// 0 for algorithms other than RSAES_OAEP_SHA_1/256 and for the SM2 spec (nothing can be carried by
/// a single OAEP block there).
pub fn max_oaep_payload(alg: AlgorithmSpec, spec: WrappingKeySpec) -> usize {
    let k = match spec {
        WrappingKeySpec::RSA_2048 => 256,
        WrappingKeySpec::RSA_3072 => 384,
        WrappingKeySpec::RSA_4096 => 512,
        WrappingKeySpec::SM2 => return 0,
    };
    let h_len = match alg {
        AlgorithmSpec::RSAES_OAEP_SHA_1 => 20,
        AlgorithmSpec::RSAES_OAEP_SHA_256 => 32,
        _ => return 0,
    };
    k - 2 * h_len - 2
}

/// The public key's modulus and public exponent (big-endian, no leading zeros), for creating the key
/// object in a PKCS#11 token. InvalidInput unless `public_key_der` is an RSA SPKI DER.
pub fn rsa_public_components(public_key_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    parse_public_key(public_key_der)?;
    let public = aws_lc_rs::rsa::PublicKey::from_der(public_key_der).map_err(|_| {
        CryptoError::InvalidInput(
            "the wrapping public key is not an RSA SubjectPublicKeyInfo (DER)".into(),
        )
    })?;
    Ok((
        public.modulus().big_endian_without_leading_zero().to_vec(),
        public.exponent().big_endian_without_leading_zero().to_vec(),
    ))
}

/// RSA key size in bytes of an SPKI DER RSA key. InvalidInput if it is not one.
pub fn rsa_public_key_len(public_key_der: &[u8]) -> Result<usize, CryptoError> {
    Ok(parse_public_key(public_key_der)?.key_size_bytes())
}

fn kek(kek: &[u8]) -> Result<AesKek, CryptoError> {
    if kek.len() != AES_KEY_LEN {
        return Err(CryptoError::InvalidInput(format!(
            "the AES key-encryption key must be {AES_KEY_LEN} bytes, not {}",
            kek.len()
        )));
    }
    AesKek::new(&AES_256, kek).map_err(|_| CryptoError::Internal)
}

/// AES-KWP (RFC 5649) wrap with a 32-byte KEK. InvalidInput for a KEK of another size or empty data.
pub fn kwp_wrap(kek_bytes: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let kek = kek(kek_bytes)?;
    if data.is_empty() {
        return Err(CryptoError::InvalidInput(
            "AES key wrap with padding needs at least one byte to wrap".into(),
        ));
    }
    // RFC 5649: data padded to a multiple of 8, plus the 8-byte integrity block.
    let mut out = vec![0u8; data.len().div_ceil(8) * 8 + 8];
    let len = kek
        .wrap_with_padding(data, &mut out)
        .map_err(|_| CryptoError::InvalidInput("the data is too long to wrap".into()))?
        .len();
    out.truncate(len);
    Ok(out)
}

/// AES-KWP (RFC 5649) unwrap with a 32-byte KEK. InvalidCiphertext on any integrity failure;
/// InvalidInput for a KEK of another size.
pub fn kwp_unwrap(kek_bytes: &[u8], wrapped: &[u8]) -> Result<Secret, CryptoError> {
    let kek = kek(kek_bytes)?;
    if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
        return Err(CryptoError::InvalidCiphertext);
    }
    let mut out = Secret::new(vec![0u8; wrapped.len()]);
    let len = kek
        .unwrap_with_padding(wrapped, &mut out)
        .map_err(|_| CryptoError::InvalidCiphertext)?
        .len();
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;

    const OAEP_ALGS: [AlgorithmSpec; 2] = [
        AlgorithmSpec::RSAES_OAEP_SHA_1,
        AlgorithmSpec::RSAES_OAEP_SHA_256,
    ];
    const HYBRID_ALGS: [AlgorithmSpec; 2] = [
        AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1,
        AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256,
    ];
    const RSA_SPECS: [WrappingKeySpec; 3] = [
        WrappingKeySpec::RSA_2048,
        WrappingKeySpec::RSA_3072,
        WrappingKeySpec::RSA_4096,
    ];

    /// One generated key pair per RSA spec, shared by all tests (RSA-4096 keygen is slow).
    fn key(spec: WrappingKeySpec) -> &'static WrappingKeyPair {
        static KEYS: [OnceLock<WrappingKeyPair>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let i = RSA_SPECS.iter().position(|s| *s == spec).unwrap();
        KEYS[i].get_or_init(|| WrappingKeyPair::generate(spec).unwrap())
    }

    fn openssl(args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }

    fn md(alg: AlgorithmSpec) -> &'static str {
        match alg {
            AlgorithmSpec::RSAES_OAEP_SHA_1 | AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1 => "sha1",
            _ => "sha256",
        }
    }

    /// `openssl pkeyutl -encrypt` with OAEP under an SPKI DER public key.
    fn openssl_oaep_encrypt(dir: &Path, spki: &[u8], md: &str, plaintext: &[u8]) -> Vec<u8> {
        let pubf = write(dir, "pub.der", spki);
        let inf = write(dir, "oaep-in.bin", plaintext);
        openssl(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            &pubf,
            "-in",
            &inf,
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            &format!("rsa_oaep_md:{md}"),
            "-pkeyopt",
            &format!("rsa_mgf1_md:{md}"),
        ])
    }

    /// `openssl enc -id-aes256-wrap-pad` (RFC 5649) wrap or unwrap.
    fn openssl_kwp(dir: &Path, kek: &[u8], input: &[u8], decrypt: bool) -> Vec<u8> {
        let inf = write(dir, "kwp-in.bin", input);
        let hex_kek = hex::encode(kek);
        let mut args = vec![
            "enc",
            "-id-aes256-wrap-pad",
            "-K",
            &hex_kek,
            "-iv",
            "A65959A6",
        ];
        if decrypt {
            args.push("-d");
        }
        args.extend_from_slice(&["-in", &inf]);
        openssl(&args)
    }

    fn material_for(alg: AlgorithmSpec, spec: WrappingKeySpec, n: u8) -> Vec<u8> {
        match scheme(alg).unwrap() {
            // The largest payload that fits, to test the boundary too.
            Scheme::Oaep(_) => (0..max_oaep_payload(alg, spec))
                .map(|i| i as u8 ^ n)
                .collect(),
            // About an RSA-4096 PKCS#8, not a multiple of 8 (exercises the KWP padding).
            Scheme::RsaAes(_) => (0..2375u32).map(|i| (i as u8).wrapping_mul(n)).collect(),
        }
    }

    #[test]
    fn round_trip_every_algorithm_and_spec() {
        for spec in RSA_SPECS {
            let kp = key(spec);
            assert_eq!(kp.spec(), spec);
            let public = kp.public_key_der();
            for (n, alg) in OAEP_ALGS.iter().chain(HYBRID_ALGS.iter()).enumerate() {
                for material in [
                    material_for(*alg, spec, n as u8 + 3),
                    vec![0x42; 32],
                    vec![7],
                ] {
                    let wrapped = wrap(*alg, &public, &material).unwrap();
                    let expected_len = match scheme(*alg).unwrap() {
                        Scheme::Oaep(_) => rsa_public_key_len(&public).unwrap(),
                        Scheme::RsaAes(_) => {
                            rsa_public_key_len(&public).unwrap()
                                + material.len().div_ceil(8) * 8
                                + 8
                        }
                    };
                    assert_eq!(wrapped.len(), expected_len, "{alg} {spec}");
                    assert_eq!(
                        *unwrap(*alg, kp, &wrapped).unwrap(),
                        material,
                        "{alg} {spec}"
                    );
                    // Randomised: a second wrap differs but unwraps the same.
                    let again = wrap(*alg, &public, &material).unwrap();
                    assert_ne!(again, wrapped);
                    assert_eq!(*unwrap(*alg, kp, &again).unwrap(), material);
                }
            }
        }
    }

    #[test]
    fn oaep_payload_limits() {
        assert_eq!(
            max_oaep_payload(AlgorithmSpec::RSAES_OAEP_SHA_1, WrappingKeySpec::RSA_2048),
            214
        );
        assert_eq!(
            max_oaep_payload(AlgorithmSpec::RSAES_OAEP_SHA_256, WrappingKeySpec::RSA_2048),
            190
        );
        assert_eq!(
            max_oaep_payload(AlgorithmSpec::RSAES_OAEP_SHA_256, WrappingKeySpec::RSA_3072),
            318
        );
        assert_eq!(
            max_oaep_payload(AlgorithmSpec::RSAES_OAEP_SHA_1, WrappingKeySpec::RSA_4096),
            470
        );
        assert_eq!(
            max_oaep_payload(
                AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256,
                WrappingKeySpec::RSA_4096
            ),
            0
        );
        assert_eq!(
            max_oaep_payload(AlgorithmSpec::RSAES_OAEP_SHA_256, WrappingKeySpec::SM2),
            0
        );
        for spec in RSA_SPECS {
            let public = key(spec).public_key_der();
            for alg in OAEP_ALGS {
                let too_long = vec![1u8; max_oaep_payload(alg, spec) + 1];
                match wrap(alg, &public, &too_long) {
                    Err(CryptoError::InvalidInput(msg)) => {
                        assert!(msg.contains("RSA_AES_KEY_WRAP"), "{msg}")
                    }
                    other => panic!("{alg} {spec}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn unsupported_algorithms_and_specs() {
        let kp = key(WrappingKeySpec::RSA_2048);
        for alg in [AlgorithmSpec::RSAES_PKCS1_V1_5, AlgorithmSpec::SM2PKE] {
            assert!(matches!(
                wrap(alg, &kp.public_key_der(), &[1; 32]),
                Err(CryptoError::Unsupported(_))
            ));
            assert!(matches!(
                unwrap(alg, kp, &[0; 256]),
                Err(CryptoError::Unsupported(_))
            ));
        }
        assert!(matches!(
            WrappingKeyPair::generate(WrappingKeySpec::SM2),
            Err(CryptoError::Unsupported(_))
        ));
    }

    #[test]
    fn wrap_rejects_bad_inputs() {
        let public = key(WrappingKeySpec::RSA_2048).public_key_der();
        for alg in OAEP_ALGS.iter().chain(HYBRID_ALGS.iter()) {
            assert!(matches!(
                wrap(*alg, &public, &[]),
                Err(CryptoError::InvalidInput(_))
            ));
            for bad in [
                &[][..],
                &[0x30, 0x00][..],
                &public[..public.len() - 1],
                b"garbage",
            ] {
                assert!(matches!(
                    wrap(*alg, bad, &[1; 32]),
                    Err(CryptoError::InvalidInput(_))
                ));
            }
        }
        // An EC public key is not a wrapping key.
        let dir = tempfile::tempdir().unwrap();
        let ec = dir.path().join("ec.pem");
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            ec.to_str().unwrap(),
        ]);
        let ec_spki = openssl(&[
            "pkey",
            "-in",
            ec.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ]);
        assert!(matches!(
            wrap(AlgorithmSpec::RSAES_OAEP_SHA_256, &ec_spki, &[1; 32]),
            Err(CryptoError::InvalidInput(_))
        ));
        assert!(matches!(
            rsa_public_key_len(&ec_spki),
            Err(CryptoError::InvalidInput(_))
        ));
        assert!(matches!(
            rsa_public_components(&ec_spki),
            Err(CryptoError::InvalidInput(_))
        ));
    }

    #[test]
    fn garbage_and_tampering_give_invalid_ciphertext() {
        let kp = key(WrappingKeySpec::RSA_2048);
        let other = WrappingKeyPair::generate(WrappingKeySpec::RSA_2048).unwrap();
        let public = kp.public_key_der();
        let material: Vec<u8> = (0..100u8).collect();
        for alg in OAEP_ALGS.iter().chain(HYBRID_ALGS.iter()) {
            let wrapped = wrap(*alg, &public, &material).unwrap();
            let mut cases: Vec<Vec<u8>> = vec![
                vec![],
                vec![0; 1],
                vec![0; 255],
                vec![0; 256],
                vec![0xff; 256],
                vec![0; 257],
                vec![0x5a; 256 + 120],
                wrapped[..wrapped.len() - 1].to_vec(),
                wrapped[..wrapped.len() - 8].to_vec(),
                wrapped[1..].to_vec(),
                [&wrapped[..], &[0u8; 8][..]].concat(),
            ];
            for i in [0, 100, 255, 256, 263, 300, wrapped.len() - 1] {
                if i < wrapped.len() {
                    let mut t = wrapped.clone();
                    t[i] ^= 0x01;
                    cases.push(t);
                }
            }
            for (n, c) in cases.iter().enumerate() {
                assert!(
                    matches!(unwrap(*alg, kp, c), Err(CryptoError::InvalidCiphertext)),
                    "{alg} case {n}"
                );
            }
            // The right blob under the wrong private key.
            assert!(matches!(
                unwrap(*alg, &other, &wrapped),
                Err(CryptoError::InvalidCiphertext)
            ));
        }
        // OAEP and hybrid blobs are not interchangeable.
        let oaep = wrap(AlgorithmSpec::RSAES_OAEP_SHA_256, &public, &[9; 32]).unwrap();
        assert!(matches!(
            unwrap(AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256, kp, &oaep),
            Err(CryptoError::InvalidCiphertext)
        ));
        assert!(matches!(
            unwrap(AlgorithmSpec::RSAES_OAEP_SHA_1, kp, &oaep),
            Err(CryptoError::InvalidCiphertext)
        ));
        // A hybrid blob whose OAEP part carries a 16-byte AES key is rejected.
        let mut short_key = wrap(AlgorithmSpec::RSAES_OAEP_SHA_256, &public, &[3; 16]).unwrap();
        let kek16 = AesKek::new(&aws_lc_rs::key_wrap::AES_128, &[3; 16]).unwrap();
        let mut buf = vec![0u8; 128];
        short_key.extend_from_slice(kek16.wrap_with_padding(&material, &mut buf).unwrap());
        assert!(matches!(
            unwrap(AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256, kp, &short_key),
            Err(CryptoError::InvalidCiphertext)
        ));
    }

    #[test]
    fn unwraps_openssl_output() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The wrapping key made by openssl (genpkey DER is PKCS#1, so convert to PKCS#8).
        let pem = write(d, "wrap.pem", b"");
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &pem,
        ]);
        let pkcs8 = openssl(&[
            "pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER",
        ]);
        let openssl_key = WrappingKeyPair::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(openssl_key.spec(), WrappingKeySpec::RSA_2048);
        let openssl_spki = openssl(&["pkey", "-in", &pem, "-pubout", "-outform", "DER"]);
        assert_eq!(openssl_key.public_key_der(), openssl_spki);

        let mut keys: Vec<&WrappingKeyPair> = vec![&openssl_key];
        keys.extend(RSA_SPECS.iter().map(|s| key(*s)));
        // Target material for the hybrid: a real RSA-3072 PKCS#8 private key made by openssl.
        let target_pem = write(d, "target.pem", b"");
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:3072",
            "-out",
            &target_pem,
        ]);
        let target = openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &target_pem,
            "-outform",
            "DER",
        ]);
        for kp in keys {
            let spki = kp.public_key_der();
            for alg in OAEP_ALGS {
                let material = openssl(&["rand", "32"]);
                let ct = openssl_oaep_encrypt(d, &spki, md(alg), &material);
                assert_eq!(*unwrap(alg, kp, &ct).unwrap(), material, "{alg}");
            }
            for alg in HYBRID_ALGS {
                let aes = openssl(&["rand", "32"]);
                let mut blob = openssl_oaep_encrypt(d, &spki, md(alg), &aes);
                blob.extend_from_slice(&openssl_kwp(d, &aes, &target, false));
                assert_eq!(*unwrap(alg, kp, &blob).unwrap(), target, "{alg}");
                // The other hash does not unwrap it.
                let other = if alg == AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1 {
                    AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_256
                } else {
                    AlgorithmSpec::RSA_AES_KEY_WRAP_SHA_1
                };
                assert!(matches!(
                    unwrap(other, kp, &blob),
                    Err(CryptoError::InvalidCiphertext)
                ));
            }
        }
    }

    #[test]
    fn openssl_unwraps_our_output() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let kp = key(WrappingKeySpec::RSA_3072);
        let priv_der = write(d, "priv.der", &kp.to_pkcs8().unwrap());
        let material: Vec<u8> = (0..1217u32).map(|i| (i * 7) as u8).collect();
        for alg in OAEP_ALGS.iter().chain(HYBRID_ALGS.iter()) {
            let wrapped = wrap(
                *alg,
                &kp.public_key_der(),
                &material[..match scheme(*alg).unwrap() {
                    Scheme::Oaep(_) => 48,
                    Scheme::RsaAes(_) => material.len(),
                }],
            )
            .unwrap();
            let oaep_part = write(d, "oaep.bin", &wrapped[..384]);
            let m = md(*alg);
            let decrypted = openssl(&[
                "pkeyutl",
                "-decrypt",
                "-keyform",
                "DER",
                "-inkey",
                &priv_der,
                "-in",
                &oaep_part,
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                &format!("rsa_oaep_md:{m}"),
                "-pkeyopt",
                &format!("rsa_mgf1_md:{m}"),
            ]);
            match scheme(*alg).unwrap() {
                Scheme::Oaep(_) => assert_eq!(decrypted, material[..48]),
                Scheme::RsaAes(_) => {
                    assert_eq!(decrypted.len(), 32);
                    assert_eq!(openssl_kwp(d, &decrypted, &wrapped[384..], true), material);
                }
            }
        }
    }

    #[test]
    fn kwp_matches_openssl_and_rfc5649() {
        // openssl's id-aes256-wrap-pad is the RFC 5649 reference here (the RFC's own vectors use a
        // 192-bit KEK, which this 256-bit-only API does not take).
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let kek: Vec<u8> = (0..32u8).collect();
        for len in [1usize, 7, 8, 9, 20, 32, 100, 1217, 2375] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
            let ours = kwp_wrap(&kek, &data).unwrap();
            // KWP is deterministic: openssl must produce the same bytes.
            assert_eq!(ours, openssl_kwp(d, &kek, &data, false), "len {len}");
            assert_eq!(*kwp_unwrap(&kek, &ours).unwrap(), data);
            assert_eq!(openssl_kwp(d, &kek, &ours, true), data);
        }
        assert!(matches!(
            kwp_wrap(&kek, &[]),
            Err(CryptoError::InvalidInput(_))
        ));
        assert!(matches!(
            kwp_wrap(&kek[..16], &[1; 16]),
            Err(CryptoError::InvalidInput(_))
        ));
        assert!(matches!(
            kwp_unwrap(&kek[..31], &[0; 24]),
            Err(CryptoError::InvalidInput(_))
        ));
        let good = kwp_wrap(&kek, &[0xAB; 40]).unwrap();
        let mut wrong_kek = kek.clone();
        wrong_kek[0] ^= 1;
        assert!(matches!(
            kwp_unwrap(&wrong_kek, &good),
            Err(CryptoError::InvalidCiphertext)
        ));
        for n in 0..good.len() {
            assert!(matches!(
                kwp_unwrap(&kek, &good[..n]),
                Err(CryptoError::InvalidCiphertext)
            ));
            let mut t = good.clone();
            t[n] ^= 0x80;
            assert!(matches!(
                kwp_unwrap(&kek, &t),
                Err(CryptoError::InvalidCiphertext)
            ));
        }
    }

    #[test]
    fn key_pair_pkcs8_and_public_parts() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for spec in RSA_SPECS {
            let kp = key(spec);
            let pkcs8 = kp.to_pkcs8().unwrap();
            let again = WrappingKeyPair::from_pkcs8(&pkcs8).unwrap();
            assert_eq!(again.spec(), spec);
            assert_eq!(again.public_key_der(), kp.public_key_der());
            let k = match spec {
                WrappingKeySpec::RSA_2048 => 256,
                WrappingKeySpec::RSA_3072 => 384,
                _ => 512,
            };
            let spki = kp.public_key_der();
            assert_eq!(rsa_public_key_len(&spki).unwrap(), k);
            let (n, e) = rsa_public_components(&spki).unwrap();
            assert_eq!(n.len(), k);
            assert_eq!(e, vec![1, 0, 1]);
            // Compare with openssl's view of the same key.
            let pubf = write(d, "pub.der", &spki);
            let modulus = openssl(&[
                "rsa", "-pubin", "-inform", "DER", "-in", &pubf, "-noout", "-modulus",
            ]);
            let modulus = String::from_utf8(modulus).unwrap();
            assert_eq!(
                modulus.trim().strip_prefix("Modulus=").unwrap(),
                hex::encode_upper(&n)
            );
            // Debug shows only the spec.
            assert_eq!(format!("{kp:?}"), format!("WrappingKeyPair({spec})"));
        }
        assert!(matches!(
            rsa_public_key_len(b"\x30\x03\x02\x01\x01"),
            Err(CryptoError::InvalidInput(_))
        ));
    }

    #[test]
    fn from_pkcs8_rejects_non_wrapping_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cases: [&[&str]; 2] = [
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        ];
        for args in cases {
            let pem = write(d, "k.pem", b"");
            let mut a = vec!["genpkey"];
            a.extend_from_slice(args);
            a.extend_from_slice(&["-out", &pem]);
            openssl(&a);
            let pkcs8 = openssl(&[
                "pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER",
            ]);
            assert!(
                matches!(
                    WrappingKeyPair::from_pkcs8(&pkcs8),
                    Err(CryptoError::InvalidMaterial(_))
                ),
                "{args:?}"
            );
        }
        // PKCS#1 (what `genpkey -outform DER` writes) and garbage.
        let pkcs1 = {
            let pem = write(d, "r.pem", b"");
            openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &pem,
            ]);
            openssl(&["rsa", "-in", &pem, "-traditional", "-outform", "DER"])
        };
        for bad in [&pkcs1[..], &[][..], b"not a key"] {
            assert!(matches!(
                WrappingKeyPair::from_pkcs8(bad),
                Err(CryptoError::InvalidMaterial(_))
            ));
        }
    }
}
