//! Bring your own key: take key material from a file or from a PKCS#11 token (HSM), wrap it for
//! an AWS-KMS-compatible endpoint's import (GetParametersForImport / ImportKeyMaterial), and
//! prove the result.
//!
//! This crate exists so that the multi-step, error-prone manual procedure (console wizard,
//! DER→PEM, vendor HSM menus, the right OAEP hash, the 24-hour token) becomes one command, with
//! the key material never leaving the HSM unwrapped.
//!
//! Modules:
//! - [`uri`]: RFC 7512 PKCS#11 URIs and PIN resolution;
//! - [`pkcs11`]: a safe wrapper over `cryptoki` (sessions, wrapping in the HSM, capability probes);
//! - [`source`]: key material sources (file or token), key-spec inference, wrapping choice;
//! - [`offline`]: `ImportParameters.zip` and `EncryptedKeyMaterial.bin` for air-gapped hosts;
//! - [`profiles`]: vendor HSM profiles (module paths, mechanism quirks) as data;
//! - [`client`]: the online import with `aws-sdk-kms` (create, wrap, import, verify, clean up);
//! - [`batch`]: many imports at once, bounded, with a progress bar and a result table;
//! - [`cli`]: the `keyferry import` command line (and its offline helpers);
//! - [`demo`]: `keyferry demo`, the whole walk-through on a child server.

pub mod batch;
pub mod cli;
pub mod client;
pub mod demo;
pub mod der;
pub mod error;
pub mod keepalive;
pub mod offline;
pub mod pkcs11;
pub mod profiles;
pub mod provenance;
pub mod source;
pub mod uri;

pub use error::{Error, ErrorKind, Result};
/// The `time` crate, as used in this crate's API (expiry times).
pub use time;
