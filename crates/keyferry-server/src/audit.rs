//! The audit trail: one CloudTrail-format event per request (KMS and STS, allowed or denied,
//! authentication failures included), written as JSON lines to a file or stdout, and the
//! feed of GetKeyLastUsage (`Kms::record_usage`).
//!
//! The HTTP edge fills a [`Call`] while it handles a request and hands it, with the answer, to
//! [`Audit::record`] exactly once (`lib.rs::handle`). This module decides everything else:
//!
//! - **What is left out.** `requestParameters` are the request's members in lowerCamelCase,
//!   without the members CloudTrail leaves out (plaintexts, ciphertext blobs, encrypted key
//!   material, import tokens, messages, signatures, MACs: [`SECRET_REQUEST_MEMBERS`]); secret
//!   members are skipped while parsing, never copied. `responseElements` are `null` for every
//!   read-only operation (the cryptographic operations, Describe/Get/List), as CloudTrail
//!   shows, and the response members minus [`SECRET_RESPONSE_MEMBERS`] for the others.
//! - **Who called.** `userIdentity` as CloudTrail writes it for the root user, IAM users and
//!   assumed roles (`sessionContext.sessionIssuer`); `invokedBy` for an identity that acts for
//!   an AWS service. A request that failed authentication gets `{"type": "Unknown"}` with the
//!   access key id it presented (only if it looks like one: 16–128 upper-case letters and
//!   digits), never an identity it claimed but did not prove.
//! - **What the trail promises.** An event is handed to the operating system (`write(2)`)
//!   before its request is answered: by the request itself, or by the write of another request
//!   of the same worker thread that carried it too (group commit, see [`Sink`]; one writer at a
//!   time, so lines never interleave; no thread hop). So after
//!   the server process is killed (`kill -9`, a panic abort, OOM), the file holds an event for
//!   every request that was answered; a request that took effect but whose answer was never
//!   sent may be missing. The file is `fdatasync`ed at most a second after a write, so after an
//!   operating-system crash or power loss at most the last second of events may be missing.
//!   The last line may be cut short by a kill during a write; on start the writer ends such a
//!   fragment with a newline, and readers skip lines that are not valid JSON.
//!
//! When writing fails (disk full), requests are still answered and the failure is logged.

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use keyferry_core::{Kms, Principal, PrincipalKind};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::ApiError;

/// CloudTrail's event format version written.
pub const EVENT_VERSION: &str = "1.11";

/// Request members CloudTrail never records (any KMS operation).
pub const SECRET_REQUEST_MEMBERS: &[&str] = &[
    "Plaintext",
    "CiphertextBlob",
    "EncryptedKeyMaterial",
    "ImportToken",
    "Message",
    "Signature",
    "Mac",
];

/// Response members never recorded (of the operations whose responses are recorded at all).
pub const SECRET_RESPONSE_MEMBERS: &[&str] = &[
    "Plaintext",
    "CiphertextBlob",
    "CiphertextForRecipient",
    "PrivateKeyPlaintext",
    "PrivateKeyCiphertextBlob",
    "ImportToken",
    "PublicKey",
    "Signature",
    "Mac",
    "GrantToken",
    "Policy",
    "SharedSecret",
];

/// KMS operations CloudTrail marks `readOnly: true`; their `responseElements` are `null`.
const READ_ONLY: &[&str] = &[
    "Decrypt",
    "DeriveSharedSecret",
    "DescribeCustomKeyStores",
    "DescribeKey",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "GetKeyLastUsage",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "GetParametersForImport",
    "GetPublicKey",
    "ListAliases",
    "ListGrants",
    "ListKeyPolicies",
    "ListKeyRotations",
    "ListKeys",
    "ListResourceTags",
    "ListRetirableGrants",
    "ReEncrypt",
    "Sign",
    "Verify",
    "VerifyMac",
];

/// Request members that are timestamps, recorded in CloudTrail's date format.
const DATE_MEMBERS: &[&str] = &["ValidTo"];

/// The header naming a KMS operation (a constant: looking a `&str` name up parses it first).
pub(crate) const X_AMZ_TARGET: HeaderName = HeaderName::from_static("x-amz-target");

/// A member name as it is written: `"name":` (a literal, so nothing is checked or escaped per
/// request).
macro_rules! k {
    ($name:literal) => {
        Name(concat!("\"", $name, "\":"))
    };
}

/// A member name made by [`k!`] (a plain string cannot be passed by mistake).
#[derive(Clone, Copy)]
struct Name(&'static str);

/// The service a request was for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    #[default]
    Kms,
    Sts,
}

/// What the HTTP edge learned about one request, filled in as it goes.
#[derive(Default)]
pub struct Call {
    pub service: Service,
    /// The `X-Amz-Target` header: the KMS operation follows `TrentService.` (STS takes it
    /// from the form's `Action`). See [`Call::operation`].
    pub target: Option<HeaderValue>,
    /// The URI query (STS parameters may be there) and the body.
    pub query: String,
    pub body: Bytes,
    /// The authenticated caller; `None` when authentication failed or did not happen.
    pub principal: Option<Arc<Principal>>,
    /// The `Authorization` header: the access key id it presents goes into unauthenticated
    /// events ([`Call::presented_access_key`]).
    pub authorization: Option<HeaderValue>,
    pub source_ip: Option<IpAddr>,
    /// Shared with the request context (`aws:UserAgent`): read from the headers once.
    pub user_agent: Option<Arc<str>>,
    /// The key ARNs the operation resolved (`RequestContext::touched_keys`).
    pub touched: Vec<String>,
    /// The Region of the request (its credential scope, when this deployment serves it);
    /// `None`: the default Region.
    pub region: Option<String>,
}

impl Call {
    /// Note what the request's head says (before the body is read).
    pub fn note_request(&mut self, parts: &Parts, peer: Option<SocketAddr>) {
        let headers = &parts.headers;
        self.query = parts.uri.query().unwrap_or("").to_string();
        self.source_ip = peer.map(|p| p.ip());
        self.user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(Arc::from);
        // Header values share the request's bytes: keeping them costs no allocation.
        self.target = headers.get(X_AMZ_TARGET).cloned();
        self.authorization = headers.get(header::AUTHORIZATION).cloned();
    }

    /// The KMS operation named by `X-Amz-Target`.
    pub fn operation(&self) -> Option<&str> {
        self.target
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.strip_prefix(crate::protocol::TARGET_PREFIX))
    }

    /// The access key id the `Authorization` header presents, if it looks like one (read only
    /// for events of requests that were not authenticated).
    pub fn presented_access_key(&self) -> Option<&str> {
        self.authorization
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .filter(|k| looks_like_access_key(k))
    }
}

fn looks_like_access_key(k: &str) -> bool {
    (16..=128).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// How a request was answered.
pub enum Answer<'a> {
    /// A KMS JSON response (success).
    Json(&'a [u8]),
    /// An STS XML document: status and body (success or error).
    Xml(u16, &'a str),
    /// A KMS error.
    Error(&'a ApiError),
}

impl Answer<'_> {
    fn success(&self) -> bool {
        match self {
            Answer::Json(_) => true,
            Answer::Xml(status, _) => *status == 200,
            Answer::Error(_) => false,
        }
    }
}

/// The audit trail of one server: an optional sink, and the ids every event needs.
pub struct Audit {
    sink: Option<Arc<Sink>>,
    region: String,
    /// The server's account: `recipientAccountId` of events without an authenticated caller.
    account: String,
}

impl Audit {
    /// No trail is written (GetKeyLastUsage is still fed).
    pub fn disabled(region: &str, account: &str) -> Audit {
        Audit {
            sink: None,
            region: region.to_string(),
            account: account.to_string(),
        }
    }

    /// Write the trail to `target`: a file path (JSON lines, appended; created 0600; an
    /// existing file readable by others is refused) or `-` for stdout.
    pub fn open(target: &str, region: &str, account: &str) -> anyhow::Result<Audit> {
        let out = if target == "-" {
            Out::Stdout
        } else {
            Out::File(open_log_file(Path::new(target))?)
        };
        Ok(Audit {
            sink: Some(Arc::new(Sink::new(out)?)),
            region: region.to_string(),
            account: account.to_string(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Record one request: feed GetKeyLastUsage (successful cryptographic operations) and,
    /// with a sink, write the event; returns once the event is written.
    pub async fn record(&self, kms: &Kms, call: Call, answer: Answer<'_>, request_id: &str) {
        let now = OffsetDateTime::now_utc();
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let event_id = event_id();
        if answer.success()
            && call.service == Service::Kms
            && let Some(op) = call.operation()
        {
            kms.record_usage(op, &call.touched, now_ms, &event_id, request_id);
        }
        let Some(sink) = &self.sink else { return };
        let event = self.build(&call, &answer, request_id, &event_id, now);
        // The line is built in a buffer kept per thread (no await while it is taken).
        thread_local! {
            static LINE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut line = LINE.take();
        line.clear();
        let encoded = event.write(&mut line);
        drop(event);
        let seq = match encoded {
            Ok(()) => {
                line.push(b'\n');
                Some(sink.append(&line))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an audit event");
                None
            }
        };
        if line.capacity() <= 64 * 1024 {
            LINE.set(line);
        }
        if let Some(seq) = seq {
            sink.written(seq).await;
        }
    }

    /// The CloudTrail event for a request, as a JSON value (tests, tools).
    pub fn event(
        &self,
        call: &Call,
        answer: &Answer<'_>,
        request_id: &str,
        event_id: &str,
        now: OffsetDateTime,
    ) -> Value {
        let mut line = Vec::new();
        match self
            .build(call, answer, request_id, event_id, now)
            .write(&mut line)
        {
            Ok(()) => serde_json::from_slice(&line).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// The event, borrowing from the call: serialized straight into the log line (no map of
    /// owned keys and values per request).
    fn build<'a>(
        &'a self,
        call: &'a Call,
        answer: &Answer<'_>,
        request_id: &'a str,
        event_id: &'a str,
        now: OffsetDateTime,
    ) -> Event<'a> {
        let mut request = Vec::with_capacity(256);
        let mut response = Vec::new();
        let (source, operation, read_only, error) = match call.service {
            Service::Kms => {
                let op = call.operation().unwrap_or_default().to_string();
                let read_only = READ_ONLY.contains(&op.as_str());
                render_request_parameters(&op, &call.body, &call.touched, &mut request);
                let error = match answer {
                    Answer::Json(body) if !read_only => {
                        render_response_elements(body, &mut response);
                        None
                    }
                    Answer::Error(e) => {
                        Some((e.code.to_string(), e.message.clone().unwrap_or_default()))
                    }
                    _ => None,
                };
                ("kms.amazonaws.com", op, read_only, error)
            }
            Service::Sts => {
                let mut form = crate::sts::parse_form(call.query.as_bytes());
                form.extend(crate::sts::parse_form(&call.body));
                let op = form.get("Action").cloned().unwrap_or_default();
                let read_only = op == "GetCallerIdentity";
                let _ = serde_json::to_writer(&mut request, &sts_request_parameters(&op, &form));
                let error = match answer {
                    Answer::Xml(200, body) => {
                        let _ =
                            serde_json::to_writer(&mut response, &sts_response_elements(&op, body));
                        None
                    }
                    Answer::Xml(_, body) => Some((
                        xml_text(body, "Code").unwrap_or_default(),
                        xml_text(body, "Message").unwrap_or_default(),
                    )),
                    _ => None,
                };
                ("sts.amazonaws.com", op, read_only, error)
            }
        };
        if response.is_empty() {
            response.extend_from_slice(b"null");
        }
        let (error_code, error_message) = match error {
            Some((c, m)) => (Some(c), Some(m)),
            None => (None, None),
        };
        Event {
            event_version: EVENT_VERSION,
            user_identity: self.user_identity(call),
            event_time: event_time(now),
            event_source: source,
            event_name: operation,
            aws_region: call.region.as_deref().unwrap_or(&self.region),
            source_ip_address: call.source_ip,
            user_agent: call.user_agent.as_deref(),
            error_code,
            error_message,
            request_parameters: request,
            response_elements: response,
            request_id,
            event_id,
            read_only,
            resources: self.resources(call),
            event_type: "AwsApiCall",
            management_event: true,
            recipient_account_id: call
                .principal
                .as_ref()
                .map_or(self.account.as_str(), |p| p.account.as_str()),
            event_category: "Management",
        }
    }

    fn user_identity<'a>(&self, call: &'a Call) -> UserIdentity<'a> {
        let Some(p) = &call.principal else {
            return UserIdentity {
                kind: "Unknown",
                access_key_id: call.presented_access_key(),
                ..UserIdentity::default()
            };
        };
        let (user_name, session_context) = match &p.kind {
            PrincipalKind::Root => (None, None),
            PrincipalKind::User { name } => (Some(name.as_str()), None),
            PrincipalKind::AssumedRole { role, .. } => (
                None,
                Some(json!({
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": p.user_id.split(':').next().unwrap_or(""),
                        "arn": p.role_arn(),
                        "accountId": p.account,
                        "userName": role,
                    },
                    "attributes": { "mfaAuthenticated": "false" },
                })),
            ),
        };
        UserIdentity {
            kind: p.identity_type(),
            principal_id: Some(&p.user_id),
            arn: Some(&p.arn),
            account_id: Some(&p.account),
            access_key_id: Some(&p.access_key_id),
            user_name,
            session_context,
            invoked_by: p.service.as_deref(),
        }
    }

    fn resources<'a>(&self, call: &'a Call) -> Vec<Resource<'a>> {
        let mut out: Vec<Resource<'a>> = call
            .touched
            .iter()
            .map(|arn| Resource {
                account_id: std::borrow::Cow::Borrowed(arn.split(':').nth(4).unwrap_or("")),
                kind: "AWS::KMS::Key",
                arn: std::borrow::Cow::Borrowed(arn),
            })
            .collect();
        if call.service == Service::Sts {
            let mut form = crate::sts::parse_form(call.query.as_bytes());
            form.extend(crate::sts::parse_form(&call.body));
            if let Some(role) = form.get("RoleArn") {
                out.push(Resource {
                    account_id: std::borrow::Cow::Owned(
                        role.split(':').nth(4).unwrap_or("").to_string(),
                    ),
                    kind: "AWS::IAM::Role",
                    arn: std::borrow::Cow::Owned(role.clone()),
                });
            }
        }
        out
    }
}

/// One CloudTrail event, in CloudTrail's member order; `requestParameters` and
/// `responseElements` are JSON already rendered from the request and response bodies.
struct Event<'a> {
    event_version: &'static str,
    user_identity: UserIdentity<'a>,
    event_time: String,
    event_source: &'static str,
    event_name: String,
    aws_region: &'a str,
    source_ip_address: Option<IpAddr>,
    user_agent: Option<&'a str>,
    error_code: Option<String>,
    error_message: Option<String>,
    request_parameters: Vec<u8>,
    response_elements: Vec<u8>,
    request_id: &'a str,
    event_id: &'a str,
    read_only: bool,
    resources: Vec<Resource<'a>>,
    event_type: &'static str,
    management_event: bool,
    recipient_account_id: &'a str,
    event_category: &'static str,
}

impl Event<'_> {
    /// The event as one JSON object (no newline), appended to `out`.
    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let mut o = Obj::open(out);
        o.str(k!("eventVersion"), self.event_version);
        o.key(k!("userIdentity"));
        self.user_identity.write(o.out)?;
        o.str(k!("eventTime"), &self.event_time);
        o.str(k!("eventSource"), self.event_source);
        o.str(k!("eventName"), &self.event_name);
        o.str(k!("awsRegion"), self.aws_region);
        match &self.source_ip_address {
            Some(ip) => {
                // An address's text has nothing to escape.
                o.key(k!("sourceIPAddress"));
                let _ = write!(o.out, "\"{ip}\"");
            }
            None => o.raw(k!("sourceIPAddress"), b"null"),
        }
        match self.user_agent {
            Some(ua) => o.str(k!("userAgent"), ua),
            None => o.raw(k!("userAgent"), b"null"),
        }
        if let Some(c) = &self.error_code {
            o.str(k!("errorCode"), c);
        }
        if let Some(m) = &self.error_message {
            o.str(k!("errorMessage"), m);
        }
        o.raw(k!("requestParameters"), &self.request_parameters);
        o.raw(k!("responseElements"), &self.response_elements);
        o.str(k!("requestID"), self.request_id);
        o.str(k!("eventID"), self.event_id);
        o.raw(
            k!("readOnly"),
            if self.read_only { b"true" } else { b"false" },
        );
        if !self.resources.is_empty() {
            o.key(k!("resources"));
            o.out.push(b'[');
            for (i, r) in self.resources.iter().enumerate() {
                if i > 0 {
                    o.out.push(b',');
                }
                let mut ro = Obj::open(o.out);
                ro.str(k!("accountId"), &r.account_id);
                ro.str(k!("type"), r.kind);
                ro.str(k!("ARN"), &r.arn);
                ro.close();
            }
            o.out.push(b']');
        }
        o.str(k!("eventType"), self.event_type);
        o.raw(
            k!("managementEvent"),
            if self.management_event {
                b"true"
            } else {
                b"false"
            },
        );
        o.str(k!("recipientAccountId"), self.recipient_account_id);
        o.str(k!("eventCategory"), self.event_category);
        o.close();
        Ok(())
    }
}

/// A JSON object written member by member; member names come from [`k!`].
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut Vec<u8>) -> Obj<'o> {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, name: Name) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.extend_from_slice(name.0.as_bytes());
    }

    fn str(&mut self, name: Name, value: &str) {
        self.key(name);
        json_str(self.out, value);
    }

    fn raw(&mut self, name: Name, json: &[u8]) {
        self.key(name);
        self.out.extend_from_slice(json);
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// A JSON string, as serde_json writes it (`keyferry_types::json`'s check and copy).
fn json_str(out: &mut Vec<u8>, s: &str) {
    keyferry_types::json::push_str(out, s);
}

#[derive(Default)]
struct UserIdentity<'a> {
    kind: &'static str,
    principal_id: Option<&'a str>,
    arn: Option<&'a str>,
    account_id: Option<&'a str>,
    access_key_id: Option<&'a str>,
    user_name: Option<&'a str>,
    session_context: Option<Value>,
    invoked_by: Option<&'a str>,
}

impl UserIdentity<'_> {
    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let mut o = Obj::open(out);
        o.str(k!("type"), self.kind);
        for (name, v) in [
            (k!("principalId"), self.principal_id),
            (k!("arn"), self.arn),
            (k!("accountId"), self.account_id),
            (k!("accessKeyId"), self.access_key_id),
            (k!("userName"), self.user_name),
        ] {
            if let Some(v) = v {
                o.str(name, v);
            }
        }
        if let Some(c) = &self.session_context {
            o.key(k!("sessionContext"));
            serde_json::to_writer(&mut *o.out, c)?;
        }
        if let Some(v) = self.invoked_by {
            o.str(k!("invokedBy"), v);
        }
        o.close();
        Ok(())
    }
}

struct Resource<'a> {
    account_id: std::borrow::Cow<'a, str>,
    kind: &'static str,
    arn: std::borrow::Cow<'a, str>,
}

// ---- requestParameters / responseElements ----------------------------------------------------

// The bodies are transcoded straight into the event's JSON text, member by member, with the
// members left out skipped unparsed: no tree of owned keys and values per request.

/// `requestParameters` of a KMS request: its members in lowerCamelCase without the secret ones;
/// `null` if the body is not a JSON object. (The rendered text, parsed: what tests look at.)
#[cfg(test)]
fn request_parameters(operation: &str, body: &[u8], touched: &[String]) -> Value {
    let mut out = Vec::new();
    render_request_parameters(operation, body, touched, &mut out);
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

/// `responseElements` of a successful, not read-only KMS response, parsed (for tests).
#[cfg(test)]
fn response_elements(body: &[u8]) -> Value {
    let mut out = Vec::new();
    render_response_elements(body, &mut out);
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

fn render_request_parameters(operation: &str, body: &[u8], touched: &[String], out: &mut Vec<u8>) {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    // CloudTrail records the key Decrypt used, and the algorithm even when not sent.
    let decrypt = operation == "Decrypt";
    let top = Top {
        skip: SECRET_REQUEST_MEMBERS,
        key_id: if decrypt {
            touched.first().map(String::as_str)
        } else {
            None
        },
        default_algorithm: decrypt,
    };
    render_top(body, top, out);
}

fn render_response_elements(body: &[u8], out: &mut Vec<u8>) {
    let top = Top {
        skip: SECRET_RESPONSE_MEMBERS,
        key_id: None,
        default_algorithm: false,
    };
    let start = out.len();
    if render_top(body, top, out) == Some(0) {
        out.truncate(start);
        out.extend_from_slice(b"null");
    }
}

/// What the top level of a body drops and adds.
#[derive(Clone, Copy)]
struct Top<'t> {
    skip: &'static [&'static str],
    /// Decrypt: `KeyId` is the key used (whatever was sent).
    key_id: Option<&'t str>,
    /// Decrypt: `EncryptionAlgorithm` is recorded even when not sent.
    default_algorithm: bool,
}

/// Transcode the JSON object `body` into `out`; the number of members written, or `None` (and
/// `null` written) when the body is not a JSON object.
fn render_top(body: &[u8], top: Top<'_>, out: &mut Vec<u8>) -> Option<usize> {
    let start = out.len();
    let mut de = serde_json::Deserializer::from_slice(body);
    match de.deserialize_map(TopVisitor {
        out: &mut *out,
        top,
    }) {
        Ok(n) => Some(n),
        Err(_) => {
            out.truncate(start);
            out.extend_from_slice(b"null");
            None
        }
    }
}

/// A member name (after a comma unless it is the object's first).
fn write_key(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    json_str(out, key);
    out.push(b':');
}

fn write_camel_key(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    match key.as_bytes().first() {
        Some(c) if c.is_ascii_uppercase() => {
            let mut k = String::with_capacity(key.len());
            k.push(c.to_ascii_lowercase() as char);
            k.push_str(&key[1..]);
            write_key(out, first, &k);
        }
        Some(c) if c.is_ascii() => write_key(out, first, key),
        _ => write_key(out, first, &lower_camel(key)),
    }
}

struct TopVisitor<'o, 't> {
    out: &'o mut Vec<u8>,
    top: Top<'t>,
}

impl<'de> Visitor<'de> for TopVisitor<'_, '_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let out = self.out;
        let top = self.top;
        out.push(b'{');
        let mut first = true;
        let mut n = 0;
        let mut algorithm_seen = false;
        while let Some(k) = map.next_key::<KeyName<'de>>()? {
            let k = k.0.as_ref();
            if top.skip.contains(&k) || (top.key_id.is_some() && k == "KeyId") {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            algorithm_seen |= k == "EncryptionAlgorithm";
            write_camel_key(out, &mut first, k);
            n += 1;
            let skip: &'static [&'static str] = if k == "Recipient" {
                &["AttestationDocument"]
            } else {
                &[]
            };
            map.next_value_seed(Emit {
                out: &mut *out,
                mode: Mode::for_member(k),
                skip,
            })?;
        }
        if let Some(arn) = top.key_id {
            write_key(out, &mut first, "keyId");
            json_str(out, arn);
            n += 1;
        }
        if top.default_algorithm && !algorithm_seen {
            write_key(out, &mut first, "encryptionAlgorithm");
            out.extend_from_slice(b"\"SYMMETRIC_DEFAULT\"");
            n += 1;
        }
        out.push(b'}');
        Ok(n)
    }
}

/// A member name, borrowed from the body unless it had escapes.
struct KeyName<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for KeyName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<KeyName<'de>, E> {
                Ok(KeyName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyName<'de>, E> {
                Ok(KeyName(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// How a value is written.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Objects inside get lowerCamelCase member names, recursively.
    Camel,
    /// As sent (encryption contexts: their keys are the caller's).
    Verbatim,
    /// A date member: a number of seconds becomes CloudTrail's date text.
    Date,
}

impl Mode {
    fn for_member(name: &str) -> Mode {
        if name.contains("EncryptionContext") {
            Mode::Verbatim
        } else if DATE_MEMBERS.contains(&name) || name.ends_with("Date") {
            Mode::Date
        } else {
            Mode::Camel
        }
    }
}

/// One value transcoded into `out`.
struct Emit<'o> {
    out: &'o mut Vec<u8>,
    mode: Mode,
    /// Members of this object (not deeper) left out.
    skip: &'static [&'static str],
}

impl<'de> serde::de::DeserializeSeed<'de> for Emit<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Emit<'_> {
    fn scalar(self, v: &impl serde::Serialize) {
        let _ = serde_json::to_writer(&mut *self.out, v);
    }

    fn number(self, secs: f64, v: &impl serde::Serialize) {
        if self.mode == Mode::Date {
            let _ = serde_json::to_writer(&mut *self.out, &cloudtrail_date(secs));
        } else {
            self.scalar(v);
        }
    }
}

impl<'de> Visitor<'de> for Emit<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.scalar(&v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.number(v as f64, &v);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.number(v as f64, &v);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // As serde_json's `Value` writes it (a non-finite number is `null`).
        match serde_json::Number::from_f64(v) {
            Some(n) => self.number(v, &n),
            None => self.out.extend_from_slice(b"null"),
        }
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        json_str(self.out, v);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.out;
        let mode = if self.mode == Mode::Camel {
            Mode::Camel
        } else {
            Mode::Verbatim
        };
        out.push(b'[');
        let mut first = true;
        loop {
            let mark = out.len();
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            let seed = Emit {
                out: &mut *out,
                mode,
                skip: &[],
            };
            if seq.next_element_seed(seed)?.is_none() {
                out.truncate(mark);
                break;
            }
        }
        out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        let camel = self.mode == Mode::Camel;
        out.push(b'{');
        let mut first = true;
        while let Some(k) = map.next_key::<KeyName<'de>>()? {
            let k = k.0.as_ref();
            if self.skip.contains(&k) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let mode = if camel {
                write_camel_key(out, &mut first, k);
                Mode::for_member(k)
            } else {
                write_key(out, &mut first, k);
                Mode::Verbatim
            };
            map.next_value_seed(Emit {
                out: &mut *out,
                mode,
                skip: &[],
            })?;
        }
        out.push(b'}');
        Ok(())
    }
}

fn lower_camel(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// CloudTrail's date format in request parameters: `Jan 1, 2021 8:00:00 PM` (UTC).
fn cloudtrail_date(epoch_secs: f64) -> String {
    let fmt = format_description!(
        "[month repr:short] [day padding:none], [year] [hour repr:12 padding:none]:[minute]:[second] [period]"
    );
    OffsetDateTime::from_unix_timestamp(epoch_secs.floor() as i64)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// `eventTime`: `YYYY-MM-DDTHH:MM:SSZ` (UTC), written digit by digit.
fn event_time(now: OffsetDateTime) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    let mut b = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, now.year().clamp(0, 9999) as u32);
    put(5, 2, u32::from(u8::from(now.month())));
    put(8, 2, u32::from(now.day()));
    put(11, 2, u32::from(now.hour()));
    put(14, 2, u32::from(now.minute()));
    put(17, 2, u32::from(now.second()));
    String::from_utf8_lossy(&b).into_owned()
}

/// STS `requestParameters`: the AssumeRole members CloudTrail shows (no policy, no MFA code).
fn sts_request_parameters(
    operation: &str,
    form: &std::collections::HashMap<String, String>,
) -> Value {
    if operation != "AssumeRole" {
        return Value::Null;
    }
    let mut out = Map::new();
    for k in ["RoleArn", "RoleSessionName", "ExternalId", "SourceIdentity"] {
        if let Some(v) = form.get(k) {
            out.insert(lower_camel(k), v.clone().into());
        }
    }
    if let Some(d) = form
        .get("DurationSeconds")
        .and_then(|d| d.parse::<u64>().ok())
    {
        out.insert("durationSeconds".into(), d.into());
    }
    Value::Object(out)
}

/// STS `responseElements`: for AssumeRole the new access key id and expiry and the session
/// (never the secret key or session token).
fn sts_response_elements(operation: &str, xml: &str) -> Value {
    if operation != "AssumeRole" {
        return Value::Null;
    }
    json!({
        "credentials": {
            "accessKeyId": xml_text(xml, "AccessKeyId"),
            "expiration": xml_text(xml, "Expiration"),
        },
        "assumedRoleUser": {
            "assumedRoleId": xml_text(xml, "AssumedRoleId"),
            "arn": xml_text(xml, "Arn"),
        },
    })
}

/// The text of the first `<tag>` element of a document we wrote ourselves (no attributes).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find("</")? + start;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `eventID`: UUID-formatted, a random per-process base plus a counter (unique without a
/// `getrandom` system call per request).
fn event_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        let r = keyferry_crypto::rng::random_bytes(16);
        let mut b = [0u8; 16];
        b.copy_from_slice(&r[..16]);
        u128::from_be_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    uuid::Builder::from_random_bytes((base ^ u128::from(n)).to_be_bytes())
        .into_uuid()
        .hyphenated()
        .to_string()
}

// ---- the writer -------------------------------------------------------------------------------

const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Events are written by the requests themselves, with group commit: a request appends its
/// line to the pending lines and yields once (the other requests its worker thread has ready
/// run and append theirs); then the first of them to run again writes all pending lines with
/// one `write(2)`, under the lock, and the others find theirs already written. A request
/// returns only once its line has been written, by itself or by another request.
struct Sink {
    out: Out,
    /// Something was written since the last `fdatasync`.
    dirty: Arc<AtomicBool>,
    pending: std::sync::Mutex<Pending>,
}

/// Lines appended but not yet written, and how far writing has got (numbered by line).
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    appended: u64,
    written: u64,
}

enum Out {
    File(File),
    Stdout,
}

impl Sink {
    fn new(out: Out) -> anyhow::Result<Sink> {
        let dirty = Arc::new(AtomicBool::new(false));
        if let Out::File(f) = &out {
            let file = f
                .try_clone()
                .context("cannot open the audit log for syncing")?;
            let dirty = dirty.clone();
            std::thread::Builder::new()
                .name("keyferry-audit-sync".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(SYNC_INTERVAL);
                        if dirty.swap(false, Ordering::AcqRel)
                            && let Err(e) = file.sync_data()
                        {
                            tracing::error!(error = %e, "syncing the audit log failed");
                        }
                    }
                })
                .context("cannot start the audit log syncer")?;
        }
        Ok(Sink {
            out,
            dirty,
            pending: Default::default(),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves valid (at worst unwritten) lines.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `line` (a whole event and its newline); returns its number for [`Sink::written`].
    fn append(&self, line: &[u8]) -> u64 {
        let mut p = self.pending();
        p.lines.extend_from_slice(line);
        p.appended += 1;
        p.appended
    }

    /// Returns once line `seq` has been handed to the operating system.
    async fn written(&self, seq: u64) {
        tokio::task::yield_now().await;
        let mut p = self.pending();
        if p.written >= seq {
            return;
        }
        let upto = p.appended;
        let lines = std::mem::take(&mut p.lines);
        self.write(&lines);
        p.written = upto;
        // Keep the buffer for the next batch unless one burst made it large.
        if lines.capacity() <= 1 << 20 && p.lines.is_empty() {
            let mut lines = lines;
            lines.clear();
            p.lines = lines;
        }
    }

    /// Hand `lines` to the operating system; returns once they are written.
    fn write(&self, lines: &[u8]) {
        let r = match &self.out {
            Out::File(f) => {
                let mut f: &File = f;
                f.write_all(lines)
            }
            Out::Stdout => {
                let mut o = std::io::stdout().lock();
                o.write_all(lines).and_then(|()| o.flush())
            }
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "writing the audit log failed");
        }
        self.dirty.store(true, Ordering::Release);
    }
}

fn open_log_file(path: &Path) -> anyhow::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true).read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts
        .open(path)
        .with_context(|| format!("cannot open audit log {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "audit log {} is accessible by other users (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    // A kill during a write may have left a fragment: end it, so the next event starts a line.
    let len = file.metadata()?.len();
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ARN: &str =
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn params(op: &str, body: &str) -> Value {
        request_parameters(op, body.as_bytes(), &[KEY_ARN.to_string()])
    }

    fn text(v: &Value) -> String {
        v.to_string()
    }

    #[test]
    fn encrypt_leaves_out_the_plaintext() {
        let v = params(
            "Encrypt",
            r#"{"KeyId":"alias/app","Plaintext":"c2VjcmV0LXBsYWludGV4dA==","EncryptionContext":{"Department":"Engineering","KeyId":"x"},"EncryptionAlgorithm":"SYMMETRIC_DEFAULT","GrantTokens":["t"]}"#,
        );
        assert_eq!(
            v,
            json!({
                "keyId": "alias/app",
                "encryptionContext": {"Department": "Engineering", "KeyId": "x"},
                "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "grantTokens": ["t"],
            })
        );
        assert!(!text(&v).contains("c2VjcmV0"));
    }

    #[test]
    fn decrypt_records_the_resolved_key_and_the_algorithm() {
        let v = params(
            "Decrypt",
            r#"{"CiphertextBlob":"AQIDBAUG","EncryptionContext":{"a":"b"}}"#,
        );
        assert_eq!(
            v,
            json!({
                "keyId": KEY_ARN,
                "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "encryptionContext": {"a": "b"},
            })
        );
        let v = params(
            "Decrypt",
            r#"{"CiphertextBlob":"AQIDBAUG","KeyId":"alias/x","EncryptionAlgorithm":"RSAES_OAEP_SHA_256"}"#,
        );
        assert_eq!(v["keyId"], KEY_ARN);
        assert_eq!(v["encryptionAlgorithm"], "RSAES_OAEP_SHA_256");
        assert!(v.get("ciphertextBlob").is_none());
    }

    #[test]
    fn re_encrypt_leaves_out_the_ciphertext() {
        let v = params(
            "ReEncrypt",
            r#"{"CiphertextBlob":"AQIDBAUG","DestinationKeyId":"k2","SourceEncryptionContext":{"A":"1"},"DestinationEncryptionContext":{"B":"2"}}"#,
        );
        assert_eq!(
            v,
            json!({
                "destinationKeyId": "k2",
                "sourceEncryptionContext": {"A": "1"},
                "destinationEncryptionContext": {"B": "2"},
            })
        );
    }

    #[test]
    fn generate_data_key_keeps_its_parameters() {
        let v = params(
            "GenerateDataKey",
            r#"{"KeyId":"k","KeySpec":"AES_256","EncryptionContext":{"Project":"Alpha"}}"#,
        );
        assert_eq!(
            v,
            json!({"keyId": "k", "keySpec": "AES_256", "encryptionContext": {"Project": "Alpha"}})
        );
        let v = params(
            "GenerateDataKey",
            r#"{"KeyId":"k","NumberOfBytes":32,"Recipient":{"KeyEncryptionAlgorithm":"RSAES_OAEP_SHA_256","AttestationDocument":"AAAA"}}"#,
        );
        assert_eq!(
            v,
            json!({"keyId": "k", "numberOfBytes": 32, "recipient": {"keyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}})
        );
    }

    #[test]
    fn import_key_material_leaves_out_material_and_token() {
        let v = params(
            "ImportKeyMaterial",
            r#"{"KeyId":"k","ImportToken":"VE9LRU4=","EncryptedKeyMaterial":"TUFURVJJQUw=","ExpirationModel":"KEY_MATERIAL_EXPIRES","ValidTo":1609531200}"#,
        );
        assert_eq!(
            v,
            json!({"keyId": "k", "expirationModel": "KEY_MATERIAL_EXPIRES", "validTo": "Jan 1, 2021 8:00:00 PM"})
        );
    }

    #[test]
    fn sign_verify_and_macs_leave_out_messages_signatures_and_macs() {
        let v = params(
            "Sign",
            r#"{"KeyId":"k","Message":"bWVzc2FnZQ==","MessageType":"RAW","SigningAlgorithm":"ECDSA_SHA_256"}"#,
        );
        assert_eq!(
            v,
            json!({"keyId": "k", "messageType": "RAW", "signingAlgorithm": "ECDSA_SHA_256"})
        );
        let v = params(
            "Verify",
            r#"{"KeyId":"k","Message":"bWVzc2FnZQ==","Signature":"c2ln","SigningAlgorithm":"ECDSA_SHA_256"}"#,
        );
        assert_eq!(
            v,
            json!({"keyId": "k", "signingAlgorithm": "ECDSA_SHA_256"})
        );
        let v = params(
            "VerifyMac",
            r#"{"KeyId":"k","Message":"bWVzc2FnZQ==","Mac":"bWFj","MacAlgorithm":"HMAC_SHA_256"}"#,
        );
        assert_eq!(v, json!({"keyId": "k", "macAlgorithm": "HMAC_SHA_256"}));
        let v = params(
            "GenerateMac",
            r#"{"KeyId":"k","Message":"bWVzc2FnZQ==","MacAlgorithm":"HMAC_SHA_256"}"#,
        );
        assert_eq!(v, json!({"keyId": "k", "macAlgorithm": "HMAC_SHA_256"}));
    }

    #[test]
    fn administrative_requests_are_recorded_whole() {
        let v = params(
            "CreateKey",
            r#"{"Description":"d","KeyUsage":"ENCRYPT_DECRYPT","Origin":"EXTERNAL","Tags":[{"TagKey":"team","TagValue":"a"}],"BypassPolicyLockoutSafetyCheck":false}"#,
        );
        assert_eq!(
            v,
            json!({
                "description": "d",
                "keyUsage": "ENCRYPT_DECRYPT",
                "origin": "EXTERNAL",
                "tags": [{"tagKey": "team", "tagValue": "a"}],
                "bypassPolicyLockoutSafetyCheck": false,
            })
        );
        let v = params(
            "CreateGrant",
            r#"{"KeyId":"k","GranteePrincipal":"arn:aws:iam::111122223333:role/app","Operations":["Decrypt"],"Constraints":{"EncryptionContextSubset":{"Department":"IT"}}}"#,
        );
        assert_eq!(
            v["constraints"],
            json!({"encryptionContextSubset": {"Department": "IT"}})
        );
        assert_eq!(params("ListKeys", ""), json!({}));
    }

    #[test]
    fn not_an_object_is_null() {
        assert_eq!(params("Encrypt", "{not json"), Value::Null);
        assert_eq!(params("Encrypt", "[1]"), Value::Null);
    }

    #[test]
    fn event_times_are_cloudtrails_format() {
        let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        for secs in [
            0i64,
            951_782_400,
            1_764_633_599,
            1_764_633_600,
            4_102_444_799,
        ] {
            let t = OffsetDateTime::from_unix_timestamp(secs).expect("time");
            assert_eq!(event_time(t), t.format(&fmt).expect("format"));
        }
        let t = OffsetDateTime::from_unix_timestamp(1_764_633_600)
            .expect("time")
            .to_offset(time::UtcOffset::from_hms(2, 0, 0).expect("offset"));
        assert_eq!(event_time(t), "2025-12-02T00:00:00Z");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let long = "x".repeat(40);
        for s in [
            "",
            "plain",
            "quote\"",
            "back\\slash",
            "tab\tnew\nline",
            "\u{1}",
            "é ü 日本",
            long.as_str(),
            &format!("{long}\""),
            &format!("{long}\u{1f}{long}"),
        ] {
            let mut out = Vec::new();
            json_str(&mut out, s);
            assert_eq!(Some(out), serde_json::to_vec(s).ok(), "{s:?}");
        }
    }

    #[test]
    fn nested_members_dates_contexts_and_escapes() {
        let body = r#"{"KeyId":"k","EncryptionContext":{"Dept":"A","NestedDate":1},
            "ValidTo":1700000000,"Recipient":{"AttestationDocument":"eA==","KeyEncryptionAlgorithm":"RSAES_OAEP_SHA_256"},
            "Constraints":{"EncryptionContextSubset":{"A":"b"}},"Tags":[{"TagKey":"k","TagValue":"v\"q"}],
            "\u00c4Name":1,"Esc\u0041pe":true,"F":1.5,"N":null,"L":[1,[2,{"InnerKey":-3}]],"Plaintext":"c2VjcmV0"}"#;
        assert_eq!(
            params("CreateGrant", body),
            json!({"keyId": "k", "encryptionContext": {"Dept": "A", "NestedDate": 1},
                   "validTo": "Nov 14, 2023 10:13:20 PM",
                   "recipient": {"keyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
                   "constraints": {"encryptionContextSubset": {"A": "b"}},
                   "tags": [{"tagKey": "k", "tagValue": "v\"q"}],
                   "\u{e4}Name": 1, "escApe": true, "f": 1.5, "n": null,
                   "l": [1, [2, {"innerKey": -3}]]})
        );
        // Cut short anywhere: null, never half an object.
        for end in 1..body.len() {
            if let Some(cut) = body.get(..end) {
                assert_eq!(params("CreateGrant", cut), Value::Null, "{cut}");
            }
        }
        assert_eq!(params("Encrypt", "  "), json!({}));
    }

    #[test]
    fn responses_leave_out_secrets() {
        let v = response_elements(
            br#"{"KeyMetadata":{"KeyId":"k","CreationDate":1609531200,"KeyState":"Enabled"}}"#,
        );
        assert_eq!(
            v,
            json!({"keyMetadata": {"keyId": "k", "creationDate": "Jan 1, 2021 8:00:00 PM", "keyState": "Enabled"}})
        );
        let v = response_elements(br#"{"GrantId":"g","GrantToken":"dG9rZW4="}"#);
        assert_eq!(v, json!({"grantId": "g"}));
        assert_eq!(response_elements(b"{}"), Value::Null);
        let v = response_elements(br#"{"KeyId":"k","Plaintext":"cA==","CiphertextBlob":"Yw=="}"#);
        assert_eq!(v, json!({"keyId": "k"}));
    }

    fn event_for(call: &Call, answer: Answer<'_>) -> Value {
        let audit = Audit::disabled("us-east-1", "111122223333");
        audit.event(
            call,
            &answer,
            "req-1",
            "evt-1",
            OffsetDateTime::from_unix_timestamp(1_595_890_704).expect("time"),
        )
    }

    #[test]
    fn an_encrypt_event_has_cloudtrails_fields() {
        let mut p = Principal::root("111122223333", "AKIAEXAMPLE000000001");
        p.kind = PrincipalKind::User {
            name: "Alice".into(),
        };
        p.arn = "arn:aws:iam::111122223333:user/Alice".into();
        p.user_id = "AIDAEXAMPLE".into();
        let call = Call {
            service: Service::Kms,
            target: Some(HeaderValue::from_static("TrentService.Encrypt")),
            query: String::new(),
            body: Bytes::from_static(br#"{"KeyId":"k","Plaintext":"aGVsbG8="}"#),
            principal: Some(Arc::new(p)),
            authorization: None,
            source_ip: Some("192.0.2.1".parse().expect("ip")),
            user_agent: Some("aws-cli/2".into()),
            touched: vec![KEY_ARN.into()],
            region: None,
        };
        let e = event_for(
            &call,
            Answer::Json(br#"{"CiphertextBlob":"Y2lwaGVy","KeyId":"k"}"#),
        );
        assert_eq!(e["eventVersion"], EVENT_VERSION);
        assert_eq!(
            e["userIdentity"],
            json!({"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::111122223333:user/Alice",
                   "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLE000000001", "userName": "Alice"})
        );
        assert_eq!(e["eventTime"], "2020-07-27T22:58:24Z");
        assert_eq!(e["eventSource"], "kms.amazonaws.com");
        assert_eq!(e["eventName"], "Encrypt");
        assert_eq!(e["awsRegion"], "us-east-1");
        assert_eq!(e["sourceIPAddress"], "192.0.2.1");
        assert_eq!(e["userAgent"], "aws-cli/2");
        assert_eq!(e["requestParameters"], json!({"keyId": "k"}));
        assert_eq!(e["responseElements"], Value::Null);
        assert_eq!(e["requestID"], "req-1");
        assert_eq!(e["eventID"], "evt-1");
        assert_eq!(e["readOnly"], true);
        assert_eq!(
            e["resources"],
            json!([{"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": KEY_ARN}])
        );
        assert_eq!(e["eventType"], "AwsApiCall");
        assert_eq!(e["recipientAccountId"], "111122223333");
        assert_eq!(e["eventCategory"], "Management");
        assert!(e.get("errorCode").is_none());
        assert!(!e.to_string().contains("aGVsbG8"));
        assert!(!e.to_string().contains("Y2lwaGVy"));
    }

    #[test]
    fn a_denied_call_has_the_error_and_an_assumed_role_its_issuer() {
        let mut p = Principal::root("444455556666", "ASIAEXAMPLE000000001");
        p.kind = PrincipalKind::AssumedRole {
            role: "app".into(),
            session: "s1".into(),
        };
        p.arn = "arn:aws:sts::444455556666:assumed-role/app/s1".into();
        p.user_id = "AROAEXAMPLE:s1".into();
        p.service = Some("ec2.amazonaws.com".into());
        let call = Call {
            target: Some(HeaderValue::from_static("TrentService.ScheduleKeyDeletion")),
            body: Bytes::from_static(br#"{"KeyId":"k","PendingWindowInDays":7}"#),
            principal: Some(Arc::new(p)),
            touched: vec![KEY_ARN.into()],
            ..Call::default()
        };
        let err = ApiError::client("AccessDeniedException", "User: x is not authorized");
        let e = event_for(&call, Answer::Error(&err));
        assert_eq!(e["errorCode"], "AccessDeniedException");
        assert_eq!(e["errorMessage"], "User: x is not authorized");
        assert_eq!(e["readOnly"], false);
        assert_eq!(e["responseElements"], Value::Null);
        assert_eq!(e["recipientAccountId"], "444455556666");
        assert_eq!(e["resources"][0]["accountId"], "111122223333");
        let u = &e["userIdentity"];
        assert_eq!(u["type"], "AssumedRole");
        assert_eq!(u["invokedBy"], "ec2.amazonaws.com");
        assert_eq!(
            u["sessionContext"]["sessionIssuer"],
            json!({"type": "Role", "principalId": "AROAEXAMPLE", "arn": "arn:aws:iam::444455556666:role/app",
                   "accountId": "444455556666", "userName": "app"})
        );
    }

    fn parts(headers: axum::http::HeaderMap) -> Parts {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        parts.headers = headers;
        parts
    }

    #[test]
    fn an_unauthenticated_call_is_unknown() {
        let mut call = Call::default();
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKIANOTKNOWN00000001/20200727/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00"
                .parse()
                .expect("header"),
        );
        h.insert(
            "x-amz-target",
            "TrentService.ListKeys".parse().expect("header"),
        );
        call.note_request(&parts(h), None);
        let err = ApiError::client(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
        let e = event_for(&call, Answer::Error(&err));
        assert_eq!(
            e["userIdentity"],
            json!({"type": "Unknown", "accessKeyId": "AKIANOTKNOWN00000001"})
        );
        assert_eq!(e["eventName"], "ListKeys");
        assert_eq!(e["recipientAccountId"], "111122223333");
        assert_eq!(e["errorCode"], "UnrecognizedClientException");
        // Something that does not look like an access key id (a pasted secret) is not recorded.
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=wJalrXUtnFEMI/K7MDENG/20200727/us-east-1/kms/aws4_request"
                .parse()
                .expect("header"),
        );
        let mut call = Call::default();
        call.note_request(&parts(h), None);
        assert!(call.presented_access_key().is_none());
    }

    #[test]
    fn sts_events() {
        let call = Call {
            service: Service::Sts,
            body: Bytes::from_static(
                b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fapp&RoleSessionName=s1&DurationSeconds=900",
            ),
            principal: Some(Arc::new(Principal::root("111122223333", "AKIAEXAMPLE000000001"))),
            ..Call::default()
        };
        let xml = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>SECRETSECRET</SecretAccessKey><SessionToken>TOKENTOKEN</SessionToken><Expiration>2020-07-27T23:13:24Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROAX:s1</AssumedRoleId><Arn>arn:aws:sts::111122223333:assumed-role/app/s1</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>";
        let e = event_for(&call, Answer::Xml(200, xml));
        assert_eq!(e["eventSource"], "sts.amazonaws.com");
        assert_eq!(e["eventName"], "AssumeRole");
        assert_eq!(e["readOnly"], false);
        assert_eq!(e["userIdentity"]["type"], "Root");
        assert_eq!(
            e["requestParameters"],
            json!({"roleArn": "arn:aws:iam::111122223333:role/app", "roleSessionName": "s1", "durationSeconds": 900})
        );
        assert_eq!(
            e["responseElements"]["credentials"]["accessKeyId"],
            "ASIAEXAMPLE"
        );
        assert_eq!(e["resources"][0]["type"], "AWS::IAM::Role");
        let s = e.to_string();
        assert!(!s.contains("SECRETSECRET") && !s.contains("TOKENTOKEN"));
        let err = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed &amp; so on</Message></Error></ErrorResponse>";
        let e = event_for(&call, Answer::Xml(403, err));
        assert_eq!(e["errorCode"], "AccessDenied");
        assert_eq!(e["errorMessage"], "not allowed & so on");
        assert_eq!(e["responseElements"], Value::Null);
    }
}
