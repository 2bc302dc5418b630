//! The operator's side of `keyferry serve`: health, readiness and metrics on the admin
//! listener; the TOML config file and its precedence; JSON logs; secrets from files and out of
//! reach of other processes; and the start-up checks (host names in --listen, a port in use, a
//! second server on one data directory, --help naming the environment).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ops_support;

use std::time::Duration;

use ops_support::{Ops, admin_get, http_request, is_root, keyferry, roundtrip, signed_raw, to_raw};

#[test]
fn health_readiness_and_metrics_on_the_admin_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Ops::start(
        &tmp.path().join("data"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--wrapping-pool-size",
            "1",
        ],
        &[],
    );
    let admin = server.admin.clone().expect("admin address announced");
    let (st, body) = admin_get(&admin, "/healthz");
    assert_eq!((st, body.as_str()), (200, "ok\n"));

    // Ready once the wrapping-key pool has a key of every spec (RSA-4096 takes a moment).
    let mut ready = (0, String::new());
    for _ in 0..300 {
        ready = admin_get(&admin, "/readyz");
        if ready.0 == 200 {
            break;
        }
        assert_eq!(ready.0, 503);
        assert!(ready.1.starts_with("not ready\n"), "{}", ready.1);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ready, (200, "ready\n".to_owned()));

    // Some traffic: a success, a client error, an unauthenticated request.
    let addr = server.addr.clone();
    assert_eq!(
        roundtrip(&addr, &signed_raw(&addr, "ListKeys", "{}")).0,
        200
    );
    let (st, body) = roundtrip(
        &addr,
        &signed_raw(&addr, "DescribeKey", r#"{"KeyId": "alias/missing"}"#),
    );
    assert_eq!(st, 400);
    assert!(body.contains("NotFoundException"));
    let (st, _) = roundtrip(&addr, &to_raw(&http_request(&addr, "RandomLabelXyz", "{}")));
    assert_eq!(st, 403);

    let (st, m) = admin_get(&admin, "/metrics");
    assert_eq!(st, 200);
    for needle in [
        "keyferry_requests_total{operation=\"ListKeys\",error_code=\"\"} 1",
        "keyferry_requests_total{operation=\"DescribeKey\",error_code=\"NotFoundException\"} 1",
        "keyferry_requests_total{operation=\"unknown\",error_code=\"MissingAuthenticationTokenException\"} 1",
        "keyferry_request_duration_seconds_count{operation=\"ListKeys\"} 1",
        "keyferry_request_duration_seconds_bucket{operation=\"ListKeys\",le=\"+Inf\"} 1",
        "# TYPE keyferry_request_duration_seconds histogram",
        "keyferry_wrapping_pool_ready{spec=\"RSA_4096\"} 1",
        "keyferry_storage_errors_total 0",
        "keyferry_connections_accepted_total 3",
    ] {
        assert!(m.contains(needle), "metrics lack {needle:?}:\n{m}");
    }
    // An unauthenticated caller cannot invent label values.
    assert!(!m.contains("RandomLabelXyz"));

    // Cache hit rates: a key used twice is served from the record, policy and material caches
    // the second time; an import takes a ready wrapping key from the pool.
    let before = cache_counts(&m);
    let (st, body) = roundtrip(&addr, &signed_raw(&addr, "CreateKey", "{}"));
    assert_eq!(st, 200, "{body}");
    let key = json_str(&body, "KeyId");
    for _ in 0..2 {
        let (st, body) = roundtrip(
            &addr,
            &signed_raw(
                &addr,
                "Encrypt",
                &format!(r#"{{"KeyId":"{key}","Plaintext":"aGVsbG8="}}"#),
            ),
        );
        assert_eq!(st, 200, "{body}");
    }
    let (st, body) = roundtrip(
        &addr,
        &signed_raw(&addr, "CreateKey", r#"{"Origin":"EXTERNAL"}"#),
    );
    assert_eq!(st, 200, "{body}");
    let ext = json_str(&body, "KeyId");
    let (st, body) = roundtrip(
        &addr,
        &signed_raw(
            &addr,
            "GetParametersForImport",
            &format!(
                r#"{{"KeyId":"{ext}","WrappingAlgorithm":"RSAES_OAEP_SHA_256","WrappingKeySpec":"RSA_2048"}}"#
            ),
        ),
    );
    assert_eq!(st, 200, "{body}");
    let (_, m) = admin_get(&admin, "/metrics");
    for needle in [
        "# TYPE keyferry_cache_hits_total counter",
        "# TYPE keyferry_cache_misses_total counter",
    ] {
        assert!(m.contains(needle), "metrics lack {needle:?}:\n{m}");
    }
    let after = cache_counts(&m);
    let delta = |cache: &str| {
        let (h0, m0) = before.get(cache).copied().unwrap_or_default();
        let (h1, m1) = after
            .get(cache)
            .copied()
            .unwrap_or_else(|| panic!("no counters for cache {cache}:\n{m}"));
        (h1 - h0, m1 - m0)
    };
    // The second Encrypt: record, compiled policy and opened material all from the cache.
    for cache in ["key_record", "compiled_policy"] {
        let (hits, _) = delta(cache);
        assert!(hits >= 1, "{cache}: no hit\n{m}");
    }
    // The first Encrypt opened the material (miss), the second used it (hit).
    assert_eq!(delta("key_material"), (1, 1), "{m}");
    assert_eq!(delta("wrapping_key_pool"), (1, 0), "{m}");
    assert_eq!(delta("import_token"), (0, 0), "{m}");
}

/// `cache → (hits, misses)` from a /metrics text.
fn cache_counts(m: &str) -> std::collections::HashMap<String, (u64, u64)> {
    let mut out = std::collections::HashMap::<String, (u64, u64)>::new();
    for line in m.lines() {
        for (prefix, hit) in [
            ("keyferry_cache_hits_total{cache=\"", true),
            ("keyferry_cache_misses_total{cache=\"", false),
        ] {
            if let Some(rest) = line.strip_prefix(prefix) {
                let (name, value) = rest.split_once("\"} ").unwrap();
                let v: u64 = value.parse().unwrap();
                let e = out.entry(name.to_owned()).or_default();
                if hit {
                    e.0 = v;
                } else {
                    e.1 = v;
                }
            }
        }
    }
    out
}

fn json_str(body: &str, member: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["KeyMetadata"][member].as_str().unwrap().to_owned()
}

#[test]
fn config_file_environment_and_flags_in_that_order_and_json_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("keyferry.toml");
    let data_file = tmp.path().join("data-from-file");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\ndata = \"{}\"\nregion = \"eu-west-1\"\naccount-id = \"444455556666\"\nlog_format = \"json\"\nmax-connections = 100\n",
            data_file.display()
        ),
    )
    .unwrap();
    // File only: its region, account and data directory.
    let mut cmd = keyferry();
    let out = cmd
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());

    let start = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--config", cfg.to_str().unwrap()];
        all.extend_from_slice(args);
        // `--data` comes from the helper; the file's `data` is checked separately below.
        Ops::start(&tmp.path().join("d"), &all, env)
    };
    let s = start(&[], &[]);
    let line = s.stdout.lock().unwrap()[0].clone();
    assert!(
        line.contains("region eu-west-1, account 444455556666"),
        "{line}"
    );
    // JSON logs on stderr.
    assert!(
        s.wait_log("\"level\":\"INFO\"", Duration::from_secs(3)),
        "{}",
        s.stderr_text()
    );
    drop(s);

    // Environment beats the file; a flag beats both.
    let s = start(&[], &[("KEYFERRY_REGION", "ap-south-1")]);
    assert!(s.stdout.lock().unwrap()[0].contains("region ap-south-1,"));
    drop(s);
    let s = start(
        &["--region", "sa-east-1"],
        &[("KEYFERRY_REGION", "ap-south-1")],
    );
    assert!(s.stdout.lock().unwrap()[0].contains("region sa-east-1,"));
    drop(s);

    // The file's data directory is used when no flag names one.
    let mut child = keyferry()
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("keyferry: listening on http://127.0.0.1:"),
        "{first}"
    );
    assert!(data_file.join("keyferry.db").exists());
    let _ = child.kill();
    let _ = child.wait();

    // Unknown keys are an error that names the key.
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nlisten-port = 5\n").unwrap();
    let out = keyferry()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option \"listen_port\""));
}

#[test]
fn start_up_checks_host_names_port_in_use_and_one_server_per_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // A host name in --listen.
    let a = Ops::start(&tmp.path().join("a"), &["--listen", "localhost:0"], &[]);
    assert!(
        a.endpoint.starts_with("http://127.0.0.1:"),
        "{}",
        a.endpoint
    );

    // The port in use: refused before the data directory (and a root key) is created.
    let fresh = tmp.path().join("fresh");
    let err = Ops::try_start(&fresh, &["--listen", &a.addr], &[])
        .err()
        .unwrap();
    assert!(
        err.contains(&format!("cannot listen on {}", a.addr)),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");
    assert!(!fresh.exists());

    // A second server on the same data directory: refused with a message saying why.
    let err = Ops::try_start(&tmp.path().join("a"), &["--listen", "127.0.0.1:0"], &[])
        .err()
        .unwrap();
    assert!(
        err.contains("another keyferry server is already using the data directory"),
        "{err}"
    );
    drop(a);
    // Once the first has exited the directory is free again.
    let _b = Ops::start(&tmp.path().join("a"), &["--listen", "127.0.0.1:0"], &[]);

    // Bad syntax is explained.
    let err = Ops::try_start(&tmp.path().join("c"), &["--listen", "4600"], &[])
        .err()
        .unwrap();
    assert!(err.contains("expected IP:PORT or HOST:PORT"), "{err}");
}

#[test]
fn serve_help_names_every_environment_variable() {
    let out = keyferry().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for v in [
        "KEYFERRY_ACCESS_KEY_ID",
        "KEYFERRY_SECRET_ACCESS_KEY",
        "KEYFERRY_SECRET_ACCESS_KEY_FILE",
        "KEYFERRY_ACCOUNT_ID",
        "KEYFERRY_ROOT_KEY",
        "KEYFERRY_LOG",
        "KEYFERRY_CONFIG",
        "KEYFERRY_DATABASE_URL",
        "KEYFERRY_TLS_CERT",
        "KEYFERRY_ADMIN_LISTEN",
        "--shutdown-grace",
        "--insecure-http",
        "--root-key-pkcs11",
        "KEYFERRY_ROOT_KEY_PKCS11",
        "KEYFERRY_PKCS11_PIN",
        "KEYFERRY_PKCS11_MODULE",
    ] {
        assert!(help.contains(v), "serve --help lacks {v}");
    }
}

const NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

#[test]
fn credentials_from_files_and_the_environment_out_of_reach() {
    let tmp = tempfile::tempdir().unwrap();
    // Root reads every /proc/<pid>/environ; as root, run the server (and the reader) as nobody.
    let root = is_root();
    let wrapper: &[&str] = if root { &NOBODY } else { &[] };
    if root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let akid = tmp.path().join("akid");
    let secret = tmp.path().join("secret");
    std::fs::write(&akid, "AKIAFROMFILE00000001\n").unwrap();
    std::fs::write(&secret, "secret-from-a-file\n").unwrap();
    let root_hex = "ab".repeat(32);
    let server = Ops::try_start_as(
        wrapper,
        &tmp.path().join("data"),
        &["--listen", "127.0.0.1:0"],
        &[
            ("KEYFERRY_ACCESS_KEY_ID_FILE", akid.to_str().unwrap()),
            ("KEYFERRY_SECRET_ACCESS_KEY_FILE", secret.to_str().unwrap()),
            ("KEYFERRY_ROOT_KEY", &root_hex),
        ],
    )
    .unwrap();
    let addr = server.addr.clone();
    // The file credential is the one accepted; the development one is not.
    let mut req = http_request(&addr, "ListKeys", "{}");
    let creds = keyferry_sigv4::Credentials::new("AKIAFROMFILE00000001", "secret-from-a-file");
    keyferry_sigv4::sign(
        &mut req,
        &creds,
        "us-east-1",
        "kms",
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(roundtrip(&addr, &to_raw(&req)).0, 200);
    let (st, body) = roundtrip(&addr, &signed_raw(&addr, "ListKeys", "{}"));
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("UnrecognizedClientException"));

    // Not dumpable: another process of the same user cannot read its environment.
    let environ = format!("/proc/{}/environ", server.pid());
    let read_as_same_user = |path: &str| {
        let mut c = std::process::Command::new(if root { NOBODY[0] } else { "cat" });
        if root {
            c.args(&NOBODY[1..]).arg("cat");
        }
        c.arg(path).output().unwrap()
    };
    let out = read_as_same_user(&environ);
    assert!(
        !out.status.success(),
        "{environ} is readable by the same user"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&root_hex));
    // (The same reader can read a dumpable process of that user: the check is meaningful.)
    let mut c = std::process::Command::new("sh");
    if root {
        c = std::process::Command::new(NOBODY[0]);
        c.args(&NOBODY[1..]).arg("sh");
    }
    let out = c
        .args(["-c", "sleep 2 & cat /proc/$!/environ >/dev/null"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Core dumps are off.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");

    // Both the variable and its _FILE variant: refused.
    let err = Ops::try_start(
        &tmp.path().join("data2"),
        &["--listen", "127.0.0.1:0"],
        &[
            ("KEYFERRY_ACCESS_KEY_ID", "AKIAX"),
            ("KEYFERRY_ACCESS_KEY_ID_FILE", akid.to_str().unwrap()),
            ("KEYFERRY_SECRET_ACCESS_KEY", "s"),
        ],
    )
    .err()
    .unwrap();
    assert!(
        err.contains("set KEYFERRY_ACCESS_KEY_ID or KEYFERRY_ACCESS_KEY_ID_FILE, not both"),
        "{err}"
    );
}

#[test]
fn duplicate_authorization_headers_are_refused_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Ops::start(&tmp.path().join("data"), &["--listen", "127.0.0.1:0"], &[]);
    let addr = server.addr.clone();
    let raw = String::from_utf8(signed_raw(&addr, "ListKeys", "{}")).unwrap();
    let auth = raw
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .unwrap()
        .trim_end_matches('\r')
        .to_string();
    let doubled = raw.replacen(&format!("{auth}\r\n"), &format!("{auth}\r\n{auth}\r\n"), 1);
    assert_ne!(doubled, raw);
    let (st, body) = roundtrip(&addr, doubled.as_bytes());
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("IncompleteSignatureException"), "{body}");
    assert!(body.contains("Only one Authorization header"), "{body}");
    // The same request with one header is fine.
    assert_eq!(roundtrip(&addr, raw.as_bytes()).0, 200);
}
