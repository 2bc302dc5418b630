//! `keyferry import` explains itself: every mistake below is caught before CreateKey, in one or
//! two sentences that say what to do, with the exit code its kind documents, and no Rust `Debug`
//! output. Run as a user runs the built binary, against a real `keyferry serve`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod import_support;

use std::process::Command;

use common::Server;
use import_support::*;
use keyferry_byok::time;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// No `Debug` dump and no dependency log line: short, human stderr.
fn assert_plain(stderr: &str) {
    for bad in [
        "DispatchFailure",
        "ConnectorError",
        "Some(",
        "{ ",
        "cryptoki::",
        "ERROR ",
        "panicked",
    ] {
        assert!(!stderr.contains(bad), "stderr contains {bad:?}:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheap_checks_run_before_create_key() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();

    // `openssl rand -hex 32` output given as an HMAC key: refused, with the fix.
    let hex = dir.path().join("hmac.hex");
    let out = run("openssl", &["rand", "-hex", "32"]);
    std::fs::write(&hex, &out).unwrap();
    let r = keyferry(
        &server,
        &["import", "--material", s(&hex), "--key-spec", "HMAC_256"],
        &[],
    )
    .failed();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("hex text")
            && r.stderr.contains("65 characters encoding 32 bytes")
            && r.stderr.contains("xxd -r -p"),
        "{}",
        r.stderr
    );
    assert_plain(&r.stderr);
    // base64 text without a key spec.
    let b64 = dir.path().join("aes.b64");
    let out = run("openssl", &["rand", "-base64", "32"]);
    std::fs::write(&b64, &out).unwrap();
    let r = keyferry(&server, &["import", "--material", s(&b64)], &[]).failed();
    assert!(
        r.stderr.contains("base64 text") && r.stderr.contains("base64 -d"),
        "{}",
        r.stderr
    );

    // The alias is checked before CreateKey.
    let aes = openssl_key(dir.path(), "SYMMETRIC_DEFAULT");
    import_json(&server, &["--material", s(&aes), "--alias", "prod"], &[]);
    let ec = openssl_key(dir.path(), "ECC_NIST_P256");
    let r = keyferry(
        &server,
        &["import", "--material", s(&ec), "--alias", "prod"],
        &[],
    )
    .failed();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("alias/prod already exists") && r.stderr.contains("no key was created"),
        "{}",
        r.stderr
    );
    assert_eq!(key_states(&server).await.len(), 1);

    // --valid-for: relative expiry, accepted.
    let v = import_json(&server, &["--material", s(&ec), "--valid-for", "90d"], &[]);
    let valid_to = time::OffsetDateTime::parse(
        v["ValidTo"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = valid_to - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::days(89) && left <= time::Duration::days(90),
        "{v}"
    );
    let r = keyferry(
        &server,
        &["import", "--material", s(&ec), "--valid-for", "400d"],
        &[],
    )
    .failed();
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("365"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_and_credential_errors_are_one_sentence() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let aes = openssl_key(dir.path(), "SYMMETRIC_DEFAULT");

    // Nothing listens there: one sentence naming the endpoint, exit 5.
    let r = keyferry(
        &server,
        &[
            "import",
            "--material",
            s(&aes),
            "--endpoint-url",
            "http://127.0.0.1:9",
        ],
        &[],
    )
    .failed();
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot reach http://127.0.0.1:9") && r.stderr.contains("--endpoint-url"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.trim().lines().count() == 1, "{}", r.stderr);
    assert!(
        r.stderr.len() < 400,
        "{} chars: {}",
        r.stderr.len(),
        r.stderr
    );
    assert_plain(&r.stderr);

    // No credentials: a configuration problem (exit 2), nothing sent.
    let out = Command::new(env!("CARGO_BIN_EXE_keyferry"))
        .args(["import", "--material", s(&aes)])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &server.endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no AWS credentials")
            && stderr.contains("nothing was sent")
            && stderr.contains("AWS_ACCESS_KEY_ID"),
        "{stderr}"
    );
    assert_plain(&stderr);
    assert!(key_states(&server).await.is_empty());

    // The text summary names the endpoint.
    let r = keyferry(&server, &["import", "--material", s(&aes)], &[]).ok();
    assert!(
        r.stdout
            .contains(&format!("Endpoint:         {}", server.endpoint)),
        "{}",
        r.stdout
    );
}

#[test]
fn wrap_refuses_expired_parameters_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let pk = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../keyferry-byok/data/probe-rsa2048-public.der"),
    )
    .unwrap();
    let zip = dir.path().join("ImportParameters.zip");
    let expired = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .replace_nanosecond(0)
        .unwrap();
    keyferry_byok::offline::ImportParameters::new(pk, vec![1, 2, 3])
        .unwrap()
        .write_zip(
            &zip,
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            keyferry_types::AlgorithmSpec::RSAES_OAEP_SHA_256,
            Some(expired),
        )
        .unwrap();
    let aes = openssl_key(dir.path(), "SYMMETRIC_DEFAULT");
    let ekm = dir.path().join("EncryptedKeyMaterial.bin");
    let wrap = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keyferry"))
            .args([
                "import",
                "wrap",
                "--parameters",
                s(&zip),
                "--material",
                s(&aes),
            ])
            .args(["--out", s(&ekm)])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = wrap(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    let when = expired
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(
        stderr.contains(&format!("expired at {when}"))
            && stderr.contains("fetch-parameters")
            && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(
        !ekm.exists(),
        "nothing may be written from expired parameters"
    );
    let (code, stderr) = wrap(&["--force"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("expired at"), "{stderr}");
    assert!(ekm.exists());
}

#[test]
fn every_help_page_has_an_example() {
    for args in [
        &["import", "--help"][..],
        &["import", "wrap", "--help"],
        &["import", "fetch-parameters", "--help"],
        &["keep-alive", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_keyferry"))
            .args(args)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(help.contains("Example"), "{args:?}:\n{help}");
        assert!(help.contains("keyferry "), "{args:?}:\n{help}");
    }
}
