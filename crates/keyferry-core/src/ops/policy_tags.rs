//! Key policies (stored and returned; not yet enforced) and tags.

use std::collections::BTreeMap;

use keyferry_types::*;

use super::not_pending_deletion;
use crate::KmsError;
use crate::kms::Kms;

const MAX_TAGS: usize = 50;

impl Kms {
    pub async fn get_key_policy(
        &self,
        req: GetKeyPolicyRequest,
    ) -> Result<GetKeyPolicyResponse, KmsError> {
        let name = req.policy_name.unwrap_or_else(|| "default".into());
        let rec = self.resolve(&req.key_id, false).await?;
        check_policy_name(&name)?;
        Ok(GetKeyPolicyResponse {
            policy: Some(rec.policy.clone()),
            policy_name: Some(name),
        })
    }

    pub async fn put_key_policy(&self, req: PutKeyPolicyRequest) -> Result<(), KmsError> {
        let id = self.resolve_id(&req.key_id, false).await?;
        check_policy_name(req.policy_name.as_deref().unwrap_or("default"))?;
        check_policy(&req.policy)?;
        self.mutate(&id, |rec| {
            not_pending_deletion(rec)?;
            rec.policy = req.policy.clone();
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn list_key_policies(
        &self,
        req: ListKeyPoliciesRequest,
    ) -> Result<ListKeyPoliciesResponse, KmsError> {
        self.resolve(&req.key_id, false).await?;
        Ok(ListKeyPoliciesResponse {
            policy_names: Some(vec!["default".into()]),
            next_marker: None,
            truncated: Some(false),
        })
    }

    pub async fn tag_resource(&self, req: TagResourceRequest) -> Result<(), KmsError> {
        let id = self.resolve_id(&req.key_id, false).await?;
        self.mutate(&id, |rec| {
            not_pending_deletion(rec)?;
            rec.tags = check_tags(&req.tags, rec.tags.clone())?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn untag_resource(&self, req: UntagResourceRequest) -> Result<(), KmsError> {
        let id = self.resolve_id(&req.key_id, false).await?;
        self.mutate(&id, |rec| {
            not_pending_deletion(rec)?;
            for k in &req.tag_keys {
                rec.tags.remove(k);
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn list_resource_tags(
        &self,
        req: ListResourceTagsRequest,
    ) -> Result<ListResourceTagsResponse, KmsError> {
        let rec = self.resolve(&req.key_id, false).await?;
        let limit = req.limit.unwrap_or(50) as usize;
        let after = req.marker.as_deref();
        let mut tags: Vec<Tag> = rec
            .tags
            .iter()
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit + 1)
            .map(|(k, v)| Tag {
                tag_key: k.clone(),
                tag_value: v.clone(),
            })
            .collect();
        let truncated = tags.len() > limit;
        tags.truncate(limit);
        Ok(ListResourceTagsResponse {
            next_marker: if truncated {
                tags.last().map(|t| t.tag_key.clone())
            } else {
                None
            },
            tags: Some(tags),
            truncated: Some(truncated),
        })
    }
}

fn check_policy_name(name: &str) -> Result<(), KmsError> {
    if name == "default" {
        Ok(())
    } else {
        Err(KmsError::NotFound(format!("Policy {name} does not exist.")))
    }
}

/// A key policy must be a JSON object with a `Statement`.
pub(crate) fn check_policy(policy: &str) -> Result<(), KmsError> {
    let v: serde_json::Value = serde_json::from_str(policy).map_err(|_| {
        KmsError::MalformedPolicyDocument("The new key policy is not valid JSON.".into())
    })?;
    match v.as_object() {
        Some(o) if o.contains_key("Statement") => Ok(()),
        _ => Err(KmsError::MalformedPolicyDocument(
            "The new key policy must be a JSON object with a Statement.".into(),
        )),
    }
}

/// Merge `new` tags into `existing`, enforcing AWS's tag rules.
pub(crate) fn check_tags(
    new: &[Tag],
    mut existing: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, KmsError> {
    for t in new {
        let klen = t.tag_key.chars().count();
        if klen == 0 || klen > 128 {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{}' at 'tags.member.tagKey' failed to satisfy constraint: Member must have length between 1 and 128",
                t.tag_key
            )));
        }
        if t.tag_value.chars().count() > 256 {
            return Err(KmsError::Validation(
                "1 validation error detected: Value at 'tags.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256".into(),
            ));
        }
        if t.tag_key.starts_with("aws:") {
            return Err(KmsError::Tag(
                "Tags beginning with aws: are reserved.".into(),
            ));
        }
        existing.insert(t.tag_key.clone(), t.tag_value.clone());
    }
    if existing.len() > MAX_TAGS {
        return Err(KmsError::Tag(format!(
            "A key can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(existing)
}
