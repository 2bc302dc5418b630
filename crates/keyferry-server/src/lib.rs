//! The HTTP edge of Keyferry: the only crate that knows HTTP, the AWS JSON 1.1 protocol, the
//! shape of error responses and SigV4 headers. It authenticates every request, dispatches it to
//! `keyferry_core::Kms`, and turns results into responses (`error.rs` is the one mapping).

pub mod admin;
pub mod config;
pub mod error;
pub mod limits;
mod listener;
pub mod metrics;
pub mod os;
pub mod protocol;
pub mod tls;

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

/// Run the server until SIGINT/SIGTERM, then drain in-flight requests for at most
/// `cfg.shutdown_grace`. The listening ports are bound and the TLS files read before anything is
/// created on disk, so a port in use or a bad certificate leaves no data directory behind.
pub async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    use anyhow::Context;
    cfg.validate()?;
    os::harden_process();
    let tls = match &cfg.tls {
        Some(p) => Some(Arc::new(tls::TlsState::load(p.clone())?)),
        None => None,
    };
    let tcp = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let admin_tcp = match cfg.admin_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} (--admin-listen)"))?,
        ),
        None => None,
    };
    let addr: SocketAddr = tcp.local_addr()?;
    let limits = cfg.limits;
    let grace = cfg.shutdown_grace;
    let running = config::start(cfg).await?;
    let metrics = Arc::new(metrics::Metrics::default());
    if let Some(admin_tcp) = admin_tcp {
        let admin_addr = admin_tcp.local_addr()?;
        let admin = admin::router(Arc::new(admin::AdminState {
            kms: running.state.kms.clone(),
            metrics: metrics.clone(),
            root_key_checked: running.root_key_checked,
        }));
        let l = listener::Listener {
            tcp: admin_tcp,
            router: admin,
            tls: None,
            limits,
            metrics: Arc::new(metrics::Metrics::default()),
            shutdown_grace: Duration::ZERO,
        };
        tokio::spawn(l.run(std::future::pending()));
        println!("keyferry: admin endpoints on http://{admin_addr} (/healthz, /readyz, /metrics)");
    }
    if let Some(t) = tls.clone() {
        tokio::spawn(reload_on_sighup(t));
    }
    running.announce(addr, tls.is_some());
    tracing::info!(
        %addr,
        tls = tls.is_some(),
        mutual_tls = tls.as_ref().is_some_and(|t| t.mutual()),
        max_connections = limits.max_connections,
        open_file_limit = os::open_file_limit(),
        "listening"
    );
    let l = listener::Listener {
        tcp,
        router: app(running.state.clone()),
        tls,
        limits,
        metrics,
        shutdown_grace: grace,
    };
    l.run(shutdown_signal()).await;
    drop(running);
    Ok(())
}

/// Re-read the TLS certificate and key on every SIGHUP; a bad file keeps the previous ones.
async fn reload_on_sighup(tls: Arc<tls::TlsState>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot watch SIGHUP: TLS files will not be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => {
                    tracing::info!("SIGHUP: TLS certificate and key reloaded");
                    println!("keyferry: TLS certificate and key reloaded");
                }
                Err(e) => tracing::error!(
                    error = %format!("{e:#}"),
                    "SIGHUP: TLS reload failed; still using the previous certificate"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tls;
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
    tracing::info!("shutdown requested: no new connections, draining in-flight requests");
}
