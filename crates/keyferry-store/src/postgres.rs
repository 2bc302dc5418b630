//! The PostgreSQL backend, for several stateless server nodes sharing one database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use keyferry_core::store::{AliasRow, Store, StoreError, StoredKey};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

use crate::error::{backend, limit, map_err};
use crate::location::redact_url;
use crate::schema;

/// Default pool size per node.
const MAX_CONNECTIONS: u32 = 16;
/// Arbitrary constant identifying Keyferry's migration lock among advisory locks.
const MIGRATION_LOCK_ID: i64 = 0x6b65_7966_6572_7279; // "keyferry"

/// A [`Store`] in PostgreSQL. Compare-and-swap is one conditional `UPDATE`, so any number
/// of nodes may share the database.
pub struct PgStore {
    pool: PgPool,
    url: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl PgStore {
    /// Connect a pool to `url` (`postgres://user:pass@host:port/db?...`) and migrate.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Backend(format!("invalid PostgreSQL URL {}: {e}", redact_url(url)))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(backend)?;
        migrate(&pool).await?;
        Ok(PgStore {
            pool,
            url: url.to_owned(),
        })
    }

    /// Close the pool (waits for in-flight queries).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(backend)?;
    // Serialise nodes that start at the same time; released at commit/rollback.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK_ID)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    sqlx::query(schema::CREATE_VERSION_TABLE)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let current: Option<i64> = sqlx::query_scalar(schema::MAX_VERSION)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    let current = current.unwrap_or(0);
    let latest = schema::latest(schema::POSTGRES);
    if current > latest {
        return Err(StoreError::Backend(format!(
            "database schema version {current} is newer than this build supports ({latest})"
        )));
    }
    for m in schema::POSTGRES.iter().filter(|m| m.version > current) {
        for stmt in m.statements {
            sqlx::query(*stmt)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tracing::info!(version = m.version, "applied schema migration");
        sqlx::query("INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)")
            .bind(m.version)
            .bind(schema::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

fn alias_from_row(row: &sqlx::postgres::PgRow) -> Result<AliasRow, StoreError> {
    Ok(AliasRow {
        name: row.try_get(0).map_err(backend)?,
        target_key_id: row.try_get(1).map_err(backend)?,
        creation_ms: row.try_get(2).map_err(backend)?,
        last_updated_ms: row.try_get(3).map_err(backend)?,
    })
}

#[async_trait]
impl Store for PgStore {
    async fn get_key(&self, key_id: &str) -> Result<Option<StoredKey>, StoreError> {
        let row: Option<(String, i64, Option<i64>, Vec<u8>)> =
            sqlx::query_as("SELECT key_id, version, due_ms, doc FROM keys WHERE key_id = $1")
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(row.map(|(key_id, version, due_ms, doc)| StoredKey {
            key_id,
            version,
            due_ms,
            doc,
        }))
    }

    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO keys (key_id, version, due_ms, doc) VALUES ($1, $2, $3, $4)")
            .bind(&key.key_id)
            .bind(key.version)
            .bind(key.due_ms)
            .bind(&key.doc)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn update_key(&self, key: &StoredKey, expected_version: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE keys SET version = $1, due_ms = $2, doc = $3 WHERE key_id = $4 AND version = $5",
        )
        .bind(key.version)
        .bind(key.due_ms)
        .bind(&key.doc)
        .bind(&key.key_id)
        .bind(expected_version)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("DELETE FROM aliases WHERE target_key_id = $1")
            .bind(key_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("DELETE FROM keys WHERE key_id = $1")
            .bind(key_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn list_key_ids(
        &self,
        after: Option<&str>,
        limit_n: u32,
    ) -> Result<Vec<String>, StoreError> {
        let q = match after {
            Some(after) => sqlx::query_scalar(
                "SELECT key_id FROM keys WHERE key_id > $1 ORDER BY key_id LIMIT $2",
            )
            .bind(after)
            .bind(limit(limit_n)),
            None => sqlx::query_scalar("SELECT key_id FROM keys ORDER BY key_id LIMIT $1")
                .bind(limit(limit_n)),
        };
        q.fetch_all(&self.pool).await.map_err(backend)
    }

    async fn due_key_ids(&self, now_ms: i64, limit_n: u32) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT key_id FROM keys WHERE due_ms IS NOT NULL AND due_ms <= $1 \
             ORDER BY due_ms, key_id LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit(limit_n))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn get_alias(&self, name: &str) -> Result<Option<AliasRow>, StoreError> {
        let row = sqlx::query(
            "SELECT name, target_key_id, creation_ms, last_updated_ms FROM aliases WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(alias_from_row).transpose()
    }

    async fn insert_alias(&self, alias: &AliasRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO aliases (name, target_key_id, creation_ms, last_updated_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&alias.name)
        .bind(&alias.target_key_id)
        .bind(alias.creation_ms)
        .bind(alias.last_updated_ms)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn update_alias(
        &self,
        name: &str,
        target_key_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE aliases SET target_key_id = $1, last_updated_ms = $2 WHERE name = $3",
        )
        .bind(target_key_id)
        .bind(now_ms)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_alias(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM aliases WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_aliases(
        &self,
        key_id: Option<&str>,
        after: Option<&str>,
        limit_n: u32,
    ) -> Result<Vec<AliasRow>, StoreError> {
        let q = match (key_id, after) {
            (None, None) => sqlx::query(
                "SELECT name, target_key_id, creation_ms, last_updated_ms FROM aliases \
                 ORDER BY name LIMIT $1",
            ),
            (None, Some(after)) => sqlx::query(
                "SELECT name, target_key_id, creation_ms, last_updated_ms FROM aliases \
                 WHERE name > $1 ORDER BY name LIMIT $2",
            )
            .bind(after),
            (Some(key_id), None) => sqlx::query(
                "SELECT name, target_key_id, creation_ms, last_updated_ms FROM aliases \
                 WHERE target_key_id = $1 ORDER BY name LIMIT $2",
            )
            .bind(key_id),
            (Some(key_id), Some(after)) => sqlx::query(
                "SELECT name, target_key_id, creation_ms, last_updated_ms FROM aliases \
                 WHERE target_key_id = $1 AND name > $2 ORDER BY name LIMIT $3",
            )
            .bind(key_id)
            .bind(after),
        };
        let rows = q
            .bind(limit(limit_n))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(alias_from_row).collect()
    }
}
