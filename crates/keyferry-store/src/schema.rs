//! The schema, as versioned migrations per backend, and the runner's bookkeeping SQL.
//!
//! The dialects differ only in the blob type (`BLOB`/`BYTEA`) and in PostgreSQL's explicit
//! `COLLATE "C"`, which makes name ordering (and so `after`-paging) bytewise like SQLite's,
//! whatever the database's default collation is. Everything else is portable SQL.
//!
//! `aliases.target_key_id` references `keys` (`ON DELETE CASCADE`): an alias can never point
//! at a missing key, even when a `CreateAlias` on one node races a key deletion on another.
//! `delete_key` still deletes the aliases explicitly, in the same transaction.
//!
//! A migration is applied at most once: `schema_version` records each applied version, and
//! the runner holds the database's write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL
//! transaction-scoped advisory lock) while checking and applying, so nodes that start
//! together do not race.

/// One migration: its version and its statements, applied in one transaction.
pub(crate) struct Migration {
    pub version: i64,
    pub statements: &'static [&'static str],
}

pub(crate) const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (\
     version BIGINT PRIMARY KEY NOT NULL, \
     applied_ms BIGINT NOT NULL)";
pub(crate) const MAX_VERSION: &str = "SELECT MAX(version) FROM schema_version";

pub(crate) const SQLITE: &[Migration] = &[Migration {
    version: 1,
    statements: &[
        "CREATE TABLE keys (\
             key_id TEXT PRIMARY KEY NOT NULL, \
             version BIGINT NOT NULL, \
             due_ms BIGINT NULL, \
             doc BLOB NOT NULL)",
        "CREATE INDEX keys_due_ms ON keys (due_ms)",
        "CREATE TABLE aliases (\
             name TEXT PRIMARY KEY NOT NULL, \
             target_key_id TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE, \
             creation_ms BIGINT NOT NULL, \
             last_updated_ms BIGINT NOT NULL)",
        "CREATE INDEX aliases_target_key_id ON aliases (target_key_id)",
    ],
}];

pub(crate) const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    statements: &[
        "CREATE TABLE keys (\
             key_id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, \
             version BIGINT NOT NULL, \
             due_ms BIGINT NULL, \
             doc BYTEA NOT NULL)",
        "CREATE INDEX keys_due_ms ON keys (due_ms)",
        "CREATE TABLE aliases (\
             name TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, \
             target_key_id TEXT COLLATE \"C\" NOT NULL \
                 REFERENCES keys (key_id) ON DELETE CASCADE, \
             creation_ms BIGINT NOT NULL, \
             last_updated_ms BIGINT NOT NULL)",
        "CREATE INDEX aliases_target_key_id ON aliases (target_key_id)",
    ],
}];

/// The newest schema version this build knows.
pub(crate) fn latest(migrations: &[Migration]) -> i64 {
    migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Milliseconds since the epoch, for `schema_version.applied_ms`.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
