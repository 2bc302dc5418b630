//! Every query, written once for both backends. Placeholders are `$n`: PostgreSQL's own
//! syntax, and on SQLite a named parameter that sqlx binds by its number, so a parameter may
//! appear twice (`$3 IS NULL OR … = $3`).
//!
//! Paging uses `> COALESCE($n, '')`: with no `after` every row qualifies (ids, alias names and
//! grant ids are never empty), and the condition stays a range on the index either way.
//! Ordering is bytewise on both backends: SQLite compares `TEXT` with `BINARY` and every
//! PostgreSQL text column is `COLLATE "C"` (see `schema.rs`).

// ---- keys ---------------------------------------------------------------------------------

pub(crate) const GET_KEY: &str =
    "SELECT key_id, account, region, version, due_ms, doc FROM keys WHERE key_id = $1";
pub(crate) const INSERT_KEY: &str = "INSERT INTO keys (key_id, account, region, version, due_ms, doc) \
     VALUES ($1, $2, $3, $4, $5, $6)";
/// Compare-and-swap: only the row still at the expected version changes.
pub(crate) const UPDATE_KEY: &str =
    "UPDATE keys SET version = $1, due_ms = $2, doc = $3 WHERE key_id = $4 AND version = $5";
/// `delete_key`, in this order, in one transaction.
pub(crate) const DELETE_KEY: &[&str] = &[
    "DELETE FROM aliases WHERE target_key_id = $1",
    "DELETE FROM grants WHERE key_id = $1",
    "DELETE FROM key_usage WHERE key_id = $1",
    "DELETE FROM keys WHERE key_id = $1",
];
pub(crate) const LIST_KEY_IDS: &str = "SELECT key_id FROM keys \
     WHERE account = $1 AND region = $2 AND key_id > COALESCE($3, '') ORDER BY key_id LIMIT $4";
pub(crate) const ALL_KEY_IDS: &str =
    "SELECT key_id FROM keys WHERE key_id > COALESCE($1, '') ORDER BY key_id LIMIT $2";
pub(crate) const DUE_KEY_IDS: &str = "SELECT key_id FROM keys \
     WHERE due_ms IS NOT NULL AND due_ms <= $1 ORDER BY due_ms, key_id LIMIT $2";

// ---- aliases ------------------------------------------------------------------------------

macro_rules! alias_columns {
    () => {
        "account, region, name, target_key_id, creation_ms, last_updated_ms"
    };
}

pub(crate) const GET_ALIAS: &str = concat!(
    "SELECT ",
    alias_columns!(),
    " FROM aliases WHERE account = $1 AND region = $2 AND name = $3"
);
pub(crate) const INSERT_ALIAS: &str = concat!(
    "INSERT INTO aliases (",
    alias_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6)"
);
pub(crate) const UPDATE_ALIAS: &str = "UPDATE aliases SET target_key_id = $4, last_updated_ms = $5 \
     WHERE account = $1 AND region = $2 AND name = $3";
pub(crate) const DELETE_ALIAS: &str =
    "DELETE FROM aliases WHERE account = $1 AND region = $2 AND name = $3";
pub(crate) const LIST_ALIASES: &str = concat!(
    "SELECT ",
    alias_columns!(),
    " FROM aliases WHERE account = $1 AND region = $2 \
     AND ($3 IS NULL OR target_key_id = $3) AND name > COALESCE($4, '') ORDER BY name LIMIT $5"
);

// ---- grants -------------------------------------------------------------------------------

macro_rules! grant_columns {
    () => {
        "grant_id, key_id, grantee_principal, retiring_principal, name, issuing_account, \
         creation_ms, doc"
    };
}

pub(crate) const INSERT_GRANT: &str = concat!(
    "INSERT INTO grants (",
    grant_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
);
pub(crate) const GET_GRANT: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE grant_id = $1"
);
pub(crate) const DELETE_GRANT: &str = "DELETE FROM grants WHERE grant_id = $1";
pub(crate) const LIST_GRANTS: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE key_id = $1 AND grant_id > COALESCE($2, '') ORDER BY grant_id LIMIT $3"
);
pub(crate) const GRANTS_FOR_GRANTEE: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE key_id = $1 AND grantee_principal = $2 ORDER BY grant_id"
);
pub(crate) const FIND_GRANT_BY_NAME: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE key_id = $1 AND name = $2 ORDER BY grant_id LIMIT 1"
);
pub(crate) const LIST_RETIRABLE_GRANTS: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE retiring_principal = $1 AND grant_id > COALESCE($2, '') \
     ORDER BY grant_id LIMIT $3"
);
pub(crate) const COUNT_GRANTS: &str = "SELECT COUNT(*) FROM grants WHERE key_id = $1";

// ---- key last usage -----------------------------------------------------------------------

/// Upsert keeping the later timestamp (ties: the newer write); skipped for a missing key.
/// (SQLite needs the `WHERE` on an `INSERT … SELECT` before `ON CONFLICT`; it is the existence
/// check here.)
pub(crate) const RECORD_KEY_USAGE: &str = "INSERT INTO key_usage \
     (key_id, operation, timestamp_ms, event_id, request_id) \
     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM keys WHERE key_id = $1) \
     ON CONFLICT (key_id) DO UPDATE SET operation = excluded.operation, \
     timestamp_ms = excluded.timestamp_ms, event_id = excluded.event_id, \
     request_id = excluded.request_id WHERE excluded.timestamp_ms >= key_usage.timestamp_ms";
pub(crate) const GET_KEY_USAGE: &str = "SELECT key_id, operation, timestamp_ms, event_id, \
     request_id FROM key_usage WHERE key_id = $1";

// ---- metadata -----------------------------------------------------------------------------

pub(crate) const GET_META: &str = "SELECT value FROM meta WHERE name = $1";
pub(crate) const PUT_META_IF_ABSENT: &str =
    "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
pub(crate) const DELETE_META: &str = "DELETE FROM meta WHERE name = $1";
pub(crate) const SET_META: &str = "INSERT INTO meta (name, value) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";
