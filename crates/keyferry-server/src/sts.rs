//! STS on the KMS endpoint, as much as the aws CLI and SDKs need for role profiles
//! (`role_arn` + `source_profile`): `GetCallerIdentity` and `AssumeRole`, in AWS's Query protocol
//! (form-encoded POST, XML answers; botocore's `sts` model).
//!
//! Session credentials are stateless: the session token is the session (account, role, session
//! name, expiry, secret access key, session policy) sealed with AES-256-GCM under a subkey of
//! the root key, so every node sharing the root key accepts it and nothing is stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use keyferry_core::{Principal, PrincipalKind};
use keyferry_crypto::seal::RootKey;
use keyferry_policy::{Caller, Context, Policy, PolicyKind, Request, Value};
use keyferry_sigv4::SecretKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::identity::Identities;

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const SESSIONS_CACHED: usize = 10_000;

/// Why session credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// Unknown, forged or mismatched token: `UnrecognizedClientException`.
    Invalid,
    /// A genuine token past its expiry: `ExpiredTokenException`.
    Expired,
}

/// What a session token holds (sealed; never sent in the clear).
#[derive(Serialize, Deserialize)]
struct Session {
    v: u32,
    akid: String,
    secret: String,
    account: String,
    role: String,
    session: String,
    expires_ms: i64,
    #[serde(default)]
    policy: Option<String>,
}

impl Drop for Session {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret.zeroize();
    }
}

struct CachedSession {
    expires_ms: i64,
    secret: SecretKey,
    principal: Arc<Principal>,
}

pub struct Sts {
    key: RootKey,
    sessions: Mutex<HashMap<String, CachedSession>>,
}

/// An STS answer: HTTP status and XML body.
pub struct StsResponse {
    pub status: u16,
    pub body: String,
}

impl Sts {
    pub fn new(root: &RootKey) -> Sts {
        Sts {
            key: root.derive("keyferry/sts-session/v1"),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The secret and principal of temporary credentials, from the request's access key id
    /// and `X-Amz-Security-Token`. The role must still exist in `identities`.
    pub fn session(
        &self,
        identities: &Identities,
        access_key_id: &str,
        token: &str,
        now_ms: i64,
    ) -> Result<(SecretKey, Arc<Principal>), SessionError> {
        if let Ok(map) = self.sessions.lock()
            && let Some(c) = map.get(token)
        {
            if c.principal.access_key_id != access_key_id {
                return Err(SessionError::Invalid);
            }
            if c.expires_ms <= now_ms {
                return Err(SessionError::Expired);
            }
            return Ok((c.secret.clone(), c.principal.clone()));
        }
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| SessionError::Invalid)?;
        let plain = self
            .key
            .open(&sealed, b"sts-session")
            .map_err(|_| SessionError::Invalid)?;
        let s: Session = serde_json::from_slice(&plain).map_err(|_| SessionError::Invalid)?;
        if s.v != 1 || s.akid != access_key_id {
            return Err(SessionError::Invalid);
        }
        if s.expires_ms <= now_ms {
            return Err(SessionError::Expired);
        }
        let role_arn = format!("arn:aws:iam::{}:role/{}", s.account, s.role);
        let role = identities.role(&role_arn).ok_or(SessionError::Invalid)?;
        let session_policy = match &s.policy {
            Some(p) => Some(Arc::new(
                Policy::parse(p, PolicyKind::Identity).map_err(|_| SessionError::Invalid)?,
            )),
            None => None,
        };
        let principal = Arc::new(Principal {
            account: s.account.clone(),
            kind: PrincipalKind::AssumedRole {
                role: s.role.clone(),
                session: s.session.clone(),
            },
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{}",
                s.account, s.role, s.session
            ),
            user_id: format!("{}:{}", role.role_id, s.session),
            access_key_id: s.akid.clone(),
            identity_policies: role.policies.clone(),
            session_policy,
            service: role.service.clone(),
        });
        let secret = SecretKey::new(s.secret.clone());
        if let Ok(mut map) = self.sessions.lock() {
            if map.len() >= SESSIONS_CACHED {
                map.retain(|_, c| c.expires_ms > now_ms);
                if map.len() >= SESSIONS_CACHED {
                    map.clear();
                }
            }
            map.insert(
                token.to_string(),
                CachedSession {
                    expires_ms: s.expires_ms,
                    secret: secret.clone(),
                    principal: principal.clone(),
                },
            );
        }
        Ok((secret, principal))
    }

    /// Answer one STS request from an authenticated caller. `params` is the decoded form (or
    /// query string).
    pub fn handle(
        &self,
        identities: &Identities,
        caller: &Principal,
        params: &HashMap<String, String>,
        request_id: &str,
        now_ms: i64,
    ) -> StsResponse {
        match params.get("Action").map(String::as_str) {
            Some("GetCallerIdentity") => StsResponse {
                status: 200,
                body: format!(
                    "<GetCallerIdentityResponse xmlns=\"{NS}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
                    xml(&caller.arn),
                    xml(&caller.user_id),
                    xml(&caller.account)
                ),
            },
            Some("AssumeRole") => match self.assume_role(identities, caller, params, now_ms) {
                Ok(body) => StsResponse {
                    status: 200,
                    body: format!(
                        "<AssumeRoleResponse xmlns=\"{NS}\"><AssumeRoleResult>{body}</AssumeRoleResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></AssumeRoleResponse>"
                    ),
                },
                Err((status, code, message)) => error(status, code, &message, request_id),
            },
            Some(other) => error(
                400,
                "InvalidAction",
                &format!("Could not find operation {other} for version 2011-06-15"),
                request_id,
            ),
            None => error(400, "MissingAction", "Missing Action", request_id),
        }
    }

    fn assume_role(
        &self,
        identities: &Identities,
        caller: &Principal,
        params: &HashMap<String, String>,
        now_ms: i64,
    ) -> Result<String, (u16, &'static str, String)> {
        let role_arn = params.get("RoleArn").cloned().unwrap_or_default();
        let session = params.get("RoleSessionName").cloned().unwrap_or_default();
        if role_arn.is_empty() {
            return Err(validation("roleArn", "null", "Member must not be null"));
        }
        if session.is_empty() {
            return Err(validation(
                "roleSessionName",
                "null",
                "Member must not be null",
            ));
        }
        if role_arn.len() < 20 || role_arn.len() > 2048 {
            return Err(validation(
                "roleArn",
                &role_arn,
                "Member must have length greater than or equal to 20",
            ));
        }
        if session.len() < 2
            || session.len() > 64
            || !session
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
        {
            return Err(validation(
                "roleSessionName",
                &session,
                "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
            ));
        }
        let denied = || {
            (
                403,
                "AccessDenied",
                format!(
                    "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                    caller.arn
                ),
            )
        };
        let Some(role) = identities.role(&role_arn) else {
            return Err(denied());
        };
        let duration = match params.get("DurationSeconds") {
            Some(d) => d
                .parse::<i64>()
                .map_err(|_| validation("durationSeconds", d, "Member must be a number"))?,
            None => 3600,
        };
        if duration < 900 {
            return Err(validation(
                "durationSeconds",
                &duration.to_string(),
                "Member must have value greater than or equal to 900",
            ));
        }
        if duration > role.max_session_seconds {
            return Err((
                400,
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                    .to_string(),
            ));
        }
        let policy = match params.get("Policy") {
            Some(p) => {
                Policy::parse(p, PolicyKind::Identity)
                    .map_err(|e| (400, "MalformedPolicyDocument", e.message))?;
                Some(p.clone())
            }
            None => None,
        };
        // The trust policy must allow the caller; when it names the caller's account, the
        // caller's identity policies must allow sts:AssumeRole on the role too (and always
        // across accounts), as for KMS key policies.
        let Some(trust) = &role.trust_policy else {
            return Err(denied());
        };
        let mut arns = vec![caller.arn.clone()];
        if let Some(r) = caller.role_arn() {
            arns.push(r);
        }
        let arn_refs: Vec<&str> = arns.iter().map(String::as_str).collect();
        let mut ctx = Context::new();
        ctx.set("aws:PrincipalArn", Value::String(caller.principal_arn()));
        ctx.set(
            "aws:PrincipalAccount",
            Value::String(caller.account.clone()),
        );
        ctx.set("aws:CurrentTime", Value::Date(now_ms));
        ctx.set("aws:userid", Value::String(caller.user_id.clone()));
        if let Some(id) = params.get("ExternalId") {
            ctx.set("sts:ExternalId", Value::String(id.clone()));
        }
        ctx.set("sts:RoleSessionName", Value::String(session.clone()));
        let request = |resource: &'static str| Request {
            caller: Caller {
                arns: &arn_refs,
                account: &caller.account,
                service: caller.service.as_deref(),
            },
            action: "sts:AssumeRole",
            resource,
            context: &ctx,
        };
        let e = trust.evaluate(&request("*"));
        if e.explicit_deny {
            return Err(denied());
        }
        let mut id_deny = false;
        let mut id_allow = caller.is_root();
        for p in caller.identity_policies.iter() {
            let r = Request {
                caller: Caller {
                    arns: &arn_refs,
                    account: &caller.account,
                    service: caller.service.as_deref(),
                },
                action: "sts:AssumeRole",
                resource: &role_arn,
                context: &ctx,
            };
            let ev = p.evaluate(&r);
            id_deny |= ev.explicit_deny;
            id_allow |= ev.allow_direct || ev.allow_account;
        }
        let same_account = caller.account == role.account;
        let allowed = !id_deny
            && if same_account {
                e.allow_direct || (e.allow_account && id_allow)
            } else {
                (e.allow_direct || e.allow_account) && id_allow
            };
        if !allowed {
            return Err(denied());
        }
        let akid = random_id("ASIA", 16);
        let secret = Zeroizing::new(random_secret());
        let expires_ms = now_ms + duration * 1000;
        let s = Session {
            v: 1,
            akid: akid.clone(),
            secret: secret.to_string(),
            account: role.account.clone(),
            role: role.name.clone(),
            session: session.clone(),
            expires_ms,
            policy: policy.clone(),
        };
        let plain = Zeroizing::new(serde_json::to_vec(&s).map_err(|_| internal())?);
        let sealed = self
            .key
            .seal(&plain, b"sts-session")
            .map_err(|_| internal())?;
        let token = base64::engine::general_purpose::STANDARD.encode(sealed);
        let expiration = time::OffsetDateTime::from_unix_timestamp(expires_ms / 1000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let packed = policy
            .map(|p| {
                format!(
                    "<PackedPolicySize>{}</PackedPolicySize>",
                    (p.len() * 100 / 2048).max(1)
                )
            })
            .unwrap_or_default();
        Ok(format!(
            "<Credentials><AccessKeyId>{akid}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{expiration}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>{}:{}</AssumedRoleId><Arn>arn:aws:sts::{}:assumed-role/{}/{}</Arn></AssumedRoleUser>{packed}",
            xml(&secret),
            role.role_id,
            xml(&session),
            role.account,
            xml(&role.name),
            xml(&session)
        ))
    }
}

fn internal() -> (u16, &'static str, String) {
    (500, "InternalFailure", "An internal error occurred.".into())
}

fn validation(member: &str, value: &str, constraint: &str) -> (u16, &'static str, String) {
    let shown = if value == "null" {
        "null".to_string()
    } else {
        format!("'{value}'")
    };
    (
        400,
        "ValidationError",
        format!(
            "1 validation error detected: Value {shown} at '{member}' failed to satisfy constraint: {constraint}"
        ),
    )
}

/// An STS error document (Query protocol).
pub fn error(status: u16, code: &str, message: &str, request_id: &str) -> StsResponse {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    StsResponse {
        status,
        body: format!(
            "<ErrorResponse xmlns=\"{NS}\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            xml(message)
        ),
    }
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn random_id(prefix: &str, n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes = keyferry_crypto::rng::random_bytes(n);
    let mut out = String::from(prefix);
    for b in bytes.iter() {
        out.push(ALPHABET[(*b as usize) % ALPHABET.len()] as char);
    }
    out
}

fn random_secret() -> String {
    let bytes = keyferry_crypto::rng::random_bytes(30);
    base64::engine::general_purpose::STANDARD.encode(&bytes[..])
}

/// Decode `application/x-www-form-urlencoded` (also a query string).
pub fn parse_form(s: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in s.split(|b| *b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        out.insert(decode_component(k), decode_component(v));
    }
    out
}

fn decode_component(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                let hex = std::str::from_utf8(&s[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f = parse_form(b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fapp&RoleSessionName=a+b&Empty=");
        assert_eq!(f["Action"], "AssumeRole");
        assert_eq!(f["RoleArn"], "arn:aws:iam::111122223333:role/app");
        assert_eq!(f["RoleSessionName"], "a b");
        assert_eq!(f["Empty"], "");
        let odd = parse_form(b"A=%&B=%4&C=%41");
        assert_eq!(odd["A"], "%");
        assert_eq!(odd["B"], "%4");
        assert_eq!(odd["C"], "A");
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(xml("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
