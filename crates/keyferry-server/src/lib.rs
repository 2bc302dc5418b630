//! The HTTP edge of Keyferry: the only crate that knows HTTP, the AWS JSON 1.1 protocol, the
//! shape of error responses and SigV4 headers. It authenticates every request, dispatches it to
//! `keyferry_core::Kms`, and turns results into responses (`error.rs` is the one mapping).

pub mod config;
pub mod console;
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
    Router::new()
        .merge(console::routes())
        .fallback(handle)
        .with_state(state)
}

async fn handle(State(st): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let request_id = request_id();
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
    // A bug that panics answers 500 instead of dropping the connection.
    match CatchUnwind(Box::pin(protocol::dispatch(&st.kms, op, &body))).await {
        Ok(r) => r,
        Err(()) => {
            tracing::error!(operation = op, "operation panicked");
            Err(ApiError::internal())
        }
    }
}

/// Polls a future and turns a panic inside it into `Err(())` (what `tokio::spawn` + `JoinError`
/// gave, without a second task and its cross-thread wake-up on every request).
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

/// `x-amzn-requestid`: UUID-formatted, a random per-process base plus a counter (unique without
/// a `getrandom` system call per request; request ids are identifiers, not secrets).
fn request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        let r = keyferry_crypto::rng::random_bytes(16);
        let mut b = [0u8; 16];
        b.copy_from_slice(&r[..16]);
        u128::from_be_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let v = base ^ u128::from(n);
    uuid::Builder::from_random_bytes(v.to_be_bytes())
        .into_uuid()
        .hyphenated()
        .to_string()
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
