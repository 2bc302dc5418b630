//! Authorization: the one place that decides whether a caller may perform an operation, with
//! AWS KMS's evaluation logic. The policy language itself is `keyferry-policy` (no I/O); this
//! module gathers the inputs (key policy, the caller's identity policies, grants, condition
//! keys) and combines the answers:
//!
//! 1. an explicit `Deny` in the key policy or an identity policy denies;
//! 2. same account: the key policy allows the caller directly, or it allows the caller's
//!    account principal (delegation to IAM) and the caller's identity policy allows (the root
//!    user needs no identity policy), or a grant allows;
//! 3. another account's key: only for the operations AWS allows across accounts, and only when
//!    the key policy allows (the caller or its account) and the caller's identity policy allows,
//!    or a grant allows;
//! 4. otherwise `AccessDeniedException` with AWS's reason.
//!
//! Key policies are compiled once per key-record version (`KeyRecord::compiled_policy`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use keyferry_policy::{Caller, Context, Evaluation, Policy, PolicyKind, Request, Value};

use crate::KmsError;
use crate::context::{PrincipalKind, RequestContext};
use crate::kms::Kms;
use crate::record::KeyRecord;

/// What an operation asks of its key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    /// The IAM action, `kms:<Operation>`.
    pub action: &'static str,
    /// `KeyId` may be an alias name or alias ARN.
    pub alias: bool,
    /// AWS allows the operation on a key in another account (by key ARN or alias ARN).
    pub cross_account: bool,
    /// The grant operation that can authorize it, if any.
    pub grant: Option<&'static str>,
}

const fn crypto(action: &'static str, grant: &'static str) -> Access {
    Access {
        action,
        alias: true,
        cross_account: true,
        grant: Some(grant),
    }
}

const fn admin(action: &'static str) -> Access {
    Access {
        action,
        alias: false,
        cross_account: false,
        grant: None,
    }
}

pub(crate) const ENCRYPT: Access = crypto("kms:Encrypt", "Encrypt");
pub(crate) const DECRYPT: Access = crypto("kms:Decrypt", "Decrypt");
pub(crate) const RE_ENCRYPT_FROM: Access = crypto("kms:ReEncryptFrom", "ReEncryptFrom");
pub(crate) const RE_ENCRYPT_TO: Access = crypto("kms:ReEncryptTo", "ReEncryptTo");
pub(crate) const GENERATE_DATA_KEY: Access = crypto("kms:GenerateDataKey", "GenerateDataKey");
pub(crate) const GENERATE_DATA_KEY_WITHOUT_PLAINTEXT: Access = crypto(
    "kms:GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
);
pub(crate) const GENERATE_DATA_KEY_PAIR: Access =
    crypto("kms:GenerateDataKeyPair", "GenerateDataKeyPair");
pub(crate) const GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT: Access = crypto(
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyPairWithoutPlaintext",
);
pub(crate) const SIGN: Access = crypto("kms:Sign", "Sign");
pub(crate) const VERIFY: Access = crypto("kms:Verify", "Verify");
pub(crate) const GENERATE_MAC: Access = crypto("kms:GenerateMac", "GenerateMac");
pub(crate) const VERIFY_MAC: Access = crypto("kms:VerifyMac", "VerifyMac");
pub(crate) const GET_PUBLIC_KEY: Access = crypto("kms:GetPublicKey", "GetPublicKey");
pub(crate) const DERIVE_SHARED_SECRET: Access =
    crypto("kms:DeriveSharedSecret", "DeriveSharedSecret");
pub(crate) const DESCRIBE_KEY: Access = crypto("kms:DescribeKey", "DescribeKey");
pub(crate) const GET_KEY_ROTATION_STATUS: Access = Access {
    action: "kms:GetKeyRotationStatus",
    alias: false,
    cross_account: true,
    grant: None,
};
pub(crate) const CREATE_GRANT: Access = Access {
    action: "kms:CreateGrant",
    alias: false,
    cross_account: true,
    grant: Some("CreateGrant"),
};
pub(crate) const LIST_GRANTS: Access = Access {
    action: "kms:ListGrants",
    alias: false,
    cross_account: true,
    grant: None,
};
pub(crate) const REVOKE_GRANT: Access = Access {
    action: "kms:RevokeGrant",
    alias: false,
    cross_account: true,
    grant: None,
};
pub(crate) const RETIRE_GRANT: Access = Access {
    action: "kms:RetireGrant",
    alias: false,
    cross_account: true,
    grant: Some("RetireGrant"),
};
pub(crate) const ENABLE_KEY: Access = admin("kms:EnableKey");
pub(crate) const DISABLE_KEY: Access = admin("kms:DisableKey");
pub(crate) const SCHEDULE_KEY_DELETION: Access = admin("kms:ScheduleKeyDeletion");
pub(crate) const CANCEL_KEY_DELETION: Access = admin("kms:CancelKeyDeletion");
pub(crate) const UPDATE_KEY_DESCRIPTION: Access = admin("kms:UpdateKeyDescription");
pub(crate) const GET_KEY_POLICY: Access = admin("kms:GetKeyPolicy");
pub(crate) const PUT_KEY_POLICY: Access = admin("kms:PutKeyPolicy");
pub(crate) const LIST_KEY_POLICIES: Access = admin("kms:ListKeyPolicies");
pub(crate) const TAG_RESOURCE: Access = admin("kms:TagResource");
pub(crate) const UNTAG_RESOURCE: Access = admin("kms:UntagResource");
pub(crate) const LIST_RESOURCE_TAGS: Access = admin("kms:ListResourceTags");
pub(crate) const ENABLE_KEY_ROTATION: Access = admin("kms:EnableKeyRotation");
pub(crate) const DISABLE_KEY_ROTATION: Access = admin("kms:DisableKeyRotation");
pub(crate) const ROTATE_KEY_ON_DEMAND: Access = admin("kms:RotateKeyOnDemand");
pub(crate) const LIST_KEY_ROTATIONS: Access = admin("kms:ListKeyRotations");
pub(crate) const GET_PARAMETERS_FOR_IMPORT: Access = admin("kms:GetParametersForImport");
pub(crate) const IMPORT_KEY_MATERIAL: Access = admin("kms:ImportKeyMaterial");
pub(crate) const DELETE_IMPORTED_KEY_MATERIAL: Access = admin("kms:DeleteImportedKeyMaterial");
pub(crate) const CREATE_ALIAS: Access = admin("kms:CreateAlias");
pub(crate) const UPDATE_ALIAS: Access = admin("kms:UpdateAlias");
pub(crate) const DELETE_ALIAS: Access = admin("kms:DeleteAlias");
pub(crate) const GET_KEY_LAST_USAGE: Access = admin("kms:GetKeyLastUsage");
pub(crate) const REPLICATE_KEY: Access = admin("kms:ReplicateKey");
pub(crate) const UPDATE_PRIMARY_REGION: Access = admin("kms:UpdatePrimaryRegion");

/// The request-specific inputs of one authorization: condition keys from the request, the
/// encryption context (for `kms:EncryptionContext:*` and grant constraints), grant tokens, and
/// the alias the caller named (`kms:RequestAlias`).
#[derive(Default)]
pub(crate) struct Ask<'a> {
    pub conditions: Vec<(Cow<'static, str>, Value)>,
    pub encryption_context: Option<&'a BTreeMap<String, String>>,
    pub grant_tokens: Option<&'a [String]>,
    pub request_alias: Option<String>,
    /// CreateGrant: the grant asked for, which a grant with CreateGrant must cover (`grant_allows`).
    pub create_grant: Option<&'a crate::ops::ChildGrant>,
}

impl<'a> Ask<'a> {
    pub fn none() -> Ask<'a> {
        Ask::default()
    }

    pub fn with(mut self, key: impl Into<Cow<'static, str>>, value: Value) -> Ask<'a> {
        self.conditions.push((key.into(), value));
        self
    }

    pub fn string(self, key: &'static str, value: impl std::fmt::Display) -> Ask<'a> {
        self.with(key, Value::String(value.to_string()))
    }

    pub fn context(mut self, ec: Option<&'a BTreeMap<String, String>>) -> Ask<'a> {
        self.encryption_context = ec;
        self
    }

    pub fn tokens(mut self, tokens: Option<&'a [String]>) -> Ask<'a> {
        self.grant_tokens = tokens;
        self
    }
}

/// A key policy compiled for evaluation, cached on its key record.
pub struct CompiledKeyPolicy {
    policy: Option<Policy>,
    /// The policy is exactly the default key policy of this account: the account's root is
    /// allowed everything without evaluating anything.
    default_root_of: Option<String>,
    /// The policy reads `kms:ResourceAliases`, so the key's aliases must be looked up.
    needs_aliases: bool,
}

impl CompiledKeyPolicy {
    pub fn compile(rec: &KeyRecord) -> CompiledKeyPolicy {
        let default = crate::ops::default_policy_for(&rec.account);
        let policy = match Policy::parse(&rec.policy, PolicyKind::Resource) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(key = %rec.key_id, error = %e.message, "stored key policy does not parse; it allows nothing");
                None
            }
        };
        CompiledKeyPolicy {
            default_root_of: (rec.policy == default).then(|| rec.account.clone()),
            needs_aliases: rec
                .policy
                .to_ascii_lowercase()
                .contains("kms:resourcealiases"),
            policy,
        }
    }
}

/// Which kind of policy failed to allow, for AWS's AccessDenied wording.
enum Reason {
    NoResourcePolicy,
    NoIdentityPolicy,
    ExplicitDenyResource,
    ExplicitDenyIdentity,
}

fn denied(ctx: &RequestContext, action: &str, resource: &str, reason: Reason) -> KmsError {
    let who = &ctx.principal.arn;
    let why = match reason {
        Reason::NoResourcePolicy => {
            format!("because no resource-based policy allows the {action} action")
        }
        Reason::NoIdentityPolicy => {
            format!("because no identity-based policy allows the {action} action")
        }
        Reason::ExplicitDenyResource => {
            "with an explicit deny in a resource-based policy".to_string()
        }
        Reason::ExplicitDenyIdentity => {
            "with an explicit deny in an identity-based policy".to_string()
        }
    };
    KmsError::AccessDenied(format!(
        "User: {who} is not authorized to perform: {action} on resource: {resource} {why}"
    ))
}

/// Run `f` with the caller as policies match it: its ARNs most specific first (the session ARN,
/// then the role ARN for a role session), its account and service. No allocation but the role
/// ARN of a session.
fn with_caller<R>(ctx: &RequestContext, f: impl FnOnce(Caller<'_>) -> R) -> R {
    let p = &ctx.principal;
    let role = p.role_arn();
    let arns: [&str; 2] = [p.arn.as_str(), role.as_deref().unwrap_or("")];
    let n = if role.is_some() { 2 } else { 1 };
    f(Caller {
        arns: &arns[..n],
        account: &p.account,
        service: p.service.as_deref(),
    })
}

impl Kms {
    /// The condition keys every request carries (global keys and the caller's).
    fn base_context(&self, ctx: &RequestContext) -> Context {
        let p = &ctx.principal;
        let mut c = Context::new();
        c.set("aws:PrincipalArn", Value::String(p.principal_arn()));
        c.set("aws:PrincipalAccount", Value::String(p.account.clone()));
        c.set("kms:CallerAccount", Value::String(p.account.clone()));
        c.set(
            "aws:PrincipalType",
            Value::String(
                match p.kind {
                    PrincipalKind::Root => "Account",
                    PrincipalKind::User { .. } => "User",
                    PrincipalKind::AssumedRole { .. } => "AssumedRole",
                }
                .into(),
            ),
        );
        c.set("aws:userid", Value::String(p.user_id.clone()));
        if let Some(name) = p.user_name() {
            c.set("aws:username", Value::String(name.to_string()));
        }
        let now = self.now_ms();
        c.set("aws:CurrentTime", Value::Date(now));
        c.set("aws:EpochTime", Value::Number((now / 1000) as f64));
        c.set("aws:SecureTransport", Value::Bool(ctx.secure_transport));
        c.set("aws:RequestedRegion", Value::String(ctx.region.clone()));
        if let Some(service) = &p.service {
            let prefix = service.strip_suffix(".amazonaws.com").unwrap_or(service);
            c.set(
                "kms:ViaService",
                Value::String(format!("{prefix}.{}.amazonaws.com", ctx.region)),
            );
            c.set("aws:CalledVia", Value::Strings(vec![service.clone()]));
            c.set("aws:ViaAWSService", Value::Bool(true));
        } else {
            c.set("aws:ViaAWSService", Value::Bool(false));
            if let Some(ip) = ctx.source_ip {
                c.set("aws:SourceIp", Value::Ip(ip));
            }
        }
        if let Some(ua) = &ctx.user_agent {
            c.set("aws:UserAgent", Value::String(ua.to_string()));
        }
        c
    }

    /// Condition keys describing the key (key-resource operations only).
    async fn key_context(
        &self,
        c: &mut Context,
        rec: &KeyRecord,
        compiled: &CompiledKeyPolicy,
    ) -> Result<(), KmsError> {
        c.set("kms:KeySpec", Value::String(rec.key_spec.to_string()));
        c.set(
            "kms:CustomerMasterKeySpec",
            Value::String(rec.key_spec.to_string()),
        );
        c.set("kms:KeyUsage", Value::String(rec.key_usage.to_string()));
        c.set(
            "kms:CustomerMasterKeyUsage",
            Value::String(rec.key_usage.to_string()),
        );
        c.set("kms:KeyOrigin", Value::String(rec.origin.to_string()));
        c.set("kms:MultiRegion", Value::Bool(rec.multi_region));
        if rec.multi_region {
            let kind = if rec.is_replica() {
                "REPLICA"
            } else {
                "PRIMARY"
            };
            c.set("kms:MultiRegionKeyType", Value::String(kind.into()));
        }
        for (k, v) in &rec.tags {
            c.set(&format!("aws:ResourceTag/{k}"), Value::String(v.clone()));
        }
        if compiled.needs_aliases {
            let aliases = self
                .store
                .list_aliases(&rec.account, &rec.region, Some(&rec.row_id()), None, 1000)
                .await?;
            c.set(
                "kms:ResourceAliases",
                Value::Strings(aliases.into_iter().map(|a| a.name).collect()),
            );
        }
        Ok(())
    }

    fn request_context(c: &mut Context, ask: &Ask<'_>) {
        for (k, v) in &ask.conditions {
            c.set(k, v.clone());
        }
        if let Some(ec) = ask.encryption_context {
            let mut keys: Vec<String> = ec.keys().cloned().collect();
            keys.sort();
            for (k, v) in ec {
                c.set(
                    &format!("kms:EncryptionContext:{k}"),
                    Value::String(v.clone()),
                );
            }
            c.set("kms:EncryptionContextKeys", Value::Strings(keys));
        }
        if let Some(alias) = &ask.request_alias {
            c.set("kms:RequestAlias", Value::String(alias.clone()));
        }
    }

    /// Evaluate the caller's identity-based policies (and session policy) for `action` on
    /// `resource`: (explicit deny, allowed).
    fn identity_decision(
        &self,
        ctx: &RequestContext,
        caller: &Caller<'_>,
        action: &str,
        resource: &str,
        c: &Context,
    ) -> (bool, bool) {
        let p = &ctx.principal;
        let mut deny = false;
        let mut allow = p.is_root();
        for policy in p.identity_policies.iter() {
            let e = policy.evaluate(&Request {
                caller: *caller,
                action,
                resource,
                context: c,
            });
            deny |= e.explicit_deny;
            allow |= e.allow_direct || e.allow_account;
        }
        if let Some(session) = &p.session_policy {
            let e = session.evaluate(&Request {
                caller: *caller,
                action,
                resource,
                context: c,
            });
            deny |= e.explicit_deny;
            allow &= e.allow_direct || e.allow_account;
        }
        (deny, allow)
    }

    /// Authorize an operation that acts on no key (CreateKey, ListKeys, ListAliases,
    /// GenerateRandom, ListRetirableGrants): only the caller's identity policies decide.
    pub(crate) fn authorize_account(
        &self,
        ctx: &RequestContext,
        action: &'static str,
        ask: Ask<'_>,
    ) -> Result<(), KmsError> {
        self.authorize_identity(ctx, action, "*", ask)
    }

    /// Authorize `action` on `resource` (an alias ARN, or `*`) by the caller's identity
    /// policies alone; the root user is allowed.
    pub(crate) fn authorize_identity(
        &self,
        ctx: &RequestContext,
        action: &'static str,
        resource: &str,
        ask: Ask<'_>,
    ) -> Result<(), KmsError> {
        let p = &ctx.principal;
        if p.is_root() && p.session_policy.is_none() {
            return Ok(());
        }
        let mut c = self.base_context(ctx);
        Self::request_context(&mut c, &ask);
        let (deny, allow) = with_caller(ctx, |caller| {
            self.identity_decision(ctx, &caller, action, resource, &c)
        });
        if deny {
            return Err(denied(ctx, action, resource, Reason::ExplicitDenyIdentity));
        }
        if !allow {
            return Err(denied(ctx, action, resource, Reason::NoIdentityPolicy));
        }
        Ok(())
    }

    /// Authorize `access` on the key `rec` for the caller.
    pub(crate) async fn authorize(
        &self,
        ctx: &RequestContext,
        rec: &KeyRecord,
        access: &Access,
        ask: &Ask<'_>,
    ) -> Result<(), KmsError> {
        ctx.touch(rec.arn());
        if let Some(tokens) = ask.grant_tokens {
            self.check_grant_tokens(tokens)?;
        }
        self.cache_stats
            .compiled_policies
            .record(rec.policy_is_compiled());
        let compiled = rec.compiled_policy();
        let p = &ctx.principal;
        let same_account = p.account == rec.account;
        // The default key policy and the account's own root: allowed, nothing to evaluate.
        if same_account
            && p.is_root()
            && p.session_policy.is_none()
            && compiled.default_root_of.as_deref() == Some(rec.account.as_str())
        {
            return Ok(());
        }
        let key_arn = rec.arn();
        let action = access.action;
        // The condition context costs a few allocations per request: build it only when one of
        // the policies involved has a condition or a policy variable.
        let reads_context = compiled.policy.as_ref().is_some_and(Policy::reads_context)
            || p.identity_policies.iter().any(Policy::reads_context)
            || p.session_policy
                .as_deref()
                .is_some_and(Policy::reads_context);
        let mut c = Context::new();
        if reads_context {
            c = self.base_context(ctx);
            self.key_context(&mut c, rec, &compiled).await?;
            Self::request_context(&mut c, ask);
        }
        let (key_eval, (id_deny, id_allow)) = with_caller(ctx, |caller| {
            let key_eval = match &compiled.policy {
                Some(policy) => policy.evaluate(&Request {
                    caller,
                    action,
                    resource: &key_arn,
                    context: &c,
                }),
                None => Evaluation::default(),
            };
            let identity = self.identity_decision(ctx, &caller, action, &key_arn, &c);
            (key_eval, identity)
        });
        if key_eval.explicit_deny {
            return Err(denied(ctx, action, &key_arn, Reason::ExplicitDenyResource));
        }
        if id_deny {
            return Err(denied(ctx, action, &key_arn, Reason::ExplicitDenyIdentity));
        }
        if same_account {
            if key_eval.allow_direct || (key_eval.allow_account && id_allow) {
                return Ok(());
            }
        } else if access.cross_account
            && (key_eval.allow_direct || key_eval.allow_account)
            && id_allow
        {
            return Ok(());
        }
        if (same_account || access.cross_account)
            && let Some(op) = access.grant
            && self.grant_allows(ctx, rec, op, ask).await?
        {
            return Ok(());
        }
        let reason = if !access.cross_account && !same_account {
            Reason::NoResourcePolicy
        } else if key_eval.allow_account || key_eval.allow_direct {
            Reason::NoIdentityPolicy
        } else {
            Reason::NoResourcePolicy
        };
        Err(denied(ctx, action, &key_arn, reason))
    }

    /// Resolve `input` as the caller sees it (see `Kms::resolve`) and authorize `access` on it.
    pub(crate) async fn key(
        &self,
        ctx: &RequestContext,
        input: &str,
        access: &Access,
        mut ask: Ask<'_>,
    ) -> Result<Arc<KeyRecord>, KmsError> {
        let rec = self.resolve(ctx, input, access.alias).await?;
        if access.alias && input.contains("alias/") {
            ask.request_alias = Some(
                input
                    .find("alias/")
                    .map(|i| input[i..].to_string())
                    .unwrap_or_default(),
            );
        }
        self.authorize(ctx, &rec, access, &ask).await?;
        Ok(rec)
    }

    /// The lockout safety check: would `policy` let the caller call PutKeyPolicy on the key
    /// later? `MalformedPolicyDocumentException` if not.
    pub(crate) fn check_lockout(
        &self,
        ctx: &RequestContext,
        policy: &Policy,
        key_arn: &str,
    ) -> Result<(), KmsError> {
        let mut c = self.base_context(ctx);
        c.set("kms:BypassPolicyLockoutSafetyCheck", Value::Bool(false));
        let (e, (_, id_allow)) = with_caller(ctx, |caller| {
            let e = policy.evaluate(&Request {
                caller,
                action: "kms:PutKeyPolicy",
                resource: key_arn,
                context: &c,
            });
            let identity = self.identity_decision(ctx, &caller, "kms:PutKeyPolicy", key_arn, &c);
            (e, identity)
        });
        if !e.explicit_deny && (e.allow_direct || (e.allow_account && id_allow)) {
            Ok(())
        } else {
            Err(KmsError::MalformedPolicyDocument(
                "The new key policy will not allow you to update the key policy in the future."
                    .into(),
            ))
        }
    }

    /// Validate a key policy document as CreateKey and PutKeyPolicy do: size, grammar, and
    /// principals that exist.
    pub(crate) fn parse_key_policy(&self, text: &str) -> Result<Policy, KmsError> {
        if text.len() > MAX_KEY_POLICY_BYTES {
            return Err(KmsError::LimitExceeded(format!(
                "The key policy exceeds the maximum size of {MAX_KEY_POLICY_BYTES} bytes."
            )));
        }
        let policy = Policy::parse(text, PolicyKind::Resource)
            .map_err(|e| KmsError::MalformedPolicyDocument(e.message))?;
        for principal in policy.aws_principals() {
            if !self.cfg.directory.principal_exists(&principal) {
                return Err(KmsError::MalformedPolicyDocument(
                    "Policy contains a statement with one or more invalid principals.".into(),
                ));
            }
        }
        Ok(policy)
    }
}

/// AWS KMS's key policy quota: 32 KB.
pub(crate) const MAX_KEY_POLICY_BYTES: usize = 32_768;
