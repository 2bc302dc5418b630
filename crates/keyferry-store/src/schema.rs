//! The schema: versioned migrations, written once as templates and rendered per dialect.
//!
//! The dialects differ only in the text type (PostgreSQL's explicit `COLLATE "C"`, which
//! makes name ordering, and so `after`-paging, bytewise like SQLite's whatever the database's
//! default collation is), the blob type (`BLOB`/`BYTEA`) and how a migration reads a JSON field
//! of a key document (`doc` is UTF-8 JSON in a blob). Everything else is portable SQL.
//!
//! Version 1: `keys` (id, version, due time, document) and `aliases` (global names).
//! Version 2: keys and aliases scoped by account and Region. `keys` gains `account` and
//! `region`, filled from each document's JSON fields of the same names, with a unique index on
//! `(account, region, key_id)` (the listing order); `aliases` is rebuilt with the primary key
//! `(account, region, name)`, each alias taking its target key's account and Region. New
//! tables: `grants`, `key_usage` (last use per key) and `meta` (named values).
//!
//! Referential integrity: an alias references its target by `(account, region, key_id)` and a
//! grant its key by `key_id` (`ON DELETE CASCADE`), so neither can point at a missing key, nor
//! an alias at another account's key, even when a `CreateAlias`/`CreateGrant` on one node races
//! a key deletion on another. `delete_key` still deletes them (and the usage row, which has no
//! foreign key so that recording usage never fails a batch) explicitly, in one transaction.
//!
//! A migration is applied at most once: `schema_version` records each applied version, and
//! the runner holds the database's write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL
//! transaction-scoped advisory lock) while checking and applying, so nodes that start
//! together do not race. Each migration is one transaction with its version row.

/// One migration: its version and its statement templates, applied in one transaction.
pub(crate) struct Migration {
    pub version: i64,
    pub statements: &'static [&'static str],
}

/// How a backend spells the few things that are not portable.
pub(crate) struct Dialect {
    /// The type of every indexed text column.
    pub text: &'static str,
    /// The type of documents and values.
    pub blob: &'static str,
    /// The key document's JSON field `{}` as text (SQL NULL if absent).
    pub doc_field: &'static str,
}

pub(crate) const SQLITE: Dialect = Dialect {
    text: "TEXT",
    blob: "BLOB",
    // The CAST matters: SQLite ≥ 3.45 reads a BLOB argument of json_extract as JSONB.
    doc_field: "json_extract(CAST(doc AS TEXT), '$.{}')",
};

pub(crate) const POSTGRES: Dialect = Dialect {
    text: "TEXT COLLATE \"C\"",
    blob: "BYTEA",
    doc_field: "(convert_from(doc, 'UTF8')::jsonb ->> '{}')",
};

impl Dialect {
    /// A template with `{text}`, `{blob}`, `{doc.account}` and `{doc.region}` filled in.
    pub(crate) fn render(&self, template: &str) -> String {
        template
            .replace("{text}", self.text)
            .replace("{blob}", self.blob)
            .replace("{doc.account}", &self.doc_field.replace("{}", "account"))
            .replace("{doc.region}", &self.doc_field.replace("{}", "region"))
    }
}

pub(crate) const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (\
     version BIGINT PRIMARY KEY NOT NULL, \
     applied_ms BIGINT NOT NULL)";
pub(crate) const MAX_VERSION: &str = "SELECT MAX(version) FROM schema_version";
pub(crate) const RECORD_VERSION: &str =
    "INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)";

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        statements: &[
            "CREATE TABLE keys (\
                 key_id {text} PRIMARY KEY NOT NULL, \
                 version BIGINT NOT NULL, \
                 due_ms BIGINT NULL, \
                 doc {blob} NOT NULL)",
            "CREATE INDEX keys_due_ms ON keys (due_ms)",
            "CREATE TABLE aliases (\
                 name {text} PRIMARY KEY NOT NULL, \
                 target_key_id {text} NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE, \
                 creation_ms BIGINT NOT NULL, \
                 last_updated_ms BIGINT NOT NULL)",
            "CREATE INDEX aliases_target_key_id ON aliases (target_key_id)",
        ],
    },
    Migration {
        version: 2,
        statements: &[
            "ALTER TABLE keys ADD COLUMN account {text} NOT NULL DEFAULT ''",
            "ALTER TABLE keys ADD COLUMN region {text} NOT NULL DEFAULT ''",
            "UPDATE keys SET account = COALESCE({doc.account}, ''), \
                 region = COALESCE({doc.region}, '')",
            "CREATE UNIQUE INDEX keys_account_region_key_id ON keys (account, region, key_id)",
            "CREATE TABLE aliases_v2 (\
                 account {text} NOT NULL, \
                 region {text} NOT NULL, \
                 name {text} NOT NULL, \
                 target_key_id {text} NOT NULL, \
                 creation_ms BIGINT NOT NULL, \
                 last_updated_ms BIGINT NOT NULL, \
                 PRIMARY KEY (account, region, name), \
                 FOREIGN KEY (account, region, target_key_id) \
                     REFERENCES keys (account, region, key_id) ON DELETE CASCADE)",
            "INSERT INTO aliases_v2 \
                 (account, region, name, target_key_id, creation_ms, last_updated_ms) \
                 SELECT k.account, k.region, a.name, a.target_key_id, a.creation_ms, \
                     a.last_updated_ms \
                 FROM aliases a JOIN keys k ON k.key_id = a.target_key_id",
            "DROP TABLE aliases",
            "ALTER TABLE aliases_v2 RENAME TO aliases",
            "CREATE INDEX aliases_target_key_id ON aliases (target_key_id)",
            "CREATE TABLE grants (\
                 grant_id {text} PRIMARY KEY NOT NULL, \
                 key_id {text} NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE, \
                 grantee_principal {text} NOT NULL, \
                 retiring_principal {text} NULL, \
                 name {text} NULL, \
                 issuing_account {text} NOT NULL, \
                 creation_ms BIGINT NOT NULL, \
                 doc {blob} NOT NULL)",
            "CREATE INDEX grants_key_id ON grants (key_id, grant_id)",
            "CREATE INDEX grants_grantee ON grants (key_id, grantee_principal, grant_id)",
            "CREATE INDEX grants_name ON grants (key_id, name, grant_id)",
            "CREATE INDEX grants_retiring ON grants (retiring_principal, grant_id)",
            "CREATE TABLE key_usage (\
                 key_id {text} PRIMARY KEY NOT NULL, \
                 operation TEXT NOT NULL, \
                 timestamp_ms BIGINT NOT NULL, \
                 event_id TEXT NOT NULL, \
                 request_id TEXT NOT NULL)",
            "CREATE TABLE meta (\
                 name {text} PRIMARY KEY NOT NULL, \
                 value {blob} NOT NULL)",
        ],
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Milliseconds since the epoch, for `schema_version.applied_ms`.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_completely() {
        for dialect in [&SQLITE, &POSTGRES] {
            for m in MIGRATIONS {
                for t in m.statements {
                    let sql = dialect.render(t);
                    assert!(!sql.contains('{') && !sql.contains('}'), "{sql}");
                }
            }
        }
        assert_eq!(
            POSTGRES.render("x {text} {doc.region}"),
            "x TEXT COLLATE \"C\" (convert_from(doc, 'UTF8')::jsonb ->> 'region')"
        );
        assert_eq!(
            SQLITE.render("{blob} {doc.account}"),
            "BLOB json_extract(CAST(doc AS TEXT), '$.account')"
        );
    }
}
