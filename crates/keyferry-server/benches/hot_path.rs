//! Micro-benchmarks of the request hot path: what every Encrypt/Decrypt pays besides HTTP.
//!
//! - SigV4 verification of a signed KMS request (`keyferry_sigv4::Verifier::verify`), with the
//!   signing-key cache warm (the steady state) and cold (a new verifier each time: four extra HMACs);
//! - sealing and opening the symmetric ciphertext blob (`keyferry_crypto::symmetric`);
//! - JSON decode of an `EncryptRequest` (`keyferry_types`) and encode of a `DecryptResponse` and
//!   an `EncryptResponse` as the server encodes them (`keyferry_server::protocol::encode`).
//!
//! Run: `cargo bench -p keyferry-server --bench hot_path` (add `-- --quick` for a fast pass).
//! The side-by-side HTTP benchmark is `bench/run.sh`; see `BENCHMARKS.md`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyferry_crypto::symmetric::{self, SymmetricKey};
use keyferry_server::protocol;
use keyferry_sigv4::{Credentials, SecretKey, SignedRequest, Verifier};
use keyferry_types::{
    Blob, DecryptResponse, EncryptRequest, EncryptResponse, EncryptionAlgorithmSpec,
};
use time::OffsetDateTime;

const AKID: &str = "AKIAKEYFERRYDEV00001";
const SECRET: &str = "keyferry-development-secret-not-for-production";
const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// The body boto3 sends for `encrypt(KeyId=..., Plaintext=<32 bytes>)`.
fn encrypt_body() -> Vec<u8> {
    format!(
        r#"{{"KeyId": "{KEY_ID}", "Plaintext": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#
    )
    .into_bytes()
}

/// A request signed the way botocore signs it (content-type;host;x-amz-date;x-amz-target).
fn signed_request(
    now: OffsetDateTime,
) -> Result<http::Request<Vec<u8>>, Box<dyn std::error::Error>> {
    let mut req = http::Request::builder()
        .method("POST")
        .uri("http://127.0.0.1:4599/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "TrentService.Encrypt")
        .body(encrypt_body())?;
    keyferry_sigv4::sign(
        &mut req,
        &Credentials::new(AKID, SECRET),
        "us-east-1",
        "kms",
        now,
    )?;
    Ok(req)
}

fn sigv4(c: &mut Criterion) -> Result<(), Box<dyn std::error::Error>> {
    let now = OffsetDateTime::now_utc();
    let req = signed_request(now)?;
    let secret = SecretKey::new(SECRET);
    let lookup = |akid: &str| (akid == AKID).then(|| secret.clone());
    let signed = SignedRequest {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query().unwrap_or(""),
        headers: req.headers(),
        body: req.body(),
    };
    let verifier = Verifier::new("us-east-1", "kms");
    // Fail loudly, not silently fast: the request must verify.
    verifier.verify(&signed, now, lookup)?;
    let mut g = c.benchmark_group("sigv4");
    g.bench_function("verify_cached_signing_key", |b| {
        b.iter(|| verifier.verify(black_box(&signed), now, lookup))
    });
    g.bench_function("verify_cold_new_verifier", |b| {
        b.iter(|| Verifier::new("us-east-1", "kms").verify(black_box(&signed), now, lookup))
    });
    g.finish();
    Ok(())
}

fn blob(c: &mut Criterion) -> Result<(), Box<dyn std::error::Error>> {
    let key = SymmetricKey::new(&[7u8; 32])?;
    let material_id = [9u8; 32];
    let mut ctx = BTreeMap::new();
    ctx.insert("purpose".to_owned(), "benchmark".to_owned());
    let mut g = c.benchmark_group("ciphertext_blob");
    for (label, aad) in [
        ("no_context", symmetric::context_aad(None)),
        ("one_pair_context", symmetric::context_aad(Some(&ctx))),
    ] {
        for size in [32usize, 4096] {
            let plaintext = vec![0x5au8; size];
            let sealed = symmetric::encrypt(&key, KEY_ARN, &material_id, &plaintext, &aad)?;
            // The benchmark must measure a working round trip.
            if symmetric::decrypt(&key, &sealed, &aad)?.as_slice() != plaintext.as_slice() {
                return Err("blob round trip failed".into());
            }
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(format!("seal_{size}B_{label}"), |b| {
                b.iter(|| {
                    symmetric::encrypt(&key, KEY_ARN, &material_id, black_box(&plaintext), &aad)
                })
            });
            g.bench_function(format!("open_{size}B_{label}"), |b| {
                b.iter(|| symmetric::decrypt(&key, black_box(&sealed), &aad))
            });
        }
    }
    g.finish();
    Ok(())
}

fn json(c: &mut Criterion) -> Result<(), Box<dyn std::error::Error>> {
    let body = encrypt_body();
    let decoded: EncryptRequest = serde_json::from_slice(&body)?;
    if decoded.plaintext.len() != 32 || decoded.key_id != KEY_ID {
        return Err("EncryptRequest decoded wrongly".into());
    }
    let resp = DecryptResponse {
        key_id: Some(KEY_ARN.to_owned()),
        plaintext: Some(Blob::new(vec![0x42; 32])),
        encryption_algorithm: Some(EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT),
        ..Default::default()
    };
    // What Encrypt answers: the key ARN and a 184-byte ciphertext blob (32 bytes of plaintext).
    let encrypt_resp = EncryptResponse {
        ciphertext_blob: Some(Blob::new((0..184u32).map(|i| (i * 7) as u8).collect())),
        key_id: Some(KEY_ARN.to_owned()),
        encryption_algorithm: Some(EncryptionAlgorithmSpec::SYMMETRIC_DEFAULT),
    };
    let mut g = c.benchmark_group("json");
    g.bench_function("decode_EncryptRequest", |b| {
        b.iter(|| serde_json::from_slice::<EncryptRequest>(black_box(&body)))
    });
    g.bench_function("decode_EncryptRequest_path_to_error", |b| {
        b.iter(|| {
            let mut de = serde_json::Deserializer::from_slice(black_box(&body));
            serde_path_to_error::deserialize::<_, EncryptRequest>(&mut de)
        })
    });
    // As the server encodes (`protocol::encode`); the bytes are serde_json's.
    for r in [&resp as &dyn ErasedCheck, &encrypt_resp] {
        if !r.same_as_serde_json() {
            return Err("protocol::encode differs from serde_json".into());
        }
    }
    g.bench_function("encode_DecryptResponse", |b| {
        b.iter(|| protocol::encode(black_box(&resp)))
    });
    g.bench_function("encode_EncryptResponse", |b| {
        b.iter(|| protocol::encode(black_box(&encrypt_resp)))
    });
    g.finish();
    Ok(())
}

/// `protocol::encode` gives serde_json's bytes (checked before measuring).
trait ErasedCheck {
    fn same_as_serde_json(&self) -> bool;
}

impl<T: serde::Serialize> ErasedCheck for T {
    fn same_as_serde_json(&self) -> bool {
        matches!((protocol::encode(self), serde_json::to_vec(self)), (Ok(a), Ok(b)) if a == b)
    }
}

fn hot_path(c: &mut Criterion) {
    for (name, result) in [("sigv4", sigv4(c)), ("blob", blob(c)), ("json", json(c))] {
        if let Err(e) = result {
            eprintln!("hot_path: {name} benchmark setup failed: {e}");
            std::process::exit(1);
        }
    }
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
