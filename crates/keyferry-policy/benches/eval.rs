//! `evaluate` on the default key policy and on a console-style policy.
//! Run: `cargo bench -p keyferry-policy --bench eval`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keyferry_policy::{Caller, Context, Policy, PolicyKind, Request, Value};

const DEFAULT: &str = r#"{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;

const CONSOLE: &str = r#"{"Version":"2012-10-17","Id":"key-consolepolicy-3","Statement":[
 {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"Allow access for Key Administrators","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/KMSAdminUser","arn:aws:iam::111122223333:role/KMSAdminRole"]},
  "Action":["kms:Create*","kms:Describe*","kms:Enable*","kms:List*","kms:Put*","kms:Update*","kms:Revoke*","kms:Disable*","kms:Get*","kms:Delete*","kms:TagResource","kms:UntagResource","kms:ScheduleKeyDeletion","kms:CancelKeyDeletion"],"Resource":"*"},
 {"Sid":"Allow use of the key","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/app"},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"},
 {"Sid":"Allow attachment of persistent resources","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/app"},"Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}]}"#;

fn bench(c: &mut Criterion) {
    let default = Policy::parse(DEFAULT, PolicyKind::Resource).expect("default policy");
    let console = Policy::parse(CONSOLE, PolicyKind::Resource).expect("console policy");
    let arns = [
        "arn:aws:sts::111122223333:assumed-role/app/sess",
        "arn:aws:iam::111122223333:role/app",
    ];
    let mut ctx = Context::new();
    ctx.set("kms:CallerAccount", Value::from("111122223333"));
    ctx.set("kms:EncryptionAlgorithm", Value::from("SYMMETRIC_DEFAULT"));
    let req = Request {
        caller: Caller {
            arns: &arns,
            account: "111122223333",
            service: None,
        },
        action: "kms:Encrypt",
        resource: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        context: &ctx,
    };
    c.bench_function("default policy, Encrypt", |b| {
        b.iter(|| black_box(&default).evaluate(black_box(&req)))
    });
    c.bench_function("console policy, Encrypt", |b| {
        b.iter(|| black_box(&console).evaluate(black_box(&req)))
    });
    c.bench_function("parse default policy", |b| {
        b.iter(|| Policy::parse(black_box(DEFAULT), PolicyKind::Resource))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
