//! Server configuration: flags and environment become a validated `ServeConfig`; `start`
//! turns it into running state (data directory, root key, store, service).

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use keyferry_core::clock::SystemClock;
use keyferry_core::reseal::RootKeyCheck;
use keyferry_core::{Config, Kms};
use keyferry_crypto::seal::RootKey;
use keyferry_sigv4::SecretKey;
use zeroize::Zeroizing;

use crate::AppState;
use crate::identity::Identities;
use crate::limits::Limits;
use crate::tls::TlsPaths;

/// The development credential used when none is configured (loopback only).
pub const DEV_ACCESS_KEY_ID: &str = "AKIAKEYFERRYDEV00001";
pub const DEV_SECRET_ACCESS_KEY: &str = "keyferry-development-secret-not-for-production";

/// An access key and its secret (`SecretKey`: zeroized, `Debug` redacted).
#[derive(Clone, Debug)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: SecretKey,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub region: String,
    /// Every Region served (`--regions`); empty means just `region`.
    pub regions: Vec<String>,
    pub account_id: String,
    /// `postgres://…` or a SQLite path; default `<data_dir>/keyferry.db`.
    pub database_url: Option<RedactedUrl>,
    /// Where the 32-byte root key lives; default `<data_dir>/root.key` (created with mode 0600).
    pub root_key_file: Option<PathBuf>,
    /// `--root-key-pkcs11`: the root key is sealed by this non-extractable AES key in a PKCS#11
    /// token (`hsm_root.rs`); exclusive with `root_key_file` and `KEYFERRY_ROOT_KEY`.
    pub root_key_pkcs11: Option<crate::hsm_root::RootKeyUri>,
    /// `None`: use the development credential (loopback only), unless an identities file
    /// is given.
    pub credential: Option<Credential>,
    /// The identities file (`--identities`, `KEYFERRY_IDENTITIES`): accounts, users, roles.
    pub identities_file: Option<PathBuf>,
    /// The audit trail (`--audit-log`, `KEYFERRY_AUDIT_LOG`): a file (JSON lines, appended,
    /// created 0600) or `-` for stdout; `None`: no trail.
    pub audit_log: Option<String>,
    /// Request quotas (`--request-quotas`, `KEYFERRY_REQUEST_QUOTAS`): `aws` or a TOML file of
    /// rates (`quotas.rs`); `None`: no throttling.
    pub request_quotas: Option<String>,
    pub cache_ttl: Duration,
    /// The wrapping-key pool's depth per spec without demand (`--wrapping-pool-size`).
    pub wrapping_pool_size: usize,
    /// The depth demand may grow it to (`--wrapping-pool-max`).
    pub wrapping_pool_max: usize,
    /// Idle time after which a grown depth halves (`--wrapping-pool-decay-secs`).
    pub wrapping_pool_decay: Duration,
    /// Tokens one wrapping key may serve for one caller (`--wrapping-key-max-tokens`).
    pub wrapping_key_max_tokens: u32,
    pub sweep_interval: Duration,
    /// TLS certificate and key (and client CA for mTLS); `None`: plain HTTP.
    pub tls: Option<TlsPaths>,
    /// Allow plain HTTP on a non-loopback address.
    pub insecure_http: bool,
    /// Timeouts and the connection cap of the KMS listener.
    pub limits: Limits,
    /// How long SIGTERM/SIGINT waits for in-flight requests before exiting.
    pub shutdown_grace: Duration,
    /// Where `/healthz`, `/readyz` and `/metrics` are served (plain HTTP); `None`: nowhere.
    pub admin_listen: Option<SocketAddr>,
    /// Storage timeouts (fail fast with DependencyTimeoutException when the database does not answer).
    pub store_options: keyferry_store::StoreOptions,
}

impl ServeConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServeConfig {
            listen,
            data_dir,
            region: "us-east-1".into(),
            regions: Vec::new(),
            account_id: "111122223333".into(),
            database_url: None,
            root_key_file: None,
            root_key_pkcs11: None,
            credential: None,
            identities_file: None,
            audit_log: None,
            request_quotas: None,
            cache_ttl: Duration::from_secs(5),
            wrapping_pool_size: 4,
            wrapping_pool_max: keyferry_core::pool::PoolConfig::default().max,
            wrapping_pool_decay: keyferry_core::pool::PoolConfig::default().decay,
            wrapping_key_max_tokens: keyferry_core::pool::PoolConfig::default().max_tokens,
            sweep_interval: Duration::from_secs(1),
            tls: None,
            insecure_http: false,
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(5),
            admin_listen: None,
            store_options: keyferry_store::StoreOptions::default(),
        }
    }

    /// Checks that need no file system and no network: run before anything is created.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.credential.is_none()
            && self.identities_file.is_none()
            && !self.listen.ip().is_loopback()
        {
            bail!(
                "refusing to listen on {} without configured credentials: set KEYFERRY_ACCESS_KEY_ID and KEYFERRY_SECRET_ACCESS_KEY (or their _FILE variants), or --identities FILE",
                self.listen
            );
        }
        if self.tls.is_none() && !self.insecure_http && !self.listen.ip().is_loopback() {
            bail!(
                "refusing to listen on {} without TLS: GenerateDataKey and Decrypt answer with plaintext keys. Pass --tls-cert and --tls-key, or --insecure-http if a TLS proxy in front of Keyferry terminates TLS",
                self.listen
            );
        }
        for r in &self.regions {
            if !valid_region_name(r) {
                bail!("--regions: {r:?} is not a Region name (like us-east-1 or eu-west-1)");
            }
        }
        if !valid_region_name(&self.region) {
            bail!(
                "--region: {:?} is not a Region name (like us-east-1)",
                self.region
            );
        }
        if self.root_key_pkcs11.is_some() && self.root_key_file.is_some() {
            bail!(
                "--root-key-pkcs11 and --root-key-file (KEYFERRY_ROOT_KEY_FILE) name two root keys: give only one"
            );
        }
        if self.limits.max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        Ok(())
    }
}

/// The Regions served: `regions` with `region` first (the default for messages, the audit
/// trail's Region of unauthenticated requests), each once.
impl ServeConfig {
    pub fn served_regions(&self) -> Vec<String> {
        let mut out = vec![self.region.clone()];
        for r in &self.regions {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }
}

/// AWS Region names: lowercase words and a number joined by `-` (`us-east-1`, `us-gov-west-1`).
fn valid_region_name(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    (3..=4).contains(&parts.len())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A database URL whose `Debug` hides any password.
#[derive(Clone)]
pub struct RedactedUrl(pub String);

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                write!(f, "{}://<redacted>{}", &self.0[..s], &self.0[at..])
            }
            _ => write!(f, "{}", self.0),
        }
    }
}

pub(crate) struct Running {
    pub state: Arc<AppState>,
    /// The root key was checked against the check value stored in the database (`None`: no
    /// check value exists in this version).
    pub root_key_checked: Option<bool>,
    dev_credential: bool,
    database: String,
    /// Held for the life of the process: a second server on this data directory is refused.
    _lock: std::fs::File,
}

impl Running {
    pub fn announce(&self, addr: SocketAddr, tls: bool) {
        let scheme = if tls { "https" } else { "http" };
        println!(
            "keyferry: listening on {scheme}://{addr} (region {}, account {})",
            self.state.kms.config().regions.join(","),
            self.state.kms.config().account_id
        );
        println!("keyferry: storage {}", self.database);
        if self.dev_credential {
            println!(
                "keyferry: no KEYFERRY_ACCESS_KEY_ID/KEYFERRY_SECRET_ACCESS_KEY set; development credential (loopback only):"
            );
            println!("  AWS_ACCESS_KEY_ID={DEV_ACCESS_KEY_ID}");
            println!("  AWS_SECRET_ACCESS_KEY={DEV_SECRET_ACCESS_KEY}");
        }
        let _ = std::io::stdout().flush();
    }
}

pub(crate) async fn start(cfg: ServeConfig) -> anyhow::Result<Running> {
    cfg.validate()?;
    let quotas = match &cfg.request_quotas {
        Some(spec) => Some(crate::quotas::QuotaTable::load(spec)?),
        None => None,
    };
    let mut identities = Identities::new();
    if let Some(path) = &cfg.identities_file {
        identities.load_file(path)?;
    }
    let (credential, dev) = match cfg.credential.clone() {
        Some(c) => (Some(c), false),
        None if !identities.is_empty() => (None, false),
        None => (
            Some(Credential {
                access_key_id: DEV_ACCESS_KEY_ID.into(),
                secret_access_key: SecretKey::new(DEV_SECRET_ACCESS_KEY),
            }),
            true,
        ),
    };
    create_private_dir(&cfg.data_dir)?;
    let lock = lock_data_dir(&cfg.data_dir)?;
    let root_path = cfg
        .root_key_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("root.key"));
    if let Some(c) = credential {
        identities.add_root(&cfg.account_id, &c.access_key_id, c.secret_access_key)?;
    }
    let database = match &cfg.database_url {
        Some(u) => u.0.clone(),
        None => cfg
            .data_dir
            .join("keyferry.db")
            .to_string_lossy()
            .into_owned(),
    };
    let shown_db = format!("{:?}", RedactedUrl(database.clone()));
    let store = keyferry_store::open_store_with(&database, &cfg.store_options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open storage: {e}"))?;
    let (root, root_source) = if let Some(uri) = &cfg.root_key_pkcs11 {
        if std::env::var_os("KEYFERRY_ROOT_KEY").is_some() {
            bail!(
                "--root-key-pkcs11 and KEYFERRY_ROOT_KEY name two root keys: unset KEYFERRY_ROOT_KEY"
            );
        }
        let sealed = cfg.data_dir.join(crate::hsm_root::SEALED_FILE);
        let in_use = !sealed.exists() && database_in_use(store.as_ref(), &cfg, &shown_db).await?;
        // No await while the token session is open (it is not Send).
        let hsm = crate::hsm_root::HsmRoot::open(uri)?;
        match crate::hsm_root::load(&hsm, &cfg.data_dir)? {
            Some(k) => (k, format!("{} (HSM key {})", sealed.display(), hsm.shown)),
            None if in_use => bail!(
                "{} does not exist, but the database {shown_db} already has a root key (it holds its check value or keys sealed under it). \
                 Restore {} from your backup of this data directory (it opens only with the HSM key {}). \
                 Keyferry does not create a new root key for a database that has one.",
                sealed.display(),
                crate::hsm_root::SEALED_FILE,
                hsm.shown
            ),
            None => (
                crate::hsm_root::create(&hsm, &cfg.data_dir)?,
                format!("{} (new, HSM key {})", sealed.display(), hsm.shown),
            ),
        }
    } else {
        match load_root_key("KEYFERRY_ROOT_KEY", &root_path)? {
            Some(r) => r,
            None => {
                // Never a new root key for a database that already has one: its material would
                // become unreadable and new material would be sealed under a second root.
                if database_in_use(store.as_ref(), &cfg, &shown_db).await? {
                    bail!(
                        "the root key file {} does not exist, but the database {shown_db} already has a root key (it holds its check value or keys sealed under it). \
                     Restore that root key (from your backup of {}), or point --root-key-file / KEYFERRY_ROOT_KEY at it. \
                     Keyferry does not create a new root key for a database that has one.",
                        root_path.display(),
                        root_path.display()
                    );
                }
                (
                    create_root_key(&root_path)?,
                    format!("{} (new)", root_path.display()),
                )
            }
        }
    };
    let kms = Kms::new(
        Config {
            account_id: cfg.account_id.clone(),
            region: cfg.region.clone(),
            regions: cfg.served_regions(),
            settle: Config::default().settle,
            cache_ttl: cfg.cache_ttl,
            wrapping_pool_size: cfg.wrapping_pool_size,
            wrapping_pool_max: cfg.wrapping_pool_max,
            wrapping_pool_decay: cfg.wrapping_pool_decay,
            wrapping_key_max_tokens: cfg.wrapping_key_max_tokens,
            directory: identities.directory().clone(),
        },
        store,
        &root,
        Arc::new(SystemClock),
    );
    let check = kms.bind_root_key(&root).await.map_err(|e| {
        anyhow::anyhow!("cannot check the root key against storage {shown_db}: {e}")
    })?;
    if let RootKeyCheck::Mismatch { key_id } = &check {
        let what = match key_id {
            Some(k) => format!("the key material of key {k}"),
            None => "the root key check value".to_owned(),
        };
        bail!(
            "the root key from {root_source} does not open {what} in {shown_db}: \
             it is not the root key this database was sealed with. Start with the database's own root key \
             (restore it from backup, or use the same --root-key-file / KEYFERRY_ROOT_KEY as the other nodes of this database; \
             after `keyferry admin rotate-root-key`, that is the new root key)."
        );
    }
    if check == RootKeyCheck::RotationTarget {
        bail!(
            "the root key from {root_source} is the new root key of a rotation still under way on {shown_db}: \
             until `keyferry admin rotate-root-key` has finished, start servers with the current root key \
             (they take over the new one by themselves)."
        );
    }
    tracing::info!(root_key = %root_source, check = ?check, "root key checked against the database");
    kms.start_background(cfg.sweep_interval);
    kms.start_usage_tracking().await?;
    let mut state = AppState::new(kms, identities, &root);
    if let Some(target) = &cfg.audit_log {
        state.audit = crate::audit::Audit::open(target, &cfg.region, &cfg.account_id)?;
    }
    state.quotas = quotas.map(crate::quotas::Quotas::new);
    let state = Arc::new(state);
    Ok(Running {
        state,
        root_key_checked: Some(true),
        dev_credential: dev,
        database: shown_db,
        _lock: lock,
    })
}

/// The database holds a root key already (its check value or keys sealed under it) in any
/// served Region.
async fn database_in_use(
    store: &dyn keyferry_core::store::Store,
    cfg: &ServeConfig,
    shown_db: &str,
) -> anyhow::Result<bool> {
    let mut in_use = false;
    for region in cfg.served_regions() {
        in_use |= keyferry_core::reseal::database_in_use(store, &cfg.account_id, &region)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read storage {shown_db}: {e}"))?;
    }
    Ok(in_use)
}

/// Take `<data>/keyferry.lock` for the life of the process (an advisory lock the kernel drops
/// when the process exits, however it exits).
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("keyferry.lock");
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another keyferry server is already using the data directory {} (it holds {}); stop it first, or give this server its own --data directory",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Read a root key: the variable `env` (64 hex digits, e.g. `KEYFERRY_ROOT_KEY`), else the
/// file (32 raw bytes). `None`: neither is there. The second value says where the key came
/// from (for messages).
pub(crate) fn load_root_key(env: &str, path: &Path) -> anyhow::Result<Option<(RootKey, String)>> {
    if let Ok(hexkey) = std::env::var(env) {
        let hexkey = Zeroizing::new(hexkey);
        let bytes = Zeroizing::new(
            hex::decode(hexkey.trim()).with_context(|| format!("{env} must be 64 hex digits"))?,
        );
        let key = RootKey::from_bytes(&bytes)
            .map_err(|_| anyhow::anyhow!("{env} must be 64 hex digits"))?;
        return Ok(Some((key, env.to_owned())));
    }
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let key = RootKey::from_bytes(&bytes).map_err(|_| {
                anyhow::anyhow!(
                    "root key file {} must hold exactly 32 bytes",
                    path.display()
                )
            })?;
            Ok(Some((key, path.display().to_string())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read root key file {}", path.display())),
    }
}

/// Create a new root key file with mode 0600 (never overwriting one).
pub(crate) fn create_root_key(path: &Path) -> anyhow::Result<RootKey> {
    let fresh = RootKey::generate();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create root key file {}", path.display()))?;
    f.write_all(&fresh)?;
    f.sync_all()?;
    RootKey::from_bytes(&fresh).map_err(|_| anyhow::anyhow!("root key generation failed"))
}
