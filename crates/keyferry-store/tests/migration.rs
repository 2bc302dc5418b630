//! Upgrading a version-1 database in place: a database made with the v1 schema (the DDL and
//! the rows exactly as the version-1 code wrote them: keys without scope columns, aliases with
//! global names) is opened by this build, which applies migration 2. Runs on SQLite always and
//! on PostgreSQL when `KEYFERRY_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{ACCT, REGION};
use keyferry_store::{GrantRow, Store, StoredKey, open_store};

/// The version-1 schema as the old code created it (`schema.rs` at version 1), with `{text}`
/// and `{blob}` per dialect.
const V1: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY NOT NULL, \
     applied_ms BIGINT NOT NULL)",
    "CREATE TABLE keys (key_id {text} PRIMARY KEY NOT NULL, version BIGINT NOT NULL, \
     due_ms BIGINT NULL, doc {blob} NOT NULL)",
    "CREATE INDEX keys_due_ms ON keys (due_ms)",
    "CREATE TABLE aliases (name {text} PRIMARY KEY NOT NULL, \
     target_key_id {text} NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE, \
     creation_ms BIGINT NOT NULL, last_updated_ms BIGINT NOT NULL)",
    "CREATE INDEX aliases_target_key_id ON aliases (target_key_id)",
    "INSERT INTO schema_version (version, applied_ms) VALUES (1, 1700000000000)",
];

const OTHER: &str = "444455556666";
const WEST: &str = "eu-west-1";

/// (key id, account, region, due_ms)
const KEYS: &[(&str, &str, &str, Option<i64>)] = &[
    (
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        ACCT,
        REGION,
        Some(1_800_000_000_000),
    ),
    ("2234abcd-12ab-34cd-56ef-1234567890ab", ACCT, REGION, None),
    ("3234abcd-12ab-34cd-56ef-1234567890ab", OTHER, REGION, None),
    ("mrk-4234abcd12ab34cd56ef1234567890ab", ACCT, WEST, Some(5)),
];
/// (alias name, target, creation_ms, last_updated_ms)
const ALIASES: &[(&str, &str, i64, i64)] = &[
    ("alias/app", "1234abcd-12ab-34cd-56ef-1234567890ab", 10, 20),
    (
        "alias/app-2",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        11,
        11,
    ),
    (
        "alias/other",
        "3234abcd-12ab-34cd-56ef-1234567890ab",
        12,
        30,
    ),
    ("alias/west", "mrk-4234abcd12ab34cd56ef1234567890ab", 13, 13),
];

/// A key document like the version-1 code's `KeyRecord` JSON (field order and extra fields
/// included; non-ASCII in the description, to check the UTF-8 decoding).
fn v1_doc(key_id: &str, account: &str, region: &str) -> Vec<u8> {
    format!(
        "{{\"format\":1,\"key_id\":\"{key_id}\",\"account\":\"{account}\",\"region\":\"{region}\",\
         \"creation_ms\":1700000000000,\"description\":\"clé – ключ\",\"key_spec\":\"SYMMETRIC_DEFAULT\",\
         \"key_usage\":\"ENCRYPT_DECRYPT\",\"origin\":\"AWS_KMS\",\"state\":\"Enabled\",\
         \"multi_region\":false,\"deletion_ms\":null,\"pending_window_days\":null,\"policy\":\"{{}}\",\
         \"tags\":{{\"account\":\"not-this\"}},\"rotation_enabled\":false,\"rotation_period_days\":null,\
         \"next_rotation_ms\":null,\"on_demand_rotations\":0,\"materials\":[]}}"
    )
    .into_bytes()
}

const INSERT_KEY_V1: &str =
    "INSERT INTO keys (key_id, version, due_ms, doc) VALUES ($1, $2, $3, $4)";
const INSERT_ALIAS_V1: &str = "INSERT INTO aliases (name, target_key_id, creation_ms, last_updated_ms) VALUES ($1, $2, $3, $4)";

/// Write the v1 database through `$pool` with `{text}`/`{blob}` = `$text`/`$blob`.
macro_rules! make_v1 {
    ($pool:expr, $text:expr, $blob:expr) => {{
        let pool = $pool;
        let mut tx = pool.begin().await.unwrap();
        for stmt in V1 {
            let sql = stmt.replace("{text}", $text).replace("{blob}", $blob);
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        for (i, (id, account, region, due)) in KEYS.iter().enumerate() {
            sqlx::query(INSERT_KEY_V1)
                .bind(*id)
                .bind(i as i64 + 1)
                .bind(*due)
                .bind(v1_doc(id, account, region))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        for (name, target, created, updated) in ALIASES {
            sqlx::query(INSERT_ALIAS_V1)
                .bind(*name)
                .bind(*target)
                .bind(*created)
                .bind(*updated)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        pool.close().await;
    }};
}

/// Reopen through `open_store($location)` (no second migration), then return the applied
/// versions read through `$pool`.
macro_rules! reopen_and_versions {
    ($location:expr, $pool:expr) => {{
        let s = open_store($location).await.unwrap();
        assert!(s.get_key(KEYS[1].0).await.unwrap().is_some());
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_version ORDER BY version")
                .fetch_all($pool)
                .await
                .unwrap();
        versions
    }};
}

/// After the upgrade: every row kept, with the scope from its document (aliases from their
/// target key), and the new tables in place.
async fn check_upgraded(s: &dyn Store) {
    for (i, (id, account, region, due)) in KEYS.iter().enumerate() {
        assert_eq!(
            s.get_key(id).await.unwrap(),
            Some(StoredKey {
                key_id: id.to_string(),
                account: account.to_string(),
                region: region.to_string(),
                version: i as i64 + 1,
                due_ms: *due,
                doc: v1_doc(id, account, region),
            })
        );
    }
    assert_eq!(
        s.list_key_ids(ACCT, REGION, None, 100).await.unwrap(),
        vec![KEYS[0].0, KEYS[1].0]
    );
    assert_eq!(
        s.list_key_ids(OTHER, REGION, None, 100).await.unwrap(),
        vec![KEYS[2].0]
    );
    assert_eq!(
        s.list_key_ids(ACCT, WEST, None, 100).await.unwrap(),
        vec![KEYS[3].0]
    );
    assert_eq!(s.due_key_ids(10, 10).await.unwrap(), vec![KEYS[3].0]);

    let names =
        |rows: Vec<keyferry_store::AliasRow>| rows.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_aliases(ACCT, REGION, None, None, 100).await.unwrap()),
        vec!["alias/app", "alias/app-2"]
    );
    assert_eq!(
        names(
            s.list_aliases(OTHER, REGION, None, None, 100)
                .await
                .unwrap()
        ),
        vec!["alias/other"]
    );
    assert_eq!(
        names(s.list_aliases(ACCT, WEST, None, None, 100).await.unwrap()),
        vec!["alias/west"]
    );
    assert_eq!(
        s.get_alias(ACCT, REGION, "alias/app").await.unwrap(),
        Some(common::alias("alias/app", KEYS[0].0, 10)).map(|mut a| {
            a.last_updated_ms = 20;
            a
        })
    );
    assert_eq!(
        s.get_alias(ACCT, REGION, "alias/other").await.unwrap(),
        None
    );
    let other = s
        .get_alias(OTHER, REGION, "alias/other")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            other.target_key_id.as_str(),
            other.creation_ms,
            other.last_updated_ms
        ),
        (KEYS[2].0, 12, 30)
    );
    // The upgraded schema enforces the new rules: a name per scope, a target in the scope.
    s.insert_alias(&common::scoped_alias(
        OTHER,
        REGION,
        "alias/app",
        KEYS[2].0,
        40,
    ))
    .await
    .unwrap();
    assert!(
        s.insert_alias(&common::alias("alias/cross", KEYS[2].0, 41))
            .await
            .is_err()
    );
    // New tables.
    let g = GrantRow {
        grant_id: "g".into(),
        key_id: KEYS[0].0.into(),
        grantee_principal: "p".into(),
        retiring_principal: None,
        name: None,
        issuing_account: ACCT.into(),
        creation_ms: 1,
        doc: b"{}".to_vec(),
    };
    s.insert_grant(&g).await.unwrap();
    s.record_key_usage(&[common::usage(KEYS[0].0, "Encrypt", 5)])
        .await
        .unwrap();
    assert!(s.put_meta_if_absent("m", b"v").await.unwrap());
    // Deleting an upgraded key cascades to everything of it.
    s.delete_key(KEYS[0].0).await.unwrap();
    assert_eq!(s.get_alias(ACCT, REGION, "alias/app").await.unwrap(), None);
    assert_eq!(s.get_grant("g").await.unwrap(), None);
    assert_eq!(s.get_key_usage(KEYS[0].0).await.unwrap(), None);
    assert_eq!(
        names(s.list_aliases(ACCT, REGION, None, None, 100).await.unwrap()),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn sqlite_upgrades_a_v1_file_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    make_v1!(
        sqlx::SqlitePool::connect(&url).await.unwrap(),
        "TEXT",
        "BLOB"
    );

    let s = open_store(&path.display().to_string()).await.unwrap();
    check_upgraded(&*s).await;
    drop(s);
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    assert_eq!(
        reopen_and_versions!(&path.display().to_string(), &pool),
        vec![1, 2]
    );
    // The rebuilt aliases table keeps foreign keys consistent.
    let violations: Vec<(String,)> =
        sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(violations.is_empty(), "{violations:?}");
}

#[tokio::test]
async fn postgres_upgrades_a_v1_database_in_place() {
    let Some(fresh) = common::PgFresh::from_env() else {
        println!("postgres migration skipped: {} is not set", common::PG_ENV);
        return;
    };
    let url = fresh.create_database().await;
    make_v1!(
        sqlx::PgPool::connect(&url).await.unwrap(),
        "TEXT COLLATE \"C\"",
        "BYTEA"
    );
    let s = open_store(&url).await.unwrap();
    check_upgraded(&*s).await;
    drop(s);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    assert_eq!(reopen_and_versions!(&url, &pool), vec![1, 2]);
    pool.close().await;
    fresh.drop_all().await;
}
