//! The root key bound to its database. At initialisation a check value (a constant sealed under
//! a subkey of the root key) is stored in the store's meta table; every start opens it, so a
//! node started with another root key is refused before it seals anything. Databases made
//! before the check value existed are checked against their sealed material first and then get
//! the check value. (Re-sealing under a new root key will live here too.)

use keyferry_crypto::seal::RootKey;

use crate::record::KeyRecord;
use crate::store::Store;
use crate::{Kms, KmsError};

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
            return Ok(if opens(root, &v) {
                RootKeyCheck::Matches
            } else {
                RootKeyCheck::Mismatch { key_id: None }
            });
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
    }
}
