//! The embedded SQLite backend: opening, pragmas and pools. The queries are shared with
//! PostgreSQL (`imp.rs`, `sql.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyferry_core::store::StoreError;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::map_err;
use crate::options::StoreOptions;
use crate::schema;

/// Readers in parallel; writes go through one connection (SQLite allows one writer anyway,
/// and a single writer connection avoids `SQLITE_BUSY` on lock upgrades).
const READERS: u32 = 4;

/// A [`Store`](keyferry_core::store::Store) in one SQLite file (WAL mode,
/// `synchronous = FULL`).
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
    /// Client-side limit on one operation.
    deadline: Duration,
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
    /// database at `path`, with the default [`StoreOptions`].
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, &StoreOptions::default()).await
    }

    /// [`SqliteStore::open`] with explicit timeouts.
    pub async fn open_with(path: &Path, opts: &StoreOptions) -> Result<SqliteStore, StoreError> {
        match tokio::time::timeout(opts.open_timeout, SqliteStore::open_inner(path, opts)).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "opening {} took longer than {} ms",
                path.display(),
                opts.open_timeout.as_millis()
            ))),
        }
    }

    async fn open_inner(path: &Path, opts: &StoreOptions) -> Result<SqliteStore, StoreError> {
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
            .busy_timeout(opts.sqlite_busy_timeout)
            // PRAGMA foreign_keys = ON: enforce the REFERENCES clauses (SQLite's default is off).
            .foreign_keys(true);
        // Opening and migrating may wait for the lock of another process; the open deadline
        // bounds it, on a connection of its own. Requests then fail fast: a request waits at
        // most `acquire_timeout` for the writer (or a reader) connection.
        let migrator = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(opts.connect_timeout)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        migrate(&migrator).await?;
        migrator.close().await;
        // Lazy: the migrator has shown the file opens; connections are made on first use.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(opts.acquire_timeout)
            .connect_lazy_with(options.clone());
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(opts.acquire_timeout)
            // PRAGMA query_only: reader connections can never write by mistake.
            .connect_lazy_with(options.pragma("query_only", "ON"));
        drop(open_lock);
        Ok(SqliteStore {
            writer,
            reader,
            path: path.to_owned(),
            deadline: opts.acquire_timeout + opts.sqlite_busy_timeout + opts.statement_timeout,
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
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
    SqliteStore::apply_migrations(&mut tx, &schema::SQLITE).await?;
    tx.commit().await.map_err(map_err)
}

#[allow(clippy::wildcard_imports)]
mod store_impl {
    use keyferry_core::store::{AliasRow, GrantRow, KeyUsageRow, StoreError, StoredKey};

    use super::SqliteStore;
    use crate::imp::*;
    use crate::sql;

    crate::imp::impl_store!(SqliteStore, sqlx::Sqlite);
}
