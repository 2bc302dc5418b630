//! Verification against published AWS SigV4 test-suite vectors, real botocore signatures,
//! our own signer, an independent string-based computation, and every rejection path.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use http::{HeaderMap, HeaderName, HeaderValue};
use keyferry_sigv4::{
    AuthError, Credentials, SIGNATURE_MISMATCH, SecretKey, SignedRequest, Verifier, sign,
    sign_parts,
};
use time::OffsetDateTime;
use time::macros::datetime;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const T0: OffsetDateTime = datetime!(2015-08-30 12:36:00 UTC);

fn lookup(id: &str) -> Option<SecretKey> {
    (id == AKID).then(|| SecretKey::new(SECRET))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// An owned request for tests.
#[derive(Clone)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    fn as_signed(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }

    fn verify_with(&self, v: &Verifier, now: OffsetDateTime) -> Result<String, AuthError> {
        v.verify(&self.as_signed(), now, lookup)
    }
}

fn mismatch() -> Result<String, AuthError> {
    Err(AuthError::InvalidSignature(SIGNATURE_MISMATCH.into()))
}

fn vanilla(method: &str, query: &str, signature: &str) -> Req {
    Req {
        method: method.into(),
        path: "/".into(),
        query: query.into(),
        headers: headers(&[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
            (
                "authorization",
                &format!(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}"
                ),
            ),
        ]),
        body: Vec::new(),
    }
}

/// The AWS SigV4 test suite's get-vanilla, post-vanilla and get-vanilla-query-order-key-case.
#[test]
fn aws_test_suite_vectors_verify_and_sign_identically() {
    let v = Verifier::new("us-east-1", "service");
    let cases = [
        (
            "GET",
            "",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "POST",
            "",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "GET",
            "Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
    ];
    for (method, query, sig) in cases {
        let req = vanilla(method, query, sig);
        assert_eq!(req.verify_with(&v, T0).unwrap(), AKID, "{method} {query}");

        // Our signer produces the identical Authorization header.
        let mut h = headers(&[("host", "example.amazonaws.com")]);
        let creds = Credentials::new(AKID, SECRET);
        sign_parts(
            method,
            "/",
            query,
            &mut h,
            b"",
            &creds,
            "us-east-1",
            "service",
            T0,
        )
        .unwrap();
        assert_eq!(h.get("authorization"), req.headers.get("authorization"));
        assert_eq!(h.get("x-amz-date").unwrap(), "20150830T123600Z");

        // One changed hex digit is rejected.
        let mut bad_sig = sig.to_owned();
        bad_sig.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
        assert_eq!(
            vanilla(method, query, &bad_sig).verify_with(&v, T0),
            mismatch()
        );
    }
}

/// A KMS-style request as boto3 sends it (unsigned yet).
fn kms_request(body: &str) -> Req {
    Req {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: headers(&[
            ("host", "kms.us-east-1.amazonaws.com"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "TrentService.Encrypt"),
            ("user-agent", "Boto3/1.43.11 md/Botocore#1.43.11"),
        ]),
        body: body.as_bytes().to_vec(),
    }
}

fn sign_req(r: &mut Req, now: OffsetDateTime) {
    let creds = Credentials::new(AKID, SECRET);
    sign_parts(
        &r.method,
        &r.path,
        &r.query,
        &mut r.headers,
        &r.body,
        &creds,
        "us-east-1",
        "kms",
        now,
    )
    .unwrap();
}

fn signed_kms_request(body: &str, now: OffsetDateTime) -> Req {
    let mut r = kms_request(body);
    sign_req(&mut r, now);
    r
}

/// Ask real botocore (`SigV4Auth`) to sign; returns the request as the server would see it.
#[allow(clippy::too_many_arguments)]
fn botocore_sign(
    method: &str,
    path_and_query: &str,
    extra_headers: &[(&str, &str)],
    body: &str,
    token: Option<&str>,
    region: &str,
    service: &str,
    time: &str,
) -> Req {
    let input = serde_json::json!({
        "method": method,
        "url": format!("https://kms.{region}.amazonaws.com{path_and_query}"),
        "headers": extra_headers,
        "body": body,
        "access_key": AKID,
        "secret_key": SECRET,
        "token": token,
        "region": region,
        "service": service,
        "time": time,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/botocore_sign.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "botocore signer failed");
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut h = HeaderMap::new();
    for pair in parsed["headers"].as_array().unwrap() {
        let k = pair[0].as_str().unwrap();
        let v = pair[1].as_str().unwrap();
        h.append(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    Req {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: h,
        body: body.as_bytes().to_vec(),
    }
}

const BOTO_TIME: &str = "20260115T093000Z";
const BOTO_NOW: OffsetDateTime = datetime!(2026-01-15 09:30:00 UTC);
const KMS_BODY: &str = r#"{"KeyId": "alias/test", "Plaintext": "aGVsbG8="}"#;
const KMS_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "application/x-amz-json-1.1"),
    ("X-Amz-Target", "TrentService.Encrypt"),
    ("User-Agent", "Boto3/1.43.11"),
];

#[test]
fn botocore_signed_requests_verify() {
    let v = Verifier::new("us-east-1", "kms");
    // Plain boto3 KMS call.
    let r = botocore_sign(
        "POST",
        "/",
        KMS_HEADERS,
        KMS_BODY,
        None,
        "us-east-1",
        "kms",
        BOTO_TIME,
    );
    let auth = r.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"),
        "{auth}"
    );
    assert_eq!(r.verify_with(&v, BOTO_NOW).unwrap(), AKID);
    // Within the skew window on both sides.
    let four = time::Duration::minutes(4);
    assert!(r.verify_with(&v, BOTO_NOW + four).is_ok());
    assert!(r.verify_with(&v, BOTO_NOW - four).is_ok());

    // Our signer agrees byte for byte with botocore's Authorization header.
    let mut mine = kms_request(KMS_BODY);
    mine.headers = headers(&[
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "TrentService.Encrypt"),
        ("user-agent", "Boto3/1.43.11"),
        ("host", "kms.us-east-1.amazonaws.com"),
    ]);
    sign_req(&mut mine, BOTO_NOW);
    assert_eq!(
        mine.headers.get("authorization"),
        r.headers.get("authorization")
    );

    // Session token, odd whitespace in a header value, a path needing encoding and a query.
    let r = botocore_sign(
        "POST",
        "/a%20b/./c/?b=2&a=x%2Fy&a=1",
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", "TrentService.Decrypt"),
            ("X-Custom", "  spaced    out\tvalue "),
        ],
        "{}",
        Some("FQoGZXIvYXdzEJr//////////token"),
        "us-east-1",
        "kms",
        BOTO_TIME,
    );
    let auth = r.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(auth.contains("x-amz-security-token"), "{auth}");
    assert!(auth.contains("x-custom"), "{auth}");
    assert_eq!(r.verify_with(&v, BOTO_NOW).unwrap(), AKID);

    // Tampering with a botocore-signed request is detected.
    let mut t = r.clone();
    t.headers.insert(
        "x-amz-target",
        HeaderValue::from_static("TrentService.Encrypt"),
    );
    assert_eq!(t.verify_with(&v, BOTO_NOW), mismatch());
    let mut t = r.clone();
    t.query = "b=2&a=x%2Fy&a=2".into();
    assert_eq!(t.verify_with(&v, BOTO_NOW), mismatch());
    let mut t = r.clone();
    t.path = "/a%20b/c/d".into();
    assert_eq!(t.verify_with(&v, BOTO_NOW), mismatch());
    let mut t = r;
    t.headers.insert(
        "x-amz-security-token",
        HeaderValue::from_static("another-token"),
    );
    assert_eq!(t.verify_with(&v, BOTO_NOW), mismatch());
}

#[test]
fn botocore_wrong_region_and_service_are_reported_like_aws() {
    let v = Verifier::new("us-east-1", "kms");
    let r = botocore_sign(
        "POST",
        "/",
        KMS_HEADERS,
        KMS_BODY,
        None,
        "eu-west-1",
        "kms",
        BOTO_TIME,
    );
    let e = r.verify_with(&v, BOTO_NOW).unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    assert_eq!(
        e.message(),
        "Credential should be scoped to a valid region, not 'eu-west-1'. "
    );
    let r = botocore_sign(
        "POST",
        "/",
        KMS_HEADERS,
        KMS_BODY,
        None,
        "us-east-1",
        "s3",
        BOTO_TIME,
    );
    let e = r.verify_with(&v, BOTO_NOW).unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    assert_eq!(
        e.message(),
        "Credential should be scoped to correct service: 'kms'. "
    );
}

#[test]
fn round_trip_with_sign_on_http_request_and_cache() {
    let v = Verifier::new("eu-central-1", "kms");
    let mut req = http::Request::builder()
        .method("POST")
        .uri("http://127.0.0.1:8080/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "TrentService.ListKeys")
        .header("user-agent", "keyferry-test")
        .body(b"{}".to_vec())
        .unwrap();
    let creds = Credentials::new("AKIAKEYFERRY", "s3cr3t");
    let now = datetime!(2026-03-01 00:00:00 UTC);
    sign(&mut req, &creds, "eu-central-1", "kms", now).unwrap();
    assert_eq!(req.headers().get("host").unwrap(), "127.0.0.1:8080");
    let signed = SignedRequest {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query().unwrap_or(""),
        headers: req.headers(),
        body: req.body(),
    };
    let shared = SecretKey::new("s3cr3t");
    let lk = |id: &str| (id == "AKIAKEYFERRY").then(|| shared.clone());
    assert_eq!(v.verify(&signed, now, lk).unwrap(), "AKIAKEYFERRY");
    // Second call hits the signing-key cache and still verifies; so does a fresh copy of
    // the same secret (compared by value).
    assert_eq!(v.verify(&signed, now, lk).unwrap(), "AKIAKEYFERRY");
    let copy = |id: &str| (id == "AKIAKEYFERRY").then(|| SecretKey::new("s3cr3t"));
    assert_eq!(v.verify(&signed, now, copy).unwrap(), "AKIAKEYFERRY");
    // A secret rotated under the same access key id invalidates the cached key.
    let rotated = |id: &str| (id == "AKIAKEYFERRY").then(|| SecretKey::new("new-secret"));
    assert_eq!(v.verify(&signed, now, rotated), mismatch());
    assert_eq!(v.verify(&signed, now, lk).unwrap(), "AKIAKEYFERRY");
    // A request on the next day derives a new key for the same access key id.
    let tomorrow = now + time::Duration::days(1);
    let mut req2 = req.clone();
    sign(&mut req2, &creds, "eu-central-1", "kms", tomorrow).unwrap();
    let signed2 = SignedRequest {
        headers: req2.headers(),
        ..signed
    };
    assert_eq!(v.verify(&signed2, tomorrow, lk).unwrap(), "AKIAKEYFERRY");
    assert!(v.verify(&signed, now, lk).is_ok());

    // user-agent is not signed, so a proxy rewriting it does not break the signature.
    let auth = req
        .headers()
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"));
    let mut h = req.headers().clone();
    h.insert("user-agent", HeaderValue::from_static("other"));
    let signed3 = SignedRequest {
        headers: &h,
        ..signed
    };
    assert!(v.verify(&signed3, now, lk).is_ok());

    // Many distinct access keys: the bounded cache keeps working.
    for i in 0..1500 {
        let id = format!("AKIA{i:06}");
        let c = Credentials::new(id.clone(), "k");
        let mut r = http::Request::builder()
            .method("POST")
            .uri("http://h/")
            .body(Vec::new())
            .unwrap();
        sign(&mut r, &c, "eu-central-1", "kms", now).unwrap();
        let s = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: r.headers(),
            body: b"",
        };
        assert_eq!(
            v.verify(&s, now, |_| Some(SecretKey::new("k"))).unwrap(),
            id
        );
    }

    // sign() without host and without authority fails cleanly.
    let mut no_host = http::Request::builder().uri("/").body(Vec::new()).unwrap();
    assert!(sign(&mut no_host, &creds, "eu-central-1", "kms", now).is_err());
}

#[test]
fn content_sha256_header_must_match_body_when_signed() {
    let v = Verifier::new("us-east-1", "kms");
    let good_hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        KMS_BODY.as_bytes(),
    ));
    let mut r = kms_request(KMS_BODY);
    r.headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_str(&good_hash).unwrap(),
    );
    sign_req(&mut r, BOTO_NOW);
    assert!(r.verify_with(&v, BOTO_NOW).is_ok());

    // The header is signed over a value that is not the body's hash.
    let mut bad = kms_request(KMS_BODY);
    bad.headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("UNSIGNED-PAYLOAD"),
    );
    sign_req(&mut bad, BOTO_NOW);
    assert_eq!(bad.verify_with(&v, BOTO_NOW), mismatch());
}

fn with_auth(mut r: Req, auth: &str) -> Req {
    r.headers
        .insert("authorization", HeaderValue::from_str(auth).unwrap());
    r
}

fn replace_in_auth(r: &Req, from: &str, to: &str) -> Req {
    let auth = r.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(auth.contains(from), "{auth} lacks {from}");
    let auth = auth.replace(from, to);
    with_auth(r.clone(), &auth)
}

#[test]
fn tampering_wrong_keys_and_time_are_rejected() {
    let v = Verifier::new("us-east-1", "kms");
    let good = signed_kms_request(KMS_BODY, BOTO_NOW);
    assert_eq!(good.verify_with(&v, BOTO_NOW).unwrap(), AKID);

    // Tampered body.
    let mut r = good.clone();
    r.body = br#"{"KeyId": "alias/evil", "Plaintext": "aGVsbG8="}"#.to_vec();
    assert_eq!(r.verify_with(&v, BOTO_NOW), mismatch());

    // Tampered, removed and duplicated signed headers; changed host.
    let mut r = good.clone();
    r.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    assert_eq!(r.verify_with(&v, BOTO_NOW), mismatch());
    let mut r = good.clone();
    r.headers.remove("x-amz-target");
    assert_eq!(r.verify_with(&v, BOTO_NOW), mismatch());
    let mut r = good.clone();
    r.headers.append(
        "x-amz-target",
        HeaderValue::from_static("TrentService.Decrypt"),
    );
    assert_eq!(r.verify_with(&v, BOTO_NOW), mismatch());
    let mut r = good.clone();
    r.headers
        .insert("host", HeaderValue::from_static("evil.example"));
    assert_eq!(r.verify_with(&v, BOTO_NOW), mismatch());

    // Whitespace changes inside a signed value are canonicalised away.
    let mut r = good.clone();
    r.headers.insert(
        "x-amz-target",
        HeaderValue::from_static("  TrentService.Encrypt "),
    );
    assert!(r.verify_with(&v, BOTO_NOW).is_ok());

    // Different method.
    let mut r = good.clone();
    r.method = "PUT".into();
    assert_eq!(r.verify_with(&v, BOTO_NOW), mismatch());

    // Wrong secret.
    let wrong = |id: &str| (id == AKID).then(|| SecretKey::new("not-the-secret"));
    assert_eq!(v.verify(&good.as_signed(), BOTO_NOW, wrong), mismatch());

    // Unknown access key.
    let unknown = replace_in_auth(&good, "Credential=AKIDEXAMPLE/", "Credential=AKIDOTHER/");
    let e = unknown.verify_with(&v, BOTO_NOW).unwrap_err();
    assert_eq!(e, AuthError::UnrecognizedClient);
    assert_eq!(e.code(), "UnrecognizedClientException");
    assert_eq!(
        e.message(),
        "The security token included in the request is invalid."
    );

    // Expired and not yet current, with AWS's texts.
    let e = good
        .verify_with(&v, BOTO_NOW + time::Duration::minutes(10))
        .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");
    assert_eq!(
        e.message(),
        "Signature expired: 20260115T093000Z is now earlier than 20260115T093500Z (20260115T094000Z - 5 min.)"
    );
    let e = good
        .verify_with(&v, BOTO_NOW - time::Duration::seconds(301))
        .unwrap_err();
    assert_eq!(
        e.message(),
        "Signature not yet current: 20260115T093000Z is still later than 20260115T092959Z (20260115T092459Z + 5 min.)"
    );
    // Exactly at the edges is still accepted.
    assert!(
        good.verify_with(&v, BOTO_NOW + time::Duration::minutes(5))
            .is_ok()
    );
    assert!(
        good.verify_with(&v, BOTO_NOW - time::Duration::minutes(5))
            .is_ok()
    );
    // A custom skew is honoured.
    let strict = Verifier::new("us-east-1", "kms").with_max_skew(time::Duration::minutes(1));
    let e = good
        .verify_with(&strict, BOTO_NOW + time::Duration::minutes(2))
        .unwrap_err();
    assert!(e.message().ends_with("- 1 min.)"), "{}", e.message());

    // Wrong region / service / terminator in the scope.
    let e = replace_in_auth(&good, "/us-east-1/", "/us-west-2/")
        .verify_with(&v, BOTO_NOW)
        .unwrap_err();
    assert_eq!(
        e.message(),
        "Credential should be scoped to a valid region, not 'us-west-2'. "
    );
    let e = replace_in_auth(&good, "/kms/", "/sts/")
        .verify_with(&v, BOTO_NOW)
        .unwrap_err();
    assert_eq!(
        e.message(),
        "Credential should be scoped to correct service: 'kms'. "
    );
    let e = replace_in_auth(&good, "/aws4_request", "/aws5_request")
        .verify_with(&v, BOTO_NOW)
        .unwrap_err();
    assert_eq!(e.code(), "InvalidSignatureException");

    // Scope date differs from X-Amz-Date.
    let e = replace_in_auth(&good, "/20260115/", "/20260114/")
        .verify_with(&v, BOTO_NOW)
        .unwrap_err();
    assert_eq!(
        e.message(),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20260114' != '20260115', from '20260115T093000Z'."
    );
}

#[test]
fn malformed_authorization_is_incomplete_signature() {
    let v = Verifier::new("us-east-1", "kms");
    let good = signed_kms_request(KMS_BODY, BOTO_NOW);
    let auth = good
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let (head, _) = auth.split_once(", Signature=").unwrap();

    // Malformed signature values are a plain mismatch.
    for sig in ["", "abc", &"zz".repeat(32), &"00".repeat(33)] {
        let r = with_auth(good.clone(), &format!("{head}, Signature={sig}"));
        assert_eq!(r.verify_with(&v, BOTO_NOW), mismatch(), "{sig:?}");
    }

    // Missing components.
    let e = with_auth(good.clone(), head)
        .verify_with(&v, BOTO_NOW)
        .unwrap_err();
    assert_eq!(e.code(), "IncompleteSignatureException");
    assert_eq!(
        e.message(),
        format!("Authorization header requires 'Signature' parameter. Authorization={head}")
    );
    let no_signed_headers = auth
        .split(", ")
        .filter(|p| !p.starts_with("SignedHeaders="))
        .collect::<Vec<_>>()
        .join(", ");
    let e = with_auth(good.clone(), &no_signed_headers)
        .verify_with(&v, BOTO_NOW)
        .unwrap_err();
    assert!(
        e.message()
            .starts_with("Authorization header requires 'SignedHeaders' parameter.")
    );
    let mut r = good.clone();
    r.headers.remove("x-amz-date");
    let e = r.verify_with(&v, BOTO_NOW).unwrap_err();
    assert_eq!(e.code(), "IncompleteSignatureException");
    assert!(e.message().contains(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    ));

    // Garbage Authorization headers.
    let e = with_auth(good.clone(), "Bearer abc.def")
        .verify_with(&v, BOTO_NOW)
        .unwrap_err();
    assert_eq!(
        e.message(),
        "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=Bearer abc.def"
    );
    let e = with_auth(good.clone(), "AWS4-HMAC-SHA256 Credential")
        .verify_with(&v, BOTO_NOW)
        .unwrap_err();
    assert_eq!(
        e.message(),
        "'Credential' not a valid key=value pair (missing equal-sign) in Authorization header: 'AWS4-HMAC-SHA256 Credential'."
    );
    let e = replace_in_auth(&good, "Credential=AKIDEXAMPLE/20260115/", "Credential=")
        .verify_with(&v, BOTO_NOW)
        .unwrap_err();
    assert_eq!(e.code(), "IncompleteSignatureException");
    let e = replace_in_auth(
        &good,
        "SignedHeaders=content-type;",
        "SignedHeaders=Content-Type;",
    )
    .verify_with(&v, BOTO_NOW)
    .unwrap_err();
    assert_eq!(e.code(), "IncompleteSignatureException");
    let mut r = good.clone();
    r.headers
        .insert("x-amz-date", HeaderValue::from_static("yesterday"));
    let e = r.verify_with(&v, BOTO_NOW).unwrap_err();
    assert_eq!(e.code(), "IncompleteSignatureException");
    assert!(e.message().contains("Got 'yesterday'"));
    let mut r = good.clone();
    r.headers.insert(
        "authorization",
        HeaderValue::from_bytes(b"AWS4-HMAC-SHA256 \xff").unwrap(),
    );
    assert_eq!(
        r.verify_with(&v, BOTO_NOW).unwrap_err().code(),
        "IncompleteSignatureException"
    );

    // Missing Authorization entirely.
    let mut r = good.clone();
    r.headers.remove("authorization");
    let e = r.verify_with(&v, BOTO_NOW).unwrap_err();
    assert_eq!(e, AuthError::MissingAuthenticationToken);
    assert_eq!(e.code(), "MissingAuthenticationTokenException");
    assert_eq!(e.message(), "Missing Authentication Token");
    assert_eq!(e.http_status(), 403);

    // Host not signed (structural check, before the signature is computed).
    let e = replace_in_auth(
        &good,
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target",
        "SignedHeaders=content-type;x-amz-date;x-amz-target",
    )
    .verify_with(&v, BOTO_NOW)
    .unwrap_err();
    assert_eq!(e.code(), "IncompleteSignatureException");
    assert_eq!(
        e.message(),
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    );
    // X-Amz-Date not signed.
    let e = replace_in_auth(
        &good,
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target",
        "SignedHeaders=content-type;host;x-amz-target",
    )
    .verify_with(&v, BOTO_NOW)
    .unwrap_err();
    assert_eq!(
        e.message(),
        "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization."
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let creds = Credentials::new(AKID, SECRET);
    let dbg = format!("{creds:?}");
    assert!(dbg.contains(AKID));
    assert!(!dbg.contains("EXAMPLEKEY"));
    assert_eq!(creds.secret_access_key.expose(), SECRET);
    let v = Verifier::new("us-east-1", "kms");
    let good = signed_kms_request(KMS_BODY, BOTO_NOW);
    good.verify_with(&v, BOTO_NOW).unwrap();
    assert!(!format!("{v:?}").contains("EXAMPLEKEY"));
}

/// Independent, string-based SigV4 computation (for the `Date`-header case, which our signer
/// does not produce).
fn manual_signature(canonical_request: &str, amz_date: &str, scope_date: &str) -> String {
    use aws_lc_rs::{digest, hmac};
    let creq_hash = hex::encode(digest::digest(
        &digest::SHA256,
        canonical_request.as_bytes(),
    ));
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope_date}/us-east-1/kms/aws4_request\n{creq_hash}"
    );
    let mut k = format!("AWS4{SECRET}").into_bytes();
    for part in [scope_date, "us-east-1", "kms", "aws4_request", &sts] {
        k = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &k), part.as_bytes())
            .as_ref()
            .to_vec();
    }
    hex::encode(k)
}

#[test]
fn date_header_can_replace_x_amz_date() {
    let v = Verifier::new("us-east-1", "kms");
    let date = "Thu, 15 Jan 2026 09:30:00 GMT";
    let body_hash = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"{}"));
    let creq = format!(
        "POST\n/\n\ndate:{date}\nhost:kms.us-east-1.amazonaws.com\n\ndate;host\n{body_hash}"
    );
    let sig = manual_signature(&creq, BOTO_TIME, "20260115");
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/20260115/us-east-1/kms/aws4_request, SignedHeaders=date;host, Signature={sig}"
    );
    let r = Req {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: headers(&[
            ("host", "kms.us-east-1.amazonaws.com"),
            ("date", date),
            ("authorization", &auth),
        ]),
        body: b"{}".to_vec(),
    };
    assert_eq!(r.verify_with(&v, BOTO_NOW).unwrap(), AKID);
    // Unsigned Date header is refused.
    let e = replace_in_auth(&r, "SignedHeaders=date;host", "SignedHeaders=host")
        .verify_with(&v, BOTO_NOW)
        .unwrap_err();
    assert_eq!(
        e.message(),
        "'Date' must be a 'SignedHeader' in the AWS Authorization."
    );

    // The same independent computation over x-amz-date agrees with sign_parts.
    let mut h = headers(&[("host", "kms.us-east-1.amazonaws.com")]);
    let creds = Credentials::new(AKID, SECRET);
    sign_parts(
        "POST",
        "/",
        "",
        &mut h,
        b"{}",
        &creds,
        "us-east-1",
        "kms",
        BOTO_NOW,
    )
    .unwrap();
    let creq = format!(
        "POST\n/\n\nhost:kms.us-east-1.amazonaws.com\nx-amz-date:{BOTO_TIME}\n\nhost;x-amz-date\n{body_hash}"
    );
    let expected = manual_signature(&creq, BOTO_TIME, "20260115");
    let auth = h.get("authorization").unwrap().to_str().unwrap();
    assert!(auth.ends_with(&format!("Signature={expected}")), "{auth}");
}

#[test]
fn duplicate_authorization_headers_are_refused() {
    let v = Verifier::new("us-east-1", "kms");
    let good = signed_kms_request(KMS_BODY, BOTO_NOW);
    assert_eq!(good.verify_with(&v, BOTO_NOW).unwrap(), AKID);
    let auth = good.headers.get("authorization").unwrap().clone();
    let expected = Err(AuthError::IncompleteSignature(
        "Only one Authorization header may be present in the request.".to_owned(),
    ));

    // The valid header twice.
    let mut twice = good.clone();
    twice.headers.append("authorization", auth.clone());
    assert_eq!(twice.verify_with(&v, BOTO_NOW), expected);

    // A valid header first and a forged one second, and the other way round: neither wins.
    let forged = replace_in_auth(&good, "Signature=", "Signature=00");
    let forged_value = forged.headers.get("authorization").unwrap().clone();
    let mut valid_first = good.clone();
    valid_first
        .headers
        .append("authorization", forged_value.clone());
    assert_eq!(valid_first.verify_with(&v, BOTO_NOW), expected);
    let mut forged_first = forged.clone();
    forged_first.headers.append("authorization", auth);
    assert_eq!(forged_first.verify_with(&v, BOTO_NOW), expected);
    let err = forged_first.verify_with(&v, BOTO_NOW).unwrap_err();
    assert_eq!(err.code(), "IncompleteSignatureException");
    assert_eq!(err.http_status(), 400);
}

#[test]
fn many_large_and_repeated_headers_round_trip() {
    // More header values than the verifier scans directly (it then looks names up), and a
    // canonical request larger than the buffer it keeps between requests.
    let v = Verifier::new("us-east-1", "kms");
    let big = "v".repeat(2048);
    for count in [3usize, 14, 40] {
        let mut r = kms_request(KMS_BODY);
        for i in 0..count {
            r.headers.append(
                HeaderName::from_bytes(format!("x-extra-{i:02}").as_bytes()).unwrap(),
                HeaderValue::from_str(if i % 2 == 0 { &big } else { "  a   b  " }).unwrap(),
            );
        }
        r.headers
            .append("x-extra-01", HeaderValue::from_static("second\tvalue"));
        sign_req(&mut r, BOTO_NOW);
        assert_eq!(r.verify_with(&v, BOTO_NOW).unwrap(), AKID, "{count}");
        // Every signed value counts, the repeated one included.
        let mut t = r.clone();
        t.headers
            .append("x-extra-01", HeaderValue::from_static("third"));
        assert_eq!(t.verify_with(&v, BOTO_NOW), mismatch(), "{count}");
        // A plain request still verifies afterwards on the same thread.
        let plain = signed_kms_request(KMS_BODY, BOTO_NOW);
        assert_eq!(plain.verify_with(&v, BOTO_NOW).unwrap(), AKID);
    }
}
