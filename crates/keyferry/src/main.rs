//! `keyferry`: the KMS server (`serve`) and the bring-your-own-key client, in one binary.
//! This file only parses the command line and hands over; the work is in the library crates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use keyferry_server::config::{Credential, RedactedUrl, ServeConfig};

#[derive(Parser)]
#[command(
    name = "keyferry",
    version,
    about = "An AWS-KMS-compatible key server and a bring-your-own-key client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the KMS server (AWS JSON 1.1 + SigV4) on the embedded SQLite store or PostgreSQL.
    Serve(ServeArgs),
    /// Import key material from a file or a PKCS#11 token into an AWS-KMS-compatible endpoint
    /// and prove it (`import wrap` / `import fetch-parameters`: the offline steps).
    Import(Box<keyferry_byok::cli::ImportArgs>),
    /// Renew imported key material that is about to expire, from the source each key's
    /// provenance tags record (one pass, or --every).
    KeepAlive(Box<keyferry_byok::cli::KeepAliveArgs>),
    /// The whole bring-your-own-key walk-through on a throwaway local server, nothing to install.
    Demo,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on. Without configured credentials only loopback addresses are allowed.
    #[arg(long, default_value = "127.0.0.1:4599")]
    listen: SocketAddr,
    /// Data directory: SQLite database and root key.
    #[arg(long, default_value = "./keyferry-data")]
    data: PathBuf,
    /// AWS Region the server answers for (credential scope and ARNs).
    #[arg(long, default_value = "us-east-1", env = "KEYFERRY_REGION")]
    region: String,
    /// PostgreSQL URL (postgres://…) to share one database between server nodes; default: SQLite in --data.
    #[arg(long, env = "KEYFERRY_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// File holding the 32-byte root key (default: <data>/root.key, created with mode 0600).
    /// KEYFERRY_ROOT_KEY (64 hex digits) overrides it.
    #[arg(long)]
    root_key_file: Option<PathBuf>,
    /// How long a node may serve a cached key record (milliseconds).
    #[arg(long, default_value_t = 5000)]
    cache_ttl_ms: u64,
    /// Pre-generated RSA wrapping keys kept ready per wrapping key spec. Each
    /// GetParametersForImport takes one; once the pool is empty a call waits for an RSA key
    /// generation (RSA_4096: hundreds of milliseconds). Size it for the largest import batch.
    #[arg(long, default_value_t = 4)]
    wrapping_pool_size: usize,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEYFERRY_LOG")
                // cryptoki logs an ERROR line for every mechanism number it has no name for
                // (C_GetMechanismList on most tokens): silent unless KEYFERRY_LOG asks for it.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cryptoki=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyferry: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Import(args) => {
                Ok(ExitCode::from(keyferry_byok::cli::run_import(*args).await))
            }
            Command::KeepAlive(args) => Ok(ExitCode::from(
                keyferry_byok::cli::run_keep_alive(*args).await,
            )),
            Command::Demo => Ok(ExitCode::from(keyferry_byok::demo::run_demo().await)),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keyferry: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = ServeConfig::new(args.listen, args.data);
    cfg.region = args.region;
    cfg.account_id = std::env::var("KEYFERRY_ACCOUNT_ID").unwrap_or_else(|_| "111122223333".into());
    cfg.database_url = args.database_url.map(RedactedUrl);
    cfg.root_key_file = args.root_key_file;
    cfg.cache_ttl = Duration::from_millis(args.cache_ttl_ms);
    cfg.wrapping_pool_size = args.wrapping_pool_size;
    cfg.credential = match (
        std::env::var("KEYFERRY_ACCESS_KEY_ID").ok(),
        std::env::var("KEYFERRY_SECRET_ACCESS_KEY").ok(),
    ) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Some(Credential {
            access_key_id: a,
            secret_access_key: keyferry_sigv4::SecretKey::new(s),
        }),
        (None, None) => None,
        _ => anyhow::bail!(
            "set both KEYFERRY_ACCESS_KEY_ID and KEYFERRY_SECRET_ACCESS_KEY, or neither"
        ),
    };
    keyferry_server::serve(cfg).await?;
    Ok(ExitCode::SUCCESS)
}
