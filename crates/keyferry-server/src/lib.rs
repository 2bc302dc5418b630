//! The HTTP edge of Keyferry: the only crate that knows HTTP, the AWS JSON 1.1 protocol, the
//! shape of error responses and SigV4 headers. It authenticates every request, dispatches it to
//! `keyferry_core::Kms`, and turns results into responses (`error.rs` is the one mapping).

pub mod admin;
pub mod audit;
pub mod backup;
pub mod config;
pub mod console;
pub mod error;
pub mod hsm_root;
pub mod identity;
pub mod limits;
mod listener;
pub mod metrics;
pub mod os;
pub mod protocol;
pub mod quotas;
pub mod rotate;
pub mod sts;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyferry_core::{Kms, Principal, RequestContext};
use keyferry_crypto::seal::RootKey;
use keyferry_sigv4::{SignedRequest, Verifier};

pub use config::{Credential, ServeConfig};
use error::ApiError;
pub use identity::Identities;
use sts::Sts;

/// Largest request body accepted. KMS requests are a few KiB (blobs ≤ 6144 bytes, policies ≤ 32 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// Everything a request needs, shared by all requests.
pub struct AppState {
    pub kms: Arc<Kms>,
    /// SigV4 for KMS requests (credential scope `<region>/kms`) of the default Region.
    pub verifier: Verifier,
    /// SigV4 for STS requests (credential scope `<region>/sts`) of the default Region.
    pub sts_verifier: Verifier,
    /// The KMS and STS verifiers of the other served Regions (`--regions`).
    pub other_regions: Vec<(Verifier, Verifier)>,
    pub identities: Identities,
    pub sts: Sts,
    /// The audit trail (`audit.rs`): one event per request; feeds GetKeyLastUsage.
    pub audit: audit::Audit,
    /// Request quotas (`quotas.rs`); `None` (the default): no throttling, and no cost.
    pub quotas: Option<quotas::Quotas>,
}

impl AppState {
    /// State for `kms` with these identities; STS sessions are sealed under `root`.
    pub fn new(kms: Arc<Kms>, identities: Identities, root: &RootKey) -> AppState {
        let region = kms.config().region.clone();
        AppState {
            verifier: Verifier::new(&region, "kms"),
            sts_verifier: Verifier::new(&region, "sts"),
            other_regions: kms
                .config()
                .regions
                .iter()
                .filter(|r| **r != region)
                .map(|r| (Verifier::new(r, "kms"), Verifier::new(r, "sts")))
                .collect(),
            sts: Sts::new(root),
            audit: audit::Audit::disabled(&region, &kms.config().account_id),
            identities,
            kms,
            quotas: None,
        }
    }
}

/// The router: every KMS and STS request is `POST /`.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(console::routes())
        .fallback(handle)
        .with_state(state)
}

/// The router's fallback (every request that is not the console's): [`answer`] with the peer
/// and transport the listener put in the request's extensions.
async fn handle(
    State(st): State<Arc<AppState>>,
    ConnectInfoOpt(peer): ConnectInfoOpt,
    req: Request<Body>,
) -> Response {
    let secure = req.extensions().get::<Transport>().is_some_and(|t| t.tls);
    answer(&st, peer, secure, req).await
}

/// Answer one KMS or STS request (`POST /`): authenticate, dispatch, record the audit event.
/// The listener calls this directly for `POST /` (no router on the hot path); everything else
/// goes through [`app`]'s router, whose fallback is [`handle`].
pub(crate) async fn answer(
    st: &Arc<AppState>,
    peer: Option<SocketAddr>,
    secure: bool,
    req: Request<Body>,
) -> Response {
    let request_id = request_id();
    let mut call = audit::Call::default();
    let result = handle_inner(st, req, peer, secure, &request_id, &mut call).await;
    let answer = match &result {
        Ok(Outcome::Json(body)) => audit::Answer::Json(body),
        Ok(Outcome::Xml(status, body)) => audit::Answer::Xml(*status, body),
        Err(e) => audit::Answer::Error(e),
    };
    st.audit.record(&st.kms, call, answer, &request_id).await;
    let mut resp = match result {
        Ok(Outcome::Json(body)) => {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(protocol::CONTENT_TYPE),
            );
            r
        }
        Ok(Outcome::Xml(status, body)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut r = (status, body).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
            r
        }
        Err(e) => e.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// How the request arrived, set by the listener: `tls` is `aws:SecureTransport`.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub tls: bool,
}

/// The peer address when the server was started with connect info (tests through `app()`
/// have none).
struct ConnectInfoOpt(Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ConnectInfoOpt {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ConnectInfoOpt(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Which service a request is for, from its SigV4 credential scope
/// (`Credential=<akid>/<date>/<region>/<service>/aws4_request`).
fn scope_service(headers: &axum::http::HeaderMap) -> Option<&str> {
    scope_part(headers, 3)
}

fn scope_part(headers: &axum::http::HeaderMap, n: usize) -> Option<&str> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    // Every SDK puts the credential first; a substring search only for other layouts.
    let cred = match auth.strip_prefix("AWS4-HMAC-SHA256 Credential=") {
        Some(rest) => rest,
        None => auth.split("Credential=").nth(1)?,
    };
    let end = cred
        .bytes()
        .position(|b| b == b',' || b == b' ')
        .unwrap_or(cred.len());
    cred[..end].split('/').nth(n)
}

impl AppState {
    /// The (KMS, STS) verifiers for the Region of the request's credential scope. A Region
    /// this deployment does not serve gets the default Region's, which refuse it as AWS
    /// refuses a signature scoped to the wrong Region ("Credential should be scoped to a valid
    /// region").
    fn verifiers(&self, headers: &axum::http::HeaderMap) -> (&Verifier, &Verifier) {
        if !self.other_regions.is_empty()
            && let Some(region) = scope_part(headers, 2)
            && let Some((k, s)) = self
                .other_regions
                .iter()
                .find(|(k, _)| k.region() == region)
        {
            return (k, s);
        }
        (&self.verifier, &self.sts_verifier)
    }
}

fn auth_error(e: keyferry_sigv4::AuthError) -> ApiError {
    ApiError {
        status: StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        code: e.code(),
        message: Some(e.message()),
    }
}

/// Authenticate a request: SigV4 over the signed headers, with a long-term access key or
/// temporary credentials (`X-Amz-Security-Token`). Returns the principal.
fn authenticate(
    st: &AppState,
    verifier: &Verifier,
    signed: &SignedRequest<'_>,
) -> Result<Arc<Principal>, Rejected> {
    let now = time::OffsetDateTime::now_utc();
    let token = signed
        .headers
        .get("x-amz-security-token")
        .map(|v| v.to_str().unwrap_or(""));
    let principal = std::cell::RefCell::new(None);
    let session_error = std::cell::Cell::new(None);
    let akid = verifier
        .verify(signed, now, |akid| match token {
            None => st.identities.access_key(akid).map(|k| {
                *principal.borrow_mut() = Some(k.principal.clone());
                k.secret.clone()
            }),
            Some(token) => {
                let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
                match st.sts.session(&st.identities, akid, token, now_ms) {
                    Ok((secret, p)) => {
                        *principal.borrow_mut() = Some(p);
                        Some(secret)
                    }
                    Err(e) => {
                        session_error.set(Some(e));
                        None
                    }
                }
            }
        })
        .map_err(|e| match session_error.get() {
            Some(s) => Rejected::Session(s),
            None => Rejected::Auth(e),
        })?;
    match principal.into_inner() {
        Some(p) if p.access_key_id == akid => Ok(p),
        _ => Err(Rejected::Auth(
            keyferry_sigv4::AuthError::UnrecognizedClient,
        )),
    }
}

enum Rejected {
    Auth(keyferry_sigv4::AuthError),
    Session(sts::SessionError),
}

async fn handle_inner(
    st: &Arc<AppState>,
    req: Request<Body>,
    peer: Option<SocketAddr>,
    secure: bool,
    request_id: &str,
    call: &mut audit::Call,
) -> Result<Outcome, ApiError> {
    let (parts, body) = req.into_parts();
    call.note_request(&parts, peer);
    // Cap the body before buffering it, and before authentication reads it.
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::client(
            "ValidationException",
            format!("The request body must be at most {MAX_BODY} bytes."),
        )
    })?;
    call.body = body.clone();
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
    };
    let (verifier, sts_verifier) = st.verifiers(&parts.headers);
    // The event names the default Region unless told otherwise.
    if !std::ptr::eq(verifier, &st.verifier) {
        call.region = Some(verifier.region().to_string());
    }
    if scope_service(&parts.headers) == Some("sts") {
        call.service = audit::Service::Sts;
        return Ok(handle_sts(st, sts_verifier, &signed, request_id, call));
    }
    let principal = authenticate(st, verifier, &signed).map_err(|r| match r {
        Rejected::Auth(e) => auth_error(e),
        Rejected::Session(sts::SessionError::Expired) => ApiError::client(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ),
        Rejected::Session(sts::SessionError::Invalid) => ApiError::client(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
    })?;
    call.principal = Some(principal.clone());
    if parts.method != Method::POST || parts.uri.path() != "/" {
        return Err(ApiError::client("UnknownOperationException", ""));
    }
    let Some(op) = call.operation() else {
        return Err(ApiError::client("UnknownOperationException", ""));
    };
    let cx = RequestContext {
        principal,
        region: verifier.region().to_string(),
        source_ip: peer.map(|p| p.ip()),
        // Read from the headers once, by the audit record.
        user_agent: call.user_agent.clone(),
        secure_transport: secure,
        request_id: request_id.to_string(),
        touched: Default::default(),
    };
    if let Some(q) = &st.quotas {
        q.admit(&st.kms, &cx, op, &body).await?;
    }
    // A bug that panics answers 500 instead of dropping the connection.
    let result = match CatchUnwind(Box::pin(protocol::dispatch(&st.kms, &cx, op, &body))).await {
        Ok(r) => r.map(Outcome::Json),
        Err(()) => {
            tracing::error!(operation = op, "operation panicked");
            Err(ApiError::internal())
        }
    };
    call.touched = cx.touched_keys();
    result
}

/// A successful answer: a KMS JSON body, or an STS XML document (success or error).
enum Outcome {
    Json(Vec<u8>),
    Xml(u16, String),
}

/// An STS request (Query protocol): always an XML answer.
fn handle_sts(
    st: &AppState,
    verifier: &Verifier,
    signed: &SignedRequest<'_>,
    request_id: &str,
    call: &mut audit::Call,
) -> Outcome {
    let answer = match authenticate(st, verifier, signed) {
        Err(Rejected::Auth(e)) => {
            let code = match e {
                keyferry_sigv4::AuthError::UnrecognizedClient => "InvalidClientTokenId",
                keyferry_sigv4::AuthError::InvalidSignature(_) => "SignatureDoesNotMatch",
                keyferry_sigv4::AuthError::MissingAuthenticationToken => {
                    "MissingAuthenticationToken"
                }
                keyferry_sigv4::AuthError::IncompleteSignature(_) => "IncompleteSignature",
            };
            let status = if code == "IncompleteSignature" {
                400
            } else {
                403
            };
            sts::error(status, code, &e.message(), request_id)
        }
        Err(Rejected::Session(sts::SessionError::Expired)) => sts::error(
            400,
            "ExpiredToken",
            "The security token included in the request is expired",
            request_id,
        ),
        Err(Rejected::Session(sts::SessionError::Invalid)) => sts::error(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            request_id,
        ),
        Ok(principal) => {
            call.principal = Some(principal.clone());
            let mut params = sts::parse_form(signed.query.as_bytes());
            params.extend(sts::parse_form(signed.body));
            let now_ms =
                (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
            st.sts
                .handle(&st.identities, &principal, &params, request_id, now_ms)
        }
    };
    Outcome::Xml(answer.status, answer.body)
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
    // Everything that reads a secret from the environment has read it (the credential in
    // main.rs, KEYFERRY_ROOT_KEY and the PKCS#11 PIN in `start`, PGPASSWORD when sqlx opened the
    // store); nothing reads them again (SIGHUP reloads only the TLS files).
    os::scrub_secret_env();
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
            api: None,
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
        api: Some(running.state.clone()),
        tls,
        limits,
        metrics,
        shutdown_grace: grace,
    };
    let kms = running.state.kms.clone();
    l.run(shutdown_signal()).await;
    if let Err(e) = kms.flush_usage().await {
        tracing::warn!(error = %e, "writing key usage at shutdown failed");
    }
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
