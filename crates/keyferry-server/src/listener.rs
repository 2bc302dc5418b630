//! The KMS listener: our own accept loop (instead of `axum::serve`) so that every connection has
//! a header-read, body and idle timeout, the number of connections is capped, TLS is optional,
//! and shutdown drains in-flight requests for a bounded grace period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::limits::{self, Activity, ActivityIo, IDLE, IN_REQUEST, Limits, RateLog, TimeoutBody};
use crate::metrics::Metrics;
use crate::tls::TlsState;

static LOG_CAP: RateLog = RateLog::new();
static LOG_HEADER: RateLog = RateLog::new();
static LOG_BODY: RateLog = RateLog::new();
static LOG_IDLE: RateLog = RateLog::new();
static LOG_TLS: RateLog = RateLog::new();
static LOG_ACCEPT: RateLog = RateLog::new();

/// Everything the accept loop needs.
pub(crate) struct Listener {
    pub tcp: TcpListener,
    pub router: Router,
    /// The KMS/STS API, answered without the router for `POST /` (`None`: the admin listener).
    pub api: Option<Arc<crate::AppState>>,
    pub tls: Option<Arc<TlsState>>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub shutdown_grace: Duration,
}

/// Error codes of requests that were not authenticated: their `X-Amz-Target` is not trusted as
/// a metrics label (it would let anyone create label values).
const UNAUTHENTICATED: [&str; 5] = [
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "UnrecognizedClientException",
    "UnknownOperationException",
];

impl Listener {
    /// Serve until `stop` resolves, then drain for at most the grace period.
    pub(crate) async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let Listener {
            tcp,
            router,
            api,
            tls,
            limits,
            metrics,
            shutdown_grace,
        } = self;
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let shutdown = Arc::new(Shutdown::default());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.header_read_timeout(None)
            .keep_alive(true)
            .max_buf_size(crate::MAX_BODY + 64 * 1024);
        let http = Arc::new(http);
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                r = tcp.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        if let Some(n) = LOG_ACCEPT.admit() {
                            tracing::error!(error = %e, suppressed = n, "accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = LOG_CAP.admit() {
                    tracing::warn!(
                        %peer,
                        max_connections = limits.max_connections,
                        suppressed = n,
                        "connection limit reached: closing new connection (raise --max-connections)"
                    );
                }
                drop(stream);
                continue;
            };
            metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
            metrics.open_connections.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let conn = Conn {
                router: router.clone(),
                api: api.clone(),
                tls: tls.clone(),
                limits,
                metrics: metrics.clone(),
                http: http.clone(),
                shutdown: shutdown.clone(),
                peer,
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                conn.serve(stream).await;
                metrics.open_connections.fetch_sub(1, Ordering::Relaxed);
                drop(slot);
            });
        }
        drop(tcp);
        shutdown.trigger();
        let deadline = Instant::now() + shutdown_grace;
        let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout_at(deadline.into(), slots.acquire_many(all)).await;
        match drained {
            Ok(_) => tracing::info!("shutdown: all connections closed"),
            Err(_) => tracing::warn!(
                open = metrics.open_connections.load(Ordering::Relaxed),
                grace = ?shutdown_grace,
                "shutdown: grace period over, closing the remaining connections"
            ),
        }
    }
}

struct Conn {
    router: Router,
    api: Option<Arc<crate::AppState>>,
    tls: Option<Arc<TlsState>>,
    limits: Limits,
    metrics: Arc<Metrics>,
    http: Arc<hyper::server::conn::http1::Builder>,
    shutdown: Arc<Shutdown>,
    peer: SocketAddr,
}

impl Conn {
    async fn serve(self, stream: TcpStream) {
        let activity = Activity::new();
        let io = ActivityIo::new(stream, activity.clone());
        match self.tls.clone() {
            None => self.drive(TokioIo::new(io), activity).await,
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                let hs = tokio::select! {
                    r = tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(io)) => r,
                    () = self.shutdown.wait() => return,
                };
                match hs {
                    Ok(Ok(s)) => self.drive(TokioIo::new(s), activity).await,
                    Ok(Err(e)) => {
                        self.metrics
                            .tls_handshake_failures
                            .fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = LOG_TLS.admit() {
                            tracing::warn!(peer = %self.peer, error = %e, suppressed = n, "TLS handshake failed");
                        }
                    }
                    Err(_) => {
                        self.metrics.header_timeouts.fetch_add(1, Ordering::Relaxed);
                        if let Some(n) = LOG_HEADER.admit() {
                            tracing::warn!(
                                peer = %self.peer,
                                timeout = ?self.limits.header_read_timeout,
                                suppressed = n,
                                "closing connection: TLS handshake not complete within the header-read timeout"
                            );
                        }
                    }
                }
            }
        }
    }

    async fn drive<I>(self, io: TokioIo<I>, activity: Arc<Activity>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let api = self.api.clone();
        let metrics = self.metrics.clone();
        let body_timeout = self.limits.body_timeout;
        let act = activity.clone();
        let peer = self.peer;
        let secure = self.tls.is_some();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let router = router.clone();
            let api = api.clone();
            let metrics = metrics.clone();
            let act = act.clone();
            async move {
                act.request_started();
                let edge = Edge {
                    router,
                    api,
                    peer,
                    secure,
                };
                let resp = handle(edge, &metrics, req, body_timeout).await;
                act.request_finished();
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let conn = self.http.serve_connection(io, svc);
        tokio::pin!(conn);
        let mut draining = false;
        // One timer per connection, re-armed only when it fires (never per request): it wakes
        // at least every `check` (the shortest of the header-read and idle timeouts) and at
        // the phase's deadline, so a deadline that starts later (a new request header) is
        // never missed and no request pays for arming a timer.
        let check = self
            .limits
            .header_read_timeout
            .min(self.limits.idle_timeout)
            .max(Duration::from_millis(1));
        let sleep = tokio::time::sleep(check);
        tokio::pin!(sleep);
        let shutdown = self.shutdown.clone();
        let down = shutdown.wait();
        tokio::pin!(down);
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = &mut sleep => {
                    let (phase, since) = activity.get();
                    let limit = match phase {
                        IN_REQUEST => None,
                        IDLE => Some(self.limits.idle_timeout),
                        _ => Some(self.limits.header_read_timeout),
                    };
                    let now = limits::now_ms();
                    let mut next = check;
                    if let Some(l) = limit {
                        let due = since.saturating_add(u64::try_from(l.as_millis()).unwrap_or(u64::MAX));
                        if now < due {
                            next = next.min(Duration::from_millis(due - now));
                        } else {
                            self.timed_out(phase);
                            return;
                        }
                    }
                    sleep.as_mut().reset(tokio::time::Instant::now() + next);
                }
                () = &mut down, if !draining => {
                    // Connections without a request in progress close now; the others
                    // finish their request (bounded by the grace period).
                    if activity.get().0 != IN_REQUEST {
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
        }
    }

    /// Count and log a connection closed by its header-read or idle timeout.
    fn timed_out(&self, phase: u8) {
        if phase == IDLE {
            self.metrics.idle_timeouts.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = LOG_IDLE.admit() {
                tracing::info!(peer = %self.peer, timeout = ?self.limits.idle_timeout, suppressed = n, "closing idle keep-alive connection");
            }
        } else {
            self.metrics.header_timeouts.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = LOG_HEADER.admit() {
                tracing::warn!(
                    peer = %self.peer,
                    timeout = ?self.limits.header_read_timeout,
                    suppressed = n,
                    "closing connection: request header not complete within the header-read timeout"
                );
            }
        }
    }
}

/// Where a connection's requests go, and what the connection knows about its peer.
struct Edge {
    router: Router,
    api: Option<Arc<crate::AppState>>,
    peer: SocketAddr,
    secure: bool,
}

async fn handle(
    edge: Edge,
    metrics: &Metrics,
    req: Request<Incoming>,
    body_timeout: Duration,
) -> Response<Body> {
    let Edge {
        router,
        api,
        peer,
        secure,
    } = edge;
    let started = Instant::now();
    // The header value shares the request's bytes: keeping it costs no allocation.
    let target = req.headers().get(crate::audit::X_AMZ_TARGET).cloned();
    let op = target
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(crate::protocol::TARGET_PREFIX))
        .filter(|o| o.len() <= 64 && o.bytes().all(|b| b.is_ascii_alphanumeric()));
    let fired = Arc::new(AtomicBool::new(false));
    let mut req = req.map(|b| Body::new(TimeoutBody::new(b, body_timeout, fired.clone())));
    let resp = match api {
        // Every KMS and STS request: straight to the API, no routing.
        Some(st) if req.method() == axum::http::Method::POST && req.uri().path() == "/" => {
            crate::answer(&st, Some(peer), secure, req).await
        }
        _ => {
            // Who is at the other end, for `aws:SourceIp`, `aws:SecureTransport` and the
            // audit trail.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            req.extensions_mut()
                .insert(crate::Transport { tls: secure });
            match router.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
    };
    if fired.load(Ordering::Acquire) {
        metrics.body_timeouts.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = LOG_BODY.admit() {
            tracing::warn!(%peer, timeout = ?body_timeout, suppressed = n, "closing connection: request body not complete within the body timeout");
        }
        let body = serde_json::json!({
            "__type": "RequestTimeoutException",
            "message": format!("The request body was not received within {} ms.", body_timeout.as_millis()),
        })
        .to_string();
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::protocol::CONTENT_TYPE),
        );
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        metrics.record(
            "unknown",
            Some("RequestTimeoutException"),
            started.elapsed(),
        );
        return r;
    }
    if resp.status() == StatusCode::OK {
        metrics.record(op.unwrap_or("unknown"), None, started.elapsed());
        return resp;
    }
    // An error: its code is in the (small, in-memory) JSON body.
    let (parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => bytes::Bytes::new(),
    };
    let code = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("__type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    let label = if UNAUTHENTICATED.contains(&code.as_str()) {
        "unknown"
    } else {
        op.unwrap_or("unknown")
    };
    metrics.record(label, Some(&code), started.elapsed());
    Response::from_parts(parts, Body::from(bytes))
}

/// Shutdown, as every connection task sees it: a flag read with one atomic load per poll (the
/// connection's `select!` polls it on every wake-up), and the waker of each waiting connection
/// registered once, not on every poll (a `watch`/`Notify` future re-registers under a lock
/// shared by all connections each time it is polled).
#[derive(Default)]
pub(crate) struct Shutdown {
    down: AtomicBool,
    next_id: std::sync::atomic::AtomicU64,
    wakers: std::sync::Mutex<std::collections::HashMap<u64, std::task::Waker>>,
}

impl Shutdown {
    /// Resolves once [`Shutdown::trigger`] was called.
    pub(crate) fn wait(&self) -> ShutdownWait<'_> {
        ShutdownWait {
            shutdown: self,
            id: None,
        }
    }

    pub(crate) fn trigger(&self) {
        self.down.store(true, Ordering::Release);
        let wakers: Vec<_> = match self.wakers.lock() {
            Ok(mut w) => w.drain().map(|(_, w)| w).collect(),
            Err(p) => p.into_inner().drain().map(|(_, w)| w).collect(),
        };
        for w in wakers {
            w.wake();
        }
    }
}

pub(crate) struct ShutdownWait<'a> {
    shutdown: &'a Shutdown,
    id: Option<u64>,
}

impl std::future::Future for ShutdownWait<'_> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let s = self.shutdown;
        if s.down.load(Ordering::Acquire) {
            return std::task::Poll::Ready(());
        }
        // A task's waker stays valid for the task: register it on the first poll only.
        if self.id.is_none() {
            let id = s.next_id.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut w) = s.wakers.lock() {
                w.insert(id, cx.waker().clone());
            }
            self.id = Some(id);
            // Triggered between the load above and the registration: do not miss it.
            if s.down.load(Ordering::Acquire) {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    }
}

impl Drop for ShutdownWait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id
            && let Ok(mut w) = self.shutdown.wakers.lock()
        {
            w.remove(&id);
        }
    }
}
