//! The root key against the database: does the root key this node was started with open the
//! material already sealed in the store? (Re-sealing under a new root key will live here too.)

use crate::record::KeyRecord;
use crate::{Kms, KmsError};

/// What [`Kms::check_root_key`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootKeyCheck {
    /// The database holds no keys: any root key fits.
    EmptyDatabase,
    /// The database holds keys but none with sealed material (e.g. EXTERNAL keys awaiting
    /// import): nothing to check against.
    NoSealedMaterial,
    /// The root key opened the sealed material of `checked` keys.
    Matches { checked: usize },
    /// The root key does not open the material of `key_id`: it is not this database's root key.
    Mismatch { key_id: String },
}

/// Keys looked at before giving up on finding sealed material.
const SCAN_LIMIT: usize = 1000;

impl Kms {
    /// Whether the database holds any key at all.
    pub async fn holds_keys(&self) -> Result<bool, KmsError> {
        Ok(!self.store.list_key_ids(None, 1).await?.is_empty())
    }

    /// Open the sealed material of up to `sample` keys with the root key. Reads only.
    pub async fn check_root_key(&self, sample: usize) -> Result<RootKeyCheck, KmsError> {
        let mut after: Option<String> = None;
        let mut seen = 0usize;
        let mut checked = 0usize;
        loop {
            let ids = self.store.list_key_ids(after.as_deref(), 100).await?;
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
                        return Ok(RootKeyCheck::Mismatch { key_id: rec.key_id });
                    }
                    checked += 1;
                    if checked >= sample {
                        return Ok(RootKeyCheck::Matches { checked });
                    }
                }
            }
            if seen >= SCAN_LIMIT {
                break;
            }
            after = ids.last().cloned();
        }
        Ok(match (seen, checked) {
            (0, _) => RootKeyCheck::EmptyDatabase,
            (_, 0) => RootKeyCheck::NoSealedMaterial,
            (_, checked) => RootKeyCheck::Matches { checked },
        })
    }
}
