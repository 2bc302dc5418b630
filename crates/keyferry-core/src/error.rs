//! `KmsError`: the AWS exceptions the service produces. The HTTP edge maps each variant to its
//! `__type` and status in one place (`keyferry-server/src/error.rs`); nothing decides by message text.

use crate::store::StoreError;

/// An AWS KMS exception. Variants carry the client-facing message where AWS sends one; variants
/// without a message mirror AWS, which sends none for them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// The caller may not perform the operation (`AccessDeniedException`, HTTP 400).
    #[error("AccessDeniedException: {0}")]
    AccessDenied(String),
    #[error("AlreadyExistsException: {0}")]
    AlreadyExists(String),
    #[error("DisabledException: {0}")]
    Disabled(String),
    #[error("DryRunOperationException")]
    DryRunOperation,
    #[error("ExpiredImportTokenException: {0}")]
    ExpiredImportToken(String),
    #[error("IncorrectKeyException: {0}")]
    IncorrectKey(String),
    #[error("IncorrectKeyMaterialException: {0}")]
    IncorrectKeyMaterial(String),
    #[error("InvalidAliasNameException: {0}")]
    InvalidAliasName(String),
    #[error("InvalidArnException: {0}")]
    InvalidArn(String),
    #[error("InvalidCiphertextException")]
    InvalidCiphertext,
    #[error("InvalidGrantIdException: {0}")]
    InvalidGrantId(String),
    #[error("InvalidGrantTokenException: {0}")]
    InvalidGrantToken(String),
    #[error("InvalidImportTokenException: {0}")]
    InvalidImportToken(String),
    #[error("InvalidKeyUsageException: {0}")]
    InvalidKeyUsage(String),
    #[error("InvalidMarkerException: {0}")]
    InvalidMarker(String),
    #[error("KMSInvalidMacException")]
    InvalidMac,
    #[error("KMSInvalidSignatureException")]
    InvalidSignature,
    #[error("KMSInvalidStateException: {0}")]
    InvalidState(String),
    #[error("LimitExceededException: {0}")]
    LimitExceeded(String),
    #[error("MalformedPolicyDocumentException: {0}")]
    MalformedPolicyDocument(String),
    #[error("NotFoundException: {0}")]
    NotFound(String),
    #[error("TagException: {0}")]
    Tag(String),
    #[error("UnsupportedOperationException: {0}")]
    UnsupportedOperation(String),
    #[error("ValidationException: {0}")]
    Validation(String),
    /// A dependency (the database) did not answer in time; retryable (HTTP 503). The detail is
    /// for logs only.
    #[error("DependencyTimeoutException: {0}")]
    DependencyTimeout(String),
    /// A fault of ours (storage down, corrupted record). The detail is for logs only.
    #[error("KMSInternalException: {0}")]
    Internal(String),
}

impl KmsError {
    /// The exception name, as in botocore's model and the `__type` of the response.
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::DryRunOperation => "DryRunOperationException",
            KmsError::ExpiredImportToken(_) => "ExpiredImportTokenException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::IncorrectKeyMaterial(_) => "IncorrectKeyMaterialException",
            KmsError::InvalidAliasName(_) => "InvalidAliasNameException",
            KmsError::InvalidArn(_) => "InvalidArnException",
            KmsError::InvalidCiphertext => "InvalidCiphertextException",
            KmsError::InvalidGrantId(_) => "InvalidGrantIdException",
            KmsError::InvalidGrantToken(_) => "InvalidGrantTokenException",
            KmsError::InvalidImportToken(_) => "InvalidImportTokenException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::InvalidMarker(_) => "InvalidMarkerException",
            KmsError::InvalidMac => "KMSInvalidMacException",
            KmsError::InvalidSignature => "KMSInvalidSignatureException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Tag(_) => "TagException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::DependencyTimeout(_) => "DependencyTimeoutException",
            KmsError::Internal(_) => "KMSInternalException",
        }
    }

    /// The message sent to the client, if AWS sends one for this exception.
    pub fn client_message(&self) -> Option<&str> {
        match self {
            KmsError::DryRunOperation => {
                Some("The request would have succeeded, but the DryRun option is set.")
            }
            KmsError::InvalidCiphertext | KmsError::InvalidMac | KmsError::InvalidSignature => None,
            KmsError::Internal(_) => Some("An internal error occurred."),
            KmsError::DependencyTimeout(_) => Some(
                "The system timed out while trying to fulfill the request. You can retry the request.",
            ),
            KmsError::AccessDenied(m)
            | KmsError::AlreadyExists(m)
            | KmsError::Disabled(m)
            | KmsError::ExpiredImportToken(m)
            | KmsError::IncorrectKey(m)
            | KmsError::IncorrectKeyMaterial(m)
            | KmsError::InvalidAliasName(m)
            | KmsError::InvalidArn(m)
            | KmsError::InvalidGrantId(m)
            | KmsError::InvalidGrantToken(m)
            | KmsError::InvalidImportToken(m)
            | KmsError::InvalidKeyUsage(m)
            | KmsError::InvalidMarker(m)
            | KmsError::InvalidState(m)
            | KmsError::LimitExceeded(m)
            | KmsError::MalformedPolicyDocument(m)
            | KmsError::NotFound(m)
            | KmsError::Tag(m)
            | KmsError::UnsupportedOperation(m)
            | KmsError::Validation(m) => {
                if m.is_empty() {
                    None
                } else {
                    Some(m)
                }
            }
        }
    }

    /// True for faults of the service (HTTP 5xx); false for the caller's errors (HTTP 400).
    pub fn is_server_fault(&self) -> bool {
        matches!(self, KmsError::Internal(_) | KmsError::DependencyTimeout(_))
    }
}

/// `Unavailable` (a timeout or an unreachable database) is retryable: `DependencyTimeout`.
/// Everything else is our fault: `Internal`.
impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => KmsError::DependencyTimeout(e.to_string()),
            StoreError::AlreadyExists | StoreError::Backend(_) => KmsError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_kms_errors() {
        let e = KmsError::from(StoreError::Unavailable("pool timed out".into()));
        assert!(matches!(e, KmsError::DependencyTimeout(_)), "{e:?}");
        assert_eq!(e.code(), "DependencyTimeoutException");
        assert!(e.is_server_fault());
        // The detail stays in logs; the client sees AWS's text only.
        let msg = e.client_message().unwrap_or_default();
        assert!(!msg.contains("pool"), "{msg}");
        assert!(!msg.is_empty());
        let e = KmsError::from(StoreError::Backend("disk I/O error".into()));
        assert_eq!(e.code(), "KMSInternalException");
        assert_eq!(e.client_message(), Some("An internal error occurred."));
        let e = KmsError::from(StoreError::AlreadyExists);
        assert_eq!(e.code(), "KMSInternalException");
    }
}
