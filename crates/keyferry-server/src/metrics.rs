//! Prometheus metrics, kept as atomics and rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// Every metric the server exports.
#[derive(Default)]
pub struct Metrics {
    /// (operation, error code or "") → count.
    requests: RwLock<BTreeMap<(String, String), AtomicU64>>,
    latency: RwLock<BTreeMap<String, Histogram>>,
    /// Connections accepted, refused at the cap, and closed by each timeout.
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub header_timeouts: AtomicU64,
    pub body_timeouts: AtomicU64,
    pub idle_timeouts: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub open_connections: AtomicU64,
}

/// Error codes that mean storage (or another dependency) failed.
const STORAGE_ERRORS: [&str; 2] = ["DependencyTimeoutException", "KMSInternalException"];

fn bump<K: Ord + Clone>(map: &RwLock<BTreeMap<K, AtomicU64>>, key: &K) {
    if let Ok(m) = map.read()
        && let Some(c) = m.get(key)
    {
        c.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if let Ok(mut m) = map.write() {
        m.entry(key.clone())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl Metrics {
    /// Record one KMS request. `operation` is the `X-Amz-Target` operation name (bounded: the
    /// caller passes only names from the operation table or "unknown").
    pub fn record(&self, operation: &str, error_code: Option<&str>, elapsed: Duration) {
        bump(
            &self.requests,
            &(operation.to_owned(), error_code.unwrap_or("").to_owned()),
        );
        if let Ok(m) = self.latency.read()
            && let Some(h) = m.get(operation)
        {
            h.observe(elapsed);
            return;
        }
        if let Ok(mut m) = self.latency.write() {
            m.entry(operation.to_owned()).or_default().observe(elapsed);
        }
    }

    /// The text exposition format. `gauges` are extra (name, help, labels, value) lines.
    pub fn render(&self, gauges: &[(&str, &str, String, u64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP keyferry_requests_total KMS requests by operation and error code (empty: success).\n# TYPE keyferry_requests_total counter\n");
        let mut storage_errors = 0u64;
        if let Ok(m) = self.requests.read() {
            for ((op, code), c) in m.iter() {
                let n = c.load(Ordering::Relaxed);
                if STORAGE_ERRORS.contains(&code.as_str()) {
                    storage_errors += n;
                }
                let _ = writeln!(
                    out,
                    "keyferry_requests_total{{operation=\"{op}\",error_code=\"{code}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP keyferry_request_duration_seconds KMS request latency by operation.\n# TYPE keyferry_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.read() {
            for (op, h) in m.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "keyferry_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{b}\"}} {}",
                        h.buckets[i].load(Ordering::Relaxed)
                    );
                }
                let count = h.count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "keyferry_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {count}"
                );
                let _ = writeln!(
                    out,
                    "keyferry_request_duration_seconds_sum{{operation=\"{op}\"}} {}",
                    h.sum_us.load(Ordering::Relaxed) as f64 / 1e6
                );
                let _ = writeln!(
                    out,
                    "keyferry_request_duration_seconds_count{{operation=\"{op}\"}} {count}"
                );
            }
        }
        let counters: [(&str, &str, &AtomicU64); 6] = [
            (
                "keyferry_connections_accepted_total",
                "Connections accepted.",
                &self.connections_accepted,
            ),
            (
                "keyferry_connections_refused_total",
                "Connections closed at once because the connection cap was reached.",
                &self.connections_refused,
            ),
            (
                "keyferry_header_read_timeouts_total",
                "Connections closed because the request header (or TLS handshake) was not complete in time.",
                &self.header_timeouts,
            ),
            (
                "keyferry_body_timeouts_total",
                "Requests whose body was not complete in time.",
                &self.body_timeouts,
            ),
            (
                "keyferry_idle_timeouts_total",
                "Keep-alive connections closed after the idle timeout.",
                &self.idle_timeouts,
            ),
            (
                "keyferry_tls_handshake_failures_total",
                "TLS handshakes that failed (including clients without a valid certificate under mTLS).",
                &self.tls_handshake_failures,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP keyferry_storage_errors_total Requests that failed in storage (DependencyTimeoutException, KMSInternalException).\n# TYPE keyferry_storage_errors_total counter\nkeyferry_storage_errors_total {storage_errors}"
        );
        let _ = writeln!(
            out,
            "# HELP keyferry_open_connections Connections open now.\n# TYPE keyferry_open_connections gauge\nkeyferry_open_connections {}",
            self.open_connections.load(Ordering::Relaxed)
        );
        let mut last = "";
        for (name, help, labels, v) in gauges {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                last = name;
            }
            let _ = writeln!(out, "{name}{labels} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.record("Encrypt", None, Duration::from_micros(300));
        m.record("Encrypt", None, Duration::from_millis(3));
        m.record(
            "Decrypt",
            Some("InvalidCiphertextException"),
            Duration::from_millis(1),
        );
        m.record(
            "Decrypt",
            Some("DependencyTimeoutException"),
            Duration::from_millis(1),
        );
        let text = m.render(&[(
            "keyferry_wrapping_pool_ready",
            "Ready keys.",
            "{spec=\"RSA_2048\"}".into(),
            4,
        )]);
        assert!(text.contains("keyferry_requests_total{operation=\"Encrypt\",error_code=\"\"} 2"));
        assert!(text.contains(
            "keyferry_requests_total{operation=\"Decrypt\",error_code=\"InvalidCiphertextException\"} 1"
        ));
        assert!(text.contains(
            "keyferry_request_duration_seconds_bucket{operation=\"Encrypt\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "keyferry_request_duration_seconds_bucket{operation=\"Encrypt\",le=\"0.005\"} 2"
        ));
        assert!(text.contains("keyferry_request_duration_seconds_count{operation=\"Encrypt\"} 2"));
        assert!(text.contains("keyferry_storage_errors_total 1"));
        assert!(text.contains("keyferry_wrapping_pool_ready{spec=\"RSA_2048\"} 4"));
    }
}
