//! `keyferry admin …`: operator's tools that work on a data directory (the work is in
//! `keyferry_server::backup`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(clap::Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Copy the SQLite store of a data directory into a new backup directory, consistently,
    /// while the server runs. The root key is NOT copied unless --include-root-key: keep it
    /// apart from the backups. (PostgreSQL: use pg_dump, see the README.)
    Backup(BackupArgs),
    /// Restore a backup into a fresh (missing or empty) data directory, after checking the
    /// copy and the root key against the root-key check value in it.
    Restore(RestoreArgs),
    /// Re-seal all key material under a new root key while the servers keep running (they take
    /// the new key over from the database); idempotent, and resumable if interrupted.
    RotateRootKey(crate::RotateRootKeyArgs),
}

#[derive(clap::Args)]
struct BackupArgs {
    /// The server's data directory (its --data).
    #[arg(
        long,
        visible_alias = "data-dir",
        env = "KEYFERRY_DATA",
        default_value = "./keyferry-data"
    )]
    data: PathBuf,
    /// Also copy the root key into the backup (checked against the copy first). Whoever has
    /// such a backup has every key.
    #[arg(long)]
    include_root_key: bool,
    /// With --include-root-key: the root key file (default <data>/root.key;
    /// KEYFERRY_ROOT_KEY overrides it).
    #[arg(long, env = "KEYFERRY_ROOT_KEY_FILE", requires = "include_root_key")]
    root_key_file: Option<PathBuf>,
    /// The backup directory to create (must not exist, or be empty).
    out: PathBuf,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// The backup directory (made by keyferry admin backup).
    backup: PathBuf,
    /// The data directory to restore into (must not exist, or be empty).
    #[arg(long, visible_alias = "data-dir", env = "KEYFERRY_DATA")]
    data: PathBuf,
    /// The root key the backup was sealed with (default: the backup's own root.key, if it was
    /// taken with --include-root-key; KEYFERRY_ROOT_KEY overrides both).
    #[arg(long, env = "KEYFERRY_ROOT_KEY_FILE")]
    root_key_file: Option<PathBuf>,
    /// A backup of a server started with --root-key-pkcs11: the HSM key (RFC 7512 URI, as for
    /// keyferry serve) that opens the backup's root.key.hsm, which is then installed.
    #[arg(
        long,
        env = "KEYFERRY_ROOT_KEY_PKCS11",
        value_name = "URI",
        hide_env_values = true
    )]
    root_key_pkcs11: Option<String>,
}

pub async fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AdminCommand::RotateRootKey(a) => return crate::rotate_root_key(a).await,
        AdminCommand::Backup(a) => {
            let r = keyferry_server::backup::backup(
                &a.data,
                &a.out,
                a.include_root_key,
                a.root_key_file.as_deref(),
            )
            .await?;
            println!(
                "keyferry: backup of {} written to {} ({} keys, schema version {})",
                a.data.display(),
                a.out.display(),
                r.keys,
                r.schema_version
            );
            if r.hsm_sealed {
                println!(
                    "keyferry: the backup includes {} (the root key sealed by the HSM key: it opens only with that key)",
                    keyferry_server::hsm_root::SEALED_FILE
                );
            }
            match r.root_key_from {
                Some(from) => println!(
                    "keyferry: the backup includes the root key (from {from}): it holds every key; store it like the root key"
                ),
                None => println!(
                    "keyferry: the root key is not in the backup; restoring needs it (keep it safe, apart from the backups)"
                ),
            }
        }
        AdminCommand::Restore(a) => {
            let hsm = a
                .root_key_pkcs11
                .clone()
                .map(keyferry_server::hsm_root::RootKeyUri);
            let r = keyferry_server::backup::restore_with(
                &a.backup,
                &a.data,
                a.root_key_file.as_deref(),
                hsm.as_ref(),
            )
            .await?;
            println!(
                "keyferry: restored {} into {} ({} keys); the root key from {} matches its check value",
                a.backup.display(),
                a.data.display(),
                r.keys,
                r.root_key_from
            );
            if hsm.is_some() {
                println!(
                    "keyferry: {} installed; start the server with the same --root-key-pkcs11",
                    a.data
                        .join(keyferry_server::hsm_root::SEALED_FILE)
                        .display()
                );
            } else if r.root_key_installed {
                println!(
                    "keyferry: root key installed as {}",
                    a.data
                        .join(keyferry_server::backup::ROOT_KEY_FILE)
                        .display()
                );
            } else {
                println!(
                    "keyferry: start the server with the same root key: keyferry serve --data {} --root-key-file … (or KEYFERRY_ROOT_KEY)",
                    a.data.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
