//! The one implementation of [`Store`](keyferry_core::store::Store) and of the migration
//! runner, written once and expanded for each backend by [`impl_store!`] (a macro rather than
//! a generic over `sqlx::Database`, whose higher-ranked executor bounds do not survive
//! `async_trait`'s `Send` futures). The queries are in `sql.rs`, the schema in `schema.rs`.
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

/// Expand the implementation for `$store` over the sqlx database `$db`.
macro_rules! impl_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Apply the pending migrations in `tx`, which holds the database's migration lock
            /// and is committed by the caller.
            async fn apply_migrations(
                tx: &mut sqlx::Transaction<'static, $db>,
                dialect: &$crate::schema::Dialect,
            ) -> Result<(), keyferry_core::store::StoreError> {
                use $crate::error::map_err;
                use $crate::schema;
                sqlx::query(schema::CREATE_VERSION_TABLE)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
                let current: Option<i64> = sqlx::query_scalar(schema::MAX_VERSION)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(map_err)?;
                let current = current.unwrap_or(0);
                let latest = schema::latest();
                if current > latest {
                    return Err(keyferry_core::store::StoreError::Backend(format!(
                        "database schema version {current} is newer than this build supports ({latest})"
                    )));
                }
                for m in schema::MIGRATIONS.iter().filter(|m| m.version > current) {
                    for template in m.statements {
                        sqlx::query(sqlx::AssertSqlSafe(dialect.render(template)))
                            .persistent(false)
                            .execute(&mut **tx)
                            .await
                            .map_err(map_err)?;
                    }
                    sqlx::query(schema::RECORD_VERSION)
                        .bind(m.version)
                        .bind(schema::now_ms())
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
            async fn get_key(
                &self,
                key_id: &str,
            ) -> Result<Option<keyferry_core::store::StoredKey>, keyferry_core::store::StoreError>
            {
                let row: Option<$crate::imp::KeyTuple> = $crate::error::run(
                    self.deadline,
                    sqlx::query_as($crate::sql::GET_KEY)
                        .bind(key_id)
                        .fetch_optional(&self.reader),
                )
                .await?;
                Ok(row.map($crate::imp::key_from))
            }

            async fn insert_key(
                &self,
                key: &keyferry_core::store::StoredKey,
            ) -> Result<(), keyferry_core::store::StoreError> {
                $crate::error::run(
                    self.deadline,
                    sqlx::query($crate::sql::INSERT_KEY)
                        .bind(&key.key_id)
                        .bind(&key.account)
                        .bind(&key.region)
                        .bind(key.version)
                        .bind(key.due_ms)
                        .bind(&key.doc)
                        .execute(&self.writer),
                )
                .await?;
                Ok(())
            }

            async fn update_key(
                &self,
                key: &keyferry_core::store::StoredKey,
                expected_version: i64,
            ) -> Result<bool, keyferry_core::store::StoreError> {
                let done = $crate::error::run(
                    self.deadline,
                    sqlx::query($crate::sql::UPDATE_KEY)
                        .bind(key.version)
                        .bind(key.due_ms)
                        .bind(&key.doc)
                        .bind(&key.key_id)
                        .bind(expected_version)
                        .execute(&self.writer),
                )
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_key(&self, key_id: &str) -> Result<(), keyferry_core::store::StoreError> {
                $crate::error::run(self.deadline, async {
                    let mut tx = self.writer.begin().await?;
                    for stmt in $crate::sql::DELETE_KEY {
                        sqlx::query(*stmt).bind(key_id).execute(&mut *tx).await?;
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
            ) -> Result<Vec<String>, keyferry_core::store::StoreError> {
                $crate::error::run(
                    self.deadline,
                    sqlx::query_scalar($crate::sql::LIST_KEY_IDS)
                        .bind(account)
                        .bind(region)
                        .bind(after)
                        .bind($crate::error::limit(limit))
                        .fetch_all(&self.reader),
                )
                .await
            }

            async fn due_key_ids(
                &self,
                now_ms: i64,
                limit: u32,
            ) -> Result<Vec<String>, keyferry_core::store::StoreError> {
                $crate::error::run(
                    self.deadline,
                    sqlx::query_scalar($crate::sql::DUE_KEY_IDS)
                        .bind(now_ms)
                        .bind($crate::error::limit(limit))
                        .fetch_all(&self.reader),
                )
                .await
            }

            async fn get_alias(
                &self,
                account: &str,
                region: &str,
                name: &str,
            ) -> Result<Option<keyferry_core::store::AliasRow>, keyferry_core::store::StoreError>
            {
                let row: Option<$crate::imp::AliasTuple> = $crate::error::run(
                    self.deadline,
                    sqlx::query_as($crate::sql::GET_ALIAS)
                        .bind(account)
                        .bind(region)
                        .bind(name)
                        .fetch_optional(&self.reader),
                )
                .await?;
                Ok(row.map($crate::imp::alias_from))
            }

            async fn insert_alias(
                &self,
                alias: &keyferry_core::store::AliasRow,
            ) -> Result<(), keyferry_core::store::StoreError> {
                $crate::error::run(
                    self.deadline,
                    sqlx::query($crate::sql::INSERT_ALIAS)
                        .bind(&alias.account)
                        .bind(&alias.region)
                        .bind(&alias.name)
                        .bind(&alias.target_key_id)
                        .bind(alias.creation_ms)
                        .bind(alias.last_updated_ms)
                        .execute(&self.writer),
                )
                .await?;
                Ok(())
            }

            async fn update_alias(
                &self,
                account: &str,
                region: &str,
                name: &str,
                target_key_id: &str,
                now_ms: i64,
            ) -> Result<bool, keyferry_core::store::StoreError> {
                let done = $crate::error::run(
                    self.deadline,
                    sqlx::query($crate::sql::UPDATE_ALIAS)
                        .bind(account)
                        .bind(region)
                        .bind(name)
                        .bind(target_key_id)
                        .bind(now_ms)
                        .execute(&self.writer),
                )
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_alias(
                &self,
                account: &str,
                region: &str,
                name: &str,
            ) -> Result<bool, keyferry_core::store::StoreError> {
                let done = $crate::error::run(
                    self.deadline,
                    sqlx::query($crate::sql::DELETE_ALIAS)
                        .bind(account)
                        .bind(region)
                        .bind(name)
                        .execute(&self.writer),
                )
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_aliases(
                &self,
                account: &str,
                region: &str,
                key_id: Option<&str>,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<keyferry_core::store::AliasRow>, keyferry_core::store::StoreError> {
                let rows: Vec<$crate::imp::AliasTuple> = $crate::error::run(
                    self.deadline,
                    sqlx::query_as($crate::sql::LIST_ALIASES)
                        .bind(account)
                        .bind(region)
                        .bind(key_id)
                        .bind(after)
                        .bind($crate::error::limit(limit))
                        .fetch_all(&self.reader),
                )
                .await?;
                Ok(rows.into_iter().map($crate::imp::alias_from).collect())
            }

            async fn insert_grant(
                &self,
                grant: &keyferry_core::store::GrantRow,
            ) -> Result<(), keyferry_core::store::StoreError> {
                $crate::error::run(
                    self.deadline,
                    sqlx::query($crate::sql::INSERT_GRANT)
                        .bind(&grant.grant_id)
                        .bind(&grant.key_id)
                        .bind(&grant.grantee_principal)
                        .bind(&grant.retiring_principal)
                        .bind(&grant.name)
                        .bind(&grant.issuing_account)
                        .bind(grant.creation_ms)
                        .bind(&grant.doc)
                        .execute(&self.writer),
                )
                .await?;
                Ok(())
            }

            async fn get_grant(
                &self,
                grant_id: &str,
            ) -> Result<Option<keyferry_core::store::GrantRow>, keyferry_core::store::StoreError>
            {
                let row: Option<$crate::imp::GrantTuple> = $crate::error::run(
                    self.deadline,
                    sqlx::query_as($crate::sql::GET_GRANT)
                        .bind(grant_id)
                        .fetch_optional(&self.reader),
                )
                .await?;
                Ok(row.map($crate::imp::grant_from))
            }

            async fn delete_grant(&self, grant_id: &str) -> Result<bool, keyferry_core::store::StoreError> {
                let done = $crate::error::run(
                    self.deadline,
                    sqlx::query($crate::sql::DELETE_GRANT)
                        .bind(grant_id)
                        .execute(&self.writer),
                )
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_grants(
                &self,
                key_id: &str,
                after_grant_id: Option<&str>,
                limit: u32,
            ) -> Result<Vec<keyferry_core::store::GrantRow>, keyferry_core::store::StoreError> {
                let rows: Vec<$crate::imp::GrantTuple> = $crate::error::run(
                    self.deadline,
                    sqlx::query_as($crate::sql::LIST_GRANTS)
                        .bind(key_id)
                        .bind(after_grant_id)
                        .bind($crate::error::limit(limit))
                        .fetch_all(&self.reader),
                )
                .await?;
                Ok(rows.into_iter().map($crate::imp::grant_from).collect())
            }

            async fn grants_for_grantee(
                &self,
                key_id: &str,
                grantee: &str,
            ) -> Result<Vec<keyferry_core::store::GrantRow>, keyferry_core::store::StoreError> {
                let rows: Vec<$crate::imp::GrantTuple> = $crate::error::run(
                    self.deadline,
                    sqlx::query_as($crate::sql::GRANTS_FOR_GRANTEE)
                        .bind(key_id)
                        .bind(grantee)
                        .fetch_all(&self.reader),
                )
                .await?;
                Ok(rows.into_iter().map($crate::imp::grant_from).collect())
            }

            async fn find_grant_by_name(
                &self,
                key_id: &str,
                name: &str,
            ) -> Result<Option<keyferry_core::store::GrantRow>, keyferry_core::store::StoreError>
            {
                let row: Option<$crate::imp::GrantTuple> = $crate::error::run(
                    self.deadline,
                    sqlx::query_as($crate::sql::FIND_GRANT_BY_NAME)
                        .bind(key_id)
                        .bind(name)
                        .fetch_optional(&self.reader),
                )
                .await?;
                Ok(row.map($crate::imp::grant_from))
            }

            async fn list_retirable_grants(
                &self,
                retiring_principal: &str,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<keyferry_core::store::GrantRow>, keyferry_core::store::StoreError> {
                let rows: Vec<$crate::imp::GrantTuple> = $crate::error::run(
                    self.deadline,
                    sqlx::query_as($crate::sql::LIST_RETIRABLE_GRANTS)
                        .bind(retiring_principal)
                        .bind(after)
                        .bind($crate::error::limit(limit))
                        .fetch_all(&self.reader),
                )
                .await?;
                Ok(rows.into_iter().map($crate::imp::grant_from).collect())
            }

            async fn count_grants(&self, key_id: &str) -> Result<i64, keyferry_core::store::StoreError> {
                $crate::error::run(
                    self.deadline,
                    sqlx::query_scalar($crate::sql::COUNT_GRANTS)
                        .bind(key_id)
                        .fetch_one(&self.reader),
                )
                .await
            }

            async fn record_key_usage(
                &self,
                rows: &[keyferry_core::store::KeyUsageRow],
            ) -> Result<(), keyferry_core::store::StoreError> {
                if rows.is_empty() {
                    return Ok(());
                }
                $crate::error::run(self.deadline, async {
                    let mut tx = self.writer.begin().await?;
                    for row in rows {
                        sqlx::query($crate::sql::RECORD_KEY_USAGE)
                            .bind(&row.key_id)
                            .bind(&row.operation)
                            .bind(row.timestamp_ms)
                            .bind(&row.event_id)
                            .bind(&row.request_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await
                })
                .await
            }

            async fn get_key_usage(
                &self,
                key_id: &str,
            ) -> Result<Option<keyferry_core::store::KeyUsageRow>, keyferry_core::store::StoreError>
            {
                let row: Option<$crate::imp::UsageTuple> = $crate::error::run(
                    self.deadline,
                    sqlx::query_as($crate::sql::GET_KEY_USAGE)
                        .bind(key_id)
                        .fetch_optional(&self.reader),
                )
                .await?;
                Ok(row.map($crate::imp::usage_from))
            }

            async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, keyferry_core::store::StoreError> {
                $crate::error::run(
                    self.deadline,
                    sqlx::query_scalar($crate::sql::GET_META)
                        .bind(name)
                        .fetch_optional(&self.reader),
                )
                .await
            }

            async fn put_meta_if_absent(
                &self,
                name: &str,
                value: &[u8],
            ) -> Result<bool, keyferry_core::store::StoreError> {
                let done = $crate::error::run(
                    self.deadline,
                    sqlx::query($crate::sql::PUT_META_IF_ABSENT)
                        .bind(name)
                        .bind(value)
                        .execute(&self.writer),
                )
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), keyferry_core::store::StoreError> {
                $crate::error::run(
                    self.deadline,
                    sqlx::query($crate::sql::SET_META)
                        .bind(name)
                        .bind(value)
                        .execute(&self.writer),
                )
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_store;
