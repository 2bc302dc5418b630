//! Identities: the accounts, IAM users and roles, their access keys and policies, loaded from
//! the identities file (`--identities FILE`, TOML) and/or the one-account shortcut
//! (`KEYFERRY_ACCESS_KEY_ID` + `KEYFERRY_SECRET_ACCESS_KEY` as the root of `KEYFERRY_ACCOUNT_ID`).
//! Authentication (`lib.rs`) maps an access key id to its secret and its `Principal` here.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use keyferry_core::context::AccountEntry;
use keyferry_core::{Directory, Principal, PrincipalKind};
use keyferry_policy::{Policy, PolicyKind};
use keyferry_sigv4::SecretKey;
use serde::Deserialize;

/// The identities file, as users write it (every field is documented in the README).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    accounts: Vec<AccountFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    id: String,
    root: Option<KeyFile>,
    #[serde(default)]
    users: Vec<UserFile>,
    #[serde(default)]
    roles: Vec<RoleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    access_key_id: String,
    secret_access_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    name: String,
    #[serde(default)]
    access_keys: Vec<KeyFile>,
    #[serde(default)]
    policies: Vec<String>,
    service: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    name: String,
    trust_policy: Option<String>,
    #[serde(default)]
    policies: Vec<String>,
    service: Option<String>,
    /// Longest session AssumeRole may grant (seconds, 3600–43200; default 3600).
    max_session_duration: Option<i64>,
}

/// A role that can be assumed.
pub struct Role {
    pub account: String,
    pub name: String,
    pub arn: String,
    /// `AROA…`: the role's unique id (stable: derived from account and name).
    pub role_id: String,
    pub trust_policy: Option<Policy>,
    pub policies: Arc<Vec<Policy>>,
    pub service: Option<String>,
    pub max_session_seconds: i64,
}

/// One long-term access key and whom it belongs to.
pub struct AccessKey {
    pub secret: SecretKey,
    pub principal: Arc<Principal>,
}

/// Every identity the server knows.
#[derive(Default)]
pub struct Identities {
    keys: HashMap<String, AccessKey>,
    roles: HashMap<String, Arc<Role>>,
    directory: Directory,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("access_keys", &self.keys.len())
            .field("roles", &self.roles.len())
            .field("accounts", &self.directory.accounts.len())
            .finish()
    }
}

impl Identities {
    /// No identities at all (add some with `add_root` or `load_file`).
    pub fn new() -> Identities {
        Identities::default()
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn access_key(&self, access_key_id: &str) -> Option<&AccessKey> {
        self.keys.get(access_key_id)
    }

    pub fn role(&self, role_arn: &str) -> Option<&Arc<Role>> {
        self.roles.get(role_arn)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The root user of `account` with this access key (the one-account shortcut).
    pub fn add_root(
        &mut self,
        account: &str,
        access_key_id: &str,
        secret: SecretKey,
    ) -> anyhow::Result<()> {
        check_account_id(account)?;
        self.directory
            .accounts
            .entry(account.to_string())
            .or_default();
        self.insert_key(
            access_key_id,
            secret,
            Principal::root(account, access_key_id),
        )
    }

    fn insert_key(
        &mut self,
        access_key_id: &str,
        secret: SecretKey,
        principal: Principal,
    ) -> anyhow::Result<()> {
        check_access_key_id(access_key_id)?;
        if self.keys.contains_key(access_key_id) {
            bail!("access key id {access_key_id} appears more than once");
        }
        self.keys.insert(
            access_key_id.to_string(),
            AccessKey {
                secret,
                principal: Arc::new(principal),
            },
        );
        Ok(())
    }

    /// Read an identities file. Refuses a file that others may read (it holds secrets).
    pub fn load_file(&mut self, path: &Path) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path)
                .with_context(|| format!("cannot read identities file {}", path.display()))?;
            if meta.permissions().mode() & 0o077 != 0 {
                bail!(
                    "identities file {} is readable by other users; it holds secret access keys: run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
        }
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read identities file {}", path.display()))?,
        );
        self.load_str(&text)
            .with_context(|| format!("identities file {}", path.display()))
    }

    /// Parse identities from TOML text (see the README for the format).
    pub fn load_str(&mut self, text: &str) -> anyhow::Result<()> {
        let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        for acct in file.accounts {
            check_account_id(&acct.id)?;
            let entry = self.directory.accounts.entry(acct.id.clone()).or_default();
            add_names(entry, &acct)?;
            if let Some(root) = acct.root {
                self.insert_key(
                    &root.access_key_id,
                    SecretKey::new(root.secret_access_key),
                    Principal::root(&acct.id, &root.access_key_id),
                )?;
            }
            for user in acct.users {
                let policies = Arc::new(parse_identity_policies(
                    &user.policies,
                    &format!("user {}", user.name),
                )?);
                let service = check_service(user.service)?;
                for key in user.access_keys {
                    let principal = Principal {
                        account: acct.id.clone(),
                        kind: PrincipalKind::User {
                            name: user.name.clone(),
                        },
                        arn: format!("arn:aws:iam::{}:user/{}", acct.id, user.name),
                        user_id: unique_id("AIDA", &acct.id, &user.name),
                        access_key_id: key.access_key_id.clone(),
                        identity_policies: policies.clone(),
                        session_policy: None,
                        service: service.clone(),
                    };
                    self.insert_key(
                        &key.access_key_id,
                        SecretKey::new(key.secret_access_key),
                        principal,
                    )?;
                }
            }
            for role in acct.roles {
                let what = format!("role {}", role.name);
                let trust_policy = match &role.trust_policy {
                    Some(t) => Some(
                        Policy::parse(t, PolicyKind::Trust)
                            .map_err(|e| anyhow::anyhow!("{what}: trust_policy: {}", e.message))?,
                    ),
                    None => None,
                };
                let max = role.max_session_duration.unwrap_or(3600);
                if !(3600..=43200).contains(&max) {
                    bail!("{what}: max_session_duration must be between 3600 and 43200 seconds");
                }
                let arn = format!("arn:aws:iam::{}:role/{}", acct.id, role.name);
                self.roles.insert(
                    arn.clone(),
                    Arc::new(Role {
                        account: acct.id.clone(),
                        role_id: unique_id("AROA", &acct.id, &role.name),
                        name: role.name.clone(),
                        arn,
                        trust_policy,
                        policies: Arc::new(parse_identity_policies(&role.policies, &what)?),
                        service: check_service(role.service)?,
                        max_session_seconds: max,
                    }),
                );
            }
        }
        Ok(())
    }
}

fn add_names(entry: &mut AccountEntry, acct: &AccountFile) -> anyhow::Result<()> {
    let mut seen = BTreeMap::new();
    for u in &acct.users {
        check_name(&u.name, "user")?;
        if seen.insert(("user", u.name.as_str()), ()).is_some() {
            bail!("account {}: user {} is declared twice", acct.id, u.name);
        }
        entry.users.insert(u.name.clone());
    }
    for r in &acct.roles {
        check_name(&r.name, "role")?;
        if seen.insert(("role", r.name.as_str()), ()).is_some() {
            bail!("account {}: role {} is declared twice", acct.id, r.name);
        }
        entry.roles.insert(r.name.clone());
    }
    Ok(())
}

fn parse_identity_policies(texts: &[String], what: &str) -> anyhow::Result<Vec<Policy>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Policy::parse(t, PolicyKind::Identity)
                .map_err(|e| anyhow::anyhow!("{what}: policies[{i}]: {}", e.message))
        })
        .collect()
}

fn check_account_id(id: &str) -> anyhow::Result<()> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        bail!("account id {id:?} must be 12 digits")
    }
}

fn check_access_key_id(id: &str) -> anyhow::Result<()> {
    if (3..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        bail!("access key id {id:?} must be 3 to 128 letters and digits")
    }
}

/// IAM user and role names: 1–64 characters of `[\w+=,.@-]`.
fn check_name(name: &str, what: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        bail!("{what} name {name:?} must be 1 to 64 characters of letters, digits and _+=,.@-")
    }
}

fn check_service(service: Option<String>) -> anyhow::Result<Option<String>> {
    match service {
        Some(s) if s.ends_with(".amazonaws.com") && s.len() > ".amazonaws.com".len() => Ok(Some(s)),
        Some(s) => {
            bail!("service {s:?} must be an AWS service principal such as ec2.amazonaws.com")
        }
        None => Ok(None),
    }
}

/// A stable IAM-style unique id (`AIDA…`, `AROA…`): the prefix and 17 characters derived from
/// the account and name, so that ids survive restarts.
pub(crate) fn unique_id(prefix: &str, account: &str, name: &str) -> String {
    let digest = keyferry_crypto::sha256(format!("{account}/{prefix}/{name}").as_bytes());
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::from(prefix);
    for b in digest.iter().take(17) {
        out.push(ALPHABET[(*b as usize) % ALPHABET.len()] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[accounts]]
id = "111122223333"
root = { access_key_id = "AKIAROOT111122223333", secret_access_key = "root-secret" }

[[accounts.users]]
name = "alice"
access_keys = [{ access_key_id = "AKIAALICE00000000001", secret_access_key = "alice-secret" }]
policies = ['''{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}''']

[[accounts.roles]]
name = "app"
trust_policy = '''{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}]}'''
service = "ec2.amazonaws.com"

[[accounts]]
id = "444455556666"
root = { access_key_id = "AKIAROOT444455556666", secret_access_key = "other-secret" }
"#;

    #[test]
    fn loads_accounts_users_roles() {
        let mut ids = Identities::new();
        ids.load_str(SAMPLE).expect("loads");
        let alice = ids.access_key("AKIAALICE00000000001").expect("alice");
        assert_eq!(alice.principal.arn, "arn:aws:iam::111122223333:user/alice");
        assert_eq!(alice.principal.identity_policies.len(), 1);
        assert!(alice.principal.user_id.starts_with("AIDA"));
        let root = ids.access_key("AKIAROOT444455556666").expect("root");
        assert!(root.principal.is_root());
        assert_eq!(root.principal.arn, "arn:aws:iam::444455556666:root");
        let role = ids
            .role("arn:aws:iam::111122223333:role/app")
            .expect("role");
        assert_eq!(role.service.as_deref(), Some("ec2.amazonaws.com"));
        assert!(
            ids.directory()
                .principal_exists("arn:aws:iam::111122223333:role/app")
        );
        assert!(ids.directory().principal_exists("444455556666"));
    }

    #[test]
    fn refuses_mistakes() {
        let cases = [
            ("[[accounts]]\nid = \"123\"\n", "12 digits"),
            (
                "[[accounts]]\nid = \"111122223333\"\nbogus = 1\n",
                "unknown field",
            ),
            (
                "[[accounts]]\nid = \"111122223333\"\n[[accounts.users]]\nname = \"a\"\npolicies = ['not json']\n",
                "policies[0]",
            ),
            (
                "[[accounts]]\nid = \"111122223333\"\nroot = { access_key_id = \"AKIADUPLICATE0000001\", secret_access_key = \"x\" }\n[[accounts.users]]\nname = \"a\"\naccess_keys = [{ access_key_id = \"AKIADUPLICATE0000001\", secret_access_key = \"y\" }]\n",
                "more than once",
            ),
            (
                "[[accounts]]\nid = \"111122223333\"\n[[accounts.roles]]\nname = \"r\"\nservice = \"ec2\"\n",
                "service principal",
            ),
        ];
        for (text, want) in cases {
            let err = Identities::new().load_str(text).expect_err(text);
            assert!(format!("{err:#}").contains(want), "{text}: {err:#}");
        }
    }

    #[test]
    fn refuses_a_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("identities.toml");
        std::fs::write(&path, SAMPLE).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Identities::new()
            .load_file(&path)
            .expect_err("world-readable");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Identities::new()
            .load_file(&path)
            .expect("private file loads");
    }

    #[test]
    fn unique_ids_are_stable() {
        assert_eq!(
            unique_id("AIDA", "111122223333", "alice"),
            unique_id("AIDA", "111122223333", "alice")
        );
        assert_ne!(
            unique_id("AIDA", "111122223333", "alice"),
            unique_id("AIDA", "111122223333", "bob")
        );
        assert_eq!(unique_id("AROA", "1", "x").len(), 21);
    }
}
