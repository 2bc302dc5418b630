//! HMAC (GenerateMac / VerifyMac).

use keyferry_types::MacAlgorithmSpec;

/// The HMAC of `message` under `key` with `alg`.
pub fn generate(alg: MacAlgorithmSpec, key: &[u8], message: &[u8]) -> Vec<u8> {
    let _ = (alg, key, message);
    Vec::new()
}

/// Whether `mac` is the HMAC of `message` under `key` (constant-time comparison).
pub fn verify(alg: MacAlgorithmSpec, key: &[u8], message: &[u8], mac: &[u8]) -> bool {
    let _ = (alg, key, message, mac);
    false
}
