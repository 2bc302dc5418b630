//! Several Regions in one `keyferry serve --regions` and multi-Region BYOK, driven by the real
//! aws CLI and openssl (`tests/sh/multi_region_byok.sh`): an EXTERNAL primary, its replica in
//! another Region, the same material imported into both, cross-Region decryption, different
//! material refused, rotation of imported material, UpdatePrimaryRegion, PendingReplicaDeletion
//! and a Region not served.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[test]
fn multi_region_byok_with_the_aws_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::Server::start_in(
        &tmp.path().join("data"),
        &["--regions", "us-east-1,eu-west-1"],
    );
    let out = common::run_bash(&server, "multi_region_byok.sh");
    assert!(out.contains("multi_region_byok: ok"), "{out}");
}

#[test]
fn regions_from_the_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("keyferry.toml");
    std::fs::write(&conf, "regions = \"eu-west-1,ap-southeast-2\"\n").unwrap();
    let server = common::Server::start_in(
        &tmp.path().join("data"),
        &["--config", conf.to_str().unwrap()],
    );
    let mut created = Vec::new();
    for region in ["eu-west-1", "ap-southeast-2"] {
        let mut cmd = std::process::Command::new("aws");
        server.aws_env(&mut cmd);
        let out = cmd
            .args(["--endpoint-url", &server.endpoint, "--region", region])
            .args([
                "kms",
                "create-key",
                "--query",
                "KeyMetadata.Arn",
                "--output",
                "text",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let arn = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            arn.starts_with(&format!("arn:aws:kms:{region}:111122223333:key/")),
            "{arn}"
        );
        created.push(arn);
    }
    // STS answers in every served Region too.
    let mut cmd = std::process::Command::new("aws");
    server.aws_env(&mut cmd);
    let out = cmd
        .args([
            "--endpoint-url",
            &server.endpoint,
            "--region",
            "ap-southeast-2",
        ])
        .args([
            "sts",
            "get-caller-identity",
            "--query",
            "Account",
            "--output",
            "text",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "111122223333");
    // Keys are per Region: the eu-west-1 key is not in ap-southeast-2.
    let mut cmd = std::process::Command::new("aws");
    server.aws_env(&mut cmd);
    let out = cmd
        .args([
            "--endpoint-url",
            &server.endpoint,
            "--region",
            "ap-southeast-2",
        ])
        .args([
            "kms",
            "list-keys",
            "--query",
            "Keys[].KeyArn",
            "--output",
            "text",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), created[1]);
    // The default --region (us-east-1) is not served when --regions leaves it out.
    let mut cmd = std::process::Command::new("aws");
    server.aws_env(&mut cmd);
    let out = cmd
        .args([
            "--endpoint-url",
            &server.endpoint,
            "--region",
            "us-east-1",
            "kms",
            "list-keys",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("InvalidSignatureException")
            && err.contains("Credential should be scoped to a valid region, not 'us-east-1'."),
        "{err}"
    );
}
