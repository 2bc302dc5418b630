//! AWS JSON 1.1: `X-Amz-Target: TrentService.<Operation>` dispatch, request decoding with AWS's
//! error classes, response encoding.

use std::sync::Arc;

use keyferry_core::{Kms, RequestContext};
use keyferry_types::{OPERATIONS, Violations};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
pub const TARGET_PREFIX: &str = "TrentService.";

/// Decode a request body: malformed JSON is `SerializationException`; a missing, ill-typed or
/// out-of-range member is `ValidationException` naming the member as AWS does.
pub fn decode<T: DeserializeOwned + Violations>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    // The common case without path tracking; on failure, decode again to name the member.
    let fast: Result<T, _> = serde_json::from_slice(body);
    let req: T = match fast.or_else(|_| {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
    }) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => {
                    ApiError::client("ValidationException", data_message(&path, &inner))
                }
                _ => ApiError::client(
                    "SerializationException",
                    "Start of structure or map found where not expected, or the request body is not valid JSON.",
                ),
            });
        }
    };
    if let Some(m) = req.validation_message() {
        return Err(ApiError::client("ValidationException", m));
    }
    Ok(req)
}

fn lower_camel(path: &str) -> String {
    path.split('.')
        .map(|seg| {
            let mut c = seg.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn data_message(path: &str, e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = text.split(" at line ").next().unwrap_or("").to_string();
    if let Some(rest) = text.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        let full = if path == "." || path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_camel(&full)
        );
    }
    if let Some(rest) = text.strip_prefix("unknown variant `") {
        let value = rest.split('`').next().unwrap_or("");
        // serde lists the variants as "expected one of `A`, `B`, `C`", "expected `A` or `B`"
        // or "expected `A`"; AWS lists them comma-separated in the model's order.
        let expected = rest.split_once("expected ").map_or("", |(_, e)| e);
        let expected = expected.strip_prefix("one of ").unwrap_or(expected);
        let allowed = expected.replace("` or `", "`, `").replace('`', "");
        return format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [{allowed}]",
            lower_camel(path)
        );
    }
    format!(
        "1 validation error detected: Value at '{}' failed to satisfy constraint: {text}",
        lower_camel(path)
    )
}

/// Encode a response body: exactly `serde_json::to_vec`'s bytes (see `keyferry_types::json`),
/// written into one buffer of the right size.
pub fn encode<T: Serialize>(resp: &T) -> Result<Vec<u8>, ApiError> {
    let bytes = keyferry_types::json::to_vec(resp).map_err(|_| ApiError::internal())?;
    // Operations without output (`()`) answer an empty JSON object, as AWS does.
    if bytes == b"null" {
        return Ok(b"{}".to_vec());
    }
    Ok(bytes)
}

macro_rules! dispatch_table {
    ($kms:ident, $cx:ident, $op:ident, $body:ident; $($name:literal => $method:ident),* $(,)?) => {
        match $op {
            $($name => {
                let req = decode($body)?;
                let resp = $kms.$method($cx, req).await.map_err(ApiError::from)?;
                encode(&resp)
            })*
            other if OPERATIONS.contains(&other) => Err(ApiError::client(
                "UnsupportedOperationException",
                format!("Keyferry does not implement {other}."),
            )),
            _ => Err(ApiError::client("UnknownOperationException", "")),
        }
    };
}

/// Run one operation on a JSON body; the response body on success.
pub async fn dispatch(
    kms: &Arc<Kms>,
    cx: &RequestContext,
    op: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    dispatch_table!(kms, cx, op, body;
        "CancelKeyDeletion" => cancel_key_deletion,
        "ConnectCustomKeyStore" => connect_custom_key_store,
        "CreateCustomKeyStore" => create_custom_key_store,
        "DeleteCustomKeyStore" => delete_custom_key_store,
        "DescribeCustomKeyStores" => describe_custom_key_stores,
        "DisconnectCustomKeyStore" => disconnect_custom_key_store,
        "UpdateCustomKeyStore" => update_custom_key_store,
        "CreateAlias" => create_alias,
        "CreateGrant" => create_grant,
        "CreateKey" => create_key,
        "Decrypt" => decrypt,
        "DeleteAlias" => delete_alias,
        "DeleteImportedKeyMaterial" => delete_imported_key_material,
        "DeriveSharedSecret" => derive_shared_secret,
        "DescribeKey" => describe_key,
        "DisableKey" => disable_key,
        "DisableKeyRotation" => disable_key_rotation,
        "EnableKey" => enable_key,
        "EnableKeyRotation" => enable_key_rotation,
        "Encrypt" => encrypt,
        "GenerateDataKey" => generate_data_key,
        "GenerateDataKeyPair" => generate_data_key_pair,
        "GenerateDataKeyPairWithoutPlaintext" => generate_data_key_pair_without_plaintext,
        "GenerateDataKeyWithoutPlaintext" => generate_data_key_without_plaintext,
        "GenerateMac" => generate_mac,
        "GenerateRandom" => generate_random,
        "GetKeyLastUsage" => get_key_last_usage,
        "GetKeyPolicy" => get_key_policy,
        "GetKeyRotationStatus" => get_key_rotation_status,
        "GetParametersForImport" => get_parameters_for_import,
        "GetPublicKey" => get_public_key,
        "ImportKeyMaterial" => import_key_material,
        "ListAliases" => list_aliases,
        "ListGrants" => list_grants,
        "ListKeyPolicies" => list_key_policies,
        "ListKeyRotations" => list_key_rotations,
        "ListKeys" => list_keys,
        "ListResourceTags" => list_resource_tags,
        "ListRetirableGrants" => list_retirable_grants,
        "PutKeyPolicy" => put_key_policy,
        "ReEncrypt" => re_encrypt,
        "ReplicateKey" => replicate_key,
        "RetireGrant" => retire_grant,
        "RevokeGrant" => revoke_grant,
        "RotateKeyOnDemand" => rotate_key_on_demand,
        "ScheduleKeyDeletion" => schedule_key_deletion,
        "Sign" => sign,
        "TagResource" => tag_resource,
        "UntagResource" => untag_resource,
        "UpdateAlias" => update_alias,
        "UpdateKeyDescription" => update_key_description,
        "UpdatePrimaryRegion" => update_primary_region,
        "Verify" => verify,
        "VerifyMac" => verify_mac,
    )
}
