//! The one place where an error becomes an HTTP response: `__type`, status and message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyferry_core::KmsError;

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Option<String>,
}

impl ApiError {
    pub fn client(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: Some(message.into()),
        }
    }

    pub fn internal() -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "KMSInternalException",
            message: Some("An internal error occurred.".into()),
        }
    }
}

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> Self {
        if let KmsError::DependencyTimeout(detail) = &e {
            tracing::warn!(error = %detail, "storage did not answer in time");
            return ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: e.code(),
                message: e.client_message().map(str::to_string),
            };
        }
        if e.is_server_fault() {
            tracing::error!(error = %e, "internal error");
            return ApiError::internal();
        }
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: e.code(),
            message: e.client_message().map(str::to_string),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("__type".into(), self.code.into());
        if let Some(m) = self.message {
            body.insert("message".into(), m.into());
        }
        let mut resp = (self.status, serde_json::Value::Object(body).to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::protocol::CONTENT_TYPE),
        );
        resp
    }
}
