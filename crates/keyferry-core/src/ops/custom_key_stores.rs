//! Custom key stores: the six operations, answered as an AWS account that has no custom key
//! store (and no CloudHSM cluster) answers them. Keyferry keeps every key in its own store, so
//! there is never a custom key store to describe, connect, update or delete; creating one is
//! refused (docs/decisions.md, "Issue 13").

use keyferry_types::*;

use crate::KmsError;
use crate::authz::Ask;
use crate::context::RequestContext;
use crate::kms::Kms;

/// AWS's description of `CustomKeyStoreNotFoundException` (API reference).
const NOT_FOUND: &str = "The request was rejected because KMS cannot find a custom key store with the specified key store name or ID.";

/// AWS's description of `CloudHsmClusterNotFoundException` (API reference).
const CLUSTER_NOT_FOUND: &str = "The request was rejected because KMS cannot find the CloudHSM cluster with the specified cluster ID. Retry the request with a different cluster ID.";

/// The answer for any custom key store id or name: none exists here.
pub(crate) fn not_found(_id_or_name: &str) -> KmsError {
    KmsError::CustomKeyStoreNotFound(NOT_FOUND.into())
}

impl Kms {
    pub async fn describe_custom_key_stores(
        &self,
        cx: &RequestContext,
        req: DescribeCustomKeyStoresRequest,
    ) -> Result<DescribeCustomKeyStoresResponse, KmsError> {
        self.authorize_account(cx, "kms:DescribeCustomKeyStores", Ask::none())?;
        if req.custom_key_store_id.is_some() && req.custom_key_store_name.is_some() {
            return Err(KmsError::Validation(
                "You cannot specify both CustomKeyStoreId and CustomKeyStoreName in the same request.".into(),
            ));
        }
        if let Some(name) = req
            .custom_key_store_id
            .as_deref()
            .or(req.custom_key_store_name.as_deref())
        {
            return Err(not_found(name));
        }
        // No listing ever hands out a marker, so none can be continued.
        if req.marker.is_some() {
            return Err(KmsError::InvalidMarker(
                "Could not deserialize marker".into(),
            ));
        }
        Ok(DescribeCustomKeyStoresResponse {
            custom_key_stores: Some(Vec::new()),
            next_marker: None,
            truncated: Some(false),
        })
    }

    pub async fn create_custom_key_store(
        &self,
        cx: &RequestContext,
        req: CreateCustomKeyStoreRequest,
    ) -> Result<CreateCustomKeyStoreResponse, KmsError> {
        self.authorize_account(cx, "kms:CreateCustomKeyStore", Ask::none())?;
        match req
            .custom_key_store_type
            .unwrap_or(CustomKeyStoreType::AWS_CLOUDHSM)
        {
            CustomKeyStoreType::AWS_CLOUDHSM => {
                if req.cloud_hsm_cluster_id.is_none() {
                    return Err(KmsError::Validation(
                        "CloudHsmClusterId is required for a custom key store of type AWS_CLOUDHSM.".into(),
                    ));
                }
                // No CloudHSM cluster is visible to this deployment.
                Err(KmsError::CloudHsmClusterNotFound(CLUSTER_NOT_FOUND.into()))
            }
            _ => Err(KmsError::UnsupportedOperation(
                "Keyferry does not connect to external key store proxies; it provides no custom key stores.".into(),
            )),
        }
    }

    pub async fn connect_custom_key_store(
        &self,
        cx: &RequestContext,
        req: ConnectCustomKeyStoreRequest,
    ) -> Result<ConnectCustomKeyStoreResponse, KmsError> {
        self.authorize_account(cx, "kms:ConnectCustomKeyStore", Ask::none())?;
        Err(not_found(&req.custom_key_store_id))
    }

    pub async fn disconnect_custom_key_store(
        &self,
        cx: &RequestContext,
        req: DisconnectCustomKeyStoreRequest,
    ) -> Result<DisconnectCustomKeyStoreResponse, KmsError> {
        self.authorize_account(cx, "kms:DisconnectCustomKeyStore", Ask::none())?;
        Err(not_found(&req.custom_key_store_id))
    }

    pub async fn update_custom_key_store(
        &self,
        cx: &RequestContext,
        req: UpdateCustomKeyStoreRequest,
    ) -> Result<UpdateCustomKeyStoreResponse, KmsError> {
        self.authorize_account(cx, "kms:UpdateCustomKeyStore", Ask::none())?;
        Err(not_found(&req.custom_key_store_id))
    }

    pub async fn delete_custom_key_store(
        &self,
        cx: &RequestContext,
        req: DeleteCustomKeyStoreRequest,
    ) -> Result<DeleteCustomKeyStoreResponse, KmsError> {
        self.authorize_account(cx, "kms:DeleteCustomKeyStore", Ask::none())?;
        Err(not_found(&req.custom_key_store_id))
    }
}
