//! Every operation's model constraints (required members, enum values in the model's order,
//! lengths, ranges), generated from botocore's KMS service model and sent by boto3 to the real
//! binary (`tests/py/validation_model.py`): each must answer AWS's `ValidationException` text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[test]
fn model_constraints_in_aws_words_for_every_operation() {
    let server = common::Server::start();
    let out = common::run_python(&server, "validation_model.py", &[]);
    assert!(out.contains("checks passed"), "{out}");
    let checked: usize = out
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(checked >= 300, "{out}");
}
