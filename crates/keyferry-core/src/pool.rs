//! Pre-generated RSA wrapping key pairs for GetParametersForImport. RSA-4096 generation takes
//! hundreds of milliseconds, so a background thread keeps `size` pairs ready per wrapping key
//! spec; a request takes one (or generates one itself when the pool is drained).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use keyferry_crypto::wrap::WrappingKeyPair;
use keyferry_types::WrappingKeySpec;

use crate::KmsError;

const SPECS: [WrappingKeySpec; 3] = [
    WrappingKeySpec::RSA_4096,
    WrappingKeySpec::RSA_2048,
    WrappingKeySpec::RSA_3072,
];

struct Inner {
    size: usize,
    ready: Mutex<HashMap<WrappingKeySpec, Vec<WrappingKeyPair>>>,
    wake: Condvar,
}

pub struct WrappingKeyPool {
    inner: Arc<Inner>,
}

impl WrappingKeyPool {
    pub fn new(size: usize) -> Self {
        WrappingKeyPool {
            inner: Arc::new(Inner {
                size,
                ready: Mutex::new(HashMap::new()),
                wake: Condvar::new(),
            }),
        }
    }

    /// Start the filler thread (idempotence is the caller's business: call once).
    pub fn start(&self) {
        if self.inner.size == 0 {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("keyferry-wrapping-pool".into())
            .spawn(move || fill_loop(weak));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the wrapping key pool thread");
        }
    }

    /// How many pairs are ready for a spec.
    pub fn ready(&self, spec: WrappingKeySpec) -> usize {
        self.inner
            .ready
            .lock()
            .map(|m| m.get(&spec).map_or(0, Vec::len))
            .unwrap_or(0)
    }

    /// Take a ready pair, or `None` when the pool for this spec is empty.
    pub fn try_take(&self, spec: WrappingKeySpec) -> Option<WrappingKeyPair> {
        let pair = self.inner.ready.lock().ok()?.get_mut(&spec)?.pop();
        self.inner.wake.notify_one();
        pair
    }

    /// A pair for `spec`: from the pool, or freshly generated on a blocking thread.
    pub async fn take(&self, spec: WrappingKeySpec) -> Result<WrappingKeyPair, KmsError> {
        if let Some(pair) = self.try_take(spec) {
            return Ok(pair);
        }
        tokio::task::spawn_blocking(move || WrappingKeyPair::generate(spec))
            .await
            .map_err(|e| KmsError::Internal(format!("key generation task: {e}")))?
            .map_err(|e| KmsError::Internal(format!("wrapping key generation: {e}")))
    }
}

/// The filler is background work: on Linux it runs at nice 10, so that threads answering
/// requests get the CPU first (a caller that finds the pool empty generates at normal priority).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::debug!(error = %e, "could not lower the wrapping key pool thread's priority");
    }
}

fn fill_loop(weak: Weak<Inner>) {
    lower_priority();
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let missing = {
            let Ok(ready) = inner.ready.lock() else {
                return;
            };
            SPECS
                .iter()
                .copied()
                .find(|s| ready.get(s).map_or(0, Vec::len) < inner.size)
        };
        match missing {
            Some(spec) => {
                drop(inner);
                match WrappingKeyPair::generate(spec) {
                    Ok(pair) => {
                        let Some(inner) = weak.upgrade() else { return };
                        if let Ok(mut ready) = inner.ready.lock() {
                            ready.entry(spec).or_default().push(pair);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "wrapping key generation failed");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
            None => {
                let Ok(guard) = inner.ready.lock() else {
                    return;
                };
                // Wake on a take, or re-check every few seconds (and notice when the service is gone).
                let _ = inner.wake.wait_timeout(guard, Duration::from_secs(5));
            }
        }
    }
}
