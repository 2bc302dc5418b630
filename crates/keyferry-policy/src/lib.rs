//! The IAM policy language: parse, validate and evaluate key policies (resource-based), IAM
//! identity-based policies and role trust policies. Pure: no I/O, no logging.
//!
//! Parse once with [`Policy::parse`], evaluate many times with [`Policy::evaluate`]; a [`Policy`]
//! is cheap to clone (`Arc` inside). See `README.md` for what is supported and the choices made
//! where the IAM documentation is vague.
//!
//! ```
//! use keyferry_policy::{Caller, Context, Policy, PolicyKind, Request, Value};
//!
//! let policy = Policy::parse(
//!     r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
//!         "Principal":{"AWS":"arn:aws:iam::111122223333:role/app"},
//!         "Action":["kms:Encrypt","kms:GenerateDataKey*"],"Resource":"*",
//!         "Condition":{"StringEquals":{"kms:CallerAccount":"111122223333"}}}]}"#,
//!     PolicyKind::Resource,
//! )
//! .expect("valid policy");
//! let mut context = Context::new();
//! context.set("kms:CallerAccount", Value::from("111122223333"));
//! let arns = ["arn:aws:sts::111122223333:assumed-role/app/s", "arn:aws:iam::111122223333:role/app"];
//! let ev = policy.evaluate(&Request {
//!     caller: Caller { arns: &arns, account: "111122223333", service: None },
//!     action: "kms:GenerateDataKeyWithoutPlaintext",
//!     resource: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
//!     context: &context,
//! });
//! assert!(ev.allow_direct && !ev.allow_account && !ev.explicit_deny);
//! ```

mod condition;
mod glob;
mod msg;
mod parse;
mod template;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parse::{AwsPrincipal, Effect, Principals, Statement};

/// Which document this is; decides which elements are required/allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// A key policy (resource-based): every statement needs `Principal` or `NotPrincipal`.
    Resource,
    /// An IAM policy (identity-based): no `Principal`; `Action` and `Resource` required.
    Identity,
    /// A role trust policy: `Principal` and `Action` required, no `Resource`.
    Trust,
}

/// A validation error; `message` is the text for `MalformedPolicyDocumentException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    pub message: String,
}

impl PolicyError {
    pub(crate) fn new(message: impl Into<String>) -> PolicyError {
        PolicyError {
            message: message.into(),
        }
    }
}

/// A parsed, compiled policy: parse once, evaluate many times.
#[derive(Debug, Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: PolicyKind,
    version: Option<String>,
    id: Option<String>,
    statements: Vec<Statement>,
    aws_principals: Vec<String>,
    /// Some statement has a condition or a policy variable: evaluation reads the context.
    reads_context: bool,
}

/// Who calls. `arns` are every ARN the caller is known by, most specific first: for an assumed-role
/// session `["arn:aws:sts::111122223333:assumed-role/app/sess", "arn:aws:iam::111122223333:role/app"]`,
/// for a user `["arn:aws:iam::111122223333:user/alice"]`, for the root `["arn:aws:iam::111122223333:root"]`.
/// `service`: `Some("ec2.amazonaws.com")` when the call is made by an AWS service principal (matches
/// `Principal: {"Service": ...}`), else `None`.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub arns: &'a [&'a str],
    pub account: &'a str,
    pub service: Option<&'a str>,
}

/// One request to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub caller: Caller<'a>,
    /// `"kms:Encrypt"`; action matching is case-insensitive, with `*` and `?` wildcards.
    pub action: &'a str,
    /// The key ARN, or `"*"` for operations without a resource.
    pub resource: &'a str,
    /// Condition keys.
    pub context: &'a Context,
}

/// Condition context: key names are case-insensitive (stored lowercased); values typed.
#[derive(Default, Clone, Debug)]
pub struct Context {
    values: HashMap<String, Value>,
}

impl Context {
    pub fn new() -> Self {
        Context::default()
    }

    /// Sets (or replaces) a key, e.g. `"kms:CallerAccount"`, `"aws:SourceIp"`.
    pub fn set(&mut self, key: &str, value: Value) {
        self.values.insert(key.to_lowercase(), value);
    }

    /// Builder form of [`Context::set`].
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.set(key, value);
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        if key.chars().any(char::is_uppercase) {
            self.values.get(&key.to_lowercase())
        } else {
            self.values.get(key)
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.values.remove(&key.to_lowercase())
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub(crate) fn get_lower(&self, key_lower: &str) -> Option<&Value> {
        if self.values.is_empty() {
            return None;
        }
        self.values.get(key_lower)
    }
}

/// A typed condition-context value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    String(String),
    /// A multi-valued key (e.g. `kms:EncryptionContextKeys`, `aws:TagKeys`).
    Strings(Vec<String>),
    Bool(bool),
    Number(f64),
    /// Epoch milliseconds.
    Date(i64),
    Ip(IpAddr),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Value {
        Value::Strings(v)
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Value {
        Value::Number(n)
    }
}
impl From<IpAddr> for Value {
    fn from(ip: IpAddr) -> Value {
        Value::Ip(ip)
    }
}

/// Result for one policy. A statement counts only if action, resource, principal and all
/// conditions match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub explicit_deny: bool,
    /// An Allow statement matched whose principal names the caller itself (one of its ARNs, `"*"`,
    /// `{"AWS":"*"}`, or its service) — or, for Identity policies, any matching Allow.
    pub allow_direct: bool,
    /// An Allow statement matched whose principal is the caller's ACCOUNT principal
    /// (`"arn:aws:iam::<acct>:root"` or the bare 12-digit account id) — KMS's "delegate to IAM" case.
    pub allow_account: bool,
}

impl Evaluation {
    /// Allowed by this policy alone: no explicit deny and a direct allow.
    pub fn allowed_directly(&self) -> bool {
        !self.explicit_deny && self.allow_direct
    }
}

impl Policy {
    /// Parse and validate. Errors carry the message for `MalformedPolicyDocumentException` (the
    /// texts are listed in README.md). Size limits are NOT checked here (the caller does).
    pub fn parse(json: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let p = parse::parse(json, kind)?;
        // Variables only exist in 2012-10-17 policies; any `${` is treated as one (conservative).
        let reads_context =
            p.statements.iter().any(|st| !st.conditions.is_empty()) || json.contains("${");
        Ok(Policy {
            inner: Arc::new(Inner {
                reads_context,
                kind,
                version: p.version,
                id: p.id,
                statements: p.statements,
                aws_principals: p.aws_principals,
            }),
        })
    }

    /// Whether evaluation can read the request's condition context (a `Condition` element or a
    /// policy variable somewhere). When false, `evaluate` gives the same answer for any
    /// `Context`, so callers may pass an empty one.
    pub fn reads_context(&self) -> bool {
        self.inner.reads_context
    }

    /// Every principal string named in `Principal` / `NotPrincipal` elements (`AWS` values only,
    /// as written, each once, in document order), so the caller can check that they exist. The
    /// wildcard `"*"` is not included.
    pub fn aws_principals(&self) -> Vec<String> {
        self.inner.aws_principals.clone()
    }

    pub fn kind(&self) -> PolicyKind {
        self.inner.kind
    }

    /// The `Version` element as written (`None` when absent, which means 2008-10-17).
    pub fn version(&self) -> Option<&str> {
        self.inner.version.as_deref()
    }

    /// The `Id` element.
    pub fn id(&self) -> Option<&str> {
        self.inner.id.as_deref()
    }

    /// The `Sid` of every statement, in order (`None` where a statement has none).
    pub fn sids(&self) -> Vec<Option<&str>> {
        self.inner
            .statements
            .iter()
            .map(|s| s.sid.as_deref())
            .collect()
    }

    /// Evaluate for one request.
    pub fn evaluate(&self, req: &Request<'_>) -> Evaluation {
        let mut ev = Evaluation::default();
        let kind = self.inner.kind;
        for st in &self.inner.statements {
            if st.effect == Effect::Allow && ev.allow_direct && ev.allow_account {
                continue;
            }
            if !action_matches(st, req) {
                continue;
            }
            let (direct, account) = match &st.principal {
                None => (true, false),
                Some(p) if st.not_principal => (!not_principal_excludes(p, &req.caller), false),
                Some(p) => principal_class(p, &req.caller),
            };
            if !direct && !account {
                continue;
            }
            let nothing_new = (!direct || ev.allow_direct) && (!account || ev.allow_account);
            if st.effect == Effect::Allow && nothing_new {
                continue;
            }
            if !resource_matches(st, kind, req) {
                continue;
            }
            if !st.conditions.iter().all(|c| c.eval(req)) {
                continue;
            }
            match st.effect {
                Effect::Deny => ev.explicit_deny = true,
                Effect::Allow => {
                    ev.allow_direct |= direct;
                    ev.allow_account |= account;
                }
            }
        }
        ev
    }
}

fn action_matches(st: &Statement, req: &Request<'_>) -> bool {
    match &st.action {
        None => false,
        Some(a) => a.patterns.iter().any(|p| p.matches(req.action, true)) != a.negated,
    }
}

fn resource_matches(st: &Statement, kind: PolicyKind, req: &Request<'_>) -> bool {
    match &st.resource {
        None => kind == PolicyKind::Trust,
        Some(r) => {
            r.patterns
                .iter()
                .any(|p| p.matches(req.resource, false, req))
                != r.negated
        }
    }
}

/// `arn:<partition>:iam::<account>:root`.
fn is_root_of(arn: &str, account: &str) -> bool {
    arn.strip_prefix("arn:")
        .and_then(|r| r.strip_suffix(":root"))
        .and_then(|r| r.strip_suffix(account))
        .and_then(|r| r.strip_suffix(":iam::"))
        .is_some_and(|partition| !partition.contains(':'))
}

/// (names the caller directly, names the caller's account principal). The account principal
/// also names the root user directly.
fn principal_class(p: &Principals, caller: &Caller<'_>) -> (bool, bool) {
    let mut direct = p.any
        || caller
            .service
            .is_some_and(|s| p.service.iter().any(|x| x == s));
    let mut account = false;
    for a in &p.aws {
        match a {
            AwsPrincipal::Any => direct = true,
            AwsPrincipal::Arn(arn) => direct |= caller.arns.contains(&arn.as_str()),
            AwsPrincipal::Account(id) => {
                if id == caller.account {
                    account = true;
                    direct |= caller.arns.iter().any(|a| is_root_of(a, id));
                }
            }
        }
    }
    (direct, account)
}

/// NotPrincipal: the caller is excluded (the statement does not apply to it) when `*` is listed,
/// its account principal is listed, its service is listed, or every ARN it is known by is listed
/// (for a session that is the session ARN and the role ARN, as the IAM User Guide requires).
fn not_principal_excludes(p: &Principals, caller: &Caller<'_>) -> bool {
    if p.any
        || caller
            .service
            .is_some_and(|s| p.service.iter().any(|x| x == s))
    {
        return true;
    }
    let listed = |arn: &str| {
        p.aws.iter().any(|a| match a {
            AwsPrincipal::Arn(x) => x == arn,
            _ => false,
        })
    };
    p.aws.iter().any(|a| match a {
        AwsPrincipal::Any => true,
        AwsPrincipal::Account(id) => id == caller.account,
        AwsPrincipal::Arn(_) => false,
    }) || (!caller.arns.is_empty() && caller.arns.iter().all(|a| listed(a)))
}
