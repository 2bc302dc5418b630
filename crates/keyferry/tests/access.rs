//! Issue 9 end to end: identities, key policies, cross-account use and STS against the real
//! binary, driven by the aws CLI (seed 003's sharing steps, a role profile) and boto3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::Server;

/// Two accounts: 111122223333 (root, key administrator, key user, a developer whose IAM policy
/// delegates use, mallory with an explicit deny, the role `app`) and 444455556666 (root, bob whose
/// IAM policy delegates use of the other account's keys, carol with no policy).
pub const IDENTITIES: &str = r#"
[[accounts]]
id = "111122223333"
root = { access_key_id = "AKIAOWNERROOT0000001", secret_access_key = "owner-root-secret" }

[[accounts.users]]
name = "keyadmin"
access_keys = [{ access_key_id = "AKIAKEYADMIN00000001", secret_access_key = "keyadmin-secret" }]

[[accounts.users]]
name = "keyuser"
access_keys = [{ access_key_id = "AKIAKEYUSER000000001", secret_access_key = "keyuser-secret" }]

[[accounts.users]]
name = "dev"
access_keys = [{ access_key_id = "AKIADEVELOPER0000001", secret_access_key = "dev-secret" }]
policies = ['''{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":"arn:aws:kms:*:111122223333:key/*"},
  {"Effect":"Allow","Action":"kms:ListKeys","Resource":"*"},
  {"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::111122223333:role/app"}]}''']

[[accounts.users]]
name = "mallory"
access_keys = [{ access_key_id = "AKIAMALLORY000000001", secret_access_key = "mallory-secret" }]
policies = ['''{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"kms:*","Resource":"*"},
  {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}''']

[[accounts.roles]]
name = "app"
trust_policy = '''{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}]}'''
policies = ['''{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"arn:aws:kms:*:111122223333:key/*"}]}''']

[[accounts]]
id = "444455556666"
root = { access_key_id = "AKIAOTHERROOT0000001", secret_access_key = "other-root-secret" }

[[accounts.users]]
name = "bob"
access_keys = [{ access_key_id = "AKIABOBOTHER00000001", secret_access_key = "bob-secret" }]
policies = ['''{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey","kms:CreateGrant","kms:ScheduleKeyDeletion","kms:PutKeyPolicy","kms:DisableKey"],
   "Resource":"arn:aws:kms:us-east-1:111122223333:key/*"}]}''']

[[accounts.users]]
name = "carol"
access_keys = [{ access_key_id = "AKIACAROLOTHER000001", secret_access_key = "carol-secret" }]
"#;

fn identities_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("identities.toml");
    std::fs::write(&path, IDENTITIES).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn server(dir: &Path) -> Server {
    let ids = identities_file(dir);
    Server::start_in(&dir.join("data"), &["--identities", ids.to_str().unwrap()])
}

#[test]
fn seed_003_other_account_with_the_aws_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path());
    let out = common::run_bash(&server, "access_cross_account.sh");
    assert!(out.contains("seed 003 sharing: ok"), "{out}");
}

#[test]
fn policies_identities_and_sts_with_boto3() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path());
    let out = common::run_python(&server, "access.py", &[]);
    assert!(out.contains("checks passed"), "{out}");
}

/// A role profile (`role_arn` + `source_profile`) in an aws CLI config, used against Keyferry:
/// the CLI calls AssumeRole on the same endpoint and signs KMS calls with the session.
#[test]
fn aws_cli_role_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path());
    let config = tmp.path().join("aws-config");
    std::fs::write(
        &config,
        "[profile dev]\nregion = us-east-1\n\n[profile app]\nrole_arn = arn:aws:iam::111122223333:role/app\nsource_profile = dev\nrole_session_name = cli-session\nregion = us-east-1\n",
    )
    .unwrap();
    let creds = tmp.path().join("aws-credentials");
    std::fs::write(
        &creds,
        "[dev]\naws_access_key_id = AKIADEVELOPER0000001\naws_secret_access_key = dev-secret\n",
    )
    .unwrap();
    let aws = |args: &[&str]| {
        let out = Command::new("aws")
            .args(["--endpoint-url", &server.endpoint])
            .args(args)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_ENDPOINT_URL", &server.endpoint)
            // The CLI caches assumed-role credentials under ~/.aws/cli/cache: a fresh home, so
            // that sessions of another test's server are never reused.
            .env("HOME", tmp.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_REGION")
            .output()
            .expect("run aws");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, who, err) = aws(&[
        "sts",
        "get-caller-identity",
        "--profile",
        "app",
        "--query",
        "Arn",
        "--output",
        "text",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        who,
        "arn:aws:sts::111122223333:assumed-role/app/cli-session"
    );
    // The owner makes a key (default policy); the role's IAM policy lets it encrypt.
    let mut owner = Command::new("aws");
    owner
        .args(["--endpoint-url", &server.endpoint])
        .args([
            "kms",
            "create-key",
            "--query",
            "KeyMetadata.Arn",
            "--output",
            "text",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIAOWNERROOT0000001")
        .env("AWS_SECRET_ACCESS_KEY", "owner-root-secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let out = owner.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_arn = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let plain = tmp.path().join("plain.txt");
    std::fs::write(&plain, b"role profile data").unwrap();
    let (ok, ct, err) = aws(&[
        "kms",
        "encrypt",
        "--profile",
        "app",
        "--key-id",
        &key_arn,
        "--plaintext",
        &format!("fileb://{}", plain.display()),
        "--query",
        "CiphertextBlob",
        "--output",
        "text",
    ]);
    assert!(ok, "{err}");
    assert!(!ct.is_empty());
    // The session may not do what its role may not.
    let (ok, _, err) = aws(&[
        "kms",
        "disable-key",
        "--profile",
        "app",
        "--key-id",
        &key_arn,
    ]);
    assert!(!ok);
    assert!(
        err.contains("AccessDeniedException")
            && err.contains("arn:aws:sts::111122223333:assumed-role/app/cli-session"),
        "{err}"
    );
    // The source profile itself is the user.
    let (ok, who, err) = aws(&[
        "sts",
        "get-caller-identity",
        "--profile",
        "dev",
        "--query",
        "Arn",
        "--output",
        "text",
    ]);
    assert!(ok, "{err}");
    assert_eq!(who, "arn:aws:iam::111122223333:user/dev");
}

/// The identities file holds secrets: a server refuses one that others may read.
#[test]
fn world_readable_identities_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = identities_file(tmp.path());
    std::fs::set_permissions(&ids, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(tmp.path().join("data"))
        .arg("--identities")
        .arg(&ids)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
}
