//! AWS Signature Version 4 for Keyferry.
//!
//! The server must authenticate requests from unmodified AWS clients (boto3, awscli, the AWS
//! SDKs). The AWS crates only *sign*; their canonical-request builder is private. So this
//! crate implements the verification side ([`Verifier`]) on aws-lc-rs HMAC/SHA-256, plus a
//! small botocore-compatible signer ([`sign`], [`sign_parts`]) used by tests and benchmarks.
//!
//! Scope: header-based `AWS4-HMAC-SHA256` (what every SDK uses for KMS). Presigned query
//! strings and SigV4a are not supported. `X-Amz-Security-Token` is accepted and, when signed,
//! covered by the signature, but not otherwise interpreted.

mod canonical;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use aws_lc_rs::{constant_time, digest, hmac};
use http::{HeaderMap, HeaderName};
use time::{Duration, OffsetDateTime, PrimitiveDateTime, format_description::BorrowedFormatItem};
use zeroize::Zeroizing;

use canonical::{
    canonical_request_hash, find_byte, has_ascii_uppercase, hex_lower, signable_header_names,
    split_ascii, with_scratch,
};

/// The only algorithm supported.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Default allowed difference between the request time and the server clock.
pub const DEFAULT_MAX_SKEW: Duration = Duration::minutes(5);
/// Bound on the number of cached signing keys (one per access key id).
const CACHE_CAPACITY: usize = 1024;

static X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
static X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");

const AMZ_DATE_FORMAT: &[BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// A secret access key: zeroized on drop, redacted in `Debug`, cheap to clone (shared).
#[derive(Clone)]
pub struct SecretKey(Arc<Zeroizing<String>>);

impl SecretKey {
    /// Wrap a secret access key.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretKey(Arc::new(Zeroizing::new(secret.into())))
    }

    /// The secret itself; do not log it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// Same secret? Pointer-equal shares are equal without comparing bytes; otherwise the
    /// comparison is constant-time.
    fn same_as(&self, other: &SecretKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || constant_time::verify_slices_are_equal(self.0.as_bytes(), other.0.as_bytes()).is_ok()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl From<&str> for SecretKey {
    fn from(s: &str) -> Self {
        SecretKey::new(s)
    }
}

/// An access key pair.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The public half, e.g. `AKIDEXAMPLE`.
    pub access_key_id: String,
    /// The secret half.
    pub secret_access_key: SecretKey,
}

impl Credentials {
    /// Build a credential pair.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: SecretKey::new(secret_access_key),
        }
    }
}

/// The parts of an HTTP request that SigV4 covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The request path as sent on the wire (still percent-encoded), e.g. `/`.
    pub path: &'a str,
    /// The raw query string without `?` (empty if none).
    pub query: &'a str,
    /// All request headers.
    pub headers: &'a HeaderMap,
    /// The raw body.
    pub body: &'a [u8],
}

/// Why a request was not authenticated. `code()` is the AWS `__type`, `message()` the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("MissingAuthenticationTokenException: Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The `Authorization` header is malformed or incomplete.
    #[error("IncompleteSignatureException: {0}")]
    IncompleteSignature(String),
    /// Well-formed, but the signature, scope or time is wrong.
    #[error("InvalidSignatureException: {0}")]
    InvalidSignature(String),
    /// The access key id is unknown.
    #[error("UnrecognizedClientException: The security token included in the request is invalid.")]
    UnrecognizedClient,
}

/// AWS's text for a signature mismatch.
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

impl AuthError {
    /// The AWS error type (`__type` in the JSON error body).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            AuthError::IncompleteSignature(_) => "IncompleteSignatureException",
            AuthError::InvalidSignature(_) => "InvalidSignatureException",
            AuthError::UnrecognizedClient => "UnrecognizedClientException",
        }
    }

    /// The AWS error message.
    pub fn message(&self) -> String {
        match self {
            AuthError::MissingAuthenticationToken => "Missing Authentication Token".to_owned(),
            AuthError::IncompleteSignature(m) | AuthError::InvalidSignature(m) => m.clone(),
            AuthError::UnrecognizedClient => {
                "The security token included in the request is invalid.".to_owned()
            }
        }
    }

    /// The HTTP status AWS uses for this error (403 for a missing token, else 400).
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::MissingAuthenticationToken => 403,
            _ => 400,
        }
    }

    fn mismatch() -> Self {
        AuthError::InvalidSignature(SIGNATURE_MISMATCH.to_owned())
    }
}

struct CacheEntry {
    date: [u8; 8],
    secret: SecretKey,
    key: hmac::Key,
}

/// Server-side SigV4 verifier for one region and service.
pub struct Verifier {
    region: String,
    service: String,
    max_skew: Duration,
    /// Derived signing keys per access key id (for the entry's date, this verifier's region
    /// and service). Bounded: cleared when full.
    cache: RwLock<HashMap<String, CacheEntry>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("max_skew", &self.max_skew)
            .finish_non_exhaustive()
    }
}

/// The parsed `Authorization` header.
struct AuthHeader<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl Verifier {
    /// A verifier for `region` and `service` (`"kms"`), allowing ±5 minutes of clock skew.
    pub fn new(region: &str, service: &str) -> Self {
        Verifier {
            region: region.to_owned(),
            service: service.to_owned(),
            max_skew: DEFAULT_MAX_SKEW,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Change the allowed clock skew.
    pub fn with_max_skew(mut self, max_skew: Duration) -> Self {
        self.max_skew = max_skew;
        self
    }

    /// The region requests must be scoped to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Verify `req` at time `now`. `lookup` maps an access key id to its secret; returns the
    /// verified access key id.
    pub fn verify(
        &self,
        req: &SignedRequest<'_>,
        now: OffsetDateTime,
        lookup: impl Fn(&str) -> Option<SecretKey>,
    ) -> Result<String, AuthError> {
        let mut auth_values = req.headers.get_all(http::header::AUTHORIZATION).iter();
        let Some(auth_value) = auth_values.next() else {
            return Err(AuthError::MissingAuthenticationToken);
        };
        // Two Authorization headers: refuse rather than pick one (a proxy and the server could
        // otherwise disagree on which one was authenticated).
        if auth_values.next().is_some() {
            return Err(AuthError::IncompleteSignature(
                "Only one Authorization header may be present in the request.".to_owned(),
            ));
        }
        let auth_str = auth_value.to_str().map_err(|_| {
            AuthError::IncompleteSignature(
                "Authorization header contains invalid characters.".to_owned(),
            )
        })?;
        let amz_date = req.headers.get(&X_AMZ_DATE);
        let date_header = amz_date.or_else(|| req.headers.get(http::header::DATE));
        let auth = parse_authorization(auth_str, date_header.is_some())?;

        // Scope checks (AWS's texts, including their trailing spaces).
        if auth.terminator != "aws4_request" {
            return Err(AuthError::InvalidSignature(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
                auth.terminator
            )));
        }
        if auth.service != self.service {
            return Err(AuthError::InvalidSignature(format!(
                "Credential should be scoped to correct service: '{}'. ",
                self.service
            )));
        }
        if auth.region != self.region {
            return Err(AuthError::InvalidSignature(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                auth.region
            )));
        }

        // Signed headers: host (and x-amz-date when used) must be covered.
        let mut host_signed = false;
        let mut date_signed = false;
        let mut content_sha_signed = false;
        let mut empty_name = false;
        for name in split_ascii(auth.signed_headers, b';') {
            match name {
                "host" | ":authority" => host_signed = true,
                "x-amz-date" => date_signed = true,
                "date" if amz_date.is_none() => date_signed = true,
                "x-amz-content-sha256" => content_sha_signed = true,
                _ => {}
            }
            empty_name |= name.is_empty();
        }
        // An empty name or an uppercase letter in any name (checked once over the whole list:
        // the separators are not letters).
        if empty_name || has_ascii_uppercase(auth.signed_headers) {
            return Err(AuthError::IncompleteSignature(format!(
                "Invalid SignedHeaders in Authorization header: '{}'",
                auth.signed_headers
            )));
        }
        if !host_signed {
            return Err(AuthError::IncompleteSignature(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
                    .to_owned(),
            ));
        }
        if !date_signed {
            let which = if amz_date.is_some() {
                "X-Amz-Date"
            } else {
                "Date"
            };
            return Err(AuthError::IncompleteSignature(format!(
                "'{which}' must be a 'SignedHeader' in the AWS Authorization."
            )));
        }

        // Time: format, scope date, skew.
        let raw_date = date_header
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim();
        let fast_time = parse_amz_date_fast(raw_date);
        let request_time = fast_time.or_else(|| parse_request_time(raw_date)).ok_or_else(|| {
            AuthError::IncompleteSignature(format!(
                "Date must be in ISO-8601 'basic format'. Got '{raw_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ))
        })?;
        let mut amz_buf = [0u8; 16];
        // `YYYYMMDDTHHMMSSZ` (what the fast parser accepts) formats back to itself.
        let request_amz = if fast_time.is_some() {
            raw_date
        } else {
            format_amz_date(request_time, &mut amz_buf)
        };
        if auth.date != &request_amz[..8] {
            return Err(AuthError::InvalidSignature(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                auth.date,
                &request_amz[..8],
                request_amz
            )));
        }
        let minutes = self.max_skew.whole_minutes();
        if request_time < now - self.max_skew {
            return Err(AuthError::InvalidSignature(format!(
                "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
                request_amz,
                amz(now - self.max_skew),
                amz(now)
            )));
        }
        if request_time > now + self.max_skew {
            return Err(AuthError::InvalidSignature(format!(
                "Signature not yet current: {} is still later than {} ({} + {minutes} min.)",
                request_amz,
                amz(now + self.max_skew),
                amz(now)
            )));
        }

        // The provided signature must be 64 lowercase-or-uppercase hex digits.
        let mut provided = [0u8; 32];
        if auth.signature.len() != 64
            || hex::decode_to_slice(auth.signature, &mut provided).is_err()
        {
            return Err(AuthError::mismatch());
        }

        let secret = lookup(auth.access_key_id).ok_or(AuthError::UnrecognizedClient)?;

        // Payload hash; a signed x-amz-content-sha256 must be the real hash.
        let body_hash = digest::digest(&digest::SHA256, req.body);
        let mut body_hex_buf = [0u8; 64];
        let body_hex = hex_lower(body_hash.as_ref(), &mut body_hex_buf);
        if content_sha_signed {
            let claimed = req
                .headers
                .get(&X_AMZ_CONTENT_SHA256)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !claimed.eq_ignore_ascii_case(body_hex) {
                return Err(AuthError::mismatch());
            }
        }

        // The canonical request and then the string to sign are each built in the thread's
        // scratch buffer and hashed with one call: many small updates through the aws-lc FFI
        // cost more.
        let creq_hash = canonical_request_hash(
            req.method,
            req.path,
            req.query,
            auth.signed_headers,
            req.headers,
            body_hex,
        );
        let mut creq_hex_buf = [0u8; 64];
        let creq_hex = hex_lower(&creq_hash, &mut creq_hex_buf);
        let expected = with_scratch(|buf| {
            string_to_sign(
                &mut |b| buf.extend_from_slice(b),
                request_amz,
                auth.date,
                auth.region,
                auth.service,
                creq_hex,
            );
            self.sign_with_signing_key(auth.access_key_id, auth.date, &secret, buf)
        });
        constant_time::verify_slices_are_equal(expected.as_ref(), &provided)
            .map_err(|_| AuthError::mismatch())?;
        Ok(auth.access_key_id.to_owned())
    }

    /// HMAC of `msg` under the cached (or freshly derived) signing key for this access key
    /// and date. A hit signs under the read lock: no copy of the key's HMAC context besides
    /// the one `hmac::sign` makes, no reference count to touch.
    fn sign_with_signing_key(
        &self,
        access_key_id: &str,
        date: &str,
        secret: &SecretKey,
        msg: &[u8],
    ) -> hmac::Tag {
        let mut date_arr = [0u8; 8];
        date_arr.copy_from_slice(&date.as_bytes()[..8]);
        // A poisoned lock only means another thread panicked mid-update of a cache; the map is
        // still a valid map, so keep using it.
        {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = cache.get(access_key_id)
                && entry.date == date_arr
                && entry.secret.same_as(secret)
            {
                return hmac::sign(&entry.key, msg);
            }
        }
        // Derived outside the lock; two threads missing at once both derive the same key.
        let key = derive_signing_key(secret.expose(), date, &self.region, &self.service);
        let tag = hmac::sign(&key, msg);
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(access_key_id) {
            cache.clear();
        }
        cache.insert(
            access_key_id.to_owned(),
            CacheEntry {
                date: date_arr,
                secret: secret.clone(),
                key,
            },
        );
        tag
    }
}

/// `s` split at its last `sep` byte (ASCII), like `str::rsplit_once(char)`.
fn rsplit_once_ascii(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().rposition(|b| b == sep)?;
    let (head, tail) = s.split_at(i);
    Some((head, tail.get(1..)?))
}

/// Parse `AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..`.
///
/// `auth` comes from `HeaderValue::to_str`, so it is visible ASCII and tabs only: on such text
/// the byte-level splitting and `trim_ascii` below agree with `split(char)` and `trim`.
fn parse_authorization(auth: &str, has_date: bool) -> Result<AuthHeader<'_>, AuthError> {
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    if let Some(rest) = auth.strip_prefix(ALGORITHM)
        && rest.starts_with(' ')
    {
        for part in split_ascii(rest, b',') {
            let part = part.trim_ascii();
            if part.is_empty() {
                continue;
            }
            let Some((k, v)) = find_byte(part.as_bytes(), b'=')
                .map(|i| part.split_at(i))
                .and_then(|(k, v)| Some((k, v.get(1..)?)))
            else {
                return Err(AuthError::IncompleteSignature(format!(
                    "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{auth}'."
                )));
            };
            match k.trim_ascii() {
                "Credential" => credential = Some(v.trim_ascii()),
                "SignedHeaders" => signed_headers = Some(v.trim_ascii()),
                "Signature" => signature = Some(v.trim_ascii()),
                _ => {}
            }
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature), true) =
        (credential, signed_headers, signature, has_date)
    else {
        let mut msg = String::new();
        if credential.is_none() {
            msg.push_str("Authorization header requires 'Credential' parameter. ");
        }
        if signature.is_none() {
            msg.push_str("Authorization header requires 'Signature' parameter. ");
        }
        if signed_headers.is_none() {
            msg.push_str("Authorization header requires 'SignedHeaders' parameter. ");
        }
        if !has_date {
            msg.push_str(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
            );
        }
        msg.push_str("Authorization=");
        msg.push_str(auth);
        return Err(AuthError::IncompleteSignature(msg));
    };
    // Credential = AKID/yyyymmdd/region/service/aws4_request (the key id may hold slashes).
    let scope = rsplit_once_ascii(credential, b'/').and_then(|(rest, terminator)| {
        let (rest, service) = rsplit_once_ascii(rest, b'/')?;
        let (rest, region) = rsplit_once_ascii(rest, b'/')?;
        let (akid, date) = rsplit_once_ascii(rest, b'/')?;
        Some((akid, date, region, service, terminator))
    });
    let Some((akid, date, region, service, terminator)) =
        scope.filter(|(akid, date, region, ..)| {
            !akid.is_empty()
                && date.len() == 8
                && date.bytes().all(|b| b.is_ascii_digit())
                && !region.is_empty()
        })
    else {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    Ok(AuthHeader {
        access_key_id: akid,
        date,
        region,
        service,
        terminator,
        signed_headers,
        signature,
    })
}

/// `YYYYMMDD'T'HHMMSS'Z'`, or an HTTP/RFC 2822 date (the `Date` header).
fn parse_request_time(s: &str) -> Option<OffsetDateTime> {
    if let Some(t) = parse_amz_date_fast(s) {
        return Some(t);
    }
    if let Ok(t) = PrimitiveDateTime::parse(s, AMZ_DATE_FORMAT) {
        return Some(t.assume_utc());
    }
    let rfc = s.strip_suffix(" GMT").map(|p| format!("{p} +0000"));
    let candidate = rfc.as_deref().unwrap_or(s);
    OffsetDateTime::parse(candidate, &time::format_description::well_known::Rfc2822)
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}

/// `YYYYMMDDTHHMMSSZ` without the format-description interpreter (the common case on every
/// request); anything else falls back to the general parsers above.
fn parse_amz_date_fast(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let month = time::Month::try_from(u8::try_from(num(4, 6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0, 4)?).ok()?,
        month,
        u8::try_from(num(6, 8)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(num(9, 11)?).ok()?,
        u8::try_from(num(11, 13)?).ok()?,
        u8::try_from(num(13, 15)?).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, clock).assume_utc())
}

/// Format as `YYYYMMDDTHHMMSSZ` into a stack buffer.
fn format_amz_date(t: OffsetDateTime, buf: &mut [u8; 16]) -> &str {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fields = [
        (t.year().rem_euclid(10000) as u32, 4usize),
        (u32::from(u8::from(t.month())), 2),
        (u32::from(t.day()), 2),
    ];
    let mut pos = 0;
    for (v, width) in fields {
        write_digits(&mut buf[pos..pos + width], v);
        pos += width;
    }
    buf[8] = b'T';
    pos = 9;
    for v in [t.hour(), t.minute(), t.second()] {
        write_digits(&mut buf[pos..pos + 2], u32::from(v));
        pos += 2;
    }
    buf[15] = b'Z';
    // All bytes written above are ASCII digits or letters.
    std::str::from_utf8(&buf[..]).unwrap_or("")
}

fn write_digits(out: &mut [u8], mut v: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn amz(t: OffsetDateTime) -> String {
    let mut buf = [0u8; 16];
    format_amz_date(t, &mut buf).to_owned()
}

/// Feed the SigV4 string-to-sign to `out`.
fn string_to_sign(
    out: &mut impl FnMut(&[u8]),
    amz_date: &str,
    date: &str,
    region: &str,
    service: &str,
    creq_hex: &[u8],
) {
    for piece in [
        ALGORITHM.as_bytes(),
        b"\n",
        amz_date.as_bytes(),
        b"\n",
        date.as_bytes(),
        b"/",
        region.as_bytes(),
        b"/",
        service.as_bytes(),
        b"/aws4_request\n",
        creq_hex,
    ] {
        out(piece);
    }
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").
fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.as_bytes());
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, &k_secret);
    for part in [date, region, service, "aws4_request"] {
        let tag = hmac::sign(&key, part.as_bytes());
        key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
    }
    key
}

/// Why [`sign`] could not sign a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Neither a `Host` header nor a URI authority to derive it from.
    #[error("the request has no Host header and no authority in its URI")]
    MissingHost,
    /// The access key id cannot appear in an HTTP header.
    #[error("the access key id contains characters not allowed in an HTTP header")]
    InvalidAccessKeyId,
}

/// Headers botocore never signs.
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// Sign `req` like botocore's `SigV4Auth`: set `Host` (from the URI if missing) and
/// `X-Amz-Date`, then `Authorization` over every present header except hop-by-hop ones and
/// `user-agent`.
pub fn sign(
    req: &mut http::Request<Vec<u8>>,
    creds: &Credentials,
    region: &str,
    service: &str,
    now: OffsetDateTime,
) -> Result<(), SignError> {
    if !req.headers().contains_key(http::header::HOST) {
        let host = req
            .uri()
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
            .ok_or(SignError::MissingHost)?;
        req.headers_mut().insert(http::header::HOST, host);
    }
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let (parts, body) = std::mem::take(req).into_parts();
    let mut parts = parts;
    let result = sign_parts(
        &method,
        &path,
        &query,
        &mut parts.headers,
        &body,
        creds,
        region,
        service,
        now,
    );
    *req = http::Request::from_parts(parts, body);
    result
}

/// Sign the given request parts in place (see [`sign`]). `headers` must contain `host`.
#[allow(clippy::too_many_arguments)]
pub fn sign_parts(
    method: &str,
    path: &str,
    query: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    service: &str,
    now: OffsetDateTime,
) -> Result<(), SignError> {
    if !headers.contains_key(http::header::HOST) {
        return Err(SignError::MissingHost);
    }
    headers.remove(http::header::AUTHORIZATION);
    let mut date_buf = [0u8; 16];
    let amz_date = format_amz_date(now, &mut date_buf);
    let date = &amz_date[..8];
    // `amz_date` is 16 ASCII digits/letters, always a valid header value.
    headers.remove("x-amz-date");
    if let Ok(v) = http::HeaderValue::from_str(amz_date) {
        headers.insert("x-amz-date", v);
    }
    let names = signable_header_names(headers, UNSIGNED_HEADERS);
    let signed_headers = names.join(";");

    let body_hash = digest::digest(&digest::SHA256, body);
    let mut body_hex_buf = [0u8; 64];
    let body_hex = hex_lower(body_hash.as_ref(), &mut body_hex_buf);
    let creq_hash = canonical_request_hash(method, path, query, &signed_headers, headers, body_hex);
    let mut creq_hex_buf = [0u8; 64];
    let creq_hex = hex_lower(&creq_hash, &mut creq_hex_buf);

    let key = derive_signing_key(creds.secret_access_key.expose(), date, region, service);
    let mut ctx = hmac::Context::with_key(&key);
    string_to_sign(
        &mut |b| ctx.update(b),
        amz_date,
        date,
        region,
        service,
        creq_hex,
    );
    let signature = hex::encode(ctx.sign().as_ref());
    let value = format!(
        "{ALGORITHM} Credential={}/{date}/{region}/{service}/aws4_request, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    );
    // The access key id comes from the caller; reject control characters rather than panic.
    let value = http::HeaderValue::from_str(&value).map_err(|_| SignError::InvalidAccessKeyId)?;
    headers.insert(http::header::AUTHORIZATION, value);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `parse_authorization` as it was with `char` searchers (the reference).
    fn reference_parse(auth: &str, has_date: bool) -> Result<AuthHeader<'_>, AuthError> {
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        if let Some(rest) = auth.strip_prefix(ALGORITHM)
            && rest.starts_with(' ')
        {
            for part in rest.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                let Some((k, v)) = part.split_once('=') else {
                    return Err(AuthError::IncompleteSignature(format!(
                        "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{auth}'."
                    )));
                };
                match k.trim() {
                    "Credential" => credential = Some(v.trim()),
                    "SignedHeaders" => signed_headers = Some(v.trim()),
                    "Signature" => signature = Some(v.trim()),
                    _ => {}
                }
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature), true) =
            (credential, signed_headers, signature, has_date)
        else {
            // The missing-parameter message is built by shared code; compare by a marker.
            return Err(AuthError::IncompleteSignature(format!(
                "missing {} {} {} {has_date}",
                credential.is_some(),
                signature.is_some(),
                signed_headers.is_some()
            )));
        };
        let mut it = credential.rsplitn(5, '/');
        let (Some(terminator), Some(service), Some(region), Some(date), Some(akid)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            return Err(AuthError::IncompleteSignature(format!(
                "scope {credential}"
            )));
        };
        if akid.is_empty()
            || date.len() != 8
            || !date.bytes().all(|b| b.is_ascii_digit())
            || region.is_empty()
        {
            return Err(AuthError::IncompleteSignature(format!(
                "scope {credential}"
            )));
        }
        Ok(AuthHeader {
            access_key_id: akid,
            date,
            region,
            service,
            terminator,
            signed_headers,
            signature,
        })
    }

    type Parsed<'a> = Result<[&'a str; 7], AuthError>;

    fn fields(r: Result<AuthHeader<'_>, AuthError>) -> Parsed<'_> {
        r.map(|a| {
            [
                a.access_key_id,
                a.date,
                a.region,
                a.service,
                a.terminator,
                a.signed_headers,
                a.signature,
            ]
        })
    }

    /// The new parser's errors mapped onto the reference's markers (the shared texts are
    /// compared exactly in tests/verify.rs).
    fn normalised(auth: &str, has_date: bool) -> Parsed<'_> {
        match fields(parse_authorization(auth, has_date)) {
            Err(AuthError::IncompleteSignature(m))
                if m.starts_with("Authorization header requires") =>
            {
                let r = fields(reference_parse(auth, has_date));
                assert!(
                    matches!(r, Err(AuthError::IncompleteSignature(ref x)) if x.starts_with("missing ")),
                    "{auth:?}: {m}"
                );
                r
            }
            Err(AuthError::IncompleteSignature(m)) if m.starts_with("Credential must have") => {
                let credential = m
                    .strip_prefix("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '")
                    .and_then(|m| m.strip_suffix('\''))
                    .unwrap_or_default();
                Err(AuthError::IncompleteSignature(format!(
                    "scope {credential}"
                )))
            }
            other => other,
        }
    }

    #[test]
    fn byte_level_authorization_parser_agrees_with_the_reference() {
        let good = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let mut cases: Vec<String> = vec![
            good.into(),
            good.replace(", ", ","),
            good.replace(", ", " ,\t "),
            good.replace("Credential=", "Credential = "),
            good.replace("AKIDEXAMPLE", "A/K/ID"),
            good.replace("AKIDEXAMPLE/", ""),
            good.replace("AKIDEXAMPLE", ""),
            good.replace("20150830", "2015083"),
            good.replace("20150830", "2015083x"),
            good.replace("us-east-1", ""),
            good.replace("/kms/", "//"),
            good.replace(", Signature=", ", Signature=, Signature="),
            good.replace("SignedHeaders=", "SignedHeaders"),
            good.replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256"),
            good.replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256\t"),
            format!("{good},,, ,"),
            format!("{good}, Extra=a=b"),
            "AWS4-HMAC-SHA256 ".into(),
            "AWS4-HMAC-SHA256".into(),
            "Bearer x".into(),
            String::new(),
        ];
        // Deterministic pseudo-random variants from a small alphabet of the parser's bytes.
        let alphabet: &[&str] = &[
            "Credential",
            "SignedHeaders",
            "Signature",
            "=",
            ",",
            " ",
            "\t",
            "/",
            "a",
            "12345678",
            "aws4_request",
            "kms",
            ";",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..3000 {
            let mut s = String::from("AWS4-HMAC-SHA256 ");
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 24) as usize;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push_str(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            cases.push(s);
        }
        for auth in &cases {
            for has_date in [true, false] {
                assert_eq!(
                    normalised(auth, has_date),
                    fields(reference_parse(auth, has_date)),
                    "{auth:?} {has_date}"
                );
            }
        }
    }

    #[test]
    fn a_changed_secret_is_never_served_a_cached_key() {
        let v = Verifier::new("us-east-1", "kms");
        let date = "20261123";
        let sign = |secret: &SecretKey, date: &str| {
            v.sign_with_signing_key("AKID", date, secret, b"probe")
                .as_ref()
                .to_vec()
        };
        let expect = |secret: &str, date: &str| {
            let key = derive_signing_key(secret, date, "us-east-1", "kms");
            hmac::sign(&key, b"probe").as_ref().to_vec()
        };
        // A miss stores a share of the secret in the cache; a hit does not.
        let shares = |s: &SecretKey| Arc::strong_count(&s.0);
        let old = SecretKey::new("old-secret");
        assert_eq!(sign(&old, date), expect("old-secret", date));
        assert_eq!(shares(&old), 2);
        assert_eq!(sign(&old, date), expect("old-secret", date));
        // Same bytes in another allocation: a hit.
        let copy = SecretKey::new("old-secret");
        assert_eq!(sign(&copy, date), expect("old-secret", date));
        assert_eq!(shares(&copy), 1);
        // Rotated secret, same access key id: derived afresh (and then cached).
        let new = SecretKey::new("new-secret");
        assert_eq!(sign(&new, date), expect("new-secret", date));
        assert_eq!(shares(&new), 2);
        assert_eq!(shares(&old), 1);
        assert_eq!(sign(&new, date), expect("new-secret", date));
        // And back: the old secret is not served the new key either.
        assert_eq!(sign(&old, date), expect("old-secret", date));
        assert_eq!(shares(&new), 1);
        // Another date is another key.
        assert_eq!(sign(&old, "20261124"), expect("old-secret", "20261124"));
        assert_eq!(v.cache.read().map(|c| c.len()).unwrap_or_default(), 1);
    }

    #[test]
    fn fast_amz_date_agrees_with_the_format_parser() {
        for s in ["20261123T182233Z", "20240229T000000Z", "19991231T235959Z"] {
            let general = PrimitiveDateTime::parse(s, AMZ_DATE_FORMAT)
                .map(|t| t.assume_utc())
                .ok();
            assert!(general.is_some(), "{s}");
            assert_eq!(parse_amz_date_fast(s), general, "{s}");
        }
        for bad in [
            "20230229T000000Z",
            "20261323T000000Z",
            "20261123T246000Z",
            "2026112XT000000Z",
            "20261123 000000Z",
            "20261123T000000",
            "+0261123T000000Z",
            "",
        ] {
            assert_eq!(parse_amz_date_fast(bad), None, "{bad}");
        }
        // Other forms still parse through the general path.
        assert!(parse_request_time("Mon, 23 Nov 2026 18:22:33 GMT").is_some());
        // What the fast parser accepts formats back to itself (verify reuses the header text).
        for s in [
            "20261123T182233Z",
            "20240229T000000Z",
            "19991231T235959Z",
            "00010101T000000Z",
            "99991231T235959Z",
        ] {
            let t = parse_amz_date_fast(s).unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(format_amz_date(t, &mut buf), s);
        }
    }
}
