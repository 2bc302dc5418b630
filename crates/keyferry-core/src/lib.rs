//! The KMS service: every operation's rules, the key state machine, import tokens, and the
//! cache in front of storage. Storage is behind [`store::Store`]; crypto is `keyferry-crypto`.
//! This crate knows no HTTP and no SQL.
//!
//! Entry point: [`Kms`], one method per KMS operation (`ops/`), taking the wire request from
//! `keyferry-types` and returning its response or a [`KmsError`].

mod authz;
pub mod clock;
pub mod context;
pub mod error;
mod import_token;
mod kms;
mod managed;
mod ops;
pub mod pool;
pub mod record;
pub mod reseal;
mod stats;
mod status;
pub mod store;

pub use context::{Directory, Principal, PrincipalKind, RequestContext};
pub use error::KmsError;
pub use kms::{Config, Kms, write_lock_shard};
pub use stats::{CacheStats, HitMiss};
