//! Parsing and validation of a policy document into compiled statements.

use serde_json::{Map, Value as Json};

use crate::condition::{self, Cond};
use crate::glob::Pattern;
use crate::template::StrValue;
use crate::{PolicyError, PolicyKind, msg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// One `AWS` principal value.
#[derive(Clone, Debug)]
pub(crate) enum AwsPrincipal {
    /// `*`
    Any,
    /// The account principal: `arn:aws:iam::<id>:root` or the bare id.
    Account(String),
    /// A user, role or assumed-role session ARN (compared exactly).
    Arn(String),
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Principals {
    /// `"Principal": "*"`.
    pub(crate) any: bool,
    pub(crate) aws: Vec<AwsPrincipal>,
    pub(crate) service: Vec<String>,
    /// Parsed and kept, but no caller is federated or a canonical user here: never match.
    pub(crate) federated: Vec<String>,
    pub(crate) canonical: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct ActionSet {
    pub(crate) negated: bool,
    /// Compiled for case-insensitive matching.
    pub(crate) patterns: Vec<Pattern>,
}

#[derive(Clone, Debug)]
pub(crate) struct ResourceSet {
    pub(crate) negated: bool,
    pub(crate) patterns: Vec<StrValue>,
}

#[derive(Clone, Debug)]
pub(crate) struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    /// `None` in identity policies.
    pub(crate) principal: Option<Principals>,
    pub(crate) not_principal: bool,
    /// `None`: the statement has no Action/NotAction (it matches nothing).
    pub(crate) action: Option<ActionSet>,
    /// `None`: no Resource/NotResource (matches nothing, except in trust policies, which have none).
    pub(crate) resource: Option<ResourceSet>,
    pub(crate) conditions: Vec<Cond>,
}

#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) version: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) statements: Vec<Statement>,
    pub(crate) aws_principals: Vec<String>,
}

fn err<T>(m: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError::new(m))
}

pub(crate) fn parse(json: &str, kind: PolicyKind) -> Result<Parsed, PolicyError> {
    let doc: Json = serde_json::from_str(json).map_err(|_| PolicyError::new(msg::NOT_JSON))?;
    let Json::Object(doc) = doc else {
        return err(msg::NOT_OBJECT);
    };
    for k in doc.keys() {
        if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
            return err(msg::unknown_element(k));
        }
    }
    let version = match doc.get("Version") {
        None => None,
        Some(Json::String(v)) if v == "2012-10-17" || v == "2008-10-17" => Some(v.clone()),
        Some(Json::String(v)) => return err(msg::invalid_version(v)),
        Some(_) => return err(msg::VERSION_TYPE),
    };
    // Policy variables exist only in Version 2012-10-17; before it `${…}` is literal text.
    let vars = version.as_deref() == Some("2012-10-17");
    let id = match doc.get("Id") {
        None => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(_) => return err(msg::ID_TYPE),
    };
    let stmts: Vec<&Map<String, Json>> = match doc.get("Statement") {
        None => return err(msg::NO_STATEMENT),
        Some(Json::Object(o)) => vec![o],
        Some(Json::Array(a)) => {
            let mut v = Vec::with_capacity(a.len());
            for s in a {
                match s {
                    Json::Object(o) => v.push(o),
                    _ => return err(msg::STATEMENT_TYPE),
                }
            }
            v
        }
        Some(_) => return err(msg::STATEMENT_TYPE),
    };
    let mut aws_principals = Vec::new();
    let mut statements = Vec::with_capacity(stmts.len());
    for s in stmts {
        statements.push(statement(s, kind, vars, &mut aws_principals)?);
    }
    Ok(Parsed {
        version,
        id,
        statements,
        aws_principals,
    })
}

fn statement(
    s: &Map<String, Json>,
    kind: PolicyKind,
    vars: bool,
    aws_principals: &mut Vec<String>,
) -> Result<Statement, PolicyError> {
    for k in s.keys() {
        if !matches!(
            k.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return err(msg::unknown_statement_element(k));
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Json::String(v)) => Some(v.clone()),
        Some(_) => return err(msg::SID_TYPE),
    };
    let effect = match s.get("Effect") {
        None => return err(msg::NO_EFFECT),
        Some(Json::String(e)) if e == "Allow" => Effect::Allow,
        Some(Json::String(e)) if e == "Deny" => Effect::Deny,
        Some(_) => return err(msg::BAD_EFFECT),
    };
    let pair = |a: &str, b: &str| -> Result<Option<(&Json, bool)>, PolicyError> {
        match (s.get(a), s.get(b)) {
            (Some(_), Some(_)) => err(msg::both(a, b)),
            (Some(v), None) => Ok(Some((v, false))),
            (None, Some(v)) => Ok(Some((v, true))),
            (None, None) => Ok(None),
        }
    };
    let principal = pair("Principal", "NotPrincipal")?;
    let action = pair("Action", "NotAction")?;
    let resource = pair("Resource", "NotResource")?;

    let (principal, not_principal) = match (kind, principal) {
        (PolicyKind::Identity, Some(_)) => return err(msg::IDENTITY_PRINCIPAL),
        (PolicyKind::Identity, None) => (None, false),
        (_, None) => return err(msg::NO_PRINCIPAL),
        (_, Some((p, neg))) => (Some(principals(p, aws_principals)?), neg),
    };

    let action = match action {
        Some((v, negated)) => {
            let name = if negated { "NotAction" } else { "Action" };
            let patterns = string_list(v, name)?
                .iter()
                .map(|a| Pattern::new(a, true))
                .collect();
            Some(ActionSet { negated, patterns })
        }
        None if kind == PolicyKind::Resource => None,
        None => return err(msg::missing("Action")),
    };

    let resource = match (kind, resource) {
        (PolicyKind::Trust, Some(_)) => return err(msg::TRUST_RESOURCE),
        (PolicyKind::Identity, None) => return err(msg::missing("Resource")),
        (_, None) => None,
        (_, Some((v, negated))) => {
            let name = if negated { "NotResource" } else { "Resource" };
            let patterns = string_list(v, name)?
                .iter()
                .map(|r| StrValue::new(r, true, vars))
                .collect();
            Some(ResourceSet { negated, patterns })
        }
    };

    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(c) => condition::compile(c, vars)?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        not_principal,
        action,
        resource,
        conditions,
    })
}

fn string_list<'a>(v: &'a Json, name: &str) -> Result<Vec<&'a str>, PolicyError> {
    match v {
        Json::String(s) => Ok(vec![s.as_str()]),
        Json::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .ok_or_else(|| PolicyError::new(msg::list_type(name)))
            })
            .collect(),
        _ => err(msg::list_type(name)),
    }
}

fn principals(v: &Json, aws_out: &mut Vec<String>) -> Result<Principals, PolicyError> {
    let bad = || PolicyError::new(msg::INVALID_PRINCIPALS);
    let mut p = Principals::default();
    let map = match v {
        Json::String(s) if s == "*" => {
            p.any = true;
            return Ok(p);
        }
        Json::Object(m) if !m.is_empty() => m,
        _ => return Err(bad()),
    };
    for (k, vals) in map {
        let list: Vec<&str> = match vals {
            Json::String(s) => vec![s.as_str()],
            Json::Array(a) if !a.is_empty() => a
                .iter()
                .map(|x| x.as_str().ok_or_else(bad))
                .collect::<Result<_, _>>()?,
            _ => return Err(bad()),
        };
        for s in list {
            match k.as_str() {
                "AWS" => {
                    p.aws.push(aws_principal(s).ok_or_else(bad)?);
                    if s != "*" && !aws_out.iter().any(|x| x == s) {
                        aws_out.push(s.to_owned());
                    }
                }
                "Service" if is_service(s) => p.service.push(s.to_owned()),
                "Federated" if !s.is_empty() => p.federated.push(s.to_owned()),
                "CanonicalUser" if !s.is_empty() => p.canonical.push(s.to_owned()),
                _ => return Err(bad()),
            }
        }
    }
    Ok(p)
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)
}

/// An IAM name with an optional path (`name`, `path/to/name`).
fn is_path_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg.bytes().all(is_name_char))
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_name_char)
}

fn is_service(s: &str) -> bool {
    s.strip_suffix(".amazonaws.com").is_some_and(|h| {
        !h.is_empty()
            && !h.starts_with('.')
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    })
}

/// Classifies a valid `AWS` principal, or `None` when it is not one.
pub(crate) fn aws_principal(s: &str) -> Option<AwsPrincipal> {
    if s == "*" {
        return Some(AwsPrincipal::Any);
    }
    if is_account_id(s) {
        return Some(AwsPrincipal::Account(s.to_owned()));
    }
    let mut it = s.splitn(6, ':');
    let (arn, partition, service, region, account, resource) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    if arn != "arn"
        || !matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
        || !region.is_empty()
        || !is_account_id(account)
    {
        return None;
    }
    let ok = match service {
        "iam" => {
            if resource == "root" {
                return Some(AwsPrincipal::Account(account.to_owned()));
            }
            resource
                .strip_prefix("user/")
                .or_else(|| resource.strip_prefix("role/"))
                .is_some_and(is_path_name)
        }
        "sts" => resource.strip_prefix("assumed-role/").is_some_and(|rs| {
            rs.split_once('/')
                .is_some_and(|(r, sess)| is_name(r) && is_name(sess))
        }),
        _ => false,
    };
    ok.then(|| AwsPrincipal::Arn(s.to_owned()))
}
