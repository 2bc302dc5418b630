//! Grants. Until CreateGrant and friends land, no grant exists, so none allows anything.

use crate::KmsError;
use crate::authz::Ask;
use crate::context::RequestContext;
use crate::kms::Kms;
use crate::record::KeyRecord;

impl Kms {
    /// Does a grant on `rec` let the caller perform `operation` (a GrantOperation name) under
    /// the request's encryption context and grant tokens?
    pub(crate) async fn grant_allows(
        &self,
        _cx: &RequestContext,
        _rec: &KeyRecord,
        _operation: &str,
        _ask: &Ask<'_>,
    ) -> Result<bool, KmsError> {
        Ok(false)
    }
}
