//! One error type for the import client: a kind (for exit codes and tests) and a one-paragraph,
//! human message that says what to do. Messages never contain PINs or key material.

use std::fmt;

/// What went wrong, coarse enough to map to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A PKCS#11 URI or another argument is malformed.
    Usage,
    /// The PKCS#11 module could not be loaded or initialised.
    Module,
    /// No token (slot) matches the URI.
    TokenNotFound,
    /// No object matches the URI, or more than one does.
    ObjectNotFound,
    /// The PIN was rejected, locked, or not available.
    Pin,
    /// The key cannot be wrapped out of the token (CKA_EXTRACTABLE is false).
    NotExtractable,
    /// The token lacks a mechanism the operation needs.
    MechanismMissing,
    /// The key material does not fit the key spec, or the spec cannot be inferred.
    Material,
    /// The combination of key spec and wrapping algorithm is not valid.
    Unsupported,
    /// Reading or writing a file failed, or a file has the wrong format.
    Io,
    /// Any other PKCS#11 or cryptographic failure.
    Internal,
    /// The KMS endpoint refused a request (an AWS error code, e.g. IncorrectKeyMaterialException).
    Service,
    /// The KMS endpoint could not be reached or answered with something unreadable.
    Network,
    /// The material was imported but the proof (public key, signature, MAC, round trip) failed.
    Verification,
}

impl ErrorKind {
    /// The process exit code for this kind: 2 usage, 3 KMS refused, 4 verification failed,
    /// 5 endpoint unreachable, 1 everything else (source, token, file problems).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Usage => 2,
            Self::Service => 3,
            Self::Verification => 4,
            Self::Network => 5,
            _ => 1,
        }
    }
}

/// The crate's error: a kind plus a message meant for the person at the terminal.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    code: Option<String>,
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a human message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: None,
        }
    }

    /// The same error tagged with the AWS error code that caused it.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The same error with an optional AWS error code.
    pub fn with_code_opt(mut self, code: Option<String>) -> Self {
        self.code = code;
        self
    }

    /// The AWS error code (e.g. `IncorrectKeyMaterialException`) when KMS refused a request.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    pub(crate) fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> Self {
        Self::new(
            ErrorKind::Io,
            format!("cannot {what} {}: {e}", path.display()),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<keyferry_crypto::CryptoError> for Error {
    fn from(e: keyferry_crypto::CryptoError) -> Self {
        use keyferry_crypto::CryptoError as C;
        let kind = match &e {
            C::InvalidMaterial(_) => ErrorKind::Material,
            C::Unsupported(_) | C::NotImplemented(_) => ErrorKind::Unsupported,
            C::InvalidInput(_) => ErrorKind::Material,
            C::InvalidCiphertext | C::Internal => ErrorKind::Internal,
        };
        Self::new(kind, e.to_string())
    }
}
