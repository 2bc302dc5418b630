//! The root key bound to its database. At initialisation a check value (a constant sealed under
//! a subkey of the root key) is stored in the store's meta table; every start opens it, so a
//! node started with another root key is refused before it seals anything. Databases made
//! before the check value existed are checked against their sealed material first and then get
//! the check value.
//!
//! Root-key rotation (`keyferry admin rotate-root-key`, [`rotate_root_key`]) re-seals all
//! material under a new root key while servers keep answering:
//! 1. it publishes the new root key in the meta table (`root-key-next`: the new key's check value
//!    followed by the new key sealed under a subkey of the old one), so every node holding the
//!    old root key adopts the new one within a second (its background task polls): from then on
//!    it seals new material under the new key and opens material under either;
//! 2. it waits for that to propagate, then re-seals every key's material (one compare-and-swap
//!    per key record; material already under the new key is left alone, so a rerun resumes),
//!    repeating the walk until a pass finds nothing left under the old key;
//! 3. it replaces the check value with the new key's and removes `root-key-next`: the old root
//!    key no longer starts a node, and the database holds nothing it can open.

use std::sync::Arc;
use std::time::Duration;

use keyferry_crypto::Secret;
use keyferry_crypto::seal::RootKey;

use crate::record::KeyRecord;
use crate::store::{Store, StoredKey};
use crate::{Kms, KmsError};

/// The meta-table entry present while a rotation runs (see the module docs).
pub const NEXT_NAME: &str = "root-key-next";
const NEXT_PURPOSE: &str = "keyferry/root-key-next/v1";
const MATERIAL_PURPOSE: &str = "keyferry/key-material/v1";
/// Length of a check value (version, nonce, plaintext, tag).
const CHECK_LEN: usize = 1 + 12 + CHECK_PLAINTEXT.len() + 16;

/// The subkeys a node seals and opens material with.
pub struct MaterialKeys {
    pub(crate) current: Arc<RootKey>,
    pub(crate) previous: Option<Arc<RootKey>>,
}

impl MaterialKeys {
    pub(crate) fn new(root: &RootKey) -> MaterialKeys {
        MaterialKeys {
            current: Arc::new(root.derive(MATERIAL_PURPOSE)),
            previous: None,
        }
    }

    /// Open under the current subkey, else the previous one.
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Secret> {
        self.current.open(sealed, aad).ok().or_else(|| {
            self.previous
                .as_ref()
                .and_then(|p| p.open(sealed, aad).ok())
        })
    }
}

pub(crate) fn next_wrap_key(root: &RootKey) -> RootKey {
    root.derive(NEXT_PURPOSE)
}

/// The meta-table entry holding the check value.
pub const CHECK_NAME: &str = "root-key-check";
const CHECK_PURPOSE: &str = "keyferry/root-key-check/v1";
const CHECK_PLAINTEXT: &[u8] = b"keyferry root key check v1";

/// What [`Kms::bind_root_key`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootKeyCheck {
    /// The check value stored in the database opens with this root key.
    Matches,
    /// The database had no check value; this root key opened the sealed material of `checked`
    /// keys (0: the database holds no sealed material yet) and its check value is now stored.
    Bound { checked: usize },
    /// This root key is not the database's: the check value does not open (`key_id` `None`)
    /// or the material of `key_id` does not.
    Mismatch { key_id: Option<String> },
    /// This is the new root key of a rotation still under way: a node needs the current
    /// (old) root key until `keyferry admin rotate-root-key` has finished.
    RotationTarget,
}

/// Keys looked at before giving up on finding sealed material.
const SCAN_LIMIT: usize = 1000;

fn check_value(root: &RootKey) -> Result<Vec<u8>, KmsError> {
    root.derive(CHECK_PURPOSE)
        .seal(CHECK_PLAINTEXT, CHECK_NAME.as_bytes())
        .map_err(|e| KmsError::Internal(format!("seal the root key check value: {e}")))
}

fn opens(root: &RootKey, value: &[u8]) -> bool {
    root.derive(CHECK_PURPOSE)
        .open(value, CHECK_NAME.as_bytes())
        .is_ok_and(|p| p.as_slice() == CHECK_PLAINTEXT)
}

/// Whether the database was initialised (holds a check value) or holds keys of
/// `(account, region)`: then it has a root key, and a new one must never be made for it.
pub async fn database_in_use(
    store: &dyn Store,
    account: &str,
    region: &str,
) -> Result<bool, KmsError> {
    if store.get_meta(CHECK_NAME).await?.is_some() {
        return Ok(true);
    }
    Ok(!store
        .list_key_ids(account, region, None, 1)
        .await?
        .is_empty())
}

impl Kms {
    /// Check `root` (the key this `Kms` was built with) against the database, and store its
    /// check value if the database has none. Reads only, apart from that one insert.
    pub async fn bind_root_key(&self, root: &RootKey) -> Result<RootKeyCheck, KmsError> {
        if let Some(v) = self.store.get_meta(CHECK_NAME).await? {
            if opens(root, &v) {
                self.adopt_next_root_key().await?;
                return Ok(RootKeyCheck::Matches);
            }
            if let Some(next) = self.store.get_meta(NEXT_NAME).await?
                && next.len() > CHECK_LEN
                && opens(root, &next[..CHECK_LEN])
            {
                return Ok(RootKeyCheck::RotationTarget);
            }
            return Ok(RootKeyCheck::Mismatch { key_id: None });
        }
        let checked = match self.sample_material(3).await? {
            Ok(n) => n,
            Err(key_id) => {
                return Ok(RootKeyCheck::Mismatch {
                    key_id: Some(key_id),
                });
            }
        };
        if self
            .store
            .put_meta_if_absent(CHECK_NAME, &check_value(root)?)
            .await?
        {
            return Ok(RootKeyCheck::Bound { checked });
        }
        // Another node stored its check value first: it must be ours too.
        let v = self.store.get_meta(CHECK_NAME).await?.unwrap_or_default();
        Ok(if opens(root, &v) {
            RootKeyCheck::Matches
        } else {
            RootKeyCheck::Mismatch { key_id: None }
        })
    }

    /// If a rotation has published a new root key that this node's root key opens, seal new
    /// material under it from now on and keep opening material under the old one. `true` if
    /// the new key was adopted by this call. Run at start and every sweep interval.
    pub async fn adopt_next_root_key(&self) -> Result<bool, KmsError> {
        let Some(next) = self.store.get_meta(NEXT_NAME).await? else {
            return Ok(false);
        };
        if next.len() <= CHECK_LEN {
            return Ok(false);
        }
        let Ok(new) = self
            .next_wrap
            .open_root_key(&next[CHECK_LEN..], NEXT_NAME.as_bytes())
        else {
            // Published under a root key this node does not hold (it started with the new one).
            return Ok(false);
        };
        if !opens(&new, &next[..CHECK_LEN]) {
            return Ok(false);
        }
        let subkey = Arc::new(new.derive(MATERIAL_PURPOSE));
        let probe = subkey
            .seal(b"probe", b"")
            .map_err(|e| KmsError::Internal(e.to_string()))?;
        let mut keys = self
            .material_keys
            .write()
            .map_err(|_| KmsError::Internal("material key lock poisoned".into()))?;
        if keys.current.open(&probe, b"").is_ok() {
            return Ok(false);
        }
        let old = std::mem::replace(&mut keys.current, subkey);
        keys.previous = Some(old);
        tracing::info!("root-key rotation: sealing new material under the new root key");
        Ok(true)
    }

    /// Open the sealed material of up to `sample` keys: `Ok(n)` opened, `Err(key_id)` for the
    /// first key whose material does not open.
    async fn sample_material(&self, sample: usize) -> Result<Result<usize, String>, KmsError> {
        let (account, region) = (&self.cfg.account_id, &self.cfg.region);
        let mut after: Option<String> = None;
        let mut seen = 0usize;
        let mut checked = 0usize;
        loop {
            let ids = self
                .store
                .list_key_ids(account, region, after.as_deref(), 100)
                .await?;
            if ids.is_empty() {
                break;
            }
            for id in &ids {
                seen += 1;
                let Some(stored) = self.store.get_key(id).await? else {
                    continue;
                };
                let Ok(rec) = KeyRecord::decode(&stored.doc) else {
                    continue;
                };
                if let Some(m) = rec.materials.iter().find(|m| m.sealed.is_some()) {
                    if self.unsealed(&rec, m).is_err() {
                        return Ok(Err(rec.key_id));
                    }
                    checked += 1;
                    if checked >= sample {
                        return Ok(Ok(checked));
                    }
                }
            }
            if seen >= SCAN_LIMIT {
                break;
            }
            after = ids.last().cloned();
        }
        Ok(Ok(checked))
    }
}

/// How [`rotate_root_key`] runs.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// How long to wait after publishing the new root key before re-sealing, so that every
    /// running node (they poll every sweep interval, 1 s by default) seals under it.
    pub propagation_wait: Duration,
    /// Re-seal at most this many key records in this run, then stop (run again to go on).
    pub limit: Option<usize>,
}

/// What [`rotate_root_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// Every material is sealed under the new root key, which is now the database's.
    Done { keys: usize, resealed: usize },
    /// The new root key already was the database's: nothing to do.
    AlreadyDone,
    /// `limit` was reached; the rotation is still under way (the old root key stays current).
    Stopped { resealed: usize },
}

/// Why [`rotate_root_key`] refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Kms(#[from] KmsError),
}

impl From<crate::store::StoreError> for RotateError {
    fn from(e: crate::store::StoreError) -> Self {
        RotateError::Kms(e.into())
    }
}

/// Passes over all keys before giving up on a database that keeps gaining material under the
/// old root key (a node that does not see the published new key).
const MAX_PASSES: usize = 10;

/// Re-seal all material of `store` from `old` to `new` (see the module docs). Idempotent and
/// resumable: a rerun with the same keys continues where an interrupted run stopped, and a run
/// after the rotation finished answers `AlreadyDone`. `progress` receives one line per step.
pub async fn rotate_root_key(
    store: &dyn Store,
    old: &RootKey,
    new: &RootKey,
    opts: &RotateOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<RotateOutcome, RotateError> {
    let Some(current) = store.get_meta(CHECK_NAME).await? else {
        return Err(RotateError::Refused(
            "the database has no root key check value yet: start `keyferry serve` on it once (it stores the check value), then rotate".into(),
        ));
    };
    if opens(new, &current) {
        store.delete_meta(NEXT_NAME).await?;
        return Ok(RotateOutcome::AlreadyDone);
    }
    if !opens(old, &current) {
        return Err(RotateError::Refused(
            "the current root key does not open the database's root key check value: it is not this database's root key (give the root key the servers run with)".into(),
        ));
    }
    let published = [
        check_value(new)?,
        next_wrap_key(old)
            .seal_root_key(new, NEXT_NAME.as_bytes())
            .map_err(|e| KmsError::Internal(format!("seal the new root key: {e}")))?,
    ]
    .concat();
    if store.put_meta_if_absent(NEXT_NAME, &published).await? {
        progress("published the new root key to the running servers");
    } else {
        let there = store.get_meta(NEXT_NAME).await?.unwrap_or_default();
        if !(there.len() > CHECK_LEN && opens(new, &there[..CHECK_LEN])) {
            return Err(RotateError::Refused(
                "another rotation, to a different new root key, is under way on this database: finish it with the new root key it was started with".into(),
            ));
        }
        progress("resuming the rotation already under way");
    }
    tokio::time::sleep(opts.propagation_wait).await;
    let (old_m, new_m) = (old.derive(MATERIAL_PURPOSE), new.derive(MATERIAL_PURPOSE));
    let mut resealed = 0usize;
    for _ in 0..MAX_PASSES {
        let mut changed = 0usize;
        let mut keys = 0usize;
        let mut after: Option<String> = None;
        loop {
            let ids = store.all_key_ids(after.as_deref(), 100).await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            for id in &ids {
                if opts.limit.is_some_and(|l| resealed >= l) {
                    progress(&format!("stopped after re-sealing {resealed} keys"));
                    return Ok(RotateOutcome::Stopped { resealed });
                }
                keys += 1;
                if reseal_key(store, id, &old_m, &new_m).await? > 0 {
                    changed += 1;
                    resealed += 1;
                    progress(&format!("re-sealed key {id}"));
                }
            }
            after = Some(last);
        }
        if changed == 0 {
            store.set_meta(CHECK_NAME, &check_value(new)?).await?;
            store.delete_meta(NEXT_NAME).await?;
            progress(&format!(
                "done: {keys} keys, {resealed} re-sealed; the new root key is the database's"
            ));
            return Ok(RotateOutcome::Done { keys, resealed });
        }
    }
    Err(RotateError::Refused(format!(
        "material under the old root key kept appearing for {MAX_PASSES} passes: a server is still sealing with the old root key without seeing the new one; check that every server reads this database, then run the rotation again"
    )))
}

/// Re-seal the materials of one key still under `old_m`; the number re-sealed.
async fn reseal_key(
    store: &dyn Store,
    key_id: &str,
    old_m: &RootKey,
    new_m: &RootKey,
) -> Result<usize, RotateError> {
    for _ in 0..64 {
        let Some(stored) = store.get_key(key_id).await? else {
            return Ok(0);
        };
        let mut rec = KeyRecord::decode(&stored.doc)?;
        let mut changed = 0usize;
        for m in rec.materials.iter_mut() {
            let Some(sealed) = &m.sealed else { continue };
            let aad = Kms::material_aad(&rec.key_id, &m.id);
            if new_m.open(sealed, &aad).is_ok() {
                continue;
            }
            let plain = old_m.open(sealed, &aad).map_err(|_| {
                RotateError::Refused(format!(
                    "material {} of key {key_id} opens under neither the old nor the new root key",
                    m.id
                ))
            })?;
            m.sealed = Some(
                new_m
                    .seal(&plain, &aad)
                    .map_err(|e| KmsError::Internal(format!("seal material: {e}")))?,
            );
            changed += 1;
        }
        if changed == 0 {
            return Ok(0);
        }
        let next = StoredKey {
            key_id: key_id.to_string(),
            account: rec.account.clone(),
            region: rec.region.clone(),
            version: stored.version + 1,
            due_ms: rec.due_ms(),
            doc: rec.encode()?,
        };
        if store.update_key(&next, stored.version).await? {
            return Ok(changed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(RotateError::Refused(format!(
        "key {key_id} changed on every attempt to re-seal it; run the rotation again"
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_check_value_opens_only_with_its_root_key() {
        let a = RootKey::from_bytes(&[1u8; 32]).unwrap();
        let b = RootKey::from_bytes(&[2u8; 32]).unwrap();
        let v = check_value(&a).unwrap();
        assert!(opens(&a, &v));
        assert!(!opens(&b, &v));
        assert!(!opens(&a, b"short"));
        assert!(!opens(&a, &check_value(&b).unwrap()));
        assert_eq!(v.len(), CHECK_LEN);
    }
}
