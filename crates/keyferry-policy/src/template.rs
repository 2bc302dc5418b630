//! Strings with policy variables (`${aws:username}`, `${key, 'default'}`, `${*}`, `${?}`, `${$}`).

use std::borrow::Cow;

use crate::glob::{OTok, Pattern, glob_match, push_lit, push_star};
use crate::{Request, Value};

/// A piece of a policy string.
#[derive(Clone, Debug)]
pub(crate) enum TPart {
    Tok(OTok),
    /// `${key}` (key lowercased) with an optional default.
    Var {
        key: String,
        default: Option<String>,
    },
}

/// Parses `s`: `*`/`?` are wildcards when `wildcards`; `${…}` are variables when `vars`
/// (policy Version 2012-10-17). Returns the parts and whether any variable occurs.
pub(crate) fn parse_parts(s: &str, wildcards: bool, vars: bool) -> (Vec<TPart>, bool) {
    let mut parts: Vec<TPart> = Vec::new();
    let mut has_vars = false;
    let mut lit = String::new();
    let mut rest = s;
    let flush = |lit: &mut String, parts: &mut Vec<TPart>| {
        if !lit.is_empty() {
            for t in crate::glob::tokenize(lit, wildcards) {
                push_part(parts, t);
            }
            lit.clear();
        }
    };
    while !rest.is_empty() {
        if vars
            && rest.starts_with("${")
            && let Some(end) = rest.find('}')
        {
            {
                let inner = &rest[2..end];
                match parse_var(inner) {
                    Some(VarSpec::Literal(c)) => {
                        flush(&mut lit, &mut parts);
                        push_part(&mut parts, OTok::Lit(c.to_string()));
                    }
                    Some(VarSpec::Key(key, default)) => {
                        flush(&mut lit, &mut parts);
                        has_vars = true;
                        parts.push(TPart::Var { key, default });
                    }
                    None => lit.push_str(&rest[..=end]),
                }
                rest = &rest[end + 1..];
                continue;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            lit.push(c);
        }
        rest = chars.as_str();
    }
    flush(&mut lit, &mut parts);
    (parts, has_vars)
}

fn push_part(parts: &mut Vec<TPart>, t: OTok) {
    match (parts.last_mut(), t) {
        (Some(TPart::Tok(OTok::Lit(prev))), OTok::Lit(s)) => prev.push_str(&s),
        (Some(TPart::Tok(OTok::Star)), OTok::Star) => {}
        (_, t) => parts.push(TPart::Tok(t)),
    }
}

enum VarSpec {
    Literal(char),
    Key(String, Option<String>),
}

fn parse_var(inner: &str) -> Option<VarSpec> {
    match inner.trim() {
        "*" => return Some(VarSpec::Literal('*')),
        "?" => return Some(VarSpec::Literal('?')),
        "$" => return Some(VarSpec::Literal('$')),
        _ => {}
    }
    let (key, default) = match inner.split_once(',') {
        Some((k, d)) => {
            let d = d.trim();
            let d = d.strip_prefix('\'')?.strip_suffix('\'')?;
            (k.trim(), Some(d.to_owned()))
        }
        None => (inner.trim(), None),
    };
    if key.is_empty()
        || key
            .chars()
            .any(|c| c.is_whitespace() || c == '$' || c == '{')
    {
        return None;
    }
    Some(VarSpec::Key(key.to_lowercase(), default))
}

/// The text a context value stands for when used in a variable or a string comparison.
pub(crate) fn value_str(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Number(n) => Some(Cow::Owned(format_number(*n))),
        Value::Date(ms) => Some(Cow::Owned(format_date(*ms))),
        Value::Ip(ip) => Some(Cow::Owned(ip.to_string())),
        Value::Strings(_) => None,
    }
}

pub(crate) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn format_date(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| (ms / 1000).to_string())
}

/// Resolves a variable for `req`: the context value, else (for `aws:PrincipalAccount`) the caller's
/// account. A multi-valued key does not resolve.
pub(crate) fn lookup<'r>(req: &'r Request<'_>, key_lower: &str) -> Option<Cow<'r, str>> {
    match req.context.get_lower(key_lower) {
        Some(v) => value_str(v),
        None if key_lower == "aws:principalaccount" => Some(Cow::Borrowed(req.caller.account)),
        None => None,
    }
}

/// Substitutes the variables; `None` when one has no value and no default (the value then matches
/// nothing).
pub(crate) fn resolve(parts: &[TPart], req: &Request<'_>) -> Option<Vec<OTok>> {
    let mut toks = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            TPart::Tok(OTok::Lit(s)) => push_lit(&mut toks, s),
            TPart::Tok(OTok::Star) => push_star(&mut toks),
            TPart::Tok(OTok::One) => toks.push(OTok::One),
            TPart::Var { key, default } => match lookup(req, key) {
                Some(v) => push_lit(&mut toks, &v),
                None => push_lit(&mut toks, default.as_deref()?),
            },
        }
    }
    Some(toks)
}

fn static_toks(parts: Vec<TPart>) -> Vec<OTok> {
    parts
        .into_iter()
        .filter_map(|p| match p {
            TPart::Tok(t) => Some(t),
            TPart::Var { .. } => None,
        })
        .collect()
}

/// A string value or resource pattern, compiled.
#[derive(Clone, Debug)]
pub(crate) enum StrValue {
    Static(Pattern),
    Dynamic(Vec<TPart>),
}

impl StrValue {
    pub(crate) fn new(s: &str, wildcards: bool, vars: bool) -> StrValue {
        let (parts, has_vars) = parse_parts(s, wildcards, vars);
        if has_vars {
            StrValue::Dynamic(parts)
        } else {
            StrValue::Static(Pattern::from_toks(static_toks(parts)))
        }
    }

    pub(crate) fn matches(&self, text: &str, ci: bool, req: &Request<'_>) -> bool {
        match self {
            StrValue::Static(p) => p.matches(text, ci),
            StrValue::Dynamic(parts) => {
                resolve(parts, req).is_some_and(|toks| glob_match(&toks, text, ci))
            }
        }
    }
}

/// An ARN pattern: six colon-separated segments matched one by one (wildcards do not cross a
/// segment, the sixth segment may contain colons); a pattern with fewer segments is matched against
/// the whole string.
#[derive(Clone, Debug)]
pub(crate) enum ArnPat {
    Segments(Vec<Vec<OTok>>),
    Whole(Vec<OTok>),
}

impl ArnPat {
    fn from_toks(toks: Vec<OTok>) -> ArnPat {
        let mut segs: Vec<Vec<OTok>> = vec![Vec::new()];
        for t in &toks {
            match t {
                OTok::Lit(s) => {
                    let mut rest = s.as_str();
                    while segs.len() < 6 {
                        match rest.split_once(':') {
                            Some((a, b)) => {
                                if let Some(last) = segs.last_mut() {
                                    push_lit(last, a);
                                }
                                segs.push(Vec::new());
                                rest = b;
                            }
                            None => break,
                        }
                    }
                    if let Some(last) = segs.last_mut() {
                        push_lit(last, rest);
                    }
                }
                other => {
                    if let Some(last) = segs.last_mut() {
                        last.push(other.clone());
                    }
                }
            }
        }
        if segs.len() == 6 {
            ArnPat::Segments(segs)
        } else {
            ArnPat::Whole(toks)
        }
    }

    fn matches(&self, text: &str) -> bool {
        match self {
            ArnPat::Whole(t) => glob_match(t, text, false),
            ArnPat::Segments(segs) => {
                let mut it = text.splitn(6, ':');
                segs.iter()
                    .all(|seg| it.next().is_some_and(|part| glob_match(seg, part, false)))
            }
        }
    }
}

/// An ArnEquals/ArnLike value, compiled.
#[derive(Clone, Debug)]
pub(crate) enum ArnValue {
    Static(ArnPat),
    Dynamic(Vec<TPart>),
}

impl ArnValue {
    pub(crate) fn new(s: &str, vars: bool) -> ArnValue {
        let (parts, has_vars) = parse_parts(s, true, vars);
        if has_vars {
            ArnValue::Dynamic(parts)
        } else {
            ArnValue::Static(ArnPat::from_toks(static_toks(parts)))
        }
    }

    pub(crate) fn matches(&self, text: &str, req: &Request<'_>) -> bool {
        match self {
            ArnValue::Static(p) => p.matches(text),
            ArnValue::Dynamic(parts) => {
                resolve(parts, req).is_some_and(|toks| ArnPat::from_toks(toks).matches(text))
            }
        }
    }
}
