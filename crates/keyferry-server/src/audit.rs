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
//!   before its request is answered, by the request itself: one `write(2)` of its line to the
//!   file opened `O_APPEND` (the kernel keeps concurrent appends whole; no lock, no thread hop). So after
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
use axum::http::header;
use axum::http::request::Parts;
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
    /// The KMS operation (from `X-Amz-Target`); STS takes it from the form's `Action`.
    pub operation: Option<String>,
    /// The URI query (STS parameters may be there) and the body.
    pub query: String,
    pub body: Bytes,
    /// The authenticated caller; `None` when authentication failed or did not happen.
    pub principal: Option<Arc<Principal>>,
    /// The access key id in the `Authorization` header, for unauthenticated events.
    pub presented_access_key: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The key ARNs the operation resolved (`RequestContext::touched_keys`).
    pub touched: Vec<String>,
    /// The Region of the request (its credential scope, when this deployment serves it).
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
            .map(str::to_string);
        self.operation = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.strip_prefix(crate::protocol::TARGET_PREFIX))
            .map(str::to_string);
        self.presented_access_key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .filter(|k| looks_like_access_key(k))
            .map(str::to_string);
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
            && let Some(op) = &call.operation
        {
            kms.record_usage(op, &call.touched, now_ms, &event_id, request_id);
        }
        let Some(sink) = &self.sink else { return };
        let event = self.build(&call, &answer, request_id, &event_id, now);
        let mut line = Vec::with_capacity(1024);
        if let Err(e) = serde_json::to_writer(&mut line, &event) {
            tracing::error!(error = %e, "cannot encode an audit event");
            return;
        }
        line.push(b'\n');
        sink.write(&line);
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
        serde_json::to_value(self.build(call, answer, request_id, event_id, now))
            .unwrap_or(Value::Null)
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
        let (source, operation, read_only, request, response, error) = match call.service {
            Service::Kms => {
                let op = call.operation.clone().unwrap_or_default();
                let read_only = READ_ONLY.contains(&op.as_str());
                let request = request_parameters(&op, &call.body, &call.touched);
                let (response, error) = match answer {
                    Answer::Json(body) if !read_only => (response_elements(body), None),
                    Answer::Error(e) => (
                        Value::Null,
                        Some((e.code.to_string(), e.message.clone().unwrap_or_default())),
                    ),
                    _ => (Value::Null, None),
                };
                ("kms.amazonaws.com", op, read_only, request, response, error)
            }
            Service::Sts => {
                let mut form = crate::sts::parse_form(call.query.as_bytes());
                form.extend(crate::sts::parse_form(&call.body));
                let op = form.get("Action").cloned().unwrap_or_default();
                let read_only = op == "GetCallerIdentity";
                let request = sts_request_parameters(&op, &form);
                let (response, error) = match answer {
                    Answer::Xml(200, body) => (sts_response_elements(&op, body), None),
                    Answer::Xml(_, body) => (
                        Value::Null,
                        Some((
                            xml_text(body, "Code").unwrap_or_default(),
                            xml_text(body, "Message").unwrap_or_default(),
                        )),
                    ),
                    _ => (Value::Null, None),
                };
                ("sts.amazonaws.com", op, read_only, request, response, error)
            }
        };
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
                access_key_id: call.presented_access_key.as_deref(),
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

/// One CloudTrail event, in CloudTrail's member order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    event_version: &'static str,
    user_identity: UserIdentity<'a>,
    event_time: String,
    event_source: &'static str,
    event_name: String,
    aws_region: &'a str,
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: Option<IpAddr>,
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    request_parameters: Value,
    response_elements: Value,
    #[serde(rename = "requestID")]
    request_id: &'a str,
    #[serde(rename = "eventID")]
    event_id: &'a str,
    read_only: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resources: Vec<Resource<'a>>,
    event_type: &'static str,
    management_event: bool,
    recipient_account_id: &'a str,
    event_category: &'static str,
}

#[derive(serde::Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct UserIdentity<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_context: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoked_by: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct Resource<'a> {
    #[serde(rename = "accountId")]
    account_id: std::borrow::Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "ARN")]
    arn: std::borrow::Cow<'a, str>,
}

// ---- requestParameters / responseElements ----------------------------------------------------

/// A JSON object's members, parsed with the members named in `skip` never materialised.
struct Filtered(Map<String, Value>);

struct FilteredVisitor(&'static [&'static str]);

impl<'de> Visitor<'de> for FilteredVisitor {
    type Value = Filtered;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Filtered, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if self.0.contains(&k.as_str()) {
                map.next_value::<IgnoredAny>()?;
            } else {
                let v: Value = map.next_value()?;
                out.insert(k, v);
            }
        }
        Ok(Filtered(out))
    }
}

fn parse_filtered(body: &[u8], skip: &'static [&'static str]) -> Option<Map<String, Value>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    de.deserialize_map(FilteredVisitor(skip)).ok().map(|f| f.0)
}

/// `requestParameters` of a KMS request: its members in lowerCamelCase without the secret ones;
/// `null` if the body is not a JSON object.
pub fn request_parameters(operation: &str, body: &[u8], touched: &[String]) -> Value {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let Some(mut members) = parse_filtered(body, SECRET_REQUEST_MEMBERS) else {
        return Value::Null;
    };
    if let Some(Value::Object(r)) = members.get_mut("Recipient") {
        r.remove("AttestationDocument");
    }
    if operation == "Decrypt" {
        // CloudTrail records the key Decrypt used, and the algorithm even when not sent.
        if let Some(arn) = touched.first() {
            members.insert("KeyId".into(), arn.clone().into());
        }
        members
            .entry("EncryptionAlgorithm")
            .or_insert_with(|| "SYMMETRIC_DEFAULT".into());
    }
    cloudtrail_members(members)
}

/// `responseElements` of a successful, not read-only KMS response.
pub fn response_elements(body: &[u8]) -> Value {
    match parse_filtered(body, SECRET_RESPONSE_MEMBERS) {
        Some(members) if !members.is_empty() => cloudtrail_members(members),
        _ => Value::Null,
    }
}

/// Member names in lowerCamelCase, recursively, except inside encryption contexts (their keys
/// are the caller's); dates in CloudTrail's format.
fn cloudtrail_members(members: Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (k, v) in members {
        let v = if k.contains("EncryptionContext") {
            v
        } else if DATE_MEMBERS.contains(&k.as_str()) || k.ends_with("Date") {
            match v.as_f64() {
                Some(secs) => cloudtrail_date(secs).into(),
                None => v,
            }
        } else {
            camel_value(v)
        };
        out.insert(lower_camel(&k), v);
    }
    Value::Object(out)
}

fn camel_value(v: Value) -> Value {
    match v {
        Value::Object(m) => cloudtrail_members(m),
        Value::Array(a) => Value::Array(a.into_iter().map(camel_value).collect()),
        other => other,
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

fn event_time(now: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    now.format(&fmt).unwrap_or_default()
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

/// Events are written by the requests themselves, one `write(2)` each, with no lock of ours:
/// the file is opened `O_APPEND`, so the kernel appends each write whole and in one piece
/// (concurrent appends never interleave). stdout goes through std's own lock.
struct Sink {
    out: Out,
    /// Something was written since the last `fdatasync`.
    dirty: Arc<AtomicBool>,
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
        Ok(Sink { out, dirty })
    }

    /// Hand `line` to the operating system; returns once it is written.
    fn write(&self, line: &[u8]) {
        let r = match &self.out {
            Out::File(f) => {
                let mut f: &File = f;
                f.write_all(line)
            }
            Out::Stdout => {
                let mut o = std::io::stdout().lock();
                o.write_all(line).and_then(|()| o.flush())
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
            operation: Some("Encrypt".into()),
            query: String::new(),
            body: Bytes::from_static(br#"{"KeyId":"k","Plaintext":"aGVsbG8="}"#),
            principal: Some(Arc::new(p)),
            presented_access_key: None,
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
            operation: Some("ScheduleKeyDeletion".into()),
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
        assert!(call.presented_access_key.is_none());
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
