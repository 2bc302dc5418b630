//! The KMS service: every operation's rules, the key state machine, import tokens, and the
//! cache in front of storage. Storage is behind [`store::Store`]; crypto is `keyferry-crypto`.
//! This crate knows no HTTP and no SQL.

pub mod error;
pub mod store;

pub use error::KmsError;
