//! Runs the conformance suite against SQLite always and PostgreSQL when
//! `KEYFERRY_TEST_POSTGRES_URL` is set (see scripts/pg-test.sh).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use keyferry_store::{PgStore, SqliteStore, Store, StoreError, StoredKey};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    let fresh = common::SqliteFresh::new();
    common::run_all(&fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance() {
    let Some(fresh) = common::PgFresh::from_env() else {
        println!(
            "postgres_conformance skipped: {} is not set (run scripts/pg-test.sh)",
            common::PG_ENV
        );
        return;
    };
    common::run_all(&fresh).await;
    fresh.drop_all().await;
}

/// Reopening an existing file keeps its data and does not re-run migrations.
#[tokio::test]
async fn sqlite_reopen_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/not/created/yet.db");
    let s = SqliteStore::open(&path).await.unwrap();
    let k = StoredKey {
        key_id: "k".into(),
        account: common::ACCT.into(),
        region: common::REGION.into(),
        version: 1,
        due_ms: None,
        doc: b"doc".to_vec(),
    };
    s.insert_key(&k).await.unwrap();
    s.close().await;
    drop(s);
    let s = SqliteStore::open(&path).await.unwrap();
    assert_eq!(s.get_key("k").await.unwrap(), Some(k));
    // The pragmas documented in sqlite.rs are in effect.
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(
            &sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_all(
            &sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(versions, vec![1, 2]);
}

/// Two stores opened on the same file at once (two server processes) migrate once and see
/// each other's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_handles_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let (a, b) = tokio::join!(SqliteStore::open(&path), SqliteStore::open(&path));
    let (a, b) = (a.unwrap(), b.unwrap());
    let k = StoredKey {
        key_id: "k".into(),
        account: common::ACCT.into(),
        region: common::REGION.into(),
        version: 1,
        due_ms: Some(1),
        doc: vec![1],
    };
    a.insert_key(&k).await.unwrap();
    assert_eq!(b.get_key("k").await.unwrap(), Some(k.clone()));
    assert!(matches!(
        b.insert_key(&k).await,
        Err(StoreError::AlreadyExists)
    ));
}

#[tokio::test]
async fn bad_locations_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A directory is not a database file.
    let err = SqliteStore::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    // A file that is not SQLite.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x42u8; 8192]).unwrap();
    let err = SqliteStore::open(&junk).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    // An unparsable PostgreSQL URL: error without the password.
    let err = PgStore::connect("postgres://u:sekrit@[bad/db")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{msg}");
    assert!(!msg.contains("sekrit"), "{msg}");
    // Nothing listens on port 1: after connect_timeout of retrying, Unavailable (retryable),
    // not a panic, and without the password.
    let opts = keyferry_store::StoreOptions {
        connect_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let err = keyferry_store::open_store_with("postgres://u:sekrit@127.0.0.1:1/db", &opts)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("sekrit"));
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[tokio::test]
async fn sqlite_rejects_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO schema_version (version, applied_ms) VALUES (99, 0)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(err.to_string().contains("newer than this build"), "{err}");
}
