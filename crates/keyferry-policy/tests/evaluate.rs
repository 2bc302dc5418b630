//! Statement matching: principals, actions, resources, effects, the default and console key
//! policies. Each test names the rule it checks (KMS Developer Guide = DG, IAM User Guide = IAM-UG).

#![allow(clippy::panic, clippy::unwrap_used)]

mod common;

use common::*;
use keyferry_policy::{Caller, Context, Evaluation, Policy, PolicyKind, Request, Value};

const DEFAULT_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Id": "key-default-1",
  "Statement": [
    {
      "Sid": "Enable IAM User Permissions",
      "Effect": "Allow",
      "Principal": { "AWS": "arn:aws:iam::111122223333:root" },
      "Action": "kms:*",
      "Resource": "*"
    }
  ]
}"#;

fn console_policy(grant_value: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Id":"key-consolepolicy-3","Statement":[
 {{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":"kms:*","Resource":"*"}},
 {{"Sid":"Allow access for Key Administrators","Effect":"Allow",
  "Principal":{{"AWS":["arn:aws:iam::111122223333:user/KMSAdminUser","arn:aws:iam::111122223333:role/KMSAdminRole"]}},
  "Action":["kms:Create*","kms:Describe*","kms:Enable*","kms:List*","kms:Put*","kms:Update*","kms:Revoke*","kms:Disable*","kms:Get*","kms:Delete*","kms:TagResource","kms:UntagResource","kms:ScheduleKeyDeletion","kms:CancelKeyDeletion"],
  "Resource":"*"}},
 {{"Sid":"Allow use of the key","Effect":"Allow",
  "Principal":{{"AWS":["arn:aws:iam::111122223333:user/ExampleUser","arn:aws:iam::444455556666:root"]}},
  "Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}},
 {{"Sid":"Allow attachment of persistent resources","Effect":"Allow",
  "Principal":{{"AWS":["arn:aws:iam::111122223333:user/ExampleUser","arn:aws:iam::444455556666:root"]}},
  "Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*",
  "Condition":{{"Bool":{{"kms:GrantIsForAWSResource":{grant_value}}}}}}}]}}"#
    )
}

const ADMIN: &[&str] = &["arn:aws:iam::111122223333:user/KMSAdminUser"];
const ADMIN_ROLE: &[&str] = &[
    "arn:aws:sts::111122223333:assumed-role/KMSAdminRole/s1",
    "arn:aws:iam::111122223333:role/KMSAdminRole",
];
const EXAMPLE_USER: &[&str] = &["arn:aws:iam::111122223333:user/ExampleUser"];

#[test]
fn default_key_policy_delegates_to_the_account() {
    // DG key-policy-default: the account principal lets the account delegate through IAM; it gives no
    // user or role permission by itself.
    let p = key_policy(DEFAULT_POLICY);
    let c = Context::new();
    assert_eq!(eval(&p, "kms:Encrypt", &c), ACCOUNT);
    assert_eq!(
        eval_as(&p, SESSION, ACCT, "kms:PutKeyPolicy", KEY, &c),
        ACCOUNT
    );
    // Another account's caller gets nothing from it.
    assert_eq!(
        eval_as(&p, OTHER_USER, "444455556666", "kms:Encrypt", KEY, &c),
        NONE
    );
    // "Resource": "*" in a key policy means this key (DG key-policy-modifying-external-accounts).
    assert_eq!(eval_as(&p, USER, ACCT, "kms:CreateKey", "*", &c), ACCOUNT);
    // Non-KMS actions are not covered by kms:*.
    assert_eq!(eval(&p, "s3:GetObject", &c), NONE);
    assert_eq!(p.id(), Some("key-default-1"));
    assert_eq!(p.sids(), vec![Some("Enable IAM User Permissions")]);
    assert_eq!(
        p.aws_principals(),
        vec!["arn:aws:iam::111122223333:root".to_owned()]
    );
}

#[test]
fn default_key_policy_allows_the_root_user_directly() {
    // DG key-policy-default: the statement keeps the key manageable through the root user, which
    // cannot be deleted; the root user is the account principal itself.
    let p = key_policy(DEFAULT_POLICY);
    let ev = eval_as(&p, ROOT, ACCT, "kms:PutKeyPolicy", KEY, &Context::new());
    assert_eq!(
        ev,
        Evaluation {
            explicit_deny: false,
            allow_direct: true,
            allow_account: true
        }
    );
}

#[test]
fn bare_account_id_is_the_account_principal() {
    // IAM-UG reference_policies_elements_principal: "AWS": "123456789012" is the same as the root ARN.
    let p = key_policy(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}}"#,
    );
    assert_eq!(eval(&p, "kms:Decrypt", &Context::new()), ACCOUNT);
    assert_eq!(
        eval_as(
            &p,
            OTHER_USER,
            "444455556666",
            "kms:Decrypt",
            KEY,
            &Context::new()
        ),
        NONE
    );
}

#[test]
fn console_key_administrators() {
    // DG key-policy-default "Allow access for Key Administrators"; kms:Create* covers CreateAlias and
    // CreateGrant, kms:Delete* does not cover ScheduleKeyDeletion (listed separately).
    let p = key_policy(&console_policy("true"));
    let c = Context::new();
    for action in [
        "kms:CreateAlias",
        "kms:CreateGrant",
        "kms:DescribeKey",
        "kms:PutKeyPolicy",
        "kms:ScheduleKeyDeletion",
        "kms:TagResource",
        "kms:DeleteImportedKeyMaterial",
    ] {
        let ev = eval_as(&p, ADMIN, ACCT, action, KEY, &c);
        assert!(
            ev.allow_direct && ev.allow_account && !ev.explicit_deny,
            "{action}: {ev:?}"
        );
    }
    // The role statement matches the session through its role ARN.
    assert!(eval_as(&p, ADMIN_ROLE, ACCT, "kms:DisableKey", KEY, &c).allow_direct);
    // Administrators may not use the key directly (only through the account principal).
    assert_eq!(eval_as(&p, ADMIN, ACCT, "kms:Encrypt", KEY, &c), ACCOUNT);
    assert_eq!(eval_as(&p, ADMIN, ACCT, "kms:Decrypt", KEY, &c), ACCOUNT);
}

#[test]
fn console_key_users() {
    // DG key-policy-default "Allow use of the key" (symmetric): Encrypt, Decrypt, ReEncrypt*,
    // GenerateDataKey*, DescribeKey.
    let p = key_policy(&console_policy("true"));
    let c = Context::new();
    for action in [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyPairWithoutPlaintext",
        "kms:DescribeKey",
    ] {
        assert!(
            eval_as(&p, EXAMPLE_USER, ACCT, action, KEY, &c).allow_direct,
            "{action}"
        );
    }
    assert!(!eval_as(&p, EXAMPLE_USER, ACCT, "kms:PutKeyPolicy", KEY, &c).allow_direct);
    // "Other AWS accounts": the other account's root in the key-user statements is that account's
    // principal: delegation, not a direct grant (DG key-policy-modifying-external-accounts).
    let other = eval_as(&p, OTHER_USER, "444455556666", "kms:Encrypt", KEY, &c);
    assert_eq!(other, ACCOUNT);
    assert_eq!(
        eval_as(&p, OTHER_USER, "444455556666", "kms:PutKeyPolicy", KEY, &c),
        NONE
    );
}

#[test]
fn console_persistent_resources_with_string_and_bool() {
    // DG key-policy-default "Allow attachment of persistent resources": Bool kms:GrantIsForAWSResource;
    // real policies hold the value as JSON true or as the string "true" (reference §2).
    for value in ["true", "\"true\""] {
        let p = key_policy(&console_policy(value));
        let yes = ctx(&[("kms:GrantIsForAWSResource", Value::Bool(true))]);
        let yes_str = ctx(&[("kms:grantisforawsresource", Value::from("true"))]);
        let no = ctx(&[("kms:GrantIsForAWSResource", Value::Bool(false))]);
        for action in ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"] {
            assert!(
                eval_as(&p, EXAMPLE_USER, ACCT, action, KEY, &yes).allow_direct,
                "{value} {action}"
            );
            assert!(
                eval_as(&p, EXAMPLE_USER, ACCT, action, KEY, &yes_str).allow_direct,
                "{value} {action}"
            );
            assert!(
                !eval_as(&p, EXAMPLE_USER, ACCT, action, KEY, &no).allow_direct,
                "{value} {action}"
            );
            // Absent key: Bool is false (IAM-UG condition operators, missing key).
            assert!(!eval_as(&p, EXAMPLE_USER, ACCT, action, KEY, &Context::new()).allow_direct);
        }
    }
}

#[test]
fn explicit_deny_is_reported_with_allows() {
    // IAM-UG reference_policies_evaluation-logic: an explicit deny overrides any allow; the caller
    // decides, so both flags are reported.
    let p = key_policy(
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"},
        {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:ScheduleKeyDeletion","Resource":"*"}]}"#,
    );
    let c = Context::new();
    assert_eq!(eval(&p, "kms:Encrypt", &c), DIRECT);
    let ev = eval(&p, "kms:ScheduleKeyDeletion", &c);
    assert!(ev.explicit_deny && ev.allow_direct && !ev.allowed_directly());
}

#[test]
fn deny_for_the_account_principal_applies_to_every_caller_of_the_account() {
    // Task rule: a Deny naming the account principal denies every identity of that account.
    let p = key_policy(
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
        {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:Decrypt","Resource":"*"}]}"#,
    );
    let c = Context::new();
    assert!(eval(&p, "kms:Decrypt", &c).explicit_deny);
    assert!(eval_as(&p, SESSION, ACCT, "kms:Decrypt", KEY, &c).explicit_deny);
    assert!(!eval_as(&p, OTHER_USER, "444455556666", "kms:Decrypt", KEY, &c).explicit_deny);
    assert_eq!(eval(&p, "kms:Encrypt", &c), DIRECT);
}

#[test]
fn wildcard_principals_are_direct() {
    // IAM-UG reference_policies_elements_principal: "*" and {"AWS": "*"} match every principal.
    for principal in [r#""*""#, r#"{"AWS":"*"}"#, r#"{"AWS":["*"]}"#] {
        let p = key_policy(&format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{principal},"Action":"kms:Encrypt","Resource":"*"}}}}"#
        ));
        assert_eq!(
            eval_as(
                &p,
                OTHER_USER,
                "444455556666",
                "kms:Encrypt",
                KEY,
                &Context::new()
            ),
            DIRECT
        );
        assert!(p.aws_principals().is_empty());
    }
}

#[test]
fn session_matches_role_and_session_arns() {
    // IAM-UG reference_policies_elements_principal (role sessions): a statement naming the role
    // covers its sessions; one naming the session ARN covers that session only.
    let role = key_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/app"},"Action":"kms:Encrypt","Resource":"*"}}"#,
    );
    let sess = key_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/app/sess"},"Action":"kms:Encrypt","Resource":"*"}}"#,
    );
    let c = Context::new();
    assert_eq!(
        eval_as(&role, SESSION, ACCT, "kms:Encrypt", KEY, &c),
        DIRECT
    );
    assert_eq!(
        eval_as(&sess, SESSION, ACCT, "kms:Encrypt", KEY, &c),
        DIRECT
    );
    let other_session = [
        "arn:aws:sts::111122223333:assumed-role/app/other",
        "arn:aws:iam::111122223333:role/app",
    ];
    assert_eq!(
        eval_as(&sess, &other_session, ACCT, "kms:Encrypt", KEY, &c),
        NONE
    );
    assert_eq!(eval(&role, "kms:Encrypt", &c), NONE);
}

#[test]
fn service_principals() {
    // IAM-UG reference_policies_elements_principal (AWS service principals).
    let p = key_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com","logs.us-east-1.amazonaws.com"]},"Action":"kms:Decrypt","Resource":"*"}}"#,
    );
    let c = Context::new();
    let req = |service| Request {
        caller: Caller {
            arns: &[],
            account: ACCT,
            service,
        },
        action: "kms:Decrypt",
        resource: KEY,
        context: &c,
    };
    assert_eq!(p.evaluate(&req(Some("ec2.amazonaws.com"))), DIRECT);
    assert_eq!(
        p.evaluate(&req(Some("logs.us-east-1.amazonaws.com"))),
        DIRECT
    );
    assert_eq!(p.evaluate(&req(Some("s3.amazonaws.com"))), NONE);
    assert_eq!(p.evaluate(&req(None)), NONE);
    assert_eq!(eval(&p, "kms:Decrypt", &c), NONE);
    assert!(p.aws_principals().is_empty());
}

#[test]
fn action_wildcards_are_case_insensitive() {
    // IAM-UG reference_policies_elements_action: action names are case-insensitive; * and ? wildcards.
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["KMS:generatedatakey*","kms:?ncrypt","kms:*Grant*"],"Resource":"*"}}"#,
    );
    let c = Context::new();
    for a in [
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:Encrypt",
        "KMS:ENCRYPT",
        "kms:CreateGrant",
        "kms:ListRetirableGrants",
    ] {
        assert_eq!(eval(&p, a, &c), DIRECT, "{a}");
    }
    for a in [
        "kms:Decrypt",
        "kms:ReEncrypt",
        "kms:GenerateMac",
        "s3:Encrypt",
    ] {
        assert_eq!(eval(&p, a, &c), NONE, "{a}");
    }
    let all = identity(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
    assert_eq!(eval(&all, "iam:CreateUser", &c), DIRECT);
}

#[test]
fn not_action() {
    // IAM-UG reference_policies_elements_notaction: matches every action except those listed.
    let p = identity(
        r#"{"Statement":{"Effect":"Deny","NotAction":["kms:Encrypt","kms:Describe*"],"Resource":"*"}}"#,
    );
    let c = Context::new();
    assert_eq!(eval(&p, "kms:Decrypt", &c), DENY);
    assert_eq!(eval(&p, "kms:Encrypt", &c), NONE);
    assert_eq!(eval(&p, "kms:DescribeKey", &c), NONE);
}

#[test]
fn resources_and_not_resource() {
    // IAM-UG reference_policies_elements_resource: case-sensitive, * and ? wildcards;
    // NotResource matches every resource except those listed.
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:111122223333:key/*"},
        {"Effect":"Deny","Action":"kms:*","NotResource":["arn:aws:kms:us-east-1:111122223333:key/1234abcd-*","${*}"]}]}"#,
    );
    let c = Context::new();
    assert_eq!(eval(&p, "kms:Encrypt", &c), DIRECT);
    let other_key = "arn:aws:kms:eu-west-1:111122223333:key/ffff";
    assert_eq!(
        eval_as(&p, USER, ACCT, "kms:Encrypt", other_key, &c),
        Evaluation {
            explicit_deny: true,
            allow_direct: true,
            allow_account: false
        }
    );
    // The resource "*" (CreateKey) is not a key ARN; the literal "${*}" in NotResource excludes it
    // from the deny (IAM-UG reference_policies_variables, special characters).
    assert_eq!(eval_as(&p, USER, ACCT, "kms:CreateKey", "*", &c), NONE);
    // Case-sensitive.
    let upper = "arn:aws:kms:us-east-1:111122223333:KEY/1234abcd";
    assert!(!eval_as(&p, USER, ACCT, "kms:Encrypt", upper, &c).allow_direct);
}

#[test]
fn not_principal() {
    // IAM-UG reference_policies_elements_notprincipal: applies to every principal except those listed;
    // a role session is excluded only when both the role and the session ARN are listed.
    let p = key_policy(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":[
        "arn:aws:iam::111122223333:user/alice",
        "arn:aws:iam::111122223333:role/app","arn:aws:sts::111122223333:assumed-role/app/sess"]},
        "Action":"kms:Decrypt","Resource":"*"}}"#,
    );
    let c = Context::new();
    assert_eq!(eval(&p, "kms:Decrypt", &c), NONE);
    assert_eq!(eval_as(&p, SESSION, ACCT, "kms:Decrypt", KEY, &c), NONE);
    let other_session = [
        "arn:aws:sts::111122223333:assumed-role/app/other",
        "arn:aws:iam::111122223333:role/app",
    ];
    assert_eq!(
        eval_as(&p, &other_session, ACCT, "kms:Decrypt", KEY, &c),
        DENY
    );
    assert_eq!(
        eval_as(&p, OTHER_USER, "444455556666", "kms:Decrypt", KEY, &c),
        DENY
    );
    assert_eq!(eval(&p, "kms:Encrypt", &c), NONE);
    assert_eq!(p.aws_principals().len(), 3);

    // Listing the account principal excludes every identity of the account.
    let acct = key_policy(
        r#"{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}}"#,
    );
    assert_eq!(eval_as(&acct, SESSION, ACCT, "kms:Decrypt", KEY, &c), NONE);
    assert_eq!(
        eval_as(&acct, OTHER_USER, "444455556666", "kms:Decrypt", KEY, &c),
        DENY
    );

    // Allow with NotPrincipal is a direct allow for everyone not listed.
    let allow = key_policy(
        r#"{"Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"}}"#,
    );
    assert_eq!(eval(&allow, "kms:Decrypt", &c), NONE);
    assert_eq!(
        eval_as(&allow, OTHER_USER, "444455556666", "kms:Decrypt", KEY, &c),
        DIRECT
    );
}

#[test]
fn missing_action_or_resource_makes_a_key_policy_statement_ineffective() {
    // Reference §4: KMS accepts a key policy statement without Action or Resource; it has no effect.
    let p = key_policy(
        r#"{"Statement":[
        {"Effect":"Deny","Principal":"*","Resource":"*"},
        {"Effect":"Deny","Principal":"*","Action":"kms:*"},
        {"Effect":"Allow","Principal":"*","Action":"kms:Encrypt"}]}"#,
    );
    assert_eq!(eval(&p, "kms:Encrypt", &Context::new()), NONE);
}

#[test]
fn identity_policy_allows_are_direct() {
    // Task rule: for identity policies every matching Allow is direct.
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}]}"#,
    );
    assert_eq!(eval(&p, "kms:Encrypt", &Context::new()), DIRECT);
    assert_eq!(eval(&p, "kms:Decrypt", &Context::new()), NONE);
    assert_eq!(p.kind(), PolicyKind::Identity);
}

#[test]
fn trust_policy() {
    // IAM-UG roles trust policy: Principal and Action, no Resource.
    let p = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}}"#,
        PolicyKind::Trust,
    )
    .expect("trust policy");
    let c = Context::new();
    assert_eq!(
        eval_as(
            &p,
            USER,
            ACCT,
            "sts:AssumeRole",
            "arn:aws:iam::111122223333:role/app",
            &c
        ),
        ACCOUNT
    );
    assert_eq!(
        eval_as(&p, OTHER_USER, "444455556666", "sts:AssumeRole", "*", &c),
        NONE
    );
}

#[test]
fn resource_variables() {
    // IAM-UG reference_policies_variables: variables in Resource (Version 2012-10-17 only); a
    // missing key makes the value match nothing; ${key, 'default'}.
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:*",
        "Resource":["arn:aws:kms:us-east-1:${aws:PrincipalAccount}:key/${aws:username}-*",
                    "arn:aws:kms:us-east-1:111122223333:alias/${kms:x, 'fallback'}"]}}"#,
    );
    let alice = ctx(&[("aws:username", Value::from("alice"))]);
    let r = |res| eval_as(&p, USER, ACCT, "kms:Encrypt", res, &alice);
    assert_eq!(r("arn:aws:kms:us-east-1:111122223333:key/alice-1"), DIRECT);
    assert_eq!(r("arn:aws:kms:us-east-1:111122223333:key/bob-1"), NONE);
    assert_eq!(
        r("arn:aws:kms:us-east-1:111122223333:alias/fallback"),
        DIRECT
    );
    // Without aws:username the first pattern matches nothing.
    let none = Context::new();
    assert_eq!(
        eval_as(
            &p,
            USER,
            ACCT,
            "kms:Encrypt",
            "arn:aws:kms:us-east-1:111122223333:key/-1",
            &none
        ),
        NONE
    );
    // The variable value is literal: a * in it is not a wildcard.
    let star = ctx(&[("aws:username", Value::from("*"))]);
    assert_eq!(
        eval_as(
            &p,
            USER,
            ACCT,
            "kms:Encrypt",
            "arn:aws:kms:us-east-1:111122223333:key/bob-1",
            &star
        ),
        NONE
    );
    assert_eq!(
        eval_as(
            &p,
            USER,
            ACCT,
            "kms:Encrypt",
            "arn:aws:kms:us-east-1:111122223333:key/*-1",
            &star
        ),
        DIRECT
    );
}

#[test]
fn variables_are_literal_before_version_2012_10_17() {
    // IAM-UG reference_policies_variables: with Version 2008-10-17 (or none) ${...} is literal text.
    let p = identity(
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:us-east-1:111122223333:key/${aws:username}"}}"#,
    );
    let alice = ctx(&[("aws:username", Value::from("alice"))]);
    assert_eq!(
        eval_as(
            &p,
            USER,
            ACCT,
            "kms:Encrypt",
            "arn:aws:kms:us-east-1:111122223333:key/alice",
            &alice
        ),
        NONE
    );
    assert_eq!(
        eval_as(
            &p,
            USER,
            ACCT,
            "kms:Encrypt",
            "arn:aws:kms:us-east-1:111122223333:key/${aws:username}",
            &alice
        ),
        DIRECT
    );
}

#[test]
fn special_character_variables() {
    // IAM-UG reference_policies_variables (special characters): ${*}, ${?}, ${$} are literal.
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:*","Resource":"a${*}b${?}c${$}d"}}"#,
    );
    let c = Context::new();
    assert_eq!(
        eval_as(&p, USER, ACCT, "kms:Encrypt", "a*b?c$d", &c),
        DIRECT
    );
    assert_eq!(eval_as(&p, USER, ACCT, "kms:Encrypt", "aXbYc$d", &c), NONE);
}

#[test]
fn policy_is_shareable() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Policy>();
    let p = key_policy(DEFAULT_POLICY);
    let q = p.clone();
    assert_eq!(eval(&q, "kms:Encrypt", &Context::new()), ACCOUNT);
}

/// `reads_context` is true exactly when a statement has a condition or a policy variable, so a
/// caller may skip building the condition context otherwise.
#[test]
fn reads_context_follows_conditions_and_variables() {
    let plain = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
    let cond = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#;
    let var = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*:*:key/${aws:username}"}]}"#;
    let parse =
        |t| keyferry_policy::Policy::parse(t, keyferry_policy::PolicyKind::Identity).unwrap();
    assert!(!parse(plain).reads_context());
    assert!(parse(cond).reads_context());
    assert!(parse(var).reads_context());
}
