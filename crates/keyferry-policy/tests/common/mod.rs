#![allow(dead_code)]

use keyferry_policy::{Caller, Context, Evaluation, Policy, PolicyKind, Request};

pub const ACCT: &str = "111122223333";
pub const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
pub const USER: &[&str] = &["arn:aws:iam::111122223333:user/alice"];
pub const ROOT: &[&str] = &["arn:aws:iam::111122223333:root"];
pub const SESSION: &[&str] = &[
    "arn:aws:sts::111122223333:assumed-role/app/sess",
    "arn:aws:iam::111122223333:role/app",
];
pub const OTHER_USER: &[&str] = &["arn:aws:iam::444455556666:user/bob"];

pub fn key_policy(json: &str) -> Policy {
    Policy::parse(json, PolicyKind::Resource).unwrap_or_else(|e| panic!("{json}: {}", e.message))
}

pub fn identity(json: &str) -> Policy {
    Policy::parse(json, PolicyKind::Identity).unwrap_or_else(|e| panic!("{json}: {}", e.message))
}

pub fn eval_as(
    p: &Policy,
    arns: &[&str],
    account: &str,
    action: &str,
    resource: &str,
    ctx: &Context,
) -> Evaluation {
    p.evaluate(&Request {
        caller: Caller {
            arns,
            account,
            service: None,
        },
        action,
        resource,
        context: ctx,
    })
}

/// alice (same account) calls `action` on KEY.
pub fn eval(p: &Policy, action: &str, ctx: &Context) -> Evaluation {
    eval_as(p, USER, ACCT, action, KEY, ctx)
}

pub const DIRECT: Evaluation = Evaluation {
    explicit_deny: false,
    allow_direct: true,
    allow_account: false,
};
pub const ACCOUNT: Evaluation = Evaluation {
    explicit_deny: false,
    allow_direct: false,
    allow_account: true,
};
pub const NONE: Evaluation = Evaluation {
    explicit_deny: false,
    allow_direct: false,
    allow_account: false,
};
pub const DENY: Evaluation = Evaluation {
    explicit_deny: true,
    allow_direct: false,
    allow_account: false,
};

/// An identity policy allowing kms:Encrypt on every resource under one Condition block.
pub fn with_condition(cond: &str) -> Policy {
    identity(&format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*","Condition":{cond}}}}}"#
    ))
}

/// Whether the condition block allows the request with this context.
pub fn cond_allows(cond: &str, ctx: &Context) -> bool {
    let ev = eval(&with_condition(cond), "kms:Encrypt", ctx);
    assert!(!ev.explicit_deny && !ev.allow_account);
    ev.allow_direct
}

pub fn ctx(pairs: &[(&str, keyferry_policy::Value)]) -> Context {
    let mut c = Context::new();
    for (k, v) in pairs {
        c.set(k, v.clone());
    }
    c
}
