//! Many imports at once: every source runs the same import as a single `keyferry import`,
//! a bounded number at a time, with a progress bar when stderr is a terminal and a per-key
//! result table at the end.
//!
//! PKCS#11 sessions are not `Sync`, so the imports run as local tasks on one thread: the work is
//! network-bound (the HSM wrap takes milliseconds), so this still overlaps the round trips.

use std::io::IsTerminal;
use std::rc::Rc;

use aws_sdk_kms::Client;
use tokio::sync::Semaphore;

use crate::client::{ImportOutcome, ImportRequest, SourceSpec, import};
use crate::error::{Error, Result};

/// Default number of imports in flight.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// One source's result.
#[derive(Debug)]
pub struct BatchItem {
    /// The source, as given.
    pub label: String,
    /// A short name for the table (file name, or token/object).
    pub short: String,
    /// The import's outcome or error.
    pub result: Result<ImportOutcome>,
}

/// Import every source with `req` (which must not name a key id or alias), at most
/// `concurrency` at a time. Results come back in the order of `sources`.
pub async fn import_many(
    client: &Client,
    sources: Vec<SourceSpec>,
    req: &ImportRequest,
    concurrency: usize,
) -> Vec<BatchItem> {
    let total = sources.len();
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} done: {msg}",
        ) {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    if let Some(b) = &bar {
        b.set_message("0 imported, 0 failed");
    }
    let counts = Rc::new(std::cell::Cell::new((0usize, 0usize)));
    let sem = Rc::new(Semaphore::new(concurrency.max(1)));
    let local = tokio::task::LocalSet::new();
    let mut handles = Vec::with_capacity(total);
    for (i, spec) in sources.into_iter().enumerate() {
        let client = client.clone();
        let req = req.clone();
        let sem = Rc::clone(&sem);
        let bar = bar.clone();
        let counts = Rc::clone(&counts);
        handles.push(local.spawn_local(async move {
            let permit = sem.acquire().await;
            let label = spec.label();
            let short = spec.short_label();
            let result = match permit {
                Ok(_p) => import(&client, &spec, &req).await,
                Err(_) => Err(Error::new(
                    crate::error::ErrorKind::Internal,
                    "the import queue was closed",
                )),
            };
            let (ok, failed) = counts.get();
            let now = if result.is_ok() {
                (ok + 1, failed)
            } else {
                (ok, failed + 1)
            };
            counts.set(now);
            if let Some(b) = &bar {
                b.inc(1);
                b.set_message(format!("{} imported, {} failed", now.0, now.1));
            }
            (
                i,
                BatchItem {
                    label,
                    short,
                    result,
                },
            )
        }));
    }
    let mut items: Vec<Option<BatchItem>> = (0..total).map(|_| None).collect();
    local
        .run_until(async {
            for h in handles {
                if let Ok((i, item)) = h.await
                    && let Some(slot) = items.get_mut(i)
                {
                    *slot = Some(item);
                }
            }
        })
        .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, it)| {
            it.unwrap_or_else(|| BatchItem {
                label: format!("source #{}", i + 1),
                short: format!("source #{}", i + 1),
                result: Err(Error::new(
                    crate::error::ErrorKind::Internal,
                    "the import task stopped unexpectedly",
                )),
            })
        })
        .collect()
}

/// A plain-text table: SOURCE, KEY SPEC, KEY ID, RESULT; error messages follow the table.
pub fn table(items: &[BatchItem]) -> String {
    let rows: Vec<[String; 4]> = items
        .iter()
        .map(|it| match &it.result {
            Ok(o) => [
                it.short.clone(),
                o.key_spec.clone(),
                o.key_id.clone(),
                if o.verified {
                    "imported, verified".to_string()
                } else {
                    "imported, NOT verified".to_string()
                },
            ],
            Err(e) => [
                it.short.clone(),
                "-".to_string(),
                "-".to_string(),
                format!("FAILED ({:?})", e.kind()),
            ],
        })
        .collect();
    let header = [
        "SOURCE".to_string(),
        "KEY SPEC".to_string(),
        "KEY ID".to_string(),
        "RESULT".to_string(),
    ];
    let mut widths = [0usize; 4];
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(widths.iter())
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let failures: Vec<String> = items
        .iter()
        .filter_map(|it| {
            it.result
                .as_ref()
                .err()
                .map(|e| format!("{}: {}", it.short, e.message()))
        })
        .collect();
    if !failures.is_empty() {
        out.push('\n');
        for f in failures {
            out.push_str(&f);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn table_lists_each_source() {
        let items = vec![
            BatchItem {
                label: "a.bin".into(),
                short: "a.bin".into(),
                result: Ok(ImportOutcome {
                    key_id: "arn:aws:kms:us-east-1:111122223333:key/k1".into(),
                    key_spec: "SYMMETRIC_DEFAULT".into(),
                    key_material_id: None,
                    verified: true,
                    created: true,
                    source: "file a.bin".into(),
                    wrapping_algorithm: "RSAES_OAEP_SHA_256".into(),
                    wrapping_key_spec: "RSA_4096".into(),
                    valid_to: "never".into(),
                    checks: vec![],
                    notes: vec![],
                    endpoint: String::new(),
                }),
            },
            BatchItem {
                label: "longer-name.pem".into(),
                short: "longer-name.pem".into(),
                result: Err(Error::new(ErrorKind::Material, "bad file")),
            },
        ];
        let t = table(&items);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("SOURCE           KEY SPEC"));
        assert!(lines[1].contains("imported, verified"));
        assert!(lines[2].contains("FAILED (Material)"));
        assert!(t.contains("longer-name.pem: bad file"));
    }
}
