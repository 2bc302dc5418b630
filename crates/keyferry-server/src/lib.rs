//! The HTTP edge of Keyferry: the only crate that knows HTTP, the AWS JSON 1.1 protocol, the
//! shape of error responses and SigV4 headers. It authenticates every request, dispatches it to
//! `keyferry_core::Kms`, and turns results into responses (`error.rs` is the one mapping).

pub mod config;
pub mod error;
pub mod protocol;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyferry_core::Kms;
use keyferry_sigv4::{SignedRequest, Verifier};

pub use config::{Credential, ServeConfig};
use error::ApiError;

/// Largest request body accepted. KMS requests are a few KiB (blobs ≤ 6144 bytes, policies ≤ 32 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// Everything a request needs, shared by all requests.
pub struct AppState {
    pub kms: Arc<Kms>,
    pub verifier: Verifier,
    pub credentials: Vec<Credential>,
}

/// The router: every KMS request is `POST /`.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(st): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut resp = match handle_inner(&st, req).await {
        Ok(body) => {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(protocol::CONTENT_TYPE),
            );
            r
        }
        Err(e) => e.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

async fn handle_inner(st: &Arc<AppState>, req: Request<Body>) -> Result<Vec<u8>, ApiError> {
    let (parts, body) = req.into_parts();
    // Cap the body before buffering it, and before authentication reads it.
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::client(
            "ValidationException",
            format!("The request body must be at most {MAX_BODY} bytes."),
        )
    })?;
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
    };
    let now = time::OffsetDateTime::now_utc();
    st.verifier
        .verify(&signed, now, |akid| {
            st.credentials
                .iter()
                .find(|c| c.access_key_id == akid)
                .map(|c| c.secret_access_key.clone())
        })
        .map_err(|e| ApiError {
            status: StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            code: e.code(),
            message: Some(e.message()),
        })?;
    if parts.method != Method::POST || parts.uri.path() != "/" {
        return Err(ApiError::client("UnknownOperationException", ""));
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(op) = target.strip_prefix(protocol::TARGET_PREFIX) else {
        return Err(ApiError::client("UnknownOperationException", ""));
    };
    let op = op.to_string();
    let kms = st.kms.clone();
    // Run the operation in its own task so that a bug that panics answers 500 instead of
    // dropping the connection.
    match tokio::spawn(async move { protocol::dispatch(&kms, &op, &body).await }).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "operation task failed");
            Err(ApiError::internal())
        }
    }
}

/// Run the server until SIGINT/SIGTERM.
pub async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    let running = config::start(cfg).await?;
    let listener = tokio::net::TcpListener::bind(running.listen).await?;
    let addr: SocketAddr = listener.local_addr()?;
    running.announce(addr);
    axum::serve(listener, app(running.state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    // Give in-flight requests a moment; axum waits for them anyway.
    tokio::time::sleep(Duration::from_millis(10)).await;
}
