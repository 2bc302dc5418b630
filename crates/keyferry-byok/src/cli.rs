//! The `keyferry import` command line: the online import (one key or many), and the offline
//! helpers `keyferry import wrap` and `keyferry import fetch-parameters` for air-gapped HSM hosts.
//! `main.rs` only parses and calls [`run_import`]; every failure becomes one paragraph on stderr
//! and a non-zero exit code ([`crate::ErrorKind::exit_code`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use keyferry_types::{AlgorithmSpec, KeySpec, WrappingKeySpec};
use time::OffsetDateTime;

use crate::batch::{self, DEFAULT_CONCURRENCY};
use crate::client::{Connect, Expiry, ImportOutcome, ImportRequest, SourceSpec, kms_client};
use crate::error::{Error, ErrorKind, Result};
use crate::offline::{self, ImportParameters};
use crate::pkcs11::{KwpMechanism, ObjectQuery, TokenCapabilities, TokenSession};
use crate::source::TokenOptions;
use crate::uri::{self, ObjectType, Pkcs11Uri};
use crate::{profiles, source};

fn parse_key_spec(s: &str) -> std::result::Result<KeySpec, String> {
    s.parse().map_err(|()| {
        format!(
            "unknown key spec {s:?}; use an AWS spelling: SYMMETRIC_DEFAULT, HMAC_224/256/384/512, RSA_2048/3072/4096, ECC_NIST_P256/P384/P521, ECC_SECG_P256K1"
        )
    })
}

fn parse_algorithm(s: &str) -> std::result::Result<AlgorithmSpec, String> {
    s.parse().map_err(|()| {
        format!(
            "unknown wrapping algorithm {s:?}; use RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1, RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1"
        )
    })
}

fn parse_wrapping_key_spec(s: &str) -> std::result::Result<WrappingKeySpec, String> {
    s.parse().map_err(|()| {
        format!("unknown wrapping key spec {s:?}; use RSA_2048, RSA_3072 or RSA_4096")
    })
}

fn parse_time(s: &str) -> std::result::Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|e| {
        format!(
            "{s:?} is not an RFC 3339 time ({e}); write e.g. {} (at most 365 days ahead), or use --valid-for 90d",
            example_valid_to()
        )
    })
}

/// A `--valid-to` example the tool accepts: 90 days from now, at midnight UTC.
fn example_valid_to() -> String {
    let d = (OffsetDateTime::now_utc() + time::Duration::days(90)).date();
    format!("{d}T00:00:00Z")
}

/// `--valid-for`: a number and a unit, `d` (days), `h` (hours) or `w` (weeks), e.g. `90d`.
pub fn parse_valid_for(s: &str) -> std::result::Result<time::Duration, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a duration; write a number and d, h or w, e.g. 90d, 36h or 12w (at most 365d)"
        )
    };
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "d" => time::Duration::days(n),
        "h" => time::Duration::hours(n),
        "w" => time::Duration::weeks(n),
        _ => return Err(bad()),
    };
    if d <= time::Duration::ZERO {
        return Err(format!(
            "--valid-for {s} is not in the future; give e.g. 90d"
        ));
    }
    if d > time::Duration::days(365) {
        return Err(format!(
            "--valid-for {s} is more than 365 days, which KMS refuses; give at most 365d or use --no-expiry"
        ));
    }
    Ok(d)
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// A readable summary.
    #[default]
    Text,
    /// JSON: KeyId (ARN), KeySpec, KeyMaterialId, Verified and the details.
    Json,
}

/// How to reach KMS; unset values come from the AWS configuration chain.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// KMS endpoint URL (default: AWS_ENDPOINT_URL, or the AWS endpoint of the Region).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS Region (default: AWS_REGION or the profile's region).
    #[arg(long)]
    pub region: Option<String>,
    /// Named AWS profile (default: AWS_PROFILE or "default").
    #[arg(long)]
    pub profile: Option<String>,
}

impl ConnectArgs {
    fn connect(&self) -> Connect {
        Connect {
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            profile: self.profile.clone(),
            static_credentials: None,
        }
    }
}

/// Where the key material comes from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Key material file: raw bytes (SYMMETRIC_DEFAULT, HMAC_*) or a private key (PKCS#8 DER/PEM,
    /// RSA/EC PEM). Repeat it, or give a directory, to import several keys at once.
    #[arg(long, value_name = "FILE|DIR", conflicts_with = "pkcs11_uri")]
    pub material: Vec<PathBuf>,
    /// RFC 7512 URI of the key in a PKCS#11 token, e.g.
    /// `pkcs11:token=prod;object=signing-key?module-path=/usr/lib/softhsm/libsofthsm2.so`.
    /// The PIN comes from `pin-source`/`pin-value`, KEYFERRY_PKCS11_PIN, or a prompt. Repeatable.
    #[arg(long, value_name = "URI")]
    pub pkcs11_uri: Vec<String>,
    /// With --pkcs11-uri: import every secret and private key the URI matches (one key each).
    #[arg(long, requires = "pkcs11_uri")]
    pub all_matching: bool,
    /// Vendor HSM profile: softhsm2, luna (dpod), cloudhsm, yubihsm2 (module path and quirks).
    #[arg(long, value_name = "NAME")]
    pub hsm_profile: Option<String>,
    /// The token's RFC 5649 AES key wrap mechanism (number, 0x…, or CKM_ name); overrides the profile.
    #[arg(long, value_name = "MECHANISM")]
    pub kwp_mechanism: Option<String>,
    /// The PKCS#11 module (overrides the URI's module-path and the profile).
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
}

/// Wrapping choice.
#[derive(Debug, Clone, Args)]
pub struct WrappingArgs {
    /// Wrapping algorithm (default: the strongest the source can do for the key spec).
    #[arg(long, value_parser = parse_algorithm, value_name = "ALGORITHM")]
    pub wrapping_algorithm: Option<AlgorithmSpec>,
    /// Wrapping key spec (default RSA_4096).
    #[arg(long, value_parser = parse_wrapping_key_spec, value_name = "SPEC")]
    pub wrapping_key_spec: Option<WrappingKeySpec>,
}

/// Examples shown at the end of `keyferry import --help`.
pub const IMPORT_EXAMPLES: &str = "\
Examples:
  # Against a local `keyferry serve` (it prints this development credential):
  export AWS_ENDPOINT_URL=http://127.0.0.1:4599 AWS_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=AKIAKEYFERRYDEV00001 AWS_SECRET_ACCESS_KEY=keyferry-development-secret-not-for-production
  openssl rand -out aes.bin 32
  keyferry import --material aes.bin --alias my-aes --valid-for 90d
  openssl ecparam -name prime256v1 -genkey -noout -out ec.pem
  keyferry import --material ec.pem --no-expiry --output json
  # From a PKCS#11 token (the key is wrapped inside it):
  export KEYFERRY_PKCS11_PIN=5678
  keyferry import --pkcs11-uri 'pkcs11:token=prod;object=signing-key?module-path=/usr/lib/softhsm/libsofthsm2.so'

Exit codes: 0 imported and verified; 1 source, token or file problem (or a failed batch member);
2 usage or configuration (no Region, no credentials, alias taken, duplicate); 3 KMS refused a request;
4 verification failed; 5 endpoint unreachable.";

/// `keyferry import`: GetParametersForImport → wrap → ImportKeyMaterial → verify.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true, after_help = IMPORT_EXAMPLES)]
pub struct ImportArgs {
    /// Offline helpers.
    #[command(subcommand)]
    pub command: Option<OfflineCommand>,
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Source.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Wrapping.
    #[command(flatten)]
    pub wrapping: WrappingArgs,
    /// Key spec in AWS spelling (default: inferred from the material, or the --key-id key's).
    #[arg(long, value_parser = parse_key_spec, value_name = "SPEC")]
    pub key_spec: Option<KeySpec>,
    /// Import into this existing EXTERNAL key (key id, ARN or alias/NAME), e.g. to re-import the
    /// same material after it expired or was deleted. Without it a new key is created.
    #[arg(long, value_name = "KEY")]
    pub key_id: Option<String>,
    /// Description of the new key.
    #[arg(long, conflicts_with = "key_id")]
    pub description: Option<String>,
    /// Alias for the new key (alias/NAME or NAME).
    #[arg(long, conflicts_with = "key_id")]
    pub alias: Option<String>,
    /// When the imported material expires (RFC 3339, at most 365 days ahead, e.g.
    /// 2027-03-01T00:00:00Z). KMS deletes the material then; `keyferry keep-alive` renews it.
    #[arg(long, value_parser = parse_time, value_name = "TIME", conflicts_with_all = ["no_expiry", "valid_for"])]
    pub valid_to: Option<OffsetDateTime>,
    /// The material expires this long after the import: a number and d, h or w (e.g. 90d).
    #[arg(long, value_parser = parse_valid_for, value_name = "DURATION", conflicts_with = "no_expiry")]
    pub valid_for: Option<time::Duration>,
    /// The material does not expire (the default when --valid-to is not given).
    #[arg(long)]
    pub no_expiry: bool,
    /// Create a new KMS key even if this HSM key or file already has one (found by the
    /// keyferry:* provenance tags every import records).
    #[arg(long, conflicts_with = "key_id")]
    pub allow_duplicate: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Imports in flight at once when several sources are given.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

/// Offline steps for air-gapped HSM hosts.
#[derive(Debug, Subcommand)]
pub enum OfflineCommand {
    /// Wrap key material against ImportParameters.zip (or a wrapping key and import token) and
    /// write EncryptedKeyMaterial.bin; no network needed.
    Wrap(WrapArgs),
    /// Fetch import parameters for a key into ImportParameters.zip (and optionally separate files).
    FetchParameters(FetchArgs),
}

/// `keyferry import wrap`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example (on the HSM host, no network needed):
  keyferry import wrap --parameters ImportParameters.zip \\
      --pkcs11-uri 'pkcs11:token=prod;object=k1?module-path=/usr/lib/softhsm/libsofthsm2.so' --out EncryptedKeyMaterial.bin
  keyferry import wrap --wrapping-key WrappingPublicKey.bin --import-token ImportToken.bin \\
      --material aes.bin --wrapping-algorithm RSAES_OAEP_SHA_256

Parameters that have expired (24 hours after GetParametersForImport) are refused unless --force.")]
pub struct WrapArgs {
    /// ImportParameters.zip (from the console or `keyferry import fetch-parameters`).
    #[arg(long, value_name = "ZIP", required_unless_present = "wrapping_key", conflicts_with_all = ["wrapping_key", "import_token"])]
    pub parameters: Option<PathBuf>,
    /// The wrapping public key file (DER, PEM or base64).
    #[arg(long, value_name = "FILE", requires = "import_token")]
    pub wrapping_key: Option<PathBuf>,
    /// The import token file (only checked to belong with the wrapping key's parameters).
    #[arg(long, value_name = "FILE", requires = "wrapping_key")]
    pub import_token: Option<PathBuf>,
    /// Source.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Wrapping algorithm (default: the one the zip's README names, else the strongest possible).
    #[arg(long, value_parser = parse_algorithm, value_name = "ALGORITHM")]
    pub wrapping_algorithm: Option<AlgorithmSpec>,
    /// Key spec in AWS spelling (needed for raw HMAC material).
    #[arg(long, value_parser = parse_key_spec, value_name = "SPEC")]
    pub key_spec: Option<KeySpec>,
    /// Where to write the wrapped material.
    #[arg(long, value_name = "FILE", default_value = offline::ENCRYPTED_KEY_MATERIAL_FILE)]
    pub out: PathBuf,
    /// Wrap even though the parameters have expired (KMS will refuse the import token).
    #[arg(long)]
    pub force: bool,
}

/// `keyferry import fetch-parameters`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example (on a connected host; the parameters are valid for 24 hours):
  keyferry import fetch-parameters --key-id alias/signing --wrapping-algorithm RSA_AES_KEY_WRAP_SHA_256 \\
      --out ImportParameters.zip --token-out ImportToken.bin")]
pub struct FetchArgs {
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The EXTERNAL key (key id, ARN or alias/NAME).
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    /// Wrapping algorithm (default: the strongest for the key's spec; SoftHSM2 tokens need the
    /// _SHA_1 variants).
    #[arg(long, value_parser = parse_algorithm, value_name = "ALGORITHM")]
    pub wrapping_algorithm: Option<AlgorithmSpec>,
    /// Wrapping key spec (default RSA_4096).
    #[arg(long, value_parser = parse_wrapping_key_spec, value_name = "SPEC", default_value = "RSA_4096")]
    pub wrapping_key_spec: WrappingKeySpec,
    /// Where to write the zip.
    #[arg(long, value_name = "ZIP", default_value = offline::IMPORT_PARAMETERS_ZIP)]
    pub out: PathBuf,
    /// Also write the import token alone here (for `aws kms import-key-material --import-token fileb://…`).
    #[arg(long, value_name = "FILE")]
    pub token_out: Option<PathBuf>,
    /// Also write the wrapping public key (DER) alone here.
    #[arg(long, value_name = "FILE")]
    pub wrapping_key_out: Option<PathBuf>,
}

/// `keyferry keep-alive`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  # One pass, e.g. from cron every day: renew what expires within 7 days
  KEYFERRY_PKCS11_PIN=5678 keyferry keep-alive --renew-within 7d
  # Stay running and check every 6 hours
  keyferry keep-alive --renew-within 2d --every 6h --output json

It renews keys that `keyferry import` created (they carry keyferry:* tags) and whose material
expires (KEY_MATERIAL_EXPIRES), from the source recorded in the tags, for as long as the first
import asked. Exit codes: 0 nothing left to do; 1 a key is about to expire or its source is
unreachable; 2 usage or configuration; 5 endpoint unreachable.")]
pub struct KeepAliveArgs {
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Renew material that expires within this time (d, h or w, e.g. 7d).
    #[arg(long, value_parser = parse_valid_for, value_name = "DURATION", default_value = "7d")]
    pub renew_within: time::Duration,
    /// Keep running and make a pass this often (d, h or w, e.g. 6h); default: one pass.
    #[arg(long, value_parser = parse_valid_for, value_name = "DURATION")]
    pub every: Option<time::Duration>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Run `keyferry keep-alive …`; returns the process exit code.
pub async fn run_keep_alive(args: KeepAliveArgs) -> u8 {
    let client = match kms_client(&args.connect.connect()).await {
        Ok(c) => c,
        Err(e) => return report_error_as("keep-alive", &e),
    };
    loop {
        let code = match crate::keepalive::pass(&client, args.renew_within).await {
            Ok(items) => {
                match args.output {
                    OutputFormat::Json => match json(&items) {
                        Ok(j) => println!("{j}"),
                        Err(e) => return report_error_as("keep-alive", &e),
                    },
                    OutputFormat::Text => print!("{}", crate::keepalive::report(&items)),
                }
                u8::from(
                    items
                        .iter()
                        .any(|i| i.status == "expiring" || i.status == "unreachable"),
                )
            }
            Err(e) => report_error_as("keep-alive", &e),
        };
        let Some(every) = args.every else {
            return code;
        };
        let wait = std::time::Duration::from_secs(every.whole_seconds().max(1).unsigned_abs());
        tokio::time::sleep(wait).await;
    }
}

fn report_error_as(cmd: &str, e: &Error) -> u8 {
    eprintln!("keyferry {cmd}: error: {}", e.message());
    e.kind().exit_code()
}

fn token_options(args: &SourceArgs, pin: Option<secrecy::SecretString>) -> Result<TokenOptions> {
    Ok(TokenOptions {
        module: args.module.clone(),
        profile: args.hsm_profile.clone(),
        kwp_mechanism: match &args.kwp_mechanism {
            Some(m) => Some(KwpMechanism::parse(m)?),
            None => None,
        },
        key_spec: None,
        pin,
    })
}

/// Every `--material` file (directories expanded, sorted) and `--pkcs11-uri` key (patterns
/// expanded with `--all-matching`), as sources. The PIN is resolved once per URI.
pub fn sources(args: &SourceArgs) -> Result<Vec<SourceSpec>> {
    let mut out = Vec::new();
    for path in &args.material {
        if path.is_dir() {
            let rd = std::fs::read_dir(path).map_err(|e| Error::io("list", path, e))?;
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::usage(format!(
                    "the directory {} holds no key files",
                    path.display()
                )));
            }
            out.extend(files.into_iter().map(SourceSpec::File));
        } else {
            out.push(SourceSpec::File(path.clone()));
        }
    }
    for raw in &args.pkcs11_uri {
        let uri = Pkcs11Uri::parse(raw)?;
        let (pin, _) = uri::resolve_pin(&uri)?;
        let opts = token_options(args, Some(pin.clone()))?;
        if !args.all_matching {
            out.push(SourceSpec::Token(Box::new(uri), opts));
            continue;
        }
        let profile = match &opts.profile {
            Some(name) => Some(profiles::by_name(name)?),
            None => None,
        };
        let module = source::module_for(&uri, &opts, profile.as_ref())?;
        // Every member opens this module: found once (`module-name` reads directories).
        let mut opts = opts;
        opts.module = Some(module.clone());
        let session = TokenSession::open(&module, &uri, &pin)?;
        let base = ObjectQuery::from_uri(&uri);
        let classes = match uri.object_type {
            Some(ObjectType::Secret) => vec![ObjectType::Secret],
            Some(ObjectType::Private) => vec![ObjectType::Private],
            Some(other) => {
                return Err(Error::usage(format!(
                    "--all-matching imports secret and private keys; the URI asks for type={}",
                    other.as_str()
                )));
            }
            None => vec![ObjectType::Secret, ObjectType::Private],
        };
        let mut found = 0;
        for t in classes {
            let mut q = base.clone();
            let mut typed = uri.clone();
            typed.object_type = Some(t);
            q.class = ObjectQuery::from_uri(&typed).class;
            for obj in session.find_objects(&q)? {
                let mut one = typed.clone();
                one.object = Some(obj.label.clone());
                one.id = if obj.id.is_empty() {
                    None
                } else {
                    Some(obj.id.clone())
                };
                out.push(SourceSpec::Token(Box::new(one), opts.clone()));
                found += 1;
            }
        }
        if found == 0 {
            return Err(Error::new(
                ErrorKind::ObjectNotFound,
                format!(
                    "no secret or private key in the token matches {}; list the token's objects with `pkcs11-tool --module {} --login --list-objects`",
                    uri.redacted(),
                    module.display()
                ),
            ));
        }
    }
    if out.is_empty() {
        return Err(Error::usage(
            "no key material given: use --material FILE (raw AES/HMAC bytes or a private key) or --pkcs11-uri 'pkcs11:token=…;object=…?module-path=…'",
        ));
    }
    Ok(out)
}

/// Print one outcome as a readable summary.
pub fn summary(o: &ImportOutcome) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Imported and verified: {}\n",
        if o.verified {
            o.key_id.as_str()
        } else {
            "NOT VERIFIED"
        }
    ));
    s.push_str(&format!("  Endpoint:         {}\n", o.endpoint));
    s.push_str(&format!("  KeyId:            {}\n", o.key_id));
    s.push_str(&format!(
        "  Key:              {}\n",
        if o.created {
            "created by this import"
        } else {
            "existing key"
        }
    ));
    s.push_str(&format!("  KeySpec:          {}\n", o.key_spec));
    s.push_str(&format!("  Source:           {}\n", o.source));
    s.push_str(&format!(
        "  Wrapping:         {} with a {} wrapping key\n",
        o.wrapping_algorithm, o.wrapping_key_spec
    ));
    if let Some(id) = &o.key_material_id {
        s.push_str(&format!("  KeyMaterialId:    {id}\n"));
    }
    s.push_str(&format!("  Valid to:         {}\n", o.valid_to));
    s.push_str("  Proof:\n");
    for c in &o.checks {
        s.push_str(&format!("    ok  {c}\n"));
    }
    for n in &o.notes {
        s.push_str(&format!("  Note: {n}\n"));
    }
    s
}

fn request(args: &ImportArgs) -> ImportRequest {
    ImportRequest {
        key_id: args.key_id.clone(),
        key_spec: args.key_spec,
        description: args.description.clone(),
        alias: args.alias.clone(),
        expiry: match (args.valid_to, args.valid_for) {
            _ if args.no_expiry => Expiry::Never,
            (Some(t), _) => Expiry::At(t),
            (None, Some(d)) => Expiry::At(
                (OffsetDateTime::now_utc() + d)
                    .replace_nanosecond(0)
                    .unwrap_or_else(|_| OffsetDateTime::now_utc() + d),
            ),
            (None, None) => Expiry::Never,
        },
        wrapping_algorithm: args.wrapping.wrapping_algorithm,
        wrapping_key_spec: args.wrapping.wrapping_key_spec,
        allow_duplicate: args.allow_duplicate,
    }
}

fn report_error(e: &Error) -> u8 {
    eprintln!("keyferry import: error: {}", e.message());
    e.kind().exit_code()
}

/// Run `keyferry import …`; returns the process exit code (0 on success).
pub async fn run_import(args: ImportArgs) -> u8 {
    let result = match &args.command {
        Some(OfflineCommand::Wrap(w)) => run_wrap(w).map(|()| 0),
        Some(OfflineCommand::FetchParameters(f)) => run_fetch(f).await.map(|()| 0),
        None => run_online(&args).await,
    };
    result.unwrap_or_else(|e| report_error(&e))
}

async fn run_online(args: &ImportArgs) -> Result<u8> {
    let sources = sources(&args.source)?;
    let req = request(args);
    if sources.len() > 1 && (req.key_id.is_some() || req.alias.is_some()) {
        return Err(Error::usage(
            "--key-id and --alias name one key; with several sources each gets a new key (omit them)",
        ));
    }
    let client = kms_client(&args.connect.connect()).await?;
    if let [one] = sources.as_slice() {
        let o = crate::client::import(&client, one, &req).await?;
        match args.output {
            OutputFormat::Json => println!("{}", json(&o)?),
            OutputFormat::Text => print!("{}", summary(&o)),
        }
        return Ok(0);
    }
    let items = batch::import_many(&client, sources, &req, args.concurrency).await;
    let failed = items.iter().filter(|i| i.result.is_err()).count();
    match args.output {
        OutputFormat::Json => {
            let arr: Vec<serde_json::Value> = items
                .iter()
                .map(|it| match &it.result {
                    Ok(o) => serde_json::to_value(o).unwrap_or(serde_json::Value::Null),
                    Err(e) => serde_json::json!({
                        "Source": it.label,
                        "Verified": false,
                        "Error": e.message(),
                        "ErrorCode": e.code(),
                    }),
                })
                .collect();
            println!("{}", json(&arr)?);
        }
        OutputFormat::Text => print!("{}", batch::table(&items)),
    }
    if failed > 0 {
        eprintln!(
            "keyferry import: {failed} of {} imports failed (see above)",
            items.len()
        );
        return Ok(1);
    }
    Ok(0)
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot write JSON: {e}")))
}

fn run_wrap(args: &WrapArgs) -> Result<()> {
    let (params, readme_alg) = match (&args.parameters, &args.wrapping_key, &args.import_token) {
        (Some(zip), _, _) => (
            ImportParameters::read_zip(zip)?,
            offline::zip_wrapping_algorithm(zip),
        ),
        (None, Some(k), Some(t)) => (ImportParameters::read_files(k, t)?, None),
        _ => {
            return Err(Error::usage(
                "give --parameters ImportParameters.zip, or --wrapping-key FILE and --import-token FILE",
            ));
        }
    };
    if let Some(zip) = &args.parameters
        && let Some(until) = offline::zip_valid_until(zip)
        && until <= OffsetDateTime::now_utc()
    {
        let when = until
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| until.unix_timestamp().to_string());
        if !args.force {
            return Err(Error::usage(format!(
                "the import parameters in {} expired at {when}, so KMS would refuse the import; fetch new ones (`keyferry import fetch-parameters --key-id {} --out {}`), or pass --force to wrap anyway",
                zip.display(),
                params.key_id.as_deref().unwrap_or("KEY_ID"),
                zip.display()
            )));
        }
        eprintln!(
            "keyferry import wrap: warning: the parameters expired at {when}; wrapping anyway (--force)"
        );
    }
    let mut specs = sources(&args.source)?;
    if specs.len() != 1 {
        return Err(Error::usage(
            "`keyferry import wrap` wraps one key: give one --material or one --pkcs11-uri",
        ));
    }
    let spec = specs.remove(0);
    let src = spec.open(args.key_spec)?;
    let mut notes = src.notes().to_vec();
    let algorithm = match args.wrapping_algorithm.or(readme_alg) {
        Some(a) => a,
        None => {
            let c = src.choose_wrapping()?;
            notes.extend(c.notes);
            notes.push(format!(
                "no wrapping algorithm given and the parameters do not name one; {} was used: it must be the algorithm the parameters were requested with",
                c.algorithm
            ));
            c.algorithm
        }
    };
    let wrapped = src.wrap(algorithm, &params.wrapping_public_key)?;
    offline::write_encrypted_key_material(&args.out, &wrapped)?;
    println!(
        "Wrapped {} ({}) with {} under the {} wrapping key{}.",
        src.describe(),
        src.key_spec(),
        algorithm,
        params.wrapping_key_spec()?,
        params
            .key_id
            .as_ref()
            .map(|k| format!(" of key {k}"))
            .unwrap_or_default()
    );
    println!("Wrote {} ({} bytes).", args.out.display(), wrapped.len());
    for n in notes {
        println!("Note: {n}");
    }
    println!(
        "Import it (with the import token from the same parameters, before they expire):\n  aws kms import-key-material --key-id {} --encrypted-key-material fileb://{} --import-token fileb://ImportToken.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE",
        params.key_id.as_deref().unwrap_or("KEY_ID"),
        args.out.display()
    );
    Ok(())
}

async fn run_fetch(args: &FetchArgs) -> Result<()> {
    let client = kms_client(&args.connect.connect()).await?;
    let d = client
        .describe_key()
        .key_id(&args.key_id)
        .send()
        .await
        .map_err(|e| crate::client::sdk_error("DescribeKey", e))?;
    let meta = d
        .key_metadata()
        .ok_or_else(|| Error::new(ErrorKind::Service, "DescribeKey returned no KeyMetadata"))?;
    let arn = meta.arn().unwrap_or(meta.key_id()).to_string();
    let algorithm = match args.wrapping_algorithm {
        Some(a) => a,
        None => {
            let spec: KeySpec = meta
                .key_spec()
                .map(|s| s.as_str())
                .unwrap_or("SYMMETRIC_DEFAULT")
                .parse()
                .map_err(|()| Error::new(ErrorKind::Unsupported, "the key's spec is unknown"))?;
            source::choose_wrapping(spec, &TokenCapabilities::software())?.algorithm
        }
    };
    let out = client
        .get_parameters_for_import()
        .key_id(&arn)
        .wrapping_algorithm(aws_sdk_kms::types::AlgorithmSpec::from(algorithm.as_str()))
        .wrapping_key_spec(aws_sdk_kms::types::WrappingKeySpec::from(
            args.wrapping_key_spec.as_str(),
        ))
        .send()
        .await
        .map_err(|e| crate::client::sdk_error("GetParametersForImport", e))?;
    let (Some(pk), Some(token)) = (out.public_key(), out.import_token()) else {
        return Err(Error::new(
            ErrorKind::Service,
            "GetParametersForImport returned no PublicKey or ImportToken",
        ));
    };
    let valid_to = out
        .parameters_valid_to()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
    let params = ImportParameters::new(pk.as_ref().to_vec(), token.as_ref().to_vec())?;
    params.write_zip(&args.out, &arn, algorithm, valid_to)?;
    write_opt(args.token_out.as_deref(), token.as_ref())?;
    write_opt(args.wrapping_key_out.as_deref(), pk.as_ref())?;
    println!(
        "Wrote {} for {arn}: {} wrapping key, wrapping algorithm {algorithm}, valid until {}.",
        args.out.display(),
        args.wrapping_key_spec,
        valid_to
            .and_then(|t| t
                .format(&time::format_description::well_known::Rfc3339)
                .ok())
            .unwrap_or_else(|| "24 hours from now".into())
    );
    println!(
        "Next, on the HSM host: keyferry import wrap --parameters {} --pkcs11-uri 'pkcs11:…' --out EncryptedKeyMaterial.bin",
        args.out.display()
    );
    Ok(())
}

fn write_opt(path: Option<&Path>, data: &[u8]) -> Result<()> {
    match path {
        Some(p) => std::fs::write(p, data).map_err(|e| Error::io("write", p, e)),
        None => Ok(()),
    }
}

/// Whether stdout is a terminal (for callers deciding on colour or progress).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        c: C,
    }
    #[derive(clap::Subcommand)]
    enum C {
        Import(ImportArgs),
    }

    fn parse(args: &[&str]) -> std::result::Result<ImportArgs, clap::Error> {
        let mut v = vec!["keyferry", "import"];
        v.extend_from_slice(args);
        T::try_parse_from(v).map(|t| match t.c {
            C::Import(a) => a,
        })
    }

    #[test]
    fn parses_online_and_offline_forms() {
        let a = parse(&[
            "--material",
            "k.pem",
            "--key-spec",
            "ECC_NIST_P256",
            "--valid-to",
            "2030-01-01T00:00:00Z",
            "--output",
            "json",
        ])
        .unwrap();
        assert_eq!(a.key_spec, Some(KeySpec::ECC_NIST_P256));
        assert!(a.valid_to.is_some());
        assert_eq!(a.output, OutputFormat::Json);
        let w = parse(&["wrap", "--parameters", "p.zip", "--material", "k.bin"]).unwrap();
        assert!(matches!(w.command, Some(OfflineCommand::Wrap(_))));
        let f = parse(&["fetch-parameters", "--key-id", "k"]).unwrap();
        assert!(matches!(
            f.command,
            Some(OfflineCommand::FetchParameters(_))
        ));
    }

    #[test]
    fn refuses_bad_values() {
        assert!(parse(&["--material", "k", "--key-spec", "AES_256"]).is_err());
        assert!(parse(&["--material", "k", "--valid-to", "tomorrow"]).is_err());
        assert!(
            parse(&[
                "--material",
                "k",
                "--valid-to",
                "2030-01-01T00:00:00Z",
                "--no-expiry"
            ])
            .is_err()
        );
        assert!(parse(&["--material", "k", "--key-id", "x", "--alias", "a"]).is_err());
    }

    #[test]
    fn valid_for_is_relative_and_bounded() {
        assert_eq!(parse_valid_for("90d").unwrap(), time::Duration::days(90));
        assert_eq!(parse_valid_for("36h").unwrap(), time::Duration::hours(36));
        assert_eq!(parse_valid_for("2w").unwrap(), time::Duration::weeks(2));
        assert!(parse_valid_for("366d").unwrap_err().contains("365"));
        assert!(parse_valid_for("0d").is_err());
        assert!(parse_valid_for("90").unwrap_err().contains("90d"));
        assert!(parse_valid_for("3mo").is_err());
        let a = parse(&["--material", "k", "--valid-for", "90d"]).unwrap();
        let Expiry::At(t) = request(&a).expiry else {
            panic!("--valid-for gives an expiry")
        };
        let left = t - OffsetDateTime::now_utc();
        assert!(left > time::Duration::days(89) && left <= time::Duration::days(90));
        assert!(parse(&["--material", "k", "--valid-for", "9d", "--no-expiry"]).is_err());
        assert!(
            parse(&[
                "--material",
                "k",
                "--valid-for",
                "9d",
                "--valid-to",
                "2030-01-01T00:00:00Z"
            ])
            .is_err()
        );
        // The example in the error message is one the tool accepts.
        let ex = example_valid_to();
        let t = parse_time(&ex).unwrap();
        assert!(
            t > OffsetDateTime::now_utc()
                && t < OffsetDateTime::now_utc() + time::Duration::days(365)
        );
        assert!(
            parse_time("2030-01-01")
                .unwrap_err()
                .contains("--valid-for 90d")
        );
    }

    #[test]
    fn every_help_has_an_example() {
        use clap::CommandFactory;
        let mut cmd = T::command();
        let import = cmd.find_subcommand_mut("import").unwrap();
        let help = import.render_long_help().to_string();
        assert!(
            help.contains("Examples:") && help.contains("keyferry import --material"),
            "{help}"
        );
        assert!(help.contains("Exit codes:"), "{help}");
        for sub in ["wrap", "fetch-parameters"] {
            let h = import
                .find_subcommand_mut(sub)
                .unwrap()
                .render_long_help()
                .to_string();
            assert!(
                h.contains("Example") && h.contains(&format!("keyferry import {sub}")),
                "{sub}: {h}"
            );
        }
    }

    #[test]
    fn no_source_is_a_usage_error() {
        let a = parse(&[]).unwrap();
        let e = sources(&a.source).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
    }
}
