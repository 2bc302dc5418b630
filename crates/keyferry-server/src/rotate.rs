//! `keyferry admin rotate-root-key`: re-seal all material of a database under a new root key
//! while its servers keep running (the steps are in `keyferry_core::reseal`). This module only
//! finds the keys and the store, as `serve` does.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
pub use keyferry_core::reseal::RotateOutcome;
use keyferry_core::reseal::{RotateOptions, rotate_root_key};

use keyferry_crypto::seal::RootKey;

use crate::config::{RedactedUrl, create_root_key, load_root_key};

/// Where the database and both root keys are.
#[derive(Debug, Clone)]
pub struct RotateConfig {
    /// The servers' data directory (SQLite database and default root key file).
    pub data_dir: PathBuf,
    /// `postgres://…` or a SQLite path; default `<data_dir>/keyferry.db`.
    pub database_url: Option<RedactedUrl>,
    /// The current root key file (default `<data_dir>/root.key`); `KEYFERRY_ROOT_KEY` overrides.
    pub root_key_file: Option<PathBuf>,
    /// The new root key file: read if it exists, else created (32 random bytes, mode 0600).
    /// `KEYFERRY_NEW_ROOT_KEY` (64 hex digits) overrides it.
    pub new_root_key_file: PathBuf,
    /// `--root-key-pkcs11`: the current root key is `<data_dir>/root.key.hsm` opened by this HSM
    /// key, and `new_root_key_file` is sealed by it too (created sealed if missing).
    pub root_key_pkcs11: Option<crate::hsm_root::RootKeyUri>,
    pub propagation_wait: Duration,
    pub limit: Option<usize>,
}

pub async fn run(cfg: RotateConfig) -> anyhow::Result<RotateOutcome> {
    let (old, old_source, new) = match &cfg.root_key_pkcs11 {
        Some(uri) => keys_in_hsm(&cfg, uri)?,
        None => keys_in_files(&cfg)?,
    };
    let database = match &cfg.database_url {
        Some(u) => u.0.clone(),
        None => cfg
            .data_dir
            .join("keyferry.db")
            .to_string_lossy()
            .into_owned(),
    };
    let shown_db = format!("{:?}", RedactedUrl(database.clone()));
    if cfg.database_url.is_none() && !cfg.data_dir.join("keyferry.db").exists() {
        bail!("there is no database {shown_db}: pass --data or --database-url of the servers");
    }
    let store =
        keyferry_store::open_store_with(&database, &keyferry_store::StoreOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("cannot open storage: {e}"))?;
    let opts = RotateOptions {
        propagation_wait: cfg.propagation_wait,
        limit: cfg.limit,
    };
    let mut progress = |line: &str| {
        println!("keyferry: {line}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    };
    let outcome = rotate_root_key(store.as_ref(), &old, &new, &opts, &mut progress)
        .await
        .map_err(|e| anyhow::anyhow!("{shown_db}, current root key from {old_source}: {e}"))?;
    match &outcome {
        RotateOutcome::Done { .. } if cfg.root_key_pkcs11.is_some() => println!(
            "keyferry: rotation finished. Replace root.key.hsm in every server's data directory with {} before its next start; the old root.key.hsm no longer opens this database.",
            cfg.new_root_key_file.display()
        ),
        RotateOutcome::Done { .. } => println!(
            "keyferry: rotation finished. Point every server's --root-key-file (or KEYFERRY_ROOT_KEY) at the new root key before its next start; the old root key no longer opens this database."
        ),
        RotateOutcome::AlreadyDone => {
            println!("keyferry: the new root key already is this database's root key")
        }
        RotateOutcome::Stopped { .. } => println!(
            "keyferry: rotation under way (--limit reached): run the same command again to continue"
        ),
    }
    Ok(outcome)
}

/// The current and new root keys from files (or `KEYFERRY_ROOT_KEY` / `KEYFERRY_NEW_ROOT_KEY`).
fn keys_in_files(cfg: &RotateConfig) -> anyhow::Result<(RootKey, String, RootKey)> {
    let root_path = cfg
        .root_key_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("root.key"));
    let Some((old, old_source)) = load_root_key("KEYFERRY_ROOT_KEY", &root_path)? else {
        bail!(
            "the current root key file {} does not exist: give the root key the servers run with (--root-key-file or KEYFERRY_ROOT_KEY)",
            root_path.display()
        );
    };
    let new = match load_root_key("KEYFERRY_NEW_ROOT_KEY", &cfg.new_root_key_file)? {
        Some((k, src)) => {
            println!("keyferry: new root key from {src}");
            k
        }
        None => {
            let k = create_root_key(&cfg.new_root_key_file)?;
            println!(
                "keyferry: new root key created in {} (mode 0600): keep it, it is needed to resume and to start the servers afterwards",
                cfg.new_root_key_file.display()
            );
            k
        }
    };
    Ok((old, old_source, new))
}

/// The current root key from `<data>/root.key.hsm` and the new one from `new_root_key_file`
/// (created if missing), both sealed by the HSM key.
fn keys_in_hsm(
    cfg: &RotateConfig,
    uri: &crate::hsm_root::RootKeyUri,
) -> anyhow::Result<(RootKey, String, RootKey)> {
    use crate::hsm_root::{HsmRoot, SEALED_FILE, create_at, load_bytes};
    if cfg.root_key_file.is_some()
        || std::env::var_os("KEYFERRY_ROOT_KEY").is_some()
        || std::env::var_os("KEYFERRY_NEW_ROOT_KEY").is_some()
    {
        bail!(
            "--root-key-pkcs11 and --root-key-file / KEYFERRY_ROOT_KEY / KEYFERRY_NEW_ROOT_KEY name two root keys: with an HSM, both root keys are files sealed by the HSM key"
        );
    }
    let hsm = HsmRoot::open(uri)?;
    let current = cfg.data_dir.join(SEALED_FILE);
    let old_bytes = load_bytes(&hsm, &current)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} does not exist: give the --data directory of a server started with --root-key-pkcs11",
            current.display()
        )
    })?;
    let old = RootKey::from_bytes(&old_bytes)
        .map_err(|_| anyhow::anyhow!("{} holds no 32-byte root key", current.display()))?;
    let new = match load_bytes(&hsm, &cfg.new_root_key_file)? {
        Some(b) => {
            println!(
                "keyferry: new root key from {} (sealed by the HSM key)",
                cfg.new_root_key_file.display()
            );
            RootKey::from_bytes(&b).map_err(|_| {
                anyhow::anyhow!(
                    "{} holds no 32-byte root key",
                    cfg.new_root_key_file.display()
                )
            })?
        }
        None => {
            let k = create_at(&hsm, &cfg.new_root_key_file)?;
            println!(
                "keyferry: new root key created in {} (mode 0600), sealed by the HSM key {}: keep it, it is needed to resume and to start the servers afterwards",
                cfg.new_root_key_file.display(),
                hsm.shown
            );
            k
        }
    };
    Ok((
        old,
        format!("{} (HSM key {})", current.display(), hsm.shown),
        new,
    ))
}
