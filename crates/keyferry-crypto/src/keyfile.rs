//! Reading private key files for the BYOK client.
//!
//! Operators hold keys in whatever form their tools wrote them: PKCS#8 ("PRIVATE KEY"), OpenSSL's
//! "traditional" PKCS#1 ("RSA PRIVATE KEY") and SEC1 ("EC PRIVATE KEY"), as PEM or DER. KMS import
//! needs PKCS#8, so every accepted form is converted to the canonical PKCS#8 v1 DER of
//! [`crate::material::canonicalize`], together with the [`KeySpec`] the key fits. Anything else
//! (encrypted keys, public keys, unsupported algorithms, sizes or curves) is rejected with a
//! [`CryptoError::InvalidMaterial`] saying what was found and how to fix it.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};
use keyferry_types::KeySpec;

use crate::material::{self, Curve, Kind};
use crate::{CryptoError, Secret, der, pem};

fn invalid(msg: impl Into<String>) -> CryptoError {
    CryptoError::InvalidMaterial(msg.into())
}

fn encrypted() -> CryptoError {
    invalid(
        "encrypted private keys are not supported; decrypt it first, e.g. \
         openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-plain.pem",
    )
}

/// Accept PKCS#8 DER, PEM "PRIVATE KEY", PEM "RSA PRIVATE KEY" (PKCS#1), PEM "EC PRIVATE KEY" (SEC1),
/// and DER PKCS#1/SEC1; return PKCS#8 v1 DER and the KeySpec it fits (RSA_2048/3072/4096, ECC_*).
/// InvalidMaterial with a helpful message otherwise.
pub fn private_key_to_pkcs8(input: &[u8]) -> Result<(Secret, KeySpec), CryptoError> {
    if pem::is_pem(input) || input.windows(11).any(|w| w == b"-----BEGIN ") {
        return from_pem(input);
    }
    from_der(input)
}

fn from_pem(input: &[u8]) -> Result<(Secret, KeySpec), CryptoError> {
    let blocks = pem::parse_blocks(input).ok_or_else(|| {
        invalid("the PEM file is malformed (a block has no END line or invalid base64)")
    })?;
    let mut others = Vec::new();
    for block in &blocks {
        match block.label.as_str() {
            "ENCRYPTED PRIVATE KEY" => return Err(encrypted()),
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                if block.encrypted_headers {
                    return Err(encrypted());
                }
                return from_der(&block.der);
            }
            // `openssl ecparam -genkey` writes the curve first; the key block follows.
            "EC PARAMETERS" => {}
            other => others.push(other),
        }
    }
    if others.is_empty() {
        Err(invalid("the PEM file contains no private key"))
    } else {
        Err(invalid(format!(
            "the PEM file contains no private key (found: {}); a PRIVATE KEY, RSA PRIVATE KEY or \
             EC PRIVATE KEY block is needed",
            others.join(", ")
        )))
    }
}

fn from_der(input: &[u8]) -> Result<(Secret, KeySpec), CryptoError> {
    if let Some(info) = der::pkcs8(input) {
        return from_pkcs8(input, &info);
    }
    if der::is_encrypted_pkcs8(input) {
        return Err(encrypted());
    }
    if let Some(curve) = der::sec1_curve(input) {
        return from_sec1(input, curve);
    }
    if der::pkcs1_version(input).is_some() {
        return from_pkcs1(input);
    }
    Err(invalid(
        "not a private key: expected PEM, or DER PKCS#8, PKCS#1 (RSA) or SEC1 (EC)",
    ))
}

/// The KMS RSA spec of a modulus size, with a helpful error otherwise.
fn rsa_spec_of(private_key: &[u8]) -> Result<(KeySpec, usize), CryptoError> {
    let bits = der::pkcs1_modulus_bits(private_key)
        .ok_or_else(|| invalid("the RSA private key is malformed"))?;
    let spec = material::rsa_spec(bits).ok_or_else(|| {
        invalid(format!(
            "RSA key is {bits} bits; KMS supports RSA keys of 2048, 3072 or 4096 bits"
        ))
    })?;
    Ok((spec, bits))
}

/// The supported curve named by an OID, with a helpful error otherwise.
fn curve_of(oid: &[u8]) -> Result<Curve, CryptoError> {
    Curve::from_oid(oid).ok_or_else(|| {
        invalid("EC key is on an unsupported curve; KMS supports P-256, P-384, P-521 and secp256k1")
    })
}

fn explicit_curve() -> CryptoError {
    invalid(
        "EC keys with explicit curve parameters are not supported; use a named curve \
         (openssl ec -param_enc named_curve)",
    )
}

fn from_pkcs8(input: &[u8], info: &der::Pkcs8Info<'_>) -> Result<(Secret, KeySpec), CryptoError> {
    match info.algorithm {
        a if a == der::OID_RSA => {
            let (spec, bits) = rsa_spec_of(info.private_key)?;
            let (pkcs8, _) = material::canonical_rsa(spec, bits, input)?;
            Ok((pkcs8, spec))
        }
        a if a == der::OID_EC => {
            let curve = match info.parameters {
                Some(t) if t.tag == der::OID => curve_of(t.value)?,
                Some(t) if t.tag == der::SEQUENCE => return Err(explicit_curve()),
                _ => return Err(invalid("the PKCS#8 EC key does not name its curve")),
            };
            let (pkcs8, _) = material::canonical_ec(curve.spec(), curve, input)?;
            Ok((pkcs8, curve.spec()))
        }
        a if a == der::OID_RSA_PSS => Err(invalid(
            "RSASSA-PSS-restricted RSA keys (id-RSASSA-PSS) are not supported; \
             generate a plain RSA key (openssl genpkey -algorithm RSA)",
        )),
        a if a == der::OID_ED25519 => Err(invalid("Ed25519 keys are not supported")),
        _ => Err(invalid(
            "the PKCS#8 key uses an unsupported algorithm; only RSA and EC keys are supported",
        )),
    }
}

fn from_pkcs1(input: &[u8]) -> Result<(Secret, KeySpec), CryptoError> {
    if der::pkcs1_version(input) != Some(&[0][..]) {
        return Err(invalid(
            "multi-prime RSA keys are not supported; the key must have exactly two primes",
        ));
    }
    let (spec, bits) = rsa_spec_of(input)?;
    let kp = RsaKeyPair::from_der(input)
        .map_err(|e| invalid(format!("the RSA private key is not valid: {e}")))?;
    let pkcs8 = material::rsa_pkcs8(&kp)?;
    let (pkcs8, _) = material::canonical_rsa(spec, bits, &pkcs8)?;
    Ok((pkcs8, spec))
}

fn from_sec1(input: &[u8], curve: Option<&[u8]>) -> Result<(Secret, KeySpec), CryptoError> {
    let curve = curve_of(curve.ok_or_else(explicit_curve)?)?;
    let kp = EcdsaKeyPair::from_private_key_der(curve.signing(), input)
        .map_err(|e| invalid(format!("the EC private key is not valid: {e}")))?;
    let pkcs8 = material::ec_pkcs8(&kp)?;
    let (pkcs8, _) = material::canonical_ec(curve.spec(), curve, &pkcs8)?;
    Ok((pkcs8, curve.spec()))
}

/// The public key (SPKI DER) of a PKCS#8 key of the given spec.
pub fn public_key_of(spec: KeySpec, pkcs8: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let der: PublicKeyX509Der<'static> = match material::kind(spec) {
        Kind::Rsa(bits) => {
            let (_, kp) = material::canonical_rsa(spec, bits, pkcs8)?;
            kp.public_key().as_der()
        }
        Kind::Ec(curve) => {
            let (_, kp) = material::canonical_ec(spec, curve, pkcs8)?;
            kp.public_key().as_der()
        }
        Kind::Symmetric | Kind::Hmac(_) | Kind::Ed25519 | Kind::MlDsa(_) | Kind::Unsupported => {
            return Err(CryptoError::Unsupported(format!(
                "key spec {spec} has no public key"
            )));
        }
    }
    .map_err(|_| CryptoError::Internal)?;
    Ok(der.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::testutil::{openssl, pem_of};
    use std::path::Path;

    fn p(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    /// Every encoding openssl writes for the key at `key` (a genpkey PEM) must give the same PKCS#8
    /// and spec, and the public key must match openssl's.
    fn check_all_forms(dir: &Path, key: &Path, traditional_cmd: &str, expect: KeySpec) {
        let tag = expect.as_str();
        let pkcs8_der = dir.join(format!("{tag}.p8.der"));
        let trad_pem = dir.join(format!("{tag}.trad.pem"));
        let trad_der = dir.join(format!("{tag}.trad.der"));
        let spki = dir.join(format!("{tag}.spki.der"));
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            p(key),
            "-outform",
            "DER",
            "-out",
            p(&pkcs8_der),
        ]);
        let mut trad = vec![traditional_cmd, "-in", p(key), "-out", p(&trad_pem)];
        if traditional_cmd == "rsa" {
            trad.push("-traditional");
        }
        openssl(&trad);
        openssl(&[
            traditional_cmd,
            "-in",
            p(key),
            "-outform",
            "DER",
            "-out",
            p(&trad_der),
        ]);
        openssl(&[
            "pkey",
            "-in",
            p(key),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            p(&spki),
        ]);

        let trad_text = String::from_utf8(read(&trad_pem)).unwrap();
        let want_label = if traditional_cmd == "rsa" {
            "RSA PRIVATE KEY"
        } else {
            "EC PRIVATE KEY"
        };
        assert!(
            trad_text.contains(&format!("BEGIN {want_label}")),
            "{trad_text}"
        );
        assert!(
            String::from_utf8(read(key))
                .unwrap()
                .contains("BEGIN PRIVATE KEY")
        );

        let (reference, spec) = private_key_to_pkcs8(&read(key)).unwrap();
        assert_eq!(spec, expect);
        for path in [&pkcs8_der, &trad_pem, &trad_der] {
            let (got, spec) = private_key_to_pkcs8(&read(path)).unwrap();
            assert_eq!(spec, expect, "{path:?}");
            assert_eq!(*got, *reference, "{path:?}");
        }
        // The result is what material::canonicalize accepts and keeps unchanged.
        assert_eq!(
            *material::canonicalize(expect, &reference).unwrap(),
            *reference
        );
        assert_eq!(
            public_key_of(expect, &reference).unwrap(),
            read(&spki),
            "{tag}"
        );
        // Leading text before the PEM block (e.g. "Bag Attributes") is tolerated.
        let with_prefix = format!("Bag Attributes\n    localKeyID: 01\n{trad_text}");
        assert_eq!(
            *private_key_to_pkcs8(with_prefix.as_bytes()).unwrap().0,
            *reference
        );
    }

    #[test]
    fn openssl_rsa_files_of_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (bits, spec) in [
            (2048, KeySpec::RSA_2048),
            (3072, KeySpec::RSA_3072),
            (4096, KeySpec::RSA_4096),
        ] {
            let key = d.join(format!("rsa{bits}.pem"));
            let opt = format!("rsa_keygen_bits:{bits}");
            openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &opt,
                "-out",
                p(&key),
            ]);
            check_all_forms(d, &key, "rsa", spec);
        }
    }

    #[test]
    fn openssl_ec_files_of_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (curve, spec) in [
            ("P-256", KeySpec::ECC_NIST_P256),
            ("P-384", KeySpec::ECC_NIST_P384),
            ("P-521", KeySpec::ECC_NIST_P521),
            ("secp256k1", KeySpec::ECC_SECG_P256K1),
        ] {
            let key = d.join(format!("{curve}.pem"));
            let opt = format!("ec_paramgen_curve:{curve}");
            openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                &opt,
                "-out",
                p(&key),
            ]);
            check_all_forms(d, &key, "ec", spec);
            let (reference, _) = private_key_to_pkcs8(&read(&key)).unwrap();
            // SEC1 and PKCS#8 without the public key give the same canonical PKCS#8.
            let bare = d.join("bare.pem");
            openssl(&["ec", "-in", p(&key), "-no_public", "-out", p(&bare)]);
            assert_eq!(*private_key_to_pkcs8(&read(&bare)).unwrap().0, *reference);
            let bare8 = openssl(&[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                p(&bare),
                "-outform",
                "DER",
            ]);
            assert_eq!(*private_key_to_pkcs8(&bare8).unwrap().0, *reference);
        }
        // `openssl ecparam -genkey` writes an EC PARAMETERS block before the key.
        let both = openssl(&["ecparam", "-genkey", "-name", "prime256v1"]);
        assert!(String::from_utf8_lossy(&both).contains("EC PARAMETERS"));
        assert_eq!(
            private_key_to_pkcs8(&both).unwrap().1,
            KeySpec::ECC_NIST_P256
        );
    }

    fn err(input: &[u8]) -> String {
        match private_key_to_pkcs8(input) {
            Err(CryptoError::InvalidMaterial(m)) => m,
            Err(e) => panic!("wrong error kind: {e:?}"),
            Ok((_, spec)) => panic!("accepted as {spec}"),
        }
    }

    #[test]
    fn rejections_have_helpful_messages() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = d.join("k.pem");
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            p(&key),
        ]);

        let enc8 = openssl(&[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:pw",
            "-in",
            p(&key),
        ]);
        assert!(String::from_utf8_lossy(&enc8).contains("ENCRYPTED PRIVATE KEY"));
        assert!(err(&enc8).contains("encrypted"));
        let enc8_der = openssl(&[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:pw",
            "-in",
            p(&key),
            "-outform",
            "DER",
        ]);
        assert!(err(&enc8_der).contains("encrypted"));
        let enc_trad = openssl(&["ec", "-aes256", "-passout", "pass:pw", "-in", p(&key)]);
        assert!(String::from_utf8_lossy(&enc_trad).contains("Proc-Type: 4,ENCRYPTED"));
        assert!(err(&enc_trad).contains("encrypted"));

        let public = openssl(&["pkey", "-in", p(&key), "-pubout"]);
        assert!(err(&public).contains("found: PUBLIC KEY"));
        let public_der = openssl(&["pkey", "-in", p(&key), "-pubout", "-outform", "DER"]);
        assert!(err(&public_der).contains("not a private key"));

        let explicit = openssl(&["ec", "-in", p(&key), "-param_enc", "explicit"]);
        assert!(err(&explicit).contains("explicit"));
        let explicit_path = d.join("explicit.pem");
        std::fs::write(&explicit_path, &explicit).unwrap();
        let explicit8 = openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            p(&explicit_path),
            "-outform",
            "DER",
        ]);
        assert!(err(&explicit8).contains("explicit"));

        let other_curve = openssl(&["ecparam", "-genkey", "-name", "secp224r1", "-noout"]);
        assert!(err(&other_curve).contains("unsupported curve"));

        let small = d.join("small.pem");
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            p(&small),
        ]);
        assert_eq!(
            err(&read(&small)),
            "RSA key is 1024 bits; KMS supports RSA keys of 2048, 3072 or 4096 bits"
        );
        let multi = d.join("multi.pem");
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-pkeyopt",
            "rsa_keygen_primes:3",
            "-out",
            p(&multi),
        ]);
        assert!(err(&read(&multi)).contains("multi-prime"));
        let multi1 = openssl(&["rsa", "-traditional", "-in", p(&multi), "-outform", "DER"]);
        assert!(err(&multi1).contains("multi-prime"));

        let ed = openssl(&["genpkey", "-algorithm", "ED25519"]);
        assert!(err(&ed).contains("Ed25519"));
        let pss = openssl(&[
            "genpkey",
            "-algorithm",
            "RSA-PSS",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ]);
        assert!(err(&pss).contains("RSASSA-PSS"));

        assert!(err(b"").contains("not a private key"));
        assert!(err(b"hello").contains("not a private key"));
        assert!(err(b"-----BEGIN PRIVATE KEY-----\nAAAA\n").contains("malformed"));
        assert!(
            err(b"-----BEGIN PRIVATE KEY-----\n@@@@\n-----END PRIVATE KEY-----\n")
                .contains("malformed")
        );
        assert!(err(pem_of("CERTIFICATE", b"x").as_bytes()).contains("found: CERTIFICATE"));
        assert!(err(pem_of("PRIVATE KEY", b"garbage").as_bytes()).contains("not a private key"));
    }

    #[test]
    fn truncated_and_mutated_inputs_never_panic() {
        let (p8, spec) =
            private_key_to_pkcs8(&material::generate(KeySpec::ECC_NIST_P256).unwrap()).unwrap();
        assert_eq!(spec, KeySpec::ECC_NIST_P256);
        for n in 0..p8.len() {
            assert!(private_key_to_pkcs8(&p8[..n]).is_err());
        }
        for i in 0..p8.len() {
            let mut t = p8.to_vec();
            t[i] ^= 0xA5;
            let _ = private_key_to_pkcs8(&t);
            let _ = public_key_of(KeySpec::ECC_NIST_P256, &t);
        }
    }

    #[test]
    fn public_key_of_checks_the_spec() {
        let rsa = material::generate(KeySpec::RSA_2048).unwrap();
        let spki = public_key_of(KeySpec::RSA_2048, &rsa).unwrap();
        assert!(spki.len() > 256 && spki.len() < 300);
        assert!(matches!(
            public_key_of(KeySpec::RSA_3072, &rsa),
            Err(CryptoError::InvalidMaterial(_))
        ));
        assert!(matches!(
            public_key_of(KeySpec::ECC_NIST_P256, &rsa),
            Err(CryptoError::InvalidMaterial(_))
        ));
        assert!(matches!(
            public_key_of(KeySpec::SYMMETRIC_DEFAULT, &rsa),
            Err(CryptoError::Unsupported(_))
        ));
        let ec = material::generate(KeySpec::ECC_NIST_P384).unwrap();
        let spki = public_key_of(KeySpec::ECC_NIST_P384, &ec).unwrap();
        assert_eq!(spki.len(), 120); // SPKI of an uncompressed P-384 point
        assert!(public_key_of(KeySpec::ECC_NIST_P256, &ec).is_err());
    }
}
