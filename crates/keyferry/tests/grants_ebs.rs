//! Grants end to end: the EBS-like flow against the real binary with boto3 (`tests/py/grants_ebs.py`),
//! several identities from an identities file, one of them acting for EC2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Server;

const IDENTITIES: &str = r#"
[[accounts]]
id = "111122223333"
root = { access_key_id = "AKIAEBSROOT000000001", secret_access_key = "ebs-root-secret" }

[[accounts.users]]
name = "key-admin"
access_keys = [{ access_key_id = "AKIAEBSADMIN00000001", secret_access_key = "ebs-admin-secret" }]

# The key user, as EC2 acts for it: grants it creates are for an AWS resource.
[[accounts.users]]
name = "volume-svc"
service = "ec2.amazonaws.com"
access_keys = [{ access_key_id = "AKIAEBSSVC0000000001", secret_access_key = "ebs-svc-secret" }]
policies = ['''{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:ListRetirableGrants","Resource":"*"}]}''']

# A key user calling directly.
[[accounts.users]]
name = "volume-user"
access_keys = [{ access_key_id = "AKIAEBSUSER000000001", secret_access_key = "ebs-user-secret" }]

[[accounts.users]]
name = "launcher"
access_keys = [{ access_key_id = "AKIAEBSLAUNCH0000001", secret_access_key = "ebs-launch-secret" }]

# The instance role: no policy gives it the key; only grants do.
[[accounts.roles]]
name = "instance"
trust_policy = '''{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/launcher"},"Action":"sts:AssumeRole"}]}'''
"#;

#[test]
fn ebs_like_grant_flow_with_boto3() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = tmp.path().join("identities.toml");
    std::fs::write(&ids, IDENTITIES).unwrap();
    std::fs::set_permissions(&ids, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start_in(
        &tmp.path().join("data"),
        &["--identities", ids.to_str().unwrap()],
    );
    let out = common::run_python(&server, "grants_ebs.py", &[]);
    assert!(out.contains("checks passed"), "{out}");
}
