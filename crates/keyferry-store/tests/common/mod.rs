//! The backend conformance suite: generic checks over `&dyn Store`, plus helpers that give
//! each check a fresh SQLite file or a fresh PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use keyferry_store::{AliasRow, GrantRow, KeyUsageRow, Store, StoreError, StoredKey, open_store};
use sqlx::Connection;

pub const PG_ENV: &str = "KEYFERRY_TEST_POSTGRES_URL";
/// The scope most checks use.
pub const ACCT: &str = "111122223333";
pub const REGION: &str = "us-east-1";

pub fn key(id: &str, version: i64, due_ms: Option<i64>, doc: &[u8]) -> StoredKey {
    scoped_key(ACCT, REGION, id, version, due_ms, doc)
}

pub fn scoped_key(
    account: &str,
    region: &str,
    id: &str,
    version: i64,
    due_ms: Option<i64>,
    doc: &[u8],
) -> StoredKey {
    StoredKey {
        key_id: id.to_owned(),
        account: account.to_owned(),
        region: region.to_owned(),
        version,
        due_ms,
        doc: doc.to_vec(),
    }
}

pub fn alias(name: &str, target: &str, ms: i64) -> AliasRow {
    scoped_alias(ACCT, REGION, name, target, ms)
}

pub fn scoped_alias(account: &str, region: &str, name: &str, target: &str, ms: i64) -> AliasRow {
    AliasRow {
        account: account.to_owned(),
        region: region.to_owned(),
        name: name.to_owned(),
        target_key_id: target.to_owned(),
        creation_ms: ms,
        last_updated_ms: ms,
    }
}

pub fn grant(
    id: &str,
    key_id: &str,
    grantee: &str,
    retiring: Option<&str>,
    name: Option<&str>,
) -> GrantRow {
    GrantRow {
        grant_id: id.to_owned(),
        key_id: key_id.to_owned(),
        grantee_principal: grantee.to_owned(),
        retiring_principal: retiring.map(str::to_owned),
        name: name.map(str::to_owned),
        issuing_account: ACCT.to_owned(),
        creation_ms: 1_700_000_000_000,
        doc: format!("{{\"grant\":\"{id}\"}}").into_bytes(),
    }
}

pub fn usage(key_id: &str, operation: &str, timestamp_ms: i64) -> KeyUsageRow {
    KeyUsageRow {
        key_id: key_id.to_owned(),
        operation: operation.to_owned(),
        timestamp_ms,
        event_id: format!("event-{operation}-{timestamp_ms}"),
        request_id: format!("request-{operation}-{timestamp_ms}"),
    }
}

/// Shorthands for the default scope.
pub async fn get_alias(s: &dyn Store, name: &str) -> Option<AliasRow> {
    s.get_alias(ACCT, REGION, name).await.unwrap()
}

pub async fn list_aliases(
    s: &dyn Store,
    key_id: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Vec<AliasRow> {
    s.list_aliases(ACCT, REGION, key_id, after, limit)
        .await
        .unwrap()
}

pub async fn list_key_ids(s: &dyn Store, after: Option<&str>, limit: u32) -> Vec<String> {
    s.list_key_ids(ACCT, REGION, after, limit).await.unwrap()
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
    scoped_by_account_and_region(&*f.fresh().await).await;
    grants(&*f.fresh().await).await;
    key_usage(&*f.fresh().await).await;
    metadata(&*f.fresh().await).await;
    concurrent_put_meta_if_absent_exactly_one_wins(f.fresh().await).await;
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
    assert_eq!(get_alias(s, "alias/a1").await, None);
    assert_eq!(get_alias(s, "alias/a2").await, None);
    assert_eq!(
        get_alias(s, "alias/b1").await,
        Some(alias("alias/b1", "b", 3))
    );
    assert_eq!(list_aliases(s, None, None, 100).await.len(), 1);
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
    assert!(
        s.update_alias(ACCT, REGION, "alias/b1", "missing", 9)
            .await
            .is_err()
    );
    assert_eq!(
        get_alias(s, "alias/b1").await,
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
    assert_eq!(list_key_ids(s, None, 100).await, sorted);
    // Page through 2 at a time.
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = list_key_ids(s, after.as_deref(), 2).await;
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
        list_key_ids(s, Some("alpha"), 2).await,
        vec!["alpha-2".to_string(), "alpha2".to_string()]
    );
    assert_eq!(
        list_key_ids(s, Some("alpha0"), 1).await,
        vec!["alpha2".to_string()]
    );
    assert!(list_key_ids(s, Some("zzz"), 10).await.is_empty());
    assert!(list_key_ids(s, None, 0).await.is_empty());
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
    assert_eq!(get_alias(s, "alias/one").await, None);
    s.insert_alias(&alias("alias/one", "k1", 10)).await.unwrap();
    assert_eq!(
        get_alias(s, "alias/one").await,
        Some(alias("alias/one", "k1", 10))
    );
    assert!(matches!(
        s.insert_alias(&alias("alias/one", "k2", 11)).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(get_alias(s, "alias/one").await.unwrap().target_key_id, "k1");

    // Update keeps creation time, changes target and last-updated.
    assert!(
        s.update_alias(ACCT, REGION, "alias/one", "k2", 20)
            .await
            .unwrap()
    );
    assert_eq!(
        get_alias(s, "alias/one").await,
        Some(AliasRow {
            account: ACCT.into(),
            region: REGION.into(),
            name: "alias/one".into(),
            target_key_id: "k2".into(),
            creation_ms: 10,
            last_updated_ms: 20,
        })
    );
    assert!(
        !s.update_alias(ACCT, REGION, "alias/missing", "k1", 20)
            .await
            .unwrap()
    );
    assert_eq!(get_alias(s, "alias/missing").await, None);

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
        names(list_aliases(s, None, None, 100).await),
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
        names(list_aliases(s, None, Some("alias/a"), 2).await),
        vec!["alias/a-x", "alias/b"]
    );
    assert_eq!(
        names(list_aliases(s, Some("k1"), None, 100).await),
        vec!["alias/a", "alias/b", "alias/c"]
    );
    assert_eq!(
        names(list_aliases(s, Some("k1"), Some("alias/a"), 1).await),
        vec!["alias/b"]
    );
    assert_eq!(
        names(list_aliases(s, Some("k2"), None, 100).await),
        vec!["alias/B", "alias/a-x", "alias/one"]
    );
    assert!(list_aliases(s, Some("nokey"), None, 100).await.is_empty());
    // Rows carry their timestamps.
    let rows = list_aliases(s, Some("k2"), Some("alias/a-x"), 10).await;
    assert_eq!(
        rows,
        vec![AliasRow {
            account: ACCT.into(),
            region: REGION.into(),
            name: "alias/one".into(),
            target_key_id: "k2".into(),
            creation_ms: 10,
            last_updated_ms: 20,
        }]
    );

    assert!(s.delete_alias(ACCT, REGION, "alias/a").await.unwrap());
    assert!(!s.delete_alias(ACCT, REGION, "alias/a").await.unwrap());
    assert_eq!(get_alias(s, "alias/a").await, None);
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

/// Keys and aliases of several accounts and Regions in one store: listings see their own scope
/// only; alias names repeat across scopes; an alias cannot target another scope's key.
pub async fn scoped_by_account_and_region(s: &dyn Store) {
    const OTHER: &str = "444455556666";
    const WEST: &str = "eu-west-1";
    for (account, region, id) in [
        (ACCT, REGION, "k-a1"),
        (ACCT, REGION, "k-a2"),
        (OTHER, REGION, "k-o1"),
        (ACCT, WEST, "k-w1"),
        (OTHER, WEST, "k-ow1"),
    ] {
        s.insert_key(&scoped_key(account, region, id, 1, None, id.as_bytes()))
            .await
            .unwrap();
    }
    // get_key is by id, whatever the scope, and returns the scope columns.
    assert_eq!(
        s.get_key("k-o1").await.unwrap(),
        Some(scoped_key(OTHER, REGION, "k-o1", 1, None, b"k-o1"))
    );
    // Key ids are unique across scopes.
    assert!(matches!(
        s.insert_key(&scoped_key(OTHER, WEST, "k-a1", 1, None, b""))
            .await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(list_key_ids(s, None, 100).await, vec!["k-a1", "k-a2"]);
    assert_eq!(
        s.list_key_ids(OTHER, REGION, None, 100).await.unwrap(),
        vec!["k-o1"]
    );
    assert_eq!(
        s.list_key_ids(ACCT, WEST, None, 100).await.unwrap(),
        vec!["k-w1"]
    );
    assert_eq!(
        s.list_key_ids(OTHER, WEST, Some("k-a"), 100).await.unwrap(),
        vec!["k-ow1"]
    );
    // all_key_ids walks every scope in id order (the root-key rotation uses it).
    assert_eq!(
        s.all_key_ids(None, 100).await.unwrap(),
        vec!["k-a1", "k-a2", "k-o1", "k-ow1", "k-w1"]
    );
    assert_eq!(
        s.all_key_ids(Some("k-a2"), 2).await.unwrap(),
        vec!["k-o1", "k-ow1"]
    );
    assert!(s.all_key_ids(Some("k-w1"), 2).await.unwrap().is_empty());
    assert!(
        s.list_key_ids("999999999999", REGION, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // update_key never moves a key to another scope.
    assert!(
        s.update_key(&scoped_key(OTHER, WEST, "k-a1", 2, None, b"v2"), 1)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_key("k-a1").await.unwrap(),
        Some(key("k-a1", 2, None, b"v2"))
    );
    assert_eq!(list_key_ids(s, None, 100).await, vec!["k-a1", "k-a2"]);

    // The same alias name in three scopes.
    s.insert_alias(&alias("alias/app", "k-a1", 1))
        .await
        .unwrap();
    s.insert_alias(&scoped_alias(OTHER, REGION, "alias/app", "k-o1", 2))
        .await
        .unwrap();
    s.insert_alias(&scoped_alias(ACCT, WEST, "alias/app", "k-w1", 3))
        .await
        .unwrap();
    assert!(matches!(
        s.insert_alias(&alias("alias/app", "k-a2", 4)).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(
        get_alias(s, "alias/app").await,
        Some(alias("alias/app", "k-a1", 1))
    );
    assert_eq!(
        s.get_alias(OTHER, REGION, "alias/app").await.unwrap(),
        Some(scoped_alias(OTHER, REGION, "alias/app", "k-o1", 2))
    );
    assert_eq!(s.get_alias(OTHER, WEST, "alias/app").await.unwrap(), None);
    assert_eq!(
        list_aliases(s, None, None, 100).await,
        vec![alias("alias/app", "k-a1", 1)]
    );
    assert_eq!(
        s.list_aliases(ACCT, WEST, None, None, 100).await.unwrap(),
        vec![scoped_alias(ACCT, WEST, "alias/app", "k-w1", 3)]
    );
    // Listing by a key of another scope finds nothing in this one.
    assert!(list_aliases(s, Some("k-o1"), None, 100).await.is_empty());
    // An alias cannot target a key of another account or Region (insert or update).
    assert!(
        s.insert_alias(&alias("alias/cross", "k-o1", 5))
            .await
            .is_err()
    );
    assert!(
        s.insert_alias(&alias("alias/cross", "k-w1", 5))
            .await
            .is_err()
    );
    assert_eq!(get_alias(s, "alias/cross").await, None);
    assert!(
        s.update_alias(ACCT, REGION, "alias/app", "k-o1", 9)
            .await
            .is_err()
    );
    // Updating and deleting touch one scope only.
    assert!(
        s.update_alias(ACCT, REGION, "alias/app", "k-a2", 9)
            .await
            .unwrap()
    );
    assert!(
        !s.update_alias(OTHER, WEST, "alias/app", "k-ow1", 9)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_alias(OTHER, REGION, "alias/app").await.unwrap(),
        Some(scoped_alias(OTHER, REGION, "alias/app", "k-o1", 2))
    );
    assert!(s.delete_alias(OTHER, REGION, "alias/app").await.unwrap());
    assert!(!s.delete_alias(OTHER, REGION, "alias/app").await.unwrap());
    assert_eq!(
        get_alias(s, "alias/app").await.unwrap().target_key_id,
        "k-a2"
    );
    assert!(
        s.get_alias(ACCT, WEST, "alias/app")
            .await
            .unwrap()
            .is_some()
    );
    // Deleting a key removes its aliases in its own scope only.
    s.delete_key("k-w1").await.unwrap();
    assert_eq!(s.get_alias(ACCT, WEST, "alias/app").await.unwrap(), None);
    assert!(get_alias(s, "alias/app").await.is_some());
}

pub async fn grants(s: &dyn Store) {
    s.insert_key(&key("k1", 1, None, b"")).await.unwrap();
    s.insert_key(&key("k2", 1, None, b"")).await.unwrap();
    assert_eq!(s.get_grant("g-1").await.unwrap(), None);
    assert_eq!(s.count_grants("k1").await.unwrap(), 0);
    assert_eq!(s.count_grants("missing").await.unwrap(), 0);
    let g1 = grant(
        "g-1",
        "k1",
        "arn:aws:iam::111122223333:role/app",
        Some("arn:aws:iam::111122223333:role/ops"),
        Some("first"),
    );
    s.insert_grant(&g1).await.unwrap();
    assert_eq!(s.get_grant("g-1").await.unwrap(), Some(g1.clone()));
    // Duplicate grant id (even on another key): AlreadyExists, nothing changed.
    assert!(matches!(
        s.insert_grant(&grant("g-1", "k2", "x", None, None)).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(s.get_grant("g-1").await.unwrap(), Some(g1.clone()));
    // A grant needs its key.
    assert!(
        s.insert_grant(&grant("g-orphan", "missing", "x", None, None))
            .await
            .is_err()
    );
    assert_eq!(s.get_grant("g-orphan").await.unwrap(), None);

    // Optional columns round-trip as None; ids order bytewise.
    let rows = [
        grant(
            "g-3",
            "k1",
            "arn:aws:iam::111122223333:role/app",
            None,
            None,
        ),
        grant(
            "G-0",
            "k1",
            "arn:aws:iam::111122223333:role/other",
            Some("arn:aws:iam::111122223333:role/ops"),
            Some("first"),
        ),
        grant(
            "g-2",
            "k1",
            "arn:aws:iam::111122223333:role/app",
            None,
            Some("second"),
        ),
        grant(
            "g-10",
            "k2",
            "arn:aws:iam::111122223333:role/app",
            Some("arn:aws:iam::111122223333:role/ops"),
            Some("first"),
        ),
    ];
    for g in &rows {
        s.insert_grant(g).await.unwrap();
    }
    assert_eq!(s.get_grant("g-3").await.unwrap(), Some(rows[0].clone()));
    let ids = |v: Vec<GrantRow>| v.into_iter().map(|g| g.grant_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_grants("k1", None, 100).await.unwrap()),
        vec!["G-0", "g-1", "g-2", "g-3"]
    );
    assert_eq!(
        ids(s.list_grants("k1", Some("g-1"), 1).await.unwrap()),
        vec!["g-2"]
    );
    assert!(
        s.list_grants("k1", Some("g-3"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.list_grants("k1", None, 0).await.unwrap().is_empty());
    assert_eq!(
        ids(s.list_grants("k2", None, 100).await.unwrap()),
        vec!["g-10"]
    );
    // Full rows come back from listings.
    assert_eq!(
        s.list_grants("k1", Some("g-2"), 10).await.unwrap(),
        vec![rows[0].clone()]
    );

    assert_eq!(
        ids(s
            .grants_for_grantee("k1", "arn:aws:iam::111122223333:role/app")
            .await
            .unwrap()),
        vec!["g-1", "g-2", "g-3"]
    );
    assert!(
        s.grants_for_grantee("k1", "arn:aws:iam::111122223333:role/APP")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(s
            .grants_for_grantee("k2", "arn:aws:iam::111122223333:role/app")
            .await
            .unwrap()),
        vec!["g-10"]
    );

    // Names need not be unique: the lowest grant id wins; per key.
    assert_eq!(
        s.find_grant_by_name("k1", "first")
            .await
            .unwrap()
            .map(|g| g.grant_id),
        Some("G-0".to_owned())
    );
    assert_eq!(
        s.find_grant_by_name("k1", "second").await.unwrap(),
        Some(rows[2].clone())
    );
    assert_eq!(
        s.find_grant_by_name("k2", "first")
            .await
            .unwrap()
            .map(|g| g.grant_id),
        Some("g-10".to_owned())
    );
    assert_eq!(s.find_grant_by_name("k2", "second").await.unwrap(), None);

    // Retirable grants across keys, paged.
    let ops = "arn:aws:iam::111122223333:role/ops";
    assert_eq!(
        ids(s.list_retirable_grants(ops, None, 100).await.unwrap()),
        vec!["G-0", "g-1", "g-10"]
    );
    assert_eq!(
        ids(s.list_retirable_grants(ops, Some("G-0"), 1).await.unwrap()),
        vec!["g-1"]
    );
    assert_eq!(
        ids(s.list_retirable_grants(ops, Some("g-1"), 5).await.unwrap()),
        vec!["g-10"]
    );
    assert!(
        s.list_retirable_grants("nobody", None, 100)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(s.count_grants("k1").await.unwrap(), 4);
    assert_eq!(s.count_grants("k2").await.unwrap(), 1);
    assert!(s.delete_grant("g-2").await.unwrap());
    assert!(!s.delete_grant("g-2").await.unwrap());
    assert_eq!(s.get_grant("g-2").await.unwrap(), None);
    assert_eq!(s.count_grants("k1").await.unwrap(), 3);
    assert_eq!(s.find_grant_by_name("k1", "second").await.unwrap(), None);

    // delete_key takes the key's grants with it, and only those.
    s.delete_key("k1").await.unwrap();
    assert_eq!(s.count_grants("k1").await.unwrap(), 0);
    for id in ["G-0", "g-1", "g-3"] {
        assert_eq!(s.get_grant(id).await.unwrap(), None, "{id}");
    }
    assert_eq!(
        ids(s.list_retirable_grants(ops, None, 100).await.unwrap()),
        vec!["g-10"]
    );
    assert_eq!(s.count_grants("k2").await.unwrap(), 1);
    // A re-created key id starts without grants.
    s.insert_key(&key("k1", 1, None, b"again")).await.unwrap();
    assert!(s.list_grants("k1", None, 100).await.unwrap().is_empty());
}

pub async fn key_usage(s: &dyn Store) {
    s.insert_key(&key("k1", 1, None, b"")).await.unwrap();
    s.insert_key(&key("k2", 1, None, b"")).await.unwrap();
    assert_eq!(s.get_key_usage("k1").await.unwrap(), None);
    s.record_key_usage(&[]).await.unwrap();
    s.record_key_usage(&[usage("k1", "Encrypt", 100)])
        .await
        .unwrap();
    assert_eq!(
        s.get_key_usage("k1").await.unwrap(),
        Some(usage("k1", "Encrypt", 100))
    );
    // One batch, several rows per key, out of order: the latest timestamp wins per key.
    s.record_key_usage(&[
        usage("k1", "Decrypt", 300),
        usage("k2", "Sign", 50),
        usage("k1", "GenerateDataKey", 200),
        usage("k2", "Verify", 70),
        // A key deleted meanwhile (or never there) is skipped, not an error.
        usage("gone", "Encrypt", 500),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.get_key_usage("k1").await.unwrap(),
        Some(usage("k1", "Decrypt", 300))
    );
    assert_eq!(
        s.get_key_usage("k2").await.unwrap(),
        Some(usage("k2", "Verify", 70))
    );
    assert_eq!(s.get_key_usage("gone").await.unwrap(), None);
    // An older row never replaces a newer one; an equal timestamp is the newer write.
    s.record_key_usage(&[usage("k1", "Encrypt", 299)])
        .await
        .unwrap();
    assert_eq!(
        s.get_key_usage("k1").await.unwrap(),
        Some(usage("k1", "Decrypt", 300))
    );
    let mut tie = usage("k1", "ReEncrypt", 300);
    tie.event_id = "tie".into();
    s.record_key_usage(std::slice::from_ref(&tie))
        .await
        .unwrap();
    assert_eq!(s.get_key_usage("k1").await.unwrap(), Some(tie));
    // Deleting the key deletes its usage; a re-created id starts without.
    s.delete_key("k1").await.unwrap();
    assert_eq!(s.get_key_usage("k1").await.unwrap(), None);
    s.insert_key(&key("k1", 1, None, b"")).await.unwrap();
    assert_eq!(s.get_key_usage("k1").await.unwrap(), None);
    assert!(s.get_key_usage("k2").await.unwrap().is_some());
}

pub async fn metadata(s: &dyn Store) {
    assert_eq!(s.get_meta("root-key-check").await.unwrap(), None);
    assert!(
        s.put_meta_if_absent("root-key-check", b"\x00check\xff")
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_meta("root-key-check").await.unwrap(),
        Some(b"\x00check\xff".to_vec())
    );
    // A second put changes nothing.
    assert!(
        !s.put_meta_if_absent("root-key-check", b"other")
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_meta("root-key-check").await.unwrap(),
        Some(b"\x00check\xff".to_vec())
    );
    // Names are exact.
    assert_eq!(s.get_meta("Root-Key-Check").await.unwrap(), None);
    // set_meta inserts and replaces.
    s.set_meta("usage-tracking-start", b"1700000000000")
        .await
        .unwrap();
    assert_eq!(
        s.get_meta("usage-tracking-start").await.unwrap(),
        Some(b"1700000000000".to_vec())
    );
    s.set_meta("usage-tracking-start", b"").await.unwrap();
    assert_eq!(
        s.get_meta("usage-tracking-start").await.unwrap(),
        Some(Vec::new())
    );
    s.set_meta("root-key-check", b"replaced").await.unwrap();
    assert_eq!(
        s.get_meta("root-key-check").await.unwrap(),
        Some(b"replaced".to_vec())
    );
    // delete_meta removes one name, once.
    assert!(s.delete_meta("root-key-check").await.unwrap());
    assert!(!s.delete_meta("root-key-check").await.unwrap());
    assert_eq!(s.get_meta("root-key-check").await.unwrap(), None);
    assert_eq!(
        s.get_meta("usage-tracking-start").await.unwrap(),
        Some(Vec::new())
    );
    assert!(
        !s.put_meta_if_absent("usage-tracking-start", b"x")
            .await
            .unwrap()
    );
}

/// Many tasks race put_meta_if_absent on one name: exactly one inserts, and its value stays.
pub async fn concurrent_put_meta_if_absent_exactly_one_wins(s: Arc<dyn Store>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for who in 0..8u8 {
        let s = s.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (who, s.put_meta_if_absent("race", &[who]).await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (who, won) = t.await.unwrap();
        if won {
            winners.push(who);
        }
    }
    assert_eq!(winners.len(), 1, "winners {winners:?}");
    assert_eq!(s.get_meta("race").await.unwrap(), Some(vec![winners[0]]));
}
