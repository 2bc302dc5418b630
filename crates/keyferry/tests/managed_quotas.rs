//! AWS managed keys and request quotas end to end: the real binary driven by boto3
//! (`tests/py/managed_keys.py`, `tests/py/quotas.py`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Server;

const IDENTITIES: &str = r#"
[[accounts]]
id = "111122223333"
root = { access_key_id = "AKIAMANAGEDROOT00001", secret_access_key = "managed-root-secret" }

# Acting for EC2, as EBS calls KMS for the account's principals.
[[accounts.users]]
name = "ebs-volumes"
service = "ec2.amazonaws.com"
access_keys = [{ access_key_id = "AKIAMANAGEDEC2000001", secret_access_key = "managed-ec2-secret" }]

[[accounts.users]]
name = "direct"
access_keys = [{ access_key_id = "AKIAMANAGEDUSER00001", secret_access_key = "managed-user-secret" }]
policies = ['''{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}''']
"#;

#[test]
fn aws_managed_key_through_its_alias_with_boto3() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = tmp.path().join("identities.toml");
    std::fs::write(&ids, IDENTITIES).unwrap();
    std::fs::set_permissions(&ids, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start_in(
        &tmp.path().join("data"),
        &["--identities", ids.to_str().unwrap()],
    );
    let out = common::run_python(&server, "managed_keys.py", &[]);
    assert!(out.contains("checks passed"), "{out}");
}

#[test]
fn aws_request_quotas_throttle_and_boto3_retries_absorb_it() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(&tmp.path().join("data"), &["--request-quotas", "aws"]);
    let out = common::run_python(&server, "quotas.py", &["aws"]);
    assert!(out.contains("checks passed"), "{out}");
}

#[test]
fn request_quotas_from_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("quotas.toml");
    std::fs::write(&file, "[rates]\nsymmetric = 2\n").unwrap();
    let server = Server::start_in(
        &tmp.path().join("data"),
        &["--request-quotas", file.to_str().unwrap()],
    );
    let out = common::run_python(&server, "quotas.py", &["file"]);
    assert!(out.contains("checks passed"), "{out}");
}

#[test]
fn no_throttling_without_request_quotas() {
    let server = Server::start();
    let out = common::run_python(&server, "quotas.py", &["off"]);
    assert!(out.contains("checks passed"), "{out}");
}

#[test]
fn a_bad_quotas_file_stops_the_server_before_it_listens() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("quotas.toml");
    std::fs::write(&file, "[rates]\nCreateKeys = 2\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path().join("data"))
        .args(["--request-quotas", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CreateKeys"), "{stderr}");
    assert!(!tmp.path().join("data").exists(), "nothing created");
}
