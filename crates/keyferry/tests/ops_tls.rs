//! TLS end to end: the real binary behind certificates made by openssl, driven by the aws CLI
//! (`--ca-bundle`), boto3 (`verify=`) and aws-sdk-kms (custom trust store); mutual TLS refusing
//! a client without a certificate; SIGHUP reloading the certificate; plain HTTP refused on a
//! non-loopback address unless `--insecure-http`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ops_support;

use std::process::Command;
use std::time::Duration;

use ops_support::{DEV_AKID, DEV_SECRET, Ops, Pki, aws_env, keyferry, python};

fn tls_server(dir: &std::path::Path, pki: &Pki, extra: &[&str]) -> Ops {
    let (cert, key) = pki.issue("ca", "server", true, 2);
    let mut args = vec![
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--tls-cert".to_owned(),
        cert.to_str().unwrap().to_owned(),
        "--tls-key".to_owned(),
        key.to_str().unwrap().to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ops::start(&dir.join("data"), &args, &[])
}

const BOTO_ROUNDTRIP: &str = r#"
import sys, boto3
endpoint, verify = sys.argv[1], sys.argv[2]
verify = False if verify == "no" else (True if verify == "default" else verify)
kms = boto3.client("kms", endpoint_url=endpoint, verify=verify)
key = kms.create_key(Description="tls")["KeyMetadata"]["KeyId"]
ct = kms.encrypt(KeyId=key, Plaintext=b"over tls")["CiphertextBlob"]
assert kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"over tls"
print("ok", key)
"#;

#[test]
fn aws_cli_boto3_and_sdk_over_tls_with_a_custom_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"), "ca");
    let server = tls_server(tmp.path(), &pki, &[]);
    assert!(
        server.endpoint.starts_with("https://127.0.0.1:"),
        "{}",
        server.endpoint
    );
    let ca = pki.ca("ca");
    let ca_str = ca.to_str().unwrap();

    // aws CLI with --ca-bundle and --endpoint-url.
    let aws = |args: &[&str]| {
        let mut c = Command::new("aws");
        c.args(args)
            .args(["--endpoint-url", &server.endpoint, "--ca-bundle", ca_str]);
        aws_env(&mut c);
        c.output().unwrap()
    };
    let out = aws(&[
        "kms",
        "create-key",
        "--description",
        "cli-tls",
        "--query",
        "KeyMetadata.KeyId",
        "--output",
        "text",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = aws(&[
        "kms",
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        "aGVsbG8=",
        "--query",
        "CiphertextBlob",
        "--output",
        "text",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The aws CLI without the CA refuses the server's certificate.
    let mut c = Command::new("aws");
    c.args(["kms", "list-keys", "--endpoint-url", &server.endpoint]);
    aws_env(&mut c);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SSL") || err.contains("certificate"), "{err}");

    // boto3 with verify=<ca>, and refused with the default trust store.
    let (ok, so, se) = python(BOTO_ROUNDTRIP, &[&server.endpoint, ca_str]);
    assert!(ok && so.starts_with("ok "), "{so}\n{se}");
    let (ok, _, se) = python(BOTO_ROUNDTRIP, &[&server.endpoint, "default"]);
    assert!(
        !ok && (se.contains("SSL") || se.contains("certificate")),
        "{se}"
    );

    // aws-sdk-kms with a trust store holding only the test CA.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use aws_smithy_http_client::tls;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(
                tls::TlsContext::builder()
                    .with_trust_store(
                        tls::TrustStore::empty().with_pem_certificate(std::fs::read(&ca).unwrap()),
                    )
                    .build()
                    .unwrap(),
            )
            .build_https();
        let creds = aws_credential_types::Credentials::new(DEV_AKID, DEV_SECRET, None, None, "t");
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(&server.endpoint)
            .http_client(http)
            .load()
            .await;
        let kms = aws_sdk_kms::Client::new(&conf);
        let ct = kms
            .encrypt()
            .key_id(&key)
            .plaintext(aws_smithy_types::Blob::new(b"sdk over tls".to_vec()))
            .send()
            .await
            .unwrap()
            .ciphertext_blob
            .unwrap();
        let pt = kms
            .decrypt()
            .ciphertext_blob(ct)
            .send()
            .await
            .unwrap()
            .plaintext
            .unwrap();
        assert_eq!(pt.as_ref(), b"sdk over tls");
    });

    // Plain HTTP to the TLS port gets no KMS answer.
    let host = server.addr.clone();
    let raw = ops_support::signed_raw(&host, "ListKeys", "{}");
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut s, &raw).unwrap();
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("Keys"));
}

const BOTO_MTLS: &str = r#"
import sys, boto3
from botocore.config import Config
endpoint, ca = sys.argv[1], sys.argv[2]
cfg = Config(client_cert=(sys.argv[3], sys.argv[4])) if len(sys.argv) > 4 else None
kms = boto3.client("kms", endpoint_url=endpoint, verify=ca, config=cfg)
print(len(kms.list_keys()["Keys"]))
"#;

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"), "ca");
    let clients = Pki::new(&tmp.path().join("pki"), "clients");
    let other = Pki::new(&tmp.path().join("pki"), "other");
    let (ccert, ckey) = clients.issue("clients", "client", false, 3);
    let (bad_cert, bad_key) = other.issue("other", "intruder", false, 4);
    let client_ca = clients.ca("clients");
    let server = tls_server(
        tmp.path(),
        &pki,
        &["--tls-client-ca", client_ca.to_str().unwrap()],
    );
    let ca = pki.ca("ca");
    let ca = ca.to_str().unwrap();

    let (ok, so, se) = python(
        BOTO_MTLS,
        &[
            &server.endpoint,
            ca,
            ccert.to_str().unwrap(),
            ckey.to_str().unwrap(),
        ],
    );
    assert!(ok, "{so}\n{se}");
    assert_eq!(so.trim(), "0");

    // No client certificate: the handshake fails, nothing is answered.
    let (ok, so, se) = python(BOTO_MTLS, &[&server.endpoint, ca]);
    assert!(!ok, "a client without a certificate was served: {so}");
    assert!(
        se.contains("SSL") || se.contains("Connection") || se.contains("certificate"),
        "{se}"
    );
    // A certificate from another CA: refused too.
    let (ok, so, _) = python(
        BOTO_MTLS,
        &[
            &server.endpoint,
            ca,
            bad_cert.to_str().unwrap(),
            bad_key.to_str().unwrap(),
        ],
    );
    assert!(!ok, "a client with a foreign certificate was served: {so}");
    assert!(server.wait_log("TLS handshake failed", Duration::from_secs(5)));
}

/// The serial number of the certificate the server presents now.
fn presented_serial(addr: &str, ca: &std::path::Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} -CAfile {} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial",
            ca.display()
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn sighup_reloads_the_certificate_and_a_bad_file_keeps_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"), "ca");
    let server = tls_server(tmp.path(), &pki, &[]);
    let ca = pki.ca("ca");
    assert_eq!(presented_serial(&server.addr, &ca), "serial=02");

    // A new certificate in place of the old: SIGHUP makes new connections see it.
    let dir = &pki.dir;
    let (c2, k2) = pki.issue("ca", "server2", true, 9);
    std::fs::copy(&c2, dir.join("server.pem")).unwrap();
    std::fs::copy(&k2, dir.join("server.key")).unwrap();
    server.signal("HUP");
    let mut reloaded = false;
    for _ in 0..50 {
        if presented_serial(&server.addr, &ca) == "serial=09" {
            reloaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        reloaded,
        "certificate not reloaded:\n{}",
        server.stderr_text()
    );

    // A broken certificate file: reload fails, is logged, and the previous one stays in use.
    std::fs::write(dir.join("server.pem"), "not a certificate").unwrap();
    server.signal("HUP");
    assert!(server.wait_log("TLS reload failed", Duration::from_secs(5)));
    assert_eq!(presented_serial(&server.addr, &ca), "serial=09");
}

#[test]
fn plain_http_on_a_network_address_is_refused_unless_insecure_http() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let creds = [
        ("KEYFERRY_ACCESS_KEY_ID", "AKIAOPSTEST000000001"),
        ("KEYFERRY_SECRET_ACCESS_KEY", "ops-test-secret"),
    ];
    let err = Ops::try_start(&data, &["--listen", "0.0.0.0:0"], &creds)
        .err()
        .expect("plain HTTP on 0.0.0.0 must be refused");
    assert!(
        err.contains("without TLS") && err.contains("--insecure-http"),
        "{err}"
    );
    assert!(
        !data.exists(),
        "the refused start created the data directory"
    );

    let server = Ops::start(&data, &["--listen", "0.0.0.0:0", "--insecure-http"], &creds);
    assert!(server.endpoint.starts_with("http://0.0.0.0:"));

    // TLS files that do not exist: a clear error, no data directory.
    let data2 = tmp.path().join("data2");
    let out = keyferry()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data2)
        .args([
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read TLS certificate file /nonexistent/cert.pem"),
        "{err}"
    );
    assert!(!data2.exists());
}
