//! `keyferry admin backup` and `keyferry admin restore` for the embedded SQLite store.
//!
//! A backup is a directory: `keyferry.db` (a consistent online snapshot, `VACUUM INTO`, taken
//! while the server runs), `keyferry-backup.toml` (what was copied, when, and from where) and,
//! only when asked (`--include-root-key`), `root.key`. Without the root key a backup is useless
//! to whoever steals it, and with it it is every key: the default keeps them apart.
//!
//! A restore goes into a fresh directory only (missing or empty), checks the copy's integrity,
//! and checks the root key (`--root-key-file`, `KEYFERRY_ROOT_KEY` or the backup's own
//! `root.key`) against the check value in the copy with the server's own check
//! (`Kms::bind_root_key`): a root key that does not open it leaves nothing behind.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use keyferry_core::clock::SystemClock;
use keyferry_core::reseal::{CHECK_NAME, RootKeyCheck};
use keyferry_core::{Config, Kms};
use keyferry_crypto::seal::RootKey;
use zeroize::Zeroizing;

/// The database file inside a data directory and inside a backup.
pub const DB_FILE: &str = "keyferry.db";
/// The root key file inside a data directory (the default) and inside a backup that has one.
pub const ROOT_KEY_FILE: &str = "root.key";
/// The description of a backup.
pub const MANIFEST_FILE: &str = "keyferry-backup.toml";

/// What `backup` did.
#[derive(Debug)]
pub struct BackupReport {
    pub keys: i64,
    pub schema_version: i64,
    /// Where the root key was copied from, when it was included.
    pub root_key_from: Option<String>,
    /// `root.key.hsm` (`--root-key-pkcs11`) was copied: it opens only with the HSM key, so it
    /// is always part of the backup.
    pub hsm_sealed: bool,
}

/// What `restore` did.
#[derive(Debug)]
pub struct RestoreReport {
    pub keys: i64,
    /// Where the root key came from.
    pub root_key_from: String,
    /// Whether the root key was written into the restored data directory (it came from the backup).
    pub root_key_installed: bool,
}

/// Copy the SQLite store of `data_dir` into the new backup directory `out` (missing or empty).
/// With `include_root_key`, the root key (`KEYFERRY_ROOT_KEY`, else `root_key_file`, else
/// `<data_dir>/root.key`) is copied too, after it was checked against the copy.
pub async fn backup(
    data_dir: &Path,
    out: &Path,
    include_root_key: bool,
    root_key_file: Option<&Path>,
) -> anyhow::Result<BackupReport> {
    let source = data_dir.join(DB_FILE);
    if !source.is_file() {
        bail!(
            "no Keyferry database at {} (is {} the server's --data directory? PostgreSQL is backed up with pg_dump)",
            source.display(),
            data_dir.display()
        );
    }
    // Read the root key before copying anything: a missing one fails early.
    let root = if include_root_key {
        let path = root_key_file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| data_dir.join(ROOT_KEY_FILE));
        Some(read_root_key(&path)?.ok_or_else(|| {
            anyhow::anyhow!(
                "--include-root-key: no root key at {} and KEYFERRY_ROOT_KEY is not set (pass --root-key-file)",
                path.display()
            )
        })?)
    } else {
        None
    };
    let created = fresh_dir(out)?;
    let result: anyhow::Result<BackupReport> = async {
        let db = out.join(DB_FILE);
        let info = keyferry_store::backup_sqlite(&source, &db, CHECK_NAME)
            .await
            .map_err(|e| anyhow::anyhow!("backup of {} failed: {e}", source.display()))?;
        restrict(&db)?;
        let mut root_key_from = None;
        if let Some((bytes, from)) = &root {
            // The copy must open with the key stored next to it. The check opens a database as
            // the server does (WAL mode, migrations): do it on a scratch copy, not the backup.
            let scratch = out.join(".root-key-check");
            std::fs::create_dir(&scratch)
                .with_context(|| format!("cannot create {}", scratch.display()))?;
            let check: anyhow::Result<()> = async {
                std::fs::copy(&db, scratch.join(DB_FILE))?;
                check_root_key(&scratch.join(DB_FILE), bytes, from).await
            }
            .await;
            let _ = std::fs::remove_dir_all(&scratch);
            check?;
            write_private(&out.join(ROOT_KEY_FILE), bytes)?;
            root_key_from = Some(from.clone());
        }
        let hsm_file = data_dir.join(crate::hsm_root::SEALED_FILE);
        let hsm_sealed = hsm_file.is_file();
        if hsm_sealed {
            let sealed = std::fs::read(&hsm_file)
                .with_context(|| format!("cannot read {}", hsm_file.display()))?;
            write_private(&out.join(crate::hsm_root::SEALED_FILE), &sealed)?;
        }
        let manifest = format!(
            "# A Keyferry backup (keyferry admin backup); restore with keyferry admin restore.\n\
             format = 1\n\
             created = \"{}\"\n\
             source = {:?}\n\
             keyferry_version = \"{}\"\n\
             schema_version = {}\n\
             keys = {}\n\
             root_key_included = {}\n\
             root_key_check = \"{}\"\n\
             root_key_hsm_sealed = {}\n",
            time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            source.display().to_string(),
            env!("CARGO_PKG_VERSION"),
            info.schema_version,
            info.keys,
            root_key_from.is_some(),
            info.root_key_check
                .as_deref()
                .map(hex::encode)
                .unwrap_or_default(),
            hsm_sealed,
        );
        write_private(&out.join(MANIFEST_FILE), manifest.as_bytes())?;
        sync_dir(out);
        Ok(BackupReport {
            keys: info.keys,
            schema_version: info.schema_version,
            root_key_from,
            hsm_sealed,
        })
    }
    .await;
    if result.is_err() {
        undo(out, created);
    }
    result
}

/// Restore the backup directory `backup` into `data_dir`, which must be missing or empty.
/// The root key is `KEYFERRY_ROOT_KEY`, else `root_key_file`, else the backup's `root.key`
/// (then installed as `<data_dir>/root.key`).
pub async fn restore(
    backup: &Path,
    data_dir: &Path,
    root_key_file: Option<&Path>,
) -> anyhow::Result<RestoreReport> {
    restore_with(backup, data_dir, root_key_file, None).await
}

/// `restore`, or with `root_key_pkcs11` the backup's `root.key.hsm` opened by that HSM key,
/// checked, and installed as `<data_dir>/root.key.hsm`.
pub async fn restore_with(
    backup: &Path,
    data_dir: &Path,
    root_key_file: Option<&Path>,
    root_key_pkcs11: Option<&crate::hsm_root::RootKeyUri>,
) -> anyhow::Result<RestoreReport> {
    let source = backup.join(DB_FILE);
    if !source.is_file() {
        bail!(
            "{} is not a Keyferry backup: it has no {DB_FILE}",
            backup.display()
        );
    }
    let info = keyferry_store::inspect_sqlite(&source, CHECK_NAME)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))?;
    let in_backup = backup.join(ROOT_KEY_FILE);
    let hsm_in_backup = backup.join(crate::hsm_root::SEALED_FILE);
    let (bytes, from, install) = if let Some(uri) = root_key_pkcs11 {
        if std::env::var_os("KEYFERRY_ROOT_KEY").is_some() || root_key_file.is_some() {
            bail!(
                "--root-key-pkcs11 and --root-key-file / KEYFERRY_ROOT_KEY name two root keys: give only one"
            );
        }
        let hsm = crate::hsm_root::HsmRoot::open(uri)?;
        let b = crate::hsm_root::load_bytes(&hsm, &hsm_in_backup)?.ok_or_else(|| {
            anyhow::anyhow!(
                "the backup {} holds no {} (it was not taken from a server started with --root-key-pkcs11)",
                backup.display(),
                crate::hsm_root::SEALED_FILE
            )
        })?;
        let from = format!("{} (HSM key {})", hsm_in_backup.display(), hsm.shown);
        (b, from, false)
    } else if std::env::var_os("KEYFERRY_ROOT_KEY").is_some() || root_key_file.is_some() {
        let path = root_key_file.unwrap_or(in_backup.as_path());
        let (b, f) = read_root_key(path)?
            .ok_or_else(|| anyhow::anyhow!("no root key file at {}", path.display()))?;
        (b, f, false)
    } else {
        let (b, f) = read_root_key(&in_backup)?.ok_or_else(|| {
            anyhow::anyhow!(
                "the backup {} holds no root key (it was taken without --include-root-key): \
                 pass the root key it was sealed with, --root-key-file FILE or KEYFERRY_ROOT_KEY",
                backup.display()
            )
        })?;
        (b, f, true)
    };
    let created = fresh_dir(data_dir)?;
    let result: anyhow::Result<RestoreReport> = async {
        let db = data_dir.join(DB_FILE);
        std::fs::copy(&source, &db)
            .with_context(|| format!("cannot copy {} to {}", source.display(), db.display()))?;
        restrict(&db)?;
        std::fs::File::open(&db)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", db.display()))?;
        check_root_key(&db, &bytes, &from).await?;
        if install {
            write_private(&data_dir.join(ROOT_KEY_FILE), &bytes)?;
        }
        if root_key_pkcs11.is_some() {
            let sealed = std::fs::read(&hsm_in_backup)
                .with_context(|| format!("cannot read {}", hsm_in_backup.display()))?;
            write_private(&data_dir.join(crate::hsm_root::SEALED_FILE), &sealed)?;
        }
        sync_dir(data_dir);
        Ok(RestoreReport {
            keys: info.keys,
            root_key_from: from.clone(),
            root_key_installed: install,
        })
    }
    .await;
    if result.is_err() {
        undo(data_dir, created);
    }
    result
}

/// Open `db` as the server does and check the root key against its check value (storing one
/// if the database has none, as the server's first start would).
async fn check_root_key(db: &Path, bytes: &[u8], from: &str) -> anyhow::Result<()> {
    let root = RootKey::from_bytes(bytes)
        .map_err(|_| anyhow::anyhow!("the root key from {from} must be 32 bytes"))?;
    let store = keyferry_store::open_store(&db.to_string_lossy())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", db.display()))?;
    let kms = Kms::new(Config::default(), store, &root, Arc::new(SystemClock));
    let check = kms
        .bind_root_key(&root)
        .await
        .map_err(|e| anyhow::anyhow!("cannot check the root key against {}: {e}", db.display()))?;
    if let RootKeyCheck::Mismatch { key_id } = check {
        let what = match key_id {
            Some(k) => format!("the key material of key {k}"),
            None => "the root key check value".to_owned(),
        };
        bail!(
            "the root key from {from} does not open {what} in this backup: it is not the root key the backup was sealed with. \
             Pass the database's own root key (--root-key-file FILE or KEYFERRY_ROOT_KEY); nothing was restored."
        );
    }
    Ok(())
}

/// The raw 32-byte root key from `KEYFERRY_ROOT_KEY` (64 hex digits) or `path`, with where it
/// came from; `None` if neither is there.
fn read_root_key(path: &Path) -> anyhow::Result<Option<(Zeroizing<Vec<u8>>, String)>> {
    if let Ok(hexkey) = std::env::var("KEYFERRY_ROOT_KEY") {
        let bytes = Zeroizing::new(
            hex::decode(hexkey.trim()).context("KEYFERRY_ROOT_KEY must be 64 hex digits")?,
        );
        if bytes.len() != 32 {
            bail!("KEYFERRY_ROOT_KEY must be 64 hex digits");
        }
        return Ok(Some((bytes, "KEYFERRY_ROOT_KEY".to_owned())));
    }
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            if bytes.len() != 32 {
                bail!(
                    "root key file {} must hold exactly 32 bytes",
                    path.display()
                );
            }
            Ok(Some((bytes, path.display().to_string())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read root key file {}", path.display())),
    }
}

/// Make sure `dir` is a fresh directory (missing: created 0700; present: must be empty).
/// Returns whether it was created.
fn fresh_dir(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "refusing to write into {}: it is not empty (give a new or empty directory)",
                    dir.display()
                );
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Ok(true)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// After a failure: remove what was written into the (previously empty) directory.
fn undo(dir: &Path, created: bool) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    if created {
        let _ = std::fs::remove_dir(dir);
    }
}

fn restrict(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict permissions of {}", path.display()))?;
    }
    let _ = path;
    Ok(())
}

/// Write a new file with mode 0600 and sync it.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
