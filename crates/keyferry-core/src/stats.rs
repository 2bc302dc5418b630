//! Hit and miss counters of the per-node caches, for `/metrics`. One relaxed atomic increment
//! per lookup; nothing here takes a lock or allocates.

use std::sync::atomic::{AtomicU64, Ordering};

/// Hits and misses of one cache.
#[derive(Default, Debug)]
pub struct HitMiss {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HitMiss {
    /// Count one lookup: `hit` when the cache answered it.
    #[inline]
    pub(crate) fn record(&self, hit: bool) {
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (hits, misses) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Every cache of a node.
#[derive(Default, Debug)]
pub struct CacheStats {
    /// Key records (`Kms::load`): a hit is a cached record younger than `--cache-ttl-ms`.
    pub key_records: HitMiss,
    /// Alias → key id (`Kms::alias_target`), same TTL.
    pub aliases: HitMiss,
    /// Opened key material per (key, material id): a miss unseals it under the root key.
    pub material: HitMiss,
    /// Key policies compiled on their key record: a miss compiles the policy (once per record
    /// version and node).
    pub compiled_policies: HitMiss,
    /// Grants per (key, grantee), consulted when policies do not allow.
    pub grants: HitMiss,
    /// Parsed import tokens (ImportKeyMaterial): a miss opens and parses the sealed token.
    pub import_tokens: HitMiss,
    /// The pre-generated RSA wrapping keys (GetParametersForImport): a miss generates one while
    /// the caller waits.
    pub wrapping_pool: HitMiss,
}

impl CacheStats {
    /// (cache name, hits, misses) for every cache, in a fixed order.
    pub fn snapshot(&self) -> [(&'static str, u64, u64); 7] {
        let row = |name, c: &HitMiss| {
            let (h, m) = c.get();
            (name, h, m)
        };
        [
            row("key_record", &self.key_records),
            row("alias", &self.aliases),
            row("key_material", &self.material),
            row("compiled_policy", &self.compiled_policies),
            row("grants", &self.grants),
            row("import_token", &self.import_tokens),
            row("wrapping_key_pool", &self.wrapping_pool),
        ]
    }
}
