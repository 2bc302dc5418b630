//! The storage boundary. `keyferry-core` owns the meaning of every record; a backend
//! (`keyferry-store`) only persists opaque documents with a version and a due time.
//!
//! Semantics every backend must honour (checked by the conformance suite in `keyferry-store`):
//! - a write that returned `Ok` is durable (survives `kill -9` of the process);
//! - `update_key` is a compare-and-swap on `version`: it succeeds only if the stored version
//!   equals `expected_version`, and then stores `key.version` (which the caller sets to
//!   `expected_version + 1`); otherwise it returns `Ok(false)` and changes nothing;
//! - `delete_key` removes the key and every alias that targets it, atomically;
//! - listings are ordered by name (`key_id`, alias `name`) ascending, strictly after `after`.

use async_trait::async_trait;

/// One key as the store sees it: an opaque document (`doc`, encoded by `keyferry-core`,
/// never containing plaintext key material) plus the columns the store must index.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key_id: String,
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
            .field("version", &self.version)
            .field("due_ms", &self.due_ms)
            .field("doc", &format_args!("<{} bytes>", self.doc.len()))
            .finish()
    }
}

/// An alias row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRow {
    /// Full alias name, `alias/...`.
    pub name: String,
    pub target_key_id: String,
    pub creation_ms: i64,
    pub last_updated_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An insert hit an existing primary key (key id or alias name).
    #[error("already exists")]
    AlreadyExists,
    /// The backend failed; the message is for logs, never for clients.
    #[error("storage backend failure: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get_key(&self, key_id: &str) -> Result<Option<StoredKey>, StoreError>;
    /// Insert a new key; `StoreError::AlreadyExists` if the id is taken.
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Compare-and-swap on the version; see the module docs.
    async fn update_key(&self, key: &StoredKey, expected_version: i64) -> Result<bool, StoreError>;
    /// Delete a key and its aliases. Deleting a missing key is not an error.
    async fn delete_key(&self, key_id: &str) -> Result<(), StoreError>;
    /// Key ids in ascending order, strictly after `after`, at most `limit`.
    async fn list_key_ids(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Ids of keys whose `due_ms <= now_ms`, at most `limit`.
    async fn due_key_ids(&self, now_ms: i64, limit: u32) -> Result<Vec<String>, StoreError>;

    async fn get_alias(&self, name: &str) -> Result<Option<AliasRow>, StoreError>;
    /// Insert an alias; `StoreError::AlreadyExists` if the name is taken.
    async fn insert_alias(&self, alias: &AliasRow) -> Result<(), StoreError>;
    /// Point an existing alias at another key. `Ok(false)` if there is no such alias.
    async fn update_alias(
        &self,
        name: &str,
        target_key_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// `Ok(false)` if there was no such alias.
    async fn delete_alias(&self, name: &str) -> Result<bool, StoreError>;
    /// Aliases in ascending name order, optionally only those targeting `key_id`.
    async fn list_aliases(
        &self,
        key_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AliasRow>, StoreError>;
}
