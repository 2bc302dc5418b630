//! The backend conformance suite: generic checks over `&dyn Store`, plus helpers that give
//! each check a fresh SQLite file or a fresh PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use keyferry_store::{AliasRow, Store, StoreError, StoredKey, open_store};
use sqlx::Connection;

pub const PG_ENV: &str = "KEYFERRY_TEST_POSTGRES_URL";

pub fn key(id: &str, version: i64, due_ms: Option<i64>, doc: &[u8]) -> StoredKey {
    StoredKey {
        key_id: id.to_owned(),
        version,
        due_ms,
        doc: doc.to_vec(),
    }
}

pub fn alias(name: &str, target: &str, ms: i64) -> AliasRow {
    AliasRow {
        name: name.to_owned(),
        target_key_id: target.to_owned(),
        creation_ms: ms,
        last_updated_ms: ms,
    }
}

/// Something that yields a fresh, empty store for each check.
#[allow(async_fn_in_trait)]
pub trait Fresh {
    async fn fresh(&self) -> Arc<dyn Store>;
}

/// Fresh SQLite files in one temporary directory.
pub struct SqliteFresh {
    pub dir: tempfile::TempDir,
    n: AtomicU32,
}

impl SqliteFresh {
    pub fn new() -> Self {
        SqliteFresh {
            dir: tempfile::tempdir().unwrap(),
            n: AtomicU32::new(0),
        }
    }
}

impl Fresh for SqliteFresh {
    async fn fresh(&self) -> Arc<dyn Store> {
        let n = self.n.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.path().join(format!("store-{n}.db"));
        // Exercise both spellings accepted by open_store.
        let spec = if n.is_multiple_of(2) {
            format!("sqlite://{}", path.display())
        } else {
            path.display().to_string()
        };
        open_store(&spec).await.unwrap()
    }
}

/// Fresh PostgreSQL databases created (and dropped at the end) on the server named by
/// `KEYFERRY_TEST_POSTGRES_URL`.
pub struct PgFresh {
    pub admin_url: String,
    prefix: String,
    created: std::sync::Mutex<Vec<String>>,
}

/// `url` with its database path replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[scheme_end..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let after = &rest[auth_end..];
    let query = after.find('?').map(|q| &after[q..]).unwrap_or("");
    format!("{}/{db}{query}", &url[..scheme_end + auth_end])
}

impl PgFresh {
    pub fn from_env() -> Option<Self> {
        let admin_url = std::env::var(PG_ENV).ok().filter(|s| !s.is_empty())?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Some(PgFresh {
            admin_url,
            prefix: format!("kf_test_{}_{}", std::process::id(), nanos % 1_000_000_000),
            created: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Create a new empty database and return its URL.
    pub async fn create_database(&self) -> String {
        let name = {
            let mut created = self.created.lock().unwrap();
            let name = format!("{}_{}", self.prefix, created.len());
            created.push(name.clone());
            name
        };
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        with_database(&self.admin_url, &name)
    }

    /// Drop every database this run created.
    pub async fn drop_all(&self) {
        let names = std::mem::take(&mut *self.created.lock().unwrap());
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        for name in names {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

impl Fresh for PgFresh {
    async fn fresh(&self) -> Arc<dyn Store> {
        let url = self.create_database().await;
        open_store(&url).await.unwrap()
    }
}

/// Run every check, each on a fresh store.
pub async fn run_all(f: &impl Fresh) {
    insert_get_duplicate(&*f.fresh().await).await;
    compare_and_swap(&*f.fresh().await).await;
    delete_cascades_aliases(&*f.fresh().await).await;
    ordered_paging(&*f.fresh().await).await;
    due_key_ids(&*f.fresh().await).await;
    alias_crud_and_listing(&*f.fresh().await).await;
    concurrent_cas_exactly_one_wins(f.fresh().await).await;
}

pub async fn insert_get_duplicate(s: &dyn Store) {
    assert_eq!(s.get_key("k1").await.unwrap(), None);
    let k = key("k1", 1, Some(42), b"\x00doc\xffbytes");
    s.insert_key(&k).await.unwrap();
    assert_eq!(s.get_key("k1").await.unwrap(), Some(k.clone()));
    let k_no_due = key("k2", 1, None, b"");
    s.insert_key(&k_no_due).await.unwrap();
    assert_eq!(s.get_key("k2").await.unwrap(), Some(k_no_due));

    // Duplicate insert: AlreadyExists, and the stored document is unchanged.
    let dup = key("k1", 1, None, b"other");
    assert!(matches!(
        s.insert_key(&dup).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(s.get_key("k1").await.unwrap(), Some(k));
    // Ids are case-sensitive.
    assert_eq!(s.get_key("K1").await.unwrap(), None);
}

pub async fn compare_and_swap(s: &dyn Store) {
    s.insert_key(&key("k", 1, None, b"v1")).await.unwrap();
    // Success: version 1 -> 2.
    assert!(s.update_key(&key("k", 2, Some(7), b"v2"), 1).await.unwrap());
    assert_eq!(
        s.get_key("k").await.unwrap(),
        Some(key("k", 2, Some(7), b"v2"))
    );
    // Conflict: stale expected version changes nothing.
    assert!(!s.update_key(&key("k", 2, None, b"stale"), 1).await.unwrap());
    assert!(
        !s.update_key(&key("k", 4, None, b"future"), 3)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_key("k").await.unwrap(),
        Some(key("k", 2, Some(7), b"v2"))
    );
    // Clearing due_ms works.
    assert!(s.update_key(&key("k", 3, None, b"v3"), 2).await.unwrap());
    assert_eq!(
        s.get_key("k").await.unwrap(),
        Some(key("k", 3, None, b"v3"))
    );
    // Updating a missing key is a conflict, not an error, and does not create it.
    assert!(!s.update_key(&key("nope", 2, None, b""), 1).await.unwrap());
    assert_eq!(s.get_key("nope").await.unwrap(), None);
}

pub async fn delete_cascades_aliases(s: &dyn Store) {
    s.insert_key(&key("a", 1, None, b"a")).await.unwrap();
    s.insert_key(&key("b", 1, None, b"b")).await.unwrap();
    s.insert_alias(&alias("alias/a1", "a", 1)).await.unwrap();
    s.insert_alias(&alias("alias/a2", "a", 2)).await.unwrap();
    s.insert_alias(&alias("alias/b1", "b", 3)).await.unwrap();
    s.delete_key("a").await.unwrap();
    assert_eq!(s.get_key("a").await.unwrap(), None);
    assert_eq!(s.get_alias("alias/a1").await.unwrap(), None);
    assert_eq!(s.get_alias("alias/a2").await.unwrap(), None);
    assert_eq!(
        s.get_alias("alias/b1").await.unwrap(),
        Some(alias("alias/b1", "b", 3))
    );
    assert_eq!(s.list_aliases(None, None, 100).await.unwrap().len(), 1);
    // Deleting a missing key is fine.
    s.delete_key("a").await.unwrap();
    s.delete_key("never").await.unwrap();
    // The id can be reused after deletion.
    s.insert_key(&key("a", 1, None, b"again")).await.unwrap();
    // An alias cannot point at a missing key (insert or update).
    assert!(
        s.insert_alias(&alias("alias/x", "missing", 1))
            .await
            .is_err()
    );
    assert!(s.update_alias("alias/b1", "missing", 9).await.is_err());
    assert_eq!(
        s.get_alias("alias/b1").await.unwrap(),
        Some(alias("alias/b1", "b", 3))
    );
}

pub async fn ordered_paging(s: &dyn Store) {
    // Inserted out of order; includes ids whose order differs between bytewise and
    // locale-aware collations (uppercase vs lowercase, '-' vs letters).
    let ids = [
        "mrk-b", "1234abcd", "Zeta", "alpha", "alpha-2", "alpha2", "beta", "_x", "mrk-a",
    ];
    for id in ids {
        s.insert_key(&key(id, 1, None, id.as_bytes()))
            .await
            .unwrap();
    }
    let mut sorted: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    sorted.sort(); // bytewise
    assert_eq!(s.list_key_ids(None, 100).await.unwrap(), sorted);
    // Page through 2 at a time.
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.list_key_ids(after.as_deref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        got.extend(page);
    }
    assert_eq!(got, sorted);
    // `after` is exclusive and need not exist.
    assert_eq!(
        s.list_key_ids(Some("alpha"), 2).await.unwrap(),
        vec!["alpha-2".to_string(), "alpha2".to_string()]
    );
    assert_eq!(
        s.list_key_ids(Some("alpha0"), 1).await.unwrap(),
        vec!["alpha2".to_string()]
    );
    assert!(s.list_key_ids(Some("zzz"), 10).await.unwrap().is_empty());
    assert!(s.list_key_ids(None, 0).await.unwrap().is_empty());
}

pub async fn due_key_ids(s: &dyn Store) {
    s.insert_key(&key("late", 1, Some(300), b"")).await.unwrap();
    s.insert_key(&key("early", 1, Some(100), b""))
        .await
        .unwrap();
    s.insert_key(&key("mid", 1, Some(200), b"")).await.unwrap();
    s.insert_key(&key("never", 1, None, b"")).await.unwrap();
    s.insert_key(&key("also-early", 1, Some(100), b""))
        .await
        .unwrap();
    assert!(s.due_key_ids(99, 10).await.unwrap().is_empty());
    let mut due = s.due_key_ids(200, 10).await.unwrap();
    due.sort();
    assert_eq!(due, vec!["also-early", "early", "mid"]);
    assert_eq!(s.due_key_ids(i64::MAX, 10).await.unwrap().len(), 4);
    // The limit is honoured, taking the earliest first.
    let two = s.due_key_ids(i64::MAX, 2).await.unwrap();
    assert_eq!(two.len(), 2);
    assert!(two.iter().all(|k| k.contains("early")), "{two:?}");
    // due_ms changes via CAS are reflected.
    assert!(s.update_key(&key("early", 2, None, b""), 1).await.unwrap());
    assert_eq!(s.due_key_ids(100, 10).await.unwrap(), vec!["also-early"]);
    assert!(
        s.update_key(&key("never", 2, Some(50), b""), 1)
            .await
            .unwrap()
    );
    assert_eq!(s.due_key_ids(60, 10).await.unwrap(), vec!["never"]);
}

pub async fn alias_crud_and_listing(s: &dyn Store) {
    s.insert_key(&key("k1", 1, None, b"")).await.unwrap();
    s.insert_key(&key("k2", 1, None, b"")).await.unwrap();
    assert_eq!(s.get_alias("alias/one").await.unwrap(), None);
    s.insert_alias(&alias("alias/one", "k1", 10)).await.unwrap();
    assert_eq!(
        s.get_alias("alias/one").await.unwrap(),
        Some(alias("alias/one", "k1", 10))
    );
    assert!(matches!(
        s.insert_alias(&alias("alias/one", "k2", 11)).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(
        s.get_alias("alias/one")
            .await
            .unwrap()
            .unwrap()
            .target_key_id,
        "k1"
    );

    // Update keeps creation time, changes target and last-updated.
    assert!(s.update_alias("alias/one", "k2", 20).await.unwrap());
    assert_eq!(
        s.get_alias("alias/one").await.unwrap(),
        Some(AliasRow {
            name: "alias/one".into(),
            target_key_id: "k2".into(),
            creation_ms: 10,
            last_updated_ms: 20,
        })
    );
    assert!(!s.update_alias("alias/missing", "k1", 20).await.unwrap());
    assert_eq!(s.get_alias("alias/missing").await.unwrap(), None);

    for (name, target) in [
        ("alias/c", "k1"),
        ("alias/a", "k1"),
        ("alias/B", "k2"),
        ("alias/b", "k1"),
        ("alias/a-x", "k2"),
    ] {
        s.insert_alias(&alias(name, target, 1)).await.unwrap();
    }
    let names = |rows: Vec<AliasRow>| rows.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_aliases(None, None, 100).await.unwrap()),
        vec![
            "alias/B",
            "alias/a",
            "alias/a-x",
            "alias/b",
            "alias/c",
            "alias/one"
        ]
    );
    assert_eq!(
        names(s.list_aliases(None, Some("alias/a"), 2).await.unwrap()),
        vec!["alias/a-x", "alias/b"]
    );
    assert_eq!(
        names(s.list_aliases(Some("k1"), None, 100).await.unwrap()),
        vec!["alias/a", "alias/b", "alias/c"]
    );
    assert_eq!(
        names(
            s.list_aliases(Some("k1"), Some("alias/a"), 1)
                .await
                .unwrap()
        ),
        vec!["alias/b"]
    );
    assert_eq!(
        names(s.list_aliases(Some("k2"), None, 100).await.unwrap()),
        vec!["alias/B", "alias/a-x", "alias/one"]
    );
    assert!(
        s.list_aliases(Some("nokey"), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Rows carry their timestamps.
    let rows = s
        .list_aliases(Some("k2"), Some("alias/a-x"), 10)
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![AliasRow {
            name: "alias/one".into(),
            target_key_id: "k2".into(),
            creation_ms: 10,
            last_updated_ms: 20,
        }]
    );

    assert!(s.delete_alias("alias/a").await.unwrap());
    assert!(!s.delete_alias("alias/a").await.unwrap());
    assert_eq!(s.get_alias("alias/a").await.unwrap(), None);
    // Deleting aliases never touches keys.
    assert!(s.get_key("k1").await.unwrap().is_some());
}

/// Two tasks race a CAS on the same version, many times: exactly one wins each round, and
/// the stored document is the winner's.
pub async fn concurrent_cas_exactly_one_wins(s: Arc<dyn Store>) {
    s.insert_key(&key("race", 1, None, b"start")).await.unwrap();
    for round in 1..=25i64 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for who in 0..2u8 {
            let s = s.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let doc = vec![who; 16];
                barrier.wait().await;
                let won = s
                    .update_key(&key("race", round + 1, None, &doc), round)
                    .await
                    .unwrap();
                (who, won)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (who, won) = t.await.unwrap();
            if won {
                winners.push(who);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = s.get_key("race").await.unwrap().unwrap();
        assert_eq!(stored.version, round + 1);
        assert_eq!(stored.doc, vec![winners[0]; 16]);
    }
}
