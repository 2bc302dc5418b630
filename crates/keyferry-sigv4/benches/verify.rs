//! `Verifier::verify` on an aws-CLI-shaped KMS Encrypt request with the signing-key cache warm
//! (the steady state of a server).
//!
//! Run: `cargo bench -p keyferry-sigv4 --bench verify -- --quick`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use keyferry_sigv4::{Credentials, SecretKey, SignedRequest, Verifier, sign_parts};
use time::OffsetDateTime;

const AKID: &str = "AKIAKEYFERRYDEV00001";
const SECRET: &str = "keyferry-development-secret-not-for-production";

/// What `aws kms encrypt` sends: signed content-type;host;x-amz-date;x-amz-target, plus an
/// unsigned user-agent and content-length.
fn request(now: OffsetDateTime) -> Result<(HeaderMap, Vec<u8>), Box<dyn std::error::Error>> {
    let body = br#"{"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "Plaintext": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}"#.to_vec();
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert(
        "host",
        HeaderValue::from_static("kms.us-east-1.amazonaws.com"),
    );
    headers.insert(
        "x-amz-target",
        HeaderValue::from_static("TrentService.Encrypt"),
    );
    sign_parts(
        "POST",
        "/",
        "",
        &mut headers,
        &body,
        &Credentials::new(AKID, SECRET),
        "us-east-1",
        "kms",
        now,
    )?;
    headers.insert(
        "user-agent",
        HeaderValue::from_static(
            "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0 exe/x86_64.ubuntu.22 prompt/off command/kms.encrypt",
        ),
    );
    headers.insert("content-length", HeaderValue::from(body.len()));
    Ok((headers, body))
}

fn verify(c: &mut Criterion) -> Result<(), Box<dyn std::error::Error>> {
    let now = OffsetDateTime::now_utc();
    let (headers, body) = request(now)?;
    let secret = SecretKey::new(SECRET);
    let lookup = |akid: &str| (akid == AKID).then(|| secret.clone());
    let signed = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: &body,
    };
    let verifier = Verifier::new("us-east-1", "kms");
    // Fail loudly, not silently fast: the request must verify.
    verifier.verify(&signed, now, lookup)?;
    c.bench_function("verify_cached_signing_key", |b| {
        b.iter(|| verifier.verify(black_box(&signed), now, lookup))
    });
    Ok(())
}

fn benches(c: &mut Criterion) {
    if let Err(e) = verify(c) {
        eprintln!("verify bench setup failed: {e}");
        std::process::exit(1);
    }
}

criterion_group!(group, benches);
criterion_main!(group);
