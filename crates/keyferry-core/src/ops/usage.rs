//! GetKeyLastUsage, and the per-node usage tracker that feeds it.
//!
//! The audit trail (`keyferry-server/src/audit.rs`) reports every successful cryptographic
//! operation with its event id and request id ([`Kms::record_usage`]). The tracker keeps the
//! latest one per key in memory and a background task writes them to the store in one batch
//! per second (`Store::record_key_usage`, which keeps the later row per key), so Encrypt never
//! writes to the database itself. GetKeyLastUsage answers the later of the stored row and this
//! node's unflushed entry. A crash loses at most the last second of unflushed usage of this
//! node (the audit file still holds those events).
//!
//! Tracking starts once per database: the first node that tracks anything stores the start
//! time in the store's metadata table (`put_meta_if_absent`); `TrackingStartDate` is the later
//! of it and the key's creation date.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use keyferry_types::{
    GetKeyLastUsageRequest, GetKeyLastUsageResponse, KeyLastUsageData,
    KeyLastUsageTrackingOperation,
};

use crate::KmsError;
use crate::authz::{self, Ask};
use crate::context::RequestContext;
use crate::kms::Kms;
use crate::ops::ts;
use crate::store::{KeyUsageRow, Store};

/// The metadata entry holding the tracking start (epoch milliseconds, decimal text).
pub(crate) const TRACKING_START_META: &str = "key-usage-tracking-start-ms";

/// How often unflushed usage is written to the store.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The latest successful cryptographic use of each key seen by this node and not yet written.
pub(crate) struct UsageTracker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    pending: Mutex<HashMap<String, KeyUsageRow>>,
    flusher: std::sync::Once,
    tracking_start: tokio::sync::OnceCell<i64>,
}

impl UsageTracker {
    pub(crate) fn new(store: Arc<dyn Store>) -> UsageTracker {
        UsageTracker {
            inner: Arc::new(Inner {
                store,
                pending: Mutex::new(HashMap::new()),
                flusher: std::sync::Once::new(),
                tracking_start: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// Note a use of `key_id`. A key used again reuses its entry's strings (no allocation
    /// on the hot path once a key has been seen).
    fn record(
        &self,
        key_id: &str,
        operation: &str,
        timestamp_ms: i64,
        event_id: &str,
        request_id: &str,
    ) {
        if let Ok(mut pending) = self.inner.pending.lock() {
            keep_later(
                &mut pending,
                key_id,
                operation,
                timestamp_ms,
                event_id,
                request_id,
            );
        }
        self.inner.flusher.call_once(|| {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let weak = Arc::downgrade(&self.inner);
                handle.spawn(flush_loop(weak));
            }
        });
    }

    fn pending(&self, key_id: &str) -> Option<KeyUsageRow> {
        self.inner
            .pending
            .lock()
            .ok()
            .and_then(|p| p.get(key_id).cloned())
    }

    /// Write every unflushed entry now (the flush task does this every second; shutdown too).
    pub(crate) async fn flush(&self) -> Result<(), KmsError> {
        self.inner.flush().await
    }

    /// The tracking start, stored once per database.
    async fn tracking_start(&self, now_ms: i64) -> Result<i64, KmsError> {
        self.inner.tracking_start(now_ms).await
    }
}

impl Inner {
    async fn tracking_start(&self, candidate_ms: i64) -> Result<i64, KmsError> {
        let start = self
            .tracking_start
            .get_or_try_init(|| async {
                self.store
                    .put_meta_if_absent(TRACKING_START_META, candidate_ms.to_string().as_bytes())
                    .await?;
                let stored = self.store.get_meta(TRACKING_START_META).await?;
                let parsed = stored
                    .as_deref()
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|s| s.trim().parse::<i64>().ok());
                parsed.ok_or_else(|| {
                    KmsError::Internal("the key usage tracking start is unreadable".into())
                })
            })
            .await?;
        Ok(*start)
    }

    async fn flush(&self) -> Result<(), KmsError> {
        // Copy, write, then drop what was written: a reader never finds an entry in neither
        // place while the batch is on its way to the store.
        let batch: Vec<KeyUsageRow> = match self.pending.lock() {
            Ok(p) if !p.is_empty() => p.values().cloned().collect(),
            _ => return Ok(()),
        };
        // Tracking starts no later than the earliest use it records.
        let earliest = batch.iter().map(|r| r.timestamp_ms).min().unwrap_or(0);
        self.tracking_start(earliest).await?;
        self.store.record_key_usage(&batch).await?;
        if let Ok(mut p) = self.pending.lock() {
            for row in &batch {
                if p.get(&row.key_id)
                    .is_some_and(|r| r.event_id == row.event_id)
                {
                    p.remove(&row.key_id);
                }
            }
        }
        Ok(())
    }
}

async fn flush_loop(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(FLUSH_INTERVAL).await;
        let Some(inner) = inner.upgrade() else { break };
        if let Err(e) = inner.flush().await {
            tracing::warn!(error = %e, "writing key usage failed; retrying in a second");
        }
    }
}

/// Keep the later of the entry for `key_id` and this use, reusing the entry's strings.
fn keep_later(
    map: &mut HashMap<String, KeyUsageRow>,
    key_id: &str,
    operation: &str,
    timestamp_ms: i64,
    event_id: &str,
    request_id: &str,
) {
    match map.get_mut(key_id) {
        Some(row) if row.timestamp_ms > timestamp_ms => {}
        Some(row) => {
            row.timestamp_ms = timestamp_ms;
            set(&mut row.operation, operation);
            set(&mut row.event_id, event_id);
            set(&mut row.request_id, request_id);
        }
        None => {
            map.insert(
                key_id.to_string(),
                KeyUsageRow {
                    key_id: key_id.to_string(),
                    operation: operation.to_string(),
                    timestamp_ms,
                    event_id: event_id.to_string(),
                    request_id: request_id.to_string(),
                },
            );
        }
    }
}

fn set(dst: &mut String, src: &str) {
    if dst != src {
        dst.clear();
        dst.push_str(src);
    }
}

/// The key id in a key ARN (`arn:aws:kms:<region>:<account>:key/<id>`).
fn key_id_of(arn: &str) -> Option<&str> {
    arn.rsplit_once(":key/").map(|(_, id)| id)
}

impl Kms {
    /// Record a successful call of `operation` on `key_arns` (the keys the request resolved,
    /// `RequestContext::touched_keys`) for GetKeyLastUsage. Operations that are not tracked
    /// (anything but the cryptographic operations of `KeyLastUsageTrackingOperation`) are
    /// ignored. ReEncrypt records both its keys.
    pub fn record_usage(
        &self,
        operation: &str,
        key_arns: &[String],
        timestamp_ms: i64,
        event_id: &str,
        request_id: &str,
    ) {
        if operation.parse::<KeyLastUsageTrackingOperation>().is_err() {
            return;
        }
        for arn in key_arns {
            let Some(key_id) = key_id_of(arn) else {
                continue;
            };
            // A multi-Region replica's usage is kept under its own row (`mrk-…@<region>`).
            let region = arn.split(':').nth(3).unwrap_or_default();
            let row = if key_id.starts_with("mrk-") && self.is_replica_row(key_id, region) {
                std::borrow::Cow::Owned(crate::record::replica_row(key_id, region))
            } else {
                std::borrow::Cow::Borrowed(key_id)
            };
            self.usage
                .record(&row, operation, timestamp_ms, event_id, request_id);
        }
    }

    /// Start tracking key usage: the first server on a database stores the tracking start
    /// (later ones read it). Called once at start-up.
    pub async fn start_usage_tracking(&self) -> Result<(), KmsError> {
        self.usage.tracking_start(self.now_ms()).await.map(|_| ())
    }

    /// Write this node's unflushed key usage to the store (called at shutdown).
    pub async fn flush_usage(&self) -> Result<(), KmsError> {
        self.usage.flush().await
    }

    pub async fn get_key_last_usage(
        &self,
        cx: &RequestContext,
        req: GetKeyLastUsageRequest,
    ) -> Result<GetKeyLastUsageResponse, KmsError> {
        let rec = self
            .key(cx, &req.key_id, &authz::GET_KEY_LAST_USAGE, Ask::none())
            .await?;
        let start = self.usage.tracking_start(self.now_ms()).await?;
        let row = rec.row_id();
        let stored = self.store.get_key_usage(&row).await?;
        let latest = match (stored, self.usage.pending(&row)) {
            (Some(a), Some(b)) => Some(if b.timestamp_ms >= a.timestamp_ms {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        };
        let usage = match latest {
            Some(row) => KeyLastUsageData {
                operation: row.operation.parse().ok(),
                timestamp: Some(ts(row.timestamp_ms)),
                cloud_trail_event_id: Some(row.event_id),
                kms_request_id: Some(row.request_id),
            },
            None => KeyLastUsageData::default(),
        };
        Ok(GetKeyLastUsageResponse {
            key_id: Some(rec.key_id.clone()),
            key_last_usage: Some(usage),
            tracking_start_date: Some(ts(start.max(rec.creation_ms))),
            key_creation_date: Some(ts(rec.creation_ms)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn use_at(m: &mut HashMap<String, KeyUsageRow>, key: &str, op: &str, t: i64) {
        keep_later(m, key, op, t, &format!("e{t}"), &format!("r{t}"));
    }

    #[test]
    fn the_later_use_wins() {
        let mut m = HashMap::new();
        use_at(&mut m, "k", "Encrypt", 20);
        use_at(&mut m, "k", "Decrypt", 10);
        assert_eq!(m["k"].operation, "Encrypt");
        use_at(&mut m, "k", "Decrypt", 30);
        assert_eq!(m["k"].event_id, "e30");
        assert_eq!(m["k"].operation, "Decrypt");
        use_at(&mut m, "j", "Sign", 1);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn key_ids_from_arns() {
        assert_eq!(
            key_id_of(
                "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            ),
            Some("1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert_eq!(
            key_id_of("arn:aws:kms:us-east-1:111122223333:alias/x"),
            None
        );
    }
}
