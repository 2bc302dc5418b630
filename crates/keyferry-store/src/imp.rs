//! The one implementation of [`Store`](keyferry_core::store::Store) and of the migration
//! runner, written once and expanded for each backend by [`impl_store!`] (a macro rather than
//! a generic over `sqlx::Database`, whose higher-ranked executor bounds do not survive
//! `async_trait`'s `Send` futures). The queries are in `sql.rs`, the schema in `schema.rs`.
//!
//! The expansion site imports what the expansion names (`sql`, the row types and converters,
//! `StoreError`, the `query!`/`query_as!` macros): see `sqlite.rs` and `postgres.rs`.
//!
//! A backend struct provides the fields `writer` and `reader` (pools; the same pool on
//! PostgreSQL, a single-connection writer and read-only readers on SQLite) and `deadline`
//! (the client-side limit on one operation, see `StoreOptions`).

use keyferry_core::store::{AliasRow, GrantRow, KeyUsageRow, StoredKey};

/// `keys` columns in `sql::GET_KEY` order.
pub(crate) type KeyTuple = (String, String, String, i64, Option<i64>, Vec<u8>);
/// `aliases` columns in `sql::alias_columns!` order.
pub(crate) type AliasTuple = (String, String, String, String, i64, i64);
/// `grants` columns in `sql::grant_columns!` order.
pub(crate) type GrantTuple = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    Vec<u8>,
);
/// `key_usage` columns in `sql::GET_KEY_USAGE` order.
pub(crate) type UsageTuple = (String, String, i64, String, String);

pub(crate) fn key_from((key_id, account, region, version, due_ms, doc): KeyTuple) -> StoredKey {
    StoredKey {
        key_id,
        account,
        region,
        version,
        due_ms,
        doc,
    }
}

pub(crate) fn alias_from(
    (account, region, name, target_key_id, creation_ms, last_updated_ms): AliasTuple,
) -> AliasRow {
    AliasRow {
        account,
        region,
        name,
        target_key_id,
        creation_ms,
        last_updated_ms,
    }
}

pub(crate) fn grant_from(
    (
        grant_id,
        key_id,
        grantee_principal,
        retiring_principal,
        name,
        issuing_account,
        creation_ms,
        doc,
    ): GrantTuple,
) -> GrantRow {
    GrantRow {
        grant_id,
        key_id,
        grantee_principal,
        retiring_principal,
        name,
        issuing_account,
        creation_ms,
        doc,
    }
}

pub(crate) fn usage_from(
    (key_id, operation, timestamp_ms, event_id, request_id): UsageTuple,
) -> KeyUsageRow {
    KeyUsageRow {
        key_id,
        operation,
        timestamp_ms,
        event_id,
        request_id,
    }
}

/// `sqlx::query_as(sql).bind(a).bind(b)…`: a query whose rows are tuples.
macro_rules! query_as {
    ($sql:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query_as($sql)$(.bind($arg))*
    };
}

/// `sqlx::query(sql).bind(a).bind(b)…`: a statement.
macro_rules! query {
    ($sql:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query($sql)$(.bind($arg))*
    };
}

/// Expand the implementation for `$store` over the sqlx database `$db`.
macro_rules! impl_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Rows of a read, on a reader, under the deadline.
            async fn rows<T>(
                &self,
                q: sqlx::query::QueryAs<'_, $db, T, <$db as sqlx::Database>::Arguments>,
            ) -> Result<Vec<T>, StoreError>
            where
                T: Send + Unpin + for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row>,
            {
                $crate::error::run(self.deadline, q.fetch_all(&self.reader)).await
            }

            /// The row of a read if any, on a reader, under the deadline.
            async fn row<T>(
                &self,
                q: sqlx::query::QueryAs<'_, $db, T, <$db as sqlx::Database>::Arguments>,
            ) -> Result<Option<T>, StoreError>
            where
                T: Send + Unpin + for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row>,
            {
                $crate::error::run(self.deadline, q.fetch_optional(&self.reader)).await
            }

            /// Grants of a read.
            async fn grant_rows(
                &self,
                q: sqlx::query::QueryAs<'_, $db, GrantTuple, <$db as sqlx::Database>::Arguments>,
            ) -> Result<Vec<GrantRow>, StoreError> {
                Ok(self.rows(q).await?.into_iter().map(grant_from).collect())
            }

            /// A write on the writer, under the deadline: the number of rows it changed.
            async fn write(
                &self,
                q: sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments>,
            ) -> Result<u64, StoreError> {
                let done = $crate::error::run(self.deadline, q.execute(&self.writer)).await?;
                Ok(done.rows_affected())
            }

            /// Apply the pending migrations in `tx`, which holds the database's migration lock
            /// and is committed by the caller.
            pub(super) async fn apply_migrations(
                tx: &mut sqlx::Transaction<'static, $db>,
                dialect: &$crate::schema::Dialect,
            ) -> Result<(), StoreError> {
                use $crate::error::map_err;
                use $crate::schema;
                query!(schema::CREATE_VERSION_TABLE)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                let (current,): (Option<i64>,) = query_as!(schema::MAX_VERSION)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(map_err)?;
                let current = current.unwrap_or(0);
                let latest = schema::latest();
                if current > latest {
                    return Err(StoreError::Backend(format!(
                        "database schema version {current} is newer than this build \
                         supports ({latest})"
                    )));
                }
                for m in schema::MIGRATIONS.iter().filter(|m| m.version > current) {
                    for template in m.statements {
                        query!(sqlx::AssertSqlSafe(dialect.render(template)))
                            .persistent(false)
                            .execute(&mut **tx)
                            .await
                            .map_err(map_err)?;
                    }
                    query!(schema::RECORD_VERSION, m.version, schema::now_ms())
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?;
                    tracing::info!(version = m.version, "applied schema migration");
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl keyferry_core::store::Store for $store {
            async fn get_key(&self, key_id: &str) -> Result<Option<StoredKey>, StoreError> {
                let row: Option<KeyTuple> = self.row(query_as!(sql::GET_KEY, key_id)).await?;
                Ok(row.map(key_from))
            }

            async fn insert_key(&self, k: &StoredKey) -> Result<(), StoreError> {
                let q = query!(
                    sql::INSERT_KEY,
                    &k.key_id,
                    &k.account,
                    &k.region,
                    k.version,
                    k.due_ms,
                    &k.doc,
                );
                self.write(q).await.map(drop)
            }

            async fn update_key(
                &self,
                k: &StoredKey,
                expected_version: i64,
            ) -> Result<bool, StoreError> {
                let (version, due_ms, doc, id) = (k.version, k.due_ms, &k.doc, &k.key_id);
                let q = query!(sql::UPDATE_KEY, version, due_ms, doc, id, expected_version);
                Ok(self.write(q).await? == 1)
            }

            async fn delete_key(&self, key_id: &str) -> Result<(), StoreError> {
                $crate::error::run(self.deadline, async {
                    let mut tx = self.writer.begin().await?;
                    for stmt in sql::DELETE_KEY {
                        query!(*stmt, key_id).execute(&mut *tx).await?;
                    }
                    tx.commit().await
                })
                .await
            }

            async fn list_key_ids(
                &self,
                account: &str,
                region: &str,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<String>, StoreError> {
                let q = query_as!(sql::LIST_KEY_IDS, account, region, after, i64::from(limit));
                let rows: Vec<(String,)> = self.rows(q).await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn all_key_ids(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<String>, StoreError> {
                let q = query_as!(sql::ALL_KEY_IDS, after, i64::from(limit));
                let rows: Vec<(String,)> = self.rows(q).await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn due_key_ids(
                &self,
                now_ms: i64,
                limit: u32,
            ) -> Result<Vec<String>, StoreError> {
                let q = query_as!(sql::DUE_KEY_IDS, now_ms, i64::from(limit));
                let rows: Vec<(String,)> = self.rows(q).await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn get_alias(
                &self,
                account: &str,
                region: &str,
                name: &str,
            ) -> Result<Option<AliasRow>, StoreError> {
                let row: Option<AliasTuple> = self
                    .row(query_as!(sql::GET_ALIAS, account, region, name))
                    .await?;
                Ok(row.map(alias_from))
            }

            async fn insert_alias(&self, a: &AliasRow) -> Result<(), StoreError> {
                let q = query!(
                    sql::INSERT_ALIAS,
                    &a.account,
                    &a.region,
                    &a.name,
                    &a.target_key_id,
                    a.creation_ms,
                    a.last_updated_ms,
                );
                self.write(q).await.map(drop)
            }

            async fn update_alias(
                &self,
                account: &str,
                region: &str,
                name: &str,
                target_key_id: &str,
                now_ms: i64,
            ) -> Result<bool, StoreError> {
                let q = query!(
                    sql::UPDATE_ALIAS,
                    account,
                    region,
                    name,
                    target_key_id,
                    now_ms
                );
                Ok(self.write(q).await? == 1)
            }

            async fn delete_alias(
                &self,
                account: &str,
                region: &str,
                name: &str,
            ) -> Result<bool, StoreError> {
                Ok(self
                    .write(query!(sql::DELETE_ALIAS, account, region, name))
                    .await?
                    == 1)
            }

            async fn list_aliases(
                &self,
                account: &str,
                region: &str,
                key_id: Option<&str>,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<AliasRow>, StoreError> {
                let limit = i64::from(limit);
                let q = query_as!(sql::LIST_ALIASES, account, region, key_id, after, limit);
                let rows: Vec<AliasTuple> = self.rows(q).await?;
                Ok(rows.into_iter().map(alias_from).collect())
            }

            async fn insert_grant(&self, g: &GrantRow) -> Result<(), StoreError> {
                let q = query!(
                    sql::INSERT_GRANT,
                    &g.grant_id,
                    &g.key_id,
                    &g.grantee_principal,
                    &g.retiring_principal,
                    &g.name,
                    &g.issuing_account,
                    g.creation_ms,
                    &g.doc,
                );
                self.write(q).await.map(drop)
            }

            async fn get_grant(&self, grant_id: &str) -> Result<Option<GrantRow>, StoreError> {
                let row: Option<GrantTuple> = self.row(query_as!(sql::GET_GRANT, grant_id)).await?;
                Ok(row.map(grant_from))
            }

            async fn delete_grant(&self, grant_id: &str) -> Result<bool, StoreError> {
                Ok(self.write(query!(sql::DELETE_GRANT, grant_id)).await? == 1)
            }

            async fn list_grants(
                &self,
                key_id: &str,
                after_grant_id: Option<&str>,
                limit: u32,
            ) -> Result<Vec<GrantRow>, StoreError> {
                let q = query_as!(sql::LIST_GRANTS, key_id, after_grant_id, i64::from(limit));
                self.grant_rows(q).await
            }

            async fn grants_for_grantee(
                &self,
                key_id: &str,
                grantee: &str,
            ) -> Result<Vec<GrantRow>, StoreError> {
                self.grant_rows(query_as!(sql::GRANTS_FOR_GRANTEE, key_id, grantee))
                    .await
            }

            async fn find_grant_by_name(
                &self,
                key_id: &str,
                name: &str,
            ) -> Result<Option<GrantRow>, StoreError> {
                let row: Option<GrantTuple> = self
                    .row(query_as!(sql::FIND_GRANT_BY_NAME, key_id, name))
                    .await?;
                Ok(row.map(grant_from))
            }

            async fn list_retirable_grants(
                &self,
                retiring_principal: &str,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<GrantRow>, StoreError> {
                let limit = i64::from(limit);
                let q = query_as!(sql::LIST_RETIRABLE_GRANTS, retiring_principal, after, limit);
                self.grant_rows(q).await
            }

            async fn count_grants(&self, key_id: &str) -> Result<i64, StoreError> {
                let row: Option<(i64,)> = self.row(query_as!(sql::COUNT_GRANTS, key_id)).await?;
                Ok(row.map_or(0, |(n,)| n))
            }

            async fn record_key_usage(&self, rows: &[KeyUsageRow]) -> Result<(), StoreError> {
                if rows.is_empty() {
                    return Ok(());
                }
                $crate::error::run(self.deadline, async {
                    let mut tx = self.writer.begin().await?;
                    for u in rows {
                        let (id, op, at) = (&u.key_id, &u.operation, u.timestamp_ms);
                        query!(
                            sql::RECORD_KEY_USAGE,
                            id,
                            op,
                            at,
                            &u.event_id,
                            &u.request_id
                        )
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await
                })
                .await
            }

            async fn get_key_usage(&self, key_id: &str) -> Result<Option<KeyUsageRow>, StoreError> {
                let row: Option<UsageTuple> =
                    self.row(query_as!(sql::GET_KEY_USAGE, key_id)).await?;
                Ok(row.map(usage_from))
            }

            async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
                let row: Option<(Vec<u8>,)> = self.row(query_as!(sql::GET_META, name)).await?;
                Ok(row.map(|(value,)| value))
            }

            async fn put_meta_if_absent(
                &self,
                name: &str,
                value: &[u8],
            ) -> Result<bool, StoreError> {
                Ok(self
                    .write(query!(sql::PUT_META_IF_ABSENT, name, value))
                    .await?
                    == 1)
            }

            async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
                self.write(query!(sql::SET_META, name, value))
                    .await
                    .map(drop)
            }

            async fn delete_meta(&self, name: &str) -> Result<bool, StoreError> {
                Ok(self.write(query!(sql::DELETE_META, name)).await? == 1)
            }
        }
    };
}

pub(crate) use {impl_store, query, query_as};
