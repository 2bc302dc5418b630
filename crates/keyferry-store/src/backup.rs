//! Online backup of the SQLite store (`keyferry admin backup` / `restore`): `VACUUM INTO` writes
//! a consistent snapshot of the database, as of one read transaction, into a new file while the
//! server keeps reading and writing (in WAL mode a reader never waits for the writer). The copy
//! is then checked (`PRAGMA integrity_check`) and described. PostgreSQL is backed up with
//! `pg_dump` (see the README); there is nothing Keyferry-specific to add to it.

use std::path::Path;
use std::time::Duration;

use keyferry_core::store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use crate::error::map_err;
use crate::schema;

/// Queries of the backup tool (SQLite only: PostgreSQL has pg_dump).
const VACUUM_INTO: &str = "VACUUM INTO $1";
const INTEGRITY_CHECK: &str = "PRAGMA integrity_check";
const COUNT_KEYS: &str = "SELECT COUNT(*) FROM keys";

/// What a backup copy holds.
#[derive(Debug, Clone)]
pub struct SqliteBackupInfo {
    /// Schema version of the copy (`schema_version`).
    pub schema_version: i64,
    /// Key records in the copy.
    pub keys: i64,
    /// The root key's check value stored in the copy (`meta` entry `name`), if any.
    pub root_key_check: Option<Vec<u8>>,
}

/// How long the copy waits for a lock held by another process (a migration at start-up).
const BUSY: Duration = Duration::from_secs(10);

async fn connect(path: &Path, read_only: bool) -> Result<SqlitePool, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Backend(format!(
            "no SQLite database at {}",
            path.display()
        )));
    }
    // No journal-mode change and no migration: the file is used as it is.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(read_only)
        .busy_timeout(BUSY);
    SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(BUSY)
        .connect_with(options)
        .await
        .map_err(map_err)
}

/// Copy the SQLite database at `source` (in use by a server or not) into the new file `dest`
/// (which must not exist), check the copy and describe it. `meta_name` is the `meta` entry
/// whose value is reported as [`SqliteBackupInfo::root_key_check`].
pub async fn backup_sqlite(
    source: &Path,
    dest: &Path,
    meta_name: &str,
) -> Result<SqliteBackupInfo, StoreError> {
    if dest.exists() {
        return Err(StoreError::Backend(format!(
            "{} already exists",
            dest.display()
        )));
    }
    let dest_text = dest
        .to_str()
        .ok_or_else(|| StoreError::Backend(format!("{} is not a UTF-8 path", dest.display())))?;
    let pool = connect(source, false).await?;
    let copied = sqlx::query(VACUUM_INTO)
        .bind(dest_text)
        .execute(&pool)
        .await
        .map_err(map_err);
    pool.close().await;
    copied?;
    // VACUUM INTO does not sync the new file.
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Backend(format!("sync {}: {e}", dest.display())))?;
    inspect_sqlite(dest, meta_name).await
}

/// Check an SQLite database file (a backup copy) without changing it: `PRAGMA integrity_check`,
/// its schema version (no newer than this build knows), its number of keys and the `meta`
/// entry `meta_name`.
pub async fn inspect_sqlite(path: &Path, meta_name: &str) -> Result<SqliteBackupInfo, StoreError> {
    let pool = connect(path, true).await?;
    let result = inspect(&pool, meta_name).await;
    pool.close().await;
    let info = result?;
    if info.schema_version > schema::latest() {
        return Err(StoreError::Backend(format!(
            "{} has schema version {}; this keyferry knows up to {}: use a newer keyferry",
            path.display(),
            info.schema_version,
            schema::latest()
        )));
    }
    Ok(info)
}

async fn inspect(pool: &SqlitePool, meta_name: &str) -> Result<SqliteBackupInfo, StoreError> {
    let rows = sqlx::query(INTEGRITY_CHECK)
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    let verdict: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap_or_default())
        .collect();
    if verdict != ["ok"] {
        return Err(StoreError::Backend(format!(
            "integrity check failed: {}",
            verdict.join("; ")
        )));
    }
    let schema_version: Option<i64> = sqlx::query_scalar(schema::MAX_VERSION)
        .fetch_one(pool)
        .await
        .map_err(|e| StoreError::Backend(format!("not a Keyferry database: {e}")))?;
    let keys: i64 = sqlx::query_scalar(COUNT_KEYS)
        .fetch_one(pool)
        .await
        .map_err(|e| StoreError::Backend(format!("not a Keyferry database: {e}")))?;
    let root_key_check: Option<Vec<u8>> = sqlx::query_scalar(crate::sql::GET_META)
        .bind(meta_name)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    Ok(SqliteBackupInfo {
        schema_version: schema_version.unwrap_or(0),
        keys,
        root_key_check,
    })
}
