//! `keyferry admin rotate-root-key`: re-seal all material of a database under a new root key
//! while its servers keep running (the steps are in `keyferry_core::reseal`). This module only
//! finds the keys and the store, as `serve` does.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
pub use keyferry_core::reseal::RotateOutcome;
use keyferry_core::reseal::{RotateOptions, rotate_root_key};

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
    pub propagation_wait: Duration,
    pub limit: Option<usize>,
}

pub async fn run(cfg: RotateConfig) -> anyhow::Result<RotateOutcome> {
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
