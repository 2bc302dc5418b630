//! Read-only status for health checks and metrics: storage reachability and the wrapping-key
//! pool depth. Nothing here changes state.

use std::time::Duration;

use keyferry_types::WrappingKeySpec;

use crate::{Kms, KmsError};

impl Kms {
    /// Ready pre-generated wrapping keys per spec (`RSA_2048`, `RSA_3072`, `RSA_4096`).
    pub fn wrapping_pool_depth(&self) -> Vec<(&'static str, usize)> {
        [
            (WrappingKeySpec::RSA_2048, "RSA_2048"),
            (WrappingKeySpec::RSA_3072, "RSA_3072"),
            (WrappingKeySpec::RSA_4096, "RSA_4096"),
        ]
        .into_iter()
        .map(|(spec, name)| (name, self.pool.ready(spec)))
        .collect()
    }

    /// The depth the pool is working towards per spec: the configured size, grown with demand
    /// and decaying back when idle (0: no pool).
    pub fn wrapping_pool_target(&self) -> Vec<(&'static str, usize)> {
        [
            (WrappingKeySpec::RSA_2048, "RSA_2048"),
            (WrappingKeySpec::RSA_3072, "RSA_3072"),
            (WrappingKeySpec::RSA_4096, "RSA_4096"),
        ]
        .into_iter()
        .map(|(spec, name)| (name, self.pool.target(spec)))
        .collect()
    }

    /// The configured (minimum) pool size per spec (0: no pool, keys are made on demand).
    pub fn wrapping_pool_size(&self) -> usize {
        self.cfg.wrapping_pool_size
    }

    /// One storage round trip (a read of a key id that cannot exist), bounded by `timeout`.
    pub async fn probe_store(&self, timeout: Duration) -> Result<(), KmsError> {
        match tokio::time::timeout(timeout, self.store.get_key("keyferry-readiness-probe")).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(KmsError::Internal(format!("storage: {e}"))),
            Err(_) => Err(KmsError::Internal(format!(
                "storage did not answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}
