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

/// Per-bucket counts (not cumulative: one increment per observation; `render` sums them).
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// Everything counted for one operation label. The success counter and the histogram are
/// reached with one map lookup by `&str` and no allocation; error codes are rarer.
#[derive(Default)]
struct OpStats {
    ok: AtomicU64,
    errors: RwLock<BTreeMap<String, AtomicU64>>,
    latency: Histogram,
}

#[derive(Default)]
pub struct Metrics {
    ops: RwLock<BTreeMap<String, OpStats>>,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub header_timeouts: AtomicU64,
    pub body_timeouts: AtomicU64,
    pub idle_timeouts: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub open_connections: AtomicU64,
}

const STORAGE_ERRORS: [&str; 2] = ["DependencyTimeoutException", "KMSInternalException"];

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl OpStats {
    fn count(&self, error_code: Option<&str>, elapsed: Duration) {
        self.latency.observe(elapsed);
        let Some(code) = error_code else {
            self.ok.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Ok(m) = self.errors.read()
            && let Some(c) = m.get(code)
        {
            c.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Ok(mut m) = self.errors.write() {
            m.entry(code.to_owned())
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Metrics {
    pub fn record(&self, operation: &str, error_code: Option<&str>, elapsed: Duration) {
        if let Ok(m) = self.ops.read()
            && let Some(s) = m.get(operation)
        {
            s.count(error_code, elapsed);
            return;
        }
        if let Ok(mut m) = self.ops.write() {
            m.entry(operation.to_owned())
                .or_default()
                .count(error_code, elapsed);
        }
    }

    pub fn render(&self, gauges: &[(&str, &str, String, u64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP keyferry_requests_total KMS requests by operation and error code (empty: success).\n# TYPE keyferry_requests_total counter\n");
        let mut storage_errors = 0u64;
        let Ok(ops) = self.ops.read() else {
            return out;
        };
        for (op, st) in ops.iter() {
            let _ = writeln!(
                out,
                "keyferry_requests_total{{operation=\"{op}\",error_code=\"\"}} {}",
                st.ok.load(Ordering::Relaxed)
            );
            if let Ok(errors) = st.errors.read() {
                for (code, c) in errors.iter() {
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
        }
        out.push_str("# HELP keyferry_request_duration_seconds KMS request latency by operation.\n# TYPE keyferry_request_duration_seconds histogram\n");
        for (op, st) in ops.iter() {
            let h = &st.latency;
            let mut cumulative = 0u64;
            for (i, b) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "keyferry_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{b}\"}} {cumulative}"
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
        drop(ops);
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
