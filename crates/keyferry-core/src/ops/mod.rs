//! One module per area of the API; each public method is one KMS operation taking the wire
//! request and returning the wire response.

mod aliases;
mod asymmetric;
mod custom_key_stores;
mod grants;
mod import;
mod keys;
mod multi_region;
mod policy_tags;
mod rotation;
mod symmetric;
mod usage;

pub(crate) use grants::{ChildGrant, GrantState};
pub(crate) use keys::default_policy_for;
pub(crate) use usage::UsageTracker;

use keyferry_types::{KeySpec, KeyState, MacAlgorithmSpec, Timestamp};

use crate::KmsError;
use crate::record::KeyRecord;

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(crate) fn validation(msg: impl Into<String>) -> KmsError {
    KmsError::Validation(msg.into())
}

pub(crate) fn is_hmac(spec: KeySpec) -> bool {
    matches!(
        spec,
        KeySpec::HMAC_224 | KeySpec::HMAC_256 | KeySpec::HMAC_384 | KeySpec::HMAC_512
    )
}

pub(crate) fn mac_algorithm(spec: KeySpec) -> Option<MacAlgorithmSpec> {
    match spec {
        KeySpec::HMAC_224 => Some(MacAlgorithmSpec::HMAC_SHA_224),
        KeySpec::HMAC_256 => Some(MacAlgorithmSpec::HMAC_SHA_256),
        KeySpec::HMAC_384 => Some(MacAlgorithmSpec::HMAC_SHA_384),
        KeySpec::HMAC_512 => Some(MacAlgorithmSpec::HMAC_SHA_512),
        _ => None,
    }
}

/// Operations that change a key refuse keys pending deletion.
pub(crate) fn not_pending_deletion(rec: &KeyRecord) -> Result<(), KmsError> {
    if rec.state == KeyState::PendingDeletion {
        Err(crate::kms::state_error(rec, KeyState::PendingDeletion))
    } else {
        Ok(())
    }
}
