//! Fail fast: with the database gone (stopped) or frozen (SIGSTOP), operations fail with
//! `StoreError::Unavailable` within about a second instead of hanging, and work again once
//! the database is back. PostgreSQL runs on a server of this test's own (started with
//! scripts/pg-test.sh when `KEYFERRY_TEST_POSTGRES_URL` says PostgreSQL is available), so
//! freezing it disturbs no other test. SQLite: a write lock held by another process.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::key;
use keyferry_store::{Store, StoreError, StoreOptions, open_store, open_store_with};

/// What "fast" means here: the 500 ms acquire timeout plus scheduling slack.
const FAST: Duration = Duration::from_millis(1500);

fn pg_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test.sh")
}

/// A PostgreSQL server of our own; resumed and stopped on drop, even if the test fails.
struct OwnPg {
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPg {
    fn start() -> (OwnPg, String) {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = OwnPg { dir, port };
        let url = pg.start_again();
        (pg, url)
    }

    fn start_again(&self) -> String {
        let out = Command::new(pg_script())
            .arg("start")
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn stop(&self) {
        let status = Command::new(pg_script())
            .arg("stop")
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The postmaster and its children (backends, background workers).
    fn pids(&self) -> Vec<String> {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let Ok(text) = std::fs::read_to_string(pid_file) else {
            return Vec::new();
        };
        let postmaster = text.lines().next().unwrap_or_default().trim().to_owned();
        let mut pids = vec![postmaster.clone()];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let Some(after_comm) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
                continue;
            };
            if after_comm.split_whitespace().nth(1) == Some(postmaster.as_str()) {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        pids
    }

    fn signal(&self, sig: &str) {
        for pid in self.pids() {
            // A process may have exited since it was listed.
            let _ = Command::new("kill")
                .arg(sig)
                .arg(&pid)
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = Command::new(pg_script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// `op` fails with Unavailable, fast.
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    op: impl std::future::Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let r = op.await;
    let took = started.elapsed();
    assert!(
        matches!(r, Err(StoreError::Unavailable(_))),
        "{what}: {r:?}"
    );
    assert!(took < FAST, "{what}: took {took:?}");
}

/// Retry `get_key` until it works again (the database is back), within `within`.
async fn recovers(s: &dyn Store, id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match s.get_key(id).await {
            Ok(found) => {
                assert!(found.is_some(), "{id} lost");
                return;
            }
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every kind of operation at once against a database that does not answer.
async fn all_fail_fast(s: &Arc<dyn Store>, round: &str) {
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s = s.clone();
        let round = round.to_owned();
        tasks.push(tokio::spawn(async move {
            let what = format!("{round} #{i}");
            match i % 3 {
                0 => fails_fast(&what, s.get_key("k1")).await,
                1 => {
                    fails_fast(
                        &what,
                        s.insert_key(&key(&format!("n{round}{i}"), 1, None, b"")),
                    )
                    .await
                }
                _ => fails_fast(&what, s.put_meta_if_absent("m", b"v")).await,
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_frozen_or_stopped_fails_fast_and_recovers() {
    if common::PgFresh::from_env().is_none() {
        println!("postgres fail-fast skipped: {} is not set", common::PG_ENV);
        return;
    }
    let (pg, url) = OwnPg::start();
    let s = open_store(&url).await.unwrap();
    s.insert_key(&key("k1", 1, None, b"doc")).await.unwrap();
    // Warm the pool with a few connections.
    let warm: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.get_key("k1").await })
        })
        .collect();
    for h in warm {
        assert!(h.await.unwrap().unwrap().is_some());
    }

    // Frozen: connections stay open but nothing answers.
    pg.signal("-STOP");
    all_fail_fast(&s, "frozen").await;
    fails_fast("frozen, again", s.get_key("k1")).await;
    pg.signal("-CONT");
    recovers(&*s, "k1", Duration::from_secs(10)).await;
    s.insert_key(&key("k2", 1, None, b"")).await.unwrap();

    // Stopped: connections are refused.
    pg.stop();
    all_fail_fast(&s, "stopped").await;
    fails_fast("stopped, again", s.get_key("k2")).await;
    // Opening fails too (after connect_timeout), as Unavailable.
    let opts = StoreOptions {
        connect_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    fails_fast("open", async {
        open_store_with(&url, &opts).await.map(|_| ())
    })
    .await;
    pg.start_again();
    recovers(&*s, "k2", Duration::from_secs(10)).await;
    s.insert_key(&key("k3", 1, None, b"")).await.unwrap();
    assert_eq!(
        common::list_key_ids(&*s, None, 10).await,
        vec!["k1", "k2", "k3"]
    );
}

/// Another process holds SQLite's write lock: a write waits `busy_timeout` and then fails with
/// Unavailable; a second write waiting for the (single) writer connection fails after
/// `acquire_timeout`; reads go on; once the lock is released, writes work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_locked_fails_fast_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let opts = StoreOptions {
        acquire_timeout: Duration::from_millis(200),
        sqlite_busy_timeout: Duration::from_millis(1200),
        ..Default::default()
    };
    let s: Arc<dyn Store> = open_store_with(&path.display().to_string(), &opts)
        .await
        .unwrap();
    s.insert_key(&key("k1", 1, None, b"doc")).await.unwrap();

    // "Another process": its own connection, holding the write lock.
    let mut other = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        path.display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    let blocked = {
        let s = s.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = s.insert_key(&key("k2", 1, None, b"")).await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The writer connection is busy waiting for the lock: the next write gives up on acquire.
    fails_fast("acquire", s.insert_key(&key("k3", 1, None, b""))).await;
    // Reads do not need the writer.
    assert!(s.get_key("k1").await.unwrap().is_some());
    let (r, took) = blocked.await.unwrap();
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(5),
        "{took:?}"
    );

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    s.insert_key(&key("k2", 1, None, b"")).await.unwrap();
    assert_eq!(common::list_key_ids(&*s, None, 10).await, vec!["k1", "k2"]);
}

/// PostgreSQL's server-side statement_timeout is set on every session: a CAS that waits for a
/// row lock another session holds is cancelled by the server (which releases its locks) after
/// `statement_timeout`, before the client-side deadline, and maps to Unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statement_timeout_cancels_a_waiting_statement() {
    let Some(fresh) = common::PgFresh::from_env() else {
        println!(
            "postgres statement timeout skipped: {} is not set",
            common::PG_ENV
        );
        return;
    };
    let url = fresh.create_database().await;
    let opts = StoreOptions {
        statement_timeout: Duration::from_millis(300),
        acquire_timeout: Duration::from_millis(2000),
        ..Default::default()
    };
    let s = open_store_with(&url, &opts).await.unwrap();
    s.insert_key(&key("k1", 1, None, b"v1")).await.unwrap();

    // Another session locks the row and keeps its transaction open.
    let mut other = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT 1 FROM keys WHERE key_id = 'k1' FOR UPDATE")
        .execute(&mut other)
        .await
        .unwrap();

    let started = Instant::now();
    let r = s.update_key(&key("k1", 2, None, b"v2"), 1).await;
    let took = started.elapsed();
    let Err(StoreError::Unavailable(msg)) = r else {
        panic!("{r:?}");
    };
    // The server's cancellation, not the client's 2.3 s deadline.
    assert!(msg.contains("statement timeout"), "{msg}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(2000),
        "{took:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    // Nothing was written, and the store works on.
    assert_eq!(s.get_key("k1").await.unwrap().unwrap().doc, b"v1".to_vec());
    assert!(s.update_key(&key("k1", 2, None, b"v2"), 1).await.unwrap());
    drop(s);
    fresh.drop_all().await;
}
