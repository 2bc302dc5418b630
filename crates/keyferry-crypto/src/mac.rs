//! HMAC (GenerateMac / VerifyMac).

use aws_lc_rs::hmac;
use keyferry_types::MacAlgorithmSpec;

fn algorithm(alg: MacAlgorithmSpec) -> hmac::Algorithm {
    match alg {
        MacAlgorithmSpec::HMAC_SHA_224 => hmac::HMAC_SHA224,
        MacAlgorithmSpec::HMAC_SHA_256 => hmac::HMAC_SHA256,
        MacAlgorithmSpec::HMAC_SHA_384 => hmac::HMAC_SHA384,
        MacAlgorithmSpec::HMAC_SHA_512 => hmac::HMAC_SHA512,
    }
}

/// The HMAC of `message` under `key` with `alg`.
pub fn generate(alg: MacAlgorithmSpec, key: &[u8], message: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(algorithm(alg), key);
    hmac::sign(&key, message).as_ref().to_vec()
}

/// Whether `mac` is the HMAC of `message` under `key` (constant-time comparison).
pub fn verify(alg: MacAlgorithmSpec, key: &[u8], message: &[u8], mac: &[u8]) -> bool {
    let key = hmac::Key::new(algorithm(alg), key);
    hmac::verify(&key, message, mac).is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc4231_test_case_2() {
        // Key "Jefe", data "what do ya want for nothing?".
        let key = b"Jefe";
        let msg = b"what do ya want for nothing?";
        let expect = [
            (
                MacAlgorithmSpec::HMAC_SHA_224,
                "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
            ),
            (
                MacAlgorithmSpec::HMAC_SHA_256,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                MacAlgorithmSpec::HMAC_SHA_384,
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
            ),
            (
                MacAlgorithmSpec::HMAC_SHA_512,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (alg, hex_mac) in expect {
            let mac = generate(alg, key, msg);
            assert_eq!(hex::encode(&mac), hex_mac, "{alg}");
            assert!(verify(alg, key, msg, &mac));
        }
    }

    #[test]
    fn verify_rejects_wrong_inputs() {
        for &alg in MacAlgorithmSpec::ALL {
            let mac = generate(alg, b"key", b"msg");
            assert!(verify(alg, b"key", b"msg", &mac));
            assert!(!verify(alg, b"key", b"msG", &mac));
            assert!(!verify(alg, b"kez", b"msg", &mac));
            assert!(!verify(alg, b"key", b"msg", &mac[..mac.len() - 1]));
            assert!(!verify(alg, b"key", b"msg", &[]));
            let mut bad = mac.clone();
            bad[0] ^= 1;
            assert!(!verify(alg, b"key", b"msg", &bad));
        }
        let mac = generate(MacAlgorithmSpec::HMAC_SHA_256, b"key", b"msg");
        assert!(!verify(
            MacAlgorithmSpec::HMAC_SHA_384,
            b"key",
            b"msg",
            &mac
        ));
    }
}
