//! The stored form of a key (`KeyRecord`), owned by this crate and versioned. It is encoded as
//! JSON into [`crate::store::StoredKey::doc`]. Invariant: no field holds plaintext key material —
//! material is sealed (AES-256-GCM under the root key's material subkey, AAD = key id ‖ material id)
//! before it enters a record.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use keyferry_types::{
    ExpirationModelType, KeyMaterialState, KeySpec, KeyState, KeyUsageType, OriginType,
    RotationType,
};
use serde::{Deserialize, Serialize};

use crate::KmsError;
use crate::authz::CompiledKeyPolicy;

pub const RECORD_FORMAT: u32 = 1;

#[derive(Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub format: u32,
    pub key_id: String,
    pub account: String,
    pub region: String,
    pub creation_ms: i64,
    pub description: String,
    pub key_spec: KeySpec,
    pub key_usage: KeyUsageType,
    pub origin: OriginType,
    pub state: KeyState,
    pub multi_region: bool,
    pub deletion_ms: Option<i64>,
    pub pending_window_days: Option<i64>,
    pub policy: String,
    pub tags: BTreeMap<String, String>,
    pub rotation_enabled: bool,
    pub rotation_period_days: Option<i64>,
    pub next_rotation_ms: Option<i64>,
    pub on_demand_rotations: u32,
    /// SubjectPublicKeyInfo DER of an asymmetric key (public, kept after material deletion).
    #[serde(default, with = "opt_b64")]
    pub public_key: Option<Vec<u8>>,
    /// Every material ever associated with the key, oldest first.
    pub materials: Vec<MaterialRecord>,
    /// An AWS managed key: the service of its predefined alias (`alias/aws/<service>`), whose
    /// key AWS creates and manages (`KeyManager` `AWS`); `None` for customer managed keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_managed: Option<String>,
    /// Multi-Region keys: the store row of this member when it is not the key id (a replica
    /// created by ReplicateKey is stored as `mrk-…@<region>`; the member CreateKey made is
    /// stored under the bare key id). `None` for every single-Region key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
    /// Multi-Region keys: the Region of the set's primary key, as this member last learnt it
    /// (`None` on records written before replication existed: the member is the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    /// A transient state (`Creating`, `Updating`) ends at this time and the key moves to
    /// `settle_state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_state: Option<KeyState>,
    /// The key policy compiled for evaluation, made on first use. Records are immutable once
    /// shared (`Arc<KeyRecord>`); a write decodes a fresh record, so this never outlives the
    /// policy text it was compiled from.
    #[serde(skip)]
    pub compiled: OnceLock<Arc<CompiledKeyPolicy>>,
    /// The key ARN, formatted on first use (every request needs it several times).
    #[serde(skip)]
    pub arn_cache: ArnCache,
}

/// A record's ARN once formatted. A clone starts empty: a clone is made to become another
/// record (a replica in another Region), whose ARN differs.
#[derive(Default)]
pub struct ArnCache(OnceLock<String>);

impl Clone for ArnCache {
    fn clone(&self) -> Self {
        ArnCache::default()
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct MaterialRecord {
    /// 64 lowercase hex characters (AWS KeyMaterialId).
    pub id: String,
    /// Sealed material; `None` once deleted or expired (imported material can be re-imported).
    #[serde(default, with = "opt_b64")]
    pub sealed: Option<Vec<u8>>,
    pub state: KeyMaterialState,
    pub created_ms: i64,
    pub description: Option<String>,
    pub expiration_model: Option<ExpirationModelType>,
    pub valid_to_ms: Option<i64>,
    pub rotation_ms: Option<i64>,
    pub rotation_type: Option<RotationType>,
}

impl KeyRecord {
    /// The compiled key policy (compiled once per record version).
    pub fn compiled_policy(&self) -> Arc<CompiledKeyPolicy> {
        self.compiled
            .get_or_init(|| Arc::new(CompiledKeyPolicy::compile(self)))
            .clone()
    }

    /// Whether [`KeyRecord::compiled_policy`] has been compiled already (for cache metrics).
    pub fn policy_is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }

    pub fn arn(&self) -> String {
        self.arn_str().to_owned()
    }

    /// The key ARN, borrowed (formatted once per record: records are immutable once shared, and
    /// a write decodes a fresh one).
    pub fn arn_str(&self) -> &str {
        self.arn_cache
            .0
            .get_or_init(|| key_arn(&self.region, &self.account, &self.key_id))
    }

    /// The store row this record lives in (the key id, except for replicas).
    pub fn row_id(&self) -> String {
        self.row.clone().unwrap_or_else(|| self.key_id.clone())
    }

    /// A multi-Region primary key (a single-Region key is neither primary nor replica).
    pub fn is_primary(&self) -> bool {
        self.multi_region
            && self
                .primary_region
                .as_deref()
                .is_none_or(|r| r == self.region)
    }

    /// A multi-Region replica key.
    pub fn is_replica(&self) -> bool {
        self.multi_region && !self.is_primary()
    }

    pub fn current(&self) -> Option<&MaterialRecord> {
        self.materials
            .iter()
            .find(|m| m.state == KeyMaterialState::CURRENT)
    }

    pub fn material(&self, id: &str) -> Option<&MaterialRecord> {
        self.materials.iter().find(|m| m.id == id)
    }

    /// Materials that belong to the key for good (not a pending rotation).
    pub fn associated(&self) -> impl Iterator<Item = &MaterialRecord> {
        self.materials.iter().filter(|m| {
            matches!(
                m.state,
                KeyMaterialState::CURRENT | KeyMaterialState::NON_CURRENT
            )
        })
    }

    pub fn pending_rotation(&self) -> Option<&MaterialRecord> {
        self.materials
            .iter()
            .find(|m| m.state == KeyMaterialState::PENDING_ROTATION)
    }

    /// Material waiting for a rotation, in either pending state.
    pub fn pending_any(&self) -> Option<&MaterialRecord> {
        self.materials.iter().find(|m| is_pending(m.state))
    }

    /// True when every associated material is present (for imported keys: imported, not expired/deleted).
    pub fn all_material_present(&self) -> bool {
        let mut any = false;
        for m in self.associated() {
            any = true;
            if m.sealed.is_none() {
                return false;
            }
        }
        any
    }

    /// The earliest ValidTo of an associated, present, expiring material (DescribeKey's ValidTo).
    pub fn valid_to_ms(&self) -> Option<i64> {
        self.associated()
            .filter(|m| m.sealed.is_some())
            .filter_map(|m| m.valid_to_ms)
            .min()
    }

    /// When the sweeper must look at this key next.
    pub fn due_ms(&self) -> Option<i64> {
        let mut due: Option<i64> = None;
        let mut consider = |t: Option<i64>| {
            if let Some(t) = t {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        };
        consider(self.deletion_ms);
        consider(self.settle_ms);
        for m in &self.materials {
            if m.sealed.is_some() {
                consider(m.valid_to_ms);
            }
        }
        if self.rotation_enabled {
            consider(self.next_rotation_ms);
        }
        due
    }

    pub fn encode(&self) -> Result<Vec<u8>, KmsError> {
        serde_json::to_vec(self).map_err(|e| KmsError::Internal(format!("encode key record: {e}")))
    }

    pub fn decode(doc: &[u8]) -> Result<KeyRecord, KmsError> {
        let rec: KeyRecord = serde_json::from_slice(doc)
            .map_err(|e| KmsError::Internal(format!("decode key record: {e}")))?;
        if rec.format != RECORD_FORMAT {
            return Err(KmsError::Internal(format!(
                "unknown key record format {}",
                rec.format
            )));
        }
        Ok(rec)
    }
}

pub fn key_arn(region: &str, account: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{key_id}")
}

/// The store row of key `key_id` in `region` when it is a replica (see `KeyRecord::row`).
pub fn replica_row(key_id: &str, region: &str) -> String {
    format!("{key_id}@{region}")
}

/// The key id of a store row (`mrk-…@<region>` → `mrk-…`).
pub fn key_id_of_row(row: &str) -> &str {
    row.split_once('@').map_or(row, |(id, _)| id)
}

/// Material imported for a rotation that has not happened yet (`PENDING_ROTATION`, or
/// `PENDING_MULTI_REGION_IMPORT_AND_ROTATION` while replicas still lack it).
pub fn is_pending(state: KeyMaterialState) -> bool {
    matches!(
        state,
        KeyMaterialState::PENDING_ROTATION
            | KeyMaterialState::PENDING_MULTI_REGION_IMPORT_AND_ROTATION
    )
}

pub fn alias_arn(region: &str, account: &str, alias: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:{alias}")
}

mod opt_b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&B64.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        v.map(|s| B64.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
