//! Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant, and
//! `grant_allows`, the grant step of authorization (`authz.rs` reaches it only when no policy
//! allows and nothing denies).
//!
//! A grant is one row of the store's grants table (`GrantRow`); its `doc` is a [`GrantDoc`]
//! (JSON, owned here): the grant operations, the constraints and the key ARN. Grant tokens are
//! the grant id sealed under a subkey of the root key (AES-256-GCM, fresh nonce, so every
//! CreateGrant answers a new token), base64url: any node sharing the root key can open them,
//! so a token works at once everywhere, and a token Keyferry did not issue is
//! `InvalidGrantTokenException`. Grants matching a caller are cached per node for the key
//! record cache TTL and dropped at once by this node's grant writes; grants named by a token
//! in the request are always read from the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use keyferry_crypto::rng;
use keyferry_crypto::seal::RootKey;
use keyferry_policy::Value;
use keyferry_types::*;
use serde::{Deserialize, Serialize};

use super::{not_pending_deletion, ts, validation};
use crate::KmsError;
use crate::authz::{self, Ask};
use crate::context::RequestContext;
use crate::kms::Kms;
use crate::record::KeyRecord;
use crate::store::{GrantRow, StoreError};

/// AWS KMS's quota: grants per KMS key.
pub(crate) const MAX_GRANTS_PER_KEY: i64 = 50_000;
const MAX_CONSTRAINT_PAIRS: usize = 8;
const MAX_CONSTRAINT_VALUE_CHARS: usize = 384;
const GRANT_CACHE_MAX: usize = 100_000;
const TOKEN_AAD: &[u8] = b"keyferry/grant-token/v1";
const GRANTEE_PATTERN: &str = r"^[\w+=,.@:/-]+$";
const NAME_PATTERN: &str = "^[a-zA-Z0-9:/_-]+$";

/// The part of a grant only `keyferry-core` reads (`GrantRow::doc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GrantDoc {
    pub format: u32,
    /// The key's ARN (ListRetirableGrants answers grants on keys of any account).
    pub key_arn: String,
    pub operations: Vec<GrantOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<GrantConstraints>,
}

/// A stored grant, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub row: GrantRow,
    pub doc: GrantDoc,
}

impl Grant {
    fn decode(row: GrantRow) -> Result<Grant, KmsError> {
        let doc: GrantDoc = serde_json::from_slice(&row.doc).map_err(|e| {
            KmsError::Internal(format!("grant {} does not decode: {e}", row.grant_id))
        })?;
        Ok(Grant { row, doc })
    }

    fn entry(&self) -> GrantListEntry {
        GrantListEntry {
            key_id: Some(self.doc.key_arn.clone()),
            grant_id: Some(self.row.grant_id.clone()),
            name: self.row.name.clone(),
            creation_date: Some(ts(self.row.creation_ms)),
            grantee_principal: Some(self.row.grantee_principal.clone()),
            retiring_principal: self.row.retiring_principal.clone(),
            issuing_account: Some(format!("arn:aws:iam::{}:root", self.row.issuing_account)),
            operations: Some(self.doc.operations.clone()),
            constraints: self.doc.constraints.clone(),
        }
    }
}

/// Cached grants: (key id, grantee) → when fetched, the grants.
type GrantCacheMap = HashMap<(String, String), (Instant, Arc<Vec<Grant>>)>;

/// Per-node state of grants: the token key and the cache of grants by (key id, grantee).
pub(crate) struct GrantState {
    token_key: RootKey,
    cache: RwLock<GrantCacheMap>,
}

impl GrantState {
    pub(crate) fn new(root: &RootKey) -> GrantState {
        GrantState {
            token_key: root.derive("keyferry/grant-token/v1"),
            cache: RwLock::new(HashMap::new()),
        }
    }

    fn token(&self, grant_id: &str) -> Result<String, KmsError> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(grant_id, &mut id)
            .map_err(|_| KmsError::Internal("grant id is not 64 hex digits".into()))?;
        let sealed = self
            .token_key
            .seal(&id, TOKEN_AAD)
            .map_err(|e| KmsError::Internal(format!("seal grant token: {e}")))?;
        Ok(B64URL.encode(sealed))
    }

    /// The grant id a token names; `InvalidGrantTokenException` if Keyferry did not issue it.
    fn open_token(&self, token: &str) -> Result<String, KmsError> {
        let invalid = || KmsError::InvalidGrantToken("Invalid grant token.".into());
        if token.is_empty() || token.len() > 8192 {
            return Err(invalid());
        }
        let sealed = B64URL
            .decode(token.trim_end_matches('='))
            .map_err(|_| invalid())?;
        let id = self
            .token_key
            .open(&sealed, TOKEN_AAD)
            .map_err(|_| invalid())?;
        if id.len() != 32 {
            return Err(invalid());
        }
        Ok(hex::encode(&id[..]))
    }

    /// Drop everything cached about the grants of `key_id` (after this node wrote one).
    fn forget(&self, key_id: &str) {
        if let Ok(mut map) = self.cache.write() {
            map.retain(|(k, _), _| k != key_id);
        }
    }
}

/// The operations that take an encryption context: the only ones grant constraints apply to.
fn takes_encryption_context(op: GrantOperation) -> bool {
    use GrantOperation::*;
    matches!(
        op,
        Encrypt
            | Decrypt
            | ReEncryptFrom
            | ReEncryptTo
            | GenerateDataKey
            | GenerateDataKeyWithoutPlaintext
            | GenerateDataKeyPair
            | GenerateDataKeyPairWithoutPlaintext
    )
}

/// The grant operations a key supports, by key type.
fn valid_operations(rec: &KeyRecord) -> &'static [GrantOperation] {
    use GrantOperation::*;
    match (rec.key_spec, rec.key_usage) {
        (KeySpec::SYMMETRIC_DEFAULT, _) => &[
            Decrypt,
            Encrypt,
            GenerateDataKey,
            GenerateDataKeyWithoutPlaintext,
            GenerateDataKeyPair,
            GenerateDataKeyPairWithoutPlaintext,
            ReEncryptFrom,
            ReEncryptTo,
            CreateGrant,
            RetireGrant,
            DescribeKey,
        ],
        (_, KeyUsageType::GENERATE_VERIFY_MAC) => &[
            GenerateMac,
            VerifyMac,
            CreateGrant,
            RetireGrant,
            DescribeKey,
        ],
        (_, KeyUsageType::ENCRYPT_DECRYPT) => &[
            Decrypt,
            Encrypt,
            ReEncryptFrom,
            ReEncryptTo,
            GetPublicKey,
            CreateGrant,
            RetireGrant,
            DescribeKey,
        ],
        (_, KeyUsageType::SIGN_VERIFY) => &[
            Sign,
            Verify,
            GetPublicKey,
            CreateGrant,
            RetireGrant,
            DescribeKey,
        ],
        (_, KeyUsageType::KEY_AGREEMENT) => &[
            DeriveSharedSecret,
            GetPublicKey,
            CreateGrant,
            RetireGrant,
            DescribeKey,
        ],
    }
}

/// Grant constraint keys compare case-insensitively, values exactly (AWS `GrantConstraints`).
fn pair_in(ec: &BTreeMap<String, String>, k: &str, v: &str) -> bool {
    ec.iter()
        .any(|(rk, rv)| rk.eq_ignore_ascii_case(k) && rv == v)
}

/// Does the request's encryption context satisfy the grant's constraints?
fn constraints_allow(c: &GrantConstraints, ec: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let ec = ec.unwrap_or(&empty);
    if let Some(eq) = &c.encryption_context_equals
        && (eq.len() != ec.len() || !eq.iter().all(|(k, v)| pair_in(ec, k, v)))
    {
        return false;
    }
    if let Some(sub) = &c.encryption_context_subset
        && !sub.iter().all(|(k, v)| pair_in(ec, k, v))
    {
        return false;
    }
    true
}

/// Is the child's constraint at least as strict as the parent's (CreateGrant through a grant)?
fn at_least_as_strict(parent: Option<&GrantConstraints>, child: Option<&GrantConstraints>) -> bool {
    let Some(parent) = parent else { return true };
    let Some(child) = child else { return false };
    if let Some(pe) = &parent.encryption_context_equals {
        // Only the same exact context is as strict as an exact context.
        match &child.encryption_context_equals {
            Some(ce) if ce.len() == pe.len() && pe.iter().all(|(k, v)| pair_in(ce, k, v)) => {}
            _ => return false,
        }
    }
    if let Some(ps) = &parent.encryption_context_subset {
        let covered = |m: &BTreeMap<String, String>| ps.iter().all(|(k, v)| pair_in(m, k, v));
        let ok = child
            .encryption_context_equals
            .as_ref()
            .is_some_and(covered)
            || child
                .encryption_context_subset
                .as_ref()
                .is_some_and(covered);
        if !ok {
            return false;
        }
    }
    true
}

fn same_constraints(a: Option<&GrantConstraints>, b: Option<&GrantConstraints>) -> bool {
    at_least_as_strict(a, b) && at_least_as_strict(b, a)
}

fn pattern_error(value: &str, member: &str, pattern: &str) -> KmsError {
    validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}"
    ))
}

fn check_principal(value: &str, member: &str) -> Result<(), KmsError> {
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b))
    {
        Ok(())
    } else {
        Err(pattern_error(value, member, GRANTEE_PATTERN))
    }
}

fn is_grant_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn invalid_grant_id(id: &str) -> KmsError {
    KmsError::InvalidGrantId(format!("Invalid grant ID: {id}"))
}

fn grant_not_found(id: &str) -> KmsError {
    KmsError::NotFound(format!("Grant ID {id} not found"))
}

fn dry_run(flag: Option<bool>) -> Result<(), KmsError> {
    if flag == Some(true) {
        Err(KmsError::DryRunOperation)
    } else {
        Ok(())
    }
}

/// The account named by an IAM or STS principal ARN.
fn principal_account(p: &str) -> Option<&str> {
    let rest = p
        .strip_prefix("arn:aws:iam::")
        .or_else(|| p.strip_prefix("arn:aws:sts::"))?;
    let (acct, _) = rest.split_once(':')?;
    Some(acct)
}

/// The ways a grant (or retiring) principal names the caller directly: its own ARN, the role
/// behind a session, the account for its root user.
fn names_caller(cx: &RequestContext, p: &str) -> bool {
    let me = &cx.principal;
    p == me.arn
        || me.role_arn().is_some_and(|r| r == p)
        || (me.is_root() && p == format!("arn:aws:iam::{}:root", me.account))
}

fn validate_constraints(c: &GrantConstraints) -> Result<(), KmsError> {
    for (member, map) in [
        ("encryptionContextEquals", &c.encryption_context_equals),
        ("encryptionContextSubset", &c.encryption_context_subset),
    ] {
        let Some(map) = map else { continue };
        if map.len() > MAX_CONSTRAINT_PAIRS {
            return Err(validation(format!(
                "1 validation error detected: Value at 'constraints.{member}' failed to satisfy constraint: Member must have at most {MAX_CONSTRAINT_PAIRS} entries"
            )));
        }
        if let Some(v) = map
            .values()
            .find(|v| v.chars().count() > MAX_CONSTRAINT_VALUE_CHARS)
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{v}' at 'constraints.{member}' failed to satisfy constraint: Member must have length less than or equal to {MAX_CONSTRAINT_VALUE_CHARS}"
            )));
        }
    }
    Ok(())
}

/// Constraints as stored: an empty constraints object is no constraint.
fn normalized(c: Option<GrantConstraints>) -> Option<GrantConstraints> {
    c.filter(|c| c.encryption_context_equals.is_some() || c.encryption_context_subset.is_some())
}

impl Kms {
    // ---- authorization ---------------------------------------------------------------------

    /// Check the format of every grant token of a request (`InvalidGrantTokenException`).
    pub(crate) fn check_grant_tokens(&self, tokens: &[String]) -> Result<(), KmsError> {
        for t in tokens {
            self.grants.open_token(t)?;
        }
        Ok(())
    }

    /// Grants on `key_id` whose grantee is `grantee`, from the per-node cache when fresh.
    async fn grants_for(&self, key_id: &str, grantee: &str) -> Result<Arc<Vec<Grant>>, KmsError> {
        let cache_key = (key_id.to_string(), grantee.to_string());
        if let Ok(map) = self.grants.cache.read()
            && let Some((at, grants)) = map.get(&cache_key)
            && at.elapsed() < self.cfg.cache_ttl
        {
            self.cache_stats.grants.record(true);
            return Ok(grants.clone());
        }
        self.cache_stats.grants.record(false);
        let rows = self.store.grants_for_grantee(key_id, grantee).await?;
        let grants = Arc::new(
            rows.into_iter()
                .map(Grant::decode)
                .collect::<Result<Vec<_>, _>>()?,
        );
        if let Ok(mut map) = self.grants.cache.write() {
            if map.len() >= GRANT_CACHE_MAX {
                map.clear();
            }
            map.insert(cache_key, (Instant::now(), grants.clone()));
        }
        Ok(grants)
    }

    /// The grants on `rec` whose grantee is the caller, with those named by the request's grant
    /// tokens (read from the store, so that a token works at once on every node). A grant to an
    /// account (`arn:aws:iam::<acct>:root`) counts for a principal of that account other than
    /// root only when the caller's identity policies allow `action` on the key (delegation, as
    /// with an account principal in a key policy).
    async fn caller_grants(
        &self,
        cx: &RequestContext,
        rec: &KeyRecord,
        action: &'static str,
        ask: &Ask<'_>,
    ) -> Result<Vec<Grant>, KmsError> {
        let me = &cx.principal;
        let mut out: Vec<Grant> = Vec::new();
        let mut direct = vec![me.arn.clone()];
        if let Some(role) = me.role_arn() {
            direct.push(role);
        }
        for g in &direct {
            out.extend(self.grants_for(&rec.row_id(), g).await?.iter().cloned());
        }
        let account_root = format!("arn:aws:iam::{}:root", me.account);
        if !direct.contains(&account_root) {
            let to_account = self.grants_for(&rec.row_id(), &account_root).await?;
            if !to_account.is_empty()
                && self
                    .authorize_identity(cx, action, &rec.arn(), Ask::none())
                    .is_ok()
            {
                out.extend(to_account.iter().cloned());
            }
        }
        for token in ask.grant_tokens.unwrap_or_default() {
            let id = self.grants.open_token(token)?;
            if out.iter().any(|g| g.row.grant_id == id) {
                continue;
            }
            if let Some(row) = self.store.get_grant(&id).await?
                && row.key_id == rec.row_id()
                && names_caller(cx, &row.grantee_principal)
            {
                out.push(Grant::decode(row)?);
            }
        }
        Ok(out)
    }

    /// Does a grant on `rec` let the caller perform `operation` (a GrantOperation name) under
    /// the request's encryption context and grant tokens? For CreateGrant the child grant
    /// (`ask.create_grant`) must ask only for operations of the grant, with constraints at
    /// least as strict. RetireGrant is decided by the grant being retired (`retire_grant`).
    pub(crate) async fn grant_allows(
        &self,
        cx: &RequestContext,
        rec: &KeyRecord,
        operation: &str,
        ask: &Ask<'_>,
    ) -> Result<bool, KmsError> {
        let Ok(op) = operation.parse::<GrantOperation>() else {
            return Ok(false);
        };
        let action = match op {
            GrantOperation::CreateGrant => "kms:CreateGrant",
            GrantOperation::RetireGrant => return Ok(false),
            _ => authz_action(op),
        };
        let grants = self.caller_grants(cx, rec, action, ask).await?;
        Ok(grants.iter().any(|g| {
            if !g.doc.operations.contains(&op) {
                return false;
            }
            if op == GrantOperation::CreateGrant {
                let Some(child) = ask.create_grant else {
                    return false;
                };
                return child
                    .operations
                    .iter()
                    .all(|o| g.doc.operations.contains(o))
                    && at_least_as_strict(g.doc.constraints.as_ref(), child.constraints.as_ref());
            }
            match &g.doc.constraints {
                Some(c) if takes_encryption_context(op) => {
                    constraints_allow(c, ask.encryption_context)
                }
                _ => true,
            }
        }))
    }

    // ---- operations ------------------------------------------------------------------------

    pub async fn create_grant(
        &self,
        cx: &RequestContext,
        req: CreateGrantRequest,
    ) -> Result<CreateGrantResponse, KmsError> {
        check_principal(&req.grantee_principal, "granteePrincipal")?;
        if let Some(r) = &req.retiring_principal {
            check_principal(r, "retiringPrincipal")?;
        }
        if let Some(n) = &req.name
            && !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b))
        {
            return Err(pattern_error(n, "name", NAME_PATTERN));
        }
        if let Some(t) = &req.grant_tokens {
            self.check_grant_tokens(t)?;
        }
        let constraints = normalized(req.constraints.clone());
        if let Some(c) = &constraints {
            validate_constraints(c)?;
        }
        let mut operations: Vec<GrantOperation> = Vec::new();
        for op in &req.operations {
            if !operations.contains(op) {
                operations.push(*op);
            }
        }
        if operations.is_empty() {
            return Err(validation("Grants must contain at least one operation."));
        }
        if operations == [GrantOperation::CreateGrant] {
            return Err(validation(
                "Grants must not contain only the CreateGrant operation.",
            ));
        }
        let child = ChildGrant {
            operations: operations.clone(),
            constraints: constraints.clone(),
        };
        let constraint_context = constraints.as_ref().and_then(|c| {
            c.encryption_context_equals
                .as_ref()
                .or(c.encryption_context_subset.as_ref())
        });
        let mut ask = Ask::none()
            .with(
                "kms:GrantOperations",
                Value::Strings(operations.iter().map(|o| o.to_string()).collect()),
            )
            .string("kms:GranteePrincipal", &req.grantee_principal)
            .with(
                "kms:GrantIsForAWSResource",
                Value::Bool(cx.principal.service.is_some()),
            )
            .context(constraint_context)
            .tokens(req.grant_tokens.as_deref());
        if let Some(r) = &req.retiring_principal {
            ask = ask.string("kms:RetiringPrincipal", r);
        }
        if let Some(c) = &constraints {
            let kind = if c.encryption_context_equals.is_some() {
                "EncryptionContextEquals"
            } else {
                "EncryptionContextSubset"
            };
            ask = ask.string("kms:GrantConstraintType", kind);
        }
        ask.create_grant = Some(&child);
        let rec = self.key(cx, &req.key_id, &authz::CREATE_GRANT, ask).await?;
        not_pending_deletion(&rec)?;
        let valid = valid_operations(&rec);
        let invalid: Vec<String> = operations
            .iter()
            .filter(|o| !valid.contains(o))
            .map(|o| o.to_string())
            .collect();
        if !invalid.is_empty() {
            return Err(validation(format!(
                "Grant operations [{}] are not supported for a KMS key with key spec {} and key usage {}.",
                invalid.join(", "),
                rec.key_spec,
                rec.key_usage
            )));
        }
        if constraints.is_some() && rec.key_spec != KeySpec::SYMMETRIC_DEFAULT {
            return Err(validation(format!(
                "Grant constraints are not supported for a KMS key with key spec {}: its operations take no encryption context.",
                rec.key_spec
            )));
        }
        dry_run(req.dry_run)?;
        if let Some(name) = &req.name
            && let Some(row) = self.store.find_grant_by_name(&rec.row_id(), name).await?
        {
            let existing = Grant::decode(row)?;
            let mut a = existing.doc.operations.clone();
            let mut b = operations.clone();
            a.sort();
            b.sort();
            if existing.row.grantee_principal == req.grantee_principal
                && existing.row.retiring_principal == req.retiring_principal
                && a == b
                && same_constraints(existing.doc.constraints.as_ref(), constraints.as_ref())
            {
                return Ok(CreateGrantResponse {
                    grant_token: Some(self.grants.token(&existing.row.grant_id)?),
                    grant_id: Some(existing.row.grant_id),
                });
            }
        }
        if self.store.count_grants(&rec.row_id()).await? >= MAX_GRANTS_PER_KEY {
            return Err(KmsError::LimitExceeded(format!(
                "The request was rejected because the KMS key {} already has {MAX_GRANTS_PER_KEY} grants.",
                rec.arn()
            )));
        }
        let doc = GrantDoc {
            format: 1,
            key_arn: rec.arn(),
            operations,
            constraints,
        };
        let doc_bytes = serde_json::to_vec(&doc)
            .map_err(|e| KmsError::Internal(format!("encode grant: {e}")))?;
        for _ in 0..4 {
            let grant_id = hex::encode(&rng::random_bytes(32)[..]);
            let row = GrantRow {
                grant_id: grant_id.clone(),
                key_id: rec.row_id(),
                grantee_principal: req.grantee_principal.clone(),
                retiring_principal: req.retiring_principal.clone(),
                name: req.name.clone(),
                issuing_account: cx.account().to_string(),
                creation_ms: self.now_ms(),
                doc: doc_bytes.clone(),
            };
            match self.store.insert_grant(&row).await {
                Ok(()) => {
                    self.grants.forget(&rec.row_id());
                    return Ok(CreateGrantResponse {
                        grant_token: Some(self.grants.token(&grant_id)?),
                        grant_id: Some(grant_id),
                    });
                }
                Err(StoreError::AlreadyExists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(KmsError::Internal("could not allocate a grant id".into()))
    }

    pub async fn list_grants(
        &self,
        cx: &RequestContext,
        req: ListGrantsRequest,
    ) -> Result<ListGrantsResponse, KmsError> {
        let ask = Ask::none().with(
            "kms:GrantIsForAWSResource",
            Value::Bool(cx.principal.service.is_some()),
        );
        let rec = self.key(cx, &req.key_id, &authz::LIST_GRANTS, ask).await?;
        let limit = list_limit(req.limit);
        if let Some(m) = &req.marker
            && !is_grant_id(m)
        {
            return Err(KmsError::InvalidMarker(
                "Could not deserialize marker".into(),
            ));
        }
        let after = req.marker.as_deref();
        let mut rows: Vec<GrantRow> = if let Some(id) = &req.grant_id {
            match self.store.get_grant(id).await? {
                Some(row) if row.key_id == rec.row_id() => vec![row],
                _ => Vec::new(),
            }
        } else if let Some(grantee) = &req.grantee_principal {
            let mut rows = self
                .store
                .grants_for_grantee(&rec.row_id(), grantee)
                .await?;
            rows.sort_by(|a, b| a.grant_id.cmp(&b.grant_id));
            rows
        } else {
            self.store
                .list_grants(&rec.row_id(), after, limit as u32 + 1)
                .await?
        };
        if let Some(g) = &req.grantee_principal {
            rows.retain(|r| &r.grantee_principal == g);
        }
        if let Some(after) = after {
            rows.retain(|r| r.grant_id.as_str() > after);
        }
        page(rows, limit)
    }

    pub async fn list_retirable_grants(
        &self,
        cx: &RequestContext,
        req: ListRetirableGrantsRequest,
    ) -> Result<ListGrantsResponse, KmsError> {
        self.authorize_account(cx, "kms:ListRetirableGrants", Ask::none())?;
        if principal_account(&req.retiring_principal) != Some(cx.account()) {
            return Err(KmsError::AccessDenied(format!(
                "User: {} is not authorized to perform: kms:ListRetirableGrants on resource: {}",
                cx.principal.arn, req.retiring_principal
            )));
        }
        let limit = list_limit(req.limit);
        if let Some(m) = &req.marker
            && !is_grant_id(m)
        {
            return Err(KmsError::InvalidMarker(
                "Could not deserialize marker".into(),
            ));
        }
        let rows = self
            .store
            .list_retirable_grants(
                &req.retiring_principal,
                req.marker.as_deref(),
                limit as u32 + 1,
            )
            .await?;
        page(rows, limit)
    }

    pub async fn retire_grant(
        &self,
        cx: &RequestContext,
        req: RetireGrantRequest,
    ) -> Result<(), KmsError> {
        let by_token = match &req.grant_token {
            Some(t) => Some(self.grants.open_token(t)?),
            None => None,
        };
        if let Some(id) = &req.grant_id
            && !is_grant_id(id)
        {
            return Err(invalid_grant_id(id));
        }
        let key = match &req.key_id {
            Some(k) => Some(self.resolve(cx, k, false).await?),
            None => None,
        };
        let grant_id = match (&by_token, &req.grant_id, &key) {
            (Some(from_token), Some(id), _) if from_token != id => {
                return Err(validation(
                    "The grant ID does not match the grant that the grant token identifies.",
                ));
            }
            (Some(from_token), _, _) => from_token.clone(),
            (None, Some(id), Some(_)) => id.clone(),
            _ => {
                return Err(validation(
                    "Grant token OR (grant ID, key ID) must be specified",
                ));
            }
        };
        let Some(row) = self.store.get_grant(&grant_id).await? else {
            return Err(grant_not_found(&grant_id));
        };
        if let Some(k) = &key
            && k.row_id() != row.key_id
        {
            return Err(grant_not_found(&grant_id));
        }
        let grant = Grant::decode(row)?;
        cx.touch(grant.doc.key_arn.clone());
        let me = &cx.principal;
        let allowed = grant
            .row
            .retiring_principal
            .as_deref()
            .is_some_and(|r| names_caller(cx, r))
            || (names_caller(cx, &grant.row.grantee_principal)
                && grant.doc.operations.contains(&GrantOperation::RetireGrant))
            || (me.account == grant.row.issuing_account
                && self
                    .authorize_identity(
                        cx,
                        authz::RETIRE_GRANT.action,
                        &grant.doc.key_arn,
                        Ask::none(),
                    )
                    .is_ok());
        if !allowed {
            return Err(KmsError::AccessDenied(format!(
                "User: {} is not authorized to perform: kms:RetireGrant on resource: {}",
                me.arn, grant.doc.key_arn
            )));
        }
        dry_run(req.dry_run)?;
        self.store.delete_grant(&grant_id).await?;
        self.grants.forget(&grant.row.key_id);
        Ok(())
    }

    pub async fn revoke_grant(
        &self,
        cx: &RequestContext,
        req: RevokeGrantRequest,
    ) -> Result<(), KmsError> {
        let ask = Ask::none().with(
            "kms:GrantIsForAWSResource",
            Value::Bool(cx.principal.service.is_some()),
        );
        let rec = self.key(cx, &req.key_id, &authz::REVOKE_GRANT, ask).await?;
        if !is_grant_id(&req.grant_id) {
            return Err(invalid_grant_id(&req.grant_id));
        }
        match self.store.get_grant(&req.grant_id).await? {
            Some(row) if row.key_id == rec.row_id() => {}
            _ => return Err(grant_not_found(&req.grant_id)),
        }
        dry_run(req.dry_run)?;
        self.store.delete_grant(&req.grant_id).await?;
        self.grants.forget(&rec.row_id());
        Ok(())
    }
}

/// What CreateGrant asks for, seen by `grant_allows` when the caller's permission to create it
/// comes from a grant.
pub(crate) struct ChildGrant {
    pub operations: Vec<GrantOperation>,
    pub constraints: Option<GrantConstraints>,
}

/// The IAM action of a grant operation (for grants to an account, delegated by IAM).
fn authz_action(op: GrantOperation) -> &'static str {
    use GrantOperation::*;
    match op {
        Decrypt => "kms:Decrypt",
        Encrypt => "kms:Encrypt",
        GenerateDataKey => "kms:GenerateDataKey",
        GenerateDataKeyWithoutPlaintext => "kms:GenerateDataKeyWithoutPlaintext",
        ReEncryptFrom => "kms:ReEncryptFrom",
        ReEncryptTo => "kms:ReEncryptTo",
        Sign => "kms:Sign",
        Verify => "kms:Verify",
        GetPublicKey => "kms:GetPublicKey",
        CreateGrant => "kms:CreateGrant",
        RetireGrant => "kms:RetireGrant",
        DescribeKey => "kms:DescribeKey",
        GenerateDataKeyPair => "kms:GenerateDataKeyPair",
        GenerateDataKeyPairWithoutPlaintext => "kms:GenerateDataKeyPairWithoutPlaintext",
        GenerateMac => "kms:GenerateMac",
        VerifyMac => "kms:VerifyMac",
        DeriveSharedSecret => "kms:DeriveSharedSecret",
    }
}

/// ListGrants / ListRetirableGrants `Limit`: 1 to 100, default 50 (larger values are clamped).
fn list_limit(limit: Option<i64>) -> usize {
    limit.unwrap_or(50).clamp(1, 100) as usize
}

fn page(mut rows: Vec<GrantRow>, limit: usize) -> Result<ListGrantsResponse, KmsError> {
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    let next_marker = if truncated {
        rows.last().map(|r| r.grant_id.clone())
    } else {
        None
    };
    let grants = rows
        .into_iter()
        .map(|r| Grant::decode(r).map(|g| g.entry()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ListGrantsResponse {
        grants: Some(grants),
        next_marker,
        truncated: Some(truncated),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn subset(pairs: &[(&str, &str)]) -> GrantConstraints {
        GrantConstraints {
            encryption_context_subset: Some(map(pairs)),
            encryption_context_equals: None,
        }
    }

    fn equals(pairs: &[(&str, &str)]) -> GrantConstraints {
        GrantConstraints {
            encryption_context_subset: None,
            encryption_context_equals: Some(map(pairs)),
        }
    }

    #[test]
    fn subset_and_equals_constraints() {
        let s = subset(&[("Volume", "vol-1")]);
        assert!(constraints_allow(&s, Some(&map(&[("Volume", "vol-1")]))));
        assert!(constraints_allow(
            &s,
            Some(&map(&[("volume", "vol-1"), ("x", "y")]))
        ));
        assert!(!constraints_allow(&s, Some(&map(&[("Volume", "VOL-1")]))));
        assert!(!constraints_allow(&s, Some(&map(&[("Other", "vol-1")]))));
        assert!(!constraints_allow(&s, None));
        let e = equals(&[("a", "1")]);
        assert!(constraints_allow(&e, Some(&map(&[("A", "1")]))));
        assert!(!constraints_allow(
            &e,
            Some(&map(&[("a", "1"), ("b", "2")]))
        ));
        assert!(!constraints_allow(&e, None));
    }

    #[test]
    fn child_constraints_must_be_as_strict() {
        let ps = subset(&[("a", "1")]);
        assert!(at_least_as_strict(None, None));
        assert!(at_least_as_strict(None, Some(&ps)));
        assert!(!at_least_as_strict(Some(&ps), None));
        assert!(at_least_as_strict(
            Some(&ps),
            Some(&subset(&[("a", "1"), ("b", "2")]))
        ));
        assert!(at_least_as_strict(
            Some(&ps),
            Some(&equals(&[("a", "1"), ("b", "2")]))
        ));
        assert!(!at_least_as_strict(Some(&ps), Some(&subset(&[("b", "2")]))));
        let pe = equals(&[("a", "1")]);
        assert!(at_least_as_strict(Some(&pe), Some(&equals(&[("A", "1")]))));
        assert!(!at_least_as_strict(Some(&pe), Some(&subset(&[("a", "1")]))));
        assert!(!at_least_as_strict(
            Some(&pe),
            Some(&equals(&[("a", "1"), ("b", "2")]))
        ));
        assert!(same_constraints(Some(&ps), Some(&subset(&[("A", "1")]))));
        assert!(!same_constraints(Some(&ps), Some(&pe)));
    }

    #[test]
    fn tokens_round_trip_and_foreign_tokens_are_invalid() {
        let root = RootKey::from_bytes(&[7u8; 32]).expect("root");
        let state = GrantState::new(&root);
        let id = "ab".repeat(32);
        let t1 = state.token(&id).expect("token");
        let t2 = state.token(&id).expect("token");
        assert_ne!(t1, t2, "every token is new");
        assert_eq!(state.open_token(&t1).expect("open"), id);
        assert_eq!(state.open_token(&t2).expect("open"), id);
        let other = GrantState::new(&RootKey::from_bytes(&[8u8; 32]).expect("root"));
        assert!(matches!(
            other.open_token(&t1),
            Err(KmsError::InvalidGrantToken(_))
        ));
        assert!(matches!(
            state.open_token("not a token!"),
            Err(KmsError::InvalidGrantToken(_))
        ));
        assert!(matches!(
            state.open_token(""),
            Err(KmsError::InvalidGrantToken(_))
        ));
        let mut bad = t1.clone().into_bytes();
        bad[20] = if bad[20] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).expect("ascii");
        assert!(matches!(
            state.open_token(&bad),
            Err(KmsError::InvalidGrantToken(_))
        ));
    }

    #[test]
    fn principal_pattern_and_accounts() {
        assert!(check_principal("arn:aws:iam::111122223333:role/app", "granteePrincipal").is_ok());
        assert!(check_principal("ec2.amazonaws.com", "granteePrincipal").is_ok());
        let e = check_principal("bad principal", "granteePrincipal").expect_err("space");
        assert!(matches!(e, KmsError::Validation(m) if m.contains("'granteePrincipal'")));
        assert_eq!(
            principal_account("arn:aws:iam::111122223333:user/a"),
            Some("111122223333")
        );
        assert_eq!(
            principal_account("arn:aws:sts::444455556666:assumed-role/r/s"),
            Some("444455556666")
        );
        assert_eq!(principal_account("ec2.amazonaws.com"), None);
        assert!(is_grant_id(&"0a".repeat(32)));
        assert!(!is_grant_id("0A"));
        assert_eq!(list_limit(None), 50);
        assert_eq!(list_limit(Some(1000)), 100);
    }
}
