//! The embedded SQLite backend.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use keyferry_core::store::{AliasRow, Store, StoreError, StoredKey};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::error::{backend, limit, map_err};
use crate::schema;

/// Readers in parallel; writes go through one connection (SQLite allows one writer anyway,
/// and a single writer connection avoids `SQLITE_BUSY` on lock upgrades).
const READERS: u32 = 4;

/// A [`Store`] in one SQLite file (WAL mode, `synchronous = FULL`).
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Open (creating the file and its parent directories if missing) and migrate the
    /// database at `path`.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        // Opening a fresh file switches it to WAL and migrates it; two processes doing that at
        // once can deadlock inside SQLite (each waits on the other's lock until busy_timeout).
        // An advisory lock on `<path>.open-lock` serialises the opening, not the use.
        let lock_path = path.with_extension("open-lock");
        let open_lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)?;
            f.lock()?;
            Ok(f)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map_err(|e| StoreError::Backend(format!("cannot lock {}: {e}", path.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            // A fresh deployment starts with no file.
            .create_if_missing(true)
            // PRAGMA journal_mode = WAL: readers and the writer do not block each other, and a
            // commit is one append to the log.
            .journal_mode(SqliteJournalMode::Wal)
            // PRAGMA synchronous = FULL: in WAL mode the log is fsynced at every commit, so an
            // acknowledged write survives kill -9 and power loss (NORMAL may lose the last
            // commits on power loss).
            .synchronous(SqliteSynchronous::Full)
            // PRAGMA busy_timeout: wait, rather than fail with SQLITE_BUSY, while another
            // process (a second server on the same file, a backup tool) holds the write lock.
            .busy_timeout(Duration::from_secs(10))
            // PRAGMA foreign_keys = ON: enforce any REFERENCES clause (SQLite's default is off).
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            // PRAGMA query_only: reader connections can never write by mistake.
            .connect_with(options.pragma("query_only", "ON"))
            .await
            .map_err(backend)?;
        drop(open_lock);
        Ok(SqliteStore {
            writer,
            reader,
            path: path.to_owned(),
        })
    }

    /// Close both pools (waits for in-flight queries).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    // BEGIN IMMEDIATE takes the write lock up front, so two processes opening the same file
    // at once apply each migration exactly once.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
    sqlx::query(schema::CREATE_VERSION_TABLE)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let current: Option<i64> = sqlx::query_scalar(schema::MAX_VERSION)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    let current = current.unwrap_or(0);
    let latest = schema::latest(schema::SQLITE);
    if current > latest {
        return Err(StoreError::Backend(format!(
            "database schema version {current} is newer than this build supports ({latest})"
        )));
    }
    for m in schema::SQLITE.iter().filter(|m| m.version > current) {
        for stmt in m.statements {
            sqlx::query(*stmt)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tracing::info!(version = m.version, "applied schema migration");
        sqlx::query("INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)")
            .bind(m.version)
            .bind(schema::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

fn alias_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AliasRow, StoreError> {
    Ok(AliasRow {
        name: row.try_get(0).map_err(backend)?,
        target_key_id: row.try_get(1).map_err(backend)?,
        creation_ms: row.try_get(2).map_err(backend)?,
        last_updated_ms: row.try_get(3).map_err(backend)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn get_key(&self, key_id: &str) -> Result<Option<StoredKey>, StoreError> {
        let row: Option<(String, i64, Option<i64>, Vec<u8>)> =
            sqlx::query_as("SELECT key_id, version, due_ms, doc FROM keys WHERE key_id = ?")
                .bind(key_id)
                .fetch_optional(&self.reader)
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
        sqlx::query("INSERT INTO keys (key_id, version, due_ms, doc) VALUES (?, ?, ?, ?)")
            .bind(&key.key_id)
            .bind(key.version)
            .bind(key.due_ms)
            .bind(&key.doc)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn update_key(&self, key: &StoredKey, expected_version: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE keys SET version = ?, due_ms = ?, doc = ? WHERE key_id = ? AND version = ?",
        )
        .bind(key.version)
        .bind(key.due_ms)
        .bind(&key.doc)
        .bind(&key.key_id)
        .bind(expected_version)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query("DELETE FROM aliases WHERE target_key_id = ?")
            .bind(key_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("DELETE FROM keys WHERE key_id = ?")
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
                "SELECT key_id FROM keys WHERE key_id > ? ORDER BY key_id LIMIT ?",
            )
            .bind(after)
            .bind(limit(limit_n)),
            None => sqlx::query_scalar("SELECT key_id FROM keys ORDER BY key_id LIMIT ?")
                .bind(limit(limit_n)),
        };
        q.fetch_all(&self.reader).await.map_err(backend)
    }

    async fn due_key_ids(&self, now_ms: i64, limit_n: u32) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT key_id FROM keys WHERE due_ms IS NOT NULL AND due_ms <= ? \
             ORDER BY due_ms, key_id LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit(limit_n))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)
    }

    async fn get_alias(&self, name: &str) -> Result<Option<AliasRow>, StoreError> {
        let row = sqlx::query(
            "SELECT name, target_key_id, creation_ms, last_updated_ms FROM aliases WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        row.as_ref().map(alias_from_row).transpose()
    }

    async fn insert_alias(&self, alias: &AliasRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO aliases (name, target_key_id, creation_ms, last_updated_ms) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(&alias.name)
        .bind(&alias.target_key_id)
        .bind(alias.creation_ms)
        .bind(alias.last_updated_ms)
        .execute(&self.writer)
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
        let done =
            sqlx::query("UPDATE aliases SET target_key_id = ?, last_updated_ms = ? WHERE name = ?")
                .bind(target_key_id)
                .bind(now_ms)
                .bind(name)
                .execute(&self.writer)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_alias(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM aliases WHERE name = ?")
            .bind(name)
            .execute(&self.writer)
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
                 ORDER BY name LIMIT ?",
            ),
            (None, Some(after)) => sqlx::query(
                "SELECT name, target_key_id, creation_ms, last_updated_ms FROM aliases \
                 WHERE name > ? ORDER BY name LIMIT ?",
            )
            .bind(after),
            (Some(key_id), None) => sqlx::query(
                "SELECT name, target_key_id, creation_ms, last_updated_ms FROM aliases \
                 WHERE target_key_id = ? ORDER BY name LIMIT ?",
            )
            .bind(key_id),
            (Some(key_id), Some(after)) => sqlx::query(
                "SELECT name, target_key_id, creation_ms, last_updated_ms FROM aliases \
                 WHERE target_key_id = ? AND name > ? ORDER BY name LIMIT ?",
            )
            .bind(key_id)
            .bind(after),
        };
        let rows = q
            .bind(limit(limit_n))
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
        rows.iter().map(alias_from_row).collect()
    }
}
