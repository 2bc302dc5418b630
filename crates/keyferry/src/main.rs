//! `keyferry`: the KMS server (`serve`) and the bring-your-own-key client, in one binary.
//! This file only parses the command line and hands over; the work is in the library crates.

mod admin;

/// mimalloc instead of glibc's malloc: the request path allocates and frees many small buffers
/// per request (BENCHMARKS.md measures the difference).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Subcommand};
use keyferry_server::config::{Credential, RedactedUrl, ServeConfig};
use keyferry_server::limits::Limits;
use keyferry_server::tls::TlsPaths;

#[derive(clap::Parser)]
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
    Serve(Box<ServeArgs>),
    /// Import key material from a file or a PKCS#11 token into an AWS-KMS-compatible endpoint
    /// and prove it (`import wrap` / `import fetch-parameters`: the offline steps).
    Import(Box<keyferry_byok::cli::ImportArgs>),
    /// Renew imported key material that is about to expire, from the source each key's
    /// provenance tags record (one pass, or --every).
    KeepAlive(Box<keyferry_byok::cli::KeepAliveArgs>),
    /// The whole bring-your-own-key walk-through on a throwaway local server, nothing to install.
    Demo,
    /// Operator's tools: backup and restore of the SQLite store.
    Admin(Box<admin::AdminArgs>),
}

#[derive(clap::Args)]
pub(crate) struct RotateRootKeyArgs {
    /// The servers' data directory (SQLite database, default root key file).
    #[arg(long, env = "KEYFERRY_DATA", default_value = "./keyferry-data")]
    data: PathBuf,
    /// PostgreSQL URL of the servers' shared database; default: SQLite in --data.
    #[arg(long, env = "KEYFERRY_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The current root key file (default: <data>/root.key); KEYFERRY_ROOT_KEY (64 hex digits)
    /// overrides it.
    #[arg(long, env = "KEYFERRY_ROOT_KEY_FILE")]
    root_key_file: Option<PathBuf>,
    /// The new root key file: read if it exists, else created with 32 random bytes (mode 0600).
    /// KEYFERRY_NEW_ROOT_KEY (64 hex digits) overrides it.
    /// With --root-key-pkcs11 this file is sealed by the HSM key as root.key.hsm is.
    #[arg(long, env = "KEYFERRY_NEW_ROOT_KEY_FILE")]
    new_root_key_file: PathBuf,
    /// The servers keep their root key in an HSM (serve --root-key-pkcs11 URI): the current root
    /// key is <data>/root.key.hsm opened by this key, and the new one is sealed by it too.
    #[arg(
        long,
        env = "KEYFERRY_ROOT_KEY_PKCS11",
        value_name = "URI",
        hide_env_values = true
    )]
    root_key_pkcs11: Option<String>,
    /// How long to wait after publishing the new root key before re-sealing, so that every
    /// running server seals new material under it (servers look once a second).
    #[arg(long, default_value = "5s", value_parser = keyferry_server::limits::parse_duration)]
    propagation_wait: Duration,
    /// Re-seal at most N key records in this run, then stop (run again to continue).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

const SERVE_ENV_HELP: &str = "\
Environment (besides the KEYFERRY_* variable shown for each option):
  KEYFERRY_ACCESS_KEY_ID, KEYFERRY_SECRET_ACCESS_KEY
        the credential clients sign with (both or neither; without them a development
        credential is printed and only loopback is allowed). KEYFERRY_ACCESS_KEY_ID_FILE and
        KEYFERRY_SECRET_ACCESS_KEY_FILE name files holding them instead (preferred: the
        environment of a process is visible to more than its files are).
  KEYFERRY_ROOT_KEY     the root key as 64 hex digits (instead of --root-key-file)
  KEYFERRY_PKCS11_PIN, KEYFERRY_PKCS11_MODULE
        with --root-key-pkcs11: the token's user PIN (or pin-source=FILE in the URI) and the
        PKCS#11 module (or module-path= in the URI)
  KEYFERRY_LOG          log filter, e.g. info, warn, keyferry_server=debug (default: warn)
  KEYFERRY_CONFIG       a TOML file with any of the options above, keys named like the long
                        options (listen = \"0.0.0.0:4599\", tls-cert = \"/etc/keyferry/cert.pem\").
Precedence: command-line flags > environment > config file > defaults.
Signals: SIGTERM/SIGINT drain in-flight requests (--shutdown-grace) and exit;
         SIGHUP reloads --tls-cert and --tls-key.";

#[derive(clap::Args)]
#[command(after_help = SERVE_ENV_HELP)]
struct ServeArgs {
    /// TOML file holding any of these options (keys are the long option names).
    #[arg(long, env = "KEYFERRY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on: IP:PORT or HOST:PORT (e.g. localhost:4600). A non-loopback address
    /// needs configured credentials, and TLS unless --insecure-http.
    #[arg(long, env = "KEYFERRY_LISTEN", default_value = "127.0.0.1:4599")]
    listen: String,
    /// Data directory: SQLite database, root key, lock file.
    #[arg(long, env = "KEYFERRY_DATA", default_value = "./keyferry-data")]
    data: PathBuf,
    /// AWS Region the server answers for (credential scope and ARNs).
    #[arg(long, default_value = "us-east-1", env = "KEYFERRY_REGION")]
    region: String,
    /// Every AWS Region this deployment serves, comma-separated (e.g. us-east-1,eu-west-1);
    /// default: just --region. The Region of a request is its SigV4 credential scope; keys,
    /// aliases and ARNs are per Region, and multi-Region keys replicate between these.
    #[arg(long, env = "KEYFERRY_REGIONS", value_delimiter = ',')]
    regions: Vec<String>,
    /// AWS account id in ARNs.
    #[arg(long, default_value = "111122223333", env = "KEYFERRY_ACCOUNT_ID")]
    account_id: String,
    /// PostgreSQL URL (postgres://…) to share one database between server nodes; default: SQLite in --data.
    #[arg(long, env = "KEYFERRY_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// File holding the 32-byte root key (default: <data>/root.key, created with mode 0600 for a
    /// new database). KEYFERRY_ROOT_KEY (64 hex digits) overrides it.
    #[arg(long, env = "KEYFERRY_ROOT_KEY_FILE")]
    root_key_file: Option<PathBuf>,
    /// Keep the root key in a PKCS#11 token (HSM): an RFC 7512 URI naming a sensitive,
    /// non-extractable AES-256 key (pkcs11:token=…;object=…?module-path=…; module also from
    /// KEYFERRY_PKCS11_MODULE, PIN from pin-source= or KEYFERRY_PKCS11_PIN). The working root key
    /// is kept in <data>/root.key.hsm, sealed by that key. Not with --root-key-file or
    /// KEYFERRY_ROOT_KEY.
    #[arg(
        long,
        env = "KEYFERRY_ROOT_KEY_PKCS11",
        value_name = "URI",
        hide_env_values = true
    )]
    root_key_pkcs11: Option<String>,
    /// How long a node may serve a cached key record (milliseconds).
    #[arg(long, env = "KEYFERRY_CACHE_TTL_MS", default_value_t = 5000)]
    cache_ttl_ms: u64,
    /// Pre-generated RSA wrapping keys kept ready per wrapping key spec when there is no
    /// demand (0: no background pool). The pool adapts by itself: its depth grows to the
    /// GetParametersForImport calls of the last minute (up to --wrapping-pool-max) and is
    /// refilled with every core at low priority; once the pool is empty a caller reuses its own
    /// recent wrapping key (see --wrapping-key-max-tokens). There is no need to size it.
    #[arg(long, env = "KEYFERRY_WRAPPING_POOL_SIZE", default_value_t = 4)]
    wrapping_pool_size: usize,
    /// The depth demand may grow the wrapping-key pool to, per wrapping key spec (an RSA_4096
    /// pair takes about 4 KiB).
    #[arg(long, env = "KEYFERRY_WRAPPING_POOL_MAX", default_value_t = 64)]
    wrapping_pool_max: usize,
    /// Seconds without GetParametersForImport after which a grown pool depth halves (again
    /// after each further period, down to --wrapping-pool-size).
    #[arg(long, env = "KEYFERRY_WRAPPING_POOL_DECAY_SECS", default_value_t = 300)]
    wrapping_pool_decay_secs: u64,
    /// Import tokens one wrapping key may serve while the pool is empty: the same caller
    /// (identity, Region, account), wrapping key spec and algorithm, within 60 s of the key's
    /// first token. 1: every GetParametersForImport gets a wrapping key of its own (and waits
    /// for an RSA generation when the pool is empty).
    #[arg(long, env = "KEYFERRY_WRAPPING_KEY_MAX_TOKENS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    wrapping_key_max_tokens: u32,
    /// Identities file (TOML, mode 0600): accounts, IAM users and roles, their access keys and
    /// identity policies (see the README). Without it, KEYFERRY_ACCESS_KEY_ID and
    /// KEYFERRY_SECRET_ACCESS_KEY are the root of KEYFERRY_ACCOUNT_ID (or the development
    /// credential on loopback).
    #[arg(long, env = "KEYFERRY_IDENTITIES")]
    identities: Option<PathBuf>,
    /// Audit trail: one CloudTrail-format event per request, as JSON lines appended to FILE
    /// (created with mode 0600), or `-` for stdout (see the README's "Audit trail").
    #[arg(long, env = "KEYFERRY_AUDIT_LOG", value_name = "FILE")]
    audit_log: Option<String>,
    /// Throttle requests as AWS does, per account and Region, with ThrottlingException: `aws`
    /// (AWS's documented request quotas) or a TOML file of per-operation rates (see the README's
    /// "Request quotas"). Off by default.
    #[arg(long, env = "KEYFERRY_REQUEST_QUOTAS", value_name = "aws|FILE")]
    request_quotas: Option<String>,
    /// PEM certificate chain (leaf first) for TLS; reloaded on SIGHUP.
    #[arg(long, env = "KEYFERRY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS; reloaded on SIGHUP.
    #[arg(long, env = "KEYFERRY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): require client certificates issued by them (mutual TLS).
    #[arg(long, env = "KEYFERRY_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address (e.g. behind a TLS-terminating proxy).
    #[arg(long, env = "KEYFERRY_INSECURE_HTTP")]
    insecure_http: bool,
    /// Time allowed for the TLS handshake and a request header (from connect, or from the first
    /// byte of a later request on a keep-alive connection).
    #[arg(long, env = "KEYFERRY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = keyferry_server::limits::parse_duration)]
    header_read_timeout: Duration,
    /// Time allowed for a request body after its header.
    #[arg(long, env = "KEYFERRY_BODY_TIMEOUT", default_value = "10s", value_parser = keyferry_server::limits::parse_duration)]
    body_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    #[arg(long, env = "KEYFERRY_IDLE_TIMEOUT", default_value = "60s", value_parser = keyferry_server::limits::parse_duration)]
    idle_timeout: Duration,
    /// Connections open at once; more are closed at once (and logged).
    #[arg(long, env = "KEYFERRY_MAX_CONNECTIONS", default_value_t = 8192)]
    max_connections: usize,
    /// On SIGTERM/SIGINT: how long in-flight requests may take to finish before the server exits.
    #[arg(long, env = "KEYFERRY_SHUTDOWN_GRACE", default_value = "5s", value_parser = keyferry_server::limits::parse_duration)]
    shutdown_grace: Duration,
    /// Address for /healthz, /readyz and /metrics (plain HTTP, no authentication: keep it internal).
    #[arg(long, env = "KEYFERRY_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Storage: longest wait for a database connection before a request fails with
    /// DependencyTimeoutException (retryable).
    #[arg(long, env = "KEYFERRY_STORAGE_ACQUIRE_TIMEOUT", default_value = "500ms", value_parser = keyferry_server::limits::parse_duration)]
    storage_acquire_timeout: Duration,
    /// Storage: longest one database statement may run (PostgreSQL statement_timeout and a
    /// client-side deadline) before the request fails with DependencyTimeoutException.
    #[arg(long, env = "KEYFERRY_STORAGE_STATEMENT_TIMEOUT", default_value = "2s", value_parser = keyferry_server::limits::parse_duration)]
    storage_statement_timeout: Duration,
    /// Log format on stderr.
    #[arg(long, env = "KEYFERRY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> ExitCode {
    let matches = match cli_with_config_file() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("keyferry: {e:#}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let json = matches!(&cli.command, Command::Serve(a) if a.log_format == "json");
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYFERRY_LOG")
        // cryptoki logs an ERROR line for every mechanism number it has no name for
        // (C_GetMechanismList on most tokens): silent unless KEYFERRY_LOG asks for it.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cryptoki=off"));
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    // `keep-alive --every` runs for as long as the server does: the PIN it logs in with on every
    // pass is read once, and the environment's copy overwritten (as `serve` does once it has
    // started). A single pass, like `import`, exits soon after reading it.
    if matches!(&cli.command, Command::KeepAlive(a) if a.every.is_some()) {
        keyferry_byok::uri::remember_env_pin();
        keyferry_server::os::scrub_secret_env();
    }
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
            Command::Serve(args) => serve(*args).await,
            Command::Import(args) => {
                Ok(ExitCode::from(keyferry_byok::cli::run_import(*args).await))
            }
            Command::KeepAlive(args) => Ok(ExitCode::from(
                keyferry_byok::cli::run_keep_alive(*args).await,
            )),
            Command::Demo => Ok(ExitCode::from(keyferry_byok::demo::run_demo().await)),
            Command::Admin(args) => admin::run(*args).await,
        }
    });
    // Do not wait for background work (the wrapping-key pool, idle tasks) after shutdown.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keyferry: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Parse the command line; for `serve`, a TOML `--config` file (or `KEYFERRY_CONFIG`) supplies
/// defaults, so that flags > environment > file > built-in defaults.
fn cli_with_config_file() -> anyhow::Result<clap::ArgMatches> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cmd = Cli::command();
    let is_serve = args.get(1).is_some_and(|a| a == "serve");
    if is_serve {
        let mut path: Option<PathBuf> = None;
        let mut it = args.iter().skip(2);
        while let Some(a) = it.next() {
            let a = a.to_string_lossy();
            if a == "--config" {
                path = it.next().map(PathBuf::from);
            } else if let Some(p) = a.strip_prefix("--config=") {
                path = Some(PathBuf::from(p));
            } else if a == "--" {
                break;
            }
        }
        if path.is_none() {
            path = std::env::var_os("KEYFERRY_CONFIG").map(PathBuf::from);
        }
        if let Some(path) = path {
            let defaults = config_file_values(&path)?;
            let serve = cmd
                .find_subcommand("serve")
                .ok_or_else(|| anyhow::anyhow!("no serve subcommand"))?;
            for (id, _) in &defaults {
                if id == "config" || !serve.get_arguments().any(|a| a.get_id() == id.as_str()) {
                    anyhow::bail!(
                        "{}: unknown option {id:?} (keys are the long options of keyferry serve --help)",
                        path.display()
                    );
                }
            }
            cmd = cmd.mut_subcommand("serve", |mut sc| {
                for (id, value) in defaults {
                    let value: &'static str = Box::leak(value.into_boxed_str());
                    sc = sc.mut_arg(id, |a| a.default_value(value));
                }
                sc
            });
        }
    }
    Ok(cmd.get_matches_from(args))
}

/// The file's keys (long option names, `-` or `_`) as clap argument ids with string values.
fn config_file_values(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
    let mut out = Vec::new();
    for (k, v) in table {
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => anyhow::bail!(
                "{}: option {k:?} must be a string, number or boolean, not {}",
                path.display(),
                other.type_str()
            ),
        };
        out.push((k.replace('-', "_"), value));
    }
    Ok(out)
}

/// `NAME` from the environment, or the contents of the file named by `NAME_FILE` (a trailing
/// newline removed). Both set is an error.
fn secret_from_env(name: &str) -> anyhow::Result<Option<String>> {
    let direct = std::env::var(name).ok().filter(|v| !v.is_empty());
    let file_var = format!("{name}_FILE");
    let file = std::env::var_os(&file_var).filter(|v| !v.is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => anyhow::bail!("set {name} or {file_var}, not both"),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(f)) => {
            let mut v = std::fs::read_to_string(&f).with_context(|| {
                format!("cannot read {file_var} file {}", Path::new(&f).display())
            })?;
            while v.ends_with('\n') || v.ends_with('\r') {
                v.pop();
            }
            if v.is_empty() {
                anyhow::bail!("{file_var} file {} is empty", Path::new(&f).display());
            }
            Ok(Some(v))
        }
        (None, None) => Ok(None),
    }
}

/// `HOST:PORT` or `IP:PORT` to one socket address (the first the resolver gives, IPv4 first).
async fn resolve_listen(what: &str, s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(s)
        .await
        .with_context(|| {
            format!(
                "{what} {s:?}: expected IP:PORT or HOST:PORT (e.g. 127.0.0.1:4599, localhost:4600)"
            )
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| anyhow::anyhow!("{what} {s:?}: the name resolves to no address"))
}

pub(crate) async fn rotate_root_key(args: RotateRootKeyArgs) -> anyhow::Result<ExitCode> {
    let outcome = keyferry_server::rotate::run(keyferry_server::rotate::RotateConfig {
        data_dir: args.data,
        database_url: args.database_url.map(RedactedUrl),
        root_key_file: args.root_key_file,
        new_root_key_file: args.new_root_key_file,
        root_key_pkcs11: args
            .root_key_pkcs11
            .map(keyferry_server::hsm_root::RootKeyUri),
        propagation_wait: args.propagation_wait,
        limit: args.limit,
    })
    .await?;
    Ok(match outcome {
        keyferry_server::rotate::RotateOutcome::Stopped { .. } => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let listen = resolve_listen("--listen", &args.listen).await?;
    let mut cfg = ServeConfig::new(listen, args.data);
    cfg.region = args.region;
    cfg.regions = args
        .regions
        .into_iter()
        .map(|r| r.trim().to_string())
        .collect();
    // --regions without --region: the first listed is the default Region.
    if !cfg.regions.is_empty() && !cfg.regions.contains(&cfg.region) {
        cfg.region = cfg.regions[0].clone();
    }
    cfg.account_id = args.account_id;
    cfg.database_url = args.database_url.map(RedactedUrl);
    cfg.root_key_file = args.root_key_file;
    cfg.root_key_pkcs11 = args
        .root_key_pkcs11
        .map(keyferry_server::hsm_root::RootKeyUri);
    cfg.cache_ttl = Duration::from_millis(args.cache_ttl_ms);
    cfg.wrapping_pool_size = args.wrapping_pool_size;
    cfg.wrapping_pool_max = args.wrapping_pool_max;
    cfg.wrapping_pool_decay = Duration::from_secs(args.wrapping_pool_decay_secs.max(1));
    cfg.wrapping_key_max_tokens = args.wrapping_key_max_tokens;
    cfg.identities_file = args.identities;
    cfg.audit_log = args.audit_log;
    cfg.request_quotas = args.request_quotas;
    cfg.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsPaths {
            cert,
            key,
            client_ca: args.tls_client_ca,
        }),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    cfg.insecure_http = args.insecure_http;
    cfg.limits = Limits {
        header_read_timeout: args.header_read_timeout,
        body_timeout: args.body_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: args.max_connections,
    };
    cfg.shutdown_grace = args.shutdown_grace;
    cfg.store_options.acquire_timeout = args.storage_acquire_timeout;
    cfg.store_options.statement_timeout = args.storage_statement_timeout;
    cfg.admin_listen = match &args.admin_listen {
        Some(a) => Some(resolve_listen("--admin-listen", a).await?),
        None => None,
    };
    cfg.credential = match (
        secret_from_env("KEYFERRY_ACCESS_KEY_ID")?,
        secret_from_env("KEYFERRY_SECRET_ACCESS_KEY")?,
    ) {
        (Some(a), Some(s)) => Some(Credential {
            access_key_id: a,
            secret_access_key: keyferry_sigv4::SecretKey::new(s),
        }),
        (None, None) => None,
        _ => anyhow::bail!(
            "set both KEYFERRY_ACCESS_KEY_ID and KEYFERRY_SECRET_ACCESS_KEY (or their _FILE variants), or neither"
        ),
    };
    keyferry_server::serve(cfg).await?;
    Ok(ExitCode::SUCCESS)
}
