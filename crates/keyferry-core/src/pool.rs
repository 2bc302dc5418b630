//! Wrapping key pairs for GetParametersForImport, kept ready so that the request path does not
//! wait for an RSA key generation (RSA_4096: hundreds of milliseconds of CPU).
//!
//! The pool adapts to demand, per wrapping key spec (RSA_2048, RSA_3072, RSA_4096; SM2 is
//! refused before the pool is asked):
//! - **Depth**: each spec has a target depth that starts at the configured minimum
//!   (`--wrapping-pool-size`, default 4). Every token issued counts as demand; the target grows to
//!   the number of tokens issued for the spec in the last minute (bounded by `max`). Once no token
//!   was issued for `decay`, the target halves (again after each further `decay`) down to the
//!   minimum, and ready pairs beyond it are dropped: memory stays bounded by `max` pairs per spec.
//! - **Refill**: one filler thread per core (at most 4), each at nice 10 so that threads answering
//!   requests get the CPU first. When a spec is short by several pairs, every filler works on it.
//! - **Reuse within a short window** (`docs/decisions.md`): when no fresh pair is ready, a
//!   request reuses the pair most recently handed to the *same caller* (principal ARN, Region and
//!   account) for the same wrapping key spec and algorithm, if that pair was first handed out less
//!   than [`REUSE_WINDOW`] ago and has served fewer than `max_tokens` tokens. Each token still
//!   names one KMS key. With nothing to reuse, one generation runs on a blocking thread and every
//!   request of that caller arriving meanwhile waits for the same pair, rather than each starting
//!   its own. `max_tokens = 1` turns reuse off (every token has its own pair).
//!
//! Nothing here blocks the async request path: the state is behind a `std` mutex held for a few
//! vector operations, generation runs on filler threads or `spawn_blocking`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use keyferry_crypto::wrap::WrappingKeyPair;
use keyferry_types::{AlgorithmSpec, WrappingKeySpec};

use crate::KmsError;

/// The specs the pool keeps, in the order fillers serve them when equally short.
pub const SPECS: [WrappingKeySpec; 3] = [
    WrappingKeySpec::RSA_4096,
    WrappingKeySpec::RSA_2048,
    WrappingKeySpec::RSA_3072,
];

/// Demand is the number of tokens issued for a spec within this window.
const DEMAND_WINDOW: Duration = Duration::from_secs(60);
/// A pair is reused only for tokens issued within this long after its first one.
pub const REUSE_WINDOW: Duration = Duration::from_secs(60);
/// Callers remembered for reuse at once (each entry holds one pair).
const MAX_REUSE_ENTRIES: usize = 1_024;
/// Upper bound on filler threads.
const MAX_FILLERS: usize = 4;

/// How the pool behaves. `Default` is what `keyferry serve` uses without flags.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Depth kept per spec without demand (`--wrapping-pool-size`). 0: no background pool at
    /// all; pairs are generated on demand (and still reused as below).
    pub min: usize,
    /// The depth demand may grow a spec's target to (at least `min`).
    pub max: usize,
    /// Without any token issued for a spec for this long, its grown target halves.
    pub decay: Duration,
    /// Tokens one pair may serve (1: never reuse a pair).
    pub max_tokens: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min: 4,
            max: 64,
            decay: Duration::from_secs(300),
            max_tokens: 64,
        }
    }
}

/// Who may share a pair: one caller identity in one Region and account, one spec, one algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ReuseKey {
    scope: String,
    spec: WrappingKeySpec,
    algorithm: AlgorithmSpec,
}

struct Reused {
    pair: Arc<WrappingKeyPair>,
    first: Instant,
    tokens: u32,
}

/// A generation on the request path that callers of one scope wait for together.
struct Pending {
    cell: Arc<tokio::sync::OnceCell<Arc<WrappingKeyPair>>>,
    started: Instant,
    joined: u32,
}

struct SpecState {
    ready: Vec<Arc<WrappingKeyPair>>,
    in_flight: usize,
    target: usize,
    /// When tokens were issued within the last `DEMAND_WINDOW` (at most `max` entries).
    issued: VecDeque<Instant>,
    /// Last token issued, or last halving of the target.
    last_change: Instant,
}

struct State {
    specs: HashMap<WrappingKeySpec, SpecState>,
    reuse: HashMap<ReuseKey, Reused>,
    pending: HashMap<ReuseKey, Pending>,
}

impl State {
    fn spec(&mut self, spec: WrappingKeySpec) -> Option<&mut SpecState> {
        self.specs.get_mut(&spec)
    }

    /// Decay idle targets, drop pairs above them, forget reuse entries past their window.
    fn maintain(&mut self, cfg: &PoolConfig, now: Instant) {
        for s in self.specs.values_mut() {
            while s
                .issued
                .front()
                .is_some_and(|t| now.duration_since(*t) > DEMAND_WINDOW)
            {
                s.issued.pop_front();
            }
            if s.target > cfg.min && now.duration_since(s.last_change) >= cfg.decay {
                s.target = (s.target / 2).max(cfg.min);
                s.last_change = now;
            }
            s.ready.truncate(s.target);
        }
        self.reuse
            .retain(|_, r| now.duration_since(r.first) < REUSE_WINDOW);
        self.pending
            .retain(|_, p| now.duration_since(p.started) < REUSE_WINDOW || p.cell.initialized());
    }

    /// Count one token for `spec` and grow its target to the demand seen.
    fn record_demand(&mut self, cfg: &PoolConfig, spec: WrappingKeySpec, now: Instant) {
        let Some(s) = self.spec(spec) else { return };
        if s.issued.len() >= cfg.max {
            s.issued.pop_front();
        }
        s.issued.push_back(now);
        s.last_change = now;
        s.target = s.target.max(s.issued.len().min(cfg.max));
    }

    /// The spec that is short of the most pairs (counting generations under way).
    fn most_short(&self) -> Option<WrappingKeySpec> {
        let mut best: Option<(WrappingKeySpec, usize)> = None;
        for spec in SPECS {
            let Some(s) = self.specs.get(&spec) else {
                continue;
            };
            let short = s.target.saturating_sub(s.ready.len() + s.in_flight);
            if short > 0 && best.is_none_or(|(_, b)| short > b) {
                best = Some((spec, short));
            }
        }
        best.map(|(spec, _)| spec)
    }

    fn remember(&mut self, key: ReuseKey, pair: Arc<WrappingKeyPair>, first: Instant, tokens: u32) {
        if self.reuse.len() >= MAX_REUSE_ENTRIES && !self.reuse.contains_key(&key) {
            return;
        }
        self.reuse.insert(
            key,
            Reused {
                pair,
                first,
                tokens,
            },
        );
    }
}

struct Inner {
    cfg: PoolConfig,
    state: Mutex<State>,
    wake: Condvar,
}

impl Inner {
    fn lock(&self) -> Option<MutexGuard<'_, State>> {
        self.state.lock().ok()
    }
}

pub struct WrappingKeyPool {
    inner: Arc<Inner>,
}

/// How a request got its pair (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A pre-generated pair nobody else received.
    Fresh,
    /// The caller's recent pair, reused.
    Reused,
    /// Generated on the request path (nothing ready, nothing to reuse).
    Generated,
}

impl WrappingKeyPool {
    pub fn new(cfg: PoolConfig) -> Self {
        let now = Instant::now();
        let min = cfg.min;
        let cfg = PoolConfig {
            max: cfg.max.max(cfg.min),
            max_tokens: cfg.max_tokens.max(1),
            ..cfg
        };
        let specs = SPECS
            .iter()
            .map(|s| {
                (
                    *s,
                    SpecState {
                        ready: Vec::new(),
                        in_flight: 0,
                        target: min,
                        issued: VecDeque::new(),
                        last_change: now,
                    },
                )
            })
            .collect();
        WrappingKeyPool {
            inner: Arc::new(Inner {
                cfg,
                state: Mutex::new(State {
                    specs,
                    reuse: HashMap::new(),
                    pending: HashMap::new(),
                }),
                wake: Condvar::new(),
            }),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.cfg
    }

    /// Start the filler threads (call once). With `min = 0` there is no background pool.
    pub fn start(&self) {
        if self.inner.cfg.min == 0 {
            return;
        }
        let n = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_FILLERS);
        for i in 0..n {
            let weak: Weak<Inner> = Arc::downgrade(&self.inner);
            let spawned = std::thread::Builder::new()
                .name(format!("keyferry-wrapping-pool-{i}"))
                .spawn(move || fill_loop(weak));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a wrapping key pool thread");
            }
        }
    }

    /// How many pairs are ready for a spec.
    pub fn ready(&self, spec: WrappingKeySpec) -> usize {
        self.inner
            .lock()
            .and_then(|mut st| st.spec(spec).map(|s| s.ready.len()))
            .unwrap_or(0)
    }

    /// The depth the pool is working towards for a spec (grows with demand, decays when idle;
    /// 0 without a background pool).
    pub fn target(&self, spec: WrappingKeySpec) -> usize {
        if self.inner.cfg.min == 0 {
            return 0;
        }
        let now = Instant::now();
        self.inner
            .lock()
            .and_then(|mut st| {
                st.maintain(&self.inner.cfg, now);
                st.spec(spec).map(|s| s.target)
            })
            .unwrap_or(0)
    }

    /// A pair for one token of `scope` (the caller identity), without waiting when a pair is
    /// ready or reusable; otherwise one generation per scope on a blocking thread.
    pub async fn take(
        &self,
        scope: &str,
        spec: WrappingKeySpec,
        algorithm: AlgorithmSpec,
    ) -> Result<(Arc<WrappingKeyPair>, Source), KmsError> {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let key = ReuseKey {
            scope: scope.to_owned(),
            spec,
            algorithm,
        };
        let reuse = cfg.max_tokens > 1;
        let now = Instant::now();
        let pending = {
            let mut st = inner
                .lock()
                .ok_or_else(|| KmsError::Internal("wrapping key pool lock poisoned".into()))?;
            st.maintain(cfg, now);
            if cfg.min > 0 {
                st.record_demand(cfg, spec, now);
            }
            inner.wake.notify_all();
            if let Some(pair) = st.spec(spec).and_then(|s| s.ready.pop()) {
                if reuse {
                    st.remember(key, pair.clone(), now, 1);
                }
                return Ok((pair, Source::Fresh));
            }
            if reuse
                && let Some(r) = st.reuse.get_mut(&key)
                && r.tokens < cfg.max_tokens
            {
                r.tokens += 1;
                return Ok((r.pair.clone(), Source::Reused));
            }
            if reuse {
                match st.pending.get_mut(&key) {
                    Some(p) if p.joined < cfg.max_tokens => {
                        p.joined += 1;
                        Some(p.cell.clone())
                    }
                    Some(_) => None,
                    None => {
                        let cell = Arc::new(tokio::sync::OnceCell::new());
                        st.pending.insert(
                            key.clone(),
                            Pending {
                                cell: cell.clone(),
                                started: now,
                                joined: 1,
                            },
                        );
                        Some(cell)
                    }
                }
            } else {
                None
            }
        };
        let Some(cell) = pending else {
            return Ok((generate(spec).await?, Source::Generated));
        };
        let result = cell.get_or_try_init(|| generate(spec)).await.cloned();
        // The first caller back moves the finished generation over to reuse (or clears a failed
        // one), so that later requests of the scope reuse it within its window.
        if let Some(mut st) = inner.lock()
            && let Some(p) = st.pending.get(&key)
            && Arc::ptr_eq(&p.cell, &cell)
        {
            let (started, joined) = (p.started, p.joined);
            st.pending.remove(&key);
            if let Ok(pair) = &result {
                st.remember(key, pair.clone(), started, joined);
            }
        }
        Ok((result?, Source::Generated))
    }
}

async fn generate(spec: WrappingKeySpec) -> Result<Arc<WrappingKeyPair>, KmsError> {
    tokio::task::spawn_blocking(move || WrappingKeyPair::generate(spec))
        .await
        .map_err(|e| KmsError::Internal(format!("key generation task: {e}")))?
        .map(Arc::new)
        .map_err(|e| KmsError::Internal(format!("wrapping key generation: {e}")))
}

/// The filler is background work: on Linux it runs at nice 10, so that threads answering
/// requests get the CPU first (a caller that finds nothing ready generates at normal priority).
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
        let cfg = inner.cfg.clone();
        let spec = {
            let Some(mut st) = inner.lock() else { return };
            st.maintain(&cfg, Instant::now());
            match st.most_short() {
                Some(spec) => {
                    if let Some(s) = st.spec(spec) {
                        s.in_flight += 1;
                    }
                    Some(spec)
                }
                None => {
                    // Wake on a take, or re-check now and then (decay, and notice when the
                    // service is gone).
                    let wait = cfg.decay.min(Duration::from_secs(5));
                    let _ = inner.wake.wait_timeout(st, wait);
                    None
                }
            }
        };
        let Some(spec) = spec else { continue };
        drop(inner);
        let made = WrappingKeyPair::generate(spec);
        let Some(inner) = weak.upgrade() else { return };
        let Some(mut st) = inner.lock() else { return };
        let Some(s) = st.spec(spec) else { return };
        s.in_flight = s.in_flight.saturating_sub(1);
        match made {
            Ok(pair) => {
                if s.ready.len() < s.target {
                    s.ready.push(Arc::new(pair));
                }
            }
            Err(e) => {
                drop(st);
                tracing::warn!(error = %e, "wrapping key generation failed");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pool(min: usize, max_tokens: u32) -> WrappingKeyPool {
        WrappingKeyPool::new(PoolConfig {
            min,
            max: 8,
            decay: Duration::from_millis(200),
            max_tokens,
        })
    }

    #[tokio::test]
    async fn reuse_stays_within_one_scope_spec_and_algorithm() {
        let p = pool(0, 3);
        let alg = AlgorithmSpec::RSAES_OAEP_SHA_256;
        let spec = WrappingKeySpec::RSA_2048;
        let (a, s1) = p.take("alice", spec, alg).await.unwrap();
        let (b, s2) = p.take("alice", spec, alg).await.unwrap();
        let (c, _) = p.take("alice", spec, alg).await.unwrap();
        assert_eq!((s1, s2), (Source::Generated, Source::Reused));
        assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &c));
        // The fourth token of the scope exceeds max_tokens: a new pair.
        let (d, s4) = p.take("alice", spec, alg).await.unwrap();
        assert_eq!(s4, Source::Generated);
        assert!(!Arc::ptr_eq(&a, &d));
        // Another caller, another algorithm, another spec: never the same pair.
        let (e, _) = p.take("bob", spec, alg).await.unwrap();
        let (f, _) = p
            .take("alice", spec, AlgorithmSpec::RSAES_OAEP_SHA_1)
            .await
            .unwrap();
        let (g, _) = p
            .take("alice", WrappingKeySpec::RSA_3072, alg)
            .await
            .unwrap();
        for other in [&e, &f, &g] {
            assert!(!Arc::ptr_eq(&d, other));
            assert_ne!(d.public_key_der(), other.public_key_der());
        }
    }

    #[tokio::test]
    async fn max_tokens_one_never_reuses() {
        let p = pool(0, 1);
        let alg = AlgorithmSpec::RSAES_OAEP_SHA_256;
        let spec = WrappingKeySpec::RSA_2048;
        let (a, _) = p.take("alice", spec, alg).await.unwrap();
        let (b, s) = p.take("alice", spec, alg).await.unwrap();
        assert_eq!(s, Source::Generated);
        assert_ne!(a.public_key_der(), b.public_key_der());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_of_one_scope_wait_for_one_generation() {
        let p = Arc::new(pool(0, 64));
        let alg = AlgorithmSpec::RSAES_OAEP_SHA_256;
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move { p.take("alice", WrappingKeySpec::RSA_2048, alg).await })
            })
            .collect();
        let mut keys = Vec::new();
        for t in tasks {
            keys.push(t.await.unwrap().unwrap().0.public_key_der());
        }
        keys.dedup();
        assert_eq!(keys.len(), 1, "six concurrent callers got one pair");
    }

    #[test]
    fn target_grows_with_demand_and_decays_when_idle() {
        let cfg = PoolConfig {
            min: 2,
            max: 8,
            decay: Duration::from_millis(100),
            max_tokens: 64,
        };
        let p = WrappingKeyPool::new(cfg.clone());
        let spec = WrappingKeySpec::RSA_4096;
        let t0 = Instant::now();
        {
            let mut st = p.inner.lock().unwrap();
            for _ in 0..20 {
                st.record_demand(&cfg, spec, t0);
            }
            assert_eq!(st.spec(spec).unwrap().target, 8, "bounded by max");
            assert_eq!(st.most_short(), Some(spec));
            st.maintain(&cfg, t0 + Duration::from_millis(50));
            assert_eq!(st.spec(spec).unwrap().target, 8, "not idle long enough");
            st.maintain(&cfg, t0 + Duration::from_millis(100));
            assert_eq!(st.spec(spec).unwrap().target, 4);
            st.maintain(&cfg, t0 + Duration::from_millis(150));
            assert_eq!(st.spec(spec).unwrap().target, 4, "one halving per decay");
            st.maintain(&cfg, t0 + Duration::from_millis(200));
            st.maintain(&cfg, t0 + Duration::from_millis(300));
            st.maintain(&cfg, t0 + Duration::from_millis(400));
            assert_eq!(st.spec(spec).unwrap().target, 2, "never below min");
            assert_eq!(st.spec(WrappingKeySpec::RSA_2048).unwrap().target, 2);
        }
    }
}
