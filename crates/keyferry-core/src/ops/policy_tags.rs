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
        let id = key.row_id();
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
        validate_tag_list(&req.tags)?;
        let ask = tag_conditions(Ask::none(), &req.tags);
        let id = self
            .key(cx, &req.key_id, &authz::TAG_RESOURCE, ask)
            .await?
            .row_id();
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
        validate_tag_keys(&req.tag_keys)?;
        let ask = Ask::none().with("aws:TagKeys", Value::Strings(req.tag_keys.clone()));
        let id = self
            .key(cx, &req.key_id, &authz::UNTAG_RESOURCE, ask)
            .await?
            .row_id();
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

/// The model's constraints on a tag list (`TagKeyType` 1..=128, `TagValueType` 0..=256), as
/// AWS's request validation words them: members are numbered from 1.
pub(crate) fn tag_violations(tags: &[Tag], out: &mut Vec<String>) {
    for (i, t) in tags.iter().enumerate() {
        let n = i + 1;
        let klen = t.tag_key.chars().count();
        if klen < 1 {
            out.push(format!(
                "Value '{}' at 'tags.{n}.member.tagKey' failed to satisfy constraint: Member must have length greater than or equal to 1",
                t.tag_key
            ));
        }
        if klen > 128 {
            out.push(format!(
                "Value '{}' at 'tags.{n}.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128",
                t.tag_key
            ));
        }
        if t.tag_value.chars().count() > 256 {
            out.push(format!(
                "Value '{}' at 'tags.{n}.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256",
                t.tag_value
            ));
        }
    }
}

/// `ValidationException` for a tag list that breaks the model's constraints.
pub(crate) fn validate_tag_list(tags: &[Tag]) -> Result<(), KmsError> {
    let mut out = Vec::new();
    tag_violations(tags, &mut out);
    match keyferry_types::coral_message(&out) {
        Some(m) => Err(KmsError::Validation(m)),
        None => Ok(()),
    }
}

/// The tag keys of UntagResource (`TagKeyType`, 1..=128 each).
fn validate_tag_keys(keys: &[String]) -> Result<(), KmsError> {
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let n = i + 1;
        let len = k.chars().count();
        if len < 1 {
            out.push(format!(
                "Value '{k}' at 'tagKeys.{n}.member' failed to satisfy constraint: Member must have length greater than or equal to 1"
            ));
        }
        if len > 128 {
            out.push(format!(
                "Value '{k}' at 'tagKeys.{n}.member' failed to satisfy constraint: Member must have length less than or equal to 128"
            ));
        }
    }
    match keyferry_types::coral_message(&out) {
        Some(m) => Err(KmsError::Validation(m)),
        None => Ok(()),
    }
}

/// True for a key in the reserved `aws:` namespace, in any letter case.
fn is_reserved(key: &str) -> bool {
    key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

/// Merge `new` tags into `existing`, enforcing AWS's tag rules (after `validate_tag_list`):
/// the reserved prefix, then duplicate keys in the request, then the 50-tag limit on the result.
pub(crate) fn check_tags(
    new: &[Tag],
    mut existing: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, KmsError> {
    validate_tag_list(new)?;
    if new.iter().any(|t| is_reserved(&t.tag_key)) {
        return Err(KmsError::Tag(
            "Tags beginning with aws: are reserved".into(),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    if !new.iter().all(|t| seen.insert(t.tag_key.as_str())) {
        return Err(KmsError::Tag("Duplicate tag keys".into()));
    }
    for t in new {
        existing.insert(t.tag_key.clone(), t.tag_value.clone());
    }
    if existing.len() > MAX_TAGS {
        return Err(KmsError::Tag("Too many tags".into()));
    }
    Ok(existing)
}
