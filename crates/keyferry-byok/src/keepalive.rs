//! `keyferry keep-alive`: keys imported with an expiry (KEY_MATERIAL_EXPIRES) stay usable when
//! the same material is imported again before `ValidTo`. This pass finds every key that
//! `keyferry import` created (its `keyferry:*` provenance tags, [`crate::provenance`]), and for
//! each one whose material expires within `--renew-within`, re-opens the recorded source (the
//! PKCS#11 URI with `KEYFERRY_PKCS11_PIN`, or the file) and re-imports into the same key for as
//! long as the first import asked (`keyferry:valid-for`). One pass (for cron), or `--every`.

use aws_sdk_kms::Client;
use aws_sdk_kms::types as kt;
use serde::Serialize;
use time::OffsetDateTime;

use crate::client::{Expiry, ImportRequest, SourceSpec, import, sdk_error};
use crate::error::{Error, Result};
use crate::provenance::{self, Recorded};
use crate::source::TokenOptions;
use crate::uri::Pkcs11Uri;

/// What happened to one key in a pass.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeepAliveItem {
    /// The key ARN.
    pub key_id: String,
    /// The recorded source.
    pub source: String,
    /// `renewed`, `expiring` (within the window, renewal failed), `unreachable` (the source
    /// could not be opened) or `ok` (expires later than the window).
    pub status: String,
    /// ValidTo after the pass (RFC 3339).
    pub valid_to: String,
    /// What went wrong, for expiring and unreachable keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The source a key's tags record.
pub fn source_of(r: &Recorded) -> Result<SourceSpec> {
    let src = provenance::tag(&r.tags, provenance::SOURCE).ok_or_else(|| {
        Error::usage(format!(
            "{} has no keyferry:source tag (the source was too long to record); re-import it by hand with --key-id",
            r.arn
        ))
    })?;
    match provenance::tag(&r.tags, provenance::SOURCE_KIND) {
        Some("file") => Ok(SourceSpec::File(src.into())),
        Some("pkcs11") => {
            let uri = Pkcs11Uri::parse(src)?;
            let (pin, _) = crate::uri::resolve_pin(&uri)?;
            Ok(SourceSpec::Token(
                Box::new(uri),
                TokenOptions {
                    pin: Some(pin),
                    ..TokenOptions::default()
                },
            ))
        }
        other => Err(Error::usage(format!(
            "{}: unknown keyferry:source-kind {}",
            r.arn,
            other.unwrap_or("(none)")
        ))),
    }
}

/// One pass over the endpoint's recorded keys.
pub async fn pass(client: &Client, renew_within: time::Duration) -> Result<Vec<KeepAliveItem>> {
    let keys = provenance::recorded_keys(client).await?;
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for r in keys {
        let d = client
            .describe_key()
            .key_id(&r.arn)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeKey", e))?;
        let Some(m) = d.key_metadata() else { continue };
        if m.expiration_model() != Some(&kt::ExpirationModelType::KeyMaterialExpires) {
            continue;
        }
        let Some(valid_to) = m
            .valid_to()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok())
        else {
            continue;
        };
        let source = provenance::tag(&r.tags, provenance::SOURCE)
            .unwrap_or("(not recorded)")
            .to_string();
        if valid_to - now > renew_within {
            out.push(KeepAliveItem {
                key_id: r.arn.clone(),
                source,
                status: "ok".into(),
                valid_to: rfc3339(valid_to),
                error: None,
            });
            continue;
        }
        let period = provenance::tag(&r.tags, provenance::VALID_FOR)
            .and_then(|s| s.parse::<i64>().ok())
            .map_or(time::Duration::days(30), time::Duration::seconds)
            .min(time::Duration::days(365));
        let next = (now + period).replace_nanosecond(0).unwrap_or(now + period);
        let spec = match source_of(&r) {
            Ok(s) => s,
            Err(e) => {
                out.push(KeepAliveItem {
                    key_id: r.arn.clone(),
                    source,
                    status: "unreachable".into(),
                    valid_to: rfc3339(valid_to),
                    error: Some(e.message().to_string()),
                });
                continue;
            }
        };
        let req = ImportRequest {
            key_id: Some(r.arn.clone()),
            key_spec: None,
            description: None,
            alias: None,
            expiry: Expiry::At(next),
            wrapping_algorithm: None,
            wrapping_key_spec: None,
            allow_duplicate: true,
        };
        match import(client, &spec, &req).await {
            Ok(_) => out.push(KeepAliveItem {
                key_id: r.arn.clone(),
                source,
                status: "renewed".into(),
                valid_to: rfc3339(next),
                error: None,
            }),
            Err(e) => {
                let status = match e.kind() {
                    crate::ErrorKind::Io
                    | crate::ErrorKind::Module
                    | crate::ErrorKind::TokenNotFound
                    | crate::ErrorKind::ObjectNotFound
                    | crate::ErrorKind::Pin => "unreachable",
                    _ => "expiring",
                };
                out.push(KeepAliveItem {
                    key_id: r.arn.clone(),
                    source,
                    status: status.into(),
                    valid_to: rfc3339(valid_to),
                    error: Some(e.message().to_string()),
                });
            }
        }
    }
    Ok(out)
}

/// The pass as text: what was renewed, what is about to expire, what could not be reached.
pub fn report(items: &[KeepAliveItem]) -> String {
    let mut s = String::new();
    let section = |s: &mut String, title: &str, status: &str| {
        let these: Vec<&KeepAliveItem> = items.iter().filter(|i| i.status == status).collect();
        if these.is_empty() {
            return;
        }
        s.push_str(&format!("{title} ({}):\n", these.len()));
        for i in these {
            s.push_str(&format!(
                "  {}  {}  valid to {}\n",
                i.key_id, i.source, i.valid_to
            ));
            if let Some(e) = &i.error {
                s.push_str(&format!("      {e}\n"));
            }
        }
    };
    section(&mut s, "Renewed", "renewed");
    section(&mut s, "About to expire, NOT renewed", "expiring");
    section(&mut s, "Source unreachable, NOT renewed", "unreachable");
    let ok = items.iter().filter(|i| i.status == "ok").count();
    s.push_str(&format!(
        "{} renewed, {} about to expire, {} unreachable, {ok} not due yet.\n",
        items.iter().filter(|i| i.status == "renewed").count(),
        items.iter().filter(|i| i.status == "expiring").count(),
        items.iter().filter(|i| i.status == "unreachable").count(),
    ));
    s
}
