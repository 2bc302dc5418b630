//! The PostgreSQL backend, for several stateless server nodes sharing one database: connecting,
//! session settings and the migration lock. The queries are shared with SQLite (`imp.rs`,
//! `sql.rs`).

use std::str::FromStr;
use std::time::Duration;

use keyferry_core::store::StoreError;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::error::map_err;
use crate::location::redact_url;
use crate::options::StoreOptions;
use crate::schema;

/// Default pool size per node.
const MAX_CONNECTIONS: u32 = 16;
/// Arbitrary constant identifying Keyferry's migration lock among advisory locks.
const MIGRATION_LOCK_ID: i64 = 0x6b65_7966_6572_7279; // "keyferry"

/// A [`Store`](keyferry_core::store::Store) in PostgreSQL. Compare-and-swap is one conditional
/// `UPDATE`, so any number of nodes may share the database.
pub struct PgStore {
    /// One pool serves reads and writes (`reader` is a handle on the same pool).
    writer: PgPool,
    reader: PgPool,
    url: String,
    /// Client-side limit on one operation.
    deadline: Duration,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl PgStore {
    /// Connect a pool to `url` (`postgres://user:pass@host:port/db?...`) and migrate, with the
    /// default [`StoreOptions`].
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_with(url, &StoreOptions::default()).await
    }

    /// [`PgStore::connect`] with explicit timeouts.
    pub async fn connect_with(url: &str, opts: &StoreOptions) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                StoreError::Backend(format!("invalid PostgreSQL URL {}: {e}", redact_url(url)))
            })?
            // Every session: the server cancels a statement (and releases its locks) after
            // statement_timeout; the client-side deadline covers a server that cannot.
            .options([(
                "statement_timeout",
                format!("{}ms", opts.statement_timeout.as_millis()),
            )]);
        match tokio::time::timeout(opts.open_timeout, migrate(options.clone(), opts)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "connecting to and migrating {} took longer than {} ms",
                    redact_url(url),
                    opts.open_timeout.as_millis()
                )));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(opts.acquire_timeout)
            .connect_lazy_with(options);
        Ok(PgStore {
            writer: pool.clone(),
            reader: pool,
            url: url.to_owned(),
            deadline: opts.acquire_timeout + opts.statement_timeout,
        })
    }

    /// Close the pool (waits for in-flight queries).
    pub async fn close(&self) {
        self.writer.close().await;
    }
}

/// Migrate on a connection of its own, which may wait for another node's migration (the
/// advisory lock) and run longer than a request may: the caller bounds it by `open_timeout`.
async fn migrate(options: PgConnectOptions, opts: &StoreOptions) -> Result<(), StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(opts.connect_timeout)
        .connect_with(options)
        .await
        .map_err(map_err)?;
    let mut tx = pool.begin().await.map_err(map_err)?;
    // The session's statement_timeout is for requests, not for rewriting a table.
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    // Serialise nodes that start at the same time; released at commit/rollback.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK_ID)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    PgStore::apply_migrations(&mut tx, &schema::POSTGRES).await?;
    tx.commit().await.map_err(map_err)?;
    pool.close().await;
    Ok(())
}

#[allow(clippy::wildcard_imports)]
mod store_impl {
    use keyferry_core::store::{AliasRow, GrantRow, KeyUsageRow, StoreError, StoredKey};

    use super::PgStore;
    use crate::imp::*;
    use crate::sql;

    crate::imp::impl_store!(PgStore, sqlx::Postgres);
}
