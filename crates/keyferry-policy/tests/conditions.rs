//! Condition operators, IfExists, set operators and policy variables in conditions. Rules from the
//! IAM User Guide (IAM-UG): reference_policies_elements_condition_operators (operators),
//! reference_policies_condition-single-vs-multi-valued-context-keys (set operators),
//! reference_policies_variables (variables), reference_policies_elements_condition (AND/OR).

#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use common::*;
use keyferry_policy::{Context, Value};

fn s(v: &str) -> Value {
    Value::from(v)
}

fn many(v: &[&str]) -> Value {
    Value::Strings(v.iter().map(|x| (*x).to_owned()).collect())
}

fn with(key: &str, v: Value) -> Context {
    ctx(&[(key, v)])
}

#[test]
fn string_equals_and_not_equals() {
    // IAM-UG condition operators, String: StringEquals is exact and case-sensitive; wildcards are
    // literal; StringNotEquals is its negation; several values are ORed.
    let eq = r#"{"StringEquals":{"kms:CallerAccount":["111122223333","444455556666"]}}"#;
    assert!(cond_allows(
        eq,
        &with("kms:CallerAccount", s("111122223333"))
    ));
    assert!(cond_allows(
        eq,
        &with("kms:CallerAccount", s("444455556666"))
    ));
    assert!(!cond_allows(
        eq,
        &with("kms:CallerAccount", s("999999999999"))
    ));
    assert!(!cond_allows(eq, &Context::new()));
    let star = r#"{"StringEquals":{"aws:username":"a*"}}"#;
    assert!(!cond_allows(star, &with("aws:username", s("abc"))));
    assert!(cond_allows(star, &with("aws:username", s("a*"))));
    let case = r#"{"StringEquals":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}"#;
    assert!(!cond_allows(
        case,
        &with("kms:EncryptionAlgorithm", s("symmetric_default"))
    ));

    let ne = r#"{"StringNotEquals":{"kms:CallerAccount":["111122223333","444455556666"]}}"#;
    assert!(!cond_allows(
        ne,
        &with("kms:CallerAccount", s("111122223333"))
    ));
    assert!(cond_allows(
        ne,
        &with("kms:CallerAccount", s("999999999999"))
    ));
    // Negated operator, key absent: true.
    assert!(cond_allows(ne, &Context::new()));
}

#[test]
fn string_ignore_case() {
    // IAM-UG condition operators: StringEqualsIgnoreCase / StringNotEqualsIgnoreCase.
    let eq = r#"{"StringEqualsIgnoreCase":{"kms:ViaService":"EC2.us-east-1.amazonaws.com"}}"#;
    assert!(cond_allows(
        eq,
        &with("kms:ViaService", s("ec2.US-EAST-1.amazonaws.com"))
    ));
    assert!(!cond_allows(
        eq,
        &with("kms:ViaService", s("s3.us-east-1.amazonaws.com"))
    ));
    let ne = r#"{"StringNotEqualsIgnoreCase":{"kms:ViaService":"EC2.us-east-1.amazonaws.com"}}"#;
    assert!(!cond_allows(
        ne,
        &with("kms:ViaService", s("ec2.us-east-1.AMAZONAWS.com"))
    ));
    assert!(cond_allows(
        ne,
        &with("kms:ViaService", s("s3.us-east-1.amazonaws.com"))
    ));
}

#[test]
fn string_like_and_not_like() {
    // IAM-UG condition operators: StringLike is case-sensitive with * and ? anywhere in the value.
    let like = r#"{"StringLike":{"kms:RequestAlias":["alias/app-*","alias/db-??"]}}"#;
    assert!(cond_allows(
        like,
        &with("kms:RequestAlias", s("alias/app-prod"))
    ));
    assert!(cond_allows(
        like,
        &with("kms:RequestAlias", s("alias/db-01"))
    ));
    assert!(!cond_allows(
        like,
        &with("kms:RequestAlias", s("alias/db-001"))
    ));
    assert!(!cond_allows(
        like,
        &with("kms:RequestAlias", s("alias/APP-prod"))
    ));
    let not_like = r#"{"StringNotLike":{"kms:RequestAlias":["alias/app-*","alias/db-??"]}}"#;
    assert!(!cond_allows(
        not_like,
        &with("kms:RequestAlias", s("alias/app-x"))
    ));
    assert!(cond_allows(
        not_like,
        &with("kms:RequestAlias", s("alias/other"))
    ));
    assert!(cond_allows(not_like, &Context::new()));
}

#[test]
fn numeric_operators() {
    // IAM-UG condition operators, Numeric: all six; policy values may be JSON numbers or strings.
    let n = |op: &str, v: &str, ctx_v: f64| {
        cond_allows(
            &format!(r#"{{"{op}":{{"kms:x":{v}}}}}"#),
            &with("kms:x", Value::Number(ctx_v)),
        )
    };
    assert!(n("NumericEquals", "10", 10.0));
    assert!(n("NumericEquals", "\"10\"", 10.0));
    assert!(n("NumericEquals", "10.5", 10.5));
    assert!(!n("NumericEquals", "10", 11.0));
    assert!(n("NumericNotEquals", "10", 11.0));
    assert!(!n("NumericNotEquals", "10", 10.0));
    assert!(n("NumericLessThan", "10", 9.0));
    assert!(!n("NumericLessThan", "10", 10.0));
    assert!(n("NumericLessThanEquals", "10", 10.0));
    assert!(!n("NumericLessThanEquals", "10", 10.1));
    assert!(n("NumericGreaterThan", "10", 11.0));
    assert!(!n("NumericGreaterThan", "10", 10.0));
    assert!(n("NumericGreaterThanEquals", "10", 10.0));
    assert!(!n("NumericGreaterThanEquals", "10", 9.0));
    // A context value given as a numeric string compares as a number.
    assert!(cond_allows(
        r#"{"NumericLessThan":{"kms:x":"100"}}"#,
        &with("kms:x", s("7"))
    ));
    // Not a number: never matches (the positive operator is false, the negated one true).
    assert!(!cond_allows(
        r#"{"NumericEquals":{"kms:x":"ten"}}"#,
        &with("kms:x", Value::Number(10.0))
    ));
    assert!(!cond_allows(
        r#"{"NumericEquals":{"kms:x":"10"}}"#,
        &with("kms:x", s("ten"))
    ));
    assert!(cond_allows(
        r#"{"NumericNotEquals":{"kms:x":"ten"}}"#,
        &with("kms:x", Value::Number(10.0))
    ));
    // Key absent: false.
    assert!(!cond_allows(
        r#"{"NumericLessThan":{"kms:x":10}}"#,
        &Context::new()
    ));
}

#[test]
fn date_operators() {
    // IAM-UG condition operators, Date: ISO 8601 or epoch seconds; all six operators.
    const T: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let d = |op: &str, v: &str, ms: i64| {
        cond_allows(
            &format!(r#"{{"{op}":{{"aws:CurrentTime":{v}}}}}"#),
            &with("aws:CurrentTime", Value::Date(ms)),
        )
    };
    for v in [
        r#""2026-01-01T00:00:00Z""#,
        r#""2026-01-01""#,
        r#""1767225600""#,
        "1767225600",
        r#""2026-01-01T01:00:00+01:00""#,
    ] {
        assert!(d("DateEquals", v, T), "{v}");
        assert!(!d("DateNotEquals", v, T), "{v}");
    }
    assert!(d("DateNotEquals", r#""2026-01-01T00:00:00Z""#, T + 1000));
    assert!(d("DateLessThan", r#""2026-01-01T00:00:00Z""#, T - 1));
    assert!(!d("DateLessThan", r#""2026-01-01T00:00:00Z""#, T));
    assert!(d("DateLessThanEquals", r#""2026-01-01T00:00:00Z""#, T));
    assert!(!d("DateLessThanEquals", r#""2026-01-01T00:00:00Z""#, T + 1));
    assert!(d("DateGreaterThan", r#""2026-01-01T00:00:00Z""#, T + 1));
    assert!(!d("DateGreaterThan", r#""2026-01-01T00:00:00Z""#, T));
    assert!(d("DateGreaterThanEquals", r#""2026-01-01T00:00:00Z""#, T));
    assert!(!d(
        "DateGreaterThanEquals",
        r#""2026-01-01T00:00:00Z""#,
        T - 1
    ));
    // kms:ValidTo arrives as epoch seconds in a string or number: compared as a date.
    let valid_to = r#"{"DateLessThan":{"kms:ValidTo":"2026-06-01T00:00:00Z"}}"#;
    assert!(cond_allows(valid_to, &with("kms:ValidTo", s("1767225600"))));
    assert!(cond_allows(
        valid_to,
        &with("kms:ValidTo", Value::Number(1_767_225_600.0))
    ));
    assert!(!cond_allows(
        valid_to,
        &with("kms:ValidTo", s("2027-01-01T00:00:00Z"))
    ));
    assert!(!cond_allows(valid_to, &Context::new()));
    assert!(!cond_allows(
        r#"{"DateLessThan":{"kms:ValidTo":"soon"}}"#,
        &with("kms:ValidTo", Value::Date(0))
    ));
}

#[test]
fn bool_operator() {
    // IAM-UG condition operators, Boolean: JSON true/false or the strings "true"/"false".
    for v in ["true", "\"true\"", "\"True\""] {
        let c = format!(r#"{{"Bool":{{"aws:SecureTransport":{v}}}}}"#);
        assert!(
            cond_allows(&c, &with("aws:SecureTransport", Value::Bool(true))),
            "{v}"
        );
        assert!(
            cond_allows(&c, &with("aws:SecureTransport", s("true"))),
            "{v}"
        );
        assert!(
            !cond_allows(&c, &with("aws:SecureTransport", Value::Bool(false))),
            "{v}"
        );
        assert!(!cond_allows(&c, &Context::new()), "{v}");
    }
    let f = r#"{"Bool":{"aws:SecureTransport":false}}"#;
    assert!(cond_allows(
        f,
        &with("aws:SecureTransport", Value::Bool(false))
    ));
    assert!(!cond_allows(
        f,
        &with("aws:SecureTransport", Value::Bool(true))
    ));
}

#[test]
fn binary_equals() {
    // IAM-UG condition operators, Binary: base64 values compared byte for byte.
    let c = r#"{"BinaryEquals":{"kms:x":"QmluYXJ5VmFsdWU="}}"#;
    assert!(cond_allows(c, &with("kms:x", s("QmluYXJ5VmFsdWU="))));
    assert!(!cond_allows(c, &with("kms:x", s("QmluYXJ5VmFsdWF="))));
    assert!(!cond_allows(c, &Context::new()));
}

#[test]
fn ip_address_operators() {
    // IAM-UG condition operators, IP address: CIDR (RFC 4632), IPv4 and IPv6.
    let c = r#"{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]}}"#;
    let ip = |a: &str| with("aws:SourceIp", Value::Ip(a.parse().unwrap()));
    assert!(cond_allows(c, &ip("203.0.113.77")));
    assert!(cond_allows(c, &ip("2001:db8:1234:5678::1")));
    assert!(!cond_allows(c, &ip("198.51.100.1")));
    assert!(!cond_allows(c, &ip("2001:db8:1234:5679::1")));
    assert!(cond_allows(c, &with("aws:SourceIp", s("203.0.113.1"))));
    assert!(!cond_allows(c, &Context::new()));
    let n = r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#;
    assert!(!cond_allows(n, &ip("203.0.113.5")));
    assert!(cond_allows(n, &ip("10.0.0.1")));
    let single = r#"{"IpAddress":{"aws:SourceIp":"10.1.2.3"}}"#;
    assert!(cond_allows(single, &ip("10.1.2.3")));
    assert!(!cond_allows(single, &ip("10.1.2.4")));
}

#[test]
fn arn_operators() {
    // IAM-UG condition operators, ARN: each of the six colon-separated segments is matched
    // separately (wildcards do not cross a colon); ArnEquals and ArnLike behave alike; case-sensitive.
    let arn = "arn:aws:iam::111122223333:role/app";
    for op in ["ArnEquals", "ArnLike"] {
        let c = format!(r#"{{"{op}":{{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}}}}"#);
        assert!(cond_allows(&c, &with("aws:PrincipalArn", s(arn))), "{op}");
        assert!(
            !cond_allows(
                &c,
                &with("aws:PrincipalArn", s("arn:aws:iam::111122223333:user/app"))
            ),
            "{op}"
        );
        assert!(
            !cond_allows(
                &c,
                &with("aws:PrincipalArn", s("arn:aws:IAM::111122223333:role/app"))
            ),
            "{op}"
        );
        assert!(
            !cond_allows(&c, &with("aws:PrincipalArn", s("not-an-arn"))),
            "{op}"
        );
        assert!(!cond_allows(&c, &Context::new()), "{op}");
    }
    // A * does not cross a colon: here the third segment's * cannot absorb "sns:us-east-1"
    // (a plain wildcard match would).
    let seg = r#"{"ArnLike":{"aws:SourceArn":"arn:aws:*:111122223333:*:*"}}"#;
    assert!(!cond_allows(
        seg,
        &with(
            "aws:SourceArn",
            s("arn:aws:sns:us-east-1:111122223333:topic")
        )
    ));
    assert!(cond_allows(
        seg,
        &with("aws:SourceArn", s("arn:aws:sns:111122223333:x:topic"))
    ));
    let six = r#"{"ArnLike":{"aws:SourceArn":"arn:aws:*:us-east-1:*:*"}}"#;
    // The sixth segment takes the rest, colons included.
    assert!(cond_allows(
        six,
        &with(
            "aws:SourceArn",
            s("arn:aws:sns:us-east-1:111122223333:topic:sub")
        )
    ));
    assert!(!cond_allows(
        six,
        &with(
            "aws:SourceArn",
            s("arn:aws:sns:eu-west-1:111122223333:topic")
        )
    ));
    let resource = r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:111122223333:topic"}}"#;
    assert!(!cond_allows(
        resource,
        &with(
            "aws:SourceArn",
            s("arn:aws:sns:us-east-1:111122223333:topic:sub")
        )
    ));
    // Choice (README): a value with fewer than six segments is matched against the whole ARN.
    let any = r#"{"ArnLike":{"aws:SourceArn":"*"}}"#;
    assert!(cond_allows(
        any,
        &with(
            "aws:SourceArn",
            s("arn:aws:sns:us-east-1:111122223333:topic")
        )
    ));
    for op in ["ArnNotEquals", "ArnNotLike"] {
        let c = format!(r#"{{"{op}":{{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}}}}"#);
        assert!(!cond_allows(&c, &with("aws:PrincipalArn", s(arn))), "{op}");
        assert!(
            cond_allows(
                &c,
                &with("aws:PrincipalArn", s("arn:aws:iam::111122223333:user/x"))
            ),
            "{op}"
        );
        assert!(cond_allows(&c, &Context::new()), "{op}");
    }
}

#[test]
fn null_operator() {
    // IAM-UG condition operators, Null: true = the key is absent, false = present.
    let absent = r#"{"Null":{"kms:EncryptionContextKeys":"true"}}"#;
    let present = r#"{"Null":{"kms:EncryptionContextKeys":false}}"#;
    let has = with("kms:EncryptionContextKeys", many(&["Dept"]));
    assert!(cond_allows(absent, &Context::new()));
    assert!(!cond_allows(absent, &has));
    assert!(!cond_allows(present, &Context::new()));
    assert!(cond_allows(present, &has));
    // An empty multi-valued key counts as absent.
    assert!(cond_allows(
        absent,
        &with("kms:EncryptionContextKeys", many(&[]))
    ));
}

#[test]
fn if_exists() {
    // IAM-UG condition operators, ...IfExists: true when the key is absent, else the operator.
    let c = r#"{"StringEqualsIfExists":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}"#;
    assert!(cond_allows(c, &Context::new()));
    assert!(cond_allows(
        c,
        &with("kms:ViaService", s("ec2.us-east-1.amazonaws.com"))
    ));
    assert!(!cond_allows(
        c,
        &with("kms:ViaService", s("s3.us-east-1.amazonaws.com"))
    ));
    let n = r#"{"NumericLessThanIfExists":{"kms:x":5}}"#;
    assert!(cond_allows(n, &Context::new()));
    assert!(!cond_allows(n, &with("kms:x", Value::Number(6.0))));
    let b = r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}"#;
    assert!(cond_allows(b, &Context::new()));
    assert!(!cond_allows(
        b,
        &with("aws:MultiFactorAuthPresent", Value::Bool(false))
    ));
    let neg = r#"{"StringNotEqualsIfExists":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}"#;
    assert!(cond_allows(neg, &Context::new()));
    assert!(!cond_allows(
        neg,
        &with("kms:ViaService", s("ec2.us-east-1.amazonaws.com"))
    ));
}

#[test]
fn for_any_value() {
    // IAM-UG single-vs-multi-valued context keys, ForAnyValue: at least one request value matches
    // one policy value; a missing key or an empty set is false (DG conditions-kms
    // kms:EncryptionContextKeys: an empty context fails).
    let c = r#"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":["Dept","Project"]}}"#;
    let k = "kms:EncryptionContextKeys";
    assert!(cond_allows(c, &with(k, many(&["Dept"]))));
    assert!(cond_allows(c, &with(k, many(&["Other", "Project"]))));
    assert!(!cond_allows(c, &with(k, many(&["Other"]))));
    assert!(!cond_allows(c, &with(k, many(&[]))));
    assert!(!cond_allows(c, &Context::new()));
    // A single-valued context key is a set of one.
    assert!(cond_allows(c, &with(k, s("Dept"))));
    // ForAnyValue with a negated operator: some request value matches none of the policy values.
    let n = r#"{"ForAnyValue:StringNotEquals":{"kms:EncryptionContextKeys":["Dept","Project"]}}"#;
    assert!(cond_allows(n, &with(k, many(&["Dept", "Other"]))));
    assert!(!cond_allows(n, &with(k, many(&["Dept", "Project"]))));
    assert!(!cond_allows(n, &Context::new()));
    // IfExists on a set operator: a missing key is true.
    let ie = r#"{"ForAnyValue:StringEqualsIfExists":{"kms:EncryptionContextKeys":"Dept"}}"#;
    assert!(cond_allows(ie, &Context::new()));
    assert!(!cond_allows(ie, &with(k, many(&["Other"]))));
}

#[test]
fn for_all_values() {
    // IAM-UG single-vs-multi-valued context keys, ForAllValues: every request value matches a
    // policy value; a missing key or an empty set is true (DG conditions-kms: an empty context passes).
    let c = r#"{"ForAllValues:StringLike":{"aws:TagKeys":["Dept","proj-*"]}}"#;
    let k = "aws:TagKeys";
    assert!(cond_allows(
        c,
        &with(k, many(&["Dept", "proj-a", "proj-b"]))
    ));
    assert!(!cond_allows(c, &with(k, many(&["Dept", "Owner"]))));
    assert!(cond_allows(c, &with(k, many(&[]))));
    assert!(cond_allows(c, &Context::new()));
    // ForAllValues with a negated operator: no request value is in the list.
    let n = r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["Secret"]}}"#;
    assert!(cond_allows(n, &with(k, many(&["Dept", "Owner"]))));
    assert!(!cond_allows(n, &with(k, many(&["Dept", "Secret"]))));
}

#[test]
fn multi_valued_key_without_set_operator() {
    // Choice (README): a single-valued operator on a multi-valued key is true for a positive operator
    // when any request value matches; a negated operator is true when no request value matches.
    let k = "kms:EncryptionContextKeys";
    let c = r#"{"StringEquals":{"kms:EncryptionContextKeys":"Dept"}}"#;
    assert!(cond_allows(c, &with(k, many(&["Other", "Dept"]))));
    assert!(!cond_allows(c, &with(k, many(&["Other"]))));
    assert!(!cond_allows(c, &with(k, many(&[]))));
    let n = r#"{"StringNotEquals":{"kms:EncryptionContextKeys":"Dept"}}"#;
    assert!(!cond_allows(n, &with(k, many(&["Other", "Dept"]))));
    assert!(cond_allows(n, &with(k, many(&["Other"]))));
}

#[test]
fn keys_and_operators_are_anded_values_ored() {
    // IAM-UG reference_policies_elements_condition: several operators or keys are ANDed, several
    // values for one key are ORed.
    let c = r#"{"StringEquals":{"kms:CallerAccount":"111122223333","kms:ViaService":["a.amazonaws.com","b.amazonaws.com"]},
               "Bool":{"aws:SecureTransport":"true"}}"#;
    let full = ctx(&[
        ("kms:CallerAccount", s("111122223333")),
        ("kms:ViaService", s("b.amazonaws.com")),
        ("aws:SecureTransport", Value::Bool(true)),
    ]);
    assert!(cond_allows(c, &full));
    let mut partial = full.clone();
    partial.set("aws:SecureTransport", Value::Bool(false));
    assert!(!cond_allows(c, &partial));
    let mut other = full.clone();
    other.set("kms:ViaService", s("c.amazonaws.com"));
    assert!(!cond_allows(c, &other));
    let mut missing = full;
    missing.remove("kms:CallerAccount");
    assert!(!cond_allows(c, &missing));
}

#[test]
fn condition_key_names_are_case_insensitive() {
    // IAM-UG reference_policies_elements_condition: condition key names are not case-sensitive;
    // operator names are matched without regard to case here too (README).
    let c = r#"{"stringequals":{"KMS:CALLERACCOUNT":"111122223333"}}"#;
    assert!(cond_allows(
        c,
        &with("kms:calleraccount", s("111122223333"))
    ));
    assert!(cond_allows(
        c,
        &with("Kms:CallerAccount", s("111122223333"))
    ));
    let ctx = with("Kms:CallerAccount", s("x"));
    assert_eq!(ctx.get("KMS:CALLERACCOUNT"), Some(&s("x")));
    // Per-key EncryptionContext keys.
    let ec = r#"{"StringEquals":{"kms:EncryptionContext:Department":"IT"}}"#;
    assert!(cond_allows(
        ec,
        &with("kms:encryptioncontext:department", s("IT"))
    ));
    assert!(!cond_allows(
        ec,
        &with("kms:encryptioncontext:department", s("it"))
    ));
}

#[test]
fn variables_in_condition_values() {
    // IAM-UG reference_policies_variables: variables in String and ARN condition values; a missing
    // key without default makes that value match nothing; the default form supplies a value.
    let c = r#"{"StringEquals":{"aws:PrincipalTag/team":"${aws:ResourceTag/team}"}}"#;
    let both = ctx(&[
        ("aws:PrincipalTag/team", s("blue")),
        ("aws:ResourceTag/team", s("blue")),
    ]);
    assert!(cond_allows(c, &both));
    let differ = ctx(&[
        ("aws:PrincipalTag/team", s("blue")),
        ("aws:ResourceTag/team", s("red")),
    ]);
    assert!(!cond_allows(c, &differ));
    let no_tag = ctx(&[("aws:PrincipalTag/team", s(""))]);
    assert!(!cond_allows(c, &no_tag));
    // The value with a missing variable matches nothing, so the negated operator is true.
    let n = r#"{"StringNotEquals":{"aws:PrincipalTag/team":"${aws:ResourceTag/team}"}}"#;
    assert!(cond_allows(n, &no_tag));
    // Default value.
    let d = r#"{"StringEquals":{"kms:RequestAlias":"alias/${aws:username, 'shared'}"}}"#;
    assert!(cond_allows(d, &with("kms:RequestAlias", s("alias/shared"))));
    let alice = ctx(&[
        ("kms:RequestAlias", s("alias/alice")),
        ("aws:username", s("alice")),
    ]);
    assert!(cond_allows(d, &alice));
    // StringLike: the pattern around the variable keeps its wildcards, the value is literal.
    let l = r#"{"StringLike":{"kms:RequestAlias":"alias/${aws:username}/*"}}"#;
    let ok = ctx(&[
        ("kms:RequestAlias", s("alias/alice/key1")),
        ("aws:username", s("alice")),
    ]);
    assert!(cond_allows(l, &ok));
    let star = ctx(&[
        ("kms:RequestAlias", s("alias/alice/key1")),
        ("aws:username", s("*")),
    ]);
    assert!(!cond_allows(l, &star));
    // ARN operators; aws:PrincipalAccount falls back to the caller's account.
    let a = r#"{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::${aws:PrincipalAccount}-*"}}"#;
    assert!(cond_allows(
        a,
        &with("aws:SourceArn", s("arn:aws:s3:::111122223333-logs"))
    ));
    assert!(!cond_allows(
        a,
        &with("aws:SourceArn", s("arn:aws:s3:::444455556666-logs"))
    ));
    // aws:userid from the context.
    let u = r#"{"StringLike":{"kms:RequestAlias":"alias/${aws:userid}"}}"#;
    let id = ctx(&[
        ("kms:RequestAlias", s("alias/AIDAEXAMPLE")),
        ("aws:userid", s("AIDAEXAMPLE")),
    ]);
    assert!(cond_allows(u, &id));
    // Special characters in StringLike values.
    let sp = r#"{"StringLike":{"kms:RequestAlias":"alias/${*}${?}${$}"}}"#;
    assert!(cond_allows(sp, &with("kms:RequestAlias", s("alias/*?$"))));
    assert!(!cond_allows(sp, &with("kms:RequestAlias", s("alias/ab$"))));
}

#[test]
fn policy_values_may_be_numbers_and_booleans() {
    // IAM-UG reference_policies_elements_condition: values are strings, numbers or booleans.
    assert!(cond_allows(
        r#"{"StringEquals":{"kms:x":12}}"#,
        &with("kms:x", s("12"))
    ));
    assert!(cond_allows(
        r#"{"StringEquals":{"kms:x":true}}"#,
        &with("kms:x", s("true"))
    ));
    assert!(cond_allows(
        r#"{"StringEquals":{"kms:x":"true"}}"#,
        &with("kms:x", Value::Bool(true))
    ));
    assert!(cond_allows(
        r#"{"StringEquals":{"kms:x":[1,"two",false]}}"#,
        &with("kms:x", s("false"))
    ));
}
