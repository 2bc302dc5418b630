//! sqlx errors → [`StoreError`], and the client-side deadline on every operation.

use std::future::Future;
use std::time::Duration;

use keyferry_core::store::StoreError;

/// Unique/primary-key violations become `AlreadyExists`; timeouts and lost connections
/// `Unavailable`; everything else `Backend`.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::AlreadyExists;
            }
            if db.is_foreign_key_violation() {
                return StoreError::Backend("the referenced key does not exist".to_owned());
            }
            if db.code().as_deref().is_some_and(is_unavailable_code) {
                return StoreError::Unavailable(e.to_string());
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => {
            return StoreError::Unavailable(e.to_string());
        }
        _ => {}
    }
    StoreError::Backend(e.to_string())
}

/// Database error codes that mean "not now" rather than "broken":
/// PostgreSQL `57014` (query_canceled: statement_timeout), `57P01`..`57P03` (admin or crash
/// shutdown, cannot connect now), `08xxx` (connection exceptions), `55P03` (lock_not_available);
/// SQLite `SQLITE_BUSY` (5) and `SQLITE_LOCKED` (6) with any extended code.
/// (A PostgreSQL SQLSTATE has five characters, often all digits; SQLite codes have fewer.)
fn is_unavailable_code(code: &str) -> bool {
    if code.len() == 5 {
        return matches!(code, "57014" | "57P01" | "57P02" | "57P03" | "55P03")
            || code.starts_with("08");
    }
    code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

/// Run one operation under a deadline; a missed deadline is `Unavailable`. Dropping a sqlx
/// future mid-query is safe: the connection is discarded or resynchronised before reuse, and a
/// dropped transaction is rolled back.
pub(crate) async fn run<T>(
    deadline: Duration,
    op: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, op).await {
        Ok(result) => result.map_err(map_err),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer from the database within {} ms",
            deadline.as_millis()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_codes() {
        for code in [
            "5", "517", "6", "262", "57014", "57P01", "57P03", "08006", "55P03",
        ] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["19", "2067", "787", "23505", "23503", "42P01", "XX000"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
        assert!(matches!(
            map_err(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_err(sqlx::Error::RowNotFound),
            StoreError::Backend(_)
        ));
    }

    #[tokio::test]
    async fn a_missed_deadline_is_unavailable() {
        let started = std::time::Instant::now();
        let r: Result<(), StoreError> = run(Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
