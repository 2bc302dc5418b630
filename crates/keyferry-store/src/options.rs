//! Timeouts: every backend fails fast ([`StoreError::Unavailable`](keyferry_core::store::StoreError))
//! instead of letting requests pile up behind a database that does not answer.

use std::time::Duration;

/// How long a store waits before giving up. The defaults keep a request's storage wait well
/// under a second when the database is gone, and bound one operation to a few seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Longest wait for a pooled connection, including connecting a new one (and pinging an
    /// idle one). Default 500 ms.
    pub acquire_timeout: Duration,
    /// Longest one operation may run once it has a connection. PostgreSQL: the server-side
    /// `statement_timeout` of every session, and (plus `acquire_timeout`) a client-side
    /// deadline on every operation, which also covers a frozen server or network.
    /// Default 2 s.
    pub statement_timeout: Duration,
    /// SQLite: how long a write waits for another process's write lock (`PRAGMA busy_timeout`)
    /// before failing with `Unavailable`. SQLite's client-side deadline is
    /// `acquire_timeout + busy_timeout + statement_timeout`. Default 10 s.
    pub sqlite_busy_timeout: Duration,
    /// Opening: how long to keep trying to connect to a database that refuses connections or
    /// does not answer (it may be starting up). Default 5 s.
    pub connect_timeout: Duration,
    /// Opening as a whole: connecting, waiting for another node's migration, and migrating (a migration
    /// may rewrite every row). Default 120 s.
    pub open_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            acquire_timeout: Duration::from_millis(500),
            statement_timeout: Duration::from_secs(2),
            sqlite_busy_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            open_timeout: Duration::from_secs(120),
        }
    }
}
