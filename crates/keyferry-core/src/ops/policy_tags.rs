//! Key policies (validated, then enforced by `authz.rs`) and tags.

use std::collections::BTreeMap;

use keyferry_types::*;

use super::not_pending_deletion;
use crate::KmsError;
use crate::authz::{self, Ask};
use crate::context::RequestContext;
use crate::kms::Kms;
use keyferry_policy::Value;

const MAX_TAGS: usize = 50;

impl Kms {
    pub async fn get_key_policy(
        &self,
        cx: &RequestContext,
        req: GetKeyPolicyRequest,
    ) -> Result<GetKeyPolicyResponse, KmsError> {
        let name = req.policy_name.unwrap_or_else(|| "default".into());
        let rec = self
            .key(cx, &req.key_id, &authz::GET_KEY_POLICY, Ask::none())
            .await?;
        check_policy_name(&name)?;
        Ok(GetKeyPolicyResponse {
            policy: Some(rec.policy.clone()),
            policy_name: Some(name),
        })
    }

    pub async fn put_key_policy(
        &self,
        cx: &RequestContext,
        req: PutKeyPolicyRequest,
    ) -> Result<(), KmsError> {
        let bypass = req.bypass_policy_lockout_safety_check.unwrap_or(false);
        let ask = Ask::none().with("kms:BypassPolicyLockoutSafetyCheck", Value::Bool(bypass));
        let key = self
            .key(cx, &req.key_id, &authz::PUT_KEY_POLICY, ask)
            .await?;
        let id = key.key_id.clone();
        check_policy_name(req.policy_name.as_deref().unwrap_or("default"))?;
        let compiled = self.parse_key_policy(&req.policy)?;
        if !bypass {
            self.check_lockout(cx, &compiled, &key.arn())?;
        }
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
        cx: &RequestContext,
        req: ListKeyPoliciesRequest,
    ) -> Result<ListKeyPoliciesResponse, KmsError> {
        self.key(cx, &req.key_id, &authz::LIST_KEY_POLICIES, Ask::none())
            .await?;
        Ok(ListKeyPoliciesResponse {
            policy_names: Some(vec!["default".into()]),
            next_marker: None,
            truncated: Some(false),
        })
    }

    pub async fn tag_resource(
        &self,
        cx: &RequestContext,
        req: TagResourceRequest,
    ) -> Result<(), KmsError> {
        let ask = tag_conditions(Ask::none(), &req.tags);
        let id = self
            .key(cx, &req.key_id, &authz::TAG_RESOURCE, ask)
            .await?
            .key_id
            .clone();
        self.mutate(&id, |rec| {
            not_pending_deletion(rec)?;
            rec.tags = check_tags(&req.tags, rec.tags.clone())?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn untag_resource(
        &self,
        cx: &RequestContext,
        req: UntagResourceRequest,
    ) -> Result<(), KmsError> {
        let ask = Ask::none().with("aws:TagKeys", Value::Strings(req.tag_keys.clone()));
        let id = self
            .key(cx, &req.key_id, &authz::UNTAG_RESOURCE, ask)
            .await?
            .key_id
            .clone();
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
        cx: &RequestContext,
        req: ListResourceTagsRequest,
    ) -> Result<ListResourceTagsResponse, KmsError> {
        let rec = self
            .key(cx, &req.key_id, &authz::LIST_RESOURCE_TAGS, Ask::none())
            .await?;
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

/// `aws:RequestTag/<k>` and `aws:TagKeys` for a request that sets tags.
pub(crate) fn tag_conditions<'a>(mut ask: Ask<'a>, tags: &[Tag]) -> Ask<'a> {
    if tags.is_empty() {
        return ask;
    }
    for t in tags {
        ask = ask.with(
            format!("aws:RequestTag/{}", t.tag_key),
            Value::String(t.tag_value.clone()),
        );
    }
    ask.with(
        "aws:TagKeys",
        Value::Strings(tags.iter().map(|t| t.tag_key.clone()).collect()),
    )
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
