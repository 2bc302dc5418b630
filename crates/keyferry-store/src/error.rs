//! sqlx errors → [`StoreError`].

use keyferry_core::store::StoreError;

/// Unique/primary-key violations become `AlreadyExists`; everything else `Backend`.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::AlreadyExists;
        }
        if db.is_foreign_key_violation() {
            return StoreError::Backend("alias target key does not exist".to_owned());
        }
    }
    backend(e)
}

/// Always `Backend`, with sqlx's message (it never contains bound values or the password).
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// `u32` listing limits as SQL `BIGINT`.
pub(crate) fn limit(n: u32) -> i64 {
    i64::from(n)
}
