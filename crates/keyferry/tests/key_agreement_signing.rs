//! End to end: DeriveSharedSecret, Ed25519 and ML-DSA through boto3 against the real
//! `keyferry serve`, each result checked with an implementation other than the server's
//! (`tests/py/key_agreement_signing.py`: Python `cryptography` for ECDH and pure Ed25519, an
//! RFC 8032 verifier for Ed25519ph, dilithium-py for ML-DSA).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Server;

#[test]
fn key_agreement_ed25519_and_ml_dsa_checked_independently() {
    let server = Server::start();
    let out = common::run_python(&server, "key_agreement_signing.py", &[]);
    assert!(out.contains("checks passed"), "{out}");
}
