//! The `Kms` service object: configuration, key resolution, the read cache, and the one write
//! path (`mutate`, a compare-and-swap loop). Operations live in `ops/`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use keyferry_crypto::asymmetric::PrivateKey;
use keyferry_crypto::seal::RootKey;
use keyferry_crypto::symmetric::SymmetricKey;
use keyferry_crypto::{Secret, material};
use keyferry_types::{KeyMaterialState, KeySpec, KeyState, KeyUsageType, RotationType};

use crate::KmsError;
use crate::clock::Clock;
use crate::context::{Directory, RequestContext};
use crate::import_token::TokenCache;
use crate::pool::{PoolConfig, WrappingKeyPool};
use crate::record::{KeyRecord, MaterialRecord, alias_arn, key_arn, key_id_of_row, replica_row};
use crate::store::{Store, StoredKey};

/// Service configuration. Built once by the server and passed in; no globals.
#[derive(Debug, Clone)]
pub struct Config {
    pub account_id: String,
    pub region: String,
    /// Every Region this deployment serves (`--regions`; always contains `region`). A request's
    /// Region is its SigV4 credential scope; keys, aliases and ARNs are per Region.
    pub regions: Vec<String>,
    /// How long a new replica stays `Creating` and the two keys of UpdatePrimaryRegion stay
    /// `Updating` (AWS: "a few seconds"; see docs/decisions.md).
    pub settle: Duration,
    /// How long a node may answer from its cached copy of a key record before re-reading the
    /// store. Writes through this node update its cache at once; other nodes sharing the database
    /// see a change within this time. Time-based changes (expiry, deletion) are exact regardless.
    pub cache_ttl: Duration,
    /// Pre-generated RSA wrapping keys kept per wrapping key spec without demand (the pool's
    /// minimum depth; 0: no background pool). See `pool.rs` for how the depth adapts.
    pub wrapping_pool_size: usize,
    /// The depth demand may grow the pool to, per wrapping key spec.
    pub wrapping_pool_max: usize,
    /// Without demand for this long, a grown pool depth halves.
    pub wrapping_pool_decay: Duration,
    /// Import tokens one wrapping key may serve for one caller within a minute (1: never reuse).
    pub wrapping_key_max_tokens: u32,
    /// The accounts, users and roles that exist (key policies may name only these).
    pub directory: Directory,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            regions: vec!["us-east-1".into()],
            settle: Duration::from_secs(1),
            cache_ttl: Duration::from_secs(5),
            wrapping_pool_size: 4,
            wrapping_pool_max: crate::pool::PoolConfig::default().max,
            wrapping_pool_decay: crate::pool::PoolConfig::default().decay,
            wrapping_key_max_tokens: crate::pool::PoolConfig::default().max_tokens,
            directory: Directory::single("111122223333"),
        }
    }
}

/// Key material opened for use, cached per (key id, material id). Material with a given id never
/// changes (the id is derived from it), so entries need no invalidation; the record decides
/// whether a material may still be used.
pub(crate) enum Unsealed {
    Symmetric(SymmetricKey),
    Hmac(Secret),
    Private(PrivateKey),
}

struct CachedRecord {
    rec: Arc<KeyRecord>,
    fetched: Instant,
}

pub struct Kms {
    pub(crate) cfg: Config,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The subkeys material is sealed under (`reseal.rs`): new material under `current`; during
    /// and after a root-key rotation this node also opens material under `previous`.
    pub(crate) material_keys: RwLock<crate::reseal::MaterialKeys>,
    /// Opens the new root key a rotation publishes in the database (`reseal.rs`).
    pub(crate) next_wrap: RootKey,
    pub(crate) token_key: Arc<RootKey>,
    pub(crate) pool: WrappingKeyPool,
    /// Import tokens issued or opened here, parsed (see `import_token::TokenCache`).
    pub(crate) tokens: TokenCache,
    records: RwLock<HashMap<String, CachedRecord>>,
    unsealed: RwLock<HashMap<(String, String), Arc<Unsealed>>>,
    aliases: RwLock<HashMap<String, (String, Instant)>>,
    /// Writes to one key are serialised within a node (sharded by key id), so that concurrent
    /// requests queue instead of exhausting the compare-and-swap retries; the CAS still guards
    /// against other nodes.
    write_locks: Vec<tokio::sync::Mutex<()>>,
    /// Grant tokens' key and the per-node grant cache (`ops/grants.rs`).
    pub(crate) grants: crate::ops::GrantState,
    /// Last cryptographic use per key, flushed to the store every second (`ops/usage.rs`).
    pub(crate) usage: crate::ops::UsageTracker,
    /// Hit and miss counters of the caches above (and of the wrapping-key pool), for `/metrics`.
    pub(crate) cache_stats: crate::stats::CacheStats,
}

const UNSEALED_CACHE_MAX: usize = 10_000;
/// Parsed import tokens kept per node (an RSA-4096 key is about 4 KiB in memory).
const TOKEN_CACHE_MAX: usize = 1_024;
const WRITE_LOCK_SHARDS: usize = 64;
/// Compare-and-swap attempts of one write before it gives up (with the backoff, about 2 s).
const CAS_ATTEMPTS: u64 = 64;
const RECORD_CACHE_MAX: usize = 100_000;

/// The write lock shard of a key's row (writes of one node to one row are serialised; rows that
/// share a shard wait for each other). Public so that tests can find rows that share one.
pub fn write_lock_shard(row_id: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    row_id.hash(&mut h);
    (h.finish() as usize) % WRITE_LOCK_SHARDS
}

/// Work on other keys that a write of one key calls for, done after its shard lock is released.
enum After {
    /// A primary's shared properties changed: copy them into its replicas.
    SyncReplicas(Arc<KeyRecord>),
    /// A member of a multi-Region key (account, key id) was deleted.
    MemberDeleted(String, String),
}

impl Kms {
    pub fn new(
        cfg: Config,
        store: Arc<dyn Store>,
        root: &RootKey,
        clock: Arc<dyn Clock>,
    ) -> Arc<Kms> {
        let pool = WrappingKeyPool::new(PoolConfig {
            min: cfg.wrapping_pool_size,
            max: cfg.wrapping_pool_max,
            decay: cfg.wrapping_pool_decay,
            max_tokens: cfg.wrapping_key_max_tokens,
        });
        Arc::new(Kms {
            material_keys: RwLock::new(crate::reseal::MaterialKeys::new(root)),
            next_wrap: crate::reseal::next_wrap_key(root),
            token_key: Arc::new(root.derive("keyferry/import-token/v1")),
            grants: crate::ops::GrantState::new(root),
            cfg,
            usage: crate::ops::UsageTracker::new(store.clone()),
            store,
            clock,
            pool,
            tokens: TokenCache::new(TOKEN_CACHE_MAX),
            records: RwLock::new(HashMap::new()),
            unsealed: RwLock::new(HashMap::new()),
            aliases: RwLock::new(HashMap::new()),
            write_locks: (0..WRITE_LOCK_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            cache_stats: crate::stats::CacheStats::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Hit and miss counters of this node's caches.
    pub fn cache_stats(&self) -> &crate::stats::CacheStats {
        &self.cache_stats
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn arn(&self, key_id: &str) -> String {
        key_arn(&self.cfg.region, &self.cfg.account_id, key_id)
    }

    // ---- key identifiers ------------------------------------------------------------------

    /// Resolve a `KeyId` parameter, as the caller of `ctx` sees it, to a key id and the account
    /// that owns it. A bare key id or alias name is looked up in the caller's account and the
    /// request's Region; a key ARN or alias ARN names its account. `allow_alias` is false for the
    /// operations that accept only a key ID or key ARN (import, rotation, alias targets).
    pub(crate) async fn resolve_id(
        &self,
        ctx: &RequestContext,
        input: &str,
        allow_alias: bool,
    ) -> Result<(String, String), KmsError> {
        let invalid = || KmsError::NotFound(format!("Invalid keyId '{input}'"));
        if let Some(rest) = input.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            if parts.len() != 5 || parts[1] != "kms" || !parts[0].starts_with("aws") {
                return Err(KmsError::NotFound(format!("Invalid arn {input}")));
            }
            let (region, account, resource) = (parts[2], parts[3], parts[4]);
            if region != ctx.region {
                return Err(KmsError::NotFound(format!("Invalid arn {region}")));
            }
            if let Some(id) = resource.strip_prefix("key/") {
                if !is_key_id(id) {
                    return Err(invalid());
                }
                return Ok((id.to_string(), account.to_string()));
            }
            if resource.starts_with("alias/") && allow_alias {
                let own = account == ctx.account();
                let target = self.alias_target(account, region, resource, own).await?;
                return Ok((key_id_of_row(&target).to_string(), account.to_string()));
            }
            return Err(invalid());
        }
        if input.starts_with("alias/") {
            if !allow_alias {
                return Err(invalid());
            }
            let target = self
                .alias_target(ctx.account(), &ctx.region, input, true)
                .await?;
            return Ok((
                key_id_of_row(&target).to_string(),
                ctx.account().to_string(),
            ));
        }
        if is_key_id(input) {
            Ok((input.to_string(), ctx.account().to_string()))
        } else {
            Err(invalid())
        }
    }

    /// The key an alias points to. A predefined alias of an AWS managed key
    /// (`alias/aws/<service>`) that has no key yet gets one when `create_managed` (the caller's
    /// own account), as AWS creates it on first use (`managed.rs`).
    async fn alias_target(
        &self,
        account: &str,
        region: &str,
        alias: &str,
        create_managed: bool,
    ) -> Result<String, KmsError> {
        let cache_key = format!("{account}/{region}/{alias}");
        let cached = self
            .aliases
            .read()
            .map_err(|_| poisoned())?
            .get(&cache_key)
            .filter(|(_, at)| at.elapsed() < self.cfg.cache_ttl)
            .map(|(target, _)| target.clone());
        self.cache_stats.aliases.record(cached.is_some());
        if let Some(target) = cached {
            return Ok(target);
        }
        match self.store.get_alias(account, region, alias).await? {
            Some(row) => {
                if let Ok(mut map) = self.aliases.write() {
                    if map.len() >= RECORD_CACHE_MAX {
                        map.clear();
                    }
                    map.insert(cache_key, (row.target_key_id.clone(), Instant::now()));
                }
                Ok(row.target_key_id)
            }
            None if create_managed && crate::managed::service_of(alias).is_some() => {
                self.create_managed_key(account, region, alias).await
            }
            None => Err(KmsError::NotFound(format!(
                "Alias {} is not found.",
                alias_arn(region, account, alias)
            ))),
        }
    }

    /// Drop a cached alias after this node changed it.
    pub(crate) fn forget_alias(&self, account: &str, region: &str, alias: &str) {
        if let Ok(mut map) = self.aliases.write() {
            map.remove(&format!("{account}/{region}/{alias}"));
        }
    }

    /// Resolve and load a key as the caller sees it; NotFound if it does not exist (or its
    /// deletion date has passed) in the account the identifier names.
    pub(crate) async fn resolve(
        &self,
        ctx: &RequestContext,
        input: &str,
        allow_alias: bool,
    ) -> Result<Arc<KeyRecord>, KmsError> {
        let (id, account) = self.resolve_id(ctx, input, allow_alias).await?;
        let not_found = || {
            KmsError::NotFound(format!(
                "Key '{}' does not exist",
                key_arn(&ctx.region, &account, &id)
            ))
        };
        let rec = match self.load_member(&ctx.region, &id).await {
            Ok(rec) => rec,
            Err(KmsError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(e),
        };
        if rec.account != account || rec.region != ctx.region {
            return Err(not_found());
        }
        Ok(rec)
    }

    /// The key spec of the key `input` names as the caller sees it, from the caches when fresh;
    /// `None` if it does not resolve. For the edge's request quotas, which depend on the kind of
    /// key (no authorization: nothing of the key is returned to the caller).
    pub async fn key_spec_of(&self, ctx: &RequestContext, input: &str) -> Option<KeySpec> {
        self.resolve(ctx, input, true)
            .await
            .ok()
            .map(|r| r.key_spec)
    }

    /// NotFound for a store row (a replica's row names its Region).
    pub(crate) fn not_found(&self, row: &str) -> KmsError {
        let arn = match row.split_once('@') {
            Some((id, region)) => key_arn(region, &self.cfg.account_id, id),
            None => self.arn(row),
        };
        KmsError::NotFound(format!("Key '{arn}' does not exist"))
    }

    /// Whether this deployment serves `region`.
    pub fn serves(&self, region: &str) -> bool {
        self.cfg.regions.iter().any(|r| r == region)
    }

    /// The key `key_id` as it exists in `region`: a single-Region key is its one row (the
    /// caller checks its Region); a multi-Region key's member in `region` is the bare row if
    /// that one is in `region` (the member CreateKey made), else the replica row
    /// `mrk-…@<region>`.
    pub(crate) async fn load_member(
        &self,
        region: &str,
        key_id: &str,
    ) -> Result<Arc<KeyRecord>, KmsError> {
        if !key_id.starts_with("mrk-") {
            return self.load(key_id).await;
        }
        match self.load(key_id).await {
            Ok(rec) if rec.region == region => return Ok(rec),
            Ok(_) | Err(KmsError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        self.load(&replica_row(key_id, region)).await
    }

    /// Every member of the multi-Region key `key_id` of `account`, in the served Regions'
    /// order (the primary and its replicas; a single-Region key is its own only member).
    pub(crate) async fn members(
        &self,
        account: &str,
        key_id: &str,
    ) -> Result<Vec<Arc<KeyRecord>>, KmsError> {
        let mut out = Vec::new();
        for region in &self.cfg.regions {
            match self.load_member(region, key_id).await {
                Ok(rec) if rec.account == account && rec.region == *region => out.push(rec),
                Ok(_) | Err(KmsError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    // ---- reading --------------------------------------------------------------------------

    /// The key record, from the cache when fresh. Time-based transitions that are due (expiry,
    /// deletion, automatic rotation) are applied and persisted before the record is returned.
    pub(crate) async fn load(&self, key_id: &str) -> Result<Arc<KeyRecord>, KmsError> {
        let now = self.now_ms();
        let cached = {
            let map = self.records.read().map_err(|_| poisoned())?;
            map.get(key_id)
                .filter(|c| c.fetched.elapsed() < self.cfg.cache_ttl)
                .map(|c| c.rec.clone())
        };
        self.cache_stats.key_records.record(cached.is_some());
        let rec = match cached {
            Some(rec) => rec,
            None => {
                let Some(stored) = self.store.get_key(key_id).await? else {
                    self.forget(key_id);
                    return Err(self.not_found(key_id));
                };
                let rec = Arc::new(KeyRecord::decode(&stored.doc)?);
                self.remember(rec.clone());
                rec
            }
        };
        if rec.due_ms().is_some_and(|due| due <= now) {
            let (_, rec) = self.mutate(key_id, |_| Ok(())).await?;
            return Ok(rec);
        }
        Ok(rec)
    }

    fn remember(&self, rec: Arc<KeyRecord>) {
        if let Ok(mut map) = self.records.write() {
            if map.len() >= RECORD_CACHE_MAX {
                map.clear();
            }
            map.insert(
                rec.row_id(),
                CachedRecord {
                    rec,
                    fetched: Instant::now(),
                },
            );
        }
    }

    /// Whether this node knows `key_id` in `region` as a replica row (`mrk-…@<region>`).
    pub(crate) fn is_replica_row(&self, key_id: &str, region: &str) -> bool {
        self.records
            .read()
            .is_ok_and(|map| map.contains_key(&replica_row(key_id, region)))
    }

    pub(crate) fn forget(&self, key_id: &str) {
        if let Ok(mut map) = self.records.write() {
            map.remove(key_id);
        }
    }

    // ---- writing --------------------------------------------------------------------------

    pub(crate) async fn insert(&self, rec: KeyRecord) -> Result<Arc<KeyRecord>, KmsError> {
        let stored = StoredKey {
            key_id: rec.row_id(),
            account: rec.account.clone(),
            region: rec.region.clone(),
            version: 1,
            due_ms: rec.due_ms(),
            doc: rec.encode()?,
        };
        match self.store.insert_key(&stored).await {
            Ok(()) => {}
            Err(crate::store::StoreError::AlreadyExists) => {
                return Err(KmsError::AlreadyExists(format!(
                    "Key '{}' already exists.",
                    rec.arn()
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let rec = Arc::new(rec);
        self.remember(rec.clone());
        Ok(rec)
    }

    /// Read-modify-write of one key with compare-and-swap, retried on conflict. `f` sees the
    /// record with due time-based transitions applied; if it fails, nothing is written.
    pub(crate) async fn mutate<T>(
        &self,
        key_id: &str,
        mut f: impl FnMut(&mut KeyRecord) -> Result<T, KmsError>,
    ) -> Result<(T, Arc<KeyRecord>), KmsError> {
        let shard = write_lock_shard(key_id);
        // What follows a write touches other keys' rows (their own shard locks): it runs once
        // this key's lock is released, or a replica whose row hashes to the same shard would
        // wait for it forever.
        let mut then = None;
        let result = {
            let _serialised = self.write_locks[shard].lock().await;
            self.mutate_locked(key_id, &mut f, &mut then).await
        };
        match then {
            Some(After::SyncReplicas(primary)) => self.sync_replicas(primary).await?,
            Some(After::MemberDeleted(account, id)) => self.member_deleted(account, id).await?,
            None => {}
        }
        result
    }

    async fn mutate_locked<T>(
        &self,
        key_id: &str,
        f: &mut impl FnMut(&mut KeyRecord) -> Result<T, KmsError>,
        then: &mut Option<After>,
    ) -> Result<(T, Arc<KeyRecord>), KmsError> {
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                // Another node won the race: back off (growing, with jitter so that contending
                // nodes spread out) before re-reading.
                let base = (1u64 << attempt.min(5)).min(32);
                let jitter = u64::from(keyferry_crypto::rng::random_bytes(1)[0]) % (base + 1);
                tokio::time::sleep(Duration::from_millis(base + jitter)).await;
            }
            let Some(stored) = self.store.get_key(key_id).await? else {
                self.forget(key_id);
                return Err(self.not_found(key_id));
            };
            let mut rec = KeyRecord::decode(&stored.doc)?;
            let before = shared_fingerprint(&rec);
            let now = self.now_ms();
            if self.apply_time(&mut rec, now)? == TimeOutcome::Deleted {
                self.store.delete_key(key_id).await?;
                self.forget(key_id);
                if let Ok(mut map) = self.aliases.write() {
                    map.retain(|_, (target, _)| target != key_id);
                }
                if rec.multi_region {
                    *then = Some(After::MemberDeleted(
                        rec.account.clone(),
                        rec.key_id.clone(),
                    ));
                }
                return Err(self.not_found(key_id));
            }
            let out = f(&mut rec)?;
            let next = StoredKey {
                key_id: key_id.to_string(),
                account: rec.account.clone(),
                region: rec.region.clone(),
                version: stored.version + 1,
                due_ms: rec.due_ms(),
                doc: rec.encode()?,
            };
            if self.store.update_key(&next, stored.version).await? {
                let rec = Arc::new(rec);
                self.remember(rec.clone());
                if rec.is_primary() && shared_fingerprint(&rec) != before {
                    *then = Some(After::SyncReplicas(rec.clone()));
                }
                return Ok((out, rec));
            }
        }
        // Only a pathological write storm from other nodes gets here: answer the retryable
        // error AWS uses for a dependency that does not answer, never a 500.
        Err(KmsError::DependencyTimeout(format!(
            "too many concurrent updates of key {key_id}"
        )))
    }

    /// Apply what time has made due: scheduled deletion, material expiry, automatic rotation.
    fn apply_time(&self, rec: &mut KeyRecord, now: i64) -> Result<TimeOutcome, KmsError> {
        if rec.state == KeyState::PendingDeletion && rec.deletion_ms.is_some_and(|d| d <= now) {
            return Ok(TimeOutcome::Deleted);
        }
        let mut expired_any = false;
        rec.materials.retain(|m| {
            !(crate::record::is_pending(m.state) && m.valid_to_ms.is_some_and(|v| v <= now))
        });
        for m in rec.materials.iter_mut() {
            if m.sealed.is_some() && m.valid_to_ms.is_some_and(|v| v <= now) {
                m.sealed = None;
                expired_any = true;
            }
        }
        if expired_any
            && matches!(rec.state, KeyState::Enabled | KeyState::Disabled)
            && !rec.all_material_present()
        {
            rec.state = KeyState::PendingImport;
        }
        if let Some(at) = rec.settle_ms
            && at <= now
        {
            rec.settle_ms = None;
            let settled = rec.settle_state.take().unwrap_or(KeyState::Enabled);
            if matches!(rec.state, KeyState::Creating | KeyState::Updating) {
                rec.state = if settled == KeyState::Enabled && !rec.all_material_present() {
                    KeyState::PendingImport
                } else {
                    settled
                };
            }
        }
        if rec.rotation_enabled
            && !rec.is_replica()
            && rec.state == KeyState::Enabled
            && rec.next_rotation_ms.is_some_and(|t| t <= now)
        {
            self.rotate_generated(rec, now, RotationType::AUTOMATIC)?;
            let period = rec.rotation_period_days.unwrap_or(365);
            rec.next_rotation_ms = Some(now + period * DAY_MS);
        }
        Ok(TimeOutcome::Kept)
    }

    /// Run the time-based transitions of every key that is due. Called by the sweeper task.
    pub async fn sweep(&self) -> Result<usize, KmsError> {
        let ids = self.store.due_key_ids(self.now_ms(), 1000).await?;
        let n = ids.len();
        for id in ids {
            match self.mutate(&id, |_| Ok(())).await {
                Ok(_) | Err(KmsError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Start the background tasks: the sweeper (every `interval`) and the wrapping-key pool filler.
    pub fn start_background(self: &Arc<Self>, interval: Duration) {
        let kms = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(kms) = kms.upgrade() else { break };
                if let Err(e) = kms.sweep().await {
                    tracing::warn!(error = %e, "sweeper failed");
                }
                if let Err(e) = kms.adopt_next_root_key().await {
                    tracing::warn!(error = %e, "cannot read the root-key rotation state");
                }
            }
        });
        self.pool.start();
    }

    // ---- material -------------------------------------------------------------------------

    pub(crate) fn material_aad(key_id: &str, material_id: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(key_id.len() + 1 + material_id.len());
        aad.extend_from_slice(key_id.as_bytes());
        aad.push(0);
        aad.extend_from_slice(material_id.as_bytes());
        aad
    }

    /// Seal canonical material for storage and compute its id.
    pub(crate) fn seal_material(
        &self,
        key_id: &str,
        canonical: &[u8],
    ) -> Result<(String, Vec<u8>), KmsError> {
        let id = hex::encode(material::material_id(key_id, canonical));
        let sealed = self
            .material_keys
            .read()
            .map_err(|_| poisoned())?
            .current
            .seal(canonical, &Self::material_aad(key_id, &id))
            .map_err(|e| KmsError::Internal(format!("seal material: {e}")))?;
        Ok((id, sealed))
    }

    /// Opened material, cached. Fails with `KMSInternalException` if the seal does not open
    /// (wrong root key or a corrupted record).
    pub(crate) fn unsealed(
        &self,
        rec: &KeyRecord,
        m: &MaterialRecord,
    ) -> Result<Arc<Unsealed>, KmsError> {
        let cache_key = (rec.key_id.clone(), m.id.clone());
        if let Some(u) = self
            .unsealed
            .read()
            .map_err(|_| poisoned())?
            .get(&cache_key)
        {
            self.cache_stats.material.record(true);
            return Ok(u.clone());
        }
        self.cache_stats.material.record(false);
        let sealed = m
            .sealed
            .as_ref()
            .ok_or_else(|| KmsError::Internal("material is not present".into()))?;
        let plain = self
            .material_keys
            .read()
            .map_err(|_| poisoned())?
            .open(sealed, &Self::material_aad(&rec.key_id, &m.id))
            .ok_or_else(|| {
                KmsError::Internal(format!("cannot open material of key {}", rec.key_id))
            })?;
        let u = match rec.key_spec {
            KeySpec::SYMMETRIC_DEFAULT => Unsealed::Symmetric(
                SymmetricKey::new(&plain).map_err(|e| KmsError::Internal(e.to_string()))?,
            ),
            KeySpec::HMAC_224 | KeySpec::HMAC_256 | KeySpec::HMAC_384 | KeySpec::HMAC_512 => {
                Unsealed::Hmac(plain)
            }
            spec => Unsealed::Private(
                PrivateKey::from_pkcs8(spec, &plain)
                    .map_err(|e| KmsError::Internal(e.to_string()))?,
            ),
        };
        let u = Arc::new(u);
        let mut map = self.unsealed.write().map_err(|_| poisoned())?;
        if map.len() >= UNSEALED_CACHE_MAX {
            map.clear();
        }
        map.insert(cache_key, u.clone());
        Ok(u)
    }

    /// Generate fresh material for an AWS_KMS key and make it current (rotation of generated keys).
    pub(crate) fn rotate_generated(
        &self,
        rec: &mut KeyRecord,
        now: i64,
        kind: RotationType,
    ) -> Result<(), KmsError> {
        let fresh =
            material::generate(rec.key_spec).map_err(|e| KmsError::Internal(e.to_string()))?;
        let (id, sealed) = self.seal_material(&rec.key_id, &fresh)?;
        for m in rec.materials.iter_mut() {
            if m.state == KeyMaterialState::CURRENT {
                m.state = KeyMaterialState::NON_CURRENT;
            }
        }
        rec.materials.push(MaterialRecord {
            id,
            sealed: Some(sealed),
            state: KeyMaterialState::CURRENT,
            created_ms: now,
            description: None,
            expiration_model: None,
            valid_to_ms: None,
            rotation_ms: Some(now),
            rotation_type: Some(kind),
        });
        Ok(())
    }

    // ---- state checks shared by the cryptographic operations ---------------------------------

    /// The key must be Enabled.
    pub(crate) fn require_enabled(&self, rec: &KeyRecord) -> Result<(), KmsError> {
        match rec.state {
            // UpdatePrimaryRegion's `Updating` keeps cryptographic operations working (AWS).
            KeyState::Enabled | KeyState::Updating => Ok(()),
            KeyState::Disabled => Err(KmsError::Disabled(format!("{} is disabled.", rec.arn()))),
            other => Err(state_error(rec, other)),
        }
    }

    pub(crate) fn require_usage(
        &self,
        rec: &KeyRecord,
        usage: KeyUsageType,
        op: &str,
    ) -> Result<(), KmsError> {
        if rec.key_usage == usage {
            Ok(())
        } else {
            Err(KmsError::InvalidKeyUsage(format!(
                "{} key usage is {} which is not valid for {op}.",
                rec.arn(),
                rec.key_usage
            )))
        }
    }
}

/// What a multi-Region primary shares with its replicas (`sync_replicas` runs when it changes).
fn shared_fingerprint(rec: &KeyRecord) -> String {
    let mut s = format!(
        "{:?}|{}|{:?}|{:?}|{}|",
        rec.primary_region,
        rec.rotation_enabled,
        rec.rotation_period_days,
        rec.next_rotation_ms,
        rec.on_demand_rotations
    );
    for m in &rec.materials {
        s.push_str(&format!(
            "{}:{}:{:?}:{}|",
            m.id,
            m.state,
            m.rotation_ms,
            m.sealed.is_some()
        ));
    }
    s
}

#[derive(Debug, PartialEq, Eq)]
enum TimeOutcome {
    Kept,
    Deleted,
}

pub(crate) const DAY_MS: i64 = 86_400_000;

/// KMSInvalidStateException with AWS's wording for a state.
pub(crate) fn state_error(rec: &KeyRecord, state: KeyState) -> KmsError {
    let what = match state {
        KeyState::PendingImport => "is pending import.",
        KeyState::PendingDeletion => "is pending deletion.",
        KeyState::Disabled => "is disabled.",
        KeyState::Enabled => "is enabled.",
        KeyState::Creating => "is creating.",
        KeyState::Updating => "is updating.",
        KeyState::Unavailable => "is unavailable.",
        KeyState::PendingReplicaDeletion => "is pending replica deletion.",
    };
    KmsError::InvalidState(format!("{} {what}", rec.arn()))
}

fn poisoned() -> KmsError {
    KmsError::Internal("cache lock poisoned".into())
}

/// Key ids: lowercase UUIDs, or `mrk-` and 32 lowercase hex digits.
pub(crate) fn is_key_id(s: &str) -> bool {
    if let Some(hex) = s.strip_prefix("mrk-") {
        return hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    }
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_forms() {
        assert!(is_key_id("1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(is_key_id("mrk-1234abcd12ab34cd56ef1234567890ab"));
        assert!(!is_key_id("1234ABCD-12ab-34cd-56ef-1234567890ab"));
        assert!(!is_key_id("alias/foo"));
        assert!(!is_key_id(""));
    }
}
