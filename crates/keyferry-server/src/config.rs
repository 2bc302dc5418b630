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
use keyferry_core::{Config, Kms};
use keyferry_crypto::seal::RootKey;
use keyferry_sigv4::SecretKey;
use zeroize::Zeroizing;

use crate::AppState;
use crate::identity::Identities;

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
    pub account_id: String,
    /// `postgres://…` or a SQLite path; default `<data_dir>/keyferry.db`.
    pub database_url: Option<RedactedUrl>,
    /// Where the 32-byte root key lives; default `<data_dir>/root.key` (created with mode 0600).
    pub root_key_file: Option<PathBuf>,
    /// `None`: use the development credential (loopback only), unless an identities file
    /// is given.
    pub credential: Option<Credential>,
    /// The identities file (`--identities`, `KEYFERRY_IDENTITIES`): accounts, users, roles.
    pub identities_file: Option<PathBuf>,
    /// The audit trail (`--audit-log`, `KEYFERRY_AUDIT_LOG`): a file (JSON lines, appended,
    /// created 0600) or `-` for stdout; `None`: no trail.
    pub audit_log: Option<String>,
    pub cache_ttl: Duration,
    pub wrapping_pool_size: usize,
    pub sweep_interval: Duration,
}

impl ServeConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServeConfig {
            listen,
            data_dir,
            region: "us-east-1".into(),
            account_id: "111122223333".into(),
            database_url: None,
            root_key_file: None,
            credential: None,
            identities_file: None,
            audit_log: None,
            cache_ttl: Duration::from_secs(5),
            wrapping_pool_size: 4,
            sweep_interval: Duration::from_secs(1),
        }
    }
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
    pub listen: SocketAddr,
    pub state: Arc<AppState>,
    dev_credential: bool,
    database: String,
}

impl Running {
    pub fn announce(&self, addr: SocketAddr) {
        println!(
            "keyferry: listening on http://{addr} (region {}, account {})",
            self.state.kms.config().region,
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
    let mut identities = Identities::new();
    if let Some(path) = &cfg.identities_file {
        identities.load_file(path)?;
    }
    let (credential, dev) = match cfg.credential.clone() {
        Some(c) => (Some(c), false),
        None if !identities.is_empty() => (None, false),
        None => {
            if !cfg.listen.ip().is_loopback() {
                bail!(
                    "refusing to listen on {} without configured credentials: set KEYFERRY_ACCESS_KEY_ID and KEYFERRY_SECRET_ACCESS_KEY",
                    cfg.listen
                );
            }
            (
                Some(Credential {
                    access_key_id: DEV_ACCESS_KEY_ID.into(),
                    secret_access_key: SecretKey::new(DEV_SECRET_ACCESS_KEY),
                }),
                true,
            )
        }
    };
    create_private_dir(&cfg.data_dir)?;
    let root_path = cfg
        .root_key_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("root.key"));
    let root = load_or_create_root_key(&root_path)?;
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
    let store = keyferry_store::open_store(&database)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open storage: {e}"))?;
    let kms = Kms::new(
        Config {
            account_id: cfg.account_id.clone(),
            region: cfg.region.clone(),
            cache_ttl: cfg.cache_ttl,
            wrapping_pool_size: cfg.wrapping_pool_size,
            directory: identities.directory().clone(),
        },
        store,
        &root,
        Arc::new(SystemClock),
    );
    kms.start_background(cfg.sweep_interval);
    kms.start_usage_tracking().await?;
    let mut state = AppState::new(kms, identities, &root);
    if let Some(target) = &cfg.audit_log {
        state.audit = crate::audit::Audit::open(target, &cfg.region, &cfg.account_id)?;
    }
    let state = Arc::new(state);
    Ok(Running {
        listen: cfg.listen,
        state,
        dev_credential: dev,
        database: format!("{:?}", RedactedUrl(database)),
    })
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

/// Read the root key (32 raw bytes), or create it with mode 0600 if the file does not exist.
/// `KEYFERRY_ROOT_KEY` (64 hex digits) takes precedence over the file.
fn load_or_create_root_key(path: &Path) -> anyhow::Result<RootKey> {
    if let Ok(hexkey) = std::env::var("KEYFERRY_ROOT_KEY") {
        let bytes = Zeroizing::new(
            hex::decode(hexkey.trim()).context("KEYFERRY_ROOT_KEY must be 64 hex digits")?,
        );
        return RootKey::from_bytes(&bytes)
            .map_err(|_| anyhow::anyhow!("KEYFERRY_ROOT_KEY must be 64 hex digits"));
    }
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            RootKey::from_bytes(&bytes).map_err(|_| {
                anyhow::anyhow!(
                    "root key file {} must hold exactly 32 bytes",
                    path.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
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
        Err(e) => Err(e).with_context(|| format!("cannot read root key file {}", path.display())),
    }
}
