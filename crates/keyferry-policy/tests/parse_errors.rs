//! Validation: every PolicyError text (listed in README.md) and the accepted principal forms.
//! Rules: IAM User Guide (IAM-UG) reference_policies_grammar / reference_policies_elements_*,
//! KMS Developer Guide (DG) key-policy-overview, and the task's principal rule.

#![allow(clippy::panic, clippy::unwrap_used)]

use keyferry_policy::{Policy, PolicyKind};

fn error(json: &str, kind: PolicyKind) -> String {
    match Policy::parse(json, kind) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.message,
    }
}

fn key_err(json: &str) -> String {
    error(json, PolicyKind::Resource)
}

/// A key policy with one statement built from `body` (JSON members without braces).
fn stmt(body: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{{{body}}}]}}"#)
}

const OK: &str = r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*""#;

const INVALID: &str = "Policy contains a statement with one or more invalid principals.";

#[test]
fn not_json() {
    // IAM-UG reference_policies_grammar: a policy is a JSON document.
    for bad in ["", "{", "not json", r#"{"Statement":[}"#, "{\"a\":1}}"] {
        assert_eq!(key_err(bad), "Policy document is not valid JSON.", "{bad}");
    }
}

#[test]
fn not_an_object() {
    // IAM-UG reference_policies_grammar: policy = { <version_block>? <id_block>? <statement_block> }.
    for bad in ["[]", "\"x\"", "42", "null"] {
        assert_eq!(
            key_err(bad),
            "Policy document must be a JSON object.",
            "{bad}"
        );
    }
}

#[test]
fn top_level_elements() {
    // IAM-UG reference_policies_grammar: only Version, Id and Statement at the top level.
    assert_eq!(
        key_err(r#"{"Version":"2012-10-17","Statement":[],"Extra":1}"#),
        "Policy has an unknown element: Extra."
    );
    assert_eq!(
        key_err(r#"{"version":"2012-10-17","Statement":[]}"#),
        "Policy has an unknown element: version."
    );
    assert_eq!(
        key_err(r#"{"Version":"2012-10-17"}"#),
        "Policy document has no Statement."
    );
    assert_eq!(
        key_err(r#"{"Statement":"x"}"#),
        "Policy element Statement must be an object or a list of objects."
    );
    assert_eq!(
        key_err(r#"{"Statement":[1]}"#),
        "Policy element Statement must be an object or a list of objects."
    );
    assert_eq!(
        key_err(r#"{"Id":5,"Statement":[]}"#),
        "Policy element Id must be a string."
    );
}

#[test]
fn version() {
    // IAM-UG reference_policies_elements_version: 2012-10-17 or 2008-10-17; optional.
    assert_eq!(
        key_err(r#"{"Version":"2012-10-18","Statement":[]}"#),
        "Policy has an invalid Version: 2012-10-18."
    );
    assert_eq!(
        key_err(r#"{"Version":"","Statement":[]}"#),
        "Policy has an invalid Version: ."
    );
    assert_eq!(
        key_err(r#"{"Version":20121017,"Statement":[]}"#),
        "Policy element Version must be a string."
    );
    for ok in [
        r#"{"Version":"2012-10-17","Statement":[]}"#,
        r#"{"Version":"2008-10-17","Statement":[]}"#,
        r#"{"Statement":[]}"#,
    ] {
        assert!(Policy::parse(ok, PolicyKind::Resource).is_ok(), "{ok}");
    }
    let p = Policy::parse(
        r#"{"Version":"2008-10-17","Statement":[]}"#,
        PolicyKind::Resource,
    )
    .unwrap();
    assert_eq!(p.version(), Some("2008-10-17"));
}

#[test]
fn statement_elements() {
    // IAM-UG reference_policies_grammar: the statement elements; no others.
    assert_eq!(
        key_err(&stmt(&format!(r#"{OK},"Resources":"*""#))),
        "Policy contains a statement with an unknown element: Resources."
    );
    assert_eq!(
        key_err(&stmt(&format!(r#"{OK},"Sid":7"#))),
        "Policy element Sid must be a string."
    );
    assert_eq!(
        key_err(&stmt(&format!(r#"{OK},"NotAction":"kms:Encrypt""#))),
        "Policy contains a statement with both Action and NotAction."
    );
    assert_eq!(
        key_err(&stmt(&format!(r#"{OK},"NotResource":"*""#))),
        "Policy contains a statement with both Resource and NotResource."
    );
    assert_eq!(
        key_err(&stmt(&format!(r#"{OK},"NotPrincipal":"*""#))),
        "Policy contains a statement with both Principal and NotPrincipal."
    );
    // A single statement object (not in a list) is accepted.
    let single = format!(r#"{{"Statement":{{{OK}}}}}"#);
    assert!(Policy::parse(&single, PolicyKind::Resource).is_ok());
}

#[test]
fn effect() {
    // IAM-UG reference_policies_elements_effect: required, Allow or Deny (case-sensitive).
    let no_effect = r#""Principal":"*","Action":"kms:*","Resource":"*""#;
    assert_eq!(
        key_err(&stmt(no_effect)),
        "Policy contains a statement with no Effect."
    );
    for bad in [r#""allow""#, r#""Permit""#, "true", "[\"Allow\"]"] {
        assert_eq!(
            key_err(&stmt(&format!(r#"{no_effect},"Effect":{bad}"#))),
            "Policy contains a statement with an invalid Effect (it must be Allow or Deny).",
            "{bad}"
        );
    }
}

#[test]
fn action_and_resource_types() {
    // IAM-UG reference_policies_grammar: action/resource blocks are a string or a list of strings.
    let base = r#""Effect":"Allow","Principal":"*""#;
    assert_eq!(
        key_err(&stmt(&format!(r#"{base},"Action":5,"Resource":"*""#))),
        "Policy element Action must be a string or a list of strings."
    );
    assert_eq!(
        key_err(&stmt(&format!(
            r#"{base},"NotAction":["kms:x",1],"Resource":"*""#
        ))),
        "Policy element NotAction must be a string or a list of strings."
    );
    assert_eq!(
        key_err(&stmt(&format!(
            r#"{base},"Action":"kms:*","Resource":{{}}"#
        ))),
        "Policy element Resource must be a string or a list of strings."
    );
    assert_eq!(
        key_err(&stmt(&format!(
            r#"{base},"Action":"kms:*","NotResource":null"#
        ))),
        "Policy element NotResource must be a string or a list of strings."
    );
}

#[test]
fn missing_action_or_resource() {
    // Reference §4 (KMS model, PutKeyPolicy): key policies without Action or Resource are accepted;
    // IAM-UG: identity policies need both; trust policies need Action.
    let key = stmt(r#""Effect":"Allow","Principal":"*""#);
    assert!(Policy::parse(&key, PolicyKind::Resource).is_ok());
    assert_eq!(
        error(
            r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
            PolicyKind::Identity
        ),
        "Policy contains a statement with no Action."
    );
    assert_eq!(
        error(
            r#"{"Statement":{"Effect":"Allow","Action":"kms:*"}}"#,
            PolicyKind::Identity
        ),
        "Policy contains a statement with no Resource."
    );
    assert_eq!(
        error(
            r#"{"Statement":{"Effect":"Allow","Principal":"*"}}"#,
            PolicyKind::Trust
        ),
        "Policy contains a statement with no Action."
    );
    assert_eq!(
        error(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","Resource":"*"}}"#,
            PolicyKind::Trust
        ),
        "Policy contains a statement with a Resource or NotResource, which a trust policy must not have."
    );
}

#[test]
fn principal_required_or_forbidden() {
    // DG key-policy-overview / reference §4: each key policy statement needs a principal; IAM-UG
    // reference_policies_elements_principal: identity-based policies cannot name one.
    let no_principal = stmt(r#""Effect":"Allow","Action":"kms:*","Resource":"*""#);
    assert_eq!(
        key_err(&no_principal),
        "Policy contains a statement with no Principal."
    );
    assert_eq!(
        error(&no_principal, PolicyKind::Trust),
        "Policy contains a statement with no Principal."
    );
    assert!(Policy::parse(&no_principal, PolicyKind::Identity).is_ok());
    for p in [
        r#""Principal":"*""#,
        r#""NotPrincipal":{"AWS":"111122223333"}"#,
    ] {
        assert_eq!(
            error(
                &stmt(&format!(
                    r#""Effect":"Allow",{p},"Action":"kms:*","Resource":"*""#
                )),
                PolicyKind::Identity
            ),
            "Policy contains a statement with a Principal or NotPrincipal, which an identity-based policy must not have."
        );
    }
}

#[test]
fn invalid_principals() {
    // Task rule: valid AWS principals are *, a 12-digit account id, arn:aws:iam::<acct>:root|user/…|role/…,
    // arn:aws:sts::<acct>:assumed-role/<role>/<session>; a Service ends in .amazonaws.com.
    let bad_principals = [
        r#""arn:aws:iam::111122223333:root""#,
        r#""**""#,
        "5",
        "[]",
        "{}",
        r#"{"AWS":[]}"#,
        r#"{"AWS":5}"#,
        r#"{"AWS":["arn:aws:iam::111122223333:root",5]}"#,
        r#"{"AWS":"11112222333"}"#,
        r#"{"AWS":"1111222233334"}"#,
        r#"{"AWS":"alice"}"#,
        r#"{"AWS":"arn:aws:iam::111122223333:group/admins"}"#,
        r#"{"AWS":"arn:aws:iam::111122223333:user/"}"#,
        r#"{"AWS":"arn:aws:iam::111122223333:user/a*"}"#,
        r#"{"AWS":"arn:aws:iam::111122223333:role/*"}"#,
        r#"{"AWS":"arn:aws:iam::11112222333x:root"}"#,
        r#"{"AWS":"arn:aws:iam:us-east-1:111122223333:root"}"#,
        r#"{"AWS":"arn:aws:kms:us-east-1:111122223333:key/abc"}"#,
        r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/app"}"#,
        r#"{"AWS":"arn:aws:sts::111122223333:federated-user/bob"}"#,
        r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/app/"}"#,
        r#"{"AWS":"arn:foo:iam::111122223333:root"}"#,
        r#"{"Service":"ec2"}"#,
        r#"{"Service":".amazonaws.com"}"#,
        r#"{"Service":"ec2.amazonaws.com.evil"}"#,
        r#"{"Service":"*"}"#,
        r#"{"Federated":""}"#,
        r#"{"Other":"x"}"#,
        r#"{"aws":"111122223333"}"#,
    ];
    for p in bad_principals {
        for element in ["Principal", "NotPrincipal"] {
            let j = stmt(&format!(
                r#""Effect":"Allow","{element}":{p},"Action":"kms:*","Resource":"*""#
            ));
            assert_eq!(key_err(&j), INVALID, "{element}: {p}");
        }
    }
}

#[test]
fn valid_principals_and_aws_principals_list() {
    // IAM-UG reference_policies_elements_principal: the accepted forms; aws_principals lists the AWS
    // values as written, once each, without "*".
    let j = r#"{"Version":"2012-10-17","Statement":[
      {"Effect":"Allow","Principal":{"AWS":["*","111122223333","arn:aws:iam::111122223333:root",
        "arn:aws:iam::111122223333:user/alice","arn:aws:iam::111122223333:user/division/team/bob",
        "arn:aws:iam::111122223333:role/service-role/My.Role+=,@_-",
        "arn:aws:sts::111122223333:assumed-role/app/sess@example.com"],
        "Service":["ec2.amazonaws.com","logs.eu-west-1.amazonaws.com"],
        "Federated":"cognito-identity.amazonaws.com","CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},
       "Action":"kms:*","Resource":"*"},
      {"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:user/alice","444455556666"]},"Action":"kms:*","Resource":"*"}]}"#;
    let p = Policy::parse(j, PolicyKind::Resource).unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(
        p.aws_principals(),
        vec![
            "111122223333",
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:user/division/team/bob",
            "arn:aws:iam::111122223333:role/service-role/My.Role+=,@_-",
            "arn:aws:sts::111122223333:assumed-role/app/sess@example.com",
            "444455556666",
        ]
    );
}

#[test]
fn conditions() {
    // IAM-UG reference_policies_elements_condition_operators: only the documented operators, with
    // the IfExists suffix (not on Null) and ForAnyValue:/ForAllValues: prefixes.
    let c = |cond: &str| stmt(&format!(r#"{OK},"Condition":{cond}"#));
    for op in [
        "StringEqual",
        "StringEqualsIfExistsIfExists",
        "NullIfExists",
        "ForAnyValue:Null",
        "ForSomeValues:StringEquals",
        "IfExists",
        "NumericBetween",
    ] {
        assert_eq!(
            key_err(&c(&format!(r#"{{"{op}":{{"kms:x":"y"}}}}"#))),
            format!("Policy has an unknown condition operator: {op}."),
        );
    }
    let shape = "Policy element Condition must map each operator to an object of condition keys.";
    assert_eq!(key_err(&c(r#""x""#)), shape);
    assert_eq!(key_err(&c(r#"[]"#)), shape);
    assert_eq!(key_err(&c(r#"{"StringEquals":"x"}"#)), shape);
    assert_eq!(key_err(&c(r#"{"StringEquals":["kms:x"]}"#)), shape);
    let value = "Policy contains a condition value that is not a string, number or boolean.";
    assert_eq!(key_err(&c(r#"{"StringEquals":{"kms:x":null}}"#)), value);
    assert_eq!(key_err(&c(r#"{"StringEquals":{"kms:x":{"a":1}}}"#)), value);
    assert_eq!(
        key_err(&c(r#"{"StringEquals":{"kms:x":["a",["b"]]}}"#)),
        value
    );
    // Every documented operator is accepted, with its modifiers.
    let ops = [
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringNotEqualsIgnoreCase",
        "StringLike",
        "StringNotLike",
        "NumericEquals",
        "NumericNotEquals",
        "NumericLessThan",
        "NumericLessThanEquals",
        "NumericGreaterThan",
        "NumericGreaterThanEquals",
        "DateEquals",
        "DateNotEquals",
        "DateLessThan",
        "DateLessThanEquals",
        "DateGreaterThan",
        "DateGreaterThanEquals",
        "Bool",
        "BinaryEquals",
        "IpAddress",
        "NotIpAddress",
        "ArnEquals",
        "ArnLike",
        "ArnNotEquals",
        "ArnNotLike",
    ];
    for op in ops {
        for full in [
            op.to_owned(),
            format!("{op}IfExists"),
            format!("ForAnyValue:{op}"),
            format!("ForAllValues:{op}IfExists"),
        ] {
            let j = c(&format!(r#"{{"{full}":{{"kms:x":["1"]}}}}"#));
            assert!(Policy::parse(&j, PolicyKind::Resource).is_ok(), "{full}");
        }
    }
    assert!(Policy::parse(&c(r#"{"Null":{"kms:x":"true"}}"#), PolicyKind::Resource).is_ok());
    // An empty Condition block is accepted (no conditions).
    assert!(Policy::parse(&c("{}"), PolicyKind::Resource).is_ok());
}

#[test]
fn errors_display_their_message() {
    let e = Policy::parse("nope", PolicyKind::Resource).unwrap_err();
    assert_eq!(e.to_string(), e.message);
}

#[test]
fn malformed_input_never_panics() {
    // Standards: bad input gets an error, never a panic. Every prefix of a policy using every
    // feature, and a set of byte substitutions, either parses or returns an error; whatever parses
    // evaluates without panicking.
    let full = r#"{"Version":"2012-10-17","Id":"x","Statement":[{"Sid":"s","Effect":"Deny",
      "NotPrincipal":{"AWS":["arn:aws:iam::111122223333:role/a","111122223333"],"Service":"ec2.amazonaws.com"},
      "NotAction":["kms:Create*","kms:?"],"NotResource":"arn:aws:kms:*:${aws:PrincipalAccount}:key/${aws:username, 'd'}${*}",
      "Condition":{"ForAllValues:StringLikeIfExists":{"aws:TagKeys":["a*","${x}é"]},"ArnNotLike":{"aws:SourceArn":"arn:${a}:*:b"},
      "DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"Null":{"k":true}}}]}"#;
    let ctx = keyferry_policy::Context::new()
        .with("aws:username", keyferry_policy::Value::from("é*?"))
        .with(
            "aws:TagKeys",
            keyferry_policy::Value::Strings(vec!["aé".into(), String::new()]),
        )
        .with("aws:SourceArn", keyferry_policy::Value::from("arn:é:x:b"));
    let arns = ["arn:aws:iam::111122223333:user/é"];
    let run = |json: &str| {
        for kind in [
            PolicyKind::Resource,
            PolicyKind::Identity,
            PolicyKind::Trust,
        ] {
            if let Ok(p) = Policy::parse(json, kind) {
                for resource in ["*", "", "é", "arn:aws:kms:us-east-1:111122223333:key/d*"] {
                    let _ = p.evaluate(&keyferry_policy::Request {
                        caller: keyferry_policy::Caller {
                            arns: &arns,
                            account: "111122223333",
                            service: Some("é"),
                        },
                        action: "kms:Créate",
                        resource,
                        context: &ctx,
                    });
                }
            }
        }
    };
    assert!(Policy::parse(full, PolicyKind::Resource).is_ok());
    for (i, _) in full.char_indices() {
        run(&full[..i]);
    }
    for (i, _) in full.char_indices().step_by(3) {
        for rep in ["", "}", "\"", "$", "{", "*", ":", "é"] {
            let mut s = full[..i].to_owned();
            s.push_str(rep);
            s.push_str(&full[i..]);
            run(&s);
        }
    }
}
