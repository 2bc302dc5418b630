//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use keyferry_types::*;

use super::{not_pending_deletion, ts, validation};
use crate::KmsError;
use crate::authz::{self, Ask};
use crate::context::RequestContext;
use crate::kms::Kms;
use crate::record::{alias_arn, key_id_of_row};
use crate::store::{AliasRow, StoreError};

impl Kms {
    pub async fn create_alias(
        &self,
        cx: &RequestContext,
        req: CreateAliasRequest,
    ) -> Result<(), KmsError> {
        check_alias_name(&req.alias_name)?;
        let (account, region) = (cx.account(), cx.region.as_str());
        let target = self
            .key(cx, &req.target_key_id, &authz::CREATE_ALIAS, Ask::none())
            .await?;
        self.authorize_identity(
            cx,
            "kms:CreateAlias",
            &alias_arn(region, account, &req.alias_name),
            Ask::none(),
        )?;
        not_pending_deletion(&target)?;
        let now = self.now_ms();
        let row = AliasRow {
            account: account.to_string(),
            region: region.to_string(),
            name: req.alias_name.clone(),
            target_key_id: target.row_id(),
            creation_ms: now,
            last_updated_ms: now,
        };
        match self.store.insert_alias(&row).await {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists) => Err(KmsError::AlreadyExists(format!(
                "An alias with the name {} already exists",
                alias_arn(region, account, &req.alias_name)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn update_alias(
        &self,
        cx: &RequestContext,
        req: UpdateAliasRequest,
    ) -> Result<(), KmsError> {
        check_alias_name(&req.alias_name)?;
        let (account, region) = (cx.account(), cx.region.as_str());
        let target = self
            .key(cx, &req.target_key_id, &authz::UPDATE_ALIAS, Ask::none())
            .await?;
        not_pending_deletion(&target)?;
        let Some(current) = self
            .store
            .get_alias(account, region, &req.alias_name)
            .await?
        else {
            return Err(alias_not_found(cx, &req.alias_name));
        };
        self.authorize_identity(
            cx,
            "kms:UpdateAlias",
            &alias_arn(region, account, &req.alias_name),
            Ask::none(),
        )?;
        if let Ok(old) = self.load(&current.target_key_id).await {
            self.authorize(cx, &old, &authz::UPDATE_ALIAS, &Ask::none())
                .await?;
            if old.key_spec != target.key_spec || old.key_usage != target.key_usage {
                return Err(validation(format!(
                    "Alias {} cannot be changed to a key of another key spec or key usage.",
                    alias_arn(region, account, &req.alias_name)
                )));
            }
        }
        self.forget_alias(account, region, &req.alias_name);
        if !self
            .store
            .update_alias(
                account,
                region,
                &req.alias_name,
                &target.row_id(),
                self.now_ms(),
            )
            .await?
        {
            return Err(alias_not_found(cx, &req.alias_name));
        }
        Ok(())
    }

    pub async fn delete_alias(
        &self,
        cx: &RequestContext,
        req: DeleteAliasRequest,
    ) -> Result<(), KmsError> {
        check_alias_name(&req.alias_name)?;
        let (account, region) = (cx.account(), cx.region.as_str());
        let Some(current) = self
            .store
            .get_alias(account, region, &req.alias_name)
            .await?
        else {
            return Err(alias_not_found(cx, &req.alias_name));
        };
        self.authorize_identity(
            cx,
            "kms:DeleteAlias",
            &alias_arn(region, account, &req.alias_name),
            Ask::none(),
        )?;
        if let Ok(key) = self.load(&current.target_key_id).await {
            self.authorize(cx, &key, &authz::DELETE_ALIAS, &Ask::none())
                .await?;
        }
        self.forget_alias(account, region, &req.alias_name);
        if !self
            .store
            .delete_alias(account, region, &req.alias_name)
            .await?
        {
            return Err(alias_not_found(cx, &req.alias_name));
        }
        Ok(())
    }

    pub async fn list_aliases(
        &self,
        cx: &RequestContext,
        req: ListAliasesRequest,
    ) -> Result<ListAliasesResponse, KmsError> {
        self.authorize_identity(cx, "kms:ListAliases", "*", Ask::none())?;
        let (account, region) = (cx.account(), cx.region.as_str());
        let key_id = match &req.key_id {
            Some(k) => {
                let id = self.resolve_id(cx, k, false).await?.0;
                // A multi-Region key's aliases target its member in this Region.
                match self.load_member(region, &id).await {
                    Ok(rec) if rec.region == region => Some(rec.row_id()),
                    _ => Some(id),
                }
            }
            None => None,
        };
        let limit = req.limit.unwrap_or(100) as u32;
        if let Some(m) = &req.marker
            && !m.starts_with("alias/")
        {
            return Err(KmsError::InvalidMarker(
                "Could not deserialize marker".into(),
            ));
        }
        let fetched = self
            .store
            .list_aliases(
                account,
                region,
                key_id.as_deref(),
                req.marker.as_deref(),
                limit + 1,
            )
            .await?;
        // The predefined aliases of AWS managed keys not created yet are listed too, without a
        // target, as AWS lists them (`managed.rs`). A predefined name past the last row fetched
        // of a full page may exist in the store; it belongs to a later page either way.
        let full = fetched.len() > limit as usize;
        let bound = fetched.last().map(|r| r.name.clone());
        let mut entries: Vec<(String, Option<AliasRow>)> = fetched
            .into_iter()
            .map(|r| (r.name.clone(), Some(r)))
            .collect();
        if key_id.is_none() {
            for svc in crate::managed::SERVICES {
                let name = svc.alias();
                let after_marker = req.marker.as_deref().is_none_or(|m| name.as_str() > m);
                let within = !full || bound.as_deref().is_some_and(|b| name.as_str() < b);
                if after_marker && within && !entries.iter().any(|(n, _)| *n == name) {
                    entries.push((name, None));
                }
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let truncated = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        Ok(ListAliasesResponse {
            next_marker: if truncated {
                entries.last().map(|(n, _)| n.clone())
            } else {
                None
            },
            aliases: Some(
                entries
                    .into_iter()
                    .map(|(name, row)| match row {
                        Some(r) => AliasListEntry {
                            alias_arn: Some(alias_arn(region, account, &r.name)),
                            alias_name: Some(r.name),
                            target_key_id: Some(key_id_of_row(&r.target_key_id).to_string()),
                            creation_date: Some(ts(r.creation_ms)),
                            last_updated_date: Some(ts(r.last_updated_ms)),
                        },
                        None => AliasListEntry {
                            alias_arn: Some(alias_arn(region, account, &name)),
                            alias_name: Some(name),
                            target_key_id: None,
                            creation_date: None,
                            last_updated_date: None,
                        },
                    })
                    .collect(),
            ),
            truncated: Some(truncated),
        })
    }
}

fn alias_not_found(cx: &RequestContext, alias: &str) -> KmsError {
    KmsError::NotFound(format!(
        "Alias {} is not found.",
        alias_arn(&cx.region, cx.account(), alias)
    ))
}

fn check_alias_name(name: &str) -> Result<(), KmsError> {
    if !name.starts_with("alias/") {
        return Err(validation(
            "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
        ));
    }
    if name.len() <= "alias/".len()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b))
    {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
        )));
    }
    if name.starts_with("alias/aws/") {
        return Err(KmsError::InvalidAliasName(format!(
            "Alias names starting with alias/aws/ are reserved for AWS managed keys: {name}"
        )));
    }
    Ok(())
}
