//! Condition operators: compilation of a `Condition` block and evaluation against a request.

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::Value as Json;

use crate::template::{ArnValue, StrValue, value_str};
use crate::{PolicyError, Request, Value, msg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    StrEq,
    StrEqCi,
    StrLike,
    Num(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn test<T: PartialOrd>(self, ctx: T, pol: T) -> bool {
        match self {
            Cmp::Eq => ctx == pol,
            Cmp::Lt => ctx < pol,
            Cmp::Le => ctx <= pol,
            Cmp::Gt => ctx > pol,
            Cmp::Ge => ctx >= pol,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetQ {
    None,
    ForAnyValue,
    ForAllValues,
}

/// One policy value, compiled for its operator. `None` inside = not a valid value for the
/// operator: it matches nothing.
#[derive(Clone, Debug)]
enum CVal {
    Str(StrValue),
    Arn(ArnValue),
    Num(Option<f64>),
    Date(Option<i64>),
    Bool(Option<bool>),
    Binary(String),
    Ip(Option<Cidr>),
}

/// One (operator, condition key) pair of a Condition block.
#[derive(Clone, Debug)]
pub(crate) struct Cond {
    base: Base,
    negated: bool,
    if_exists: bool,
    set: SetQ,
    /// Lowercased condition key.
    key: String,
    values: Vec<CVal>,
}

fn base_of(name: &str) -> Option<(Base, bool)> {
    use Base::*;
    Some(match name {
        "stringequals" => (StrEq, false),
        "stringnotequals" => (StrEq, true),
        "stringequalsignorecase" => (StrEqCi, false),
        "stringnotequalsignorecase" => (StrEqCi, true),
        "stringlike" => (StrLike, false),
        "stringnotlike" => (StrLike, true),
        "numericequals" => (Num(Cmp::Eq), false),
        "numericnotequals" => (Num(Cmp::Eq), true),
        "numericlessthan" => (Num(Cmp::Lt), false),
        "numericlessthanequals" => (Num(Cmp::Le), false),
        "numericgreaterthan" => (Num(Cmp::Gt), false),
        "numericgreaterthanequals" => (Num(Cmp::Ge), false),
        "dateequals" => (Date(Cmp::Eq), false),
        "datenotequals" => (Date(Cmp::Eq), true),
        "datelessthan" => (Date(Cmp::Lt), false),
        "datelessthanequals" => (Date(Cmp::Le), false),
        "dategreaterthan" => (Date(Cmp::Gt), false),
        "dategreaterthanequals" => (Date(Cmp::Ge), false),
        "bool" => (Bool, false),
        "binaryequals" => (Binary, false),
        "ipaddress" => (Ip, false),
        "notipaddress" => (Ip, true),
        "arnequals" | "arnlike" => (Arn, false),
        "arnnotequals" | "arnnotlike" => (Arn, true),
        "null" => (Null, false),
        _ => return None,
    })
}

/// Parses an operator name (case-insensitive) with its optional set prefix and `IfExists` suffix.
fn parse_operator(op: &str) -> Option<(Base, bool, bool, SetQ)> {
    let lower = op.to_ascii_lowercase();
    let (set, rest) = if let Some(r) = lower.strip_prefix("foranyvalue:") {
        (SetQ::ForAnyValue, r)
    } else if let Some(r) = lower.strip_prefix("forallvalues:") {
        (SetQ::ForAllValues, r)
    } else {
        (SetQ::None, lower.as_str())
    };
    let (if_exists, rest) = match rest.strip_suffix("ifexists") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (base, negated) = base_of(rest)?;
    if base == Base::Null && (if_exists || set != SetQ::None) {
        return None;
    }
    Some((base, negated, if_exists, set))
}

/// Compiles a `Condition` element. `vars`: policy variables are enabled (Version 2012-10-17).
pub(crate) fn compile(cond: &Json, vars: bool) -> Result<Vec<Cond>, PolicyError> {
    let ops = cond
        .as_object()
        .ok_or_else(|| PolicyError::new(msg::CONDITION_TYPE))?;
    let mut out = Vec::new();
    for (op, keys) in ops {
        let (base, negated, if_exists, set) =
            parse_operator(op).ok_or_else(|| PolicyError::new(msg::unknown_operator(op)))?;
        let keys = keys
            .as_object()
            .ok_or_else(|| PolicyError::new(msg::CONDITION_TYPE))?;
        for (key, vals) in keys {
            let raw: Vec<&Json> = match vals {
                Json::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            let mut values = Vec::with_capacity(raw.len());
            for v in raw {
                let s: Cow<'_, str> = match v {
                    Json::String(s) => Cow::Borrowed(s),
                    Json::Number(n) => Cow::Owned(n.to_string()),
                    Json::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
                    _ => return Err(PolicyError::new(msg::CONDITION_VALUE_TYPE)),
                };
                values.push(compile_value(base, &s, vars));
            }
            out.push(Cond {
                base,
                negated,
                if_exists,
                set,
                key: key.to_lowercase(),
                values,
            });
        }
    }
    Ok(out)
}

fn compile_value(base: Base, s: &str, vars: bool) -> CVal {
    match base {
        Base::StrEq | Base::StrEqCi => CVal::Str(StrValue::new(s, false, vars)),
        Base::StrLike => CVal::Str(StrValue::new(s, true, vars)),
        Base::Arn => CVal::Arn(ArnValue::new(s, vars)),
        Base::Num(_) => CVal::Num(s.trim().parse::<f64>().ok().filter(|f| f.is_finite())),
        Base::Date(_) => CVal::Date(parse_date(s)),
        Base::Bool | Base::Null => CVal::Bool(parse_bool(s)),
        Base::Binary => CVal::Binary(s.to_owned()),
        Base::Ip => CVal::Ip(Cidr::parse(s)),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A date as epoch milliseconds: ISO 8601 (`2026-01-01T00:00:00Z`, with offset or fraction, or a
/// bare date `2026-01-01`, or a local date-time taken as UTC) or epoch seconds.
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let s = s.trim();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && !s[1..].contains('-')
    {
        let secs: f64 = s.parse().ok()?;
        return Some((secs * 1000.0).round() as i64);
    }
    let ms = |nanos: i128| i64::try_from(nanos / 1_000_000).ok();
    if let Ok(d) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return ms(d.unix_timestamp_nanos());
    }
    if let Ok(d) = time::OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return ms(d.unix_timestamp_nanos());
    }
    if let Ok(d) = time::PrimitiveDateTime::parse(s, &Iso8601::DEFAULT) {
        return ms(d.assume_utc().unix_timestamp_nanos());
    }
    if let Ok(d) = time::Date::parse(s, &Iso8601::DEFAULT) {
        return ms(d.midnight().assume_utc().unix_timestamp_nanos());
    }
    None
}

/// An address block (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok()?
            }
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { net, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.net.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            other => other,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// One context value: a single value, or one element of a multi-valued key.
#[derive(Clone, Copy)]
enum Item<'a> {
    Val(&'a Value),
    Str(&'a str),
}

impl<'a> Item<'a> {
    fn as_str(self) -> Option<Cow<'a, str>> {
        match self {
            Item::Str(s) => Some(Cow::Borrowed(s)),
            Item::Val(v) => value_str(v),
        }
    }

    fn text(self) -> Option<&'a str> {
        match self {
            Item::Str(s) => Some(s),
            Item::Val(Value::String(s)) => Some(s),
            Item::Val(_) => None,
        }
    }

    fn as_number(self) -> Option<f64> {
        match self {
            Item::Val(Value::Number(n)) => Some(*n),
            Item::Val(_) | Item::Str(_) => self.text()?.trim().parse().ok(),
        }
    }

    fn as_date(self) -> Option<i64> {
        match self {
            Item::Val(Value::Date(ms)) => Some(*ms),
            Item::Val(Value::Number(secs)) => Some((secs * 1000.0).round() as i64),
            Item::Val(_) | Item::Str(_) => parse_date(self.text()?),
        }
    }

    fn as_bool(self) -> Option<bool> {
        match self {
            Item::Val(Value::Bool(b)) => Some(*b),
            Item::Val(_) | Item::Str(_) => parse_bool(self.text()?),
        }
    }

    fn as_ip(self) -> Option<IpAddr> {
        match self {
            Item::Val(Value::Ip(ip)) => Some(*ip),
            Item::Val(_) | Item::Str(_) => self.text()?.trim().parse().ok(),
        }
    }
}

impl Cond {
    /// Whether one context value matches one policy value (the positive sense of the operator).
    fn matches_value(&self, pv: &CVal, item: Item<'_>, req: &Request<'_>) -> bool {
        match (self.base, pv) {
            (Base::StrEq | Base::StrLike, CVal::Str(p)) => {
                item.as_str().is_some_and(|s| p.matches(&s, false, req))
            }
            (Base::StrEqCi, CVal::Str(p)) => {
                item.as_str().is_some_and(|s| p.matches(&s, true, req))
            }
            (Base::Arn, CVal::Arn(p)) => item.as_str().is_some_and(|s| p.matches(&s, req)),
            (Base::Num(cmp), CVal::Num(Some(p))) => {
                item.as_number().is_some_and(|n| cmp.test(n, *p))
            }
            (Base::Date(cmp), CVal::Date(Some(p))) => {
                item.as_date().is_some_and(|d| cmp.test(d, *p))
            }
            (Base::Bool, CVal::Bool(Some(p))) => item.as_bool() == Some(*p),
            (Base::Binary, CVal::Binary(p)) => item.as_str().is_some_and(|s| s == p.as_str()),
            (Base::Ip, CVal::Ip(Some(c))) => item.as_ip().is_some_and(|ip| c.contains(ip)),
            _ => false,
        }
    }

    /// Whether one context value matches any of the policy values.
    fn matches_any(&self, item: Item<'_>, req: &Request<'_>) -> bool {
        self.values
            .iter()
            .any(|pv| self.matches_value(pv, item, req))
    }

    /// Evaluates this condition for `req` (no allocation).
    pub(crate) fn eval(&self, req: &Request<'_>) -> bool {
        let items = match req.context.get_lower(&self.key) {
            Some(Value::Strings(v)) => Items::Many(v),
            Some(v) => Items::One(Item::Val(v)),
            // aws:PrincipalAccount defaults to the caller's account.
            None if self.key == "aws:principalaccount" => Items::One(Item::Str(req.caller.account)),
            None => Items::Absent,
        };
        let empty = matches!(items, Items::Many(v) if v.is_empty());
        if self.base == Base::Null {
            // Null: true = the key is absent (an empty multi-valued key counts as absent).
            let missing = matches!(items, Items::Absent) || empty;
            return self
                .values
                .iter()
                .any(|v| matches!(v, CVal::Bool(Some(b)) if *b == missing));
        }
        if matches!(items, Items::Absent) {
            return match self.set {
                SetQ::ForAllValues => true,
                SetQ::ForAnyValue => self.if_exists,
                SetQ::None => self.if_exists || self.negated,
            };
        }
        match self.set {
            SetQ::None => {
                if empty {
                    return self.if_exists || self.negated;
                }
                items.any(|i| self.matches_any(i, req)) != self.negated
            }
            SetQ::ForAnyValue => !empty && items.any(|i| self.matches_any(i, req) != self.negated),
            SetQ::ForAllValues => items.all(|i| self.matches_any(i, req) != self.negated),
        }
    }
}

/// The context values of one key.
#[derive(Clone, Copy)]
enum Items<'a> {
    Absent,
    One(Item<'a>),
    Many(&'a [String]),
}

impl<'a> Items<'a> {
    fn any(self, mut f: impl FnMut(Item<'a>) -> bool) -> bool {
        match self {
            Items::Absent => false,
            Items::One(i) => f(i),
            Items::Many(v) => v.iter().any(|s| f(Item::Str(s))),
        }
    }

    fn all(self, mut f: impl FnMut(Item<'a>) -> bool) -> bool {
        match self {
            Items::Absent => true,
            Items::One(i) => f(i),
            Items::Many(v) => v.iter().all(|s| f(Item::Str(s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("0"), Some(0));
        assert_eq!(parse_date("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_date("2020-01-01T00:00:00Z"), Some(1_577_836_800_000));
        assert_eq!(
            parse_date("2020-01-01T01:00:00+01:00"),
            Some(1_577_836_800_000)
        );
        assert_eq!(parse_date("2020-01-01"), Some(1_577_836_800_000));
        assert_eq!(parse_date("2020-01-01T00:00:00"), Some(1_577_836_800_000));
        assert_eq!(
            parse_date("2020-01-01T00:00:00.500Z"),
            Some(1_577_836_800_500)
        );
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").expect("cidr");
        assert!(c.contains("10.1.2.3".parse().expect("ip")));
        assert!(!c.contains("11.0.0.1".parse().expect("ip")));
        assert!(c.contains("::ffff:10.0.0.1".parse().expect("ip")));
        let all = Cidr::parse("0.0.0.0/0").expect("cidr");
        assert!(all.contains("1.2.3.4".parse().expect("ip")));
        let v6 = Cidr::parse("2001:db8::/32").expect("cidr");
        assert!(v6.contains("2001:db8::1".parse().expect("ip")));
        assert!(!v6.contains("2001:db9::1".parse().expect("ip")));
        assert!(!v6.contains("10.0.0.1".parse().expect("ip")));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0/").is_none());
        assert!(Cidr::parse("nope").is_none());
        assert!(
            Cidr::parse("203.0.113.7")
                .expect("ip")
                .contains("203.0.113.7".parse().expect("ip"))
        );
    }

    #[test]
    fn operator_names() {
        assert!(parse_operator("StringEquals").is_some());
        assert!(parse_operator("ForAnyValue:StringLikeIfExists").is_some());
        assert!(parse_operator("NullIfExists").is_none());
        assert!(parse_operator("ForAllValues:Null").is_none());
        assert!(parse_operator("StringEqual").is_none());
        assert!(parse_operator("IfExists").is_none());
    }
}
