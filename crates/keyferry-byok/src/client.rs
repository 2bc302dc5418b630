//! The online import: GetParametersForImport → wrap → ImportKeyMaterial → verify, with the
//! official `aws-sdk-kms` client and the standard AWS configuration chain. Local checks (the
//! source opens, its material fits the key spec, the wrapping is possible) all run before a key
//! is created, so a user's mistake never leaves a key behind; a failure after CreateKey schedules
//! the new key's deletion (7 days, the minimum) and says so.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::types as kt;
use aws_smithy_types::Blob;
use keyferry_types::{
    AlgorithmSpec, EncryptionAlgorithmSpec, KeySpec, MessageType, SigningAlgorithmSpec,
    WrappingKeySpec,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{Error, ErrorKind, Result};
use crate::provenance;
use crate::source::{
    FileSource, MaterialKind, Source, TokenOptions, TokenSource, mac_algorithm_for,
};
use crate::uri::Pkcs11Uri;

/// Where and how to reach the KMS endpoint. Unset fields come from the AWS configuration chain
/// (environment, `~/.aws/config` and credentials, `AWS_ENDPOINT_URL`).
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// Endpoint URL (overrides `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// AWS Region (overrides `AWS_REGION` / the profile's region).
    pub region: Option<String>,
    /// Named profile (overrides `AWS_PROFILE`).
    pub profile: Option<String>,
    /// Static credentials (the demo's development credential); otherwise the chain's.
    pub static_credentials: Option<(String, String)>,
}

fn endpoints() -> &'static std::sync::Mutex<Option<String>> {
    static E: std::sync::OnceLock<std::sync::Mutex<Option<String>>> = std::sync::OnceLock::new();
    E.get_or_init(|| std::sync::Mutex::new(None))
}

/// The endpoint the last [`kms_client`] talks to, as shown to the user (the URL, or "AWS KMS in
/// REGION (https://kms.REGION.amazonaws.com)").
pub fn current_endpoint() -> String {
    endpoints()
        .lock()
        .ok()
        .and_then(|e| e.clone())
        .unwrap_or_else(|| "the KMS endpoint".to_string())
}

/// Build a KMS client from the AWS configuration chain plus `connect`'s overrides. Nothing is
/// sent: a missing Region or missing credentials are reported here, as configuration problems.
pub async fn kms_client(connect: &Connect) -> Result<Client> {
    use aws_credential_types::provider::ProvideCredentials;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(120))
            .build(),
    );
    if let Some(p) = &connect.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &connect.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(u) = &connect.endpoint_url {
        loader = loader.endpoint_url(u);
    }
    if let Some((akid, secret)) = &connect.static_credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            akid.clone(),
            secret.clone(),
            None,
            None,
            "keyferry",
        ));
    }
    let conf = loader.load().await;
    let Some(region) = conf.region().map(|r| r.to_string()) else {
        return Err(Error::usage(
            "no AWS Region configured: set AWS_REGION (or a region in your AWS profile) or pass --region; nothing was sent",
        ));
    };
    let endpoint = describe_endpoint(conf.endpoint_url(), &region);
    if let Ok(mut e) = endpoints().lock() {
        *e = Some(endpoint.clone());
    }
    let has_credentials = match conf.credentials_provider() {
        Some(p) => p.provide_credentials().await.is_ok(),
        None => false,
    };
    if !has_credentials {
        return Err(Error::usage(format!(
            "no AWS credentials found for {endpoint}, so nothing was sent: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for `keyferry serve`, the development credential it prints at start), or choose a profile with --profile / AWS_PROFILE"
        )));
    }
    Ok(Client::new(&conf))
}

/// How an endpoint is named in messages: the URL given, or AWS KMS in the Region.
pub fn describe_endpoint(url: Option<&str>, region: &str) -> String {
    match url {
        Some(u) => u.to_string(),
        None => format!("AWS KMS in {region} (https://kms.{region}.amazonaws.com)"),
    }
}

/// The innermost cause of an error, in one line (e.g. "Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > 120 {
        let cut: String = line.chars().take(117).collect();
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

/// What a KMS error code means for the user, as a hint appended to AWS's message.
pub fn hint_for(code: &str) -> &'static str {
    match code {
        "ExpiredImportTokenException" => {
            "The wrapping key and import token from GetParametersForImport are valid for 24 hours. Run `keyferry import` again (it fetches fresh parameters); on the offline path run `keyferry import fetch-parameters` again and wrap the material against the new ImportParameters.zip."
        }
        "IncorrectKeyMaterialException" => {
            "A KMS key that has ever had key material accepts only that same material again. To import different material, create a new key (omit --key-id); otherwise check that the file or token object is the one originally imported and that it matches the key spec."
        }
        "InvalidImportTokenException" => {
            "The import token does not belong to this key (or to this wrapping key), or it was damaged. Use the ImportParameters fetched for this very key, or run the import again to fetch new ones."
        }
        "InvalidCiphertextException" => {
            "KMS could not unwrap the material: the wrapping algorithm used must be the one the parameters were requested with, and the material must be wrapped with that wrapping key."
        }
        "NotFoundException" => {
            "Check --key-id (a key id, key ARN or alias/NAME), the Region and the endpoint."
        }
        "KMSInvalidStateException" => {
            "The key's state does not allow this operation; check it with `aws kms describe-key` (a key pending deletion must be restored with cancel-key-deletion first)."
        }
        "UnsupportedOperationException" => {
            "Key material can be imported only into keys created with Origin EXTERNAL; omit --key-id to create one."
        }
        "AlreadyExistsException" => "Choose another --alias, or omit it.",
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "AccessDeniedException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken" => {
            "Check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile) and that they are allowed to use this endpoint."
        }
        "ValidationException" => "Check the arguments against the message above.",
        _ => "",
    }
}

/// Turn an SDK error into a one-paragraph message with what to do.
pub fn sdk_error<E, R>(operation: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("UnknownError").to_string();
            let msg = err.message().unwrap_or("").to_string();
            let hint = hint_for(&code);
            let mut text = format!("{operation} failed: {code}: {msg}");
            if !hint.is_empty() {
                text.push(' ');
                text.push_str(hint);
            }
            Error::new(ErrorKind::Service, text).with_code(code)
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            let cause = root_cause(&e);
            Error::new(
                ErrorKind::Network,
                format!(
                    "{operation} failed: cannot reach {} ({}); check that the server is running and the URL (--endpoint-url / AWS_ENDPOINT_URL) and Region (--region / AWS_REGION) are right.",
                    current_endpoint(),
                    if cause.is_empty() {
                        "no answer".to_string()
                    } else {
                        cause
                    }
                ),
            )
        }
        SdkError::ResponseError(_) => Error::new(
            ErrorKind::Network,
            format!(
                "{operation} failed: {} answered with something that is not a KMS response ({}); check that --endpoint-url / AWS_ENDPOINT_URL points at a KMS endpoint.",
                current_endpoint(),
                root_cause(&e)
            ),
        ),
        _ => Error::new(
            ErrorKind::Network,
            format!(
                "{operation} failed before reaching {}: {}.",
                current_endpoint(),
                root_cause(&e)
            ),
        ),
    }
}

/// When the imported material expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// `--no-expiry`: KEY_MATERIAL_DOES_NOT_EXPIRE.
    Never,
    /// `--valid-to TIME`: KEY_MATERIAL_EXPIRES at TIME.
    At(OffsetDateTime),
}

/// Where the key material comes from, before it is opened.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// A key file.
    File(PathBuf),
    /// A key in a PKCS#11 token.
    Token(Box<Pkcs11Uri>, TokenOptions),
}

impl SourceSpec {
    /// Open the source, with `key_spec` as the spec to expect (or to give raw material).
    pub fn open(&self, key_spec: Option<KeySpec>) -> Result<Source> {
        match self {
            Self::File(p) => Ok(FileSource::read(p, key_spec)?.into()),
            Self::Token(uri, opts) => {
                let mut opts = opts.clone();
                if opts.key_spec.is_none() {
                    opts.key_spec = key_spec;
                }
                Ok(TokenSource::open(uri, &opts)?.into())
            }
        }
    }

    /// The source as given (JSON's `Source` of a failed batch member).
    pub fn label(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Token(uri, _) => uri.redacted(),
        }
    }

    /// A short name for the batch table: the file name, or `token/object` (with the id).
    pub fn short_label(&self) -> String {
        match self {
            Self::File(p) => p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            Self::Token(uri, _) => {
                let mut s = format!(
                    "{}/{}",
                    uri.token.as_deref().unwrap_or("token"),
                    uri.object.as_deref().unwrap_or("-")
                );
                if let Some(id) = &uri.id {
                    s.push_str(&format!(" (id {})", hex::encode(id)));
                }
                s
            }
        }
    }
}

/// What to import into and how.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// Import into this existing EXTERNAL key (id, ARN or alias); otherwise create a key.
    pub key_id: Option<String>,
    /// The key spec (AWS spelling); inferred from the material when absent.
    pub key_spec: Option<KeySpec>,
    /// Description for a created key.
    pub description: Option<String>,
    /// Alias (`alias/NAME` or `NAME`) for a created key.
    pub alias: Option<String>,
    /// When the material expires.
    pub expiry: Expiry,
    /// Wrapping algorithm; default: the strongest the source can do.
    pub wrapping_algorithm: Option<AlgorithmSpec>,
    /// Wrapping key spec; default RSA_4096.
    pub wrapping_key_spec: Option<WrappingKeySpec>,
    /// Create a new key even when the source's material already has one (by its provenance tags).
    pub allow_duplicate: bool,
}

/// The result of one import, as printed (`--output json` uses these field names).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportOutcome {
    /// The key ARN.
    pub key_id: String,
    /// The key spec.
    pub key_spec: String,
    /// The KeyMaterialId KMS reported, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
    /// True when every check passed.
    pub verified: bool,
    /// Whether this run created the key.
    pub created: bool,
    /// The source, described.
    pub source: String,
    /// The wrapping algorithm used.
    pub wrapping_algorithm: String,
    /// The wrapping key spec used.
    pub wrapping_key_spec: String,
    /// The expiry of the material (RFC 3339) or "never".
    pub valid_to: String,
    /// The checks done, one line each.
    pub checks: Vec<String>,
    /// Notes on choices made (fallbacks, inferred specs).
    pub notes: Vec<String>,
    /// The endpoint the key lives in (text output only; JSON's KeyId ARN names it already).
    #[serde(skip)]
    pub endpoint: String,
}

fn to_sdk_spec(spec: KeySpec) -> kt::KeySpec {
    kt::KeySpec::from(spec.as_str())
}

fn key_usage_for(spec: KeySpec) -> Result<kt::KeyUsageType> {
    Ok(match MaterialKind::of(spec)? {
        MaterialKind::Symmetric => kt::KeyUsageType::EncryptDecrypt,
        MaterialKind::Hmac => kt::KeyUsageType::GenerateVerifyMac,
        MaterialKind::Ec | MaterialKind::Rsa => kt::KeyUsageType::SignVerify,
    })
}

fn parse_spec(s: &str) -> Result<KeySpec> {
    s.parse::<KeySpec>().map_err(|()| {
        Error::new(
            ErrorKind::Unsupported,
            format!("the key's spec {s} is not known to this client"),
        )
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Facts about an existing key from DescribeKey.
struct ExistingKey {
    arn: String,
    spec: KeySpec,
    usage: Option<kt::KeyUsageType>,
}

async fn describe_existing(client: &Client, key_id: &str) -> Result<ExistingKey> {
    let out = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeKey", e))?;
    let meta = out.key_metadata().ok_or_else(|| {
        Error::new(
            ErrorKind::Service,
            "DescribeKey returned no KeyMetadata; the endpoint is not KMS-compatible",
        )
    })?;
    let arn = meta.arn().unwrap_or(meta.key_id()).to_string();
    if meta.origin() != Some(&kt::OriginType::External) {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "the key {arn} has origin {}, but key material can be imported only into keys created with Origin EXTERNAL; omit --key-id to create one",
                meta.origin().map_or("unknown", |o| o.as_str())
            ),
        ));
    }
    if meta.key_state() == Some(&kt::KeyState::PendingDeletion) {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "the key {arn} is pending deletion; run `aws kms cancel-key-deletion --key-id {arn}` first if you want to keep it"
            ),
        ));
    }
    let spec_str = meta
        .key_spec()
        .map(|s| s.as_str())
        .unwrap_or("SYMMETRIC_DEFAULT");
    Ok(ExistingKey {
        spec: parse_spec(spec_str)?,
        usage: meta.key_usage().cloned(),
        arn,
    })
}

/// The keys with provenance tags at the endpoint, listed once per process (the first import
/// that needs them) and kept up to date with the keys this process creates.
static RECORDED: tokio::sync::OnceCell<tokio::sync::Mutex<Vec<provenance::Recorded>>> =
    tokio::sync::OnceCell::const_new();

async fn recorded(
    client: &Client,
) -> Result<&'static tokio::sync::Mutex<Vec<provenance::Recorded>>> {
    RECORDED
        .get_or_try_init(|| async {
            provenance::recorded_keys(client)
                .await
                .map(tokio::sync::Mutex::new)
        })
        .await
}

/// `alias/NAME` for `NAME` or `alias/NAME`.
pub fn alias_name(alias: &str) -> String {
    if alias.starts_with("alias/") {
        alias.to_string()
    } else {
        format!("alias/{alias}")
    }
}

/// Refuse an alias that already names a key, before any key is created.
async fn check_alias_free(client: &Client, alias: &str) -> Result<()> {
    if alias.starts_with("alias/aws/") {
        return Err(Error::usage(format!(
            "the alias {alias} is reserved for AWS managed keys; choose another --alias"
        )));
    }
    match client.describe_key().key_id(alias).send().await {
        Ok(out) => {
            let target = out
                .key_metadata()
                .map(|m| m.arn().unwrap_or(m.key_id()).to_string())
                .unwrap_or_else(|| "another key".to_string());
            Err(Error::usage(format!(
                "the alias {alias} already exists (it names {target}), so no key was created; choose another --alias, or re-import into that key with --key-id {alias}"
            )))
        }
        Err(SdkError::ServiceError(se)) if se.err().code() == Some("NotFoundException") => Ok(()),
        Err(e) => Err(sdk_error("DescribeKey (is the alias free?)", e)),
    }
}

/// Import the material `source` names into KMS and verify it. Opens the source, checks it, and
/// only then creates a key (unless `req.key_id` names one).
pub async fn import(
    client: &Client,
    source: &SourceSpec,
    req: &ImportRequest,
) -> Result<ImportOutcome> {
    // 1. Everything that can fail locally, before any key exists.
    let existing = match &req.key_id {
        Some(id) => Some(describe_existing(client, id).await?),
        None => None,
    };
    if let (Some(e), Some(given)) = (&existing, req.key_spec)
        && e.spec != given
    {
        return Err(Error::new(
            ErrorKind::Material,
            format!(
                "--key-spec is {given}, but the key {} is {}; omit --key-spec or choose another key",
                e.arn, e.spec
            ),
        ));
    }
    let hint = existing.as_ref().map(|e| e.spec).or(req.key_spec);
    let src = source.open(hint)?;
    let spec = src.key_spec();
    if let Some(e) = &existing
        && e.spec != spec
    {
        return Err(Error::new(
            ErrorKind::Material,
            format!(
                "{} holds {spec} material, but the key {} is {}; key material must match the key spec",
                src.describe(),
                e.arn,
                e.spec
            ),
        ));
    }
    let mut notes: Vec<String> = src.notes().to_vec();
    let (algorithm, wks) = match (req.wrapping_algorithm, req.wrapping_key_spec) {
        (None, None) => {
            let c = src.choose_wrapping()?;
            notes.extend(c.notes);
            (c.algorithm, c.wrapping_key_spec)
        }
        (alg, wks) => {
            let alg = match alg {
                Some(a) => a,
                None => {
                    let c = src.choose_wrapping()?;
                    notes.extend(c.notes);
                    c.algorithm
                }
            };
            let wks = wks.unwrap_or(WrappingKeySpec::RSA_4096);
            crate::source::check_wrapping(spec, alg, wks, &src.capabilities())?;
            (alg, wks)
        }
    };
    if let Expiry::At(t) = req.expiry
        && t <= OffsetDateTime::now_utc()
    {
        return Err(Error::usage(format!(
            "--valid-to {} is in the past; give a future time (RFC 3339, e.g. 2030-01-01T00:00:00Z) or --no-expiry",
            rfc3339(t)
        )));
    }

    if let Expiry::At(t) = req.expiry
        && t > OffsetDateTime::now_utc() + time::Duration::days(365)
    {
        return Err(Error::usage(format!(
            "--valid-to {} is more than 365 days ahead, which KMS refuses; choose an earlier time or --no-expiry",
            rfc3339(t)
        )));
    }

    if existing.is_none()
        && let Some(alias) = &req.alias
    {
        check_alias_free(client, &alias_name(alias)).await?;
    }
    let mut tags = src.provenance()?;
    if let Expiry::At(t) = req.expiry {
        // Rounded to the minute: `--valid-for 1h` records 3600, whatever the clock did meanwhile.
        let secs = (((t - OffsetDateTime::now_utc()).whole_seconds() + 30) / 60 * 60).max(60);
        tags.push((provenance::VALID_FOR.to_string(), secs.to_string()));
    }
    if existing.is_none() && !req.allow_duplicate {
        let known = recorded(client).await?;
        let dup = {
            let known = known.lock().await;
            provenance::find_duplicate(&known, &tags).map(|r| r.arn.clone())
        };
        if let Some(arn) = dup {
            return Err(Error::usage(format!(
                "{} was already imported as {arn} (by its provenance tags), so no second key was created; re-import into that key with --key-id {arn}, or pass --allow-duplicate to create another",
                src.describe()
            )));
        }
    }

    // 2. The key.
    let (arn, created, usage) = match existing {
        Some(e) => (e.arn, false, e.usage),
        None => {
            let usage = key_usage_for(spec)?;
            let mut b = client
                .create_key()
                .origin(kt::OriginType::External)
                .key_spec(to_sdk_spec(spec))
                .key_usage(usage.clone());
            if let Some(d) = &req.description {
                b = b.description(d);
            }
            b = b.set_tags(Some(provenance::sdk_tags(&tags)?));
            let out = b.send().await.map_err(|e| sdk_error("CreateKey", e))?;
            let meta = out.key_metadata().ok_or_else(|| {
                Error::new(ErrorKind::Service, "CreateKey returned no KeyMetadata")
            })?;
            let arn = meta.arn().unwrap_or(meta.key_id()).to_string();
            if let Some(known) = RECORDED.get() {
                known.lock().await.push(provenance::Recorded {
                    arn: arn.clone(),
                    tags: tags.clone(),
                });
            }
            (arn, true, Some(usage))
        }
    };

    let mut imported = false;
    let result = import_steps(
        client,
        &src,
        req,
        &arn,
        created,
        usage.as_ref(),
        algorithm,
        wks,
        &mut imported,
    )
    .await;
    if created
        && let Ok((Some(id), _)) = &result
        && provenance::tag(&tags, provenance::FINGERPRINT).is_none()
    {
        let fp = (provenance::FINGERPRINT.to_string(), format!("kmid:{id}"));
        if let Ok(t) = provenance::sdk_tags(&vec![fp.clone()]) {
            match client
                .tag_resource()
                .key_id(&arn)
                .set_tags(Some(t))
                .send()
                .await
            {
                Ok(_) => {
                    if let Some(known) = RECORDED.get()
                        && let Some(r) = known.lock().await.iter_mut().find(|r| r.arn == arn)
                    {
                        r.tags.push(fp);
                    }
                }
                Err(e) => notes.push(format!(
                    "the KeyMaterialId could not be recorded as a tag: {}",
                    sdk_error("TagResource", e).message()
                )),
            }
        }
    }
    match result {
        Ok((material_id, checks)) => Ok(ImportOutcome {
            key_id: arn,
            key_spec: spec.as_str().to_string(),
            key_material_id: material_id,
            verified: true,
            created,
            source: src.describe(),
            wrapping_algorithm: algorithm.as_str().to_string(),
            wrapping_key_spec: wks.as_str().to_string(),
            valid_to: match req.expiry {
                Expiry::Never => "never".to_string(),
                Expiry::At(t) => rfc3339(t),
            },
            checks,
            notes,
            endpoint: current_endpoint(),
        }),
        Err(e) => Err(cleanup(client, &arn, created, imported, req.alias.is_some(), e).await),
    }
}

#[allow(clippy::too_many_arguments)]
async fn import_steps(
    client: &Client,
    src: &Source,
    req: &ImportRequest,
    arn: &str,
    created: bool,
    usage: Option<&kt::KeyUsageType>,
    algorithm: AlgorithmSpec,
    wks: WrappingKeySpec,
    imported: &mut bool,
) -> Result<(Option<String>, Vec<String>)> {
    if created && let Some(alias) = &req.alias {
        client
            .create_alias()
            .alias_name(alias_name(alias))
            .target_key_id(arn)
            .send()
            .await
            .map_err(|e| sdk_error("CreateAlias", e))?;
    }
    let params = client
        .get_parameters_for_import()
        .key_id(arn)
        .wrapping_algorithm(kt::AlgorithmSpec::from(algorithm.as_str()))
        .wrapping_key_spec(kt::WrappingKeySpec::from(wks.as_str()))
        .send()
        .await
        .map_err(|e| sdk_error("GetParametersForImport", e))?;
    let (Some(public_key), Some(token)) = (params.public_key(), params.import_token()) else {
        return Err(Error::new(
            ErrorKind::Service,
            "GetParametersForImport returned no PublicKey or ImportToken",
        ));
    };
    let wrapped = src.wrap(algorithm, public_key.as_ref())?;
    let mut b = client
        .import_key_material()
        .key_id(arn)
        .import_token(token.clone())
        .encrypted_key_material(Blob::new(wrapped));
    b = match req.expiry {
        Expiry::Never => b.expiration_model(kt::ExpirationModelType::KeyMaterialDoesNotExpire),
        Expiry::At(t) => b
            .expiration_model(kt::ExpirationModelType::KeyMaterialExpires)
            .valid_to(aws_smithy_types::DateTime::from_secs(t.unix_timestamp())),
    };
    let out = b
        .send()
        .await
        .map_err(|e| sdk_error("ImportKeyMaterial", e))?;
    *imported = true;
    let mut material_id = out.key_material_id().map(str::to_string);
    let mut checks = verify(client, src, arn, usage).await?;
    if material_id.is_none() {
        material_id = client
            .describe_key()
            .key_id(arn)
            .send()
            .await
            .ok()
            .and_then(|d| {
                d.key_metadata()
                    .and_then(|m| m.current_key_material_id().map(str::to_string))
            });
    }
    if MaterialKind::of(src.key_spec())? == MaterialKind::Symmetric {
        checks.push(
            prove_identity(
                client,
                src,
                req,
                arn,
                algorithm,
                wks,
                material_id.as_deref(),
            )
            .await?,
        );
    }
    Ok((material_id, checks))
}

/// Proof that KMS holds this very symmetric material (a round trip only shows it has *a* key):
/// the source wraps its key again under fresh import parameters, and KMS re-imports it as
/// EXISTING_KEY_MATERIAL with the KeyMaterialId it reported, which it accepts only for
/// identical material (IncorrectKeyMaterialException otherwise). AWS KMS supports the same call;
/// it costs one more GetParametersForImport and ImportKeyMaterial.
async fn prove_identity(
    client: &Client,
    src: &Source,
    req: &ImportRequest,
    arn: &str,
    algorithm: AlgorithmSpec,
    wks: WrappingKeySpec,
    material_id: Option<&str>,
) -> Result<String> {
    let params = client
        .get_parameters_for_import()
        .key_id(arn)
        .wrapping_algorithm(kt::AlgorithmSpec::from(algorithm.as_str()))
        .wrapping_key_spec(kt::WrappingKeySpec::from(wks.as_str()))
        .send()
        .await
        .map_err(|e| sdk_error("GetParametersForImport (identity proof)", e))?;
    let (Some(public_key), Some(token)) = (params.public_key(), params.import_token()) else {
        return Err(Error::new(
            ErrorKind::Service,
            "GetParametersForImport returned no PublicKey or ImportToken",
        ));
    };
    let wrapped = src.wrap(algorithm, public_key.as_ref())?;
    let mut b = client
        .import_key_material()
        .key_id(arn)
        .import_token(token.clone())
        .encrypted_key_material(Blob::new(wrapped))
        .import_type(kt::ImportType::ExistingKeyMaterial);
    if let Some(id) = material_id {
        b = b.key_material_id(id);
    }
    b = match req.expiry {
        Expiry::Never => b.expiration_model(kt::ExpirationModelType::KeyMaterialDoesNotExpire),
        Expiry::At(t) => b
            .expiration_model(kt::ExpirationModelType::KeyMaterialExpires)
            .valid_to(aws_smithy_types::DateTime::from_secs(t.unix_timestamp())),
    };
    match b.send().await {
        Ok(_) => Ok(format!(
            "re-wrapped by the source under fresh parameters and accepted by KMS as EXISTING_KEY_MATERIAL{}: KMS holds this very key",
            material_id.map(|m| format!(" {m}")).unwrap_or_default()
        )),
        Err(e) => {
            let err = sdk_error("ImportKeyMaterial (identity proof)", e);
            if err.code() == Some("IncorrectKeyMaterialException") {
                Err(verification_failed(
                    arn,
                    format!(
                        "KMS refused the same source's material as EXISTING_KEY_MATERIAL: {}",
                        err.message()
                    ),
                ))
            } else {
                Err(err)
            }
        }
    }
}

fn verification_failed(arn: &str, what: String) -> Error {
    Error::new(
        ErrorKind::Verification,
        format!("verification of {arn} failed: {what}"),
    )
}

/// Prove the imported material is the source's. Returns one line per check.
async fn verify(
    client: &Client,
    src: &Source,
    arn: &str,
    usage: Option<&kt::KeyUsageType>,
) -> Result<Vec<String>> {
    let spec = src.key_spec();
    let mut checks = Vec::new();
    let stamp = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let message = format!("keyferry import verification {arn} {stamp}").into_bytes();
    match MaterialKind::of(spec)? {
        MaterialKind::Symmetric => {
            let ct = client
                .encrypt()
                .key_id(arn)
                .plaintext(Blob::new(message.clone()))
                .send()
                .await
                .map_err(|e| sdk_error("Encrypt (verification)", e))?;
            let blob = ct.ciphertext_blob().cloned().ok_or_else(|| {
                verification_failed(arn, "Encrypt returned no CiphertextBlob".into())
            })?;
            let pt = client
                .decrypt()
                .key_id(arn)
                .ciphertext_blob(blob)
                .send()
                .await
                .map_err(|e| sdk_error("Decrypt (verification)", e))?;
            if pt.plaintext().map(|b| b.as_ref()) != Some(message.as_slice()) {
                return Err(verification_failed(
                    arn,
                    "Decrypt did not return what Encrypt was given".into(),
                ));
            }
            checks.push("Encrypt/Decrypt round trip with the imported material".to_string());
        }
        MaterialKind::Hmac => {
            let alg = mac_algorithm_for(spec).ok_or_else(|| {
                Error::new(ErrorKind::Internal, format!("no MAC algorithm for {spec}"))
            })?;
            let out = client
                .generate_mac()
                .key_id(arn)
                .mac_algorithm(kt::MacAlgorithmSpec::from(alg.as_str()))
                .message(Blob::new(message.clone()))
                .send()
                .await
                .map_err(|e| sdk_error("GenerateMac (verification)", e))?;
            let local = src.mac(alg, &message)?;
            if out.mac().map(|b| b.as_ref()) != Some(local.as_slice()) {
                return Err(verification_failed(
                    arn,
                    format!(
                        "the KMS {alg} differs from the one computed by the source; the imported material is not the source's"
                    ),
                ));
            }
            checks.push(format!(
                "KMS GenerateMac ({alg}) equals the source's MAC ({})",
                hex::encode(&local[..8.min(local.len())])
            ));
        }
        MaterialKind::Ec | MaterialKind::Rsa => {
            let local = src
                .public_key()?
                .ok_or_else(|| Error::new(ErrorKind::Internal, "the source has no public key"))?;
            let out = client
                .get_public_key()
                .key_id(arn)
                .send()
                .await
                .map_err(|e| sdk_error("GetPublicKey (verification)", e))?;
            if out.public_key().map(|b| b.as_ref()) != Some(local.as_slice()) {
                return Err(verification_failed(
                    arn,
                    "GetPublicKey differs from the source's public key".into(),
                ));
            }
            checks.push("GetPublicKey equals the source's public key".to_string());
            match usage {
                Some(kt::KeyUsageType::EncryptDecrypt) => {
                    let alg = EncryptionAlgorithmSpec::RSAES_OAEP_SHA_256;
                    let ct = keyferry_crypto::asymmetric::encrypt(spec, &local, alg, &message)?;
                    let pt = client
                        .decrypt()
                        .key_id(arn)
                        .encryption_algorithm(kt::EncryptionAlgorithmSpec::from(alg.as_str()))
                        .ciphertext_blob(Blob::new(ct))
                        .send()
                        .await
                        .map_err(|e| sdk_error("Decrypt (verification)", e))?;
                    if pt.plaintext().map(|b| b.as_ref()) != Some(message.as_slice()) {
                        return Err(verification_failed(
                            arn,
                            "KMS could not decrypt what the source's public key encrypted".into(),
                        ));
                    }
                    checks.push(format!(
                        "KMS Decrypt ({alg}) of a locally encrypted message"
                    ));
                }
                Some(kt::KeyUsageType::SignVerify) | None => {
                    let alg = keyferry_crypto::asymmetric::signing_algorithms(spec)
                        .first()
                        .copied()
                        .unwrap_or(SigningAlgorithmSpec::ECDSA_SHA_256);
                    let out = client
                        .sign()
                        .key_id(arn)
                        .signing_algorithm(kt::SigningAlgorithmSpec::from(alg.as_str()))
                        .message_type(kt::MessageType::Raw)
                        .message(Blob::new(message.clone()))
                        .send()
                        .await
                        .map_err(|e| sdk_error("Sign (verification)", e))?;
                    let sig = out
                        .signature()
                        .map(|b| b.as_ref().to_vec())
                        .unwrap_or_default();
                    let ok = keyferry_crypto::asymmetric::verify(
                        spec,
                        &local,
                        alg,
                        &message,
                        MessageType::RAW,
                        &sig,
                    )?;
                    if !ok {
                        return Err(verification_failed(
                            arn,
                            format!(
                                "a KMS {alg} signature does not verify with the source's public key"
                            ),
                        ));
                    }
                    checks.push(format!(
                        "KMS Sign ({alg}) verified locally with the source's public key"
                    ));
                }
                Some(other) => {
                    checks.push(format!(
                        "no signature check: the key's usage is {}",
                        other.as_str()
                    ));
                }
            }
        }
    }
    Ok(checks)
}

/// After a failure: a key this run created is scheduled for deletion (its material deleted
/// first if it was imported); an existing key whose verification failed loses the new material.
async fn cleanup(
    client: &Client,
    arn: &str,
    created: bool,
    imported: bool,
    alias: bool,
    err: Error,
) -> Error {
    let mut notes = Vec::new();
    let material_deleted = if imported && (created || err.kind() == ErrorKind::Verification) {
        match client
            .delete_imported_key_material()
            .key_id(arn)
            .send()
            .await
        {
            Ok(_) => {
                notes.push(format!(
                    "The imported material was deleted from {arn} (state PendingImport)."
                ));
                true
            }
            Err(e) => {
                notes.push(format!(
                    "Deleting the imported material from {arn} failed too ({}); run `aws kms delete-imported-key-material --key-id {arn}`.",
                    sdk_error("DeleteImportedKeyMaterial", e).message()
                ));
                false
            }
        }
    } else {
        false
    };
    if created {
        match client
            .schedule_key_deletion()
            .key_id(arn)
            .pending_window_in_days(7)
            .send()
            .await
        {
            Ok(_) => notes.push(format!(
                "The key {arn} created for this import was scheduled for deletion in 7 days (state PendingDeletion, the minimum window){}.",
                if alias { "; its alias goes with it" } else { "" }
            )),
            Err(e) => notes.push(format!(
                "The key {arn} created for this import could not be scheduled for deletion ({}); it is {}. Delete it with `aws kms schedule-key-deletion --key-id {arn} --pending-window-in-days 7`.",
                sdk_error("ScheduleKeyDeletion", e).message(),
                if imported && !material_deleted {
                    "Enabled"
                } else {
                    "PendingImport (unusable)"
                }
            )),
        }
    } else if imported && !material_deleted {
        notes.push(format!(
            "The material was imported into {arn}, but the check could not be completed; the key is left as it is."
        ));
    }
    if notes.is_empty() {
        return err;
    }
    Error::new(err.kind(), format!("{} {}", err.message(), notes.join(" ")))
        .with_code_opt(err.code().map(str::to_string))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hints_say_what_to_do() {
        assert!(hint_for("ExpiredImportTokenException").contains("24 hours"));
        assert!(hint_for("IncorrectKeyMaterialException").contains("create a new key"));
        assert!(hint_for("NotFoundException").contains("--key-id"));
        assert_eq!(hint_for("SomethingElse"), "");
    }

    #[test]
    fn usage_per_spec() {
        assert_eq!(
            key_usage_for(KeySpec::HMAC_384).unwrap(),
            kt::KeyUsageType::GenerateVerifyMac
        );
        assert_eq!(
            key_usage_for(KeySpec::RSA_3072).unwrap(),
            kt::KeyUsageType::SignVerify
        );
        assert_eq!(
            key_usage_for(KeySpec::SYMMETRIC_DEFAULT).unwrap(),
            kt::KeyUsageType::EncryptDecrypt
        );
        assert!(key_usage_for(KeySpec::SM2).is_err());
    }
}
