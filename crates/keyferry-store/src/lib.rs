//! Storage backends for `keyferry-core`'s [`Store`] trait.
//!
//! `keyferry-core` owns the meaning of every record and sees storage only through
//! [`keyferry_core::store::Store`]. This crate persists those opaque documents in
//! - [`SqliteStore`]: an embedded SQLite file, the single-node default;
//! - [`PgStore`]: PostgreSQL, shared by several stateless server nodes.
//!
//! Both use the same portable schema (see `schema.rs`), applied by a small versioned
//! migration runner on open, and both implement compare-and-swap as one conditional
//! `UPDATE`, so correctness never depends on in-process locking.

mod error;
mod location;
mod postgres;
mod schema;
mod sqlite;

use std::sync::Arc;

pub use keyferry_core::store::{AliasRow, Store, StoreError, StoredKey};
pub use location::{StoreLocation, redact_url};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Open a store: `postgres://…` or `postgresql://…` → [`PgStore`]; `sqlite://PATH`,
/// `sqlite:PATH` or a plain path → [`SqliteStore`].
pub async fn open_store(url_or_path: &str) -> Result<Arc<dyn Store>, StoreError> {
    StoreLocation::parse(url_or_path).open().await
}
