//! The admin listener (`--admin-listen`): `/healthz` (the process is alive), `/readyz` (storage
//! answers, the root key was checked, the wrapping-key pool is not empty) and Prometheus
//! `/metrics`. Plain HTTP without authentication: bind it to loopback or an internal network.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keyferry_core::Kms;

use crate::metrics::Metrics;

/// What the admin endpoints look at.
pub struct AdminState {
    pub kms: Arc<Kms>,
    pub metrics: Arc<Metrics>,
    /// `Some(true)` once the root key has been checked against the check value in the
    /// database; `None` while this build has no such check (the store has no meta table yet).
    pub root_key_checked: Option<bool>,
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(st): State<Arc<AdminState>>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = st.kms.probe_store(Duration::from_secs(1)).await {
        problems.push(format!("storage: {e}"));
    }
    if st.root_key_checked == Some(false) {
        problems.push("root key: not checked against the database".to_owned());
    }
    if st.kms.wrapping_pool_size() > 0 {
        for (spec, n) in st.kms.wrapping_pool_depth() {
            if n == 0 {
                problems.push(format!("wrapping-key pool: no {spec} key ready yet"));
            }
        }
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let mut body = String::from("not ready\n");
        for p in problems {
            body.push_str(&p);
            body.push('\n');
        }
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(st): State<Arc<AdminState>>) -> Response {
    let mut gauges: Vec<(&str, &str, String, u64)> = st
        .kms
        .wrapping_pool_depth()
        .into_iter()
        .map(|(spec, n)| {
            (
                "keyferry_wrapping_pool_ready",
                "Pre-generated RSA wrapping keys ready, by wrapping key spec.",
                format!("{{spec=\"{spec}\"}}"),
                u64::try_from(n).unwrap_or(u64::MAX),
            )
        })
        .collect();
    gauges.extend(
        st.kms
            .wrapping_pool_target()
            .into_iter()
            .map(|(spec, n)| {
                (
                    "keyferry_wrapping_pool_target",
                    "Depth the wrapping-key pool is filling to (grows with demand, decays when idle), by wrapping key spec.",
                    format!("{{spec=\"{spec}\"}}"),
                    u64::try_from(n).unwrap_or(u64::MAX),
                )
            }),
    );
    let mut body = st.metrics.render(&gauges);
    cache_counters(&mut body, &st.kms.cache_stats().snapshot());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}

/// `keyferry_cache_hits_total{cache}` and `keyferry_cache_misses_total{cache}` from the
/// (cache, hits, misses) rows of `Kms::cache_stats` (the hit rate is hits / (hits + misses)).
fn cache_counters(out: &mut String, rows: &[(&str, u64, u64)]) {
    use std::fmt::Write;
    for (name, help, pick) in [
        (
            "keyferry_cache_hits_total",
            "Lookups answered from a per-node cache (key_record, alias, key_material, compiled_policy, grants, import_token, wrapping_key_pool).",
            0,
        ),
        (
            "keyferry_cache_misses_total",
            "Lookups a per-node cache could not answer (read from storage, unsealed, compiled, parsed or generated instead).",
            1,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (cache, hits, misses) in rows {
            let v = if pick == 0 { hits } else { misses };
            let _ = writeln!(out, "{name}{{cache=\"{cache}\"}} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cache_counters_in_exposition_format() {
        let mut out = String::new();
        super::cache_counters(&mut out, &[("key_record", 3, 1), ("alias", 0, 2)]);
        assert!(out.contains("# TYPE keyferry_cache_hits_total counter\n"));
        assert!(out.contains("keyferry_cache_hits_total{cache=\"key_record\"} 3\n"));
        assert!(out.contains("keyferry_cache_misses_total{cache=\"key_record\"} 1\n"));
        assert!(out.contains("keyferry_cache_misses_total{cache=\"alias\"} 2\n"));
    }
}
