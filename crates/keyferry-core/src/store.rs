//! The storage boundary. `keyferry-core` owns the meaning of every record; a backend
//! (`keyferry-store`) only persists opaque documents with a version and a due time, plus the
//! few columns it must index.
//!
//! Semantics every backend must honour (checked by the conformance suite in `keyferry-store`):
//! - a write that returned `Ok` is durable (survives `kill -9` of the process);
//! - `update_key` is a compare-and-swap on `version`: it succeeds only if the stored version
//!   equals `expected_version`, and then stores `key.version` (which the caller sets to
//!   `expected_version + 1`); otherwise it returns `Ok(false)` and changes nothing;
//! - a key's `account` and `region` are fixed when it is inserted (`update_key` never changes
//!   them); key ids are unique across accounts and Regions, alias names only within one
//!   `(account, region)`;
//! - `delete_key` removes the key, every alias that targets it, its grants and its last-usage
//!   row, atomically;
//! - listings are ordered bytewise ascending by their key (`key_id`, alias `name`, `grant_id`),
//!   strictly after `after`, at most `limit` rows;
//! - a backend that cannot answer in time (pool exhausted, database unreachable or frozen,
//!   statement timeout) fails fast with [`StoreError::Unavailable`] rather than hanging.
//!
//! The trait is object-safe: `keyferry-core` holds an `Arc<dyn Store>`.

use async_trait::async_trait;

/// One key as the store sees it: an opaque document (`doc`, encoded by `keyferry-core`,
/// never containing plaintext key material) plus the columns the store must index.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key_id: String,
    /// The owning account (also inside `doc`); fixed at insert.
    pub account: String,
    /// The key's Region (also inside `doc`); fixed at insert.
    pub region: String,
    /// Optimistic-concurrency version, starting at 1.
    pub version: i64,
    /// The earliest time (epoch milliseconds) at which the key needs attention from the
    /// background sweeper: scheduled deletion, material expiry, automatic rotation.
    pub due_ms: Option<i64>,
    pub doc: Vec<u8>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("key_id", &self.key_id)
            .field("account", &self.account)
            .field("region", &self.region)
            .field("version", &self.version)
            .field("due_ms", &self.due_ms)
            .field("doc", &format_args!("<{} bytes>", self.doc.len()))
            .finish()
    }
}

/// An alias row. Unique per `(account, region, name)`; its target is a key of the same
/// account and Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRow {
    pub account: String,
    pub region: String,
    /// Full alias name, `alias/...`.
    pub name: String,
    pub target_key_id: String,
    pub creation_ms: i64,
    pub last_updated_ms: i64,
}

/// A grant row: the indexed columns plus an opaque document owned by `keyferry-core`
/// (operations, constraints, grant tokens).
#[derive(Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub grant_id: String,
    /// The key the grant is on; the grant is deleted with it.
    pub key_id: String,
    pub grantee_principal: String,
    pub retiring_principal: Option<String>,
    pub name: Option<String>,
    pub issuing_account: String,
    pub creation_ms: i64,
    pub doc: Vec<u8>,
}

impl std::fmt::Debug for GrantRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantRow")
            .field("grant_id", &self.grant_id)
            .field("key_id", &self.key_id)
            .field("grantee_principal", &self.grantee_principal)
            .field("retiring_principal", &self.retiring_principal)
            .field("name", &self.name)
            .field("issuing_account", &self.issuing_account)
            .field("creation_ms", &self.creation_ms)
            .field("doc", &format_args!("<{} bytes>", self.doc.len()))
            .finish()
    }
}

/// The last cryptographic use of a key (one row per key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsageRow {
    pub key_id: String,
    /// The operation name, e.g. `Encrypt`.
    pub operation: String,
    /// When it happened, epoch milliseconds.
    pub timestamp_ms: i64,
    pub event_id: String,
    pub request_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An insert hit an existing primary key (key id, alias name, grant id).
    #[error("already exists")]
    AlreadyExists,
    /// The backend did not answer in time (pool acquire, connect or statement timeout, database
    /// unreachable). Retryable; the message is for logs, never for clients.
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    /// The backend failed; the message is for logs, never for clients.
    #[error("storage backend failure: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- keys ---------------------------------------------------------------------------

    /// The key with this id, whatever its account and Region; `None` if there is none.
    async fn get_key(&self, key_id: &str) -> Result<Option<StoredKey>, StoreError>;
    /// Insert a new key; `StoreError::AlreadyExists` if the id is taken (in any account).
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Compare-and-swap on the version (see the module docs); stores `version`, `due_ms` and
    /// `doc`, never `account` or `region`.
    async fn update_key(&self, key: &StoredKey, expected_version: i64) -> Result<bool, StoreError>;
    /// Delete a key with its aliases, grants and last-usage row, in one transaction.
    /// Deleting a missing key is not an error.
    async fn delete_key(&self, key_id: &str) -> Result<(), StoreError>;
    /// Ids of the keys of `(account, region)` in ascending order, strictly after `after`, at
    /// most `limit`.
    async fn list_key_ids(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Ids of the keys of every account and Region in ascending order, strictly after
    /// `after`, at most `limit` (the root-key rotation walks them all).
    async fn all_key_ids(&self, after: Option<&str>, limit: u32)
    -> Result<Vec<String>, StoreError>;
    /// Ids of keys (of every account and Region) whose `due_ms <= now_ms`, earliest first, at
    /// most `limit`.
    async fn due_key_ids(&self, now_ms: i64, limit: u32) -> Result<Vec<String>, StoreError>;

    // ---- aliases ------------------------------------------------------------------------

    /// The alias `name` of `(account, region)`; `None` if there is none.
    async fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<AliasRow>, StoreError>;
    /// Insert an alias; `StoreError::AlreadyExists` if `(account, region, name)` is taken.
    /// Fails (`Backend`) if the target key does not exist in the alias's account and Region.
    async fn insert_alias(&self, alias: &AliasRow) -> Result<(), StoreError>;
    /// Point an existing alias at another key of the same account and Region, setting
    /// `last_updated_ms = now_ms`. `Ok(false)` if there is no such alias; `Backend` if the
    /// target does not exist there.
    async fn update_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
        target_key_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Delete an alias; `Ok(false)` if there was no such alias.
    async fn delete_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<bool, StoreError>;
    /// Aliases of `(account, region)` in ascending name order, strictly after `after`, at
    /// most `limit`, optionally only those targeting `key_id`.
    async fn list_aliases(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AliasRow>, StoreError>;

    // ---- grants -------------------------------------------------------------------------

    /// Insert a grant; `StoreError::AlreadyExists` if `grant_id` is taken. Fails (`Backend`)
    /// if the key does not exist.
    async fn insert_grant(&self, grant: &GrantRow) -> Result<(), StoreError>;
    /// The grant with this id; `None` if there is none.
    async fn get_grant(&self, grant_id: &str) -> Result<Option<GrantRow>, StoreError>;
    /// Delete a grant (retire or revoke); `Ok(false)` if there was no such grant.
    async fn delete_grant(&self, grant_id: &str) -> Result<bool, StoreError>;
    /// The grants on `key_id` in ascending `grant_id` order, strictly after `after_grant_id`,
    /// at most `limit`.
    async fn list_grants(
        &self,
        key_id: &str,
        after_grant_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GrantRow>, StoreError>;
    /// Every grant on `key_id` whose grantee principal is exactly `grantee`, in ascending
    /// `grant_id` order.
    async fn grants_for_grantee(
        &self,
        key_id: &str,
        grantee: &str,
    ) -> Result<Vec<GrantRow>, StoreError>;
    /// A grant on `key_id` with this name (names need not be unique: the one with the lowest
    /// `grant_id`); `None` if there is none.
    async fn find_grant_by_name(
        &self,
        key_id: &str,
        name: &str,
    ) -> Result<Option<GrantRow>, StoreError>;
    /// The grants (on any key) whose retiring principal is exactly `retiring_principal`, in
    /// ascending `grant_id` order, strictly after `after`, at most `limit`.
    async fn list_retirable_grants(
        &self,
        retiring_principal: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GrantRow>, StoreError>;
    /// How many grants `key_id` has (0 for a missing key).
    async fn count_grants(&self, key_id: &str) -> Result<i64, StoreError>;

    // ---- key last usage -----------------------------------------------------------------

    /// Record usage, in one transaction for the whole batch: per key, the stored row becomes
    /// the one with the latest `timestamp_ms` among the stored row and the batch's rows (on a
    /// tie the one recorded last wins). Rows for keys that do not exist (deleted meanwhile)
    /// are skipped. An empty batch does nothing.
    async fn record_key_usage(&self, rows: &[KeyUsageRow]) -> Result<(), StoreError>;
    /// The last recorded usage of `key_id`; `None` if none was recorded.
    async fn get_key_usage(&self, key_id: &str) -> Result<Option<KeyUsageRow>, StoreError>;

    // ---- metadata -----------------------------------------------------------------------

    /// The value stored under `name` (e.g. the root-key check value); `None` if unset.
    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Store `value` under `name` unless a value is already there. `true` if this call
    /// inserted it; `false` (and nothing changed) if `name` was already set. Atomic across
    /// nodes: of concurrent callers exactly one gets `true`.
    async fn put_meta_if_absent(&self, name: &str, value: &[u8]) -> Result<bool, StoreError>;
    /// Store `value` under `name`, replacing any previous value.
    async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Remove `name`; `true` if it was there.
    async fn delete_meta(&self, name: &str) -> Result<bool, StoreError>;
}
