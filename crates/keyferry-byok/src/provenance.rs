//! Where a KMS key's material came from, recorded as tags on the key when `keyferry import`
//! creates it, so that a rerun does not create a second KMS key for the same HSM key or file
//! (unless `--allow-duplicate`), and `keyferry keep-alive` can re-import the same material from
//! the same place before it expires.
//!
//! Tags (all `keyferry:`-prefixed; values at most 256 characters, as KMS allows):
//! `source-kind` (`pkcs11` or `file`), `source` (the PKCS#11 URI without PIN, or the file's
//! absolute path), `token` (label and serial), `object` and `object-id` (CKA_LABEL, CKA_ID hex),
//! `fingerprint` (`sha256:` of the public key's SubjectPublicKeyInfo for asymmetric keys;
//! `kmid:` + KeyMaterialId for symmetric and HMAC keys), `valid-for` (seconds, when the
//! material expires: keep-alive renews for as long again).

use aws_sdk_kms::Client;
use aws_sdk_kms::types as kt;

use crate::client::sdk_error;
use crate::error::{Error, ErrorKind, Result};

/// Tag keys.
pub const SOURCE_KIND: &str = "keyferry:source-kind";
/// The source (URI or absolute path).
pub const SOURCE: &str = "keyferry:source";
/// Token label and serial.
pub const TOKEN: &str = "keyferry:token";
/// CKA_LABEL.
pub const OBJECT: &str = "keyferry:object";
/// CKA_ID, hex.
pub const OBJECT_ID: &str = "keyferry:object-id";
/// Public key hash or KeyMaterialId.
pub const FINGERPRINT: &str = "keyferry:fingerprint";
/// Validity period in seconds.
pub const VALID_FOR: &str = "keyferry:valid-for";

/// The tags of one key, as (key, value) pairs.
pub type Tags = Vec<(String, String)>;

/// Look up a tag.
pub fn tag<'a>(tags: &'a Tags, key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A value cut to KMS's 256-character limit (None when it does not fit: better no tag than a
/// wrong one).
pub fn fit(v: &str) -> Option<String> {
    (v.chars().count() <= 256).then(|| v.to_string())
}

/// Build the SDK tag list.
pub fn sdk_tags(tags: &Tags) -> Result<Vec<kt::Tag>> {
    tags.iter()
        .map(|(k, v)| {
            kt::Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot build a tag: {e}")))
        })
        .collect()
}

/// A KMS key with provenance tags.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The key ARN.
    pub arn: String,
    /// Its keyferry tags.
    pub tags: Tags,
}

/// Every key at the endpoint that carries `keyferry:source-kind` (keys pending deletion
/// excluded), with its keyferry tags.
pub async fn recorded_keys(client: &Client) -> Result<Vec<Recorded>> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut req = client.list_keys().limit(1000);
        if let Some(m) = &marker {
            req = req.marker(m);
        }
        let page = req.send().await.map_err(|e| sdk_error("ListKeys", e))?;
        for k in page.keys() {
            let Some(arn) = k.key_arn().or(k.key_id()) else {
                continue;
            };
            let tags = match client.list_resource_tags().key_id(arn).send().await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(
                        "ListResourceTags {arn}: {}",
                        sdk_error("ListResourceTags", e)
                    );
                    continue;
                }
            };
            let tags: Tags = tags
                .tags()
                .iter()
                .filter(|t| t.tag_key().starts_with("keyferry:"))
                .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
                .collect();
            if tag(&tags, SOURCE_KIND).is_none() {
                continue;
            }
            let state = client
                .describe_key()
                .key_id(arn)
                .send()
                .await
                .ok()
                .and_then(|d| d.key_metadata().and_then(|m| m.key_state().cloned()));
            if state == Some(kt::KeyState::PendingDeletion) {
                continue;
            }
            out.push(Recorded {
                arn: arn.to_string(),
                tags,
            });
        }
        if page.truncated() {
            marker = page.next_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        } else {
            break;
        }
    }
    Ok(out)
}

/// The recorded key that holds the same material as `tags` describe: same fingerprint, or
/// the same token object (token + object id, else label), or the same file.
pub fn find_duplicate<'a>(known: &'a [Recorded], tags: &Tags) -> Option<&'a Recorded> {
    let same = |a: &Tags, k: &str| tag(a, k).is_some_and(|v| tag(tags, k) == Some(v));
    known.iter().find(|r| {
        same(&r.tags, FINGERPRINT)
            || (tag(tags, SOURCE_KIND) == Some("pkcs11")
                && same(&r.tags, TOKEN)
                && (same(&r.tags, OBJECT_ID)
                    || (tag(tags, OBJECT_ID).is_none() && same(&r.tags, OBJECT))))
            || (tag(tags, SOURCE_KIND) == Some("file") && same(&r.tags, SOURCE))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn duplicates_are_found_by_fingerprint_token_object_or_file() {
        let known = vec![
            Recorded {
                arn: "k1".into(),
                tags: t(&[
                    (SOURCE_KIND, "pkcs11"),
                    (TOKEN, "prod (serial 1)"),
                    (OBJECT, "aes"),
                    (OBJECT_ID, "01"),
                ]),
            },
            Recorded {
                arn: "k2".into(),
                tags: t(&[
                    (SOURCE_KIND, "file"),
                    (SOURCE, "/k/ec.pem"),
                    (FINGERPRINT, "sha256:ab"),
                ]),
            },
        ];
        let same_obj = t(&[
            (SOURCE_KIND, "pkcs11"),
            (TOKEN, "prod (serial 1)"),
            (OBJECT, "renamed"),
            (OBJECT_ID, "01"),
        ]);
        assert_eq!(find_duplicate(&known, &same_obj).unwrap().arn, "k1");
        let other_token = t(&[
            (SOURCE_KIND, "pkcs11"),
            (TOKEN, "test (serial 2)"),
            (OBJECT_ID, "01"),
        ]);
        assert!(find_duplicate(&known, &other_token).is_none());
        let same_key_elsewhere = t(&[
            (SOURCE_KIND, "pkcs11"),
            (TOKEN, "x"),
            (FINGERPRINT, "sha256:ab"),
        ]);
        assert_eq!(
            find_duplicate(&known, &same_key_elsewhere).unwrap().arn,
            "k2"
        );
        let same_file = t(&[(SOURCE_KIND, "file"), (SOURCE, "/k/ec.pem")]);
        assert_eq!(find_duplicate(&known, &same_file).unwrap().arn, "k2");
        assert!(fit(&"x".repeat(257)).is_none());
    }
}
