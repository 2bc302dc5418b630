//! Who calls, from where: the one request context that the HTTP edge builds for every request
//! (after SigV4 has authenticated it) and that every operation receives. Authorization
//! (`authz.rs`) and the audit trail read it; nothing else decides who the caller is.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use keyferry_policy::Policy;

/// The kind of an authenticated principal, with the names its ARN is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account's root user (`arn:aws:iam::<acct>:root`). No IAM policy applies to it.
    Root,
    /// An IAM user (`arn:aws:iam::<acct>:user/<name>`).
    User { name: String },
    /// A role session (`arn:aws:sts::<acct>:assumed-role/<role>/<session>`).
    AssumedRole { role: String, session: String },
}

/// An authenticated principal: what SigV4 (and, for sessions, STS) proved about the caller.
#[derive(Clone)]
pub struct Principal {
    pub account: String,
    pub kind: PrincipalKind,
    /// The caller's ARN as AWS reports it (the session ARN for assumed roles).
    pub arn: String,
    /// `aws:userid`: the account id for root, `AIDA…` for users, `AROA…:<session>` for sessions.
    pub user_id: String,
    /// The access key the request was signed with.
    pub access_key_id: String,
    /// The caller's identity-based (IAM) policies, compiled once when the identities were loaded:
    /// the user's or the role's. Empty for root.
    pub identity_policies: Arc<Vec<Policy>>,
    /// A session policy passed to AssumeRole, which further limits the session.
    pub session_policy: Option<Arc<Policy>>,
    /// `Some("ec2.amazonaws.com")` when this identity is declared to act for an AWS service
    /// (identities file `service = …`): `kms:ViaService` and `kms:GrantIsForAWSResource` follow.
    pub service: Option<String>,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("arn", &self.arn)
            .field("access_key_id", &self.access_key_id)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// The account's root user, with no policies (the one-account shortcut and tests).
    pub fn root(account: &str, access_key_id: &str) -> Principal {
        Principal {
            account: account.to_string(),
            kind: PrincipalKind::Root,
            arn: format!("arn:aws:iam::{account}:root"),
            user_id: account.to_string(),
            access_key_id: access_key_id.to_string(),
            identity_policies: Arc::new(Vec::new()),
            session_policy: None,
            service: None,
        }
    }

    pub fn is_root(&self) -> bool {
        self.kind == PrincipalKind::Root
    }

    /// The role ARN behind an assumed-role session.
    pub fn role_arn(&self) -> Option<String> {
        match &self.kind {
            PrincipalKind::AssumedRole { role, .. } => {
                Some(format!("arn:aws:iam::{}:role/{role}", self.account))
            }
            _ => None,
        }
    }

    /// `aws:PrincipalArn`: the role ARN for sessions, else the caller's ARN.
    pub fn principal_arn(&self) -> String {
        self.role_arn().unwrap_or_else(|| self.arn.clone())
    }

    /// `aws:username` (users only).
    pub fn user_name(&self) -> Option<&str> {
        match &self.kind {
            PrincipalKind::User { name } => Some(name),
            _ => None,
        }
    }

    /// CloudTrail's `userIdentity.type`.
    pub fn identity_type(&self) -> &'static str {
        match self.kind {
            PrincipalKind::Root => "Root",
            PrincipalKind::User { .. } => "IAMUser",
            PrincipalKind::AssumedRole { .. } => "AssumedRole",
        }
    }
}

/// One request as every operation sees it.
#[derive(Debug)]
pub struct RequestContext {
    pub principal: Arc<Principal>,
    /// The Region of the request (its SigV4 credential scope).
    pub region: String,
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<Arc<str>>,
    /// `aws:SecureTransport`: the request arrived over TLS.
    pub secure_transport: bool,
    pub request_id: String,
    /// The keys (ARNs) the operation resolved, in order, recorded by authorization for the
    /// audit trail (`resources`, and GetKeyLastUsage).
    pub touched: std::sync::Mutex<Vec<String>>,
}

impl RequestContext {
    /// The same caller and request, acting in another Region (ReplicateKey authorizes
    /// `kms:CreateKey` in the replica's Region, UpdatePrimaryRegion the new primary there).
    pub fn in_region(&self, region: &str) -> RequestContext {
        RequestContext {
            principal: self.principal.clone(),
            region: region.to_string(),
            source_ip: self.source_ip,
            user_agent: self.user_agent.clone(),
            secure_transport: self.secure_transport,
            request_id: self.request_id.clone(),
            touched: Default::default(),
        }
    }

    /// A context for `principal` in `region` with no network details (tests, internal callers).
    pub fn new(principal: Principal, region: &str) -> RequestContext {
        RequestContext {
            principal: Arc::new(principal),
            region: region.to_string(),
            source_ip: None,
            user_agent: None,
            secure_transport: false,
            request_id: String::new(),
            touched: Default::default(),
        }
    }

    /// Record that the operation acts on this key (for the audit trail).
    pub fn touch(&self, key_arn: String) {
        if let Ok(mut t) = self.touched.lock()
            && !t.contains(&key_arn)
        {
            t.push(key_arn);
        }
    }

    /// The keys the operation resolved.
    pub fn touched_keys(&self) -> Vec<String> {
        self.touched.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn account(&self) -> &str {
        &self.principal.account
    }
}

/// The identities the server knows (from the identities file), as far as the service needs them:
/// which principals exist, for key-policy validation ("unknown principals" are refused).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub accounts: BTreeMap<String, AccountEntry>,
}

#[derive(Debug, Clone, Default)]
pub struct AccountEntry {
    pub users: BTreeSet<String>,
    pub roles: BTreeSet<String>,
}

impl Directory {
    /// A directory with one account and no users or roles.
    pub fn single(account: &str) -> Directory {
        let mut d = Directory::default();
        d.accounts
            .insert(account.to_string(), AccountEntry::default());
        d
    }

    /// Does this principal, as written in a policy (`*`, an account id, an IAM or STS ARN),
    /// name something that exists? Service principals are checked by the policy parser.
    pub fn principal_exists(&self, p: &str) -> bool {
        if p == "*" {
            return true;
        }
        if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
            return self.accounts.contains_key(p);
        }
        if let Some(rest) = p.strip_prefix("arn:aws:iam::") {
            let Some((acct, res)) = rest.split_once(':') else {
                return false;
            };
            let Some(entry) = self.accounts.get(acct) else {
                return false;
            };
            if res == "root" {
                return true;
            }
            if let Some(u) = res.strip_prefix("user/") {
                return entry.users.contains(last_segment(u));
            }
            if let Some(r) = res.strip_prefix("role/") {
                return entry.roles.contains(last_segment(r));
            }
            return false;
        }
        if let Some(rest) = p.strip_prefix("arn:aws:sts::") {
            let Some((acct, res)) = rest.split_once(':') else {
                return false;
            };
            let Some(entry) = self.accounts.get(acct) else {
                return false;
            };
            if let Some(r) = res.strip_prefix("assumed-role/") {
                return r
                    .split_once('/')
                    .is_some_and(|(role, s)| entry.roles.contains(role) && !s.is_empty());
            }
            return false;
        }
        false
    }
}

/// IAM names may carry a path (`user/division/alice`): the name is the last segment.
fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_existence() {
        let mut d = Directory::single("111122223333");
        let e = d.accounts.get_mut("111122223333").expect("account");
        e.users.insert("alice".into());
        e.roles.insert("app".into());
        assert!(d.principal_exists("*"));
        assert!(d.principal_exists("111122223333"));
        assert!(!d.principal_exists("444455556666"));
        assert!(d.principal_exists("arn:aws:iam::111122223333:root"));
        assert!(d.principal_exists("arn:aws:iam::111122223333:user/alice"));
        assert!(d.principal_exists("arn:aws:iam::111122223333:user/team/alice"));
        assert!(!d.principal_exists("arn:aws:iam::111122223333:user/bob"));
        assert!(d.principal_exists("arn:aws:iam::111122223333:role/app"));
        assert!(d.principal_exists("arn:aws:sts::111122223333:assumed-role/app/session-1"));
        assert!(!d.principal_exists("arn:aws:sts::111122223333:assumed-role/other/s"));
        assert!(!d.principal_exists("arn:aws:iam::444455556666:root"));
        assert!(!d.principal_exists("not-an-arn"));
    }
}
