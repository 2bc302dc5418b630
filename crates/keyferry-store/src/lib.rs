//! Storage backends for `keyferry-core`'s [`Store`] trait.
//!
//! `keyferry-core` owns the meaning of every record and sees storage only through
//! [`keyferry_core::store::Store`]. This crate persists those opaque documents in
//! - [`SqliteStore`]: an embedded SQLite file, the single-node default (WAL,
//!   `synchronous = FULL`, one writer connection);
//! - [`PgStore`]: PostgreSQL, shared by several stateless server nodes.
//!
//! Both run the same queries (`sql.rs`, `$n` placeholders on both) through one implementation
//! (`imp.rs`, expanded per backend), on the same schema (`schema.rs`: versioned migrations,
//! written once and rendered per dialect, applied under the database's lock on open).
//! Compare-and-swap is one conditional `UPDATE`, so correctness never depends on in-process
//! locking. Keys and aliases are scoped by account and Region; grants, key last-usage and
//! named metadata values have tables of their own.
//!
//! Every operation fails fast with [`StoreError::Unavailable`] when the database does not
//! answer in time (see [`StoreOptions`]): pool acquire (including connecting), PostgreSQL's
//! `statement_timeout`, and a client-side deadline that also covers a frozen server.

mod backup;
mod error;
mod imp;
mod location;
mod options;
mod postgres;
mod schema;
mod sql;
mod sqlite;

use std::sync::Arc;

pub use backup::{SqliteBackupInfo, backup_sqlite, inspect_sqlite};
pub use keyferry_core::store::{AliasRow, GrantRow, KeyUsageRow, Store, StoreError, StoredKey};
pub use location::{StoreLocation, redact_url};
pub use options::StoreOptions;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Open a store: `postgres://…` or `postgresql://…` → [`PgStore`]; `sqlite://PATH`,
/// `sqlite:PATH` or a plain path → [`SqliteStore`]; with the default [`StoreOptions`].
pub async fn open_store(url_or_path: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_store_with(url_or_path, &StoreOptions::default()).await
}

/// [`open_store`] with explicit timeouts.
pub async fn open_store_with(
    url_or_path: &str,
    opts: &StoreOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    StoreLocation::parse(url_or_path).open_with(opts).await
}
