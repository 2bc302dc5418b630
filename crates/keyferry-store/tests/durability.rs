//! Acknowledged writes survive SIGKILL: the test re-invokes its own executable as a child
//! that writes keys and prints "ok i" after each acknowledged write, kills it with SIGKILL
//! mid-stream, reopens the store and checks every acknowledged key is present.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyferry_store::{StoredKey, open_store};

const CHILD_ENV: &str = "KEYFERRY_DURABILITY_CHILD";
const CHILD_TEST: &str = "durability_child";
/// Keys the child writes at most (it is killed well before).
const MAX_KEYS: u32 = 100_000;

fn doc(i: u32) -> Vec<u8> {
    format!("document-{i}").repeat(8).into_bytes()
}

/// In the child (env set): write keys forever-ish, acknowledging each on stdout. In a normal
/// test run this does nothing.
#[tokio::test]
async fn durability_child() {
    let Ok(location) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = open_store(&location).await.unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0..MAX_KEYS {
        store
            .insert_key(&StoredKey {
                key_id: format!("key-{i:06}"),
                account: common::ACCT.into(),
                region: common::REGION.into(),
                version: 1,
                due_ms: Some(i64::from(i)),
                doc: doc(i),
            })
            .await
            .unwrap();
        writeln!(out, "ok {i}").unwrap();
        out.flush().unwrap();
    }
    // Wait to be killed.
    std::thread::sleep(Duration::from_secs(600));
}

/// Spawn the child on `location`, SIGKILL it after `kill_after` acknowledgements, return the
/// highest acknowledged index.
fn run_and_kill(location: &str, kill_after: u32) -> u32 {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, location)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last: Option<u32> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ok ") {
            let n: u32 = n.trim().parse().unwrap();
            last = Some(n);
            if n + 1 >= kill_after {
                break;
            }
        }
        assert!(Instant::now() < deadline, "child too slow");
    }
    // std's Child::kill sends SIGKILL on Unix: no destructors, no flush, no clean close.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "child should have been killed");
    last.expect("child acknowledged nothing")
}

async fn check(location: &str, last: u32) {
    let store = open_store(location).await.unwrap();
    for i in 0..=last {
        let k = store
            .get_key(&format!("key-{i:06}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged key {i} lost (last ack {last})"));
        assert_eq!(k.doc, doc(i));
    }
    let ids = store
        .list_key_ids(common::ACCT, common::REGION, None, MAX_KEYS)
        .await
        .unwrap();
    // Writes after the last "ok" read may or may not have committed; none may be missing.
    assert!(
        ids.len() as u32 > last,
        "{} keys, last ack {last}",
        ids.len()
    );
}

#[tokio::test]
async fn sqlite_acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let location = format!("sqlite://{}", path.display());
    let last = tokio::task::spawn_blocking({
        let location = location.clone();
        move || run_and_kill(&location, 300)
    })
    .await
    .unwrap();
    assert!(last >= 299);
    check(&location, last).await;
}

#[tokio::test]
async fn postgres_acknowledged_writes_survive_sigkill() {
    let Some(fresh) = common::PgFresh::from_env() else {
        println!(
            "postgres durability skipped: {} is not set (run scripts/pg-test.sh)",
            common::PG_ENV
        );
        return;
    };
    let url = fresh.create_database().await;
    let last = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run_and_kill(&url, 300)
    })
    .await
    .unwrap();
    check(&url, last).await;
    fresh.drop_all().await;
}
