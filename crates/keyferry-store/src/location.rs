//! Where the store lives, parsed from a URL or path, with the password redacted on display.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use keyferry_core::store::{Store, StoreError};

use crate::{PgStore, SqliteStore, StoreOptions};

/// A parsed store location. `Debug` and `Display` never show a database password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl StoreLocation {
    /// Parse `postgres://…`, `postgresql://…`, `sqlite://PATH`, `sqlite:PATH` or a plain path.
    pub fn parse(s: &str) -> StoreLocation {
        let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return StoreLocation::Postgres(s.to_owned());
        }
        let path = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
            .unwrap_or(s);
        StoreLocation::Sqlite(PathBuf::from(path))
    }

    /// Open (and migrate) the store, with the default [`StoreOptions`].
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        self.open_with(&StoreOptions::default()).await
    }

    /// Open (and migrate) the store with explicit timeouts.
    pub async fn open_with(&self, opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            StoreLocation::Sqlite(path) => Arc::new(SqliteStore::open_with(path, opts).await?),
            StoreLocation::Postgres(url) => Arc::new(PgStore::connect_with(url, opts).await?),
        })
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            StoreLocation::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            StoreLocation::Postgres(url) => {
                f.debug_tuple("Postgres").field(&redact_url(url)).finish()
            }
        }
    }
}

/// A URL with the password (userinfo `user:PASSWORD@` and any `password=` query
/// parameter) replaced by `***`. Strings that are not URLs are returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..rest_start]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let query = &tail[q + 1..];
            let (query, fragment) = match query.find('#') {
                Some(h) => (&query[..h], &query[h..]),
                None => (query, ""),
            };
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                        out.push_str(k);
                        out.push_str("=***");
                    }
                    _ => out.push_str(pair),
                }
            }
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_locations() {
        assert_eq!(
            StoreLocation::parse("postgres://u:p@h/db"),
            StoreLocation::Postgres("postgres://u:p@h/db".into())
        );
        assert_eq!(
            StoreLocation::parse("PostgreSQL://h/db"),
            StoreLocation::Postgres("PostgreSQL://h/db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite:///var/lib/kf.db"),
            StoreLocation::Sqlite("/var/lib/kf.db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite:rel.db"),
            StoreLocation::Sqlite("rel.db".into())
        );
        assert_eq!(
            StoreLocation::parse("./data/kf.db"),
            StoreLocation::Sqlite("./data/kf.db".into())
        );
    }

    #[test]
    fn passwords_are_redacted() {
        let loc = StoreLocation::parse(
            "postgres://kms:hunter2@db.example:5432/keys?sslmode=require&password=hunter3#x",
        );
        for shown in [format!("{loc}"), format!("{loc:?}")] {
            assert!(!shown.contains("hunter"), "{shown}");
            assert!(shown.contains("kms:***@db.example:5432/keys"), "{shown}");
            assert!(shown.contains("sslmode=require&password=***#x"), "{shown}");
        }
        assert_eq!(redact_url("postgres://kms@h/db"), "postgres://kms@h/db");
        assert_eq!(redact_url("postgres://h"), "postgres://h");
        assert_eq!(redact_url("postgres://a:b:c@h?x"), "postgres://a:***@h?x");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(
            format!("{}", StoreLocation::parse("/tmp/x.db")),
            "sqlite:///tmp/x.db"
        );
    }
}
