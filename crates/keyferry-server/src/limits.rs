//! Connection limits: how long a client may take to send a request header, a body, how long a
//! keep-alive connection may stay idle, and how many connections may be open at once. A slow or
//! silent client holds one connection slot until its timeout, never a worker.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The limits of the KMS listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From accepting a connection (or from the first byte of a later request on a keep-alive
    /// connection) until the request header is complete; includes the TLS handshake.
    pub header_read_timeout: Duration,
    /// From the end of the request header until the end of the body.
    pub body_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once; further ones are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 8192,
        }
    }
}

/// Milliseconds since a process-wide epoch (monotonic).
pub(crate) fn now_ms() -> u64 {
    use std::sync::OnceLock;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What a connection is doing, for its watchdog.
pub(crate) struct Activity {
    phase: AtomicU8,
    since_ms: AtomicU64,
}

pub(crate) const READING_HEAD: u8 = 0;
pub(crate) const IN_REQUEST: u8 = 1;
pub(crate) const IDLE: u8 = 2;

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            phase: AtomicU8::new(READING_HEAD),
            since_ms: AtomicU64::new(now_ms()),
        })
    }

    pub(crate) fn get(&self) -> (u8, u64) {
        (
            self.phase.load(Ordering::Acquire),
            self.since_ms.load(Ordering::Acquire),
        )
    }

    fn set(&self, phase: u8) {
        self.since_ms.store(now_ms(), Ordering::Release);
        self.phase.store(phase, Ordering::Release);
    }

    pub(crate) fn request_started(&self) {
        self.set(IN_REQUEST);
    }

    pub(crate) fn request_finished(&self) {
        self.set(IDLE);
    }

    /// Bytes arrived: an idle connection starts reading its next request header.
    fn bytes_received(&self) {
        if self.phase.load(Ordering::Acquire) == IDLE {
            self.set(READING_HEAD);
        }
    }
}

/// An I/O stream that reports received bytes to its connection's [`Activity`].
pub(crate) struct ActivityIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> ActivityIo<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        ActivityIo { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_received();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The body did not arrive in time.
#[derive(Debug)]
pub(crate) struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body timeout")
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails with [`BodyTimeout`] once its deadline passes.
/// The timer is created only when the body is not already complete (a small request usually
/// arrives with its header), so most requests never arm one.
pub(crate) struct TimeoutBody<B> {
    inner: B,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    fired: Arc<AtomicBool>,
}

impl<B> TimeoutBody<B> {
    pub(crate) fn new(inner: B, timeout: Duration, fired: Arc<AtomicBool>) -> Self {
        TimeoutBody {
            inner,
            deadline: tokio::time::Instant::now() + timeout,
            sleep: None,
            fired,
        }
    }
}

impl<B> Body for TimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = self.deadline;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    self.fired.store(true, Ordering::Release);
                    Poll::Ready(Some(Err(Box::new(BodyTimeout))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A warning that is logged at most `PER_SECOND` times a second; the rest are counted and
/// summarised in the next line that is logged.
pub(crate) struct RateLog {
    second: AtomicU64,
    in_second: AtomicU64,
    suppressed: AtomicU64,
}

const PER_SECOND: u64 = 5;

impl RateLog {
    pub(crate) const fn new() -> Self {
        RateLog {
            second: AtomicU64::new(u64::MAX),
            in_second: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log now, mentioning `n` suppressed earlier occurrences; `None`: stay quiet.
    pub(crate) fn admit(&self) -> Option<u64> {
        let sec = now_ms() / 1000;
        if self.second.swap(sec, Ordering::AcqRel) != sec {
            self.in_second.store(0, Ordering::Release);
        }
        if self.in_second.fetch_add(1, Ordering::AcqRel) < PER_SECOND {
            Some(self.suppressed.swap(0, Ordering::AcqRel))
        } else {
            self.suppressed.fetch_add(1, Ordering::AcqRel);
            None
        }
    }
}

/// Parse `500ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 500ms, 10s, 2m)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration {s:?} (examples: 500ms, 10s, 2m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn rate_log_limits_lines_per_second() {
        let r = RateLog::new();
        let admitted = (0..100).filter(|_| r.admit().is_some()).count();
        // All within one or two seconds of wall time.
        assert!((PER_SECOND as usize..=2 * PER_SECOND as usize).contains(&admitted));
    }
}
